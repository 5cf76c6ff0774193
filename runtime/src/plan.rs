//! The pure part of netcd: IR + inventory -> identities, ipcache, policy entries and endpoint
//! configurations, ready to be written into the datapath's maps. No kernel, no IO.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{Direction, Inventory, Ir, LabelSelector, Peer, Pod, PortValue, Protocol};

use crate::abi;

/// Which pods are local and how doors behave.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Only pods scheduled on this node are endpoints; `None`: every pod of the inventory.
    pub node: Option<String>,
    /// Would-be drops pass and are reported as audit verdicts.
    pub audit: bool,
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
    /// The endpoint id used in policy keys (1-based index among local pods).
    pub id: u32,
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

/// An exact policy entry: at `endpoint`'s `direction` door, `identity` may use `protocol`/`port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyEntry {
    /// Endpoint id.
    pub endpoint: u32,
    /// `abi::INGRESS` or `abi::EGRESS`.
    pub direction: u8,
    /// Peer identity, or `abi::IDENTITY_ANY`.
    pub identity: u32,
    /// IP protocol number, or 0 for every protocol (and port).
    pub protocol: u8,
    /// Destination port (host order), or 0 for every port.
    pub port: u16,
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
    /// What adding pods in place needs.
    index: Index,
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
}

/// Map writes that add pods to a live plan in place (see [`Plan::added_pods`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// New pod addresses.
    pub ipcache: Vec<(IpAddr, u32)>,
    /// New local pods.
    pub endpoints: Vec<PlannedEndpoint>,
    /// Their exact entries.
    pub policy: Vec<(PolicyEntry, u32)>,
    /// Their range entries.
    pub ranges: Vec<(RangeEntry, u32)>,
}

impl Delta {
    /// The delta's entries as a plan of their own (to write them with the same code).
    #[must_use]
    pub fn as_plan(&self) -> Plan {
        Plan {
            ipcache: self.ipcache.iter().copied().collect(),
            endpoints: self.endpoints.clone(),
            policy: self.policy.iter().copied().collect(),
            ranges: self.ranges.iter().copied().collect(),
            ..Plan::default()
        }
    }
}

