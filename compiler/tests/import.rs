//! `netc import`: snapshots of the source it writes, and a differential property test that the
//! source means exactly what the NetworkPolicy objects meant.
//!
//! The property test makes random NetworkPolicy sets (random selectors over a small label
//! alphabet, `policyTypes` given or missing, rules with `{}`, empty and missing lists, pod,
//! namespace and combined peers, ipBlocks with `except`, ports with ranges, names, UDP and SCTP)
//! and random clusters, imports, compiles, and judges every flow between pods and external
//! addresses on several ports and all protocols twice: the original objects with the independent
//! NetworkPolicy evaluator, the compiled IR with the IR evaluator. Both doors must agree.
//!
//! To add a case: a snapshot test is one call to `snapshot(name, yaml)`; widen a strategy below for
//! the property test. A failure prints the YAML, the imported source and the first differing flow.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netc::analysis::k8s_eval::K8sEvaluator;
use netc::import::{Construct, ImportError, import};
use netc::{SourceFile, yaml};
use netc_ir::eval::{Endpoint, Evaluator, Family, Flow};
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{ExternalAddress, Inventory, NamedPort, Namespace, Pod, Protocol};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn parse(yaml_text: &str) -> Vec<NetworkPolicy> {
    yaml::parse_network_policies(yaml_text).expect("test YAML parses")
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/article/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Import, and check what every import must be: formatted, compiling without errors.
fn imported(policies: &[NetworkPolicy]) -> String {
    let source = import(policies).unwrap_or_else(|e| panic!("imports: {e}"));
    assert_eq!(netc::fmt::format(&source).expect("parses"), source, "formatted");
    let out = netc::compile(&[SourceFile::new("imported.np", source.as_str())]);
    assert!(!out.has_errors(), "compiles: {:?}", out.diagnostics);
    source
}

/// The input YAML, the source written, and the warnings netc gives on it, for a snapshot.
fn snapshot(name: &str, yaml_text: &str) {
    let policies = parse(yaml_text);
    let source = imported(&policies);
    let sources = vec![SourceFile::new("imported.np", source.as_str())];
    let out = netc::compile(&sources);
    let inventory = netc::analysis::synth::synthesize(&[out.ir.as_ref().expect("compiles")]);
    assert_same_meaning(&policies, &source, &inventory).unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "--- networkpolicy\n{}\n--- netc\n{source}--- diagnostics\n{}",
        yaml_text.trim_end(),
        netc::diagnostics::render(&out.diagnostics, &sources, false)
    );
    common::snapshot_settings().bind(|| insta::assert_snapshot!(name, text));
}

const PORTS: [u16; 7] = [53, 80, 85, 443, 5432, 8080, 9999];

