//! `netc build` at scale, beside its floor measured in the same run.
//!
//! Targets (docs/performance.md): 100k arrows over 10k workloads in 50 namespaces in < 1 s wall
//! and < 1 GiB peak memory on 2 cores, growing linearly; and at most 2x the time serde_yaml alone
//! needs to serialize the same NetworkPolicy objects (the floor: any YAML backend pays it).
//!
//! Run: `cargo bench -p netc-benches --bench build`

use std::process::Command;
use std::time::Duration;

use netc::SourceFile;
use netc_benches::{best_of, ms, program, program_distinct_targets};

/// The whole of `netc build FILE` except file IO: text in, YAML stream out.
fn build(text: &str) -> String {
    let out = netc::compile(&[SourceFile::new("big.np", text)]);
    let ir = out.ir.expect("the generated program compiles");
    let policies = netc::codegen::network_policies(&ir);
    netc::yaml::render_stream(&policies, &ir.sources)
}

fn main() {
    // A child run: build once and exit, so the parent can read this process's peak memory.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-build") {
        let path = &args[i + 1];
        let text = std::fs::read_to_string(path).expect("the parent wrote the file");
        let yaml = build(&text);
        println!("{}", yaml.len());
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }

    println!("netc build: time and memory, with the serde_yaml floor measured in the same run");
    table("arrows over 10k workloads in 50 namespaces", |arrows| program(arrows, arrows / 10, 50));
    println!();
    // Every arrow into a target of its own, beside guarded and isolated workloads: the door
    // model compares each arrow with the workloads that can cover or overlap it (regression of
    // session 3: 2,000 such arrows took 8.4 s when every arrow was compared with every one).
    table("arrows into distinct targets, guarded and isolated workloads, 50 namespaces", |arrows| {
        program_distinct_targets(arrows, 50)
    });
}

/// Build programs of 25k, 50k and 100k arrows made by `generate`, print a row per size and the
/// targets' verdicts for the largest.
fn table(what: &str, generate: impl Fn(usize) -> String) {
    println!("{what}");
    println!(
        "{:>8} {:>9} {:>10} {:>10} {:>12} {:>10} {:>8}",
        "arrows", "policies", "build", "floor", "build/floor", "per arrow", "peak"
    );
    let mut rows = Vec::new();
    for arrows in [25_000, 50_000, 100_000] {
        let text = generate(arrows);
        let (t_build, yaml) = best_of(3, || build(&text));
        // The floor: serde_yaml serializing exactly the objects build writes, one thread.
        let ir = netc::compile(&[SourceFile::new("big.np", text.as_str())]).ir.expect("compiles");
        let policies = netc::codegen::network_policies(&ir);
        let (t_floor, floor_len) = best_of(3, || {
            policies.iter().map(|p| serde_yaml::to_string(p).map_or(0, |s| s.len())).sum::<usize>()
        });
        assert!(yaml.len() > floor_len / 2, "the build wrote the objects");
        let peak = peak_memory_of_child_build(&text);
        let per_arrow = t_build.as_secs_f64() * 1e9 / arrows as f64;
        println!(
            "{arrows:>8} {:>9} {:>10} {:>10} {:>11.2}x {:>8.0} ns {:>8}",
            policies.len(),
            ms(t_build),
            ms(t_floor),
            t_build.as_secs_f64() / t_floor.as_secs_f64(),
            per_arrow,
            peak.map_or("n/a".to_owned(), |kb| format!("{} MiB", kb / 1024)),
        );
        rows.push((arrows, t_build, t_floor, peak));
    }
    let (_, t100k, floor100k, peak100k) = rows[rows.len() - 1];
    let (_, t25k, _, _) = rows[0];
    verdict("100k arrows < 1 s", t100k < Duration::from_secs(1), &ms(t100k));
    verdict(
        "<= 2x the serde_yaml floor",
        t100k.as_secs_f64() <= 2.0 * floor100k.as_secs_f64(),
        &format!("{:.2}x", t100k.as_secs_f64() / floor100k.as_secs_f64()),
    );
    verdict(
        "peak memory < 1 GiB",
        peak100k.is_some_and(|kb| kb < 1024 * 1024),
        &peak100k.map_or("n/a".to_owned(), |kb| format!("{} MiB", kb / 1024)),
    );
    let growth = t100k.as_secs_f64() / t25k.as_secs_f64();
    verdict("linear growth (4x input -> <= 5x time)", growth <= 5.0, &format!("{growth:.2}x"));
}

fn verdict(what: &str, ok: bool, figure: &str) {
    println!("{} {what}: {figure}", if ok { "MET   " } else { "MISSED" });
}

/// Peak resident memory (KiB) of a child process that builds `text` once.
fn peak_memory_of_child_build(text: &str) -> Option<i64> {
    let dir = std::env::temp_dir().join(format!("netc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join("big.np");
    std::fs::write(&path, text).ok()?;
    let exe = std::env::current_exe().ok()?;
    let status = Command::new(exe).arg("--child-build").arg(&path).output().ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !status.status.success() {
        return None;
    }
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_CHILDREN with a valid pointer is always a valid call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage) };
    (rc == 0).then_some(usage.ru_maxrss)
}
