//! Phase 3: the door model. Checked statements in, [`netc_ir::Ir`] out.
//!
//! Every selected workload has two doors. Being the target of an arrow guards the target's
//! ingress; egress is guarded only when asked (`egress guarded`, `default deny egress`,
//! `isolated`). An arrow writes an ingress rule on its target when the target's ingress is guarded
//! and an egress rule on each source whose egress is guarded: one intent, both ends.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use netc_ir::{
    Direction, Door, DoorState, IR_VERSION, Ir, LabelSelector, Peer, Policy, Port, PortValue, Protocol, Rule,
    Workload,
};

use crate::ast::DoorWords;
use crate::check::{End, Flow, Loc, Model, NsScope};
use crate::prove::{Conj, PodSet, SelectorIndex, intersect_selectors};

/// Problems of the door model. Most are warnings about intent that changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LowerError {
    /// A workload declared `isolated` that an arrow names.
    IsolatedInFlow {
        /// The arrow's end.
        at: Loc,
        /// The `isolated` statement.
        isolated: Loc,
        /// The workload.
        name: String,
    },
    /// One door declared both open and guarded.
    ContradictoryDoor {
        /// The `open` statement.
        at: Loc,
        /// A statement that guards the door.
        guard: Loc,
        /// The workload.
        name: String,
        /// Which door.
        direction: Direction,
    },
    /// A door declared open that a statement about a wider set of pods guards.
    CannotOpen {
        /// The `open` statement.
        at: Loc,
        /// The wider statement.
        guard: Loc,
        /// The workload.
        name: String,
        /// The wider workload (`*` for the whole namespace).
        wider: String,
        /// Which door.
        direction: Direction,
    },
    /// An arrow end whose flow is neither written as an ingress nor as an egress rule.
    NoEffect {
        /// The source as written.
        at: Loc,
        /// The source.
        source: String,
        /// The target.
        target: String,
        /// Why the target's ingress takes no rule.
        target_side: Side,
        /// Why the source's egress takes no rule.
        source_side: Side,
        /// A one-sided arrow (`egress a -> b`), which never guards its target.
        one_sided: bool,
    },
    /// An arrow into a workload whose ingress was declared open, from sources whose egress is
    /// open too: the arrow writes nothing.
    TargetDeclaredOpen {
        /// The target.
        at: Loc,
        /// The `open` statement.
        open: Loc,
        /// The workload.
        name: String,
    },
    /// A guarded egress that allows no DNS.
    MissingDns {
        /// The statement that guards the egress.
        at: Loc,
        /// The workload as written.
        name: String,
    },
    /// An arrow end whose pods can overlap those of an isolated workload it does not name: the
    /// arrow's promise and the isolation cannot both hold.
    OverlapsIsolated {
        /// The arrow's end.
        at: Loc,
        /// The `isolated` statement.
        isolated: Loc,
        /// The end as written.
        end: String,
        /// The isolated workload.
        name: String,
        /// A selector for the end's pods less the isolated ones, when one requirement does it.
        narrower: Option<String>,
    },
    /// A rule that another rule of the same door already covers: it is not written.
    RedundantFlow {
        /// The arrow whose rule is dropped.
        at: Loc,
        /// The arrow whose rule covers it.
        by: Loc,
        /// Which door.
        direction: Direction,
        /// Whose door.
        name: String,
    },
    /// An arrow that is the first to guard its target's ingress, from a source whose egress is
    /// guarded: perhaps only the egress was meant (`egress a -> b`).
    ArrowGuardsTarget {
        /// The target.
        at: Loc,
        /// The target as written.
        target: String,
        /// A source whose egress is guarded.
        source: String,
        /// The statement guarding that source's egress.
        egress_guard: Loc,
    },
    /// An arrow from pods of namespaces chosen by labels (`{team=x}/*`, `*/*`) some of whose pods
    /// have a guarded egress that takes no rule for the flow: NetworkPolicy cannot make an egress
    /// rule depend on the namespace's labels, so those pods cannot send what the arrow declares.
    LabelSourceEgress {
        /// The source.
        at: Loc,
        /// The source as written.
        source: String,
        /// The target as written (of the first flow concerned).
        target: String,
        /// A one-sided arrow from the pods of one namespace that would carry the flow.
        fix: String,
        /// The guarded doors concerned: (`ns/workload`, the statement guarding it).
        doors: Vec<(String, Loc)>,
    },
    /// The same flow twice on one door.
    DuplicateFlow {
        /// The repeat.
        at: Loc,
        /// The first.
        first: Loc,
    },
}

impl LowerError {
    /// Whether this only warns.
    #[must_use]
    pub fn is_warning(&self) -> bool {
        !matches!(
            self,
            LowerError::IsolatedInFlow { .. }
                | LowerError::OverlapsIsolated { .. }
                | LowerError::ContradictoryDoor { .. }
                | LowerError::CannotOpen { .. }
        )
    }
}

/// Why one end of an arrow takes no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Addresses, `anywhere`, `dns` or pods of several namespaces: no door netc writes.
    NoDoor,
    /// The door is open (nobody guards it), so there is nothing to write.
    Open,
    /// The door was declared open here.
    DeclaredOpen(Loc),
}

/// Where each location is in source terms (file name, line, column).
pub trait Locate {
    /// The IR span of `loc`.
    fn span(&self, loc: Loc) -> netc_ir::Span;
    /// The file names, in order.
    fn file_names(&self) -> Vec<String>;
}

#[derive(Default)]
struct DoorInfo {
    guards: Vec<Loc>,
    targeted: Vec<Loc>,
    open: Option<Loc>,
    rules: Vec<RuleDraft>,
}

struct RuleDraft {
    peers: Vec<Peer>,
    ports: Vec<Port>,
    at: Loc,
    /// [`content_hash`] of peers and ports: compared before them, and the base of the rule id.
    hash: u64,
}

impl RuleDraft {
    fn new(peers: Vec<Peer>, ports: Vec<Port>, at: Loc) -> RuleDraft {
        let hash = content_hash(&peers, &ports);
        RuleDraft { peers, ports, at, hash }
    }
}

struct Entity {
    namespace: String,
    selector: LabelSelector,
    display: String,
    named: bool,
    isolated: Option<Loc>,
    ingress: DoorInfo,
    egress: DoorInfo,
    /// Doc comments, one block of lines per statement, with the statement they came from, for
    /// source order.
    docs: Vec<(Loc, Vec<String>)>,
    first: Option<Loc>,
}

impl Entity {
    fn door(&mut self, d: Direction) -> &mut DoorInfo {
        match d {
            Direction::Ingress => &mut self.ingress,
            Direction::Egress => &mut self.egress,
        }
    }

    fn touch(&mut self, at: Loc) {
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
    }

