//! Phase 2: resolve names and validate every value; produce the checked [`Model`].
//!
//! All problems are collected; checking goes on after each so that a file's errors are reported
//! together. Doors and flows are only gathered here; [`crate::lower`] applies the door model.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use netc_ir::{LabelSelector, Operator, Port, PortValue, Protocol, Requirement};

mod typos;

use crate::ast::{
    self, CidrPeer, DefaultAction, DoorWords, Endpoint, EndpointKind, Item, NamespaceRef, PodRef, PortSyntax,
    Selector, SelectorOp, Span, Spanned, Statement, StatementKind,
};

/// The namespace statements belong to when the file names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Where something is: a file (index into the sources) and a byte span in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    /// Index of the file in the compilation's sources.
    pub file: usize,
    /// Byte span.
    pub span: Span,
}

/// What is wrong with a label key, value or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Longer than allowed; carries the limit.
    TooLong(usize),
    /// Must start and end with a letter or digit.
    Ends,
    /// Holds a character that is not allowed here.
    BadCharacter(char),
    /// Empty where something is required.
    Empty,
    /// Upper-case letters where only lower case is allowed.
    UpperCase,
    /// Needs at least one letter (named ports).
    NoLetter,
    /// Two hyphens in a row (named ports).
    DoubleHyphen,
}

/// Which kind of name a [`NameRule`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// The name part of a label key.
    LabelKeyName,
    /// The prefix part of a label key.
    LabelKeyPrefix,
    /// A label value.
    LabelValue,
    /// A namespace name.
    Namespace,
    /// A workload used as `app=<name>`.
    ImplicitWorkload,
    /// A named port.
    PortName,
}

/// Problems found while checking. Each carries where and the raw data; words are chosen in
/// [`crate::diagnostics`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// A protocol other than TCP, UDP or SCTP.
    UnknownProtocol {
        /// Where.
        at: Loc,
        /// As written.
        protocol: String,
        /// A close known protocol.
        suggestion: Option<&'static str>,
    },
    /// A port number outside 1..=65535.
    PortOutOfRange {
        /// Where.
        at: Loc,
        /// As written.
        port: String,
    },
    /// A range whose end is below its start.
    EndPortBelowPort {
        /// Where.
        at: Loc,
        /// Start.
        port: u16,
        /// End.
        end_port: u16,
    },
    /// A label key, value, namespace name or port name that Kubernetes would refuse.
    InvalidName {
        /// Where.
        at: Loc,
        /// What kind of name.
        kind: NameKind,
        /// As written.
        text: String,
        /// The rule it breaks.
        rule: NameRule,
    },
    /// The same label key twice in one selector.
    DuplicateLabelKey {
        /// The second one.
        at: Loc,
        /// The first one.
        first: Loc,
        /// The key.
        key: String,
    },
    /// A workload declared twice in one namespace.
    DuplicateWorkload {
        /// The second declaration.
        at: Loc,
        /// The first.
        first: Loc,
        /// The name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// An external declared twice.
    DuplicateExternal {
        /// The second declaration.
        at: Loc,
        /// The first.
        first: Loc,
        /// The name.
        name: String,
    },
    /// A name used before the declaration that gives it its meaning.
    UsedBeforeDeclaration {
        /// The use.
        at: Loc,
        /// The declaration.
        declared: Loc,
        /// The name.
        name: String,
    },
    /// An undeclared name that looks like a typo of another name.
    PossibleTypo {
        /// The use.
        at: Loc,
        /// The name as written.
        name: String,
        /// The name it resembles.
        suggestion: String,
        /// Where the suggestion is declared or used.
        suggestion_at: Loc,
        /// The suggestion is an undeclared name used once too: either may be the misspelt one.
        both_once: bool,
    },
    /// An undeclared name that is declared in another namespace: here it means `app=<name>`.
    DeclaredElsewhere {
        /// The use.
        at: Loc,
        /// The name.
        name: String,
        /// The namespace it is used in (and means `app=<name>` in).
        namespace: String,
        /// A declaration of the name.
        declared: Loc,
        /// The namespace of that declaration.
        declared_namespace: String,
    },
    /// A workload declared with its own namespaces (`{purpose=prod}/*`) used with a namespace.
    NamespaceOfQualifiedWorkload {
        /// The use.
        at: Loc,
        /// The name.
        name: String,
        /// The declaration.
        declared: Loc,
    },
    /// A CIDR or address that does not parse.
    InvalidCidr {
        /// Where.
        at: Loc,
        /// As written.
        text: String,
    },
    /// A CIDR with bits set after the prefix.
    HostBitsSet {
        /// Where.
        at: Loc,
        /// As written.
        text: String,
        /// The network it probably means.
        network: IpNet,
    },
    /// An `except` prefix that is not strictly inside its block.
    ExceptOutsideCidr {
        /// The except.
        at: Loc,
        /// The block.
        cidr_at: Loc,
        /// The except.
        except: IpNet,
        /// The block.
        cidr: IpNet,
    },
    /// IPv4 and IPv6 mixed in one block and its exceptions.
    MixedFamilies {
        /// The except.
        at: Loc,
        /// The block.
        cidr_at: Loc,
    },
    /// A door statement about addresses, which have no doors.
    NoDoorsOutsideCluster {
        /// The subject.
        at: Loc,
    },
    /// A door statement about pods of several namespaces.
    DoorNeedsOneNamespace {
        /// The subject.
        at: Loc,
    },
    /// `dns` used as a source.
    DnsAsSource {
        /// Where.
        at: Loc,
    },
    /// Ports given on `dns`, which means port 53 UDP and TCP.
    PortsOnDns {
        /// The ports.
        at: Loc,
    },
    /// Ports given on an address block used as a source? Not possible; ports on `anywhere` are
    /// fine. This variant covers something NetworkPolicy cannot express.
    Unsupported {
        /// Where.
        at: Loc,
        /// What was asked for.
        feature: Unsupported,
    },
    /// A doc comment followed by no statement.
    StrayDoc {
        /// Where.
        at: Loc,
    },
}

