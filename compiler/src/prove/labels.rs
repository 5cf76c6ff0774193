//! Label selectors as sets of label maps, exactly.
//!
//! A Kubernetes label selector is a conjunction of per-key tests, so the set of label maps it
//! selects is a product: for each key it constrains, whether the key may be absent and which
//! values it may have when present; every other key is free. Such a product is a [`Conj`].
//! Intersection, emptiness and inclusion of products are decided key by key, which is exact
//! over the infinite set of possible label maps (label values are unbounded in number, so "every
//! value but these" is never empty).

use std::collections::{BTreeMap, BTreeSet};

use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{LabelSelector, Operator, Requirement};

/// The values a present key may have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Values {
    /// Exactly these.
    Only(BTreeSet<String>),
    /// Any value but these (never empty: there are always more values).
    AllBut(BTreeSet<String>),
}

impl Values {
    fn any() -> Values {
        Values::AllBut(BTreeSet::new())
    }

    fn intersect(&self, other: &Values) -> Values {
        match (self, other) {
            (Values::Only(a), Values::Only(b)) => Values::Only(a.intersection(b).cloned().collect()),
            (Values::Only(a), Values::AllBut(b)) | (Values::AllBut(b), Values::Only(a)) => {
                Values::Only(a.difference(b).cloned().collect())
            }
            (Values::AllBut(a), Values::AllBut(b)) => Values::AllBut(a.union(b).cloned().collect()),
        }
    }

    /// Whether some value is allowed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        matches!(self, Values::Only(v) if v.is_empty())
    }

    /// Whether `value` is allowed.
    #[must_use]
    pub fn contains(&self, value: &str) -> bool {
        match self {
            Values::Only(v) => v.contains(value),
            Values::AllBut(v) => !v.contains(value),
        }
    }

    fn is_subset(&self, other: &Values) -> bool {
        match (self, other) {
            (Values::Only(a), Values::Only(b)) => a.is_subset(b),
            (Values::Only(a), Values::AllBut(b)) => a.is_disjoint(b),
            (Values::AllBut(_), Values::Only(_)) => false,
            (Values::AllBut(a), Values::AllBut(b)) => b.is_subset(a),
        }
    }

    /// The values written out (for [`Values::Only`]) or excluded (for [`Values::AllBut`]).
    #[must_use]
    pub fn mentioned(&self) -> &BTreeSet<String> {
        match self {
            Values::Only(v) | Values::AllBut(v) => v,
        }
    }
}

/// What one key may be.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyTest {
    /// Whether the key may be missing.
    pub absent: bool,
    /// The values it may have when present.
    pub values: Values,
}

impl KeyTest {
    /// No constraint.
    #[must_use]
    pub fn free() -> KeyTest {
        KeyTest { absent: true, values: Values::any() }
    }

    /// Whether a label map can pass this test.
    #[must_use]
    pub fn is_satisfiable(&self) -> bool {
        self.absent || !self.values.is_empty()
    }

    /// Whether a key with this value (`None`: absent) passes.
    #[must_use]
    pub fn admits(&self, value: Option<&str>) -> bool {
        value.map_or(self.absent, |v| self.values.contains(v))
    }

    fn intersect(&self, other: &KeyTest) -> KeyTest {
        KeyTest { absent: self.absent && other.absent, values: self.values.intersect(&other.values) }
    }

    fn is_subset(&self, other: &KeyTest) -> bool {
        (!self.absent || other.absent) && self.values.is_subset(&other.values)
    }

    fn of(r: &Requirement) -> KeyTest {
        let values = || r.values.iter().cloned().collect::<BTreeSet<_>>();
        match r.operator {
            Operator::In => KeyTest { absent: false, values: Values::Only(values()) },
            Operator::NotIn => KeyTest { absent: true, values: Values::AllBut(values()) },
            Operator::Exists => KeyTest { absent: false, values: Values::any() },
            Operator::DoesNotExist => KeyTest { absent: true, values: Values::Only(BTreeSet::new()) },
        }
    }
}

/// A set of label maps that is a product of per-key tests (what one selector selects, or the
/// intersection of several). Keys not in the map are free.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conj {
    /// The constrained keys.
    pub keys: BTreeMap<String, KeyTest>,
}