    /// A statement's doc comment, as one block: its lines keep their order (blank ones included),
    /// and a block said twice (one statement about several sets of pods, or the same words on two
    /// statements) is kept once.
    fn add_docs(&mut self, at: Loc, docs: &[String]) {
        if !docs.is_empty() && !self.docs.iter().any(|(_, x)| x.as_slice() == docs) {
            self.docs.push((at, docs.to_vec()));
        }
    }
}

#[derive(Default)]
struct Doors {
    entities: Vec<Entity>,
    /// (namespace, selector) key from the checker -> entity.
    by_key: Vec<Option<usize>>,
    /// Per namespace: entities with an egress guard, for subsumption (indexed by the pairs
    /// their selectors pin, so an arrow looks only at guards that can cover or overlap it).
    egress_guards: HashMap<String, SelectorIndex>,
    /// Per namespace: entities with an ingress guard or target, for subsumption.
    ingress_guards: HashMap<String, SelectorIndex>,
    /// Per namespace: isolated entities, for overlap.
    isolated: HashMap<String, SelectorIndex>,
    /// Entities for the pods two selectors share, made for egress rules: (namespace, selector).
    intersections: HashMap<(String, LabelSelector), usize>,
}

impl Doors {
    fn entity(&mut self, key: u32, ns: &str, selector: &LabelSelector, display: &str, named: bool) -> usize {
        if let Some(i) = self.find(key) {
            let e = &mut self.entities[i];
            if named && !e.named {
                // A name reads better than a selector in policy names and messages.
                display.clone_into(&mut e.display);
                e.named = true;
            }
            return i;
        }
        let i = self.entities.len();
        self.entities.push(Entity {
            namespace: ns.to_owned(),
            selector: selector.clone(),
            display: display.to_owned(),
            named,
            isolated: None,
            ingress: DoorInfo::default(),
            egress: DoorInfo::default(),
            docs: Vec::new(),
            first: None,
        });
        self.by_key[key as usize] = Some(i);
        i
    }

    fn find(&self, key: u32) -> Option<usize> {
        self.by_key.get(key as usize).copied().flatten()
    }

    /// The entity of the pods guard `g` shares with another selector (`both`, their
    /// intersection): `g` itself when it lies inside, else one made for it (once per selector).
    fn shared_pods(&mut self, ns: &str, g: usize, both: LabelSelector) -> usize {
        if both == self.entities[g].selector {
            return g;
        }
        if let Some(&i) = self.intersections.get(&(ns.to_owned(), both.clone())) {
            return i;
        }
        let i = self.entities.len();
        self.entities.push(Entity {
            namespace: ns.to_owned(),
            display: format!("{{{both}}}"),
            selector: both.clone(),
            named: false,
            isolated: None,
            ingress: DoorInfo::default(),
            egress: DoorInfo::default(),
            docs: Vec::new(),
            first: None,
        });
        self.intersections.insert((ns.to_owned(), both), i);
        i
    }

    /// Whether the arrow whose target is at `target_at` is the first thing to guard the ingress
    /// of `selector`'s pods in `ns`: no door statement guards it (through a workload that provably
    /// covers it), and no earlier arrow targets it.
    fn arrow_first_guards_ingress(&self, ns: &str, selector: &LabelSelector, target_at: Loc) -> bool {
        let Some(index) = self.ingress_guards.get(ns) else { return false };
        let mut first = None;
        for g in index.may_cover(&Conj::of(selector)) {
            let e = &self.entities[g];
            if !covers(&e.selector, selector) {
                continue;
            }
            if !e.ingress.guards.is_empty() {
                return false;
            }
            first = first.into_iter().chain(e.ingress.targeted.iter().copied()).min();
        }
        first == Some(target_at)
    }

    /// The index of the workloads guarding `direction` in `ns`, if any.
    fn guard_index(&self, ns: &str, direction: Direction) -> Option<&SelectorIndex> {
        match direction {
            Direction::Ingress => self.ingress_guards.get(ns),
            Direction::Egress => self.egress_guards.get(ns),
        }
    }

    /// The workloads guarding `direction` in `ns` whose pods can overlap `selector`'s, each with
    /// the selector of exactly the pods they share. Isolated workloads take no rules (an overlap
    /// with their pods is refused by the caller), nor do doors declared open.
    fn guards_sharing_pods(
        &self,
        ns: &str,
        selector: &LabelSelector,
        direction: Direction,
    ) -> Vec<(usize, LabelSelector)> {
        let Some(index) = self.guard_index(ns, direction) else { return Vec::new() };
        let wanted = Conj::of(selector);
        let mut shared = Vec::new();
        for g in index.may_overlap(&wanted) {
            let e = &self.entities[g];
            let open = match direction {
                Direction::Ingress => e.ingress.open,
                Direction::Egress => e.egress.open,
            };
            if e.isolated.is_some() || open.is_some() || !wanted.overlaps(&Conj::of(&e.selector)) {
                continue;
            }
            if let Some(both) = intersect_selectors(&e.selector, selector) {
                shared.push((g, both));
            }
        }
        shared
    }

    /// The first statement guarding `direction` for pods of `selector` in `ns`, through a
    /// workload whose selector provably covers it (itself included).
    fn covering_guard(
        &self,
        ns: &str,
        selector: &LabelSelector,
        direction: Direction,
    ) -> Option<(usize, Loc)> {
        let index = self.guard_index(ns, direction)?;
        index
            .may_cover(&Conj::of(selector))
            .into_iter()
            .filter(|&g| covers(&self.entities[g].selector, selector))
            .filter_map(|g| {
                let e = &self.entities[g];
                let d = match direction {
                    Direction::Ingress => &e.ingress,
                    Direction::Egress => &e.egress,
                };
                d.guards.iter().chain(d.targeted.iter()).min().map(|l| (g, *l))
            })
            .min_by_key(|(_, l)| *l)
    }
}

/// Whether `wide` selects every pod `narrow` selects, for every possible pod. The syntactic case
/// (each requirement of `wide` appears in `narrow`) is checked first: it is the common one and
/// needs no allocation; otherwise the prover decides (`app in (a, b)` covers `app=a`).
pub(crate) fn covers(wide: &LabelSelector, narrow: &LabelSelector) -> bool {
    let syntactic = wide.match_labels.iter().all(|(k, v)| narrow.match_labels.get(k) == Some(v))
        && wide.match_expressions.iter().all(|r| narrow.match_expressions.contains(r));
    syntactic || Conj::of(narrow).is_subset(&Conj::of(wide))
}

