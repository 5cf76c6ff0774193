//! Who can talk to whom: all-pairs connectivity of a cluster under an IR, per probe port.
//!
//! [`Matrix::compute`] gives, for every ordered pair of endpoints (the inventory's pods, then its
//! external addresses), the set of [`Probe`]s (protocol + destination port) that
//! [`netc_ir::eval::Evaluator`] would allow, without calling it per flow: it precomputes each pod's
//! guarding policies per door, each rule's peers as a bitset over endpoints and its ports as a
//! bitset over probes, shares the work between pods whose doors are guarded by the same policies,
//! and ANDs one egress row with one ingress column per pair. The differential tests check it
//! against `evaluate()` flow by flow.
//!
//! The semantics are exactly the evaluator's (see [`netc_ir::eval`]): hostNetwork pods have open
//! doors and are matched by ipBlock only, and let into every pod of their own node; pods are matched by ipBlocks on any of their addresses;
//! named ports resolve on the destination pod. A pair of two external addresses has no door of
//! ours and is allowed, like in the evaluator; the renderings leave such pairs out.
//!
//! ```
//! use netc::analysis::matrix::Matrix;
//! let (ir, inventory) = (netc_ir::Ir::empty(), netc_ir::Inventory::default());
//! let probes = Matrix::default_probes(&ir, &inventory);
//! let matrix = Matrix::compute(&ir, &inventory, &probes);
//! assert!(matrix.endpoints.is_empty());
//! assert_eq!(probes.len(), 1, "just `TCP/other`");
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};

use netc_ir::eval::ip_block_matches;
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{Direction, Inventory, Ir, LabelSelector, NamedPort, Peer, Policy, PortValue, Protocol, Rule};
use serde::Serialize;

/// One (protocol, destination port) the matrix asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Probe {
    /// The protocol.
    pub protocol: Protocol,
    /// The destination port tried.
    pub port: u16,
    /// This probe stands for "any port no rule mentions" (`port` is one such port).
    pub other: bool,
}

impl Probe {
    /// A probe of one named port number.
    #[must_use]
    pub fn new(protocol: Protocol, port: u16) -> Probe {
        Probe { protocol, port, other: false }
    }
}

impl fmt::Display for Probe {
    /// `TCP/80`, or `TCP/other` for the stand-in of unmentioned ports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.other {
            write!(f, "{}/other", self.protocol)
        } else {
            write!(f, "{}/{}", self.protocol, self.port)
        }
    }
}

/// What a row or column of the matrix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "index", rename_all = "snake_case")]
pub enum EndpointKind {
    /// `inventory.pods[i]`.
    Pod(usize),
    /// `inventory.externals[i]`.
    External(usize),
}

/// A row or column of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixEndpoint {
    /// `namespace/pod`, or the external address's name.
    pub name: String,
    /// Where it comes from in the inventory.
    #[serde(flatten)]
    pub kind: EndpointKind,
}

/// All-pairs connectivity. `endpoints` are the inventory's pods (in inventory order) then its
/// externals; cells are indexed `(src, dst)` by position in `endpoints`.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The probes, in the order given to [`Matrix::compute`].
    pub probes: Vec<Probe>,
    /// Rows and columns.
    pub endpoints: Vec<MatrixEndpoint>,
    /// Interned probe sets: `sets[0]` is none, `sets[1]` is all.
    sets: Vec<Box<[u64]>>,
    /// `cells[src * n + dst]` indexes `sets`.
    cells: Vec<u32>,
}

/// A growable bitset over endpoints or probes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bits(Vec<u64>);

impl Bits {
    fn zeros(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn ones(len: usize) -> Bits {
        let mut b = Bits::zeros(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn and(&self, other: &Bits) -> Bits {
        Bits(self.0.iter().zip(&other.0).map(|(a, b)| a & b).collect())
    }

    fn or_assign(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    fn ones_iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(w * 64 + b)
            })
        })
    }
}

/// A rule, prepared: who (bits over endpoints) and which probes (static part plus named ports,
/// which depend on the destination pod).
struct PreparedRule {
    peers: Bits,
    ports: Bits,
    /// (name, protocol) of named ports; resolved per destination.
    named: Vec<(String, Protocol)>,
}

