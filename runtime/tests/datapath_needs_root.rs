//! The datapath on crafted packets (BPF_PROG_TEST_RUN): every semantic corner the classifier
//! implements, with no network at all. Needs root; skips with a message otherwise.

mod common;

use std::collections::BTreeMap;

use common::*;
use netc_ir::Protocol;
use netc_runtime::abi;
use netc_runtime::datapath::{ApplyReport, Datapath};
use netc_runtime::packet::{self, ACK, Packet, SCTP, SYN, TCP, UDP};
use netc_runtime::plan::{Plan, PlanOptions};

const FE: &str = "10.0.0.1";
const BE: &str = "10.0.0.2";
const DB: &str = "10.0.0.3";
const FE6: &str = "fd00::1";
const BE6: &str = "fd00::2";

/// The seed example: frontend -> backend:8080, backend egress only to database:5432.
fn seed() -> (netc_ir::Ir, netc_ir::Inventory) {
    let ir = ir(vec![
        policy(
            "default",
            "backend",
            guarded(vec![rule("fe-be", 10, vec![app("frontend")], vec![tcp(8080)])]),
            guarded(vec![rule("be-db", 11, vec![app("database")], vec![tcp(5432)])]),
        ),
        policy(
            "default",
            "database",
            guarded(vec![rule("be-db-in", 11, vec![app("backend")], vec![tcp(5432)])]),
            open(),
        ),
    ]);
    let inv = inventory(
        &[("default", &[])],
        vec![
            pod("default", "frontend", "frontend", &[FE, FE6]),
            pod("default", "backend", "backend", &[BE, BE6]),
            pod("default", "database", "database", &[DB]),
        ],
    );
    (ir, inv)
}