/// Every flow between the cluster's endpoints on every port of [`PORTS`] and every protocol: the
/// original objects (NetworkPolicy evaluator) and the imported source (IR evaluator) agree at both
/// doors. The first difference is the error.
fn assert_same_meaning(
    policies: &[NetworkPolicy],
    source: &str,
    inventory: &Inventory,
) -> Result<(), String> {
    let out = netc::compile(&[SourceFile::new("imported.np", source)]);
    let ir = out.ir.ok_or_else(|| format!("does not compile: {:?}", out.diagnostics))?;
    let k8s = K8sEvaluator::new(policies, inventory).map_err(|e| e.to_string())?;
    let reference = Evaluator::new(&ir, inventory);
    let ends: Vec<Endpoint<'_>> = inventory
        .pods
        .iter()
        .map(Endpoint::Pod)
        .chain(inventory.externals.iter().map(|e| Endpoint::External(e.address)))
        .collect();
    for &src in &ends {
        for &dst in &ends {
            for protocol in Protocol::ALL {
                for port in PORTS {
                    let flow = Flow::new(src, dst, protocol, port);
                    let want = k8s.evaluate(&flow);
                    let got = reference.evaluate(&flow);
                    if want.egress.permits() != got.egress.permits()
                        || want.ingress.permits() != got.ingress.permits()
                        || want.allowed != got.allowed
                    {
                        return Err(format!(
                            "{src} -> {dst} {protocol}/{port}:\n  NetworkPolicy: {want:?}\n  imported:      {got:?}\n--- imported\n{source}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn import_article_allow_frontend() {
    snapshot("import_article_allow_frontend", &fixture("allow-frontend"));
}

#[test]
fn import_article_restrict_egress() {
    snapshot("import_article_restrict_egress", &fixture("restrict-egress"));
}

#[test]
fn import_article_complete_isolation() {
    snapshot("import_article_complete_isolation", &fixture("complete-isolation"));
}

#[test]
fn import_article_allow_monitoring() {
    snapshot("import_article_allow_monitoring", &fixture("allow-monitoring"));
}

/// One of everything: default deny with DNS, paired arrows, a one-sided flow, named ports,
/// namespace AND pod peers, ipBlocks with `except` (IPv4 and IPv6), ranges, SCTP, a List,
/// `ingress: [{}]`, `egress: []`, missing namespace and policyTypes, matchExpressions, a policy in
/// `default` paired with one in `shop`, a redundant policy and one that selects nothing.
#[test]
fn import_tricky_mixed_set() {
    let yaml =
        std::fs::read_to_string(format!("{}/tests/fixtures/import/tricky.yaml", env!("CARGO_MANIFEST_DIR")))
            .expect("fixture");
    snapshot("import_tricky_mixed_set", &yaml);
}

/// Names: a selector used twice is declared (`role-db`, since the bare name `db` means
/// `app=db` there), a declared workload of an earlier block is named from a later one
/// (`shop/role-db`) but not from an earlier one, values that are not names (`dns`, `web.v2`) stay
/// selectors, and a flow one side does not allow is written one-sided.
#[test]
fn import_names_and_namespaces() {
    let yaml =
        std::fs::read_to_string(format!("{}/tests/fixtures/import/names.yaml", env!("CARGO_MANIFEST_DIR")))
            .expect("fixture");
    snapshot("import_names_and_namespaces", &yaml);
}

#[test]
fn import_article_four_policies_together() {
    let all: Vec<String> = ["allow-frontend", "restrict-egress", "complete-isolation", "allow-monitoring"]
        .iter()
        .map(|n| fixture(n))
        .collect();
    snapshot("import_article_four_policies_together", &all.join("---\n"));
}

// ---------------------------------------------------------------------------------------------
// Property test
// ---------------------------------------------------------------------------------------------

/// Pods live in these; `open` is a keyword, so netc cannot name it (policies never live there).
const NAMESPACES: [&str; 5] = ["default", "ns1", "ns2", "kube-system", "open"];
const EXTERNALS: [&str; 5] = ["10.0.1.5", "192.0.2.1", "192.0.2.200", "fd00::9", "8.8.8.8"];

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["app", "app", "tier", "env", "example.com/team"])
}

/// Values that are names, and some that are not: a keyword, a dotted value, an empty one, one
/// starting with a digit (none of them can be written as a bare name).
fn value() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => prop::sample::select(vec!["a", "b", "web"]), 1 => prop::sample::select(vec!["dns", "web.v2", "", "1a"])]
}

fn label_selector() -> impl Strategy<Value = LabelSelector> {
    let labels =
        prop::collection::btree_map(key().prop_map(str::to_owned), value().prop_map(str::to_owned), 0..=2);
    // Expressions on distinct keys, and sometimes a `NotIn` beside an `Exists` on its key (netc
    // writes that pair as `key, key notin (...)`).
    let expressions = (
        prop::collection::btree_map(
            key(),
            (
                prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist"]),
                prop::collection::btree_set(value(), 1..=2),
            ),
            0..=2,
        ),
        prop::bool::weighted(0.3),
    );
    (labels, expressions).prop_map(|(labels, (expressions, exclude_too))| {
        let mut requirements: Vec<LabelSelectorRequirement> = Vec::new();
        for (key, (op, values)) in expressions {
            let values: Vec<String> = values.into_iter().map(str::to_owned).collect();
            if op == "Exists" && exclude_too {
                requirements.push(LabelSelectorRequirement {
                    key: key.to_owned(),
                    operator: "NotIn".to_owned(),
                    values: Some(values.clone()),
                });
            }
            requirements.push(LabelSelectorRequirement {
                key: key.to_owned(),
                operator: op.to_owned(),
                values: matches!(op, "In" | "NotIn").then_some(values),
            });
        }
        LabelSelector {
            match_labels: (!labels.is_empty()).then_some(labels),
            match_expressions: (!requirements.is_empty()).then_some(requirements),
        }
    })
}

fn namespace_selector() -> impl Strategy<Value = LabelSelector> {
    let by_name = |name: &str, expression: bool| {
        if expression {
            LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: NAMESPACE_NAME_LABEL.into(),
                    operator: "In".into(),
                    values: Some(vec![name.into()]),
                }]),
                ..LabelSelector::default()
            }
        } else {
            LabelSelector {
                match_labels: Some(BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned())])),
                ..LabelSelector::default()
            }
        }
    };
    prop_oneof![
        Just(LabelSelector::default()),
        (prop::sample::select(NAMESPACES.to_vec()), prop::bool::weighted(0.2))
            .prop_map(move |(n, e)| by_name(n, e)),
        prop::sample::select(vec!["x", "y"]).prop_map(|v| LabelSelector {
            match_labels: Some(BTreeMap::from([("env".to_owned(), v.to_owned())])),
            ..LabelSelector::default()
        }),
        label_selector(),
    ]
}

