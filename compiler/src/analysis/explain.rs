//! `netc explain --from A --to B:PORT`: why one flow is allowed or denied, with the source lines
//! that decided it, and for a denied flow the arrow that would allow it.
//!
//! - **Allowed**: for each end, whether its door is open (no policy selecting the pod guards it),
//!   not ours (an address outside the cluster) or guarded, and then every rule that lets the flow
//!   through, with its stable id, its policy and the source line it comes from.
//! - **Denied**: for each guarded door that stops it, the policies that guard it and the
//!   statements that made them guard it (`door.guarded_by`, with their source lines), the rules
//!   that did not match and which half of each (peer or port) failed, and a line of netc that
//!   allows the flow: an arrow written with the workload names of the IR where the pods belong to
//!   a named workload, else with an inline selector. The suggestion is *checked*: it is compiled
//!   with the program and judged on the same cluster, and the explanation says how many flows the
//!   change adds and whether it removes any (an arrow into a pod whose ingress was open guards
//!   that door; then the suggestion declares the door open as well, so nothing else is cut off).
//!
//! Endpoints are `namespace/pod`, an IP address (a pod's address means that pod) or the name of
//! an `ExternalAddress` of the inventory; the destination carries `:PORT[/PROTO]` (a number or a
//! named container port of the destination pod; TCP by default; `[v6]:port` for IPv6). Unknown
//! names get an error with "did you mean".

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Family, Flow, PolicyRef, RuleRef};
use netc_ir::{Direction, Inventory, Ir, Peer, Port, PortValue, Protocol, Span};

use super::diff::diff;
use super::workloads::{address_source, pod_source, port_source, selector_source};
use crate::SourceFile;
use crate::diagnostics::Severity;

/// The name given to the suggested line when it is compiled with the program.
const SUGGESTION_FILE: &str = "<suggestion>";
/// How many non-matching rules a denied door lists.
const NEAR_MISSES: usize = 6;

/// A flow that cannot be explained because an end or the port is not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainError {
    /// `ns/pod` names a namespace the cluster does not have.
    UnknownNamespace {
        /// The namespace asked for.
        namespace: String,
        /// Close names of namespaces that exist.
        suggestions: Vec<String>,
    },
    /// `ns/pod` names a pod the namespace does not have.
    UnknownPod {
        /// The namespace.
        namespace: String,
        /// The pod asked for.
        pod: String,
        /// What the name means as a workload, in words, when pods of the namespace are that
        /// workload (they come first among the suggestions).
        workload: Option<String>,
        /// Close names: `ns/pod` of pods that exist.
        suggestions: Vec<String>,
    },
    /// Neither `ns/pod`, nor an address, nor an external address of the inventory.
    UnknownEndpoint {
        /// What was given.
        text: String,
        /// Close names: external addresses and `ns/pod`.
        suggestions: Vec<String>,
    },
    /// The destination has no `:PORT`.
    MissingPort {
        /// What was given.
        text: String,
    },
    /// The port is neither a number in 1..65535 nor a port name.
    BadPort {
        /// The port as given.
        text: String,
    },
    /// The protocol is not tcp, udp or sctp.
    BadProtocol {
        /// The protocol as given.
        text: String,
    },
    /// A named port on an address outside the cluster, which has no named ports.
    NamedPortOnAddress {
        /// The port name.
        name: String,
        /// The destination.
        destination: String,
    },
    /// The destination pod has no container port of that name.
    UnknownNamedPort {
        /// `ns/pod`.
        pod: String,
        /// The port name.
        name: String,
        /// The pod's named ports, `name (PROTO/number)`.
        available: Vec<String>,
    },
    /// The two ends were given as addresses of different families: no packet carries both.
    MixedFamilies {
        /// The source address.
        from: IpAddr,
        /// The destination address.
        to: IpAddr,
    },
}

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExplainError::UnknownNamespace { namespace, suggestions } => {
                write!(f, "the cluster has no namespace `{namespace}`")?;
                did_you_mean(f, suggestions)
            }
            ExplainError::UnknownPod { namespace, pod, workload, suggestions } => {
                write!(f, "namespace `{namespace}` has no pod `{pod}`")?;
                did_you_mean(f, suggestions)?;
                match workload {
                    Some(words) => write!(
                        f,
                        " (`{pod}` as a workload is {words}: pods are named by their controller, or in a \
                         cluster synthesized from the program after their `app` label)"
                    ),
                    None => Ok(()),
                }
            }
            ExplainError::UnknownEndpoint { text, suggestions } => {
                write!(
                    f,
                    "`{text}` is not NAMESPACE/POD, an IP address, or an ExternalAddress of the cluster"
                )?;
                did_you_mean(f, suggestions)
            }
            ExplainError::MissingPort { text } => write!(
                f,
                "`{text}` has no port: write the destination as NS/POD:PORT[/PROTO] (an IPv6 address as [ADDR]:PORT)"
            ),
            ExplainError::BadPort { text } => {
                write!(f, "`{text}` is not a port: use a number in 1..65535 or a container port's name")
            }
            ExplainError::BadProtocol { text } => {
                write!(f, "`{text}` is not a protocol: use tcp, udp or sctp")
            }
            ExplainError::NamedPortOnAddress { name, destination } => write!(
                f,
                "`{name}` is a port name, but {destination} is outside the cluster and has no named ports; give the number"
            ),
            ExplainError::UnknownNamedPort { pod, name, available } => {
                write!(f, "pod {pod} has no container port named `{name}`")?;
                if available.is_empty() {
                    write!(f, " (it has no named ports; give the number)")
                } else {
                    write!(f, "; it has {}", available.join(", "))
                }
            }
            ExplainError::MixedFamilies { from, to } => write!(
                f,
                "{from} and {to} are of different address families: no packet carries both; give two IPv4 or two IPv6 addresses (or a pod's name, to use the address of the other end's family)"
            ),
        }
    }
}

