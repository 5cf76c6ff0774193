//! The netc intermediate representation (IR).
//!
//! The IR is the one contract between the compiler (`netc`) and the node daemon (`netcd`): plain
//! serde data, versioned, with no dependency on the parser, the templates or YAML. Both the
//! NetworkPolicy backend and the eBPF runtime consume exactly this; nothing either needs is
//! re-derived from source.
//!
//! Shape: one [`Policy`] per (namespace, pod selector) that has at least one guarded door. Each
//! policy has two [`Door`]s. A door is [`DoorState::Open`] (Kubernetes' default: the pods are not
//! isolated in that direction by this policy) or [`DoorState::Guarded`] (the policy lists that
//! direction in `policyTypes`; only its [`Rule`]s pass). Semantics are Kubernetes' own:
//! a pod is isolated for a direction when any policy selecting it guards that door, and the
//! traffic allowed is the union of the rules of all those policies.
//!
//! ```
//! let ir = netc_ir::Ir::from_json(r#"{"version":1,"sources":[],"workloads":[],"policies":[]}"#)
//!     .expect("valid IR");
//! assert!(ir.policies.is_empty());
//! ```

pub mod capacity;
pub mod eval;
pub mod inventory;
pub mod plan;
pub mod selector;
pub mod yaml_bounds;

use std::collections::BTreeSet;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use inventory::{
    ExternalAddress, Inventory, InventoryError, NamedPort, Namespace, Pod, Service, ServicePort,
};
pub use selector::{LabelSelector, Operator, Requirement};

/// The IR format version this crate reads and writes.
pub const IR_VERSION: u32 = 1;

/// A compiled netc program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ir {
    /// Always [`IR_VERSION`].
    pub version: u32,
    /// The source files, in the order they were given to the compiler.
    pub sources: Vec<String>,
    /// Named workloads, for display (reports, explain); not needed for enforcement.
    pub workloads: Vec<Workload>,
    /// The policies, sorted by (namespace, name).
    pub policies: Vec<Policy>,
}

/// A named set of pods in one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The name used in source (`backend`).
    pub name: String,
    /// The namespace the workload lives in.
    pub namespace: String,
    /// The pods it names.
    pub selector: LabelSelector,
    /// Where it was declared, or first used when it was never declared.
    pub span: Span,
}

/// The doors of one set of pods: rendered as one NetworkPolicy object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// NetworkPolicy object name: DNS-1123, unique within the namespace, stable.
    pub name: String,
    /// The namespace of the object and of the selected pods.
    pub namespace: String,
    /// The workload the policy is for, as written in source (`backend`, `*`, `{app=web}`).
    pub workload: String,
    /// `spec.podSelector`: the pods whose doors these are (empty = all pods of the namespace).
    pub selector: LabelSelector,
    /// Doc comments of the statements that made this policy, carried into an annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub doc: Option<String>,
    /// Traffic into the pods.
    pub ingress: Door,
    /// Traffic out of the pods.
    pub egress: Door,
    /// The statement that first named this workload's doors.
    pub span: Span,
}

impl Policy {
    /// The door for `direction`.
    #[must_use]
    pub fn door(&self, direction: Direction) -> &Door {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }
}

/// Ingress (into the selected pods) or egress (out of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Traffic arriving at the selected pods.
    Ingress,
    /// Traffic leaving the selected pods.
    Egress,
}

impl Direction {
    /// Both directions, ingress first.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// Whether a door is open (not isolated by this policy) or guarded (only its rules pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorState {
    /// The policy does not list this direction in `policyTypes`; it has no rules.
    Open,
    /// The policy lists this direction in `policyTypes`; only the rules pass (none = nothing).
    Guarded,
}

/// One direction of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Door {
    /// Open or guarded.
    pub state: DoorState,
    /// The statements that guard this door (an arrow's target, `isolated`, `egress guarded`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guarded_by: Vec<Span>,
    /// The allowed flows; always empty for an open door. OR'ed together.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl Door {
    /// An open door with no rules.
    #[must_use]
    pub fn open() -> Door {
        Door { state: DoorState::Open, guarded_by: Vec::new(), rules: Vec::new() }
    }

    /// Whether only the rules pass.
    #[must_use]
    pub fn is_guarded(&self) -> bool {
        self.state == DoorState::Guarded
    }
}

/// One allowed flow through a door: the peer must match one of `peers` AND the port one of
/// `ports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable identifier, unique in the IR (derived from the rule's meaning, not its position).
    pub id: String,
    /// Who may be on the other side; empty means anyone (Kubernetes' omitted `from`/`to`).
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// Which destination ports; empty means all ports and protocols.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// The statement (usually an arrow) this rule comes from.
    pub span: Span,
}