/// Everything the matrix needs, computed once.
struct Prepared<'a> {
    inventory: &'a Inventory,
    n: usize,
    probe_words: usize,
    probe_index: HashMap<(Protocol, u16), Vec<usize>>,
    /// Per policy: its ingress and egress rules, prepared.
    rules: Vec<[Vec<PreparedRule>; 2]>,
}

impl Prepared<'_> {
    /// `named` resolved on endpoint `dst` as probe bits, OR'ed into `out`.
    fn add_named(&self, rule: &PreparedRule, dst: usize, out: &mut [u64]) {
        if rule.named.is_empty() || dst >= self.inventory.pods.len() {
            return;
        }
        for p in &self.inventory.pods[dst].ports {
            if rule.named.iter().any(|(name, proto)| *name == p.name && *proto == p.protocol) {
                for &i in self.probe_index.get(&(p.protocol, p.port)).into_iter().flatten() {
                    out[i / 64] |= 1 << (i % 64);
                }
            }
        }
    }
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl Matrix {
    /// The default probes: every port number the IR's rules mention (ports and range ends, per
    /// protocol), the numbers named ports resolve to on the inventory's pods, and one `other`
    /// probe per protocol the rules use (TCP always) at a port nothing mentions or covers.
    /// Sorted by protocol, then port, `other` last.
    #[must_use]
    pub fn default_probes(ir: &Ir, inventory: &Inventory) -> Vec<Probe> {
        let mut numbers: BTreeSet<(Protocol, u16)> = BTreeSet::new();
        let mut ranges: Vec<(Protocol, u16, u16)> = Vec::new();
        let mut protocols: BTreeSet<Protocol> = BTreeSet::from([Protocol::Tcp]);
        for (_, _, rule) in ir.rules() {
            for port in &rule.ports {
                protocols.insert(port.protocol);
                match &port.port {
                    None => {}
                    Some(PortValue::Number(p)) => {
                        numbers.insert((port.protocol, *p));
                        if let Some(end) = port.end_port {
                            numbers.insert((port.protocol, end));
                            ranges.push((port.protocol, *p, end));
                        }
                    }
                    Some(PortValue::Name(name)) => {
                        for pod in &inventory.pods {
                            for np in
                                pod.ports.iter().filter(|np| np.name == *name && np.protocol == port.protocol)
                            {
                                numbers.insert((np.protocol, np.port));
                            }
                        }
                    }
                }
            }
        }
        let named_numbers: BTreeSet<(Protocol, u16)> =
            inventory.pods.iter().flat_map(|p| p.ports.iter().map(|np| (np.protocol, np.port))).collect();
        let mut probes: Vec<Probe> =
            numbers.iter().map(|&(protocol, port)| Probe::new(protocol, port)).collect();
        for protocol in protocols {
            let free = (1..=u16::MAX).find(|&port| {
                !numbers.contains(&(protocol, port))
                    && !named_numbers.contains(&(protocol, port))
                    && !ranges.iter().any(|&(p, a, b)| p == protocol && a <= port && port <= b)
            });
            if let Some(port) = free {
                probes.push(Probe { protocol, port, other: true });
            }
        }
        probes.sort_by_key(|p| (p.protocol, p.other, p.port));
        probes
    }

    /// The connectivity of every ordered pair of endpoints for each of `probes`.
    #[must_use]
    pub fn compute(ir: &Ir, inventory: &Inventory, probes: &[Probe]) -> Matrix {
        let pods = &inventory.pods;
        let n = pods.len() + inventory.externals.len();
        let probe_words = probes.len().div_ceil(64).max(1);
        let mut probe_index: HashMap<(Protocol, u16), Vec<usize>> = HashMap::new();
        for (i, p) in probes.iter().enumerate() {
            probe_index.entry((p.protocol, p.port)).or_default().push(i);
        }
        let mut selectors = Selectors::new(inventory, n);

        // Rules, prepared.
        let rules: Vec<[Vec<PreparedRule>; 2]> = ir
            .policies
            .iter()
            .map(|policy| {
                Direction::BOTH.map(|d| {
                    policy
                        .door(d)
                        .rules
                        .iter()
                        .map(|r| prepare_rule(policy, r, probes, &mut selectors))
                        .collect()
                })
            })
            .collect();
        let prepared = Prepared { inventory, n, probe_words, probe_index, rules };

        // Which policies guard each pod's doors.
        let mut guarding: [Vec<Vec<usize>>; 2] = [vec![Vec::new(); pods.len()], vec![Vec::new(); pods.len()]];
        for (index, policy) in ir.policies.iter().enumerate() {
            let selected = selectors.own_namespace(&policy.namespace).and(&selectors.pods(&policy.selector));
            for pod in selected.ones_iter() {
                for d in Direction::BOTH {
                    if policy.door(d).is_guarded() {
                        guarding[dir_index(d)][pod].push(index);
                    }
                }
            }
        }

        // Egress rows: per distinct set of guarding policies, the probes each destination gets.
        let (egress_class, egress_rows) = egress_rows(&prepared, &guarding[1]);
        // Ingress columns: per distinct (guarding policies, named ports if they matter), the
        // probes each source gets in.
        let (ingress_class, ingress_cols) = ingress_cols(&prepared, &guarding[0]);

        // Assemble: cell = egress(src)[dst] & ingress(dst)[src].
        let mut interner = Interner::new(probes.len(), probe_words);
        let mut cells = vec![0u32; n * n];
        let mut scratch = vec![0u64; probe_words];
        // A pod's own node (its hostNetwork pods) always gets in (DESIGN.md corner 12).
        let node_of = |i: usize| pods.get(i).and_then(|p| p.node.as_deref());
        for src in 0..n {
            let erow = egress_class.get(src).copied().flatten().map(|c| &egress_rows[c]);
            let src_node = node_of(src).filter(|_| pods[src].host_network);
            for dst in 0..n {
                let from_own_node = src_node.is_some() && src_node == node_of(dst);
                let icol = ingress_class
                    .get(dst)
                    .copied()
                    .flatten()
                    .filter(|_| !from_own_node)
                    .map(|c| &ingress_cols[c]);
                for (w, out) in scratch.iter_mut().enumerate() {
                    let e = erow.map_or(u64::MAX, |row| row[dst * probe_words + w]);
                    let i = icol.map_or(u64::MAX, |col| col[src * probe_words + w]);
                    *out = e & i;
                }
                cells[src * n + dst] = interner.intern(&mut scratch);
            }
        }

        let endpoints =
            pods.iter()
                .enumerate()
                .map(|(i, p)| MatrixEndpoint {
                    name: format!("{}/{}", p.namespace, p.name),
                    kind: EndpointKind::Pod(i),
                })
                .chain(
                    inventory.externals.iter().enumerate().map(|(i, e)| MatrixEndpoint {
                        name: e.name.clone(),
                        kind: EndpointKind::External(i),
                    }),
                )
                .collect();
        Matrix { probes: probes.to_vec(), endpoints, sets: interner.sets, cells }
    }

    /// Whether `src` may open a connection to `dst` on `probes[probe]` (indices into
    /// [`Matrix::endpoints`] and [`Matrix::probes`]).
    ///
    /// # Panics
    /// When an index is out of range.
    #[must_use]
    pub fn is_allowed(&self, src: usize, dst: usize, probe: usize) -> bool {
        assert!(probe < self.probes.len(), "probe index {probe} out of range");
        let set = &self.sets[self.cells[src * self.endpoints.len() + dst] as usize];
        set[probe / 64] & (1 << (probe % 64)) != 0
    }

    /// The probes `src` may use to reach `dst`, in probe order.
    ///
    /// # Panics
    /// When an index is out of range.
    pub fn allowed(&self, src: usize, dst: usize) -> impl Iterator<Item = &Probe> + '_ {
        let set = &self.sets[self.cells[src * self.endpoints.len() + dst] as usize];
        self.probes
            .iter()
            .enumerate()
            .filter(move |(i, _)| set[i / 64] & (1 << (i % 64)) != 0)
            .map(|(_, p)| p)
    }

    /// The position of the endpoint called `name` (`namespace/pod` or an external's name).
    #[must_use]
    pub fn endpoint_index(&self, name: &str) -> Option<usize> {
        self.endpoints.iter().position(|e| e.name == name)
    }

    /// How many (src, dst, probe) triples are allowed, leaving out pairs of two externals.
    #[must_use]
    pub fn allowed_count(&self) -> usize {
        let n = self.endpoints.len();
        let counts: Vec<usize> =
            self.sets.iter().map(|s| s.iter().map(|w| w.count_ones() as usize).sum()).collect();
        let mut total = 0;
        for src in 0..n {
            for dst in 0..n {
                if !self.both_external(src, dst) {
                    total += counts[self.cells[src * n + dst] as usize];
                }
            }
        }
        total
    }

    fn both_external(&self, src: usize, dst: usize) -> bool {
        matches!(self.endpoints[src].kind, EndpointKind::External(_))
            && matches!(self.endpoints[dst].kind, EndpointKind::External(_))
    }

    fn cell_text(&self, src: usize, dst: usize) -> String {
        let set = self.cells[src * self.endpoints.len() + dst];
        match set {
            0 => "-".to_owned(),
            1 => "all".to_owned(),
            _ => self.allowed(src, dst).map(ToString::to_string).collect::<Vec<_>>().join(","),
        }
    }

    /// A plain-text grid: one row per source (`[i] name`), one column per destination (`[j]`);
    /// a cell is `all` (every probe), `-` (none) or the allowed probes; `.` for two externals.
    #[must_use]
    pub fn render_text(&self) -> String {
        let n = self.endpoints.len();
        let mut out = String::new();
        let probes: Vec<String> = self.probes.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "probes: {}", probes.join(" "));
        let _ = writeln!(
            out,
            "cells: all = every probe, - = none, otherwise the allowed probes; rows send, columns receive"
        );
        let row_labels: Vec<String> =
            self.endpoints.iter().enumerate().map(|(i, e)| format!("[{}] {}", i + 1, e.name)).collect();
        let mut columns: Vec<Vec<String>> = Vec::with_capacity(n + 1);
        let mut first = vec!["from \\ to".to_owned()];
        first.extend(row_labels);
        columns.push(first);
        for dst in 0..n {
            let mut col = vec![format!("[{}]", dst + 1)];
            col.extend((0..n).map(|src| {
                if self.both_external(src, dst) { ".".to_owned() } else { self.cell_text(src, dst) }
            }));
            columns.push(col);
        }
        let widths: Vec<usize> =
            columns.iter().map(|c| c.iter().map(|s| s.chars().count()).max().unwrap_or(0)).collect();
        for row in 0..=n {
            let mut line = String::new();
            for (c, col) in columns.iter().enumerate() {
                if c > 0 {
                    line.push_str("  ");
                }
                let _ = write!(line, "{:<width$}", col[row], width = widths[c]);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// CSV: `from,to,<probe>...` then one row per pair (pairs of two externals left out), `1` for
    /// allowed and `0` for denied.
    #[must_use]
    pub fn render_csv(&self) -> String {
        let n = self.endpoints.len();
        let mut out = String::from("from,to");
        for p in &self.probes {
            out.push(',');
            out.push_str(&csv_field(&p.to_string()));
        }
        out.push('\n');
        for src in 0..n {
            for dst in 0..n {
                if self.both_external(src, dst) {
                    continue;
                }
                out.push_str(&csv_field(&self.endpoints[src].name));
                out.push(',');
                out.push_str(&csv_field(&self.endpoints[dst].name));
                for probe in 0..self.probes.len() {
                    out.push_str(if self.is_allowed(src, dst, probe) { ",1" } else { ",0" });
                }
                out.push('\n');
            }
        }
        out
    }

    /// JSON: `{"probes": [...], "endpoints": [...], "allowed": [{"from", "to", "probes"}]}`,
    /// listing every pair with at least one allowed probe (pairs of two externals left out);
    /// every other pair is denied on every probe.
    #[must_use]
    pub fn render_json(&self) -> String {
        #[derive(Serialize)]
        struct JsonProbe {
            label: String,
            #[serde(flatten)]
            probe: Probe,
        }
        #[derive(Serialize)]
        struct JsonPair<'a> {
            from: &'a str,
            to: &'a str,
            probes: Vec<String>,
        }
        #[derive(Serialize)]
        struct Json<'a> {
            probes: Vec<JsonProbe>,
            endpoints: &'a [MatrixEndpoint],
            allowed: Vec<JsonPair<'a>>,
        }
        let n = self.endpoints.len();
        let mut allowed = Vec::new();
        for src in 0..n {
            for dst in 0..n {
                if self.both_external(src, dst) || self.cells[src * n + dst] == 0 {
                    continue;
                }
                allowed.push(JsonPair {
                    from: &self.endpoints[src].name,
                    to: &self.endpoints[dst].name,
                    probes: self.allowed(src, dst).map(ToString::to_string).collect(),
                });
            }
        }
        let json = Json {
            probes: self.probes.iter().map(|p| JsonProbe { label: p.to_string(), probe: *p }).collect(),
            endpoints: &self.endpoints,
            allowed,
        };
        let mut s =
            serde_json::to_string_pretty(&json).expect("plain data with string keys always serializes");
        s.push('\n');
        s
    }

    /// How many distinct probe sets the cells use (for tests of the interning).
    #[cfg(test)]
    fn distinct_sets(&self) -> usize {
        self.sets.len()
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// Interns probe sets so a cell is one `u32`: 4M pairs fit in 16 MB whatever the probe count.
struct Interner {
    sets: Vec<Box<[u64]>>,
    index: HashMap<Box<[u64]>, u32>,
    all: Box<[u64]>,
}

impl Interner {
    fn new(probes: usize, words: usize) -> Interner {
        let none: Box<[u64]> = vec![0; words].into();
        let mut all = Bits::ones(probes).0;
        all.resize(words, 0);
        let all: Box<[u64]> = all.into();
        let index = HashMap::from([(none.clone(), 0), (all.clone(), 1)]);
        Interner { sets: vec![none, all.clone()], index, all }
    }

    /// The index of `set`, after clearing the bits past the last probe.
    fn intern(&mut self, set: &mut [u64]) -> u32 {
        for (w, a) in set.iter_mut().zip(self.all.iter()) {
            *w &= a;
        }
        if set.iter().all(|w| *w == 0) {
            return 0;
        }
        if *set == *self.all {
            return 1;
        }
        if let Some(&i) = self.index.get(&*set) {
            return i;
        }
        let i = u32::try_from(self.sets.len()).expect("fewer than 4G distinct probe sets");
        let boxed: Box<[u64]> = set.into();
        self.sets.push(boxed.clone());
        self.index.insert(boxed, i);
        i
    }
}

/// Label-selector results as bitsets over endpoints, cached per distinct selector.
struct Selectors<'a> {
    inventory: &'a Inventory,
    n: usize,
    /// Per namespace name: its pods.
    namespace_pods: HashMap<&'a str, Bits>,
    pod_cache: HashMap<LabelSelector, Bits>,
    namespace_cache: HashMap<LabelSelector, Bits>,
    block_cache: HashMap<Peer, Bits>,
}

