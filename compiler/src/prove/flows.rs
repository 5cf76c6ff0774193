//! What a compiled program allows, for every possible pod: the IR as cubes, and claims about
//! flows decided on them with a concrete counterexample.
//!
//! A flow is a point of a finite space. Its dimensions: for each end, whether it is a pod or an
//! outside address; its namespace's labels and its own labels, one dimension per label key, whose
//! values are those the program and the claims mention, plus "another value" and "absent" (a
//! selector cannot tell two unmentioned values apart, so these suffice); its address, cut into the
//! ranges the program's address blocks delimit; the protocol and destination port, cut into the
//! ranges the program's ports delimit; and for each named port, whether the destination pod gives
//! that name to the flow's port. Every selector, peer and port list is then a cube or a union of
//! cubes, and a claim is decided by [`super::cube::find_outside`].
//!
//! Two ends in one namespace share its labels: the space is built twice, once with one set of
//! namespace dimensions for both ends (same namespace) and once with two (different namespaces,
//! where a point naming the same namespace at both ends is split away).
//!
//! Left out, as Kubernetes' own e2e tests leave them out: a pod's traffic to itself, traffic from a
//! pod's own node, and hostNetwork pods (they are not subject to NetworkPolicy).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use netc_ir::eval::{Endpoint, Evaluator, Flow};
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{Direction, Inventory, Ir, NamedPort, Namespace, Peer, Pod, Port, PortValue, Protocol};

use super::cube::{Bits, Cube, CubeIndex, Dim, find_outside};
use super::labels::{Conj, KeyTest};
use super::pods::PodSet;

/// One end of a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSet {
    /// Pods.
    Pods(PodSet),
    /// Addresses (outside the cluster or pods' own): blocks with their exceptions.
    Addrs(Vec<(IpNet, Vec<IpNet>)>),
    /// Every pod and every address.
    Anywhere,
}

/// What is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Every `from` may open a connection to every `to` on every one of `ports` (empty: every
    /// port of every protocol).
    Reach {
        /// Sources.
        from: EndSet,
        /// Destinations.
        to: EndSet,
        /// Ports; empty means all.
        ports: Vec<Port>,
    },
    /// No `from` may open a connection to any `to` on any of `ports` (empty: any port).
    Never {
        /// Sources.
        from: EndSet,
        /// Destinations.
        to: EndSet,
        /// Ports; empty means all.
        ports: Vec<Port>,
    },
    /// No pod of the set has this door guarded.
    Open {
        /// The pods.
        pods: PodSet,
        /// The door.
        direction: Direction,
    },
    /// Every pod of the set has this door guarded.
    Guarded {
        /// The pods.
        pods: PodSet,
        /// The door.
        direction: Direction,
    },
}

/// One end of a counterexample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Witness {
    /// A pod, and its namespace.
    Pod(Box<Pod>, Namespace),
    /// An address outside the cluster.
    External(IpAddr),
}

/// A flow that breaks a claim (for [`Claim::Guarded`], `dst` is the pod whose door is open and
/// `src` an arbitrary other end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The sender.
    pub src: Witness,
    /// The receiver (with its named ports).
    pub dst: Witness,
    /// The protocol.
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
}

impl Counterexample {
    /// The two ends as a cluster, for the evaluators.
    #[must_use]
    pub fn inventory(&self) -> Inventory {
        let mut inv = Inventory::default();
        for w in [&self.src, &self.dst] {
            if let Witness::Pod(p, ns) = w {
                if !inv.namespaces.iter().any(|n| n.name == ns.name) {
                    inv.namespaces.push(ns.clone());
                }
                inv.pods.push((**p).clone());
            }
        }
        inv.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        inv.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        inv
    }

    /// Whether `netc_ir::eval` allows the flow.
    #[must_use]
    pub fn allowed_by(&self, ir: &Ir) -> bool {
        let inv = self.inventory();
        let pick = |w: &Witness| match w {
            Witness::Pod(p, _) => {
                Endpoint::Pod(inv.pod(&p.namespace, &p.name).expect("put in the inventory above"))
            }
            Witness::External(a) => Endpoint::External(*a),
        };
        let (src, dst) = (pick(&self.src), pick(&self.dst));
        Evaluator::new(ir, &inv).evaluate(&Flow::new(src, dst, self.protocol, self.port)).allowed
    }
}

const POD: u32 = 0;
const EXTERNAL: u32 = 1;
const YES: u32 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Role {
    Src,
    Dst,
}

/// What the program and the claims mention: the finite vocabulary of the space.
#[derive(Default)]
struct Vocabulary {
    values: BTreeMap<String, BTreeSet<String>>,
    nets: BTreeSet<IpNet>,
    ports: BTreeMap<Protocol, BTreeSet<(u16, u16)>>,
    names: BTreeSet<(String, Protocol)>,
    /// Where pods' addresses lie (`--pod-cidr`); empty: anywhere.
    pod_cidrs: Vec<IpNet>,
}

