//! `netc import`: NetworkPolicy objects in, netc source with exactly the same meaning out.
//!
//! This is how an existing cluster moves to netc. [`import`] reads any valid NetworkPolicy v1 set
//! and writes idiomatic, formatted netc source that compiles without errors and allows exactly the
//! same flows, door by door, as the objects did (`tests/import.rs` checks that by evaluating both
//! on random policy sets and clusters).
//!
//! # How the meaning is kept
//!
//! Every policy is read into *atoms*: for one set of pods (namespace and canonical pod selector)
//! and one door, one (peer, port) pair that passes. A rule is the product of its peers and ports,
//! and rules, peers, ports and policies are OR'ed, so a door is exactly the union of its atoms, and
//! policies with the same pods merge. A door of the YAML is guarded when a policy selecting those
//! pods lists it in (defaulted) `policyTypes`. The netc program must then give every door of
//! every set of pods the same state and atoms, up to atoms that add nothing (one already allowed
//! by a wider atom of a door that already guards those pods).
//!
//! An arrow `S -> T:P` writes both ends: an ingress rule on `T` and, when `S`'s egress is guarded
//! (by a statement about `S` or about a wider set of pods), an egress rule on `S`. So:
//!
//! - an ingress atom of `T` from pods `S` whose egress is open in netc is a plain arrow;
//! - when `S`'s egress is guarded and already allows the flow (the YAML has the same flow on
//!   `S`'s side, or a wider one), the arrow is plain too and stands for both atoms;
//! - when `S`'s egress is guarded and does not allow it, the flow exists only at `T`'s door. netc
//!   has no one-sided arrow, so the source is written as the same pods chosen through their
//!   namespace's labels, `{kubernetes.io/metadata.name=ns}/{...}`, which netc treats as pods of
//!   "several namespaces": they have no doors, and the arrow writes only `T`'s ingress rule. The
//!   peer means the same pods, since every namespace carries that label with its own name. Such
//!   an arrow is written with a comment saying so and `@allow(W0207)`: the warning (these pods'
//!   guarded egress does not let the flow out) is what the YAML means;
//! - egress atoms are the mirror image, with one more way out: when nothing guards `T`'s ingress,
//!   `T ingress open` says so and the arrow writes only `S`'s egress rule;
//! - addresses, `anywhere`, namespaces chosen by labels and `dns` have no doors, so arrows to or
//!   from them are one-sided already.
//!
//! - pods of `default` cannot be named from another namespace (`default` is a keyword, so
//!   `default/x` does not parse): an arrow that must write both ends is written at the top level,
//!   where `x` and `shop/y` can both be named.
//!
//! Doors are written only where the arrows do not already say it: `X ingress guarded` for a
//! guarded ingress with no rules, `X egress guarded` for a guarded egress (arrows never guard
//! egress), `X isolated` when both are guarded with no rules, no arrow names `X` and no rule of
//! another policy can apply to its pods (their selectors overlap), `default deny`
//! / `default allow` for `podSelector: {}`. A door that a wider door (`default deny`, say) already
//! guards, and that has no rule or whose rules arrows write anyway, is left out: it changes
//! nothing. Atoms that a wider atom of the same door allows are dropped (`*/tcp` covers `80`).
//!
//! Names: a selector that is exactly `app=<name>` is written as the bare name; one used more than
//! once is declared (`workload role-db = {role=db}`) at the top of its namespace block; others are
//! written inline. Address blocks used more than once, or with exceptions before a port, become
//! `external`s. A policy's `netc.dev/intent` annotation (else `from NetworkPolicy ns/name`) is the
//! doc comment of the first statement about its pods; a policy that adds nothing is named in a
//! comment, so that nothing disappears silently.
//!
//! What netc cannot say, [`import`] refuses with [`ImportError::Inexpressible`] rather than
//! approximating: see [`Construct`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};

use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netc_ir::{Direction, LabelSelector, Operator, Port, PortValue, Protocol, Requirement};

use crate::analysis::workloads::selector_source;
use crate::check::{self, DEFAULT_NAMESPACE};
use crate::codegen::INTENT_ANNOTATION;
use crate::{SourceFile, fmt as netc_fmt, syntax};

mod minimize;
use minimize::minimize;

/// Why a NetworkPolicy set could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportError {
    /// An object the Kubernetes API server would refuse, so it has no meaning to keep.
    Invalid {
        /// `namespace/name` of the policy.
        policy: String,
        /// The field, as a path (`spec.ingress[0].from[1].ipBlock.cidr`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A valid object that netc, as it stands, cannot express exactly.
    Inexpressible {
        /// `namespace/name` of the policy.
        policy: String,
        /// The field, as a path.
        field: String,
        /// What cannot be written.
        construct: Construct,
    },
    /// The source written does not compile: a bug in `import`, reported rather than hidden.
    Internal {
        /// The source that was written.
        source: String,
        /// The compiler's errors, rendered without colour.
        diagnostics: String,
    },
}

/// A construct of NetworkPolicy v1 that netc has no way to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Construct {
    /// A policy in a namespace whose name netc cannot write as `namespace NAME { ... }`: a keyword
    /// (`ingress`, `dns`, ...) or a name starting with a digit.
    NamespaceName {
        /// The namespace.
        namespace: String,
    },
}

impl ImportError {
    /// `namespace/name` of the policy at fault, when there is one.
    #[must_use]
    pub fn policy(&self) -> Option<&str> {
        match self {
            ImportError::Invalid { policy, .. } | ImportError::Inexpressible { policy, .. } => Some(policy),
            ImportError::Internal { .. } => None,
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Invalid { policy, field, problem } => {
                write!(f, "NetworkPolicy {policy}: {field}: {problem} (the API server would refuse it)")
            }
            ImportError::Inexpressible { policy, field, construct } => {
                write!(f, "NetworkPolicy {policy}: {field}: netc cannot express ")?;
                match construct {
                    Construct::NamespaceName { namespace } => write!(
                        f,
                        "policies of namespace `{namespace}`: its name is a netc keyword or does not start \
                         with a letter, so `namespace {namespace} {{ ... }}` cannot be written"
                    ),
                }
            }
            ImportError::Internal { source, diagnostics } => write!(
                f,
                "internal error: the imported source does not compile; please report this.\n\
                 --- source\n{source}--- diagnostics\n{diagnostics}"
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// Turn NetworkPolicy objects into formatted netc source with the same meaning.
///
/// Statements are grouped by namespace (`default` at the top level, the others in blocks, in the
/// order they first appear) and, within one, by set of pods in the order they first appear. Each
/// policy's `netc.dev/intent` annotation, or else a line naming it (`## from NetworkPolicy
/// shop/allow-frontend`), becomes the doc comment of the first statement made from it.
///
/// # Errors
/// [`ImportError::Invalid`] for an object the API server would refuse,
/// [`ImportError::Inexpressible`] for one netc cannot express (never approximated), and
/// [`ImportError::Internal`] if the written source does not compile.
///
/// ```
/// let yaml = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
///             metadata: {name: allow-frontend, namespace: default}\n\
///             spec:\n  podSelector: {matchLabels: {app: backend}}\n  \
///             ingress: [{from: [{podSelector: {matchLabels: {app: frontend}}}]}]\n";
/// let policies = netc::yaml::parse_network_policies(yaml).expect("valid YAML");
/// let source = netc::import::import(&policies).expect("imports");
/// assert_eq!(source, "## from NetworkPolicy default/allow-frontend\nfrontend -> backend\n");
/// ```
pub fn import(policies: &[NetworkPolicy]) -> Result<String, ImportError> {
    // Two objects of one namespace and name are one object, the last one given: what
    // `kubectl apply` leaves on the cluster.
    let kept: Vec<NetworkPolicy> = last_of_each(policies).into_iter().map(|i| policies[i].clone()).collect();
    let model = Model::read(&kept)?;
    let plan = Planner::new(&model).plan();
    let text = Renderer::new(&model, &plan).render();
    let formatted = match netc_fmt::format(&text) {
        Ok(f) => f,
        Err(e) => {
            return Err(ImportError::Internal { source: text, diagnostics: format!("{e:?}\n") });
        }
    };
    let sources = [SourceFile::new("imported.np", formatted.as_str())];
    let out = crate::compile(&sources);
    if out.has_errors() {
        let errors: Vec<_> = out
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == crate::diagnostics::Severity::Error)
            .collect();
        return Err(ImportError::Internal {
            source: formatted,
            diagnostics: crate::diagnostics::render(&errors, &sources, false),
        });
    }
    Ok(formatted)
}

/// `namespace/name` of a policy as messages name it (`default` when it has no namespace), with
/// control and bidirectional formatting characters escaped.
#[must_use]
pub fn policy_id(policy: &NetworkPolicy) -> String {
    format!(
        "{}/{}",
        escape_for_message(policy.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)),
        escape_for_message(policy.metadata.name.as_deref().unwrap_or(""))
    )
}

/// The indices of `policies` that `kubectl apply` would leave on a cluster, in order: of several
/// objects with one namespace (`default` when none is given) and name, the last one.
#[must_use]
pub fn last_of_each(policies: &[NetworkPolicy]) -> Vec<usize> {
    let key = |p: &NetworkPolicy| {
        (
            p.metadata.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            p.metadata.name.clone(),
        )
    };
    let mut last: HashMap<(String, Option<String>), usize> = HashMap::new();
    for (i, p) in policies.iter().enumerate() {
        last.insert(key(p), i);
    }
    (0..policies.len()).filter(|&i| last.get(&key(&policies[i])) == Some(&i)).collect()
}

/// `text` with control characters (line breaks included, tab excepted) and bidirectional
/// formatting characters written as `\u{..}` escapes.
fn escape_for_message(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\t') || crate::syntax::is_bidi_control(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An intent annotation as the lines of a `##` doc comment: split at every line break the netc
/// grammar knows (`\n`, `\r\n` and a lone `\r`), trailing space trimmed, and any other control or
/// bidirectional formatting character escaped (`\u{1b}`), so that no text can end the comment and
/// become a statement, or hide one.
fn comment_lines(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n");
    let text = text.strip_suffix('\n').unwrap_or(&text);
    text.split(['\n', '\r']).map(|l| escape_for_message(l.trim_end())).collect()
}

// ---------------------------------------------------------------------------------------------
// Reading: policies -> sets of pods with doors made of atoms.
// ---------------------------------------------------------------------------------------------

/// Namespaces of pods in a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum NsRef {
    /// One namespace by name (a policy's own, or `kubernetes.io/metadata.name: x`).
    Named(String),
    /// Namespaces by labels; empty: all of them.
    Labels(LabelSelector),
}

/// A peer in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PeerC {
    /// No `from`/`to`: anyone.
    Any,
    /// Pods of some namespaces with some labels (empty selector: every pod).
    Pods { ns: NsRef, pods: LabelSelector },
    /// Addresses, no host bits, exceptions sorted.
    Block { cidr: IpNet, except: Vec<IpNet> },
}

/// A port in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PortC {
    /// No `ports`: every port and protocol.
    All,
    /// One entry (`end_port` only for a true range).
    One(Port),
}