fn p(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> Packet {
    Packet::new(ip(src), ip(dst), proto, sport, dport)
}

#[test]
fn tcp_flows_follow_both_doors_v4_and_v6_needs_root() {
    if !can_run_as_root("tcp_flows_follow_both_doors_v4_and_v6_needs_root") {
        return;
    }
    let (ir, inv) = seed();
    let mut h = Harness::new(&ir, &inv, false);
    assert_eq!(h.flow("frontend", "backend", p(FE, BE, TCP, 40000, 8080)), PASS);
    assert_eq!(h.flow("frontend", "backend", p(FE6, BE6, TCP, 40001, 8080)), PASS);
    assert_eq!(h.flow("frontend", "backend", p(FE, BE, TCP, 40002, 8081)), DROP, "other port");
    assert_eq!(h.flow("frontend", "backend", p(FE, BE, UDP, 40003, 8080)), DROP, "other protocol");
    assert_eq!(h.flow("database", "backend", p(DB, BE, TCP, 40004, 8080)), DROP, "other peer");
    assert_eq!(h.flow("backend", "database", p(BE, DB, TCP, 40005, 5432)), PASS);
    assert_eq!(h.egress("backend", p(BE, FE, TCP, 40006, 80)), DROP, "backend egress only to database");
    assert_eq!(h.ingress("backend", p("192.0.2.1", BE, TCP, 40007, 8080)), DROP, "the world is not frontend");
    // Unselected pods are untouched.
    assert_eq!(h.flow("database", "frontend", p(DB, FE, UDP, 40008, 53)), PASS, "both doors open");
    assert_eq!(h.egress("frontend", p(FE, "198.51.100.7", UDP, 40009, 53)), PASS, "frontend egress is open");
    assert_eq!(
        h.ingress("frontend", p("198.51.100.7", FE, TCP, 40010, 22)),
        PASS,
        "frontend ingress is open"
    );
}

#[test]
fn replies_pass_and_direction_is_kept_needs_root() {
    if !can_run_as_root("replies_pass_and_direction_is_kept_needs_root") {
        return;
    }
    let (ir, inv) = seed();
    let mut h = Harness::new(&ir, &inv, false);
    let syn = p(FE, BE, TCP, 41000, 8080);
    assert_eq!(h.flow("frontend", "backend", syn), PASS);
    // The reply leaves backend through its guarded egress door (no rule to frontend) and enters
    // frontend: both pass as replies.
    let reply = syn.reply();
    assert_eq!(h.egress_frame("backend", &packet::frame(&reply, ACK | packet::SYN, 0)), PASS);
    assert_eq!(h.ingress_frame("frontend", &packet::frame(&reply, ACK, 0)), PASS);
    // Backend may not open a connection to frontend on the same ports otherwise.
    assert_eq!(h.egress("backend", p(BE, FE, TCP, 8080, 41001)), DROP);
    // An entry made at the sender's egress does not open the receiver's ingress: frontend's open
    // egress lets a packet to port 9999 out (and records it), backend's ingress still refuses.
    let probe = p(FE, BE, TCP, 41002, 9999);
    assert_eq!(h.egress("frontend", probe), PASS);
    assert_eq!(h.ingress("backend", probe), DROP);
    assert_eq!(h.ingress("backend", probe), DROP, "still, on the second packet");
}

#[test]
fn udp_sctp_ranges_and_named_ports_needs_root() {
    if !can_run_as_root("udp_sctp_ranges_and_named_ports_needs_root") {
        return;
    }
    let ir = ir(vec![policy(
        "default",
        "web",
        guarded(vec![
            rule("udp", 1, vec![app("client")], vec![port(Protocol::Udp, 53)]),
            rule("sctp", 2, vec![app("client")], vec![port(Protocol::Sctp, 3868)]),
            rule("big-range", 3, vec![app("client")], vec![range(Protocol::Tcp, 30000, 32767)]),
            rule("small-range", 4, vec![app("client")], vec![range(Protocol::Udp, 7000, 7003)]),
            rule("named", 5, vec![app("client")], vec![named(Protocol::Tcp, "http")]),
            rule(
                "all-sctp",
                6,
                vec![app("monitor")],
                vec![netc_ir::Port { protocol: Protocol::Sctp, port: None, end_port: None }],
            ),
        ]),
        open(),
    )]);
    let inv = inventory(
        &[("default", &[])],
        vec![
            with_port(pod("default", "web", "web", &["10.0.1.1", "fd00:1::1"]), "http", Protocol::Tcp, 8080),
            pod("default", "client", "client", &["10.0.1.2", "fd00:1::2"]),
            pod("default", "monitor", "monitor", &["10.0.1.3"]),
        ],
    );
    let mut h = Harness::new(&ir, &inv, false);
    let c = "10.0.1.2";
    let w = "10.0.1.1";
    let mut sport = 42000;
    let mut check = |h: &mut Harness, src: &str, dst: &str, proto: u8, dport: u16, want: i32| {
        sport += 1;
        assert_eq!(
            h.ingress("web", p(src, dst, proto, sport, dport)),
            want,
            "{src} -> {dst} proto {proto} port {dport}"
        );
    };
    check(&mut h, c, w, UDP, 53, PASS);
    check(&mut h, c, w, TCP, 53, DROP);
    check(&mut h, c, w, SCTP, 3868, PASS);
    check(&mut h, "fd00:1::2", "fd00:1::1", SCTP, 3868, PASS);
    check(&mut h, c, w, SCTP, 3869, DROP);
    check(&mut h, c, w, TCP, 30000, PASS);
    check(&mut h, c, w, TCP, 31337, PASS);
    check(&mut h, c, w, TCP, 32767, PASS);
    check(&mut h, c, w, TCP, 29999, DROP);
    check(&mut h, c, w, TCP, 32768, DROP);
    check(&mut h, "fd00:1::2", "fd00:1::1", TCP, 32000, PASS);
    check(&mut h, c, w, UDP, 7003, PASS);
    check(&mut h, c, w, UDP, 7004, DROP);
    check(&mut h, c, w, TCP, 8080, PASS);
    check(&mut h, c, w, TCP, 80, DROP);
    check(&mut h, "10.0.1.3", w, SCTP, 1, PASS);
    check(&mut h, "10.0.1.3", w, SCTP, 65535, PASS);
    check(&mut h, "10.0.1.3", w, TCP, 8080, DROP);
}

#[test]
fn ip_blocks_with_except_both_families_needs_root() {
    if !can_run_as_root("ip_blocks_with_except_both_families_needs_root") {
        return;
    }
    let ir = ir(vec![policy(
        "default",
        "web",
        open(),
        guarded(vec![
            rule("v4", 1, vec![block("192.0.2.0/24", &["192.0.2.128/25", "192.0.2.64/32"])], vec![tcp(443)]),
            rule("v6", 2, vec![block("2001:db8::/32", &["2001:db8:dead::/48"])], vec![]),
            rule("pods-by-address", 3, vec![block("10.0.2.0/24", &[])], vec![tcp(80)]),
        ]),
    )]);
    let inv = inventory(
        &[("default", &[])],
        vec![
            pod("default", "web", "web", &["10.0.1.1", "fd00:1::1"]),
            pod("default", "other", "other", &["10.0.2.9"]),
        ],
    );
    let mut h = Harness::new(&ir, &inv, false);
    let w = "10.0.1.1";
    let w6 = "fd00:1::1";
    let cases = [
        (w, "192.0.2.1", TCP, 443, PASS),
        (w, "192.0.2.127", TCP, 443, PASS),
        (w, "192.0.2.64", TCP, 443, DROP),
        (w, "192.0.2.65", TCP, 443, PASS),
        (w, "192.0.2.128", TCP, 443, DROP),
        (w, "192.0.2.255", TCP, 443, DROP),
        (w, "192.0.2.1", TCP, 80, DROP),
        (w, "198.51.100.1", TCP, 443, DROP),
        (w6, "2001:db8::1", UDP, 5353, PASS),
        (w6, "2001:db8:dead::1", UDP, 5353, DROP),
        (w6, "2001:db9::1", UDP, 5353, DROP),
        (w, "10.0.2.9", TCP, 80, PASS),
        (w, "10.0.2.10", TCP, 80, PASS),
        (w, "10.0.2.9", TCP, 81, DROP),
    ];
    for (i, (src, dst, proto, dport, want)) in cases.into_iter().enumerate() {
        let sport = 43000 + u16::try_from(i).expect("few cases");
        assert_eq!(h.egress("web", p(src, dst, proto, sport, dport)), want, "{src} -> {dst}:{dport}");
    }
}

#[test]
fn arp_neighbour_discovery_and_later_fragments_needs_root() {
    if !can_run_as_root("arp_neighbour_discovery_and_later_fragments_needs_root") {
        return;
    }
    let ir = ir(vec![policy("default", "hermit", guarded(vec![]), guarded(vec![]))]);
    let inv =
        inventory(&[("default", &[])], vec![pod("default", "hermit", "hermit", &["10.0.3.1", "fd00:3::1"])]);
    let mut h = Harness::new(&ir, &inv, false);
    assert_eq!(h.egress_frame("hermit", &packet::arp_request()), PASS);
    assert_eq!(h.ingress_frame("hermit", &packet::arp_request()), PASS);
    let ns =
        packet::neighbour_solicitation("fd00:3::1".parse().expect("ip"), "fd00:3::2".parse().expect("ip"));
    assert_eq!(h.egress_frame("hermit", &ns), PASS);
    assert_eq!(h.egress("hermit", p("10.0.3.1", "10.0.3.2", TCP, 1, 2)), DROP);
    assert_eq!(h.ingress("hermit", p("10.0.3.2", "10.0.3.1", UDP, 1, 2)), DROP);
    assert_eq!(
        h.ingress("hermit", p("fd00:3::2", "fd00:3::1", packet::ICMPV6, 0, 0)),
        DROP,
        "echo is not ND"
    );
    let frag = packet::frame(&p("10.0.3.2", "10.0.3.1", UDP, 1, 2), 0, 100);
    assert_eq!(h.ingress_frame("hermit", &frag), DROP);
}

/// ICMPv6 multicast listener reports (to ff02::16) showed up as `deny` lines at a guarded door
/// as netcd attached: the link's control traffic passes, like ARP and ND; other ICMPv6 does not.
#[test]
fn multicast_listener_reports_pass_guarded_doors_needs_root() {
    if !can_run_as_root("multicast_listener_reports_pass_guarded_doors_needs_root") {
        return;
    }
    let ir = ir(vec![policy("default", "hermit", guarded(vec![]), guarded(vec![]))]);
    let inv =
        inventory(&[("default", &[])], vec![pod("default", "hermit", "hermit", &["10.0.3.1", "fd00:3::1"])]);
    let mut h = Harness::new(&ir, &inv, false);
    let link_local = "fe80::1".parse().expect("ip");
    assert_eq!(h.egress_frame("hermit", &packet::mld_report(link_local)), PASS);
    assert_eq!(h.egress_frame("hermit", &packet::mld_report("::".parse().expect("ip"))), PASS);
    assert_eq!(h.ingress_frame("hermit", &packet::mld_report(link_local)), PASS);
    assert_eq!(h.egress_frame("hermit", &packet::igmp_report("10.0.3.1".parse().expect("ip"))), PASS);
    assert_eq!(h.egress("hermit", p("fd00:3::1", "ff02::16", packet::ICMPV6, 0, 0)), DROP, "echo is not MLD");
    assert_eq!(h.egress("hermit", p("fe80::1", "ff02::16", UDP, 5353, 5353)), DROP, "nor is UDP");
    let stats = h.datapath.maps().stats().expect("stats");
    assert_eq!(stats[abi::STAT_DROPPED as usize], 2, "only the echo and the UDP packet were dropped");
}

/// Kubernetes: "pods cannot block access from their resident node"; kubelet probes depend on it.
/// A packet the node made passes a guarded ingress door (even one that allows nothing; a
/// failed-closed one: `a_full_map_fails_closed_for_that_endpoint_needs_root`), its replies pass a
/// guarded egress door; the same packet forwarded (from
/// another node, a NodePort from outside masqueraded to the node's address) is judged as usual.
#[test]
fn traffic_from_the_pods_own_node_always_gets_in_needs_root() {
    if !can_run_as_root("traffic_from_the_pods_own_node_always_gets_in_needs_root") {
        return;
    }
    let ir = ir(vec![policy("default", "hermit", guarded(vec![]), guarded(vec![]))]);
    let inv =
        inventory(&[("default", &[])], vec![pod("default", "hermit", "hermit", &["10.0.3.1", "fd00:3::1"])]);
    let mut h = Harness::new(&ir, &inv, false);
    for (node, hermit) in [("10.0.3.254", "10.0.3.1"), ("fd00:3::fe", "fd00:3::1")] {
        let probe = p(node, hermit, TCP, 41000, 8080);
        assert_eq!(h.node_ingress("hermit", probe), PASS, "{node}: the kubelet's probe");
        assert_eq!(h.egress_frame("hermit", &packet::frame(&probe.reply(), SYN | ACK, 0)), PASS, "its reply");
        assert_eq!(h.node_ingress("hermit", p(node, hermit, UDP, 41000, 53)), PASS, "{node}: UDP too");
        assert_eq!(h.ingress("hermit", p(node, hermit, TCP, 41001, 8080)), DROP, "{node} forwarded");
        assert_eq!(
            h.egress("hermit", p(hermit, node, TCP, 41002, 10250)),
            DROP,
            "the pod's egress to its node"
        );
    }
}

#[test]
fn audit_passes_and_reports_needs_root() {
    if !can_run_as_root("audit_passes_and_reports_needs_root") {
        return;
    }
    let (ir, inv) = seed();
    let mut h = Harness::new(&ir, &inv, true);
    let mut events = h.datapath.take_events().expect("events");
    assert_eq!(h.ingress("backend", p(DB, BE, TCP, 44000, 8080)), PASS, "audit drops nothing");
    assert_eq!(h.ingress("backend", p(FE, BE, TCP, 44001, 8080)), PASS);
    let mut seen = Vec::new();
    while let Some(item) = events.next() {
        seen.push(abi::Event::from_bytes(&item).expect("an event"));
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].verdict, abi::VERDICT_AUDIT);
    assert_eq!(seen[0].rule, abi::RULE_NONE);
    assert_eq!(seen[0].direction, abi::INGRESS);
    assert_eq!(abi::addr_from_bytes(seen[0].family, seen[0].saddr), ip(DB));
    assert_eq!(seen[0].dport, 8080);
    assert_eq!(seen[1].verdict, abi::VERDICT_ALLOW);
    let rule = h.plan.rule(seen[1].rule).expect("a rule");
    assert_eq!((rule.id.as_str(), rule.source.as_str()), ("fe-be", "test.np:10"));
    assert_eq!(h.datapath.maps().rule_counter(seen[1].rule).expect("counter"), 1);
    // The audited flow is now established: no second event for its next packet.
    assert_eq!(h.ingress("backend", p(DB, BE, TCP, 44000, 8080)), PASS);
    assert!(events.next().is_none());
}

