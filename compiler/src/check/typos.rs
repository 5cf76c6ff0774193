//! W0101's typo search: for an undeclared name used once, the nearest other name it may have
//! meant.
//!
//! The definition (kept verbatim as [`tests::nearest_pairwise`]): of the candidates of the
//! name's namespace, then those seen from every namespace (externals), keep those that are
//! another name; that are used more than once, or (used once too) come earlier, are at least 6
//! characters long and start with the same letter; whose length differs by at most 2; that are
//! not the name with other digits (`web-1`, `web-2`: numbered siblings); and that lie within the
//! typo budget ([`typo_budget`] of the shorter, in Damerau-Levenshtein distance). The nearest
//! wins, then the first written.
//!
//! Comparing every name with every other costs n^2: 20k names used once took 15 s, and a
//! generated program of 600k names never finished. So names are looked up by *deletion
//! variants*: two names within distance `d` become one string by deleting at most `d`
//! characters from each, so only names that share a variant can be near. Two more things keep
//! the search linear on generated programs, where `t0` .. `t599999` are all within two edits of
//! thousands of others:
//! - each variant's names are grouped by their *skeleton* (the name without its digits), and the
//!   group of the name's own skeleton, its numbered siblings, is skipped without being read;
//! - names one edit away are looked up first, through the variants of at most one deletion
//!   (every pair one edit apart shares one: a substitution or transposition deletes the same
//!   character on both sides, an insertion one on one side); only when none qualifies are the
//!   two-deletion variants read. When more than [`CROWD`] other names lie within reach at
//!   either step, the name is one of a crowd of look-alikes, a generated program's and not a
//!   typed one, and no suggestion is made for it.
//!
//! On every program with fewer look-alikes than that the result is the definition's (property
//! test [`tests::the_index_finds_what_the_pairwise_definition_finds`]).

use std::collections::HashMap;

use super::Loc;

/// A name a typo may have meant: the name, where it is declared or first used, and whether it
/// is used once itself (then it may be the misspelt one).
pub(super) type Candidate<'a> = (&'a str, Loc, bool);

/// More distinct names than this within reach (other than numbered siblings) and a name gets no
/// suggestion: it is one of a crowd of generated look-alikes.
pub(super) const CROWD: usize = 256;

/// Names longer than a label value may be (an error of its own) are not searched: their
/// variants would cost the square of their length.
const LONGEST: usize = 63;

/// The candidates of each list (a namespace, or `""` for what every namespace sees), indexed.
pub(super) struct Typos<'a> {
    lists: HashMap<&'a str, List<'a>>,
    /// Interned skeletons (names without their digits).
    skeletons: HashMap<String, u32>,
    /// Per list entry, the query that last met it: each candidate is counted once per query.
    seen: HashMap<&'a str, Vec<u32>>,
    query: u32,
    /// Candidates met so far, over all queries (what the search cost).
    met: usize,
}

struct List<'a> {
    names: Vec<Candidate<'a>>,
    /// Variants of at most one deletion ...
    one: Index,
    /// ... and every variant within the name's budget.
    two: Index,
}

/// Names by variant, in *groups* of one variant and one skeleton: `groups` holds (variant,
/// skeleton, where its names start in `names`), sorted, and a directory of where each value of
/// the variant's top bits starts in `groups`. A variant's groups are found with two reads and a
/// search among the few groups of its slot, and a group is skipped whole however many names it
/// holds (numbered siblings: thousands).
struct Index {
    groups: Vec<(u32, u32, u32)>,
    names: Vec<u32>,
    starts: Vec<u32>,
    shift: u32,
}

impl Index {
    /// From (variant, skeleton, name index) entries.
    fn new(mut entries: Vec<(u32, u32, u32)>) -> Index {
        entries.sort_unstable();
        let mut groups: Vec<(u32, u32, u32)> = Vec::new();
        let mut names = Vec::with_capacity(entries.len());
        for (v, skeleton, i) in entries {
            if groups.last().is_none_or(|g| (g.0, g.1) != (v, skeleton)) {
                groups.push((v, skeleton, u32::try_from(names.len()).unwrap_or(u32::MAX)));
            }
            names.push(i);
        }
        let bits = groups.len().next_power_of_two().trailing_zeros().clamp(1, 31);
        let shift = 32 - bits;
        let mut starts = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0;
        for slot in 0..=(1u32 << bits) {
            while at < groups.len() && groups[at].0 >> shift < slot {
                at += 1;
            }
            starts.push(u32::try_from(at).unwrap_or(u32::MAX));
        }
        Index { groups, names, starts, shift }
    }

