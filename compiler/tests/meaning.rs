//! Programs mean what docs/language.md says they mean (issue 9, "Done when").
//!
//! Random programs with overlapping selectors are generated as data (workloads sharing labels,
//! door statements on subsets and overlapping selectors of arrow sources and targets, isolated
//! workloads, namespaces chosen by name and by labels, `*/*`, `anywhere`, `dns`, address blocks with
//! exceptions, port numbers, ranges, named ports and whole protocols, TCP/UDP/SCTP, one-sided
//! arrows, `default deny`), written out as netc source and compiled. Then, flow by flow, between
//! random pods (whose labels overlap the selectors) and external addresses, on every protocol and
//! ports on both sides of every boundary the rules draw, three judges must agree:
//!
//! - the generated NetworkPolicy YAML, read back and judged by the independent Kubernetes
//!   evaluator (`netc::analysis::k8s_eval`);
//! - the IR, judged by `netc_ir::eval`;
//! - [`Reference`]: what docs/language.md says the program means, written here from the docs
//!   ("The model: two doors per workload", "Arrows", "One-sided arrows", "Doors", "Namespace
//!   defaults", "Overlapping workloads"), not from the compiler.
//!
//! A program may instead be refused, but only with an error the docs name for it ([`REFUSALS`]).
//!
//! To add a case: widen a generator below and the reference with the sentence of the docs that
//! gives its meaning. A failure prints the program; keep it as a regression test in overlap.rs or
//! surface.rs.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use netc::SourceFile;
use netc::analysis::k8s_eval::K8sEvaluator;
use netc::{codegen, yaml};
use netc_ir::eval::{Endpoint, Evaluator, Family, Flow};
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{ExternalAddress, Inventory, NamedPort, Namespace, Pod, Protocol};
use proptest::prelude::*;

/// The errors the docs name for programs of this generator: E0301 (language.md, "Doors": an
/// arrow whose target can include isolated pods, or whose egress rule would select them), E0302
/// and E0303 (a door declared open that a statement guards, or that a statement about a wider set
/// of pods guards) and E0001 for `default deny` ending a line before a one-sided arrow
/// ("Lexical structure").
const REFUSALS: [&str; 4] = ["E0301", "E0001", "E0302", "E0303"];

/// Ports tried on every protocol: both sides of every boundary the generator draws.
const PORTS: [u16; 13] = [1, 52, 53, 79, 80, 81, 443, 7999, 8000, 8080, 8100, 8101, 65535];

// ---------- decoding from bytes ----------

/// Choices read from random bytes (0 past the end), so that proptest shrinks to short programs.
struct Bytes<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn below(&mut self, n: usize) -> usize {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        usize::from(b) % n
    }

    fn chance(&mut self, k: usize, n: usize) -> bool {
        self.below(n) < k
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

// ---------- programs, as the docs describe them ----------

/// One requirement of a selector (language.md, "Declaring workloads").
#[derive(Debug, Clone)]
enum Req {
    Eq(&'static str, &'static str),
    Ne(&'static str, &'static str),
    In(&'static str, [&'static str; 2]),
    NotIn(&'static str, &'static str),
    Exists(&'static str),
    Absent(&'static str),
}

/// Label keys and the values the generator uses for them (pods carry the same ones).
const KEYS: [(&str, [&str; 2]); 2] = [("app", ["web", "db"]), ("tier", ["p", "q"])];

#[derive(Debug, Clone)]
struct Sel(Vec<Req>);

impl Sel {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &str| labels.get(k).map(String::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v),
            Req::Ne(k, v) => get(k) != Some(v),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.contains(&x)),
            Req::NotIn(k, v) => get(k) != Some(v),
            Req::Exists(k) => get(k).is_some(),
            Req::Absent(k) => get(k).is_none(),
        })
    }

    /// The selector as Kubernetes sees it: `key!=v` and `key notin (v)` are both `NotIn [v]`
    /// (language.md, "Declaring workloads"), so they are one workload.
    fn canonical(&self) -> String {
        let same: Vec<Req> = self
            .0
            .iter()
            .map(|r| match r {
                Req::Ne(k, v) => Req::NotIn(k, v),
                other => other.clone(),
            })
            .collect();
        Sel(same).text()
    }

    fn text(&self) -> String {
        let reqs: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Req::Eq(k, v) => format!("{k}={v}"),
                Req::Ne(k, v) => format!("{k}!={v}"),
                Req::In(k, [a, b]) => format!("{k} in ({a}, {b})"),
                Req::NotIn(k, v) => format!("{k} notin ({v})"),
                Req::Exists(k) => (*k).to_owned(),
                Req::Absent(k) => format!("!{k}"),
            })
            .collect();
        format!("{{{}}}", reqs.join(", "))
    }
}

