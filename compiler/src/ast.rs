//! The syntax tree: owned nodes, each with the byte span it was parsed from.
//!
//! Built once from pest pairs by [`crate::syntax`]; no pest type lives past that module.

use std::fmt;

/// A byte range in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The span from `start` to `end`.
    #[must_use]
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: to_u32(start), end: to_u32(end) }
    }

    /// The span covering both.
    #[must_use]
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    /// As a `usize` range, for slicing and codespan.
    #[must_use]
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Source files larger than 4 GiB are refused before parsing, so offsets fit.
fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A value with the span it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spanned<T> {
    /// The value.
    pub node: T,
    /// Where it is.
    pub span: Span,
}

/// One parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Top-level items in source order.
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `namespace shop { ... }`
    NamespaceBlock {
        /// The namespace name.
        name: Spanned<String>,
        /// The statements inside.
        statements: Vec<Statement>,
        /// Stray doc comments inside the block.
        stray_docs: Vec<Span>,
        /// The whole block.
        span: Span,
    },
    /// `namespace shop`: the following statements belong to `shop` until the next header.
    NamespaceHeader {
        /// The namespace name.
        name: Spanned<String>,
        /// The whole header.
        span: Span,
    },
    /// A statement in the current namespace.
    Statement(Statement),
    /// A `##` doc comment that is followed by no statement.
    StrayDoc(Span),
}

/// A statement with its doc comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// `##` lines before it, without the `##` and one leading space.
    pub docs: Vec<Spanned<String>>,
    /// `@allow(...)` attributes before it: its warnings the writer accepts.
    pub allows: Vec<Allow>,
    /// What it says.
    pub kind: StatementKind,
    /// The statement without its docs.
    pub span: Span,
}

/// `@allow(W0203, W0201)`: warnings of the statement that follows that the writer accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    /// The codes, as written.
    pub codes: Vec<Spanned<String>>,
    /// The whole attribute.
    pub span: Span,
}

/// The kinds of statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// `workload api = {app=api}`, `workload prod = {purpose=production}/*`
    Workload {
        /// The name being declared.
        name: Spanned<String>,
        /// `None`: pods of the namespace the name is used in (`workload api = {app=api}`); else
        /// the namespaces it always means (`{purpose=production}/...`).
        namespace: Option<Spanned<NamespaceRef>>,
        /// Its pods: [`PodRef::All`] or [`PodRef::Selector`], never a name.
        pods: Spanned<PodRef>,
    },
    /// `external payments = 203.0.113.0/24, 198.51.100.7`
    External {
        /// The name being declared.
        name: Spanned<String>,
        /// Its address blocks.
        blocks: Vec<CidrPeer>,
    },
    /// `default deny [ingress|egress]`, `default allow [ingress|egress]`
    Default {
        /// Deny or allow.
        action: Spanned<DefaultAction>,
        /// `None`: both directions.
        direction: Option<Spanned<Direction>>,
    },
    /// `hermit isolated`, `backend egress guarded`, `web ingress open`, `api guarded`
    Door {
        /// Whose doors.
        subject: Endpoint,
        /// What is said of them.
        door: Spanned<DoorWords>,
    },
    /// `a, b -> c:80, d:[443, 53/udp]`
    Arrow(Arrow),
    /// `priority 10`: not expressible, kept to explain why.
    Priority(Span),
    /// `assert frontend -> backend:8080`, `assert */* !-> payments/vault`, `assert hermit
    /// isolated`: a property proved for every possible pod.
    Assert {
        /// The word `assert`.
        keyword: Span,
        /// What is claimed: an [`StatementKind::Arrow`] or a [`StatementKind::Door`].
        claim: Box<StatementKind>,
    },
}

/// `deny` or `allow` in a `default` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// Guard the door(s) of every pod in the namespace.
    Deny,
    /// Let anything through the door(s) of every pod in the namespace.
    Allow,
}

/// A direction as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// `ingress`
    Ingress,
    /// `egress`
    Egress,
}

