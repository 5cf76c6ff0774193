//! The pure part of netcd: IR + inventory -> identities, ipcache, policy entries and endpoint
//! configurations, ready to be written into the datapath's maps. No kernel, no IO.
//!
//! It lives in netc-ir, not in the runtime, so that the compiler counts a node's map entries
//! (`netc build --stats --cluster`, the `--max-...` budgets) with the very code netcd fills the
//! maps with; netcd uses it as `netc_runtime::plan`.
//!
//! # Identities
//!
//! Rules name peers by labels (pod and namespace selectors) or by address (ipBlock). The
//! datapath cannot evaluate selectors, so every address is first mapped to an *identity*: the
//! set of rule peers that match it, plus how it resolves the named ports that egress rules use.
//! Two pods that no rule can tell apart share an identity, so the number of identities is the
//! number of distinct answers, not the number of pods.
//!
//! - A pod's identity is the set of pod peers that select it, plus every ipBlock that contains
//!   *any* of its addresses (netc matches ipBlocks against pod addresses, as the evaluator
//!   does), plus its resolution of the named ports used by egress rules (named ports are the
//!   destination's). Every address of the pod maps to that identity (exact match).
//! - An address that is not a pod's falls through to the CIDR trie. Every ipBlock CIDR and every
//!   `except` prefix is an entry of its own, whose identity is the set of blocks containing the
//!   prefix and not excepting it: the longest-prefix match of an address then gives exactly the
//!   blocks that contain it.
//! - hostNetwork pods are never endpoints (NetworkPolicy does not apply to them) and no pod
//!   selector matches them; their addresses still map to an identity of the blocks containing
//!   any of them, with their named ports.
//! - Everything else is [`abi::IDENTITY_WORLD`], which only rules naming no peers allow.
//!
//! # Policy entries
//!
//! For each local pod (an *endpoint*) and each guarded door, every rule of every policy that
//! selects the pod and guards that door becomes entries keyed by (peer identity or any, protocol
//! or any, port or any); a port range becomes aligned blocks in a longest-prefix-match trie.
//!
//! # Policy sets
//!
//! Entries are not keyed by endpoint but by *policy set*: local pods selected by the same guarded
//! doors (and resolving the named ports of their ingress rules the same way) have the same
//! entries, so they share one set of them. A new replica of a workload, or a pod relabelled into
//! a workload that has pods here already, is one endpoint write however many rules guard it;
//! only the first pod of a selection pays for writing its entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::eval::Family;
use crate::inventory::NAMESPACE_NAME_LABEL;
use crate::{Direction, Inventory, Ir, LabelSelector, Peer, Pod, PortValue, Protocol, Rule};

/// The datapath's constants a plan writes (`runtime/ebpf/netc_abi.h`; `netc_runtime::abi`
/// re-exports them beside the structs, where `tests/abi_layout.rs` checks them against the C).
pub mod abi {
    /// Index of the ingress door (in `doors` arrays and policy keys).
    pub const INGRESS: u8 = 0;
    /// Index of the egress door.
    pub const EGRESS: u8 = 1;

    /// Any peer: the identity of entries of rules that name no peers.
    pub const IDENTITY_ANY: u32 = 0;
    /// Every address no pod and no prefix has.
    pub const IDENTITY_WORLD: u32 = 1;

    /// The door is guarded: only its entries pass.
    pub const DOOR_GUARDED: u16 = 1 << 0;
    /// Some entry of the door is for any peer.
    pub const DOOR_ANY_PEER: u16 = 1 << 1;
    /// Some entry of the door is for every protocol.
    pub const DOOR_ANY_PROTO: u16 = 1 << 2;
    /// Some entry of the door is for every port of a protocol.
    pub const DOOR_ANY_PORT: u16 = 1 << 3;
    /// The door has port range entries.
    pub const DOOR_RANGES: u16 = 1 << 4;

    /// Would-be drops pass and are reported as audit verdicts.
    pub const EP_AUDIT: u32 = 1 << 0;
    /// The endpoint's policy set did not fit: all its traffic is dropped (audited).
    pub const EP_FAIL_CLOSED: u32 = 1 << 1;
}

/// Which pods are local and how doors behave.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Only pods scheduled on this node are endpoints; `None`: every pod of the inventory.
    pub node: Option<String>,
    /// Would-be drops pass and are reported as audit verdicts.
    pub audit: bool,
    /// Judge calls to the inventory's Services after kube-proxy's translation ([`Plan::frontends`]).
    /// Only when netcd has a classifier on every interface a translated call can leave the node
    /// by (`--uplink`); without, a Service call is judged on its frontend at the client's veth.
    pub services: bool,
}

/// A Service frontend that kube-proxy translates to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrontendEntry {
    /// The address called: a ClusterIP, external or load-balancer IP; for a NodePort, the
    /// family's unspecified address (every address of the node).
    pub address: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// The port called (host order).
    pub port: u16,
}

/// One rule of the IR, as events and counters name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// The rule's stable id.
    pub id: String,
    /// `file:line` of the statement the rule comes from.
    pub source: String,
    /// `namespace/name` of its policy.
    pub policy: String,
    /// The door it belongs to.
    pub direction: Direction,
}

/// A local pod whose veth gets the classifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEndpoint {
    /// The endpoint id (events name the pod by it); never reused within a generation.
    pub id: u32,
    /// The policy set whose entries guard it (the first field of its policy keys).
    pub set: u32,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// The host-side interface named by the pod's annotation, if any.
    pub interface: Option<String>,
    /// The pod's addresses (to find the interface from a route when not named).
    pub ips: Vec<IpAddr>,
    /// Endpoint flags (`abi::EP_*`).
    pub flags: u32,
    /// Door flags (`abi::DOOR_*`), indexed by `abi::INGRESS` / `abi::EGRESS`.
    pub doors: [u16; 2],
}

/// An exact policy entry: at the `direction` door of the endpoints of policy set `set`,
/// `identity` may use `protocol`/`port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyEntry {
    /// Policy set id.
    pub set: u32,
    /// `abi::INGRESS` or `abi::EGRESS`.
    pub direction: u8,
    /// Peer identity, or `abi::IDENTITY_ANY`.
    pub identity: u32,
    /// IP protocol number, or 0 for every protocol (and port).
    pub protocol: u8,
    /// Destination port (host order), or 0 for every port.
    pub port: u16,
}

impl PolicyEntry {
    /// The smallest entry of a policy set (entries sort by set first).
    fn first_of(set: u32) -> PolicyEntry {
        PolicyEntry { set, direction: 0, identity: 0, protocol: 0, port: 0 }
    }

    /// The largest entry of a policy set.
    fn last_of(set: u32) -> PolicyEntry {
        PolicyEntry { set, direction: u8::MAX, identity: u32::MAX, protocol: u8::MAX, port: u16::MAX }
    }
}

/// A peer identity as [`Plan::meaning`] writes it: what maps to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PeerMeaning {
    /// Any peer at all (identity 0).
    pub any: bool,
    /// Every address no pod and no prefix has (the world identity).
    pub world: bool,
    /// Pod addresses with this identity, in order.
    pub addresses: Vec<IpAddr>,
    /// CIDR prefixes with this identity, in order.
    pub prefixes: Vec<IpNet>,
}

impl PeerMeaning {
    fn of(id: u32) -> PeerMeaning {
        PeerMeaning {
            any: id == abi::IDENTITY_ANY,
            world: id == abi::IDENTITY_WORLD,
            addresses: Vec::new(),
            prefixes: Vec::new(),
        }
    }
}

/// A local pod as [`Plan::meaning`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointMeaning {
    /// `abi::EP_*` flags.
    pub flags: u32,
    /// `abi::DOOR_GUARDED` or 0, per door.
    pub guarded: [u16; 2],
    /// (direction, peer, protocol, port, significant port bits (16: exact), rule index).
    pub entries: BTreeSet<(u8, PeerMeaning, u8, u16, u8, u32)>,
}

/// A block of a port range: ports whose top `bits` bits equal `port`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeEntry {
    /// What the block applies to (its `port` is the block's first port).
    pub entry: PolicyEntry,
    /// Significant bits of the port, 0..=16.
    pub bits: u8,
}

/// Everything the datapath needs for one IR on one node, without a generation yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Rules by index (the `rule` of policy values and events).
    pub rules: Vec<RuleInfo>,
    /// Number of identities, the reserved ones included.
    pub identity_count: u32,
    /// Local pods.
    pub endpoints: Vec<PlannedEndpoint>,
    /// Pod address -> identity.
    pub ipcache: BTreeMap<IpAddr, u32>,
    /// ipBlock CIDR or except prefix -> identity.
    pub cidrs: BTreeMap<IpNet, u32>,
    /// Exact entries -> rule index (the first rule, in IR order, that allows it).
    pub policy: BTreeMap<PolicyEntry, u32>,
    /// Port range blocks -> rule index.
    pub ranges: BTreeMap<RangeEntry, u32>,
    /// `namespace/name` of the Services, by index (the value of [`Plan::frontends`]; events name
    /// the Service a flow went through by it).
    pub services: Vec<String>,
    /// Service frontends -> Service index ([`PlanOptions::services`]; empty without).
    pub frontends: BTreeMap<FrontendEntry, u32>,
    /// What changing pods in place needs.
    index: Index,
    /// The next endpoint id to give: ids are never reused within a generation.
    next_endpoint: u32,
    /// The next policy set id to give: never reused within a generation, so the entries of a set
    /// nobody uses any more can be deleted after its successor's are written.
    next_set: u32,
}

/// What decides a local pod's entries: the policies that select it and guard each door, and how
/// the pod resolves the named ports of those policies' ingress rules (named ports are the
/// destination's). Pods with the same key have the same entries and share a policy set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct SetKey {
    /// Indexes of the selecting policies guarding the door, by `abi::INGRESS` / `abi::EGRESS`.
    doors: [Vec<usize>; 2],
    /// The pod's resolution of each (policy, named port) of those ingress rules, in order.
    named: Vec<Option<u16>>,
}

/// A policy set: its id and the door flags its entries need.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PolicySet {
    id: u32,
    doors: [u16; 2],
}

/// Ranges at most this long become exact entries: cheaper to look up than the trie.
const EXPAND_RANGE_UP_TO: u32 = 16;