/// Apply the door model to a checked model.
#[must_use]
pub fn lower(model: &Model, locate: &(dyn Locate + Sync)) -> (Ir, Vec<LowerError>) {
    let mut errors = Vec::new();
    let mut doors = Doors { by_key: vec![None; model.keys as usize], ..Doors::default() };

    // 1. Declared doors.
    for d in &model.doors {
        let i = doors.entity(d.key, &d.namespace, &d.selector, &d.display, d.named);
        let e = &mut doors.entities[i];
        e.touch(d.at);
        e.add_docs(d.at, &d.docs);
        match d.words {
            DoorWords::Isolated => {
                e.isolated.get_or_insert(d.at);
                e.ingress.guards.push(d.at);
                e.egress.guards.push(d.at);
            }
            DoorWords::State { direction, guarded } => {
                for dir in direction.map_or(Direction::BOTH.to_vec(), |x| vec![x.into()]) {
                    let door = e.door(dir);
                    if guarded {
                        door.guards.push(d.at);
                    } else {
                        door.open.get_or_insert(d.at);
                    }
                }
            }
        }
    }
    // 2. Targets guard their ingress (but for one-sided arrows, `egress a -> b`).
    for f in model.flows.iter().filter(|f| !f.egress_only) {
        if let Some((ns, sel, key)) = f.target.single_namespace() {
            let i = doors.entity(key, ns, sel, f.target.display(), is_named(&f.target));
            let e = &mut doors.entities[i];
            // A target whose ingress is declared open takes no ingress rule; whether the arrow
            // still does something (an egress rule) is decided with the rules, below.
            if e.ingress.open.is_none() {
                e.ingress.targeted.push(f.target_at);
                e.touch(f.target_at);
            }
        }
    }
    for (i, e) in doors.entities.iter().enumerate() {
        let egress = !e.egress.guards.is_empty();
        let ingress = !e.ingress.guards.is_empty() || !e.ingress.targeted.is_empty();
        if !(egress || ingress) {
            continue;
        }
        let c = Conj::of(&e.selector);
        if egress {
            doors.egress_guards.entry(e.namespace.clone()).or_default().push(i, &c);
        }
        if ingress {
            doors.ingress_guards.entry(e.namespace.clone()).or_default().push(i, &c);
        }
        if e.isolated.is_some() {
            doors.isolated.entry(e.namespace.clone()).or_default().push(i, &c);
        }
    }
    // 3. Contradictions between open and guarded.
    for e in &doors.entities {
        for dir in Direction::BOTH {
            let door = match dir {
                Direction::Ingress => &e.ingress,
                Direction::Egress => &e.egress,
            };
            let Some(open) = door.open else { continue };
            if let Some(guard) = door.guards.first() {
                errors.push(LowerError::ContradictoryDoor {
                    at: open,
                    guard: *guard,
                    name: e.display.clone(),
                    direction: dir,
                });
            } else if let Some((g, guard)) = doors.covering_guard(&e.namespace, &e.selector, dir) {
                errors.push(LowerError::CannotOpen {
                    at: open,
                    guard,
                    name: e.display.clone(),
                    wider: doors.entities[g].display.clone(),
                    direction: dir,
                });
            }
        }
    }
    // 4. Rules.
    for f in &model.flows {
        flow_rules(&mut doors, f, &mut errors);
    }
    // Doc comments of workload declarations describe the workload's policy.
    for w in &model.workloads {
        if let Some(i) = doors.find(w.key) {
            doors.entities[i].add_docs(w.at, &w.docs);
        }
    }
    // 4b. Sources of namespaces chosen by labels get no egress rules: say where that drops flows.
    label_sources_egress(model, &doors, &mut errors);
    // 5. DNS for guarded egress.
    for (i, e) in doors.entities.iter().enumerate() {
        if e.isolated.is_some() || e.egress.guards.is_empty() || e.egress.open.is_some() {
            continue;
        }
        let candidates = doors.egress_guards.get(&e.namespace).map(|x| x.may_cover(&Conj::of(&e.selector)));
        let covered = candidates.into_iter().flatten().chain(std::iter::once(i)).any(|g| {
            covers(&doors.entities[g].selector, &e.selector)
                && doors.entities[g].egress.rules.iter().any(allows_dns)
        });
        if !covered {
            errors.push(LowerError::MissingDns {
                at: *e.egress.guards.iter().min().expect("checked non-empty"),
                name: e.display.clone(),
            });
        }
    }
    let ir = build_ir(model, &mut doors, locate, &mut errors);
    crate::drop_later(doors);
    (ir, errors)
}

fn is_named(end: &End) -> bool {
    matches!(end, End::Pods { named: true, .. })
}

fn flow_rules(doors: &mut Doors, f: &Flow, errors: &mut Vec<LowerError>) {
    // Ingress side.
    let mut target_side = Side::NoDoor;
    let mut wrote_ingress = false;
    if let Some((ns, sel, key)) = f.target.single_namespace() {
        let t = doors.find(key);
        // A one-sided arrow writes an ingress rule only where something else guards the door.
        let guarded_elsewhere = f.egress_only
            && t.is_none_or(|t| {
                let e = &doors.entities[t];
                e.ingress.guards.is_empty() && e.ingress.targeted.is_empty()
            })
            && doors.covering_guard(ns, sel, Direction::Ingress).is_some();
        let t = match t {
            Some(t) => t,
            None if guarded_elsewhere => doors.entity(key, ns, sel, f.target.display(), is_named(&f.target)),
            None if f.egress_only => usize::MAX,
            None => unreachable!("every single-namespace target was registered in step 2"),
        };
        let unguarded = f.egress_only
            && doors.entities.get(t).is_none_or(|e| {
                e.isolated.is_none()
                    && e.ingress.open.is_none()
                    && e.ingress.guards.is_empty()
                    && e.ingress.targeted.is_empty()
                    && !guarded_elsewhere
            });
        let first_guard = !f.egress_only
            && doors.entities[t].ingress.guards.is_empty()
            && doors.entities[t].ingress.targeted.first() == Some(&f.target_at)
            && doors.arrow_first_guards_ingress(ns, sel, f.target_at);
        if first_guard && let Some((source, egress_guard)) = guarded_source(doors, f) {
            errors.push(LowerError::ArrowGuardsTarget {
                at: f.target_at,
                target: f.target.display().to_owned(),
                source,
                egress_guard,
            });
        }
        if unguarded {
            // Guards of some of the target's pods (a subset, an overlapping selector) take the
            // flow for the pods they share with it.
            wrote_ingress = ingress_for_shared_pods(doors, f, ns, sel, errors);
            target_side = Side::Open;
        } else if let Some(iso) = doors.entities[t].isolated {
            let e = &doors.entities[t];
            errors.push(LowerError::IsolatedInFlow {
                at: f.target_at,
                isolated: iso,
                name: e.display.clone(),
            });
            // The arrow is an error already: only isolated sources are worth reporting too, not
            // that the refused flow "has no effect".
            for (s, sat) in f.sources.iter() {
                egress_side(doors, f, s, *sat, errors);
            }
            return;
        } else if let Some(open) = doors.entities[t].ingress.open {
            target_side = Side::DeclaredOpen(open);
        } else {
            // The ingress rule is written on a policy that selects all of the target's pods: were
            // some of them isolated, it would open their door. (Isolated pods among an arrow's
            // sources stay shut by their own egress door, unless the rule is written on a policy
            // that selects them: see `egress_side`.)
            if !doors.isolated.is_empty() {
                overlapping_isolation(doors, &f.target, f.target_at, errors);
            }
            let e = &mut doors.entities[t];
            e.touch(f.target_at);
            let mut peers = Vec::new();
            // First occurrences in order, found in a set: an arrow with 20k sources is linear.
            let mut seen = std::collections::HashSet::new();
            let mut anyone = false;
            for (s, _) in f.sources.iter() {
                match peers_of(s, ns) {
                    Some(ps) => {
                        for p in ps {
                            if !seen.contains(&p) {
                                seen.insert(p.clone());
                                peers.push(p);
                            }
                        }
                    }
                    None => anyone = true,
                }
            }
            if anyone {
                peers.clear();
            }
            add_rule(&mut e.ingress, RuleDraft::new(peers, f.ports.clone(), f.at), errors);
            e.add_docs(f.at, &f.docs);
            // The ingress rule carries the flow; sources with guarded egress get theirs too.
            for (s, sat) in f.sources.iter() {
                egress_side(doors, f, s, *sat, errors);
            }
            return;
        }
    }
    let mut idle = Vec::new();
    for (s, sat) in f.sources.iter() {
        if let Some(source_side) = egress_side(doors, f, s, *sat, errors) {
            idle.push((s, *sat, source_side));
        }
    }
    if wrote_ingress {
        return;
    }
    match target_side {
        // Into a door declared open, nothing at all was written: say so once, at the target.
        Side::DeclaredOpen(open) if idle.len() == f.sources.len() => {
            let name = f.target.display().to_owned();
            errors.push(LowerError::TargetDeclaredOpen { at: f.target_at, open, name });
        }
        _ => {
            for (s, sat, source_side) in idle {
                errors.push(LowerError::NoEffect {
                    at: sat,
                    source: s.display().to_owned(),
                    target: f.target.display().to_owned(),
                    target_side,
                    source_side,
                    one_sided: f.egress_only,
                });
            }
        }
    }
}