fn peer() -> impl Strategy<Value = NetworkPolicyPeer> {
    let blocks: Vec<(&str, Vec<&str>)> = vec![
        ("10.0.0.0/16", vec!["10.0.1.0/24", "10.0.0.0/24"]),
        ("10.0.1.0/24", vec!["10.0.1.0/28", "10.0.1.4/30"]),
        ("0.0.0.0/0", vec!["10.0.0.0/8", "192.0.2.0/24"]),
        ("fd00::/64", vec!["fd00::/120"]),
        ("192.0.2.0/24", vec![]),
        ("192.0.2.1/32", vec![]),
        ("10.0.2.7/16", vec![]),
    ];
    let block = prop::sample::select(blocks).prop_flat_map(|(cidr, excepts)| {
        let n = excepts.len();
        (Just(cidr), prop::sample::subsequence(excepts, 0..=n)).prop_map(|(cidr, except)| NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.into(),
                except: (!except.is_empty()).then(|| except.iter().map(|e| (*e).to_owned()).collect()),
            }),
            ..NetworkPolicyPeer::default()
        })
    });
    let pods = (prop::option::of(namespace_selector()), prop::option::of(label_selector()))
        .prop_filter("a pod peer names namespaces or pods", |(n, p)| n.is_some() || p.is_some())
        .prop_map(|(namespace_selector, pod_selector)| NetworkPolicyPeer {
            namespace_selector,
            pod_selector,
            ..NetworkPolicyPeer::default()
        });
    prop_oneof![4 => pods, 1 => block]
}

fn port() -> impl Strategy<Value = NetworkPolicyPort> {
    let protocol = prop::sample::select(vec![None, Some("TCP"), Some("UDP"), Some("SCTP")]);
    let value = prop_oneof![
        Just((None, None)),
        prop::sample::select(vec![53, 80, 443, 8080]).prop_map(|p| (Some(IntOrString::Int(p)), None)),
        prop::sample::select(vec![(80, 90), (8000, 8080), (53, 53), (1, 443)])
            .prop_map(|(a, b)| (Some(IntOrString::Int(a)), Some(b))),
        prop::sample::select(vec!["http", "dns", "metrics"])
            .prop_map(|n| (Some(IntOrString::String(n.into())), None)),
    ];
    (protocol, value).prop_map(|(protocol, (port, end_port))| NetworkPolicyPort {
        protocol: protocol.map(str::to_owned),
        port,
        end_port,
    })
}

/// `None` (missing), `Some([])` or a few entries.
fn list<T: std::fmt::Debug + Clone>(
    item: impl Strategy<Value = T>,
    max: usize,
) -> impl Strategy<Value = Option<Vec<T>>> {
    prop_oneof![1 => Just(None), 1 => Just(Some(Vec::new())), 3 => prop::collection::vec(item, 1..=max).prop_map(Some)]
}

type RuleParts = (Option<Vec<NetworkPolicyPeer>>, Option<Vec<NetworkPolicyPort>>);