impl Conj {
    /// Every label map.
    #[must_use]
    pub fn everything() -> Conj {
        Conj::default()
    }

    /// What `selector` selects.
    #[must_use]
    pub fn of(selector: &LabelSelector) -> Conj {
        let mut c = Conj::default();
        for (k, v) in &selector.match_labels {
            c.require(k, &KeyTest { absent: false, values: Values::Only(BTreeSet::from([v.clone()])) });
        }
        for r in &selector.match_expressions {
            c.require(&r.key, &KeyTest::of(r));
        }
        c
    }

    /// The namespaces a namespace selector selects: every namespace carries its name label.
    #[must_use]
    pub fn of_namespaces(selector: &LabelSelector) -> Conj {
        let mut c = Conj::of(selector);
        c.require(NAMESPACE_NAME_LABEL, &KeyTest { absent: false, values: Values::any() });
        c
    }

    /// The one namespace named `name`.
    #[must_use]
    pub fn namespace_named(name: &str) -> Conj {
        Conj::of_namespaces(&LabelSelector::namespace_named(name))
    }

    /// Add a test on `key` (AND).
    pub fn require(&mut self, key: &str, test: &KeyTest) {
        match self.keys.get_mut(key) {
            Some(t) => *t = t.intersect(test),
            None => {
                self.keys.insert(key.to_owned(), test.clone());
            }
        }
    }

    /// The test on `key` (free when unconstrained).
    #[must_use]
    pub fn test(&self, key: &str) -> KeyTest {
        self.keys.get(key).cloned().unwrap_or_else(KeyTest::free)
    }

    /// The label maps in both.
    #[must_use]
    pub fn intersect(&self, other: &Conj) -> Conj {
        let mut c = self.clone();
        for (k, t) in &other.keys {
            c.require(k, t);
        }
        c
    }

    /// Whether some label map is in the set.
    #[must_use]
    pub fn is_satisfiable(&self) -> bool {
        self.keys.values().all(KeyTest::is_satisfiable)
    }

    /// Whether every label map of `self` is in `other` (always true when `self` is empty).
    #[must_use]
    pub fn is_subset(&self, other: &Conj) -> bool {
        !self.is_satisfiable()
            || other.keys.iter().all(|(k, t)| self.keys.get(k).unwrap_or(&KeyTest::free()).is_subset(t))
    }

    /// Whether the two sets share a label map.
    #[must_use]
    pub fn overlaps(&self, other: &Conj) -> bool {
        // Key by key, without building the intersection.
        self.is_satisfiable()
            && other.is_satisfiable()
            && other
                .keys
                .iter()
                .all(|(k, t)| self.keys.get(k).is_none_or(|s| s.intersect(t).is_satisfiable()))
    }

    /// Whether `labels` is in the set.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.keys.iter().all(|(k, t)| t.admits(labels.get(k).map(String::as_str)))
    }

    /// A label map in the set, made of the values the tests name where they can, and of
    /// `fresh(key)` where a key must be present with none of the values named; `None` when the
    /// set is empty.
    #[must_use]
    pub fn example(
        &self,
        fresh: impl Fn(&str, &BTreeSet<String>) -> String,
    ) -> Option<BTreeMap<String, String>> {
        let mut labels = BTreeMap::new();
        for (k, t) in &self.keys {
            match &t.values {
                Values::Only(v) if !v.is_empty() => {
                    labels.insert(k.clone(), v.iter().next().expect("non-empty").clone());
                }
                Values::Only(_) if t.absent => {}
                Values::Only(_) => return None,
                Values::AllBut(_) if t.absent => {}
                Values::AllBut(excluded) => {
                    labels.insert(k.clone(), fresh(k, excluded));
                }
            }
        }
        Some(labels)
    }
}

