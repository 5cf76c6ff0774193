//! An index of selectors by the `key=value` pairs they pin, so that "which of these selectors
//! can cover this one / share a pod with it" looks at a few candidates instead of all of them.
//!
//! A selector *pins* `key` to `value` when every label map it selects has `key=value` (written
//! `key=value`, or `key in (value)`). Two facts make the index exact as a filter:
//!
//! - If `wide` pins `k=v` and covers a non-empty `narrow`, then `narrow` pins `k=v` too: tests are
//!   per key, so `narrow`'s test on `k` must lie inside `{v}` and still admit something.
//! - If `a` pins `k=v` and `b` pins `k=w` with `v != w`, they share no label map.
//!
//! Each entry is filed under its first pinned pair (or among the unpinned ones); a query returns
//! every entry the facts above do not rule out, in the order the entries were added. The caller
//! still decides each candidate exactly (`Conj::is_subset`, `Conj::overlaps`): the index only
//! skips entries that cannot qualify, so no verdict changes.

use std::collections::HashMap;

use super::labels::{Conj, Values};

/// Entries (caller's ids) filed by their first pinned `key=value` pair.
#[derive(Debug, Clone, Default)]
pub struct SelectorIndex {
    /// The ids in the order they were added.
    ids: Vec<usize>,
    /// Positions (in `ids`) of entries that pin no key, or select nothing.
    unpinned: Vec<usize>,
    /// key -> value -> positions of entries whose first pinned pair it is.
    pinned: HashMap<String, HashMap<String, Vec<usize>>>,
}

/// The `key=value` pairs every label map of `c` has (none when `c` selects nothing: such a
/// selector must stay a candidate for everything, it is covered by anything).
pub fn pins(c: &Conj) -> impl Iterator<Item = (&str, &str)> {
    let satisfiable = c.is_satisfiable();
    c.keys.iter().filter(move |_| satisfiable).filter_map(|(k, t)| match &t.values {
        Values::Only(v) if !t.absent && v.len() == 1 => {
            Some((k.as_str(), v.iter().next().expect("one value").as_str()))
        }
        _ => None,
    })
}

impl SelectorIndex {
    /// File entry `id`, whose selector selects `c`.
    pub fn push(&mut self, id: usize, c: &Conj) {
        let position = self.ids.len();
        self.ids.push(id);
        match pins(c).next() {
            Some((k, v)) => {
                self.pinned.entry(k.to_owned()).or_default().entry(v.to_owned()).or_default().push(position);
            }
            None => self.unpinned.push(position),
        }
    }

    /// The entries that may select every label map of `narrow` (a superset of those that do),
    /// in the order added.
    #[must_use]
    pub fn may_cover(&self, narrow: &Conj) -> Vec<usize> {
        if !narrow.is_satisfiable() {
            return self.ids.clone();
        }
        let mut positions = self.unpinned.clone();
        for (k, v) in pins(narrow) {
            if let Some(list) = self.pinned.get(k).and_then(|values| values.get(v)) {
                positions.extend_from_slice(list);
            }
        }
        self.in_order(positions)
    }

    /// The entries that may share a label map with `c` (a superset of those that do), in the
    /// order added.
    #[must_use]
    pub fn may_overlap(&self, c: &Conj) -> Vec<usize> {
        let mut positions = self.unpinned.clone();
        let own: HashMap<&str, &str> = pins(c).collect();
        for (k, values) in &self.pinned {
            match own.get(k.as_str()) {
                Some(v) => positions.extend(values.get(*v).into_iter().flatten()),
                None => positions.extend(values.values().flatten()),
            }
        }
        self.in_order(positions)
    }

    fn in_order(&self, mut positions: Vec<usize>) -> Vec<usize> {
        positions.sort_unstable();
        positions.dedup();
        positions.into_iter().map(|p| self.ids[p]).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use netc_ir::{LabelSelector, Operator, Requirement};

    use super::*;

    fn selectors() -> Vec<LabelSelector> {
        let req = |key: &str, operator, values: &[&str]| LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: key.into(),
                operator,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            }],
        };
        let mut out = vec![
            LabelSelector::everything(),
            LabelSelector::labels([("app", "a")]),
            LabelSelector::labels([("app", "b")]),
            LabelSelector::labels([("app", "a"), ("tier", "x")]),
            LabelSelector::labels([("tier", "x")]),
            LabelSelector::labels([("tier", "y"), ("app", "b")]),
            req("app", Operator::In, &["a"]),
            req("app", Operator::In, &["a", "b"]),
            req("app", Operator::NotIn, &["a"]),
            req("app", Operator::Exists, &[]),
            req("app", Operator::DoesNotExist, &[]),
            req("tier", Operator::In, &["x"]),
        ];
        // One that selects nothing.
        let mut empty = LabelSelector::labels([("app", "a")]);
        empty.match_expressions.push(Requirement {
            key: "app".into(),
            operator: Operator::In,
            values: vec!["b".into()],
        });
        out.push(empty);
        out
    }

    #[test]
    fn candidates_include_every_selector_that_qualifies() {
        let all = selectors();
        let mut index = SelectorIndex::default();
        for (i, s) in all.iter().enumerate() {
            index.push(i, &Conj::of(s));
        }
        let mut skipped = 0;
        for query in &all {
            let q = Conj::of(query);
            let cover = index.may_cover(&q);
            let overlap = index.may_overlap(&q);
            assert!(cover.is_sorted() && overlap.is_sorted());
            for (i, s) in all.iter().enumerate() {
                let c = Conj::of(s);
                if q.is_subset(&c) {
                    assert!(cover.contains(&i), "{s} covers {query}: must be a candidate");
                }
                if q.overlaps(&c) {
                    assert!(overlap.contains(&i), "{s} overlaps {query}: must be a candidate");
                }
            }
            skipped += 2 * all.len() - cover.len() - overlap.len();
        }
        // And the index does skip something (it is not the whole list every time).
        assert!(skipped > all.len(), "{skipped}");
    }
}
