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
//! doors and are matched by ipBlock only, and let into every pod of their own node; pods are matched by ipBlocks on their address of the
//! flow's family (a pair of dual-stack pods is judged over IPv4 and over IPv6, and its cell holds
//! what both allow: [`Matrix::split_by_family`] counts the pairs where they differ); named ports
//! resolve on the destination pod. A pair of two external addresses has no door of
//! ours and is allowed, like in the evaluator; the renderings leave such pairs out.
//!
//! ```
//! use netc::analysis::matrix::Matrix;
//! let (ir, inventory) = (netc_ir::Ir::empty(), netc_ir::Inventory::default());
//! let probes = Matrix::default_probes(&ir, &inventory);
//! let matrix = Matrix::compute(&ir, &inventory, &probes);
//! assert!(matrix.endpoints.is_empty());
//! assert_eq!(probes.len(), 3, "`TCP/other`, `UDP/other`, `SCTP/other`: every protocol, always");
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::io::{self, Write};

use std::net::IpAddr;

use netc_ir::eval::{Family, ip_block_matches};
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
    /// Pairs of dual-stack ends whose IPv4 and IPv6 flows are judged differently (an address
    /// block matches one of a pod's addresses and not the other): their cells hold what both
    /// families allow, so the matrix never shows a flow allowed that one family denies.
    pub split_by_family: usize,
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

/// The cells of one pass of [`Matrix::compute`]: ipBlocks match pods by their addresses of
/// `family` (any address when `None`, for clusters of one family).
fn compute_cells(
    ir: &Ir,
    inventory: &Inventory,
    probes: &[Probe],
    family: Option<Family>,
    probe_index: &HashMap<(Protocol, u16), Vec<usize>>,
    interner: &mut Interner,
) -> Vec<u32> {
    let pods = &inventory.pods;
    let n = pods.len() + inventory.externals.len();
    let probe_words = probes.len().div_ceil(64).max(1);
    let mut selectors = Selectors::new(inventory, n, family);

    // Rules, prepared.
    let rules: Vec<[Vec<PreparedRule>; 2]> = ir
        .policies
        .iter()
        .map(|policy| {
            Direction::BOTH.map(|d| {
                policy.door(d).rules.iter().map(|r| prepare_rule(policy, r, probes, &mut selectors)).collect()
            })
        })
        .collect();
    let prepared = Prepared { inventory, n, probe_words, probe_index: probe_index.clone(), rules };

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

    cells
}

/// Which families a pair is judged on, as [`netc_ir::eval::Flow::families`] decides from the
/// families each end has (`[IPv4, IPv6]`; a pod without addresses has both).
fn pair_families(src: [bool; 2], dst: [bool; 2], src_external: bool, dst_external: bool) -> [bool; 2] {
    let shared = [src[0] && dst[0], src[1] && dst[1]];
    if shared != [false, false] {
        shared
    } else if dst_external {
        dst
    } else if src_external {
        src
    } else if src[0] {
        [true, false]
    } else {
        [false, true]
    }
}

/// The ports of one protocol that every port spec treats alike.
struct PortClass {
    /// Its ports, as disjoint intervals in order.
    ports: Vec<(u16, u16)>,
    /// How many specs cover it (0: the ports no rule mentions).
    covered_by: usize,
}

/// Ports 1..=65535 split by `specs` (inclusive intervals) into classes of ports covered by
/// exactly the same specs: a sweep over the specs' boundaries, never over the 65,535 ports.
fn port_classes(specs: &[(u16, u16)]) -> Vec<PortClass> {
    let mut starts: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut ends: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut cuts: BTreeSet<u32> = BTreeSet::from([1, 65_536]);
    for (i, &(a, b)) in specs.iter().enumerate() {
        let (a, b) = (u32::from(a).max(1), u32::from(b) + 1);
        if a >= b {
            continue;
        }
        starts.entry(a).or_default().push(i);
        ends.entry(b).or_default().push(i);
        cuts.insert(a);
        cuts.insert(b);
    }
    let cuts: Vec<u32> = cuts.into_iter().collect();
    let mut active: BTreeSet<usize> = BTreeSet::new();
    let mut classes: Vec<PortClass> = Vec::new();
    let mut by_signature: HashMap<Vec<usize>, usize> = HashMap::new();
    for pair in cuts.windows(2) {
        for i in ends.get(&pair[0]).into_iter().flatten() {
            active.remove(i);
        }
        active.extend(starts.get(&pair[0]).into_iter().flatten());
        let (Ok(lo), Ok(hi)) = (u16::try_from(pair[0]), u16::try_from(pair[1] - 1)) else { continue };
        let signature: Vec<usize> = active.iter().copied().collect();
        let covered_by = signature.len();
        let next = classes.len();
        let class = *by_signature.entry(signature).or_insert(next);
        if class == next {
            classes.push(PortClass { ports: Vec::new(), covered_by });
        }
        classes[class].ports.push((lo, hi));
    }
    classes
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    }
}

