//! Properties of the whole compiler, checked on generated input:
//!
//! - `netc::compile` (and rendering its diagnostics, and `fmt::format`) never panics: on arbitrary
//!   text, and on "statement soup" that parses but mixes valid and invalid names, ports, CIDRs,
//!   doors and refused constructs, so that the checker and the door model see it;
//! - for random valid programs, `fmt::format` is idempotent, keeps every comment, and the
//!   formatted program compiles to the same IR (spans aside), the same YAML (source lines aside)
//!   and the same diagnostics;
//! - compiling is deterministic: the same input twice gives byte-identical YAML and IR.
//!
//! Programs are decoded from random bytes (see [`Gen`]), so proptest shrinks a failure to a short
//! byte string and so to a short program. Everything runs in a few seconds in debug builds.

mod common;

use netc::{Compilation, SourceFile};
use proptest::prelude::*;
use serde_json::Value;

// ---------- decoding programs from bytes ----------

/// A cursor over random bytes: each choice takes one byte; past the end every choice is 0, so any
/// byte string decodes to some program and shorter strings to shorter programs.
struct Gen<'a> {
    bytes: &'a [u8],
    pos: usize,
    comments: usize,
}

impl Gen<'_> {
    fn new(bytes: &[u8]) -> Gen<'_> {
        Gen { bytes, pos: 0, comments: 0 }
    }

    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        usize::from(b) % n
    }

    fn one_of<'s>(&mut self, items: &[&'s str]) -> &'s str {
        items[self.below(items.len())]
    }

    /// True with probability `k / n`.
    fn chance(&mut self, k: usize, n: usize) -> bool {
        self.below(n) < k
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// A fresh, numbered comment text, so that each can be found again after formatting.
    fn comment(&mut self) -> String {
        self.comments += 1;
        format!("# c{} note", self.comments)
    }

    fn space(&mut self) -> &'static str {
        self.one_of(&[" ", " ", "  ", "\t"])
    }

    fn around_arrow(&mut self) -> (&'static str, &'static str) {
        match self.below(4) {
            0 => ("", ""),
            1 => ("  ", "\t"),
            _ => (" ", " "),
        }
    }

    /// After a comma in a list: lists may span lines.
    fn after_comma(&mut self) -> String {
        match self.below(8) {
            0 => String::new(),
            1 => "\n    ".to_owned(),
            2 => format!("  {}\n  ", self.comment()),
            _ => " ".to_owned(),
        }
    }
}

// Not `default`: it is a keyword, so `default/web` and `namespace default` do not parse.
const NAMESPACES: &[&str] = &["shop", "pay", "ops"];
/// Undeclared names (`app=<name>`); far enough apart that none looks like a typo of another.
const POOL: &[&str] = &["web", "api", "database", "cache", "queue"];
const LABEL_KEYS: &[&str] = &["app", "tier", "env", "team", "k8s.io/part-of"];
const LABEL_VALUES: &[&str] = &["web", "api", "prod", "a.b", "x_1", "v-2"];
const CIDRS: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.0/8 except 10.1.0.0/16",
    "10.0.0.0/8 except (10.1.0.0/16, 10.2.0.0/16)",
    "203.0.113.7",
    "192.168.0.0/24",
    "2001:db8::/32",
    "2001:db8::/32 except 2001:db8::/48",
    "0.0.0.0/0",
];

fn label_value(g: &mut Gen<'_>) -> String {
    let v = g.one_of(LABEL_VALUES);
    match g.below(6) {
        0 => format!("\"{v}\""),
        1 => "\"\"".to_owned(),
        _ => v.to_owned(),
    }
}

/// A selector for a workload declaration; may be empty (`{}`: every pod).
fn selector(g: &mut Gen<'_>) -> String {
    let n = g.below(3) + usize::from(g.chance(5, 6));
    selector_of(g, n)
}

/// A selector for an endpoint: never `{}`, because `namespace shop` followed by a statement
/// starting with `{}` reads as the block `namespace shop {}` (a known ambiguity of the grammar).
fn endpoint_selector(g: &mut Gen<'_>) -> String {
    let n = 1 + g.below(3);
    selector_of(g, n)
}

