//! Overlapping selectors (DESIGN.md semantic corner 15): whatever one statement says about a set
//! of pods holds for every pod in it, whatever other statements say about overlapping sets. Each
//! case is checked by evaluating the compiled IR on pods that sit in both sets, and each failed on
//! the code before the prover was used by the door model (issue 9, items 1, 2 and 5).
//!
//! To add a case: write the program, the pods that sit where the selectors overlap (`pod`), and
//! assert the verdicts the language reference promises for them.

mod common;

use std::collections::BTreeMap;

use common::{codes, compile};
use netc_ir::eval::{Endpoint, Evaluator, Flow};
use netc_ir::{Inventory, Ir, Pod, Protocol};

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

fn allowed(ir: &Ir, pods: &[Pod], from: &str, to: &str, protocol: Protocol, port: u16) -> bool {
    let inventory = Inventory { pods: pods.to_vec(), ..Inventory::default() };
    let find = |name: &str| inventory.pods.iter().find(|p| p.name == name).expect("a pod of the case");
    let (src, dst) = (Endpoint::Pod(find(from)), Endpoint::Pod(find(to)));
    let flow = Flow::new(src, dst, protocol, port);
    Evaluator::new(ir, &inventory).evaluate(&flow).allowed
}

#[test]
fn an_arrow_into_a_selector_that_includes_an_isolated_workload_is_refused() {
    // Issue 9, item 1: `bookstore` includes the isolated `api` pods; the ingress rule on
    // `bookstore` would let frontend into them.
    let (_, out) =
        compile("workload api = {app=bookstore, role=api}\napi isolated\nfrontend -> bookstore:80\n");
    assert_eq!(codes(&out), ["E0301"], "{:#?}", out.diagnostics);
    // A selector that cannot hold an `api` pod is fine.
    let ir = ir_of(
        "workload api = {app=bookstore, role=api}\napi isolated\nfrontend -> {app=bookstore, role!=api}:80\n",
    );
    let pods = [
        pod("default", "fe", &[("app", "frontend")], "10.0.0.1"),
        pod("default", "api", &[("app", "bookstore"), ("role", "api")], "10.0.0.2"),
        pod("default", "web", &[("app", "bookstore"), ("role", "web")], "10.0.0.3"),
    ];
    assert!(!allowed(&ir, &pods, "fe", "api", Protocol::Tcp, 80));
    assert!(allowed(&ir, &pods, "fe", "web", Protocol::Tcp, 80));
}

#[test]
fn an_egress_rule_on_pods_that_include_an_isolated_workload_is_refused() {
    // `* -> dns` under `default deny egress` is written on the policy of every pod, hermit's too.
    let (_, out) = compile("default deny egress\nhermit isolated\n* -> dns\n");
    assert_eq!(codes(&out), ["E0301"], "{:#?}", out.diagnostics);
}

#[test]
fn isolated_pods_among_the_sources_of_an_arrow_stay_isolated() {
    // The arrow's ingress rule names every pod of every namespace, but hermit's own egress door
    // stays shut: the arrow speaks for the other pods (docs/language.md, "Doors").
    let ir = ir_of("hermit isolated\n*/* -> db:5432\n");
    let pods = [
        pod("default", "hermit", &[("app", "hermit")], "10.0.0.1"),
        pod("default", "web", &[("app", "web")], "10.0.0.2"),
        pod("default", "db", &[("app", "db")], "10.0.0.3"),
    ];
    assert!(!allowed(&ir, &pods, "hermit", "db", Protocol::Tcp, 5432));
    assert!(allowed(&ir, &pods, "web", "db", Protocol::Tcp, 5432));
}

