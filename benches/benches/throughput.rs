//! Throughput pod to pod over veth, with netcd's datapath enforcing and without, in one run: the
//! DESIGN.md target "enforcement vs none: >= 95% of bare veth throughput".
//!
//! Two pods (network namespaces) on one node, each behind a veth pair whose host side sits in
//! the root namespace, which routes between them (forwarding on those two interfaces only), as
//! in runtime/tests/e2e_needs_root.rs. Traffic crosses the client's egress door (tc ingress of
//! its host-side veth) and the server's ingress door (tc egress of the server's); replies cross
//! the other two doors. Three modes, each round:
//! - bare: the same veths with nothing attached (the baseline);
//! - hooks only: netcd's two classifiers attached (TCX, as netcd attaches on this kernel) to
//!   both host-side veths of a freshly loaded, unpinned datapath (netcd's default conntrack
//!   size) before any plan is applied: each packet is parsed, the configuration read, passed;
//! - enforced: the same attachments with a plan applied in which all four doors are guarded
//!   (default deny both ways on both pods; the client may reach the server's benchmark ports,
//!   replies pass by conntrack). The datapath is dropped (detached) at the end of the round.
//!
//! Measured in each mode: bulk TCP (one connection, 128 KiB writes, Gbit/s received); TCP
//! request/response (64 bytes each way, TCP_NODELAY, one outstanding, transactions/s); UDP
//! 64-byte datagrams (one sender, datagrams/s sent and delivered). Client, server and the
//! kernel's work on their packets are pinned to one CPU (`NETC_BENCH_CPU`, default the second;
//! `any`: unpinned), so throughput is the CPU cost of a byte or packet. Medians of the rounds,
//! the ratio enforced / bare of the medians, and the range of the rounds' own ratios.
//!
//! Each round checks that netc enforces: with the plan applied, the client cannot connect to a
//! port its own egress door refuses, nor to one the server's ingress door refuses (both connect
//! bare and with hooks only); the benchmark flows were judged at both doors (the datapath's
//! new-flow counter); and after the measurements, the same doors without rules cut a connection
//! opened before them (established packets are judged on the path too).
//!
//! Run as root: `cargo bench -p netc-benches --bench throughput` (about two and a half minutes).
//! Without root it says so and exits. `NETC_BENCH_QUICK=1`: 3 rounds of 1 s samples instead of 5
//! rounds of 2-2.5 s.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use netc_ir::{
    Door, DoorState, Inventory, Ir, LabelSelector, Namespace, Peer, Pod, Policy, Port, PortValue, Protocol,
    Rule, Span,
};
use netc_runtime::abi;
use netc_runtime::daemon::{conntrack_slots, default_conntrack_entries, resolve_interfaces};
use netc_runtime::datapath::{AttachMode, Datapath};
use netc_runtime::plan::{Plan, PlanOptions};

