//! `assert` statements, proved on the finished IR for every possible pod.
//!
//! Each assertion becomes one or more [`Claim`]s, decided by the [`Prover`]. A claim that fails
//! comes back with a counterexample flow, which is then judged by the reference evaluator
//! (`netc_ir::eval`) on a cluster of just those two pods: that verdict, not the prover's, names
//! the rules that let the flow through or the statements that guard the door that stops it.

use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Flow, PolicyRef, Verdict};
use netc_ir::{Direction, Ir, LabelSelector, Port, PortValue, Protocol};

use super::flows::{Claim, Counterexample, EndSet, Prover, Witness};
use super::pods::PodSet;
use crate::ast::DoorWords;
use crate::check::{AssertClaim, AssertDecl, End, Loc};

/// A failed assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertError {
    /// The `assert` statement.
    pub at: Loc,
    /// What was claimed, in words (`every \`frontend\` pod reaches every \`backend\` pod`).
    pub claim: String,
    /// A flow, or a pod, that breaks it.
    pub counterexample: Counterexample,
    /// For claims about doors: the door; `None` for flows.
    pub door: Option<Direction>,
    /// Whether `netc_ir::eval` agrees on the counterexample (always, unless the prover is wrong).
    pub confirmed: bool,
    /// The statements responsible: the rules that allow the flow (`!->`, `isolated`), the
    /// statements that guard the door that refuses it (`->`) or that guard a door claimed open.
    pub because: Vec<Loc>,
    /// Where the counterexample comes from: a possible pod (the proof), or the pods of a given
    /// cluster.
    pub origin: Origin,
}

/// Where a counterexample comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The proof for every possible pod: the ends are made up (E0501).
    Proof,
    /// A given cluster: the ends are its pods and addresses (E0502); `explain` is the
    /// `--from ... --to ...` of `netc explain` for the flow (`None` for a door claim).
    Cluster {
        /// `--from shop/web-7 --to payments/vault-0:443/tcp`.
        explain: Option<String>,
        /// The counterexample's pods (`ns/name`) whose addresses lie outside every pod CIDR the
        /// proof was bounded to: pods it did not consider.
        outside_pod_cidrs: Vec<String>,
    },
}

fn end_set(end: &End) -> EndSet {
    match end {
        End::Pods { ns, pods, .. } => EndSet::Pods(PodSet::of_scope(ns, pods)),
        End::Cidrs(blocks, _) => EndSet::Addrs(blocks.to_vec()),
        End::Anywhere => EndSet::Anywhere,
        End::Dns => EndSet::Pods(PodSet::of_scope(
            &crate::check::NsScope::Named("kube-system".into()),
            &LabelSelector::labels([("k8s-app", "kube-dns")]),
        )),
    }
}

fn dns_ports() -> Vec<Port> {
    [Protocol::Udp, Protocol::Tcp]
        .into_iter()
        .map(|protocol| Port { protocol, port: Some(PortValue::Number(53)), end_port: None })
        .collect()
}

