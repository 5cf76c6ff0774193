//! The all-pairs connectivity matrix (`netc matrix`) against network-config-analyzer (`nca
//! --connectivity`, PyPI `network-config-analyzer`) on the same input, side by side in one run.
//!
//! The input: a netc program over `pods / 40` namespaces of 40 pods each, 10 workloads per
//! namespace, every workload the target of arrows (so 10 NetworkPolicies per namespace: 500 for
//! 2,000 pods), with same-namespace arrows on numbered and named ports, arrows from namespaces by
//! label, from other namespaces by name, from address blocks with excepts, and guarded egress
//! with DNS and an external block in every fifth namespace. netc compiles it; the NetworkPolicy
//! YAML that `netc build` writes, plus the pods and namespaces as `kubectl get -o yaml` prints
//! them, are what nca reads; netc reads the same pods and namespaces YAML.
//!
//! Measured, per size:
//! - `Matrix::compute` alone (the engine; best of several runs);
//! - netc end to end in-process: compile the program, read the cluster YAML, compute the matrix
//!   and render it as CSV (the work `nca --connectivity -o csv` does, without process start-up);
//! - `nca --connectivity np.yaml --pod_list pods.yaml --ns_list ns.yaml -o csv`, one run, wall
//!   time including Python's start-up, with a timeout.
//!
//! nca is too slow to run at 2,000 pods in a benchmark's time, so it is measured at smaller sizes
//! too and its time at 2,000 pods is extrapolated from the growth between the two largest sizes it
//! finished (a power law fitted to those two points; said so in the output). When nca is not
//! installed or fails, the benchmark says so and still prints netc's figures.
//!
//! ```text
//! pip install network-config-analyzer==2.1.0
//! cargo bench -p netc-benches --bench matrix
//! NETC_BENCH_NCA_SIZES=80,160,320 NETC_BENCH_NCA_TIMEOUT=600 cargo bench -p netc-benches --bench matrix
//! cargo bench -p netc-benches --bench matrix -- --write-input /tmp/m   # the 2,000-pod input, for the CLI
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netc::SourceFile;
use netc::analysis::matrix::Matrix;
use netc_benches::{best_of, ms};
use netc_ir::Inventory;

const PODS_PER_NAMESPACE: usize = 40;
const WORKLOADS_PER_NAMESPACE: usize = 10;
const TARGET_PODS: usize = 2_000;

/// The netc program for `namespaces` namespaces.
fn program(namespaces: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "external partner = 203.0.113.0/24 except 203.0.113.128/25");
    for n in 0..namespaces {
        let _ = writeln!(out, "namespace ns{n} {{");
        for k in 0..WORKLOADS_PER_NAMESPACE {
            let a = (k + 1) % WORKLOADS_PER_NAMESPACE;
            let b = (k + 3) % WORKLOADS_PER_NAMESPACE;
            let port = match k % 4 {
                0 => "8080".to_owned(),
                1 => "[80, 443]".to_owned(),
                2 => "http".to_owned(),
                _ => "[5432, 9000-9010, 53/udp]".to_owned(),
            };
            let _ = writeln!(out, "  app{a}, app{b} -> app{k}:{port}");
            if k % 3 == 0 {
                let _ = writeln!(out, "  {{team=t{}}}/{{app=app{k}}} -> app{k}:9090", n % 5);
            }
        }
        let _ = writeln!(out, "  ns{}/app1 -> app4:http", (n + 1) % namespaces);
        let _ = writeln!(out, "  10.{n}.0.0/16 except 10.{n}.1.0/24 -> app7:5432");
        if n % 5 == 0 {
            let _ = writeln!(out, "  app0 egress guarded");
            let _ = writeln!(out, "  app0 -> dns, app1:8080, partner:443");
        }
        let _ = writeln!(out, "}}");
    }
    out
}