#[test]
fn a_new_generation_rejudges_established_flows_needs_root() {
    if !can_run_as_root("a_new_generation_rejudges_established_flows_needs_root") {
        return;
    }
    let (ir1, inv) = seed();
    let mut h = Harness::new(&ir1, &inv, false);
    let syn = p(FE, BE, TCP, 45000, 8080);
    let kept = p(BE, DB, TCP, 45001, 5432);
    assert_eq!(h.flow("frontend", "backend", syn), PASS);
    assert_eq!(h.flow("backend", "database", kept), PASS);
    // Revoke frontend -> backend; keep backend -> database.
    let mut ir2 = ir1.clone();
    ir2.policies[0].ingress.rules.clear();
    h.reapply(&ir2, &inv, false);
    let ack = packet::frame(&syn, ACK, 0);
    assert_eq!(h.ingress_frame("backend", &ack), DROP, "the open connection is cut");
    assert_eq!(h.ingress_frame("backend", &packet::frame(&syn.reply().reply(), ACK, 0)), DROP);
    assert_eq!(h.egress_frame("backend", &packet::frame(&syn.reply(), ACK, 0)), DROP, "its replies too");
    assert_eq!(h.flow("backend", "database", kept), PASS, "an allowed connection survives");
    // Only the new generation's entries remain.
    let config = h.datapath.maps().config().expect("config");
    assert_eq!(config.generation, 2);
    let endpoints = h.datapath.maps().live_endpoints().expect("endpoints");
    assert_eq!(endpoints.len(), 3 + 1, "three endpoints and the test binding of ifindex 1");
}