impl Vocabulary {
    fn conj(&mut self, c: &Conj) {
        for (k, t) in &c.keys {
            self.values.entry(k.clone()).or_default().extend(t.values.mentioned().iter().cloned());
        }
    }

    fn pods(&mut self, p: &PodSet) {
        self.conj(&p.namespaces);
        self.conj(&p.pods);
    }

    fn end(&mut self, e: &EndSet) {
        match e {
            EndSet::Pods(p) => self.pods(p),
            EndSet::Addrs(blocks) => {
                for (net, except) in blocks {
                    self.nets.insert(*net);
                    self.nets.extend(except.iter().copied());
                }
            }
            EndSet::Anywhere => {}
        }
    }

    fn port_list(&mut self, ports: &[Port]) {
        for p in ports {
            match &p.port {
                None => {}
                Some(PortValue::Number(n)) => {
                    self.ports.entry(p.protocol).or_default().insert((*n, p.end_port.unwrap_or(*n)));
                }
                Some(PortValue::Name(name)) => {
                    self.names.insert((name.clone(), p.protocol));
                }
            }
        }
    }

    fn ir(&mut self, ir: &Ir) {
        for p in &ir.policies {
            self.pods(&PodSet::in_namespace(&p.namespace, &p.selector));
            for d in Direction::BOTH {
                for r in &p.door(d).rules {
                    self.port_list(&r.ports);
                    for peer in &r.peers {
                        match peer {
                            Peer::IpBlock { cidr, except } => {
                                self.nets.insert(*cidr);
                                self.nets.extend(except.iter().copied());
                            }
                            Peer::Pods { .. } => {
                                self.pods(&PodSet::of_peer(peer, &p.namespace).expect("a pod peer"));
                            }
                        }
                    }
                }
            }
        }
    }

    fn claim(&mut self, c: &Claim) {
        match c {
            Claim::Reach { from, to, ports } | Claim::Never { from, to, ports } => {
                self.end(from);
                self.end(to);
                self.port_list(ports);
            }
            Claim::Guarded { pods, .. } | Claim::Open { pods, .. } => self.pods(pods),
        }
    }
}

/// The space of flows, in one of its two layouts.
#[derive(Debug)]
struct Space {
    sizes: Vec<u32>,
    /// (role, namespace labels?, key) -> dimension.
    labels: HashMap<(Role, bool, String), Dim>,
    /// The same, by key: `[pod src, pod dst, namespace src, namespace dst]`.
    key_dims: HashMap<String, [Dim; 4]>,
    values: HashMap<String, Vec<String>>,
    kind: [Dim; 2],
    addr: [Dim; 2],
    port: Dim,
    named: BTreeMap<(String, Protocol), Dim>,
    /// (IPv6?, first, last) of each address range.
    addr_atoms: Vec<(bool, u128, u128)>,
    /// (protocol, first, last) of each port range.
    port_atoms: Vec<(Protocol, u16, u16)>,
    /// The address ranges a pod may have (`--pod-cidr`); `None`: any address.
    pod_addrs: Option<Bits>,
}

fn role_index(r: Role) -> usize {
    match r {
        Role::Src => 0,
        Role::Dst => 1,
    }
}

impl Space {
    fn new(v: &Vocabulary, same_namespace: bool) -> Space {
        let mut sizes = Vec::new();
        let mut dim = |n: u32| {
            sizes.push(n);
            Dim::try_from(sizes.len() - 1).unwrap_or(Dim::MAX)
        };
        let mut labels = HashMap::new();
        let mut key_dims = HashMap::new();
        let mut values = HashMap::new();
        for (k, vals) in &v.values {
            let n = u32::try_from(vals.len()).unwrap_or(u32::MAX - 2) + 2;
            values.insert(k.clone(), vals.iter().cloned().collect::<Vec<_>>());
            for role in [Role::Src, Role::Dst] {
                labels.insert((role, false, k.clone()), dim(n));
            }
            let ns_src = dim(n);
            labels.insert((Role::Src, true, k.clone()), ns_src);
            let ns_dst = if same_namespace { ns_src } else { dim(n) };
            labels.insert((Role::Dst, true, k.clone()), ns_dst);
            key_dims.insert(
                k.clone(),
                [
                    labels[&(Role::Src, false, k.clone())],
                    labels[&(Role::Dst, false, k.clone())],
                    ns_src,
                    ns_dst,
                ],
            );
        }
        let kind = [dim(2), dim(2)];
        let addr_atoms = address_atoms(&v.nets);
        let n_addr = u32::try_from(addr_atoms.len()).unwrap_or(u32::MAX);
        let addr = [dim(n_addr), dim(n_addr)];
        let port_atoms = port_atoms(&v.ports);
        let port = dim(u32::try_from(port_atoms.len()).unwrap_or(u32::MAX));
        let named = v.names.iter().map(|n| (n.clone(), dim(2))).collect();
        let pod_addrs = (!v.pod_cidrs.is_empty()).then(|| {
            let mut b = Bits::empty(n_addr);
            for (i, atom) in addr_atoms.iter().enumerate() {
                if v.pod_cidrs.iter().any(|net| inside(atom, net)) {
                    b.insert(u32::try_from(i).unwrap_or(0));
                }
            }
            b
        });
        Space { sizes, labels, key_dims, values, kind, addr, port, named, addr_atoms, port_atoms, pod_addrs }
    }