/// The other side of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Peer {
    /// Pods, chosen by namespace and pod labels (AND'ed when both are given).
    Pods {
        /// `None`: the policy's own namespace. `Some(empty)`: every namespace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespaces: Option<LabelSelector>,
        /// `None`: every pod of the chosen namespaces. `Some(empty)` means the same.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pods: Option<LabelSelector>,
    },
    /// Addresses: `cidr` less the `except` prefixes, which lie inside it and share its family.
    IpBlock {
        /// The block, with no host bits set.
        cidr: IpNet,
        /// Prefixes carved out of the block.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        except: Vec<IpNet>,
    },
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    /// The default.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// All protocols NetworkPolicy knows.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The IP protocol number.
    #[must_use]
    pub fn ip_proto(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    /// The name Kubernetes uses (`TCP`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A destination port (or range, or named container port) and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// The protocol.
    pub protocol: Protocol,
    /// `None`: every port of the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortValue>,
    /// Inclusive end of a range; only with a numeric `port`, and `>=` it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
}

impl Port {
    /// Whether destination `port` with `protocol` matches, given the destination pod's named
    /// ports (names resolve per destination pod, as in Kubernetes).
    #[must_use]
    pub fn matches(&self, protocol: Protocol, port: u16, named: &[NamedPort]) -> bool {
        if protocol != self.protocol {
            return false;
        }
        match &self.port {
            None => true,
            Some(PortValue::Number(p)) => match self.end_port {
                Some(end) => (*p..=end).contains(&port),
                None => *p == port,
            },
            Some(PortValue::Name(name)) => {
                named.iter().any(|n| n.name == *name && n.protocol == protocol && n.port == port)
            }
        }
    }
}

/// A port number or the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortValue {
    /// 1..=65535.
    Number(u16),
    /// An IANA service name (`http`), resolved on the destination pod.
    Name(String),
}

impl fmt::Display for PortValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortValue::Number(n) => write!(f, "{n}"),
            PortValue::Name(s) => f.write_str(s),
        }
    }
}

/// Where in the source something comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// The source file, as given to the compiler.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// Byte offset of the first byte.
    pub start: u32,
    /// Byte offset one past the last byte.
    pub end: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Why an IR document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IrError {
    /// Not JSON, or not the IR's shape.
    Malformed(String),
    /// A version this build does not understand.
    UnsupportedVersion(u32),
    /// The document parsed but breaks an invariant; the string says where.
    Invalid(String),
}

impl fmt::Display for IrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrError::Malformed(e) => write!(f, "not a netc IR document: {e}"),
            IrError::UnsupportedVersion(v) => write!(
                f,
                "IR version {v} is not supported (this build reads version {IR_VERSION}); rebuild the IR with a matching netc"
            ),
            IrError::Invalid(e) => write!(f, "invalid IR: {e}"),
        }
    }
}

impl std::error::Error for IrError {}

impl Ir {
    /// An empty IR of the current version.
    #[must_use]
    pub fn empty() -> Ir {
        Ir { version: IR_VERSION, sources: Vec::new(), workloads: Vec::new(), policies: Vec::new() }
    }

    /// Parse and validate an IR JSON document.
    ///
    /// # Errors
    /// [`IrError`] when the text is not IR JSON, has another version, or breaks an invariant.
    pub fn from_json(text: &str) -> Result<Ir, IrError> {
        let probe: serde_json::Value =
            serde_json::from_str(text).map_err(|e| IrError::Malformed(e.to_string()))?;
        if let Some(v) = probe.get("version").and_then(serde_json::Value::as_u64)
            && v != u64::from(IR_VERSION)
        {
            return Err(IrError::UnsupportedVersion(u32::try_from(v).unwrap_or(u32::MAX)));
        }
        let ir: Ir = serde_json::from_value(probe).map_err(|e| IrError::Malformed(e.to_string()))?;
        ir.validate()?;
        Ok(ir)
    }