#[test]
fn a_full_map_fails_closed_for_that_endpoint_needs_root() {
    if !can_run_as_root("a_full_map_fails_closed_for_that_endpoint_needs_root") {
        return;
    }
    let (ir, inv) = seed();
    let plan = Plan::build(&ir, &inv, &PlanOptions::default());
    assert_eq!(plan.policy.len(), 3);
    // Room for two policy entries: backend's two fit, database's one does not.
    let mut datapath = Datapath::load_with_capacities(None, &[(abi::MAP_POLICY, 2)]).expect("load");
    let interfaces = plan.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
    let report = datapath.apply(&plan, &interfaces, false).expect("apply");
    let database = plan.endpoints.iter().find(|e| e.name == "database").expect("database").id;
    assert_eq!(report.fail_closed.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![database]);
    let mut h = Harness { datapath, plan };
    let live = h.datapath.maps().live_endpoints().expect("endpoints");
    let written = live[&fake_ifindex(database)];
    assert_eq!(written.flags & abi::EP_FAIL_CLOSED, abi::EP_FAIL_CLOSED);
    // And the classifier drops everything for a fail-closed endpoint.
    h.plan.endpoints.iter_mut().find(|e| e.id == database).expect("db").flags |= abi::EP_FAIL_CLOSED;
    assert_eq!(h.ingress("database", p(BE, DB, TCP, 46001, 5432)), DROP);
    assert_eq!(h.egress("database", p(DB, BE, TCP, 46002, 1)), DROP);
    assert_eq!(h.flow("frontend", "backend", p(FE, BE, TCP, 46003, 8080)), PASS, "others are unaffected");
    // Its node still reaches it (that rule needs no map entry): the kubelet sees what it serves.
    assert_eq!(h.node_ingress("database", p("10.0.0.254", DB, TCP, 46004, 5432)), PASS);
}

/// A pod restarts with a new address while another pod gets the address it had, in one
/// inventory change (as a busy node's pod CIDR recycles addresses): netcd changes the live
/// generation in place when it can and builds a new one otherwise, as the daemon does; either
/// way the old address's open connection is cut, the new holder of the address is judged as
/// itself, and the restarted pod is judged at its new address.
#[test]
fn a_restarted_pods_old_address_given_to_another_pod_at_once_needs_root() {
    if !can_run_as_root("a_restarted_pods_old_address_given_to_another_pod_at_once_needs_root") {
        return;
    }
    let (ir, old) = seed();
    let mut h = Harness::new(&ir, &old, false);
    let open_connection = p(FE, BE, TCP, 49500, 8080);
    assert_eq!(h.flow("frontend", "backend", open_connection), PASS);
    let mut new = old.clone();
    for pod in &mut new.pods {
        if pod.name == "frontend" {
            pod.ips = vec![ip("10.0.0.9")];
        }
    }
    new.pods.push(pod("default", "intruder", "intruder", &[FE]));
    let new = sorted(new);
    match h.plan.update_in_place(&ir, &old, &new, &PlanOptions::default()) {
        Some(delta) => {
            let interfaces = delta.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
            h.datapath.apply_delta(&delta, &interfaces).expect("apply in place");
        }
        None => h.reapply(&ir, &new, false),
    }
    let ack = packet::frame(&open_connection, ACK, 0);
    assert_eq!(h.ingress_frame("backend", &ack), DROP, "the old address's connection is cut");
    assert_eq!(
        h.ingress("backend", p(FE, BE, TCP, 49501, 8080)),
        DROP,
        "the intruder at frontend's old address"
    );
    assert_eq!(
        h.flow("frontend", "backend", p("10.0.0.9", BE, TCP, 49502, 8080)),
        PASS,
        "frontend at its new one"
    );
}

/// Change the harness's live generation in place from `old` to `new` (same IR).
fn change_in_place(
    h: &mut Harness,
    ir: &netc_ir::Ir,
    old: &netc_ir::Inventory,
    new: &netc_ir::Inventory,
) -> ApplyReport {
    let delta =
        h.plan.update_in_place(ir, old, new, &PlanOptions::default()).expect("a change made in place");
    let interfaces = delta.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
    let report = h.datapath.apply_delta(&delta, &interfaces).expect("apply in place");
    assert_eq!(report.rejudge, delta.rejudge);
    report
}

fn sorted(mut inv: netc_ir::Inventory) -> netc_ir::Inventory {
    inv.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    inv
}

#[test]
fn pods_added_in_place_are_enforced_without_a_new_generation_needs_root() {
    if !can_run_as_root("pods_added_in_place_are_enforced_without_a_new_generation_needs_root") {
        return;
    }
    let (ir, old) = seed();
    let mut h = Harness::new(&ir, &old, false);
    let syn = p(FE, BE, TCP, 47000, 8080);
    assert_eq!(h.flow("frontend", "backend", syn), PASS);
    let mut new = old.clone();
    new.pods.push(pod("default", "frontend-2", "frontend", &["10.0.0.11"]));
    new.pods.push(pod("default", "backend-2", "backend", &["10.0.0.12"]));
    let new = sorted(new);
    let epoch = h.datapath.maps().config().expect("config").epoch;
    let report = change_in_place(&mut h, &ir, &old, &new);
    assert_eq!(report.generation, 1, "no new generation");
    assert!(!report.rejudge);
    assert_eq!(h.datapath.maps().config().expect("config").epoch, epoch, "nothing judged again");
    // The new replicas follow the policy...
    assert_eq!(h.flow("frontend-2", "backend-2", p("10.0.0.11", "10.0.0.12", TCP, 47001, 8080)), PASS);
    assert_eq!(h.flow("frontend-2", "backend", p("10.0.0.11", BE, TCP, 47002, 8080)), PASS);
    assert_eq!(h.flow("database", "backend-2", p(DB, "10.0.0.12", TCP, 47003, 8080)), DROP);
    assert_eq!(h.egress("backend-2", p("10.0.0.12", FE, TCP, 47004, 80)), DROP);
    // ...and the open connection was never judged again.
    assert_eq!(h.ingress_frame("backend", &packet::frame(&syn, ACK, 0)), PASS);
}

