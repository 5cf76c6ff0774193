//! `netc build --stats --cluster` and the build's budget count what netcd really writes: for the
//! examples on their clusters and for generated programs and clusters (several nodes, hostNetwork
//! pods, ipBlocks with excepts, port ranges short and long, named ports, Services), the entries
//! `netc::stats::nodes` reports for each node and map equal the entries in the kernel's maps after
//! netcd's plan for that node (as `netcd run --node N --uplink ...` makes it) is applied to a
//! loaded datapath. And the budget's "half a map" is the real limit: a build that fills half of
//! a map can be applied again over itself (a restart, a new generation), one entry more cannot.

mod common;

use common::Rng;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use common::{can_run_as_root, fake_ifindex};
use netc_ir::{Inventory, Ir};
use netc_runtime::abi;
use netc_runtime::datapath::Datapath;
use netc_runtime::plan::{Plan, PlanOptions};

fn repo(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compile(name: &str, text: &str) -> Ir {
    let out = netc::compile(&[netc::SourceFile::new(name, text)]);
    out.ir.unwrap_or_else(|| panic!("{name} compiles: {:?}", out.diagnostics))
}

const NAMESPACES: usize = 3;
const WORKLOADS: usize = 5;
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// A program over namespaces ns0.. and workloads w0.. (pods labelled app=wN), with every kind of
/// peer and port netcd turns into entries.
fn random_program(rng: &mut Rng) -> String {
    let mut src = String::from("external partner = 203.0.113.0/24 except 203.0.113.128/25, 198.51.100.7\n");
    for ns in 0..NAMESPACES {
        writeln!(src, "namespace ns{ns} {{").expect("write");
        if rng.chance(40) {
            src.push_str("  default deny\n");
        }
        for _ in 0..6 + rng.below(10) {
            let (from, to) = (rng.below(WORKLOADS), rng.below(WORKLOADS));
            let target =
                if rng.chance(30) { format!("ns{}/w{to}", rng.below(NAMESPACES)) } else { format!("w{to}") };
            let line = match rng.below(8) {
                0 => format!("w{from} -> {target}:{}", [80, 443, 5432, 8080][rng.below(4)]),
                1 => format!("w{from} -> {target}:{}/udp", [53, 514][rng.below(2)]),
                2 => format!("w{from} -> {target}:9000-90{:02}", 1 + rng.below(20)),
                3 => format!("w{from} -> {target}:1024-{}", 2048 + rng.below(30_000)),
                4 => format!("w{from} -> {target}:http"),
                5 => format!("w{from} -> partner:443"),
                6 => format!("w{from} -> 10.{}.0.0/16:{}", 100 + rng.below(3), [22, 443][rng.below(2)]),
                _ => format!("w{from}, w{} -> {target}", rng.below(WORKLOADS)),
            };
            writeln!(src, "  {line}").expect("write");
        }
        if rng.chance(30) {
            writeln!(src, "  w{} isolated", rng.below(WORKLOADS)).expect("write");
        }
        src.push_str("}\n");
    }
    src
}

/// A cluster for [`random_program`]: replicas of each workload spread over three nodes, some with
/// a named port `http`, some dual-stack, a hostNetwork pod per node, and Services (ClusterIP and
/// NodePort) in front of some workloads.
fn random_cluster(rng: &mut Rng) -> Inventory {
    let mut items = Vec::new();
    for ns in 0..NAMESPACES {
        items.push(serde_json::json!({"kind": "Namespace", "metadata": {"name": format!("ns{ns}")}}));
        for w in 0..WORKLOADS {
            for r in 0..1 + rng.below(4) {
                let mut ips = vec![serde_json::json!({"ip": format!("10.{ns}.{w}.{r}")})];
                if rng.chance(20) {
                    ips.push(serde_json::json!({"ip": format!("fd00::{ns}:{w}:{r}")}));
                }
                let ports = if rng.chance(50) {
                    serde_json::json!([{"name": "http", "containerPort": if rng.chance(50) { 80 } else { 8080 }}])
                } else {
                    serde_json::json!([])
                };
                items.push(serde_json::json!({
                    "kind": "Pod",
                    "metadata": {"namespace": format!("ns{ns}"), "name": format!("w{w}-{r}"), "labels": {"app": format!("w{w}")}},
                    "spec": {"nodeName": NODES[rng.below(NODES.len())], "containers": [{"ports": ports}]},
                    "status": {"podIPs": ips}
                }));
            }
            if rng.chance(40) {
                let mut spec = serde_json::json!({"clusterIP": format!("10.96.{ns}.{w}"), "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]});
                if rng.chance(50) {
                    spec["type"] = "NodePort".into();
                    spec["ports"][0]["nodePort"] = (30_000 + ns * 100 + w).into();
                }
                items.push(serde_json::json!({"kind": "Service", "metadata": {"namespace": format!("ns{ns}"), "name": format!("w{w}")}, "spec": spec}));
            }
        }
    }
    for (i, node) in NODES.iter().enumerate() {
        items.push(serde_json::json!({
            "kind": "Pod",
            "metadata": {"namespace": "ns0", "name": format!("agent-{node}"), "labels": {"app": "agent"}},
            "spec": {"nodeName": node, "hostNetwork": true},
            "status": {"podIPs": [{"ip": format!("192.168.0.{}", i + 1)}]}
        }));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    Inventory::from_json(&list.to_string()).expect("a valid cluster")
}

/// The entries netcd writes on `node`: its plan applied to the datapath, counted in the kernel.
fn entries_in_the_kernel(
    datapath: &mut Datapath,
    ir: &Ir,
    inventory: &Inventory,
    node: Option<&str>,
) -> BTreeMap<String, usize> {
    // As `netcd run --node NODE --uplink IF` plans (Services judged after the translation).
    let options = PlanOptions { node: node.map(str::to_owned), audit: false, services: true };
    let plan = Plan::build(ir, inventory, &options);
    let interfaces = plan.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
    let report = datapath.apply(&plan, &interfaces, false).expect("apply");
    assert!(report.fail_closed.is_empty(), "everything fits");
    let mut counts: BTreeMap<String, usize> =
        datapath.maps().table_counts().expect("count").into_iter().map(|(m, n)| (m.to_owned(), n)).collect();
    counts.insert(abi::MAP_RULE_COUNTERS.to_owned(), plan.rules.len());
    counts
}

/// netc's counts for every node of `inventory` against the kernel's.
fn assert_counts_agree(datapath: &mut Datapath, case: &str, ir: &Ir, inventory: &Inventory) -> usize {
    let nodes = netc::stats::nodes(ir, inventory);
    for node in &nodes {
        let reported: BTreeMap<String, usize> =
            node.maps.iter().map(|m| (m.map.to_owned(), m.entries)).collect();
        let kernel = entries_in_the_kernel(datapath, ir, inventory, node.node.as_deref());
        assert_eq!(reported, kernel, "{case}, {}", node.name());
        assert_eq!(node.pods, kernel[abi::MAP_ENDPOINTS], "{case}: pods are endpoints");
    }
    nodes.len()
}

#[test]
fn netc_counts_the_entries_netcd_writes_on_each_node_needs_root() {
    if !can_run_as_root("netc_counts_the_entries_netcd_writes_on_each_node_needs_root") {
        return;
    }
    let mut datapath = Datapath::load(None).expect("load the datapath");
    // The examples on their clusters (the seed cluster names no node: one node with every pod).
    let shop =
        Inventory::from_yaml(&repo("compiler/tests/fixtures/shop-cluster.yaml")).expect("shop cluster");
    assert_eq!(
        assert_counts_agree(&mut datapath, "shop", &compile("shop.np", &repo("examples/shop.np")), &shop),
        3
    );
    let seed =
        Inventory::from_yaml(&repo("compiler/tests/fixtures/seed-cluster.yaml")).expect("seed cluster");
    for example in ["allow-frontend", "allow-monitoring", "complete-isolation", "restrict-egress"] {
        let ir = compile(example, &repo(&format!("examples/seed/{example}.np")));
        assert_counts_agree(&mut datapath, example, &ir, &seed);
    }
    // Generated programs and clusters.
    let mut rng = Rng(0x5eed_0b0d_9e7a_11ce);
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    for case in 0..12 {
        // A program with errors (an arrow into an isolated workload, say) is drawn again.
        let ir = (0..20)
            .find_map(|_| {
                netc::compile(&[netc::SourceFile::new("generated.np", random_program(&mut rng))]).ir
            })
            .expect("a generated program compiles");
        let inventory = random_cluster(&mut rng);
        assert_counts_agree(&mut datapath, &format!("generated case {case}"), &ir, &inventory);
        for node in netc::stats::nodes(&ir, &inventory) {
            for m in node.maps {
                *totals.entry(m.map.to_owned()).or_default() += m.entries;
            }
        }
    }
    // The cases exercise every map.
    for (map, _) in netc_ir::capacity::MAPS {
        assert!(totals.get(map).is_some_and(|n| *n > 0), "no generated case wrote to {map}: {totals:?}");
    }
}

#[test]
fn a_build_that_fills_half_a_map_can_be_applied_over_itself_and_one_entry_more_cannot_needs_root() {
    if !can_run_as_root(
        "a_build_that_fills_half_a_map_can_be_applied_over_itself_and_one_entry_more_cannot_needs_root",
    ) {
        return;
    }
    let ir = compile("shop.np", &repo("examples/shop.np"));
    let shop =
        Inventory::from_yaml(&repo("compiler/tests/fixtures/shop-cluster.yaml")).expect("shop cluster");
    let node = &netc::stats::nodes(&ir, &shop)[0];
    let needed = node.maps.iter().find(|m| m.map == abi::MAP_POLICY).expect("policy map").entries;
    let plan = Plan::build(&ir, &shop, &netc::stats::plan_options(node.node.as_deref()));
    let interfaces = plan.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
    for (capacity, fits) in [(2 * needed, true), (2 * needed - 1, false)] {
        let capacity = u32::try_from(capacity).expect("small");
        let mut datapath =
            Datapath::load_with_capacities(None, &[(abi::MAP_POLICY, capacity)]).expect("load");
        let first = datapath.apply(&plan, &interfaces, false).expect("first generation");
        assert!(first.fail_closed.is_empty(), "the first generation fits in {capacity}");
        // What a restart or the next build does: the new generation beside the live one.
        let second = datapath.apply(&plan, &interfaces, false).expect("second generation");
        assert_eq!(second.fail_closed.is_empty(), fits, "{needed} entries twice in a map of {capacity}");
        // And netc's budget says so before any node tries.
        let limit = netc::stats::map_limit(abi::MAP_POLICY, capacity, &[]).expect("a limit").0;
        assert_eq!(u64::try_from(needed).expect("fits") <= limit, fits);
    }
}
