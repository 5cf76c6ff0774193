//! Differential property tests: the IR evaluator, the generated YAML judged by the independent
//! NetworkPolicy evaluator, and the all-pairs matrix must agree on every flow of random clusters.
//!
//! To add a case: widen a strategy below (a new label, port or peer shape); a failure prints the
//! shrunk IR and inventory, which can be pasted into a unit test of `netc_ir::eval`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netc::analysis::k8s_eval::{K8sDoorVerdict, K8sEvaluator};
use netc::analysis::matrix::{Matrix, Probe};
use netc::{codegen, yaml};
use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Flow};
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{
    Direction, Door, DoorState, ExternalAddress, Inventory, Ir, LabelSelector, NamedPort, Namespace,
    Operator, Peer, Pod, Policy, Port, PortValue, Protocol, Requirement, Rule, Span,
};
use proptest::prelude::*;

const EXTERNALS: [&str; 4] = ["10.0.1.5", "192.0.2.1", "fd00::9", "8.8.8.8"];
const PORTS: [u16; 7] = [53, 80, 85, 90, 443, 8080, 9999];

fn span() -> Span {
    Span { file: "random.np".into(), line: 1, column: 1, start: 0, end: 1 }
}

fn label_pairs() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["app", "tier"]).prop_map(str::to_owned),
        prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned),
        0..=2,
    )
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    let requirement = (
        prop::sample::select(vec!["app", "tier", "env"]),
        prop::sample::select(vec![Operator::In, Operator::NotIn, Operator::Exists, Operator::DoesNotExist]),
        prop::collection::btree_set(prop::sample::select(vec!["a", "b", "c", "x"]), 1..=2),
    )
        .prop_map(|(key, operator, values)| Requirement {
            key: key.to_owned(),
            operator,
            values: match operator {
                Operator::In | Operator::NotIn => values.into_iter().map(str::to_owned).collect(),
                Operator::Exists | Operator::DoesNotExist => Vec::new(),
            },
        });
    (label_pairs(), prop::collection::vec(requirement, 0..=1))
        .prop_map(|(match_labels, match_expressions)| LabelSelector { match_labels, match_expressions })
}

fn namespace_selector() -> impl Strategy<Value = LabelSelector> {
    prop_oneof![
        Just(LabelSelector::everything()),
        prop::sample::select(vec!["ns0", "ns1", "ns2"]).prop_map(LabelSelector::namespace_named),
        prop::sample::select(vec!["x", "y"]).prop_map(|v| LabelSelector::labels([("env", v)])),
        selector(),
    ]
}

fn peer() -> impl Strategy<Value = Peer> {
    let blocks: Vec<(&str, Vec<&str>)> = vec![
        ("10.0.0.0/16", vec!["10.0.1.0/24", "10.0.0.0/24"]),
        ("10.0.1.0/24", vec!["10.0.1.0/28", "10.0.1.4/30"]),
        ("0.0.0.0/0", vec!["10.0.0.0/8", "192.0.2.0/24"]),
        ("fd00::/64", vec!["fd00::/120"]),
        ("192.0.2.0/24", vec![]),
    ];
    let block = prop::sample::select(blocks).prop_flat_map(|(cidr, excepts)| {
        let n = excepts.len();
        (Just(cidr), prop::sample::subsequence(excepts, 0..=n)).prop_map(|(cidr, except)| Peer::IpBlock {
            cidr: cidr.parse().expect("test CIDR"),
            except: except.iter().map(|e| e.parse().expect("test CIDR")).collect(),
        })
    });
    let pods = (prop::option::of(namespace_selector()), prop::option::of(selector()))
        .prop_filter("a pod peer names a namespace or pods", |(n, p)| n.is_some() || p.is_some())
        .prop_map(|(namespaces, pods)| Peer::Pods { namespaces, pods });
    prop_oneof![3 => pods, 1 => block]
}

