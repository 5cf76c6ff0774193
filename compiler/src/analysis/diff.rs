//! `netc diff`: the connectivity a change adds and removes, flow by flow, grouped by workload.
//!
//! Both IRs are judged on one cluster (a real inventory, or one [`super::synth::synthesize`]d
//! from both) with the all-pairs [`Matrix`], on the same probes: every port either IR mentions,
//! named ports as the cluster's pods resolve them, and one port neither mentions per protocol.
//! A flow is one (source, destination, probe); pairs of two external addresses are left out.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use netc_ir::{Inventory, Ir};

use super::matrix::{EndpointKind, Matrix, Probe};
use super::workloads::group_of;

/// The probes of a diff or of a what-if: [`Matrix::default_probes`] of all `irs` together.
#[must_use]
pub fn shared_probes(irs: &[&Ir], inventory: &Inventory) -> Vec<Probe> {
    let mut merged = Ir::empty();
    for ir in irs {
        merged.policies.extend(ir.policies.iter().cloned());
    }
    Matrix::default_probes(&merged, inventory)
}

/// What changed between two IRs on one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectivityDiff {
    /// The probes every pair was tried on.
    pub probes: Vec<Probe>,
    /// How many pods and external addresses the cluster has.
    pub pods: usize,
    /// External addresses.
    pub externals: usize,
    /// Changes grouped by (source workload, destination workload), in name order.
    pub groups: Vec<GroupDiff>,
    /// Flows allowed by the new IR and not the old.
    pub added: usize,
    /// Flows allowed by the old IR and not the new.
    pub removed: usize,
}

/// The changed flows between two workloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDiff {
    /// `namespace/workload` or an external address's name.
    pub from: String,
    /// `namespace/workload` or an external address's name.
    pub to: String,
    /// One entry per pair of endpoints whose connectivity changed.
    pub pairs: Vec<PairDiff>,
}

/// The change between two endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairDiff {
    /// `namespace/pod` or an external address's name.
    pub src: String,
    /// `namespace/pod` or an external address's name.
    pub dst: String,
    /// Probes newly allowed.
    pub added: Vec<Probe>,
    /// Probes no longer allowed.
    pub removed: Vec<Probe>,
}

impl ConnectivityDiff {
    /// Whether no flow changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added == 0 && self.removed == 0
    }

    /// The changes for people: a block per workload pair, `+` and `-` lines per pod pair, and a
    /// summary line last.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        let probes: Vec<String> = self.probes.iter().map(ToString::to_string).collect();
        let plural = |n: usize, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}es") };
        let _ = writeln!(
            out,
            "compared on {} and {}, probes {}",
            if self.pods == 1 { "1 pod".to_owned() } else { format!("{} pods", self.pods) },
            plural(self.externals, "external address"),
            probes.join(" ")
        );
        for g in &self.groups {
            let _ = writeln!(out, "\n{} -> {}", g.from, g.to);
            let width =
                g.pairs.iter().map(|p| p.src.chars().count() + p.dst.chars().count() + 4).max().unwrap_or(0);
            for p in &g.pairs {
                let pair = format!("{} -> {}", p.src, p.dst);
                for (sign, list) in [('+', &p.added), ('-', &p.removed)] {
                    if !list.is_empty() {
                        let labels: Vec<String> = list.iter().map(ToString::to_string).collect();
                        let _ = writeln!(out, "  {sign} {pair:<width$}  {}", labels.join(" "));
                    }
                }
            }
        }
        out.push('\n');
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// One line: `connectivity changed: 3 flows added, 1 removed, between 2 workload pairs`, or
    /// `no connectivity change (N flows compared)`.
    #[must_use]
    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}s") };
        if self.is_empty() {
            let n = self.pods + self.externals;
            let flows = (n * n - self.externals * self.externals) * self.probes.len();
            return format!("no connectivity change ({} compared)", plural(flows, "flow"));
        }
        format!(
            "connectivity changed: {} added, {} removed, between {}",
            plural(self.added, "flow"),
            self.removed,
            plural(self.groups.len(), "workload pair")
        )
    }
}

