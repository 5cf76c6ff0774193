//! netcd datapath and update benchmarks, each beside a baseline measured in the same run.
//!
//! Per-packet cost (BPF_PROG_TEST_RUN, in-kernel time per run) of the netc classifier at 10,
//! 1,000 and 100,000 rules, beside an empty classifier:
//! - established: an ACK of an allowed flow already in conntrack (repeat = 1M); and a SYN of a
//!   known flow (a retransmission), which the datapath first tries to insert as a new flow;
//! - new, allowed (warm): the first packet of a flow, judged by the real datapath code in a
//!   benchmark-only program (runtime/ebpf/bench.c) that varies the source port itself, 64 new
//!   flows per run, so caches are as warm as on a busy node;
//! - new, allowed (cold): one test run per fresh flow (repeat = 1), beside the empty classifier
//!   run the same way; each run starts with cold caches and includes the kernel's timer, so this
//!   is an upper bound;
//! - new, denied: a packet no rule allows (never remembered, so repeat works; it is reported on
//!   the ring buffer like in production);
//! - the conntrack's size (`netcd run --conntrack-entries`): for 8,192 to 1,048,576 entries, the
//!   insert an allowed SYN makes, alone (fresh keys into a fresh map of that size: what
//!   remembering a flow costs whatever the datapath around it does), and the whole new allowed
//!   flow (warm, 10 rules, another fresh map of that size); the table above uses netcd's default
//!   size on this machine;
//! - memory alone: random reads and writes in a 32 MiB array, independent of each other;
//! - the Service path (netcd --uplink): a client with guarded egress calling a ClusterIP, beside
//!   the same flow to the pod's address in the same datapath: at the client's veth (a frontend:
//!   passed with the Service mark), at the backend's veth (the client's egress door judged
//!   there, after the translation, then the backend's ingress door) and at the uplink; one test
//!   run per packet (the mark a program clears would be gone at a repeat), timer included.
//!
//! Update cost: applying a 10,000-rule IR (to the flip, and with the old generation removed);
//! one pod changed in place (as netcd does when only pods change), one after the other on the
//! same live state: a replica added (existing identity), a pod removed, a pod relabelled to an
//! existing identity, a pod of a new identity added (entries in the policy set that guards it),
//! a replica of the guarded server added (it joins the server's policy set), the server
//! relabelled with a label no rule reads, the replica relabelled out of the policy, the last pod
//! the 10,000 rules guard removed (its set's entries deleted) and the first one added again (its
//! set's entries written: the one pod change that costs in proportion to the rules); each from
//! the inventory diff to the last map write; and the last change as a whole new generation.
//!
//! Run as root: `cargo bench -p netc-benches --bench datapath`. Without root it says so and
//! exits. `NETC_BENCH_QUICK=1` uses fewer repeats.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use netc_ir::{
    Door, DoorState, Inventory, Ir, LabelSelector, Namespace, Peer, Pod, Policy, Port, PortValue, Protocol,
    Rule, Span,
};
use netc_runtime::abi;
use netc_runtime::daemon::default_conntrack_entries;
use netc_runtime::datapath::{self, Datapath};
use netc_runtime::packet::{self, Packet};
use netc_runtime::plan::{Plan, PlanOptions};

const CLIENTS: usize = 1000;

fn span() -> Span {
    Span { file: "bench.np".into(), line: 1, column: 1, start: 0, end: 1 }
}

fn pod(name: &str, app: &str, ip: Ipv4Addr) -> Pod {
    Pod {
        namespace: "default".into(),
        name: name.into(),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        ips: vec![IpAddr::V4(ip)],
        ports: vec![],
        node: None,
        host_interface: None,
        host_network: false,
    }
}

fn client_ip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).expect("small");
    Ipv4Addr::from(0x0a40_0000 + i + 1)
}

