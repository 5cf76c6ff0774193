//! Dropping the atoms of a door that a wider atom of the same door already lets through, in time
//! near-linear in the atoms for the doors policies are made of.
//!
//! The result is exactly that of the plain definition (kept in the tests as
//! `tests::minimize_pairwise`): remove, one at a time, the first atom that another atom contains
//! (strictly, or equally and earlier), handing its origins to the first such atom still there.
//! Containment is a preorder, so the atoms removed are exactly those with such a container at the
//! start, in the order they stand, and each one's origins go to the first container that is kept
//! or comes after it. [`minimize`] computes that directly; what makes it fast is finding the
//! containers of an atom without comparing it with every other one.
//!
//! # Finding containers
//!
//! An atom `w` can contain an atom `n` only if every *token* `w` requires is one `n` has. `n` has
//! the tokens of what it is: each label pair and each key of its pod (and namespace) selector,
//! its namespace's name, every address block its block lies in, its port's protocol, number or
//! name. `w` requires the tokens every atom inside it must have: the pairs (`app=db`) and keys
//! (`tier in (a, b)`) of its selectors, its namespace's name, its block, its protocol and number.
//! Each atom is filed under the one token it requires that the fewest atoms have, and an atom's
//! containers are looked for only under the tokens it has: one or two candidates each for the
//! peers of one rule (`app=p1`, `app=p2`, ...), instead of all of them. The exact test
//! ([`peer_contains`], [`port_contains`]) still decides; the tokens only choose what is tested.
//!
//! What stays quadratic: many atoms that only differ by what no token tells apart (many port
//! ranges of one protocol on one peer; many `tier in (...)` selectors on one key), and atoms that
//! really are contained by many others.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use netc_ir::{LabelSelector, PortValue, Protocol};

use super::{Atom, NsRef, PeerC, PortC, peer_contains, port_contains};
use crate::prove::Conj;
use crate::prove::labels::{KeyTest, Values};

/// What an atom has or requires, for finding containers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Token {
    /// A label pair of the pod selector, required by a selector that allows only that value.
    PodPair(String, String),
    /// A key the pod selector constrains.
    PodKey(String),
    /// The same for the namespace selector (namespaces chosen by labels).
    NsPair(String, String),
    NsKey(String),
    /// Pods of one namespace by name.
    NsName(String),
    /// An address block (the block's own, and every block around it).
    Block(IpNet),
    /// A port of this protocol.
    Proto(Protocol),
    /// This one port number.
    Number(Protocol, u16),
    /// This named port.
    Name(Protocol, String),
    /// A numeric port (single or range): what a range requires.
    Numeric(Protocol),
}

/// Tokens of a selector: what it has (`required == false`: every key it constrains, every pair
/// it fixes) or requires (`required == true`: the same, leaving out keys it does not constrain
/// at all). `None` when the selector selects nothing (then everything contains it).
fn selector_tokens(
    sel: &LabelSelector,
    required: bool,
    pair: fn(String, String) -> Token,
    key: fn(String) -> Token,
    out: &mut Vec<Token>,
) -> Option<()> {
    let conj = Conj::of(sel);
    if !required && !conj.is_satisfiable() {
        return None;
    }
    for (k, t) in &conj.keys {
        if *t == KeyTest::free() {
            continue;
        }
        let one = match &t.values {
            Values::Only(v) if !t.absent && v.len() == 1 => v.iter().next(),
            _ => None,
        };
        if let Some(v) = one {
            out.push(pair(k.clone(), v.clone()));
        }
        if one.is_none() || !required {
            out.push(key(k.clone()));
        }
    }
    Some(())
}