#[test]
fn a_pod_removed_in_place_loses_its_connections_needs_root() {
    if !can_run_as_root("a_pod_removed_in_place_loses_its_connections_needs_root") {
        return;
    }
    let (ir, old) = seed();
    let mut h = Harness::new(&ir, &old, false);
    let mut events = h.datapath.take_events().expect("events");
    let cut = p(FE, BE, TCP, 49000, 8080);
    let kept = p(BE, DB, TCP, 49001, 5432);
    assert_eq!(h.flow("frontend", "backend", cut), PASS);
    assert_eq!(h.flow("backend", "database", kept), PASS);
    drain(&mut events);
    let mut new = old.clone();
    new.pods.retain(|p| p.name != "frontend");
    let before = h.datapath.maps().config().expect("config");
    let report = change_in_place(&mut h, &ir, &old, &new);
    assert!(report.rejudge);
    let after = h.datapath.maps().config().expect("config");
    assert_eq!(after.generation, before.generation, "the same generation");
    assert_eq!(after.epoch, before.epoch.wrapping_add(1), "a new epoch");
    // Frontend's address is nobody's now: its open connection to backend stops passing...
    let ack = packet::frame(&cut, ACK, 0);
    assert_eq!(h.ingress_frame("backend", &ack), DROP, "the removed pod's connection is cut");
    let seen = drain(&mut events);
    assert_eq!(
        seen.iter().map(|e| (e.verdict, e.reason)).collect::<Vec<_>>(),
        vec![(abi::VERDICT_DENY, abi::REASON_REJUDGE)]
    );
    assert_eq!(h.datapath.maps().conntrack(&ingress_key(&cut)).expect("lookup"), None, "and forgotten");
    // ...while a connection the policy still allows is judged again and passes.
    assert_eq!(h.egress_frame("backend", &packet::frame(&kept, ACK, 0)), PASS);
    assert_eq!(h.ingress_frame("database", &packet::frame(&kept, ACK, 0)), PASS);
    // A new pod that gets the address later is judged as what it is, not as the old frontend.
    let mut reused = new.clone();
    reused.pods.push(pod("default", "intruder", "database", &[FE]));
    let reused = sorted(reused);
    change_in_place(&mut h, &ir, &new, &reused);
    assert_eq!(h.ingress_frame("backend", &ack), DROP);
    assert_eq!(h.ingress("backend", p(FE, BE, TCP, 49002, 8080)), DROP);
    // Removing a local pod removes its endpoint: its interface is no longer judged.
    assert!(h.plan.endpoints.iter().all(|e| e.name != "frontend"));
    let live = h.datapath.maps().live_endpoints().expect("endpoints");
    assert!(
        live.keys()
            .all(|ifindex| *ifindex == 1 || h.plan.endpoints.iter().any(|e| fake_ifindex(e.id) == *ifindex))
    );
}

#[test]
fn relabelled_pods_and_new_identities_change_in_place_needs_root() {
    if !can_run_as_root("relabelled_pods_and_new_identities_change_in_place_needs_root") {
        return;
    }
    let probe = netc_ir::Peer::Pods { namespaces: None, pods: Some(sel(&[("role", "probe")])) };
    let ir = ir(vec![policy(
        "default",
        "backend",
        guarded(vec![
            rule("fe-be", 10, vec![app("frontend")], vec![tcp(8080)]),
            rule("probe-be", 12, vec![probe], vec![tcp(9090)]),
        ]),
        open(),
    )]);
    let (_, old) = seed();
    let mut h = Harness::new(&ir, &old, false);
    let open_flow = p(FE, BE, TCP, 50000, 8080);
    assert_eq!(h.flow("frontend", "backend", open_flow), PASS);
    assert_eq!(h.flow("database", "backend", p(DB, BE, TCP, 50001, 8080)), DROP);
    // database becomes a frontend, frontend becomes something else (existing identities).
    let mut relabelled = old.clone();
    for pod in &mut relabelled.pods {
        match pod.name.as_str() {
            "database" => pod.labels.insert("app".into(), "frontend".into()),
            "frontend" => pod.labels.insert("app".into(), "database".into()),
            _ => None,
        };
    }
    let report = change_in_place(&mut h, &ir, &old, &relabelled);
    assert!(report.rejudge);
    assert_eq!(report.generation, 1);
    assert_eq!(h.ingress_frame("backend", &packet::frame(&open_flow, ACK, 0)), DROP, "no longer a frontend");
    assert_eq!(h.flow("database", "backend", p(DB, BE, TCP, 50002, 8080)), PASS, "now a frontend");
    // A probe that is also a frontend: a kind of pod no pod was, with entries of its own.
    let identities = h.plan.identity_count;
    let mut probed = relabelled.clone();
    let mut both = pod("default", "frontend-probe", "frontend", &["10.0.0.20"]);
    both.labels.insert("role".into(), "probe".into());
    probed.pods.push(both);
    let probed = sorted(probed);
    let report = change_in_place(&mut h, &ir, &relabelled, &probed);
    assert!(!report.rejudge, "a new pod turns no allowed flow into a denied one");
    assert_eq!(h.plan.identity_count, identities + 1);
    assert_eq!(h.ingress("backend", p("10.0.0.20", BE, TCP, 50003, 9090)), PASS);
    assert_eq!(h.ingress("backend", p("10.0.0.20", BE, TCP, 50004, 8080)), PASS);
    assert_eq!(h.ingress("backend", p("10.0.0.20", BE, TCP, 50005, 22)), DROP);
    assert_eq!(h.ingress("backend", p(DB, BE, TCP, 50006, 9090)), DROP, "a frontend is no probe");
    // The in-place plan means what a rebuilt one means.
    assert_eq!(h.plan.meaning(), Plan::build(&ir, &probed, &PlanOptions::default()).meaning());
}

#[test]
fn conntrack_entries_are_found_from_every_cpu_needs_root() {
    if !can_run_as_root("conntrack_entries_are_found_from_every_cpu_needs_root") {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus < 2 {
        eprintln!("skipping conntrack_entries_are_found_from_every_cpu_needs_root: needs 2 CPUs");
        return;
    }
    let (ir, inv) = seed();
    let mut h = Harness::new(&ir, &inv, false);
    // BPF_PROG_TEST_RUN runs on the calling thread's CPU: the SYN's entry is written on CPU 0,
    // the reply is judged on CPU 1 (the table is one for all CPUs).
    let syn = p(FE, BE, TCP, 51000, 8080);
    on_cpu(0);
    assert_eq!(h.ingress("backend", syn), PASS);
    on_cpu(1);
    assert_eq!(h.egress_frame("backend", &packet::frame(&syn.reply(), ACK | packet::SYN, 0)), PASS);
    assert_eq!(h.ingress_frame("backend", &packet::frame(&syn, ACK, 0)), PASS);
    let stats = h.datapath.maps().stats().expect("stats");
    assert_eq!(stats[abi::STAT_PASSED_NEW as usize], 1, "one new flow; the rest was found in conntrack");
}

/// Pin the calling thread to one CPU.
fn on_cpu(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is an empty set; CPU_SET and sched_setaffinity get valid
    // pointers to it for the duration of the calls.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set),
            0,
            "pin to CPU {cpu}"
        );
    }
}