/// Arrows whose sources are pods of namespaces chosen by labels (`{team=x}/*`, `*/{app=p}`) are
/// written as ingress rules only (language.md, "Overlapping workloads"): an egress rule is written
/// on a policy of the sending pod's namespace, and none can depend on that namespace's labels.
/// Where a guarded egress door of the program may hold some of those pods (decided on the
/// selectors, the namespace's name included) and no rule of a policy covering that door carries
/// the flow, those pods cannot send what the arrow declares: warning W0207, once per source, with
/// the one-sided arrow that carries the flow from that namespace.
fn label_sources_egress(model: &Model, doors: &Doors, errors: &mut Vec<LowerError>) {
    if doors.egress_guards.is_empty() {
        return;
    }
    let mut guarded: Vec<(&String, &SelectorIndex)> = doors.egress_guards.iter().collect();
    guarded.sort_by_key(|(ns, _)| *ns);
    let mut found: Vec<LowerError> = Vec::new();
    for f in &model.flows {
        for (s, sat) in f.sources.iter() {
            let End::Pods { ns: scope @ NsScope::Selector(_), pods, .. } = s else { continue };
            let set = PodSet::of_scope(scope, pods);
            let mut ports = f.ports.clone();
            if f.target == End::Dns && ports.is_empty() {
                ports = dns_ports();
            }
            for &(ns, list) in &guarded {
                let needed = RuleDraft::new(peers_of(&f.target, ns).unwrap_or_default(), ports.clone(), f.at);
                for g in list.may_overlap(&set.pods) {
                    let e = &doors.entities[g];
                    if e.isolated.is_some()
                        || e.egress.open.is_some()
                        || !set.overlaps(&PodSet::in_namespace(ns, &e.selector))
                    {
                        continue;
                    }
                    let carried = doors.entities.iter().any(|c| {
                        c.namespace == *ns
                            && covers(&c.selector, &e.selector)
                            && c.egress.rules.iter().any(|r| rule_covers(ns, r, &needed))
                    });
                    if carried {
                        continue;
                    }
                    let door =
                        (format!("{ns}/{}", e.display), *e.egress.guards.iter().min().expect("a guard"));
                    match found
                        .iter_mut()
                        .find(|w| matches!(w, LowerError::LabelSourceEgress { at, .. } if at == sat))
                    {
                        Some(LowerError::LabelSourceEgress { doors, .. }) => {
                            if !doors.contains(&door) {
                                doors.push(door);
                            }
                        }
                        _ => {
                            let pods_text =
                                if pods.is_empty() { "*".to_owned() } else { format!("{{{pods}}}") };
                            found.push(LowerError::LabelSourceEgress {
                                at: *sat,
                                source: s.display().to_owned(),
                                target: f.target.display().to_owned(),
                                fix: format!(
                                    "egress {ns}/{pods_text} -> {}{}",
                                    f.target.display(),
                                    if f.target == End::Dns { String::new() } else { ports_source(&f.ports) }
                                ),
                                doors: vec![door],
                            });
                        }
                    }
                }
            }
        }
    }
    errors.extend(found);
}

/// Ports in netc notation, with the colon: `:80`, `:[80, 53/udp]`, `:8000-8100`, `:*/udp`;
/// nothing for every port.
fn ports_source(ports: &[Port]) -> String {
    let items: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = match (&p.port, p.end_port) {
                (None, _) => "*".to_owned(),
                (Some(PortValue::Number(n)), Some(end)) => format!("{n}-{end}"),
                (Some(PortValue::Number(n)), None) => n.to_string(),
                (Some(PortValue::Name(name)), _) => name.clone(),
            };
            match p.protocol {
                Protocol::Tcp => port,
                Protocol::Udp => format!("{port}/udp"),
                Protocol::Sctp => format!("{port}/sctp"),
            }
        })
        .collect();
    match items.as_slice() {
        [] => String::new(),
        [one] => format!(":{one}"),
        _ => format!(":[{}]", items.join(", ")),
    }
}