/// What NetworkPolicy cannot say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsupported {
    /// A deny arrow.
    DenyRule,
    /// Rule priorities or ordering.
    Priority,
    /// A DNS name as a peer.
    Fqdn,
    /// HTTP paths, methods.
    L7,
    /// Nodes as peers.
    Nodes,
}

impl CheckError {
    /// Whether this only warns.
    #[must_use]
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            CheckError::PossibleTypo { .. }
                | CheckError::StrayDoc { .. }
                | CheckError::DeclaredElsewhere { .. }
        )
    }
}

/// The namespaces a pod set lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NsScope {
    /// One namespace by name.
    Named(String),
    /// Namespaces by labels (empty: all of them).
    Selector(LabelSelector),
}

/// A resolved endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Pods.
    Pods {
        /// Their namespaces.
        ns: NsScope,
        /// Their labels (shared: one name is used many times).
        pods: Arc<LabelSelector>,
        /// How the source wrote it (`backend`, `shop/*`), for messages and policy names.
        display: Arc<str>,
        /// Whether it came from a bare name (declared or implicit), as opposed to `*` or `{...}`.
        named: bool,
        /// For pods of one namespace: a number unique to (namespace, selector), so that later
        /// phases find a workload's doors without hashing selectors again.
        key: Option<u32>,
    },
    /// Address blocks with exceptions.
    Cidrs(Arc<[(IpNet, Vec<IpNet>)]>, Arc<str>),
    /// Every address.
    Anywhere,
    /// The cluster DNS.
    Dns,
}

impl End {
    /// The (namespace, selector) of pods in exactly one namespace.
    #[must_use]
    pub fn single_namespace(&self) -> Option<(&str, &LabelSelector, u32)> {
        match self {
            End::Pods { ns: NsScope::Named(ns), pods, key: Some(key), .. } => Some((ns, pods, *key)),
            _ => None,
        }
    }

    /// How to show it in messages.
    #[must_use]
    pub fn display(&self) -> &str {
        match self {
            End::Pods { display, .. } | End::Cidrs(_, display) => display,
            End::Anywhere => "anywhere",
            End::Dns => "dns",
        }
    }
}

/// A door statement, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorDecl {
    /// The (namespace, selector) key, as in [`End::Pods`].
    pub key: u32,
    /// The namespace of the pods.
    pub namespace: String,
    /// The pods.
    pub selector: LabelSelector,
    /// As written.
    pub display: String,
    /// Whether the subject was a bare name.
    pub named: bool,
    /// What is said.
    pub words: DoorWords,
    /// The statement.
    pub at: Loc,
    /// Doc comments.
    pub docs: Vec<String>,
}

/// One arrow target with all the arrow's sources, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// Sources with where each was written (shared by the targets of one arrow).
    pub sources: Arc<[(End, Loc)]>,
    /// The target.
    pub target: End,
    /// Where the target (with its ports) was written.
    pub target_at: Loc,
    /// Ports; empty means all.
    pub ports: Vec<Port>,
    /// `egress a -> b`: written on the sources' egress only; the flow does not guard the target.
    pub egress_only: bool,
    /// The whole arrow statement.
    pub at: Loc,
    /// Doc comments of the arrow.
    pub docs: Arc<[String]>,
}

/// A workload known by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedWorkload {
    /// The (namespace, selector) key, as in [`End::Pods`].
    pub key: u32,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its pods.
    pub selector: LabelSelector,
    /// Declaration, or first use.
    pub at: Loc,
    /// Doc comments of the declaration.
    pub docs: Vec<String>,
}

/// What an `assert` statement claims, resolved; one per (source, target) of an arrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertClaim {
    /// `assert a -> b:80` (`never`: `assert a !-> b:80`).
    Flow {
        /// The source.
        source: End,
        /// The target.
        target: End,
        /// Ports; empty means all.
        ports: Vec<Port>,
        /// `!->`: no such flow is ever allowed.
        never: bool,
    },
    /// `assert a isolated`, `assert a egress guarded`, `assert a ingress open`.
    Door {
        /// Whose doors.
        subject: End,
        /// What is said of them.
        words: DoorWords,
    },
}

/// An `assert` statement, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertDecl {
    /// The claim.
    pub claim: AssertClaim,
    /// The whole statement.
    pub at: Loc,
}

/// Everything the door model needs, names resolved and values checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// `assert` statements, in source order; proved on the IR after lowering.
    pub assertions: Vec<AssertDecl>,
    /// Named workloads (declared or implied by use), in order of first appearance.
    pub workloads: Vec<NamedWorkload>,
    /// Door statements, in source order (`default` included).
    pub doors: Vec<DoorDecl>,
    /// Flows, in source order.
    pub flows: Vec<Flow>,
    /// How many (namespace, selector) keys were handed out.
    pub keys: u32,
}

/// Resolve and check parsed files (in command-line order) into a [`Model`] plus every problem.
#[must_use]
pub fn check(files: &[ast::File]) -> (Model, Vec<CheckError>) {
    let mut c = Checker::default();
    c.collect_declarations(files);
    for (file, ast) in files.iter().enumerate() {
        let mut ns = DEFAULT_NAMESPACE.to_owned();
        for item in &ast.items {
            match item {
                Item::NamespaceBlock { name, statements, stray_docs, .. } => {
                    c.check_namespace_name(file, name);
                    for s in statements {
                        c.statement(file, &name.node, s);
                    }
                    for d in stray_docs {
                        c.errors.push(CheckError::StrayDoc { at: Loc { file, span: *d } });
                    }
                }
                Item::NamespaceHeader { name, .. } => {
                    c.check_namespace_name(file, name);
                    ns.clone_from(&name.node);
                }
                Item::Statement(s) => c.statement(file, &ns, s),
                Item::StrayDoc(span) => c.errors.push(CheckError::StrayDoc { at: Loc { file, span: *span } }),
            }
        }
    }
    c.typos();
    (c.model, c.errors)
}

