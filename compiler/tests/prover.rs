//! The prover against brute force: random small programs and random claims, decided by
//! `netc::prove` for every possible pod and by `netc_ir::eval` over every pod the program can tell
//! apart (every combination of the label values it mentions, another value and absence, in every
//! namespace it mentions and another one, at an address inside and outside its blocks, with and
//! without its named port, on every port class). They must agree on every case, and every
//! counterexample must be confirmed by `netc_ir::eval`.
//!
//! To cover a new construct: add it to `STATEMENTS` (the program generator) or to `end_set` /
//! `claim` (the claim generator), and, if it mentions a new label value, namespace, address or
//! port, to the universe in `universe` and `PROBES`.

mod common;

use std::collections::BTreeMap;

use netc::check::NsScope;
use netc::prove::PodSet;
use netc::prove::flows::{Claim, EndSet, Prover, Witness};
use netc::prove::on_cluster::OnCluster;
use netc_ir::eval::{Endpoint, Evaluator, Flow};
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{
    Direction, ExternalAddress, Inventory, Ir, LabelSelector, NamedPort, Namespace, Pod, Port, PortValue,
    Protocol,
};
use proptest::prelude::*;

/// Statements the programs are made of: overlapping selectors, namespaces by name and labels,
/// address blocks, named ports, every door form.
const STATEMENTS: &[&str] = &[
    "{app=a} -> {app=b}:80",
    "*/{app=a} -> shop/{app=b}",
    "shop/* -> {app=a}:[80, 443/udp]",
    "{team=x}/* -> {app=b}:http",
    "10.244.0.0/16 -> {app=a}:443",
    "{app=a} egress guarded",
    "{app=a} -> 10.244.0.0/16:80",
    "{app=a} -> dns",
    "default deny ingress",
    "{app in (a, b)} ingress guarded",
    "anywhere -> {app=b}:53/udp",
    "{app=b} -> shop/{app=a}:80",
    "namespace shop\n{app!=a} -> {app=a}:443",
    "namespace shop\ndefault deny egress\n* -> dns",
    "{tier=x} egress guarded",
    "{app=b, tier=x} -> {app=a}:[80, 53]",
    "{!app} isolated",
];

const PROBES: &[(Protocol, u16)] = &[
    (Protocol::Tcp, 80),
    (Protocol::Tcp, 443),
    (Protocol::Tcp, 53),
    (Protocol::Tcp, 9999),
    (Protocol::Udp, 80),
    (Protocol::Udp, 443),
    (Protocol::Udp, 53),
    (Protocol::Udp, 9999),
    (Protocol::Sctp, 80),
    (Protocol::Sctp, 9999),
];

#[derive(Debug, Clone, PartialEq)]
enum End {
    Pod(usize),
    External(std::net::IpAddr),
}