/// A pod peer with its namespace resolved (`None` in the IR = the policy's own namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PodMatcher {
    InNamespace(String, Option<LabelSelector>),
    InNamespaces(LabelSelector, Option<LabelSelector>),
}

/// What an identity stands for; identical signatures share an identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Signature {
    pods: Vec<usize>,
    blocks: Vec<usize>,
    named: Vec<Option<u16>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Peers {
    matchers: Vec<PodMatcher>,
    /// Matchers whose pod selector requires a label pair, by their first such pair: a pod needs
    /// checking only against the matchers of the pairs it carries (and `other_matchers`).
    matchers_by_label: HashMap<(String, String), Vec<usize>>,
    /// Matchers without a required label pair.
    other_matchers: Vec<usize>,
    blocks: Vec<(IpNet, Vec<IpNet>)>,
    /// (name, protocol) of named ports used by egress rules, resolved per destination identity.
    egress_names: Vec<(String, Protocol)>,
}

impl Peers {
    fn collect(ir: &Ir) -> Peers {
        let mut matchers = BTreeSet::new();
        let mut blocks = BTreeSet::new();
        let mut names = BTreeSet::new();
        for (policy, direction, rule) in ir.rules() {
            for peer in &rule.peers {
                match peer {
                    Peer::Pods { .. } => {
                        matchers.insert(pod_matcher(&policy.namespace, peer));
                    }
                    Peer::IpBlock { cidr, except } => {
                        blocks.insert((*cidr, except.clone()));
                    }
                }
            }
            if direction == Direction::Egress {
                for port in &rule.ports {
                    if let Some(PortValue::Name(name)) = &port.port {
                        names.insert((name.clone(), port.protocol));
                    }
                }
            }
        }
        let matchers: Vec<PodMatcher> = matchers.into_iter().collect();
        let mut matchers_by_label: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut other_matchers = Vec::new();
        for (i, m) in matchers.iter().enumerate() {
            let (PodMatcher::InNamespace(_, pods) | PodMatcher::InNamespaces(_, pods)) = m;
            match pods.as_ref().and_then(|p| p.match_labels.iter().next()) {
                Some((k, v)) => matchers_by_label.entry((k.clone(), v.clone())).or_default().push(i),
                None => other_matchers.push(i),
            }
        }
        Peers {
            matchers,
            matchers_by_label,
            other_matchers,
            blocks: blocks.into_iter().collect(),
            egress_names: names.into_iter().collect(),
        }
    }

    fn matcher_index(&self, policy_namespace: &str, peer: &Peer) -> Option<usize> {
        self.matchers.binary_search(&pod_matcher(policy_namespace, peer)).ok()
    }

    fn block_index(&self, cidr: &IpNet, except: &[IpNet]) -> Option<usize> {
        self.blocks.binary_search_by(|(c, e)| (c, e.as_slice()).cmp(&(cidr, except))).ok()
    }
}

fn pod_matcher(policy_namespace: &str, peer: &Peer) -> PodMatcher {
    match peer {
        Peer::Pods { namespaces: None, pods } => {
            PodMatcher::InNamespace(policy_namespace.to_owned(), pods.clone())
        }
        Peer::Pods { namespaces: Some(ns), pods } => PodMatcher::InNamespaces(ns.clone(), pods.clone()),
        Peer::IpBlock { .. } => unreachable!("only called with pod peers"),
    }
}

fn block_contains(cidr: &IpNet, except: &[IpNet], ip: IpAddr) -> bool {
    cidr.contains(&ip) && !except.iter().any(|e| e.contains(&ip))
}

/// Whether the prefix lies wholly in the block and in none of its excepts.
fn block_covers_prefix(cidr: &IpNet, except: &[IpNet], prefix: &IpNet) -> bool {
    cidr.contains(prefix) && !except.iter().any(|e| e.contains(prefix))
}

fn ip_protocol(protocol: Protocol) -> u8 {
    protocol.ip_proto()
}

/// Split `lo..=hi` into aligned power-of-two blocks: (first port, significant bits).
#[must_use]
pub fn range_blocks(lo: u16, hi: u16) -> Vec<(u16, u8)> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    while lo <= hi {
        let mut size = 1u32;
        while size < 65536 && lo.is_multiple_of(size * 2) && lo + size * 2 - 1 <= hi {
            size *= 2;
        }
        let bits = 16 - size.trailing_zeros();
        out.push((u16::try_from(lo).expect("lo <= hi <= 65535"), u8::try_from(bits).expect("bits <= 16")));
        lo += size;
    }
    out
}

/// What a plan keeps to add pods later without rebuilding: the peers of the IR, the identities
/// by signature, which identities each peer covers, and where each door's rules start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Index {
    peers: Peers,
    /// Identity - 1 -> signature.
    signatures: Vec<Signature>,
    ids: HashMap<Signature, u32>,
    by_matcher: Vec<Vec<u32>>,
    by_block: Vec<Vec<u32>>,
    /// Per policy: index of the first ingress and first egress rule in `ir.rules()` order.
    first_rule: Vec<[u32; 2]>,
    /// Rules of guarded doors by the pod matchers and blocks they name, in IR order: where an
    /// identity made after the plan needs entries.
    rules_by_matcher: Vec<Vec<RuleRef>>,
    rules_by_block: Vec<Vec<RuleRef>>,
    /// Egress rules of guarded doors naming no peers but named ports: they make entries for every
    /// identity that resolves the name.
    peerless_named_egress: Vec<RuleRef>,
    /// Per policy: the (name, protocol) of the named ports its ingress rules use, in order.
    ingress_names: Vec<Vec<(String, Protocol)>>,
    /// Per rule (by its number in `ir.rules()` order), of guarded doors: the peers it names.
    rule_peers: Vec<Vec<PeerSlot>>,
    /// Policy sets by what decides them, and what decides each.
    sets: HashMap<SetKey, PolicySet>,
    set_keys: BTreeMap<u32, SetKey>,
}

/// Rules by the index of their policy, in IR order.
type RulesByPolicy = Vec<(usize, Vec<RuleRef>)>;

/// A peer of a rule: a pod matcher or an ipBlock, by index in [`Peers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerSlot {
    Matcher(usize),
    Block(usize),
}

/// A rule of the IR: its policy's index, its door, its index in the door and in `ir.rules()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RuleRef {
    rule: u32,
    policy: usize,
    direction: Direction,
    index: usize,
}

/// The map writes of one inventory change made in place, in the live generation (see
/// [`Plan::update_in_place`]), grouped in the order the datapath makes them: entries before
/// what makes packets reach them, removals after what stopped reaching them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Policy entries to add: a new identity's in the policy sets that stay, and all of new
    /// sets.
    pub policy: Vec<(PolicyEntry, u32)>,
    /// Port range entries to add, likewise.
    pub ranges: Vec<(RangeEntry, u32)>,
    /// Pod addresses to write: new ones, and ones whose identity changed.
    pub ipcache: Vec<(IpAddr, u32)>,
    /// Endpoints to write: new local pods (a new id; a pod that moved to another interface is
    /// a new endpoint too), pods that joined another policy set (same id), and endpoints whose
    /// doors need new kinds of lookups (same id).
    pub endpoints: Vec<PlannedEndpoint>,
    /// Pod addresses no pod has any more.
    pub ipcache_removed: Vec<IpAddr>,
    /// Ids of endpoints that are gone (pods removed, no longer local, or moved to another
    /// interface or address: they come back under a new id).
    pub endpoints_removed: Vec<u32>,
    /// The entries of policy sets no endpoint is a member of any more.
    pub policy_removed: Vec<PolicyEntry>,
    /// Their range entries.
    pub ranges_removed: Vec<RangeEntry>,
    /// Whether a flow allowed before can be denied now (a pod's address removed or given
    /// another identity, an endpoint removed or replaced, or moved to another policy set):
    /// established flows must be judged again (the datapath advances its epoch).
    pub rejudge: bool,
    /// Identities made by this change.
    pub new_identities: u32,
    /// Policy sets made by this change (the first pod of a selection on this node).
    pub new_sets: u32,
}

impl Delta {
    /// Map entries written or removed.
    #[must_use]
    pub fn writes(&self) -> usize {
        self.policy.len()
            + self.ranges.len()
            + self.ipcache.len()
            + self.endpoints.len()
            + self.ipcache_removed.len()
            + self.endpoints_removed.len()
            + self.policy_removed.len()
            + self.ranges_removed.len()
    }
}

impl Index {
    /// The signature of `pod`'s addresses of `family`: a packet carries one address, so a
    /// dual-stack pod is matched by an ipBlock on the address of the packet's family only
    /// (DESIGN.md corner 14), and its two families may need two identities.
    fn signature_of(&self, pod: &Pod, family: Family, ns_labels: &BTreeMap<String, String>) -> Signature {
        // hostNetwork pods are not selected by pod selectors (NetworkPolicy does not apply to
        // them), only by address.
        let mut pods: Vec<usize> = Vec::new();
        if !pod.host_network {
            let candidates = pod
                .labels
                .iter()
                .filter_map(|(k, v)| self.peers.matchers_by_label.get(&(k.clone(), v.clone())))
                .flatten()
                .chain(&self.peers.other_matchers);
            pods.extend(candidates.filter(|i| matcher_matches(&self.peers.matchers[**i], pod, ns_labels)));
            pods.sort_unstable();
        }
        let blocks = self
            .peers
            .blocks
            .iter()
            .enumerate()
            .filter(|(_, (c, e))| {
                pod.ips.iter().filter(|ip| Family::of(**ip) == family).any(|ip| block_contains(c, e, *ip))
            })
            .map(|(i, _)| i)
            .collect();
        let named = self.peers.egress_names.iter().map(|(n, p)| resolve_named(pod, n, *p)).collect();
        Signature { pods, blocks, named }
    }

    fn intern(&mut self, sig: Signature) -> u32 {
        if let Some(id) = self.ids.get(&sig) {
            return *id;
        }
        let id = u32::try_from(self.signatures.len() + 1).expect("fewer than 2^32 identities");
        self.signatures.push(sig.clone());
        self.ids.insert(sig, id);
        id
    }

    fn identity_count(&self) -> u32 {
        u32::try_from(self.signatures.len() + 1).expect("fewer than 2^32 identities")
    }