/// `rules` rules guarding the server's ingress: rule i lets app=client(i mod 1000) reach TCP
/// port 1000 + i / 1000, so every rule is distinct and each is one policy entry; the last one
/// lets pods role=probe in instead (no pod is one until the update benchmark adds one).
fn case(rules: usize) -> (Ir, Inventory) {
    let rule_list = (0..rules)
        .map(|i| Rule {
            id: format!("r{i}"),
            peers: vec![Peer::Pods {
                namespaces: None,
                pods: Some(if i + 1 == rules && rules > 1 {
                    LabelSelector::labels([("role", "probe")])
                } else {
                    LabelSelector::labels([("app", format!("client{}", i % CLIENTS))])
                }),
            }],
            ports: vec![Port {
                protocol: Protocol::Tcp,
                port: Some(PortValue::Number(u16::try_from(1000 + i / CLIENTS).expect("port"))),
                end_port: None,
            }],
            span: span(),
        })
        .collect();
    let ir = Ir {
        policies: vec![Policy {
            name: "server".into(),
            namespace: "default".into(),
            workload: "server".into(),
            selector: LabelSelector::labels([("app", "server")]),
            doc: None,
            ingress: Door { state: DoorState::Guarded, guarded_by: vec![], rules: rule_list },
            egress: Door::open(),
            span: span(),
        }],
        ..Ir::empty()
    };
    let mut pods: Vec<Pod> = (0..CLIENTS.min(rules))
        .map(|i| pod(&format!("client{i:04}"), &format!("client{i}"), client_ip(i)))
        .collect();
    pods.push(pod("server", "server", Ipv4Addr::new(10, 63, 0, 1)));
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    let namespaces = vec![Namespace {
        name: "default".into(),
        labels: BTreeMap::from([(netc_ir::inventory::NAMESPACE_NAME_LABEL.to_owned(), "default".to_owned())]),
    }];
    (ir, Inventory { namespaces, pods, ..Inventory::default() })
}

