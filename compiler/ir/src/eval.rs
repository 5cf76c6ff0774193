//! The reference evaluator: Kubernetes NetworkPolicy semantics over the IR.
//!
//! Given an [`Ir`] and a cluster ([`Inventory`]), [`Evaluator::evaluate`] decides whether one
//! [`Flow`] (source, destination, protocol, destination port) is allowed, and why: for each end,
//! which rules let it through its door, or which policies guard the door that stopped it. This is
//! the oracle everything else is checked against (the generated YAML, the matrix, the eBPF
//! datapath), so it is written for obviousness, not speed: see `netc::analysis::matrix` for the
//! fast all-pairs version.
//!
//! # Semantics (DESIGN.md, "Semantic corners")
//!
//! - A pod is isolated for a direction iff some policy *selecting* it (same namespace, pod
//!   selector matches its labels) guards that door. An unselected door is [`DoorVerdict::Open`].
//! - What passes a guarded door is the union of the rules of every policy that selects the pod and
//!   guards that door. Within a rule the peer AND the port must match; peers, ports, rules and
//!   policies are OR'ed. A rule with no peers matches every peer; with no ports every port.
//! - [`Peer::Pods`] with `namespaces: None` means the policy's own namespace; `Some(empty)` means
//!   every namespace; a namespace selector matches the namespace's labels, which always include
//!   `kubernetes.io/metadata.name`. A namespace missing from the inventory is taken to carry only
//!   that label. A pod peer never matches an external address.
//! - [`Peer::IpBlock`] matches an external address in `cidr` and in none of the `except`
//!   prefixes, IPv4 and IPv6 alike. It also matches **pods** by address (as Calico and Antrea do
//!   and the upstream e2e tests expect; Cilium does not), by the address the flow uses: a packet
//!   carries one source and one destination address, of one [`Family`] ([`Flow::family`]), so a
//!   dual-stack pod's IPv4 flow is judged by its IPv4 addresses only (DESIGN.md corner 14) and an
//!   IPv6 block never lets an IPv4 connection through. A pod with no address of the flow's family
//!   never matches an ipBlock. [`Flow::families`] says which families two ends can use.
//! - Ports are destination ports. A named port resolves on the **destination** pod, for ingress
//!   and egress rules alike (`Port::matches` with the destination's named ports); an external
//!   destination has no named ports, so a named port never matches it.
//! - **hostNetwork pods** share their node's network namespace and are not subject to
//!   NetworkPolicy: both their doors are [`DoorVerdict::Open`], and as peers they are matched by
//!   ipBlock only (by their addresses, which are the node's), never by a pod selector. netc's
//!   choice where Kubernetes leaves it undefined (DESIGN.md, corner 12).
//! - **Traffic from a pod's own node** always gets in: "pods cannot block access from their
//!   resident node" (Kubernetes, Network Policies; kubelet probes depend on it). The node is
//!   represented by the hostNetwork pods that run on it (same `spec.nodeName`, which both pods must
//!   have): a flow from one of them into a pod of that node whose ingress is guarded is
//!   [`DoorVerdict::FromOwnNode`]. From another node it is judged like any address (ipBlock).
//!   The pod's egress to its node is judged as usual.
//! - A flow is allowed iff the source's egress door lets it out AND the destination's ingress door
//!   lets it in. An external end has no door of ours ([`DoorVerdict::NotApplicable`]), which lets
//!   everything through; a flow between two external addresses is therefore allowed. Replies of
//!   allowed connections are allowed and not modelled here.
//! - Traffic from a pod to itself is judged like any other flow (the spec makes no exception;
//!   some CNIs let it pass anyway because it never leaves the pod).
//!
//! ```
//! use netc_ir::eval::{Endpoint, Evaluator, Family, Flow};
//! use netc_ir::{Inventory, Ir, Protocol};
//!
//! let ir = Ir::empty();
//! let inventory = Inventory::default();
//! let evaluator = Evaluator::new(&ir, &inventory);
//! let flow = Flow {
//!     src: Endpoint::External("192.0.2.1".parse().expect("an address")),
//!     dst: Endpoint::External("192.0.2.2".parse().expect("an address")),
//!     protocol: Protocol::Tcp,
//!     port: 443,
//!     family: Family::V4,
//! };
//! assert!(evaluator.evaluate(&flow).allowed);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::inventory::NAMESPACE_NAME_LABEL;
use crate::{Direction, Inventory, Ir, Peer, Pod, Policy, Protocol, Rule};

/// One end of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    /// A pod of the cluster (usually one of the inventory's).
    Pod(&'a Pod),
    /// An address outside the cluster.
    External(IpAddr),
}

impl Endpoint<'_> {
    /// The pod, if this end is one.
    #[must_use]
    pub fn pod(&self) -> Option<&Pod> {
        match self {
            Endpoint::Pod(p) => Some(p),
            Endpoint::External(_) => None,
        }
    }
}

impl fmt::Display for Endpoint<'_> {
    /// `namespace/name` for a pod, the address for an external end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Pod(p) => write!(f, "{}/{}", p.namespace, p.name),
            Endpoint::External(ip) => write!(f, "{ip}"),
        }
    }
}

/// An address family: a packet's two addresses are both IPv4 or both IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family of `ip`.
    #[must_use]
    pub fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }
}