    /// The names of variant `v`, group by group, but for those of skeleton `skip`.
    fn near(&self, v: u32, skip: u32) -> impl Iterator<Item = u32> + '_ {
        let slot = (v >> self.shift) as usize;
        let (first, end) = (self.starts[slot] as usize, self.starts[slot + 1] as usize);
        let slot = &self.groups[first..end];
        let from = first + slot.partition_point(|g| g.0 < v);
        let to = first + slot.partition_point(|g| g.0 <= v);
        (from..to).filter(move |&g| self.groups[g].1 != skip).flat_map(move |g| {
            let start = self.groups[g].2 as usize;
            let end = self.groups.get(g + 1).map_or(self.names.len(), |n| n.2 as usize);
            self.names[start..end].iter().copied()
        })
    }
}

/// What a step of the search found.
enum Step<'a> {
    Crowd,
    Best(Option<(usize, Candidate<'a>)>),
}

impl<'a> Typos<'a> {
    /// Indexes the candidates, each list in the order given (the order ties are broken in).
    pub(super) fn new(lists: HashMap<&'a str, Vec<Candidate<'a>>>) -> Typos<'a> {
        let mut skeletons = HashMap::new();
        let mut seen = HashMap::new();
        let lists = lists
            .into_iter()
            .map(|(list, names)| {
                let (mut one, mut two) = (Vec::new(), Vec::new());
                for (i, (name, _, _)) in names.iter().enumerate() {
                    if name.chars().count() > LONGEST {
                        continue;
                    }
                    let next = u32::try_from(skeletons.len()).unwrap_or(u32::MAX);
                    let skeleton = *skeletons.entry(without_digits(name)).or_insert(next);
                    let i = u32::try_from(i).unwrap_or(u32::MAX);
                    let budget = typo_budget(name.len());
                    one.extend(deletion_variants(name, budget.min(1)).into_iter().map(|v| (v, skeleton, i)));
                    two.extend(deletion_variants(name, budget).into_iter().map(|v| (v, skeleton, i)));
                }
                seen.insert(list, vec![0; names.len()]);
                (list, List { names, one: Index::new(one), two: Index::new(two) })
            })
            .collect();
        Typos { lists, skeletons, seen, query: 0, met: 0 }
    }

    /// The name `name` (used once, at `at`, in namespace `ns`) probably meant, if any.
    pub(super) fn nearest(&mut self, ns: &str, name: &str, at: Loc) -> Option<Candidate<'a>> {
        if name.chars().count() > LONGEST {
            return None;
        }
        let skeleton = self.skeletons.get(&without_digits(name)).copied().unwrap_or(u32::MAX);
        let budget = typo_budget(name.len());
        match self.step(ns, name, at, skeleton, &deletion_variants(name, budget.min(1)), false) {
            Step::Crowd => None,
            Step::Best(Some((1, c))) => Some(c),
            Step::Best(best) if budget < 2 => best.map(|(_, c)| c),
            Step::Best(_) => {
                match self.step(ns, name, at, skeleton, &deletion_variants(name, budget), true) {
                    Step::Crowd => None,
                    Step::Best(best) => best.map(|(_, c)| c),
                }
            }
        }
    }

    /// The nearest qualifying candidate among those sharing a variant (`two`: of up to two
    /// deletions, else of at most one).
    fn step(
        &mut self,
        ns: &str,
        name: &str,
        at: Loc,
        skeleton: u32,
        variants: &[u32],
        two: bool,
    ) -> Step<'a> {
        self.query += 1;
        let mut met = 0;
        let mut found: Vec<(&List<'a>, Vec<u32>)> = Vec::new();
        for list in [ns, ""] {
            let (Some(l), Some(seen)) = (self.lists.get(list), self.seen.get_mut(list)) else { continue };
            let index = if two { &l.two } else { &l.one };
            let mut near = Vec::new();
            for &v in variants {
                // The name's numbered siblings are one group: skipped unread.
                for i in index.near(v, skeleton) {
                    let mark = &mut seen[i as usize];
                    if *mark != self.query {
                        *mark = self.query;
                        near.push(i);
                        met += 1;
                        self.met += 1;
                        if met > CROWD {
                            return Step::Crowd;
                        }
                    }
                }
            }
            near.sort_unstable();
            found.push((l, near));
        }
        let best = found
            .iter()
            .flat_map(|(l, near)| near.iter().map(|&i| l.names[i as usize]))
            .filter(|c| qualifies(name, at, c))
            .map(|c| (strsim::damerau_levenshtein(name, c.0), c))
            .filter(|(d, c)| *d <= typo_budget(name.len().min(c.0.len())))
            .min_by_key(|(d, c)| (*d, c.1));
        Step::Best(best)
    }
}