    /// Fill `rules_by_matcher`, `rules_by_block`, `peerless_named_egress`, `ingress_names` and
    /// `rule_peers`.
    fn index_rules(&mut self, ir: &Ir) {
        let rule_count = ir.policies.iter().map(|p| p.ingress.rules.len() + p.egress.rules.len()).sum();
        self.rule_peers = vec![Vec::new(); rule_count];
        self.rules_by_matcher = vec![Vec::new(); self.peers.matchers.len()];
        self.rules_by_block = vec![Vec::new(); self.peers.blocks.len()];
        self.peerless_named_egress.clear();
        self.ingress_names = ir
            .policies
            .iter()
            .map(|policy| {
                let mut names: Vec<(String, Protocol)> = policy
                    .ingress
                    .rules
                    .iter()
                    .flat_map(|rule| &rule.ports)
                    .filter_map(|port| match &port.port {
                        Some(PortValue::Name(name)) => Some((name.clone(), port.protocol)),
                        _ => None,
                    })
                    .collect();
                names.sort_unstable();
                names.dedup();
                names
            })
            .collect();
        for (p, policy) in ir.policies.iter().enumerate() {
            for direction in Direction::BOTH {
                let door = policy.door(direction);
                if !door.is_guarded() {
                    continue;
                }
                let first = self.first_rule[p][usize::from(direction_byte(direction))];
                for ((index, rule), number) in door.rules.iter().enumerate().zip(first..) {
                    let r = RuleRef { rule: number, policy: p, direction, index };
                    if rule.peers.is_empty() {
                        let named =
                            rule.ports.iter().any(|port| matches!(port.port, Some(PortValue::Name(_))));
                        if direction == Direction::Egress && named {
                            self.peerless_named_egress.push(r);
                        }
                        continue;
                    }
                    let mut slots = Vec::with_capacity(rule.peers.len());
                    for peer in &rule.peers {
                        match peer {
                            Peer::Pods { .. } => {
                                if let Some(m) = self.peers.matcher_index(&policy.namespace, peer) {
                                    self.rules_by_matcher[m].push(r);
                                    slots.push(PeerSlot::Matcher(m));
                                }
                            }
                            Peer::IpBlock { cidr, except } => {
                                if let Some(b) = self.peers.block_index(cidr, except) {
                                    self.rules_by_block[b].push(r);
                                    slots.push(PeerSlot::Block(b));
                                }
                            }
                        }
                    }
                    self.rule_peers[usize::try_from(number).expect("u32 fits usize")] = slots;
                }
            }
        }
    }

    /// Make identities for signatures no identity has yet (in order), as `intern` would, and
    /// record which peers cover them.
    fn add_identities(&mut self, fresh: Vec<Signature>) {
        for sig in fresh {
            let id = self.intern(sig);
            let sig = &self.signatures[usize::try_from(id - 1).expect("u32 fits usize")];
            for m in &sig.pods {
                self.by_matcher[*m].push(id);
            }
            for b in &sig.blocks {
                self.by_block[*b].push(id);
            }
        }
    }

    /// The rules that can make entries for identity `id`, in IR order, grouped by policy.
    fn rules_naming(&self, id: u32) -> RulesByPolicy {
        let sig = &self.signatures[usize::try_from(id - 1).expect("u32 fits usize")];
        let mut rules: Vec<RuleRef> = sig
            .pods
            .iter()
            .flat_map(|m| &self.rules_by_matcher[*m])
            .chain(sig.blocks.iter().flat_map(|b| &self.rules_by_block[*b]))
            .copied()
            .collect();
        if sig.named.iter().any(Option::is_some) {
            rules.extend(&self.peerless_named_egress);
        }
        // In IR order, so that an entry keeps the first rule that makes it, as in a full plan.
        rules.sort_unstable();
        rules.dedup();
        let mut by_policy: Vec<(usize, Vec<RuleRef>)> = Vec::new();
        for r in rules {
            match by_policy.iter_mut().find(|(p, _)| *p == r.policy) {
                Some((_, list)) => list.push(r),
                None => by_policy.push((r.policy, vec![r])),
            }
        }
        by_policy
    }

    /// Add the entries identity `id` (made after the plan) needs in policy set `set` (of which
    /// local pod `pod` is a member), from `rules` (see [`Index::rules_naming`]); return the door flags they need.
    fn entries_of_identity(
        &self,
        ir: &Ir,
        rules: &RulesByPolicy,
        pod: &Pod,
        set: u32,
        id: u32,
        out: &mut EndpointEntries,
    ) -> [u16; 2] {
        let mut doors = [0u16; 2];
        for (p, list) in rules {
            let policy = &ir.policies[*p];
            if !(policy.namespace == pod.namespace && policy.selector.matches(&pod.labels)) {
                continue;
            }
            for r in list {
                let rule = &policy.door(r.direction).rules[r.index];
                let identities = self.rule_identities(r.rule, rule);
                let at = AtDoor { set, direction: r.direction, pod };
                doors[usize::from(direction_byte(r.direction))] |=
                    self.rule_entries(out, &at, rule, r.rule, identities.as_deref(), Some(id));
            }
        }
        doors
    }

    /// The identities the peers of rule number `number` cover, in order; `None` when it names
    /// no peers (anyone).
    fn rule_identities(&self, number: u32, rule: &Rule) -> Option<Vec<u32>> {
        if rule.peers.is_empty() {
            return None;
        }
        let covered = |slot: &PeerSlot| match slot {
            PeerSlot::Matcher(m) => &self.by_matcher[*m],
            PeerSlot::Block(b) => &self.by_block[*b],
        };
        // Each list is in identity order without repeats (identities are made in order).
        match self.rule_peers[usize::try_from(number).expect("u32 fits usize")].as_slice() {
            [one] => Some(covered(one).clone()),
            slots => {
                let set: BTreeSet<u32> = slots.iter().flat_map(covered).copied().collect();
                Some(set.into_iter().collect())
            }
        }
    }

    /// What decides the entries of local pod `pod`.
    fn set_key(&self, ir: &Ir, pod: &Pod) -> SetKey {
        let mut key = SetKey::default();
        for (p, policy) in ir.policies.iter().enumerate() {
            if !(policy.namespace == pod.namespace && policy.selector.matches(&pod.labels)) {
                continue;
            }
            for direction in Direction::BOTH {
                if policy.door(direction).is_guarded() {
                    key.doors[usize::from(direction_byte(direction))].push(p);
                }
            }
            if policy.ingress.is_guarded() {
                key.named
                    .extend(self.ingress_names[p].iter().map(|(n, proto)| resolve_named(pod, n, *proto)));
            }
        }
        key
    }

    /// The door flags and entries of policy set `set`, of which local pod `pod` is a member.
    fn set_entries(&self, ir: &Ir, pod: &Pod, set: u32) -> ([u16; 2], EndpointEntries) {
        let mut out = EndpointEntries::default();
        let mut doors = [0u16; 2];
        for direction in Direction::BOTH {
            let dir = direction_byte(direction);
            let mut door = 0u16;
            for (policy, first) in ir.policies.iter().zip(&self.first_rule) {
                let selected = policy.namespace == pod.namespace && policy.selector.matches(&pod.labels);
                if !(selected && policy.door(direction).is_guarded()) {
                    continue;
                }
                door |= abi::DOOR_GUARDED;
                for (rule_index, rule) in (first[usize::from(dir)]..).zip(&policy.door(direction).rules) {
                    let identities = self.rule_identities(rule_index, rule);
                    let at = AtDoor { set, direction, pod };
                    door |= self.rule_entries(&mut out, &at, rule, rule_index, identities.as_deref(), None);
                }
            }
            doors[usize::from(dir)] = door;
        }
        (doors, out)
    }

    /// Add the entries one rule makes at a door to `out` (an entry a rule earlier in IR order
    /// made already keeps that rule) and return the door flags they need. `identities` are the
    /// peer identities the rule covers (`None`: it names no peers); with `only`, just the entries
    /// of that one identity (a new identity's entries in an existing policy set).
    fn rule_entries(
        &self,
        out: &mut EndpointEntries,
        at: &AtDoor<'_>,
        rule: &Rule,
        rule_index: u32,
        identities: Option<&[u32]>,
        only: Option<u32>,
    ) -> u16 {
        let (set, dir) = (at.set, direction_byte(at.direction));
        let mut door = 0u16;
        let mut add = |identity: u32, protocol: u8, port: u16, door: &mut u16| {
            if identity == abi::IDENTITY_ANY {
                *door |= abi::DOOR_ANY_PEER;
            }
            if protocol == 0 {
                *door |= abi::DOOR_ANY_PROTO;
            } else if port == 0 {
                *door |= abi::DOOR_ANY_PORT;
            }
            let entry = PolicyEntry { set, direction: dir, identity, protocol, port };
            out.policy.entry(entry).or_insert(rule_index);
        };
        let peer_ids: Vec<u32> = match (identities, only) {
            (Some(ids), None) => ids.to_vec(),
            (Some(ids), Some(n)) => ids.iter().copied().filter(|id| *id == n).collect(),
            (None, None) => vec![abi::IDENTITY_ANY],
            // Entries for any peer exist already: a new identity changes none of them.
            (None, Some(_)) => vec![],
        };
        if rule.ports.is_empty() {
            for id in &peer_ids {
                add(*id, 0, 0, &mut door);
            }
        }
        for port in &rule.ports {
            let protocol = ip_protocol(port.protocol);
            match (&port.port, port.end_port) {
                (None, _) => {
                    for id in &peer_ids {
                        add(*id, protocol, 0, &mut door);
                    }
                }
                (Some(PortValue::Number(p)), None) => {
                    for id in &peer_ids {
                        add(*id, protocol, *p, &mut door);
                    }
                }
                (Some(PortValue::Number(lo)), Some(hi)) => {
                    if u32::from(hi) - u32::from(*lo) < EXPAND_RANGE_UP_TO {
                        for p in *lo..=hi {
                            for id in &peer_ids {
                                add(*id, protocol, p, &mut door);
                            }
                        }
                    } else {
                        door |= abi::DOOR_RANGES;
                        if identities.is_none() {
                            door |= abi::DOOR_ANY_PEER;
                        }
                        for (start, bits) in range_blocks(*lo, hi) {
                            for id in &peer_ids {
                                let entry =
                                    PolicyEntry { set, direction: dir, identity: *id, protocol, port: start };
                                out.ranges.entry(RangeEntry { entry, bits }).or_insert(rule_index);
                            }
                        }
                    }
                }
                (Some(PortValue::Name(name)), _) => {
                    if at.direction == Direction::Ingress {
                        // The destination is this pod: resolve on it.
                        if let Some(p) = resolve_named(at.pod, name, port.protocol) {
                            for id in &peer_ids {
                                add(*id, protocol, p, &mut door);
                            }
                        }
                    } else {
                        // The destination is the peer: resolve per identity.
                        let slot = self
                            .peers
                            .egress_names
                            .iter()
                            .position(|(n, p)| n == name && *p == port.protocol);
                        let candidates: Vec<u32> = match (identities, only) {
                            (Some(_), _) => peer_ids.clone(),
                            (None, None) => (1..self.identity_count()).collect(),
                            (None, Some(n)) => vec![n],
                        };
                        for id in candidates {
                            let index = usize::try_from(id - 1).expect("u32 fits usize");
                            let resolved = slot.and_then(|s| self.signatures[index].named[s]);
                            if let Some(p) = resolved {
                                add(id, protocol, p, &mut door);
                            }
                        }
                    }
                }
            }
        }
        door
    }
}