/// The tokens an atom has; `None` when any atom may contain it (it matches nothing).
fn has(a: &Atom) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    match &a.peer {
        PeerC::Any => {}
        PeerC::Pods { ns, pods } => {
            selector_tokens(pods, false, Token::PodPair, Token::PodKey, &mut out)?;
            match ns {
                NsRef::Named(name) => out.push(Token::NsName(name.clone())),
                NsRef::Labels(sel) => selector_tokens(sel, false, Token::NsPair, Token::NsKey, &mut out)?,
            }
        }
        PeerC::Block { cidr, .. } => {
            out.extend((0..=cidr.prefix_len()).filter_map(|len| around(*cidr, len)).map(Token::Block));
        }
    }
    if let PortC::One(p) = &a.port {
        out.push(Token::Proto(p.protocol));
        match &p.port {
            None => {}
            Some(PortValue::Name(n)) => out.push(Token::Name(p.protocol, n.clone())),
            Some(PortValue::Number(n)) => {
                out.push(Token::Numeric(p.protocol));
                if p.end_port.is_none_or(|e| e == *n) {
                    out.push(Token::Number(p.protocol, *n));
                }
            }
        }
    }
    Some(out)
}

/// The block of `len` bits around `net`.
fn around(net: IpNet, len: u8) -> Option<IpNet> {
    let addr: IpAddr = net.network();
    IpNet::new(addr, len).ok().map(|n| n.trunc())
}

/// The tokens every atom inside `a` has.
fn requires(a: &Atom) -> Vec<Token> {
    let mut out = Vec::new();
    match &a.peer {
        PeerC::Any => {}
        PeerC::Pods { ns, pods } => {
            let _ = selector_tokens(pods, true, Token::PodPair, Token::PodKey, &mut out);
            match ns {
                NsRef::Named(name) => out.push(Token::NsName(name.clone())),
                NsRef::Labels(sel) => {
                    let _ = selector_tokens(sel, true, Token::NsPair, Token::NsKey, &mut out);
                }
            }
        }
        PeerC::Block { cidr, .. } => out.push(Token::Block(*cidr)),
    }
    if let PortC::One(p) = &a.port {
        match &p.port {
            None => out.push(Token::Proto(p.protocol)),
            Some(PortValue::Name(n)) => out.push(Token::Name(p.protocol, n.clone())),
            Some(PortValue::Number(n)) if p.end_port.is_none_or(|e| e == *n) => {
                out.push(Token::Number(p.protocol, *n));
            }
            Some(PortValue::Number(_)) => out.push(Token::Numeric(p.protocol)),
        }
    }
    out
}

