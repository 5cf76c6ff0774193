//! Differential test: for random clusters, intents and flows, each door's verdict in the kernel
//! datapath (BPF_PROG_TEST_RUN on a crafted packet) equals the reference evaluator's
//! (`netc_ir::eval`). Seeds are fixed so a failure reproduces; `NETC_DIFF_SEEDS=N` runs more.
//! Flows from a hostNetwork pod of the node (the node's own traffic, run with ingress ifindex 0)
//! and of another node (forwarded) are among them.

mod common;

use common::Rng;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::*;
use netc_ir::eval::{Endpoint, Evaluator, Family, Flow};
use netc_ir::{
    Inventory, Ir, LabelSelector, NamedPort, Namespace, Operator, Peer, Pod, Policy, Port, PortValue,
    Protocol, Requirement,
};
use netc_runtime::packet::{self, Packet};
use netc_runtime::plan::{Plan, PlanOptions};

const APPS: [&str; 4] = ["a", "b", "c", "d"];
const PORTS: [u16; 8] = [53, 80, 85, 443, 1500, 3868, 8080, 9999];
const NAMES: [(&str, Protocol, u16); 4] = [
    ("http", Protocol::Tcp, 80),
    ("http", Protocol::Tcp, 8080),
    ("dns", Protocol::Udp, 53),
    ("sig", Protocol::Sctp, 3868),
];

fn random_selector(rng: &mut Rng) -> LabelSelector {
    match rng.below(5) {
        0 => LabelSelector::everything(),
        1 | 2 => LabelSelector::labels([("app", *rng.pick(&APPS))]),
        3 => LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: "app".into(),
                operator: if rng.chance(50) { Operator::In } else { Operator::NotIn },
                values: {
                    let mut v = vec![(*rng.pick(&APPS)).to_owned(), (*rng.pick(&APPS)).to_owned()];
                    v.sort();
                    v.dedup();
                    v
                },
            }],
        },
        _ => LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: "tier".into(),
                operator: if rng.chance(50) { Operator::Exists } else { Operator::DoesNotExist },
                values: vec![],
            }],
        },
    }
}

fn random_peer(rng: &mut Rng) -> Peer {
    match rng.below(6) {
        0..=2 => {
            let namespaces = match rng.below(4) {
                0 => None,
                1 => Some(LabelSelector::everything()),
                2 => Some(LabelSelector::labels([("team", if rng.chance(50) { "x" } else { "y" })])),
                _ => Some(LabelSelector::namespace_named(&format!("ns{}", rng.below(3)))),
            };
            let pods = if namespaces.is_none() || rng.chance(70) { Some(random_selector(rng)) } else { None };
            Peer::Pods { namespaces, pods }
        }
        _ => {
            let (cidr, excepts): (&str, &[&str]) = *rng.pick(&[
                ("10.9.0.0/16", &["10.9.1.0/24", "10.9.2.8/29"][..]),
                ("10.9.1.0/24", &["10.9.1.4/30"][..]),
                ("0.0.0.0/0", &["10.9.0.0/16"][..]),
                ("203.0.113.0/24", &["203.0.113.128/25"][..]),
                ("fd00:9::/64", &["fd00:9::8/126"][..]),
                ("::/0", &[][..]),
            ]);
            let except =
                excepts.iter().filter(|_| rng.chance(60)).map(|e| e.parse().expect("except")).collect();
            Peer::IpBlock { cidr: cidr.parse().expect("cidr"), except }
        }
    }
}

fn random_port(rng: &mut Rng) -> Port {
    let protocol = *rng.pick(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::Sctp]);
    match rng.below(6) {
        0 => Port { protocol, port: None, end_port: None },
        1 | 2 => Port { protocol, port: Some(PortValue::Number(*rng.pick(&PORTS))), end_port: None },
        3 => Port { protocol, port: Some(PortValue::Number(80)), end_port: Some(90) },
        4 => Port { protocol, port: Some(PortValue::Number(1000)), end_port: Some(2000) },
        _ => {
            let (name, protocol, _) = *rng.pick(&NAMES);
            Port { protocol, port: Some(PortValue::Name(name.into())), end_port: None }
        }
    }
}

fn random_door(rng: &mut Rng, ids: &mut u32) -> netc_ir::Door {
    if rng.chance(40) {
        return open();
    }
    let rules = (0..rng.below(4))
        .map(|_| {
            *ids += 1;
            let peers = (0..rng.below(3)).map(|_| random_peer(rng)).collect();
            let ports = (0..rng.below(3)).map(|_| random_port(rng)).collect();
            rule(&format!("r{ids}"), *ids, peers, ports)
        })
        .collect();
    guarded(rules)
}