const BULK_PORT: u16 = 5001;
const RR_PORT: u16 = 5002;
const UDP_PORT: u16 = 5003;
/// The server's ingress door allows it; the client's egress door does not.
const EGRESS_DENIED_PORT: u16 = 5008;
/// The client's egress door allows it; the server's ingress door does not.
const INGRESS_DENIED_PORT: u16 = 5009;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const DENIED_TIMEOUT: Duration = Duration::from_millis(700);
const IO_TIMEOUT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(200);
const WARM: Duration = Duration::from_millis(300);

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run ip/sysctl");
    assert!(out.status.success(), "`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One pod's network: its namespace, host-side veth and address.
#[derive(Debug, Clone)]
struct PodNet {
    app: &'static str,
    netns: String,
    host_if: String,
    ip: Ipv4Addr,
}

/// Remove what [`Topology::new`] made: the host-side veths explicitly (deleting a namespace frees
/// its veth lazily), then the namespaces.
fn remove(pods: &[PodNet]) {
    for p in pods {
        let _ = Command::new("ip").args(["link", "del", &p.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &p.netns]).output();
    }
}

/// Client and server namespaces routed through this one; removed on drop.
#[derive(Debug)]
struct Topology {
    pods: Vec<PodNet>,
}

impl Topology {
    fn new() -> Topology {
        let pid = std::process::id();
        let tag = format!("{:x}", pid & 0xfff);
        let subnet = u8::try_from(pid & 0xff).expect("masked to a byte");
        let mut topology = Topology { pods: Vec::new() };
        for (i, app) in ["client", "server"].into_iter().enumerate() {
            let pod = PodNet {
                app,
                netns: format!("netc-tput-{tag}-{i}"),
                host_if: format!("nctp{tag}h{i}"),
                ip: Ipv4Addr::new(10, 214, subnet, u8::try_from(i + 1).expect("two pods")),
            };
            // Pushed first, so that a failure below still removes what was made.
            topology.pods.push(pod.clone());
            let (netns, host_if, ip) = (pod.netns.as_str(), pod.host_if.as_str(), pod.ip.to_string());
            let peer = format!("nctp{tag}p{i}");
            sh(&["ip", "netns", "add", netns]);
            sh(&["ip", "link", "add", host_if, "type", "veth", "peer", "name", &peer]);
            sh(&["ip", "link", "set", &peer, "netns", netns]);
            sh(&["ip", "-n", netns, "link", "set", &peer, "name", "eth0"]);
            sh(&["ip", "-n", netns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
            sh(&["ip", "-n", netns, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", netns, "link", "set", "lo", "up"]);
            sh(&["ip", "link", "set", host_if, "up"]);
            // The pod reaches everything through its host side (like Calico's 169.254.1.1).
            let host_mac = std::fs::read_to_string(format!("/sys/class/net/{host_if}/address"))
                .expect("host-side veth's MAC")
                .trim()
                .to_owned();
            sh(&["ip", "-n", netns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"]);
            sh(&["ip", "-n", netns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"]);
            sh(&[
                "ip",
                "-n",
                netns,
                "neigh",
                "replace",
                "169.254.1.1",
                "lladdr",
                &host_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
            let pod_mac = sh(&["ip", "-n", netns, "-br", "link", "show", "eth0"])
                .split_whitespace()
                .nth(2)
                .expect("`ip -br link` prints the MAC third")
                .to_owned();
            sh(&["ip", "route", "add", &format!("{ip}/32"), "dev", host_if]);
            sh(&["ip", "neigh", "replace", &ip, "lladdr", &pod_mac, "dev", host_if, "nud", "permanent"]);
            // Forwarding on this interface only; the global setting is left alone.
            sh(&["sysctl", "-qw", &format!("net.ipv4.conf.{host_if}.forwarding=1")]);
        }
        topology
    }

    fn client(&self) -> &PodNet {
        &self.pods[0]
    }

    fn server(&self) -> &PodNet {
        &self.pods[1]
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        remove(&self.pods);
    }
}

/// Run `f` on a thread that has entered network namespace `netns` (sockets it makes live there).
fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on this thread only, with a valid namespace fd kept open for the call.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("a benchmark thread panicked")
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The server pod's listeners; their threads stop (within [`POLL`]) when this is dropped.
#[derive(Debug)]
struct Server {
    stop: Arc<AtomicBool>,
    /// Bytes received on the bulk port, all connections.
    bulk_bytes: Arc<AtomicU64>,
    /// Datagrams received on the UDP port.
    datagrams: Arc<AtomicU64>,
}

impl Server {
    fn start(pod: &PodNet) -> Server {
        let ports = [BULK_PORT, RR_PORT, EGRESS_DENIED_PORT, INGRESS_DENIED_PORT];
        let (listeners, udp) = in_netns(&pod.netns, move || {
            let listeners = ports.map(|p| TcpListener::bind(("0.0.0.0", p)).expect("bind a server port"));
            (listeners, UdpSocket::bind(("0.0.0.0", UDP_PORT)).expect("bind the UDP port"))
        });
        let server = Server {
            stop: Arc::new(AtomicBool::new(false)),
            bulk_bytes: Arc::new(AtomicU64::new(0)),
            datagrams: Arc::new(AtomicU64::new(0)),
        };
        for (listener, port) in listeners.into_iter().zip(ports) {
            let (stop, bytes) = (Arc::clone(&server.stop), Arc::clone(&server.bulk_bytes));
            listener.set_nonblocking(true).expect("nonblocking listener");
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((stream, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let (stop, bytes) = (Arc::clone(&stop), Arc::clone(&bytes));
                    match port {
                        BULK_PORT => std::thread::spawn(move || {
                            serve(stream, &stop, |_, data| {
                                bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                                false
                            });
                        }),
                        // Echo: the client waits for its 64 bytes back.
                        RR_PORT => std::thread::spawn(move || {
                            serve(stream, &stop, |s, data| s.write_all(data).is_err());
                        }),
                        _ => continue, // the denied ports only need to accept
                    };
                }
            });
        }
        let (stop, datagrams) = (Arc::clone(&server.stop), Arc::clone(&server.datagrams));
        std::thread::spawn(move || {
            udp.set_read_timeout(Some(POLL)).expect("read timeout");
            let (mut buf, mut n) = ([0u8; 2048], 0u64);
            while !stop.load(Ordering::Relaxed) {
                match udp.recv(&mut buf) {
                    Ok(_) => {
                        n += 1;
                        datagrams.store(n, Ordering::Relaxed);
                    }
                    Err(e) if timed_out(&e) => {}
                    Err(_) => break,
                }
            }
        });
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Read from `stream` until EOF or stop; `on_read(stream, data)` returns true to close.
fn serve(mut stream: TcpStream, stop: &AtomicBool, mut on_read: impl FnMut(&mut TcpStream, &[u8]) -> bool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if on_read(&mut stream, &buf[..n]) {
                    break;
                }
            }
            Err(e) if timed_out(&e) => {}
            Err(_) => break,
        }
    }
}

/// A printed row: what, the figure of a sample, its scale, decimals and unit.
type Row = (&'static str, fn(&Sample) -> f64, f64, usize, &'static str);

/// One round's figures.
#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Bulk TCP received, Gbit/s.
    bulk_gbps: f64,
    /// Request/response transactions per second.
    rr_per_s: f64,
    /// UDP datagrams sent per second.
    udp_sent: f64,
    /// UDP datagrams delivered to the server's socket per second.
    udp_delivered: f64,
}

/// Durations of one round's measurements: (bulk, request/response, UDP) windows.
#[derive(Debug, Clone, Copy)]
struct Windows {
    bulk: Duration,
    rr: Duration,
    udp: Duration,
}

/// Whether the client connects to `server:port` within [`DENIED_TIMEOUT`].
fn connects(server: Ipv4Addr, port: u16) -> bool {
    TcpStream::connect_timeout(&SocketAddr::from((server, port)), DENIED_TIMEOUT).is_ok()
}

fn connect(server: Ipv4Addr, port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(&SocketAddr::from((server, port)), CONNECT_TIMEOUT)
        .unwrap_or_else(|e| panic!("the benchmark flow to port {port} is allowed but does not connect: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    s
}

/// One 64-byte echo on `stream` within [`DENIED_TIMEOUT`].
fn echoes(stream: &mut TcpStream) -> bool {
    let mut back = [0u8; 64];
    stream.set_read_timeout(Some(DENIED_TIMEOUT)).expect("read timeout");
    stream.write_all(&[0x42; 64]).is_ok() && stream.read_exact(&mut back).is_ok() && back == [0x42; 64]
}

/// Bulk TCP: write 128 KiB at a time; the rate the server receives over `window` after [`WARM`].
fn bulk(server: Ipv4Addr, received: &AtomicU64, window: Duration) -> f64 {
    let mut s = connect(server, BULK_PORT);
    let chunk = vec![0x5au8; 128 * 1024];
    let start = Instant::now();
    let mut mark: Option<(Instant, u64)> = None;
    loop {
        s.write_all(&chunk).expect("bulk write (bounded by the write timeout)");
        let now = Instant::now();
        match mark {
            None if now >= start + WARM => mark = Some((now, received.load(Ordering::Relaxed))),
            Some((t0, b0)) if now >= t0 + window => {
                let bytes = received.load(Ordering::Relaxed) - b0;
                return bytes as f64 * 8.0 / (now - t0).as_secs_f64() / 1e9;
            }
            _ => {}
        }
    }
}

/// 64-byte request, 64-byte response, one outstanding: transactions/s.
fn request_response(server: Ipv4Addr, window: Duration) -> f64 {
    let mut s = connect(server, RR_PORT);
    s.set_nodelay(true).expect("TCP_NODELAY");
    let (request, mut response) = ([0xa5u8; 64], [0u8; 64]);
    let start = Instant::now();
    let mut mark: Option<(Instant, u64)> = None;
    let mut done = 0u64;
    loop {
        s.write_all(&request).expect("request (bounded by the write timeout)");
        s.read_exact(&mut response).expect("response (bounded by the read timeout)");
        done += 1;
        let now = Instant::now();
        match mark {
            None if now >= start + WARM => mark = Some((now, done)),
            Some((t0, d0)) if now >= t0 + window => {
                return (done - d0) as f64 / (now - t0).as_secs_f64();
            }
            _ => {}
        }
    }
}

/// UDP 64-byte datagrams as fast as one sender goes: (sent/s, delivered/s).
fn udp(server: Ipv4Addr, delivered: &AtomicU64, window: Duration) -> (f64, f64) {
    let s = UdpSocket::bind(("0.0.0.0", 0)).expect("bind the UDP client");
    s.connect((server, UDP_PORT)).expect("connect the UDP client");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("write timeout");
    let payload = [0x5au8; 64];
    let start = Instant::now();
    let mut mark: Option<(Instant, u64, u64)> = None;
    let mut sent = 0u64;
    loop {
        for _ in 0..32 {
            if s.send(&payload).is_ok() {
                sent += 1;
            }
        }
        let now = Instant::now();
        match mark {
            None if now >= start + WARM => mark = Some((now, sent, delivered.load(Ordering::Relaxed))),
            Some((t0, s0, d0)) if now >= t0 + window => {
                let secs = (now - t0).as_secs_f64();
                let got = delivered.load(Ordering::Relaxed) - d0;
                return ((sent - s0) as f64 / secs, got as f64 / secs);
            }
            _ => {}
        }
    }
}

/// One round of the three measurements, from the client pod.
fn measure(client: &PodNet, server: &PodNet, srv: &Server, w: Windows) -> Sample {
    let ip = server.ip;
    let bytes = Arc::clone(&srv.bulk_bytes);
    let datagrams = Arc::clone(&srv.datagrams);
    in_netns(&client.netns, move || {
        let bulk_gbps = bulk(ip, &bytes, w.bulk);
        let rr_per_s = request_response(ip, w.rr);
        let (udp_sent, udp_delivered) = udp(ip, &datagrams, w.udp);
        Sample { bulk_gbps, rr_per_s, udp_sent, udp_delivered }
    })
}

fn span() -> Span {
    Span { file: "throughput.np".into(), line: 1, column: 1, start: 0, end: 1 }
}

/// Default deny both ways on both pods; with `allow`, the client may reach the server's
/// benchmark ports (and each door lets one of the two check ports through that the other door
/// refuses); without, no rule (the same doors guarded: every flow is refused).
fn case(client: &PodNet, server: &PodNet, allow: bool) -> (Ir, Inventory) {
    let rule = |id: &str, to: &str, ports: &[(Protocol, u16)]| Rule {
        id: id.into(),
        peers: vec![Peer::Pods { namespaces: None, pods: Some(LabelSelector::labels([("app", to)])) }],
        ports: ports
            .iter()
            .map(|&(protocol, n)| Port { protocol, port: Some(PortValue::Number(n)), end_port: None })
            .collect(),
        span: span(),
    };
    let guarded = |rules| Door { state: DoorState::Guarded, guarded_by: vec![span()], rules };
    let policy = |app: &str, ingress, egress| Policy {
        name: app.into(),
        namespace: "default".into(),
        workload: app.into(),
        selector: LabelSelector::labels([("app", app)]),
        doc: None,
        ingress,
        egress,
        span: span(),
    };
    let bench = [(Protocol::Tcp, BULK_PORT), (Protocol::Tcp, RR_PORT), (Protocol::Udp, UDP_PORT)];
    let with = |extra| bench.into_iter().chain([(Protocol::Tcp, extra)]).collect::<Vec<_>>();
    let rules = |id: &str, to: &str, extra| if allow { vec![rule(id, to, &with(extra))] } else { vec![] };
    let ir = Ir {
        policies: vec![
            policy(client.app, guarded(vec![]), guarded(rules("to-server", server.app, INGRESS_DENIED_PORT))),
            policy(
                server.app,
                guarded(rules("from-client", client.app, EGRESS_DENIED_PORT)),
                guarded(vec![]),
            ),
        ],
        ..Ir::empty()
    };
    ir.validate().expect("the benchmark IR is valid");
    let pods = [client, server]
        .map(|p| Pod {
            namespace: "default".into(),
            name: p.app.into(),
            labels: BTreeMap::from([("app".to_owned(), p.app.to_owned())]),
            ips: vec![IpAddr::V4(p.ip)],
            ports: vec![],
            node: None,
            host_interface: Some(p.host_if.clone()),
            host_network: false,
        })
        .into();
    let namespaces = vec![Namespace {
        name: "default".into(),
        labels: BTreeMap::from([(netc_ir::inventory::NAMESPACE_NAME_LABEL.to_owned(), "default".to_owned())]),
    }];
    (ir, Inventory { namespaces, pods, ..Inventory::default() })
}

/// A fresh datapath attached to both pods' host-side veths, nothing applied yet: each packet is
/// parsed, the configuration looked up, and passed (what the hooks cost before any policy);
/// and the endpoints' ifindexes, for [`Datapath::apply`]. Dropping it detaches.
fn attached(plan: &Plan, conntrack: u32) -> (Datapath, BTreeMap<u32, u32>) {
    let mut dp = Datapath::load_with_capacities(None, &[(abi::MAP_CONNTRACK, conntrack)])
        .expect("load the datapath (root, BTF)");
    let (interfaces, warnings) = resolve_interfaces(&plan.endpoints);
    assert!(warnings.is_empty() && interfaces.len() == 2, "both pods' veths found: {warnings:?}");
    for (name, _) in interfaces.values() {
        dp.attach(name, AttachMode::Tcx).expect("attach to a host-side veth");
    }
    (dp, interfaces.iter().map(|(id, (_, index))| (*id, *index)).collect())
}

/// A datapath counter (`abi::STAT_*`), all hooks and CPUs. The datapath counts new flows and
/// drops, not established packets.
fn stat(dp: &Datapath, which: u32) -> u64 {
    dp.maps().stats().expect("read the datapath's counters")[which as usize]
}

/// Pin this thread, and so every thread and process it starts afterwards, to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it (cpu is below
    // CPU_SETSIZE, checked); sched_setaffinity reads `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert!(cpu < libc::CPU_SETSIZE as usize, "CPU {cpu} out of range");
        libc::CPU_SET(cpu, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set);
        assert_eq!(rc, 0, "pin to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn range(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// `value unit (min-max)` of some samples, scaled by `scale`, with `decimals`.
fn figure(v: &[f64], scale: f64, decimals: usize, unit: &str) -> String {
    let (lo, hi) = range(v);
    let m = median(v.to_vec());
    format!("{:.decimals$} {unit} ({:.decimals$}-{:.decimals$})", m / scale, lo / scale, hi / scale)
}

fn main() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("throughput bench: skipped, needs root (network namespaces, veths, BPF)");
        return;
    }
    let quick = std::env::var_os("NETC_BENCH_QUICK").is_some();
    let rounds = if quick { 3 } else { 5 };
    let w = if quick {
        Windows { bulk: Duration::from_secs(1), rr: Duration::from_secs(1), udp: Duration::from_secs(1) }
    } else {
        Windows {
            bulk: Duration::from_millis(2500),
            rr: Duration::from_millis(2000),
            udp: Duration::from_millis(2000),
        }
    };
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let load_start = loadavg();
    // Client, server and the kernel's work for their packets (softirqs run in the sender's
    // context or on that CPU's ksoftirqd) all on one CPU: throughput is then the CPU cost of a
    // byte or a packet, which is what the classifier adds to. Unpinned (NETC_BENCH_CPU=any),
    // whether the two ends of a ping-pong share a CPU or wake each other across CPUs changes the
    // figure several times over.
    let cpu = match std::env::var("NETC_BENCH_CPU") {
        Ok(any) if any == "any" => None,
        Ok(n) => Some(n.parse().expect("NETC_BENCH_CPU is a CPU number or `any`")),
        Err(_) => Some(cpus.clamp(1, 2) - 1),
    };
    if let Some(cpu) = cpu {
        pin(cpu);
    }
    let conntrack = conntrack_slots(default_conntrack_entries());

    let topology = Topology::new();
    // Every run has a bounded time: past twice the expected time plus a minute, remove the
    // topology and exit (the datapath is unpinned: it goes with the process).
    let per_round = (w.bulk + w.rr + w.udp + 3 * WARM) * 3 + 6 * DENIED_TIMEOUT + Duration::from_secs(2);
    let budget = per_round * (rounds + 1) * 2 + Duration::from_secs(60);
    let pods = topology.pods.clone();
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("throughput bench: still running after {budget:?}; removing its namespaces and exiting");
        remove(&pods);
        std::process::exit(2);
    });
    let (client, server) = (topology.client(), topology.server());
    let srv = Server::start(server);
    let options = PlanOptions { node: None, audit: false, services: false };
    let (ir, inventory) = case(client, server, true);
    let plan = Plan::build(&ir, &inventory, &options);
    let (ir, inventory) = case(client, server, false);
    let revoked = Plan::build(&ir, &inventory, &options);

    println!(
        "throughput pod to pod over veth (client -> root namespace -> server, MTU 1500); baseline: the same veths bare, same run"
    );
    println!(
        "  enforced: netcd's datapath (unpinned, conntrack {conntrack} entries) on both host-side veths via TCX, all four doors guarded (default deny both ways on both pods)"
    );
    println!(
        "  hooks only: the same classifiers attached before any plan is applied (each packet parsed, the configuration read, passed)"
    );
    println!(
        "  machine: {cpus} CPUs, shared with other work (figures move with its load); load average at start: {load_start}; {}",
        match cpu {
            Some(cpu) => format!("client, server and their packets' kernel work pinned to CPU {cpu}"),
            None => "threads not pinned".to_owned(),
        }
    );

    // Warm-up, not counted.
    let warm = Windows { bulk: WARM, rr: WARM, udp: WARM };
    let _ = measure(client, server, &srv, warm);

    let (mut bare, mut hooks, mut enforced) = (Vec::new(), Vec::new(), Vec::new());
    let (mut judged, mut dropped) = (0u64, 0u64);
    let ip = server.ip;
    let check_ports = || {
        in_netns(&client.netns, move || (connects(ip, EGRESS_DENIED_PORT), connects(ip, INGRESS_DENIED_PORT)))
    };
    let mut measure_bare = || {
        let (egress_port, ingress_port) = check_ports();
        assert!(
            egress_port && ingress_port,
            "bare: both check ports connect (their listeners are there, nothing is left attached)"
        );
        bare.push(measure(client, server, &srv, w));
    };
    for round in 0..rounds {
        // Bare first in even rounds, last in odd ones: no mode always goes first.
        if round % 2 == 0 {
            measure_bare();
        }

        // Hooks only.
        let (mut dp, interfaces) = attached(&plan, conntrack);
        let (egress_port, ingress_port) = check_ports();
        assert!(egress_port && ingress_port, "hooks only: nothing is enforced before a plan is applied");
        hooks.push(measure(client, server, &srv, w));

        // Enforced: the same attachments (so they were in place above), now with the plan.
        let report = dp.apply(&plan, &interfaces, false).expect("apply the plan");
        assert!(report.fail_closed.is_empty(), "nothing fails closed: {:?}", report.fail_closed);
        // A connection opened now, which the revoking plan below must cut.
        let mut held = in_netns(&client.netns, move || connect(ip, RR_PORT));
        assert!(echoes(&mut held), "an allowed connection echoes under the policy");
        let (egress_port, ingress_port) = check_ports();
        assert!(
            !egress_port && !ingress_port,
            "netc enforces: the client's egress door refuses port {EGRESS_DENIED_PORT} (connected: {egress_port}), the server's ingress door port {INGRESS_DENIED_PORT} (connected: {ingress_port})"
        );
        let (new0, dropped0) = (stat(&dp, abi::STAT_PASSED_NEW), stat(&dp, abi::STAT_DROPPED));
        assert!(dropped0 >= 2, "the datapath counted the refused SYNs ({dropped0} drops)");
        enforced.push(measure(client, server, &srv, w));
        let new = stat(&dp, abi::STAT_PASSED_NEW) - new0;
        assert!(new >= 6, "the three benchmark flows were judged at both doors ({new} new flows passed)");
        // Established packets are judged too: the same doors without rules cut the held
        // connection (open flows are judged again on their next packet).
        dp.apply(&revoked, &interfaces, false).expect("apply the plan without rules");
        assert!(!echoes(&mut held), "an open connection is cut when its rule goes");
        assert!(stat(&dp, abi::STAT_DROPPED) > dropped0, "the cut connection's packets are counted as drops");
        judged += new;
        dropped += stat(&dp, abi::STAT_DROPPED);
        drop(dp); // detaches
        if round % 2 == 1 {
            measure_bare();
        }
    }

    println!(
        "  {rounds} rounds of bare, hooks only, enforced (bare last in every other round; a fresh datapath each round); median (min-max) of the rounds; ratios of the medians (min-max of the rounds' ratios)"
    );
    println!(
        "  {:<36} {:>27} {:>27} {:>27} {:>29} {:>24}",
        "", "bare", "hooks only", "enforced", "enforced/bare (target)", "hooks only/bare"
    );
    let rows: [Row; 4] = [
        ("bulk TCP, 1 connection", |s| s.bulk_gbps, 1.0, 2, "Gbit/s"),
        ("TCP request/response, 64 B, NODELAY", |s| s.rr_per_s, 1e3, 1, "k/s"),
        ("UDP 64 B datagrams, sent", |s| s.udp_sent, 1e3, 0, "k/s"),
        ("UDP 64 B datagrams, delivered", |s| s.udp_delivered, 1e3, 0, "k/s"),
    ];
    let ratio = |of: &[Sample], to: &[Sample], get: fn(&Sample) -> f64| {
        let (a, b): (Vec<f64>, Vec<f64>) = of.iter().zip(to).map(|(x, y)| (get(x), get(y))).unzip();
        let per_round: Vec<f64> = a.iter().zip(&b).map(|(a, b)| a / b).collect();
        let (lo, hi) = range(&per_round);
        let r = median(a) / median(b);
        (r, format!("{:.1}% ({:.1}-{:.1}%)", r * 100.0, lo * 100.0, hi * 100.0))
    };
    for (what, get, scale, decimals, unit) in rows {
        let column = |v: &[Sample]| figure(&v.iter().map(get).collect::<Vec<_>>(), scale, decimals, unit);
        let (r, target) = ratio(&enforced, &bare, get);
        let target = format!("{target} {}", if r >= 0.95 { "met" } else { "MISSED" });
        println!(
            "  {what:<36} {:>27} {:>27} {:>27} {target:>29} {:>24}",
            column(&bare),
            column(&hooks),
            column(&enforced),
            ratio(&hooks, &bare, get).1,
        );
    }
    println!(
        "  enforcement checked every round: the client could not connect to :{EGRESS_DENIED_PORT} (its egress door) nor :{INGRESS_DENIED_PORT} (the server's ingress door), both of which connect bare and with hooks only; the benchmark flows were judged at both doors ({judged} new flows passed in all); after the measurements the same doors without rules cut an open connection ({dropped} drops in all)"
    );
    println!("  target (DESIGN.md): enforcement vs none >= 95% of bare veth throughput");
    println!("  load average at end: {}", loadavg());
    drop(srv);
}