    /// `c` as cubes whose pod ends have addresses a pod may have: each end that may be a pod is
    /// split into "an outside address" and "a pod, at an address of the pod CIDRs". Unchanged
    /// without a bound.
    fn bounded(&self, c: Cube) -> Vec<Cube> {
        let Some(pod_addrs) = &self.pod_addrs else { return vec![c] };
        let mut out = vec![c];
        for r in 0..2 {
            let mut next = Vec::new();
            for c in out {
                let kinds = c.get(self.kind[r]).cloned().unwrap_or_else(|| Bits::full(2));
                if kinds.contains(EXTERNAL) {
                    let mut e = c.clone();
                    if e.restrict(self.kind[r], &self.one(self.kind[r], EXTERNAL), &self.sizes) {
                        next.push(e);
                    }
                }
                if kinds.contains(POD) {
                    let mut p = c;
                    if p.restrict(self.kind[r], &self.one(self.kind[r], POD), &self.sizes)
                        && p.restrict(self.addr[r], pod_addrs, &self.sizes)
                    {
                        next.push(p);
                    }
                }
            }
            out = next;
        }
        out
    }

    fn key_bits(&self, key: &str, test: &KeyTest) -> Bits {
        let vals = &self.values[key];
        let n = u32::try_from(vals.len()).unwrap_or(0);
        let mut b = Bits::empty(n + 2);
        if test.absent {
            b.insert(n + 1);
        }
        // `vals` is sorted (it comes from a BTreeSet): look up only the values the test writes
        // out, not every value of the key.
        let index = |v: &String| vals.binary_search(v).ok().and_then(|i| u32::try_from(i).ok());
        match &test.values {
            super::labels::Values::Only(only) => {
                for i in only.iter().filter_map(index) {
                    b.insert(i);
                }
            }
            super::labels::Values::AllBut(but) => {
                for i in 0..=n {
                    b.insert(i);
                }
                let mut out = Bits::empty(n + 2);
                for i in but.iter().filter_map(index) {
                    out.insert(i);
                }
                b = b.and_not(&out);
            }
        }
        b
    }

    fn conj(&self, cube: &mut Cube, role: Role, namespace: bool, c: &Conj) -> bool {
        for (k, t) in &c.keys {
            let d = self.key_dims[k.as_str()][usize::from(namespace) * 2 + role_index(role)];
            if !cube.restrict(d, &self.key_bits(k, t), &self.sizes) {
                return false;
            }
        }
        true
    }

    fn one(&self, d: Dim, value: u32) -> Bits {
        let mut b = Bits::empty(self.sizes[d as usize]);
        b.insert(value);
        b
    }

    fn pods(&self, role: Role, p: &PodSet) -> Option<Cube> {
        let mut c = Cube::full();
        let r = role_index(role);
        (c.restrict(self.kind[r], &self.one(self.kind[r], POD), &self.sizes)
            && self.conj(&mut c, role, true, &p.namespaces)
            && self.conj(&mut c, role, false, &p.pods))
        .then_some(c)
    }

    fn addr_bits(&self, blocks: &[(IpNet, Vec<IpNet>)]) -> Bits {
        let mut b = Bits::empty(u32::try_from(self.addr_atoms.len()).unwrap_or(0));
        for (i, atom) in self.addr_atoms.iter().enumerate() {
            if blocks.iter().any(|(net, except)| inside(atom, net) && !except.iter().any(|e| inside(atom, e)))
            {
                b.insert(u32::try_from(i).unwrap_or(0));
            }
        }
        b
    }

    fn addrs(&self, role: Role, blocks: &[(IpNet, Vec<IpNet>)]) -> Option<Cube> {
        let mut c = Cube::full();
        c.restrict(self.addr[role_index(role)], &self.addr_bits(blocks), &self.sizes).then_some(c)
    }