fn random_case(rng: &mut Rng) -> (Ir, Inventory, Vec<IpAddr>) {
    let mut namespaces: Vec<Namespace> = (0..3)
        .map(|i| {
            let name = format!("ns{i}");
            let mut labels =
                BTreeMap::from([(netc_ir::inventory::NAMESPACE_NAME_LABEL.to_owned(), name.clone())]);
            labels.insert("team".into(), if rng.chance(50) { "x".into() } else { "y".into() });
            Namespace { name, labels }
        })
        .collect();
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pods = Vec::new();
    for i in 0..(6 + rng.below(7)) {
        let mut labels = BTreeMap::from([("app".to_owned(), (*rng.pick(&APPS)).to_owned())]);
        if rng.chance(40) {
            labels.insert("tier".into(), "web".into());
        }
        // Some pods sit in the CIDRs rules name, some not; some are dual-stack.
        let v4: IpAddr = format!("10.9.{}.{}", rng.below(3), 1 + i).parse().expect("ip");
        let mut ips = vec![v4];
        if rng.chance(40) {
            ips.push(format!("fd00:9::{:x}", 1 + i).parse().expect("ip"));
        }
        let ports = NAMES
            .iter()
            .filter(|_| rng.chance(35))
            .map(|(n, p, port)| NamedPort { name: (*n).into(), port: *port, protocol: *p })
            .fold(Vec::<NamedPort>::new(), |mut acc, np| {
                // One number per (name, protocol), as a pod spec would have.
                if !acc.iter().any(|a| a.name == np.name && a.protocol == np.protocol) {
                    acc.push(np);
                }
                acc
            });
        pods.push(Pod {
            namespace: format!("ns{}", rng.below(3)),
            name: format!("p{i}"),
            labels,
            ips,
            ports,
            // Every pod runs on this node ("n1"), a hostNetwork pod maybe on another ("n2"): from
            // this node its packets are the node's own (kubelet probes), from the other forwarded.
            node: Some(if i == 1 && rng.chance(50) { "n2" } else { "n1" }.to_owned()),
            host_interface: None,
            host_network: i < 2 && rng.chance(50),
        });
    }
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut ids = 0;
    let mut policies: Vec<Policy> = Vec::new();
    for i in 0..(1 + rng.below(6)) {
        let ns = format!("ns{}", rng.below(3));
        let ingress = random_door(rng, &mut ids);
        let egress = random_door(rng, &mut ids);
        policies.push(Policy {
            name: format!("pol{i}"),
            namespace: ns.clone(),
            workload: format!("w{i}"),
            selector: random_selector(rng),
            doc: None,
            ingress,
            egress,
            span: span(1),
        });
    }
    policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    // Never a pod's address (pods use .1 to .12 and ::1 to ::c): the evaluator would call it
    // external while the node knows it as a pod.
    let externals = [
        "10.9.1.200",
        "10.9.2.14",
        "10.8.0.1",
        "203.0.113.7",
        "203.0.113.200",
        "fd00:9::fe",
        "fd00:9::1:77",
        "2001:db8::1",
    ]
    .iter()
    .map(|e| e.parse().expect("ip"))
    .collect();
    (ir(policies), Inventory { namespaces, pods, ..Inventory::default() }, externals)
}

/// The datapath's verdict at each door of a flow (a door only when its pod is an endpoint). A
/// hostNetwork pod of the receiver's node sends from the node's own stack: the packet reaches
/// the receiver's veth made by the node, not forwarded.
fn doors(h: &mut Harness, src: Option<&Pod>, dst: Option<&Pod>, frame: &[u8]) -> (bool, bool) {
    let endpoint_of = |h: &Harness, pod: Option<&Pod>| {
        pod.and_then(|p| h.plan.endpoints.iter().find(|e| e.name == p.name && e.namespace == p.namespace))
            .map(|e| e.name.clone())
    };
    let from_node =
        matches!((src, dst), (Some(s), Some(d)) if s.host_network && s.node.is_some() && s.node == d.node);
    let (sender, receiver) = (endpoint_of(h, src), endpoint_of(h, dst));
    let egress = sender.is_none_or(|name| h.egress_frame(&name, frame) == PASS);
    let ingress = receiver.is_none_or(|name| {
        let verdict =
            if from_node { h.node_ingress_frame(&name, frame) } else { h.ingress_frame(&name, frame) };
        verdict == PASS
    });
    (egress, ingress)
}