/// Refuse an arrow end whose pods can include pods of an isolated workload that it does not name
/// (naming it is [`LowerError::IsolatedInFlow`]): for every possible pod, not for one cluster.
fn overlapping_isolation(doors: &Doors, end: &End, at: Loc, errors: &mut Vec<LowerError>) {
    let End::Pods { ns, pods, key, .. } = end else { return };
    let own = key.and_then(|k| doors.find(k));
    let set = PodSet::of_scope(ns, pods);
    let mut candidates: Vec<usize> = match ns {
        NsScope::Named(n) => doors.isolated.get(n).map(|x| x.may_overlap(&set.pods)).unwrap_or_default(),
        NsScope::Selector(_) => doors.isolated.values().flat_map(|x| x.may_overlap(&set.pods)).collect(),
    };
    // In the order the workloads were made, whatever the namespaces' order in the map.
    candidates.sort_unstable();
    for i in candidates {
        if Some(i) == own {
            continue;
        }
        let iso = &doors.entities[i];
        if set.overlaps(&PodSet::in_namespace(&iso.namespace, &iso.selector)) {
            errors.push(LowerError::OverlapsIsolated {
                at,
                isolated: iso.isolated.expect("listed as isolated"),
                end: end.display().to_owned(),
                name: iso.display.clone(),
                narrower: matches!(ns, NsScope::Named(n) if *n == iso.namespace)
                    .then(|| narrower_selector(pods, &iso.selector))
                    .flatten(),
            });
        }
    }
}

/// `pods` with one requirement of `isolated` negated, in netc's notation, so that it selects no
/// isolated pod: the first requirement of `isolated` that `pods` does not already imply.
fn narrower_selector(pods: &LabelSelector, isolated: &LabelSelector) -> Option<String> {
    use netc_ir::Operator;
    let own = Conj::of(pods);
    let negations = isolated
        .match_labels
        .iter()
        .map(|(k, v)| (LabelSelector::labels([(k.clone(), v.clone())]), format!("{k}!={v}")))
        .chain(isolated.match_expressions.iter().map(|r| {
            let values = r.values.join(", ");
            let text = match r.operator {
                Operator::In => format!("{} notin ({values})", r.key),
                Operator::NotIn => format!("{} in ({values})", r.key),
                Operator::Exists => format!("!{}", r.key),
                Operator::DoesNotExist => r.key.clone(),
            };
            (LabelSelector { match_labels: BTreeMap::new(), match_expressions: vec![r.clone()] }, text)
        }));
    for (one, negated) in negations {
        if own.is_subset(&Conj::of(&one)) {
            continue;
        }
        let written = pods.to_string();
        return Some(if written.is_empty() {
            format!("{{{negated}}}")
        } else {
            format!("{{{written}, {negated}}}")
        });
    }
    None
}

/// A source of `f` whose egress is guarded (and not declared open), with the statement guarding it.
fn guarded_source(doors: &Doors, f: &Flow) -> Option<(String, Loc)> {
    f.sources.iter().find_map(|(s, _)| {
        let (ns, sel, key) = s.single_namespace()?;
        let e = doors.find(key).map(|i| &doors.entities[i]);
        if e.is_some_and(|e| e.egress.open.is_some() || e.isolated.is_some()) {
            return None;
        }
        let (_, guard) = doors.covering_guard(ns, sel, Direction::Egress)?;
        Some((s.display().to_owned(), guard))
    })
}

/// Write the egress rule for one source, if its egress is guarded. Returns why not otherwise.
fn egress_side(doors: &mut Doors, f: &Flow, s: &End, sat: Loc, errors: &mut Vec<LowerError>) -> Option<Side> {
    let Some((ns, sel, key)) = s.single_namespace() else { return Some(Side::NoDoor) };
    let existing = doors.find(key);
    if let Some(i) = existing {
        let e = &doors.entities[i];
        if let Some(iso) = e.isolated {
            errors.push(LowerError::IsolatedInFlow { at: sat, isolated: iso, name: e.display.clone() });
            return None;
        }
        if let Some(open) = e.egress.open {
            // The source's own door is open; guards of some of its pods (a narrower workload)
            // still get the flow for the pods they share with it.
            let shared = egress_for_shared_pods(doors, f, s, (ns, sel), sat, errors);
            return if shared { None } else { Some(Side::DeclaredOpen(open)) };
        }
    }
    if doors.covering_guard(ns, sel, Direction::Egress).is_none() {
        // No guard covers all of the source; guards of some of its pods (a subset, an
        // overlapping selector) get the flow for the pods they share with it.
        return if egress_for_shared_pods(doors, f, s, (ns, sel), sat, errors) {
            None
        } else {
            Some(Side::Open)
        };
    }
    // The rule goes on a policy selecting every pod of the source: isolated pods among them
    // would be let out.
    if !doors.isolated.is_empty() {
        overlapping_isolation(doors, s, sat, errors);
    }
    let i = match existing {
        Some(i) => i,
        None => doors.entity(key, ns, sel, s.display(), is_named(s)),
    };
    let mut ports = f.ports.clone();
    if f.target == End::Dns && ports.is_empty() {
        ports = dns_ports();
    }
    let peers = peers_of(&f.target, ns).unwrap_or_default();
    let e = &mut doors.entities[i];
    e.touch(sat);
    e.add_docs(f.at, &f.docs);
    add_rule(&mut e.egress, RuleDraft::new(peers, ports, f.at), errors);
    None
}

/// For each egress guard of namespace `ns` that overlaps the source `sel` without covering it,
/// write the egress rule on a policy selecting exactly the pods they share (the guard's own when
/// it lies inside the source). Returns whether any rule was written.
fn egress_for_shared_pods(
    doors: &mut Doors,
    f: &Flow,
    end: &End,
    (ns, sel): (&str, &LabelSelector),
    sat: Loc,
    errors: &mut Vec<LowerError>,
) -> bool {
    let shared = doors.guards_sharing_pods(ns, sel, Direction::Egress);
    if shared.is_empty() {
        return false;
    }
    // The rules go on policies selecting the shared pods: isolated pods among them would be let
    // out (the same refusal as for a rule on the source's own policy).
    if !doors.isolated.is_empty() {
        for (_, both) in &shared {
            shared_isolation(doors, ns, both, Some(end), sat, errors);
        }
    }
    let mut ports = f.ports.clone();
    if f.target == End::Dns && ports.is_empty() {
        ports = dns_ports();
    }
    let peers = peers_of(&f.target, ns).unwrap_or_default();
    for (g, both) in shared {
        let i = doors.shared_pods(ns, g, both);
        let e = &mut doors.entities[i];
        e.touch(sat);
        e.add_docs(f.at, &f.docs);
        // A repeat here is no mistake of the writer's (the guard may allow the flow itself, or a
        // wider arrow say it again): it is not written twice, and not reported.
        add_rule(&mut e.egress, RuleDraft::new(peers.clone(), ports.clone(), f.at), &mut Vec::new());
    }
    true
}