/// The selector selecting exactly the pods both select: `a`'s requirements and those of `b` that
/// `a` does not already imply. `None` when no pod is in both.
#[must_use]
pub fn intersect_selectors(a: &LabelSelector, b: &LabelSelector) -> Option<LabelSelector> {
    let ca = Conj::of(a);
    if !ca.overlaps(&Conj::of(b)) {
        return None;
    }
    let mut out = a.clone();
    for (k, v) in &b.match_labels {
        let pair = LabelSelector::labels([(k.clone(), v.clone())]);
        if !ca.is_subset(&Conj::of(&pair)) {
            out.match_labels.insert(k.clone(), v.clone());
        }
    }
    for r in &b.match_expressions {
        let one = LabelSelector { match_labels: BTreeMap::new(), match_expressions: vec![r.clone()] };
        if !ca.is_subset(&Conj::of(&one)) && !out.match_expressions.contains(r) {
            out.match_expressions.push(r.clone());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(pairs: &[(&str, &str)]) -> Conj {
        Conj::of(&LabelSelector::labels(pairs.iter().copied()))
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Conj {
        Conj::of(&LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: key.into(),
                operator,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            }],
        })
    }

    #[test]
    fn a_narrower_selector_is_a_subset_and_overlaps() {
        let wide = sel(&[("app", "bookstore")]);
        let narrow = sel(&[("app", "bookstore"), ("role", "api")]);
        assert!(narrow.is_subset(&wide) && !wide.is_subset(&narrow));
        assert!(wide.overlaps(&narrow));
    }

    #[test]
    fn different_values_of_one_key_do_not_overlap_other_keys_do() {
        assert!(!sel(&[("app", "a")]).overlaps(&sel(&[("app", "b")])));
        assert!(sel(&[("app", "a")]).overlaps(&sel(&[("tier", "b")])));
    }

    #[test]
    fn set_operators_are_exact() {
        // `app in (a, b)` covers `app=a`, which syntactic comparison cannot see.
        assert!(sel(&[("app", "a")]).is_subset(&req("app", Operator::In, &["a", "b"])));
        // `app notin (a)` includes pods without the key; `app` (exists) does not.
        assert!(!req("app", Operator::NotIn, &["a"]).is_subset(&req("app", Operator::Exists, &[])));
        assert!(req("app", Operator::NotIn, &["a"]).overlaps(&req("app", Operator::DoesNotExist, &[])));
        assert!(!req("app", Operator::Exists, &[]).overlaps(&req("app", Operator::DoesNotExist, &[])));
        assert!(!sel(&[("app", "a")]).overlaps(&req("app", Operator::NotIn, &["a"])));
        // Everything but `a` and everything but `b` still share infinitely many values.
        assert!(req("app", Operator::NotIn, &["a"]).overlaps(&req("app", Operator::NotIn, &["b"])));
    }

    #[test]
    fn an_empty_set_is_a_subset_of_anything() {
        let empty = sel(&[("app", "a")]).intersect(&sel(&[("app", "b")]));
        assert!(!empty.is_satisfiable());
        assert!(empty.is_subset(&sel(&[("x", "y")])));
        assert!(empty.example(|_, _| "z".into()).is_none());
    }

    #[test]
    fn examples_are_members() {
        let c = sel(&[("app", "a")])
            .intersect(&req("tier", Operator::NotIn, &["x"]))
            .intersect(&req("env", Operator::Exists, &[]).intersect(&req("env", Operator::NotIn, &["dev"])));
        let labels = c.example(|_, _| "other".into()).expect("satisfiable");
        assert!(c.matches(&labels), "{labels:?}");
    }

    #[test]
    fn namespaces_always_carry_their_name() {
        let named = Conj::namespace_named("shop");
        let all = Conj::of_namespaces(&LabelSelector::everything());
        assert!(named.is_subset(&all));
        assert!(!all.overlaps(&req(NAMESPACE_NAME_LABEL, Operator::DoesNotExist, &[])));
        assert!(!named.overlaps(&Conj::namespace_named("other")));
    }

    #[test]
    fn intersection_selector_selects_both_and_drops_what_is_implied() {
        let a = LabelSelector::labels([("app", "bookstore"), ("role", "api")]);
        let b = LabelSelector::labels([("app", "bookstore")]);
        assert_eq!(intersect_selectors(&a, &b), Some(a.clone()));
        let c = LabelSelector::labels([("tier", "web")]);
        let both = intersect_selectors(&b, &c).expect("overlap");
        assert_eq!(Conj::of(&both), Conj::of(&b).intersect(&Conj::of(&c)));
        assert_eq!(intersect_selectors(&b, &LabelSelector::labels([("app", "x")])), None);
    }
}