/// The claims of one assertion, each with how to say it.
pub(super) fn claims(a: &AssertDecl) -> Vec<(Claim, String, Option<Direction>)> {
    match &a.claim {
        AssertClaim::Flow { source, target, ports, never } => {
            let mut ports = ports.clone();
            if *target == End::Dns && ports.is_empty() {
                ports = dns_ports();
            }
            let on = if ports.is_empty() { "any port".to_owned() } else { describe_ports(&ports) };
            let (from, to) = (end_set(source), end_set(target));
            if *never {
                let text = format!("no `{}` reaches `{}` on {on}", source.display(), target.display());
                vec![(Claim::Never { from, to, ports }, text, None)]
            } else {
                let text =
                    format!("every `{}` reaches every `{}` on {on}", source.display(), target.display());
                vec![(Claim::Reach { from, to, ports }, text, None)]
            }
        }
        AssertClaim::Door { subject, words } => {
            let EndSet::Pods(pods) = end_set(subject) else { return Vec::new() };
            let name = subject.display();
            match words {
                DoorWords::Isolated => vec![
                    (
                        Claim::Never {
                            from: EndSet::Pods(pods.clone()),
                            to: EndSet::Anywhere,
                            ports: Vec::new(),
                        },
                        format!("`{name}` is isolated: nothing leaves it"),
                        None,
                    ),
                    (
                        Claim::Never { from: EndSet::Anywhere, to: EndSet::Pods(pods), ports: Vec::new() },
                        format!("`{name}` is isolated: nothing reaches it"),
                        None,
                    ),
                ],
                DoorWords::State { direction, guarded } => {
                    let dirs = direction.map_or(Direction::BOTH.to_vec(), |d| vec![d.into()]);
                    dirs.into_iter()
                        .map(|direction| {
                            let pods = pods.clone();
                            if *guarded {
                                (
                                    Claim::Guarded { pods, direction },
                                    format!("the {direction} of every `{name}` pod is guarded"),
                                    Some(direction),
                                )
                            } else {
                                (
                                    Claim::Open { pods, direction },
                                    format!("the {direction} of every `{name}` pod is open"),
                                    Some(direction),
                                )
                            }
                        })
                        .collect()
                }
            }
        }
    }
}

fn describe_ports(ports: &[Port]) -> String {
    let items: Vec<String> = ports
        .iter()
        .map(|p| match (&p.port, p.end_port) {
            (None, _) => format!("every {} port", p.protocol),
            (Some(v), Some(end)) => format!("{} {v}-{end}", p.protocol),
            (Some(v), None) => format!("{} {v}", p.protocol),
        })
        .collect();
    items.join(", ")
}

/// A claim with the index of its assertion, how to say it and the door it is about.
pub(super) type ClaimOf = (usize, Claim, String, Option<Direction>);

/// Every claim of `assertions`, in order; and the claims alone, as the prover takes them.
pub(super) fn claims_of(assertions: &[AssertDecl]) -> (Vec<ClaimOf>, Vec<Claim>) {
    let all: Vec<ClaimOf> = assertions
        .iter()
        .enumerate()
        .flat_map(|(i, a)| claims(a).into_iter().map(move |(c, t, d)| (i, c, t, d)))
        .collect();
    let just_claims = all.iter().map(|(_, c, _, _)| c.clone()).collect();
    (all, just_claims)
}

/// Prove every assertion on `ir`, for pods at addresses in `pod_cidrs` (empty: any address);
/// `file_of` maps a source file name to its index.
#[must_use]
pub fn check(
    assertions: &[AssertDecl],
    ir: &Ir,
    pod_cidrs: &[ipnet::IpNet],
    file_of: &dyn Fn(&str) -> Option<usize>,
) -> Vec<AssertError> {
    let (all, just_claims) = claims_of(assertions);
    if all.is_empty() {
        return Vec::new();
    }
    let prover = Prover::bounded(ir, &just_claims, pod_cidrs);
    // Each assertion's first failing claim (one counterexample per assertion is enough to read),
    // the assertions decided on all cores; judged and reported in order.
    let per_assertion: Vec<_> = all.chunk_by(|a, b| a.0 == b.0).collect();
    let prover = &prover;
    let first_failed = crate::par::map_in_order(per_assertion, 1, |claims| {
        claims.iter().find_map(|c| prover.decide(&c.1).map(|cx| (c, cx)))
    });
    let mut errors = Vec::new();
    for ((i, claim, text, door), cx) in first_failed.into_iter().flatten() {
        let (confirmed, because) = judge(ir, claim, &cx, file_of);
        errors.push(AssertError {
            at: assertions[*i].at,
            claim: text.clone(),
            counterexample: cx,
            door: *door,
            confirmed,
            because,
            origin: Origin::Proof,
        });
    }
    errors
}