/// The cluster DNS: kube-dns pods in kube-system, UDP and TCP 53 (both, or one of them).
fn dns_rule() -> impl Strategy<Value = RuleParts> {
    prop::sample::subsequence(vec!["UDP", "TCP"], 1..=2).prop_map(|protocols| {
        let peer = NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_owned(),
                    "kube-system".to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        };
        let ports = protocols
            .into_iter()
            .map(|p| NetworkPolicyPort {
                protocol: Some(p.to_owned()),
                port: Some(IntOrString::Int(53)),
                end_port: None,
            })
            .collect();
        (Some(vec![peer]), Some(ports))
    })
}

fn rules() -> impl Strategy<Value = Option<Vec<RuleParts>>> {
    list(prop_oneof![6 => (list(peer(), 3), list(port(), 2)), 1 => dns_rule()], 3)
}

fn policy_types() -> impl Strategy<Value = Option<Vec<String>>> {
    prop::sample::select(vec![
        None,
        Some(vec![]),
        Some(vec!["Ingress"]),
        Some(vec!["Egress"]),
        Some(vec!["Ingress", "Egress"]),
        Some(vec!["Egress", "Ingress"]),
    ])
    .prop_map(|t| t.map(|t| t.into_iter().map(str::to_owned).collect()))
}

fn policies() -> impl Strategy<Value = Vec<NetworkPolicy>> {
    let policy = (
        prop::sample::select(vec!["default", "default", "ns1", "ns1", "ns2", "ns2", "kube-system"]),
        prop::option::weighted(0.9, label_selector()),
        policy_types(),
        rules(),
        rules(),
        prop::bool::weighted(0.1),
    );
    prop::collection::vec(policy, 1..=5).prop_map(|ps| {
        ps.into_iter()
            .enumerate()
            .map(|(i, (ns, pod_selector, policy_types, ingress, egress, namespace_missing))| NetworkPolicy {
                metadata: ObjectMeta {
                    name: Some(format!("p{i}")),
                    namespace: (!(namespace_missing && ns == "default")).then(|| ns.to_owned()),
                    ..ObjectMeta::default()
                },
                spec: Some(NetworkPolicySpec {
                    pod_selector,
                    policy_types,
                    ingress: ingress.map(|rs| {
                        rs.into_iter().map(|(from, ports)| NetworkPolicyIngressRule { from, ports }).collect()
                    }),
                    egress: egress.map(|rs| {
                        rs.into_iter().map(|(to, ports)| NetworkPolicyEgressRule { to, ports }).collect()
                    }),
                }),
            })
            .collect()
    })
}