/// One (peer, port) pair a door lets through, with the policies that say so.
#[derive(Debug, Clone)]
struct Atom {
    peer: PeerC,
    port: PortC,
    origins: BTreeSet<usize>,
}

/// A set of pods (one namespace, one canonical selector) and the doors the YAML gives it.
#[derive(Debug)]
struct Entity {
    ns: String,
    sel: LabelSelector,
    /// Per direction (ingress, egress): `None` open, `Some(atoms)` guarded.
    doors: [Option<Vec<Atom>>; 2],
    /// Per direction: the policies that guard that door.
    door_origins: [BTreeSet<usize>; 2],
    /// Per direction: where each (peer, port) stands in the door, so that merging the atoms of
    /// many rules and policies costs one lookup each.
    atom_at: [HashMap<(PeerC, PortC), usize>; 2],
}

/// One input policy, for doc comments.
#[derive(Debug)]
struct Origin {
    namespace: String,
    id: String,
    doc: Vec<String>,
    /// Its pod selector matches no pod: it changes nothing.
    selects_nothing: bool,
}

#[derive(Debug, Default)]
struct Model {
    origins: Vec<Origin>,
    entities: Vec<Entity>,
    index: HashMap<(String, LabelSelector), usize>,
}

/// Context for error messages: which policy, which field.
struct At<'a> {
    policy: &'a str,
}

impl At<'_> {
    fn invalid(&self, field: impl Into<String>, problem: impl Into<String>) -> ImportError {
        ImportError::Invalid { policy: self.policy.to_owned(), field: field.into(), problem: problem.into() }
    }
}

impl Model {
    fn read(policies: &[NetworkPolicy]) -> Result<Model, ImportError> {
        let mut model = Model::default();
        for (i, p) in policies.iter().enumerate() {
            model.read_policy(i, p)?;
        }
        for e in &mut model.entities {
            e.atom_at = Default::default();
            for door in e.doors.iter_mut().flatten() {
                minimize(door);
            }
        }
        Ok(model)
    }

    fn read_policy(&mut self, index: usize, policy: &NetworkPolicy) -> Result<(), ImportError> {
        let ns = policy.metadata.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let name = policy.metadata.name.as_deref().unwrap_or("");
        // Both names are printed into the source (doc and idle comments): checked as the API
        // server checks them before anything is written, so that no name can end a comment line
        // and start a statement. Messages show them escaped, not as given.
        let id = policy_id(policy);
        if let Err(rule) = check::dns1123_label(&ns) {
            return Err(At { policy: &id }.invalid(
                "metadata.namespace",
                format!("`{}` is not a DNS-1123 label ({rule:?})", escape_for_message(&ns)),
            ));
        }
        if let Err(rule) = check::dns1123_subdomain(name) {
            return Err(At { policy: &id }.invalid(
                "metadata.name",
                format!("`{}` is not a DNS-1123 subdomain ({rule:?})", escape_for_message(name)),
            ));
        }
        let at = At { policy: &id };
        let doc = match policy.metadata.annotations.as_ref().and_then(|a| a.get(INTENT_ANNOTATION)) {
            Some(intent) if !intent.trim().is_empty() => comment_lines(intent),
            _ => vec![format!("from NetworkPolicy {id}")],
        };
        let spec = policy.spec.clone().unwrap_or_default();
        let sel = match &spec.pod_selector {
            Some(s) => canonical(s, &at, "spec.podSelector")?,
            None => Some(LabelSelector::everything()),
        };
        let mut origin = Origin { namespace: ns.clone(), id: id.clone(), doc, selects_nothing: false };
        let ingress_rules = spec.ingress.as_deref().unwrap_or_default();
        let egress_rules = spec.egress.as_deref().unwrap_or_default();
        let mut on = [false, false];
        match spec.policy_types.as_deref() {
            None | Some([]) => on = [true, !egress_rules.is_empty()],
            Some(types) => {
                for (i, t) in types.iter().enumerate() {
                    match t.as_str() {
                        "Ingress" => on[0] = true,
                        "Egress" => on[1] = true,
                        other => {
                            return Err(at.invalid(
                                format!("spec.policyTypes[{i}]"),
                                format!("unknown type `{other}`"),
                            ));
                        }
                    }
                }
            }
        }
        // Read every rule (so that invalid objects are refused even where they change nothing).
        let mut atoms: [Vec<Atom>; 2] = [Vec::new(), Vec::new()];
        for (i, r) in ingress_rules.iter().enumerate() {
            let field = format!("spec.ingress[{i}]");
            atoms[0].extend(rule_atoms(
                r.from.as_deref(),
                r.ports.as_deref(),
                &ns,
                index,
                &at,
                &field,
                "from",
            )?);
        }
        for (i, r) in egress_rules.iter().enumerate() {
            let field = format!("spec.egress[{i}]");
            atoms[1].extend(rule_atoms(r.to.as_deref(), r.ports.as_deref(), &ns, index, &at, &field, "to")?);
        }
        let Some(sel) = sel else {
            origin.selects_nothing = true;
            self.origins.push(origin);
            return Ok(());
        };
        self.origins.push(origin);
        if !on.contains(&true) {
            return Ok(());
        }
        if !writable_section(&ns) {
            return Err(ImportError::Inexpressible {
                policy: id,
                field: "metadata.namespace".into(),
                construct: Construct::NamespaceName { namespace: ns },
            });
        }
        let e = self.entity(&ns, &sel);
        for d in 0..2 {
            if !on[d] {
                continue;
            }
            e.door_origins[d].insert(index);
            let door = e.doors[d].get_or_insert_with(Vec::new);
            let at = &mut e.atom_at[d];
            for a in std::mem::take(&mut atoms[d]) {
                match at.get(&(a.peer.clone(), a.port.clone())) {
                    Some(&x) => door[x].origins.extend(a.origins),
                    None => {
                        at.insert((a.peer.clone(), a.port.clone()), door.len());
                        door.push(a);
                    }
                }
            }
        }
        Ok(())
    }

    fn entity(&mut self, ns: &str, sel: &LabelSelector) -> &mut Entity {
        let key = (ns.to_owned(), sel.clone());
        let i = match self.index.get(&key) {
            Some(i) => *i,
            None => {
                let i = self.entities.len();
                self.entities.push(Entity {
                    ns: ns.to_owned(),
                    sel: sel.clone(),
                    doors: [None, None],
                    door_origins: [BTreeSet::new(), BTreeSet::new()],
                    atom_at: [HashMap::new(), HashMap::new()],
                });
                self.index.insert(key, i);
                i
            }
        };
        &mut self.entities[i]
    }

    fn find(&self, ns: &str, sel: &LabelSelector) -> Option<usize> {
        self.index.get(&(ns.to_owned(), sel.clone())).copied()
    }

    /// The entities of namespace `ns` whose `d` door is guarded and whose selector provably
    /// selects every pod `sel` selects, as netc's door model sees it (each requirement of the
    /// wider selector appears in the narrower one).
    fn guards<'a>(
        &'a self,
        ns: &'a str,
        sel: &'a LabelSelector,
        d: usize,
    ) -> impl Iterator<Item = &'a Entity> {
        self.entities.iter().filter(move |e| e.ns == ns && e.doors[d].is_some() && subsumes(&e.sel, sel))
    }

    /// Whether netc will consider door `d` of pods `sel` in `ns` guarded by some statement.
    fn covered(&self, ns: &str, sel: &LabelSelector, d: usize) -> bool {
        self.guards(ns, sel, d).next().is_some()
    }

    /// Whether some entity of `ns` guards door `d` of some of the pods `sel` selects: netc's door
    /// model then writes an arrow's egress rule for the pods they share.
    fn overlapped(&self, ns: &str, sel: &LabelSelector, d: usize) -> bool {
        let pods = crate::prove::Conj::of(sel);
        self.entities
            .iter()
            .any(|e| e.ns == ns && e.doors[d].is_some() && crate::prove::Conj::of(&e.sel).overlaps(&pods))
    }

    /// Whether another entity of `e`'s namespace whose pods can be `e`'s has rules: then those
    /// rules apply to some of `e`'s pods, and `e` is guarded, not isolated.
    fn rules_overlap(&self, e: &Entity) -> bool {
        let pods = crate::prove::Conj::of(&e.sel);
        self.entities.iter().any(|o| {
            o.ns == e.ns
                && o.sel != e.sel
                && o.doors.iter().flatten().any(|atoms| !atoms.is_empty())
                && crate::prove::Conj::of(&o.sel).overlaps(&pods)
        })
    }

    /// Whether a wider set of pods than entity `e` guards its door `d`.
    fn covered_by_other(&self, e: &Entity, d: usize) -> bool {
        self.guards(&e.ns, &e.sel, d).any(|g| g.sel != e.sel)
    }

    /// Whether door `d` of every pod `sel` selects in `ns` is guarded already and lets (peer,
    /// port) through, so that an arrow writing that atom there too changes nothing.
    fn allows(&self, ns: &str, sel: &LabelSelector, d: usize, peer: &PeerC, port: &PortC) -> bool {
        self.guards(ns, sel, d).any(|g| {
            g.doors[d].iter().flatten().any(|a| peer_contains(&a.peer, peer) && port_contains(&a.port, port))
        })
    }
}