/// Address blocks, each with its exceptions.
type Blocks = Arc<[(IpNet, Vec<IpNet>)]>;

#[derive(Default)]
struct Checker {
    model: Model,
    errors: Vec<CheckError>,
    /// (namespace, name) -> what it was declared as.
    declared: HashMap<(String, String), Declared>,
    /// name -> (namespace, declaration) of its first declaration in any namespace.
    declared_anywhere: HashMap<String, (String, Loc)>,
    /// name -> its first declaration with its own namespaces: such a name means the same pods
    /// from every namespace, so it is found from all of them (after their own declarations).
    qualified: HashMap<String, Declared>,
    externals: HashMap<String, (Blocks, Loc)>,
    /// Undeclared names as used: (namespace, name) -> first use (counts are in `names`).
    implicit: BTreeMap<(String, String), Loc>,
    /// namespace -> selector -> key; nested so that lookups borrow.
    keys: HashMap<String, HashMap<Arc<LabelSelector>, u32>>,
    /// namespace -> bare name -> what it resolved to; most names are used many times.
    names: HashMap<String, HashMap<String, ResolvedName>>,
}

/// A `workload` declaration.
#[derive(Clone)]
struct Declared {
    /// `None`: pods of the namespace the name is declared in; else the namespaces it always means.
    scope: Option<NsScope>,
    /// The pods.
    selector: Arc<LabelSelector>,
    /// The declaration's name.
    at: Loc,
}

#[derive(Clone)]
struct ResolvedName {
    selector: Arc<LabelSelector>,
    key: u32,
    /// How often the name was used; counts for undeclared names, to spot typos.
    uses: usize,
}

impl Checker {
    /// The key of pods `selector` in namespace `ns`.
    fn key(&mut self, ns: &str, selector: &Arc<LabelSelector>) -> u32 {
        if let Some(k) = self.keys.get(ns).and_then(|m| m.get(selector)) {
            return *k;
        }
        let k = self.model.keys;
        self.model.keys += 1;
        self.keys.entry(ns.to_owned()).or_default().insert(selector.clone(), k);
        k
    }

    /// Declarations are gathered first so that duplicates and use-before-declaration can point
    /// at both places whatever the order.
    fn collect_declarations(&mut self, files: &[ast::File]) {
        for (file, ast) in files.iter().enumerate() {
            let mut ns = DEFAULT_NAMESPACE.to_owned();
            let visit = |this: &mut Checker, ns: &str, s: &Statement| match &s.kind {
                StatementKind::Workload { name, namespace, pods } => {
                    let at = Loc { file, span: name.span };
                    let key = (ns.to_owned(), name.node.clone());
                    if let Some(first) = this.declared.get(&key) {
                        this.errors.push(CheckError::DuplicateWorkload {
                            at,
                            first: first.at,
                            name: name.node.clone(),
                            namespace: ns.to_owned(),
                        });
                        return;
                    }
                    let sel = Arc::new(match &pods.node {
                        PodRef::Selector(selector) => this.selector(file, selector),
                        PodRef::All | PodRef::Named(_) => LabelSelector::everything(),
                    });
                    let scope = namespace.as_ref().map(|n| this.namespace_scope(file, n).0);
                    // A workload of one namespace has doors there; one of several is only a peer.
                    let home = match &scope {
                        None => Some(ns.to_owned()),
                        Some(NsScope::Named(n)) => Some(n.clone()),
                        Some(NsScope::Selector(_)) => None,
                    };
                    let declared = Declared { scope, selector: sel.clone(), at };
                    if declared.scope.is_some() {
                        this.qualified.entry(name.node.clone()).or_insert_with(|| declared.clone());
                    }
                    this.declared.insert(key, declared);
                    this.declared_anywhere.entry(name.node.clone()).or_insert_with(|| (ns.to_owned(), at));
                    if let Some(home) = home {
                        let k = this.key(&home, &sel);
                        this.model.workloads.push(NamedWorkload {
                            key: k,
                            name: name.node.clone(),
                            namespace: home,
                            selector: (*sel).clone(),
                            at,
                            docs: s.docs.iter().map(|d| d.node.clone()).collect(),
                        });
                    }
                }
                StatementKind::External { name, blocks } => {
                    let at = Loc { file, span: name.span };
                    if let Some((_, first)) = this.externals.get(&name.node) {
                        this.errors.push(CheckError::DuplicateExternal {
                            at,
                            first: *first,
                            name: name.node.clone(),
                        });
                        return;
                    }
                    let cidrs: Vec<_> = blocks.iter().filter_map(|b| this.cidr_peer(file, b)).collect();
                    this.externals.insert(name.node.clone(), (cidrs.into(), at));
                }
                _ => {}
            };
            for item in &ast.items {
                match item {
                    Item::NamespaceBlock { name, statements, .. } => {
                        for s in statements {
                            visit(self, &name.node, s);
                        }
                    }
                    Item::NamespaceHeader { name, .. } => ns.clone_from(&name.node),
                    Item::Statement(s) => visit(self, &ns, s),
                    Item::StrayDoc(_) => {}
                }
            }
        }
    }

    fn check_namespace_name(&mut self, file: usize, name: &Spanned<String>) {
        if let Err(rule) = dns1123_label(&name.node) {
            self.errors.push(CheckError::InvalidName {
                at: Loc { file, span: name.span },
                kind: NameKind::Namespace,
                text: name.node.clone(),
                rule,
            });
        }
    }