fn selector_of(g: &mut Gen<'_>, n: usize) -> String {
    let mut keys: Vec<&str> = LABEL_KEYS.to_vec();
    let mut reqs = Vec::new();
    for _ in 0..n {
        let key = keys.remove(g.below(keys.len()));
        reqs.push(match g.below(8) {
            0 => format!("{key}=={}", label_value(g)),
            1 => format!("{key}!={}", label_value(g)),
            2 => format!("{key} in ({}, {})", label_value(g), label_value(g)),
            3 => format!("{key} notin ({})", label_value(g)),
            4 => key.to_owned(),
            5 => format!("!{key}"),
            _ => format!("{key}={}", label_value(g)),
        });
    }
    let sep = if g.chance(1, 3) { "," } else { ", " };
    let trailing = if g.chance(1, 8) && !reqs.is_empty() { "," } else { "" };
    format!("{{{}{trailing}}}", reqs.join(sep))
}

/// Names a section may use: the pool and its own declarations.
struct Scope {
    declared: Vec<String>,
    externals: Vec<String>,
}

/// Pods of exactly one namespace: fine as a door statement's subject.
fn pods_of_one_namespace(g: &mut Gen<'_>, scope: &Scope) -> String {
    match g.below(8) {
        0 if !scope.declared.is_empty() => scope.declared[g.below(scope.declared.len())].clone(),
        1 => "*".to_owned(),
        2 => endpoint_selector(g),
        3 => format!("{}/{}", g.one_of(NAMESPACES), g.one_of(POOL)),
        4 => format!("{}/*", g.one_of(NAMESPACES)),
        _ => g.one_of(POOL).to_owned(),
    }
}

fn endpoint(g: &mut Gen<'_>, scope: &Scope) -> String {
    match g.below(12) {
        0 => "*/*".to_owned(),
        1 => format!("{}/*", endpoint_selector(g)),
        2 => format!("{}/{}", endpoint_selector(g), selector(g)),
        3 => format!("*/{}", selector(g)),
        4 => g.one_of(CIDRS).to_owned(),
        5 => "anywhere".to_owned(),
        6 if !scope.externals.is_empty() => scope.externals[g.below(scope.externals.len())].clone(),
        _ => pods_of_one_namespace(g, scope),
    }
}

fn port(g: &mut Gen<'_>) -> String {
    let p = match g.below(10) {
        0 => "1".to_owned(),
        1 => "65535".to_owned(),
        2 => format!("{}-{}", 8000 + g.below(50), 8050 + g.below(50)),
        3 => "5000-5000".to_owned(),
        4 => g.one_of(&["http", "metrics", "grpc-web"]).to_owned(),
        5 => "*".to_owned(),
        _ => g.one_of(&["80", "443", "8080", "53", "5432"]).to_owned(),
    };
    let proto = g.one_of(&["", "", "", "/tcp", "/udp", "/UDP", "/sctp"]);
    format!("{p}{proto}")
}

fn ports(g: &mut Gen<'_>) -> String {
    match g.below(3) {
        0 => String::new(),
        1 => format!(":{}", port(g)),
        _ => {
            let n = 1 + g.below(3);
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(port(g));
            }
            let mut list = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                    list.push_str(&g.after_comma());
                }
                list.push_str(item);
            }
            format!(":[{list}]")
        }
    }
}

fn target(g: &mut Gen<'_>, scope: &Scope) -> String {
    if g.chance(1, 8) {
        return "dns".to_owned();
    }
    let end = endpoint(g, scope);
    let ports = ports(g);
    // `2001:db8::1:443` would read the port as part of the address; generated IPv6 targets always
    // have a prefix, so this cannot happen here.
    format!("{end}{ports}")
}

fn list(g: &mut Gen<'_>, items: &[String]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
            out.push_str(&g.after_comma());
        }
        out.push_str(item);
    }
    out
}