/// Whether `wide` selects every pod `narrow` selects, for every possible pod: the same test
/// netc's door model uses, so that import predicts which arrows write egress rules.
fn subsumes(wide: &LabelSelector, narrow: &LabelSelector) -> bool {
    let syntactic = wide.match_labels.iter().all(|(k, v)| narrow.match_labels.get(k) == Some(v))
        && wide.match_expressions.iter().all(|r| narrow.match_expressions.contains(r));
    syntactic || crate::prove::Conj::of(narrow).is_subset(&crate::prove::Conj::of(wide))
}

fn peer_contains(wide: &PeerC, narrow: &PeerC) -> bool {
    if wide == narrow {
        return true;
    }
    match (wide, narrow) {
        (PeerC::Any, _) => true,
        (PeerC::Pods { ns: NsRef::Labels(wn), pods: wp }, PeerC::Pods { ns, pods }) => {
            subsumes(wp, pods)
                && match ns {
                    NsRef::Labels(nn) => subsumes(wn, nn),
                    NsRef::Named(_) => wn.is_empty(),
                }
        }
        (PeerC::Pods { ns: NsRef::Named(a), pods: wp }, PeerC::Pods { ns: NsRef::Named(b), pods }) => {
            a == b && subsumes(wp, pods)
        }
        (PeerC::Block { cidr: wc, except: we }, PeerC::Block { cidr, .. }) => {
            we.is_empty() && wc.contains(cidr)
        }
        _ => false,
    }
}

fn port_contains(wide: &PortC, narrow: &PortC) -> bool {
    match (wide, narrow) {
        (PortC::All, _) => true,
        (PortC::One(_), PortC::All) => false,
        (PortC::One(w), PortC::One(n)) => {
            if w.protocol != n.protocol {
                return false;
            }
            match (&w.port, &n.port) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(PortValue::Number(a)), Some(PortValue::Number(c))) => {
                    let b = w.end_port.unwrap_or(*a);
                    let d = n.end_port.unwrap_or(*c);
                    a <= c && d <= b
                }
                (Some(PortValue::Name(a)), Some(PortValue::Name(b))) => a == b,
                _ => false,
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn rule_atoms(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    ns: &str,
    origin: usize,
    at: &At<'_>,
    field: &str,
    peer_field: &str,
) -> Result<Vec<Atom>, ImportError> {
    let peers_given = peers.unwrap_or_default();
    let mut read_peers = Vec::new();
    for (i, p) in peers_given.iter().enumerate() {
        if let Some(peer) = read_peer(p, ns, at, &format!("{field}.{peer_field}[{i}]"))? {
            read_peers.push(peer);
        }
    }
    if peers_given.is_empty() {
        read_peers.push(PeerC::Any);
    }
    let ports_given = ports.unwrap_or_default();
    let mut read_ports = Vec::new();
    for (i, p) in ports_given.iter().enumerate() {
        read_ports.push(read_port(p, at, &format!("{field}.ports[{i}]"))?);
    }
    if ports_given.is_empty() {
        read_ports.push(PortC::All);
    }
    let mut atoms = Vec::new();
    // Peers that match nothing were dropped: a rule whose peers all match nothing allows nothing.
    for peer in &read_peers {
        for port in &read_ports {
            atoms.push(Atom { peer: peer.clone(), port: port.clone(), origins: BTreeSet::from([origin]) });
        }
    }
    Ok(atoms)
}

/// A peer in canonical form; `None` when it matches nothing.
fn read_peer(
    peer: &NetworkPolicyPeer,
    ns: &str,
    at: &At<'_>,
    field: &str,
) -> Result<Option<PeerC>, ImportError> {
    match (&peer.ip_block, &peer.namespace_selector, &peer.pod_selector) {
        (Some(block), None, None) => {
            let cidr = read_cidr(&block.cidr, at, &format!("{field}.ipBlock.cidr"))?;
            let mut except = Vec::new();
            for (i, e) in block.except.iter().flatten().enumerate() {
                let f = format!("{field}.ipBlock.except[{i}]");
                let net = read_cidr(e, at, &f)?;
                if !cidr.contains(&net) || net.prefix_len() <= cidr.prefix_len() {
                    return Err(at.invalid(f, format!("`{e}` is not strictly inside `{}`", block.cidr)));
                }
                except.push(net);
            }
            except.sort();
            except.dedup();
            Ok(Some(PeerC::Block { cidr, except }))
        }
        (Some(_), _, _) => Err(at.invalid(field, "ipBlock cannot be combined with selectors")),
        (None, None, None) => {
            Err(at.invalid(field, "a peer needs podSelector, namespaceSelector or ipBlock"))
        }
        (None, namespaces, pods) => {
            let pods = match pods {
                Some(p) => match canonical(p, at, &format!("{field}.podSelector"))? {
                    Some(s) => s,
                    None => return Ok(None),
                },
                None => LabelSelector::everything(),
            };
            let ns = match namespaces {
                None => NsRef::Named(ns.to_owned()),
                Some(s) => match canonical(s, at, &format!("{field}.namespaceSelector"))? {
                    None => return Ok(None),
                    Some(s) => match s.as_namespace_name() {
                        Some(name) if check::dns1123_label(name).is_ok() => NsRef::Named(name.to_owned()),
                        _ => NsRef::Labels(s),
                    },
                },
            };
            Ok(Some(PeerC::Pods { ns, pods }))
        }
    }
}

fn read_cidr(text: &str, at: &At<'_>, field: &str) -> Result<IpNet, ImportError> {
    text.parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| at.invalid(field, format!("`{text}` is not a CIDR (an address with a prefix length)")))
}

fn read_port(port: &NetworkPolicyPort, at: &At<'_>, field: &str) -> Result<PortC, ImportError> {
    let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => return Err(at.invalid(format!("{field}.protocol"), format!("unknown protocol `{other}`"))),
    };
    let number = |n: i32, f: &str| {
        u16::try_from(n)
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| at.invalid(format!("{field}.{f}"), format!("{n} is not in 1..65535")))
    };
    let (value, end_port) = match (&port.port, port.end_port) {
        (None, None) => (None, None),
        (None, Some(_)) => return Err(at.invalid(format!("{field}.endPort"), "needs a numeric port")),
        (Some(IntOrString::String(name)), None) => {
            if let Err(rule) = check::port_name(name) {
                return Err(at.invalid(
                    format!("{field}.port"),
                    format!("`{name}` is not a valid port name (an IANA service name: {rule:?})"),
                ));
            }
            (Some(PortValue::Name(name.clone())), None)
        }
        (Some(IntOrString::String(_)), Some(_)) => {
            return Err(at.invalid(format!("{field}.endPort"), "not allowed with a named port"));
        }
        (Some(IntOrString::Int(n)), end) => {
            let first = number(*n, "port")?;
            let last = match end {
                Some(e) => number(e, "endPort")?,
                None => first,
            };
            if last < first {
                return Err(at.invalid(format!("{field}.endPort"), format!("{last} is below port {first}")));
            }
            (Some(PortValue::Number(first)), (last > first).then_some(last))
        }
    };
    Ok(PortC::One(Port { protocol, port: value, end_port }))
}

/// What one label key must satisfy, all requirements on it AND'ed.
#[derive(Default)]
struct KeyConstraint {
    exists: bool,
    absent: bool,
    /// Intersection of `matchLabels` and `In` values, when any.
    allowed: Option<BTreeSet<String>>,
    /// Union of `NotIn` values.
    excluded: BTreeSet<String>,
}