#[cfg(test)]
thread_local! {
    /// How many times [`contains`] ran on this thread (tests check it grows linearly).
    static CONTAINMENT_TESTS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether `w` contains `n`.
fn contains(w: &Atom, n: &Atom) -> bool {
    #[cfg(test)]
    CONTAINMENT_TESTS.set(CONTAINMENT_TESTS.get() + 1);
    peer_contains(&w.peer, &n.peer) && port_contains(&w.port, &n.port)
}

/// Where each atom's containers may be.
struct Index {
    /// The tokens each atom has (`None`: any atom may contain it).
    has: Vec<Option<Vec<Token>>>,
    /// Atoms by the one token they are filed under, in order.
    filed: HashMap<Token, Vec<usize>>,
    /// Atoms that require no token (`*`, every pod of every namespace, ...), in order.
    anywhere: Vec<usize>,
}

impl Index {
    fn new(door: &[Atom]) -> Index {
        let has: Vec<Option<Vec<Token>>> = door.iter().map(has).collect();
        let mut count: HashMap<&Token, usize> = HashMap::new();
        for t in has.iter().flatten().flatten() {
            *count.entry(t).or_default() += 1;
        }
        let mut filed: HashMap<Token, Vec<usize>> = HashMap::new();
        let mut anywhere = Vec::new();
        for (i, a) in door.iter().enumerate() {
            // The rarest token it requires; one no atom has means no atom is inside it.
            let rarest = requires(a).into_iter().min_by_key(|t| count.get(t).copied().unwrap_or(0));
            match rarest {
                Some(t) => filed.entry(t).or_default().push(i),
                None => anywhere.push(i),
            }
        }
        Index { has, filed, anywhere }
    }

    /// The atoms that may contain atom `i` (itself included), each once, in no order; every
    /// atom when `i` matches nothing.
    fn candidates(&self, i: usize, all: usize) -> Vec<usize> {
        let Some(tokens) = &self.has[i] else {
            return (0..all).collect();
        };
        let mut out = self.anywhere.clone();
        let mut seen = HashSet::new();
        for t in tokens {
            if seen.insert(t)
                && let Some(atoms) = self.filed.get(t)
            {
                out.extend(atoms);
            }
        }
        out
    }
}

/// Drop the atoms that a wider atom of the same door already lets through (the union stays the
/// same), handing their origins to it. Of atoms that contain each other, the first stays.
pub(super) fn minimize(door: &mut Vec<Atom>) {
    let n = door.len();
    let index = Index::new(door);
    // Whether `j` can stand in for `i`: it contains it, strictly or equally and earlier.
    let replaces = |j: usize, i: usize| {
        j != i && contains(&door[j], &door[i]) && (j < i || !contains(&door[i], &door[j]))
    };
    let kept: Vec<bool> =
        (0..n).map(|i| !index.candidates(i, n).into_iter().any(|j| replaces(j, i))).collect();
    // Each dropped atom's origins go to its first container still there when it goes (one kept,
    // or dropped later), in order, so that they reach a kept atom.
    let mut heir: Vec<Option<usize>> = vec![None; n];
    for i in (0..n).filter(|&i| !kept[i]) {
        heir[i] = index.candidates(i, n).into_iter().filter(|&j| (kept[j] || j > i) && replaces(j, i)).min();
    }
    let mut keep = kept;
    for i in 0..n {
        match heir[i] {
            Some(j) if !keep[i] => {
                let origins = std::mem::take(&mut door[i].origins);
                door[j].origins.extend(origins);
            }
            // Containment is a preorder, so every dropped atom has an heir; were it not, keeping
            // the atom would still keep the door's meaning.
            _ => keep[i] = true,
        }
    }
    let mut i = 0;
    door.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use netc_ir::{LabelSelector, Operator, Port, PortValue, Protocol, Requirement};
    use proptest::prelude::*;

    use super::super::{Atom, NsRef, PeerC, PortC};
    use super::{CONTAINMENT_TESTS, contains, minimize};

    /// The plain definition `minimize` must agree with (the code it replaced): remove the first
    /// atom another one contains (strictly, or equally and earlier), hand its origins to the first
    /// such atom, start over.
    fn minimize_pairwise(door: &mut Vec<Atom>) {
        let mut i = 0;
        while i < door.len() {
            let container = (0..door.len()).find(|&j| {
                j != i && contains(&door[j], &door[i]) && (!contains(&door[i], &door[j]) || j < i)
            });
            match container {
                Some(j) => {
                    let gone = door.remove(i);
                    let j = if j > i { j - 1 } else { j };
                    door[j].origins.extend(gone.origins);
                    i = 0;
                }
                None => i += 1,
            }
        }
    }

    fn selector() -> impl Strategy<Value = LabelSelector> {
        let key = prop::sample::select(vec!["app", "tier"]);
        let value = prop::sample::select(vec!["a", "b", "c"]);
        let requirement = (key.clone(), 0..4usize, prop::collection::btree_set(value.clone(), 1..3))
            .prop_map(|(key, op, values)| {
                let operator = [Operator::In, Operator::NotIn, Operator::Exists, Operator::DoesNotExist][op];
                let values = match operator {
                    Operator::In | Operator::NotIn => values.into_iter().map(str::to_owned).collect(),
                    _ => vec![],
                };
                Requirement { key: key.to_owned(), operator, values }
            });
        (prop::collection::btree_map(key, value, 0..2), prop::collection::vec(requirement, 0..2)).prop_map(
            |(labels, mut match_expressions)| {
                match_expressions.sort();
                LabelSelector {
                    match_labels: labels.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
                    match_expressions,
                }
            },
        )
    }

    fn peer() -> impl Strategy<Value = PeerC> {
        let block = (
            prop::sample::select(vec!["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "::/0"]),
            any::<bool>(),
        )
            .prop_map(|(cidr, except)| {
                let cidr: ipnet::IpNet = cidr.parse().expect("a CIDR");
                let except = if except && cidr.prefix_len() < 24 && cidr.network().is_ipv4() {
                    vec!["10.1.2.0/24".parse().expect("a CIDR")]
                        .into_iter()
                        .filter(|e| cidr.contains(e))
                        .collect()
                } else {
                    vec![]
                };
                PeerC::Block { cidr, except }
            });
        let ns = prop_oneof![
            prop::sample::select(vec!["shop", "web"]).prop_map(|n| NsRef::Named(n.to_owned())),
            selector().prop_map(NsRef::Labels),
        ];
        prop_oneof![
            1 => Just(PeerC::Any),
            6 => (ns, selector()).prop_map(|(ns, pods)| PeerC::Pods { ns, pods }),
            3 => block,
        ]
    }

    fn port() -> impl Strategy<Value = PortC> {
        let protocol = prop::sample::select(vec![Protocol::Tcp, Protocol::Udp]);
        prop_oneof![
            1 => Just(PortC::All),
            1 => protocol.clone().prop_map(|protocol| PortC::One(Port { protocol, port: None, end_port: None })),
            3 => (protocol.clone(), 79..83u16, prop::option::of(0..3u16)).prop_map(|(protocol, n, span)| {
                PortC::One(Port {
                    protocol,
                    port: Some(PortValue::Number(n)),
                    end_port: span.filter(|s| *s > 0).map(|s| n + s),
                })
            }),
            1 => (protocol, prop::sample::select(vec!["http", "dns"])).prop_map(|(protocol, n)| {
                PortC::One(Port { protocol, port: Some(PortValue::Name(n.to_owned())), end_port: None })
            }),
        ]
    }

    fn door() -> impl Strategy<Value = Vec<Atom>> {
        prop::collection::vec((peer(), port()), 0..24).prop_map(|atoms| {
            let mut seen = BTreeSet::new();
            atoms
                .into_iter()
                .filter(|a| seen.insert(a.clone()))
                .enumerate()
                .map(|(i, (peer, port))| Atom { peer, port, origins: BTreeSet::from([i]) })
                .collect()
        })
    }

    fn parts(door: &[Atom]) -> Vec<(PeerC, PortC, BTreeSet<usize>)> {
        door.iter().map(|a| (a.peer.clone(), a.port.clone(), a.origins.clone())).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Same atoms kept, in the same order, with the same origins, as the plain definition.
        #[test]
        fn minimize_is_the_pairwise_definition(door in door()) {
            let mut fast = door.clone();
            let mut plain = door;
            minimize(&mut fast);
            minimize_pairwise(&mut plain);
            prop_assert_eq!(parts(&fast), parts(&plain));
        }
    }

    /// One rule with many peers (the import of issue 8 that took 28 s for 20k peers): each atom
    /// is tested against a handful of others, not against all of them.
    #[test]
    fn containment_tests_grow_linearly_with_the_peers_of_one_rule() {
        let n = 4000;
        let pods = |i: usize| LabelSelector::labels([("app".to_owned(), format!("p{i}"))]);
        let web = Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(80)), end_port: None };
        let mut door: Vec<Atom> = (0..n)
            .map(|i| Atom {
                peer: PeerC::Pods { ns: NsRef::Named("shop".into()), pods: pods(i) },
                port: PortC::One(web.clone()),
                origins: BTreeSet::from([0]),
            })
            .collect();
        // One wide atom that contains every other one: all of them go.
        door.push(Atom {
            peer: PeerC::Pods { ns: NsRef::Named("shop".into()), pods: LabelSelector::everything() },
            port: PortC::All,
            origins: BTreeSet::from([1]),
        });
        CONTAINMENT_TESTS.set(0);
        minimize(&mut door);
        let tests = CONTAINMENT_TESTS.get();
        assert_eq!(door.len(), 1);
        assert_eq!(door[0].origins, BTreeSet::from([0, 1]));
        assert!(tests < 10 * n, "{tests} containment tests for {n} atoms");
    }
}