impl std::error::Error for ExplainError {}

fn did_you_mean(f: &mut fmt::Formatter<'_>, suggestions: &[String]) -> fmt::Result {
    match suggestions {
        [] => Ok(()),
        [one] => write!(f, "; did you mean `{one}`?"),
        many => {
            let quoted: Vec<String> = many.iter().map(|s| format!("`{s}`")).collect();
            write!(f, "; did you mean one of {}?", quoted.join(", "))
        }
    }
}

/// Up to three `candidates` close to `wanted`, closest first.
fn close_to<'c>(wanted: &str, candidates: impl IntoIterator<Item = &'c str>) -> Vec<String> {
    let mut scored: Vec<(f64, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, c)| *score >= 0.8 || c.contains(wanted) && !wanted.is_empty())
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, c)| c.to_owned()).collect()
}

/// One end of the flow, found in the cluster.
#[derive(Debug, Clone, Copy)]
struct Resolved<'a> {
    endpoint: Endpoint<'a>,
    /// The address it was named by, which fixes the flow's family.
    address: Option<IpAddr>,
}

fn resolve<'a>(
    ir: &Ir,
    inventory: &'a Inventory,
    text: &str,
    notes: &mut Vec<String>,
) -> Result<Resolved<'a>, ExplainError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        if let Some(pod) = inventory.pods.iter().find(|p| p.ips.contains(&ip)) {
            notes.push(format!("{ip} is the address of pod {}/{}", pod.namespace, pod.name));
            return Ok(Resolved { endpoint: Endpoint::Pod(pod), address: Some(ip) });
        }
        if let Some(e) = inventory.externals.iter().find(|e| e.address == ip) {
            notes.push(format!("{ip} is the external address `{}`", e.name));
        }
        return Ok(Resolved { endpoint: Endpoint::External(ip), address: Some(ip) });
    }
    if let Some(e) = inventory.externals.iter().find(|e| e.name == text) {
        notes.push(format!("`{}` is the external address {}", e.name, e.address));
        return Ok(Resolved { endpoint: Endpoint::External(e.address), address: Some(e.address) });
    }
    let Some((namespace, name)) = text.split_once('/') else {
        let names: Vec<String> = inventory
            .externals
            .iter()
            .map(|e| e.name.clone())
            .chain(inventory.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)))
            .collect();
        let by_pod_name: Vec<String> = inventory
            .pods
            .iter()
            .filter(|p| p.name == text)
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        let suggestions = if by_pod_name.is_empty() {
            close_to(text, names.iter().map(String::as_str))
        } else {
            by_pod_name
        };
        return Err(ExplainError::UnknownEndpoint { text: text.to_owned(), suggestions });
    };
    let known_namespace =
        inventory.namespace(namespace).is_some() || inventory.pods.iter().any(|p| p.namespace == namespace);
    if !known_namespace {
        let names: std::collections::BTreeSet<&str> = inventory
            .namespaces
            .iter()
            .map(|n| n.name.as_str())
            .chain(inventory.pods.iter().map(|p| p.namespace.as_str()))
            .collect();
        // A close namespace, with the pod when it has one of that name (`shop/web-1` for
        // `sohp/web-1`); then `default/catalog` for a pod `catalog` (or the pods of a workload
        // `catalog`) of another namespace.
        let mut suggestions: Vec<String> = close_to(namespace, names)
            .into_iter()
            .map(|ns| if inventory.pod(&ns, name).is_some() { format!("{ns}/{name}") } else { ns })
            .collect();
        suggestions.extend(pods_elsewhere(ir, inventory, namespace, name));
        let mut seen = std::collections::BTreeSet::new();
        suggestions.retain(|s| seen.insert(s.clone()));
        suggestions.truncate(SUGGESTIONS);
        return Err(ExplainError::UnknownNamespace { namespace: namespace.to_owned(), suggestions });
    }
    match inventory.pod(namespace, name) {
        Some(pod) => Ok(Resolved { endpoint: Endpoint::Pod(pod), address: None }),
        None => {
            // The pods the name means as a workload come first: a synthesized cluster names its
            // pods after their `app` label, a real one after the controller and a hash.
            let (workload, mut suggestions) = pods_of_workload(ir, inventory, namespace, name);
            let local: Vec<&str> =
                inventory.pods.iter().filter(|p| p.namespace == namespace).map(|p| p.name.as_str()).collect();
            suggestions.extend(close_to(name, local).into_iter().map(|p| format!("{namespace}/{p}")));
            // The same pod name in another namespace is a likely slip too.
            suggestions.extend(pods_elsewhere(ir, inventory, namespace, name));
            let mut seen = std::collections::BTreeSet::new();
            suggestions.retain(|s| seen.insert(s.clone()));
            suggestions.truncate(SUGGESTIONS);
            Err(ExplainError::UnknownPod {
                namespace: namespace.to_owned(),
                pod: name.to_owned(),
                workload,
                suggestions,
            })
        }
    }
}

