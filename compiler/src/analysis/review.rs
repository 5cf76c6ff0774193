//! `netc diff --format markdown`: a [`ConnectivityDiff`] as a pull-request comment. Each changed
//! workload pair gets one table row with the ports added or removed and the source lines
//! responsible, found by judging the changed flows with the reference evaluator
//! ([`netc_ir::eval`]): for an added flow, the rules of the new program that let it through (or
//! the old guard that is gone); for a removed flow, the new guard that stops it and the old rules
//! that let it through.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use netc_ir::eval::{DoorVerdict, Endpoint, Evaluator, Flow, PolicyRef, RuleRef};
use netc_ir::{Direction, Inventory, Ir};

use super::diff::{ConnectivityDiff, PairDiff};
use super::matrix::Probe;

/// Rows beyond this are summarised in one line, so that the comment stays readable (and under
/// the 65,536 characters GitHub accepts).
pub const MAX_ROWS: usize = 100;

/// How many pod pairs of one workload pair are judged to find the lines responsible.
const PAIRS_JUDGED: usize = 8;

/// The diff as Markdown for a pull-request comment.
#[must_use]
pub fn markdown(diff: &ConnectivityDiff, old: &Ir, new: &Ir, inventory: &Inventory) -> String {
    let mut out = String::from("### netc: connectivity change\n\n");
    if diff.is_empty() {
        let _ = writeln!(out, "No flow changes. {}", capitalised(&diff.summary()));
        return out;
    }
    let _ = writeln!(
        out,
        "**{} added, {} removed**, between {} (compared on {} and {}, ports {}).\n",
        plural(diff.added, "flow"),
        diff.removed,
        plural(diff.groups.len(), "workload pair"),
        plural(diff.pods, "pod"),
        if diff.externals == 1 {
            "1 external address".to_owned()
        } else {
            format!("{} external addresses", diff.externals)
        },
        diff.probes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
    );
    let ends = Ends::new(inventory);
    let (old_eval, new_eval) = (Evaluator::new(old, inventory), Evaluator::new(new, inventory));
    out.push_str("| | from | to | ports | pod pairs | because of |\n|---|---|---|---|---|---|\n");
    let mut rows = 0;
    for g in &diff.groups {
        for added in [true, false] {
            let pairs: Vec<&PairDiff> =
                g.pairs.iter().filter(|p| !if added { &p.added } else { &p.removed }.is_empty()).collect();
            if pairs.is_empty() {
                continue;
            }
            rows += 1;
            if rows > MAX_ROWS {
                continue;
            }
            let changed: BTreeSet<Probe> =
                pairs.iter().flat_map(|p| if added { &p.added } else { &p.removed }).copied().collect();
            let probes: Vec<&Probe> = diff.probes.iter().filter(|p| changed.contains(p)).collect();
            let mut because = BTreeSet::new();
            for p in pairs.iter().take(PAIRS_JUDGED) {
                let (Some(src), Some(dst)) = (ends.get(&p.src), ends.get(&p.dst)) else { continue };
                let families = Flow::families(&src, &dst);
                let probes = if added { &p.added } else { &p.removed };
                for (probe, &family) in probes.iter().flat_map(|pr| families.iter().map(move |f| (pr, f))) {
                    let flow = Flow { src, dst, protocol: probe.protocol, port: probe.port, family };
                    let (before, after) = (old_eval.evaluate(&flow), new_eval.evaluate(&flow));
                    if added {
                        reasons_allowed(&after.egress, new, "allowed by", &mut because);
                        reasons_allowed(&after.ingress, new, "allowed by", &mut because);
                        // A door that stopped it before and is open now: its old guard is gone.
                        if after.egress == DoorVerdict::Open {
                            reasons_denied(
                                &before.egress,
                                old,
                                Direction::Egress,
                                "no longer guarded by",
                                &mut because,
                            );
                        }
                        if after.ingress == DoorVerdict::Open {
                            reasons_denied(
                                &before.ingress,
                                old,
                                Direction::Ingress,
                                "no longer guarded by",
                                &mut because,
                            );
                        }
                    } else {
                        reasons_denied(&after.egress, new, Direction::Egress, "guarded by", &mut because);
                        reasons_denied(&after.ingress, new, Direction::Ingress, "guarded by", &mut because);
                        reasons_allowed(&before.egress, old, "was allowed by", &mut because);
                        reasons_allowed(&before.ingress, old, "was allowed by", &mut because);
                    }
                }
            }
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | {} | {} |",
                if added { "➕ added" } else { "➖ removed" },
                g.from,
                g.to,
                probes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
                pairs.len(),
                because.into_iter().collect::<Vec<_>>().join("<br>")
            );
        }
    }
    if rows > MAX_ROWS {
        let _ = writeln!(out, "\n… and {} more rows (run `netc diff` for all of them).", rows - MAX_ROWS);
    }
    let _ = writeln!(out, "\n{}", capitalised(&diff.summary()));
    out
}