/// A selector in the canonical form netc's checker produces from its own notation (one
/// requirement per key, but `Exists` with `NotIn` for "present, with none of these values"; a
/// single allowed value as `matchLabels`; requirements sorted); `None` when no labels can satisfy
/// it.
fn canonical(
    s: &meta::LabelSelector,
    at: &At<'_>,
    field: &str,
) -> Result<Option<LabelSelector>, ImportError> {
    let mut keys: BTreeMap<String, KeyConstraint> = BTreeMap::new();
    for (k, v) in s.match_labels.iter().flatten() {
        check_key(k, at, &format!("{field}.matchLabels"))?;
        check_value(v, at, &format!("{field}.matchLabels.{k}"))?;
        let c = keys.entry(k.clone()).or_default();
        intersect(&mut c.allowed, BTreeSet::from([v.clone()]));
    }
    for (i, r) in s.match_expressions.iter().flatten().enumerate() {
        let f = format!("{field}.matchExpressions[{i}]");
        check_key(&r.key, at, &f)?;
        let values: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
        for v in &values {
            check_value(v, at, &f)?;
        }
        let c = keys.entry(r.key.clone()).or_default();
        match r.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(at.invalid(f, format!("`{}` needs values", r.operator)));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(at.invalid(f, format!("`{}` takes no values", r.operator)));
            }
            "In" => intersect(&mut c.allowed, values),
            "NotIn" => c.excluded.extend(values),
            "Exists" => c.exists = true,
            "DoesNotExist" => c.absent = true,
            other => return Err(at.invalid(f, format!("unknown operator `{other}`"))),
        }
    }
    let mut out = LabelSelector::default();
    for (key, c) in keys {
        if c.absent {
            if c.exists || c.allowed.is_some() {
                return Ok(None);
            }
            out.match_expressions.push(Requirement { key, operator: Operator::DoesNotExist, values: vec![] });
        } else if let Some(allowed) = c.allowed {
            let left: Vec<String> = allowed.difference(&c.excluded).cloned().collect();
            match left.as_slice() {
                [] => return Ok(None),
                [one] => {
                    out.match_labels.insert(key, one.clone());
                }
                _ => out.match_expressions.push(Requirement { key, operator: Operator::In, values: left }),
            }
        } else if c.exists {
            // Present, with none of the excluded values: `key, key notin (...)` in netc.
            if !c.excluded.is_empty() {
                out.match_expressions.push(Requirement {
                    key: key.clone(),
                    operator: Operator::NotIn,
                    values: c.excluded.into_iter().collect(),
                });
            }
            out.match_expressions.push(Requirement { key, operator: Operator::Exists, values: vec![] });
        } else if !c.excluded.is_empty() {
            out.match_expressions.push(Requirement {
                key,
                operator: Operator::NotIn,
                values: c.excluded.into_iter().collect(),
            });
        }
    }
    out.match_expressions.sort();
    Ok(Some(out))
}

fn intersect(allowed: &mut Option<BTreeSet<String>>, values: BTreeSet<String>) {
    *allowed = Some(match allowed.take() {
        None => values,
        Some(a) => a.intersection(&values).cloned().collect(),
    });
}

fn check_key(key: &str, at: &At<'_>, field: &str) -> Result<(), ImportError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| check::dns1123_subdomain(p).is_ok());
    if !prefix_ok || name.is_empty() || check::label_value(name).is_err() {
        return Err(at.invalid(field, format!("`{key}` is not a valid label key")));
    }
    Ok(())
}

fn check_value(value: &str, at: &At<'_>, field: &str) -> Result<(), ImportError> {
    check::label_value(value).map_err(|_| at.invalid(field, format!("`{value}` is not a valid label value")))
}

/// Whether `ns/...` can be written: a namespace name that is a netc name.
fn nameable(ns: &str) -> bool {
    syntax::is_name(ns)
}

/// Whether statements of `ns` can be written: at the top level for `default`, in a block for the
/// others.
fn writable_section(ns: &str) -> bool {
    ns == DEFAULT_NAMESPACE || nameable(ns)
}

// ---------------------------------------------------------------------------------------------
// Planning: which statements, in which namespace, in which order.
// ---------------------------------------------------------------------------------------------

/// One end of an arrow, or a door statement's subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum EndRef {
    /// Pods of one namespace. `doors`: written as a name, `*`, `{...}` or `ns/...`, so that netc
    /// gives them doors; otherwise as `{kubernetes.io/metadata.name=ns}/{...}`, which has none.
    Pods {
        ns: String,
        sel: LabelSelector,
        doors: bool,
    },
    /// Pods of the namespaces with some labels (`*/...` for all).
    PodsIn {
        ns: LabelSelector,
        pods: LabelSelector,
    },
    Anywhere,
    Dns,
    Block {
        cidr: IpNet,
        except: Vec<IpNet>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Words {
    Isolated,
    Guarded(Option<Direction>),
    IngressOpen,
}

#[derive(Debug, Clone)]
enum Stmt {
    Door { subject: EndRef, words: Words },
    Default { allow: bool, direction: Option<Direction> },
    Arrow { sources: Vec<EndRef>, targets: Vec<(EndRef, Vec<PortC>)> },
}

/// Why an arrow uses the door-less form of pods that have doors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum OneSided {
    /// Only the target's ingress lets this flow in; the source's egress does not let it out.
    IngressOnly,
    /// Only the source's egress lets it out; the target's ingress does not let it in.
    EgressOnly,
}

#[derive(Debug, Clone)]
struct Planned {
    /// The namespace section it is written in.
    section: String,
    /// Ordering within the section: the entity it belongs to, the first policy it comes from
    /// (so that statements follow the input), the phase (0 doors, 1 doors of others opened, 2
    /// arrows in, 3 arrows out), then the order of planning.
    key: (usize, usize, u8, usize),
    stmt: Stmt,
    origins: BTreeSet<usize>,
    one_sided: Option<OneSided>,
}

struct Plan {
    statements: Vec<Planned>,
}

struct Planner<'m> {
    model: &'m Model,
    out: Vec<Planned>,
    /// Consumed egress atoms: (entity, atom index).
    consumed: HashSet<(usize, usize)>,
    /// Sets of pods already declared `ingress open`.
    opened: HashSet<(String, LabelSelector)>,
    seq: usize,
}

/// What arrows are grouped by: where they go and the end they share (the target of arrows in,
/// the source of arrows out).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ArrowKey {
    owner: usize,
    section: String,
    phase: u8,
    one_sided: Option<OneSided>,
    fixed: EndRef,
}

/// (arrow key, the other end) -> ports and origins, gathered before arrows are made.
type Groups = BTreeMap<(ArrowKey, EndRef), (Vec<PortC>, BTreeSet<usize>)>;

/// The other ends of one [`ArrowKey`], with their ports and origins.
type Others = Vec<(EndRef, Vec<PortC>, BTreeSet<usize>)>;