/// The reference evaluator's verdict on a counterexample: whether it agrees, and the statements
/// it names.
fn judge(
    ir: &Ir,
    claim: &Claim,
    cx: &Counterexample,
    file_of: &dyn Fn(&str) -> Option<usize>,
) -> (bool, Vec<Loc>) {
    let inv = cx.inventory();
    let evaluator = Evaluator::new(ir, &inv);
    let end = |w: &Witness| match w {
        Witness::Pod(p, _) => Endpoint::Pod(inv.pod(&p.namespace, &p.name).expect("in the inventory")),
        Witness::External(a) => Endpoint::External(*a),
    };
    match claim {
        Claim::Reach { .. } | Claim::Never { .. } => {
            let never = matches!(claim, Claim::Never { .. });
            let v = evaluator.evaluate(&Flow::new(end(&cx.src), end(&cx.dst), cx.protocol, cx.port));
            (v.allowed == never, flow_because(ir, &v, never, file_of))
        }
        Claim::Guarded { direction, .. } | Claim::Open { direction, .. } => {
            let w = match direction {
                Direction::Ingress => &cx.dst,
                Direction::Egress => &cx.src,
            };
            let Witness::Pod(p, _) = w else { return (false, Vec::new()) };
            let pod = inv.pod(&p.namespace, &p.name).expect("in the inventory");
            let (guarded, because) = door_because(&evaluator, pod, *direction, file_of);
            (guarded == matches!(claim, Claim::Open { .. }), because)
        }
    }
}

/// A span of the IR as a place in the sources.
fn loc(s: &netc_ir::Span, file_of: &dyn Fn(&str) -> Option<usize>) -> Option<Loc> {
    file_of(&s.file).map(|file| Loc { file, span: crate::ast::Span { start: s.start, end: s.end } })
}

/// The statements that guard the doors of `refs`' policies.
fn guards_of(
    ir: &Ir,
    refs: &[PolicyRef],
    dir: Direction,
    file_of: &dyn Fn(&str) -> Option<usize>,
) -> Vec<Loc> {
    refs.iter()
        .filter_map(|r| r.resolve(ir))
        .flat_map(|p| p.door(dir).guarded_by.iter().filter_map(|s| loc(s, file_of)).collect::<Vec<_>>())
        .collect()
}

/// The statements a flow's verdict names against a claim: for a flow claimed never to pass
/// (`never`), the rules that let it through; for one claimed to pass, the statements that guard
/// the door that refused it. Sorted, each once.
pub(super) fn flow_because(
    ir: &Ir,
    v: &Verdict,
    never: bool,
    file_of: &dyn Fn(&str) -> Option<usize>,
) -> Vec<Loc> {
    let mut because = Vec::new();
    for (door, dir) in [(&v.egress, Direction::Egress), (&v.ingress, Direction::Ingress)] {
        match door {
            DoorVerdict::Allowed { rules } if never => because.extend(
                rules.iter().filter_map(|r| r.resolve(ir)).filter_map(|(_, rule)| loc(&rule.span, file_of)),
            ),
            DoorVerdict::Denied { guarded_by } if !never => {
                because.extend(guards_of(ir, guarded_by, dir, file_of));
            }
            _ => {}
        }
    }
    because.sort();
    because.dedup();
    because
}

/// Whether `pod`'s `direction` door is guarded, and the statements that guard it.
pub(super) fn door_because(
    evaluator: &Evaluator<'_>,
    pod: &netc_ir::Pod,
    direction: Direction,
    file_of: &dyn Fn(&str) -> Option<usize>,
) -> (bool, Vec<Loc>) {
    let guarding = evaluator.guarding_policies(pod, direction);
    let mut because = guards_of(evaluator.ir(), &guarding, direction, file_of);
    because.sort();
    because.dedup();
    (!guarding.is_empty(), because)
}