impl From<Direction> for netc_ir::Direction {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Ingress => netc_ir::Direction::Ingress,
            Direction::Egress => netc_ir::Direction::Egress,
        }
    }
}

/// What a door statement says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorWords {
    /// `isolated`: both doors guarded, and no flow may name the workload.
    Isolated,
    /// `[ingress|egress] guarded|open`
    State {
        /// `None`: both doors.
        direction: Option<Direction>,
        /// Guarded or open.
        guarded: bool,
    },
}

/// An arrow statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrow {
    /// `egress a -> b`: written on the sources' egress only, never guarding the target's ingress.
    pub egress_only: Option<Span>,
    /// Left of the arrow.
    pub sources: Vec<Endpoint>,
    /// The arrow itself; `deny` is true for `-/->` and friends.
    pub op: Spanned<bool>,
    /// Right of the arrow.
    pub targets: Vec<Target>,
}

/// One target of an arrow, with its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Who.
    pub endpoint: Endpoint,
    /// `:80`, `:[80, 443]`; `None` means all ports.
    pub ports: Option<Spanned<Vec<PortItem>>>,
    /// An L7 clause (`path "/api"`): refused with an explanation.
    pub l7: Option<Span>,
    /// Endpoint plus ports.
    pub span: Span,
}

/// One side of a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// What it names.
    pub kind: EndpointKind,
    /// Where.
    pub span: Span,
}

/// The things an endpoint can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointKind {
    /// `anywhere`: every address, in the cluster and out of it.
    Anywhere,
    /// `dns`: the cluster DNS (kube-dns in kube-system, port 53 UDP and TCP).
    Dns,
    /// `nodes`: not expressible.
    Nodes,
    /// `example.com`: not expressible.
    Fqdn(String),
    /// `10.0.0.0/8 except 10.1.0.0/16`
    Cidr(CidrPeer),
    /// Pods, possibly qualified by namespace.
    Pods {
        /// `None`: the current namespace.
        namespace: Option<Spanned<NamespaceRef>>,
        /// Which pods.
        pods: Spanned<PodRef>,
    },
}

/// The namespace part of `ns/pods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceRef {
    /// `*`: every namespace.
    All,
    /// `{team=monitoring}`: namespaces by labels.
    Selector(Selector),
    /// `shop`: one namespace by name.
    Named(String),
}

/// The pod part of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodRef {
    /// `*`: every pod of the namespace(s).
    All,
    /// `{app=web}`
    Selector(Selector),
    /// `frontend`: a declared workload, or `app=frontend`.
    Named(String),
}

/// An address block with exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrPeer {
    /// The block as written.
    pub cidr: Spanned<String>,
    /// Exceptions as written.
    pub except: Vec<Spanned<String>>,
    /// The whole peer.
    pub span: Span,
}

/// A label selector as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// Requirements in source order.
    pub requirements: Vec<SelectorRequirement>,
    /// Braces included.
    pub span: Span,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorRequirement {
    /// The label key.
    pub key: Spanned<String>,
    /// The test.
    pub op: SelectorOp,
    /// The whole requirement.
    pub span: Span,
}

/// The test of a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorOp {
    /// `key=value`
    Equals(Spanned<String>),
    /// `key!=value`
    NotEquals(Spanned<String>),
    /// `key in (a, b)`
    In(Vec<Spanned<String>>),
    /// `key notin (a, b)`
    NotIn(Vec<Spanned<String>>),
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
}

/// One port item: `80`, `8000-8100/udp`, `http`, `*/udp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortItem {
    /// The port part.
    pub port: Spanned<PortSyntax>,
    /// `/udp` as written (checked later), or `None` for TCP.
    pub protocol: Option<Spanned<String>>,
    /// The whole item.
    pub span: Span,
}

/// The port part of a port item, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSyntax {
    /// `*`: every port.
    Any,
    /// `8080`: digits, not yet range-checked.
    Number(String),
    /// `8000-8100`
    Range(String, String),
    /// `http`
    Name(String),
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}