/// Every pod (and outside address) the programs can tell apart, in a cluster where namespace
/// number `i` carries `team=x` when bit `i` of `teams` is set. A namespace has one set of labels,
/// so the clusters of [`TEAMS`] together give every pair of namespaces every combination.
fn universe(teams: u8) -> (Inventory, Vec<End>) {
    let mut inv = Inventory::default();
    let mut ends = Vec::new();
    let mut i = 0;
    for (n, ns) in ["default", "kube-system", "other", "shop"].into_iter().enumerate() {
        let mut labels = BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), ns.to_owned())]);
        if teams & (1 << n) != 0 {
            labels.insert("team".into(), "x".into());
        }
        inv.namespaces.push(Namespace { name: ns.into(), labels });
        for app in [Some("a"), Some("b"), Some("z"), None] {
            for tier in [Some("x"), None] {
                let dns: &[bool] = if ns == "kube-system" { &[true, false] } else { &[false] };
                // Inside the programs' block, outside it, and outside it but inside 10.0.0.0/8
                // (one of the pod CIDRs of `POD_CIDRS`), each with and without the named port.
                for (addr, named, dns) in [
                    ("10.244.", false),
                    ("10.244.", true),
                    ("192.168.", false),
                    ("192.168.", true),
                    ("10.9.", false),
                    ("10.9.", true),
                ]
                .into_iter()
                .flat_map(|(a, n)| dns.iter().map(move |d| (a, n, *d)))
                {
                    let mut labels = BTreeMap::new();
                    if let Some(a) = app {
                        labels.insert("app".to_owned(), a.to_owned());
                    }
                    if let Some(t) = tier {
                        labels.insert("tier".to_owned(), t.to_owned());
                    }
                    if dns {
                        labels.insert("k8s-app".into(), "kube-dns".into());
                    }
                    i += 1;
                    let ports = if named {
                        PROBES
                            .iter()
                            .map(|(p, n)| NamedPort { name: "http".into(), port: *n, protocol: *p })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    inv.pods.push(Pod {
                        namespace: ns.into(),
                        name: format!("p{i:03}"),
                        labels,
                        ips: vec![
                            format!("{addr}{}.{}", 1 + i / 250, 1 + i % 250).parse().expect("an address"),
                        ],
                        ports,
                        node: None,
                        host_interface: None,
                        host_network: false,
                    });
                }
            }
        }
    }
    ends.extend((0..inv.pods.len()).map(End::Pod));
    // Two of each kind, so that a flow between two outside addresses of one kind exists even
    // where a bound on pod addresses leaves no pod there.
    for a in ["10.244.200.1", "10.244.200.2", "203.0.113.1", "203.0.113.2"] {
        ends.push(End::External(a.parse().expect("an address")));
    }
    (inv, ends)
}

/// Pod address bounds (`--pod-cidr`): none; inside the programs' block 10.244.0.0/16; disjoint from
/// it (IPv4 and IPv6); overlapping it partly (10.0.0.0/8 holds 10.244.0.0/16 and 10.9.0.0/16).
const POD_CIDRS: [&[&str]; 4] =
    [&[], &["10.244.0.0/16"], &["192.168.0.0/16", "fd00:10:244::/56"], &["10.0.0.0/8"]];

/// The universe's ends that a bound allows: every outside address, and the pods with an address
/// in one of `cidrs` (all of them when there is no bound).
fn within(ends: &[End], inv: &Inventory, cidrs: &[ipnet::IpNet]) -> Vec<End> {
    ends.iter()
        .filter(|e| match e {
            End::Pod(i) => {
                cidrs.is_empty() || inv.pods[*i].ips.iter().any(|a| cidrs.iter().any(|c| c.contains(a)))
            }
            End::External(_) => true,
        })
        .cloned()
        .collect()
}

/// Namespace label patterns: every pair of the four namespaces meets every combination.
const TEAMS: [u8; 6] = [0b0000, 0b1111, 0b0101, 0b1010, 0b0011, 0b1100];

fn sel(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector::labels(pairs.iter().copied())
}

/// The ends claims talk about.
fn end_set(i: usize) -> EndSet {
    let named = |ns: &str, s: LabelSelector| EndSet::Pods(PodSet::of_scope(&NsScope::Named(ns.into()), &s));
    match i % 9 {
        0 => named("default", sel(&[("app", "a")])),
        1 => named("default", sel(&[("app", "b")])),
        2 => named("shop", sel(&[("app", "a")])),
        3 => EndSet::Pods(PodSet::of_scope(
            &NsScope::Selector(LabelSelector::everything()),
            &LabelSelector::everything(),
        )),
        4 => EndSet::Pods(PodSet::of_scope(&NsScope::Selector(sel(&[("team", "x")])), &sel(&[("app", "b")]))),
        5 => EndSet::Anywhere,
        6 => EndSet::Addrs(vec![("10.244.0.0/16".parse().expect("a block"), Vec::new())]),
        7 => named("default", sel(&[("app", "b"), ("tier", "x")])),
        _ => named("shop", LabelSelector::everything()),
    }
}