fn statement(g: &mut Gen<'_>, scope: &Scope, hermits: &mut usize) -> String {
    match g.below(16) {
        0..=6 => {
            let sources: Vec<String> = (0..1 + g.below(2)).map(|_| endpoint(g, scope)).collect();
            let targets: Vec<String> = (0..1 + g.below(2)).map(|_| target(g, scope)).collect();
            let (before, after) = g.around_arrow();
            // Now and then a one-sided arrow (`egress a -> b`): decided from what was drawn
            // already, so that the other programs stay as they were.
            let side = if sources.len() == 2 && targets.len() == 1 { "egress " } else { "" };
            format!("{side}{}{before}->{after}{}", list(g, &sources), list(g, &targets))
        }
        7..=9 => {
            let subject = pods_of_one_namespace(g, scope);
            let dir = g.one_of(&["", "ingress ", "egress ", "egress "]);
            let space = g.space();
            // Now and then an acknowledgement (which may acknowledge nothing: W0103), decided
            // likewise.
            let allow = if dir == "ingress " { "@allow(W0203, W0205)\n" } else { "" };
            format!("{allow}{subject}{space}{dir}guarded")
        }
        10 => {
            // In a namespace of their own, so that only arrows across namespaces can overlap them
            // (E0301, set aside like E0302).
            *hermits += 1;
            format!("quarantine/hermit{hermits} isolated")
        }
        11 | 12 => {
            let action = g.one_of(&["deny", "deny", "allow"]);
            let dir = g.one_of(&["", " ingress", " egress"]);
            format!("default {action}{dir}")
        }
        // Opening a door can contradict a guard (E0302, E0303): such programs are set aside.
        13 => format!("{} {} open", g.one_of(POOL), g.one_of(&["ingress", "egress"])),
        _ => format!("{} -> dns", pods_of_one_namespace(g, scope)),
    }
}

/// A random program that is valid except, rarely, for an `open` door that contradicts a guard or
/// an arrow across namespaces that includes isolated pods.
fn valid_program(bytes: &[u8]) -> String {
    let mut g = Gen::new(bytes);
    let mut out = String::new();
    let mut hermits = 0;
    let mut externals = Vec::new();
    if g.chance(1, 3) {
        out.push_str(&g.comment());
        out.push_str("\n\n");
    }
    for i in 0..g.below(3) {
        let name = format!("ext{i}");
        let blocks: Vec<String> = (0..1 + g.below(2)).map(|_| g.one_of(CIDRS).to_owned()).collect();
        out.push_str(&format!("external {name} = {}\n", list(&mut g, &blocks)));
        externals.push(name);
    }
    let sections = 1 + g.below(3);
    // The statement written last, unless a namespace line or block end followed it.
    let mut last = String::new();
    for s in 0..sections {
        if g.done() && s > 0 {
            break;
        }
        let ns = g.one_of(NAMESPACES);
        // 0: statements at top level (in `default`, or the namespace of an earlier header).
        let form = g.below(3);
        let indent = match form {
            1 => g.one_of(&["  ", "    ", "\t", ""]),
            _ => "",
        };
        match form {
            1 => out.push_str(&format!("namespace {ns}{}{{\n", g.space())),
            2 => out.push_str(&format!("namespace {ns}\n")),
            _ => {}
        }
        if form != 0 {
            last.clear();
        }
        let mut scope = Scope { declared: Vec::new(), externals: externals.clone() };
        for d in 0..g.below(3) {
            let name = format!("svc{s}{d}");
            if g.chance(1, 3) {
                out.push_str(&format!("{indent}## the {name} pods\n"));
            }
            out.push_str(&format!("{indent}workload {name} = {}\n", selector(&mut g)));
            scope.declared.push(name);
        }
        for _ in 0..1 + g.below(5) {
            match g.below(10) {
                0 => out.push('\n'),
                1 => out.push_str("\n\n\n"),
                2 => {
                    let c = g.comment();
                    out.push_str(&format!("{indent}{c}\n"));
                }
                3 => {
                    out.push_str(&format!("{indent}## doc {}\n", g.below(100)));
                    if g.chance(1, 2) {
                        let c = g.comment();
                        out.push_str(&format!("{indent}{c}\n"));
                    }
                }
                _ => {}
            }
            let mut stmt = statement(&mut g, &scope, &mut hermits);
            // `default deny` and then `egress a -> b` read as `default deny egress` and `a -> b`,
            // which netc refuses (E0001): write the arrow two-sided there.
            if matches!(last.as_str(), "default deny" | "default allow")
                && let Some(arrow) = stmt.strip_prefix("egress ")
            {
                stmt = arrow.to_owned();
            }
            last.clone_from(&stmt);
            out.push_str(indent);
            out.push_str(&stmt);
            if g.chance(1, 5) {
                let c = g.comment();
                out.push_str(&format!("{}{c}", g.space()));
            }
            out.push_str(g.one_of(&["\n", "\n", "  \n"]));
        }
        if form == 1 {
            out.push_str("}\n");
            last.clear();
        }
    }
    out
}