/// The rules of an allowing door, as `` `file:line` `` with the rule id.
fn reasons_allowed(door: &DoorVerdict, ir: &Ir, words: &str, out: &mut BTreeSet<String>) {
    if let DoorVerdict::Allowed { rules } = door {
        for r in rules {
            if let Some(line) = rule_line(ir, *r) {
                out.insert(format!("{words} {line}"));
            }
        }
    }
}

/// Where `denying` stops a flow, the lines that guard that door.
fn reasons_denied(
    denying: &DoorVerdict,
    ir: &Ir,
    direction: Direction,
    words: &str,
    out: &mut BTreeSet<String>,
) {
    let DoorVerdict::Denied { guarded_by } = denying else { return };
    for p in guarded_by {
        for line in guard_lines(ir, *p, direction) {
            out.insert(format!("{words} {line}"));
        }
    }
}

fn rule_line(ir: &Ir, r: RuleRef) -> Option<String> {
    let (policy, rule) = r.resolve(ir)?;
    Some(format!(
        "`{}:{}` ({} rule `{}` of `{}/{}`)",
        rule.span.file, rule.span.line, r.direction, rule.id, policy.namespace, policy.name
    ))
}

fn guard_lines(ir: &Ir, p: PolicyRef, direction: Direction) -> Vec<String> {
    let Some(policy) = p.resolve(ir) else { return Vec::new() };
    policy
        .door(direction)
        .guarded_by
        .iter()
        .map(|s| format!("`{}:{}` ({direction} of `{}/{}`)", s.file, s.line, policy.namespace, policy.name))
        .collect()
}

/// The inventory's endpoints by the names the diff uses.
struct Ends<'a> {
    by_name: HashMap<String, Endpoint<'a>>,
}

impl<'a> Ends<'a> {
    fn new(inventory: &'a Inventory) -> Ends<'a> {
        let mut by_name = HashMap::new();
        for p in &inventory.pods {
            by_name.insert(format!("{}/{}", p.namespace, p.name), Endpoint::Pod(p));
        }
        for e in &inventory.externals {
            by_name.insert(e.name.clone(), Endpoint::External(e.address));
        }
        Ends { by_name }
    }

    fn get(&self, name: &str) -> Option<Endpoint<'a>> {
        self.by_name.get(name).copied()
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;
    use crate::analysis::diff::diff;
    use crate::analysis::synth::synthesize;

    fn ir(name: &str, text: &str) -> Ir {
        let out = crate::compile(&[SourceFile::new(name, text)]);
        out.ir.unwrap_or_else(|| panic!("compiles: {:?}", out.diagnostics))
    }

    #[test]
    fn added_and_removed_flows_name_the_lines_responsible() {
        let old = ir("old.np", "frontend -> backend:8080\n");
        let new = ir("new.np", "frontend -> backend:[8080, 9090]\n\ndb ingress guarded\n");
        let inventory = synthesize(&[&old, &new]);
        let d = diff(&old, &new, &inventory);
        let md = markdown(&d, &old, &new, &inventory);
        let row = |start: &str| -> &str {
            md.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no row {start} in\n{md}"))
        };
        let added = row("| ➕ added | `default/frontend` | `default/backend` | TCP/9090 | 1 |");
        assert!(!added.contains("no longer guarded"), "the ingress is still guarded: {added}");
        let backend = new.policies.iter().find(|p| p.workload == "backend").expect("policy");
        assert!(
            added.contains(&format!(
                "allowed by `new.np:1` (ingress rule `{}` of `default/backend`)",
                backend.ingress.rules[0].id
            )),
            "{added}"
        );
        let removed = row("| ➖ removed | `default/frontend` | `default/db` |");
        assert!(removed.contains("guarded by `new.np:3` (ingress of `default/db`)"), "{removed}");
        assert!(md.starts_with("### netc: connectivity change\n\n**1 flow added, "), "{md}");
        assert!(md.trim_end().ends_with(&capitalised(&d.summary())), "{md}");
    }

    #[test]
    fn a_guard_removed_names_the_old_line() {
        let old = ir("old.np", "db ingress guarded\n");
        let new = ir("new.np", "web -> api:80\n");
        let inventory = synthesize(&[&old, &new]);
        let d = diff(&old, &new, &inventory);
        let md = markdown(&d, &old, &new, &inventory);
        let row = md.lines().find(|l| l.contains("`default/db` |") && l.starts_with("| ➕")).expect(&md);
        assert!(row.contains("no longer guarded by `old.np:1` (ingress of `default/db`)"), "{row}");
    }

    #[test]
    fn no_change_says_so() {
        let a = ir("a.np", "web -> api:80\n");
        let inventory = synthesize(&[&a]);
        let md = markdown(&diff(&a, &a, &inventory), &a, &a, &inventory);
        assert!(md.contains("No flow changes. No connectivity change"), "{md}");
    }
}