    /// Pretty JSON, with a trailing newline; deterministic.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self)
            .expect("the IR is plain data with string keys; serializing it cannot fail");
        s.push('\n');
        s
    }

    /// Check the invariants the compiler guarantees and the runtime relies on.
    ///
    /// # Errors
    /// [`IrError::Invalid`] naming the first broken invariant.
    pub fn validate(&self) -> Result<(), IrError> {
        if self.version != IR_VERSION {
            return Err(IrError::UnsupportedVersion(self.version));
        }
        let mut names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for p in &self.policies {
            let at = format!("policy {}/{}", p.namespace, p.name);
            if !names.insert((p.namespace.as_str(), p.name.as_str())) {
                return Err(IrError::Invalid(format!("{at} appears twice")));
            }
            p.selector.validate().map_err(|e| IrError::Invalid(format!("{at}: {e}")))?;
            for dir in Direction::BOTH {
                let door = p.door(dir);
                if door.state == DoorState::Open && !door.rules.is_empty() {
                    return Err(IrError::Invalid(format!("{at}: {dir} door is open but has rules")));
                }
                for r in &door.rules {
                    let at = format!("{at}, {dir} rule {}", r.id);
                    if !ids.insert(r.id.as_str()) {
                        return Err(IrError::Invalid(format!("{at}: rule id is not unique")));
                    }
                    for peer in &r.peers {
                        validate_peer(peer).map_err(|e| IrError::Invalid(format!("{at}: {e}")))?;
                    }
                    for port in &r.ports {
                        validate_port(port).map_err(|e| IrError::Invalid(format!("{at}: {e}")))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Every rule with its policy and direction, in IR order.
    pub fn rules(&self) -> impl Iterator<Item = (&Policy, Direction, &Rule)> {
        self.policies.iter().flat_map(|p| {
            Direction::BOTH.into_iter().flat_map(move |d| p.door(d).rules.iter().map(move |r| (p, d, r)))
        })
    }
}

fn validate_peer(peer: &Peer) -> Result<(), String> {
    match peer {
        Peer::Pods { namespaces, pods } => {
            if namespaces.is_none() && pods.is_none() {
                return Err("a pod peer needs a namespace or pod selector".into());
            }
            for s in namespaces.iter().chain(pods.iter()) {
                s.validate()?;
            }
            Ok(())
        }
        Peer::IpBlock { cidr, except } => {
            if cidr.trunc() != *cidr {
                return Err(format!("cidr {cidr} has host bits set"));
            }
            for e in except {
                if !cidr.contains(e) || e.prefix_len() <= cidr.prefix_len() {
                    return Err(format!("except {e} is not strictly inside {cidr}"));
                }
            }
            Ok(())
        }
    }
}

fn validate_port(port: &Port) -> Result<(), String> {
    match (&port.port, port.end_port) {
        (Some(PortValue::Number(0)), _) => Err("port 0 is not a valid port".into()),
        (Some(PortValue::Number(p)), Some(end)) if end < *p => {
            Err(format!("end port {end} is below port {p}"))
        }
        (Some(PortValue::Name(n)), Some(_)) => Err(format!("named port {n} cannot have an end port")),
        (None, Some(_)) => Err("an end port needs a port".into()),
        (Some(PortValue::Name(n)), None) if n.is_empty() || n.len() > 15 => {
            Err(format!("named port `{n}` must be 1 to 15 characters"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> Span {
        Span { file: "a.np".into(), line: 1, column: 1, start: 0, end: 1 }
    }

    #[test]
    fn round_trips_through_json() {
        let ir = Ir {
            version: IR_VERSION,
            sources: vec!["a.np".into()],
            workloads: vec![],
            policies: vec![Policy {
                name: "backend".into(),
                namespace: "default".into(),
                workload: "backend".into(),
                selector: LabelSelector::labels([("app", "backend")]),
                doc: None,
                ingress: Door {
                    state: DoorState::Guarded,
                    guarded_by: vec![span()],
                    rules: vec![Rule {
                        id: "r1".into(),
                        peers: vec![Peer::Pods {
                            namespaces: None,
                            pods: Some(LabelSelector::labels([("app", "frontend")])),
                        }],
                        ports: vec![Port {
                            protocol: Protocol::Tcp,
                            port: Some(PortValue::Number(8080)),
                            end_port: None,
                        }],
                        span: span(),
                    }],
                },
                egress: Door::open(),
                span: span(),
            }],
        };
        let back = Ir::from_json(&ir.to_json()).expect("round trip");
        assert_eq!(back, ir);
    }

    #[test]
    fn refuses_other_versions_and_broken_invariants() {
        assert_eq!(
            Ir::from_json(r#"{"version":2,"sources":[],"workloads":[],"policies":[]}"#),
            Err(IrError::UnsupportedVersion(2))
        );
        assert!(matches!(Ir::from_json("{"), Err(IrError::Malformed(_))));
        let bad = r#"{"version":1,"sources":[],"workloads":[],"policies":[{"name":"a","namespace":"d",
            "workload":"a","selector":{},"ingress":{"state":"open","rules":[{"id":"x","span":
            {"file":"f","line":1,"column":1,"start":0,"end":1}}]},"egress":{"state":"open"},
            "span":{"file":"f","line":1,"column":1,"start":0,"end":1}}]}"#;
        assert!(matches!(Ir::from_json(bad), Err(IrError::Invalid(m)) if m.contains("open but has rules")));
    }

    #[test]
    fn ports_match_numbers_ranges_names_and_protocols() {
        let named = [NamedPort { name: "http".into(), port: 8080, protocol: Protocol::Tcp }];
        let range = Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(80)), end_port: Some(90) };
        assert!(range.matches(Protocol::Tcp, 85, &[]));
        assert!(!range.matches(Protocol::Tcp, 91, &[]));
        assert!(!range.matches(Protocol::Udp, 85, &[]));
        let by_name =
            Port { protocol: Protocol::Tcp, port: Some(PortValue::Name("http".into())), end_port: None };
        assert!(by_name.matches(Protocol::Tcp, 8080, &named));
        assert!(!by_name.matches(Protocol::Tcp, 8080, &[]));
        assert!(!by_name.matches(Protocol::Tcp, 80, &named));
        let all_udp = Port { protocol: Protocol::Udp, port: None, end_port: None };
        assert!(all_udp.matches(Protocol::Udp, 1, &[]));
        assert!(!all_udp.matches(Protocol::Tcp, 1, &[]));
    }
}
