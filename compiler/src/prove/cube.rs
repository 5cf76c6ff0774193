//! Cubes over finite dimensions, and the search for a point of one cube outside a union of others.
//!
//! Every question the prover asks about flows ends as "is there a point of this product set that
//! none of these product sets contains?". Each dimension is a finite domain (the values of one
//! label key that the program mentions, plus "another value" and "absent"; the address ranges the
//! program's blocks cut; the port ranges its rules cut), so a product set is a *cube*: one subset
//! per dimension, stored only where it is not the whole domain.
//!
//! [`find_outside`] splits the cube along the first cube of the union that meets it (the part
//! outside that cube is a disjoint union of at most one piece per dimension it constrains) and
//! recurses on each piece with the rest of the union. It is exact; its cost grows with how many
//! cubes of the union meet each piece, which for NetworkPolicy rules (selectors of one workload,
//! a few peers) stays small.

/// A dimension's index.
pub type Dim = u32;

/// A subset of a finite domain `0..n`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bits(Vec<u64>);

impl Bits {
    /// The whole domain of `n` values.
    #[must_use]
    pub fn full(n: u32) -> Bits {
        let words = (n as usize).div_ceil(64);
        let mut v = vec![u64::MAX; words];
        let rest = n % 64;
        if rest != 0
            && let Some(last) = v.last_mut()
        {
            *last = (1u64 << rest) - 1;
        }
        Bits(v)
    }

    /// No value of a domain of `n`.
    #[must_use]
    pub fn empty(n: u32) -> Bits {
        Bits(vec![0; (n as usize).div_ceil(64)])
    }

    /// Add value `i`.
    pub fn insert(&mut self, i: u32) {
        self.0[(i / 64) as usize] |= 1u64 << (i % 64);
    }

    /// Whether value `i` is in.
    #[must_use]
    pub fn contains(&self, i: u32) -> bool {
        self.0.get((i / 64) as usize).is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// Whether all `n` values of the domain are in (without building [`Bits::full`]).
    #[must_use]
    pub fn is_full(&self, n: u32) -> bool {
        let whole = (n / 64) as usize;
        let rest = n % 64;
        self.0.len() == (n as usize).div_ceil(64)
            && self.0[..whole].iter().all(|w| *w == u64::MAX)
            && (rest == 0 || self.0[whole] == (1u64 << rest) - 1)
    }

    /// Whether no value is in.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    /// The values in both.
    #[must_use]
    pub fn and(&self, other: &Bits) -> Bits {
        Bits(self.0.iter().zip(&other.0).map(|(a, b)| a & b).collect())
    }

    /// The values of `self` not in `other`.
    #[must_use]
    pub fn and_not(&self, other: &Bits) -> Bits {
        Bits(self.0.iter().zip(&other.0).map(|(a, b)| a & !b).collect())
    }

    /// Whether every value of `self` is in `other`.
    #[must_use]
    pub fn is_subset(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).all(|(a, b)| a & !b == 0)
    }

    /// Whether some value is in both.
    #[must_use]
    pub fn intersects(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    /// How many values are in.
    #[must_use]
    pub fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// The values in, smallest first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(w, word)| {
            (0..64u32)
                .filter(move |b| word & (1u64 << b) != 0)
                .map(move |b| u32::try_from(w).unwrap_or(0) * 64 + b)
        })
    }
}

/// A product set: for each constrained dimension, the values allowed (never empty, never the
/// whole domain); every other dimension is free. Sorted by dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Cube {
    dims: Vec<(Dim, Bits)>,
}

impl Cube {
    /// Every point.
    #[must_use]
    pub fn full() -> Cube {
        Cube::default()
    }

    /// The values allowed on `d` (`None`: all of them).
    #[must_use]
    pub fn get(&self, d: Dim) -> Option<&Bits> {
        self.dims.binary_search_by_key(&d, |(x, _)| *x).ok().map(|i| &self.dims[i].1)
    }