/// Where the pods of an end live (language.md, "Workloads and endpoints").
#[derive(Debug, Clone, Copy)]
enum Scope {
    /// The statement's namespace.
    Here,
    /// `a/...`.
    Named(&'static str),
    /// `{team=x}/...`: the namespaces with that label.
    Team(&'static str),
    /// `*/...`.
    Every,
}

#[derive(Debug, Clone)]
enum End {
    /// Pods: `sel` `None` is every pod of the scope.
    Pods {
        scope: Scope,
        sel: Option<Sel>,
        text: String,
    },
    /// An address block, less an exception.
    Block {
        cidr: (Ipv4Addr, u8),
        except: Option<(Ipv4Addr, u8)>,
        text: String,
    },
    Anywhere,
    /// `dns`, a target only: "pods `k8s-app=kube-dns` in `kube-system`, UDP and TCP 53".
    Dns,
}

impl End {
    fn text(&self) -> &str {
        match self {
            End::Pods { text, .. } | End::Block { text, .. } => text,
            End::Anywhere => "anywhere",
            End::Dns => "dns",
        }
    }

    /// Pods of exactly one namespace (language.md, "Arrows": only these have doors netc writes).
    fn one_namespace(&self) -> bool {
        matches!(self, End::Pods { scope: Scope::Here | Scope::Named(_), .. })
    }
}

/// A port of a target (language.md, "Ports").
#[derive(Debug, Clone, Copy)]
enum PortM {
    Range(Protocol, u16, u16),
    Named(Protocol),
    Every(Protocol),
}

#[derive(Debug, Clone)]
struct Target {
    end: End,
    /// Empty: every port of every protocol.
    ports: Vec<PortM>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DoorWords {
    Ingress,
    Egress,
    Both,
    Isolated,
    /// `ingress open`, `egress open`: the default, stated (language.md, "Doors").
    IngressOpen,
    EgressOpen,
}

#[derive(Debug, Clone)]
enum Stmt {
    Arrow {
        one_sided: bool,
        sources: Vec<End>,
        targets: Vec<Target>,
    },
    Door {
        subject: End,
        words: DoorWords,
    },
    /// `default deny`, `default deny ingress|egress`.
    DefaultDeny {
        ingress: bool,
        egress: bool,
    },
}

#[derive(Debug, Clone)]
struct Block {
    ns: &'static str,
    stmts: Vec<Stmt>,
}

#[derive(Debug, Clone)]
struct Program(Vec<Block>);

// ---------- generating ----------

const NAMESPACES: [&str; 3] = ["a", "b", "c"];

fn sel(g: &mut Bytes<'_>) -> Sel {
    let mut reqs = Vec::new();
    let first = g.below(2);
    let both = g.chance(1, 3);
    for (i, (key, values)) in KEYS.iter().enumerate() {
        if i != first && !both {
            continue;
        }
        let v = g.pick(values);
        reqs.push(match g.below(8) {
            0 => Req::Ne(key, v),
            1 => Req::In(key, *values),
            2 => Req::NotIn(key, v),
            3 => Req::Exists(key),
            4 => Req::Absent(key),
            _ => Req::Eq(key, v),
        });
    }
    Sel(reqs)
}

/// Pods of the statement's namespace, as a door statement's subject or an arrow end.
fn local_pods(g: &mut Bytes<'_>, workloads: &[(String, Sel)]) -> End {
    let here = |sel: Option<Sel>, text: String| End::Pods { scope: Scope::Here, sel, text };
    match g.below(6) {
        0 => here(None, "*".to_owned()),
        1 | 2 if !workloads.is_empty() => {
            let (name, s) = &workloads[g.below(workloads.len())];
            here(Some(s.clone()), name.clone())
        }
        3 => {
            let app = g.pick(&["web", "db"]);
            here(Some(Sel(vec![Req::Eq("app", app)])), app.to_owned())
        }
        _ => {
            let s = sel(g);
            let text = s.text();
            here(Some(s), text)
        }
    }
}

fn block_end(g: &mut Bytes<'_>) -> End {
    let v4 = |a: [u8; 4]| Ipv4Addr::from(a);
    let (cidr, except, text) = match g.below(4) {
        0 => ((v4([10, 0, 1, 0]), 24), None, "10.0.1.0/24"),
        1 => ((v4([10, 0, 0, 0]), 16), Some((v4([10, 0, 2, 0]), 24)), "10.0.0.0/16 except 10.0.2.0/24"),
        2 => ((v4([192, 0, 2, 0]), 24), None, "192.0.2.0/24"),
        _ => ((v4([0, 0, 0, 0]), 0), Some((v4([10, 0, 0, 0]), 8)), "0.0.0.0/0 except 10.0.0.0/8"),
    };
    End::Block { cidr, except, text: text.to_owned() }
}

fn end(g: &mut Bytes<'_>, workloads: &[(String, Sel)]) -> End {
    match g.below(14) {
        0 => End::Pods { scope: Scope::Every, sel: None, text: "*/*".to_owned() },
        1 => {
            let s = sel(g);
            let text = format!("*/{}", s.text());
            End::Pods { scope: Scope::Every, sel: Some(s), text }
        }
        2 => {
            let team = g.pick(&["x", "y"]);
            End::Pods { scope: Scope::Team(team), sel: None, text: format!("{{team={team}}}/*") }
        }
        3 if !workloads.is_empty() => {
            // A declared name behind a namespace selector: its declared pods, in those namespaces.
            let team = g.pick(&["x", "y"]);
            let (name, s) = &workloads[g.below(workloads.len())];
            End::Pods {
                scope: Scope::Team(team),
                sel: Some(s.clone()),
                text: format!("{{team={team}}}/{name}"),
            }
        }
        4 => {
            let ns = g.pick(&NAMESPACES);
            let app = g.pick(&["web", "db"]);
            End::Pods {
                scope: Scope::Named(ns),
                sel: Some(Sel(vec![Req::Eq("app", app)])),
                text: format!("{ns}/{app}"),
            }
        }
        5 => {
            let ns = g.pick(&NAMESPACES);
            End::Pods { scope: Scope::Named(ns), sel: None, text: format!("{ns}/*") }
        }
        6 => block_end(g),
        7 => End::Anywhere,
        _ => local_pods(g, workloads),
    }
}

fn port(g: &mut Bytes<'_>) -> (PortM, String) {
    let proto = g.pick(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::Sctp]);
    let suffix = match proto {
        Protocol::Tcp => "",
        Protocol::Udp => "/udp",
        Protocol::Sctp => "/sctp",
    };
    match g.below(6) {
        0 => (PortM::Range(proto, 8000, 8100), format!("8000-8100{suffix}")),
        1 => (PortM::Named(proto), format!("http{suffix}")),
        2 => (PortM::Every(proto), format!("*{suffix}")),
        3 => (PortM::Range(proto, 53, 53), format!("53{suffix}")),
        _ => (PortM::Range(proto, 80, 80), format!("80{suffix}")),
    }
}

fn target(g: &mut Bytes<'_>, workloads: &[(String, Sel)]) -> (Target, String) {
    if g.chance(1, 10) {
        // `dns` takes no ports (E0208): UDP and TCP 53.
        let ports = vec![PortM::Range(Protocol::Udp, 53, 53), PortM::Range(Protocol::Tcp, 53, 53)];
        return (Target { end: End::Dns, ports }, "dns".to_owned());
    }
    let end = end(g, workloads);
    let (ports, text) = match g.below(4) {
        0 => (Vec::new(), String::new()),
        1 => {
            let (p, t) = port(g);
            (vec![p], format!(":{t}"))
        }
        _ => {
            let (p, t) = port(g);
            let (q, u) = port(g);
            (vec![p, q], format!(":[{t}, {u}]"))
        }
    };
    let text = format!("{}{text}", end.text());
    (Target { end, ports }, text)
}

/// A program and its source text.
fn program(bytes: &[u8]) -> (Program, String) {
    let mut g = Bytes { bytes, pos: 0 };
    let mut blocks = Vec::new();
    let mut text = String::new();
    let first = g.below(3);
    let count = 1 + g.below(2);
    for b in 0..count {
        let ns = NAMESPACES[(first + b) % NAMESPACES.len()];
        text.push_str(&format!("namespace {ns} {{\n"));
        let mut workloads = Vec::new();
        for k in 0..g.below(3) {
            let name = format!("w{b}{k}");
            let s = sel(&mut g);
            text.push_str(&format!("  workload {name} = {}\n", s.text()));
            workloads.push((name, s));
        }
        let mut stmts = Vec::new();
        for _ in 0..1 + g.below(5) {
            let (stmt, line) = match g.below(10) {
                0..=4 => {
                    let one_sided = g.chance(1, 5);
                    let sources: Vec<End> = (0..1 + g.below(2)).map(|_| end(&mut g, &workloads)).collect();
                    let targets: Vec<(Target, String)> =
                        (0..1 + g.below(2)).map(|_| target(&mut g, &workloads)).collect();
                    let line = format!(
                        "{}{} -> {}",
                        if one_sided { "egress " } else { "" },
                        sources.iter().map(End::text).collect::<Vec<_>>().join(", "),
                        targets.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(", ")
                    );
                    let targets = targets.into_iter().map(|(t, _)| t).collect();
                    (Stmt::Arrow { one_sided, sources, targets }, line)
                }
                5..=7 => {
                    let subject = local_pods(&mut g, &workloads);
                    let words = g.pick(&[
                        DoorWords::Egress,
                        DoorWords::Egress,
                        DoorWords::Ingress,
                        DoorWords::Both,
                        DoorWords::Isolated,
                        DoorWords::IngressOpen,
                        DoorWords::EgressOpen,
                    ]);
                    let said = match words {
                        DoorWords::Ingress => "ingress guarded",
                        DoorWords::Egress => "egress guarded",
                        DoorWords::Both => "guarded",
                        DoorWords::Isolated => "isolated",
                        DoorWords::IngressOpen => "ingress open",
                        DoorWords::EgressOpen => "egress open",
                    };
                    let line = format!("{} {said}", subject.text());
                    (Stmt::Door { subject, words }, line)
                }
                8 => {
                    let (ingress, egress, said) =
                        g.pick(&[(true, true, ""), (true, false, " ingress"), (false, true, " egress")]);
                    (Stmt::DefaultDeny { ingress, egress }, format!("default deny{said}"))
                }
                // "`default allow ingress` ... (same as `anywhere -> *`)" (Namespace defaults).
                _ => (
                    Stmt::Arrow {
                        one_sided: false,
                        sources: vec![End::Anywhere],
                        targets: vec![Target {
                            end: End::Pods { scope: Scope::Here, sel: None, text: "*".to_owned() },
                            ports: Vec::new(),
                        }],
                    },
                    "default allow ingress".to_owned(),
                ),
            };
            text.push_str(&format!("  {line}\n"));
            stmts.push(stmt);
        }
        text.push_str("}\n");
        blocks.push(Block { ns, stmts });
    }
    (Program(blocks), text)
}

/// Namespaces a and c are labelled team=x, b team=y, and kube-system (with a kube-dns pod, most
/// of the time); pods anywhere, with overlapping labels, a
/// container port `http` (TCP 8080, UDP 80 or SCTP 80) or none; addresses 10.0.N.I, inside and
/// outside the blocks; and external addresses inside and outside them.
fn cluster(bytes: &[u8]) -> Inventory {
    let mut g = Bytes { bytes, pos: 0 };
    let mut namespaces: Vec<Namespace> = NAMESPACES
        .iter()
        .zip(["x", "y", "x"])
        .map(|(name, team)| Namespace {
            name: (*name).to_owned(),
            labels: BTreeMap::from([
                (NAMESPACE_NAME_LABEL.to_owned(), (*name).to_owned()),
                ("team".to_owned(), team.to_owned()),
            ]),
        })
        .collect();
    namespaces.push(Namespace {
        name: "kube-system".to_owned(),
        labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), "kube-system".to_owned())]),
    });
    let mut pods = Vec::new();
    for i in 0..3 + g.below(6) {
        let n = g.below(3);
        let mut labels = BTreeMap::new();
        for (key, values) in KEYS {
            match g.below(3) {
                0 => {}
                v => {
                    labels.insert(key.to_owned(), values[v - 1].to_owned());
                }
            }
        }
        let ports = match g.below(4) {
            0 => vec![NamedPort { name: "http".into(), port: 8080, protocol: Protocol::Tcp }],
            1 => vec![NamedPort { name: "http".into(), port: 80, protocol: Protocol::Udp }],
            2 => vec![NamedPort { name: "http".into(), port: 80, protocol: Protocol::Sctp }],
            _ => Vec::new(),
        };
        pods.push(Pod {
            namespace: NAMESPACES[n].to_owned(),
            name: format!("p{i}"),
            labels,
            ips: vec![IpAddr::V4(Ipv4Addr::new(
                10,
                0,
                u8::try_from(n).expect("small"),
                10 + u8::try_from(i).expect("small"),
            ))],
            ports,
            node: None,
            host_interface: None,
            host_network: false,
        });
    }
    if g.chance(2, 3) {
        pods.push(Pod {
            namespace: "kube-system".to_owned(),
            name: "coredns".to_owned(),
            labels: BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]),
            ips: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 3, 10))],
            ports: Vec::new(),
            node: None,
            host_interface: None,
            host_network: false,
        });
    }
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let externals = ["192.0.2.7", "10.0.1.200", "8.8.8.8"]
        .iter()
        .enumerate()
        .map(|(i, a)| ExternalAddress { name: format!("x{i}"), address: a.parse().expect("ip") })
        .collect();
    Inventory { namespaces, pods, externals, implied_namespaces: Vec::new(), services: Vec::new() }
}