impl Matrix {
    /// The default probes, exact for `ir` on `inventory`: for each of TCP, UDP and SCTP (always,
    /// whether or not a rule mentions them), every port number the rules mention (ports and range
    /// ends), the numbers named ports resolve to on the inventory's pods, and then one probe for
    /// every set of ports the rules treat alike that none of those lands in. Ports are split into
    /// intervals at every boundary a rule draws, and two intervals are alike when exactly the same
    /// port specs cover them; so every port of every protocol is judged like one of the probes,
    /// and a matrix over these probes is the exact connectivity, not a sample. The ports no rule
    /// covers are the `other` probe of their protocol (absent when a range covers every port).
    /// Sorted by protocol, then port, `other` last.
    #[must_use]
    pub fn default_probes(ir: &Ir, inventory: &Inventory) -> Vec<Probe> {
        let mut specs: BTreeSet<(Protocol, u16, u16)> = BTreeSet::new();
        let mut numbers: BTreeSet<(Protocol, u16)> = BTreeSet::new();
        let mut names: BTreeSet<(&str, Protocol)> = BTreeSet::new();
        for (_, _, rule) in ir.rules() {
            for port in &rule.ports {
                match &port.port {
                    None => {}
                    Some(PortValue::Number(p)) => {
                        let end = port.end_port.unwrap_or(*p).max(*p);
                        numbers.insert((port.protocol, *p));
                        numbers.insert((port.protocol, end));
                        specs.insert((port.protocol, *p, end));
                    }
                    Some(PortValue::Name(name)) => {
                        names.insert((name.as_str(), port.protocol));
                    }
                }
            }
        }
        // A named port matches exactly the number it resolves to on a destination: a class of
        // its own, one per number.
        for pod in &inventory.pods {
            for np in pod.ports.iter().filter(|np| names.contains(&(np.name.as_str(), np.protocol))) {
                numbers.insert((np.protocol, np.port));
                specs.insert((np.protocol, np.port, np.port));
            }
        }
        let named_numbers: BTreeSet<(Protocol, u16)> =
            inventory.pods.iter().flat_map(|p| p.ports.iter().map(|np| (np.protocol, np.port))).collect();
        let mut probes: Vec<Probe> =
            numbers.iter().map(|&(protocol, port)| Probe::new(protocol, port)).collect();
        for protocol in Protocol::ALL {
            let intervals: Vec<(u16, u16)> =
                specs.iter().filter(|s| s.0 == protocol).map(|&(_, a, b)| (a, b)).collect();
            for class in port_classes(&intervals) {
                if class
                    .ports
                    .iter()
                    .any(|&(a, b)| numbers.range((protocol, a)..=(protocol, b)).next().is_some())
                {
                    continue;
                }
                // One port of the class, one that is no pod's named port where there is a choice
                // (easier to read: it is not mistaken for that port).
                let mut candidates = class.ports.iter().flat_map(|&(a, b)| a..=b);
                let port = candidates
                    .clone()
                    .take(4096)
                    .find(|&p| !named_numbers.contains(&(protocol, p)))
                    .or_else(|| candidates.next());
                if let Some(port) = port {
                    probes.push(Probe { protocol, port, other: class.covered_by == 0 });
                }
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
        // A dual-stack pod is matched by an ipBlock on its address of the flow's family
        // (DESIGN.md corner 14): with pods of both families, each family is a pass of its own and
        // a cell is what every family the pair can use allows (see `pair_families`).
        let has =
            |pod: &netc_ir::Pod| [pod.ips.iter().any(IpAddr::is_ipv4), pod.ips.iter().any(IpAddr::is_ipv6)];
        let mixed = pods.iter().any(|p| has(p)[0]) && pods.iter().any(|p| has(p)[1]);
        let passes: Vec<Option<Family>> =
            if mixed { Family::BOTH.into_iter().map(Some).collect() } else { vec![None] };
        let mut interner = Interner::new(probes.len(), probe_words);
        let mut per_pass: Vec<Vec<u32>> = Vec::new();
        for family in passes {
            per_pass.push(compute_cells(ir, inventory, probes, family, &probe_index, &mut interner));
        }
        let mut split_by_family = 0;
        let cells = if let [v4, v6] = per_pass.as_slice() {
            let families: Vec<[bool; 2]> = pods
                .iter()
                .map(|p| if p.ips.is_empty() { [true, true] } else { has(p) })
                .chain(inventory.externals.iter().map(|e| [e.address.is_ipv4(), e.address.is_ipv6()]))
                .collect();
            let mut cells = vec![0u32; n * n];
            let mut scratch = vec![0u64; probe_words];
            for src in 0..n {
                for dst in 0..n {
                    let k = src * n + dst;
                    let external = |i: usize| i >= pods.len();
                    cells[k] = match pair_families(families[src], families[dst], external(src), external(dst))
                    {
                        [true, false] => v4[k],
                        [false, true] => v6[k],
                        _ if v4[k] == v6[k] => v4[k],
                        _ => {
                            split_by_family += 1;
                            for (w, out) in scratch.iter_mut().enumerate() {
                                *out = interner.sets[v4[k] as usize][w] & interner.sets[v6[k] as usize][w];
                            }
                            interner.intern(&mut scratch)
                        }
                    };
                }
            }
            cells
        } else {
            per_pass.pop().unwrap_or_default()
        };

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
        Matrix { probes: probes.to_vec(), endpoints, sets: interner.sets, cells, split_by_family }
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
    /// allowed and `0` for denied. Built in memory: for large clusters use [`Matrix::write_csv`].
    #[must_use]
    pub fn render_csv(&self) -> String {
        let mut out = Vec::new();
        self.write_csv(&mut out).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("names and probes are UTF-8")
    }

    /// [`Matrix::render_csv`] written to `out` pair by pair: the memory used is one row's, whatever
    /// the size of the cluster (4 million rows for 2,000 pods). Give it a buffered writer.
    ///
    /// # Errors
    /// The writer's.
    pub fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        let n = self.endpoints.len();
        let names: Vec<String> = self.endpoints.iter().map(|e| csv_field(&e.name)).collect();
        let mut header = String::from("from,to");
        for p in &self.probes {
            header.push(',');
            header.push_str(&csv_field(&p.to_string()));
        }
        header.push('\n');
        out.write_all(header.as_bytes())?;
        // Each distinct probe set's cells, rendered once.
        let cells: Vec<String> = self
            .sets
            .iter()
            .map(|set| {
                (0..self.probes.len())
                    .map(|k| if set[k / 64] & (1 << (k % 64)) != 0 { ",1" } else { ",0" })
                    .collect::<String>()
                    + "\n"
            })
            .collect();
        for src in 0..n {
            for dst in 0..n {
                if self.both_external(src, dst) {
                    continue;
                }
                out.write_all(names[src].as_bytes())?;
                out.write_all(b",")?;
                out.write_all(names[dst].as_bytes())?;
                out.write_all(cells[self.cells[src * n + dst] as usize].as_bytes())?;
            }
        }
        Ok(())
    }

    /// JSON: `{"probes": [...], "endpoints": [...], "allowed": [{"from", "to", "probes"}]}`,
    /// listing every pair with at least one allowed probe (pairs of two externals left out);
    /// every other pair is denied on every probe. Built in memory: for large clusters use
    /// [`Matrix::write_json`].
    #[must_use]
    pub fn render_json(&self) -> String {
        let mut out = Vec::new();
        self.write_json(&mut out).expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// [`Matrix::render_json`] written to `out` pair by pair (the same bytes): the `allowed` list
    /// is serialized as it is walked, never held, so memory stays that of the matrix itself.
    ///
    /// # Errors
    /// The writer's.
    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
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
            probes: &'a [String],
        }
        /// The allowed pairs, serialized one by one as the cells are walked.
        struct Allowed<'a>(&'a Matrix);
        impl Serialize for Allowed<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let m = self.0;
                let n = m.endpoints.len();
                let sets: Vec<Vec<String>> = m
                    .sets
                    .iter()
                    .map(|set| {
                        m.probes
                            .iter()
                            .enumerate()
                            .filter(|(k, _)| set[k / 64] & (1 << (k % 64)) != 0)
                            .map(|(_, p)| p.to_string())
                            .collect()
                    })
                    .collect();
                let mut seq = serializer.serialize_seq(None)?;
                for src in 0..n {
                    for dst in 0..n {
                        let set = m.cells[src * n + dst] as usize;
                        if m.both_external(src, dst) || set == 0 {
                            continue;
                        }
                        seq.serialize_element(&JsonPair {
                            from: &m.endpoints[src].name,
                            to: &m.endpoints[dst].name,
                            probes: &sets[set],
                        })?;
                    }
                }
                seq.end()
            }
        }
        #[derive(Serialize)]
        struct Json<'a> {
            probes: Vec<JsonProbe>,
            endpoints: &'a [MatrixEndpoint],
            allowed: Allowed<'a>,
        }
        let json = Json {
            probes: self.probes.iter().map(|p| JsonProbe { label: p.to_string(), probe: *p }).collect(),
            endpoints: &self.endpoints,
            allowed: Allowed(self),
        };
        serde_json::to_writer_pretty(&mut *out, &json).map_err(io::Error::other)?;
        out.write_all(b"\n")
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
    /// ipBlocks match pods by their addresses of this family (any, when `None`).
    family: Option<Family>,
    /// Per namespace name: its pods.
    namespace_pods: HashMap<&'a str, Bits>,
    pod_cache: HashMap<LabelSelector, Bits>,
    namespace_cache: HashMap<LabelSelector, Bits>,
    block_cache: HashMap<Peer, Bits>,
}