/// A door of a policy set whose entries are being computed, and a local pod of the set.
struct AtDoor<'a> {
    set: u32,
    direction: Direction,
    pod: &'a Pod,
}

/// One endpoint's policy entries: exact ones and port range blocks, each with its rule index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct EndpointEntries {
    policy: BTreeMap<PolicyEntry, u32>,
    ranges: BTreeMap<RangeEntry, u32>,
}

/// How the pods of two inventories differ, by namespace and name.
struct PodDiff<'a> {
    /// Index in the old inventory by namespace and name.
    before: HashMap<(&'a str, &'a str), usize>,
    removed: Vec<&'a Pod>,
    added: Vec<&'a Pod>,
    /// (before, after)
    changed: Vec<(&'a Pod, &'a Pod)>,
}

impl<'a> PodDiff<'a> {
    /// `None` when a pod appears twice in either inventory.
    fn of(old: &'a Inventory, new: &'a Inventory) -> Option<PodDiff<'a>> {
        let before: HashMap<(&str, &str), usize> =
            old.pods.iter().enumerate().map(|(i, p)| ((p.namespace.as_str(), p.name.as_str()), i)).collect();
        if before.len() != old.pods.len() {
            return None;
        }
        let mut matched = vec![false; old.pods.len()];
        let mut diff =
            PodDiff { before: HashMap::new(), removed: Vec::new(), added: Vec::new(), changed: Vec::new() };
        for pod in &new.pods {
            match before.get(&(pod.namespace.as_str(), pod.name.as_str())) {
                Some(i) if matched[*i] => return None,
                Some(i) => {
                    matched[*i] = true;
                    if old.pods[*i] != *pod {
                        diff.changed.push((&old.pods[*i], pod));
                    }
                }
                None => diff.added.push(pod),
            }
        }
        diff.removed = old.pods.iter().zip(&matched).filter(|(_, m)| !**m).map(|(p, _)| p).collect();
        diff.before = before;
        Some(diff)
    }

    /// A pod of the old inventory (the one this diff was made from) by namespace and name.
    fn old_pod(&self, old: &'a Inventory, namespace: &str, name: &str) -> Option<&'a Pod> {
        self.before.get(&(namespace, name)).map(|i| &old.pods[*i])
    }

    /// The pods of `new` this diff leaves alone.
    fn kept(&self, new: &'a Inventory) -> impl Iterator<Item = &'a Pod> {
        let touched: BTreeSet<(&str, &str)> = self
            .added
            .iter()
            .chain(self.changed.iter().map(|(_, now)| now))
            .map(|p| (p.namespace.as_str(), p.name.as_str()))
            .collect();
        new.pods.iter().filter(move |p| !touched.contains(&(p.namespace.as_str(), p.name.as_str())))
    }
}

fn namespace_labels(inventory: &Inventory) -> HashMap<&str, &BTreeMap<String, String>> {
    inventory.namespaces.iter().map(|n| (n.name.as_str(), &n.labels)).collect()
}

/// Run `f` with the labels of namespace `ns` (only its name label when the inventory lacks it).
fn with_labels<T>(
    labels: &HashMap<&str, &BTreeMap<String, String>>,
    ns: &str,
    f: impl FnOnce(&BTreeMap<String, String>) -> T,
) -> T {
    match labels.get(ns) {
        Some(l) => f(l),
        None => f(&BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), ns.to_owned())])),
    }
}

/// The address families `pod` has addresses of, IPv4 first.
fn families_of(pod: &Pod) -> Vec<Family> {
    Family::BOTH.into_iter().filter(|f| pod.ips.iter().any(|ip| Family::of(*ip) == *f)).collect()
}

fn is_local(pod: &Pod, options: &PlanOptions) -> bool {
    !pod.host_network
        && !pod.ips.is_empty()
        && options.node.as_ref().is_none_or(|n| pod.node.as_ref() == Some(n))
}

/// The Services' names and frontends: each address x port, and each node port on every address
/// of the node (both families' unspecified addresses). A frontend two Services claim (the API
/// server refuses that) keeps the first.
fn frontends(inventory: &Inventory) -> (Vec<String>, BTreeMap<FrontendEntry, u32>) {
    let mut names = Vec::new();
    let mut frontends = BTreeMap::new();
    for service in &inventory.services {
        let index = u32::try_from(names.len()).unwrap_or(u32::MAX);
        names.push(format!("{}/{}", service.namespace, service.name));
        let any: [IpAddr; 2] = [IpAddr::from([0u8; 4]), IpAddr::from([0u8; 16])];
        for port in &service.ports {
            let protocol = ip_protocol(port.protocol);
            for address in &service.addresses {
                frontends
                    .entry(FrontendEntry { address: *address, protocol, port: port.port })
                    .or_insert(index);
            }
            if let Some(node_port) = port.node_port {
                for address in any {
                    frontends.entry(FrontendEntry { address, protocol, port: node_port }).or_insert(index);
                }
            }
        }
    }
    (names, frontends)
}

impl Plan {
    /// Build the plan of `ir` over `inventory`.
    #[must_use]
    pub fn build(ir: &Ir, inventory: &Inventory, options: &PlanOptions) -> Plan {
        let peers = Peers::collect(ir);
        let ns_labels = namespace_labels(inventory);
        // Identities: the world first (the empty signature), then in inventory order.
        let world = Signature { pods: vec![], blocks: vec![], named: vec![None; peers.egress_names.len()] };
        let mut index = Index {
            signatures: vec![world.clone()],
            ids: HashMap::from([(world, abi::IDENTITY_WORLD)]),
            peers,
            ..Index::default()
        };

        let mut ipcache = BTreeMap::new();
        for pod in inventory.pods.iter().filter(|p| !p.ips.is_empty()) {
            for family in families_of(pod) {
                let sig = with_labels(&ns_labels, &pod.namespace, |l| index.signature_of(pod, family, l));
                let id = index.intern(sig);
                for ip in pod.ips.iter().filter(|ip| Family::of(**ip) == family) {
                    // hostNetwork pods share their node's address: the first one's identity wins.
                    ipcache.entry(*ip).or_insert(id);
                }
            }
        }

        let mut prefixes = BTreeSet::new();
        for (cidr, except) in &index.peers.blocks {
            prefixes.insert(*cidr);
            prefixes.extend(except.iter().copied());
        }
        let mut cidrs = BTreeMap::new();
        for prefix in prefixes {
            let blocks = index
                .peers
                .blocks
                .iter()
                .enumerate()
                .filter(|(_, (c, e))| block_covers_prefix(c, e, &prefix))
                .map(|(i, _)| i)
                .collect();
            let sig = Signature { pods: vec![], blocks, named: vec![None; index.peers.egress_names.len()] };
            cidrs.insert(prefix, index.intern(sig));
        }

        // Which identities each peer (matcher or block) covers.
        index.by_matcher = vec![Vec::new(); index.peers.matchers.len()];
        index.by_block = vec![Vec::new(); index.peers.blocks.len()];
        for (i, sig) in index.signatures.iter().enumerate() {
            let id = u32::try_from(i + 1).expect("fewer than 2^32 identities");
            for m in &sig.pods {
                index.by_matcher[*m].push(id);
            }
            for b in &sig.blocks {
                index.by_block[*b].push(id);
            }
        }
        let mut next = 0u32;
        for policy in &ir.policies {
            let mut at = [0u32; 2];
            for direction in Direction::BOTH {
                at[usize::from(direction_byte(direction))] = next;
                next += u32::try_from(policy.door(direction).rules.len()).expect("fewer than 2^32 rules");
            }
            index.first_rule.push(at);
        }
        index.index_rules(ir);

        let rules: Vec<RuleInfo> = ir
            .rules()
            .map(|(p, d, r)| RuleInfo {
                id: r.id.clone(),
                source: format!("{}:{}", r.span.file, r.span.line),
                policy: format!("{}/{}", p.namespace, p.name),
                direction: d,
            })
            .collect();

        let mut plan = Plan {
            rules,
            identity_count: index.identity_count(),
            ipcache,
            cidrs,
            index,
            next_endpoint: 1,
            next_set: 1,
            ..Plan::default()
        };
        if options.services {
            (plan.services, plan.frontends) = frontends(inventory);
        }
        for pod in inventory.pods.iter().filter(|p| is_local(p, options)) {
            let endpoint = plan.new_endpoint(ir, pod, options, None);
            plan.endpoints.push(endpoint);
        }
        plan
    }

    /// A new endpoint (the next id) for local pod `pod`, in the policy set its selection gives:
    /// an existing one, or a new one whose entries are added to the plan (and to `delta`).
    fn new_endpoint(
        &mut self,
        ir: &Ir,
        pod: &Pod,
        options: &PlanOptions,
        delta: Option<&mut Delta>,
    ) -> PlannedEndpoint {
        let set = self.set_for(ir, pod, delta);
        let id = self.next_endpoint;
        self.next_endpoint += 1;
        PlannedEndpoint {
            id,
            set: set.id,
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            interface: pod.host_interface.clone(),
            ips: pod.ips.clone(),
            flags: if options.audit { abi::EP_AUDIT } else { 0 },
            doors: set.doors,
        }
    }