// ---------- the reference: what docs/language.md says ----------

/// One end of a flow.
#[derive(Clone, Copy)]
struct Ep<'a> {
    pod: Option<&'a Pod>,
    ip: Ipv4Addr,
}

struct Reference<'a> {
    program: &'a Program,
    cluster: &'a Inventory,
}

fn in_block(ip: Ipv4Addr, (net, len): (Ipv4Addr, u8)) -> bool {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    u32::from(ip) & mask == u32::from(net) & mask
}

impl Reference<'_> {
    fn team(&self, namespace: &str) -> Option<&str> {
        self.cluster.namespace(namespace).and_then(|n| n.labels.get("team")).map(String::as_str)
    }

    /// Whether `end`, written in namespace `here`, stands for `ep` ("Workloads and endpoints";
    /// an address block matches pods by their address: "ipBlock and pods").
    fn matches(&self, end: &End, here: &str, ep: Ep<'_>) -> bool {
        match end {
            End::Anywhere => true,
            End::Dns => ep.pod.is_some_and(|p| {
                p.namespace == "kube-system" && p.labels.get("k8s-app").is_some_and(|v| v == "kube-dns")
            }),
            End::Block { cidr, except, .. } => {
                in_block(ep.ip, *cidr) && except.is_none_or(|e| !in_block(ep.ip, e))
            }
            End::Pods { scope, sel, .. } => {
                let Some(pod) = ep.pod else { return false };
                let ns_ok = match scope {
                    Scope::Here => pod.namespace == here,
                    Scope::Named(n) => pod.namespace == *n,
                    Scope::Team(t) => self.team(&pod.namespace) == Some(t),
                    Scope::Every => true,
                };
                ns_ok && sel.as_ref().is_none_or(|s| s.matches(&pod.labels))
            }
        }
    }

    /// Whether a target's ports take the flow ("Ports": none is every port and protocol; a named
    /// port is the destination pod's container port of that name and protocol).
    fn port_ok(ports: &[PortM], dst: Ep<'_>, protocol: Protocol, port: u16) -> bool {
        ports.is_empty()
            || ports.iter().any(|p| match *p {
                PortM::Range(proto, lo, hi) => proto == protocol && (lo..=hi).contains(&port),
                PortM::Every(proto) => proto == protocol,
                PortM::Named(proto) => {
                    proto == protocol
                        && dst.pod.is_some_and(|pod| {
                            pod.ports
                                .iter()
                                .any(|n| n.name == "http" && n.protocol == proto && n.port == port)
                        })
                }
            })
    }

    /// The door statements of `pod`'s namespace that are about it, with their words.
    fn doors_of<'p>(&'p self, pod: &'p Pod) -> impl Iterator<Item = &'p Stmt> + 'p {
        let blocks = self.program.0.iter().filter(move |b| b.ns == pod.namespace);
        blocks.flat_map(move |b| {
            b.stmts.iter().filter(move |s| match s {
                Stmt::Door { subject, .. } => {
                    self.matches(subject, b.ns, Ep { pod: Some(pod), ip: Ipv4Addr::UNSPECIFIED })
                }
                _ => true,
            })
        })
    }

    /// Whether the ingress of the pods `end` (of one namespace, written in `here`) is declared
    /// open: "an arrow into a workload whose ingress is declared open writes only the egress
    /// side". The same selector is the same workload ("Two workloads with the same selector are
    /// the same pods").
    fn declared_open(&self, end: &End, here: &str) -> bool {
        let key = |e: &End, here: &'static str| match e {
            End::Pods { scope: Scope::Here, sel, .. } => Some((here, sel.as_ref().map(Sel::canonical))),
            End::Pods { scope: Scope::Named(n), sel, .. } => Some((*n, sel.as_ref().map(Sel::canonical))),
            _ => None,
        };
        let Some(here) = NAMESPACES.iter().copied().find(|n| *n == here) else { return false };
        let wanted = key(end, here);
        self.program.0.iter().any(|b| {
            b.stmts.iter().any(|s| {
                matches!(s, Stmt::Door { subject, words: DoorWords::IngressOpen } if key(subject, b.ns) == wanted)
            })
        })
    }

    fn isolated(&self, pod: &Pod) -> bool {
        self.doors_of(pod).any(|s| matches!(s, Stmt::Door { words: DoorWords::Isolated, .. }))
    }

    /// "Being the target of an arrow guards the target's ingress" (not a one-sided arrow's, not
    /// when the target is several namespaces); door statements and namespace defaults guard it.
    fn ingress_guarded(&self, pod: &Pod) -> bool {
        let by_statement = self.doors_of(pod).any(|s| match s {
            Stmt::Door { words, .. } => {
                matches!(words, DoorWords::Ingress | DoorWords::Both | DoorWords::Isolated)
            }
            Stmt::DefaultDeny { ingress, .. } => *ingress,
            Stmt::Arrow { .. } => false,
        });
        let ep = Ep { pod: Some(pod), ip: Ipv4Addr::UNSPECIFIED };
        by_statement
            || self.arrows().any(|(here, one_sided, _, targets)| {
                !one_sided
                    && targets.iter().any(|t| {
                        t.end.one_namespace()
                            && !self.declared_open(&t.end, here)
                            && self.matches(&t.end, here, ep)
                    })
            })
    }

    /// Egress is guarded only when asked (`egress guarded`, `guarded`, `isolated`, `default deny
    /// [egress]`).
    fn egress_guarded(&self, pod: &Pod) -> bool {
        self.doors_of(pod).any(|s| match s {
            Stmt::Door { words, .. } => {
                matches!(words, DoorWords::Egress | DoorWords::Both | DoorWords::Isolated)
            }
            Stmt::DefaultDeny { egress, .. } => *egress,
            _ => false,
        })
    }

    fn arrows(&self) -> impl Iterator<Item = (&str, bool, &[End], &[Target])> {
        self.program.0.iter().flat_map(|b| {
            b.stmts.iter().filter_map(move |s| match s {
                Stmt::Arrow { one_sided, sources, targets } => {
                    Some((b.ns, *one_sided, sources.as_slice(), targets.as_slice()))
                }
                _ => None,
            })
        })
    }

    /// "Kubernetes allows a connection only if the sender's egress and the receiver's ingress
    /// allow it."
    fn allows(&self, src: Ep<'_>, dst: Ep<'_>, protocol: Protocol, port: u16) -> bool {
        self.egress_allows(src, dst, protocol, port) && self.ingress_allows(src, dst, protocol, port)
    }

    /// A guarded egress lets out only declared flows: an arrow (either kind) from sources that
    /// are pods of one namespace and include the sender ("An arrow is for all of its source
    /// pods"; "Arrows whose sources are pods of namespaces chosen by labels (`{team=x}/*`, `*/*`)
    /// write only ingress rules"; addresses and `anywhere` "only appear in ingress rules").
    /// Isolated pods "stay shut by their own egress door".
    fn egress_allows(&self, src: Ep<'_>, dst: Ep<'_>, protocol: Protocol, port: u16) -> bool {
        let Some(pod) = src.pod else { return true };
        if !self.egress_guarded(pod) {
            return true;
        }
        if self.isolated(pod) {
            return false;
        }
        self.arrows().any(|(here, _, sources, targets)| {
            sources.iter().any(|s| s.one_namespace() && self.matches(s, here, src))
                && targets
                    .iter()
                    .any(|t| self.matches(&t.end, here, dst) && Self::port_ok(&t.ports, dst, protocol, port))
        })
    }

    /// A guarded ingress lets in only declared flows: an arrow into pods of one namespace that
    /// include the receiver, from sources that include the sender (a one-sided arrow too: "where
    /// something else guards a target's ingress, the flow is added to that ingress too"), unless
    /// the target's ingress is declared open. Isolated pods: "no calls in".
    fn ingress_allows(&self, src: Ep<'_>, dst: Ep<'_>, protocol: Protocol, port: u16) -> bool {
        let Some(pod) = dst.pod else { return true };
        if !self.ingress_guarded(pod) {
            return true;
        }
        if self.isolated(pod) {
            return false;
        }
        self.arrows().any(|(here, _, sources, targets)| {
            sources.iter().any(|s| self.matches(s, here, src))
                && targets.iter().any(|t| {
                    t.end.one_namespace()
                        && !self.declared_open(&t.end, here)
                        && self.matches(&t.end, here, dst)
                        && Self::port_ok(&t.ports, dst, protocol, port)
                })
        })
    }
}