    fn every_pod(&mut self, ns: &str) -> End {
        let pods = Arc::new(LabelSelector::everything());
        let key = self.key(ns, &pods);
        End::Pods {
            ns: NsScope::Named(ns.to_owned()),
            pods,
            display: "*".into(),
            named: false,
            key: Some(key),
        }
    }

    fn statement(&mut self, file: usize, ns: &str, s: &Statement) {
        let at = Loc { file, span: s.span };
        let docs: Vec<String> = s.docs.iter().map(|d| d.node.clone()).collect();
        match &s.kind {
            StatementKind::Workload { .. } | StatementKind::External { .. } => {}
            StatementKind::Assert { claim, .. } => self.assertion(file, ns, claim, at),
            StatementKind::Priority(span) => self.errors.push(CheckError::Unsupported {
                at: Loc { file, span: *span },
                feature: Unsupported::Priority,
            }),
            StatementKind::Default { action, direction } => {
                let dir = direction.as_ref().map(|d| d.node);
                let every_pod = self.every_pod(ns);
                let key = every_pod.single_namespace().map_or(0, |(_, _, k)| k);
                let door = |words| DoorDecl {
                    key,
                    namespace: ns.to_owned(),
                    selector: LabelSelector::everything(),
                    display: "*".into(),
                    named: false,
                    words,
                    at,
                    docs: docs.clone(),
                };
                match action.node {
                    DefaultAction::Deny => {
                        self.model.doors.push(door(DoorWords::State { direction: dir, guarded: true }));
                    }
                    DefaultAction::Allow => {
                        let shared: Arc<[String]> = docs.clone().into();
                        if dir != Some(ast::Direction::Egress) {
                            self.model.flows.push(Flow {
                                sources: Arc::new([(End::Anywhere, at)]),
                                target: every_pod.clone(),
                                target_at: at,
                                ports: Vec::new(),
                                egress_only: false,
                                at,
                                docs: shared.clone(),
                            });
                        }
                        if dir != Some(ast::Direction::Ingress) {
                            self.model.doors.push(door(DoorWords::State {
                                direction: Some(ast::Direction::Egress),
                                guarded: true,
                            }));
                            self.model.flows.push(Flow {
                                sources: Arc::new([(every_pod, at)]),
                                target: End::Anywhere,
                                target_at: at,
                                ports: Vec::new(),
                                egress_only: false,
                                at,
                                docs: shared,
                            });
                        }
                    }
                }
            }
            StatementKind::Door { subject, door } => {
                let Some(end) = self.endpoint(file, ns, subject) else { return };
                let subject_at = Loc { file, span: subject.span };
                match end {
                    End::Pods { ns: NsScope::Named(pod_ns), pods, display, named, key: Some(key) } => {
                        self.model.doors.push(DoorDecl {
                            key,
                            namespace: pod_ns,
                            selector: (*pods).clone(),
                            display: display.to_string(),
                            named,
                            words: door.node,
                            at,
                            docs,
                        });
                    }
                    End::Pods { .. } => {
                        self.errors.push(CheckError::DoorNeedsOneNamespace { at: subject_at });
                    }
                    End::Cidrs(..) | End::Anywhere | End::Dns => {
                        self.errors.push(CheckError::NoDoorsOutsideCluster { at: subject_at });
                    }
                }
            }
            StatementKind::Arrow(arrow) => {
                if arrow.op.node {
                    self.errors.push(CheckError::Unsupported {
                        at: Loc { file, span: arrow.op.span },
                        feature: Unsupported::DenyRule,
                    });
                }
                let mut sources = Vec::new();
                for src in &arrow.sources {
                    let src_at = Loc { file, span: src.span };
                    if src.kind == EndpointKind::Dns {
                        self.errors.push(CheckError::DnsAsSource { at: src_at });
                        continue;
                    }
                    if let Some(end) = self.endpoint(file, ns, src) {
                        sources.push((end, src_at));
                    }
                }
                let sources: Arc<[(End, Loc)]> = sources.into();
                let docs: Arc<[String]> = docs.into();
                for t in &arrow.targets {
                    let target_at = Loc { file, span: t.span };
                    if let Some(l7) = t.l7 {
                        self.errors.push(CheckError::Unsupported {
                            at: Loc { file, span: l7 },
                            feature: Unsupported::L7,
                        });
                    }
                    let ports = match &t.ports {
                        Some(p) if t.endpoint.kind == EndpointKind::Dns => {
                            self.errors.push(CheckError::PortsOnDns { at: Loc { file, span: p.span } });
                            continue;
                        }
                        Some(p) => self.ports(file, &p.node),
                        None => Vec::new(),
                    };
                    let Some(target) = self.endpoint(file, ns, &t.endpoint) else { continue };
                    if sources.is_empty() {
                        continue;
                    }
                    self.model.flows.push(Flow {
                        sources: sources.clone(),
                        target,
                        target_at,
                        ports,
                        egress_only: arrow.egress_only.is_some(),
                        at,
                        docs: docs.clone(),
                    });
                }
            }
        }
    }

