//! Where `netc build` spends its time, phase by phase (a profiling aid, not a target check).

use netc::SourceFile;
use netc_benches::{best_of, ms, program};

fn main() {
    let arrows: usize = std::env::var("ARROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let text = program(arrows, arrows / 10, 50);
    let src = [SourceFile::new("big.np", text.clone())];
    let (t, n) = best_of(3, || {
        use pest::Parser;
        netc_grammar::NetcParser::parse(netc_grammar::Rule::file, &text).expect("parses").count()
    });
    println!("pest    {} ({n} pairs at top)", ms(t));
    let (t, file) = best_of(3, || netc::syntax::parse(&text).expect("parses"));
    println!("parse   {}", ms(t));
    let files = vec![file];
    let (t, (model, _)) = best_of(3, || netc::check::check(&files));
    println!("check   {}", ms(t));
    let (t, out) = best_of(3, || netc::compile(&src));
    println!("compile {} (parse+check+lower)", ms(t));
    let _ = model;
    let ir = out.ir.expect("compiles");
    let (t, pols) = best_of(3, || netc::codegen::network_policies(&ir));
    println!("codegen {}", ms(t));
    let (t, _) = best_of(3, || netc::yaml::render_stream(&pols, &ir.sources));
    println!("yaml    {}", ms(t));
}
