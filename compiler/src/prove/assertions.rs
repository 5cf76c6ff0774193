//! `assert` statements, proved on the finished IR for every possible pod.
//!
//! Each assertion becomes one or more [`Claim`]s, decided by the [`Prover`]. A claim that fails
//! comes back with a counterexample flow, which is then judged by the reference evaluator
//! (`netc_ir::eval`) on a cluster of just those two pods: that verdict, not the prover's, names
//! the rules that let the flow through or the statements that guard the door that stops it.

use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Flow};
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
fn claims(a: &AssertDecl) -> Vec<(Claim, String, Option<Direction>)> {
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

/// Prove every assertion on `ir`; `file_of` maps a source file name to its index.
#[must_use]
pub fn check(
    assertions: &[AssertDecl],
    ir: &Ir,
    file_of: &dyn Fn(&str) -> Option<usize>,
) -> Vec<AssertError> {
    let all: Vec<(usize, Claim, String, Option<Direction>)> = assertions
        .iter()
        .enumerate()
        .flat_map(|(i, a)| claims(a).into_iter().map(move |(c, t, d)| (i, c, t, d)))
        .collect();
    if all.is_empty() {
        return Vec::new();
    }
    let just_claims: Vec<Claim> = all.iter().map(|(_, c, _, _)| c.clone()).collect();
    let prover = Prover::new(ir, &just_claims);
    let mut errors = Vec::new();
    let mut failed = std::collections::BTreeSet::new();
    for (i, claim, text, door) in &all {
        if failed.contains(i) {
            continue; // one counterexample per assertion is enough to read
        }
        let Some(cx) = prover.decide(claim) else { continue };
        failed.insert(*i);
        let (confirmed, because) = judge(ir, claim, &cx, file_of);
        errors.push(AssertError {
            at: assertions[*i].at,
            claim: text.clone(),
            counterexample: cx,
            door: *door,
            confirmed,
            because,
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
    let loc = |s: &netc_ir::Span| {
        file_of(&s.file).map(|file| Loc { file, span: crate::ast::Span { start: s.start, end: s.end } })
    };
    let end = |w: &Witness| match w {
        Witness::Pod(p, _) => Endpoint::Pod(inv.pod(&p.namespace, &p.name).expect("in the inventory")),
        Witness::External(a) => Endpoint::External(*a),
    };
    let guards_of = |refs: &[netc_ir::eval::PolicyRef], dir: Direction| -> Vec<Loc> {
        refs.iter()
            .filter_map(|r| r.resolve(ir))
            .flat_map(|p| p.door(dir).guarded_by.iter().filter_map(loc).collect::<Vec<_>>())
            .collect()
    };
    let mut because = Vec::new();
    let confirmed = match claim {
        Claim::Reach { .. } | Claim::Never { .. } => {
            let (src, dst) = (end(&cx.src), end(&cx.dst));
            let flow = Flow::new(src, dst, cx.protocol, cx.port);
            let v = evaluator.evaluate(&flow);
            for (door, dir) in [(&v.egress, Direction::Egress), (&v.ingress, Direction::Ingress)] {
                match door {
                    DoorVerdict::Allowed { rules } if matches!(claim, Claim::Never { .. }) => because.extend(
                        rules.iter().filter_map(|r| r.resolve(ir)).filter_map(|(_, rule)| loc(&rule.span)),
                    ),
                    DoorVerdict::Denied { guarded_by } if matches!(claim, Claim::Reach { .. }) => {
                        because.extend(guards_of(guarded_by, dir));
                    }
                    _ => {}
                }
            }
            v.allowed == matches!(claim, Claim::Never { .. })
        }
        Claim::Guarded { direction, .. } | Claim::Open { direction, .. } => {
            let w = match direction {
                Direction::Ingress => &cx.dst,
                Direction::Egress => &cx.src,
            };
            let Witness::Pod(p, _) = w else { return (false, because) };
            let pod = inv.pod(&p.namespace, &p.name).expect("in the inventory");
            let guarding = evaluator.guarding_policies(pod, *direction);
            because.extend(guards_of(&guarding, *direction));
            guarding.is_empty() == matches!(claim, Claim::Guarded { .. })
        }
    };
    because.sort();
    because.dedup();
    (confirmed, because)
}