/// How many names an unknown end's "did you mean" lists at most.
const SUGGESTIONS: usize = 5;

/// The pods of `namespace` that `name` means as a workload of the program (its declared selector,
/// else the label `app=<name>`), as `ns/pod`; and the workload's selector in words when there are
/// such pods.
fn pods_of_workload(
    ir: &Ir,
    inventory: &Inventory,
    namespace: &str,
    name: &str,
) -> (Option<String>, Vec<String>) {
    let declared = ir.workloads.iter().find(|w| w.namespace == namespace && w.name == name);
    let app = netc_ir::LabelSelector::labels([("app", name)]);
    let selector = declared.map_or(&app, |w| &w.selector);
    let pods: Vec<String> = inventory
        .pods
        .iter()
        .filter(|p| p.namespace == namespace && selector.matches(&p.labels))
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    let words = if pods.is_empty() {
        None
    } else if declared.is_some() {
        Some(format!("the pods of workload `{name}` (`{selector}`)"))
    } else {
        Some(format!("the pods labelled `{selector}`"))
    };
    (words, pods)
}

/// Pods of namespaces other than `namespace` named `name`, or that `name` means as a workload
/// there, as `ns/pod`.
fn pods_elsewhere(ir: &Ir, inventory: &Inventory, namespace: &str, name: &str) -> Vec<String> {
    let mut found: Vec<String> = inventory
        .pods
        .iter()
        .filter(|p| p.name == name && p.namespace != namespace)
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    for w in ir.workloads.iter().filter(|w| w.name == name && w.namespace != namespace) {
        found.extend(pods_of_workload(ir, inventory, &w.namespace, name).1);
    }
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|s| seen.insert(s.clone()));
    found
}

/// `dst:port[/proto]` split into the endpoint, the port text and the protocol (if given).
fn split_destination(text: &str) -> Result<(&str, &str, Option<Protocol>), ExplainError> {
    let missing = || ExplainError::MissingPort { text: text.to_owned() };
    let (endpoint, spec) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or_else(missing)?;
        (inside, after.strip_prefix(':').ok_or_else(missing)?)
    } else {
        if text.parse::<IpAddr>().is_ok() {
            return Err(missing());
        }
        text.rsplit_once(':').ok_or_else(missing)?
    };
    let (port, protocol) = match spec.split_once('/') {
        None => (spec, None),
        Some((port, proto)) => {
            let protocol = match proto.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => return Err(ExplainError::BadProtocol { text: proto.to_owned() }),
            };
            (port, Some(protocol))
        }
    };
    if port.is_empty() {
        return Err(missing());
    }
    Ok((endpoint, port, protocol))
}

/// Why one flow is allowed or denied; [`Explanation::render`] prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// `src -> dst on PROTO/PORT`.
    pub flow: String,
    /// The verdict.
    pub allowed: bool,
    /// How the ends were found (`10.0.0.5 is the address of pod shop/web-1`).
    pub notes: Vec<String>,
    /// The source's egress door, then the destination's ingress door.
    pub doors: Vec<DoorReport>,
    /// For a denied flow: a line that allows it, checked.
    pub fix: Option<Fix>,
    /// For a denied flow with no fix: why.
    pub no_fix: Option<String>,
}

/// One door's part in the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorReport {
    /// Egress (of the source) or ingress (of the destination).
    pub direction: Direction,
    /// `namespace/pod` or the address.
    pub holder: String,
    /// Whether the door lets the flow through.
    pub permits: bool,
    /// The first line: `open`, `allowed by 2 rules`, `DENIED`, ...
    pub summary: String,
    /// The lines below it (already indented).
    pub details: Vec<String>,
    /// Rule ids that let the flow through (allowed doors).
    pub rules: Vec<String>,
}

/// A line of netc that allows a denied flow, and what it does on this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// The namespace the lines belong in.
    pub namespace: String,
    /// The lines.
    pub lines: Vec<String>,
    /// Why the lines are what they are, when it is not obvious.
    pub reason: Option<String>,
    /// Flows the change adds on this cluster (the explained one included).
    pub adds: usize,
    /// Flows the change removes on this cluster.
    pub removes: usize,
    /// One removed flow, if any.
    pub removed_example: Option<String>,
}