    /// The policy set of local pod `pod`: the one pods of the same selection have, or a new one
    /// whose entries are added to the plan (and to `delta`).
    fn set_for(&mut self, ir: &Ir, pod: &Pod, delta: Option<&mut Delta>) -> PolicySet {
        let key = self.index.set_key(ir, pod);
        if let Some(set) = self.index.sets.get(&key) {
            return *set;
        }
        let id = self.next_set;
        self.next_set += 1;
        let (doors, entries) = self.index.set_entries(ir, pod, id);
        if let Some(delta) = delta {
            delta.policy.extend(entries.policy.iter().map(|(k, v)| (*k, *v)));
            delta.ranges.extend(entries.ranges.iter().map(|(k, v)| (*k, *v)));
            delta.new_sets += 1;
        }
        self.policy.extend(entries.policy);
        self.ranges.extend(entries.ranges);
        let set = PolicySet { id, doors };
        self.index.sets.insert(key.clone(), set);
        self.index.set_keys.insert(id, key);
        set
    }

    /// Remove policy set `set` and its entries (into `delta`).
    fn remove_set(&mut self, set: u32, delta: &mut Delta) {
        if let Some(key) = self.index.set_keys.remove(&set) {
            self.index.sets.remove(&key);
        }
        let entries: Vec<PolicyEntry> = self
            .policy
            .range(PolicyEntry::first_of(set)..=PolicyEntry::last_of(set))
            .map(|(k, _)| *k)
            .collect();
        for k in &entries {
            self.policy.remove(k);
        }
        delta.policy_removed.extend(entries);
        let ranges: Vec<RangeEntry> = self
            .ranges
            .range(
                RangeEntry { entry: PolicyEntry::first_of(set), bits: 0 }..=RangeEntry {
                    entry: PolicyEntry::last_of(set),
                    bits: u8::MAX,
                },
            )
            .map(|(k, _)| *k)
            .collect();
        for k in &ranges {
            self.ranges.remove(k);
        }
        delta.ranges_removed.extend(ranges);
    }

    /// Change this plan, built from `old` (or brought to it by earlier calls), into one for `new`
    /// with the same IR, in place: the live generation keeps its entries and gets only the map
    /// writes of the returned [`Delta`]. Pods may be added, removed or changed (relabelled,
    /// re-addressed, moved between nodes), with identities old or new. Identity and endpoint
    /// numbers then differ from what [`Plan::build`] would give (an identity no pod has any more
    /// keeps its entries, unreachable), but every verdict is the same.
    ///
    /// `None`, with the plan unchanged, when the change needs a whole new generation: other
    /// namespaces or namespace labels, a hostNetwork pod involved (they share the node's
    /// address), or an address moving between two pods the change does not both touch.
    pub fn update_in_place(
        &mut self,
        ir: &Ir,
        old: &Inventory,
        new: &Inventory,
        options: &PlanOptions,
    ) -> Option<Delta> {
        // A Service change that leaves its frontends as they were (a targetPort, a port's name)
        // changes nothing netcd writes: kube-proxy's translation is judged as it comes.
        if old.namespaces != new.namespaces || (options.services && frontends(old) != frontends(new)) {
            return None;
        }
        let diff = PodDiff::of(old, new)?;
        let involved =
            diff.removed.iter().chain(diff.added.iter()).chain(diff.changed.iter().flat_map(|(a, b)| [a, b]));
        if involved.clone().any(|p| p.host_network) {
            return None;
        }
        // Addresses: freed by removed and changed pods, claimed by added and changed ones.
        let freed: BTreeSet<IpAddr> = diff
            .removed
            .iter()
            .chain(diff.changed.iter().map(|(was, _)| was))
            .flat_map(|p| p.ips.iter().copied())
            .collect();
        let mut claimed: BTreeMap<IpAddr, &Pod> = BTreeMap::new();
        for pod in diff.added.iter().chain(diff.changed.iter().map(|(_, now)| now)) {
            for ip in &pod.ips {
                if claimed.insert(*ip, pod).is_some() {
                    return None;
                }
            }
        }
        // An address of a pod this change leaves alone stays that pod's.
        if claimed.keys().any(|ip| self.ipcache.contains_key(ip) && !freed.contains(ip)) {
            return None;
        }
        if !freed.is_empty() && diff.kept(new).any(|p| p.ips.iter().any(|ip| freed.contains(ip))) {
            return None;
        }

        // Identities of the pods with new content; signatures nobody has yet become identities.
        let ns_labels = namespace_labels(new);
        let mut fresh: Vec<Signature> = Vec::new();
        let mut identity: HashMap<(&str, &str, Family), u32> = HashMap::new();
        for (pod, family) in diff
            .added
            .iter()
            .chain(diff.changed.iter().map(|(_, now)| now))
            .flat_map(|pod| families_of(pod).into_iter().map(move |f| (pod, f)))
        {
            let sig = with_labels(&ns_labels, &pod.namespace, |l| self.index.signature_of(pod, family, l));
            let id = match self.index.ids.get(&sig) {
                Some(id) => *id,
                None => match fresh.iter().position(|f| *f == sig) {
                    Some(i) => self.index.identity_count() + u32::try_from(i).expect("few new identities"),
                    None => {
                        fresh.push(sig);
                        self.index.identity_count()
                            + u32::try_from(fresh.len() - 1).expect("few new identities")
                    }
                },
            };
            identity.insert((pod.namespace.as_str(), pod.name.as_str(), family), id);
        }
        let first_new = self.index.identity_count();
        let mut delta = Delta {
            new_identities: u32::try_from(fresh.len()).expect("few new identities"),
            ..Delta::default()
        };
        self.index.add_identities(fresh);
        self.identity_count = self.index.identity_count();

        // Addresses.
        for (ip, pod) in &claimed {
            let id = identity[&(pod.namespace.as_str(), pod.name.as_str(), Family::of(*ip))];
            match self.ipcache.insert(*ip, id) {
                Some(was) if was == id => {}
                Some(_) => {
                    delta.rejudge = true;
                    delta.ipcache.push((*ip, id));
                }
                None => delta.ipcache.push((*ip, id)),
            }
        }
        for ip in freed.iter().filter(|ip| !claimed.contains_key(ip)) {
            if self.ipcache.remove(ip).is_some() {
                delta.rejudge = true;
                delta.ipcache_removed.push(*ip);
            }
        }

        // Endpoints: removed (or moved to another interface: a new endpoint), changed in place
        // (same id, maybe another policy set), or new.
        let position = |endpoints: &[PlannedEndpoint], pod: &Pod| {
            endpoints.iter().position(|e| e.namespace == pod.namespace && e.name == pod.name)
        };
        let mut gone: BTreeSet<u32> = BTreeSet::new();
        let mut renewed: Vec<&Pod> = Vec::new();
        let mut moved: Vec<(usize, &Pod)> = Vec::new();
        for pod in &diff.removed {
            if let Some(i) = position(&self.endpoints, pod) {
                gone.insert(self.endpoints[i].id);
            }
        }
        for (was, now) in &diff.changed {
            let existing = position(&self.endpoints, was);
            let same_place = was.host_interface == now.host_interface && was.ips == now.ips;
            match (existing, is_local(now, options)) {
                (Some(i), true) if same_place => {
                    if was.labels != now.labels || was.ports != now.ports {
                        moved.push((i, now));
                    }
                }
                (Some(i), local) => {
                    gone.insert(self.endpoints[i].id);
                    if local {
                        renewed.push(now);
                    }
                }
                (None, true) => renewed.push(now),
                (None, false) => {}
            }
        }
        renewed.extend(diff.added.iter().filter(|p| is_local(p, options)));

        // The sets there were, each with a member as it was (any member: they share a selection),
        // get the new identities' entries first.
        let mut members_before: BTreeMap<u32, &Pod> = BTreeMap::new();
        for ep in &self.endpoints {
            if let Some(pod) = diff.old_pod(old, &ep.namespace, &ep.name) {
                members_before.entry(ep.set).or_insert(pod);
            }
        }
        let made: Vec<(u32, RulesByPolicy)> =
            (first_new..self.index.identity_count()).map(|id| (id, self.index.rules_naming(id))).collect();
        let mut widened: BTreeMap<u32, [u16; 2]> = BTreeMap::new();
        if made.iter().any(|(_, rules)| !rules.is_empty()) {
            for (set, pod) in &members_before {
                let mut out = EndpointEntries::default();
                let mut doors = [0u16; 2];
                for (id, rules) in &made {
                    let d = self.index.entries_of_identity(ir, rules, pod, *set, *id, &mut out);
                    doors = [doors[0] | d[0], doors[1] | d[1]];
                }
                if let Some(key) = self.index.set_keys.get(set)
                    && let Some(info) = self.index.sets.get_mut(key)
                {
                    let wider = [info.doors[0] | doors[0], info.doors[1] | doors[1]];
                    if wider != info.doors {
                        info.doors = wider;
                        widened.insert(*set, wider);
                    }
                }
                delta.policy.extend(out.policy.iter().map(|(k, v)| (*k, *v)));
                delta.ranges.extend(out.ranges.iter().map(|(k, v)| (*k, *v)));
                self.policy.extend(out.policy);
                self.ranges.extend(out.ranges);
            }
        }

        // Pods changed in place join the set of their new selection (made now if nobody has it):
        // one endpoint write switches them to its entries.
        for (i, pod) in moved {
            let set = self.set_for(ir, pod, Some(&mut delta));
            let ep = &mut self.endpoints[i];
            if ep.set != set.id {
                ep.set = set.id;
                ep.doors = set.doors;
                delta.rejudge = true;
                delta.endpoints.push(ep.clone());
            }
        }
        for ep in self.endpoints.iter_mut().filter(|e| !gone.contains(&e.id)) {
            if let Some(doors) = widened.get(&ep.set)
                && ep.doors != *doors
            {
                ep.doors = *doors;
                delta.endpoints.push(ep.clone());
            }
        }
        if !gone.is_empty() {
            delta.rejudge = true;
            self.endpoints.retain(|e| !gone.contains(&e.id));
            delta.endpoints_removed = gone.into_iter().collect();
        }
        for pod in renewed {
            let planned = self.new_endpoint(ir, pod, options, Some(&mut delta));
            delta.endpoints.push(planned.clone());
            self.endpoints.push(planned);
        }
        // Sets nobody is a member of any more go, with their entries (after everything else).
        let used: BTreeSet<u32> = self.endpoints.iter().map(|e| e.set).collect();
        let unused: Vec<u32> = self.index.set_keys.keys().copied().filter(|s| !used.contains(s)).collect();
        for set in unused {
            self.remove_set(set, &mut delta);
        }
        Some(delta)
    }

