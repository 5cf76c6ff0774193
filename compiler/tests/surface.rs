//! The language surface added for issue 9 (one-sided arrows, workloads of namespaces chosen by
//! labels, declared names behind a namespace selector, `@allow`), checked by evaluating the
//! compiled IR with `netc_ir::eval` and the generated YAML with the NetworkPolicy evaluator
//! (`analysis::k8s_eval`), on pods that tell the meanings apart. Each failed on the code before.
//!
//! To add a case: write the program, pods that sit where the meanings differ (`pod`), and assert
//! the verdicts docs/language.md promises for them with `allowed`, which asks both evaluators and
//! checks that they agree.

mod common;

use std::collections::BTreeMap;

use common::{codes, compile};
use netc::analysis::k8s_eval::K8sEvaluator;
use netc::codegen;
use netc_ir::eval::{Endpoint, Evaluator, Flow};
use netc_ir::{Inventory, Ir, Namespace, Pod, Protocol};

fn pod(namespace: &str, name: &str, labels: &[(&str, &str)], ip: &str) -> Pod {
    Pod {
        namespace: namespace.into(),
        name: name.into(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<BTreeMap<_, _>>(),
        ips: vec![ip.parse().expect("an address")],
        ports: Vec::new(),
        node: None,
        host_interface: None,
        host_network: false,
    }
}

fn ir_of(text: &str) -> Ir {
    let (_, out) = compile(text);
    out.ir.unwrap_or_else(|| panic!("compiles: {:#?}", out.diagnostics))
}

/// Whether `from` may reach `to` on TCP `port`, by the IR evaluator and by the NetworkPolicy
/// evaluator on the generated objects, which must agree.
fn allowed(ir: &Ir, inventory: &Inventory, from: &str, to: &str, port: u16) -> bool {
    let find = |name: &str| inventory.pods.iter().find(|p| p.name == name).expect("a pod of the case");
    let (src, dst) = (Endpoint::Pod(find(from)), Endpoint::Pod(find(to)));
    let flow = Flow::new(src, dst, Protocol::Tcp, port);
    let by_ir = Evaluator::new(ir, inventory).evaluate(&flow).allowed;
    let objects = codegen::network_policies(ir);
    let by_yaml = K8sEvaluator::new(&objects, inventory).expect("valid objects").evaluate(&flow).allowed;
    assert_eq!(by_ir, by_yaml, "{from} -> {to}:{port}: the IR and its YAML disagree");
    by_ir
}

fn cluster(pods: &[Pod], namespaces: &[(&str, &[(&str, &str)])]) -> Inventory {
    let namespaces = namespaces
        .iter()
        .map(|(name, labels)| Namespace {
            name: (*name).to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .chain([(netc_ir::inventory::NAMESPACE_NAME_LABEL.to_owned(), (*name).to_owned())])
                .collect(),
        })
        .collect();
    Inventory { pods: pods.to_vec(), namespaces, ..Inventory::default() }
}

#[test]
fn a_one_sided_arrow_restricts_the_source_and_leaves_the_target_open() {
    let text = "backend egress guarded\nbackend -> dns\negress backend -> database:5432\n";
    let (_, out) = compile(text);
    assert!(codes(&out).is_empty(), "{:#?}", out.diagnostics);
    let ir = ir_of(text);
    let inv = cluster(
        &[
            pod("default", "backend", &[("app", "backend")], "10.0.0.1"),
            pod("default", "database", &[("app", "database")], "10.0.0.2"),
            pod("default", "frontend", &[("app", "frontend")], "10.0.0.3"),
        ],
        &[],
    );
    assert!(allowed(&ir, &inv, "backend", "database", 5432));
    assert!(!allowed(&ir, &inv, "backend", "database", 80), "only the declared port");
    assert!(!allowed(&ir, &inv, "backend", "frontend", 80), "the backend's egress is guarded");
    assert!(allowed(&ir, &inv, "frontend", "database", 5432), "the database's ingress stays open");
    // The plain arrow would have guarded it, and says so.
    let (_, out) = compile("backend egress guarded\nbackend -> dns\nbackend -> database:5432\n");
    assert_eq!(codes(&out), ["W0205"]);
    let ir = out.ir.expect("a warning only");
    assert!(!allowed(&ir, &inv, "frontend", "database", 5432));
}

#[test]
fn a_one_sided_arrow_into_a_guarded_target_still_lets_its_flow_through() {
    // Something else guards the database's ingress (here `default deny ingress`): the one-sided
    // arrow adds the flow there too, so that the connection it declares passes.
    let text =
        "default deny ingress\nbackend egress guarded\nbackend -> dns\negress backend -> database:5432\n";
    let ir = ir_of(text);
    let inv = cluster(
        &[
            pod("default", "backend", &[("app", "backend")], "10.0.0.1"),
            pod("default", "database", &[("app", "database")], "10.0.0.2"),
            pod("default", "frontend", &[("app", "frontend")], "10.0.0.3"),
        ],
        &[],
    );
    assert!(allowed(&ir, &inv, "backend", "database", 5432));
    assert!(!allowed(&ir, &inv, "frontend", "database", 5432), "default deny ingress holds");
    // And with the target guarded by another arrow.
    let ir = ir_of(
        "backend egress guarded\nbackend -> dns\nfrontend -> database:5432\negress backend -> database:5432\n",
    );
    let inv = cluster(
        &[
            pod("default", "backend", &[("app", "backend")], "10.0.0.1"),
            pod("default", "database", &[("app", "database")], "10.0.0.2"),
            pod("default", "frontend", &[("app", "frontend")], "10.0.0.3"),
            pod("default", "other", &[("app", "other")], "10.0.0.4"),
        ],
        &[],
    );
    assert!(allowed(&ir, &inv, "backend", "database", 5432));
    assert!(allowed(&ir, &inv, "frontend", "database", 5432));
    assert!(!allowed(&ir, &inv, "other", "database", 5432));
}

#[test]
fn a_workload_of_namespaces_chosen_by_labels_means_their_pods_wherever_it_is_used() {
    let text = "workload prod = {purpose=production}/*\nnamespace shop {\n  prod -> api:80\n}\n";
    let (_, out) = compile(text);
    assert!(codes(&out).is_empty(), "{:#?}", out.diagnostics);
    let ir = ir_of(text);
    let inv = cluster(
        &[
            pod("shop", "api", &[("app", "api")], "10.0.0.1"),
            pod("live", "anything", &[("app", "x")], "10.0.0.2"),
            pod("test", "anything-else", &[("app", "x")], "10.0.0.3"),
            pod("shop", "prod", &[("app", "prod")], "10.0.0.4"),
        ],
        &[("shop", &[]), ("live", &[("purpose", "production")]), ("test", &[("purpose", "testing")])],
    );
    assert!(allowed(&ir, &inv, "anything", "api", 80));
    assert!(!allowed(&ir, &inv, "anything-else", "api", 80));
    assert!(!allowed(&ir, &inv, "prod", "api", 80), "not the pods labelled app=prod");
}

#[test]
fn a_declared_name_behind_a_namespace_selector_means_its_declared_pods() {
    // Issue 9 item 3: this compiled to `app: prom` before.
    let text = "workload prom = {app=prometheus}\n{team=monitoring}/prom -> web:9090\n";
    let ir = ir_of(text);
    let inv = cluster(
        &[
            pod("default", "web", &[("app", "web")], "10.0.0.1"),
            pod("mon", "prometheus", &[("app", "prometheus")], "10.0.0.2"),
            pod("mon", "prom", &[("app", "prom")], "10.0.0.3"),
        ],
        &[("default", &[]), ("mon", &[("team", "monitoring")])],
    );
    assert!(allowed(&ir, &inv, "prometheus", "web", 9090));
    assert!(!allowed(&ir, &inv, "prom", "web", 9090));
}

#[test]
fn an_allowed_warning_leaves_the_policy_as_it_was() {
    let with = ir_of("@allow(W0203)\nbackend egress guarded\negress backend -> database\n");
    let without = ir_of("backend egress guarded\negress backend -> database\n");
    assert_eq!(codegen::network_policies(&with).len(), codegen::network_policies(&without).len());
    let inv = cluster(
        &[
            pod("default", "backend", &[("app", "backend")], "10.0.0.1"),
            pod("default", "database", &[("app", "database")], "10.0.0.2"),
        ],
        &[],
    );
    for ir in [&with, &without] {
        assert!(allowed(ir, &inv, "backend", "database", 5432));
        assert!(allowed(ir, &inv, "database", "backend", 8080), "the backend's ingress is open");
    }
    // Only the acknowledged code of that statement goes.
    let (_, out) = compile("@allow(W0203)\nbackend egress guarded\nbackend -> database\n");
    assert_eq!(codes(&out), ["W0205"]);
}

#[test]
fn a_one_sided_arrow_into_a_partly_guarded_target_lets_its_flow_into_the_guarded_pods() {
    // Found by tests/meaning.rs: `{app=web}` is guarded by an arrow, the one-sided arrow's
    // target `{tier}` overlaps it without being inside it. The web pods with a tier must get the
    // flow too ("where something else guards a target's ingress, the flow is added to that
    // ingress"); before, no guard covered the whole target and nothing was written.
    let text = "namespace a {\n  egress {app=client} -> {tier}:8000-8100\n  {app=admin} -> web\n}\n";
    let (_, out) = compile(text);
    assert!(out.ir.is_some(), "{:#?}", out.diagnostics);
    let ir = ir_of(text);
    let inv = cluster(
        &[
            pod("a", "client", &[("app", "client")], "10.0.0.1"),
            pod("a", "web-tier", &[("app", "web"), ("tier", "p")], "10.0.0.2"),
            pod("a", "web", &[("app", "web")], "10.0.0.3"),
            pod("a", "db-tier", &[("app", "db"), ("tier", "q")], "10.0.0.4"),
            pod("a", "admin", &[("app", "admin")], "10.0.0.5"),
        ],
        &[("a", &[])],
    );
    assert!(allowed(&ir, &inv, "client", "web-tier", 8000), "a guarded pod of the target");
    assert!(!allowed(&ir, &inv, "client", "web-tier", 80), "on the declared ports only");
    assert!(allowed(&ir, &inv, "client", "db-tier", 8000), "an open pod of the target");
    assert!(!allowed(&ir, &inv, "client", "web", 8000), "a guarded pod outside the target");
    assert!(allowed(&ir, &inv, "admin", "web-tier", 80), "the arrow that guards it still holds");
}

#[test]
fn a_rule_on_the_pods_a_guard_shares_with_an_arrow_never_opens_isolated_pods() {
    // The egress rule for `web -> db` goes on a policy selecting the pods `web` shares with the
    // canary guard, `{app=web, tier=canary}`: exactly the isolated hermit's pods. Writing it
    // would let the hermit out; it is refused (E0301) as a rule on the source's own policy is.
    let text = "workload hermit = {app=web, tier=canary}\nhermit isolated\n{tier=canary} egress guarded\n\
                {tier=canary} -> dns\nweb -> db:5432\n";
    let (_, out) = compile(text);
    assert!(codes(&out).contains(&"E0301"), "{:#?}", out.diagnostics);
    // Likewise an ingress rule of a one-sided arrow on pods an ingress guard shares with it.
    let text = "workload hermit = {app=web, tier=canary}\nhermit isolated\n{tier=canary} ingress guarded\n\
                egress client -> web:80\nclient egress guarded\nclient -> dns\n";
    let (_, out) = compile(text);
    assert!(codes(&out).contains(&"E0301"), "{:#?}", out.diagnostics);
}

#[test]
fn guarded_pods_of_a_label_chosen_source_are_warned_about_and_the_suggested_arrow_carries_the_flow() {
    // Issue 9: `{team=shop}/* -> api` means every pod of the namespaces labelled team=shop may
    // reach api; shop's own `default deny egress` drops it, and NetworkPolicy cannot write an
    // egress rule that depends on shop's labels. W0207 says so, and its help line carries it.
    let text = "namespace shop {\n  default deny egress\n  * -> dns\n}\nnamespace web {\n  {team=shop}/* -> api:80\n}\n";
    let (_, out) = compile(text);
    assert_eq!(codes(&out), ["W0207"]);
    let help = out.diagnostics[0].help.clone().unwrap_or_default();
    assert!(help.contains("`egress shop/* -> api:80`"), "{help}");
    let inv = cluster(
        &[
            pod("shop", "cart", &[("app", "cart")], "10.0.0.1"),
            pod("web", "api", &[("app", "api")], "10.0.1.1"),
        ],
        &[("shop", &[("team", "shop")]), ("web", &[])],
    );
    assert!(!allowed(&out.ir.expect("a warning only"), &inv, "cart", "api", 80), "dropped, as warned");
    let fixed =
        text.replace("  {team=shop}/* -> api:80\n", "  {team=shop}/* -> api:80\n  egress shop/* -> api:80\n");
    let (_, out) = compile(&fixed);
    assert!(codes(&out).is_empty(), "{:#?}", out.diagnostics);
    let ir = out.ir.expect("compiles");
    assert!(allowed(&ir, &inv, "cart", "api", 80));
    assert!(!allowed(&ir, &inv, "cart", "api", 443), "on the arrow's port only");
    // A selector that rules the guarded namespace out by name, or pods that cannot overlap the
    // guarded ones, warn about nothing.
    for quiet in [
        "namespace shop {\n  default deny egress\n  * -> dns\n}\nnamespace web {\n  {kubernetes.io/metadata.name=other}/* -> api:80\n}\n",
        "namespace shop {\n  db egress guarded\n  db -> dns\n}\nnamespace web {\n  */{app=prom} -> api:80\n}\n",
    ] {
        let (_, out) = compile(quiet);
        assert!(codes(&out).is_empty(), "{quiet}: {:#?}", out.diagnostics);
    }
}

#[test]
fn a_source_declared_egress_open_still_gives_its_guarded_pods_the_flow() {
    // Found by tests/meaning.rs: `api egress open` opens api's own door, but `{tier=canary}
    // egress guarded` guards the canary api pods; an arrow from api is for all of its pods, so
    // the canary ones get the rule (on the pods they share with api). Before, an open source
    // wrote nothing at all and the canary pods could not send.
    let text = "api egress open\n{tier=canary} egress guarded\n{tier=canary} -> dns\napi -> db:5432\n";
    let (_, out) = compile(text);
    assert!(out.ir.is_some(), "{:#?}", out.diagnostics);
    let ir = ir_of(text);
    let inv = cluster(
        &[
            pod("default", "api", &[("app", "api")], "10.0.0.1"),
            pod("default", "api-canary", &[("app", "api"), ("tier", "canary")], "10.0.0.2"),
            pod("default", "db", &[("app", "db")], "10.0.0.3"),
            pod("default", "other-canary", &[("app", "other"), ("tier", "canary")], "10.0.0.4"),
        ],
        &[],
    );
    assert!(allowed(&ir, &inv, "api", "db", 5432));
    assert!(allowed(&ir, &inv, "api-canary", "db", 5432), "a guarded pod of the source");
    assert!(!allowed(&ir, &inv, "api-canary", "db", 80), "on the arrow's port only");
    assert!(!allowed(&ir, &inv, "other-canary", "db", 5432), "a guarded pod outside the source");
}