fn ports(i: usize) -> Vec<Port> {
    let n = |protocol, p| Port { protocol, port: Some(PortValue::Number(p)), end_port: None };
    match i % 4 {
        0 => Vec::new(),
        1 => vec![n(Protocol::Tcp, 80)],
        2 => vec![n(Protocol::Udp, 53), n(Protocol::Tcp, 443)],
        _ => {
            vec![Port { protocol: Protocol::Tcp, port: Some(PortValue::Name("http".into())), end_port: None }]
        }
    }
}

fn claim(kind: usize, a: usize, b: usize, p: usize) -> Claim {
    let pods = |i| match end_set(i) {
        EndSet::Pods(p) => p,
        _ => PodSet::of_scope(&NsScope::Named("default".into()), &sel(&[("app", "a")])),
    };
    let direction = if b.is_multiple_of(2) { Direction::Ingress } else { Direction::Egress };
    match kind % 6 {
        0 | 1 => Claim::Reach { from: end_set(a), to: end_set(b), ports: ports(p) },
        2 | 3 => Claim::Never { from: end_set(a), to: end_set(b), ports: ports(p) },
        4 => Claim::Guarded { pods: pods(a), direction },
        _ => Claim::Open { pods: pods(a), direction },
    }
}

fn in_set(set: &EndSet, end: &End, inv: &Inventory) -> bool {
    match (set, end) {
        (EndSet::Anywhere, _) => true,
        (EndSet::Pods(p), End::Pod(i)) => {
            let pod = &inv.pods[*i];
            let ns = inv.namespace(&pod.namespace).expect("listed");
            p.namespaces.matches(&ns.labels) && p.pods.matches(&pod.labels)
        }
        (EndSet::Pods(_), End::External(_)) => false,
        (EndSet::Addrs(blocks), e) => {
            let ip = match e {
                End::Pod(i) => inv.pods[*i].ips[0],
                End::External(a) => *a,
            };
            blocks.iter().any(|(n, ex)| n.contains(&ip) && !ex.iter().any(|x| x.contains(&ip)))
        }
    }
}

fn port_in(ports: &[Port], protocol: Protocol, port: u16, dst: &End, inv: &Inventory) -> bool {
    let named: &[NamedPort] = match dst {
        End::Pod(i) => &inv.pods[*i].ports,
        End::External(_) => &[],
    };
    ports.is_empty() || ports.iter().any(|p| p.matches(protocol, port, named))
}

/// Whether the claim holds on every end of the universe (`cluster`: as checked on a given
/// cluster, where flows between two outside addresses are left to the proof).
fn brute_force(ir: &Ir, claim: &Claim, inv: &Inventory, ends: &[End], cluster: bool) -> bool {
    let ev = Evaluator::new(ir, inv);
    let endpoint = |e: &End| match e {
        End::Pod(i) => Endpoint::Pod(&inv.pods[*i]),
        End::External(a) => Endpoint::External(*a),
    };
    match claim {
        Claim::Reach { from, to, ports } | Claim::Never { from, to, ports } => {
            let never = matches!(claim, Claim::Never { .. });
            for s in ends.iter().filter(|e| in_set(from, e, inv)) {
                for d in ends.iter().filter(|e| in_set(to, e, inv)) {
                    if s == d || (cluster && matches!((s, d), (End::External(_), End::External(_)))) {
                        continue;
                    }
                    for (protocol, port) in PROBES {
                        if !port_in(ports, *protocol, *port, d, inv) {
                            continue;
                        }
                        let (src, dst) = (endpoint(s), endpoint(d));
                        let flow = Flow::new(src, dst, *protocol, *port);
                        if ev.evaluate(&flow).allowed == never {
                            return false;
                        }
                    }
                }
            }
            true
        }
        Claim::Guarded { pods, direction } | Claim::Open { pods, direction } => {
            let set = EndSet::Pods(pods.clone());
            ends.iter().filter(|e| in_set(&set, e, inv)).all(|e| {
                let End::Pod(i) = e else { return true };
                ev.guarding_policies(&inv.pods[*i], *direction).is_empty()
                    == matches!(claim, Claim::Open { .. })
            })
        }
    }
}