/// The flows `new` allows and `old` does not, and the other way round, on `inventory`.
#[must_use]
pub fn diff(old: &Ir, new: &Ir, inventory: &Inventory) -> ConnectivityDiff {
    let probes = shared_probes(&[old, new], inventory);
    let before = Matrix::compute(old, inventory, &probes);
    let after = Matrix::compute(new, inventory, &probes);
    let group: Vec<String> = after
        .endpoints
        .iter()
        .map(|e| match e.kind {
            EndpointKind::Pod(i) => group_of(&[new, old], &inventory.pods[i]),
            EndpointKind::External(_) => e.name.clone(),
        })
        .collect();
    let is_external = |i: usize| matches!(after.endpoints[i].kind, EndpointKind::External(_));
    let mut groups: BTreeMap<(&str, &str), Vec<PairDiff>> = BTreeMap::new();
    let (mut added, mut removed) = (0, 0);
    let n = after.endpoints.len();
    for src in 0..n {
        for dst in 0..n {
            if is_external(src) && is_external(dst) {
                continue;
            }
            let mut pair = PairDiff {
                src: after.endpoints[src].name.clone(),
                dst: after.endpoints[dst].name.clone(),
                added: Vec::new(),
                removed: Vec::new(),
            };
            for (k, probe) in probes.iter().enumerate() {
                match (before.is_allowed(src, dst, k), after.is_allowed(src, dst, k)) {
                    (false, true) => pair.added.push(*probe),
                    (true, false) => pair.removed.push(*probe),
                    _ => {}
                }
            }
            if pair.added.is_empty() && pair.removed.is_empty() {
                continue;
            }
            added += pair.added.len();
            removed += pair.removed.len();
            groups.entry((group[src].as_str(), group[dst].as_str())).or_default().push(pair);
        }
    }
    let groups = groups
        .into_iter()
        .map(|((from, to), pairs)| GroupDiff { from: from.to_owned(), to: to.to_owned(), pairs })
        .collect();
    ConnectivityDiff {
        probes,
        pods: inventory.pods.len(),
        externals: inventory.externals.len(),
        groups,
        added,
        removed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;
    use crate::analysis::synth::synthesize;

    fn ir(text: &str) -> Ir {
        let out = crate::compile(&[SourceFile::new("d.np", text)]);
        out.ir.unwrap_or_else(|| panic!("compiles: {:?}", out.diagnostics))
    }

    #[test]
    fn a_new_port_and_a_new_guard_show_as_added_and_removed_flows() {
        let old = ir("frontend -> backend:8080\n");
        let new = ir("frontend -> backend:[8080, 9090]\ndb ingress guarded\n");
        let inventory = synthesize(&[&old, &new]);
        let d = diff(&old, &new, &inventory);
        assert!(!d.is_empty());
        let fb = d
            .groups
            .iter()
            .find(|g| g.from == "default/frontend" && g.to == "default/backend")
            .expect("group");
        assert_eq!(fb.pairs.len(), 1);
        assert_eq!(fb.pairs[0].added.iter().map(ToString::to_string).collect::<Vec<_>>(), ["TCP/9090"]);
        assert!(fb.pairs[0].removed.is_empty());
        // Everyone lost db: every endpoint but db itself... and db too (its ingress is guarded).
        let to_db: usize = d.groups.iter().filter(|g| g.to == "default/db").map(|g| g.pairs.len()).sum();
        assert_eq!(to_db, inventory.pods.len() + inventory.externals.len());
        assert_eq!(d.added, 1);
        assert_eq!(d.removed, to_db * d.probes.len());
        assert!(d.summary().starts_with("connectivity changed: 1 flow added"), "{}", d.summary());
        // The same program, reordered, changes nothing.
        let same = diff(&new, &ir("db ingress guarded\nfrontend -> backend:[9090, 8080]\n"), &inventory);
        assert!(same.is_empty());
        assert!(same.summary().starts_with("no connectivity change"));
    }
}
