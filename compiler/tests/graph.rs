//! `netc graph`: the graph of the intent and of a cluster, in DOT and Mermaid.
//!
//! The snapshots (`snapshots/graph_<format>_<example>.snap`) show each example's source and its
//! graph together, for review; the other tests assert what a graph says (nodes, doors, edges and
//! the connectivity table) on small programs, so they fail on a wrong graph even when a snapshot
//! was accepted carelessly.
//!
//! To add a case: a snapshot test calls `snapshot_example("examples/<path>")`; a behaviour test
//! compiles an inline program with `intent(...)` and asserts on the [`Graph`].

mod common;

use std::path::PathBuf;

use netc::SourceFile;
use netc::analysis::matrix::Matrix;
use netc::graph::{DoorView, ExternalNames, Graph, NodeKind, Reach};
use netc_ir::{Inventory, Ir};

fn repo(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// Compile `examples/...` (named as `netc graph examples/...` from the repository root names it).
fn compile_example(relative: &str) -> (Vec<SourceFile>, Ir) {
    let text =
        std::fs::read_to_string(repo(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"));
    let sources = vec![SourceFile::new(relative, text)];
    let out = netc::compile(&sources);
    let ir = out.ir.unwrap_or_else(|| panic!("{relative} does not compile"));
    (sources, ir)
}

/// The intent graph of an inline program.
fn intent(text: &str) -> Graph {
    let (sources, out) = common::compile(text);
    let ir = out.ir.unwrap_or_else(|| {
        panic!("does not compile:\n{}", netc::diagnostics::render(&out.diagnostics, &sources, false))
    });
    Graph::from_ir(&ir, &ExternalNames::from_sources(&sources))
}

fn node(graph: &Graph, id: &str) -> usize {
    graph.nodes.iter().position(|n| n.id == id).unwrap_or_else(|| {
        panic!("no node {id}; nodes: {:?}", graph.nodes.iter().map(|n| &n.id).collect::<Vec<_>>())
    })
}

/// `(from id, to id, ports)` of every edge.
fn edges(graph: &Graph) -> Vec<(String, String, String)> {
    graph
        .edges
        .iter()
        .map(|e| (graph.nodes[e.from].id.clone(), graph.nodes[e.to].id.clone(), e.ports.clone()))
        .collect()
}

fn edge(from: &str, to: &str, ports: &str) -> (String, String, String) {
    (from.to_owned(), to.to_owned(), ports.to_owned())
}

fn snapshot_example(relative: &str) {
    let (sources, ir) = compile_example(relative);
    let graph = Graph::from_ir(&ir, &ExternalNames::from_sources(&sources));
    let name = relative.trim_start_matches("examples/").trim_end_matches(".np").replace(['/', '-'], "_");
    for (format, text) in [("dot", graph.to_dot()), ("mermaid", graph.to_mermaid())] {
        let snapshot = format!("--- source {relative}\n{}--- {format}\n{text}", sources[0].text);
        common::snapshot_settings()
            .bind(|| insta::assert_snapshot!(format!("graph_{format}_{name}"), snapshot));
    }
}

#[test]
fn graph_of_seed_allow_frontend() {
    snapshot_example("examples/seed/allow-frontend.np");
}

#[test]
fn graph_of_seed_restrict_egress() {
    snapshot_example("examples/seed/restrict-egress.np");
}

#[test]
fn graph_of_seed_complete_isolation() {
    snapshot_example("examples/seed/complete-isolation.np");
}

#[test]
fn graph_of_seed_allow_monitoring() {
    snapshot_example("examples/seed/allow-monitoring.np");
}

#[test]
fn graph_of_shop() {
    snapshot_example("examples/shop.np");
}

#[test]
fn graph_of_seed_allow_frontend_on_the_seed_cluster() {
    let (sources, ir) = compile_example("examples/seed/allow-frontend.np");
    let inventory = seed_cluster();
    let matrix = Matrix::compute(&ir, &inventory, &Matrix::default_probes(&ir, &inventory));
    let graph = Graph::from_cluster(&ir, &inventory, &matrix);
    let snapshot = format!("--- source {}\n{}--- dot\n{}", sources[0].name, sources[0].text, graph.to_dot());
    common::snapshot_settings()
        .bind(|| insta::assert_snapshot!("graph_dot_seed_allow_frontend_on_the_seed_cluster", snapshot));
}

fn seed_cluster() -> Inventory {
    let text = std::fs::read_to_string(repo("compiler/tests/fixtures/seed-cluster.yaml")).expect("fixture");
    Inventory::from_yaml(&text).expect("the fixture is a valid inventory")
}

#[test]
fn every_rule_is_an_edge_labelled_with_its_ports_and_both_ends_share_one_edge() {
    let g = intent(
        "frontend -> backend:8080\nbackend egress guarded\nbackend -> db:[5432, 53/udp]\nhermit isolated\n",
    );
    assert_eq!(
        edges(&g),
        [
            edge("default/backend", "default/db", "5432, 53/udp"),
            edge("default/frontend", "default/backend", "8080")
        ]
    );
    let to_db = &g.edges[0];
    assert_eq!(to_db.rules.len(), 2, "backend's egress rule and db's ingress rule: one flow, one edge");
    assert_eq!(g.edges[1].rules.len(), 1, "frontend's egress is open: only backend's ingress rule");
    let backend = &g.nodes[node(&g, "default/backend")];
    assert!(backend.ingress.is_guarded() && backend.egress.is_guarded());
    let frontend = &g.nodes[node(&g, "default/frontend")];
    assert_eq!((&frontend.ingress, &frontend.egress), (&DoorView::Open, &DoorView::Open));
    let db = &g.nodes[node(&g, "default/db")];
    assert!(db.ingress.is_guarded() && db.egress == DoorView::Open);
    let hermit = &g.nodes[node(&g, "default/hermit")];
    assert!(hermit.isolated && !backend.isolated && !db.isolated);
    // The door knows the statement that guards it and the rules through it.
    let DoorView::Guarded { statements, rules, .. } = &backend.egress else { panic!("guarded") };
    assert_eq!(statements.iter().map(|s| s.line).collect::<Vec<_>>(), [2]);
    assert_eq!(rules.len(), 1);
}

#[test]
fn a_namespace_wide_guard_covers_every_workload_and_a_narrower_one_only_part_of_all_pods() {
    let g = intent(
        "namespace shop {\n  default deny egress\n  api -> db:5432\n  api -> dns\n}\nnamespace web {\n  front egress guarded\n  front -> shop/api:80, dns\n}\n",
    );
    for id in ["shop/api", "shop/db", "shop/all pods"] {
        assert!(g.nodes[node(&g, id)].egress.is_guarded(), "{id}: `default deny egress` guards it");
    }
    let DoorView::Guarded { policies, .. } = &g.nodes[node(&g, "shop/api")].egress else { panic!() };
    assert_eq!(policies.len(), 2, "api's own policy and the namespace's");
    let db_ingress = &g.nodes[node(&g, "shop/db")].ingress;
    assert!(
        matches!(db_ingress, DoorView::Guarded { policies, .. } if policies.len() == 1),
        "only db's own policy guards its ingress: {db_ingress:?}"
    );
    assert!(!g.nodes.iter().any(|n| n.id == "web/all pods"), "nothing in web names all its pods");
    assert!(edges(&g).contains(&edge("web/front", "shop/api", "80")));
}

#[test]
fn peers_become_nodes_of_their_kind_and_externals_keep_their_names() {
    let g = intent(
        "external payments = 203.0.113.0/24 except 203.0.113.7, 198.51.100.10\nnamespace shop {\n  api egress guarded\n  api -> payments:443, anywhere:8443, dns\n  {team=monitoring}/* -> api:9090\n  10.0.0.0/8, 192.168.0.0/16 -> api:80\n  */{app=probe} -> api:8081\n}\n",
    );
    let kind = |id: &str| g.nodes[node(&g, id)].kind;
    assert_eq!(kind("shop/api"), NodeKind::Workload);
    assert_eq!(kind("ext:payments"), NodeKind::External);
    assert_eq!(
        g.nodes[node(&g, "ext:payments")].detail,
        "198.51.100.10/32, 203.0.113.0/24 except 203.0.113.7/32"
    );
    assert_eq!(kind("anywhere"), NodeKind::Anywhere);
    assert_eq!(kind("dns"), NodeKind::Dns);
    assert_eq!(kind("ns:{team=monitoring}/*"), NodeKind::Namespaces);
    assert_eq!(kind("ns:*/{app=probe}"), NodeKind::Namespaces);
    assert_eq!(kind("ext:10.0.0.0/8"), NodeKind::External, "blocks written in an arrow: one node each");
    assert_eq!(kind("ext:192.168.0.0/16"), NodeKind::External);
    let all = edges(&g);
    for expected in [
        edge("shop/api", "ext:payments", "443"),
        edge("shop/api", "anywhere", "8443"),
        edge("shop/api", "dns", "53/udp, 53"),
        edge("ns:{team=monitoring}/*", "shop/api", "9090"),
        edge("ext:10.0.0.0/8", "shop/api", "80"),
        edge("ext:192.168.0.0/16", "shop/api", "80"),
        edge("ns:*/{app=probe}", "shop/api", "8081"),
    ] {
        assert!(all.contains(&expected), "missing {expected:?} in {all:?}");
    }
    // Nodes of no namespace are drawn outside the namespace clusters.
    assert!(g.nodes.iter().filter(|n| n.kind != NodeKind::Workload).all(|n| n.namespace.is_none()));
}

#[test]
fn the_intent_table_needs_the_senders_egress_and_the_receivers_ingress() {
    let g = intent("frontend -> backend:8080\nbackend egress guarded\nbackend -> db:5432\nhermit isolated\n");
    let at = |from: &str, to: &str| g.cell(node(&g, from), node(&g, to)).clone();
    let c = at("default/frontend", "default/backend");
    assert_eq!((c.reach, c.text.as_str()), (Reach::Some, "8080"));
    assert_eq!(at("default/backend", "default/db").text, "5432");
    assert_eq!(
        at("default/backend", "default/frontend").reach,
        Reach::None,
        "backend's egress only reaches db"
    );
    assert_eq!(at("default/frontend", "default/db").reach, Reach::None, "db's ingress only lets backend in");
    assert_eq!(at("default/db", "default/frontend").reach, Reach::All, "both doors open");
    for other in ["default/frontend", "default/backend", "default/db"] {
        assert_eq!(at("default/hermit", other).reach, Reach::None);
        assert_eq!(at(other, "default/hermit").reach, Reach::None);
    }
}

#[test]
fn the_cluster_graph_groups_pods_by_workload_and_leaves_out_pairs_with_open_doors() {
    let (_, ir) = compile_example("examples/seed/allow-frontend.np");
    let inventory = seed_cluster();
    let matrix = Matrix::compute(&ir, &inventory, &Matrix::default_probes(&ir, &inventory));
    let g = Graph::from_cluster(&ir, &inventory, &matrix);
    let frontend = &g.nodes[node(&g, "default/frontend")];
    assert_eq!(frontend.detail, "2 pods: frontend, frontend-canary");
    assert_eq!(frontend.ingress, DoorView::Open);
    assert!(g.nodes[node(&g, "default/backend")].ingress.is_guarded());
    assert_eq!(g.nodes[node(&g, "ext:internet")].kind, NodeKind::External);
    // Only backend's ingress is guarded: the drawn edges are the ones into backend.
    let drawn = edges(&g);
    assert!(drawn.contains(&edge("default/frontend", "default/backend", "any port")), "{drawn:?}");
    assert!(drawn.iter().all(|(_, to, _)| to == "default/backend"), "{drawn:?}");
    assert_eq!(drawn.len(), 1, "no other pods reach backend: {drawn:?}");
    assert!(g.open_pairs_left_out > 0);
    let at = |from: &str, to: &str| g.cell(node(&g, from), node(&g, to)).reach;
    assert_eq!(at("default/database", "default/backend"), Reach::None);
    assert_eq!(at("default/database", "default/frontend"), Reach::All);
    assert_eq!(at("ext:internet", "ext:internet-v6"), Reach::NotApplicable);
    let e = g.edges.iter().find(|e| g.nodes[e.to].id == "default/backend").expect("edge into backend");
    assert_eq!(e.rules, [ir.policies[0].ingress.rules[0].id.clone()], "the rule that allows it");
}

#[test]
fn graphs_are_byte_identical_on_every_run() {
    let (sources, ir) = compile_example("examples/shop.np");
    let names = ExternalNames::from_sources(&sources);
    let first = Graph::from_ir(&ir, &names);
    for _ in 0..3 {
        let (sources, ir) = compile_example("examples/shop.np");
        let again = Graph::from_ir(&ir, &ExternalNames::from_sources(&sources));
        assert_eq!(again.to_dot(), first.to_dot());
        assert_eq!(again.to_mermaid(), first.to_mermaid());
    }
}

#[test]
fn pods_of_a_default_deny_namespace_with_flows_are_not_called_isolated() {
    // `default deny` guards both doors of `*`, and no edge touches `*` itself; but its pods include
    // `web` and `api`, which talk: "isolated: no flows in or out" would be false.
    let graph = intent("namespace shop {\n  default deny\n  web -> api:80\n}\nhermit isolated\nx -> y\n");
    let all = &graph.nodes[node(&graph, "shop/all pods")];
    assert!(all.ingress.is_guarded() && all.egress.is_guarded(), "{all:?}");
    assert!(!all.isolated, "{all:?}");
    // A workload whose labels exclude every talking pod's is still isolated.
    assert!(graph.nodes[node(&graph, "default/hermit")].isolated);
}