impl<'a> Selectors<'a> {
    fn new(inventory: &'a Inventory, n: usize, family: Option<Family>) -> Selectors<'a> {
        let mut namespace_pods: HashMap<&str, Bits> = HashMap::new();
        for (i, pod) in inventory.pods.iter().enumerate() {
            if !pod.host_network {
                namespace_pods.entry(pod.namespace.as_str()).or_insert_with(|| Bits::zeros(n)).set(i);
            }
        }
        Selectors {
            inventory,
            n,
            family,
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

    /// Endpoints an ipBlock peer matches: pods (by their addresses of the pass's family,
    /// hostNetwork included) and externals.
    fn block(&mut self, peer: &Peer) -> Bits {
        let Peer::IpBlock { cidr, except } = peer else { return Bits::zeros(self.n) };
        if let Some(b) = self.block_cache.get(peer) {
            return b.clone();
        }
        let mut bits = Bits::zeros(self.n);
        for (i, pod) in self.inventory.pods.iter().enumerate() {
            if pod
                .ips
                .iter()
                .filter(|ip| self.family.is_none_or(|f| Family::of(**ip) == f))
                .any(|ip| ip_block_matches(cidr, except, *ip))
            {
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
            services: Vec::new(),
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
        assert_eq!(labels, ["TCP/443", "TCP/5432", "TCP/other", "UDP/other", "SCTP/other"]);
        assert_eq!(probes[2].port, 1, "the first port nothing mentions");
    }

    /// A program with rules `ports` on one door (`api`'s ingress from anyone).
    fn ranges(ports: Vec<Port>) -> Ir {
        let mut ir = Ir::empty();
        ir.policies = vec![Policy {
            name: "api".into(),
            namespace: "shop".into(),
            workload: "api".into(),
            selector: LabelSelector::labels([("app", "api")]),
            doc: None,
            ingress: Door {
                state: DoorState::Guarded,
                guarded_by: vec![],
                rules: vec![Rule { id: "r".into(), peers: vec![], ports, span: span() }],
            },
            egress: Door::open(),
            span: span(),
        }];
        ir
    }

    fn range(protocol: Protocol, from: u16, to: u16) -> Port {
        Port { protocol, port: Some(PortValue::Number(from)), end_port: Some(to) }
    }

    /// Every port of every protocol is judged like one of the default probes: checked port by
    /// port against the evaluator's rule (`Port::matches`) for overlapping ranges whose middle
    /// no range end lands in (sampling range ends missed ports 11-89 here).
    #[test]
    fn default_probes_are_exact_for_every_port_of_every_protocol() {
        let ports = vec![
            range(Protocol::Tcp, 1, 100),
            range(Protocol::Tcp, 1, 10),
            range(Protocol::Tcp, 90, 100),
            range(Protocol::Udp, 1, 65535),
        ];
        let ir = ranges(ports.clone());
        let probes = Matrix::default_probes(&ir, &cluster());
        let labels: Vec<String> = probes.iter().map(ToString::to_string).collect();
        assert_eq!(
            labels,
            [
                "TCP/1",
                "TCP/10",
                "TCP/11",
                "TCP/90",
                "TCP/100",
                "TCP/other",
                "UDP/1",
                "UDP/65535",
                "SCTP/other"
            ]
        );
        let signature = |protocol: Protocol, port: u16| -> Vec<bool> {
            ports.iter().map(|p| p.matches(protocol, port, &[])).collect()
        };
        for protocol in Protocol::ALL {
            for port in 1..=u16::MAX {
                let want = signature(protocol, port);
                assert!(
                    probes.iter().any(|p| p.protocol == protocol && signature(p.protocol, p.port) == want),
                    "{protocol}/{port} is like no probe"
                );
            }
        }
        // `other` stands only for ports no spec covers.
        for p in probes.iter().filter(|p| p.other) {
            assert!(signature(p.protocol, p.port).iter().all(|m| !m), "{p}");
        }
    }

    /// A TCP-only rule does not make a pair `all`: UDP and SCTP are probed though no rule
    /// mentions them (the matrix showed `all` for a TCP-only pair).
    #[test]
    fn a_tcp_only_door_is_not_all_ports() {
        let tcp_any = Port { protocol: Protocol::Tcp, port: None, end_port: None };
        let ir = ranges(vec![tcp_any]);
        let inv = cluster();
        let m = Matrix::compute(&ir, &inv, &Matrix::default_probes(&ir, &inv));
        let (web, api) =
            (m.endpoint_index("shop/web").expect("web"), m.endpoint_index("shop/api").expect("api"));
        let allowed: Vec<String> = m.allowed(web, api).map(ToString::to_string).collect();
        assert_eq!(allowed, ["TCP/other"]);
        assert_eq!(m.cell_text(web, api), "TCP/other");
        assert_eq!(m.cell_text(api, web), "all", "api's egress is open, web's ingress too");
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
        assert_eq!(allowed(web, api).len(), 5, "both doors open");
        assert_eq!(allowed(pay, db), Vec::<String>::new());
        assert_eq!(allowed(db, web).len(), 5);
        assert!(m.distinct_sets() >= 3);
        // api: db 1 + payments 1; db: api, web, payments 5 each; web: api, web, payments 5 each;
        // payments: api, web 5 each.
        assert_eq!(m.allowed_count(), 2 + 15 + 15 + 10);
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
        assert!(csv.starts_with("from,to,TCP/443,TCP/5432,TCP/other,UDP/other,SCTP/other\n"));
        assert!(csv.contains("\nshop/api,shop/db,0,1,0,0,0\n"), "{csv}");
        assert!(!csv.contains("payments,payments"));
        let json: serde_json::Value = serde_json::from_str(&m.render_json()).expect("valid JSON");
        let pairs = json["allowed"].as_array().expect("pairs");
        let api_db = pairs.iter().find(|p| p["from"] == "shop/api" && p["to"] == "shop/db").expect("api->db");
        assert_eq!(api_db["probes"], serde_json::json!(["TCP/5432"]));
        assert!(!pairs.iter().any(|p| p["from"] == "shop/web" && p["to"] == "shop/db"));
    }
}