    fn end(&self, role: Role, e: &EndSet) -> Vec<Cube> {
        match e {
            EndSet::Pods(p) => self.pods(role, p).into_iter().collect(),
            EndSet::Addrs(blocks) => self.addrs(role, blocks).into_iter().collect(),
            EndSet::Anywhere => vec![Cube::full()],
        }
    }

    fn peer(&self, role: Role, peer: &Peer, namespace: &str) -> Option<Cube> {
        match peer {
            Peer::Pods { .. } => self.pods(role, &PodSet::of_peer(peer, namespace)?),
            Peer::IpBlock { cidr, except } => self.addrs(role, &[(*cidr, except.clone())]),
        }
    }

    /// The ports as cubes: numbers and whole protocols in one, each named port in its own.
    fn ports(&self, ports: &[Port]) -> Vec<Cube> {
        if ports.is_empty() {
            return vec![Cube::full()];
        }
        let n = u32::try_from(self.port_atoms.len()).unwrap_or(0);
        let mut numbers = Bits::empty(n);
        let mut any_number = false;
        let mut out = Vec::new();
        for p in ports {
            match &p.port {
                Some(PortValue::Name(name)) => {
                    let mut c = Cube::full();
                    let d = self.named[&(name.clone(), p.protocol)];
                    c.restrict(d, &self.one(d, YES), &self.sizes);
                    c.restrict(self.kind[1], &self.one(self.kind[1], POD), &self.sizes);
                    if c.restrict(self.port, &self.port_bits(p.protocol, 1, u16::MAX), &self.sizes) {
                        out.push(c);
                    }
                }
                Some(PortValue::Number(lo)) => {
                    any_number = true;
                    numbers = or(&numbers, &self.port_bits(p.protocol, *lo, p.end_port.unwrap_or(*lo)));
                }
                None => {
                    any_number = true;
                    numbers = or(&numbers, &self.port_bits(p.protocol, 1, u16::MAX));
                }
            }
        }
        if any_number {
            let mut c = Cube::full();
            if c.restrict(self.port, &numbers, &self.sizes) {
                out.push(c);
            }
        }
        out
    }

    fn port_bits(&self, protocol: Protocol, lo: u16, hi: u16) -> Bits {
        let mut b = Bits::empty(u32::try_from(self.port_atoms.len()).unwrap_or(0));
        for (i, (p, a, z)) in self.port_atoms.iter().enumerate() {
            if *p == protocol && *a >= lo && *z <= hi {
                b.insert(u32::try_from(i).unwrap_or(0));
            }
        }
        b
    }
}

fn or(a: &Bits, b: &Bits) -> Bits {
    // a | b = not(not a and not b), through the operations Bits has.
    let mut out = a.clone();
    for i in b.iter() {
        out.insert(i);
    }
    out
}

fn net_range(net: &IpNet) -> (bool, u128, u128) {
    match net {
        IpNet::V4(n) => (false, u128::from(u32::from(n.network())), u128::from(u32::from(n.broadcast()))),
        IpNet::V6(n) => (true, u128::from(n.network()), u128::from(n.broadcast())),
    }
}

fn inside(atom: &(bool, u128, u128), net: &IpNet) -> bool {
    let (v6, lo, hi) = net_range(net);
    atom.0 == v6 && atom.1 >= lo && atom.2 <= hi
}

/// The ranges every block's first and last address cut IPv4 and IPv6 into.
pub(super) fn address_atoms(nets: &BTreeSet<IpNet>) -> Vec<(bool, u128, u128)> {
    let mut out = Vec::new();
    for (v6, max) in [(false, u128::from(u32::MAX)), (true, u128::MAX)] {
        let mut cuts: BTreeSet<u128> = BTreeSet::from([0]);
        for n in nets {
            let (f, lo, hi) = net_range(n);
            if f == v6 {
                cuts.insert(lo);
                if hi < max {
                    cuts.insert(hi + 1);
                }
            }
        }
        let cuts: Vec<u128> = cuts.into_iter().collect();
        for (i, lo) in cuts.iter().enumerate() {
            let hi = cuts.get(i + 1).map_or(max, |next| next - 1);
            out.push((v6, *lo, hi));
        }
    }
    out
}

/// The ranges every port range cuts 1..=65535 into, per protocol.
pub(super) fn port_atoms(ports: &BTreeMap<Protocol, BTreeSet<(u16, u16)>>) -> Vec<(Protocol, u16, u16)> {
    let mut out = Vec::new();
    for protocol in Protocol::ALL {
        let mut cuts: BTreeSet<u32> = BTreeSet::from([1]);
        for (lo, hi) in ports.get(&protocol).into_iter().flatten() {
            cuts.insert(u32::from(*lo));
            cuts.insert(u32::from(*hi) + 1);
        }
        let cuts: Vec<u32> = cuts.into_iter().filter(|c| *c <= 65_535).collect();
        for (i, lo) in cuts.iter().enumerate() {
            let hi = cuts.get(i + 1).map_or(65_535, |next| next - 1);
            out.push((
                protocol,
                u16::try_from(*lo).unwrap_or(u16::MAX),
                u16::try_from(hi).unwrap_or(u16::MAX),
            ));
        }
    }
    out
}