    /// What this plan decides, whatever its identity and endpoint numbers: for each local pod
    /// (namespace, name), its flags, which doors are guarded, and its entries with each peer
    /// identity written as the pod addresses and CIDR prefixes that map to it (0 = any peer; the
    /// world identity is also met by every other address). Entries of identities nothing maps to
    /// are left out: no packet can reach them. Two plans with the same meaning give every packet
    /// the same verdict. Door flags other than guarded only say which lookups to try, so they are
    /// left out too (a plan changed in place may try more).
    #[must_use]
    pub fn meaning(&self) -> BTreeMap<(String, String), EndpointMeaning> {
        let mut peers: HashMap<u32, PeerMeaning> = HashMap::new();
        for (ip, id) in &self.ipcache {
            peers.entry(*id).or_insert_with(|| PeerMeaning::of(*id)).addresses.push(*ip);
        }
        for (net, id) in &self.cidrs {
            peers.entry(*id).or_insert_with(|| PeerMeaning::of(*id)).prefixes.push(*net);
        }
        for id in [abi::IDENTITY_ANY, abi::IDENTITY_WORLD] {
            peers.entry(id).or_insert_with(|| PeerMeaning::of(id));
        }
        let mut out: BTreeMap<(String, String), EndpointMeaning> = BTreeMap::new();
        let mut by_id = HashMap::new();
        for ep in &self.endpoints {
            let guarded = ep.doors.map(|d| d & abi::DOOR_GUARDED);
            let meaning = EndpointMeaning { flags: ep.flags, guarded, entries: BTreeSet::new() };
            out.insert((ep.namespace.clone(), ep.name.clone()), meaning);
            by_id.insert(ep.id, (ep.namespace.clone(), ep.name.clone()));
        }
        let mut members: HashMap<u32, Vec<&(String, String)>> = HashMap::new();
        for ep in &self.endpoints {
            if let Some(name) = by_id.get(&ep.id) {
                members.entry(ep.set).or_default().push(name);
            }
        }
        let exact = self.policy.iter().map(|(e, rule)| (e, 16, rule));
        let blocks = self.ranges.iter().map(|(r, rule)| (&r.entry, r.bits, rule));
        for (e, bits, rule) in exact.chain(blocks) {
            let (Some(peer), Some(names)) = (peers.get(&e.identity), members.get(&e.set)) else { continue };
            for name in names {
                if let Some(m) = out.get_mut(*name) {
                    m.entries.insert((e.direction, peer.clone(), e.protocol, e.port, bits, *rule));
                }
            }
        }
        out
    }

    /// Policy and range entries of one policy set.
    #[must_use]
    pub fn entries_of(&self, set: u32) -> usize {
        self.policy.range(PolicyEntry::first_of(set)..=PolicyEntry::last_of(set)).count()
            + self.ranges.keys().filter(|r| r.entry.set == set).count()
    }

    /// Number of policy sets.
    #[must_use]
    pub fn set_count(&self) -> usize {
        self.index.set_keys.len()
    }

    /// The rule at `index`, if it is one (not `RULE_NONE`, `RULE_OPEN`, ...).
    #[must_use]
    pub fn rule(&self, index: u32) -> Option<&RuleInfo> {
        self.rules.get(usize::try_from(index).ok()?)
    }
}

/// A plan is its own reference, so that maps of plans, shared (`Arc`) or borrowed, name events
/// alike (`netc_runtime::events::line`).
impl AsRef<Plan> for Plan {
    fn as_ref(&self) -> &Plan {
        self
    }
}

/// The ABI byte for a direction.
#[must_use]
pub fn direction_byte(direction: Direction) -> u8 {
    match direction {
        Direction::Ingress => abi::INGRESS,
        Direction::Egress => abi::EGRESS,
    }
}

fn matcher_matches(m: &PodMatcher, pod: &Pod, ns_labels: &BTreeMap<String, String>) -> bool {
    let (ns_ok, pods) = match m {
        PodMatcher::InNamespace(ns, pods) => (pod.namespace == *ns, pods),
        PodMatcher::InNamespaces(sel, pods) => (sel.matches(ns_labels), pods),
    };
    ns_ok && pods.as_ref().is_none_or(|s| s.matches(&pod.labels))
}

