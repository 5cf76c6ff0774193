//! `assert` statements checked on the pods of a given cluster (`--cluster`), beside the proof for
//! every possible pod.
//!
//! Each claim of an assertion (see [`super::assertions`]) is judged by the reference evaluator
//! (`netc_ir::eval`) on every flow between the cluster's ends that the claim is about: its pods
//! (hostNetwork pods left out, as the proof leaves them out: NetworkPolicy does not apply to
//! them), its `ExternalAddress` objects, and, where an end is an address block or `anywhere`, one
//! address of every range the program's and the assertion's blocks cut that no pod holds (every
//! address of a range is judged alike). Ports are cut the same way, by the program's port ranges
//! and the destination pod's named ports, so one port per range decides it. A dual-stack pair is
//! judged over each family both ends have. A pod's traffic to itself is left out, as in the proof,
//! and so are flows between two outside addresses (no pod of the cluster takes part: the proof
//! judges them).
//!
//! The result is exact for the cluster: a claim fails here iff some flow between its ends breaks
//! it. The first such flow per assertion is reported, with the pods' names.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use netc_ir::eval::{Endpoint, Evaluator, Family, Flow};
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{Direction, Inventory, Ir, Namespace, Peer, Pod, Port, PortValue, Protocol};

use super::assertions::{AssertError, Origin, claims_of, door_because, flow_because};
use super::flows::{Claim, Counterexample, EndSet, Witness, address_atoms, port_atoms};
use super::pods::PodSet;
use crate::check::{AssertDecl, Loc};

/// One end of a flow on the cluster: a pod (over the families it may use for this end; `None`:
/// any), or an address no pod holds.
#[derive(Debug, Clone, Copy)]
enum Member<'a> {
    Pod(&'a Pod, Option<Family>),
    Address(IpAddr),
}

/// The cluster, with what the check needs of it at hand.
#[derive(Debug)]
struct Cluster<'a> {
    inventory: &'a Inventory,
    namespaces: BTreeMap<&'a str, Namespace>,
    /// Every address a pod holds.
    taken: BTreeSet<IpAddr>,
    /// The ranges the program's and the assertions' address blocks cut the address space into.
    ranges: Vec<(bool, u128, u128)>,
    /// Where the program's and the assertions' port ranges start and end, per protocol.
    port_ranges: BTreeMap<Protocol, BTreeSet<(u16, u16)>>,
}