impl<'m> Planner<'m> {
    fn new(model: &'m Model) -> Planner<'m> {
        Planner { model, out: Vec::new(), consumed: HashSet::new(), opened: HashSet::new(), seq: 0 }
    }

    fn push(
        &mut self,
        section: &str,
        entity: usize,
        phase: u8,
        stmt: Stmt,
        origins: BTreeSet<usize>,
        one_sided: Option<OneSided>,
    ) {
        let rank = self.rank(section, &origins);
        self.push_ranked(section, (entity, rank, phase), stmt, origins, one_sided);
    }

    /// The first policy of namespace `section` among `origins`, to order statements as the input
    /// does (a paired arrow written in its source's namespace also comes from the target's).
    fn rank(&self, section: &str, origins: &BTreeSet<usize>) -> usize {
        let local = origins.iter().copied().find(|&o| self.model.origins[o].namespace == section);
        local.or_else(|| origins.first().copied()).unwrap_or(usize::MAX)
    }

    fn push_ranked(
        &mut self,
        section: &str,
        (entity, rank, phase): (usize, usize, u8),
        stmt: Stmt,
        origins: BTreeSet<usize>,
        one_sided: Option<OneSided>,
    ) {
        self.seq += 1;
        self.out.push(Planned {
            section: section.to_owned(),
            key: (entity, rank, phase, self.seq),
            stmt,
            origins,
            one_sided,
        });
    }

    fn plan(mut self) -> Plan {
        let m = self.model;
        // Which `*` doors are `default allow` (exactly "anyone, any port").
        let allow_all = |e: &Entity, d: usize| {
            e.sel.is_empty()
                && e.doors[d]
                    .as_ref()
                    .is_some_and(|a| a.len() == 1 && a[0].peer == PeerC::Any && a[0].port == PortC::All)
        };
        // 1. Ingress atoms, with their egress twins when the source's egress is guarded.
        let mut groups: Groups = BTreeMap::new();
        for (ti, t) in m.entities.iter().enumerate() {
            if allow_all(t, 0) {
                continue;
            }
            for a in t.doors[0].iter().flatten() {
                self.plan_ingress_atom(ti, t, a, &mut groups);
            }
        }
        // 2. Egress atoms left.
        for (si, s) in m.entities.iter().enumerate() {
            if allow_all(s, 1) {
                continue;
            }
            let Some(atoms) = &s.doors[1] else { continue };
            let left: Vec<usize> = (0..atoms.len()).filter(|i| !self.consumed.contains(&(si, *i))).collect();
            // Both DNS atoms to kube-dns: the built-in `dns`.
            let dns_peer = PeerC::Pods {
                ns: NsRef::Named("kube-system".into()),
                pods: LabelSelector::labels([("k8s-app", "kube-dns")]),
            };
            let dns_port = |p: Protocol| {
                PortC::One(Port { protocol: p, port: Some(PortValue::Number(53)), end_port: None })
            };
            let find = |p: Protocol| {
                left.iter().copied().find(|&i| atoms[i].peer == dns_peer && atoms[i].port == dns_port(p))
            };
            let mut dns = Vec::new();
            if let (Some(u), Some(t)) = (find(Protocol::Udp), find(Protocol::Tcp)) {
                dns = vec![u, t];
                let origins = atoms[u].origins.union(&atoms[t].origins).copied().collect();
                let key = ArrowKey {
                    owner: si,
                    section: s.ns.clone(),
                    phase: 3,
                    one_sided: None,
                    fixed: self.pods(s, true),
                };
                groups.insert((key, EndRef::Dns), (Vec::new(), origins));
            }
            for i in left {
                if !dns.contains(&i) {
                    self.plan_egress_atom(si, s, &atoms[i], &mut groups);
                }
            }
        }
        self.arrows(groups);
        // 3. Doors.
        let named: HashSet<(String, LabelSelector)> = self
            .out
            .iter()
            .flat_map(|p| match &p.stmt {
                Stmt::Arrow { sources, targets } => {
                    sources.iter().chain(targets.iter().map(|(t, _)| t)).cloned().collect::<Vec<_>>()
                }
                _ => Vec::new(),
            })
            .filter_map(|e| match e {
                EndRef::Pods { ns, sel, doors: true } => Some((ns, sel)),
                _ => None,
            })
            .collect();
        for (ei, e) in m.entities.iter().enumerate() {
            self.plan_doors(ei, e, allow_all(e, 0), allow_all(e, 1), &named);
        }
        Plan { statements: self.out }
    }

    fn pods(&self, e: &Entity, doors: bool) -> EndRef {
        EndRef::Pods { ns: e.ns.clone(), sel: e.sel.clone(), doors }
    }

    fn plan_ingress_atom(&mut self, ti: usize, t: &Entity, a: &Atom, groups: &mut Groups) {
        let m = self.model;
        let target = self.pods(t, true);
        let mut section = t.ns.clone();
        let mut owner = ti;
        let mut origins = a.origins.clone();
        let mut one_sided = None;
        let mut from_source_side = false;
        let source = match &a.peer {
            PeerC::Any => EndRef::Anywhere,
            PeerC::Block { cidr, except } => EndRef::Block { cidr: *cidr, except: except.clone() },
            PeerC::Pods { ns: NsRef::Labels(n), pods } => {
                EndRef::PodsIn { ns: n.clone(), pods: pods.clone() }
            }
            PeerC::Pods { ns: NsRef::Named(sns), pods } => {
                let door_form = *sns == t.ns || nameable(sns);
                if m.covered(sns, pods, 1) {
                    let peer_t = PeerC::Pods { ns: NsRef::Named(t.ns.clone()), pods: t.sel.clone() };
                    if m.allows(sns, pods, 1, &peer_t, &a.port) {
                        // One arrow stands for both atoms.
                        if let Some(si) = m.find(sns, pods) {
                            let s = &m.entities[si];
                            for (i, x) in s.doors[1].iter().flatten().enumerate() {
                                if x.peer == peer_t && x.port == a.port && self.consumed.insert((si, i)) {
                                    origins.extend(x.origins.iter().copied());
                                }
                            }
                            if !door_form {
                                owner = si;
                            }
                        }
                        if !door_form {
                            // `default/x` cannot be written in another namespace: the arrow goes in
                            // the source's section, where the target can be named.
                            section.clone_from(sns);
                            from_source_side = true;
                        }
                        EndRef::Pods { ns: sns.clone(), sel: pods.clone(), doors: true }
                    } else {
                        one_sided = Some(OneSided::IngressOnly);
                        EndRef::Pods { ns: sns.clone(), sel: pods.clone(), doors: false }
                    }
                } else if m.overlapped(sns, pods, 1) {
                    // Some of the source's pods have a guarded egress, which would get the flow
                    // for the pods they share with the source: the YAML does not say so here.
                    one_sided = Some(OneSided::IngressOnly);
                    EndRef::Pods { ns: sns.clone(), sel: pods.clone(), doors: false }
                } else {
                    EndRef::Pods { ns: sns.clone(), sel: pods.clone(), doors: door_form }
                }
            }
        };
        if from_source_side {
            // An arrow out of the source: grouped with the source's other arrows out.
            let key = ArrowKey { owner, section, phase: 3, one_sided, fixed: source };
            add_group(groups, (key, target), &a.port, &origins);
        } else {
            let key = ArrowKey { owner, section, phase: 2, one_sided, fixed: target };
            add_group(groups, (key, source), &a.port, &origins);
        }
    }

    fn plan_egress_atom(&mut self, si: usize, s: &Entity, a: &Atom, groups: &mut Groups) {
        let m = self.model;
        let source = self.pods(s, true);
        let mut one_sided = None;
        let target = match &a.peer {
            PeerC::Any => EndRef::Anywhere,
            PeerC::Block { cidr, except } => EndRef::Block { cidr: *cidr, except: except.clone() },
            PeerC::Pods { ns: NsRef::Labels(n), pods } => {
                EndRef::PodsIn { ns: n.clone(), pods: pods.clone() }
            }
            PeerC::Pods { ns: NsRef::Named(tns), pods } => {
                let door_form = *tns == s.ns || nameable(tns);
                let peer_s = PeerC::Pods { ns: NsRef::Named(s.ns.clone()), pods: s.sel.clone() };
                let covered = m.covered(tns, pods, 0);
                if covered && !m.allows(tns, pods, 0, &peer_s, &a.port) {
                    one_sided = Some(OneSided::EgressOnly);
                }
                if !door_form || one_sided.is_some() {
                    EndRef::Pods { ns: tns.clone(), sel: pods.clone(), doors: false }
                } else {
                    if !covered && self.opened.insert((tns.clone(), pods.clone())) {
                        // Nothing guards the target's ingress: say it stays open, so that the
                        // arrow writes only the source's egress rule.
                        let subject = EndRef::Pods { ns: tns.clone(), sel: pods.clone(), doors: true };
                        let rank = self.rank(&s.ns, &a.origins);
                        let stmt = Stmt::Door { subject, words: Words::IngressOpen };
                        self.push_ranked(&s.ns, (si, rank, 1), stmt, BTreeSet::new(), None);
                    }
                    EndRef::Pods { ns: tns.clone(), sel: pods.clone(), doors: true }
                }
            }
        };
        let key = ArrowKey { owner: si, section: s.ns.clone(), phase: 3, one_sided, fixed: source };
        add_group(groups, (key, target), &a.port, &a.origins);
    }

    /// Arrows from the groups: into one target, sources with the same ports share an arrow; out
    /// of one source, targets share an arrow. One-sided ones get arrows of their own.
    fn arrows(&mut self, groups: Groups) {
        let mut by_key: BTreeMap<ArrowKey, Others> = BTreeMap::new();
        for ((key, other), (ports, origins)) in groups {
            by_key.entry(key).or_default().push((other, ports, origins));
        }
        for (key, others) in by_key {
            let ArrowKey { owner, section, phase, one_sided, fixed } = key;
            if phase == 2 {
                // Into `fixed`: group sources by their ports.
                let mut by_ports: Vec<(Vec<PortC>, Vec<EndRef>, BTreeSet<usize>)> = Vec::new();
                for (src, ports, origins) in others {
                    match by_ports.iter_mut().find(|(p, _, _)| *p == ports) {
                        Some((_, srcs, o)) => {
                            srcs.push(src);
                            o.extend(origins);
                        }
                        None => by_ports.push((ports, vec![src], origins)),
                    }
                }
                for (ports, sources, origins) in by_ports {
                    let stmt = Stmt::Arrow { sources, targets: vec![(fixed.clone(), ports)] };
                    self.push(&section, owner, phase, stmt, origins, one_sided);
                }
            } else {
                let mut origins = BTreeSet::new();
                let mut targets = Vec::new();
                for (t, ports, o) in others {
                    origins.extend(o);
                    targets.push((t, ports));
                }
                let stmt = Stmt::Arrow { sources: vec![fixed], targets };
                self.push(&section, owner, phase, stmt, origins, one_sided);
            }
        }
    }

    fn plan_doors(
        &mut self,
        ei: usize,
        e: &Entity,
        allow_in: bool,
        allow_out: bool,
        named: &HashSet<(String, LabelSelector)>,
    ) {
        let m = self.model;
        let ingress_atoms = e.doors[0].as_ref().map_or(0, Vec::len);
        let egress_atoms = e.doors[1].as_ref().map_or(0, Vec::len);
        if e.sel.is_empty() {
            // `*`: nothing wider guards it, so every guarded door is said here.
            // `default deny` is the idiom when both doors are guarded, even if arrows into `*` would
            // guard its ingress anyway.
            let deny_out = e.doors[1].is_some() && !allow_out;
            let deny_in = e.doors[0].is_some() && !allow_in && (ingress_atoms == 0 || deny_out);
            let o_in = guard_origins(e, 0);
            let o_out = guard_origins(e, 1);
            let both =
                |a: &BTreeSet<usize>, b: &BTreeSet<usize>| a.union(b).copied().collect::<BTreeSet<usize>>();
            let say = |this: &mut Self, allow: bool, direction: Option<Direction>, origins| {
                this.push(&e.ns, ei, 0, Stmt::Default { allow, direction }, origins, None);
            };
            match (deny_in, deny_out) {
                (true, true) => say(self, false, None, both(&o_in, &o_out)),
                (true, false) => say(self, false, Some(Direction::Ingress), o_in.clone()),
                (false, true) => say(self, false, Some(Direction::Egress), o_out.clone()),
                (false, false) => {}
            }
            match (allow_in, allow_out) {
                (true, true) => say(self, true, None, both(&o_in, &o_out)),
                (true, false) => say(self, true, Some(Direction::Ingress), o_in),
                (false, true) => say(self, true, Some(Direction::Egress), o_out),
                (false, false) => {}
            }
            return;
        }
        let explicit_in = e.doors[0].is_some() && ingress_atoms == 0 && !m.covered_by_other(e, 0);
        let explicit_out = e.doors[1].is_some() && !m.covered_by_other(e, 1);
        let subject = self.pods(e, true);
        let words = match (explicit_in, explicit_out) {
            (true, true)
                if egress_atoms == 0
                    && !named.contains(&(e.ns.clone(), e.sel.clone()))
                    && !m.rules_overlap(e) =>
            {
                Words::Isolated
            }
            (true, true) => Words::Guarded(None),
            (true, false) => Words::Guarded(Some(Direction::Ingress)),
            (false, true) => Words::Guarded(Some(Direction::Egress)),
            (false, false) => return,
        };
        let mut origins = BTreeSet::new();
        if explicit_in {
            origins.extend(guard_origins(e, 0));
        }
        if explicit_out {
            origins.extend(guard_origins(e, 1));
        }
        self.push(&e.ns, ei, 0, Stmt::Door { subject, words }, origins, None);
    }
}

/// The policies a door statement stands for: those that guard door `d` without adding a flow to
/// it (their doc comment belongs on the door), or all that guard it when each adds a flow.
fn guard_origins(e: &Entity, d: usize) -> BTreeSet<usize> {
    let with_flows: BTreeSet<usize> =
        e.doors[d].iter().flatten().flat_map(|a| a.origins.iter().copied()).collect();
    let pure: BTreeSet<usize> = e.door_origins[d].difference(&with_flows).copied().collect();
    if pure.is_empty() { e.door_origins[d].clone() } else { pure }
}

fn add_group(groups: &mut Groups, key: (ArrowKey, EndRef), port: &PortC, origins: &BTreeSet<usize>) {
    let (ports, o) = groups.entry(key).or_default();
    if !ports.contains(port) {
        ports.push(port.clone());
    }
    o.extend(origins.iter().copied());
}

// ---------------------------------------------------------------------------------------------
// Rendering: names, externals, namespace sections, doc comments.
// ---------------------------------------------------------------------------------------------

struct Renderer<'a> {
    model: &'a Model,
    plan: &'a Plan,
    /// Section order: `default` (top level) first, then namespaces in order of first appearance.
    sections: Vec<String>,
    /// Declared workload names: (namespace, selector) -> name.
    declared: HashMap<(String, LabelSelector), String>,
    /// Externals: block -> name.
    externals: BTreeMap<(IpNet, Vec<IpNet>), String>,
    external_order: Vec<(IpNet, Vec<IpNet>)>,
}