/// Syntactically plausible statements whose parts are drawn from valid and invalid values alike
/// (one in five invalid), plus refused constructs, so that every phase sees hostile input and
/// enough of it gets past the checker to reach the door model.
fn statement_soup(bytes: &[u8]) -> String {
    const ENDS: &[&str] = &[
        "web",
        "api",
        "Web",
        "shop/api",
        "*/*",
        "*",
        "ops/*",
        "{team=x}/*",
        "{team=x}/{app=y}",
        "{a in (b, c)}",
        "{k8s.io/x=y}",
        "10.0.0.0/8",
        "10.0.0.0/8 except 10.1.0.0/16",
        "fd00::/8",
        "anywhere",
        "ext",
        "hermit",
        "dns",
    ];
    const BAD_ENDS: &[&str] = &[
        "web_",
        "Shop/api",
        "{app=a, app=b}",
        "{App_=x}",
        "{a=-b}",
        "{Bad.io/x=y}",
        "10.1.2.3/8",
        "10.0.0.300/8",
        "10.0.0.0/8 except 11.0.0.0/16",
        "10.0.0.0/8 except fd00::/64",
        "2001:db8::1/32",
        "api.example.com",
        "nodes",
        "a-very-long-name-that-is-not-a-valid-label-value-at-all-xxxxxxxx",
    ];
    const PORTS: &[&str] =
        &["", "", ":80", ":8000-8100", ":metrics", ":[80, 443/udp, */sctp]", ":*", ":53/UDP"];
    const BAD_PORTS: &[&str] = &[
        ":0",
        ":70000",
        ":9-1",
        ":http--x",
        ":a-very-long-port-name",
        ":53/icmp",
        ":53/udpp",
        " path \"/x\"",
        ":80 method \"GET\"",
    ];
    const DOORS: &[&str] =
        &["isolated", "guarded", "ingress open", "egress open", "egress guarded", "ingress guarded", "open"];
    let mut g = Gen::new(bytes);
    let end = |g: &mut Gen<'_>| if g.chance(1, 5) { g.one_of(BAD_ENDS) } else { g.one_of(ENDS) };
    let mut out = String::new();
    let mut in_block = false;
    while !g.done() {
        let line = match g.below(16) {
            0 if !in_block => format!("namespace {}", g.one_of(&["shop", "Shop", "pay"])),
            1 if !in_block => {
                in_block = true;
                format!("namespace {} {{", g.one_of(&["shop", "ops"]))
            }
            2 if in_block => {
                in_block = false;
                "}".to_owned()
            }
            3 => format!(
                "workload {} = {}",
                g.one_of(&["api", "web", "hermit"]),
                g.one_of(&["{app=x}", "{app=x, app=y}", "{}", "{Tier=x}"])
            ),
            4 => format!(
                "external {} = {}",
                g.one_of(&["ext", "api"]),
                g.one_of(&["10.0.0.0/8", "10.0.0.1/8", "fd00::/8, 10.0.0.0/8"])
            ),
            5 | 6 => format!("{} {}", end(&mut g), g.one_of(DOORS)),
            7 => format!("default {} {}", g.one_of(&["deny", "allow"]), g.one_of(&["", "ingress", "egress"])),
            8 if g.chance(1, 4) => format!("priority {}", g.below(100)),
            9 => format!("## doc {}", g.below(10)),
            10 => format!("# comment {}", g.below(10)),
            _ => {
                let op = if g.chance(1, 10) { g.one_of(&["-/->", "!->", "-x->"]) } else { "->" };
                let ports = if g.chance(1, 5) { g.one_of(BAD_PORTS) } else { g.one_of(PORTS) };
                format!("{} {op} {}{ports}", end(&mut g), end(&mut g))
            }
        };
        out.push_str(&line);
        out.push('\n');
    }
    if in_block {
        out.push_str("}\n");
    }
    out
}