/// The program as cubes in one layout of the space.
#[derive(Debug)]
struct Encoded {
    space: Space,
    same_namespace: bool,
    /// Pods whose ingress a policy guards.
    ingress_guards: CubeIndex,
    /// Flows an ingress rule lets in (the policy's pods as destination, the peer as source).
    ingress_rules: CubeIndex,
    egress_guards: CubeIndex,
    egress_rules: CubeIndex,
}

impl Encoded {
    fn new(ir: &Ir, v: &Vocabulary, same_namespace: bool) -> Encoded {
        let space = Space::new(v, same_namespace);
        let (mut ingress_guards, mut ingress_rules) = (Vec::new(), Vec::new());
        let (mut egress_guards, mut egress_rules) = (Vec::new(), Vec::new());
        for p in &ir.policies {
            let set = PodSet::in_namespace(&p.namespace, &p.selector);
            for (direction, own, other) in
                [(Direction::Ingress, Role::Dst, Role::Src), (Direction::Egress, Role::Src, Role::Dst)]
            {
                let door = p.door(direction);
                if !door.is_guarded() {
                    continue;
                }
                let Some(selected) = space.pods(own, &set) else { continue };
                let mut rules = Vec::new();
                for r in &door.rules {
                    let peers: Vec<Cube> = if r.peers.is_empty() {
                        vec![Cube::full()]
                    } else {
                        r.peers.iter().filter_map(|peer| space.peer(other, peer, &p.namespace)).collect()
                    };
                    for peer in &peers {
                        for port in space.ports(&r.ports) {
                            if let Some(c) = selected.meet(peer).and_then(|c| c.meet(&port)) {
                                rules.push(c);
                            }
                        }
                    }
                }
                match direction {
                    Direction::Ingress => {
                        ingress_guards.push(selected);
                        ingress_rules.extend(rules);
                    }
                    Direction::Egress => {
                        egress_guards.push(selected);
                        egress_rules.extend(rules);
                    }
                }
            }
        }
        let index = |cubes| CubeIndex::new(cubes, &space.sizes);
        let (ingress_guards, ingress_rules) = (index(ingress_guards), index(ingress_rules));
        let (egress_guards, egress_rules) = (index(egress_guards), index(egress_rules));
        Encoded { space, same_namespace, ingress_guards, ingress_rules, egress_guards, egress_rules }
    }

    /// The flows from `from` to `to` on `ports`, as cubes.
    fn query(&self, from: &EndSet, to: &EndSet, ports: &[Port]) -> Vec<Cube> {
        let s = &self.space;
        let mut out = Vec::new();
        for a in s.end(Role::Src, from) {
            for b in s.end(Role::Dst, to) {
                for p in s.ports(ports) {
                    if let Some(mut c) = a.meet(&b).and_then(|c| c.meet(&p)) {
                        if self.same_namespace {
                            // Both ends are pods of one namespace.
                            let ok = c.restrict(s.kind[0], &s.one(s.kind[0], POD), &s.sizes)
                                && c.restrict(s.kind[1], &s.one(s.kind[1], POD), &s.sizes);
                            if !ok {
                                continue;
                            }
                        }
                        out.extend(s.bounded(c));
                    }
                }
            }
        }
        out
    }

    /// A point of `cube` outside `union` that is a real flow: in the layout of different
    /// namespaces, not one naming the same namespace at both ends.
    fn outside(&self, cube: &Cube, union: &[&Cube]) -> Option<Cube> {
        let found = find_outside(cube, union, &self.space.sizes)?;
        if self.same_namespace {
            return Some(found);
        }
        let Some(&name_src) = self.space.labels.get(&(Role::Src, true, NAMESPACE_NAME_LABEL.to_owned()))
        else {
            return Some(found);
        };
        let name_dst = self.space.labels[&(Role::Dst, true, NAMESPACE_NAME_LABEL.to_owned())];
        let pods = |c: &Cube| {
            c.get(self.space.kind[0]).is_some_and(|b| !b.contains(EXTERNAL))
                && c.get(self.space.kind[1]).is_some_and(|b| !b.contains(EXTERNAL))
        };
        let mentioned = u32::try_from(self.space.values[NAMESPACE_NAME_LABEL].len()).unwrap_or(0);
        let single = |c: &Cube, d: Dim| {
            c.get(d).and_then(|b| {
                let mut it = b.iter();
                let first = it.next()?;
                it.next().is_none().then_some(first)
            })
        };
        match (single(&found, name_src), single(&found, name_dst)) {
            (Some(a), Some(b)) if a == b && a < mentioned && pods(&found) => {
                // Only the same namespace at both ends: look again without that name at one end.
                let n = self.space.sizes[name_src as usize];
                let mut not_a = Bits::full(n);
                not_a = not_a.and_not(&self.space.one(name_src, a));
                let mut left = cube.clone();
                if left.restrict(name_src, &not_a, &self.space.sizes)
                    && let Some(f) = self.outside(&left, union)
                {
                    return Some(f);
                }
                let mut right = cube.clone();
                (right.restrict(name_src, &self.space.one(name_src, a), &self.space.sizes)
                    && right.restrict(name_dst, &not_a, &self.space.sizes))
                .then(|| self.outside(&right, union))
                .flatten()
            }
            _ => Some(found),
        }
    }