impl<'a> Renderer<'a> {
    fn new(model: &'a Model, plan: &'a Plan) -> Renderer<'a> {
        let mut sections: Vec<String> = Vec::new();
        let used: HashSet<&str> = plan.statements.iter().map(|p| p.section.as_str()).collect();
        if used.contains(DEFAULT_NAMESPACE) {
            sections.push(DEFAULT_NAMESPACE.to_owned());
        }
        for o in &model.origins {
            if used.contains(o.namespace.as_str()) && !sections.contains(&o.namespace) {
                sections.push(o.namespace.clone());
            }
        }
        let mut r = Renderer {
            model,
            plan,
            sections,
            declared: HashMap::new(),
            externals: BTreeMap::new(),
            external_order: Vec::new(),
        };
        r.choose_names();
        r
    }

    fn ends(&self) -> impl Iterator<Item = &EndRef> {
        self.plan.statements.iter().flat_map(|p| match &p.stmt {
            Stmt::Door { subject, .. } => vec![subject],
            Stmt::Default { .. } => vec![],
            Stmt::Arrow { sources, targets } => {
                sources.iter().chain(targets.iter().map(|(t, _)| t)).collect()
            }
        })
    }

    fn choose_names(&mut self) {
        // Bare names (`app=<name>`), per namespace, and every name in use anywhere (externals are
        // global and win over bare names, so they must differ from all of them).
        let mut taken: HashMap<String, HashSet<String>> = HashMap::new();
        let mut all_taken: HashSet<String> = HashSet::new();
        let mut uses: Vec<((String, LabelSelector), usize)> = Vec::new();
        let mut blocks: Vec<((IpNet, Vec<IpNet>), usize)> = Vec::new();
        // Blocks with exceptions read badly before a port (`a -> 10.0.0.0/8 except 10.1.0.0/16:443`).
        let targets_with_except: HashSet<(IpNet, Vec<IpNet>)> = self
            .plan
            .statements
            .iter()
            .flat_map(|p| match &p.stmt {
                Stmt::Arrow { targets, .. } => targets.iter().map(|(t, _)| t).collect(),
                _ => Vec::new(),
            })
            .filter_map(|t| match t {
                EndRef::Block { cidr, except } if !except.is_empty() => Some((*cidr, except.clone())),
                _ => None,
            })
            .collect();
        for e in self.ends() {
            match e {
                EndRef::Pods { ns, sel, doors: true } => {
                    if let Some(name) = bare_name(sel) {
                        taken.entry(ns.clone()).or_default().insert(name.to_owned());
                        all_taken.insert(name.to_owned());
                    } else if !sel.is_empty() {
                        let key = (ns.clone(), sel.clone());
                        match uses.iter_mut().find(|(k, _)| *k == key) {
                            Some((_, n)) => *n += 1,
                            None => uses.push((key, 1)),
                        }
                    }
                }
                EndRef::Block { cidr, except } => {
                    let key = (*cidr, except.clone());
                    match blocks.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, n)) => *n += 1,
                        None => blocks.push((key, 1)),
                    }
                }
                _ => {}
            }
        }
        // Externals: blocks used more than once, or with exceptions before a port.
        for ((cidr, except), n) in blocks {
            if n < 2 && !targets_with_except.contains(&(cidr, except.clone())) {
                continue;
            }
            let base = match cidr {
                IpNet::V4(v4) if v4.prefix_len() == 0 => "all-ipv4".to_owned(),
                IpNet::V6(v6) if v6.prefix_len() == 0 => "all-ipv6".to_owned(),
                _ => format!("net-{}", sanitize(&cidr.to_string())),
            };
            let name = unique(&base, |c| all_taken.contains(c));
            all_taken.insert(name.clone());
            self.external_order.push((cidr, except.clone()));
            self.externals.insert((cidr, except), name);
        }
        let externals: HashSet<String> = self.externals.values().cloned().collect();
        // Workloads used more than once, in namespaces that have a section to declare them in.
        for ((ns, sel), n) in uses {
            if n < 2 || !self.sections.contains(&ns) {
                continue;
            }
            let taken_here = taken.entry(ns.clone()).or_default();
            let free = |c: &str| !taken_here.contains(c) && !externals.contains(c);
            let short = suggest_name(&sel, false);
            let base = if free(&short) { short } else { suggest_name(&sel, true) };
            let name = unique(&base, |c| !free(c));
            taken_here.insert(name.clone());
            self.declared.insert((ns, sel), name);
        }
    }

    fn section_index(&self, ns: &str) -> Option<usize> {
        self.sections.iter().position(|s| s == ns)
    }

    /// How to write pods `sel` of `ns` in a statement of namespace `section`.
    fn pods(&self, ns: &str, sel: &LabelSelector, section: &str) -> String {
        let local = if sel.is_empty() {
            "*".to_owned()
        } else if let Some(name) = bare_name(sel) {
            name.to_owned()
        } else {
            let visible = match (self.section_index(ns), self.section_index(section)) {
                (Some(a), Some(b)) => a <= b,
                _ => false,
            };
            match self.declared.get(&(ns.to_owned(), sel.clone())) {
                Some(name) if visible => name.clone(),
                _ => selector_source(sel),
            }
        };
        if ns == section { local } else { format!("{ns}/{local}") }
    }

    fn end(&self, e: &EndRef, section: &str) -> String {
        match e {
            EndRef::Pods { ns, sel, doors: true } => self.pods(ns, sel, section),
            EndRef::Pods { ns, sel, doors: false } => {
                let pods = if sel.is_empty() { "*".to_owned() } else { selector_source(sel) };
                format!("{}/{pods}", selector_source(&LabelSelector::namespace_named(ns)))
            }
            EndRef::PodsIn { ns, pods } => {
                let ns = if ns.is_empty() { "*".to_owned() } else { selector_source(ns) };
                let pods = if pods.is_empty() { "*".to_owned() } else { selector_source(pods) };
                format!("{ns}/{pods}")
            }
            EndRef::Anywhere => "anywhere".to_owned(),
            EndRef::Dns => "dns".to_owned(),
            EndRef::Block { cidr, except } => match self.externals.get(&(*cidr, except.clone())) {
                Some(name) => name.clone(),
                None => block_source(*cidr, except),
            },
        }
    }

    fn statement(&self, p: &Planned) -> String {
        let s = p.section.as_str();
        match &p.stmt {
            Stmt::Door { subject, words } => {
                let words = match words {
                    Words::Isolated => "isolated",
                    Words::Guarded(None) => "guarded",
                    Words::Guarded(Some(Direction::Ingress)) => "ingress guarded",
                    Words::Guarded(Some(Direction::Egress)) => "egress guarded",
                    Words::IngressOpen => "ingress open",
                };
                format!("{} {words}", self.end(subject, s))
            }
            Stmt::Default { allow, direction } => {
                let action = if *allow { "allow" } else { "deny" };
                match direction {
                    None => format!("default {action}"),
                    Some(d) => format!("default {action} {d}"),
                }
            }
            Stmt::Arrow { sources, targets } => {
                let sources: Vec<String> = sources.iter().map(|e| self.end(e, s)).collect();
                let targets: Vec<String> = targets
                    .iter()
                    .map(|(t, ports)| {
                        let t = self.end(t, s);
                        let ports: Vec<String> = ports.iter().filter_map(port_source).collect();
                        match ports.as_slice() {
                            [] => t,
                            [one] => format!("{t}:{one}"),
                            many => format!("{t}:[{}]", many.join(", ")),
                        }
                    })
                    .collect();
                format!("{} -> {}", sources.join(", "), targets.join(", "))
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (cidr, except) in &self.external_order {
            let name = &self.externals[&(*cidr, except.clone())];
            let _ = writeln!(out, "external {name} = {}", block_source(*cidr, except));
        }
        let mut idle_comments: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut ordered: Vec<&Planned> = self.plan.statements.iter().collect();
        ordered.sort_by_key(|p| (self.section_index(&p.section), p.key));
        // Each policy's doc comment goes on the first statement, in its own namespace, about the
        // pods it selects; failing that, on the first statement made from it at all.
        let local = |p: &Planned| {
            p.origins
                .iter()
                .copied()
                .filter(|&o| self.model.origins[o].namespace == p.section)
                .collect::<Vec<_>>()
        };
        let mut doc_at: HashMap<usize, usize> = HashMap::new();
        for (i, p) in ordered.iter().enumerate() {
            let owner = &self.model.entities[p.key.0].door_origins;
            for o in local(p) {
                if owner[0].contains(&o) || owner[1].contains(&o) {
                    doc_at.entry(o).or_insert(i);
                }
            }
        }
        for (i, p) in ordered.iter().enumerate() {
            for o in local(p) {
                doc_at.entry(o).or_insert(i);
            }
        }
        // Policies made into no statement, shown as comments so that nothing is silently lost.
        let mentioned: BTreeSet<usize> = self
            .plan
            .statements
            .iter()
            .flat_map(|p| p.origins.iter().copied().filter(|&o| self.model.origins[o].namespace == p.section))
            .collect();
        for (i, o) in self.model.origins.iter().enumerate() {
            if mentioned.contains(&i) {
                continue;
            }
            let why = if o.selects_nothing {
                "its podSelector matches no pod, so it changes nothing"
            } else {
                "it adds nothing to the statements here"
            };
            let section =
                if self.sections.contains(&o.namespace) { o.namespace.as_str() } else { DEFAULT_NAMESPACE };
            idle_comments.entry(section).or_default().push(format!("# NetworkPolicy {}: {why}.", o.id));
        }
        let mut top_comments_done = false;
        for section in &self.sections {
            let indent = if section == DEFAULT_NAMESPACE { "" } else { "  " };
            if !out.is_empty() {
                out.push('\n');
            }
            if section != DEFAULT_NAMESPACE {
                let _ = writeln!(out, "namespace {section} {{");
            }
            let mut decls: Vec<(&String, &LabelSelector)> = self
                .declared
                .iter()
                .filter(|((ns, _), _)| ns == section)
                .map(|((_, sel), name)| (name, sel))
                .collect();
            decls.sort();
            for (name, sel) in &decls {
                let _ = writeln!(out, "{indent}workload {name} = {}", selector_source(sel));
            }
            let mut last_group = None;
            for (i, p) in ordered.iter().enumerate().filter(|(_, p)| p.section == *section) {
                // A paragraph per set of pods, and per policy whose doc comment starts here.
                let docs: Vec<usize> =
                    p.origins.iter().copied().filter(|o| doc_at.get(o) == Some(&i)).collect();
                let new_doc = !docs.is_empty();
                if (last_group != Some(p.key.0) || new_doc) && (last_group.is_some() || !decls.is_empty()) {
                    out.push('\n');
                }
                last_group = Some(p.key.0);
                if let Some(side) = p.one_sided {
                    let why = match side {
                        OneSided::IngressOnly => {
                            "# one-sided, as in the YAML: the source's egress does not allow this flow, so\n\
                             # the source is named by its namespace's labels, which writes no egress rule"
                        }
                        OneSided::EgressOnly => {
                            "# one-sided, as in the YAML: the target's ingress does not allow this flow, so\n\
                             # the target is named by its namespace's labels, which writes no ingress rule"
                        }
                    };
                    for line in why.lines() {
                        let _ = writeln!(out, "{indent}{line}");
                    }
                }
                for o in docs {
                    for line in &self.model.origins[o].doc {
                        if line.is_empty() {
                            let _ = writeln!(out, "{indent}##");
                        } else {
                            let _ = writeln!(out, "{indent}## {line}");
                        }
                    }
                }
                if p.one_sided == Some(OneSided::IngressOnly) {
                    // What W0207 reports (these pods' guarded egress does not let the flow out)
                    // is what the YAML says, and the comment above says why.
                    let _ = writeln!(out, "{indent}@allow(W0207)");
                }
                let _ = writeln!(out, "{indent}{}", self.statement(p));
            }
            if let Some(comments) = idle_comments.get(section.as_str()) {
                out.push('\n');
                for c in comments {
                    let _ = writeln!(out, "{indent}{c}");
                }
                if section == DEFAULT_NAMESPACE {
                    top_comments_done = true;
                }
            }
            if section != DEFAULT_NAMESPACE {
                out.push_str("}\n");
            }
        }
        if !top_comments_done && let Some(comments) = idle_comments.get(DEFAULT_NAMESPACE) {
            if !out.is_empty() {
                out.push('\n');
            }
            for c in comments {
                let _ = writeln!(out, "{c}");
            }
        }
        out
    }
}

/// The name that means `sel` when undeclared: `<v>` for exactly `app=<v>`.
fn bare_name(sel: &LabelSelector) -> Option<&str> {
    if !sel.match_expressions.is_empty() || sel.match_labels.len() != 1 {
        return None;
    }
    sel.match_labels.get("app").map(String::as_str).filter(|v| syntax::is_name(v))
}

/// A workload name made from a selector's values: `{role=db, tier=be}` gives `db-be`.
/// With `keys`, each value after its key: `{role=db}` gives `role-db`.
fn suggest_name(sel: &LabelSelector, keys: bool) -> String {
    let short = |k: &str| k.rsplit('/').next().unwrap_or(k).to_owned();
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .map(|(k, v)| if keys { format!("{}-{v}", short(k)) } else { v.clone() })
        .collect();
    for r in &sel.match_expressions {
        let key = short(&r.key);
        parts.push(match r.operator {
            Operator::In if keys => format!("{key}-{}", r.values.join("-or-")),
            Operator::In => r.values.join("-or-"),
            Operator::NotIn => format!("not-{}", r.values.join("-")),
            Operator::Exists => key.clone(),
            Operator::DoesNotExist => format!("no-{key}"),
        });
    }
    let mut name = sanitize(&parts.join("-"));
    name.truncate(40);
    let mut name = name.trim_end_matches(['-', '_']).to_owned();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        name = format!("pods-{name}");
    }
    let name = name.trim_end_matches('-').to_owned();
    if syntax::is_name(&name) { name } else { format!("{name}-pods") }
}

