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
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Signature {
    pods: Vec<usize>,
    blocks: Vec<usize>,
    named: Vec<Option<u16>>,
}

struct Peers {
    matchers: Vec<PodMatcher>,
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
        Peers {
            matchers: matchers.into_iter().collect(),
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

impl Plan {
    /// Build the plan of `ir` over `inventory`.
    #[must_use]
    pub fn build(ir: &Ir, inventory: &Inventory, options: &PlanOptions) -> Plan {
        let peers = Peers::collect(ir);
        let ns_labels: HashMap<&str, &BTreeMap<String, String>> =
            inventory.namespaces.iter().map(|n| (n.name.as_str(), &n.labels)).collect();
        let implied_labels = |ns: &str| BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), ns.to_owned())]);

        // Identities: the world first (the empty signature), then in inventory order.
        let world = Signature { pods: vec![], blocks: vec![], named: vec![None; peers.egress_names.len()] };
        let mut ids: HashMap<Signature, u32> = HashMap::from([(world, abi::IDENTITY_WORLD)]);
        let mut signatures: Vec<Signature> = Vec::new(); // index = identity - 1
        signatures.push(Signature {
            pods: vec![],
            blocks: vec![],
            named: vec![None; peers.egress_names.len()],
        });
        let mut intern = |sig: Signature, signatures: &mut Vec<Signature>| -> u32 {
            if let Some(id) = ids.get(&sig) {
                return *id;
            }
            let id = u32::try_from(signatures.len() + 1).expect("fewer than 2^32 identities");
            signatures.push(sig.clone());
            ids.insert(sig, id);
            id
        };

        let mut ipcache = BTreeMap::new();
        let mut pod_identity: Vec<Option<u32>> = Vec::with_capacity(inventory.pods.len());
        for pod in &inventory.pods {
            if pod.ips.is_empty() {
                pod_identity.push(None);
                continue;
            }
            let owned;
            let labels = match ns_labels.get(pod.namespace.as_str()) {
                Some(l) => *l,
                None => {
                    owned = implied_labels(&pod.namespace);
                    &owned
                }
            };
            // hostNetwork pods are not selected by pod selectors (NetworkPolicy does not apply
            // to them), only by address.
            let pods = peers
                .matchers
                .iter()
                .enumerate()
                .filter(|(_, m)| !pod.host_network && matcher_matches(m, pod, labels))
                .map(|(i, _)| i)
                .collect();
            let blocks = peers
                .blocks
                .iter()
                .enumerate()
                .filter(|(_, (c, e))| pod.ips.iter().any(|ip| block_contains(c, e, *ip)))
                .map(|(i, _)| i)
                .collect();
            let named = peers.egress_names.iter().map(|(n, p)| resolve_named(pod, n, *p)).collect();
            let id = intern(Signature { pods, blocks, named }, &mut signatures);
            for ip in &pod.ips {
                // hostNetwork pods share their node's address: the first one's identity wins.
                ipcache.entry(*ip).or_insert(id);
            }
            pod_identity.push((!pod.host_network).then_some(id));
        }

        let mut prefixes = BTreeSet::new();
        for (cidr, except) in &peers.blocks {
            prefixes.insert(*cidr);
            prefixes.extend(except.iter().copied());
        }
        let mut cidrs = BTreeMap::new();
        for prefix in prefixes {
            let blocks = peers
                .blocks
                .iter()
                .enumerate()
                .filter(|(_, (c, e))| block_covers_prefix(c, e, &prefix))
                .map(|(i, _)| i)
                .collect();
            let sig = Signature { pods: vec![], blocks, named: vec![None; peers.egress_names.len()] };
            cidrs.insert(prefix, intern(sig, &mut signatures));
        }

        // Which identities each peer (matcher or block) covers.
        let mut by_matcher = vec![Vec::new(); peers.matchers.len()];
        let mut by_block = vec![Vec::new(); peers.blocks.len()];
        for (index, sig) in signatures.iter().enumerate() {
            let id = u32::try_from(index + 1).expect("fewer than 2^32 identities");
            for m in &sig.pods {
                by_matcher[*m].push(id);
            }
            for b in &sig.blocks {
                by_block[*b].push(id);
            }
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

        let mut plan = Plan {
            rules,
            identity_count: u32::try_from(signatures.len() + 1).expect("fewer than 2^32 identities"),
            ipcache,
            cidrs,
            ..Plan::default()
        };

        // Index of each door's first rule in `ir.rules()` order (ingress before egress).
        let mut first_rule = Vec::with_capacity(ir.policies.len());
        let mut next = 0u32;
        for policy in &ir.policies {
            let mut at = [0u32; 2];
            for direction in Direction::BOTH {
                at[usize::from(direction_byte(direction))] = next;
                next += u32::try_from(policy.door(direction).rules.len()).expect("fewer than 2^32 rules");
            }
            first_rule.push(at);
        }

        let local = inventory.pods.iter().zip(&pod_identity).filter(|(pod, id)| {
            id.is_some() && options.node.as_ref().is_none_or(|n| pod.node.as_ref() == Some(n))
        });
        for (pod, _) in local {
            let endpoint = u32::try_from(plan.endpoints.len() + 1).expect("fewer than 2^32 endpoints");
            let mut doors = [0u16; 2];
            for direction in Direction::BOTH {
                let dir = direction_byte(direction);
                let mut door = 0u16;
                for (policy, first) in ir.policies.iter().zip(&first_rule) {
                    let selected = policy.namespace == pod.namespace && policy.selector.matches(&pod.labels);
                    let rules = &policy.door(direction).rules;
                    if !(selected && policy.door(direction).is_guarded()) {
                        continue;
                    }
                    door |= abi::DOOR_GUARDED;
                    for (rule_index, rule) in (first[usize::from(dir)]..).zip(rules) {
                        let identities: Option<Vec<u32>> = if rule.peers.is_empty() {
                            None
                        } else {
                            let mut set = BTreeSet::new();
                            for peer in &rule.peers {
                                let covered = match peer {
                                    Peer::Pods { .. } => {
                                        peers.matcher_index(&policy.namespace, peer).map(|i| &by_matcher[i])
                                    }
                                    Peer::IpBlock { cidr, except } => {
                                        peers.block_index(cidr, except).map(|i| &by_block[i])
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
                            plan.policy.entry(entry).or_insert(rule_index);
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
                                                plan.ranges
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
                                        let slot = peers
                                            .egress_names
                                            .iter()
                                            .position(|(n, p)| n == name && *p == port.protocol);
                                        let candidates: Vec<u32> = match &identities {
                                            Some(ids) => ids.clone(),
                                            None => (1..=plan.identity_count - 1).collect(),
                                        };
                                        for id in candidates {
                                            let index = usize::try_from(id - 1).expect("u32 fits usize");
                                            let resolved = slot.and_then(|s| signatures[index].named[s]);
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
            plan.endpoints.push(PlannedEndpoint {
                id: endpoint,
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                interface: pod.host_interface.clone(),
                ips: pod.ips.clone(),
                flags: if options.audit { abi::EP_AUDIT } else { 0 },
                doors,
            });
        }
        plan
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