    fn decide(&self, claim: &Claim) -> Option<Cube> {
        // Only the guards and rules that meet a query can matter to it (every cube the search
        // looks at lies inside the query): each list is narrowed through its index first, in
        // its order, so the search is the same as over the whole list.
        let near = |q: &Cube| {
            (
                self.ingress_guards.meeting(q),
                self.egress_guards.meeting(q),
                self.ingress_rules.meeting(q),
                self.egress_rules.meeting(q),
            )
        };
        match claim {
            Claim::Reach { from, to, ports } => {
                for q in self.query(from, to, ports) {
                    let (ig, eg, ir, er) = near(&q);
                    for (guards, rules) in [(&ig, &ir), (&eg, &er)] {
                        for g in guards {
                            if let Some(x) = q.meet(g)
                                && let Some(found) = self.outside(&x, rules)
                            {
                                return Some(found);
                            }
                        }
                    }
                }
                None
            }
            Claim::Never { from, to, ports } => {
                for q in self.query(from, to, ports) {
                    let (ig, eg, ir, er) = near(&q);
                    let guards: Vec<&Cube> = ig.iter().chain(eg.iter()).copied().collect();
                    if let Some(found) = self.outside(&q, &guards) {
                        return Some(found);
                    }
                    for r in &ir {
                        let Some(x) = q.meet(r) else { continue };
                        if let Some(found) = self.outside(&x, &eg) {
                            return Some(found);
                        }
                        for e in &er {
                            if let Some(y) = x.meet(e)
                                && let Some(found) = self.outside(&y, &[])
                            {
                                return Some(found);
                            }
                        }
                    }
                    for e in &er {
                        if let Some(x) = q.meet(e)
                            && let Some(found) = self.outside(&x, &ig)
                        {
                            return Some(found);
                        }
                    }
                }
                None
            }
            Claim::Open { pods, direction } => {
                let (role, guards) = match direction {
                    Direction::Ingress => (Role::Dst, &self.ingress_guards),
                    Direction::Egress => (Role::Src, &self.egress_guards),
                };
                let q = self.space.pods(role, pods)?;
                self.space.bounded(q).iter().find_map(|q| {
                    guards.meeting(q).iter().find_map(|g| q.meet(g).and_then(|x| self.outside(&x, &[])))
                })
            }
            Claim::Guarded { pods, direction } => {
                let (role, guards) = match direction {
                    Direction::Ingress => (Role::Dst, &self.ingress_guards),
                    Direction::Egress => (Role::Src, &self.egress_guards),
                };
                let mut q = self.space.pods(role, pods)?;
                // The other end is any pod: only the guarded end matters.
                let other = 1 - role_index(role);
                q.restrict(
                    self.space.kind[other],
                    &self.space.one(self.space.kind[other], POD),
                    &self.space.sizes,
                );
                self.space.bounded(q).iter().find_map(|q| self.outside(q, &guards.meeting(q)))
            }
        }
    }

