//! Shared helpers for the benchmarks: deterministic input generators and timing.

use std::collections::HashSet;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// A small deterministic generator (SplitMix64), so that every run measures the same input.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % (n as u64)).expect("below n, which is a usize")
    }
}

/// A netc program of `arrows` distinct arrows over `workloads` workloads spread evenly over
/// `namespaces` namespaces; one arrow in ten crosses namespaces; every fifth namespace guards its
/// egress (with DNS), so both ingress and egress rules are written.
#[must_use]
pub fn program(arrows: usize, workloads: usize, namespaces: usize) -> String {
    let per_ns = (workloads / namespaces).max(1);
    let per_ns_arrows = arrows / namespaces;
    let ports = ["80", "443", "8080", "[8000-8100/udp, 53/udp]", "http", "[5432, 9090]"];
    let mut rng = Rng::new(42);
    let mut out = String::with_capacity(arrows * 32);
    for n in 0..namespaces {
        let _ = writeln!(out, "namespace ns{n} {{");
        if n % 5 == 0 {
            out.push_str("  default deny egress\n  * -> dns\n");
        }
        let mut seen = HashSet::new();
        while seen.len() < per_ns_arrows {
            let (a, b) = (rng.below(per_ns), rng.below(per_ns));
            let port = ports[rng.below(ports.len())];
            let cross = rng.below(10) == 0;
            let target =
                if cross { format!("ns{}/svc{b}", rng.below(namespaces)) } else { format!("svc{b}") };
            let line = format!("  svc{a} -> {target}:{port}\n");
            if seen.insert(line.clone()) {
                out.push_str(&line);
            }
        }
        out.push_str("}\n");
    }
    out
}

/// A netc program of `arrows` arrows, each into a target of its own (no two arrows share a
/// target), spread over `namespaces` namespaces, beside the workloads that make the door model
/// compare an arrow with others: in each namespace a tenth of the sources guard their egress,
/// a workload is isolated per 100 arrows, and every fifth namespace is `default deny egress`.
/// Each arrow's ends must be checked against every guarded and isolated workload of the
/// namespace, so a per-arrow scan of them is quadratic here.
#[must_use]
pub fn program_distinct_targets(arrows: usize, namespaces: usize) -> String {
    let per_ns = (arrows / namespaces).max(1);
    let sources = (per_ns / 20).max(1);
    let mut out = String::with_capacity(arrows * 32);
    for n in 0..namespaces {
        let _ = writeln!(out, "namespace ns{n} {{");
        if n % 5 == 0 {
            out.push_str("  default deny egress\n");
        }
        for s in (0..sources).step_by(10) {
            let _ = writeln!(out, "  src{s} egress guarded");
        }
        // DNS for every source (not `*`, which would include the isolated workloads).
        let all: Vec<String> = (0..sources).map(|s| format!("src{s}")).collect();
        let _ = writeln!(out, "  {} -> dns", all.join(", "));
        for h in 0..(per_ns / 100).max(1) {
            let _ = writeln!(out, "  hermit{h} isolated");
        }
        for t in 0..per_ns {
            let _ = writeln!(out, "  src{} -> t{t}:{}", t % sources, 80 + t % 7);
        }
        out.push_str("}\n");
    }
    out
}

/// The fastest of `runs` timings of `f` (the minimum is the least noisy estimate on a shared
/// machine), and the last result.
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let r = f();
        best = best.min(start.elapsed());
        last = Some(r);
    }
    (best, last.expect("runs >= 1"))
}

/// Milliseconds with one decimal.
#[must_use]
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