    /// Narrow dimension `d` to `bits` (AND). Returns `false` when the cube became empty.
    pub fn restrict(&mut self, d: Dim, bits: &Bits, sizes: &[u32]) -> bool {
        match self.dims.binary_search_by_key(&d, |(x, _)| *x) {
            Ok(i) => {
                let b = self.dims[i].1.and(bits);
                let empty = b.is_empty();
                self.dims[i].1 = b;
                !empty
            }
            Err(i) => {
                if bits.is_empty() {
                    self.dims.insert(i, (d, bits.clone()));
                    return false;
                }
                if !bits.is_full(sizes[d as usize]) {
                    self.dims.insert(i, (d, bits.clone()));
                }
                true
            }
        }
    }

    /// Whether some dimension allows nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.dims.iter().any(|(_, b)| b.is_empty())
    }

    /// The intersection, or `None` when it is empty.
    #[must_use]
    pub fn meet(&self, other: &Cube) -> Option<Cube> {
        // Most pairs the prover tries do not meet: find out before building anything.
        if !self.intersects(other) {
            return None;
        }
        let mut out = Vec::with_capacity(self.dims.len() + other.dims.len());
        let (mut i, mut j) = (0, 0);
        while i < self.dims.len() || j < other.dims.len() {
            let a = self.dims.get(i);
            let b = other.dims.get(j);
            match (a, b) {
                (Some((da, ba)), Some((db, bb))) if da == db => {
                    let m = ba.and(bb);
                    if m.is_empty() {
                        return None;
                    }
                    out.push((*da, m));
                    i += 1;
                    j += 1;
                }
                (Some((da, ba)), Some((db, _))) if da < db => {
                    out.push((*da, ba.clone()));
                    i += 1;
                }
                (Some(_) | None, Some((db, bb))) => {
                    out.push((*db, bb.clone()));
                    j += 1;
                }
                (Some((da, ba)), None) => {
                    out.push((*da, ba.clone()));
                    i += 1;
                }
                (None, None) => break,
            }
        }
        Some(Cube { dims: out })
    }

    /// Whether the two share a point.
    #[must_use]
    pub fn intersects(&self, other: &Cube) -> bool {
        let (mut i, mut j) = (0, 0);
        while i < self.dims.len() && j < other.dims.len() {
            let (da, ba) = &self.dims[i];
            let (db, bb) = &other.dims[j];
            match da.cmp(db) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    if !ba.intersects(bb) {
                        return false;
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        true
    }

    /// Whether every point of `other` is in `self` (`other` not empty).
    #[must_use]
    pub fn contains(&self, other: &Cube) -> bool {
        self.dims.iter().all(|(d, b)| other.get(*d).is_some_and(|o| o.is_subset(b)))
    }

    /// The constrained dimensions.
    pub fn dims(&self) -> impl Iterator<Item = (Dim, &Bits)> {
        self.dims.iter().map(|(d, b)| (*d, b))
    }
}

/// At most this many values on a dimension for a cube to be filed under each of them.
const FEW: u32 = 4;

/// A list of cubes, indexed so that "which of them meet this cube?" looks at a few candidates
/// instead of all of them (the prover asks it for every claim, over every rule of a program).
///
/// Each cube is filed, for every dimension on which it allows at most `FEW` (4) values, under each
/// of those values; on the other dimensions it is *loose*. A cube can meet a query `q` that
/// allows the values `B` on dimension `d` only if it is loose on `d` or filed under a value of
/// `B`. A query uses the one dimension that leaves the fewest candidates, then decides each
/// candidate exactly ([`Cube::intersects`]): the index only skips cubes that cannot meet.
#[derive(Debug, Default)]
pub struct CubeIndex {
    cubes: Vec<Cube>,
    /// The dimensions indexed, ascending.
    dims: Vec<Dim>,
    /// Per indexed dimension: per value, the positions of the cubes filed under it (ascending).
    filed: Vec<Vec<Vec<u32>>>,
    /// Per indexed dimension: the positions of the cubes loose on it (ascending).
    loose: Vec<Vec<u32>>,
}

impl CubeIndex {
    /// Index `cubes` of a space whose dimensions have `sizes[d]` values.
    #[must_use]
    pub fn new(cubes: Vec<Cube>, sizes: &[u32]) -> CubeIndex {
        // A dimension is worth indexing when a filed cube leaves most of its values out.
        let worth = |d: Dim| sizes.get(d as usize).is_some_and(|n| *n > 2 * FEW);
        let mut dims: Vec<Dim> = cubes
            .iter()
            .flat_map(|c| c.dims().filter(|(d, b)| worth(*d) && b.len() <= FEW).map(|(d, _)| d))
            .collect();
        dims.sort_unstable();
        dims.dedup();
        let mut filed: Vec<Vec<Vec<u32>>> =
            dims.iter().map(|d| vec![Vec::new(); sizes[*d as usize] as usize]).collect();
        let mut loose: Vec<Vec<u32>> = vec![Vec::new(); dims.len()];
        for (i, c) in cubes.iter().enumerate() {
            let i = u32::try_from(i).expect("fewer than 2^32 cubes");
            let mut own = c.dims.iter().peekable();
            for (k, d) in dims.iter().enumerate() {
                while own.next_if(|(x, _)| x < d).is_some() {}
                match own.peek() {
                    Some((x, b)) if x == d && b.len() <= FEW => {
                        for v in b.iter() {
                            filed[k][v as usize].push(i);
                        }
                    }
                    _ => loose[k].push(i),
                }
            }
        }
        CubeIndex { cubes, dims, filed, loose }
    }

    /// Every cube, in order.
    #[must_use]
    pub fn all(&self) -> Vec<&Cube> {
        self.cubes.iter().collect()
    }

    /// The cubes that meet `q`, in their order.
    #[must_use]
    pub fn meeting(&self, q: &Cube) -> Vec<&Cube> {
        // The dimension of `q` that leaves the fewest candidates.
        let mut best: Option<(usize, usize, &Bits)> = None;
        for (d, b) in q.dims() {
            let Ok(k) = self.dims.binary_search(&d) else { continue };
            if b.len() > 16 {
                continue;
            }
            let count = self.loose[k].len()
                + b.iter().map(|v| self.filed[k].get(v as usize).map_or(0, Vec::len)).sum::<usize>();
            if best.is_none_or(|(n, _, _)| count < n) {
                best = Some((count, k, b));
            }
        }
        let Some((_, k, b)) = best else {
            return self.cubes.iter().filter(|c| c.intersects(q)).collect();
        };
        let mut ids: Vec<u32> = self.loose[k].clone();
        for v in b.iter() {
            if let Some(list) = self.filed[k].get(v as usize) {
                ids.extend_from_slice(list);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().map(|i| &self.cubes[i as usize]).filter(|c| c.intersects(q)).collect()
    }
}

/// A point of `cube` (as a sub-cube, every point of which will do) in none of `union`; `None`
/// when `union` covers `cube`. `sizes[d]` is the size of dimension `d`'s domain.
#[must_use]
pub fn find_outside(cube: &Cube, union: &[&Cube], sizes: &[u32]) -> Option<Cube> {
    if cube.is_empty() {
        return None;
    }
    let meeting: Vec<&Cube> = union.iter().copied().filter(|c| c.intersects(cube)).collect();
    search(cube.clone(), &meeting, sizes)
}

fn search(cube: Cube, union: &[&Cube], sizes: &[u32]) -> Option<Cube> {
    let Some((first, rest)) = union.split_first() else { return Some(cube) };
    if !first.intersects(&cube) {
        return search(cube, rest, sizes);
    }
    if first.contains(&cube) {
        return None;
    }
    // cube \ first = for each dimension d that `first` constrains: the points that agree with
    // `first` on the dimensions before d and leave it on d. Disjoint pieces, none meeting `first`.
    let mut base = cube;
    for (d, bits) in first.dims() {
        let here = base.get(d).cloned().unwrap_or_else(|| Bits::full(sizes[d as usize]));
        let outside = here.and_not(bits);
        if !outside.is_empty() {
            let mut piece = base.clone();
            piece.restrict(d, &outside, sizes);
            let still: Vec<&Cube> = rest.iter().copied().filter(|c| c.intersects(&piece)).collect();
            if let Some(found) = search(piece, &still, sizes) {
                return Some(found);
            }
        }
        if !base.restrict(d, bits, sizes) {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(n: u32, values: &[u32]) -> Bits {
        let mut b = Bits::empty(n);
        for v in values {
            b.insert(*v);
        }
        b
    }

    fn cube(sizes: &[u32], dims: &[(Dim, &[u32])]) -> Cube {
        let mut c = Cube::full();
        for (d, values) in dims {
            c.restrict(*d, &bits(sizes[*d as usize], values), sizes);
        }
        c
    }

    /// Every point of a small space, for brute force.
    fn points(sizes: &[u32]) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new()];
        for &n in sizes {
            out = out.into_iter().flat_map(|p| (0..n).map(move |v| [p.clone(), vec![v]].concat())).collect();
        }
        out
    }

    fn member(c: &Cube, p: &[u32]) -> bool {
        c.dims().all(|(d, b)| b.contains(p[d as usize]))
    }

    #[test]
    fn the_index_finds_exactly_the_cubes_that_meet_in_order() {
        let sizes = [3, 3, 2, 9];
        let family = vec![
            cube(&sizes, &[(0, &[0])]),
            cube(&sizes, &[(0, &[1, 2]), (1, &[0])]),
            cube(&sizes, &[(1, &[1, 2]), (2, &[1])]),
            cube(&sizes, &[(2, &[0])]),
            Cube::full(),
            cube(&sizes, &[(0, &[2]), (1, &[1, 2]), (3, &[0, 1, 2, 3, 4, 5])]),
            cube(&sizes, &[(0, &[1]), (2, &[1]), (3, &[7])]),
            cube(&sizes, &[(3, &[8])]),
        ];
        let index = CubeIndex::new(family.clone(), &sizes);
        let queries = [
            Cube::full(),
            cube(&sizes, &[(0, &[0])]),
            cube(&sizes, &[(0, &[1]), (3, &[7, 8])]),
            cube(&sizes, &[(1, &[1]), (2, &[1])]),
            cube(&sizes, &[(3, &[1, 2, 3, 4, 5, 6, 7])]),
            cube(&sizes, &[(0, &[2]), (1, &[0]), (3, &[8])]),
        ];
        let mut skipped = false;
        for q in &queries {
            let brute: Vec<&Cube> = family.iter().filter(|c| c.intersects(q)).collect();
            assert_eq!(index.meeting(q), brute, "{q:?}");
            skipped |= brute.len() < family.len();
        }
        assert!(skipped, "some query leaves some cube out");
    }

    #[test]
    fn full_bits_have_exactly_n_values() {
        assert_eq!(Bits::full(3).iter().collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Bits::full(64).iter().count(), 64);
        assert_eq!(Bits::full(65).iter().count(), 65);
    }

    #[test]
    fn a_union_that_covers_by_pieces_leaves_nothing() {
        let sizes = [3, 2];
        let c = Cube::full();
        let a = cube(&sizes, &[(0, &[0, 1])]);
        let b = cube(&sizes, &[(0, &[2]), (1, &[0])]);
        let found = find_outside(&c, &[&a, &b], &sizes).expect("(2, 1) is outside");
        assert!(member(&found, &[2, 1]));
        let d = cube(&sizes, &[(0, &[2]), (1, &[1])]);
        assert_eq!(find_outside(&c, &[&a, &b, &d], &sizes), None);
    }

    #[test]
    fn search_agrees_with_brute_force() {
        // Every union of up to four cubes from a fixed family over a 3x3x2 space.
        let sizes = [3, 3, 2];
        let family = [
            cube(&sizes, &[(0, &[0])]),
            cube(&sizes, &[(0, &[1, 2]), (1, &[0])]),
            cube(&sizes, &[(1, &[1, 2]), (2, &[1])]),
            cube(&sizes, &[(2, &[0])]),
            cube(&sizes, &[(0, &[2]), (1, &[1, 2])]),
            cube(&sizes, &[(0, &[1]), (2, &[1])]),
        ];
        let all = points(&sizes);
        for mask in 0u32..64 {
            let union: Vec<&Cube> =
                family.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, c)| c).collect();
            for target in [Cube::full(), cube(&sizes, &[(1, &[0, 2])])] {
                let brute = all.iter().any(|p| member(&target, p) && !union.iter().any(|c| member(c, p)));
                let found = find_outside(&target, &union, &sizes);
                assert_eq!(found.is_some(), brute, "mask {mask:b}");
                if let Some(f) = found {
                    let p: Vec<u32> = (0..3u32)
                        .map(|d| f.get(d).map_or(0, |b| b.iter().next().expect("not empty")))
                        .collect();
                    assert!(member(&target, &p) && !union.iter().any(|c| member(c, &p)), "{p:?}");
                }
            }
        }
    }
}