/// Letters, digits and single hyphens.
fn sanitize(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// `base`, or `base-2`, `base-3`, ... whichever is not taken.
fn unique(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_owned();
    }
    (2..).map(|n| format!("{base}-{n}")).find(|c| !taken(c)).expect("some suffix is free")
}

/// An address block in netc notation; a single IPv4 address bare, IPv6 always with its prefix
/// length (a bare IPv6 address would swallow a following `:port`).
fn block_source(cidr: IpNet, except: &[IpNet]) -> String {
    let net = |n: IpNet| match n {
        IpNet::V4(v4) if v4.prefix_len() == 32 => v4.addr().to_string(),
        other => other.to_string(),
    };
    match except {
        [] => net(cidr),
        [one] => format!("{} except {}", net(cidr), net(*one)),
        many => {
            let list: Vec<String> = many.iter().map(|e| net(*e)).collect();
            format!("{} except ({})", net(cidr), list.join(", "))
        }
    }
}

/// A port in netc notation (no colon); `None` for every port and protocol.
fn port_source(p: &PortC) -> Option<String> {
    let PortC::One(p) = p else { return None };
    let value = match (&p.port, p.end_port) {
        (None, _) => "*".to_owned(),
        (Some(PortValue::Number(a)), Some(b)) => format!("{a}-{b}"),
        (Some(v), _) => v.to_string(),
    };
    Some(match p.protocol {
        Protocol::Tcp if p.port.is_some() => value,
        protocol => format!("{value}/{}", protocol.as_str().to_ascii_lowercase()),
    })
}

// ---------------------------------------------------------------------------------------------
// Object by object: NetworkPolicy objects lowered to IR one to one, for netcd to enforce.
// ---------------------------------------------------------------------------------------------

/// Where each of `policies` (parsed from `text`, in order) starts in `file`: the line of its
/// `name:` field, found after the previous object's (line 1 when it cannot be found, as in JSON
/// written on one line). Verdicts quote it as the rule's source.
#[must_use]
pub fn locate(file: &str, text: &str, policies: &[NetworkPolicy]) -> Vec<netc_ir::Span> {
    let mut line = 1;
    let mut counted = 0;
    name_spans(text, policies)
        .into_iter()
        .map(|span| {
            let line = match span {
                Some(span) => {
                    let start = span.start as usize;
                    line += text[counted..start].matches('\n').count();
                    counted = start;
                    line
                }
                None => 1,
            };
            netc_ir::Span {
                file: file.to_owned(),
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: 1,
                start: 0,
                end: 0,
            }
        })
        .collect()
}

/// Where each policy's `metadata.name` stands in `text` (its YAML or JSON), found in order as
/// the policies are: the next `name: VALUE` (block or flow style, or `"name": "VALUE"`) with its
/// name. `None` when it cannot be found.
fn name_spans(text: &str, policies: &[NetworkPolicy]) -> Vec<Option<crate::ast::Span>> {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').map(move |l| {
        let at = offset;
        offset += l.len();
        (at, l)
    });
    policies
        .iter()
        .map(|p| {
            let name = p.metadata.name.as_deref().unwrap_or("");
            lines
                .by_ref()
                .find_map(|(at, l)| name_in_line(l, name).map(|(s, e)| crate::ast::Span::new(at + s, at + e)))
        })
        .collect()
}

/// The bytes of `name: NAME` in `line`, where `name` is a whole key (not `hostname:`).
fn name_in_line(line: &str, name: &str) -> Option<(usize, usize)> {
    for key in ["\"name\"", "name", "'name'"] {
        let mut from = 0;
        while let Some(found) = line[from..].find(key) {
            let start = from + found;
            from = start + key.len();
            let before = line[..start].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.') {
                continue;
            }
            let Some(rest) = line[from..].strip_prefix(':') else { continue };
            let value_start = line.len() - rest.trim_start().len();
            let value_end = rest.find([',', '}', '\n', '#']).map_or(line.len(), |n| from + 1 + n);
            let value = line[value_start..value_end].trim_end();
            if value.trim_matches(['"', '\'']) == name {
                return Some((start, value_start + value.len()));
            }
        }
    }
    None
}