    fn witness(&self, c: &Cube, role: Role, avoid: Option<&Witness>) -> Witness {
        let s = &self.space;
        let r = role_index(role);
        let pick = |d: Dim| c.get(d).cloned().unwrap_or_else(|| Bits::full(s.sizes[d as usize]));
        let addr = self.address(&pick(s.addr[r]), role, avoid);
        if !pick(s.kind[r]).contains(POD) {
            return Witness::External(addr);
        }
        let mut labels = BTreeMap::new();
        let mut ns_labels = BTreeMap::new();
        for ((rl, is_ns, key), d) in &s.labels {
            let ns = is_ns;
            if *rl != role {
                continue;
            }
            let vals = &s.values[key];
            let n = u32::try_from(vals.len()).unwrap_or(0);
            let b = pick(*d);
            let avoid_name = match avoid {
                Some(Witness::Pod(_, other))
                    if *ns && key == NAMESPACE_NAME_LABEL && !self.same_namespace =>
                {
                    Some(other.name.as_str())
                }
                _ => None,
            };
            let value = if b.contains(n + 1) && !(*ns && key == NAMESPACE_NAME_LABEL) {
                None
            } else if let Some(i) =
                b.iter().find(|i| *i < n && Some(vals[*i as usize].as_str()) != avoid_name)
            {
                Some(vals[i as usize].clone())
            } else if b.contains(n) {
                Some(fresh(key, vals, *ns && key == NAMESPACE_NAME_LABEL, avoid))
            } else {
                None
            };
            if let Some(v) = value {
                if *ns {
                    ns_labels.insert(key.clone(), v)
                } else {
                    labels.insert(key.clone(), v)
                };
            }
        }
        let name = ns_labels
            .get(NAMESPACE_NAME_LABEL)
            .cloned()
            .unwrap_or_else(|| fresh(NAMESPACE_NAME_LABEL, &[], true, avoid));
        if self.same_namespace
            && let Some(Witness::Pod(_, ns)) = avoid
        {
            // One namespace for both ends: the source's, labels and all.
            ns_labels.clone_from(&ns.labels);
        }
        let name = if self.same_namespace {
            match avoid {
                Some(Witness::Pod(_, ns)) => ns.name.clone(),
                _ => name,
            }
        } else {
            name
        };
        ns_labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
        let mut ports = Vec::new();
        if role == Role::Dst {
            let (protocol, port) = self.port(c);
            for ((port_name, p), d) in &s.named {
                if !pick(*d).contains(1 - YES) && *p == protocol {
                    ports.push(NamedPort { name: port_name.clone(), port, protocol });
                }
            }
        }
        let pod = Box::new(Pod {
            namespace: name.clone(),
            name: match role {
                Role::Src => "source".to_owned(),
                Role::Dst => "destination".to_owned(),
            },
            labels,
            ips: vec![addr],
            ports,
            node: None,
            host_interface: None,
            host_network: false,
        });
        Witness::Pod(pod, Namespace { name, labels: ns_labels })
    }

    fn address(&self, b: &Bits, role: Role, avoid: Option<&Witness>) -> IpAddr {
        let preferred: &[&str] = match role {
            Role::Src => &["10.244.1.10", "192.0.2.10", "10.0.0.10", "fd00:10:244:1::10"],
            Role::Dst => &["10.244.2.20", "198.51.100.20", "10.0.0.20", "fd00:10:244:2::20"],
        };
        let taken = match avoid {
            Some(Witness::Pod(p, _)) => p.ips.first().copied(),
            Some(Witness::External(a)) => Some(*a),
            None => None,
        };
        let in_atom = |a: &IpAddr, atom: &(bool, u128, u128)| {
            let (v6, x) = match a {
                IpAddr::V4(v) => (false, u128::from(u32::from(*v))),
                IpAddr::V6(v) => (true, u128::from(*v)),
            };
            atom.0 == v6 && atom.1 <= x && x <= atom.2
        };
        for p in preferred {
            let a: IpAddr = p.parse().expect("a literal address");
            if Some(a) != taken && b.iter().any(|i| in_atom(&a, &self.space.addr_atoms[i as usize])) {
                return a;
            }
        }
        for i in b.iter() {
            let (v6, lo, hi) = self.space.addr_atoms[i as usize];
            for x in [10, 20, 1, 0].map(|d| lo.saturating_add(d).min(hi)).into_iter().chain([hi]) {
                let a = if v6 {
                    IpAddr::V6(x.into())
                } else {
                    IpAddr::V4(u32::try_from(x).unwrap_or(u32::MAX).into())
                };
                if Some(a) != taken {
                    return a;
                }
            }
        }
        IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 99))
    }

    fn port(&self, c: &Cube) -> (Protocol, u16) {
        let b = c
            .get(self.space.port)
            .cloned()
            .unwrap_or_else(|| Bits::full(self.space.sizes[self.space.port as usize]));
        let i = b.iter().next().unwrap_or(0);
        let (p, lo, _) = self.space.port_atoms[i as usize];
        (p, lo)
    }

    fn counterexample(&self, c: &Cube) -> Counterexample {
        let src = self.witness(c, Role::Src, None);
        let dst = self.witness(c, Role::Dst, Some(&src));
        let (protocol, port) = self.port(c);
        Counterexample { src, dst, protocol, port }
    }
}