#[test]
fn a_guarded_subset_of_an_arrow_source_gets_the_flow() {
    // Issue 9, item 2: the api pods are bookstore pods; `bookstore -> db` is for them too.
    let ir = ir_of(
        "workload api = {app=bookstore, role=api}\napi egress guarded\napi -> dns\nbookstore -> db:5432\n",
    );
    let pods = [
        pod("default", "api", &[("app", "bookstore"), ("role", "api")], "10.0.0.1"),
        pod("default", "shelf", &[("app", "bookstore")], "10.0.0.2"),
        pod("default", "db", &[("app", "db")], "10.0.0.3"),
    ];
    assert!(allowed(&ir, &pods, "api", "db", Protocol::Tcp, 5432));
    assert!(allowed(&ir, &pods, "shelf", "db", Protocol::Tcp, 5432));
    // Only that flow: the guard still holds for everything else.
    assert!(!allowed(&ir, &pods, "api", "db", Protocol::Tcp, 5433));
    assert!(!allowed(&ir, &pods, "api", "shelf", Protocol::Tcp, 5432));
}

#[test]
fn an_overlapping_guard_gets_the_flow_for_the_pods_it_shares_with_the_source() {
    // Neither selector contains the other: the rule goes on a policy selecting exactly both.
    let ir = ir_of("workload canary = {tier=canary}\ncanary egress guarded\ncanary -> dns\nweb -> db:5432\n");
    let pods = [
        pod("default", "web-canary", &[("app", "web"), ("tier", "canary")], "10.0.0.1"),
        pod("default", "other-canary", &[("app", "other"), ("tier", "canary")], "10.0.0.2"),
        pod("default", "db", &[("app", "db")], "10.0.0.3"),
    ];
    assert!(allowed(&ir, &pods, "web-canary", "db", Protocol::Tcp, 5432));
    assert!(!allowed(&ir, &pods, "other-canary", "db", Protocol::Tcp, 5432));
    let shared: Vec<_> =
        ir.policies.iter().filter(|p| p.egress.is_guarded() && p.workload != "canary").collect();
    assert_eq!(shared.len(), 1, "one policy for the shared pods: {shared:#?}");
    assert_eq!(shared[0].selector.to_string(), "app=web, tier=canary");
}

#[test]
fn a_guard_that_covers_the_source_through_a_set_operator_gets_the_rule() {
    // `app in (a, b)` covers `app=a`: before, only a literal copy of the requirement counted,
    // and the arrow was reported as having no effect while the pods could not reach db.
    // (`db ingress guarded` says that the arrow guarding db is meant: no W0205.)
    let text = "workload ab = {app in (a, b)}\nab egress guarded\nab -> dns\ndb ingress guarded\n{app=a} -> db:5432\n";
    let (_, out) = compile(text);
    assert!(codes(&out).is_empty(), "{:#?}", out.diagnostics);
    let ir = ir_of(text);
    let pods = [
        pod("default", "a", &[("app", "a")], "10.0.0.1"),
        pod("default", "b", &[("app", "b")], "10.0.0.2"),
        pod("default", "db", &[("app", "db")], "10.0.0.3"),
    ];
    assert!(allowed(&ir, &pods, "a", "db", Protocol::Tcp, 5432));
    assert!(!allowed(&ir, &pods, "b", "db", Protocol::Tcp, 5432));
}

#[test]
fn a_rule_covered_by_another_of_its_door_is_not_written_and_is_warned_about() {
    // Issue 9, item 5 (Online Boutique's frontend): the allow-all makes the 8080 rule redundant.
    let text = "anywhere -> frontend\nloadgenerator -> frontend:8080\n";
    let (_, out) = compile(text);
    assert_eq!(codes(&out), ["W0206"], "{:#?}", out.diagnostics);
    let ir = out.ir.expect("a warning");
    let frontend = ir.policies.iter().find(|p| p.workload == "frontend").expect("frontend's policy");
    assert_eq!(frontend.ingress.rules.len(), 1);
    assert!(frontend.ingress.rules[0].peers.is_empty() && frontend.ingress.rules[0].ports.is_empty());
    // Ranges and lists cover by their union; a different protocol or a named port does not.
    let (_, out) = compile(
        "web -> api:[8000-8080, 8081-9000]\nweb -> api:8080-8090\nweb -> api:8080/udp\nweb -> api:http\n",
    );
    assert_eq!(codes(&out), ["W0206"], "{:#?}", out.diagnostics);
    let (_, out) = compile("*/* -> api:80\n{team=x}/{app=web} -> api:80\nshop/web -> api:[80, 81]\n");
    assert_eq!(codes(&out), ["W0206"], "{:#?}", out.diagnostics);
}
