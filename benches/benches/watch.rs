//! `netcd run --kubernetes`: the time from an API event to the map write, and netcd's memory at
//! 10,000 pods, each beside a baseline measured in the same run.
//!
//! The API server is the tests' fake (runtime/tests/common/fake_apiserver.rs: the real list and
//! watch protocol, spoken to kube-rs's real client over HTTP on 127.0.0.1). It serves 50
//! namespaces, N pods (1,000 and 10,000) and a few NetworkPolicy objects; netcd runs with
//! `--network-policies --mode audit --node bench-node`, and **every pod is on another node**
//! (`spec.nodeName: bench-elsewhere`): netcd attaches to no interface of this machine. Remote
//! pods are peers: each one's address is in the ipcache with the identity its labels give it.
//!
//! - **Event to enforced** (netcd in this process, `netc_runtime::kube::run` on a thread of its
//!   own): for a pod relabelled (its identity changes: one ipcache write) and for a new pod's
//!   address arriving (one ipcache insert), the time from the change written to the fake API
//!   server to netcd's apply done (`netcd_last_sync_timestamp_seconds` moving: it is set right
//!   after the last map write), polled every 50 us. Beside it, from the same applies: netcd's own
//!   `netcd_event_to_enforced_seconds` (from the watch event's arrival in netcd) and
//!   `netcd_apply_seconds{source="watch"}` (the in-place apply alone: plan diff and map writes),
//!   the baseline.
//! - **Memory at 10,000 pods** (netcd as a separate process, the binary of
//!   `cargo build --release -p netc-runtime --bin netcd`, or `NETCD=path`): VmRSS and VmHWM of
//!   netcd after its first sync, watching the fake; the baseline is the same netcd reading the
//!   same pods and policies from files (`netcd run --ir --inventory`).
//!
//! Run as root: `cargo bench -p netc-benches --bench watch` (about a minute).
//! `NETC_BENCH_QUICK=1`: 1,000 pods only for the latency, fewer changes. Without root it says so
//! and exits.

// The tests' fake API server (it allows the parts this bench does not use itself).
#[path = "../../runtime/tests/common/fake_apiserver.rs"]
mod fake_apiserver;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_apiserver::{FakeApiServer, namespace, network_policy, pod};
use netc_runtime::daemon::RunConfig;
use netc_runtime::datapath::{self, AttachMode};
use netc_runtime::kube::{KubeOptions, PolicySource};
use netc_runtime::metrics::Metrics;
use serde_json::{Value, json};

const NAMESPACES: usize = 50;
const NODE: &str = "bench-node";
const ELSEWHERE: &str = "bench-elsewhere";
const WAIT: Duration = Duration::from_secs(120);

/// Pod `i`: namespace `ns-(i % 50)`, app `app-(i % 200)`, address `10.200.x.y`, on another node.
fn bench_pod(i: usize, app: &str, ip: Option<&str>) -> Value {
    // The annotation names no interface of this machine; the pod is not local anyway.
    pod(&format!("ns-{}", i % NAMESPACES), &format!("pod-{i}"), &[("app", app)], ip, "none", ELSEWHERE)
}

fn ip_of(i: usize) -> String {
    format!("10.200.{}.{}", i / 250, i % 250 + 1)
}

/// Namespaces, `pods` pods and the policies, as the fake serves them and as a file inventory.
fn objects(pods: usize) -> (Vec<Value>, Vec<Value>) {
    let mut cluster: Vec<Value> = (0..NAMESPACES).map(|n| namespace(&format!("ns-{n}"), &[])).collect();
    cluster.extend((0..pods).map(|i| bench_pod(i, &format!("app-{}", i % 200), Some(&ip_of(i)))));
    // app-0 of every namespace accepts app-1 of any namespace on 8080; app-2 accepts app-3 of its
    // own namespace: relabelling a pod between app-1 and app-9 changes its identity.
    let policies = (0..NAMESPACES)
        .flat_map(|n| {
            let ns = format!("ns-{n}");
            [
                network_policy(
                    &ns,
                    "app-0",
                    &json!({"podSelector": {"matchLabels": {"app": "app-0"}},
                            "ingress": [{"from": [{"namespaceSelector": {},
                                                   "podSelector": {"matchLabels": {"app": "app-1"}}}],
                                         "ports": [{"port": 8080}]}]}),
                ),
                network_policy(
                    &ns,
                    "app-2",
                    &json!({"podSelector": {"matchLabels": {"app": "app-2"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "app-3"}}}]}]}),
                ),
            ]
        })
        .collect();
    (cluster, policies)
}