// ---------- comparing compilations ----------

fn compile(text: &str) -> Compilation {
    netc::compile(&common::source(text))
}

/// The IR as JSON with every span (file, line, column, offsets) blanked out.
fn ir_without_spans(c: &Compilation) -> Option<Value> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                let is_span = ["file", "line", "column", "start", "end"].iter().all(|k| map.contains_key(*k));
                if is_span {
                    *v = Value::Null;
                } else {
                    map.values_mut().for_each(strip);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(c.ir.as_ref()?).expect("the IR is plain data");
    strip(&mut v);
    Some(v)
}

/// The YAML stream `netc build` prints.
fn yaml(c: &Compilation) -> Option<String> {
    let ir = c.ir.as_ref()?;
    Some(netc::yaml::render_stream(&netc::codegen::network_policies(ir), &ir.sources))
}

/// The YAML without the `netc.dev/source: file:line` annotations, which move when lines do.
fn yaml_without_source_lines(c: &Compilation) -> Option<String> {
    let text = yaml(c)?;
    Some(
        text.lines().filter(|l| !l.contains(netc::codegen::SOURCE_ANNOTATION)).collect::<Vec<_>>().join("\n"),
    )
}

fn sorted_codes(c: &Compilation) -> Vec<&'static str> {
    let mut codes = common::codes(c);
    codes.sort_unstable();
    codes
}

/// The `#` comments (not `##` doc comments) in a text, as written.
fn comments(text: &str) -> Vec<&str> {
    let mut found: Vec<&str> = text.match_indices("# c").map(|(i, _)| &text[i..]).collect();
    for c in &mut found {
        *c = c.split('\n').next().unwrap_or(c).trim_end();
    }
    found.sort_unstable();
    found
}

/// `fmt` is idempotent and changes neither meaning nor diagnostics; a failure message shows both.
fn assert_fmt_preserves(source: &str) -> Result<(), TestCaseError> {
    let Ok(formatted) = netc::fmt::format(source) else {
        // Only text that does not parse is refused, and then compile says so.
        prop_assert!(common::codes(&compile(source)).contains(&"E0001"));
        return Ok(());
    };
    let again = netc::fmt::format(&formatted).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    prop_assert_eq!(&again, &formatted, "fmt is not idempotent on\n{}", source);
    let before = compile(source);
    let after = compile(&formatted);
    prop_assert_eq!(sorted_codes(&before), sorted_codes(&after), "\n{}\n---\n{}", source, formatted);
    prop_assert_eq!(ir_without_spans(&before), ir_without_spans(&after), "\n{}\n---\n{}", source, formatted);
    prop_assert_eq!(
        yaml_without_source_lines(&before),
        yaml_without_source_lines(&after),
        "\n{}\n---\n{}",
        source,
        formatted
    );
    Ok(())
}

/// The `##` doc comments in a text, in order.
fn doc_comments(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| l.starts_with("##")).collect()
}