/// A one-sided arrow into `sel` (namespace `ns`) whose ingress no guard covers whole: for each
/// ingress guard (a door statement, `default deny`, another arrow's target) that overlaps it,
/// write the ingress rule on a policy selecting exactly the pods they share, so that the flow the
/// arrow declares passes into every pod of the target whose ingress is guarded. Returns whether
/// any rule was written.
fn ingress_for_shared_pods(
    doors: &mut Doors,
    f: &Flow,
    ns: &str,
    sel: &LabelSelector,
    errors: &mut Vec<LowerError>,
) -> bool {
    let shared = doors.guards_sharing_pods(ns, sel, Direction::Ingress);
    if shared.is_empty() {
        return false;
    }
    if !doors.isolated.is_empty() {
        for (_, both) in &shared {
            shared_isolation(doors, ns, both, Some(&f.target), f.target_at, errors);
        }
    }
    let mut peers = Vec::new();
    let mut anyone = false;
    for (s, _) in f.sources.iter() {
        match peers_of(s, ns) {
            Some(ps) => {
                for p in ps {
                    if !peers.contains(&p) {
                        peers.push(p);
                    }
                }
            }
            None => anyone = true,
        }
    }
    if anyone {
        peers.clear();
    }
    for (g, both) in shared {
        let i = doors.shared_pods(ns, g, both);
        let e = &mut doors.entities[i];
        e.touch(f.target_at);
        e.add_docs(f.at, &f.docs);
        add_rule(&mut e.ingress, RuleDraft::new(peers.clone(), f.ports.clone(), f.at), &mut Vec::new());
    }
    true
}

/// E0301 when the pods `both` of namespace `ns`, which a rule is about to be written for, can
/// include isolated pods: the rule would open their door.
fn shared_isolation(
    doors: &Doors,
    ns: &str,
    both: &LabelSelector,
    end: Option<&End>,
    at: Loc,
    errors: &mut Vec<LowerError>,
) {
    let set = PodSet::in_namespace(ns, both);
    for i in doors.isolated.get(ns).map(|x| x.may_overlap(&set.pods)).unwrap_or_default() {
        let iso = &doors.entities[i];
        if set.overlaps(&PodSet::in_namespace(&iso.namespace, &iso.selector)) {
            let end_text = end.map_or_else(|| format!("{{{both}}}"), |e| e.display().to_owned());
            let error = LowerError::OverlapsIsolated {
                at,
                isolated: iso.isolated.expect("listed as isolated"),
                end: end_text,
                name: iso.display.clone(),
                narrower: None,
            };
            if !errors.contains(&error) {
                errors.push(error);
            }
        }
    }
}

fn add_rule(door: &mut DoorInfo, rule: RuleDraft, errors: &mut Vec<LowerError>) {
    if let Some(first) =
        door.rules.iter().find(|r| r.hash == rule.hash && r.peers == rule.peers && r.ports == rule.ports)
    {
        errors.push(LowerError::DuplicateFlow { at: rule.at, first: first.at });
        return;
    }
    door.rules.push(rule);
}

/// The kube-dns pods, as a peer.
fn dns_peer() -> Peer {
    Peer::Pods {
        namespaces: Some(LabelSelector::namespace_named("kube-system")),
        pods: Some(LabelSelector::labels([("k8s-app", "kube-dns")])),
    }
}

fn dns_ports() -> Vec<Port> {
    [Protocol::Udp, Protocol::Tcp]
        .into_iter()
        .map(|protocol| Port { protocol, port: Some(PortValue::Number(53)), end_port: None })
        .collect()
}

fn allows_dns(r: &RuleDraft) -> bool {
    let peer_ok = r.peers.is_empty()
        || r.peers.iter().any(|p| match p {
            Peer::Pods { namespaces: Some(ns), pods } => {
                ns.matches(&BTreeMap::from([(
                    netc_ir::inventory::NAMESPACE_NAME_LABEL.to_owned(),
                    "kube-system".to_owned(),
                )])) && pods.as_ref().is_none_or(|s| {
                    s.matches(&BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())]))
                })
            }
            _ => false,
        });
    peer_ok && (r.ports.is_empty() || r.ports.iter().any(|p| p.matches(Protocol::Udp, 53, &[])))
}

/// The peers that stand for `end` in a rule of a policy in namespace `ns`; `None` means anyone.
fn peers_of(end: &End, ns: &str) -> Option<Vec<Peer>> {
    match end {
        End::Anywhere => None,
        End::Dns => Some(vec![dns_peer()]),
        End::Cidrs(blocks, _) => Some(
            blocks
                .iter()
                .map(|(cidr, except)| Peer::IpBlock { cidr: *cidr, except: except.clone() })
                .collect(),
        ),
        End::Pods { ns: scope, pods, .. } => {
            // Cloned only where used: a selector clone is a few allocations, on every arrow.
            let pods_opt = || if pods.is_empty() { None } else { Some((**pods).clone()) };
            Some(vec![match scope {
                NsScope::Named(n) if n == ns => Peer::Pods { namespaces: None, pods: Some((**pods).clone()) },
                NsScope::Named(n) => {
                    Peer::Pods { namespaces: Some(LabelSelector::namespace_named(n)), pods: pods_opt() }
                }
                NsScope::Selector(s) => Peer::Pods { namespaces: Some(s.clone()), pods: pods_opt() },
            }])
        }
    }
}

/// The IR; the rules are moved out of `doors` (it is freed right after).
fn build_ir(
    model: &Model,
    doors: &mut Doors,
    locate: &(dyn Locate + Sync),
    errors: &mut Vec<LowerError>,
) -> Ir {
    // Names: readable, DNS-1123, unique per namespace, independent of source order.
    let mut by_ns: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, e) in doors.entities.iter().enumerate() {
        if !e.ingress.guards.is_empty()
            || (!e.ingress.targeted.is_empty() && e.ingress.open.is_none())
            || !e.ingress.rules.is_empty()
            || (!e.egress.guards.is_empty() && e.egress.open.is_none())
            || !e.egress.rules.is_empty()
        {
            by_ns.entry(&e.namespace).or_default().push(i);
        }
    }
    let by_ns: Vec<(String, Vec<usize>)> = by_ns.into_iter().map(|(ns, m)| (ns.to_owned(), m)).collect();
    // What each policy is made of; the rules are moved out of `doors` here.
    let mut tasks = Vec::new();
    for (ns, members) in &by_ns {
        let mut names: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in members {
            names.entry(base_name(&doors.entities[i])).or_default().push(i);
        }
        for (base, group) in names {
            for i in group.iter().copied() {
                let name = if group.len() == 1 {
                    base.clone()
                } else {
                    suffixed(&base, &doors.entities[i].selector)
                };
                let rules = (
                    std::mem::take(&mut doors.entities[i].ingress.rules),
                    std::mem::take(&mut doors.entities[i].egress.rules),
                );
                tasks.push((ns.as_str(), name, i, rules));
            }
        }
    }
    // The policies are independent of each other: build them on all cores.
    let doors: &Doors = doors;
    let built = crate::par::map_in_order(tasks, 512, |(ns, name, i, (ingress, egress))| {
        let e = &doors.entities[i];
        let mut warnings = Vec::new();
        let ingress = without_covered(ns, ingress, Direction::Ingress, &e.display, &mut warnings);
        let egress = without_covered(ns, egress, Direction::Egress, &e.display, &mut warnings);
        (policy(ns, name, e, (ingress, egress), doors, locate), warnings)
    });
    let mut policies = Vec::with_capacity(built.len());
    for (p, warnings) in built {
        policies.push(p);
        errors.extend(warnings);
    }
    policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let workloads = model
        .workloads
        .iter()
        .map(|w| Workload {
            name: w.name.clone(),
            namespace: w.namespace.clone(),
            selector: w.selector.clone(),
            span: locate.span(w.at),
        })
        .collect();
    Ir { version: IR_VERSION, sources: locate.file_names(), workloads, policies }
}