impl fmt::Display for Family {
    /// `IPv4` or `IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// One connection attempt: `src` opens a connection to `dst` on `protocol`/`port` (the
/// destination port; replies are not modelled, they follow the connection), over `family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow<'a> {
    /// Who sends: its egress door is judged.
    pub src: Endpoint<'a>,
    /// Who receives: its ingress door is judged.
    pub dst: Endpoint<'a>,
    /// The transport protocol.
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
    /// The address family the packets use: a pod end is matched by ipBlocks on its addresses of
    /// this family only. An external end is its own address (whose family this should be; see
    /// [`Flow::families`]).
    pub family: Family,
}

impl<'a> Flow<'a> {
    /// A flow from `src` to `dst` on `protocol`/`port`, over the first family the two ends can use
    /// ([`Flow::families`]: IPv4 when both have an IPv4 address). For ends of one family, or
    /// when any family will do (a counterexample, a test); a dual-stack pair has one flow per
    /// family, which a caller judging every flow builds itself.
    #[must_use]
    pub fn new(src: Endpoint<'a>, dst: Endpoint<'a>, protocol: Protocol, port: u16) -> Flow<'a> {
        let family = Flow::families(&src, &dst)[0];
        Flow { src, dst, protocol, port, family }
    }

    /// The families a flow between `src` and `dst` can use, IPv4 first: those both ends have an
    /// address of (a pod without addresses could have either; an external end has its own).
    /// Ends with no family in common cannot talk at all; they are judged on the family of the
    /// external end if there is one, else on the sender's, so that a verdict exists for every
    /// pair.
    #[must_use]
    pub fn families(src: &Endpoint<'_>, dst: &Endpoint<'_>) -> Vec<Family> {
        let of = |end: &Endpoint<'_>| -> [bool; 2] {
            match end {
                Endpoint::External(ip) => [ip.is_ipv4(), ip.is_ipv6()],
                Endpoint::Pod(pod) if pod.ips.is_empty() => [true, true],
                Endpoint::Pod(pod) => {
                    [pod.ips.iter().any(IpAddr::is_ipv4), pod.ips.iter().any(IpAddr::is_ipv6)]
                }
            }
        };
        let (a, b) = (of(src), of(dst));
        let shared: Vec<Family> = Family::BOTH
            .into_iter()
            .zip(a.iter().zip(&b))
            .filter(|(_, (x, y))| **x && **y)
            .map(|(f, _)| f)
            .collect();
        if !shared.is_empty() {
            return shared;
        }
        match (src, dst) {
            (_, Endpoint::External(ip)) | (Endpoint::External(ip), _) => vec![Family::of(*ip)],
            _ => Family::BOTH.into_iter().zip(a).filter(|(_, has)| *has).map(|(f, _)| f).take(1).collect(),
        }
    }
}

/// A policy of the IR, by its index in [`Ir::policies`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyRef {
    /// Index into [`Ir::policies`].
    pub policy: usize,
}

impl PolicyRef {
    /// The policy in `ir` (the IR the evaluator was built from), if the index is valid there.
    #[must_use]
    pub fn resolve<'i>(&self, ir: &'i Ir) -> Option<&'i Policy> {
        ir.policies.get(self.policy)
    }
}

/// A rule of the IR: its policy, its door and its index in that door's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// Index into [`Ir::policies`].
    pub policy: usize,
    /// Which door of the policy the rule belongs to.
    pub direction: Direction,
    /// Index into that door's [`crate::Door::rules`].
    pub rule: usize,
}

impl RuleRef {
    /// The policy and the rule in `ir` (the IR the evaluator was built from), if the indices are
    /// valid there. The rule carries its stable id and source span; the policy its namespace and
    /// name.
    #[must_use]
    pub fn resolve<'i>(&self, ir: &'i Ir) -> Option<(&'i Policy, &'i Rule)> {
        let policy = ir.policies.get(self.policy)?;
        Some((policy, policy.door(self.direction).rules.get(self.rule)?))
    }

    /// One line for explain-style output:
    /// ``ingress rule `web-to-api` of shop/api (shop.np:4:1)``, or `None` when the reference is
    /// not valid in `ir`.
    #[must_use]
    pub fn describe(&self, ir: &Ir) -> Option<String> {
        let (policy, rule) = self.resolve(ir)?;
        Some(format!(
            "{} rule `{}` of {}/{} ({})",
            self.direction, rule.id, policy.namespace, policy.name, rule.span
        ))
    }
}

/// What one door made of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorVerdict {
    /// That end is external: there is no door of ours on it. Lets the flow through.
    NotApplicable,
    /// No policy selecting the pod guards this door (or the pod uses the host network). Lets the
    /// flow through.
    Open,
    /// The door is guarded and these rules (every one that matches, in IR order) let the flow
    /// through.
    Allowed {
        /// Every matching rule, in IR order.
        rules: Vec<RuleRef>,
    },
    /// The door is guarded by these policies (in IR order) and none of their rules matches.
    Denied {
        /// Every policy that selects the pod and guards this door.
        guarded_by: Vec<PolicyRef>,
    },
    /// A guarded ingress door, and the flow comes from the pod's own node (a hostNetwork pod of
    /// the same node): it gets in whatever the rules say, since Kubernetes lets no pod block its
    /// node (kubelet probes).
    FromOwnNode {
        /// Every policy that selects the pod and guards this door (none of them decides).
        guarded_by: Vec<PolicyRef>,
    },
}