impl<'a> Selectors<'a> {
    fn new(inventory: &'a Inventory, n: usize) -> Selectors<'a> {
        let mut namespace_pods: HashMap<&str, Bits> = HashMap::new();
        for (i, pod) in inventory.pods.iter().enumerate() {
            if !pod.host_network {
                namespace_pods.entry(pod.namespace.as_str()).or_insert_with(|| Bits::zeros(n)).set(i);
            }
        }
        Selectors {
            inventory,
            n,
            namespace_pods,
            pod_cache: HashMap::new(),
            namespace_cache: HashMap::new(),
            block_cache: HashMap::new(),
        }
    }

    /// The selectable pods of namespace `name`.
    fn own_namespace(&self, name: &str) -> Bits {
        self.namespace_pods.get(name).cloned().unwrap_or_else(|| Bits::zeros(self.n))
    }

    /// Selectable pods whose labels match `selector` (any namespace).
    fn pods(&mut self, selector: &LabelSelector) -> Bits {
        if let Some(b) = self.pod_cache.get(selector) {
            return b.clone();
        }
        let mut bits = Bits::zeros(self.n);
        for (i, pod) in self.inventory.pods.iter().enumerate() {
            if !pod.host_network && selector.matches(&pod.labels) {
                bits.set(i);
            }
        }
        self.pod_cache.insert(selector.clone(), bits.clone());
        bits
    }

    /// Selectable pods in namespaces whose labels match `selector`. A namespace the inventory
    /// does not describe carries only its name label (as in the evaluator).
    fn namespaces(&mut self, selector: &LabelSelector) -> Bits {
        if let Some(b) = self.namespace_cache.get(selector) {
            return b.clone();
        }
        let mut bits = Bits::zeros(self.n);
        for (name, pods) in &self.namespace_pods {
            let matches = match self.inventory.namespace(name) {
                Some(ns) => selector.matches(&ns.labels),
                None => selector.matches(&[(NAMESPACE_NAME_LABEL.to_owned(), (*name).to_owned())].into()),
            };
            if matches {
                bits.or_assign(pods);
            }
        }
        self.namespace_cache.insert(selector.clone(), bits.clone());
        bits
    }

    /// Endpoints an ipBlock peer matches: pods (any address, hostNetwork included) and externals.
    fn block(&mut self, peer: &Peer) -> Bits {
        let Peer::IpBlock { cidr, except } = peer else { return Bits::zeros(self.n) };
        if let Some(b) = self.block_cache.get(peer) {
            return b.clone();
        }
        let mut bits = Bits::zeros(self.n);
        for (i, pod) in self.inventory.pods.iter().enumerate() {
            if pod.ips.iter().any(|ip| ip_block_matches(cidr, except, *ip)) {
                bits.set(i);
            }
        }
        let offset = self.inventory.pods.len();
        for (i, ext) in self.inventory.externals.iter().enumerate() {
            if ip_block_matches(cidr, except, ext.address) {
                bits.set(offset + i);
            }
        }
        self.block_cache.insert(peer.clone(), bits.clone());
        bits
    }

    fn peer(&mut self, policy: &Policy, peer: &Peer) -> Bits {
        match peer {
            Peer::IpBlock { .. } => self.block(peer),
            Peer::Pods { namespaces, pods } => {
                let in_namespaces = match namespaces {
                    None => self.own_namespace(&policy.namespace),
                    Some(s) => self.namespaces(s),
                };
                match pods {
                    None => in_namespaces,
                    Some(s) => in_namespaces.and(&self.pods(s)),
                }
            }
        }
    }
}

fn prepare_rule(
    policy: &Policy,
    rule: &Rule,
    probes: &[Probe],
    selectors: &mut Selectors<'_>,
) -> PreparedRule {
    let peers = if rule.peers.is_empty() {
        Bits::ones(selectors.n)
    } else {
        let mut bits = Bits::zeros(selectors.n);
        for p in &rule.peers {
            bits.or_assign(&selectors.peer(policy, p));
        }
        bits
    };
    let mut ports = Bits::zeros(probes.len().max(1));
    for (i, probe) in probes.iter().enumerate() {
        if rule.ports.is_empty() || rule.ports.iter().any(|p| p.matches(probe.protocol, probe.port, &[])) {
            ports.set(i);
        }
    }
    let named = rule
        .ports
        .iter()
        .filter_map(|p| match &p.port {
            Some(PortValue::Name(name)) => Some((name.clone(), p.protocol)),
            _ => None,
        })
        .collect();
    PreparedRule { peers, ports, named }
}

/// Per source pod, the class of its egress door (`None`: open or not a pod), and per class the
/// probes each destination may be reached on: `rows[c][dst * words + w]`.
fn egress_rows(prepared: &Prepared<'_>, guarding: &[Vec<usize>]) -> (Vec<Option<usize>>, Vec<Vec<u64>>) {
    let words = prepared.probe_words;
    let mut classes: HashMap<&[usize], usize> = HashMap::new();
    let mut rows: Vec<Vec<u64>> = Vec::new();
    let mut class_of = Vec::with_capacity(guarding.len());
    for (pod, policies) in guarding.iter().enumerate() {
        if policies.is_empty() || prepared.inventory.pods[pod].host_network {
            class_of.push(None);
            continue;
        }
        let next = rows.len();
        let class = *classes.entry(policies.as_slice()).or_insert(next);
        if class == next {
            let mut row = vec![0u64; prepared.n * words];
            for &policy in policies {
                for rule in &prepared.rules[policy][dir_index(Direction::Egress)] {
                    for dst in rule.peers.ones_iter() {
                        let cell = &mut row[dst * words..(dst + 1) * words];
                        for (c, p) in cell.iter_mut().zip(&rule.ports.0) {
                            *c |= p;
                        }
                        prepared.add_named(rule, dst, cell);
                    }
                }
            }
            rows.push(row);
        }
        class_of.push(Some(class));
    }
    (class_of, rows)
}

/// Per destination pod, the class of its ingress door (`None`: open or not a pod), and per class
/// the probes each source may come in on: `cols[c][src * words + w]`. Named ports resolve on
/// the destination, so pods whose policies use named ports are classed by their named ports too.
fn ingress_cols(prepared: &Prepared<'_>, guarding: &[Vec<usize>]) -> (Vec<Option<usize>>, Vec<Vec<u64>>) {
    let words = prepared.probe_words;
    let mut classes: HashMap<(&[usize], &[NamedPort]), usize> = HashMap::new();
    let mut cols: Vec<Vec<u64>> = Vec::new();
    let mut class_of = Vec::with_capacity(guarding.len());
    for (pod, policies) in guarding.iter().enumerate() {
        if policies.is_empty() || prepared.inventory.pods[pod].host_network {
            class_of.push(None);
            continue;
        }
        let uses_names = policies
            .iter()
            .any(|&p| prepared.rules[p][dir_index(Direction::Ingress)].iter().any(|r| !r.named.is_empty()));
        let named: &[NamedPort] = if uses_names { &prepared.inventory.pods[pod].ports } else { &[] };
        let next = cols.len();
        let class = *classes.entry((policies.as_slice(), named)).or_insert(next);
        if class == next {
            let mut col = vec![0u64; prepared.n * words];
            for &policy in policies {
                for rule in &prepared.rules[policy][dir_index(Direction::Ingress)] {
                    let mut ports = rule.ports.0.clone();
                    prepared.add_named(rule, pod, &mut ports);
                    for src in rule.peers.ones_iter() {
                        for (c, p) in col[src * words..(src + 1) * words].iter_mut().zip(&ports) {
                            *c |= p;
                        }
                    }
                }
            }
            cols.push(col);
        }
        class_of.push(Some(class));
    }
    // Externals have no ingress door.
    class_of.resize(prepared.n, None);
    (class_of, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netc_ir::{Door, DoorState, ExternalAddress, Namespace, Pod, Port, Span};
    use std::collections::BTreeMap;

    fn span() -> Span {
        Span { file: "m.np".into(), line: 1, column: 1, start: 0, end: 1 }
    }

    fn pod(ns: &str, name: &str, ip: &str) -> Pod {
        Pod {
            namespace: ns.into(),
            name: name.into(),
            labels: BTreeMap::from([("app".to_owned(), name.to_owned())]),
            ips: vec![ip.parse().expect("ip")],
            ports: vec![],
            node: None,
            host_interface: None,
            host_network: false,
        }
    }

    fn cluster() -> Inventory {
        let mut db = pod("shop", "db", "10.0.0.3");
        db.ports.push(NamedPort { name: "sql".into(), port: 5432, protocol: Protocol::Tcp });
        Inventory {
            namespaces: vec![Namespace {
                name: "shop".into(),
                labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), "shop".to_owned())]),
            }],
            pods: vec![pod("shop", "api", "10.0.0.2"), db, pod("shop", "web", "10.0.0.1")],
            externals: vec![ExternalAddress {
                name: "payments".into(),
                address: "203.0.113.5".parse().expect("ip"),
            }],
            implied_namespaces: vec![],
        }
    }

    /// db: ingress from api on `sql`; api: egress to db only (and to payments on 443).
    fn shop() -> Ir {
        let mut ir = Ir::empty();
        let app = |n: &str| LabelSelector::labels([("app", n)]);
        let guarded = |rules| Door { state: DoorState::Guarded, guarded_by: vec![], rules };
        let rule = |id: &str, peers, ports| Rule { id: id.into(), peers, ports, span: span() };
        let policy = |name: &str, ingress, egress| Policy {
            name: name.into(),
            namespace: "shop".into(),
            workload: name.into(),
            selector: app(name),
            doc: None,
            ingress,
            egress,
            span: span(),
        };
        let sql = Port { protocol: Protocol::Tcp, port: Some(PortValue::Name("sql".into())), end_port: None };
        let https = Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(443)), end_port: None };
        ir.policies = vec![
            policy(
                "api",
                Door::open(),
                guarded(vec![
                    rule("api-db", vec![Peer::Pods { namespaces: None, pods: Some(app("db")) }], vec![]),
                    rule(
                        "api-pay",
                        vec![Peer::IpBlock { cidr: "203.0.113.0/24".parse().expect("cidr"), except: vec![] }],
                        vec![https],
                    ),
                ]),
            ),
            policy(
                "db",
                guarded(vec![rule(
                    "db-in",
                    vec![Peer::Pods { namespaces: None, pods: Some(app("api")) }],
                    vec![sql],
                )]),
                Door::open(),
            ),
        ];
        ir
    }

    #[test]
    fn default_probes_cover_mentioned_and_named_ports_and_one_other_port() {
        let probes = Matrix::default_probes(&shop(), &cluster());
        let labels: Vec<String> = probes.iter().map(ToString::to_string).collect();
        assert_eq!(labels, ["TCP/443", "TCP/5432", "TCP/other"]);
        assert_eq!(probes[2].port, 1, "the first port nothing mentions");
    }

    #[test]
    fn matrix_cells_follow_both_doors_per_probe() {
        let (ir, inv) = (shop(), cluster());
        let probes = Matrix::default_probes(&ir, &inv);
        let m = Matrix::compute(&ir, &inv, &probes);
        let at = |name: &str| m.endpoint_index(name).expect("endpoint");
        let (api, db, web, pay) = (at("shop/api"), at("shop/db"), at("shop/web"), at("payments"));
        let allowed = |s, d| m.allowed(s, d).map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(allowed(api, db), ["TCP/5432"], "api's egress allows all to db, db's ingress only sql");
        assert_eq!(allowed(web, db), Vec::<String>::new());
        assert_eq!(allowed(api, web), Vec::<String>::new(), "api's egress does not reach web");
        assert_eq!(allowed(api, pay), ["TCP/443"]);
        assert_eq!(allowed(web, api).len(), 3, "both doors open");
        assert_eq!(allowed(pay, db), Vec::<String>::new());
        assert_eq!(allowed(db, web).len(), 3);
        assert!(m.distinct_sets() >= 3);
        // api: db 1 + payments 1; db: api, web, payments 3 each; web: api, web, payments 3 each;
        // payments: api, web 3 each.
        assert_eq!(m.allowed_count(), 2 + 9 + 9 + 6);
    }

    #[test]
    fn matrix_text_for_a_small_shop() {
        let (ir, inv) = (shop(), cluster());
        let m = Matrix::compute(&ir, &inv, &Matrix::default_probes(&ir, &inv));
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!("matrix_text_for_a_small_shop", m.render_text()));
    }

    #[test]
    fn renderings_show_the_same_cells() {
        let (ir, inv) = (shop(), cluster());
        let m = Matrix::compute(&ir, &inv, &Matrix::default_probes(&ir, &inv));
        let text = m.render_text();
        let api_row = text.lines().find(|l| l.starts_with("[1] shop/api")).expect("api row");
        assert_eq!(
            api_row.split_whitespace().collect::<Vec<_>>(),
            ["[1]", "shop/api", "-", "TCP/5432", "-", "TCP/443"]
        );
        let csv = m.render_csv();
        assert!(csv.starts_with("from,to,TCP/443,TCP/5432,TCP/other\n"));
        assert!(csv.contains("\nshop/api,shop/db,0,1,0\n"), "{csv}");
        assert!(!csv.contains("payments,payments"));
        let json: serde_json::Value = serde_json::from_str(&m.render_json()).expect("valid JSON");
        let pairs = json["allowed"].as_array().expect("pairs");
        let api_db = pairs.iter().find(|p| p["from"] == "shop/api" && p["to"] == "shop/db").expect("api->db");
        assert_eq!(api_db["probes"], serde_json::json!(["TCP/5432"]));
        assert!(!pairs.iter().any(|p| p["from"] == "shop/web" && p["to"] == "shop/db"));
    }
}