// ---------- properties ----------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compile_never_panics_on_arbitrary_text(text in any::<String>()) {
        let sources = common::source(&text);
        let out = netc::compile(&sources);
        let _ = netc::diagnostics::render(&out.diagnostics, &sources, false);
        let _ = netc::diagnostics::render_json(&out.diagnostics, &sources);
        let _ = netc::fmt::format(&text);
    }

    #[test]
    fn compile_never_panics_on_statement_soup(bytes in prop::collection::vec(any::<u8>(), 0..120)) {
        let text = statement_soup(&bytes);
        // Two files, so that diagnostics and names cross files too.
        let split = text.len() / 2;
        let split = (split..=text.len()).find(|i| text.is_char_boundary(*i) && text[..*i].ends_with('\n')).unwrap_or(text.len());
        let sources = vec![SourceFile::new("a.np", &text[..split]), SourceFile::new("b.np", &text[split..])];
        let out = netc::compile(&sources);
        prop_assert_eq!(out.ir.is_some(), !out.has_errors(), "IR exactly when there are no errors");
        let _ = netc::diagnostics::render(&out.diagnostics, &sources, true);
        let _ = netc::diagnostics::render_json(&out.diagnostics, &sources);
        if let Some(ir) = &out.ir {
            let _ = netc::yaml::render_stream(&netc::codegen::network_policies(ir), &ir.sources);
        }
        // Even on hostile input, fmt keeps meaning and diagnostics.
        assert_fmt_preserves(&text)?;
    }

    #[test]
    fn fmt_is_idempotent_and_keeps_meaning_of_valid_programs(bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        let source = valid_program(&bytes);
        let out = compile(&source);
        // A generated `open` door may contradict a guard, and an arrow across namespaces may
        // include isolated pods; everything else must compile.
        let codes = common::codes(&out);
        prop_assume!(!codes.contains(&"E0302") && !codes.contains(&"E0303") && !codes.contains(&"E0301"));
        prop_assert!(!out.has_errors(), "generated program does not compile:\n{}\n{}", source,
            netc::diagnostics::render(&out.diagnostics, &common::source(&source), false));
        assert_fmt_preserves(&source)?;
    }

    #[test]
    fn fmt_keeps_every_comment(bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        let source = valid_program(&bytes);
        let formatted = netc::fmt::format(&source).map_err(|e| TestCaseError::fail(format!("{e:?}\n{source}")))?;
        prop_assert_eq!(comments(&source), comments(&formatted), "\n{}\n---\n{}", source, formatted);
        prop_assert_eq!(doc_comments(&source), doc_comments(&formatted));
    }

    #[test]
    fn compiling_is_deterministic(bytes in prop::collection::vec(any::<u8>(), 0..160)) {
        let source = valid_program(&bytes);
        let first = compile(&source);
        let second = compile(&source);
        prop_assert_eq!(yaml(&first), yaml(&second));
        prop_assert_eq!(first.ir.as_ref().map(netc_ir::Ir::to_json), second.ir.as_ref().map(netc_ir::Ir::to_json));
        prop_assert_eq!(&first.diagnostics, &second.diagnostics);
    }
}

#[test]
fn generated_programs_are_mostly_valid_and_varied() {
    // The generator must reach what it claims to: without this, the properties above could pass
    // on programs that never compile, or never guard egress.
    let mut valid = 0;
    let mut yaml_kinds = std::collections::BTreeSet::new();
    for seed in 0u8..200 {
        let bytes: Vec<u8> = (0u8..160)
            .map(|i| {
                seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(seed | 1)).rotate_left(u32::from(i % 7))
            })
            .collect();
        let out = compile(&valid_program(&bytes));
        if let Some(y) = yaml(&out) {
            valid += 1;
            for marker in [
                "- Egress",
                "- Ingress",
                "ipBlock:",
                "namespaceSelector:",
                "endPort:",
                "protocol: UDP",
                "netc.dev/intent",
            ] {
                if y.contains(marker) {
                    yaml_kinds.insert(marker);
                }
            }
        }
    }
    assert!(valid >= 150, "only {valid} of 200 generated programs compile");
    assert_eq!(yaml_kinds.len(), 7, "generated programs never produce some of the YAML: {yaml_kinds:?}");
}

#[test]
fn stray_doc_comment_formats_idempotently() {
    // A stray doc comment used to gain a blank line on every `fmt` run (its span was empty).
    let once = netc::fmt::format("frontend -> backend:80\n## nothing follows\n").expect("parses");
    assert_eq!(once, "frontend -> backend:80\n## nothing follows\n");
}

#[test]
fn statement_soup_reaches_every_phase() {
    // The soup must get past the parser and the checker often enough to test the door model.
    let mut compiled = 0;
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0u32..400 {
        let len = seed % 120;
        let bytes: Vec<u8> = (0..len)
            .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i.wrapping_mul(40_503)) >> 7) as u8)
            .collect();
        let out = compile(&statement_soup(&bytes));
        compiled += usize::from(out.ir.is_some());
        seen.extend(common::codes(&out));
    }
    for code in
        ["E0102", "E0105", "E0111", "E0202", "E0206", "E0301", "E0303", "E0401", "E0405", "W0201", "W0203"]
    {
        assert!(seen.contains(code), "statement soup never produces {code}: {seen:?}");
    }
    assert!(compiled >= 10, "only {compiled} of 400 soups compile");
}