/// A value of `key` that none of `mentioned` is.
fn fresh(key: &str, mentioned: &[String], namespace: bool, avoid: Option<&Witness>) -> String {
    let taken = match avoid {
        Some(Witness::Pod(p, ns)) => {
            if namespace {
                Some(ns.name.clone())
            } else {
                p.labels.get(key).cloned()
            }
        }
        _ => None,
    };
    let base = if namespace { "other-namespace" } else { "other" };
    (0..)
        .map(|i| if i == 0 { base.to_owned() } else { format!("{base}-{i}") })
        .find(|v| !mentioned.contains(v) && Some(v) != taken.as_ref())
        .expect("an unbounded supply of names")
}

/// Decides claims about one program, for every possible pod.
#[derive(Debug)]
pub struct Prover<'ir> {
    ir: &'ir Ir,
    layouts: Vec<Encoded>,
}

impl<'ir> Prover<'ir> {
    /// Encode `ir` with the vocabulary of `claims` (every claim later decided must be among them).
    #[must_use]
    pub fn new(ir: &'ir Ir, claims: &[Claim]) -> Prover<'ir> {
        Prover::bounded(ir, claims, &[])
    }

    /// [`Prover::new`], for pods whose addresses lie in `pod_cidrs` (`--pod-cidr`; empty: any
    /// address). Outside addresses stay unbounded.
    #[must_use]
    pub fn bounded(ir: &'ir Ir, claims: &[Claim], pod_cidrs: &[IpNet]) -> Prover<'ir> {
        let mut v = Vocabulary { pod_cidrs: pod_cidrs.to_vec(), ..Vocabulary::default() };
        v.nets.extend(pod_cidrs.iter().copied());
        v.values.entry(NAMESPACE_NAME_LABEL.to_owned()).or_default();
        v.ir(ir);
        for c in claims {
            v.claim(c);
        }
        // The two layouts are independent: encoded on two cores when there are.
        let v = &v;
        let layouts = crate::par::map_in_order(vec![true, false], 1, |same| Encoded::new(ir, v, same));
        Prover { ir, layouts }
    }

    /// `None` when the claim holds for every possible pod; otherwise a flow that breaks it.
    #[must_use]
    pub fn decide(&self, claim: &Claim) -> Option<Counterexample> {
        for e in &self.layouts {
            if let Some(c) = e.decide(claim) {
                return Some(e.counterexample(&c));
            }
        }
        None
    }

    /// The program decided.
    #[must_use]
    pub fn ir(&self) -> &'ir Ir {
        self.ir
    }
}

impl Witness {
    /// A pod of a given cluster, by name: `` pod `shop/web-7` labelled {app=web} at 10.244.1.7 ``
    /// (its namespace's labels when it has any beside its name, its first address, and its named
    /// port for `protocol`/`port` if it has one).
    #[must_use]
    pub fn real(&self, protocol: Protocol, port: u16) -> String {
        match self {
            Witness::External(a) => format!("the address {a}"),
            Witness::Pod(p, ns) => {
                let mut out = format!("pod `{}/{}`", p.namespace, p.name);
                let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if labels.is_empty() {
                    out.push_str(" with no labels");
                } else {
                    out.push_str(&format!(" labelled {{{}}}", labels.join(", ")));
                }
                let ns_labels = namespace_labels(ns);
                if !ns_labels.is_empty() {
                    out.push_str(&format!(" (namespace labelled {{{ns_labels}}})"));
                }
                match p.ips.first() {
                    Some(ip) => out.push_str(&format!(" at {ip}")),
                    None => out.push_str(" (no address yet)"),
                }
                for named in p.ports.iter().filter(|n| n.port == port && n.protocol == protocol) {
                    out.push_str(&format!(", port `{}` = {}/{}", named.name, named.port, named.protocol));
                }
                out
            }
        }
    }
}

/// A namespace's labels as `k=v, k=v`, without the name label every namespace has.
fn namespace_labels(ns: &Namespace) -> String {
    let labels: Vec<String> = ns
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != NAMESPACE_NAME_LABEL)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.join(", ")
}

impl std::fmt::Display for Witness {
    /// `pod shop/source {app=web} in namespace shop {team=x}, 10.244.1.10, port metrics=9090/TCP`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Witness::External(a) => write!(f, "the outside address {a}"),
            Witness::Pod(p, ns) => {
                let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if labels.is_empty() {
                    write!(f, "a pod with no labels in namespace `{}`", ns.name)?;
                } else {
                    write!(f, "a pod labelled {{{}}} in namespace `{}`", labels.join(", "), ns.name)?;
                }
                let ns_labels = namespace_labels(ns);
                if !ns_labels.is_empty() {
                    write!(f, " (labelled {{{ns_labels}}})")?;
                }
                if let Some(ip) = p.ips.first() {
                    write!(f, " at {ip}")?;
                }
                for port in &p.ports {
                    write!(f, ", port `{}` = {}/{}", port.name, port.port, port.protocol)?;
                }
                Ok(())
            }
        }
    }
}