fn policy(
    ns: &str,
    name: String,
    e: &Entity,
    (ingress_rules, egress_rules): (Vec<RuleDraft>, Vec<RuleDraft>),
    doors: &Doors,
    locate: &(dyn Locate + Sync),
) -> Policy {
    let door_of = |dir: Direction, info: &DoorInfo, rules: Vec<RuleDraft>| -> Door {
        let guarded = match dir {
            // Ingress rules without a guard of the workload's own come from one-sided arrows
            // into pods a wider statement guards: listing Ingress keeps them in force.
            Direction::Ingress => {
                info.open.is_none()
                    && (!info.guards.is_empty() || !info.targeted.is_empty() || !rules.is_empty())
            }
            // Egress rules exist only where a covering guard exists; listing Egress here too
            // changes nothing for these pods and keeps the rules in force.
            Direction::Egress => info.open.is_none() && (!info.guards.is_empty() || !rules.is_empty()),
        };
        if !guarded {
            return Door::open();
        }
        // Every door statement, and the first arrow into the workload: each later arrow guards
        // the door too, but says nothing more (its own rule carries its line).
        let mut guarded_by: Vec<Loc> =
            info.guards.iter().chain(info.targeted.iter().min()).copied().collect();
        if guarded_by.is_empty()
            && let Some((_, g)) = doors.covering_guard(ns, &e.selector, dir)
        {
            guarded_by.push(g);
        }
        guarded_by.sort();
        guarded_by.dedup();
        let rules = rules
            .into_iter()
            .map(|r| Rule {
                id: rule_id(ns, &name, dir, r.hash),
                span: locate.span(r.at),
                peers: r.peers,
                ports: r.ports,
            })
            .collect();
        Door {
            state: DoorState::Guarded,
            guarded_by: guarded_by.into_iter().map(|l| locate.span(l)).collect(),
            rules,
        }
    };
    let ingress = door_of(Direction::Ingress, &e.ingress, ingress_rules);
    let egress = door_of(Direction::Egress, &e.egress, egress_rules);
    Policy {
        name,
        namespace: ns.to_owned(),
        workload: e.display.clone(),
        selector: e.selector.clone(),
        doc: if e.docs.is_empty() {
            None
        } else {
            // Blocks in source order; a stable sort keeps each block's lines in theirs.
            let mut docs: Vec<&(Loc, Vec<String>)> = e.docs.iter().collect();
            docs.sort_by_key(|(at, _)| *at);
            Some(
                docs.into_iter()
                    .flat_map(|(_, d)| d.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        },
        ingress,
        egress,
        span: locate.span(e.first.expect("every entity with a door was touched by a statement")),
    }
}

/// The rules of one door less those another rule of the door covers (W0206, at the covered
/// arrow). Later rules go first, so of two rules that mean the same the first is kept.
fn without_covered(
    ns: &str,
    mut rules: Vec<RuleDraft>,
    direction: Direction,
    name: &str,
    warnings: &mut Vec<LowerError>,
) -> Vec<RuleDraft> {
    if rules.len() < 2 {
        return rules;
    }
    let mut kept = vec![true; rules.len()];
    let index = RuleIndex::new(ns, &rules);
    for i in (0..rules.len()).rev() {
        let by = index
            .may_cover(ns, &rules[i])
            .into_iter()
            .find(|&j| j != i && kept[j] && rule_covers(ns, &rules[j], &rules[i]));
        if let Some(j) = by {
            kept[i] = false;
            warnings.push(LowerError::RedundantFlow {
                at: rules[i].at,
                by: rules[j].at,
                direction,
                name: name.to_owned(),
            });
        }
    }
    let mut keep = kept.into_iter();
    rules.retain(|_| keep.next().unwrap_or(true));
    rules
}

/// The rules of one door filed by their peers, so that finding a rule that covers another looks
/// at the few whose peers can cover its first peer (a door with 20k arrows is not 20k x 20k).
struct RuleIndex {
    /// Rules with no peers (anyone): they can cover every rule.
    anyone: Vec<usize>,
    /// Rules with an address-block peer: the only ones that can cover one.
    blocks: Vec<usize>,
    /// Rules by the pod selectors of their pod peers.
    pods: SelectorIndex,
    len: usize,
}

impl RuleIndex {
    fn new(ns: &str, rules: &[RuleDraft]) -> RuleIndex {
        let mut index = RuleIndex {
            anyone: Vec::new(),
            blocks: Vec::new(),
            pods: SelectorIndex::default(),
            len: rules.len(),
        };
        for (j, r) in rules.iter().enumerate() {
            if r.peers.is_empty() {
                index.anyone.push(j);
            }
            let mut block = false;
            for p in &r.peers {
                match PodSet::of_peer(p, ns) {
                    Some(set) => index.pods.push(j, &set.pods),
                    None => block = true,
                }
            }
            if block {
                index.blocks.push(j);
            }
        }
        index
    }

    /// The rules that may cover `narrow` (a superset of those that do), in order. A rule covers
    /// another only if one of its peers covers the other's first peer (or it has no peers).
    fn may_cover(&self, ns: &str, narrow: &RuleDraft) -> Vec<usize> {
        let mut out = self.anyone.clone();
        match narrow.peers.first().map(|p| PodSet::of_peer(p, ns)) {
            None => {}
            Some(None) => out.extend_from_slice(&self.blocks),
            Some(Some(set)) if set.is_satisfiable() => out.extend(self.pods.may_cover(&set.pods)),
            // A peer that names no pod is covered by anything.
            Some(Some(_)) => out = (0..self.len).collect(),
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Whether every flow `narrow` lets through its door, `wide` lets through too (for every
/// possible peer and destination pod; named ports only cover themselves).
fn rule_covers(ns: &str, wide: &RuleDraft, narrow: &RuleDraft) -> bool {
    ports_cover(&wide.ports, &narrow.ports) && peers_cover(ns, &wide.peers, &narrow.peers)
}

fn ports_cover(wide: &[Port], narrow: &[Port]) -> bool {
    if wide.is_empty() {
        return true;
    }
    if narrow.is_empty() {
        return Protocol::ALL.iter().all(|p| wide.iter().any(|w| w.protocol == *p && w.port.is_none()));
    }
    narrow.iter().all(|n| {
        let same = || wide.iter().filter(|w| w.protocol == n.protocol);
        if same().any(|w| w.port.is_none()) {
            return true;
        }
        match &n.port {
            None => false,
            Some(PortValue::Name(name)) => {
                same().any(|w| w.port.as_ref() == Some(&PortValue::Name(name.clone())))
            }
            Some(PortValue::Number(start)) => {
                let end = u32::from(n.end_port.unwrap_or(*start));
                let mut ranges: Vec<(u32, u32)> = same()
                    .filter_map(|w| match w.port {
                        Some(PortValue::Number(p)) => {
                            Some((u32::from(p), u32::from(w.end_port.unwrap_or(p))))
                        }
                        _ => None,
                    })
                    .collect();
                ranges.sort_unstable();
                let mut next = u32::from(*start);
                for (lo, hi) in ranges {
                    if lo > next {
                        break;
                    }
                    next = next.max(hi + 1);
                }
                next > end
            }
        }
    })
}

fn peers_cover(ns: &str, wide: &[Peer], narrow: &[Peer]) -> bool {
    if wide.is_empty() {
        return true;
    }
    !narrow.is_empty() && narrow.iter().all(|n| wide.iter().any(|w| peer_covers(ns, w, n)))
}

fn peer_covers(ns: &str, wide: &Peer, narrow: &Peer) -> bool {
    if wide == narrow {
        return true;
    }
    match (wide, narrow) {
        (Peer::Pods { namespaces: wn, pods: wp }, Peer::Pods { namespaces: nn, pods: np }) => {
            let labels_only =
                |s: &Option<LabelSelector>| s.as_ref().is_none_or(|s| s.match_expressions.is_empty());
            if wn == nn && labels_only(wp) && labels_only(np) {
                // Same namespaces, `matchLabels` only: inclusion is inclusion of the pairs.
                return wp.as_ref().is_none_or(|w| {
                    w.match_labels
                        .iter()
                        .all(|(k, v)| np.as_ref().is_some_and(|n| n.match_labels.get(k) == Some(v)))
                });
            }
            match (PodSet::of_peer(wide, ns), PodSet::of_peer(narrow, ns)) {
                (Some(w), Some(n)) => n.is_subset(&w),
                _ => false,
            }
        }
        (Peer::IpBlock { cidr: wc, except: we }, Peer::IpBlock { cidr: nc, except: ne }) => {
            wc.contains(nc)
                && we.iter().all(|e| !(e.contains(nc) || nc.contains(e)) || ne.iter().any(|x| x.contains(e)))
        }
        // Pods have addresses of any kind, and addresses need not be pods.
        _ => false,
    }
}

/// A rule's id: its policy, door and content; stable as long as they are.
fn rule_id(ns: &str, policy: &str, dir: Direction, content: u64) -> String {
    let mut h = Fnv::new();
    h.str(ns);
    h.str(policy);
    h.str(match dir {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    });
    // `{content:016x}`, without an allocation.
    let mut hex = [0u8; 16];
    for (i, b) in hex.iter_mut().enumerate() {
        *b = b"0123456789abcdef"[usize::try_from((content >> (60 - 4 * i)) & 0xf).expect("a nibble")];
    }
    h.bytes(&hex);
    format!("r{:012x}", h.0 >> 16)
}

/// A hash of what a rule allows.
fn content_hash(peers: &[Peer], ports: &[Port]) -> u64 {
    let mut h = Fnv::new();
    for p in peers {
        match p {
            Peer::Pods { namespaces, pods } => {
                h.str("pods");
                for s in [namespaces, pods] {
                    match s {
                        None => h.str("-"),
                        Some(s) => h.selector(s),
                    }
                }
            }
            Peer::IpBlock { cidr, except } => {
                h.str("ipblock");
                h.str(&cidr.to_string());
                for e in except {
                    h.str(&e.to_string());
                }
            }
        }
    }
    h.str("ports");
    for p in ports {
        h.str(p.protocol.as_str());
        match &p.port {
            None => h.str("*"),
            Some(PortValue::Number(n)) => h.number(*n),
            Some(PortValue::Name(name)) => h.str(name),
        }
        match p.end_port {
            None => h.str(""),
            Some(e) => h.number(e),
        }
    }
    h.0
}

/// FNV-1a over delimited fields: ids and names stable across runs, machines and Rust versions
/// (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A field of raw bytes, delimited like [`Fnv::str`].
    fn bytes(&mut self, s: &[u8]) {
        for &b in s.iter().chain(std::iter::once(&0xff)) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A number as its decimal digits (as `n.to_string()` would give), without an allocation.
    fn number(&mut self, n: u16) {
        let mut digits = [0u8; 5];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            digits[at] = b'0' + u8::try_from(rest % 10).expect("a digit");
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.bytes(&digits[at..]);
    }

    fn selector(&mut self, s: &LabelSelector) {
        self.str("{");
        for (k, v) in &s.match_labels {
            self.str(k);
            self.str(v);
        }
        for r in &s.match_expressions {
            self.str(&r.key);
            self.str(r.operator.as_str());
            for v in &r.values {
                self.str(v);
            }
        }
        self.str("}");
    }
}

fn base_name(e: &Entity) -> String {
    let raw = if e.named {
        // The workload's own name: `shop/cart` is workload `cart`, whose policy lives in `shop`
        // anyway; and the name must not depend on whether `shop/cart` or `cart` came first.
        e.display.rsplit('/').next().unwrap_or(&e.display).to_owned()
    } else if e.selector.is_empty() {
        "all-pods".to_owned()
    } else {
        e.selector.to_string()
    };
    let mut out = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() {
        return suffixed("pods", &e.selector);
    }
    if out.len() > 63 { suffixed(&out[..54], &e.selector) } else { out }
}

fn suffixed(base: &str, selector: &LabelSelector) -> String {
    let mut h = Fnv::new();
    h.selector(selector);
    format!("{}-{:08x}", base.trim_end_matches('-'), h.0 >> 32)
}

/// Every namespace that the IR's policies live in, sorted.
#[must_use]
pub fn namespaces(ir: &Ir) -> BTreeSet<&str> {
    ir.policies.iter().map(|p| p.namespace.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::Fnv;

    #[test]
    fn numbers_hash_as_their_decimal_text() {
        for n in [0u16, 1, 9, 10, 53, 443, 8080, 9999, 10000, 65535] {
            let (mut by_number, mut by_text) = (Fnv::new(), Fnv::new());
            by_number.number(n);
            by_text.str(&n.to_string());
            assert_eq!(by_number.0, by_text.0, "{n}");
        }
    }
}