/// Explain the flow from `from` to `to` (`endpoint:port[/proto]`) under `ir`, compiled from
/// `sources`, on the cluster `inventory`.
///
/// # Errors
/// [`ExplainError`] when an end or the port is not understood.
pub fn explain(
    sources: &[SourceFile],
    ir: &Ir,
    inventory: &Inventory,
    from: &str,
    to: &str,
) -> Result<Explanation, ExplainError> {
    let mut notes = Vec::new();
    let src = resolve(ir, inventory, from, &mut notes)?;
    let (dst_text, port_text, protocol) = split_destination(to)?;
    let dst = resolve(ir, inventory, dst_text, &mut notes)?;
    let (port, protocol) = match port_text.parse::<u16>() {
        Ok(0) => return Err(ExplainError::BadPort { text: port_text.to_owned() }),
        Ok(n) => (n, protocol.unwrap_or(Protocol::Tcp)),
        Err(_)
            if port_text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && port_text.chars().any(|c| c.is_ascii_alphabetic())
                && port_text.len() <= 15 =>
        {
            let Endpoint::Pod(pod) = dst.endpoint else {
                return Err(ExplainError::NamedPortOnAddress {
                    name: port_text.to_owned(),
                    destination: dst.endpoint.to_string(),
                });
            };
            let found = pod
                .ports
                .iter()
                .find(|p| p.name == port_text && protocol.is_none_or(|want| want == p.protocol));
            let Some(named) = found else {
                return Err(ExplainError::UnknownNamedPort {
                    pod: format!("{}/{}", pod.namespace, pod.name),
                    name: port_text.to_owned(),
                    available: pod
                        .ports
                        .iter()
                        .map(|p| format!("{} ({}/{})", p.name, p.protocol, p.port))
                        .collect(),
                });
            };
            notes.push(format!(
                "port `{port_text}` of {}/{} is {}/{}",
                pod.namespace, pod.name, named.protocol, named.port
            ));
            (named.port, named.protocol)
        }
        Err(_) => return Err(ExplainError::BadPort { text: port_text.to_owned() }),
    };
    // The family: the one of an address given, else each the two ends can use (IPv4 first).
    let families = match (src.address, dst.address) {
        (Some(a), Some(b)) if Family::of(a) != Family::of(b) => {
            return Err(ExplainError::MixedFamilies { from: a, to: b });
        }
        (Some(ip), _) | (_, Some(ip)) => vec![Family::of(ip)],
        (None, None) => Flow::families(&src.endpoint, &dst.endpoint),
    };
    let flow = Flow { src: src.endpoint, dst: dst.endpoint, protocol, port, family: families[0] };
    let evaluator = Evaluator::new(ir, inventory);
    let verdict = evaluator.evaluate(&flow);
    if let [first, second] = families.as_slice() {
        let other = evaluator.evaluate(&Flow { family: *second, ..flow });
        notes.push(if other.allowed == verdict.allowed {
            format!("both ends are dual-stack: explained over {first}; over {second} the verdict is the same")
        } else {
            format!(
                "both ends are dual-stack: explained over {first}; over {second} the flow is {} (an address \
                 block matches one of the pod's addresses and not the other): give an {second} address \
                 to explain it",
                if other.allowed { "ALLOWED" } else { "DENIED" }
            )
        });
    }
    let doors = vec![
        door_report(&evaluator, sources, &flow, Direction::Egress, &verdict.egress),
        door_report(&evaluator, sources, &flow, Direction::Ingress, &verdict.ingress),
    ];
    let mut explanation = Explanation {
        flow: format!("{} -> {} on {protocol}/{port}", flow.src, flow.dst),
        allowed: verdict.allowed,
        notes,
        doors,
        fix: None,
        no_fix: None,
    };
    if !verdict.allowed {
        match suggest(sources, ir, inventory, &flow, port_text, &verdict.ingress) {
            Ok(fix) => explanation.fix = Some(fix),
            Err(why) => explanation.no_fix = Some(why),
        }
    }
    Ok(explanation)
}