/// The pod of `inventory` with address `ip`, if any.
fn pod_at(inventory: &Inventory, ip: IpAddr) -> Option<&Pod> {
    inventory.pods.iter().find(|p| p.ips.contains(&ip))
}

/// A flow between two ends, each a pod (80%) or an external address; `None` for pod-to-itself or
/// external-to-external.
fn random_flow(
    rng: &mut Rng,
    inventory: &Inventory,
    externals: &[IpAddr],
    sport: &mut u16,
) -> Option<(Packet, Protocol)> {
    let pick_end = |rng: &mut Rng| -> Option<&Pod> {
        if rng.chance(80) { Some(&inventory.pods[rng.below(inventory.pods.len())]) } else { None }
    };
    let src_pod = pick_end(rng);
    let dst_pod = pick_end(rng);
    if src_pod.is_none() && dst_pod.is_none() {
        return None;
    }
    if let (Some(a), Some(b)) = (src_pod, dst_pod)
        && a.name == b.name
        && a.namespace == b.namespace
    {
        return None; // a pod talking to itself never crosses its veth
    }
    // Addresses of one family: IPv6 only when both ends have one.
    let v6 = rng.chance(40)
        && src_pod.is_none_or(|p| p.ips.iter().any(IpAddr::is_ipv6))
        && dst_pod.is_none_or(|p| p.ips.iter().any(IpAddr::is_ipv6));
    let address = |pod: Option<&Pod>, rng: &mut Rng| -> IpAddr {
        match pod {
            Some(p) => *p.ips.iter().find(|ip| ip.is_ipv6() == v6).expect("family checked above"),
            None => {
                let candidates: Vec<IpAddr> =
                    externals.iter().copied().filter(|ip| ip.is_ipv6() == v6).collect();
                *rng.pick(&candidates)
            }
        }
    };
    let src_ip = address(src_pod, rng);
    let dst_ip = address(dst_pod, rng);
    let protocol = *rng.pick(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::Sctp]);
    let port = *rng.pick(&PORTS);
    *sport = if *sport == u16::MAX { 1024 } else { *sport + 1 };
    Some((Packet::new(src_ip, dst_ip, protocol.ip_proto(), *sport, port), protocol))
}

/// The evaluator's verdict on a packet, its ends found by address in `inventory`.
fn expected(
    evaluator: &Evaluator,
    inventory: &Inventory,
    packet: &Packet,
    protocol: Protocol,
) -> (bool, bool, bool) {
    let end = |ip: IpAddr| pod_at(inventory, ip).map_or(Endpoint::External(ip), Endpoint::Pod);
    // The packet's addresses fix the family (a dual-stack pod is matched by the one it uses).
    let family = Family::of(packet.src);
    let flow = Flow { src: end(packet.src), dst: end(packet.dst), protocol, port: packet.dport, family };
    let verdict = evaluator.evaluate(&flow);
    (verdict.egress.permits(), verdict.ingress.permits(), verdict.allowed)
}

/// Check `flows` random new flows against the evaluator; returns how many were tried.
#[allow(clippy::too_many_arguments, reason = "a test helper; the case travels as its parts")]
fn check_new_flows(
    h: &mut Harness,
    ir: &Ir,
    inventory: &Inventory,
    externals: &[IpAddr],
    rng: &mut Rng,
    sport: &mut u16,
    flows: usize,
    seed: u64,
) -> usize {
    let evaluator = Evaluator::new(ir, inventory);
    let mut checked = 0;
    for _ in 0..flows {
        let Some((packet, protocol)) = random_flow(rng, inventory, externals, sport) else { continue };
        let (want_egress, want_ingress, allowed) = expected(&evaluator, inventory, &packet, protocol);
        let (egress, ingress) =
            doors(h, pod_at(inventory, packet.src), pod_at(inventory, packet.dst), &packet.frame());
        if egress != want_egress || ingress != want_ingress {
            let dump = std::env::temp_dir().join(format!("netc-diff-seed-{seed}.json"));
            let _ = std::fs::write(
                &dump,
                serde_json::json!({"ir": serde_json::from_str::<serde_json::Value>(&ir.to_json()).ok(),
                                   "pods": format!("{:#?}", inventory.pods)})
                .to_string(),
            );
            panic!(
                "seed {seed}: {} -> {} {protocol} {}: datapath egress {egress} ingress {ingress}, \
                 evaluator egress {want_egress} ingress {want_ingress} (case written to {})",
                packet.src,
                packet.dst,
                packet.dport,
                dump.display()
            );
        }
        assert_eq!(egress && ingress, allowed);
        checked += 1;
    }
    checked
}