impl DoorVerdict {
    /// Whether the door lets the flow through.
    #[must_use]
    pub fn permits(&self) -> bool {
        !matches!(self, DoorVerdict::Denied { .. })
    }
}

/// The decision on one flow, with the reason at each end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `egress.permits() && ingress.permits()`.
    pub allowed: bool,
    /// The source's egress door.
    pub egress: DoorVerdict,
    /// The destination's ingress door.
    pub ingress: DoorVerdict,
}

/// Which halves of a rule match a flow (see [`Evaluator::rule_match`]); the rule lets the flow
/// through its door iff both do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleMatch {
    /// The other end of the flow is one of the rule's peers (or the rule has none).
    pub peer: bool,
    /// The destination port and protocol are one of the rule's ports (or the rule has none).
    pub port: bool,
}

/// Decides flows for one IR over one cluster. Cheap to build; holds references only.
#[derive(Debug)]
pub struct Evaluator<'a> {
    ir: &'a Ir,
    namespace_labels: HashMap<&'a str, &'a BTreeMap<String, String>>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator of `ir` over the cluster `inventory`. The inventory supplies namespace labels;
    /// the pods of a flow may come from elsewhere.
    #[must_use]
    pub fn new(ir: &'a Ir, inventory: &'a Inventory) -> Self {
        let namespace_labels = inventory.namespaces.iter().map(|n| (n.name.as_str(), &n.labels)).collect();
        Evaluator { ir, namespace_labels }
    }

    /// The IR this evaluator judges by (to resolve [`RuleRef`]s and [`PolicyRef`]s).
    #[must_use]
    pub fn ir(&self) -> &'a Ir {
        self.ir
    }

    /// Decide `flow`: allowed iff the source's egress and the destination's ingress both let it
    /// through. See the module documentation for the exact semantics.
    #[must_use]
    pub fn evaluate(&self, flow: &Flow<'_>) -> Verdict {
        let egress = match flow.src {
            Endpoint::External(_) => DoorVerdict::NotApplicable,
            Endpoint::Pod(pod) => self.door(pod, Direction::Egress, &flow.dst, flow),
        };
        let ingress = match flow.dst {
            Endpoint::External(_) => DoorVerdict::NotApplicable,
            Endpoint::Pod(pod) => self.door(pod, Direction::Ingress, &flow.src, flow),
        };
        Verdict { allowed: egress.permits() && ingress.permits(), egress, ingress }
    }

    /// The indices of the policies that select `pod` and guard its `direction` door, in IR order.
    /// Empty for a hostNetwork pod (not subject to policy).
    #[must_use]
    pub fn guarding_policies(&self, pod: &Pod, direction: Direction) -> Vec<PolicyRef> {
        if pod.host_network {
            return Vec::new();
        }
        self.ir
            .policies
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.door(direction).is_guarded()
                    && p.namespace == pod.namespace
                    && p.selector.matches(&pod.labels)
            })
            .map(|(policy, _)| PolicyRef { policy })
            .collect()
    }

    /// How one rule judges `flow` at its door: whether its peers and its ports match, separately
    /// (explain-style "why not" output). `None` when `rule` is not valid in the IR. The rule is
    /// judged as written, whether or not its policy selects the flow's end.
    #[must_use]
    pub fn rule_match(&self, rule: RuleRef, flow: &Flow<'_>) -> Option<RuleMatch> {
        let (policy, r) = rule.resolve(self.ir)?;
        let peer = match rule.direction {
            Direction::Ingress => &flow.src,
            Direction::Egress => &flow.dst,
        };
        let named = match flow.dst {
            Endpoint::Pod(dst) => dst.ports.as_slice(),
            Endpoint::External(_) => &[],
        };
        Some(RuleMatch {
            peer: r.peers.is_empty()
                || r.peers.iter().any(|p| self.peer_matches(policy, p, peer, flow.family)),
            port: r.ports.is_empty() || r.ports.iter().any(|p| p.matches(flow.protocol, flow.port, named)),
        })
    }

    /// `holder`'s `direction` door, for a flow whose other end is `peer`.
    fn door(&self, holder: &Pod, direction: Direction, peer: &Endpoint<'_>, flow: &Flow<'_>) -> DoorVerdict {
        let guarded_by = self.guarding_policies(holder, direction);
        if guarded_by.is_empty() {
            return DoorVerdict::Open;
        }
        if direction == Direction::Ingress && from_own_node(peer, holder) {
            return DoorVerdict::FromOwnNode { guarded_by };
        }
        // Named ports are the destination's, whichever door is judged.
        let named = match flow.dst {
            Endpoint::Pod(dst) => dst.ports.as_slice(),
            Endpoint::External(_) => &[],
        };
        let mut rules = Vec::new();
        for policy_ref in &guarded_by {
            let policy = &self.ir.policies[policy_ref.policy];
            for (index, rule) in policy.door(direction).rules.iter().enumerate() {
                let peer_ok = rule.peers.is_empty()
                    || rule.peers.iter().any(|p| self.peer_matches(policy, p, peer, flow.family));
                let port_ok = rule.ports.is_empty()
                    || rule.ports.iter().any(|p| p.matches(flow.protocol, flow.port, named));
                if peer_ok && port_ok {
                    rules.push(RuleRef { policy: policy_ref.policy, direction, rule: index });
                }
            }
        }
        if rules.is_empty() { DoorVerdict::Denied { guarded_by } } else { DoorVerdict::Allowed { rules } }
    }

    /// Whether `peer` (written in `policy`) names the endpoint `who`.
    fn peer_matches(&self, policy: &Policy, peer: &Peer, who: &Endpoint<'_>, family: Family) -> bool {
        match peer {
            Peer::Pods { namespaces, pods } => {
                let Endpoint::Pod(pod) = who else { return false };
                if pod.host_network {
                    return false;
                }
                let namespace_ok = match namespaces {
                    None => pod.namespace == policy.namespace,
                    Some(selector) => self.with_namespace_labels(&pod.namespace, |l| selector.matches(l)),
                };
                namespace_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
            }
            Peer::IpBlock { cidr, except } => match who {
                Endpoint::External(ip) => ip_block_matches(cidr, except, *ip),
                Endpoint::Pod(pod) => pod
                    .ips
                    .iter()
                    .filter(|ip| Family::of(**ip) == family)
                    .any(|ip| ip_block_matches(cidr, except, *ip)),
            },
        }
    }

    fn with_namespace_labels<T>(&self, namespace: &str, f: impl FnOnce(&BTreeMap<String, String>) -> T) -> T {
        match self.namespace_labels.get(namespace) {
            Some(labels) => f(labels),
            None => f(&BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), namespace.to_owned())])),
        }
    }
}