    /// An `assert` statement: ends and ports checked like an arrow's, `!->` allowed.
    fn assertion(&mut self, file: usize, ns: &str, claim: &StatementKind, at: Loc) {
        match claim {
            StatementKind::Arrow(arrow) => {
                let sources: Vec<End> =
                    arrow.sources.iter().filter_map(|s| self.endpoint(file, ns, s)).collect();
                for t in &arrow.targets {
                    if let Some(l7) = t.l7 {
                        self.errors.push(CheckError::Unsupported {
                            at: Loc { file, span: l7 },
                            feature: Unsupported::L7,
                        });
                    }
                    let ports = match &t.ports {
                        Some(p) => self.ports(file, &p.node),
                        None => Vec::new(),
                    };
                    let Some(target) = self.endpoint(file, ns, &t.endpoint) else { continue };
                    for source in &sources {
                        self.model.assertions.push(AssertDecl {
                            claim: AssertClaim::Flow {
                                source: source.clone(),
                                target: target.clone(),
                                ports: ports.clone(),
                                never: arrow.op.node,
                            },
                            at,
                        });
                    }
                }
            }
            StatementKind::Door { subject, door } => {
                let Some(end) = self.endpoint(file, ns, subject) else { return };
                if !matches!(end, End::Pods { .. }) {
                    self.errors
                        .push(CheckError::NoDoorsOutsideCluster { at: Loc { file, span: subject.span } });
                    return;
                }
                self.model
                    .assertions
                    .push(AssertDecl { claim: AssertClaim::Door { subject: end, words: door.node }, at });
            }
            _ => {}
        }
    }

    fn endpoint(&mut self, file: usize, ns: &str, e: &Endpoint) -> Option<End> {
        let at = Loc { file, span: e.span };
        match &e.kind {
            EndpointKind::Anywhere => Some(End::Anywhere),
            EndpointKind::Dns => Some(End::Dns),
            EndpointKind::Nodes => {
                self.errors.push(CheckError::Unsupported { at, feature: Unsupported::Nodes });
                None
            }
            EndpointKind::Fqdn(_) => {
                self.errors.push(CheckError::Unsupported { at, feature: Unsupported::Fqdn });
                None
            }
            EndpointKind::Cidr(c) => {
                let block = self.cidr_peer(file, c)?;
                Some(End::Cidrs(Arc::new([block]), c.cidr.node.as_str().into()))
            }
            EndpointKind::Pods { namespace, pods } => {
                let (scope, ns_display) = match namespace {
                    None => (NsScope::Named(ns.to_owned()), None),
                    Some(n) => {
                        let (scope, display) = self.namespace_scope(file, n);
                        (scope, Some(display))
                    }
                };
                let lookup_ns = match &scope {
                    NsScope::Named(n) => Some(n.as_str()),
                    NsScope::Selector(_) => None,
                };
                let (selector, pod_display, named, key) = match &pods.node {
                    PodRef::All => (Arc::new(LabelSelector::everything()), Cow::Borrowed("*"), false, None),
                    PodRef::Selector(s) => {
                        (Arc::new(self.selector(file, s)), Cow::Owned(selector_text(s)), false, None)
                    }
                    PodRef::Named(name) => {
                        if namespace.is_none()
                            && let Some((blocks, decl)) = self.externals.get(name)
                        {
                            if (decl.file, decl.span.start) > (at.file, at.span.start) {
                                self.errors.push(CheckError::UsedBeforeDeclaration {
                                    at,
                                    declared: *decl,
                                    name: name.clone(),
                                });
                            }
                            return Some(End::Cidrs(blocks.clone(), name.as_str().into()));
                        }
                        let here = self
                            .declared
                            .get(&(ns.to_owned(), name.clone()))
                            .or_else(|| self.qualified.get(name))
                            .cloned();
                        if let Some(d) = &here
                            && let Some(own) = &d.scope
                        {
                            // A name declared with its own namespaces means them wherever it is
                            // used, and cannot take another.
                            self.used_before(at, d.at, name);
                            if namespace.is_some() {
                                self.errors.push(CheckError::NamespaceOfQualifiedWorkload {
                                    at,
                                    name: name.clone(),
                                    declared: d.at,
                                });
                                return None;
                            }
                            let key = match own {
                                NsScope::Named(n) => Some(self.key(n, &d.selector)),
                                NsScope::Selector(_) => None,
                            };
                            return Some(End::Pods {
                                ns: own.clone(),
                                pods: d.selector.clone(),
                                display: name.as_str().into(),
                                named: true,
                                key,
                            });
                        }
                        match lookup_ns {
                            Some(lookup) => {
                                if let Some(d) = self.declared.get(&(lookup.to_owned(), name.clone()))
                                    && d.scope.is_some()
                                {
                                    let declared = d.at;
                                    self.errors.push(CheckError::NamespaceOfQualifiedWorkload {
                                        at,
                                        name: name.clone(),
                                        declared,
                                    });
                                    return None;
                                }
                                let r = self.named_workload(lookup, name, at);
                                (r.selector, Cow::Borrowed(name.as_str()), true, Some(r.key))
                            }
                            // `*/name` or `{..}/name`: the pods the name means here, in every
                            // chosen namespace.
                            None => match here {
                                Some(d) => {
                                    self.used_before(at, d.at, name);
                                    (d.selector, Cow::Borrowed(name.as_str()), true, None)
                                }
                                None => {
                                    self.check_implicit_name(name, at);
                                    self.declared_elsewhere(ns, name, at);
                                    (
                                        Arc::new(LabelSelector::labels([("app", name.as_str())])),
                                        Cow::Borrowed(name.as_str()),
                                        true,
                                        None,
                                    )
                                }
                            },
                        }
                    }
                };
                let key = match (key, lookup_ns) {
                    (Some(k), _) => Some(k),
                    (None, Some(ns)) => Some(self.key(ns, &selector)),
                    (None, None) => None,
                };
                let display: Arc<str> = match ns_display {
                    Some(n) => format!("{n}/{pod_display}").into(),
                    None => Arc::from(&*pod_display),
                };
                Some(End::Pods { ns: scope, pods: selector, display, named, key })
            }
        }
    }