/// The conntrack key of `packet` at `pod`'s ingress door, as the harness runs it (ifindex 1).
fn ingress_key(packet: &Packet) -> abi::CtKey {
    let (family, saddr) = abi::addr_bytes(packet.src);
    let (_, daddr) = abi::addr_bytes(packet.dst);
    abi::CtKey {
        saddr,
        daddr,
        sport: packet.sport.to_be(),
        dport: packet.dport.to_be(),
        ifindex: 1,
        family: u8::try_from(family).expect("4 or 6"),
        protocol: packet.protocol,
        hook: abi::INGRESS,
        pad: 0,
    }
}

fn drain(events: &mut aya::maps::RingBuf<aya::maps::MapData>) -> Vec<abi::Event> {
    let mut seen = Vec::new();
    while let Some(item) = events.next() {
        seen.push(abi::Event::from_bytes(&item).expect("an event"));
    }
    seen
}

#[test]
fn syns_of_known_flows_are_judged_as_before_needs_root() {
    if !can_run_as_root("syns_of_known_flows_are_judged_as_before_needs_root") {
        return;
    }
    let (ir1, inv) = seed();
    let mut h = Harness::new(&ir1, &inv, false);
    let mut events = h.datapath.take_events().expect("events");
    let syn = p(FE, BE, TCP, 48000, 8080);
    let passed = |h: &Harness| h.datapath.maps().stats().expect("stats")[abi::STAT_PASSED_NEW as usize];
    assert_eq!(h.ingress("backend", syn), PASS);
    assert_eq!(passed(&h), 1);
    assert_eq!(drain(&mut events).iter().map(|e| e.reason).collect::<Vec<_>>(), vec![abi::REASON_NEW]);
    // A retransmitted SYN is the same flow: it passes, and is neither counted nor reported again.
    assert_eq!(h.ingress("backend", syn), PASS);
    assert_eq!(passed(&h), 1);
    assert!(drain(&mut events).is_empty());
    // Under a new generation that still allows it, the SYN is judged again, once.
    h.reapply(&ir1, &inv, false);
    assert_eq!(h.ingress("backend", syn), PASS);
    assert_eq!(drain(&mut events).iter().map(|e| e.reason).collect::<Vec<_>>(), vec![abi::REASON_REJUDGE]);
    let entry = h.datapath.maps().conntrack(&ingress_key(&syn)).expect("lookup").expect("remembered");
    assert_eq!(entry.generation, 2, "stamped with the generation that judged it again");
    assert_eq!(h.ingress("backend", syn), PASS);
    assert!(drain(&mut events).is_empty());
    // Under one that revokes it, the SYN is dropped as a judged-again flow and forgotten.
    let mut ir2 = ir1.clone();
    ir2.policies[0].ingress.rules.clear();
    h.reapply(&ir2, &inv, false);
    assert_eq!(h.ingress("backend", syn), DROP);
    let seen = drain(&mut events);
    assert_eq!(
        seen.iter().map(|e| (e.verdict, e.reason)).collect::<Vec<_>>(),
        vec![(abi::VERDICT_DENY, abi::REASON_REJUDGE)]
    );
    assert_eq!(h.datapath.maps().conntrack(&ingress_key(&syn)).expect("lookup"), None);
    assert_eq!(h.ingress("backend", syn), DROP);
    assert_eq!(drain(&mut events)[0].reason, abi::REASON_NEW, "a forgotten flow is new again");
}

#[test]
fn a_full_conntrack_set_replaces_one_flow_and_keeps_the_others_needs_root() {
    if !can_run_as_root("a_full_conntrack_set_replaces_one_flow_and_keeps_the_others_needs_root") {
        return;
    }
    // A small conntrack (1,024 slots, 256 sets of 4) and five connections to the backend whose
    // keys fall in one set.
    let (ir, inv) = seed();
    let mut datapath =
        Datapath::load_with_capacities(None, &[(abi::MAP_CONNTRACK, 1024)]).expect("load the datapath");
    let plan = Plan::build(&ir, &inv, &PlanOptions::default());
    let interfaces = plan.endpoints.iter().map(|e| (e.id, fake_ifindex(e.id))).collect();
    datapath.apply(&plan, &interfaces, false).expect("apply");
    let backend = plan.endpoints.iter().find(|e| e.name == "backend").expect("backend").id;
    datapath.bind(&plan, backend, 1).expect("bind");
    let config = datapath.maps().config().expect("config");
    assert_eq!(config.ct_sets, 256);
    assert_ne!(config.ct_seed, 0, "a seed was drawn");
    let set_of = |p: &Packet| abi::ct_first_slot(&ingress_key(p), config.ct_sets, config.ct_seed);
    let target = set_of(&p(FE, BE, TCP, 40000, 8080));
    let flows: Vec<Packet> = (40000..60000)
        .map(|sport| p(FE, BE, TCP, sport, 8080))
        .filter(|f| set_of(f) == target)
        .take(5)
        .collect();
    assert_eq!(flows.len(), 5, "five ports whose flows share a set");
    let remembered = |dp: &Datapath| {
        flows.iter().filter(|f| dp.maps().conntrack(&ingress_key(f)).expect("read").is_some()).count()
    };
    for f in &flows[..4] {
        assert_eq!(datapath.test_run(abi::PROG_TO_POD, &f.frame(), 1).expect("run").0, PASS);
    }
    assert_eq!(remembered(&datapath), 4);
    // The fifth takes one of the four slots: it is remembered, three of the others still are.
    assert_eq!(datapath.test_run(abi::PROG_TO_POD, &flows[4].frame(), 1).expect("run").0, PASS);
    assert!(datapath.maps().conntrack(&ingress_key(&flows[4])).expect("read").is_some());
    assert_eq!(remembered(&datapath), 4);
    let evicted = flows[..4]
        .iter()
        .find(|f| datapath.maps().conntrack(&ingress_key(f)).expect("read").is_none())
        .expect("one flow was replaced");
    // The replaced connection's next packet is judged again (allowed: remembered again), and its
    // replies pass the backend's guarded egress door as before.
    let passed = |dp: &Datapath| dp.maps().stats().expect("stats")[abi::STAT_PASSED_NEW as usize];
    let before = passed(&datapath);
    assert_eq!(datapath.test_run(abi::PROG_TO_POD, &packet::frame(evicted, ACK, 0), 1).expect("run").0, PASS);
    assert_eq!(passed(&datapath), before + 1, "judged as a new flow");
    assert!(datapath.maps().conntrack(&ingress_key(evicted)).expect("read").is_some());
    let reply = packet::frame(&evicted.reply(), ACK, 0);
    assert_eq!(datapath.test_run(abi::PROG_FROM_POD, &reply, 1).expect("run").0, PASS);
}