/// The NetworkPolicy objects of the files given to `netc import`, and where each one stands.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    /// Every object, in the order given.
    pub policies: Vec<NetworkPolicy>,
    /// For each one: its file (an index into the files read) and its `name:` line when found.
    pub at: Vec<(usize, Option<crate::ast::Span>)>,
}

impl Objects {
    /// Where the policy at `index` stands, for a diagnostic (its file's start when its name was
    /// not found).
    #[must_use]
    pub fn loc(&self, index: usize) -> Option<crate::check::Loc> {
        self.at
            .get(index)
            .map(|(file, span)| crate::check::Loc { file: *file, span: span.unwrap_or_default() })
    }

    /// Where the policy at `index` stands, for `--emit ir` verdicts: its file's name and line.
    #[must_use]
    pub fn origin(&self, index: usize, files: &[SourceFile]) -> netc_ir::Span {
        let (file, span) = self.at.get(index).copied().unwrap_or_default();
        let text = files.get(file).map_or("", |f| f.text.as_str());
        let start = span.map_or(0, |s| s.start as usize).min(text.len());
        let line = text[..start].matches('\n').count() + 1;
        netc_ir::Span {
            file: files.get(file).map(|f| f.name.clone()).unwrap_or_default(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: 1,
            start: 0,
            end: 0,
        }
    }

    /// Where the policy that an [`ImportError`] is about stands: the last one with its
    /// namespace and name, which is the one imported.
    #[must_use]
    pub fn loc_of(&self, e: &ImportError) -> Option<crate::check::Loc> {
        let id = e.policy()?;
        let index = self.policies.iter().rposition(|p| policy_id(p) == id)?;
        self.loc(index)
    }
}

/// Read the YAML files given to `netc import`: every NetworkPolicy, with an error for each file
/// that is not valid YAML or holds anything else (E0601-E0603; every file is read, so all are
/// reported at once), and a warning (W0601) for each object that another one with the same
/// namespace and name follows (the later one is imported, as `kubectl apply` leaves it).
#[must_use]
pub fn read(files: &[SourceFile]) -> (Objects, Vec<crate::diagnostics::Diagnostic>) {
    let mut objects = Objects::default();
    let mut problems = Vec::new();
    for (i, f) in files.iter().enumerate() {
        match crate::yaml::parse_network_policies(&f.text) {
            Ok(found) => {
                objects.at.extend(name_spans(&f.text, &found).into_iter().map(|span| (i, span)));
                objects.policies.extend(found);
            }
            Err(e) => problems.push(crate::diagnostics::from_yaml(i, &f.text, &e)),
        }
    }
    let key = |p: &NetworkPolicy| {
        (
            p.metadata.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            p.metadata.name.clone(),
        )
    };
    let mut last: HashMap<(String, Option<String>), usize> = HashMap::new();
    for (i, p) in objects.policies.iter().enumerate() {
        last.insert(key(p), i);
    }
    for (i, p) in objects.policies.iter().enumerate() {
        let j = last.get(&key(p)).copied().unwrap_or(i);
        if let (true, Some(at), Some(later)) = (j != i, objects.loc(i), objects.loc(j)) {
            problems.push(crate::diagnostics::object_given_twice(&policy_id(p), at, later));
        }
    }
    (objects, problems)
}

/// A rule's peers (`from` or `to`) and ports, as written.
type RuleParts<'a> = (Option<&'a [NetworkPolicyPeer]>, Option<&'a [NetworkPolicyPort]>);

/// NetworkPolicy objects lowered to IR **one to one**, for `netcd` to enforce a cluster's own
/// policies (`netc import --emit ir`): each object is one IR policy with its namespace and name,
/// each of its rules one IR rule whose id names the object and the rule's index
/// (`shop/allow-web:ingress[0]`) and whose span is where the object was read (`origins[i]`, from
/// [`locate`]), so that netcd's verdicts name the object and rule that allowed a flow. Doors
/// follow the (defaulted) `policyTypes`; peers and ports mean what they mean in the API (a
/// selector no labels can satisfy matches no pod: a rule left without peers by it allows nothing
/// and is dropped; a policy selecting no pod is dropped). Nothing is merged or rewritten, so the
/// meaning is the objects' by construction; `tests/seed.rs` and `tests/import.rs` check it by
/// evaluation against the NetworkPolicy evaluator.
///
/// # Errors
/// [`ImportError::Invalid`] for an object the API server would refuse, or two objects with one
/// namespace and name.
pub fn to_ir(policies: &[NetworkPolicy], origins: &[netc_ir::Span]) -> Result<netc_ir::Ir, ImportError> {
    use netc_ir::{Door, DoorState, Peer, Rule};
    // Objects the API server would refuse are refused (the NetworkPolicy evaluator's checks);
    // what netc's source cannot write (a namespace named like a keyword) is fine in IR.
    if let Err(e) = crate::analysis::k8s_eval::K8sEvaluator::new(policies, &netc_ir::Inventory::default()) {
        let (field, problem) = e.message.split_once(": ").unwrap_or(("", e.message.as_str()));
        return Err(ImportError::Invalid {
            policy: e.policy.clone(),
            field: field.to_owned(),
            problem: problem.to_owned(),
        });
    }
    let mut ir = netc_ir::Ir::empty();
    let mut seen = BTreeSet::new();
    for (index, policy) in policies.iter().enumerate() {
        let ns = policy.metadata.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let name = policy.metadata.name.clone().unwrap_or_default();
        let id = format!("{ns}/{name}");
        let at = At { policy: &id };
        if !seen.insert(id.clone()) {
            return Err(at.invalid("metadata.name", "two objects have this namespace and name"));
        }
        let span = origins.get(index).cloned().unwrap_or_else(|| netc_ir::Span {
            file: "<input>".into(),
            line: 1,
            column: 1,
            start: 0,
            end: 0,
        });
        let spec = policy.spec.clone().unwrap_or_default();
        let Some(selector) = (match &spec.pod_selector {
            Some(s) => canonical(s, &at, "spec.podSelector")?,
            None => Some(LabelSelector::everything()),
        }) else {
            continue; // selects no pod: guards nothing
        };
        let (ingress_rules, egress_rules) =
            (spec.ingress.as_deref().unwrap_or_default(), spec.egress.as_deref().unwrap_or_default());
        let on = match spec.policy_types.as_deref() {
            None | Some([]) => [true, !egress_rules.is_empty()],
            Some(types) => [types.iter().any(|t| t == "Ingress"), types.iter().any(|t| t == "Egress")],
        };
        let mut doors = [Door::open(), Door::open()];
        for (d, direction) in Direction::BOTH.into_iter().enumerate() {
            if !on[d] {
                continue;
            }
            let mut rules = Vec::new();
            let read_rules: Vec<RuleParts<'_>> = match direction {
                Direction::Ingress => {
                    ingress_rules.iter().map(|r| (r.from.as_deref(), r.ports.as_deref())).collect()
                }
                Direction::Egress => {
                    egress_rules.iter().map(|r| (r.to.as_deref(), r.ports.as_deref())).collect()
                }
            };
            let (list, peers_field) = if direction == Direction::Ingress {
                ("spec.ingress", "from")
            } else {
                ("spec.egress", "to")
            };
            for (i, (peers, ports)) in read_rules.into_iter().enumerate() {
                let field = format!("{list}[{i}]");
                let mut out_peers = Vec::new();
                let given = peers.unwrap_or_default();
                for (j, peer) in given.iter().enumerate() {
                    match read_peer(peer, &ns, &at, &format!("{field}.{peers_field}[{j}]"))? {
                        Some(PeerC::Block { cidr, except }) => out_peers.push(Peer::IpBlock { cidr, except }),
                        Some(PeerC::Pods { ns: pods_ns, pods }) => out_peers.push(Peer::Pods {
                            namespaces: match pods_ns {
                                NsRef::Named(n) if n == ns => None,
                                NsRef::Named(n) => Some(LabelSelector::labels([(
                                    netc_ir::inventory::NAMESPACE_NAME_LABEL,
                                    n.as_str(),
                                )])),
                                NsRef::Labels(s) => Some(s),
                            },
                            pods: Some(pods),
                        }),
                        Some(PeerC::Any) | None => {}
                    }
                }
                if !given.is_empty() && out_peers.is_empty() {
                    continue; // every peer matches nothing: the rule allows nothing
                }
                let mut out_ports = Vec::new();
                for (j, port) in ports.unwrap_or_default().iter().enumerate() {
                    if let PortC::One(p) = read_port(port, &at, &format!("{field}.ports[{j}]"))? {
                        out_ports.push(p);
                    }
                }
                rules.push(Rule {
                    id: format!("{id}:{direction}[{i}]"),
                    peers: out_peers,
                    ports: out_ports,
                    span: span.clone(),
                });
            }
            doors[d] = Door { state: DoorState::Guarded, guarded_by: vec![span.clone()], rules };
        }
        let [ingress, egress] = doors;
        let doc = policy.metadata.annotations.as_ref().and_then(|a| a.get(INTENT_ANNOTATION)).cloned();
        ir.policies.push(netc_ir::Policy {
            name,
            namespace: ns,
            workload: selector_source(&selector),
            selector,
            doc,
            ingress,
            egress,
            span,
        });
    }
    ir.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    ir.sources = origins.iter().map(|s| s.file.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    ir.validate().map_err(|e| ImportError::Invalid {
        policy: "(all)".into(),
        field: String::new(),
        problem: format!("the lowered IR is refused ({e}); this is a bug in netc import"),
    })?;
    Ok(ir)
}