/// Namespaces and pods as `kubectl get ns -o yaml` and `kubectl get pods -A -o yaml` print them.
fn cluster(namespaces: usize) -> (String, String) {
    let mut ns = String::from("apiVersion: v1\nkind: NamespaceList\nitems:\n");
    let mut pods = String::from("apiVersion: v1\nkind: PodList\nitems:\n");
    for n in 0..namespaces {
        let env = if n % 2 == 0 { "prod" } else { "dev" };
        let _ = writeln!(
            ns,
            "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: ns{n}\n    labels:\n      \
             kubernetes.io/metadata.name: ns{n}\n      team: t{}\n      env: {env}",
            n % 5
        );
        for j in 0..PODS_PER_NAMESPACE {
            let app = j % WORKLOADS_PER_NAMESPACE;
            let tier = ["fe", "be", "db"][j % 3];
            let _ = writeln!(
                pods,
                "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: pod{j}\n    namespace: ns{n}\n    labels:\n      \
                 app: app{app}\n      tier: {tier}\n  spec:\n    containers:\n    - name: main\n      image: example/app:1\n      \
                 ports:\n      - name: http\n        containerPort: {}\n        protocol: TCP\n  status:\n    phase: Running\n    \
                 podIP: 10.{n}.{j}.1\n    podIPs:\n    - ip: 10.{n}.{j}.1",
                8080 + j % 3
            );
        }
    }
    // kube-dns, so that `dns` has someone to reach.
    ns.push_str(
        "- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: kube-system\n    labels:\n      \
         kubernetes.io/metadata.name: kube-system\n",
    );
    pods.push_str(
        "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: coredns-0\n    namespace: kube-system\n    labels:\n      \
         k8s-app: kube-dns\n  spec:\n    containers:\n    - name: coredns\n      image: coredns:1\n  status:\n    \
         phase: Running\n    podIP: 10.255.0.10\n    podIPs:\n    - ip: 10.255.0.10\n",
    );
    (ns, pods)
}

struct Input {
    pods: usize,
    policies: usize,
    source: String,
    ns_yaml: String,
    pods_yaml: String,
    policy_yaml: String,
}

fn input(pods: usize) -> Input {
    let namespaces = pods.div_ceil(PODS_PER_NAMESPACE).max(2);
    let source = program(namespaces);
    let out = netc::compile(&[SourceFile::new("bench.np", source.clone())]);
    let ir = out.ir.expect("the benchmark program compiles");
    let policies = netc::codegen::network_policies(&ir);
    let policy_yaml = netc::yaml::render_stream(&policies, &ir.sources);
    let (ns_yaml, pods_yaml) = cluster(namespaces);
    Input {
        pods: namespaces * PODS_PER_NAMESPACE + 1,
        policies: policies.len(),
        source,
        ns_yaml,
        pods_yaml,
        policy_yaml,
    }
}

struct NetcTimes {
    compute: Duration,
    /// Compile the program, read the cluster YAML, compute the matrix.
    end_to_end: Duration,
    /// Of which: reading the cluster YAML.
    read_cluster: Duration,
    /// Rendering every (src, dst, probe) as CSV afterwards (one line per pair).
    render_csv: Duration,
    probes: usize,
    allowed: usize,
}

fn netc(input: &Input, runs: usize) -> NetcTimes {
    let cluster_yaml = format!("{}---\n{}", input.ns_yaml, input.pods_yaml);
    let ir = netc::compile(&[SourceFile::new("bench.np", input.source.clone())]).ir.expect("compiles");
    let (read_cluster, inventory) =
        best_of(runs.min(3), || Inventory::from_yaml(&cluster_yaml).expect("the benchmark cluster reads"));
    let probes = Matrix::default_probes(&ir, &inventory);
    let (compute, matrix) = best_of(runs, || Matrix::compute(&ir, &inventory, &probes));
    let (end_to_end, allowed) = best_of(runs.min(3), || {
        let ir = netc::compile(&[SourceFile::new("bench.np", input.source.clone())]).ir.expect("compiles");
        let inventory = Inventory::from_yaml(&cluster_yaml).expect("reads");
        let probes = Matrix::default_probes(&ir, &inventory);
        Matrix::compute(&ir, &inventory, &probes).allowed_count()
    });
    let (render_csv, csv_len) = best_of(1, || matrix.render_csv().len());
    assert!(csv_len > 0 && allowed == matrix.allowed_count());
    NetcTimes { compute, end_to_end, read_cluster, render_csv, probes: probes.len(), allowed }
}