#[test]
fn a_replica_joins_a_policy_set_whose_first_pod_has_no_interface_needs_root() {
    if !can_run_as_root("a_replica_joins_a_policy_set_whose_first_pod_has_no_interface_needs_root") {
        return;
    }
    // The backend's veth is not found when the generation is applied: its policy set's entries
    // must be written anyway, for a replica that joins the set later, in place.
    let (ir, old) = seed();
    let mut datapath = Datapath::load(None).expect("load the datapath");
    let mut plan = Plan::build(&ir, &old, &PlanOptions::default());
    let backend = plan.endpoints.iter().find(|e| e.name == "backend").expect("backend").id;
    let interfaces =
        plan.endpoints.iter().filter(|e| e.id != backend).map(|e| (e.id, fake_ifindex(e.id))).collect();
    datapath.apply(&plan, &interfaces, false).expect("apply");
    let mut new = old.clone();
    new.pods.push(pod("default", "backend-2", "backend", &["10.0.0.12"]));
    let new = sorted(new);
    let delta = plan.update_in_place(&ir, &old, &new, &PlanOptions::default()).expect("in place");
    assert_eq!(delta.new_sets, 0, "backend-2 joins backend's set");
    assert!(delta.policy.is_empty(), "the set's entries are not in the delta: {delta:?}");
    let replica = delta.endpoints.iter().find(|e| e.name == "backend-2").expect("backend-2").id;
    datapath.apply_delta(&delta, &BTreeMap::from([(replica, 1)])).expect("apply in place");
    let syn = p(FE, "10.0.0.12", TCP, 52000, 8080);
    assert_eq!(datapath.test_run(abi::PROG_TO_POD, &syn.frame(), 1).expect("run").0, PASS);
    let other = p(DB, "10.0.0.12", TCP, 52001, 8080);
    assert_eq!(datapath.test_run(abi::PROG_TO_POD, &other.frame(), 1).expect("run").0, DROP);
}

/// The article's restrict-egress with Services in front of the pods: backend may call database
/// on 5432 and anything in 10.96.0.0/12 on port 80 (the Service CIDR: an ipBlock a user may write
/// to "allow Services"). With the Service path on (netcd --uplink), a call to a Service frontend
/// passes the client's veth with the Service mark and is judged after kube-proxy's translation,
/// on the backend and targetPort: the database's Service (80 -> 5432) is allowed, the frontend's
/// (80 -> 8080) denied although the ipBlock covers its ClusterIP and port.
/// backend's egress: database:5432 and the Service CIDRs on port 80; database lets backend in;
/// Services: database (80 -> 5432, NodePort 30432) and frontend (80 -> 8080).
fn services_case() -> (netc_ir::Ir, netc_ir::Inventory) {
    let (_, mut inv) = seed();
    let ir = ir(vec![
        policy(
            "default",
            "backend",
            guarded(vec![rule("fe-be", 10, vec![app("frontend")], vec![tcp(8080)])]),
            guarded(vec![
                rule("be-db", 11, vec![app("database")], vec![tcp(5432)]),
                rule(
                    "be-svc",
                    12,
                    vec![block("10.96.0.0/12", &[]), block("fd00:96::/108", &[])],
                    vec![tcp(80)],
                ),
            ]),
        ),
        policy(
            "default",
            "database",
            guarded(vec![rule("be-db-in", 11, vec![app("backend")], vec![tcp(5432)])]),
            open(),
        ),
    ]);
    inv.pods.push(pod("default", "database6", "database", &["fd00::3"]));
    inv.services = vec![
        service("default", "database", &["10.96.0.10", "fd00:96::10"], 80, 5432, Some(30432)),
        service("default", "frontend", &["10.96.0.20", "fd00:96::20"], 80, 8080, None),
    ];
    (ir, inv)
}