    /// `*`, `{labels}` or a name before the `/` of an endpoint or a qualified workload: the scope
    /// and how to show it.
    fn namespace_scope(&mut self, file: usize, n: &Spanned<NamespaceRef>) -> (NsScope, String) {
        match &n.node {
            NamespaceRef::All => (NsScope::Selector(LabelSelector::everything()), "*".to_owned()),
            NamespaceRef::Selector(s) => (NsScope::Selector(self.selector(file, s)), selector_text(s)),
            NamespaceRef::Named(name) => {
                self.check_namespace_name(file, &Spanned { node: name.clone(), span: n.span });
                (NsScope::Named(name.clone()), name.clone())
            }
        }
    }

    fn used_before(&mut self, at: Loc, declared: Loc, name: &str) {
        if (declared.file, declared.span.start) > (at.file, at.span.start) {
            self.errors.push(CheckError::UsedBeforeDeclaration { at, declared, name: name.to_owned() });
        }
    }

    /// An undeclared `name` in namespace `ns` means `app=<name>`: say so when the name is
    /// declared in another namespace, where it means something else.
    fn declared_elsewhere(&mut self, ns: &str, name: &str, at: Loc) {
        if let Some((declared_ns, declared)) = self.declared_anywhere.get(name)
            && declared_ns != ns
        {
            self.errors.push(CheckError::DeclaredElsewhere {
                at,
                name: name.to_owned(),
                namespace: ns.to_owned(),
                declared: *declared,
                declared_namespace: declared_ns.clone(),
            });
        }
    }

    fn check_implicit_name(&mut self, name: &str, at: Loc) {
        if let Err(rule) = label_value(name) {
            self.errors.push(CheckError::InvalidName {
                at,
                kind: NameKind::ImplicitWorkload,
                text: name.to_owned(),
                rule,
            });
        }
    }

    /// A bare workload name in namespace `ns`: the declared workload, or `app=<name>`.
    fn named_workload(&mut self, ns: &str, name: &str, at: Loc) -> ResolvedName {
        if let Some(r) = self.names.get_mut(ns).and_then(|m| m.get_mut(name)) {
            r.uses += 1;
            return r.clone();
        }
        let resolved = if let Some(Declared { selector: sel, at: decl, .. }) =
            self.declared.get(&(ns.to_owned(), name.to_owned())).cloned()
        {
            self.used_before(at, decl, name);
            let key = self.key(ns, &sel);
            ResolvedName { selector: sel, key, uses: 1 }
        } else {
            self.check_implicit_name(name, at);
            self.declared_elsewhere(ns, name, at);
            let selector = Arc::new(LabelSelector::labels([("app", name)]));
            let key = self.key(ns, &selector);
            self.implicit.insert((ns.to_owned(), name.to_owned()), at);
            self.model.workloads.push(NamedWorkload {
                key,
                name: name.to_owned(),
                namespace: ns.to_owned(),
                selector: (*selector).clone(),
                at,
                docs: Vec::new(),
            });
            ResolvedName { selector, key, uses: 1 }
        };
        self.names.entry(ns.to_owned()).or_default().insert(name.to_owned(), resolved.clone());
        resolved
    }

    /// Undeclared names used once that look like another name: probably typos. Of two
    /// undeclared names used once each (`loadgenerator`, `loadgenerater`), the later one is
    /// reported, since either may be the misspelt one.
    fn typos(&mut self) {
        // Candidates per namespace (`""`: externals, seen from every namespace): declared
        // workloads and externals, and implicit names (with how often each is used).
        let mut candidates: HashMap<&str, Vec<(&str, Loc, bool)>> = HashMap::new();
        for ((ns, name), d) in &self.declared {
            candidates.entry(ns).or_default().push((name, d.at, false));
        }
        for (name, (_, at)) in &self.externals {
            candidates.entry("").or_default().push((name, *at, false));
        }
        let uses = |ns: &str, name: &str| self.names.get(ns).and_then(|m| m.get(name)).map_or(0, |r| r.uses);
        for ((ns, name), at) in &self.implicit {
            candidates.entry(ns).or_default().push((name, *at, uses(ns, name) == 1));
        }
        for list in candidates.values_mut() {
            list.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        }
        // Looked up by deletion variants, not compared pairwise: see `typos`.
        let mut search = typos::Typos::new(candidates);
        let mut found = Vec::new();
        for ((ns, name), at) in self.implicit.iter().filter(|((ns, name), _)| uses(ns, name) == 1) {
            if let Some((cname, cat, once)) = search.nearest(ns, name, *at) {
                found.push(CheckError::PossibleTypo {
                    at: *at,
                    name: name.clone(),
                    suggestion: cname.to_owned(),
                    suggestion_at: cat,
                    both_once: once,
                });
            }
        }
        self.errors.extend(found);
    }

