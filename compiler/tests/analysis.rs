//! explain, matrix, diff and verify on the seed examples (the article's four policies) and the
//! shop, over the clusters in `tests/fixtures/` (`seed-cluster.yaml`, `shop-cluster.yaml`).
//!
//! Each snapshot holds what was asked and what netc answered, so a reviewer reads the verdicts
//! next to the question; the tests also assert the verdicts themselves, so a snapshot accepted in
//! a hurry cannot hide a wrong answer.
//!
//! To add a case: a program (an example, or inline), a cluster (a fixture, or synthesized), and a
//! call to one of the helpers below with a snapshot name that says what it shows.

mod common;

use std::path::PathBuf;

use netc::SourceFile;
use netc::analysis::diff::diff;
use netc::analysis::explain::{Explanation, explain};
use netc::analysis::ip_blocks::{blocks_covering_pods, render_warnings};
use netc::analysis::matrix::Matrix;
use netc::analysis::synth::synthesize;
use netc::analysis::table::render_table;
use netc::analysis::verify::{Verification, verify};
use netc::{codegen, yaml};
use netc_ir::{Inventory, Ir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A file of the repository, named by its path from the repository root (as `netc` run there
/// would name it), with its `assert` statements blanked: these tests are about the flows, and the
/// examples' assertions would (rightly) refuse the lines `explain` suggests to add (the
/// assertions are tested in prover.rs).
fn source(path: &str) -> SourceFile {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut in_assert = false;
    let text: String = text
        .lines()
        .map(|l| {
            // An assertion and its wrapped continuation lines.
            in_assert = l.starts_with("assert ") || (in_assert && l.starts_with("    "));
            if in_assert { "\n".to_owned() } else { format!("{l}\n") }
        })
        .collect();
    SourceFile::new(path, text)
}

fn compile(sources: &[SourceFile]) -> Ir {
    let out = netc::compile(sources);
    out.ir.unwrap_or_else(|| panic!("compiles: {:#?}", out.diagnostics))
}

fn cluster(name: &str) -> Inventory {
    let path = format!("compiler/tests/fixtures/{name}");
    Inventory::from_yaml(&source(&path).text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn snapshot(name: &str, text: &str) {
    common::snapshot_settings().bind(|| insta::assert_snapshot!(name, text));
}

/// Explain `from -> to` under `program` on `cluster`; snapshot the question and the answer.
fn explained(name: &str, program: &str, cluster_file: &str, from: &str, to: &str) -> Explanation {
    let sources = [source(program)];
    let ir = compile(&sources);
    let inventory = cluster(cluster_file);
    let e = explain(&sources, &ir, &inventory, from, to).unwrap_or_else(|err| panic!("{err}"));
    let command = format!(
        "netc explain {program} --cluster compiler/tests/fixtures/{cluster_file} --from {from} --to {to}"
    );
    snapshot(name, &format!("--- command\n{command}\n--- output\n{}", e.render()));
    e
}

// ---------- explain ----------

#[test]
fn explain_allow_frontend_lets_the_frontend_in() {
    let e = explained(
        "explain_allow_frontend_lets_the_frontend_in",
        "examples/seed/allow-frontend.np",
        "seed-cluster.yaml",
        "default/frontend",
        "default/backend:http",
    );
    assert!(e.allowed);
    assert_eq!(e.doors[1].rules.len(), 1, "one rule of backend's ingress");
}

/// DESIGN.md corner 12: kafka-0's ingress is guarded, but the kube-proxy of its own node
/// (worker-3, a hostNetwork pod) gets in, and explain says why; another node's does not.
#[test]
fn explain_lets_a_pods_own_node_in() {
    let e = explained(
        "explain_lets_a_pods_own_node_in",
        "examples/shop.np",
        "shop-cluster.yaml",
        "kube-system/kube-proxy-5p4vd",
        "data/kafka-0:9093",
    );
    assert!(e.allowed);
    assert_eq!(e.doors[1].summary, "from its own node");
    let other = explain(
        &[source("examples/shop.np")],
        &compile(&[source("examples/shop.np")]),
        &cluster("shop-cluster.yaml"),
        "kube-system/kube-proxy-bsv8r",
        "data/kafka-0:9093",
    )
    .expect("explains");
    assert!(!other.allowed, "worker-1's kube-proxy is another node");
}

#[test]
fn explain_allow_frontend_refuses_the_database_and_offers_the_arrow() {
    let e = explained(
        "explain_allow_frontend_refuses_the_database_and_offers_the_arrow",
        "examples/seed/allow-frontend.np",
        "seed-cluster.yaml",
        "default/database",
        "default/backend:8080",
    );
    assert!(!e.allowed);
    assert!(!e.doors[1].permits && e.doors[0].permits);
    let fix = e.fix.expect("a fix");
    assert_eq!(
        (fix.namespace.as_str(), fix.lines.as_slice()),
        ("default", ["database -> backend:8080".to_owned()].as_slice())
    );
    assert_eq!(fix.removes, 0);
}

#[test]
fn explain_restrict_egress_lets_the_backend_reach_the_database() {
    let e = explained(
        "explain_restrict_egress_lets_the_backend_reach_the_database",
        "examples/seed/restrict-egress.np",
        "seed-cluster.yaml",
        "default/backend",
        "default/database:5432",
    );
    assert!(e.allowed);
    assert_eq!(e.doors[0].summary, "allowed by 1 rule");
    assert_eq!(e.doors[1].summary, "open", "the database's ingress is declared open");
}

#[test]
fn explain_restrict_egress_keeps_the_backend_off_the_internet() {
    let e = explained(
        "explain_restrict_egress_keeps_the_backend_off_the_internet",
        "examples/seed/restrict-egress.np",
        "seed-cluster.yaml",
        "default/backend",
        "internet:443",
    );
    assert!(!e.allowed && !e.doors[0].permits);
    assert_eq!(e.fix.expect("a fix").lines, ["backend -> 8.8.8.8:443"]);
}

#[test]
fn explain_complete_isolation_has_no_arrow_to_offer() {
    let e = explained(
        "explain_complete_isolation_has_no_arrow_to_offer",
        "examples/seed/complete-isolation.np",
        "seed-cluster.yaml",
        "default/frontend",
        "default/hermit:80",
    );
    assert!(!e.allowed);
    assert!(e.fix.is_none());
    assert!(e.no_fix.expect("why not").contains("E0301"));
}

#[test]
fn explain_allow_monitoring_admits_prometheus_by_namespace_label() {
    let e = explained(
        "explain_allow_monitoring_admits_prometheus_by_namespace_label",
        "examples/seed/allow-monitoring.np",
        "seed-cluster.yaml",
        "monitoring/prometheus",
        "app-space/web-1:9090",
    );
    assert!(e.allowed);
}

#[test]
fn explain_allow_monitoring_refuses_a_near_miss_namespace() {
    let e = explained(
        "explain_allow_monitoring_refuses_a_near_miss_namespace",
        "examples/seed/allow-monitoring.np",
        "seed-cluster.yaml",
        "10.4.0.1",
        "app-space/web-2:9090",
    );
    assert!(!e.allowed);
    assert_eq!(e.notes, ["10.4.0.1 is the address of pod team-monitoring/prometheus"]);
    assert_eq!(e.fix.expect("a fix").lines, ["team-monitoring/prometheus -> web:9090"]);
}

#[test]
fn explain_shop_checkout_pays_through_the_gateway() {
    let e = explained(
        "explain_shop_checkout_pays_through_the_gateway",
        "examples/shop.np",
        "shop-cluster.yaml",
        "shop/checkout-dbbf48126d-k4gn9",
        "payments/payment-gateway-126c5aefe9-s2hnn:https",
    );
    assert!(e.allowed);
    assert!(e.doors.iter().all(|d| d.rules.len() == 1), "one rule at each guarded door");
}

#[test]
fn explain_shop_the_gateway_may_not_reach_the_providers_back_office() {
    let e = explained(
        "explain_shop_the_gateway_may_not_reach_the_providers_back_office",
        "examples/shop.np",
        "shop-cluster.yaml",
        "payments/payment-gateway-126c5aefe9-s2hnn",
        "provider-back-office:443",
    );
    assert!(!e.allowed, "203.0.113.200 is in the block's except");
    assert_eq!(e.fix.expect("a fix").lines, ["payment-gateway -> 203.0.113.200:443"]);
}

#[test]
fn explain_shop_storefront_may_not_skip_the_api_to_the_database() {
    let e = explained(
        "explain_shop_storefront_may_not_skip_the_api_to_the_database",
        "examples/shop.np",
        "shop-cluster.yaml",
        "web/storefront-307aaa9f59-txq9s",
        "data/postgres-0:5432",
    );
    assert!(!e.allowed);
    assert!(!e.doors[0].permits && !e.doors[1].permits, "both doors are guarded by default deny");
    let fix = e.fix.expect("a fix");
    assert_eq!(fix.lines, ["web/storefront -> postgres:5432"]);
    assert_eq!(fix.removes, 0);
}

// ---------- matrix ----------

fn matrix_table(program: &str, cluster_file: &str) -> (String, Matrix) {
    let sources = [source(program)];
    let ir = compile(&sources);
    let inventory = cluster(cluster_file);
    let m = Matrix::compute(&ir, &inventory, &Matrix::default_probes(&ir, &inventory));
    let text = render_table(&m, &inventory, &[&ir], 120);
    (
        format!(
            "--- command\nnetc matrix {program} --cluster compiler/tests/fixtures/{cluster_file}\n--- output\n{text}"
        ),
        m,
    )
}

#[test]
fn matrix_of_each_seed_example_on_the_seed_cluster() {
    for name in ["allow-frontend", "restrict-egress", "complete-isolation", "allow-monitoring"] {
        let (text, m) = matrix_table(&format!("examples/seed/{name}.np"), "seed-cluster.yaml");
        snapshot(&format!("matrix_seed_{}", name.replace('-', "_")), &text);
        assert!(m.allowed_count() > 0);
    }
}

#[test]
fn matrix_of_the_shop_merges_replicas_and_wraps() {
    let (text, m) = matrix_table("examples/shop.np", "shop-cluster.yaml");
    snapshot("matrix_shop", &text);
    // Replicas merge when nothing tells them apart (coredns: nothing guards its ingress, so its
    // node changes nothing); kafka's three run on three nodes, and each node's kube-proxy (hostNetwork) reaches
    // only the pods of its own node (DESIGN.md corner 12), so they are rows of their own.
    assert!(text.contains("kube-system/coredns (2 pods)"), "{text}");
    assert!(text.contains("data/kafka-0") && !text.contains("data/kafka (3 pods)"), "{text}");
    assert!(text.contains("columns [1] to ["), "a 25-column table wraps at 120 characters");
    let at = |n: &str| m.endpoint_index(n).unwrap_or_else(|| panic!("{n}"));
    let probe = |port: u16| m.probes.iter().position(|p| p.port == port && !p.other).expect("probe");
    let storefront = at("web/storefront-307aaa9f59-txq9s");
    assert!(m.is_allowed(storefront, at("shop/catalog-692ba2723f-qvx4q"), probe(8080)));
    assert!(!m.is_allowed(storefront, at("data/postgres-0"), probe(5432)));
}

#[test]
fn matrix_csv_and_json_of_allow_frontend() {
    let sources = [source("examples/seed/allow-frontend.np")];
    let ir = compile(&sources);
    let inventory = cluster("seed-cluster.yaml");
    let m = Matrix::compute(&ir, &inventory, &Matrix::default_probes(&ir, &inventory));
    let csv = m.render_csv();
    snapshot("matrix_csv_allow_frontend", &csv);
    assert!(csv.contains("\ndefault/frontend,default/backend,1,1,1\n"), "{csv}");
    assert!(csv.contains("\ndefault/database,default/backend,0,0,0\n"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&m.render_json()).expect("JSON");
    let pairs = json["allowed"].as_array().expect("allowed pairs");
    assert!(pairs.iter().any(|p| p["from"] == "default/frontend-canary" && p["to"] == "default/backend"));
    assert!(!pairs.iter().any(|p| p["from"] == "default/role-frontend" && p["to"] == "default/backend"));
}

/// Two dual-stack pods; the client may reach only the server's IPv6 address.
const DUAL_STACK: &str = "\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: default}}
- {apiVersion: v1, kind: Pod, metadata: {name: client, namespace: default, labels: {app: client}}, status: {podIP: 10.244.1.1, podIPs: [{ip: 10.244.1.1}, {ip: \"fd00:10:244:1::1\"}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: server, namespace: default, labels: {app: server}}, status: {podIP: 10.244.2.2, podIPs: [{ip: 10.244.2.2}, {ip: \"fd00:10:244:2::2\"}]}}
";

/// Corner 14: an egress rule to the server's IPv6 address does not let an IPv4 connection
/// through, in the matrix or in explain (both allowed it: any address of the pod matched).
#[test]
fn a_dual_stack_pod_is_judged_by_the_address_the_flow_uses() {
    let sources = [SourceFile::new("p.np", "client egress guarded\nclient -> fd00:10:244:2::2/128:80\n")];
    let ir = compile(&sources);
    let inventory = Inventory::from_yaml(DUAL_STACK).expect("cluster");
    let m = Matrix::compute(&ir, &inventory, &Matrix::default_probes(&ir, &inventory));
    let (client, server) = (
        m.endpoint_index("default/client").expect("client"),
        m.endpoint_index("default/server").expect("server"),
    );
    assert_eq!(
        m.allowed(client, server).count(),
        0,
        "IPv4 is denied, so the pair is not allowed on both families"
    );
    assert_eq!(m.split_by_family, 1);
    let v4 = explain(&sources, &ir, &inventory, "default/client", "10.244.2.2:80").expect("explained");
    assert!(!v4.allowed, "{}", v4.render());
    let v6 =
        explain(&sources, &ir, &inventory, "default/client", "[fd00:10:244:2::2]:80").expect("explained");
    assert!(v6.allowed, "{}", v6.render());
    let by_name =
        explain(&sources, &ir, &inventory, "default/client", "default/server:80").expect("explained");
    assert!(!by_name.allowed);
    assert!(by_name.render().contains("over IPv6 the flow is ALLOWED"), "{}", by_name.render());
    let mixed =
        explain(&sources, &ir, &inventory, "10.244.1.1", "[fd00:10:244:2::2]:80").expect_err("two families");
    assert!(mixed.to_string().contains("different address families"), "{mixed}");
}

// ---------- diff ----------

fn diffed(
    name: &str,
    old: &[SourceFile],
    new: &[SourceFile],
    inventory: Option<&Inventory>,
    title: &str,
) -> netc::analysis::diff::ConnectivityDiff {
    let (old_ir, new_ir) = (compile(old), compile(new));
    let synthesized;
    let inventory = match inventory {
        Some(i) => i,
        None => {
            synthesized = synthesize(&[&old_ir, &new_ir]);
            &synthesized
        }
    };
    let d = diff(&old_ir, &new_ir, inventory);
    snapshot(name, &format!("--- command\n{title}\n--- output\n{}", d.render()));
    d
}

#[test]
fn diff_adopting_each_seed_example_on_the_seed_cluster() {
    let inventory = cluster("seed-cluster.yaml");
    let nothing = [SourceFile::new("empty.np", "")];
    for name in ["allow-frontend", "restrict-egress", "complete-isolation", "allow-monitoring"] {
        let path = format!("examples/seed/{name}.np");
        let d = diffed(
            &format!("diff_adopting_seed_{}", name.replace('-', "_")),
            &nothing,
            &[source(&path)],
            Some(&inventory),
            &format!("netc diff empty.np {path} --cluster compiler/tests/fixtures/seed-cluster.yaml"),
        );
        // NetworkPolicies only take away: adopting one never adds a flow.
        assert_eq!(d.added, 0, "{name}");
        assert!(d.removed > 0, "{name}");
    }
}

/// A pull request on the shop: search gets a redis cache, catalog stops calling
/// recommendations, and the asset server moves to port 8081.
fn shop_change() -> (SourceFile, SourceFile) {
    let old = source("examples/shop.np");
    let text = old
        .text
        .replace("  cart -> data/redis:6379\n", "  cart, search -> data/redis:6379\n")
        .replace("  catalog -> recommendations:8080\n", "")
        .replace("storefront -> assets:8080", "storefront -> assets:8081");
    assert_ne!(text, old.text);
    (SourceFile::new("examples/shop.np", old.text), SourceFile::new("examples/shop.np (changed)", text))
}

#[test]
fn diff_of_a_shop_pull_request_on_the_shop_cluster() {
    let (old, new) = shop_change();
    let inventory = cluster("shop-cluster.yaml");
    let d = diffed(
        "diff_shop_pull_request",
        &[old],
        &[new],
        Some(&inventory),
        "netc diff HEAD:examples/shop.np examples/shop.np --cluster compiler/tests/fixtures/shop-cluster.yaml",
    );
    let groups: Vec<(&str, &str)> = d.groups.iter().map(|g| (g.from.as_str(), g.to.as_str())).collect();
    assert_eq!(
        groups,
        [
            ("shop/catalog", "shop/recommendations"),
            ("shop/search", "data/redis"),
            ("web/storefront", "web/assets")
        ]
    );
    // 2 catalog pods lose 8080 to recommendations; search gains 6379; 2 storefronts swap 8080 for 8081.
    assert_eq!((d.added, d.removed), (1 + 2, 2 + 2));
}

#[test]
fn diff_of_a_shop_pull_request_without_a_cluster() {
    let (old, new) = shop_change();
    let d = diffed(
        "diff_shop_pull_request_synthesized",
        &[old],
        &[new],
        None,
        "netc diff HEAD:examples/shop.np examples/shop.np",
    );
    let groups: Vec<(&str, &str)> = d.groups.iter().map(|g| (g.from.as_str(), g.to.as_str())).collect();
    assert_eq!(
        groups,
        [
            ("shop/catalog", "shop/recommendations"),
            ("shop/search", "data/redis"),
            ("web/storefront", "web/assets")
        ]
    );
}

#[test]
fn diff_of_a_program_with_itself_reordered_is_empty() {
    let a = SourceFile::new("a.np", "frontend -> backend:8080\nhermit isolated\n");
    let b = SourceFile::new("b.np", "hermit isolated\n\nfrontend -> backend:[8080]\n");
    let d = diffed("diff_reordered_program_is_empty", &[a], &[b], None, "netc diff a.np b.np");
    assert!(d.is_empty());
}

/// `:*` is every TCP port; a bare arrow is every port of every protocol: the change drops UDP and
/// SCTP, and diff says so (it said "no connectivity change", since no rule mentions UDP).
#[test]
fn diff_sees_a_change_of_protocol_no_rule_mentions() {
    let tcp = SourceFile::new("old.np", "frontend -> backend:*\n");
    let all = SourceFile::new("new.np", "frontend -> backend\n");
    let seed = cluster("seed-cluster.yaml");
    for inventory in [None, Some(&seed)] {
        let d = diff(
            &compile(std::slice::from_ref(&tcp)),
            &compile(std::slice::from_ref(&all)),
            inventory.map_or(&synthesize(&[&compile(std::slice::from_ref(&tcp))]), |i| i),
        );
        assert!(!d.is_empty(), "{}", d.render());
        assert_eq!(d.removed, 0);
        let added: Vec<String> =
            d.groups.iter().flat_map(|g| &g.pairs).flat_map(|p| &p.added).map(ToString::to_string).collect();
        assert!(
            added.contains(&"UDP/other".to_owned()) && added.contains(&"SCTP/other".to_owned()),
            "{added:?}"
        );
        assert!(!added.iter().any(|p| p.starts_with("TCP")), "{added:?}");
    }
}

// ---------- verify ----------

/// A code generator that narrows "every port" to TCP is caught, though no rule mentions UDP.
#[test]
fn verify_catches_yaml_that_drops_udp_and_sctp() {
    let ir = compile(&[SourceFile::new("t.np", "frontend -> backend\n")]);
    let text = yaml::render_stream(&codegen::network_policies(&ir), &ir.sources);
    let tcp_only = text
        .replace("          app: frontend\n", "          app: frontend\n    ports:\n    - protocol: TCP\n");
    assert_ne!(text, tcp_only, "the YAML has the frontend peer:\n{text}");
    let inventory = synthesize(&[&ir]);
    assert!(matches!(verify(&ir, &[&text], &inventory), Ok(Verification::Agree { .. })));
    match verify(&ir, &[&tcp_only], &inventory).expect("parses") {
        Verification::Differ(m) => assert_ne!(m.probe.protocol, netc_ir::Protocol::Tcp, "{m}"),
        Verification::Agree { .. } => panic!("TCP-only YAML passed for a rule on every protocol"),
    }
}

#[test]
fn the_yaml_of_every_example_means_what_its_source_says() {
    let programs = [
        ("examples/seed/allow-frontend.np", "seed-cluster.yaml"),
        ("examples/seed/restrict-egress.np", "seed-cluster.yaml"),
        ("examples/seed/complete-isolation.np", "seed-cluster.yaml"),
        ("examples/seed/allow-monitoring.np", "seed-cluster.yaml"),
        ("examples/shop.np", "shop-cluster.yaml"),
    ];
    for (program, cluster_file) in programs {
        let ir = compile(&[source(program)]);
        let text = yaml::render_stream(&codegen::network_policies(&ir), &ir.sources);
        for inventory in [cluster(cluster_file), synthesize(&[&ir])] {
            match verify(&ir, &[&text], &inventory).unwrap_or_else(|e| panic!("{program}: {e}")) {
                Verification::Agree { flows, .. } => assert!(flows > 0),
                Verification::Differ(m) => panic!("{program}: {m}"),
            }
        }
    }
}

// ---------- the ipBlock warning ----------

#[test]
fn an_address_block_covering_pods_of_the_cluster_is_named_with_its_line() {
    let sources = [SourceFile::new(
        "monitoring.np",
        "## Scrapers on the node network.\n10.0.0.0/24 except 10.0.0.4/32 -> backend:9090\nfrontend -> backend:8080\n",
    )];
    let ir = compile(&sources);
    let inventory = cluster("seed-cluster.yaml");
    let found = blocks_covering_pods(&ir, &inventory);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].pods,
        [
            "default/backend",
            "default/frontend",
            "default/frontend-canary",
            "default/hermit",
            "default/role-frontend",
            "default/unlabelled",
            "default/web"
        ]
    );
    snapshot("ip_block_covering_pods_warning", &render_warnings(&found, &ir, &sources));
}