fn cluster() -> impl Strategy<Value = Inventory> {
    let labels =
        prop::collection::btree_map(key().prop_map(str::to_owned), value().prop_map(str::to_owned), 0..=3);
    let named = prop::sample::subsequence(
        vec![
            NamedPort { name: "dns".into(), port: 53, protocol: Protocol::Udp },
            NamedPort { name: "http".into(), port: 80, protocol: Protocol::Tcp },
            NamedPort { name: "http".into(), port: 8080, protocol: Protocol::Sctp },
            NamedPort { name: "metrics".into(), port: 9999, protocol: Protocol::Tcp },
        ],
        0..=2,
    );
    let pod = (0usize..5, labels, named, prop::bool::weighted(0.05), prop::bool::weighted(0.3));
    (
        prop::sample::select(vec!["x", "y"]),
        prop::sample::select(vec!["x", "y"]),
        prop::collection::vec(pod, 2..=7),
    )
        .prop_map(|(env1, env2, pods)| {
            let ns = |name: &str, env: Option<&str>| Namespace {
                name: name.into(),
                labels: std::iter::once((NAMESPACE_NAME_LABEL.to_owned(), name.to_owned()))
                    .chain(env.map(|e| ("env".to_owned(), e.to_owned())))
                    .collect(),
            };
            let mut pods: Vec<Pod> = pods
                .into_iter()
                .enumerate()
                .map(|(i, (n, labels, ports, host_network, dual))| {
                    // Addresses inside and outside the ipBlocks and their excepts.
                    let mut ips: Vec<IpAddr> = vec![format!("10.0.{n}.{}", i * 3 + 1).parse().expect("v4")];
                    if dual {
                        ips.push(format!("fd00::{:x}", i * 300 + 1).parse().expect("v6"));
                    }
                    Pod {
                        namespace: NAMESPACES[n].to_owned(),
                        name: format!("pod{i}"),
                        labels,
                        ips,
                        ports,
                        node: None,
                        host_interface: None,
                        host_network,
                    }
                })
                .collect();
            // The cluster DNS, for the `dns` peers.
            pods.push(Pod {
                namespace: "kube-system".into(),
                name: "coredns".into(),
                labels: BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
                ips: vec!["10.0.3.200".parse().expect("v4")],
                ports: vec![NamedPort { name: "dns".into(), port: 53, protocol: Protocol::Udp }],
                node: None,
                host_interface: None,
                host_network: false,
            });
            pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            Inventory {
                namespaces: vec![
                    ns("default", None),
                    ns("kube-system", None),
                    ns("ns1", Some(env1)),
                    ns("ns2", Some(env2)),
                    ns("open", Some("x")),
                ],
                pods,
                externals: EXTERNALS
                    .iter()
                    .enumerate()
                    .map(|(i, a)| ExternalAddress {
                        name: format!("ext{i}"),
                        address: a.parse().expect("ip"),
                    })
                    .collect(),
                implied_namespaces: Vec::new(),
                services: Vec::new(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// import, then compile, then evaluate: every flow gets the verdict the original objects give
    /// it, door by door.
    #[test]
    fn imported_source_means_what_the_networkpolicies_mean(policies in policies(), inventory in cluster()) {
        let source = import(&policies).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(import(&policies).ok(), Some(source.clone()), "deterministic");
        prop_assert_eq!(netc::fmt::format(&source).expect("parses"), source.clone(), "formatted");
        let result = assert_same_meaning(&policies, &source, &inventory);
        prop_assert!(result.is_ok(), "{}\n--- policies\n{}", result.unwrap_err(), yaml::render_stream(&policies, &[]));
    }
}

/// `netc import --emit ir` (what netcd enforces for a cluster's own objects): every flow gets the
/// verdict the objects give it, door by door, and an allowed door names exactly the rules the
/// NetworkPolicy evaluator names, as `namespace/name:direction[index]`.
fn assert_lowered_ir_means(policies: &[NetworkPolicy], inventory: &Inventory) -> Result<usize, String> {
    use netc::analysis::k8s_eval::K8sDoorVerdict;
    use netc_ir::eval::DoorVerdict;
    let ir = netc::import::to_ir(policies, &[]).map_err(|e| e.to_string())?;
    let k8s = K8sEvaluator::new(policies, inventory).map_err(|e| e.to_string())?;
    let reference = Evaluator::new(&ir, inventory);
    let k8s_rules = |door: &K8sDoorVerdict| -> Vec<String> {
        let K8sDoorVerdict::Allowed { rules } = door else { return Vec::new() };
        let mut out: Vec<String> = rules
            .iter()
            .map(|r| {
                let m = &policies[r.policy].metadata;
                let ns = m.namespace.as_deref().unwrap_or("default");
                format!("{ns}/{}:{}[{}]", m.name.as_deref().unwrap_or(""), r.direction, r.rule)
            })
            .collect();
        out.sort();
        out
    };
    let ir_rules = |door: &DoorVerdict| -> Vec<String> {
        let DoorVerdict::Allowed { rules } = door else { return Vec::new() };
        let mut out: Vec<String> =
            rules.iter().filter_map(|r| r.resolve(&ir)).map(|(_, rule)| rule.id.clone()).collect();
        out.sort();
        out
    };
    let ends: Vec<Endpoint<'_>> = inventory
        .pods
        .iter()
        .map(Endpoint::Pod)
        .chain(inventory.externals.iter().map(|e| Endpoint::External(e.address)))
        .collect();
    let mut named = 0;
    for &src in &ends {
        for &dst in &ends {
            for protocol in Protocol::ALL {
                for port in PORTS {
                    let flow = Flow::new(src, dst, protocol, port);
                    let want = k8s.evaluate(&flow);
                    let got = reference.evaluate(&flow);
                    let same_rules = k8s_rules(&want.egress) == ir_rules(&got.egress)
                        && k8s_rules(&want.ingress) == ir_rules(&got.ingress);
                    named += k8s_rules(&want.ingress).len() + k8s_rules(&want.egress).len();
                    if want.egress.permits() != got.egress.permits()
                        || want.ingress.permits() != got.ingress.permits()
                        || want.allowed != got.allowed
                        || !same_rules
                    {
                        return Err(format!(
                            "{src} -> {dst} {protocol}/{port}:\n  NetworkPolicy: {want:?}\n  lowered IR:    {got:?}\n--- IR\n{}",
                            ir.to_json()
                        ));
                    }
                }
            }
        }
    }
    Ok(named)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The objects lowered one to one to IR mean what they mean, and name the same rules.
    #[test]
    fn lowered_ir_means_what_the_networkpolicies_mean(policies in policies(), inventory in cluster()) {
        let mut names: Vec<_> = policies.iter().map(|p| (p.metadata.namespace.clone(), p.metadata.name.clone())).collect();
        names.sort();
        names.dedup();
        prop_assume!(names.len() == policies.len(), "two objects with one name are refused (tested below)");
        let result = assert_lowered_ir_means(&policies, &inventory);
        prop_assert!(result.is_ok(), "{}\n--- policies\n{}", result.unwrap_err(), yaml::render_stream(&policies, &[]));
    }
}

/// The article's four objects together, and the larger mixed set of the fixtures, as netcd would
/// enforce them: the same verdicts and rules as the objects (the seed tests compare them with
/// the netc-compiled intent too).
#[test]
fn lowered_ir_of_the_fixture_sets_means_what_they_mean() {
    let article: Vec<String> =
        ["allow-frontend", "restrict-egress", "complete-isolation", "allow-monitoring"]
            .iter()
            .map(|n| fixture(n))
            .collect();
    let read = |f: &str| {
        std::fs::read_to_string(format!("{}/tests/fixtures/import/{f}", env!("CARGO_MANIFEST_DIR")))
            .expect("fixture")
    };
    for (name, text) in [
        ("the article's four", article.join("---\n")),
        ("tricky", read("tricky.yaml")),
        ("names", read("names.yaml")),
    ] {
        let policies = parse(&text);
        let inventory =
            netc::analysis::synth::synthesize(&[&netc::import::to_ir(&policies, &[]).expect("lowers")]);
        let named = assert_lowered_ir_means(&policies, &inventory).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(named > 0, "{name}: some flows are allowed by a named rule");
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const HEAD: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: shop}\n";

#[test]
fn exists_and_notin_on_one_key_is_imported_and_means_the_same() {
    // The label must be there, with another value than `web`: neither `tier` nor
    // `tier notin (web)` alone says it (the latter also takes pods without the label).
    let policies = parse(&format!(
        "{HEAD}spec:\n  podSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  - from:\n    - podSelector:\n        matchExpressions:\n        - {{key: tier, operator: Exists}}\n        - {{key: tier, operator: NotIn, values: [web]}}\n"
    ));
    let source = imported(&policies);
    assert!(source.contains("tier notin (web), tier"), "{source}");
    let pod = |name: &str, labels: &[(&str, &str)], ip: &str| Pod {
        namespace: "shop".into(),
        name: name.into(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ips: vec![ip.parse().expect("ip")],
        ports: vec![],
        node: None,
        host_interface: None,
        host_network: false,
    };
    let inventory = Inventory {
        namespaces: vec![Namespace {
            name: "shop".into(),
            labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), "shop".to_owned())]),
        }],
        pods: vec![
            pod("db", &[("app", "db")], "10.0.0.1"),
            pod("web", &[("tier", "web")], "10.0.0.2"),
            pod("api", &[("tier", "api")], "10.0.0.3"),
            pod("bare", &[], "10.0.0.4"),
        ],
        ..Inventory::default()
    };
    assert_same_meaning(&policies, &source, &inventory).unwrap_or_else(|e| panic!("{e}"));
    // And the meaning is the one asked for: only `api` (tier present, not web) reaches db.
    let out = netc::compile(&[SourceFile::new("imported.np", source.as_str())]);
    let ir = out.ir.expect("compiles");
    let eval = Evaluator::new(&ir, &inventory);
    let reaches = |from: usize| {
        eval.evaluate(&Flow {
            src: Endpoint::Pod(&inventory.pods[from]),
            dst: Endpoint::Pod(&inventory.pods[0]),
            protocol: Protocol::Tcp,
            port: 80,
            family: Family::V4,
        })
        .allowed
    };
    assert_eq!([reaches(1), reaches(2), reaches(3)], [false, true, false]);
}

#[test]
fn a_policy_in_a_namespace_netc_cannot_name_is_refused() {
    let policies = parse(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ingress}\nspec:\n  podSelector: {}\n",
    );
    let err = import(&policies).expect_err("inexpressible");
    assert_eq!(
        err,
        ImportError::Inexpressible {
            policy: "ingress/p".into(),
            field: "metadata.namespace".into(),
            construct: Construct::NamespaceName { namespace: "ingress".into() },
        }
    );
    // Named from elsewhere it is fine: pods of a namespace chosen by its name label.
    let policies = parse(&format!(
        "{HEAD}spec:\n  podSelector: {{}}\n  ingress:\n  - from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: ingress}}}}}}]\n"
    ));
    assert_eq!(
        imported(&policies),
        "namespace shop {\n  ## from NetworkPolicy shop/p\n  {kubernetes.io/metadata.name=ingress}/* -> *\n}\n"
    );
}

#[test]
fn objects_the_api_server_would_refuse_are_errors_naming_policy_and_field() {
    let refused = |spec: &str| match import(&parse(&format!("{HEAD}spec:\n{spec}"))) {
        Err(ImportError::Invalid { policy, field, problem }) => (policy, field, problem),
        other => panic!("refused: {other:?}"),
    };
    let (policy, field, problem) =
        refused("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]\n");
    assert_eq!((policy.as_str(), field.as_str()), ("shop/p", "spec.ingress[0].from[0].ipBlock.except[0]"));
    assert!(problem.contains("not strictly inside"), "{problem}");
    assert_eq!(
        refused("  egress: [{to: [{ipBlock: {cidr: 10.0.0.1}}]}]\n").1,
        "spec.egress[0].to[0].ipBlock.cidr"
    );
    assert_eq!(
        refused("  egress: [{ports: [{port: http, endPort: 90}]}]\n").1,
        "spec.egress[0].ports[0].endPort"
    );
    assert_eq!(refused("  egress: [{ports: [{protocol: ICMP}]}]\n").1, "spec.egress[0].ports[0].protocol");
    assert_eq!(refused("  egress: [{ports: [{port: 0}]}]\n").1, "spec.egress[0].ports[0].port");
    assert_eq!(refused("  egress: [{ports: [{port: Not_A_Name}]}]\n").1, "spec.egress[0].ports[0].port");
    assert_eq!(refused("  ingress: [{from: [{}]}]\n").1, "spec.ingress[0].from[0]");
    assert_eq!(
        refused("  podSelector: {matchExpressions: [{key: a, operator: Maybe}]}\n").1,
        "spec.podSelector.matchExpressions[0]"
    );
    assert_eq!(
        refused("  podSelector: {matchExpressions: [{key: a, operator: In}]}\n").1,
        "spec.podSelector.matchExpressions[0]"
    );
    assert_eq!(refused("  podSelector: {matchLabels: {a: -x}}\n").1, "spec.podSelector.matchLabels.a");
    assert_eq!(refused("  policyTypes: [Sideways]\n").1, "spec.policyTypes[0]");
}

/// What Kubernetes defaults, import writes out: no `spec` guards every pod's ingress; missing
/// `policyTypes` with egress rules guards egress too; `egress: []` does not; host bits of a CIDR
/// are dropped; a range of one port is that port; a selector that matches nothing drops its peer
/// (and the rule it was alone in), not the door.
#[test]
fn defaults_are_written_out() {
    let policies = parse(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: bare}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: shop}\n\
         spec:\n  podSelector: {matchLabels: {app: api}}\n  \
         egress: [{to: [{ipBlock: {cidr: 10.1.2.3/16}}], ports: [{port: 443, endPort: 443}]}]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: empty, namespace: shop}\n\
         spec:\n  podSelector: {matchLabels: {app: web}}\n  egress: []\n  \
         ingress: [{from: [{podSelector: {matchLabels: {a: b}, matchExpressions: [{key: a, operator: In, values: [c]}]}}]}]\n",
    );
    assert_eq!(
        imported(&policies),
        "## from NetworkPolicy default/bare\n\
         default deny ingress\n\
         \n\
         namespace shop {\n  \
           ## from NetworkPolicy shop/out\n  \
           api guarded\n  \
           api -> 10.1.0.0/16:443\n\
         \n  \
           ## from NetworkPolicy shop/empty\n  \
           web ingress guarded\n\
         }\n"
    );
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

