//! The prover: time to decide 100 assertions over the 100k-arrow build program, beside the time to
//! build that program (target: under the build time), and the time to prove the assertions of
//! `examples/shop.np` (target: a few milliseconds). Both baselines are measured in the same run.
//!
//! Run: `cargo bench -p netc-benches --bench prove`

use std::fmt::Write;

use netc::SourceFile;
use netc_benches::{Rng, best_of, ms, program};

/// 100 assertions about the generated program: flows that hold and flows that do not, in one
/// namespace and across namespaces, never-flows, and guarded doors.
fn assertions(namespaces: usize, per_ns: usize) -> String {
    let mut rng = Rng::new(7);
    let mut out = String::new();
    for i in 0..100 {
        let (n, m) = (rng.below(namespaces), rng.below(namespaces));
        let (a, b) = (rng.below(per_ns), rng.below(per_ns));
        let _ = match i % 5 {
            0 => writeln!(out, "assert ns{n}/svc{a} -> ns{n}/svc{b}:80"),
            1 => writeln!(out, "assert ns{n}/svc{a} !-> ns{m}/svc{b}:5432"),
            2 => writeln!(out, "assert */* !-> ns{n}/svc{b}:22"),
            3 => writeln!(out, "assert ns{n}/svc{a} ingress guarded"),
            _ => writeln!(out, "assert ns{n}/svc{a} -> dns"),
        };
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let namespaces = 50;
    let (arrows, workloads) = (100_000, 10_000);
    let text = program(arrows, workloads, namespaces);
    let asserts = assertions(namespaces, workloads / namespaces);
    let (t_build, ir) =
        best_of(3, || netc::compile(&[SourceFile::new("big.np", text.as_str())]).ir.expect("compiles"));
    // Parsing and checking the assertion statements is not the prover's time: done once, outside.
    let whole = format!("{text}{asserts}");
    let file = netc::syntax::parse(&whole).expect("parses");
    let (model, _) = netc::check::check(&[file]);
    let file_of = |_: &str| Some(0);
    let (t_prove, failed) =
        best_of(3, || netc::prove::assertions::check(&model.assertions, &ir, &[], &file_of).len());
    println!("prover: 100 assertions over the {arrows}-arrow build program, beside building it");
    println!("{:>28} {:>10}", "build (compile to IR)", ms(t_build));
    println!(
        "{:>28} {:>10}  ({failed} of 100 fail, each with a counterexample)",
        "prove 100 assertions",
        ms(t_prove)
    );
    println!("{:>28} {:>9.2}x", "prove / build", t_prove.as_secs_f64() / t_build.as_secs_f64());
    let verdict = if t_prove < t_build { "met" } else { "NOT met" };
    println!("target: prove < build: {verdict}");

    let shop = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shop.np"))
        .expect("the example");
    let (t_shop_build, shop_ir) = best_of(20, || {
        netc::compile(&[SourceFile::new("shop.np", shop.as_str())]).ir.expect("shop compiles")
    });
    let file = netc::syntax::parse(&shop).expect("parses");
    let (model, _) = netc::check::check(&[file]);
    let (t_shop, failed) =
        best_of(20, || netc::prove::assertions::check(&model.assertions, &shop_ir, &[], &file_of).len());
    assert_eq!(failed, 0, "the shop's assertions hold");
    println!();
    println!("examples/shop.np: {} assertions", model.assertions.len());
    println!("{:>28} {:>10}", "compile (assertions included)", ms(t_shop_build));
    println!("{:>28} {:>10}", "prove", ms(t_shop));
}