fn program(picks: &[usize]) -> String {
    let mut blocks = Vec::new();
    let mut default_ns = Vec::new();
    for &p in picks {
        let s = STATEMENTS[p % STATEMENTS.len()];
        if s.starts_with("namespace") {
            blocks.push(s.to_owned());
        } else {
            default_ns.push(s.to_owned());
        }
    }
    // Namespace headers last, so that the statements before them stay in `default`.
    let mut out = default_ns.join("\n");
    for b in blocks {
        out.push('\n');
        out.push_str(&b);
    }
    out.push('\n');
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// With a bound on pod addresses (`--pod-cidr`), brute force runs over the pods inside it.
    #[test]
    fn prover_agrees_with_brute_force_over_every_pod_the_program_can_tell_apart(
        picks in prop::collection::vec(0usize..64, 1..7),
        claims in prop::collection::vec((0usize..12, 0usize..9, 0usize..9, 0usize..4), 1..5),
        bound in 0usize..POD_CIDRS.len(),
    ) {
        let text = program(&picks);
        let out = netc::compile(&[netc::SourceFile::new("p.np", text.as_str())]);
        prop_assume!(!out.has_errors());
        let ir = out.ir.expect("no errors");
        let cidrs: Vec<ipnet::IpNet> = POD_CIDRS[bound].iter().map(|c| c.parse().expect("a block")).collect();
        let universes: Vec<_> = TEAMS
            .iter()
            .map(|t| {
                let (inv, ends) = universe(*t);
                let ends = within(&ends, &inv, &cidrs);
                (inv, ends)
            })
            .collect();
        let claims: Vec<Claim> = claims.iter().map(|(k, a, b, p)| claim(*k, *a, *b, *p)).collect();
        let prover = Prover::bounded(&ir, &claims, &cidrs);
        for c in &claims {
            let proved = prover.decide(c);
            let holds = universes.iter().all(|(inv, ends)| brute_force(&ir, c, inv, ends, false));
            prop_assert_eq!(proved.is_none(), holds, "program:\n{}\nclaim: {:?}\nbound: {:?}\ncounterexample: {:?}", text, c, cidrs, proved);
            if let Some(cx) = &proved {
                // The counterexample's pods are inside the bound.
                for w in [&cx.src, &cx.dst] {
                    if let Witness::Pod(p, _) = w {
                        prop_assert!(cidrs.is_empty() || p.ips.iter().any(|a| cidrs.iter().any(|n| n.contains(a))), "{text}\n{c:?}\n{cx:?}");
                    }
                }
            }
            if let Some(cx) = proved {
                match c {
                    Claim::Reach { .. } => prop_assert!(!cx.allowed_by(&ir), "{text}\n{c:?}\n{cx:?}"),
                    Claim::Never { .. } => prop_assert!(cx.allowed_by(&ir), "{text}\n{c:?}\n{cx:?}"),
                    Claim::Guarded { .. } | Claim::Open { .. } => {}
                }
            }
        }
    }
}