fn door_report(
    evaluator: &Evaluator<'_>,
    sources: &[SourceFile],
    flow: &Flow<'_>,
    direction: Direction,
    verdict: &DoorVerdict,
) -> DoorReport {
    let ir = evaluator.ir();
    let holder = match direction {
        Direction::Egress => flow.src,
        Direction::Ingress => flow.dst,
    };
    let mut report = DoorReport {
        direction,
        holder: holder.to_string(),
        permits: verdict.permits(),
        summary: String::new(),
        details: Vec::new(),
        rules: Vec::new(),
    };
    match verdict {
        DoorVerdict::NotApplicable => {
            report.summary = "not ours".to_owned();
            report
                .details
                .push("  an address outside the cluster: no NetworkPolicy applies to it".to_owned());
        }
        DoorVerdict::Open => {
            report.summary = "open".to_owned();
            let why = if holder.pod().is_some_and(|p| p.host_network) {
                "  a hostNetwork pod: NetworkPolicy does not apply to it".to_owned()
            } else {
                format!("  no policy selecting the pod guards its {direction}")
            };
            report.details.push(why);
        }
        DoorVerdict::FromOwnNode { guarded_by } => {
            report.summary = "from its own node".to_owned();
            let names: Vec<String> = guarded_by
                .iter()
                .filter_map(|p| p.resolve(ir))
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect();
            report.details.push(format!(
                "  guarded by {}, but the source is a hostNetwork pod of the pod's own node ({}), which a pod cannot block (Kubernetes: kubelet probes depend on it); netcd lets in every packet its node makes",
                names.join(", "),
                holder.pod().and_then(|p| p.node.as_deref()).unwrap_or("?")
            ));
        }
        DoorVerdict::Allowed { rules } => {
            report.summary = if rules.len() == 1 {
                "allowed by 1 rule".to_owned()
            } else {
                format!("allowed by {} rules", rules.len())
            };
            for r in rules {
                let Some((policy, rule)) = r.resolve(ir) else { continue };
                report.rules.push(rule.id.clone());
                report.details.push(format!(
                    "  {direction} rule `{}` of policy {}/{}: {}",
                    rule.id,
                    policy.namespace,
                    policy.name,
                    describe_rule(rule.peers.as_slice(), rule.ports.as_slice(), direction)
                ));
                report.details.push(quote(&rule.span, sources, "    "));
            }
        }
        DoorVerdict::Denied { guarded_by } => {
            report.summary = "DENIED".to_owned();
            for p in guarded_by {
                let Some(policy) = p.resolve(ir) else { continue };
                let door = policy.door(direction);
                let pods = if policy.selector.is_empty() {
                    format!("every pod of {}", policy.namespace)
                } else {
                    format!("pods {} of {}", selector_source(&policy.selector), policy.namespace)
                };
                report.details.push(format!(
                    "  guarded by policy {}/{} ({pods}), because of:",
                    policy.namespace, policy.name
                ));
                let spans: Vec<&Span> = if door.guarded_by.is_empty() {
                    vec![&policy.span]
                } else {
                    door.guarded_by.iter().collect()
                };
                for span in spans {
                    report.details.push(quote(span, sources, "    "));
                }
            }
            let misses = near_misses(evaluator, guarded_by, direction, flow);
            if misses.is_empty() {
                report.details.push(format!("  no rule of these policies allows any {direction} flow"));
            } else {
                report.details.push("  rules of these policies that did not match:".to_owned());
                report.details.extend(misses);
            }
        }
    }
    report
}

fn near_misses(
    evaluator: &Evaluator<'_>,
    guarded_by: &[PolicyRef],
    direction: Direction,
    flow: &Flow<'_>,
) -> Vec<String> {
    let ir = evaluator.ir();
    let mut lines = Vec::new();
    let mut total = 0;
    for p in guarded_by {
        let Some(policy) = p.resolve(ir) else { continue };
        for (index, rule) in policy.door(direction).rules.iter().enumerate() {
            let rule_ref = RuleRef { policy: p.policy, direction, rule: index };
            let Some(m) = evaluator.rule_match(rule_ref, flow) else { continue };
            total += 1;
            if lines.len() >= NEAR_MISSES {
                continue;
            }
            let why = match (m.peer, m.port) {
                (false, false) => "neither the peer nor the port matches",
                (false, true) => {
                    if direction == Direction::Ingress {
                        "the source does not match"
                    } else {
                        "the destination does not match"
                    }
                }
                (true, false) => "the port does not match",
                (true, true) => "matches",
            };
            lines.push(format!(
                "    `{}` ({}): {}: {why}",
                rule.id,
                rule.span,
                describe_rule(&rule.peers, &rule.ports, direction)
            ));
        }
    }
    if total > lines.len() {
        lines.push(format!("    ... and {} more", total - lines.len()));
    }
    lines
}

/// `from {app=web} on TCP/8080`, `to 10.0.0.0/8 on any port`.
fn describe_rule(peers: &[Peer], ports: &[Port], direction: Direction) -> String {
    let word = if direction == Direction::Ingress { "from" } else { "to" };
    let who = if peers.is_empty() {
        "anyone".to_owned()
    } else {
        peers.iter().map(describe_peer).collect::<Vec<_>>().join(", ")
    };
    let on = if ports.is_empty() {
        "any port".to_owned()
    } else {
        ports.iter().map(describe_port).collect::<Vec<_>>().join(", ")
    };
    format!("{word} {who} on {on}")
}

fn describe_peer(peer: &Peer) -> String {
    match peer {
        Peer::Pods { namespaces, pods } => {
            let pods_text = match pods {
                Some(s) if !s.is_empty() => selector_source(s),
                _ => "*".to_owned(),
            };
            match namespaces {
                None => pods_text,
                Some(ns) if ns.is_empty() => format!("*/{pods_text}"),
                Some(ns) => match ns.as_namespace_name() {
                    Some(name) => format!("{name}/{pods_text}"),
                    None => format!("{}/{pods_text}", selector_source(ns)),
                },
            }
        }
        Peer::IpBlock { cidr, except } if except.is_empty() => cidr.to_string(),
        Peer::IpBlock { cidr, except } => {
            let e: Vec<String> = except.iter().map(ToString::to_string).collect();
            format!("{cidr} except ({})", e.join(", "))
        }
    }
}