// ---------- the property ----------

fn check(program_bytes: &[u8], cluster_bytes: &[u8]) -> Result<(), TestCaseError> {
    let (program, text) = program(program_bytes);
    let sources = [SourceFile::new("random.np", text.as_str())];
    let out = netc::compile(&sources);
    let errors: Vec<&str> = out
        .diagnostics
        .iter()
        .filter(|d| d.severity == netc::diagnostics::Severity::Error)
        .map(|d| d.code)
        .collect();
    if !errors.is_empty() {
        prop_assert!(
            errors.iter().all(|c| REFUSALS.contains(c)),
            "refused with an error the docs do not name for this program: {errors:?}\n{text}"
        );
        return Ok(());
    }
    let ir = out.ir.expect("no errors, so an IR");
    let inventory = cluster(cluster_bytes);
    let yaml_text = yaml::render_stream(&codegen::network_policies(&ir), &ir.sources);
    let objects = yaml::parse_network_policies(&yaml_text).expect("generated YAML parses");
    let k8s = K8sEvaluator::new(&objects, &inventory).expect("generated policies are valid");
    let eval = Evaluator::new(&ir, &inventory);
    let reference = Reference { program: &program, cluster: &inventory };
    let ends: Vec<(Endpoint<'_>, Ep<'_>)> = inventory
        .pods
        .iter()
        .map(|p| {
            let IpAddr::V4(ip) = p.ips[0] else { unreachable!("IPv4 pods") };
            (Endpoint::Pod(p), Ep { pod: Some(p), ip })
        })
        .chain(inventory.externals.iter().map(|e| {
            let IpAddr::V4(ip) = e.address else { unreachable!("IPv4 addresses") };
            (Endpoint::External(e.address), Ep { pod: None, ip })
        }))
        .collect();
    for &(src, s) in &ends {
        for &(dst, d) in &ends {
            for protocol in Protocol::ALL {
                for port in PORTS {
                    let flow = Flow { src, dst, protocol, port, family: Family::V4 };
                    let by_yaml = k8s.evaluate(&flow).allowed;
                    let by_ir = eval.evaluate(&flow).allowed;
                    let by_docs = reference.allows(s, d, protocol, port);
                    prop_assert!(
                        by_yaml == by_ir && by_ir == by_docs,
                        "{src} -> {dst} on {protocol}/{port}: YAML {by_yaml}, IR {by_ir}, docs {by_docs}\n\
                         --- program\n{text}--- pods\n{pods}\n--- YAML\n{yaml_text}",
                        pods = inventory
                            .pods
                            .iter()
                            .map(|p| format!(
                                "{}/{} {:?} {:?} {:?}",
                                p.namespace, p.name, p.labels, p.ips, p.ports
                            ))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    // Bounded so that CI stays fast (about 4 s in a debug build); PROPTEST_CASES=10000 for a
    // longer search (about 5 minutes).
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn programs_with_overlapping_selectors_mean_what_the_docs_say(
        program in prop::collection::vec(any::<u8>(), 0..200),
        cluster in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        check(&program, &cluster)?;
    }
}

/// The generator reaches what it is for: overlapping guards, isolation, label-chosen namespaces,
/// one-sided arrows, named ports; and most programs compile.
#[test]
fn generated_programs_are_varied_and_mostly_compile() {
    let mut compiled = 0;
    let mut seen = BTreeMap::new();
    for seed in 0..400u32 {
        let bytes: Vec<u8> = (0..90u32)
            .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 7) as u8)
            .collect();
        let (_, text) = program(&bytes);
        for feature in [
            "isolated",
            "egress guarded",
            "{team=",
            "*/",
            "egress ",
            "http",
            "except",
            "anywhere",
            "default deny",
            "dns",
            " open",
        ] {
            if text.contains(feature) {
                *seen.entry(feature).or_insert(0) += 1;
            }
        }
        if !netc::compile(&[SourceFile::new("random.np", text.as_str())]).has_errors() {
            compiled += 1;
        }
    }
    assert!(compiled > 200, "only {compiled} of 400 compile");
    assert_eq!(seen.len(), 11, "{seen:?}");
}