proptest! {
    // Cheap (one cluster per case): enough cases that a wrong port or address range shows.
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// `--cluster`: the check on the pods of a given cluster against brute force over the same
    /// cluster (each universe with its external addresses), claim by claim; every breach it
    /// reports is a flow the evaluator judges as the claim forbids.
    #[test]
    fn cluster_check_agrees_with_brute_force_on_the_same_cluster(
        picks in prop::collection::vec(0usize..64, 1..7),
        claims in prop::collection::vec((0usize..12, 0usize..9, 0usize..9, 0usize..4), 1..4),
        teams in 0usize..TEAMS.len(),
    ) {
        let text = program(&picks);
        let out = netc::compile(&[netc::SourceFile::new("p.np", text.as_str())]);
        prop_assume!(!out.has_errors());
        let ir = out.ir.expect("no errors");
        let (mut inv, ends) = universe(TEAMS[teams]);
        // Each pod twice (a twin with the same labels and ports, in the same /16): flows between
        // pods alike are judged, and the check may not take one pod for a class it is not in.
        let twin = |p: &Pod| {
            let mut t = p.clone();
            t.name.push('b');
            t.ips = p.ips.iter().map(|a| match a {
                std::net::IpAddr::V4(v) => { let o = v.octets(); std::net::Ipv4Addr::new(o[0], o[1], o[2] + 100, o[3]).into() }
                std::net::IpAddr::V6(_) => *a,
            }).collect();
            t
        };
        inv.pods = inv.pods.iter().flat_map(|p| [p.clone(), twin(p)]).collect();
        let ends: Vec<End> = (0..inv.pods.len())
            .map(End::Pod)
            .chain(ends.into_iter().filter(|e| matches!(e, End::External(_))))
            .collect();
        inv.externals = ends
            .iter()
            .filter_map(|e| match e {
                End::External(address) => Some(ExternalAddress { name: format!("x{address}"), address: *address }),
                End::Pod(_) => None,
            })
            .collect();
        let claims: Vec<Claim> = claims.iter().map(|(k, a, b, p)| claim(*k, *a, *b, *p)).collect();
        let on = OnCluster::new(&ir, &inv, &claims);
        for c in &claims {
            let breach = on.decide(c, &|_| None);
            let holds = brute_force(&ir, c, &inv, &ends, true);
            prop_assert_eq!(breach.is_none(), holds, "program:\n{}\nclaim: {:?}\nbreach: {:?}", text, c, breach);
            if let Some(b) = breach {
                match c {
                    Claim::Reach { .. } => prop_assert!(!b.counterexample.allowed_by(&ir), "{text}\n{c:?}\n{b:?}"),
                    Claim::Never { .. } => prop_assert!(b.counterexample.allowed_by(&ir), "{text}\n{c:?}\n{b:?}"),
                    Claim::Guarded { .. } | Claim::Open { .. } => {}
                }
            }
        }
    }
}

/// Issue 13's four lines, as written, on a program that keeps them; and the same lines failing on
/// mutations of it (a widened selector, a removed door).
#[test]
fn the_four_assertions_of_the_issue_work_as_written() {
    let program = "frontend -> backend:8080\nhermit isolated\nnamespace payments {\n  default deny ingress\n}\n\
                   namespace shop {\n  default deny ingress\n  {team=monitoring}/prometheus -> *:metrics\n}\n";
    let lines = "assert frontend -> backend:8080\nassert */* !-> payments/vault\n\
                 assert {team=monitoring}/prometheus -> shop/*:metrics\nassert hermit isolated\n";
    let (_, out) = common::compile(&format!("{program}{lines}"));
    assert!(out.diagnostics.is_empty(), "{:#?}", out.diagnostics);
    for (mutated, failing_line) in [
        (program.replace("frontend -> backend:8080", "frontend -> backend:8081"), 1),
        (program.replace("  default deny ingress\n}", "  default deny ingress\n  */* -> vault:443\n}"), 2),
        (program.replace("default deny ingress\n  {team", "default deny\n  {team"), 3),
        (program.replace("hermit isolated", "hermit ingress guarded"), 4),
    ] {
        let text = format!("{mutated}{lines}");
        let (sources, out) = common::compile(&text);
        let errors: Vec<_> =
            out.diagnostics.iter().filter(|d| d.code.starts_with('E')).map(|d| d.code).collect();
        assert_eq!(errors, ["E0501"], "{}", common::source_and_diagnostics(&sources, &out));
        let line =
            text[..out.diagnostics[0].location().expect("located").span.start as usize].lines().count() + 1;
        let expected = mutated.lines().count() + failing_line;
        assert_eq!(line, expected, "{}", common::source_and_diagnostics(&sources, &out));
    }
}