fn describe_port(port: &Port) -> String {
    match (&port.port, port.end_port) {
        (None, _) => format!("{}/*", port.protocol),
        (Some(PortValue::Number(p)), Some(end)) => format!("{}/{p}-{end}", port.protocol),
        (Some(p), _) => format!("{}/{p}", port.protocol),
    }
}

/// The most lines of one statement [`quote`] shows; the rest are counted.
const QUOTE_LINES: usize = 8;

/// The source lines of `span`, quoted: `{indent}--> file:line:col` then `{indent} N | text` for
/// every line the statement spans (a wrapped arrow is quoted whole, up to `QUOTE_LINES`).
#[must_use]
pub fn quote(span: &Span, sources: &[SourceFile], indent: &str) -> String {
    let mut out = format!("{indent}--> {span}\n");
    if let Some(source) = sources.iter().find(|s| s.name == span.file) {
        let spanned = source.text.get(span.start as usize..span.end as usize).unwrap_or("");
        let count = spanned.matches('\n').count() + 1;
        let first = (span.line as usize).saturating_sub(1);
        for (i, text) in source.text.lines().skip(first).take(count.min(QUOTE_LINES)).enumerate() {
            let _ = writeln!(out, "{indent}{:>4} | {}", first + i + 1, text.trim_end());
        }
        if count > QUOTE_LINES {
            let _ = writeln!(out, "{indent}     | ... {} more lines", count - QUOTE_LINES);
        }
    }
    out.pop();
    out
}

/// A line that allows `flow`, compiled with the program and checked on the cluster.
fn suggest(
    sources: &[SourceFile],
    ir: &Ir,
    inventory: &Inventory,
    flow: &Flow<'_>,
    port_text: &str,
    ingress: &DoorVerdict,
) -> Result<Fix, String> {
    let port = port_source(flow.protocol, port_text);
    let mut candidates: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
    // Idiomatic names first (`db` for pods `app=db`), then inline selectors, in case a bare name
    // means something else in the program (an external address, say).
    for bare in [true, false] {
        // The arrow is written where the target's rule goes: the destination pod's namespace, or
        // the source's when the destination is an address.
        let (namespace, source_text, target_text) = match (flow.src, flow.dst) {
            (_, Endpoint::Pod(dst)) => {
                let ns = dst.namespace.as_str();
                (ns.to_owned(), endpoint_source(ir, flow.src, ns, bare), pod_source(ir, dst, ns, bare))
            }
            (Endpoint::Pod(src), Endpoint::External(ip)) => {
                let ns = src.namespace.as_str();
                (ns.to_owned(), pod_source(ir, src, ns, bare), address_source(ip))
            }
            (Endpoint::External(_), Endpoint::External(_)) => {
                return Err("both ends are outside the cluster".to_owned());
            }
        };
        let arrow = format!("{source_text} -> {target_text}{port}");
        if let (DoorVerdict::Open, Endpoint::Pod(dst)) = (ingress, flow.dst)
            && !dst.host_network
        {
            // Being the target of an arrow guards the target's ingress, which would cut off
            // everyone else: say that the door stays open, so only the egress rule is written.
            candidates.push((
                namespace.clone(),
                vec![format!("{target_text} ingress open"), arrow.clone()],
                Some(format!(
                    "{}/{} has an open ingress door, and an arrow into it would guard it; the first line keeps it open",
                    dst.namespace, dst.name
                )),
            ));
        }
        candidates.push((namespace, vec![arrow], None));
    }
    candidates.dedup();
    let mut best: Option<Fix> = None;
    let mut refusal = None;
    for (namespace, lines, reason) in candidates {
        // `default` is a keyword: its statements are the ones outside any namespace.
        let mut text = String::new();
        if namespace == "default" {
            for l in &lines {
                let _ = writeln!(text, "{l}");
            }
        } else {
            let _ = writeln!(text, "namespace {namespace} {{");
            for l in &lines {
                let _ = writeln!(text, "  {l}");
            }
            text.push_str("}\n");
        }
        let mut with = sources.to_vec();
        with.push(SourceFile::new(SUGGESTION_FILE, text));
        let out = crate::compile(&with);
        let Some(new_ir) = out.ir else {
            if refusal.is_none()
                && let Some(d) = out.diagnostics.iter().find(|d| d.severity == Severity::Error)
            {
                refusal = Some(format!(
                    "the line `{}` would be refused: {} [{}]",
                    lines.join("; "),
                    d.message,
                    d.code
                ));
            }
            continue;
        };
        if !Evaluator::new(&new_ir, inventory).evaluate(flow).allowed {
            continue;
        }
        let change = diff(ir, &new_ir, inventory);
        let removed_example =
            change.groups.iter().flat_map(|g| &g.pairs).find(|p| !p.removed.is_empty()).map(|p| {
                format!(
                    "{} -> {} {}",
                    p.src,
                    p.dst,
                    p.removed.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
                )
            });
        let fix =
            Fix { namespace, lines, reason, adds: change.added, removes: change.removed, removed_example };
        if fix.removes == 0 {
            return Ok(fix);
        }
        if best.as_ref().is_none_or(|b| fix.removes < b.removes) {
            best = Some(fix);
        }
    }
    best.ok_or_else(|| refusal.unwrap_or_else(|| "no single arrow allows this flow".to_owned()))
}

