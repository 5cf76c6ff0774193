//! The matrix at the size DESIGN.md targets: 2,000 pods in 50 namespaces under 500 policies.
//!
//! Ignored by default (it is a measurement, not a check of behaviour beyond a sample); run it in
//! release to see the time:
//!
//! ```text
//! cargo test -p netc --release --test matrix_scale -- --ignored --nocapture
//! ```
//!
//! It prints the time of `Matrix::compute` and checks a sample of cells against `evaluate()`.

use std::collections::BTreeMap;
use std::time::Instant;

use netc::analysis::matrix::Matrix;
use netc_ir::eval::{Endpoint, Evaluator, Flow};
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{
    Door, DoorState, ExternalAddress, Inventory, Ir, LabelSelector, NamedPort, Namespace, Peer, Pod, Policy,
    Port, PortValue, Protocol, Rule, Span,
};

/// A tiny deterministic generator, so every run measures the same cluster.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % bound as u64).expect("bound fits")
    }
}

fn labels(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

fn span(line: u32) -> Span {
    Span { file: "synthetic.np".into(), line, column: 1, start: 0, end: 1 }
}

fn tcp(port: u16) -> Port {
    Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(port)), end_port: None }
}

/// 50 namespaces x 40 pods, 10 policies per namespace (500), half of them guarding egress.
fn synthetic() -> (Ir, Inventory) {
    let mut rng = Lcg(42);
    let tiers = ["fe", "be", "db"];
    let mut inventory = Inventory::default();
    for n in 0..50u8 {
        let name = format!("ns{n:02}");
        inventory.namespaces.push(Namespace {
            name: name.clone(),
            labels: labels(&[
                (NAMESPACE_NAME_LABEL, name.clone()),
                ("team", format!("t{}", n % 5)),
                ("env", if n % 2 == 0 { "prod".into() } else { "dev".into() }),
            ]),
        });
        for j in 0..40u8 {
            let mut ports = Vec::new();
            if rng.next(2) == 0 {
                ports.push(NamedPort {
                    name: "http".into(),
                    port: 8080 + u16::from(j % 3),
                    protocol: Protocol::Tcp,
                });
            }
            inventory.pods.push(Pod {
                namespace: name.clone(),
                name: format!("pod{j:02}"),
                labels: labels(&[
                    ("app", format!("app{}", j % 10)),
                    ("tier", tiers[usize::from(j) % 3].into()),
                ]),
                ips: vec![format!("10.{n}.{j}.1").parse().expect("v4")],
                ports,
                node: None,
                host_interface: None,
                host_network: j == 39 && n % 10 == 0,
            });
        }
    }
    inventory
        .externals
        .push(ExternalAddress { name: "payments".into(), address: "203.0.113.5".parse().expect("ip") });
    inventory.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    inventory.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let mut ir = Ir::empty();
    for n in 0..50u8 {
        for k in 0..10usize {
            let app = |i: usize| LabelSelector::labels([("app", format!("app{}", i % 10))]);
            let i = ir.policies.len();
            let ingress = vec![
                Rule {
                    id: format!("r{i}-in-0"),
                    peers: vec![Peer::Pods { namespaces: None, pods: Some(app(k + 1 + rng.next(3))) }],
                    ports: vec![
                        tcp(8080),
                        Port {
                            protocol: Protocol::Tcp,
                            port: Some(PortValue::Name("http".into())),
                            end_port: None,
                        },
                    ],
                    span: span(2),
                },
                Rule {
                    id: format!("r{i}-in-1"),
                    peers: vec![Peer::Pods {
                        namespaces: Some(LabelSelector::labels([("team", format!("t{}", rng.next(5)))])),
                        pods: Some(LabelSelector::labels([("tier", "fe")])),
                    }],
                    ports: vec![
                        tcp(443),
                        Port {
                            protocol: Protocol::Tcp,
                            port: Some(PortValue::Number(9000)),
                            end_port: Some(9100),
                        },
                    ],
                    span: span(3),
                },
            ];
            let egress = if k % 2 == 0 {
                Door {
                    state: DoorState::Guarded,
                    guarded_by: vec![span(4)],
                    rules: vec![
                        Rule {
                            id: format!("r{i}-out-0"),
                            peers: vec![Peer::Pods {
                                namespaces: Some(LabelSelector::everything()),
                                pods: Some(app(k + 2)),
                            }],
                            ports: vec![tcp(5432), tcp(8080)],
                            span: span(5),
                        },
                        Rule {
                            id: format!("r{i}-out-1"),
                            peers: vec![Peer::IpBlock {
                                cidr: "0.0.0.0/0".parse().expect("cidr"),
                                except: vec!["10.0.0.0/8".parse().expect("cidr")],
                            }],
                            ports: vec![tcp(443)],
                            span: span(6),
                        },
                        Rule {
                            id: format!("r{i}-out-2"),
                            peers: vec![Peer::Pods {
                                namespaces: Some(LabelSelector::namespace_named(&format!(
                                    "ns{:02}",
                                    rng.next(50)
                                ))),
                                pods: None,
                            }],
                            ports: vec![Port {
                                protocol: Protocol::Udp,
                                port: Some(PortValue::Number(53)),
                                end_port: None,
                            }],
                            span: span(7),
                        },
                    ],
                }
            } else {
                Door::open()
            };
            ir.policies.push(Policy {
                name: format!("p{k}"),
                namespace: format!("ns{n:02}"),
                workload: format!("app{k}"),
                selector: app(k),
                doc: None,
                ingress: Door { state: DoorState::Guarded, guarded_by: vec![span(1)], rules: ingress },
                egress,
                span: span(1),
            });
        }
    }
    ir.validate().expect("synthetic IR is valid");
    (ir, inventory)
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn matrix_of_2000_pods_50_namespaces_500_policies() {
    let (ir, inventory) = synthetic();
    let probes = Matrix::default_probes(&ir, &inventory);
    let start = Instant::now();
    let matrix = Matrix::compute(&ir, &inventory, &probes);
    let elapsed = start.elapsed();
    let n = matrix.endpoints.len();
    println!(
        "matrix: {} pods + {} externals, {} policies, {} probes, {} pairs: {:.1} ms; {} allowed (pair, probe)",
        inventory.pods.len(),
        inventory.externals.len(),
        ir.policies.len(),
        probes.len(),
        n * n,
        elapsed.as_secs_f64() * 1e3,
        matrix.allowed_count(),
    );

    // A sample of cells must be evaluate()'s answer.
    let evaluator = Evaluator::new(&ir, &inventory);
    let ends: Vec<Endpoint<'_>> = inventory
        .pods
        .iter()
        .map(Endpoint::Pod)
        .chain(inventory.externals.iter().map(|e| Endpoint::External(e.address)))
        .collect();
    let mut rng = Lcg(7);
    let start = Instant::now();
    let samples: u32 = 20_000;
    let mut allowed = 0;
    for _ in 0..samples {
        let (s, d, p) = (rng.next(n), rng.next(n), rng.next(probes.len()));
        let flow = Flow::new(ends[s], ends[d], probes[p].protocol, probes[p].port);
        let want = evaluator.evaluate(&flow).allowed;
        assert_eq!(matrix.is_allowed(s, d, p), want, "{} -> {} {}", ends[s], ends[d], probes[p]);
        allowed += u32::from(want);
    }
    let per_flow = start.elapsed().as_secs_f64() / f64::from(samples);
    println!(
        "evaluate(): {:.1} us per flow ({allowed} of {samples} sampled allowed); all {} (pair, probe) flows one by one would take ~{:.0} s",
        per_flow * 1e6,
        n * n * probes.len(),
        per_flow * (n * n * probes.len()) as f64
    );
    assert!(allowed > 0 && allowed < samples, "the sample sees both verdicts");
}