/// A mutation of each example that carries assertions (a widened selector, a removed door) breaks
/// the assertion that guards against it, with a counterexample: one snapshot per mutation, in
/// `snapshots/mutation_*.snap`.
#[test]
fn mutations_of_the_examples_break_the_right_assertion() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "mutation_shop_widened_fraud_check_caller",
            "examples/shop.np",
            "payment-gateway -> fraud-check:9000",
            "*/* -> fraud-check:9000",
        ),
        (
            "mutation_shop_web_without_default_deny",
            "examples/shop.np",
            "  ## The web tier is closed except for the flows below.\n  default deny\n",
            "",
        ),
        (
            "mutation_allow_frontend_widened_source",
            "examples/seed/allow-frontend.np",
            "\nfrontend -> backend\n",
            "\n*/* -> backend\n",
        ),
        (
            "mutation_complete_isolation_without_egress_door",
            "examples/seed/complete-isolation.np",
            "\nhermit isolated\n",
            "\nhermit ingress guarded\n",
        ),
        (
            "mutation_restrict_egress_without_egress_door",
            "examples/seed/restrict-egress.np",
            "\nbackend egress guarded\n",
            "\n",
        ),
        (
            "mutation_allow_monitoring_widened_source",
            "examples/seed/allow-monitoring.np",
            "{team=monitoring}/* -> web",
            "*/* -> web",
        ),
    ];
    for (name, path, from, to) in cases {
        let original = std::fs::read_to_string(root.join(path)).expect("an example");
        assert!(original.contains(from), "{name}: `{from}` is not in {path}");
        let mutated = original.replacen(from, to, 1);
        let sources = vec![netc::SourceFile::new(*path, mutated.as_str())];
        let out = netc::compile(&sources);
        let failed: Vec<_> = out.diagnostics.iter().filter(|d| d.code == "E0501").cloned().collect();
        assert!(!failed.is_empty(), "{name}: no assertion fails");
        assert!(
            out.diagnostics.iter().all(|d| d.code == "E0501" || !d.code.starts_with('E')),
            "{name}: {:#?}",
            out.diagnostics
        );
        let text = format!(
            "--- mutation of {path}\n- {}\n+ {}\n--- diagnostics\n{}",
            from.trim(),
            to.trim(),
            netc::diagnostics::render(&failed, &sources, false)
        );
        common::snapshot_settings().bind(|| insta::assert_snapshot!(*name, text));
    }
}