fn endpoint_source(ir: &Ir, endpoint: Endpoint<'_>, context: &str, bare: bool) -> String {
    match endpoint {
        Endpoint::Pod(pod) => pod_source(ir, pod, context, bare),
        Endpoint::External(ip) => address_source(ip),
    }
}

impl Explanation {
    /// The explanation for people.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let verdict = if self.allowed { "ALLOWED" } else { "DENIED" };
        let _ = writeln!(out, "{}: {verdict}", self.flow);
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        for d in &self.doors {
            let _ = writeln!(out, "\n{} of {}: {}", d.direction, d.holder, d.summary);
            for line in &d.details {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(fix) = &self.fix {
            let denied: Vec<String> = self
                .doors
                .iter()
                .filter(|d| !d.permits)
                .map(|d| format!("{} of {}", d.direction, d.holder))
                .collect();
            let place = if fix.namespace == "default" {
                "outside any namespace block (namespace default)".to_owned()
            } else {
                format!("to namespace {}", fix.namespace)
            };
            let _ = writeln!(out, "\nto allow it ({}), add {place}:", denied.join(" and "));
            for l in &fix.lines {
                let _ = writeln!(out, "    {l}");
            }
            if let Some(reason) = &fix.reason {
                let _ = writeln!(out, "  ({reason})");
            }
            let plural = |n: usize| if n == 1 { "1 flow".to_owned() } else { format!("{n} flows") };
            let _ = write!(
                out,
                "  checked on this cluster: with this, the flow is allowed; the change adds {} (this one included)",
                plural(fix.adds)
            );
            match &fix.removed_example {
                None => out.push_str(" and removes none\n"),
                Some(example) => {
                    let _ = writeln!(out, " and removes {}, e.g. {example}", plural(fix.removes));
                }
            }
        }
        if let Some(why) = &self.no_fix {
            let _ = writeln!(out, "\nno line of netc allows it: {why}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netc_ir::Pod;
    use std::collections::BTreeMap;

    fn pod(ns: &str, name: &str, app: &str, ip: &str) -> Pod {
        Pod {
            namespace: ns.into(),
            name: name.into(),
            labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            ips: vec![ip.parse().expect("ip")],
            ports: vec![],
            node: None,
            host_interface: None,
            host_network: false,
        }
    }

    fn cluster() -> Inventory {
        let mut db = pod("shop", "db-0", "db", "10.0.0.3");
        db.ports.push(netc_ir::NamedPort { name: "sql".into(), port: 5432, protocol: Protocol::Tcp });
        Inventory {
            namespaces: vec![],
            pods: vec![pod("shop", "api-1", "api", "10.0.0.2"), db, pod("shop", "web-1", "web", "10.0.0.1")],
            externals: vec![netc_ir::ExternalAddress {
                name: "payments".into(),
                address: "203.0.113.5".parse().expect("ip"),
            }],
            implied_namespaces: vec![],
            services: Vec::new(),
        }
    }

    fn program() -> (Vec<SourceFile>, Ir) {
        let sources =
            vec![SourceFile::new("shop.np", "namespace shop {\n  api -> db:5432\n  web -> api:8080\n}\n")];
        let ir = crate::compile(&sources).ir.expect("compiles");
        (sources, ir)
    }

    #[test]
    fn a_wrapped_arrow_is_quoted_whole() {
        let text = "frontend ->\n    backend:80,\n    cache:6379\nweb -> db\n";
        let sources = [SourceFile::new("p.np", text)];
        let end = u32::try_from(text.find("\nweb").expect("there")).expect("small");
        let span = Span { file: "p.np".into(), line: 1, column: 1, start: 0, end };
        assert_eq!(
            quote(&span, &sources, ""),
            "--> p.np:1:1\n   1 | frontend ->\n   2 |     backend:80,\n   3 |     cache:6379"
        );
        let long: String = (0..20).map(|i| format!("a{i},\n")).collect::<String>() + "b -> c\n";
        let sources = [SourceFile::new("p.np", long.as_str())];
        let end = u32::try_from(long.len() - 1).expect("small");
        let quoted = quote(&Span { file: "p.np".into(), line: 1, column: 1, start: 0, end }, &sources, "");
        assert_eq!(quoted.lines().count(), 1 + QUOTE_LINES + 1, "{quoted}");
        assert!(quoted.ends_with("... 13 more lines"), "{quoted}");
    }

    #[test]
    fn an_allowed_flow_names_its_rule_and_line() {
        let (sources, ir) = program();
        let inv = cluster();
        let e = explain(&sources, &ir, &inv, "shop/api-1", "shop/db-0:sql").expect("explained");
        assert!(e.allowed);
        assert_eq!(e.doors[0].summary, "open");
        assert_eq!(e.doors[1].rules.len(), 1);
        let text = e.render();
        assert!(text.starts_with("shop/api-1 -> shop/db-0 on TCP/5432: ALLOWED\n"), "{text}");
        assert!(text.contains("shop.np:2:3\n"), "{text}");
        assert!(text.contains("   2 |   api -> db:5432"), "{text}");
    }

    #[test]
    fn a_denied_flow_names_the_guard_and_a_checked_arrow() {
        let (sources, ir) = program();
        let inv = cluster();
        let e = explain(&sources, &ir, &inv, "10.0.0.1", "shop/db-0:5432").expect("explained");
        assert!(!e.allowed);
        assert_eq!(e.notes, ["10.0.0.1 is the address of pod shop/web-1"]);
        let fix = e.fix.as_ref().expect("a fix");
        assert_eq!(fix.lines, ["web -> db:5432"]);
        assert_eq!((fix.namespace.as_str(), fix.removes), ("shop", 0));
        assert_eq!(fix.adds, 1);
        let text = e.render();
        assert!(text.contains("the source does not match"), "{text}");
        assert!(
            text.contains("to allow it (ingress of shop/db-0), add to namespace shop:\n    web -> db:5432\n"),
            "{text}"
        );
    }

    #[test]
    fn an_open_ingress_is_kept_open_by_the_suggestion() {
        let sources = vec![SourceFile::new(
            "e.np",
            "namespace shop {\n  web egress guarded\n  web -> api:8080, dns\n}\n",
        )];
        let ir = crate::compile(&sources).ir.expect("compiles");
        let e = explain(&sources, &ir, &cluster(), "shop/web-1", "shop/db-0:5432").expect("explained");
        let fix = e.fix.expect("a fix");
        assert_eq!(fix.lines, ["db ingress open", "web -> db:5432"]);
        assert_eq!(fix.removes, 0);
        let out = explain(&sources, &ir, &cluster(), "shop/web-1", "payments:443").expect("explained");
        assert_eq!(out.fix.expect("a fix").lines, ["web -> 203.0.113.5:443"]);
    }

    #[test]
    fn unknown_names_get_did_you_mean() {
        let (sources, ir) = program();
        let inv = cluster();
        let err =
            |from: &str, to: &str| explain(&sources, &ir, &inv, from, to).expect_err("an error").to_string();
        assert_eq!(
            err("shop/web-2", "shop/db-0:1"),
            "namespace `shop` has no pod `web-2`; did you mean `shop/web-1`?"
        );
        assert_eq!(
            err("shpo/web-1", "shop/db-0:1"),
            "the cluster has no namespace `shpo`; did you mean `shop/web-1`?"
        );
        assert_eq!(
            err("shpo/web-9", "shop/db-0:1"),
            "the cluster has no namespace `shpo`; did you mean `shop`?"
        );
        assert_eq!(
            err("paymnets", "shop/db-0:1"),
            "`paymnets` is not NAMESPACE/POD, an IP address, or an ExternalAddress of the cluster; did you mean `payments`?"
        );
        assert!(err("web-1", "shop/db-0:1").ends_with("did you mean `shop/web-1`?"));
        assert!(err("shop/web-1", "shop/db-0").contains("has no port"));
        assert!(err("shop/web-1", "shop/db-0:70000").contains("is not a port"));
        assert!(err("shop/web-1", "shop/db-0:80/icmp").contains("not a protocol"));
        assert!(err("shop/web-1", "shop/db-0:http").contains("has sql (TCP/5432)"));
        assert!(err("shop/web-1", "payments:http").contains("no named ports"));
        assert!(err("shop/web-1", "fd00::1").contains("[ADDR]:PORT"));
        assert!(explain(&sources, &ir, &inv, "shop/web-1", "[fd00::1]:443").is_ok());
    }

    #[test]
    fn a_workload_name_given_as_a_pod_gets_the_pods_it_means() {
        // Issue 9: pods are not named after workloads (a synthesized cluster names them after
        // their `app` label), so `--from shop/frontend` must point at the frontend's pods.
        let sources = vec![SourceFile::new(
            "shop.np",
            "namespace shop {\n  workload frontend = {app=web}\n  frontend -> api:8080\n}\n",
        )];
        let ir = crate::compile(&sources).ir.expect("compiles");
        let inv = cluster();
        let err =
            |from: &str, to: &str| explain(&sources, &ir, &inv, from, to).expect_err("an error").to_string();
        assert_eq!(
            err("shop/frontend", "shop/api-1:8080"),
            "namespace `shop` has no pod `frontend`; did you mean `shop/web-1`? (`frontend` as a workload is \
             the pods of workload `frontend` (`app=web`): pods are named by their controller, or in a cluster \
             synthesized from the program after their `app` label)"
        );
        // An undeclared name means `app=<name>`; the destination gets the same help.
        assert!(
            err("shop/web-1", "shop/db:5432")
                .starts_with("namespace `shop` has no pod `db`; did you mean `shop/db-0`?"),
            "{}",
            err("shop/web-1", "shop/db:5432")
        );
        // The namespace left out (`default`): the pod or workload of that name elsewhere.
        assert_eq!(
            err("default/web-1", "shop/api-1:8080"),
            "the cluster has no namespace `default`; did you mean `shop/web-1`?"
        );
        assert_eq!(
            err("shop/web-1", "default/frontend:8080"),
            "the cluster has no namespace `default`; did you mean `shop/web-1`?"
        );
    }
}