/// The filters of the definition but for the distance (and the skeleton, which the index skips).
fn qualifies(name: &str, at: Loc, (cname, cat, once): &Candidate) -> bool {
    // Of two names used once, only the later one is reported; and since neither is known to be
    // right, only for names long enough to be typed, alike from their first letter (`v100` and
    // `w100` are two names, `loadgenerater` a typo).
    *cname != name
        && (!*once || (*cat < at && name.len().min(cname.len()) >= 6 && cname[..1] == name[..1]))
        && cname.len().abs_diff(name.len()) <= 2
}

fn without_digits(name: &str) -> String {
    name.chars().filter(|c| !c.is_ascii_digit()).collect()
}

/// Hashes of the strings made from `name` by deleting at most `k` (0 to 2) of its characters,
/// each once. Two names within Damerau-Levenshtein distance `d` become one string by deleting
/// at most `d` characters from each (a substitution or transposition deletes one character on
/// each side, an insertion one on one side), so names that share no such hash are further
/// apart. (A hash shared by two other strings only adds a candidate that the distance drops.)
///
/// Polynomial hashes of the prefix let each variant be hashed in constant time: the hash of a
/// concatenation is `h(x) * B^|y| + h(y)`.
pub(super) fn deletion_variants(name: &str, k: usize) -> Vec<u32> {
    const B: u64 = 0x9E37_79B9_7F4A_7C15 | 1;
    let chars: Vec<u64> = name.chars().map(|c| u64::from(c) + 1).collect();
    let n = chars.len();
    let mut prefix = vec![0u64; n + 1];
    let mut pow = vec![1u64; n + 1];
    for (t, c) in chars.iter().enumerate() {
        prefix[t + 1] = prefix[t].wrapping_mul(B).wrapping_add(*c);
        pow[t + 1] = pow[t].wrapping_mul(B);
    }
    let part = |a: usize, b: usize| prefix[b].wrapping_sub(prefix[a].wrapping_mul(pow[b - a]));
    let finish = |h: u64, len: usize| {
        let h = (h ^ (len as u64).wrapping_mul(0xFF51_AFD7_ED55_8CCD)).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        (h >> 32) as u32
    };
    let mut out = vec![finish(prefix[n], n)];
    for i in 0..n {
        if k >= 1 {
            out.push(finish(part(0, i).wrapping_mul(pow[n - i - 1]).wrapping_add(part(i + 1, n)), n - 1));
        }
        if k >= 2 {
            for j in i + 1..n {
                let h = part(0, i)
                    .wrapping_mul(pow[n - i - 2])
                    .wrapping_add(part(i + 1, j).wrapping_mul(pow[n - j - 1]))
                    .wrapping_add(part(j + 1, n));
                out.push(finish(h, n - 2));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// How many edits a name of `len` characters may be from the name it meant.
pub(super) fn typo_budget(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Span;

    /// The definition: every candidate compared with the name.
    pub(super) fn nearest_pairwise<'a>(
        lists: &HashMap<&'a str, Vec<Candidate<'a>>>,
        ns: &str,
        name: &str,
        at: Loc,
    ) -> Option<Candidate<'a>> {
        let list = |l: &str| lists.get(l).into_iter().flatten().copied();
        list(ns)
            .chain(list(""))
            .filter(|c| qualifies(name, at, c))
            .filter(|(cname, _, _)| without_digits(cname) != without_digits(name))
            .map(|c| (strsim::damerau_levenshtein(name, c.0), c))
            .filter(|(d, c)| *d <= typo_budget(name.len().min(c.0.len())))
            .min_by_key(|(d, c)| (*d, c.1))
            .map(|(_, c)| c)
    }

    fn at(n: usize) -> Loc {
        let n = u32::try_from(n).expect("a small place");
        Loc { file: 0, span: Span { start: n, end: n + 1 } }
    }

    /// Lists as `typos` builds them: sorted by place, then name.
    fn lists<'a>(names: &'a [(String, usize, bool, bool)]) -> HashMap<&'a str, Vec<Candidate<'a>>> {
        let mut lists: HashMap<&str, Vec<Candidate>> = HashMap::new();
        for (name, place, once, external) in names {
            lists.entry(if *external { "" } else { "ns" }).or_default().push((name, at(*place), *once));
        }
        for l in lists.values_mut() {
            l.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        }
        lists
    }

    proptest::proptest! {
        /// Two names within the typo budget always share a deletion variant, so the index finds
        /// every pair the pairwise comparison found; and one edit apart, a variant of at most
        /// one deletion.
        #[test]
        fn names_within_the_typo_budget_share_a_deletion_variant(
            a in "[abc1-]{0,9}",
            b in "[abc1-]{0,9}",
        ) {
            let d = strsim::damerau_levenshtein(&a, &b);
            let shared = |k: usize, l: usize| {
                let theirs = deletion_variants(&b, l);
                deletion_variants(&a, k).iter().any(|v| theirs.contains(v))
            };
            if d <= typo_budget(a.len().min(b.len())) {
                proptest::prop_assert!(shared(typo_budget(a.len()), typo_budget(b.len())));
            }
            if d == 1 {
                proptest::prop_assert!(shared(1, 1));
            }
        }

        /// On programs without crowds of look-alikes, the index finds the definition's name for
        /// every name used once.
        #[test]
        fn the_index_finds_what_the_pairwise_definition_finds(
            names in proptest::collection::vec(("[ab1-]{1,2}[abc]{2,6}[1-]{0,2}", 0..40usize, proptest::bool::ANY, proptest::bool::weighted(0.2)), 0..40),
        ) {
            let lists = lists(&names);
            let mut typos = Typos::new(lists.clone());
            for (name, place, once, external) in &names {
                if *once && !*external {
                    proptest::prop_assert_eq!(
                        typos.nearest("ns", name, at(*place)),
                        nearest_pairwise(&lists, "ns", name, at(*place)),
                        "{}", name
                    );
                }
            }
        }
    }

    /// Numbered names are each within two edits of thousands of others, all siblings: the
    /// search reads none of them, and still finds the real typos among them.
    #[test]
    fn numbered_siblings_are_not_read_and_real_typos_among_them_are_found() {
        let mut names: Vec<(String, usize, bool, bool)> =
            (1_000_000..1_100_000).map(|i| (format!("t{i}"), i, true, false)).collect();
        names.push(("frontend".into(), 0, false, false));
        names.push(("loadgenerator".into(), 1, true, false));
        names.push(("frontned".into(), 2_000_000, true, false));
        names.push(("loadgenerater".into(), 2_000_001, true, false));
        names.push(("backend".into(), 2, false, true));
        names.push(("bakend".into(), 2_000_002, true, false));
        names.push(("tt1004711".into(), 2_000_003, true, false));
        names.push(("t1004711x".into(), 2_000_004, true, false));
        let lists = lists(&names);
        let mut typos = Typos::new(lists.clone());
        let mut near = |name: &str, place: usize| {
            let found = typos.nearest("ns", name, at(place));
            assert_eq!(found, nearest_pairwise(&lists, "ns", name, at(place)), "{name}: as the definition");
            found.map(|c| c.0)
        };
        assert_eq!(near("frontned", 2_000_000), Some("frontend"));
        assert_eq!(near("loadgenerater", 2_000_001), Some("loadgenerator"));
        assert_eq!(near("bakend", 2_000_002), Some("backend"), "an external");
        assert_eq!(near("tt1004711", 2_000_003), Some("t1004711"), "a letter too many");
        assert_eq!(near("t1004711x", 2_000_004), Some("t1004711"), "a letter too many");
        for i in [1_000_000, 1_000_007, 1_004_711, 1_099_999] {
            assert_eq!(near(&format!("t{i}"), i), None, "t{i}: numbered siblings are no typos");
        }
        // The siblings were never read: all queries together met a few hundred names.
        assert!(typos.met < 1_000, "{} names met", typos.met);
    }

    /// A name with hundreds of look-alikes one edit away is one of a generated crowd: no
    /// suggestion (the definition would pick one), and no more than [`CROWD`] of them read.
    #[test]
    fn a_crowd_of_lookalikes_gets_no_suggestion() {
        let name = "abcdefgh";
        let mut crowd = std::collections::BTreeSet::new();
        for i in 0..=name.len() {
            for c in 'a'..='z' {
                crowd.insert(format!("{}{c}{}", &name[..i], &name[i..]));
                if i < name.len() {
                    crowd.insert(format!("{}{c}{}", &name[..i], &name[i + 1..]));
                }
            }
        }
        crowd.remove(name);
        assert!(crowd.len() > CROWD);
        let mut names: Vec<(String, usize, bool, bool)> =
            crowd.into_iter().enumerate().map(|(i, n)| (n, i, true, false)).collect();
        names.push((name.into(), 10_000, true, false));
        let lists = lists(&names);
        assert!(nearest_pairwise(&lists, "ns", name, at(10_000)).is_some(), "the definition picks one");
        let mut typos = Typos::new(lists);
        assert_eq!(typos.nearest("ns", name, at(10_000)), None);
        assert_eq!(typos.met, CROWD + 1);
    }
}