impl<'a> Cluster<'a> {
    fn new(ir: &Ir, inventory: &'a Inventory, claims: &[Claim]) -> Cluster<'a> {
        let mut namespaces: BTreeMap<&str, Namespace> =
            inventory.namespaces.iter().map(|n| (n.name.as_str(), n.clone())).collect();
        for p in &inventory.pods {
            namespaces.entry(p.namespace.as_str()).or_insert_with(|| Namespace {
                name: p.namespace.clone(),
                labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), p.namespace.clone())]),
            });
        }
        let taken = inventory.pods.iter().flat_map(|p| p.ips.iter().copied()).collect();
        let mut nets = BTreeSet::new();
        let mut port_ranges: BTreeMap<Protocol, BTreeSet<(u16, u16)>> = BTreeMap::new();
        let mut ports = |list: &[Port]| {
            for p in list {
                if let Some(PortValue::Number(n)) = p.port {
                    port_ranges.entry(p.protocol).or_default().insert((n, p.end_port.unwrap_or(n)));
                }
            }
        };
        for p in &ir.policies {
            for d in Direction::BOTH {
                for r in &p.door(d).rules {
                    ports(&r.ports);
                    for peer in &r.peers {
                        if let Peer::IpBlock { cidr, except } = peer {
                            nets.insert(*cidr);
                            nets.extend(except.iter().copied());
                        }
                    }
                }
            }
        }
        for c in claims {
            if let Claim::Reach { from, to, ports: list } | Claim::Never { from, to, ports: list } = c {
                ports(list);
                for end in [from, to] {
                    if let EndSet::Addrs(blocks) = end {
                        for (net, except) in blocks {
                            nets.insert(*net);
                            nets.extend(except.iter().copied());
                        }
                    }
                }
            }
        }
        Cluster { inventory, namespaces, taken, ranges: address_atoms(&nets), port_ranges }
    }

    fn namespace(&self, pod: &Pod) -> &Namespace {
        &self.namespaces[pod.namespace.as_str()]
    }

    /// The pods of `set` (hostNetwork pods are not subject to NetworkPolicy, and left out).
    fn pods_of(&self, set: &PodSet) -> Vec<&'a Pod> {
        self.inventory
            .pods
            .iter()
            .filter(|p| {
                !p.host_network
                    && set.namespaces.matches(&self.namespace(p).labels)
                    && set.pods.matches(&p.labels)
            })
            .collect()
    }

    /// One address of each range inside `blocks` that no pod holds (the cluster's external
    /// addresses first, where they fall in the range).
    fn addresses_in(&self, blocks: Option<&[(IpNet, Vec<IpNet>)]>) -> Vec<IpAddr> {
        let inside = |a: IpAddr| {
            blocks
                .is_none_or(|b| b.iter().any(|(net, except)| netc_ir::eval::ip_block_matches(net, except, a)))
        };
        let mut out: Vec<IpAddr> =
            self.inventory.externals.iter().map(|e| e.address).filter(|a| inside(*a)).collect();
        for &(v6, lo, hi) in &self.ranges {
            let of = |x: u128| -> IpAddr {
                if v6 {
                    IpAddr::V6(x.into())
                } else {
                    IpAddr::V4(u32::try_from(x).unwrap_or(u32::MAX).into())
                }
            };
            if !inside(of(lo)) || out.iter().any(|a| in_range(*a, (v6, lo, hi))) {
                continue;
            }
            // A few candidates, then give up: a range held entirely by pods is judged through them.
            let free = (0..64u128)
                .map(|i| lo.saturating_add(i))
                .filter(|x| *x <= hi)
                .map(of)
                .find(|a| !self.taken.contains(a));
            out.extend(free);
        }
        out
    }

    /// The ends of the cluster `end` stands for, pods that the evaluator cannot tell apart kept
    /// twice at most (see [`Cluster::alike`]).
    fn members(&self, end: &EndSet) -> Vec<Member<'a>> {
        let mut seen: std::collections::HashMap<Signature<'a>, u8> = std::collections::HashMap::new();
        self.all_members(end)
            .into_iter()
            .filter(|m| match m {
                Member::Pod(p, family) => {
                    let n = seen.entry(self.alike(p, *family)).or_default();
                    *n += 1;
                    *n <= 2
                }
                Member::Address(_) => true,
            })
            .collect()
    }

    /// What the evaluator sees of a pod: its namespace, labels and named ports, and which ranges
    /// of the address space (cut by every block the program and the claims mention) its
    /// addresses fall in. Pods alike are judged alike in every flow (hostNetwork pods, whose node
    /// matters, are left out), so a claim needs two of each (two, for the flows between two pods
    /// alike: a pod's traffic to itself is not judged).
    fn alike(&self, p: &'a Pod, family: Option<Family>) -> Signature<'a> {
        let mut ranges: Vec<usize> =
            p.ips.iter().filter_map(|a| self.ranges.iter().position(|r| in_range(*a, *r))).collect();
        ranges.sort_unstable();
        (family, &p.namespace, &p.labels, &p.ports, ranges)
    }

    fn all_members(&self, end: &EndSet) -> Vec<Member<'a>> {
        match end {
            EndSet::Pods(set) => self.pods_of(set).into_iter().map(|p| Member::Pod(p, None)).collect(),
            EndSet::Addrs(blocks) => {
                let mut out = Vec::new();
                for p in self.inventory.pods.iter().filter(|p| !p.host_network) {
                    for family in Family::BOTH {
                        let held = p.ips.iter().any(|a| {
                            Family::of(*a) == family
                                && blocks
                                    .iter()
                                    .any(|(net, except)| netc_ir::eval::ip_block_matches(net, except, *a))
                        });
                        if held {
                            out.push(Member::Pod(p, Some(family)));
                        }
                    }
                }
                out.extend(self.addresses_in(Some(blocks)).into_iter().map(Member::Address));
                out
            }
            EndSet::Anywhere => self
                .inventory
                .pods
                .iter()
                .filter(|p| !p.host_network)
                .map(|p| Member::Pod(p, None))
                .chain(self.addresses_in(None).into_iter().map(Member::Address))
                .collect(),
        }
    }

    /// One (protocol, port) of every port range of `ports` (empty: all) towards `dst`, cut by the
    /// program's port ranges and `dst`'s named ports.
    fn probes(&self, ports: &[Port], dst: &Member<'_>) -> Vec<(Protocol, u16)> {
        let named: &[netc_ir::NamedPort] = match dst {
            Member::Pod(p, _) => &p.ports,
            Member::Address(_) => &[],
        };
        let mut cuts = self.port_ranges.clone();
        for n in named {
            cuts.entry(n.protocol).or_default().insert((n.port, n.port));
        }
        let mut out = Vec::new();
        for (protocol, lo, hi) in port_atoms(&cuts) {
            let wanted = ports.is_empty()
                || ports.iter().any(|p| {
                    p.protocol == protocol
                        && match &p.port {
                            None => true,
                            Some(PortValue::Number(n)) => *n <= lo && hi <= p.end_port.unwrap_or(*n),
                            Some(PortValue::Name(name)) => {
                                lo == hi
                                    && named.iter().any(|np| {
                                        np.name == *name && np.protocol == protocol && np.port == lo
                                    })
                            }
                        }
                });
            if wanted {
                out.push((protocol, lo));
            }
        }
        out
    }
}