enum Nca {
    Finished(Duration),
    TimedOut(Duration),
    Failed(String),
}

fn nca_available() -> Result<String, String> {
    match Command::new("nca").arg("--version").output() {
        // nca prints its version on stdout or stderr, depending on the release.
        Ok(out) if out.status.success() => Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(out) => Err(format!("`nca --version` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!(
            "`nca` is not installed ({e}); install it with `pip install network-config-analyzer==2.1.0`"
        )),
    }
}

/// Run `nca --connectivity` on `input` written to `dir`, killed after `timeout`.
fn nca(input: &Input, dir: &Path, timeout: Duration) -> Nca {
    let write = |name: &str, text: &str| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write benchmark input");
        path
    };
    let np = write("np.yaml", &input.policy_yaml);
    let pods = write("pods.yaml", &input.pods_yaml);
    let ns = write("ns.yaml", &input.ns_yaml);
    let out = dir.join("nca-out.csv");
    let start = Instant::now();
    let child = Command::new("nca")
        .arg("--connectivity")
        .arg(&np)
        .arg("--pod_list")
        .arg(&pods)
        .arg("--ns_list")
        .arg(&ns)
        .args(["-o", "csv", "-f"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Nca::Failed(format!("cannot start nca: {e}")),
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let elapsed = start.elapsed();
                if !status.success() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    let tail: Vec<&str> = err.lines().rev().take(3).collect();
                    return Nca::Failed(format!("nca exited with {status}: {}", tail.join(" | ")));
                }
                let written = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
                if written == 0 {
                    return Nca::Failed("nca wrote no connectivity map".to_owned());
                }
                return Nca::Finished(elapsed);
            }
            Ok(None) if start.elapsed() > timeout => {
                // Only the child we started, by its handle.
                let _ = child.kill();
                let _ = child.wait();
                return Nca::TimedOut(start.elapsed());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Nca::Failed(format!("waiting for nca: {e}")),
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn env_sizes(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect::<Vec<usize>>())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn main() {
    // `-- --write-input DIR`: write the 2,000-pod input (program and cluster) for measuring the
    // `netc` command itself (docs/performance.md), and stop.
    if let Some(dir) = std::env::args().skip_while(|a| a != "--write-input").nth(1) {
        let input = input(TARGET_PODS);
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("the input directory");
        std::fs::write(dir.join("bench.np"), &input.source).expect("write bench.np");
        let cluster = format!("{}---\n{}", input.ns_yaml, input.pods_yaml);
        std::fs::write(dir.join("cluster.yaml"), cluster).expect("write cluster.yaml");
        println!("wrote {}/bench.np and {}/cluster.yaml ({} pods)", dir.display(), dir.display(), input.pods);
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument that is not ours means "not me".
    if std::env::args().skip(1).any(|a| !a.starts_with('-') && !"matrix".contains(a.as_str())) {
        return;
    }
    let nca_sizes = env_sizes("NETC_BENCH_NCA_SIZES", &[80, 160, 320]);
    let nca_timeout = Duration::from_secs(
        std::env::var("NETC_BENCH_NCA_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
    );
    let try_nca_at_target = std::env::var("NETC_BENCH_NCA_FULL").is_ok_and(|v| v == "1");
    let nca_version = nca_available();
    let dir = std::env::temp_dir().join(format!("netc-bench-matrix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");

    println!("matrix: all pairs of pods, netc vs network-config-analyzer (nca) on the same input");
    match &nca_version {
        Ok(v) => println!("nca: {v}"),
        Err(e) => println!("nca: NOT MEASURED: {e}"),
    }
    let mut sizes: Vec<usize> =
        nca_sizes.iter().map(|s| s.div_ceil(PODS_PER_NAMESPACE).max(2) * PODS_PER_NAMESPACE).collect();
    sizes.push(TARGET_PODS);
    sizes.sort_unstable();
    sizes.dedup();
    let nca_sizes: Vec<usize> =
        nca_sizes.iter().map(|s| s.div_ceil(PODS_PER_NAMESPACE).max(2) * PODS_PER_NAMESPACE).collect();
    let mut nca_points: Vec<(f64, f64)> = Vec::new();
    let mut target_netc = None;
    let mut target_nca = None;
    for &size in &sizes {
        let input = input(size);
        let runs = if input.pods >= 1_000 { 5 } else { 10 };
        let t = netc(&input, runs);
        println!(
            "\n{} pods, {} namespaces, {} NetworkPolicies, {} probes; {} allowed (src, dst, probe)",
            input.pods,
            input.pods / PODS_PER_NAMESPACE,
            input.policies,
            t.probes,
            t.allowed
        );
        println!("  netc Matrix::compute                           {:>10}  (best of {runs})", ms(t.compute));
        println!(
            "  netc compile + read cluster YAML + matrix      {:>10}  (of which reading the YAML {})",
            ms(t.end_to_end),
            ms(t.read_cluster)
        );
        println!("  netc rendering every pair as CSV, after that   {:>10}", ms(t.render_csv));
        let measure_nca =
            nca_version.is_ok() && (nca_sizes.contains(&size) || (size == TARGET_PODS && try_nca_at_target));
        if measure_nca {
            match nca(&input, &dir, nca_timeout) {
                Nca::Finished(d) => {
                    println!(
                        "  nca --connectivity -o csv                      {:>10}  (one run, wall time)",
                        secs(d)
                    );
                    println!(
                        "  ratio nca / netc: {:.0}x (end to end), {:.0}x (engine)",
                        d.as_secs_f64() / t.end_to_end.as_secs_f64(),
                        d.as_secs_f64() / t.compute.as_secs_f64()
                    );
                    nca_points.push((input.pods as f64, d.as_secs_f64()));
                    if size == TARGET_PODS {
                        target_nca = Some((d.as_secs_f64(), false));
                    }
                }
                Nca::TimedOut(d) => println!(
                    "  nca --connectivity -o csv                      stopped after {} (timeout)",
                    secs(d)
                ),
                Nca::Failed(e) => println!("  nca: FAILED: {e}"),
            }
        } else if size == TARGET_PODS && nca_version.is_ok() {
            println!(
                "  nca: not run at this size (set NETC_BENCH_NCA_FULL=1 to try, with NETC_BENCH_NCA_TIMEOUT)"
            );
        }
        if size == TARGET_PODS {
            target_netc = Some(t);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("\nat {TARGET_PODS} pods (the target: netc < 1 s and >= 100x faster than nca):");
    let Some(t) = target_netc else { return };
    println!(
        "  netc: {} (engine), {} (end to end): {}",
        ms(t.compute),
        ms(t.end_to_end),
        if t.end_to_end < Duration::from_secs(1) { "under 1 s" } else { "NOT under 1 s" }
    );
    if target_nca.is_none() && nca_points.len() >= 2 {
        let (x1, y1) = nca_points[nca_points.len() - 2];
        let (x2, y2) = nca_points[nca_points.len() - 1];
        let exponent = (y2 / y1).ln() / (x2 / x1).ln();
        let predicted = y2 * ((t_pods_target() / x2).powf(exponent));
        target_nca = Some((predicted, true));
        println!(
            "  nca: extrapolated {predicted:.0} s (time grew as pods^{exponent:.2} between {x1:.0} and {x2:.0} pods; \
             not measured at {TARGET_PODS})"
        );
    }
    match target_nca {
        Some((s, extrapolated)) => {
            let ratio = s / t.end_to_end.as_secs_f64();
            println!(
                "  ratio nca / netc end to end: {ratio:.0}x{} ({})",
                if extrapolated { " (nca extrapolated)" } else { "" },
                if ratio >= 100.0 { ">= 100x" } else { "NOT >= 100x" }
            );
        }
        None => println!("  nca: no figure at this size (see above)"),
    }
}

fn t_pods_target() -> f64 {
    (TARGET_PODS + 1) as f64
}