fn interfaces(plan: &Plan) -> BTreeMap<u32, u32> {
    plan.endpoints.iter().map(|e| (e.id, 1_000_000 + e.id)).collect()
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Mean in-kernel ns per run of `frames`, each run once.
fn once_each(run: &mut dyn FnMut(&[u8]) -> Duration, frames: &[Vec<u8>]) -> f64 {
    let total: f64 = frames.iter().map(|f| ns(run(f))).sum();
    total / frames.len() as f64
}

/// The median of some samples.
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// A pod change the update benchmark makes: its description and what it does to the inventory.
type PodChange = (&'static str, fn(&mut Inventory));

/// Conntrack sizes the benchmark compares (`netcd run --conntrack-entries`; netcd's default on
/// this machine, `netc_runtime::daemon::default_conntrack_entries()`, is the size of the table
/// above).
const CONNTRACK_SIZES: [u32; 6] = [8_192, 32_768, 65_536, 131_072, 262_144, 1_048_576];

/// The benchmark object loaded with the `rules` case applied and the server's endpoint bound to
/// ifindex 1, where test runs arrive.
fn loaded(rules: usize, capacities: &[(&str, u32)]) -> (Datapath, Plan) {
    let (ir, inventory) = case(rules);
    let plan = Plan::build(&ir, &inventory, &PlanOptions::default());
    let mut dp = Datapath::load_bench(capacities).expect("load");
    dp.apply(&plan, &interfaces(&plan), false).expect("apply");
    let server_id = plan.endpoints.iter().find(|e| e.name == "server").expect("server").id;
    dp.bind(&plan, server_id, 1).expect("bind");
    (dp, plan)
}

/// Mean ns per flow of a benchmark program (`abi::BENCH_FLOWS_PER_RUN` fresh flows per run, never
/// the same source port twice).
fn warm(dp: &Datapath, program: &'static str, probe: &[u8]) -> f64 {
    let runs = 1000u32.min(65_536 / abi::BENCH_FLOWS_PER_RUN - 1);
    let (verdict, took) = dp.test_run(program, probe, runs).expect("run");
    assert_eq!(verdict, 0, "every benchmark flow is new (and allowed)");
    ns(took) / f64::from(abi::BENCH_FLOWS_PER_RUN)
}

/// The Service path beside the direct path, same datapath, same run: client (guarded egress:
/// server:1000) calls the server's Service 10.96.0.1:80 (targetPort 1000), or the server's
/// address; the server's ingress lets the client in. `empty_once`: the empty classifier, one run
/// per packet (timer included), the floor of every figure here.
fn service_path(empty_once: f64, fresh: usize) {
    let server_ip = Ipv4Addr::new(10, 63, 0, 1);
    let door = |peer: &str| Door {
        state: DoorState::Guarded,
        guarded_by: vec![],
        rules: vec![Rule {
            id: format!("{peer}-1000"),
            peers: vec![Peer::Pods { namespaces: None, pods: Some(LabelSelector::labels([("app", peer)])) }],
            ports: vec![Port {
                protocol: Protocol::Tcp,
                port: Some(PortValue::Number(1000)),
                end_port: None,
            }],
            span: span(),
        }],
    };
    let policy = |name: &str, ingress: Door, egress: Door| Policy {
        name: name.into(),
        namespace: "default".into(),
        workload: name.into(),
        selector: LabelSelector::labels([("app", name)]),
        doc: None,
        ingress,
        egress,
        span: span(),
    };
    let ir = Ir {
        policies: vec![
            policy("client", Door::open(), door("server")),
            policy("server", door("client"), Door::open()),
        ],
        ..Ir::empty()
    };
    let mut inventory = Inventory {
        pods: vec![pod("client", "client", client_ip(0)), pod("server", "server", server_ip)],
        ..Inventory::default()
    };
    inventory.services.push(netc_ir::Service {
        namespace: "default".into(),
        name: "server".into(),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1))],
        ports: vec![netc_ir::ServicePort {
            protocol: Protocol::Tcp,
            port: 80,
            target_port: PortValue::Number(1000),
            node_port: None,
        }],
    });
    let plan = Plan::build(&ir, &inventory, &PlanOptions { services: true, ..PlanOptions::default() });
    let mut dp = Datapath::load_bench(&[]).expect("load");
    let ifs = interfaces(&plan);
    dp.apply(&plan, &ifs, false).expect("apply");
    let id = |name: &str| plan.endpoints.iter().find(|e| e.name == name).expect("endpoint").id;
    let (client, server) = (id("client"), id("server"));
    let client_if = ifs[&client];
    let cluster_ip: IpAddr = Ipv4Addr::new(10, 96, 0, 1).into();
    let (c, s) = (IpAddr::V4(client_ip(0)), IpAddr::V4(server_ip));
    let port = |i: usize| u16::try_from(20_000 + i).expect("port");
    let mark = abi::DEFAULT_SERVICE_MARK;
    let mean = |samples: &[f64]| samples.iter().sum::<f64>() / samples.len() as f64;
    // New flows: the SYN at the client's veth (bound to ifindex 1), then, translated, at the
    // server's veth (bound next) or the uplink: one run each, fresh ports.
    let n = fresh / 4;
    let direct_syn = |i: usize| Packet::new(c, s, packet::TCP, port(i), 1000);
    let call_syn = |i: usize| Packet::new(c, cluster_ip, packet::TCP, port(n + i), 80);
    let translated_syn = |i: usize| Packet::new(c, s, packet::TCP, port(n + i), 1000);
    let run = |dp: &Datapath, program: &'static str, frame: &[u8], from: u32, mark_in: u32, want: u32| {
        let (verdict, mark_out, took) = dp.test_run_marked_timed(program, frame, from, mark_in).expect("run");
        assert_eq!((verdict, mark_out), (0, want), "{program}: allowed, mark {want:#x}");
        ns(took)
    };
    dp.bind(&plan, client, 1).expect("bind");
    let veth_new_direct: Vec<f64> =
        (0..n).map(|i| run(&dp, abi::PROG_FROM_POD, &direct_syn(i).frame(), 1, 0, 0)).collect();
    let veth_new_service: Vec<f64> =
        (0..n).map(|i| run(&dp, abi::PROG_FROM_POD, &call_syn(i).frame(), 1, 0, mark)).collect();
    let flow = Packet::new(c, s, packet::TCP, 40_000, 1000);
    let call = Packet::new(c, cluster_ip, packet::TCP, 40_001, 80);
    let translated = Packet::new(c, s, packet::TCP, 40_001, 1000);
    let ack = |p: &Packet| packet::frame(p, packet::ACK, 0);
    run(&dp, abi::PROG_FROM_POD, &flow.frame(), 1, 0, 0);
    run(&dp, abi::PROG_FROM_POD, &call.frame(), 1, 0, mark);
    let veth_est_direct: Vec<f64> =
        (0..n).map(|_| run(&dp, abi::PROG_FROM_POD, &ack(&flow), 1, 0, 0)).collect();
    let veth_est_service: Vec<f64> =
        (0..n).map(|_| run(&dp, abi::PROG_FROM_POD, &ack(&call), 1, 0, mark)).collect();
    dp.bind(&plan, server, 1).expect("bind");
    let to_pod_new_direct: Vec<f64> =
        (0..n).map(|i| run(&dp, abi::PROG_TO_POD, &direct_syn(i).frame(), client_if, 0, 0)).collect();
    let to_pod_new_service: Vec<f64> =
        (0..n).map(|i| run(&dp, abi::PROG_TO_POD, &translated_syn(i).frame(), client_if, mark, 0)).collect();
    run(&dp, abi::PROG_TO_POD, &flow.frame(), client_if, 0, 0);
    run(&dp, abi::PROG_TO_POD, &translated.frame(), client_if, mark, 0);
    let to_pod_est_direct: Vec<f64> =
        (0..n).map(|_| run(&dp, abi::PROG_TO_POD, &ack(&flow), client_if, 0, 0)).collect();
    let to_pod_est_service: Vec<f64> =
        (0..n).map(|_| run(&dp, abi::PROG_TO_POD, &ack(&translated), client_if, mark, 0)).collect();
    // The uplink (a backend on another node): unmarked packets pass at once; a call is judged.
    let remote = Packet::new(c, s, packet::TCP, 40_002, 1000);
    run(&dp, abi::PROG_UPLINK, &remote.frame(), client_if, mark, 0);
    let uplink_unmarked: Vec<f64> =
        (0..n).map(|_| run(&dp, abi::PROG_UPLINK, &ack(&flow), client_if, 0, 0)).collect();
    let uplink_est_service: Vec<f64> =
        (0..n).map(|_| run(&dp, abi::PROG_UPLINK, &ack(&remote), client_if, mark, 0)).collect();
    println!(
        "  the Service path (netcd --uplink; a client with guarded egress calls a ClusterIP; baseline: the same flow to the pod's address, same datapath, same run; one run per packet, timer included: the empty classifier so run takes {empty_once:.1} ns)"
    );
    println!("  {:<58} {:>12} {:>12} {:>10}", "", "direct", "Service", "+");
    for (what, direct, service) in [
        ("client's veth, established (Service: found, marked)", &veth_est_direct, &veth_est_service),
        ("backend's veth, established (Service: + client's door)", &to_pod_est_direct, &to_pod_est_service),
        ("uplink, established (direct: unmarked, passes)", &uplink_unmarked, &uplink_est_service),
        ("client's veth, new flow (Service: frontend, no judgement)", &veth_new_direct, &veth_new_service),
        ("backend's veth, new flow (Service: + client's door)", &to_pod_new_direct, &to_pod_new_service),
    ] {
        let (d, sv) = (mean(direct), mean(service));
        println!("  {what:<58} {d:>9.1} ns {sv:>9.1} ns {:>+7.1} ns", sv - d);
    }
    let (d, sv) = (
        mean(&veth_est_direct) + mean(&to_pod_est_direct),
        mean(&veth_est_service) + mean(&to_pod_est_service),
    );
    println!("  {:<58} {d:>9.1} ns {sv:>9.1} ns {:>+7.1} ns", "a packet, both veths, established", sv - d);
    let (d, sv) = (
        mean(&veth_new_direct) + mean(&to_pod_new_direct),
        mean(&veth_new_service) + mean(&to_pod_new_service),
    );
    println!("  {:<58} {d:>9.1} ns {sv:>9.1} ns {:>+7.1} ns", "a new flow, both veths", sv - d);
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("datapath bench: skipped, needs root (BPF_PROG_TEST_RUN)");
        return;
    }
    let quick = std::env::var_os("NETC_BENCH_QUICK").is_some();
    let repeat: u32 = if quick { 100_000 } else { 1_000_000 };
    let fresh = if quick { 2_000 } else { 20_000 };

    let server = Ipv4Addr::new(10, 63, 0, 1);
    let flow = Packet::new(client_ip(0).into(), server.into(), packet::TCP, 40000, 1000);
    let established = packet::frame(&flow, packet::ACK, 0);
    let denied = Packet::new(client_ip(0).into(), server.into(), packet::TCP, 40001, 9);
    let probe = Packet::new(client_ip(0).into(), server.into(), packet::TCP, 0, 1000).frame();
    // From client 1 (whose rule allows port 1000 too): the warm runs below use client 0 and
    // every source port, so that no flow of theirs is one of these, already known.
    let new_frames: Vec<Vec<u8>> = (0..fresh)
        .map(|i| {
            Packet::new(
                client_ip(1).into(),
                server.into(),
                packet::TCP,
                u16::try_from(1024 + i).expect("port"),
                1000,
            )
            .frame()
        })
        .collect();

    let empty = datapath::load_empty().expect("load the empty classifier");
    let (_, empty_repeat) =
        datapath::test_run_program(&empty, abi::PROG_EMPTY, &established, repeat).expect("run");
    let mut run_empty = |f: &[u8]| datapath::test_run_program(&empty, abi::PROG_EMPTY, f, 1).expect("run").1;
    let empty_once = once_each(&mut run_empty, &new_frames);
    let conntrack_default = default_conntrack_entries();
    println!(
        "datapath per packet (BPF_PROG_TEST_RUN, ns/run; baseline: empty classifier, same run; conntrack of {conntrack_default} entries, netcd's default here)"
    );
    println!(
        "  empty classifier: {:.1} ns (repeat {repeat}), {:.1} ns (repeat 1, timer included)",
        ns(empty_repeat),
        empty_once
    );
    println!(
        "  {:>7} {:>20} {:>20} {:>30} {:>20}",
        "rules", "established", "new allowed (warm)", "new allowed (cold, repeat 1)", "new denied"
    );
    let mut retransmitted = Vec::new();
    for rules in [10, 1_000, 100_000] {
        let (mut dp, _plan) = loaded(rules, &[(abi::MAP_CONNTRACK, conntrack_default)]);
        let mut events = dp.take_events().expect("events");
        let (verdict, _) = dp.test_run(abi::PROG_TO_POD, &established, 1).expect("run");
        assert_eq!(verdict, 0, "the benchmark flow is allowed");
        let (_, est) = dp.test_run(abi::PROG_TO_POD, &established, repeat).expect("run");
        let mut run_new = |f: &[u8]| dp.test_run(abi::PROG_TO_POD, f, 1).expect("run").1;
        let new = once_each(&mut run_new, &new_frames);
        let warm_new = warm(&dp, abi::PROG_BENCH_NEW_FLOWS, &probe);
        let (verdict, _) = dp.test_run(abi::PROG_TO_POD, &denied.frame(), 1).expect("run");
        assert_eq!(verdict, 2, "the denied flow is denied");
        let (_, deny) = dp.test_run(abi::PROG_TO_POD, &denied.frame(), repeat).expect("run");
        // Last: a million SYNs of one known flow (each judged, then found by its insert).
        let (_, syn_again) = dp.test_run(abi::PROG_TO_POD, &flow.frame(), repeat).expect("run");
        retransmitted.push(ns(syn_again));
        while events.next().is_some() {}
        println!(
            "  {:>7} {:>9.1} ns ({:>4.2}x) {:>9.1} ns ({:>4.2}x) {:>15.1} ns ({:>4.2}x, +{:>5.1}) {:>9.1} ns ({:>4.2}x)",
            rules,
            ns(est),
            ns(est) / ns(empty_repeat),
            warm_new,
            warm_new / ns(empty_repeat),
            new,
            new / empty_once,
            new - empty_once,
            ns(deny),
            ns(deny) / ns(empty_repeat)
        );
    }
    println!(
        "  a retransmitted SYN (known flow, judged, then found by its failed insert): {}",
        retransmitted.iter().map(|t| format!("{t:.1} ns")).collect::<Vec<_>>().join(", ")
    );
    service_path(empty_once, fresh);
    // The floor of an allowed new flow: its conntrack insert alone, in a fresh map of each size;
    // and the whole new flow in another fresh map of that size. Medians over a few fresh maps:
    // one sample moves by +-20 ns when other work shares the machine.
    let samples = if quick { 3 } else { 5 };
    let floor = |capacity: u32| {
        let capacities = [(abi::MAP_CONNTRACK, capacity)];
        let (mut inserts, mut news) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let (dp, _) = loaded(10, &capacities);
            inserts.push(warm(&dp, abi::PROG_BENCH_CONNTRACK_INSERT, &probe));
            let (dp, _) = loaded(10, &capacities);
            news.push(warm(&dp, abi::PROG_BENCH_NEW_FLOWS, &probe));
        }
        (median(inserts), median(news))
    };
    println!(
        "  conntrack size (--conntrack-entries; 10 rules, warm, median of {samples} fresh maps each; the insert alone: fresh keys)"
    );
    println!("  {:>9} {:>20} {:>20}", "entries", "insert alone", "new allowed (warm)");
    for size in CONNTRACK_SIZES {
        let (insert, new) = floor(size);
        println!(
            "  {:>9} {:>9.1} ns ({:>5.2}x) {:>9.1} ns ({:>5.2}x){}",
            size,
            insert,
            insert / ns(empty_repeat),
            new,
            new / ns(empty_repeat),
            if size == conntrack_default { "   netcd's default here (the table above)" } else { "" }
        );
    }
    // Memory alone: a read and a write at a random slot of a big array, 64 independent ones per
    // run. Their misses overlap (nothing waits for one before the next starts), so this is the
    // table's throughput, not the latency one new flow pays when its set is not in the cache.
    let touches: Vec<f64> = (0..samples)
        .map(|_| {
            let (dp, _) = loaded(10, &[]);
            warm(&dp, abi::PROG_BENCH_TABLE_TOUCH, &probe)
        })
        .collect();
    let touch = median(touches);
    println!(
        "  memory alone: a read and a 64-byte write at a random slot of a 32 MiB array (262,144 x 128 B), 64 independent ones per run, whose misses overlap: {touch:.1} ns ({:.2}x)",
        touch / ns(empty_repeat)
    );
    println!("  targets (DESIGN.md): established <= 60 ns, new flow <= 150 ns, flat from 10 to 100k rules");

    // Update costs.
    println!("netcd update (baseline: one map write of the same datapath, same run)");
    let mut dp = Datapath::load(None).expect("load");
    let (ir, inventory) = case(10_000);
    let plan0 = Plan::build(&ir, &inventory, &PlanOptions::default());
    dp.apply(&plan0, &interfaces(&plan0), false).expect("warm up");
    let t = Instant::now();
    let plan = Plan::build(&ir, &inventory, &PlanOptions::default());
    let build = t.elapsed();
    let report = dp.apply(&plan, &interfaces(&plan), false).expect("apply");
    let one_write = {
        let t = Instant::now();
        dp.bind(&plan, 1, 1).expect("bind");
        t.elapsed()
    };
    println!(
        "  10k-rule IR: plan {:.1} ms, written and flipped {:.1} ms, old generation removed {:.1} ms total ({} entries); one map write {:.1} us",
        build.as_secs_f64() * 1e3,
        report.to_flip.as_secs_f64() * 1e3,
        report.total.as_secs_f64() * 1e3,
        report.entries,
        one_write.as_secs_f64() * 1e6
    );
    // One pod change after another, each in place on the live generation.
    let mut plan = plan;
    let mut live = inventory;
    let changes: [PodChange; 9] = [
        ("a replica added (existing identity)", |inv| {
            inv.pods.push(pod("zz-new", "client0", Ipv4Addr::new(10, 63, 0, 2)));
        }),
        ("a pod removed", |inv| inv.pods.retain(|p| p.name != "client0005")),
        ("a pod relabelled (existing identity)", |inv| {
            let p = inv.pods.iter_mut().find(|p| p.name == "client0006").expect("client0006");
            p.labels.insert("app".into(), "client7".into());
        }),
        ("a pod of a new identity added", |inv| {
            let mut probe = pod("zz-probe", "client0", Ipv4Addr::new(10, 63, 0, 3));
            probe.labels.insert("role".into(), "probe".into());
            inv.pods.push(probe);
        }),
        ("a replica of the guarded server added", |inv| {
            // It joins the server's policy set: its 10,000 entries are there already.
            inv.pods.push(pod("server-2", "server", Ipv4Addr::new(10, 63, 0, 4)));
        }),
        ("the guarded server relabelled", |inv| {
            // A label no rule reads: same identity, same policy set.
            let p = inv.pods.iter_mut().find(|p| p.name == "server").expect("server");
            p.labels.insert("tier".into(), "gold".into());
        }),
        ("a server replica relabelled out of its policy", |inv| {
            // One endpoint write moves it to the set of unguarded pods; open flows judged again.
            let p = inv.pods.iter_mut().find(|p| p.name == "server-2").expect("server-2");
            p.labels.insert("app".into(), "client7".into());
        }),
        ("the last pod 10k rules guard removed", |inv| {
            // Its policy set goes: 10,000 entries deleted, after enforcement is done.
            inv.pods.retain(|p| p.name != "server");
        }),
        ("the first pod 10k rules guard added", |inv| {
            // A selection no pod here has: its policy set's 10,000 entries are written.
            let p = inv.pods.iter_mut().find(|p| p.name == "server-2").expect("server-2");
            p.labels.insert("app".into(), "server".into());
        }),
    ];
    for (what, change) in changes {
        let mut next = live.clone();
        change(&mut next);
        let t = Instant::now();
        let delta = plan.update_in_place(&ir, &live, &next, &PlanOptions::default()).expect("in place");
        let planned = t.elapsed();
        let added = delta.endpoints.iter().map(|e| (e.id, 1_000_000 + e.id)).collect();
        let applied = dp.apply_delta(&delta, &added).expect("apply in place");
        let took = t.elapsed();
        println!(
            "  {what:<46} in place: {:>7.3} ms in force, {:>7.3} ms done (plan {:.3} ms; {} map writes{}{}{})",
            (planned + applied.to_flip).as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3,
            planned.as_secs_f64() * 1e3,
            applied.entries,
            if delta.new_identities > 0 { ", a new identity" } else { "" },
            if delta.new_sets > 0 { ", a new policy set" } else { "" },
            if delta.rejudge { ", open connections judged again" } else { "" },
        );
        live = next;
    }
    let t = Instant::now();
    let rebuilt = Plan::build(&ir, &live, &PlanOptions::default());
    let full = dp.apply(&rebuilt, &interfaces(&rebuilt), false).expect("apply");
    let full_change = t.elapsed();
    println!(
        "  the last change as a whole new generation: {:.1} ms ({:.1} ms to the flip)",
        full_change.as_secs_f64() * 1e3,
        full.to_flip.as_secs_f64() * 1e3
    );
    println!("  targets (DESIGN.md): 10k-rule IR applied < 100 ms; one pod change < 1 ms");
}