fn port() -> impl Strategy<Value = Port> {
    let protocol = prop::sample::select(Protocol::ALL.to_vec());
    let value = prop_oneof![
        Just((None, None)),
        prop::sample::select(vec![53u16, 80, 443, 8080]).prop_map(|p| (Some(PortValue::Number(p)), None)),
        prop::sample::select(vec![(80u16, 90u16), (8000, 8080), (53, 53)])
            .prop_map(|(a, b)| (Some(PortValue::Number(a)), Some(b))),
        prop::sample::select(vec!["http", "dns", "metrics"])
            .prop_map(|n| (Some(PortValue::Name(n.into())), None)),
    ];
    (protocol, value).prop_map(|(protocol, (port, end_port))| Port { protocol, port, end_port })
}

fn rules() -> impl Strategy<Value = Vec<(Vec<Peer>, Vec<Port>)>> {
    prop::collection::vec((prop::collection::vec(peer(), 0..=2), prop::collection::vec(port(), 0..=2)), 0..=3)
}

fn door() -> impl Strategy<Value = Option<Vec<(Vec<Peer>, Vec<Port>)>>> {
    prop_oneof![1 => Just(None), 3 => rules().prop_map(Some)]
}

fn ir() -> impl Strategy<Value = Ir> {
    let policy = (prop::sample::select(vec!["ns0", "ns1", "ns2"]), selector(), door(), door());
    prop::collection::vec(policy, 1..=4).prop_map(|policies| {
        let mut ir = Ir::empty();
        ir.sources = vec!["random.np".into()];
        for (i, (namespace, selector, ingress, egress)) in policies.into_iter().enumerate() {
            let door = |d: Direction, rules: Option<Vec<(Vec<Peer>, Vec<Port>)>>| match rules {
                None => Door::open(),
                Some(rules) => Door {
                    state: DoorState::Guarded,
                    guarded_by: vec![span()],
                    rules: rules
                        .into_iter()
                        .enumerate()
                        .map(|(r, (peers, ports))| Rule {
                            id: format!("p{i}-{d}-{r}"),
                            peers,
                            ports,
                            span: span(),
                        })
                        .collect(),
                },
            };
            ir.policies.push(Policy {
                name: format!("p{i}"),
                namespace: namespace.to_owned(),
                workload: format!("w{i}"),
                selector,
                doc: (i % 2 == 0).then(|| format!("policy {i}")),
                ingress: door(Direction::Ingress, ingress),
                egress: door(Direction::Egress, egress),
                span: span(),
            });
        }
        ir.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        ir
    })
}

