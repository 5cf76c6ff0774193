//! `netc fmt` on long files: linear in lines (issue 8 item 10: 200k comment lines took 6.2 s when
//! every output line rescanned all the lines before it). The baseline, measured in the same run,
//! is parsing the same text (`fmt` parses first, so it can never be faster); the ratio of the
//! 200k-line to the 100k-line time shows the growth (2 is linear, 4 quadratic).

use netc_benches::{best_of, ms};

fn comments(lines: usize) -> String {
    (0..lines).map(|i| format!("# comment {i}\n")).collect()
}

fn arrows(lines: usize) -> String {
    (0..lines / 2).map(|i| format!("# why {i}\nweb{i} -> api{i}:[80, 443]\n")).collect()
}

fn main() {
    for (what, make) in
        [("comment lines", comments as fn(usize) -> String), ("lines of arrows and comments", arrows)]
    {
        let mut fmt_times = Vec::new();
        for lines in [100_000, 200_000] {
            let text = make(lines);
            let (parse, _) = best_of(3, || netc::syntax::parse(&text).expect("parses"));
            let (fmt, out) = best_of(3, || netc::fmt::format(&text).expect("parses"));
            assert_eq!(out, text, "already in fmt layout");
            println!(
                "fmt {lines} {what}: {} (baseline: parse {}, fmt/parse {:.1}x)",
                ms(fmt),
                ms(parse),
                fmt.as_secs_f64() / parse.as_secs_f64()
            );
            fmt_times.push(fmt);
        }
        println!(
            "fmt growth, 200k/100k {what}: {:.2}x (2 = linear)",
            fmt_times[1].as_secs_f64() / fmt_times[0].as_secs_f64()
        );
    }
}