    fn selector(&mut self, file: usize, s: &Selector) -> LabelSelector {
        let mut out = LabelSelector::default();
        // Each key once, but for one pair: `key` with `key != v` or `key notin (...)` (the label
        // is there, with none of those values), which no single requirement says.
        let mut seen: HashMap<&str, (Loc, &SelectorOp, bool)> = HashMap::new();
        let excludes = |op: &SelectorOp| matches!(op, SelectorOp::NotEquals(_) | SelectorOp::NotIn(_));
        for r in &s.requirements {
            let key_at = Loc { file, span: r.key.span };
            self.label_key(key_at, &r.key.node);
            if let Some((first, first_op, paired)) = seen.get_mut(r.key.node.as_str()) {
                let pair = matches!(
                    (&**first_op, &r.op),
                    (SelectorOp::Exists, op) | (op, SelectorOp::Exists) if excludes(op)
                );
                if !pair || *paired {
                    self.errors.push(CheckError::DuplicateLabelKey {
                        at: key_at,
                        first: *first,
                        key: r.key.node.clone(),
                    });
                    continue;
                }
                *paired = true;
            } else {
                seen.insert(&r.key.node, (key_at, &r.op, false));
            }
            let key = r.key.node.clone();
            let values = |this: &mut Checker, vs: &[Spanned<String>]| -> Vec<String> {
                let mut out: Vec<String> = vs
                    .iter()
                    .map(|v| {
                        this.value(file, v);
                        v.node.clone()
                    })
                    .collect();
                out.sort();
                out.dedup();
                out
            };
            match &r.op {
                SelectorOp::Equals(v) => {
                    self.value(file, v);
                    out.match_labels.insert(key, v.node.clone());
                }
                SelectorOp::NotEquals(v) => {
                    let vals = values(self, std::slice::from_ref(v));
                    out.match_expressions.push(Requirement { key, operator: Operator::NotIn, values: vals });
                }
                SelectorOp::In(vs) => {
                    let vals = values(self, vs);
                    out.match_expressions.push(Requirement { key, operator: Operator::In, values: vals });
                }
                SelectorOp::NotIn(vs) => {
                    let vals = values(self, vs);
                    out.match_expressions.push(Requirement { key, operator: Operator::NotIn, values: vals });
                }
                SelectorOp::Exists => {
                    out.match_expressions.push(Requirement {
                        key,
                        operator: Operator::Exists,
                        values: vec![],
                    });
                }
                SelectorOp::DoesNotExist => out.match_expressions.push(Requirement {
                    key,
                    operator: Operator::DoesNotExist,
                    values: vec![],
                }),
            }
        }
        // Canonical order, so that the same pods written two ways are one workload.
        out.match_expressions.sort();
        out
    }

    fn value(&mut self, file: usize, v: &Spanned<String>) {
        if let Err(rule) = label_value(&v.node) {
            self.errors.push(CheckError::InvalidName {
                at: Loc { file, span: v.span },
                kind: NameKind::LabelValue,
                text: v.node.clone(),
                rule,
            });
        }
    }

    fn label_key(&mut self, at: Loc, key: &str) {
        let (prefix, name) = match key.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key),
        };
        if let Some(p) = prefix
            && let Err(rule) = dns1123_subdomain(p)
        {
            self.errors.push(CheckError::InvalidName {
                at,
                kind: NameKind::LabelKeyPrefix,
                text: key.to_owned(),
                rule,
            });
        }
        let name_check = if name.is_empty() { Err(NameRule::Empty) } else { label_value(name) };
        if let Err(rule) = name_check {
            self.errors.push(CheckError::InvalidName {
                at,
                kind: NameKind::LabelKeyName,
                text: key.to_owned(),
                rule,
            });
        }
    }

    fn ports(&mut self, file: usize, items: &[ast::PortItem]) -> Vec<Port> {
        let mut out = Vec::new();
        for item in items {
            let protocol = match &item.protocol {
                None => Protocol::Tcp,
                Some(p) => match p.node.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    other => {
                        let suggestion = ["tcp", "udp", "sctp"]
                            .into_iter()
                            .find(|k| strsim::damerau_levenshtein(other, k) <= 1);
                        self.errors.push(CheckError::UnknownProtocol {
                            at: Loc { file, span: p.span },
                            protocol: p.node.clone(),
                            suggestion,
                        });
                        continue;
                    }
                },
            };
            let at = Loc { file, span: item.port.span };
            let port = match &item.port.node {
                PortSyntax::Any => Port { protocol, port: None, end_port: None },
                PortSyntax::Number(n) => {
                    let Some(p) = self.port_number(at, n) else { continue };
                    Port { protocol, port: Some(PortValue::Number(p)), end_port: None }
                }
                PortSyntax::Range(lo, hi) => {
                    let (Some(l), Some(h)) = (self.port_number(at, lo), self.port_number(at, hi)) else {
                        continue;
                    };
                    if h < l {
                        self.errors.push(CheckError::EndPortBelowPort { at, port: l, end_port: h });
                        continue;
                    }
                    if h == l {
                        Port { protocol, port: Some(PortValue::Number(l)), end_port: None }
                    } else {
                        Port { protocol, port: Some(PortValue::Number(l)), end_port: Some(h) }
                    }
                }
                PortSyntax::Name(n) => {
                    if let Err(rule) = port_name(n) {
                        self.errors.push(CheckError::InvalidName {
                            at,
                            kind: NameKind::PortName,
                            text: n.clone(),
                            rule,
                        });
                        continue;
                    }
                    Port { protocol, port: Some(PortValue::Name(n.clone())), end_port: None }
                }
            };
            if !out.contains(&port) {
                out.push(port);
            }
        }
        out
    }

    fn port_number(&mut self, at: Loc, text: &str) -> Option<u16> {
        match text.parse::<u32>() {
            Ok(n @ 1..=65535) => Some(u16::try_from(n).expect("range-checked")),
            _ => {
                self.errors.push(CheckError::PortOutOfRange { at, port: text.to_owned() });
                None
            }
        }
    }

    fn cidr_peer(&mut self, file: usize, c: &CidrPeer) -> Option<(IpNet, Vec<IpNet>)> {
        let cidr_at = Loc { file, span: c.cidr.span };
        let cidr = self.cidr(cidr_at, &c.cidr.node)?;
        let mut except = Vec::new();
        let mut ok = true;
        for e in &c.except {
            let at = Loc { file, span: e.span };
            let Some(net) = self.cidr(at, &e.node) else {
                ok = false;
                continue;
            };
            if matches!(net, IpNet::V4(_)) != matches!(cidr, IpNet::V4(_)) {
                self.errors.push(CheckError::MixedFamilies { at, cidr_at });
                ok = false;
            } else if !cidr.contains(&net) || net.prefix_len() <= cidr.prefix_len() {
                self.errors.push(CheckError::ExceptOutsideCidr { at, cidr_at, except: net, cidr });
                ok = false;
            } else if !except.contains(&net) {
                except.push(net);
            }
        }
        except.sort();
        ok.then_some((cidr, except))
    }

    fn cidr(&mut self, at: Loc, text: &str) -> Option<IpNet> {
        if text.contains(':') && !text.contains('/') {
            // `2001:db8::1:443` could be an address and a port or a longer address: refuse.
            self.errors.push(CheckError::InvalidCidr { at, text: text.to_owned() });
            return None;
        }
        let parsed = if text.contains('/') {
            text.parse::<IpNet>().ok()
        } else {
            text.parse::<IpAddr>().ok().map(IpNet::from)
        };
        let Some(net) = parsed else {
            self.errors.push(CheckError::InvalidCidr { at, text: text.to_owned() });
            return None;
        };
        if net.trunc() != net {
            self.errors.push(CheckError::HostBitsSet { at, text: text.to_owned(), network: net.trunc() });
            return None;
        }
        Some(net)
    }
}