/// Whether `src` is `dst`'s own node: a hostNetwork pod on the node `dst` runs on (both known).
#[must_use]
pub fn from_own_node(src: &Endpoint<'_>, dst: &Pod) -> bool {
    match src {
        Endpoint::Pod(s) => s.host_network && s.node.is_some() && s.node == dst.node,
        Endpoint::External(_) => false,
    }
}

/// Whether `ip` lies in `cidr` and in none of `except` (addresses of the other family never do).
#[must_use]
pub fn ip_block_matches(cidr: &IpNet, except: &[IpNet], ip: IpAddr) -> bool {
    cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        Door, DoorState, LabelSelector, NamedPort, Namespace, Operator, Port, PortValue, Requirement, Span,
    };

    fn span(line: u32) -> Span {
        Span { file: "t.np".into(), line, column: 1, start: 0, end: 1 }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn pod(namespace: &str, name: &str, app: &str, ip: &str) -> Pod {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            labels: labels(&[("app", app)]),
            ips: vec![ip.parse().expect("test address")],
            ports: Vec::new(),
            node: None,
            host_interface: None,
            host_network: false,
        }
    }

    fn namespace(name: &str, extra: &[(&str, &str)]) -> Namespace {
        let mut l = labels(extra);
        l.insert(NAMESPACE_NAME_LABEL.into(), name.into());
        Namespace { name: name.into(), labels: l }
    }

    fn tcp(port: u16) -> Port {
        Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(port)), end_port: None }
    }

    fn rule(id: &str, peers: Vec<Peer>, ports: Vec<Port>) -> Rule {
        Rule { id: id.into(), peers, ports, span: span(2) }
    }

    fn guarded(rules: Vec<Rule>) -> Door {
        Door { state: DoorState::Guarded, guarded_by: vec![span(1)], rules }
    }

    fn policy(namespace: &str, name: &str, selector: LabelSelector, ingress: Door, egress: Door) -> Policy {
        Policy {
            name: name.into(),
            namespace: namespace.into(),
            workload: name.into(),
            selector,
            doc: None,
            ingress,
            egress,
            span: span(1),
        }
    }

    fn app(name: &str) -> LabelSelector {
        LabelSelector::labels([("app", name)])
    }

    fn pods_of(app_name: &str) -> Peer {
        Peer::Pods { namespaces: None, pods: Some(app(app_name)) }
    }

    fn ir(policies: Vec<Policy>) -> Ir {
        let mut ir = Ir::empty();
        ir.policies = policies;
        ir.validate().expect("test IR is valid");
        ir
    }

    /// prod: web (10.0.0.1), api (10.0.0.2), db (10.0.0.3); dev (env=dev): web (10.1.0.1).
    fn cluster() -> Inventory {
        Inventory {
            namespaces: vec![namespace("dev", &[("env", "dev")]), namespace("prod", &[("env", "prod")])],
            pods: vec![
                pod("dev", "web", "web", "10.1.0.1"),
                pod("prod", "api", "api", "10.0.0.2"),
                pod("prod", "db", "db", "10.0.0.3"),
                pod("prod", "web", "web", "10.0.0.1"),
            ],
            externals: Vec::new(),
            implied_namespaces: Vec::new(),
            services: Vec::new(),
        }
    }

    fn p<'i>(inv: &'i Inventory, ns: &str, name: &str) -> Endpoint<'i> {
        Endpoint::Pod(inv.pod(ns, name).expect("pod in test cluster"))
    }

    fn ext(ip: &str) -> Endpoint<'static> {
        Endpoint::External(ip.parse().expect("test address"))
    }

    fn judge(
        ir: &Ir,
        inv: &Inventory,
        src: Endpoint<'_>,
        dst: Endpoint<'_>,
        protocol: Protocol,
        port: u16,
    ) -> Verdict {
        Evaluator::new(ir, inv).evaluate(&Flow::new(src, dst, protocol, port))
    }

    fn allowed(ir: &Ir, inv: &Inventory, src: Endpoint<'_>, dst: Endpoint<'_>, port: u16) -> bool {
        judge(ir, inv, src, dst, Protocol::Tcp, port).allowed
    }

    #[test]
    fn no_policy_means_every_door_is_open() {
        let inv = cluster();
        let v = judge(&ir(vec![]), &inv, p(&inv, "prod", "web"), p(&inv, "prod", "db"), Protocol::Udp, 9);
        assert_eq!(v, Verdict { allowed: true, egress: DoorVerdict::Open, ingress: DoorVerdict::Open });
    }

    #[test]
    fn corner1_isolation_is_per_direction_and_rules_are_a_union_over_policies() {
        let inv = cluster();
        // Two policies select db, each allowing one source; egress is never guarded.
        let ir = ir(vec![
            policy(
                "prod",
                "db-a",
                app("db"),
                guarded(vec![rule("a", vec![pods_of("api")], vec![tcp(5432)])]),
                Door::open(),
            ),
            policy(
                "prod",
                "db-b",
                app("db"),
                guarded(vec![rule("b", vec![pods_of("web")], vec![tcp(5432)])]),
                Door::open(),
            ),
        ]);
        let db = p(&inv, "prod", "db");
        assert!(allowed(&ir, &inv, p(&inv, "prod", "api"), db, 5432));
        assert!(allowed(&ir, &inv, p(&inv, "prod", "web"), db, 5432));
        assert!(!allowed(&ir, &inv, p(&inv, "dev", "web"), db, 5432));
        // db's egress is still open: no policy guards it.
        let out = judge(&ir, &inv, db, p(&inv, "prod", "web"), Protocol::Tcp, 80);
        assert_eq!(out.egress, DoorVerdict::Open);
        assert!(out.allowed);
        // A denial names both guarding policies.
        let denied = judge(&ir, &inv, p(&inv, "dev", "web"), db, Protocol::Tcp, 5432);
        assert_eq!(
            denied.ingress,
            DoorVerdict::Denied { guarded_by: vec![PolicyRef { policy: 0 }, PolicyRef { policy: 1 }] }
        );
        // An allowance names the rule, which resolves to its id and span.
        let ok = judge(&ir, &inv, p(&inv, "prod", "web"), db, Protocol::Tcp, 5432);
        let DoorVerdict::Allowed { rules } = ok.ingress else { panic!("expected allowed: {ok:?}") };
        let (pol, r) = rules[0].resolve(&ir).expect("valid ref");
        assert_eq!((pol.name.as_str(), r.id.as_str(), r.span.line), ("db-b", "b", 2));
        assert_eq!(rules[0].describe(&ir).as_deref(), Some("ingress rule `b` of prod/db-b (t.np:2:1)"));
        assert_eq!(RuleRef { policy: 9, direction: Direction::Ingress, rule: 0 }.describe(&ir), None);
        // Why a rule did not let dev/web in: its peer does not match, its port does.
        let evaluator = Evaluator::new(&ir, &inv);
        let flow = Flow {
            src: p(&inv, "dev", "web"),
            dst: db,
            protocol: Protocol::Tcp,
            port: 5432,
            family: Family::V4,
        };
        let why = evaluator.rule_match(RuleRef { policy: 1, direction: Direction::Ingress, rule: 0 }, &flow);
        assert_eq!(why, Some(RuleMatch { peer: false, port: true }));
        let flow = Flow { port: 80, src: p(&inv, "prod", "web"), ..flow };
        let why = evaluator.rule_match(RuleRef { policy: 1, direction: Direction::Ingress, rule: 0 }, &flow);
        assert_eq!(why, Some(RuleMatch { peer: true, port: false }));
        assert_eq!(
            evaluator.rule_match(RuleRef { policy: 1, direction: Direction::Egress, rule: 0 }, &flow),
            None
        );
    }

    #[test]
    fn corner2_guarded_without_rules_allows_nothing_and_an_empty_rule_allows_everything() {
        let inv = cluster();
        let isolate = ir(vec![policy("prod", "db", app("db"), guarded(vec![]), guarded(vec![]))]);
        let db = p(&inv, "prod", "db");
        assert!(!allowed(&isolate, &inv, p(&inv, "prod", "api"), db, 5432));
        assert!(!allowed(&isolate, &inv, db, p(&inv, "prod", "api"), 80));
        assert!(!allowed(&isolate, &inv, db, ext("8.8.8.8"), 53));
        let open_all = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule("all", vec![], vec![])]),
            Door::open(),
        )]);
        assert!(allowed(&open_all, &inv, p(&inv, "dev", "web"), db, 1));
        assert!(allowed(&open_all, &inv, ext("203.0.113.9"), db, 65535));
        assert!(judge(&open_all, &inv, ext("203.0.113.9"), db, Protocol::Sctp, 7).allowed);
    }

    #[test]
    fn corner3_peer_and_port_must_both_match_within_a_rule() {
        let inv = cluster();
        let ir = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![
                rule("api-5432", vec![pods_of("api")], vec![tcp(5432)]),
                rule("web-9000", vec![pods_of("web")], vec![tcp(9000), tcp(9001)]),
            ]),
            Door::open(),
        )]);
        let db = p(&inv, "prod", "db");
        let (api, web) = (p(&inv, "prod", "api"), p(&inv, "prod", "web"));
        assert!(allowed(&ir, &inv, api, db, 5432));
        assert!(!allowed(&ir, &inv, api, db, 9000), "peer of one rule, port of another");
        assert!(allowed(&ir, &inv, web, db, 9001));
        assert!(!allowed(&ir, &inv, web, db, 5432));
        assert!(!judge(&ir, &inv, api, db, Protocol::Udp, 5432).allowed, "protocol is part of the port");
    }

    #[test]
    fn corner4_namespace_and_pod_selector_in_one_peer_is_and_in_two_peers_is_or() {
        let inv = cluster();
        let dev = Some(LabelSelector::labels([("env", "dev")]));
        let and = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule(
                "and",
                vec![Peer::Pods { namespaces: dev.clone(), pods: Some(app("web")) }],
                vec![],
            )]),
            Door::open(),
        )]);
        let db = p(&inv, "prod", "db");
        assert!(allowed(&and, &inv, p(&inv, "dev", "web"), db, 1));
        assert!(!allowed(&and, &inv, p(&inv, "prod", "web"), db, 1), "web, but not in dev");
        let or = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule(
                "or",
                vec![Peer::Pods { namespaces: dev, pods: None }, pods_of("api")],
                vec![],
            )]),
            Door::open(),
        )]);
        assert!(allowed(&or, &inv, p(&inv, "dev", "web"), db, 1));
        assert!(allowed(&or, &inv, p(&inv, "prod", "api"), db, 1));
        assert!(!allowed(&or, &inv, p(&inv, "prod", "web"), db, 1));
    }

    #[test]
    fn corner5_pod_selector_alone_is_own_namespace_and_empty_namespace_selector_is_all() {
        let inv = cluster();
        let db = p(&inv, "prod", "db");
        let own = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule("own", vec![pods_of("web")], vec![])]),
            Door::open(),
        )]);
        assert!(allowed(&own, &inv, p(&inv, "prod", "web"), db, 1));
        assert!(!allowed(&own, &inv, p(&inv, "dev", "web"), db, 1));
        let everywhere = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule(
                "all-ns",
                vec![Peer::Pods { namespaces: Some(LabelSelector::everything()), pods: Some(app("web")) }],
                vec![],
            )]),
            Door::open(),
        )]);
        assert!(allowed(&everywhere, &inv, p(&inv, "dev", "web"), db, 1));
        assert!(
            !allowed(&everywhere, &inv, ext("10.1.0.1"), db, 1),
            "a pod peer never matches an external address"
        );
        let by_name = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule(
                "dev",
                vec![Peer::Pods { namespaces: Some(LabelSelector::namespace_named("dev")), pods: None }],
                vec![],
            )]),
            Door::open(),
        )]);
        assert!(allowed(&by_name, &inv, p(&inv, "dev", "web"), db, 1));
        assert!(!allowed(&by_name, &inv, p(&inv, "prod", "web"), db, 1));
        // A namespace the inventory does not describe still has its name label.
        let mut stray = pod("qa", "web", "web", "10.2.0.1");
        stray.labels.insert("x".into(), "y".into());
        let by_qa = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule(
                "qa",
                vec![Peer::Pods { namespaces: Some(LabelSelector::namespace_named("qa")), pods: None }],
                vec![],
            )]),
            Door::open(),
        )]);
        assert!(allowed(&by_qa, &inv, Endpoint::Pod(&stray), db, 1));
        // matchExpressions on namespaces: env NotIn (prod).
        let not_prod = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: "env".into(),
                operator: Operator::NotIn,
                values: vec!["prod".into()],
            }],
        };
        let expr = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule("np", vec![Peer::Pods { namespaces: Some(not_prod), pods: None }], vec![])]),
            Door::open(),
        )]);
        assert!(allowed(&expr, &inv, p(&inv, "dev", "web"), db, 1));
        assert!(!allowed(&expr, &inv, p(&inv, "prod", "api"), db, 1));
    }

    #[test]
    fn corner6_ip_blocks_match_by_address_with_excepts_both_families_and_pods_included() {
        let mut inv = cluster();
        inv.pods.push(pod("prod", "v6", "v6", "fd00::7"));
        inv.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let block = Peer::IpBlock {
            cidr: "10.0.0.0/16".parse().expect("cidr"),
            except: vec!["10.0.0.2/32".parse().expect("cidr")],
        };
        let block6 = Peer::IpBlock { cidr: "fd00::/64".parse().expect("cidr"), except: vec![] };
        let ir = ir(vec![policy(
            "prod",
            "db",
            app("db"),
            guarded(vec![rule("cidr", vec![block, block6], vec![])]),
            Door::open(),
        )]);
        let db = p(&inv, "prod", "db");
        assert!(allowed(&ir, &inv, ext("10.0.9.9"), db, 1));
        assert!(!allowed(&ir, &inv, ext("10.0.0.2"), db, 1), "excepted address");
        assert!(!allowed(&ir, &inv, ext("10.1.0.1"), db, 1), "outside the block");
        assert!(allowed(&ir, &inv, p(&inv, "prod", "web"), db, 1), "pod 10.0.0.1 matched by address");
        assert!(!allowed(&ir, &inv, p(&inv, "prod", "api"), db, 1), "pod 10.0.0.2 is excepted");
        assert!(!allowed(&ir, &inv, p(&inv, "dev", "web"), db, 1), "pod 10.1.0.1 outside");
        assert!(allowed(&ir, &inv, ext("fd00::1"), db, 1), "IPv6");
        assert!(!allowed(&ir, &inv, ext("fd01::1"), db, 1));
        assert!(allowed(&ir, &inv, p(&inv, "prod", "v6"), db, 1), "IPv6 pod by address");
        assert!(!allowed(&ir, &inv, ext("::ffff:10.0.9.9"), db, 1), "a v4-mapped v6 address is IPv6");
    }

    /// Corner 14: a packet carries one address per end, so an IPv6 block lets a dual-stack pod's
    /// IPv6 flow through and not its IPv4 flow (any address of the pod matched before).
    #[test]
    fn corner14_a_dual_stack_pod_is_matched_by_the_address_the_flow_uses() {
        let mut inv = cluster();
        let mut dual = pod("prod", "dual", "dual", "10.0.9.2");
        dual.ips.push("fd00:10:244:2::2".parse().expect("ip"));
        inv.pods.push(dual);
        inv.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        for pod in inv.pods.iter_mut().filter(|p| p.name == "web" && p.namespace == "prod") {
            pod.ips.push("fd00:10:244:1::1".parse().expect("ip"));
        }
        let block6 = Peer::IpBlock { cidr: "fd00:10:244:2::2/128".parse().expect("cidr"), except: vec![] };
        let ir = ir(vec![policy(
            "prod",
            "web",
            app("web"),
            Door::open(),
            guarded(vec![rule("v6", vec![block6], vec![])]),
        )]);
        let (web, dual) = (p(&inv, "prod", "web"), p(&inv, "prod", "dual"));
        assert_eq!(Flow::families(&web, &dual), Family::BOTH);
        let evaluator = Evaluator::new(&ir, &inv);
        let flow = |family| Flow { src: web, dst: dual, protocol: Protocol::Tcp, port: 80, family };
        assert!(evaluator.evaluate(&flow(Family::V6)).allowed, "the IPv6 flow is the block's");
        assert!(!evaluator.evaluate(&flow(Family::V4)).allowed, "the IPv4 flow is not");
        // An IPv4-only pod and an IPv6 address share no family: judged on the address's.
        assert_eq!(Flow::families(&p(&inv, "prod", "db"), &ext("fd00::1")), [Family::V6]);
        assert_eq!(Flow::families(&ext("192.0.2.1"), &dual), [Family::V4]);
    }

    #[test]
    fn corner7_ports_ranges_protocols_and_named_ports_resolve_on_the_destination() {
        let mut inv = cluster();
        for pod in &mut inv.pods {
            if pod.name == "db" && pod.namespace == "prod" {
                pod.ports.push(NamedPort { name: "sql".into(), port: 5432, protocol: Protocol::Tcp });
            }
            if pod.name == "api" {
                pod.ports.push(NamedPort { name: "sql".into(), port: 6543, protocol: Protocol::Tcp });
            }
        }
        let sql = Port { protocol: Protocol::Tcp, port: Some(PortValue::Name("sql".into())), end_port: None };
        let range =
            Port { protocol: Protocol::Udp, port: Some(PortValue::Number(1000)), end_port: Some(1010) };
        let all_sctp = Port { protocol: Protocol::Sctp, port: None, end_port: None };
        let ir = ir(vec![
            policy(
                "prod",
                "db",
                app("db"),
                guarded(vec![rule("in", vec![], vec![sql.clone(), range, all_sctp])]),
                Door::open(),
            ),
            // web's egress: named port `sql` resolves on whoever web talks to.
            policy("prod", "web", app("web"), Door::open(), guarded(vec![rule("out", vec![], vec![sql])])),
        ]);
        let (db, api, web) = (p(&inv, "prod", "db"), p(&inv, "prod", "api"), p(&inv, "prod", "web"));
        let j = |src, dst, proto, port| judge(&ir, &inv, src, dst, proto, port).allowed;
        assert!(j(api, db, Protocol::Tcp, 5432), "db's own `sql` is 5432");
        assert!(!j(api, db, Protocol::Tcp, 6543), "api's `sql` does not count on db");
        assert!(j(api, db, Protocol::Udp, 1000) && j(api, db, Protocol::Udp, 1010));
        assert!(!j(api, db, Protocol::Udp, 1011) && !j(api, db, Protocol::Tcp, 1005));
        assert!(j(api, db, Protocol::Sctp, 1) && j(api, db, Protocol::Sctp, 65535));
        // Egress from web: the destination's named port, not web's.
        assert!(j(web, db, Protocol::Tcp, 5432));
        assert!(!j(web, db, Protocol::Tcp, 6543), "6543 is api's sql, not db's");
        assert!(j(web, api, Protocol::Tcp, 6543));
        assert!(!j(web, api, Protocol::Tcp, 5432));
        assert!(!j(web, ext("1.1.1.1"), Protocol::Tcp, 5432), "an external end has no named ports");
    }

    #[test]
    fn corner8_both_the_senders_egress_and_the_receivers_ingress_must_allow() {
        let inv = cluster();
        let ir = ir(vec![
            policy(
                "prod",
                "db",
                app("db"),
                guarded(vec![rule("db-in", vec![pods_of("api")], vec![tcp(5432)])]),
                Door::open(),
            ),
            policy(
                "prod",
                "api",
                app("api"),
                Door::open(),
                guarded(vec![rule("api-out", vec![pods_of("web")], vec![tcp(80)])]),
            ),
        ]);
        let (api, db, web) = (p(&inv, "prod", "api"), p(&inv, "prod", "db"), p(&inv, "prod", "web"));
        let v = judge(&ir, &inv, api, db, Protocol::Tcp, 5432);
        assert!(!v.allowed, "db lets api in, but api may not go out to db");
        assert!(v.ingress.permits());
        assert_eq!(v.egress, DoorVerdict::Denied { guarded_by: vec![PolicyRef { policy: 1 }] });
        let v = judge(&ir, &inv, api, web, Protocol::Tcp, 80);
        assert!(v.allowed);
        assert_eq!(
            v.egress,
            DoorVerdict::Allowed {
                rules: vec![RuleRef { policy: 1, direction: Direction::Egress, rule: 0 }]
            }
        );
        assert_eq!(v.ingress, DoorVerdict::Open);
        // External ends have no door.
        let v = judge(&ir, &inv, ext("192.0.2.1"), web, Protocol::Tcp, 80);
        assert_eq!(v.egress, DoorVerdict::NotApplicable);
        assert!(v.allowed);
        assert!(!allowed(&ir, &inv, ext("192.0.2.1"), db, 5432));
        assert!(!allowed(&ir, &inv, api, ext("192.0.2.1"), 80));
    }

    #[test]
    fn host_network_pods_have_open_doors_and_match_only_ip_blocks() {
        let mut inv = cluster();
        let mut node_agent = pod("prod", "agent", "db", "10.0.0.200");
        node_agent.host_network = true;
        inv.pods.push(node_agent);
        inv.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let ir = ir(vec![
            policy(
                "prod",
                "db",
                app("db"),
                guarded(vec![rule("db", vec![pods_of("db")], vec![])]),
                guarded(vec![]),
            ),
            policy(
                "prod",
                "api",
                app("api"),
                guarded(vec![rule(
                    "nodes",
                    vec![Peer::IpBlock {
                        cidr: "10.0.0.0/24".parse().expect("cidr"),
                        except: vec!["10.0.0.0/30".parse().expect("cidr")],
                    }],
                    vec![],
                )]),
                Door::open(),
            ),
        ]);
        let agent = p(&inv, "prod", "agent");
        // The agent carries app=db, but the db policy does not guard it.
        let v = judge(&ir, &inv, agent, p(&inv, "prod", "web"), Protocol::Tcp, 1);
        assert_eq!(v.egress, DoorVerdict::Open);
        let v = judge(&ir, &inv, p(&inv, "prod", "web"), agent, Protocol::Tcp, 1);
        assert_eq!(v.ingress, DoorVerdict::Open);
        // Nor is it matched as a pod: db's rule `app=db` does not let it in.
        assert!(!allowed(&ir, &inv, agent, p(&inv, "prod", "db"), 1));
        // But an ipBlock covering its address does.
        assert!(allowed(&ir, &inv, agent, p(&inv, "prod", "api"), 1));
    }

    /// DESIGN.md corner 12: a pod cannot block its own node (kubelet probes); the node is its
    /// hostNetwork pods. Another node is judged by address; the pod's egress to its node too.
    #[test]
    fn a_pods_own_node_always_gets_in() {
        let mut inv = cluster();
        let on = |mut pod: Pod, node: &str| {
            pod.node = Some(node.into());
            pod
        };
        let mut kubelet = on(pod("kube-system", "probe", "probe", "10.9.0.1"), "n1");
        kubelet.host_network = true;
        let mut other = on(pod("kube-system", "probe-2", "probe", "10.9.0.2"), "n2");
        other.host_network = true;
        inv.pods = vec![
            on(pod("prod", "db", "db", "10.0.0.3"), "n1"),
            kubelet,
            other,
            pod("prod", "web", "web", "10.0.0.1"),
        ];
        inv.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        // db lets nobody in (and nobody out); web lets nobody in, and runs on no known node.
        let ir = ir(vec![
            policy("prod", "db", app("db"), guarded(vec![]), guarded(vec![])),
            policy("prod", "web", app("web"), guarded(vec![]), Door::open()),
        ]);
        let db = p(&inv, "prod", "db");
        let v = judge(&ir, &inv, p(&inv, "kube-system", "probe"), db, Protocol::Tcp, 5432);
        assert!(v.allowed, "{v:?}");
        assert_eq!(v.ingress, DoorVerdict::FromOwnNode { guarded_by: vec![PolicyRef { policy: 0 }] });
        assert!(!allowed(&ir, &inv, p(&inv, "kube-system", "probe-2"), db, 5432), "another node");
        assert!(!allowed(&ir, &inv, db, p(&inv, "kube-system", "probe"), 10250), "db's egress to its node");
        assert!(
            !allowed(&ir, &inv, p(&inv, "kube-system", "probe"), p(&inv, "prod", "web"), 80),
            "no node known"
        );
        assert!(!allowed(&ir, &inv, ext("10.9.0.1"), db, 5432), "an address is not a node");
    }
}