/// `--pod-cidr`: an address block disjoint from every pod CIDR no longer breaks a `!->` (no pod
/// can be at its addresses); one that overlaps a pod CIDR partly still does, with the
/// counterexample's pod at an address inside both. On a cluster, a pod outside the bound is still
/// judged: E0502 alone, saying that the proof did not consider it.
#[test]
fn pod_cidrs_bound_the_addresses_of_pods() {
    let text = "namespace shop {\n  default deny ingress\n  web -> api:8080\n  192.168.0.0/16 -> api:9090\n  \
                assert */{app!=web} !-> api\n}\n";
    let sources = common::source(text);
    let compile = |cidrs: &[&str], cluster: Option<&Inventory>| {
        let cidrs: Vec<ipnet::IpNet> = cidrs.iter().map(|c| c.parse().expect("a block")).collect();
        netc::compile_with(
            &sources,
            &netc::Options { cluster, pod_cidrs: &cidrs, ..netc::Options::default() },
        )
    };
    assert_eq!(common::codes(&compile(&[], None)), ["E0501"], "unbounded, a pod may be at 192.168.0.10");
    let disjoint = compile(&["10.244.0.0/16", "fd00:10:244::/56"], None);
    assert!(disjoint.diagnostics.is_empty(), "{:#?}", disjoint.diagnostics);
    let partly: ipnet::IpNet = "192.168.128.0/17".parse().expect("a block");
    let out = compile(&["10.244.0.0/16", "192.168.128.0/17"], None);
    assert_eq!(common::codes(&out), ["E0501"]);
    let cx = &out.assertions[0].failures[0].counterexample;
    let Witness::Pod(src, _) = &cx.src else { panic!("a pod sends: {cx:?}") };
    assert!(partly.contains(&src.ips[0]), "the sender is inside the pod CIDR: {cx:?}");
    let skip = netc::Options { assertions: netc::Assertions::Skip, ..netc::Options::default() };
    let ir = netc::compile_with(&sources, &skip).ir.expect("compiles without its assertion");
    assert!(cx.allowed_by(&ir), "the evaluator allows the counterexample: {cx:?}");

    // A cluster whose `legacy` pod sits outside the bound: the proof holds, the cluster does not.
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n\
                - {apiVersion: v1, kind: Pod, metadata: {name: legacy-0, namespace: shop, labels: {app: legacy}}, status: {podIP: 192.168.4.4}}\n\
                - {apiVersion: v1, kind: Pod, metadata: {name: api-0, namespace: shop, labels: {app: api}}, status: {podIP: 10.244.2.2}}\n";
    let cluster = Inventory::from_yaml(yaml).expect("a valid cluster");
    let out = compile(&["10.244.0.0/16"], Some(&cluster));
    assert_eq!(common::codes(&out), ["E0502"], "{}", common::source_and_diagnostics(&sources, &out));
    let notes = &out.diagnostics[0].notes;
    assert!(notes.iter().any(|n| n.contains("`shop/legacy-0` is outside every --pod-cidr")), "{notes:#?}");
    // Inside the bound, the cluster keeps the assertion as the proof does.
    let inside = Inventory::from_yaml(&yaml.replace("192.168.4.4", "10.244.4.4")).expect("a valid cluster");
    assert!(compile(&["10.244.0.0/16"], Some(&inside)).diagnostics.is_empty());
}

/// The cluster check judges pods that the evaluator cannot tell apart once (twice): pods with
/// the same labels but addresses in different ranges of the program's blocks are not alike.
#[test]
fn cluster_check_keeps_a_pod_of_every_address_range() {
    let out = netc::compile(&common::source("10.244.0.0/16 -> {app=a}:443\n"));
    let ir = out.ir.expect("compiles");
    let pod = |name: &str, app: &str, ip: &str| Pod {
        namespace: "default".into(),
        name: name.into(),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        ips: vec![ip.parse().expect("an address")],
        ports: Vec::new(),
        node: None,
        host_interface: None,
        host_network: false,
    };
    let mut inv = Inventory {
        pods: vec![
            pod("a-0", "a", "10.244.0.1"),
            pod("b-0", "b", "10.244.0.2"),
            pod("b-1", "b", "10.244.0.3"),
            pod("b-2", "b", "10.244.0.4"),
            pod("b-3", "b", "192.168.0.5"),
        ],
        ..Inventory::default()
    };
    inv.namespaces.push(Namespace {
        name: "default".into(),
        labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), "default".to_owned())]),
    });
    let b = EndSet::Pods(PodSet::of_scope(&NsScope::Named("default".into()), &sel(&[("app", "b")])));
    let a = EndSet::Pods(PodSet::of_scope(&NsScope::Named("default".into()), &sel(&[("app", "a")])));
    let https = vec![Port { protocol: Protocol::Tcp, port: Some(PortValue::Number(443)), end_port: None }];
    let claim = Claim::Reach { from: b, to: a, ports: https };
    let on = OnCluster::new(&ir, &inv, std::slice::from_ref(&claim));
    let breach = on.decide(&claim, &|_| None).expect("b-3, outside the block, is refused");
    let Witness::Pod(src, _) = &breach.counterexample.src else { panic!("{breach:?}") };
    assert_eq!(src.name, "b-3");
}