/// The selector as it was written, for names and messages.
fn selector_text(s: &Selector) -> String {
    let mut parts = Vec::new();
    for r in &s.requirements {
        let k = &r.key.node;
        let list = |vs: &[Spanned<String>]| vs.iter().map(|v| v.node.as_str()).collect::<Vec<_>>().join(", ");
        parts.push(match &r.op {
            SelectorOp::Equals(v) => format!("{k}={}", v.node),
            SelectorOp::NotEquals(v) => format!("{k}!={}", v.node),
            SelectorOp::In(vs) => format!("{k} in ({})", list(vs)),
            SelectorOp::NotIn(vs) => format!("{k} notin ({})", list(vs)),
            SelectorOp::Exists => k.clone(),
            SelectorOp::DoesNotExist => format!("!{k}"),
        });
    }
    format!("{{{}}}", parts.join(", "))
}

/// A label value: empty, or <= 63 characters, alphanumeric at both ends, `-_.` inside.
///
/// # Errors
/// The rule broken.
pub fn label_value(v: &str) -> Result<(), NameRule> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 {
        return Err(NameRule::TooLong(63));
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(NameRule::BadCharacter(c));
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ends_ok(v.chars().next()) || !ends_ok(v.chars().last()) {
        return Err(NameRule::Ends);
    }
    Ok(())
}

/// A DNS-1123 label: <= 63 characters of `a-z0-9-`, alphanumeric at both ends.
///
/// # Errors
/// The rule broken.
pub fn dns1123_label(v: &str) -> Result<(), NameRule> {
    if v.is_empty() {
        return Err(NameRule::Empty);
    }
    if v.len() > 63 {
        return Err(NameRule::TooLong(63));
    }
    if v.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(NameRule::UpperCase);
    }
    if let Some(c) = v.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(NameRule::BadCharacter(c));
    }
    if v.starts_with('-') || v.ends_with('-') {
        return Err(NameRule::Ends);
    }
    Ok(())
}

/// A DNS-1123 subdomain: <= 253 characters, dot-separated DNS-1123 labels.
///
/// # Errors
/// The rule broken.
pub fn dns1123_subdomain(v: &str) -> Result<(), NameRule> {
    if v.len() > 253 {
        return Err(NameRule::TooLong(253));
    }
    v.split('.').try_for_each(dns1123_label)
}

/// An IANA service name as Kubernetes checks container port names: 1 to 15 characters of
/// `a-z0-9-`, at least one letter, no hyphen at either end or twice in a row.
///
/// # Errors
/// The rule broken.
pub fn port_name(v: &str) -> Result<(), NameRule> {
    if v.len() > 15 {
        return Err(NameRule::TooLong(15));
    }
    dns1123_label(v)?;
    if v.contains("--") {
        return Err(NameRule::DoubleHyphen);
    }
    if !v.chars().any(|c| c.is_ascii_lowercase()) {
        return Err(NameRule::NoLetter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules_follow_kubernetes() {
        assert!(label_value("").is_ok());
        assert_eq!(label_value("-a"), Err(NameRule::Ends));
        assert_eq!(label_value(&"a".repeat(64)), Err(NameRule::TooLong(63)));
        assert_eq!(dns1123_label("Shop"), Err(NameRule::UpperCase));
        assert!(dns1123_subdomain("example.com").is_ok());
        assert_eq!(port_name("http--x"), Err(NameRule::DoubleHyphen));
        assert_eq!(port_name("8080"), Err(NameRule::NoLetter));
        assert_eq!(port_name("a-very-long-name"), Err(NameRule::TooLong(15)));
        assert!(port_name("metrics").is_ok());
    }

    #[test]
    fn a_key_with_its_exclusions_selects_pods_that_have_it_with_another_value() {
        use netc_ir::{Direction, Peer};
        for written in ["{tier, tier notin (web, db)}", "{tier notin (web, db), tier}", "{tier, tier!=web}"] {
            let text = format!("workload api = {written}\napi -> backend:80\n");
            let out = crate::compile(&[crate::SourceFile::new("p.np", text.as_str())]);
            assert!(!out.has_errors(), "{written}: {:?}", out.diagnostics);
            assert_eq!(crate::fmt::format(&text).expect("parses"), text, "{written}: formatted as written");
            let ir = out.ir.expect("compiles");
            let (_, _, rule) = ir.rules().find(|(_, d, _)| *d == Direction::Ingress).expect("a rule");
            let Some(Peer::Pods { pods: Some(selector), .. }) = rule.peers.first() else {
                panic!("{written}: a pod peer: {rule:?}")
            };
            let with = |tier: Option<&str>| {
                let labels = tier.map(|t| ("tier".to_owned(), t.to_owned())).into_iter().collect();
                selector.matches(&labels)
            };
            assert!(with(Some("api")), "{written}: another value");
            assert!(!with(Some("web")), "{written}: an excluded value");
            assert!(!with(None), "{written}: no label");
        }
    }
}