fn netc(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("writes stdin");
    let out = child.wait_with_output().expect("netc ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn netc_import_reads_stdin_and_files_verifies_and_writes_atomically() {
    let all = ["allow-frontend", "restrict-egress"].map(fixture).join("---\n");
    let (code, stdout, stderr) = netc(&["import", "--verify", "-"], &all);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("# Imported by `netc import` from 2 NetworkPolicy objects in <stdin>.\n\n## from"),
        "{stdout}"
    );
    assert!(
        stdout.contains("backend egress guarded\ndatabase ingress open\nbackend -> database\n"),
        "{stdout}"
    );
    assert!(stderr.starts_with("verified: the source means what the NetworkPolicies mean on "), "{stderr}");

    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("policies.np");
    let tricky = format!("{}/tests/fixtures/import/tricky.yaml", env!("CARGO_MANIFEST_DIR"));
    let (code, stdout, stderr) = netc(&["import", &tricky, "-o", out.to_str().expect("utf-8 path")], "");
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    let written = std::fs::read_to_string(&out).expect("written");
    let check = netc(&["check", out.to_str().expect("utf-8 path")], "");
    assert_eq!(check.0, 0, "the written source checks: {}\n{written}", check.2);
}

#[test]
fn netc_import_fails_with_the_object_and_exit_1_on_bad_input_and_2_on_io() {
    let (code, stdout, stderr) =
        netc(&["import", "-"], "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n");
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.starts_with("error[E0602]: not a NetworkPolicy\n  ┌─ <stdin>:2:1\n"), "{stderr}");
    assert!(stderr.contains("a Namespace, not a NetworkPolicy (document 1 of the file)"), "{stderr}");
    let keyword_namespace = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: ingress}\nspec:\n  podSelector: {}\n";
    let (code, _, stderr) = netc(&["import", "-"], keyword_namespace);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error[E0604]: netc cannot express NetworkPolicy ingress/p\n  ┌─ <stdin>:3:12\n"),
        "{stderr}"
    );
    let (code, _, stderr) = netc(&["import", "/nonexistent/netpol.yaml"], "");
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: cannot read /nonexistent/netpol.yaml"), "{stderr}");
}