/// See [`Cluster::alike`].
type Signature<'a> =
    (Option<Family>, &'a String, &'a BTreeMap<String, String>, &'a Vec<netc_ir::NamedPort>, Vec<usize>);

fn in_range(a: IpAddr, (v6, lo, hi): (bool, u128, u128)) -> bool {
    let (is_v6, x) = match a {
        IpAddr::V4(v) => (false, u128::from(u32::from(v))),
        IpAddr::V6(v) => (true, u128::from(v)),
    };
    is_v6 == v6 && lo <= x && x <= hi
}

fn endpoint<'a>(m: &Member<'a>) -> Endpoint<'a> {
    match m {
        Member::Pod(p, _) => Endpoint::Pod(p),
        Member::Address(a) => Endpoint::External(*a),
    }
}

/// The families a flow between two members uses.
fn families(src: &Member<'_>, dst: &Member<'_>) -> Vec<Family> {
    let only = |m: &Member<'_>| match m {
        Member::Pod(_, f) => *f,
        Member::Address(_) => None,
    };
    Flow::families(&endpoint(src), &endpoint(dst))
        .into_iter()
        .filter(|f| only(src).is_none_or(|o| o == *f) && only(dst).is_none_or(|o| o == *f))
        .collect()
}

fn same_pod(a: &Member<'_>, b: &Member<'_>) -> bool {
    matches!((a, b), (Member::Pod(x, _), Member::Pod(y, _)) if std::ptr::eq(*x, *y))
}

/// How `netc explain` names an end of a flow over `family`: `ns/pod`, or an address (the pod's
/// of that family when the pod has another address that explain would pick first).
fn explain_name(m: &Member<'_>, family: Family, first: Family) -> String {
    match m {
        Member::Pod(p, _) if family == first => format!("{}/{}", p.namespace, p.name),
        Member::Pod(p, _) => p
            .ips
            .iter()
            .find(|a| Family::of(**a) == family)
            .map_or_else(|| format!("{}/{}", p.namespace, p.name), ToString::to_string),
        Member::Address(a) => a.to_string(),
    }
}

fn explain_args(src: &Member<'_>, dst: &Member<'_>, family: Family, protocol: Protocol, port: u16) -> String {
    let first = Flow::families(&endpoint(src), &endpoint(dst))[0];
    let to = explain_name(dst, family, first);
    let to = if to.parse::<std::net::Ipv6Addr>().is_ok() { format!("[{to}]") } else { to };
    let protocol = protocol.to_string().to_ascii_lowercase();
    format!("--from {} --to {to}:{port}/{protocol}", explain_name(src, family, first))
}

impl Cluster<'_> {
    fn witness(&self, m: &Member<'_>, family: Family) -> Witness {
        match m {
            Member::Pod(p, _) => {
                let mut pod = (*p).clone();
                // The address the flow uses first, so that the message shows it.
                pod.ips.sort_by_key(|a| Family::of(*a) != family);
                Witness::Pod(Box::new(pod), self.namespace(p).clone())
            }
            Member::Address(a) => Witness::External(*a),
        }
    }
}

/// A flow (or a pod, for a door claim) of the cluster that breaks a claim.
#[derive(Debug, Clone)]
pub struct Breach {
    /// The two ends, named (for a door claim, the pod at both ends).
    pub counterexample: Counterexample,
    /// The family the flow was judged over.
    pub family: Family,
    /// `--from ... --to ...` for `netc explain` (`None` for a door claim).
    pub explain: Option<String>,
    /// The statements the evaluator names (rules that allow, guards that refuse or guard).
    pub because: Vec<Loc>,
}

/// Decides claims on the pods of one cluster.
#[derive(Debug)]
pub struct OnCluster<'a> {
    cluster: Cluster<'a>,
    evaluator: Evaluator<'a>,
}