fn fake_with(pods: usize) -> FakeApiServer {
    let api = FakeApiServer::start();
    let (cluster, policies) = objects(pods);
    for object in cluster.into_iter().chain(policies) {
        api.apply(object);
    }
    api
}

fn bpffs_dir(what: &str) -> PathBuf {
    PathBuf::from(format!("/sys/fs/bpf/netc-bench-watch-{what}-{}", std::process::id()))
}

/// The sum and count of a histogram in an OpenMetrics text, for the sample with `labels`.
fn histogram(text: &str, name: &str, labels: &str) -> (f64, f64) {
    let find = |suffix: &str| {
        let prefix = format!("{name}_{suffix}{labels} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (find("sum"), find("count"))
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1e3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One kind of change, timed `rounds` times: (end to end, inside netcd, apply alone) means, and
/// the end-to-end median.
fn time_changes(
    api: &FakeApiServer,
    metrics: &Metrics,
    rounds: usize,
    mut change: impl FnMut(usize) -> Value,
) -> (f64, f64, f64, f64) {
    let before = metrics.encode();
    let mut end_to_end = Vec::new();
    for round in 0..rounds {
        let synced = metrics.last_sync.get();
        let object = change(round);
        let start = Instant::now();
        api.apply(object);
        while metrics.last_sync.get() == synced {
            assert!(start.elapsed() < WAIT, "netcd did not apply the change");
            std::thread::sleep(Duration::from_micros(50));
        }
        end_to_end.push(start.elapsed().as_secs_f64());
        // Let the watch go quiet, so that each change is applied alone.
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = metrics.encode();
    let mean_of = |name: &str, labels: &str| {
        let (s0, c0) = histogram(&before, name, labels);
        let (s1, c1) = histogram(&after, name, labels);
        assert!((c1 - c0 - rounds as f64).abs() < 0.5, "one apply per change: {} of {rounds}", c1 - c0);
        (s1 - s0) / (c1 - c0)
    };
    let inside = mean_of("netcd_event_to_enforced_seconds", "");
    let apply = mean_of("netcd_apply_seconds", "{source=\"watch\"}");
    let mean = end_to_end.iter().sum::<f64>() / rounds as f64;
    (mean, inside, apply, median(end_to_end))
}

fn latency(pods: usize, rounds: usize) {
    let api = fake_with(pods);
    let dir = std::env::temp_dir().join(format!("netc-bench-watch-{}-{pods}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    let bpffs = bpffs_dir(&pods.to_string());
    let config = RunConfig {
        ir: PathBuf::new(),
        inventory: PathBuf::new(),
        audit: true,
        bpffs: bpffs.clone(),
        node: Some(NODE.into()),
        attach: AttachMode::Tcx,
        report_allowed: false,
        conntrack_entries: 65_536,
        // No uplink: netcd attaches to nothing on this machine.
        uplinks: Vec::new(),
        service_mark: netc_runtime::abi::DEFAULT_SERVICE_MARK,
    };
    let options = KubeOptions { kubeconfig: Some(kubeconfig), policy: PolicySource::NetworkPolicies };
    let metrics = Metrics::new(bpffs.clone());
    let watched = Arc::clone(&metrics);
    let started = Instant::now();
    // The watch runs until the process ends; its maps are unpinned below.
    std::thread::spawn(move || {
        if let Err(e) = netc_runtime::kube::run(&config, &options, &watched) {
            eprintln!("netcd: {e}");
            std::process::exit(1);
        }
    });
    while !metrics.is_ready() {
        assert!(started.elapsed() < WAIT, "no first sync");
        std::thread::sleep(Duration::from_millis(10));
    }
    let first_sync = started.elapsed();

    // Pods 1, 201, 401, ... are app-1: relabel them to app-9 and back.
    let relabel = time_changes(&api, &metrics, rounds, |round| {
        let i = 1 + 200 * (round / 2 % (pods / 200));
        bench_pod(i, if round % 2 == 0 { "app-9" } else { "app-1" }, Some(&ip_of(i)))
    });
    // New pods, created without an address first (not timed), then their address arrives.
    for i in pods..pods + rounds {
        api.apply(bench_pod(i, "app-1", None));
    }
    let mut synced = metrics.last_sync.get();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = metrics.last_sync.get();
        if now == synced {
            break;
        }
        synced = now;
    }
    let address = time_changes(&api, &metrics, rounds, |round| {
        let i = pods + round;
        bench_pod(i, "app-1", Some(&ip_of(i)))
    });
    println!(
        "  {pods} pods in {NAMESPACES} namespaces, {} NetworkPolicies; first sync {:.0} ms",
        2 * NAMESPACES,
        first_sync.as_secs_f64() * 1e3
    );
    for (what, (mean, inside, apply, med)) in [("pod relabelled", relabel), ("pod address arrives", address)]
    {
        println!(
            "  {what:<20} API write -> maps written: mean {} (median {}); inside netcd {}; \
             baseline, the in-place apply alone {}; ratio {:.1}x",
            ms(mean),
            ms(med),
            ms(inside),
            ms(apply),
            mean / apply
        );
    }
    let _ = datapath::detach_all(&bpffs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The netcd binary to measure.
fn netcd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NETCD") {
        return Some(PathBuf::from(path));
    }
    // target/release/deps/watch-HASH -> target/release/netcd
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("netcd");
    candidate.exists().then_some(candidate)
}

/// VmRSS and VmHWM of `pid`, MiB.
fn memory_of(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Start netcd with `args`, wait for its first state to be live, and measure it.
fn measure(netcd: &Path, args: &[&str], bpffs: &Path) -> (f64, f64, Duration) {
    let started = Instant::now();
    let mut child: Child = Command::new(netcd)
        .args(args)
        .args(["--mode", "audit", "--node", NODE, "--conntrack-entries", "65536", "--quiet-allowed"])
        .arg("--bpffs")
        .arg(bpffs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netcd");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(" live: ") {
                let _ = tx.send(());
            }
        }
    });
    let live = rx.recv_timeout(WAIT).is_ok();
    let took = started.elapsed();
    // Let what the first apply freed settle.
    std::thread::sleep(Duration::from_millis(500));
    let (rss, hwm) = memory_of(child.id());
    let _ = child.kill();
    let _ = child.wait();
    let _ = datapath::detach_all(bpffs);
    assert!(live, "netcd {args:?} did not go live");
    (rss, hwm, took)
}

fn memory(pods: usize) {
    let Some(netcd) = netcd_binary() else {
        println!(
            "  memory: skipped, no netcd binary: `cargo build --release -p netc-runtime --bin netcd` first"
        );
        println!("          (or NETCD=path/to/netcd)");
        return;
    };
    let api = fake_with(pods);
    let dir = std::env::temp_dir().join(format!("netc-bench-watch-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    // The same objects as files: the inventory as a List, the policies through `netc import`'s
    // lowering (what `--network-policies` runs).
    let (cluster, policies) = objects(pods);
    let inventory = dir.join("inventory.json");
    std::fs::write(&inventory, json!({"apiVersion": "v1", "kind": "List", "items": cluster}).to_string())
        .expect("write inventory");
    let policies: Vec<_> =
        policies.into_iter().map(|p| serde_json::from_value(p).expect("a NetworkPolicy")).collect();
    let origins: Vec<_> = policies
        .iter()
        .map(|_| netc_ir::Span { file: "bench".into(), line: 1, column: 1, start: 0, end: 0 })
        .collect();
    let ir_file = dir.join("policies.ir.json");
    std::fs::write(&ir_file, netc::import::to_ir(&policies, &origins).expect("lowered").to_json())
        .expect("write IR");

    let bpffs = bpffs_dir("mem");
    let kube = measure(
        &netcd,
        &["run", "--kubernetes", "--network-policies", "--kubeconfig", kubeconfig.to_str().expect("utf8")],
        &bpffs,
    );
    let files = measure(
        &netcd,
        &["run", "--ir", ir_file.to_str().expect("utf8"), "--inventory", inventory.to_str().expect("utf8")],
        &bpffs,
    );
    println!("  memory of netcd ({}) at {pods} pods, conntrack 65,536 entries:", netcd.display());
    for (what, (rss, hwm, took)) in
        [("watching the API server", kube), ("baseline, the same from files", files)]
    {
        println!(
            "    {what:<30} VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB (live after {:.2} s)",
            took.as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("watch bench: skipped, needs root (netcd loads its datapath)");
        return;
    }
    // Criterion-style arguments (`--bench`) are ignored.
    let quick = std::env::var_os("NETC_BENCH_QUICK").is_some();
    println!("event to enforced: `netcd run --kubernetes --network-policies`, the fake API server");
    let (sizes, rounds): (&[usize], usize) = if quick { (&[1_000], 10) } else { (&[1_000, 10_000], 30) };
    for &pods in sizes {
        latency(pods, rounds);
    }
    println!("memory after the first sync:");
    memory(10_000);
}