/// `netc import --emit ir`: the objects one to one as IR for netcd, checked with `--verify`; a
/// namespace netc's source cannot name is no obstacle there.
#[test]
fn import_emit_ir_writes_the_objects_one_to_one() {
    let dir = std::env::temp_dir().join(format!("netc-import-ir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let odd = dir.join("odd.yaml");
    std::fs::write(
        &odd,
        format!(
            "{}---\n{}",
            fixture("allow-frontend"),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: odd\n  namespace: ingress\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n"
        ),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["import", "--emit", "ir", "--verify"])
        .arg(&odd)
        .output()
        .expect("run netc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("verified: the IR means what the NetworkPolicies mean"), "{stderr}");
    let ir = netc_ir::Ir::from_json(&String::from_utf8_lossy(&out.stdout)).expect("IR JSON");
    let rules: Vec<(String, String)> =
        ir.rules().map(|(p, _, r)| (format!("{}/{}", p.namespace, p.name), r.id.clone())).collect();
    assert_eq!(
        rules,
        [("default/allow-frontend".to_owned(), "default/allow-frontend:ingress[0]".to_owned())]
    );
    let odd_policy = ir.policies.iter().find(|p| p.namespace == "ingress").expect("the keyword namespace");
    assert!(odd_policy.ingress.is_guarded() && odd_policy.ingress.rules.is_empty());
    assert_eq!(odd_policy.span.file, odd.display().to_string());
    assert_eq!(
        odd_policy.span.line,
        u32::try_from(fixture("allow-frontend").lines().count() + 5).expect("small")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