#[test]
fn datapath_agrees_with_the_evaluator_on_random_flows_needs_root() {
    if !can_run_as_root("datapath_agrees_with_the_evaluator_on_random_flows_needs_root") {
        return;
    }
    let seeds: u64 = std::env::var("NETC_DIFF_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let flows_per_seed = 150;
    let mut checked = 0usize;
    let mut sport: u16 = 1024;
    for seed in 1..=seeds {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1000_0000_01b3));
        let (ir, inventory, externals) = random_case(&mut rng);
        let mut h = Harness::new(&ir, &inventory, false);
        checked +=
            check_new_flows(&mut h, &ir, &inventory, &externals, &mut rng, &mut sport, flows_per_seed, seed);
    }
    eprintln!("{checked} flows agreed over {seeds} random cases");
    assert!(checked > usize::try_from(seeds).expect("small") * flows_per_seed / 2, "most flows were tried");
}

/// A few random changes to a cluster: pods removed, relabelled, re-addressed, given other named
/// ports, added (some at an address that was external). Returns the new inventory and the
/// external addresses that are still nobody's.
fn mutate(rng: &mut Rng, inventory: &Inventory, externals: &[IpAddr], seed: u64) -> (Inventory, Vec<IpAddr>) {
    let mut new = inventory.clone();
    let mut externals = externals.to_vec();
    let mut next = 30u8;
    for _ in 0..=rng.below(3) {
        let candidates: Vec<usize> = (0..new.pods.len()).filter(|i| !new.pods[*i].host_network).collect();
        let Some(&i) = candidates.get(rng.below(candidates.len().max(1))) else { continue };
        match rng.below(7) {
            0 if new.pods.len() > 3 => {
                new.pods.remove(i);
            }
            1 => {
                new.pods[i].labels.insert("app".into(), (*rng.pick(&APPS)).to_owned());
            }
            2 => {
                if new.pods[i].labels.remove("tier").is_none() {
                    new.pods[i].labels.insert("tier".into(), "web".into());
                }
            }
            3 => {
                next += 1;
                new.pods[i].ips[0] = format!("10.9.{}.{next}", rng.below(3)).parse().expect("ip");
            }
            4 => {
                let (name, protocol, _) = *rng.pick(&NAMES);
                new.pods[i].ports = vec![NamedPort { name: name.into(), port: 9999, protocol }];
            }
            _ => {
                next += 1;
                // Sometimes at an address that was external (10.9.1.200 and 10.9.2.14 sit in
                // the CIDRs rules name).
                let ip: IpAddr = if rng.chance(40) {
                    let v4: Vec<IpAddr> =
                        externals.iter().copied().filter(|e| e.to_string().starts_with("10.9.")).collect();
                    let taken = *rng.pick(&v4);
                    externals.retain(|e| *e != taken);
                    taken
                } else {
                    format!("10.9.{}.{next}", rng.below(3)).parse().expect("ip")
                };
                let mut ips = vec![ip];
                if rng.chance(40) {
                    ips.push(format!("fd00:9::{next:x}").parse().expect("ip"));
                }
                new.pods.push(Pod {
                    namespace: format!("ns{}", rng.below(3)),
                    name: format!("q{seed}-{next}"),
                    labels: BTreeMap::from([("app".to_owned(), (*rng.pick(&APPS)).to_owned())]),
                    ips,
                    ports: vec![],
                    node: Some("n1".into()),
                    host_interface: None,
                    host_network: false,
                });
            }
        }
    }
    new.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    // Addresses a removed or re-addressed pod had are external now.
    for pod in &inventory.pods {
        for ip in &pod.ips {
            if pod_at(&new, *ip).is_none() && !externals.contains(ip) {
                externals.push(*ip);
            }
        }
    }
    (new, externals)
}