impl<'a> OnCluster<'a> {
    /// Ready to decide `claims` (every claim later decided must be among them: their address
    /// blocks and ports cut the ranges judged) for `ir` on `inventory`.
    #[must_use]
    pub fn new(ir: &'a Ir, inventory: &'a Inventory, claims: &[Claim]) -> OnCluster<'a> {
        OnCluster { cluster: Cluster::new(ir, inventory, claims), evaluator: Evaluator::new(ir, inventory) }
    }

    /// `None` when the claim holds on every flow (or pod) of the cluster it is about; otherwise
    /// the first one that breaks it. `file_of` maps a source file name to its index (for
    /// [`Breach::because`]).
    #[must_use]
    pub fn decide(&self, claim: &Claim, file_of: &dyn Fn(&str) -> Option<usize>) -> Option<Breach> {
        let cluster = &self.cluster;
        match claim {
            Claim::Reach { from, to, ports } | Claim::Never { from, to, ports } => {
                self.first_breaking_flow(from, to, ports, matches!(claim, Claim::Never { .. }), file_of)
            }
            Claim::Guarded { pods, direction } | Claim::Open { pods, direction } => {
                let guarded_claim = matches!(claim, Claim::Guarded { .. });
                cluster.pods_of(pods).into_iter().find_map(|pod| {
                    let (guarded, because) = door_because(&self.evaluator, pod, *direction, file_of);
                    (guarded != guarded_claim).then(|| {
                        let w = cluster.witness(&Member::Pod(pod, None), Family::V4);
                        let counterexample =
                            Counterexample { src: w.clone(), dst: w, protocol: Protocol::Tcp, port: 0 };
                        Breach { counterexample, family: Family::V4, explain: None, because }
                    })
                })
            }
        }
    }

    fn first_breaking_flow(
        &self,
        from: &EndSet,
        to: &EndSet,
        ports: &[Port],
        never: bool,
        file_of: &dyn Fn(&str) -> Option<usize>,
    ) -> Option<Breach> {
        let cluster = &self.cluster;
        let sources = cluster.members(from);
        for dst in &cluster.members(to) {
            let probes = cluster.probes(ports, dst);
            for src in &sources {
                if same_pod(src, dst) || matches!((src, dst), (Member::Address(_), Member::Address(_))) {
                    // A pod's traffic to itself is outside NetworkPolicy; a flow between two
                    // outside addresses does not involve the cluster (the proof judges it).
                    continue;
                }
                for family in families(src, dst) {
                    for &(protocol, port) in &probes {
                        let flow = Flow { src: endpoint(src), dst: endpoint(dst), protocol, port, family };
                        let v = self.evaluator.evaluate(&flow);
                        if v.allowed == never {
                            return Some(Breach {
                                counterexample: Counterexample {
                                    src: cluster.witness(src, family),
                                    dst: cluster.witness(dst, family),
                                    protocol,
                                    port,
                                },
                                family,
                                explain: Some(explain_args(src, dst, family, protocol, port)),
                                because: flow_because(self.evaluator.ir(), &v, never, file_of),
                            });
                        }
                    }
                }
            }
        }
        None
    }
}

/// Check every assertion on the pods of `inventory`; `file_of` maps a source file name to its
/// index. One failure per assertion, the first flow (or pod) found that breaks it. `pod_cidrs`
/// is the bound the proof was given (`--pod-cidr`): every pod is judged, but a breach by a pod
/// outside it says so (the proof did not consider that pod).
#[must_use]
pub fn check(
    assertions: &[AssertDecl],
    ir: &Ir,
    inventory: &Inventory,
    pod_cidrs: &[IpNet],
    file_of: &dyn Fn(&str) -> Option<usize>,
) -> Vec<AssertError> {
    let (all, just_claims) = claims_of(assertions);
    if all.is_empty() {
        return Vec::new();
    }
    let on = OnCluster::new(ir, inventory, &just_claims);
    let mut errors: Vec<AssertError> = Vec::new();
    for (i, claim, text, door) in &all {
        if errors.iter().any(|e| e.at == assertions[*i].at) {
            continue; // one failure per assertion
        }
        if let Some(b) = on.decide(claim, file_of) {
            let unbounded = if pod_cidrs.is_empty() {
                Vec::new()
            } else {
                [&b.counterexample.src, &b.counterexample.dst]
                    .into_iter()
                    .filter_map(|w| match w {
                        Witness::Pod(p, _)
                            if !p.ips.is_empty()
                                && !p.ips.iter().any(|a| pod_cidrs.iter().any(|n| n.contains(a))) =>
                        {
                            Some(format!("{}/{}", p.namespace, p.name))
                        }
                        _ => None,
                    })
                    .collect()
            };
            errors.push(AssertError {
                at: assertions[*i].at,
                claim: text.clone(),
                counterexample: b.counterexample,
                door: *door,
                confirmed: true,
                because: b.because,
                origin: Origin::Cluster { explain: b.explain, outside_pod_cidrs: unbounded },
            });
        }
    }
    errors
}