fn resolve_named(pod: &Pod, name: &str, protocol: Protocol) -> Option<u16> {
    pod.ports.iter().find(|n| n.name == name && n.protocol == protocol).map(|n| n.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Door, DoorState, NamedPort, Policy, Port, Rule, Span};

    fn span() -> Span {
        Span { file: "a.np".into(), line: 3, column: 1, start: 0, end: 1 }
    }

    fn pod(ns: &str, name: &str, app: &str, ip: &str) -> Pod {
        Pod {
            namespace: ns.into(),
            name: name.into(),
            labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            ips: vec![ip.parse().expect("ip")],
            ports: vec![],
            node: Some("n1".into()),
            host_interface: None,
            host_network: false,
        }
    }

    fn guarded(rules: Vec<Rule>) -> Door {
        Door { state: DoorState::Guarded, guarded_by: vec![], rules }
    }

    fn policy(ns: &str, app: &str, ingress: Door, egress: Door) -> Policy {
        Policy {
            name: app.into(),
            namespace: ns.into(),
            workload: app.into(),
            selector: LabelSelector::labels([("app", app)]),
            doc: None,
            ingress,
            egress,
            span: span(),
        }
    }

    fn rule(id: &str, peers: Vec<Peer>, ports: Vec<Port>) -> Rule {
        Rule { id: id.into(), peers, ports, span: span() }
    }

    fn app(a: &str) -> Peer {
        Peer::Pods { namespaces: None, pods: Some(LabelSelector::labels([("app", a)])) }
    }

    fn tcp(p: u16) -> Port {
        Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(p)), end_port: None }
    }

    fn ir(policies: Vec<Policy>) -> Ir {
        Ir { policies, ..Ir::empty() }
    }

    fn inventory(pods: Vec<Pod>) -> Inventory {
        Inventory { pods, ..Inventory::default() }
    }

    #[test]
    fn pods_no_rule_tells_apart_share_an_identity() {
        let ir = ir(vec![policy(
            "default",
            "backend",
            guarded(vec![rule("r1", vec![app("frontend")], vec![tcp(8080)])]),
            Door::open(),
        )]);
        let inv = inventory(vec![
            pod("default", "fe-1", "frontend", "10.0.0.1"),
            pod("default", "fe-2", "frontend", "10.0.0.2"),
            pod("default", "be", "backend", "10.0.0.3"),
            pod("default", "db", "database", "10.0.0.4"),
        ]);
        let plan = Plan::build(&ir, &inv, &PlanOptions::default());
        // world (which backend and database share) + frontend.
        assert_eq!(plan.identity_count, 3, "any, world and frontend");
        let fe = plan.ipcache[&"10.0.0.1".parse::<IpAddr>().expect("ip")];
        assert_eq!(plan.ipcache[&"10.0.0.2".parse::<IpAddr>().expect("ip")], fe);
        assert_eq!(plan.ipcache[&"10.0.0.3".parse::<IpAddr>().expect("ip")], abi::IDENTITY_WORLD);
        let be = plan.endpoints.iter().find(|e| e.name == "be").expect("backend endpoint");
        assert_eq!(be.doors[usize::from(abi::INGRESS)], abi::DOOR_GUARDED);
        assert_eq!(be.doors[usize::from(abi::EGRESS)], 0);
        let entry =
            PolicyEntry { set: be.set, direction: abi::INGRESS, identity: fe, protocol: 6, port: 8080 };
        assert_eq!(plan.policy.get(&entry), Some(&0));
        assert_eq!(plan.policy.len(), 1);
        assert_eq!(plan.rules[0].source, "a.np:3");
    }

    #[test]
    fn excepts_get_their_own_prefix_identity() {
        let block = Peer::IpBlock {
            cidr: "192.0.2.0/24".parse().expect("cidr"),
            except: vec!["192.0.2.128/25".parse().expect("cidr")],
        };
        let ir =
            ir(vec![policy("default", "web", Door::open(), guarded(vec![rule("r1", vec![block], vec![])]))]);
        let plan = Plan::build(
            &ir,
            &inventory(vec![pod("default", "w", "web", "10.0.0.1")]),
            &PlanOptions::default(),
        );
        let outer = plan.cidrs[&"192.0.2.0/24".parse::<IpNet>().expect("cidr")];
        let except = plan.cidrs[&"192.0.2.128/25".parse::<IpNet>().expect("cidr")];
        assert_ne!(outer, except);
        assert_eq!(except, abi::IDENTITY_WORLD, "an except prefix matches no block");
        let ep = &plan.endpoints[0];
        assert_eq!(ep.doors[usize::from(abi::EGRESS)], abi::DOOR_GUARDED | abi::DOOR_ANY_PROTO);
        let entry =
            PolicyEntry { set: ep.set, direction: abi::EGRESS, identity: outer, protocol: 0, port: 0 };
        assert!(plan.policy.contains_key(&entry));
    }

    #[test]
    fn ip_blocks_match_pods_by_address() {
        let block = Peer::IpBlock { cidr: "10.1.0.0/16".parse().expect("cidr"), except: vec![] };
        let ir = ir(vec![policy(
            "default",
            "web",
            guarded(vec![rule("r1", vec![block], vec![tcp(80)])]),
            Door::open(),
        )]);
        let inv = inventory(vec![
            pod("default", "w", "web", "10.0.0.1"),
            pod("default", "c", "client", "10.1.2.3"),
        ]);
        let plan = Plan::build(&ir, &inv, &PlanOptions::default());
        let client = plan.ipcache[&"10.1.2.3".parse::<IpAddr>().expect("ip")];
        assert_ne!(client, abi::IDENTITY_WORLD);
        let web = plan.endpoints.iter().find(|e| e.name == "w").expect("web");
        assert!(plan.policy.contains_key(&PolicyEntry {
            set: web.set,
            direction: abi::INGRESS,
            identity: client,
            protocol: 6,
            port: 80
        }));
    }

    /// Corner 14: a dual-stack client matched by an IPv6 block gets in over IPv6 only: its IPv4
    /// address carries an identity the block's rule does not name (one identity for both
    /// addresses let its IPv4 packets through).
    #[test]
    fn a_dual_stack_pod_is_matched_by_the_address_of_the_packets_family() {
        let block = Peer::IpBlock { cidr: "fd00:1::/64".parse().expect("cidr"), except: vec![] };
        let ir = ir(vec![policy(
            "default",
            "web",
            guarded(vec![rule("r1", vec![block], vec![tcp(80)])]),
            Door::open(),
        )]);
        let mut client = pod("default", "c", "client", "10.1.2.3");
        client.ips.push("fd00:1::3".parse().expect("ip"));
        let inv = inventory(vec![pod("default", "w", "web", "10.0.0.1"), client]);
        let plan = Plan::build(&ir, &inv, &PlanOptions::default());
        let v4 = plan.ipcache[&"10.1.2.3".parse::<IpAddr>().expect("ip")];
        let v6 = plan.ipcache[&"fd00:1::3".parse::<IpAddr>().expect("ip")];
        assert_ne!(v4, v6, "the two addresses are told apart");
        let web = plan.endpoints.iter().find(|e| e.name == "w").expect("web");
        let entry =
            |identity| PolicyEntry { set: web.set, direction: abi::INGRESS, identity, protocol: 6, port: 80 };
        assert!(plan.policy.contains_key(&entry(v6)), "IPv6 packets are the block's");
        assert!(!plan.policy.contains_key(&entry(v4)), "IPv4 packets are not");
    }

    #[test]
    fn named_ports_resolve_on_the_destination() {
        let named =
            Port { protocol: Protocol::Tcp, port: Some(PortValue::Name("http".into())), end_port: None };
        let ir = ir(vec![
            policy("default", "web", guarded(vec![rule("in", vec![], vec![named.clone()])]), Door::open()),
            policy(
                "default",
                "client",
                Door::open(),
                guarded(vec![rule("out", vec![app("web")], vec![named])]),
            ),
        ]);
        let mut web = pod("default", "w", "web", "10.0.0.1");
        web.ports = vec![NamedPort { name: "http".into(), port: 8080, protocol: Protocol::Tcp }];
        let mut web2 = pod("default", "w2", "web", "10.0.0.2");
        web2.ports = vec![NamedPort { name: "http".into(), port: 9090, protocol: Protocol::Tcp }];
        let inv = inventory(vec![web, web2, pod("default", "c", "client", "10.0.0.3")]);
        let plan = Plan::build(&ir, &inv, &PlanOptions::default());
        let id_w = plan.ipcache[&"10.0.0.1".parse::<IpAddr>().expect("ip")];
        let id_w2 = plan.ipcache[&"10.0.0.2".parse::<IpAddr>().expect("ip")];
        assert_ne!(id_w, id_w2, "different resolutions of an egress named port");
        let c = plan.endpoints.iter().find(|e| e.name == "c").expect("client").set;
        let w = plan.endpoints.iter().find(|e| e.name == "w").expect("web").set;
        let w2 = plan.endpoints.iter().find(|e| e.name == "w2").expect("web").set;
        let has = |set, direction, identity, port| {
            plan.policy.contains_key(&PolicyEntry { set, direction, identity, protocol: 6, port })
        };
        assert!(has(c, abi::EGRESS, id_w, 8080));
        assert!(has(c, abi::EGRESS, id_w2, 9090));
        assert!(!has(c, abi::EGRESS, id_w, 9090));
        assert!(has(w, abi::INGRESS, abi::IDENTITY_ANY, 8080));
        // The two web pods resolve "http" differently: they cannot share a policy set.
        assert_ne!(w, w2);
        assert!(
            has(w2, abi::INGRESS, abi::IDENTITY_ANY, 9090) && !has(w2, abi::INGRESS, abi::IDENTITY_ANY, 8080)
        );
    }

    /// Change `plan` (built from `old`) in place to `new`; check it means what a plan built from
    /// `new` means, and return the delta.
    fn in_place(plan: &mut Plan, ir: &Ir, old: &Inventory, new: &Inventory) -> Delta {
        let options = PlanOptions::default();
        let delta = plan.update_in_place(ir, old, new, &options).expect("changes in place");
        let rebuilt = Plan::build(ir, new, &options);
        assert_eq!(plan.meaning(), rebuilt.meaning(), "in place and rebuilt plans differ");
        // The datapath adds before it removes: nothing may be both.
        let added: BTreeSet<PolicyEntry> = delta.policy.iter().map(|(e, _)| *e).collect();
        assert!(delta.policy_removed.iter().all(|e| !added.contains(e)), "{delta:?}");
        let added: BTreeSet<RangeEntry> = delta.ranges.iter().map(|(e, _)| *e).collect();
        assert!(delta.ranges_removed.iter().all(|e| !added.contains(e)), "{delta:?}");
        assert!(delta.endpoints.iter().all(|e| !delta.endpoints_removed.contains(&e.id)), "{delta:?}");
        assert_eq!(plan.ipcache.len(), rebuilt.ipcache.len());
        delta
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// frontend -> backend:8080
    fn frontend_to_backend() -> Ir {
        ir(vec![policy(
            "default",
            "backend",
            guarded(vec![rule("r1", vec![app("frontend")], vec![tcp(8080)])]),
            Door::open(),
        )])
    }

    #[test]
    fn replicas_come_and_go_in_place() {
        let ir = frontend_to_backend();
        let old = inventory(vec![
            pod("default", "fe-1", "frontend", "10.0.0.1"),
            pod("default", "be-1", "backend", "10.0.0.3"),
        ]);
        let mut plan = Plan::build(&ir, &old, &PlanOptions::default());
        let fe = plan.ipcache[&ip("10.0.0.1")];
        let mut new = old.clone();
        new.pods.push(pod("default", "be-2", "backend", "10.0.0.4"));
        new.pods.push(pod("default", "fe-2", "frontend", "10.0.0.2"));
        let delta = in_place(&mut plan, &ir, &old, &new);
        assert!(!delta.rejudge, "added pods turn no allowed flow into a denied one");
        assert_eq!(delta.new_identities, 0);
        assert!(delta.ipcache.contains(&(ip("10.0.0.2"), fe)));
        assert_eq!(delta.endpoints.len(), 2);
        let be1 = plan.endpoints.iter().find(|e| e.name == "be-1").expect("be-1").clone();
        let be2 = delta.endpoints.iter().find(|e| e.name == "be-2").expect("be-2");
        assert_eq!(be2.doors[usize::from(abi::INGRESS)], abi::DOOR_GUARDED);
        // The replica joins be-1's policy set: its entries are there already.
        assert_eq!(be2.set, be1.set);
        assert!(delta.policy.is_empty() && delta.ranges.is_empty(), "{delta:?}");
        assert_eq!(delta.new_sets, 0);
        let entry =
            PolicyEntry { set: be1.set, direction: abi::INGRESS, identity: fe, protocol: 6, port: 8080 };
        assert_eq!(plan.policy.get(&entry), Some(&0));
        assert!(delta.ipcache_removed.is_empty() && delta.endpoints_removed.is_empty());

        // A backend replica goes: its address and endpoint, and flows are judged again; the
        // entries stay for be-2.
        let mut fewer = new.clone();
        fewer.pods.retain(|p| p.name != "be-1");
        let delta = in_place(&mut plan, &ir, &new, &fewer);
        assert!(delta.rejudge);
        assert_eq!(delta.ipcache_removed, vec![ip("10.0.0.3")]);
        assert_eq!(delta.endpoints_removed, vec![be1.id]);
        assert!(delta.policy_removed.is_empty());
        assert!(delta.policy.is_empty() && delta.endpoints.is_empty() && delta.ipcache.is_empty());
        assert_eq!(plan.entries_of(be1.set), 1);

        // The last backend goes: its set's entries go too.
        let mut none = fewer.clone();
        none.pods.retain(|p| p.name != "be-2");
        let delta = in_place(&mut plan, &ir, &fewer, &none);
        assert_eq!(delta.policy_removed, vec![entry]);
        assert_eq!(plan.entries_of(be1.set), 0);

        // Nothing changed: nothing to write.
        let delta = in_place(&mut plan, &ir, &none, &none);
        assert_eq!(delta.writes(), 0);
        assert!(!delta.rejudge);
    }

    #[test]
    fn a_relabelled_pod_changes_identity_and_endpoint_in_place() {
        let ir = frontend_to_backend();
        let old = inventory(vec![
            pod("default", "fe", "frontend", "10.0.0.1"),
            pod("default", "x", "other", "10.0.0.2"),
            pod("default", "be", "backend", "10.0.0.3"),
        ]);
        let mut plan = Plan::build(&ir, &old, &PlanOptions::default());
        let fe = plan.ipcache[&ip("10.0.0.1")];
        // x becomes a frontend (an existing identity); its own doors stay open, as frontend's
        // are: same policy set, nothing to write for its endpoint.
        let mut new = old.clone();
        new.pods[1].labels.insert("app".into(), "frontend".into());
        let delta = in_place(&mut plan, &ir, &old, &new);
        assert_eq!(delta.ipcache, vec![(ip("10.0.0.2"), fe)]);
        assert!(delta.rejudge, "the address changed identity");
        assert!(delta.endpoints.is_empty() && delta.endpoints_removed.is_empty(), "{delta:?}");
        assert_eq!(delta.writes(), 1);
        // The backend gets a label no rule reads: nothing at all changes.
        let mut tagged = new.clone();
        tagged.pods[2].labels.insert("tier".into(), "gold".into());
        let delta = in_place(&mut plan, &ir, &new, &tagged);
        assert_eq!(delta.writes(), 0, "{delta:?}");
        assert!(!delta.rejudge);
        // The backend becomes something no rule guards: it joins the open pods' set in one
        // endpoint write (same endpoint id), and its old set's entries go.
        let mut open = tagged.clone();
        open.pods[2].labels.insert("app".into(), "gone".into());
        let be = plan.endpoints.iter().find(|e| e.name == "be").expect("be").clone();
        let delta = in_place(&mut plan, &ir, &tagged, &open);
        assert!(delta.endpoints_removed.is_empty());
        assert_eq!(delta.endpoints.len(), 1);
        assert_eq!(delta.endpoints[0].id, be.id);
        assert_ne!(delta.endpoints[0].set, be.set);
        assert_eq!(delta.endpoints[0].doors, [0, 0]);
        assert_eq!(delta.policy_removed.len(), 1);
        assert!(delta.rejudge, "flows its old set allowed must be judged again");
        // A pod that only moves to another address keeps its identity; the old address goes.
        let mut moved = open.clone();
        moved.pods[1].ips = vec![ip("10.0.0.9")];
        let delta = in_place(&mut plan, &ir, &open, &moved);
        assert_eq!(delta.ipcache_removed, vec![ip("10.0.0.2")]);
        assert_eq!(delta.ipcache, vec![(ip("10.0.0.9"), fe)]);
        // An address changing hands between two pods this change both touches is fine.
        let mut swapped = moved.clone();
        swapped.pods.retain(|p| p.name != "x");
        swapped.pods.push(pod("default", "y", "frontend", "10.0.0.9"));
        let delta = in_place(&mut plan, &ir, &moved, &swapped);
        assert!(delta.ipcache.is_empty() && delta.ipcache_removed.is_empty(), "same identity, same address");
        assert!(delta.rejudge, "x's endpoint went");
        // A pod relabelled into a selection nobody has here now gets a new set, never the id of
        // a set just removed; its endpoint keeps its id.
        let sets_before = plan.index.set_keys.keys().max().copied().expect("sets");
        let mut again = swapped.clone();
        let pod = again.pods.iter_mut().find(|p| p.name == "be").expect("its pod");
        pod.labels.insert("app".into(), "backend".into());
        let delta = in_place(&mut plan, &ir, &swapped, &again);
        assert_eq!(delta.new_sets, 1);
        assert!(delta.endpoints_removed.is_empty());
        assert_eq!(delta.endpoints.len(), 1);
        assert_eq!(delta.endpoints[0].id, be.id);
        assert!(delta.endpoints[0].set > sets_before && delta.endpoints[0].set > be.set);
        assert_eq!(delta.policy.len(), 1);
    }

    #[test]
    fn a_new_identity_gets_entries_wherever_its_rules_apply() {
        // backend lets frontends in on 8080 and probes on 9090; a pod both frontend and probe
        // is a kind no pod was.
        let probe = Peer::Pods { namespaces: None, pods: Some(LabelSelector::labels([("role", "probe")])) };
        let named =
            Port { protocol: Protocol::Tcp, port: Some(PortValue::Name("http".into())), end_port: None };
        let ir = ir(vec![
            policy(
                "default",
                "backend",
                guarded(vec![
                    rule("r1", vec![app("frontend")], vec![tcp(8080)]),
                    rule("r2", vec![probe], vec![tcp(9090), range_port(30000, 30100)]),
                ]),
                Door::open(),
            ),
            policy("default", "client", Door::open(), guarded(vec![rule("r3", vec![], vec![named])])),
        ]);
        let old = inventory(vec![
            pod("default", "fe", "frontend", "10.0.0.1"),
            pod("default", "be", "backend", "10.0.0.3"),
            pod("default", "c", "client", "10.0.0.4"),
        ]);
        let mut plan = Plan::build(&ir, &old, &PlanOptions::default());
        let count = plan.identity_count;
        let mut new = old.clone();
        let mut both = pod("default", "fp", "frontend", "10.0.0.5");
        both.labels.insert("role".into(), "probe".into());
        both.ports = vec![NamedPort { name: "http".into(), port: 8000, protocol: Protocol::Tcp }];
        new.pods.push(both);
        let delta = in_place(&mut plan, &ir, &old, &new);
        assert_eq!(delta.new_identities, 1);
        assert_eq!(plan.identity_count, count + 1);
        assert!(!delta.rejudge);
        let id = plan.ipcache[&ip("10.0.0.5")];
        assert_eq!(delta.ipcache, vec![(ip("10.0.0.5"), id)]);
        let be = plan.endpoints.iter().find(|e| e.name == "be").expect("be").set;
        let c = plan.endpoints.iter().find(|e| e.name == "c").expect("c").set;
        let has = |set, direction, port| {
            delta
                .policy
                .iter()
                .any(|(e, _)| *e == PolicyEntry { set, direction, identity: id, protocol: 6, port })
        };
        assert!(has(be, abi::INGRESS, 8080) && has(be, abi::INGRESS, 9090));
        assert!(has(c, abi::EGRESS, 8000), "the egress named port resolves on the new identity");
        assert!(delta.ranges.iter().all(|(r, _)| r.entry.identity == id && r.entry.set == be));
        assert!(!delta.ranges.is_empty());
        // The new pod's own endpoint comes last in the delta, with the entries of its doors.
        assert!(delta.endpoints.iter().any(|e| e.name == "fp"));
    }

    #[test]
    fn changes_a_new_generation_must_make_are_refused() {
        let ir = frontend_to_backend();
        let old = inventory(vec![
            pod("default", "fe", "frontend", "10.0.0.1"),
            pod("default", "be", "backend", "10.0.0.3"),
        ]);
        let options = PlanOptions::default();
        let plan = Plan::build(&ir, &old, &options);
        let refused = |new: &Inventory| plan.clone().update_in_place(&ir, &old, new, &options).is_none();
        let mut other = old.clone();
        other.pods.push(pod("default", "fe-2", "frontend", "10.0.0.3"));
        assert!(refused(&other), "an address taken from a pod the change leaves alone");
        let mut other = old.clone();
        let mut host = pod("default", "h", "frontend", "192.168.0.1");
        host.host_network = true;
        other.pods.push(host);
        assert!(refused(&other), "hostNetwork pods share addresses");
        let mut other = old.clone();
        other.namespaces.push(crate::Namespace { name: "more".into(), labels: BTreeMap::new() });
        assert!(refused(&other), "namespaces changed");
        let mut other = old.clone();
        other.pods.push(old.pods[0].clone());
        assert!(refused(&other), "a pod twice");
        let mut other = old.clone();
        other.pods.push(pod("default", "a", "frontend", "10.0.0.7"));
        other.pods.push(pod("default", "b", "backend", "10.0.0.7"));
        assert!(refused(&other), "two new pods with one address");
        // And a refusal leaves the plan as it was.
        let mut kept = plan.clone();
        assert!(kept.update_in_place(&ir, &old, &other, &options).is_none());
        assert_eq!(kept, plan);
    }

    fn range_port(lo: u16, hi: u16) -> Port {
        Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(lo)), end_port: Some(hi) }
    }

    #[test]
    fn ranges_split_into_aligned_blocks() {
        assert_eq!(range_blocks(80, 80), vec![(80, 16)]);
        assert_eq!(range_blocks(0, 65535), vec![(0, 0)]);
        assert_eq!(range_blocks(1000, 1999).iter().map(|(_, b)| 1u32 << (16 - b)).sum::<u32>(), 1000);
        for (lo, hi) in [(1u16, 65535u16), (32000, 32768), (7, 9)] {
            let blocks = range_blocks(lo, hi);
            let mut next = u32::from(lo);
            for (start, bits) in blocks {
                assert_eq!(u32::from(start), next);
                let size = 1u32 << (16 - bits);
                assert_eq!(u32::from(start) % size, 0, "aligned");
                next += size;
            }
            assert_eq!(next, u32::from(hi) + 1);
        }
    }

    #[test]
    fn only_local_pods_are_endpoints_and_audit_is_a_flag() {
        let mut other = pod("default", "x", "web", "10.0.0.9");
        other.node = Some("n2".into());
        let inv = inventory(vec![pod("default", "w", "web", "10.0.0.1"), other]);
        let options = PlanOptions { node: Some("n1".into()), audit: true, services: false };
        let plan = Plan::build(&Ir::empty(), &inv, &options);
        assert_eq!(plan.endpoints.len(), 1);
        assert_eq!(plan.endpoints[0].flags, abi::EP_AUDIT);
        assert_eq!(plan.endpoints[0].doors, [0, 0]);
    }

    #[test]
    fn services_give_frontends_only_when_asked_and_a_change_builds_a_generation() {
        let inv = Inventory::from_json(
            r#"{"kind":"List","items":[
              {"kind":"Service","metadata":{"name":"db","namespace":"data"},"spec":{"clusterIPs":["10.96.0.10","fd00:96::10"],
                "ports":[{"port":80,"targetPort":8080,"nodePort":30080},{"protocol":"UDP","port":53}]}},
              {"kind":"Service","metadata":{"name":"headless","namespace":"data"},"spec":{"clusterIP":"None","ports":[{"port":5432}]}}]}"#,
        )
        .expect("inventory");
        let with = PlanOptions { services: true, ..PlanOptions::default() };
        let plan = Plan::build(&Ir::empty(), &inv, &with);
        assert_eq!(plan.services, ["data/db", "data/headless"]);
        let frontend = |a: &str, protocol: u8, port: u16| FrontendEntry {
            address: a.parse().expect("ip"),
            protocol,
            port,
        };
        let wanted: BTreeMap<FrontendEntry, u32> = [
            frontend("10.96.0.10", 6, 80),
            frontend("fd00:96::10", 6, 80),
            frontend("0.0.0.0", 6, 30080),
            frontend("::", 6, 30080),
            frontend("10.96.0.10", 17, 53),
            frontend("fd00:96::10", 17, 53),
        ]
        .into_iter()
        .map(|f| (f, 0))
        .collect();
        assert_eq!(plan.frontends, wanted);
        assert!(Plan::build(&Ir::empty(), &inv, &PlanOptions::default()).frontends.is_empty());
        let mut changed = inv.clone();
        changed.services[0].ports.pop();
        assert!(plan.clone().update_in_place(&Ir::empty(), &inv, &changed, &with).is_none());
        // A new targetPort: same frontends, nothing to write (the translation is judged as it comes).
        let mut retargeted = inv.clone();
        retargeted.services[0].ports[0].target_port = crate::PortValue::Number(9000);
        let delta = plan.clone().update_in_place(&Ir::empty(), &inv, &retargeted, &with);
        assert!(delta.is_some(), "in place");
        // Without the Service path, Services never need a new generation.
        let without = Plan::build(&Ir::empty(), &inv, &PlanOptions::default());
        assert!(
            without.clone().update_in_place(&Ir::empty(), &inv, &changed, &PlanOptions::default()).is_some()
        );
    }
}