#[test]
fn datapath_agrees_with_the_evaluator_after_changes_in_place_needs_root() {
    if !can_run_as_root("datapath_agrees_with_the_evaluator_after_changes_in_place_needs_root") {
        return;
    }
    let seeds: u64 = std::env::var("NETC_DIFF_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let (mut checked, mut reopened, mut in_place) = (0usize, 0usize, 0usize);
    let mut sport: u16 = 1024;
    for seed in 1..=seeds {
        let mut rng = Rng(0x5bd1_e995_9e37_79b9 ^ seed.wrapping_mul(0x1000_0000_01b3));
        let (ir, old, externals) = random_case(&mut rng);
        let mut h = Harness::new(&ir, &old, false);
        // Connections the old cluster allows, open at both doors.
        let before = Evaluator::new(&ir, &old);
        let mut open = Vec::new();
        for _ in 0..60 {
            let Some((packet, protocol)) = random_flow(&mut rng, &old, &externals, &mut sport) else {
                continue;
            };
            let (src, dst) = (pod_at(&old, packet.src), pod_at(&old, packet.dst));
            if doors(&mut h, src, dst, &packet.frame()) == (true, true) {
                assert!(
                    expected(&before, &old, &packet, protocol).2,
                    "seed {seed}: allowed before the change"
                );
                open.push((packet, protocol));
            }
        }
        let (new, externals) = mutate(&mut rng, &old, &externals, seed);
        let options = PlanOptions::default();
        match h.plan.update_in_place(&ir, &old, &new, &options) {
            Some(delta) => {
                let interfaces = delta.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
                h.datapath.apply_delta(&delta, &interfaces).expect("apply in place");
                assert_eq!(h.plan.meaning(), Plan::build(&ir, &new, &options).meaning(), "seed {seed}");
                in_place += 1;
            }
            None => h.reapply(&ir, &new, false),
        }
        // Open connections: their next packet gets the new cluster's verdict at each door.
        let after = Evaluator::new(&ir, &new);
        for (packet, protocol) in &open {
            let (want_egress, want_ingress, _) = expected(&after, &new, packet, *protocol);
            let frame = packet::frame(packet, packet::ACK, 0);
            let (egress, ingress) = doors(&mut h, pod_at(&new, packet.src), pod_at(&new, packet.dst), &frame);
            assert_eq!(
                (egress, ingress),
                (want_egress, want_ingress),
                "seed {seed}: open {} -> {} {protocol} {} after the change",
                packet.src,
                packet.dst,
                packet.dport
            );
            reopened += 1;
        }
        checked += check_new_flows(&mut h, &ir, &new, &externals, &mut rng, &mut sport, 100, seed);
    }
    eprintln!(
        "{checked} new and {reopened} open flows agreed over {seeds} changed clusters ({in_place} changed in place)"
    );
    assert!(in_place * 4 > usize::try_from(seeds).expect("small") * 3, "most changes were made in place");
    assert!(reopened > 0 && checked > 0);
}

/// Service calls: a client pod calls a Service frontend (a ClusterIP, or a NodePort on a node
/// address); kube-proxy translates it to a backend (a pod, or an address outside the cluster)
/// and its targetPort. NetworkPolicy judges the translated flow, so the datapath's verdict on the
/// call (its veth, then the hook after the translation: the uplink for the client's egress door,
/// the backend's veth for both doors) equals the evaluator's on the translated pod flow.
#[test]
fn service_calls_get_the_evaluators_verdict_on_the_translated_flow_needs_root() {
    if !can_run_as_root("service_calls_get_the_evaluators_verdict_on_the_translated_flow_needs_root") {
        return;
    }
    let seeds: u64 = std::env::var("NETC_DIFF_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let (mut checked, mut marked) = (0usize, 0usize);
    let mut sport: u16 = 20_000;
    for seed in 1..=seeds {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ seed.wrapping_mul(0x1000_0000_01b3));
        let (ir, mut inventory, externals) = random_case(&mut rng);
        // Backends: any pod but a hostNetwork pod of this node (delivered to the node's own stack,
        // where no tc hook runs after the translation: docs/runtime.md), or an external address
        // (a Service without selector).
        let backends: Vec<(Option<Pod>, Vec<IpAddr>)> = inventory
            .pods
            .iter()
            .filter(|p| !(p.host_network && p.node.as_deref() == Some("n1")))
            .map(|p| (Some(p.clone()), p.ips.clone()))
            .chain(externals.iter().map(|e| (None, vec![*e])))
            .collect();
        let mut calls = Vec::new();
        for n in 0..4u16 {
            let protocol = *rng.pick(&[Protocol::Tcp, Protocol::Tcp, Protocol::Udp, Protocol::Sctp]);
            let (port, target) = (*rng.pick(&PORTS), *rng.pick(&PORTS));
            let node_port = 30_000 + n;
            let backend = rng.pick(&backends).clone();
            inventory.services.push(netc_ir::Service {
                namespace: format!("ns{}", rng.below(3)),
                name: format!("s{n}"),
                addresses: vec![
                    format!("10.96.0.{}", 10 + n).parse().expect("ip"),
                    format!("fd00:96::{:x}", 10 + n).parse().expect("ip"),
                ],
                ports: vec![netc_ir::ServicePort {
                    protocol,
                    port,
                    target_port: PortValue::Number(target),
                    node_port: Some(node_port),
                }],
            });
            calls.push((n, protocol, port, target, node_port, backend));
        }
        let mut h = Harness::with_services(&ir, &inventory, false);
        let evaluator = Evaluator::new(&ir, &inventory);
        let clients: Vec<Pod> = inventory
            .pods
            .iter()
            .filter(|p| h.plan.endpoints.iter().any(|e| e.name == p.name && e.namespace == p.namespace))
            .cloned()
            .collect();
        for _ in 0..60 {
            let client = rng.pick(&clients).clone();
            let (n, protocol, port, target, node_port, backend) = rng.pick(&calls).clone();
            let (backend_pod, backend_ips) = backend;
            if backend_pod.as_ref().is_some_and(|b| b.name == client.name && b.namespace == client.namespace)
            {
                continue; // hairpin: not generated here
            }
            let v6 = rng.chance(40)
                && client.ips.iter().any(IpAddr::is_ipv6)
                && backend_ips.iter().any(IpAddr::is_ipv6);
            let src = *client.ips.iter().find(|ip| ip.is_ipv6() == v6).expect("family");
            let Some(&dst) = backend_ips.iter().find(|ip| ip.is_ipv6() == v6) else { continue };
            let (frontend, called): (IpAddr, u16) = if rng.chance(70) {
                let text = if v6 { format!("fd00:96::{:x}", 10 + n) } else { format!("10.96.0.{}", 10 + n) };
                (text.parse().expect("ip"), port)
            } else {
                let node: IpAddr = if v6 { "2001:db8:1::1" } else { "192.0.2.1" }.parse().expect("ip");
                (node, node_port)
            };
            sport = if sport == u16::MAX { 20_000 } else { sport + 1 };
            let call = Packet::new(src, frontend, protocol.ip_proto(), sport, called);
            let (at_veth, mark) = h.egress_marked(&client.name, &call.frame());
            assert_eq!(at_veth, PASS, "seed {seed}: a Service call passes the client's veth");
            let translated = Packet::new(src, dst, protocol.ip_proto(), sport, target);
            let (want_egress, want_ingress, allowed) =
                expected(&evaluator, &inventory, &translated, protocol);
            // The client's egress door, judged at the uplink (a backend on another node).
            let (uplink, _) = h.translated(&client.name, None, &translated.frame(), mark);
            assert_eq!(
                uplink == PASS,
                want_egress,
                "seed {seed}: {} calls {frontend}:{called} ({protocol}) -> {dst}:{target}: uplink {uplink}, evaluator egress {want_egress} (mark {mark:#x})",
                client.name
            );
            if mark != 0 {
                marked += 1;
            }
            // A backend on this node: its veth judges the client's egress door, then its own
            // ingress door (a fresh source port: the uplink remembered the flow above).
            if let Some(pod) = backend_pod.as_ref().filter(|p| !p.host_network) {
                sport = if sport == u16::MAX { 20_000 } else { sport + 1 };
                let call = Packet::new(src, frontend, protocol.ip_proto(), sport, called);
                let translated = Packet::new(src, dst, protocol.ip_proto(), sport, target);
                let verdict = h.service_call(&client.name, call, Some(&pod.name), translated);
                assert_eq!(
                    verdict == PASS,
                    allowed,
                    "seed {seed}: {} calls {frontend}:{called} ({protocol}) -> {}:{target}: at its veth {verdict}, evaluator egress {want_egress} ingress {want_ingress}",
                    client.name,
                    pod.name
                );
            }
            checked += 1;
        }
    }
    eprintln!(
        "{checked} Service calls agreed over {seeds} random cases ({marked} judged after the translation)"
    );
    assert!(checked > usize::try_from(seeds).expect("small") * 30, "most calls were tried");
    assert!(marked * 4 > checked, "many clients had a guarded egress door");
}