impl Index {
    fn signature_of(&self, pod: &Pod, ns_labels: &BTreeMap<String, String>) -> Signature {
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
            .filter(|(_, (c, e))| pod.ips.iter().any(|ip| block_contains(c, e, *ip)))
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

    /// The doors and entries of local pod `pod` as endpoint `endpoint`.
    fn endpoint(
        &self,
        ir: &Ir,
        pod: &Pod,
        endpoint: u32,
        audit: bool,
    ) -> (PlannedEndpoint, BTreeMap<PolicyEntry, u32>, BTreeMap<RangeEntry, u32>) {
        let mut policy_entries = BTreeMap::new();
        let mut range_entries = BTreeMap::new();
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
                    let identities: Option<Vec<u32>> = if rule.peers.is_empty() {
                        None
                    } else {
                        let mut set = BTreeSet::new();
                        for peer in &rule.peers {
                            let covered = match peer {
                                Peer::Pods { .. } => self
                                    .peers
                                    .matcher_index(&policy.namespace, peer)
                                    .map(|i| &self.by_matcher[i]),
                                Peer::IpBlock { cidr, except } => {
                                    self.peers.block_index(cidr, except).map(|i| &self.by_block[i])
                                }
                            };
                            set.extend(covered.into_iter().flatten().copied());
                        }
                        Some(set.into_iter().collect())
                    };
                    let mut add = |identity: u32, protocol: u8, port: u16, door: &mut u16| {
                        if identity == abi::IDENTITY_ANY {
                            *door |= abi::DOOR_ANY_PEER;
                        }
                        if protocol == 0 {
                            *door |= abi::DOOR_ANY_PROTO;
                        } else if port == 0 {
                            *door |= abi::DOOR_ANY_PORT;
                        }
                        let entry = PolicyEntry { endpoint, direction: dir, identity, protocol, port };
                        policy_entries.entry(entry).or_insert(rule_index);
                    };
                    let peer_ids = identities.clone().unwrap_or_else(|| vec![abi::IDENTITY_ANY]);
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
                                            let entry = PolicyEntry {
                                                endpoint,
                                                direction: dir,
                                                identity: *id,
                                                protocol,
                                                port: start,
                                            };
                                            range_entries
                                                .entry(RangeEntry { entry, bits })
                                                .or_insert(rule_index);
                                        }
                                    }
                                }
                            }
                            (Some(PortValue::Name(name)), _) => {
                                if direction == Direction::Ingress {
                                    // The destination is this pod: resolve on it.
                                    if let Some(p) = resolve_named(pod, name, port.protocol) {
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
                                    let candidates: Vec<u32> = match &identities {
                                        Some(ids) => ids.clone(),
                                        None => (1..self.identity_count()).collect(),
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
                }
            }
            doors[usize::from(dir)] = door;
        }
        let planned = PlannedEndpoint {
            id: endpoint,
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            interface: pod.host_interface.clone(),
            ips: pod.ips.clone(),
            flags: if audit { abi::EP_AUDIT } else { 0 },
            doors,
        };
        (planned, policy_entries, range_entries)
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

fn is_local(pod: &Pod, options: &PlanOptions) -> bool {
    !pod.host_network
        && !pod.ips.is_empty()
        && options.node.as_ref().is_none_or(|n| pod.node.as_ref() == Some(n))
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
            let sig = with_labels(&ns_labels, &pod.namespace, |l| index.signature_of(pod, l));
            let id = index.intern(sig);
            for ip in &pod.ips {
                // hostNetwork pods share their node's address: the first one's identity wins.
                ipcache.entry(*ip).or_insert(id);
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

        let rules: Vec<RuleInfo> = ir
            .rules()
            .map(|(p, d, r)| RuleInfo {
                id: r.id.clone(),
                source: format!("{}:{}", r.span.file, r.span.line),
                policy: format!("{}/{}", p.namespace, p.name),
                direction: d,
            })
            .collect();

        let mut plan =
            Plan { rules, identity_count: index.identity_count(), ipcache, cidrs, ..Plan::default() };
        for pod in inventory.pods.iter().filter(|p| is_local(p, options)) {
            let id = u32::try_from(plan.endpoints.len() + 1).expect("fewer than 2^32 endpoints");
            let (endpoint, policy, ranges) = index.endpoint(ir, pod, id, options.audit);
            plan.endpoints.push(endpoint);
            plan.policy.extend(policy);
            plan.ranges.extend(ranges);
        }
        plan.index = index;
        plan
    }

    /// When `new` differs from `old` (the inventory this plan was built from, with the same IR)
    /// only by added pods whose identities already exist, the map writes that add them in place
    /// (apply them to this plan with [`Plan::extend`]): no other entry changes meaning, so nothing
    /// needs a new generation. `None` otherwise (removed or changed pods, new identities, other
    /// namespaces, an address changing hands): build and apply a whole new generation instead.
    #[must_use]
    pub fn added_pods(
        &self,
        ir: &Ir,
        old: &Inventory,
        new: &Inventory,
        options: &PlanOptions,
    ) -> Option<Delta> {
        if old.namespaces != new.namespaces {
            return None;
        }
        let before: HashMap<(&str, &str), &Pod> =
            old.pods.iter().map(|p| ((p.namespace.as_str(), p.name.as_str()), p)).collect();
        let mut kept = 0usize;
        let mut added = Vec::new();
        for pod in &new.pods {
            match before.get(&(pod.namespace.as_str(), pod.name.as_str())) {
                Some(was) if *was == pod => kept += 1,
                Some(_) => return None,
                None => added.push(pod),
            }
        }
        if kept != old.pods.len() {
            return None;
        }
        let ns_labels = namespace_labels(new);
        let mut delta = Delta::default();
        let mut next_endpoint = self.endpoints.iter().map(|e| e.id).max().unwrap_or(0) + 1;
        for pod in added {
            if pod.ips.is_empty() {
                continue;
            }
            let sig = with_labels(&ns_labels, &pod.namespace, |l| self.index.signature_of(pod, l));
            let id = *self.index.ids.get(&sig)?;
            for ip in &pod.ips {
                if self.ipcache.contains_key(ip) || delta.ipcache.iter().any(|(a, _)| a == ip) {
                    return None;
                }
                delta.ipcache.push((*ip, id));
            }
            if is_local(pod, options) {
                let (planned, policy, ranges) = self.index.endpoint(ir, pod, next_endpoint, options.audit);
                next_endpoint += 1;
                delta.policy.extend(policy);
                delta.ranges.extend(ranges);
                delta.endpoints.push(planned);
            }
        }
        Some(delta)
    }

    /// Add a [`Delta`] from [`Plan::added_pods`] to this plan.
    pub fn extend(&mut self, delta: &Delta) {
        self.ipcache.extend(delta.ipcache.iter().copied());
        self.endpoints.extend(delta.endpoints.iter().cloned());
        self.policy.extend(delta.policy.iter().copied());
        self.ranges.extend(delta.ranges.iter().copied());
    }

    /// Policy and range entries of one endpoint.
    #[must_use]
    pub fn entries_of(&self, endpoint: u32) -> usize {
        self.policy.keys().filter(|e| e.endpoint == endpoint).count()
            + self.ranges.keys().filter(|r| r.entry.endpoint == endpoint).count()
    }

    /// The rule at `index`, if it is one (not `RULE_NONE`, `RULE_OPEN`, ...).
    #[must_use]
    pub fn rule(&self, index: u32) -> Option<&RuleInfo> {
        self.rules.get(usize::try_from(index).ok()?)
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
    use netc_ir::{Door, DoorState, NamedPort, Policy, Port, Rule, Span};

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
            PolicyEntry { endpoint: be.id, direction: abi::INGRESS, identity: fe, protocol: 6, port: 8080 };
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
            PolicyEntry { endpoint: ep.id, direction: abi::EGRESS, identity: outer, protocol: 0, port: 0 };
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
            endpoint: web.id,
            direction: abi::INGRESS,
            identity: client,
            protocol: 6,
            port: 80
        }));
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
        let c = plan.endpoints.iter().find(|e| e.name == "c").expect("client").id;
        let w = plan.endpoints.iter().find(|e| e.name == "w").expect("web").id;
        let has = |endpoint, direction, identity, port| {
            plan.policy.contains_key(&PolicyEntry { endpoint, direction, identity, protocol: 6, port })
        };
        assert!(has(c, abi::EGRESS, id_w, 8080));
        assert!(has(c, abi::EGRESS, id_w2, 9090));
        assert!(!has(c, abi::EGRESS, id_w, 9090));
        assert!(has(w, abi::INGRESS, abi::IDENTITY_ANY, 8080));
    }

    #[test]
    fn replicas_are_added_in_place_and_other_changes_are_not() {
        let ir = ir(vec![policy(
            "default",
            "backend",
            guarded(vec![rule("r1", vec![app("frontend")], vec![tcp(8080)])]),
            Door::open(),
        )]);
        let old = inventory(vec![
            pod("default", "fe-1", "frontend", "10.0.0.1"),
            pod("default", "be-1", "backend", "10.0.0.3"),
        ]);
        let options = PlanOptions::default();
        let plan = Plan::build(&ir, &old, &options);
        let mut new = old.clone();
        new.pods.push(pod("default", "be-2", "backend", "10.0.0.4"));
        new.pods.push(pod("default", "fe-2", "frontend", "10.0.0.2"));
        let delta = plan.added_pods(&ir, &old, &new, &options).expect("replicas add in place");
        let mut added = plan.clone();
        added.extend(&delta);
        let fe = plan.ipcache[&"10.0.0.1".parse::<IpAddr>().expect("ip")];
        assert!(delta.ipcache.contains(&("10.0.0.2".parse().expect("ip"), fe)));
        assert_eq!(delta.endpoints.len(), 2);
        let be2 = delta.endpoints.iter().find(|e| e.name == "be-2").expect("be-2");
        assert_eq!(be2.doors[usize::from(abi::INGRESS)], abi::DOOR_GUARDED);
        let entry =
            PolicyEntry { endpoint: be2.id, direction: abi::INGRESS, identity: fe, protocol: 6, port: 8080 };
        assert_eq!(delta.policy, vec![(entry, 0)]);
        assert_eq!(added.policy.len(), 2);
        assert_eq!(added.ipcache.len(), 4);
        // The same as building from scratch, up to endpoint numbering.
        let rebuilt = Plan::build(&ir, &new, &options);
        assert_eq!(rebuilt.ipcache, added.ipcache);
        assert_eq!(rebuilt.policy.len(), added.policy.len());

        // A new kind of pod (a new identity), a removal, a relabel: a new generation instead.
        let mut other = old.clone();
        other.pods.push(pod("default", "db", "database", "10.0.0.9"));
        assert!(plan.added_pods(&ir, &old, &other, &options).is_some(), "database shares the world identity");
        let mut other = old.clone();
        let mut fresh = pod("default", "x", "frontend", "10.0.0.5");
        fresh.labels.insert("tier".into(), "a".into());
        other.pods.push(fresh);
        assert!(plan.added_pods(&ir, &old, &other, &options).is_some(), "tier is named by no rule");
        let mut removed = old.clone();
        removed.pods.pop();
        assert!(plan.added_pods(&ir, &old, &removed, &options).is_none());
        let mut relabeled = old.clone();
        relabeled.pods[0].labels.insert("app".into(), "backend".into());
        assert!(plan.added_pods(&ir, &old, &relabeled, &options).is_none());
        let mut reused = old.clone();
        reused.pods.push(pod("default", "fe-3", "frontend", "10.0.0.3"));
        assert!(plan.added_pods(&ir, &old, &reused, &options).is_none(), "an address changing hands");
        let block = Peer::IpBlock { cidr: "10.0.0.0/24".parse().expect("cidr"), except: vec![] };
        let by_block = ir_with_block(block);
        let plan = Plan::build(&by_block, &old, &options);
        let mut outside = old.clone();
        outside.pods.push(pod("default", "far", "frontend", "10.1.0.1"));
        assert!(
            plan.added_pods(&by_block, &old, &outside, &options).is_none(),
            "outside the block: a new identity"
        );
    }

    /// Rules naming frontend pods and a block: a frontend outside the block is a new identity.
    fn ir_with_block(block: Peer) -> Ir {
        ir(vec![policy(
            "default",
            "backend",
            guarded(vec![rule("r1", vec![block, app("frontend")], vec![])]),
            Door::open(),
        )])
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
        let options = PlanOptions { node: Some("n1".into()), audit: true };
        let plan = Plan::build(&Ir::empty(), &inv, &options);
        assert_eq!(plan.endpoints.len(), 1);
        assert_eq!(plan.endpoints[0].flags, abi::EP_AUDIT);
        assert_eq!(plan.endpoints[0].doors, [0, 0]);
    }
}