#[test]
fn service_calls_are_judged_after_the_translation_needs_root() {
    if !can_run_as_root("service_calls_are_judged_after_the_translation_needs_root") {
        return;
    }
    let (ir, inv) = services_case();
    let mark = abi::DEFAULT_SERVICE_MARK;
    let mut h = Harness::with_services(&ir, &inv, false);

    // The client's veth: a Service call passes, marked; anything else is judged there as before.
    let call = p(BE, "10.96.0.10", TCP, 41000, 80);
    assert_eq!(h.egress_marked("backend", &call.frame()), (PASS, mark), "a Service call is marked");
    assert_eq!(
        h.egress_marked("backend", &packet::frame(&call, ACK, 0)),
        (PASS, mark),
        "and so is every later packet of it"
    );
    assert_eq!(
        h.egress_marked("backend", &p(BE, "10.96.0.10", TCP, 41001, 81).frame()),
        (DROP, 0),
        "not a frontend"
    );
    assert_eq!(
        h.egress_marked("backend", &p(BE, "10.96.0.99", TCP, 41002, 80).frame()),
        (PASS, 0),
        "no Service there: the ipBlock allows it, judged at the veth"
    );
    assert_eq!(
        h.egress_marked("frontend", &p(FE, "10.96.0.10", TCP, 41003, 80).frame()),
        (PASS, 0),
        "an open egress door takes no Service path"
    );
    // (Its reply passes the client's ingress door once the call is allowed after the
    // translation: a_service_calls_reply_passes_only_once_it_is_allowed_after_the_translation.)

    // After the translation: judged on the backend and targetPort, the mark cleared.
    let to_db = p(BE, DB, TCP, 41000, 5432);
    assert_eq!(
        h.translated("backend", Some("database"), &to_db.frame(), mark),
        (PASS, 0),
        "database's Service"
    );
    assert_eq!(
        h.translated("backend", None, &p(BE, DB, TCP, 41010, 5432).frame(), mark),
        (PASS, 0),
        "remote"
    );
    let to_fe = p(BE, FE, TCP, 41011, 8080);
    assert_eq!(
        h.service_call("backend", p(BE, "10.96.0.20", TCP, 41011, 80), Some("frontend"), to_fe),
        DROP,
        "frontend's Service: its targetPort is not allowed, whatever the ipBlock says"
    );
    assert_eq!(
        h.service_call("backend", p(BE, "10.96.0.20", TCP, 41012, 80), None, p(BE, FE, TCP, 41012, 8080)),
        DROP,
        "the same with the backend on another node (the uplink)"
    );
    // Masquerade changes the source, not the interface the call came in on.
    assert_eq!(
        h.translated("backend", None, &p("192.0.2.1", FE, TCP, 41013, 8080).frame(), mark).0,
        DROP,
        "masqueraded: still backend's call"
    );
    // Unmarked packets at the uplink are not Service calls: they were judged at their veth.
    assert_eq!(h.translated("backend", None, &to_fe.frame(), 0), (PASS, 0), "no mark, no judgement");
    // NodePort, on any address of the node, and IPv6.
    assert_eq!(
        h.service_call(
            "backend",
            p(BE, "192.0.2.10", TCP, 41020, 30432),
            Some("database"),
            p(BE, DB, TCP, 41020, 5432)
        ),
        PASS,
        "NodePort to database"
    );
    assert_eq!(
        h.service_call(
            "backend",
            p(BE6, "fd00:96::10", TCP, 41030, 80),
            Some("database6"),
            p(BE6, "fd00::3", TCP, 41030, 5432)
        ),
        PASS,
        "IPv6 database Service"
    );
    assert_eq!(
        h.service_call(
            "backend",
            p(BE6, "fd00:96::20", TCP, 41031, 80),
            Some("frontend"),
            p(BE6, FE6, TCP, 41031, 8080)
        ),
        DROP,
        "IPv6 frontend Service"
    );
    // The backend's own ingress door is still judged at its veth after the client's egress.
    assert_eq!(
        h.service_call(
            "frontend",
            p(FE, "10.96.0.10", TCP, 41040, 80),
            Some("database"),
            p(FE, DB, TCP, 41040, 5432)
        ),
        DROP,
        "database lets only backend in"
    );

    // Audit: the would-be drop passes.
    let mut audit = Harness::with_services(&ir, &inv, true);
    assert_eq!(
        audit.service_call(
            "backend",
            p(BE, "10.96.0.20", TCP, 41050, 80),
            Some("frontend"),
            p(BE, FE, TCP, 41050, 8080)
        ),
        PASS,
        "audit mode"
    );

    // Without the Service path (no --uplink) a Service call is judged on its frontend: the ipBlock
    // lets frontend's Service through (what the Service path corrects).
    let mut before = Harness::new(&ir, &inv, false);
    assert_eq!(before.egress_marked("backend", &p(BE, "10.96.0.20", TCP, 41060, 80).frame()), (PASS, 0));
}

/// A TCP Service call's entry at the client's veth lets its replies in only once the judgement
/// after the translation allowed it: before, and after a denial, a packet from the frontend to the
/// client's port is judged as a new flow at the client's guarded ingress door (dropped here),
/// so a packet forged to come from a Service the client may not call cannot get in.
#[test]
fn a_service_calls_reply_passes_only_once_it_is_allowed_after_the_translation_needs_root() {
    if !can_run_as_root(
        "a_service_calls_reply_passes_only_once_it_is_allowed_after_the_translation_needs_root",
    ) {
        return;
    }
    let (ir, inv) = services_case();
    let mark = abi::DEFAULT_SERVICE_MARK;
    for audit in [false, true] {
        let mut h = Harness::with_services(&ir, &inv, audit);
        let reply = |call: &Packet| packet::frame(&call.reply(), SYN | ACK, 0);
        // What backend's guarded ingress door does with a packet from a ClusterIP as a new flow.
        let new_flow = if audit { PASS } else { DROP };

        // Allowed: database's Service.
        let call = p(BE, "10.96.0.10", TCP, 42000, 80);
        assert_eq!(h.egress_marked("backend", &call.frame()), (PASS, mark), "the call leaves, marked");
        assert_eq!(
            h.ingress_frame("backend", &reply(&call)),
            new_flow,
            "no reply before the judgement after the translation"
        );
        assert_eq!(
            h.egress_marked("backend", &call.frame()),
            (PASS, mark),
            "a retransmitted SYN still leaves"
        );
        let to_db = p(BE, DB, TCP, 42000, 5432);
        assert_eq!(
            h.translated_at_uplink("backend", &to_db.frame(), mark),
            (PASS, 0),
            "allowed after the translation"
        );
        assert_eq!(h.ingress_frame("backend", &reply(&call)), PASS, "now its reply passes");
        assert_eq!(
            h.ingress_frame("backend", &packet::frame(&call.reply(), ACK, 0)),
            PASS,
            "and every later one"
        );

        // Denied: frontend's Service (8080 is not allowed). A reply forged to come from its
        // ClusterIP to the client's port is a new flow at backend's ingress door: dropped.
        let call = p(BE, "10.96.0.20", TCP, 42001, 80);
        assert_eq!(h.egress_marked("backend", &call.frame()), (PASS, mark));
        let to_fe = p(BE, FE, TCP, 42001, 8080);
        let after = h.translated_at_uplink("backend", &to_fe.frame(), mark).0;
        assert_eq!(after, new_flow, "judged on frontend:8080 (audit: {audit})");
        assert_eq!(
            h.ingress_frame("backend", &reply(&call)),
            new_flow,
            "a reply from frontend's ClusterIP after the denial (in audit mode the call went through)"
        );

        // Masqueraded (a NodePort: kube-proxy's MASQUERADE --random-fully changes the source
        // address and port): the call's record, keyed by the SYN's sequence number, still finds
        // the client's own port, and the reply to it passes.
        let call = p(BE, "192.0.2.10", TCP, 42002, 30432);
        assert_eq!(h.egress_marked("backend", &call.frame()), (PASS, mark));
        let masqueraded = p("192.0.2.10", DB, TCP, 61000, 5432);
        assert_eq!(h.translated_at_uplink("backend", &masqueraded.frame(), mark), (PASS, 0));
        assert_eq!(h.ingress_frame("backend", &reply(&call)), PASS, "the NodePort call's reply");
    }
}