/// ns0 and ns1 are described (with an `env` label); ns2 only has pods (implied namespace).
fn inventory() -> impl Strategy<Value = Inventory> {
    let named = prop::sample::subsequence(
        vec![
            NamedPort { name: "dns".into(), port: 53, protocol: Protocol::Udp },
            NamedPort { name: "http".into(), port: 80, protocol: Protocol::Tcp },
            NamedPort { name: "http".into(), port: 8080, protocol: Protocol::Sctp },
            NamedPort { name: "metrics".into(), port: 9999, protocol: Protocol::Tcp },
        ],
        0..=2,
    );
    let pod = (0usize..3, label_pairs(), named, prop::bool::weighted(0.1), prop::bool::weighted(0.3), 0u8..3);
    (
        prop::sample::select(vec!["x", "y"]),
        prop::sample::select(vec!["x", "y"]),
        prop::collection::vec(pod, 1..=6),
    )
        .prop_map(|(env0, env1, pods)| {
            let ns = |name: &str, env: &str| Namespace {
                name: name.into(),
                labels: BTreeMap::from([
                    (NAMESPACE_NAME_LABEL.to_owned(), name.to_owned()),
                    ("env".to_owned(), env.to_owned()),
                ]),
            };
            let mut pods: Vec<Pod> = pods
                .into_iter()
                .enumerate()
                .map(|(i, (ns, labels, ports, host_network, dual, last))| {
                    // Addresses land inside and outside the random ipBlocks and their excepts.
                    let mut ips: Vec<IpAddr> =
                        vec![format!("10.0.{}.{}", ns, i * 4 + usize::from(last)).parse().expect("v4")];
                    if dual {
                        ips.push(format!("fd00::{:x}", i * 300 + usize::from(last)).parse().expect("v6"));
                    }
                    Pod {
                        namespace: format!("ns{ns}"),
                        name: format!("pod{i}"),
                        labels,
                        ips,
                        ports,
                        // Two nodes (and pods on none), so that hostNetwork pods are some
                        // pods' own node and other pods' remote one.
                        node: [None, Some("n0"), Some("n1")][i % 3].map(str::to_owned),
                        host_interface: None,
                        host_network,
                    }
                })
                .collect();
            pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            Inventory {
                namespaces: vec![ns("ns0", env0), ns("ns1", env1)],
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

fn endpoints(inventory: &Inventory) -> Vec<Endpoint<'_>> {
    inventory
        .pods
        .iter()
        .map(Endpoint::Pod)
        .chain(inventory.externals.iter().map(|e| Endpoint::External(e.address)))
        .collect()
}

/// A door verdict with policies named `namespace/name`, comparable across the two evaluators.
#[derive(Debug, PartialEq, Eq)]
enum Door2 {
    NotApplicable,
    Open,
    Allowed(Vec<(String, Direction, usize)>),
    Denied(Vec<String>),
    FromOwnNode(Vec<String>),
}

fn from_ir(ir: &Ir, v: &DoorVerdict) -> Door2 {
    let name = |i: usize| format!("{}/{}", ir.policies[i].namespace, ir.policies[i].name);
    match v {
        DoorVerdict::NotApplicable => Door2::NotApplicable,
        DoorVerdict::Open => Door2::Open,
        DoorVerdict::Allowed { rules } => {
            Door2::Allowed(rules.iter().map(|r| (name(r.policy), r.direction, r.rule)).collect())
        }
        DoorVerdict::Denied { guarded_by } => {
            Door2::Denied(guarded_by.iter().map(|p| name(p.policy)).collect())
        }
        DoorVerdict::FromOwnNode { guarded_by } => {
            Door2::FromOwnNode(guarded_by.iter().map(|p| name(p.policy)).collect())
        }
    }
}

fn from_k8s(objects: &[k8s_openapi::api::networking::v1::NetworkPolicy], v: &K8sDoorVerdict) -> Door2 {
    let name = |i: usize| {
        let m = &objects[i].metadata;
        format!("{}/{}", m.namespace.as_deref().unwrap_or("default"), m.name.as_deref().unwrap_or(""))
    };
    match v {
        K8sDoorVerdict::NotApplicable => Door2::NotApplicable,
        K8sDoorVerdict::Open => Door2::Open,
        K8sDoorVerdict::Allowed { rules } => {
            Door2::Allowed(rules.iter().map(|r| (name(r.policy), r.direction, r.rule)).collect())
        }
        K8sDoorVerdict::Denied { guarded_by } => Door2::Denied(guarded_by.iter().map(|&p| name(p)).collect()),
        K8sDoorVerdict::FromOwnNode { guarded_by } => {
            Door2::FromOwnNode(guarded_by.iter().map(|&p| name(p)).collect())
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// IR evaluator == NetworkPolicy evaluator on codegen's YAML, read back from text, for every
    /// flow between pods (dual-stack ones over both families) and external addresses on every
    /// port of every protocol (the exact default probes, plus a spread); down to which rules
    /// allowed and which policies guarded each door.
    #[test]
    fn ir_evaluator_agrees_with_networkpolicy_evaluator_on_generated_yaml(ir in ir(), inventory in inventory()) {
        prop_assert_eq!(ir.validate(), Ok(()));
        let text = yaml::render_stream(&codegen::network_policies(&ir), &ir.sources);
        let objects = yaml::parse_network_policies(&text).expect("generated YAML parses");
        let k8s = K8sEvaluator::new(&objects, &inventory).expect("generated policies are valid");
        let reference = Evaluator::new(&ir, &inventory);
        let ends = endpoints(&inventory);
        // Every port of every protocol, exactly: the default probes stand for every port (one
        // per set of ports the rules treat alike), plus a spread of our own.
        let mut tried: Vec<(Protocol, u16)> =
            Matrix::default_probes(&ir, &inventory).iter().map(|p| (p.protocol, p.port)).collect();
        tried.extend(Protocol::ALL.iter().flat_map(|&protocol| PORTS.map(|port| (protocol, port))));
        for &src in &ends {
            for &dst in &ends {
                // A dual-stack pair over each family it can use: an ipBlock matches a pod by the
                // address of the flow's family only.
                for family in Flow::families(&src, &dst) {
                    for &(protocol, port) in &tried {
                        let flow = Flow { src, dst, protocol, port, family };
                        let want = reference.evaluate(&flow);
                        let got = k8s.evaluate(&flow);
                        prop_assert_eq!(want.allowed, got.allowed, "{} -> {} {}/{}\n{}", src, dst, protocol, port, text);
                        prop_assert_eq!(from_ir(&ir, &want.egress), from_k8s(&objects, &got.egress), "egress of {} -> {} {}/{}", src, dst, protocol, port);
                        prop_assert_eq!(from_ir(&ir, &want.ingress), from_k8s(&objects, &got.ingress), "ingress of {} -> {} {}/{}", src, dst, protocol, port);
                    }
                }
            }
        }
    }

    /// The default probes are exact: any port of any protocol is judged, on every flow, like
    /// one of the probes (so a matrix, a diff or a verify on them misses no port).
    #[test]
    fn every_port_is_judged_like_one_of_the_default_probes(
        ir in ir(),
        inventory in inventory(),
        tries in prop::collection::vec((prop::sample::select(Protocol::ALL.to_vec()), 1u16..=u16::MAX), 4),
    ) {
        let probes = Matrix::default_probes(&ir, &inventory);
        let reference = Evaluator::new(&ir, &inventory);
        let ends = endpoints(&inventory);
        let verdicts = |protocol: Protocol, port: u16| -> Vec<bool> {
            let mut out = Vec::new();
            for &src in &ends {
                for &dst in &ends {
                    for family in Flow::families(&src, &dst) {
                        out.push(reference.evaluate(&Flow { src, dst, protocol, port, family }).allowed);
                    }
                }
            }
            out
        };
        // A port 1 above and below every probe too: the edges of the intervals.
        let mut ports = tries;
        ports.extend(probes.iter().flat_map(|p| [(p.protocol, p.port.saturating_sub(1).max(1)), (p.protocol, p.port.saturating_add(1))]));
        for (protocol, port) in ports {
            let want = verdicts(protocol, port);
            prop_assert!(
                probes.iter().any(|p| p.protocol == protocol && verdicts(p.protocol, p.port) == want),
                "{}/{} is judged like none of the probes {:?}", protocol, port, probes.iter().map(ToString::to_string).collect::<Vec<_>>()
            );
        }
    }

    /// The matrix gives evaluate()'s answer for every pair of endpoints and every probe: the
    /// default probes plus a few of our own (including ports inside ranges).
    #[test]
    fn matrix_agrees_with_evaluate_flow_by_flow(ir in ir(), inventory in inventory()) {
        let mut probes = Matrix::default_probes(&ir, &inventory);
        probes.extend([Probe::new(Protocol::Tcp, 85), Probe::new(Protocol::Udp, 8050), Probe::new(Protocol::Sctp, 1)]);
        let matrix = Matrix::compute(&ir, &inventory, &probes);
        let reference = Evaluator::new(&ir, &inventory);
        let ends = endpoints(&inventory);
        prop_assert_eq!(matrix.endpoints.len(), ends.len());
        for (s, &src) in ends.iter().enumerate() {
            for (d, &dst) in ends.iter().enumerate() {
                for (p, probe) in probes.iter().enumerate() {
                    // A cell holds what every family the pair can use allows.
                    let want = Flow::families(&src, &dst).into_iter().all(|family| {
                        reference.evaluate(&Flow { src, dst, protocol: probe.protocol, port: probe.port, family }).allowed
                    });
                    prop_assert_eq!(matrix.is_allowed(s, d, p), want, "{} -> {} {}", src, dst, probe);
                }
            }
        }
    }
}
