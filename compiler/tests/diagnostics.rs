//! Diagnostics: one snapshot per behaviour (source and rendered diagnostics together, at least one
//! per code), and what every diagnostic shares: all reported at once, documented, JSON with
//! positions, warnings that do not stop the build.
//!
//! Snapshots are in `snapshots/<test name>.snap`; compiler/tests/README.md says how to add a case.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::{FILE_NAME, codes, compile, snapshot_settings, source_and_diagnostics};

/// The file the `netc import` examples of docs/diagnostics.md read.
const YAML_FILE_NAME: &str = "policies.yaml";
use netc::SourceFile;
use netc::diagnostics::{self, ALL_CODES, DIAGNOSTICS_DOC, Diagnostic, Severity, explain};
use netc::syntax::SyntaxError;

/// One test per case: `test_name: "CODE" => "source";`. Each case must produce exactly one
/// diagnostic, with that code; its snapshot shows the source and the diagnostic as printed.
macro_rules! diagnostic_cases {
    ($($name:ident: $code:literal => $source:expr;)*) => {
        /// Every case as (test name, expected code, source), for the coverage test.
        const CASES: &[(&str, &str, &str)] = &[$((stringify!($name), $code, $source)),*];
        $(
            #[test]
            fn $name() {
                assert_case(stringify!($name), $code, $source);
            }
        )*
    };
}

diagnostic_cases! {
    // E0001: syntax
    port_list_without_commas_is_e0001: "E0001" => "frontend -> backend:[80 443]\n";
    file_ending_inside_an_arrow_is_e0001: "E0001" => "frontend -> backend:\n";
    fat_arrow_is_e0001_expecting_an_arrow_or_door_words: "E0001" => "frontend => backend:8080\n";
    parse_error_at_a_line_break_is_e0001_at_the_end_of_the_line: "E0001" => "a -> b:80-\nc -> d\n";
    several_ports_without_brackets_is_e0001_giving_the_list: "E0001" => "frontend -> backend:80, 443, 53/udp\n";
    isolated_with_a_direction_is_e0001_giving_both_fixes: "E0001" => "web ingress isolated\n";
    one_sided_arrow_after_default_deny_is_e0001_not_a_silent_default_deny_egress: "E0001" =>
        "namespace shop {\n  default deny\n  egress backend -> database:5432\n}\n";

    // E01xx: names, labels, ports
    misspelt_protocol_is_e0101_with_a_suggestion: "E0101" => "frontend -> backend:53/udpp\n";
    icmp_is_e0101_saying_networkpolicy_cannot_filter_it: "E0101" => "monitor -> backend:7/icmp\n";
    port_above_65535_is_e0102: "E0102" => "frontend -> backend:70000\n";
    port_zero_is_e0102: "E0102" => "frontend -> backend:0\n";
    port_range_ending_above_65535_is_e0102: "E0102" => "frontend -> backend:8000-70000\n";
    descending_port_range_is_e0103: "E0103" => "frontend -> backend:9000-8000\n";
    named_port_with_a_double_hyphen_is_e0104: "E0104" => "frontend -> backend:metrics--http\n";
    named_port_longer_than_15_characters_is_e0104: "E0104" => "frontend -> backend:a-very-long-port-name\n";
    upper_case_label_key_prefix_is_e0105: "E0105" => "workload api = {App.kubernetes.io/name=api}\n";
    label_key_ending_in_an_underscore_is_e0105: "E0105" => "workload api = {app_=api}\n";
    label_value_with_a_space_is_e0106: "E0106" => "workload api = {app=\"api server\"}\n";
    label_value_starting_with_a_hyphen_is_e0106: "E0106" => "workload api = {tier in (web, -api)}\n";
    upper_case_namespace_block_is_e0107: "E0107" => "namespace Shop {\n  frontend -> backend:80\n}\n";
    upper_case_namespace_reference_is_e0107: "E0107" => "web -> Shop/api:80\n";
    undeclared_name_that_is_no_label_value_is_e0108: "E0108" => "frontend -> backend_:80\n";
    workload_declared_twice_in_one_namespace_is_e0109: "E0109" =>
        "workload api = {app=api}\nworkload api = {app=api-v2}\nfrontend -> api:80\n";
    external_declared_twice_is_e0110: "E0110" =>
        "external payments = 203.0.113.0/24\nexternal payments = 198.51.100.0/24\nweb -> payments:443\n";
    workload_used_before_its_declaration_is_e0111: "E0111" =>
        "web -> api:80\nworkload api = {app=api, tier=backend}\n";
    external_used_before_its_declaration_is_e0111: "E0111" =>
        "web -> payments:443\nexternal payments = 203.0.113.0/24\n";
    label_key_twice_in_one_selector_is_e0112: "E0112" => "workload api = {app=api, app=web}\n";
    label_key_thrice_even_with_the_exists_pair_is_e0112: "E0112" =>
        "workload api = {tier, tier notin (web), tier!=db}\n";
    label_key_in_and_notin_is_e0112: "E0112" => "workload api = {tier in (a, b), tier notin (b)}\n";
    namespace_given_to_a_workload_declared_with_its_namespaces_is_e0113: "E0113" =>
        "workload prod = {purpose=production}/*\nshop/prod -> api:80\n";
    allow_of_an_error_code_is_e0114: "E0114" => "@allow(E0301)\nfrontend -> backend:80\n";
    allow_of_no_code_netc_has_is_e0114_with_a_suggestion: "E0114" => "@allow(W203)\nfrontend -> backend:80\n";

    // E02xx: addresses, dns, doors of what
    octet_above_255_is_e0201: "E0201" => "web -> 10.0.0.300/8:443\n";
    prefix_longer_than_the_address_is_e0201: "E0201" => "web -> 10.0.0.0/33:443\n";
    host_bits_after_the_prefix_is_e0202_with_the_network_suggested: "E0202" => "web -> 10.1.2.3/8:443\n";
    ipv6_host_bits_after_the_prefix_is_e0202: "E0202" => "web -> 2001:db8::1/32:443\n";
    except_outside_its_block_is_e0203: "E0203" => "web -> 10.0.0.0/16 except 10.1.0.0/24:443\n";
    except_equal_to_its_block_is_e0203: "E0203" => "web -> 10.0.0.0/8 except 10.0.0.0/8:443\n";
    ipv6_except_in_an_ipv4_block_is_e0204: "E0204" => "web -> 10.0.0.0/8 except fd00::/64:443\n";
    door_statement_on_an_address_block_is_e0205: "E0205" => "10.0.0.0/8 egress guarded\n";
    door_statement_on_an_external_is_e0205: "E0205" => "external corp = 10.0.0.0/8\ncorp isolated\n";
    door_statement_on_all_pods_everywhere_is_e0206: "E0206" => "*/* egress guarded\n";
    door_statement_on_namespaces_by_labels_is_e0206: "E0206" => "{team=shop}/* isolated\n";
    dns_as_a_source_is_e0207: "E0207" => "dns -> web:80\n";
    ports_on_dns_are_e0208: "E0208" => "web -> dns:53\n";

    // E03xx, W02xx: the door model
    arrow_into_an_isolated_workload_is_e0301_only: "E0301" => "hermit isolated\nfrontend -> hermit:80\n";
    arrow_from_an_isolated_workload_is_e0301: "E0301" => "hermit isolated\nhermit -> api:80\n";
    arrow_into_pods_that_include_an_isolated_workload_is_e0301: "E0301" =>
        "workload api = {app=bookstore, role=api}\napi isolated\nfrontend -> bookstore:80\n";
    egress_rule_on_pods_that_include_an_isolated_workload_is_e0301: "E0301" =>
        "default deny egress\nhermit isolated\n* -> dns\n";
    door_declared_open_and_guarded_is_e0302: "E0302" => "api ingress guarded\napi ingress open\n";
    opening_a_door_of_an_isolated_workload_is_e0302: "E0302" => "hermit isolated\nhermit egress open\n";
    opening_a_door_that_default_deny_guards_is_e0303: "E0303" => "default deny ingress\nmetrics ingress open\n";
    arrow_from_open_egress_to_anywhere_is_w0201: "W0201" => "frontend -> anywhere:443\n";
    arrow_between_address_blocks_is_w0201: "W0201" => "10.0.0.0/8 -> 192.168.0.0/16\n";
    arrow_from_pods_of_every_namespace_to_anywhere_is_w0201: "W0201" => "*/* -> anywhere:443\n";
    arrow_between_every_namespace_and_itself_is_w0201_saying_why_once: "W0201" => "*/* -> */*:80\n";
    label_chosen_source_with_guarded_egress_pods_is_w0207: "W0207" =>
        "namespace shop {\n  default deny egress\n  * -> dns\n}\nnamespace web {\n  {team=shop}/* -> api:80\n}\n";
    arrow_into_a_door_declared_open_is_w0202: "W0202" => "api ingress open\nfrontend -> api:80\n";
    guarded_egress_without_dns_is_w0203: "W0203" => "web egress guarded\nweb -> 203.0.113.0/24:443\n";
    default_deny_egress_without_dns_is_w0203: "W0203" =>
        "namespace shop {\n  default deny egress\n  web -> 203.0.113.0/24:443\n}\n";
    same_arrow_twice_is_w0204: "W0204" => "frontend -> backend:80\nfrontend -> backend:80\n";
    flow_covered_by_a_wider_one_is_w0206: "W0206" => "anywhere -> frontend\nloadgenerator -> frontend:8080\n";
    arrow_that_first_guards_its_target_from_a_guarded_egress_is_w0205: "W0205" =>
        "backend egress guarded\nbackend -> dns\nbackend -> database:5432\n";
    arrow_into_pods_of_a_namespace_with_only_egress_denied_is_w0205: "W0205" =>
        "namespace shop {\n  default deny egress\n  * -> dns\n  web -> api:80\n  ## a later arrow into api says nothing more\n  cart -> api:80\n}\n";
    one_sided_arrow_from_an_open_egress_is_w0201: "W0201" => "egress backend -> database:5432\n";

    // E05xx: assertions, proved for every possible pod
    assertion_that_a_widened_source_breaks_is_e0501: "E0501" =>
        "namespace payments {\n  checkout -> vault:443\n}\n*/{tier=web} -> payments/vault:443\nassert */{app=web} !-> payments/vault\n";
    assertion_that_a_missing_port_breaks_is_e0501: "E0501" =>
        "frontend -> backend:8080\nassert frontend -> backend:[8080, 8443]\n";
    isolation_asserted_of_a_reachable_workload_is_e0501: "E0501" => "web -> db:5432\nassert db isolated\n";
    guard_asserted_of_an_open_door_is_e0501: "E0501" => "web egress guarded\nweb -> dns\nassert {tier=web} egress guarded\n";

    // W01xx: names
    name_used_once_that_resembles_another_is_w0101: "W0101" =>
        "frontend -> backend:80\nfrontend -> backend:443/udp\nweb -> backnd:80\n";
    name_used_once_and_misspelt_once_is_w0101_at_the_second: "W0101" =>
        "loadgenerator -> frontend:8080\nloadgenerater -> frontend:80\n";
    allow_that_allows_nothing_is_w0103: "W0103" => "@allow(W0203)\nfrontend -> backend:80\n";
    name_declared_in_another_namespace_is_w0104: "W0104" =>
        "workload prom = {app=prometheus}\nnamespace shop {\n  prom -> api:9090\n}\n";
    doc_comment_followed_by_nothing_is_w0102: "W0102" => "frontend -> backend:80\n## nothing follows\n";

    // E04xx: what NetworkPolicy cannot say
    deny_arrow_is_e0401: "E0401" => "frontend -/-> backend\n";
    bang_deny_arrow_is_e0401: "E0401" => "frontend !-> backend\n";
    cross_deny_arrow_is_e0401: "E0401" => "frontend -x-> backend\n";
    priority_is_e0402: "E0402" => "priority 10\nfrontend -> backend:80\n";
    dns_name_as_a_peer_is_e0403: "E0403" => "web -> api.example.com:443\n";
    http_path_is_e0404: "E0404" => "web -> api:80 path \"/admin\"\n";
    http_method_is_e0404: "E0404" => "web -> api:80 method \"GET\"\n";
    nodes_as_a_peer_is_e0405: "E0405" => "nodes -> api:10250\n";
}

fn assert_case(name: &str, code: &str, source: &str) {
    let (sources, out) = compile(source);
    assert_eq!(codes(&out), [code], "{name}: expected exactly one {code}, got {:#?}", out.diagnostics);
    match out.diagnostics[0].severity {
        Severity::Error => assert!(out.ir.is_none(), "{name}: an error must stop the build"),
        Severity::Warning => assert!(out.ir.is_some(), "{name}: a warning must not stop the build"),
    }
    assert_eq!(
        code.starts_with('E'),
        out.diagnostics[0].severity == Severity::Error,
        "{name}: E is error, W warning"
    );
    snapshot_settings().bind(|| insta::assert_snapshot!(name, source_and_diagnostics(&sources, &out)));
}

/// E0502 needs a cluster: two pods, one of which breaks an assertion (E0501 fails too: the proof
/// is about every possible pod). Returns the sources and the compilation.
fn assertion_broken_on_a_cluster() -> (Vec<SourceFile>, netc::Compilation) {
    let sources = common::source("* -> db:5432\nassert legacy !-> db\nassert web !-> db\n");
    let pod = |name: &str, app: &str, ip: &str| {
        format!(
            "- {{apiVersion: v1, kind: Pod, metadata: {{name: {name}, namespace: default, labels: {{app: {app}}}}}, status: {{podIP: {ip}}}}}\n"
        )
    };
    let yaml = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {{apiVersion: v1, kind: Namespace, metadata: {{name: default}}}}\n{}{}",
        pod("legacy-7f9c", "legacy", "10.244.1.5"),
        pod("db-0", "db", "10.244.2.9")
    );
    let cluster = netc_ir::Inventory::from_yaml(&yaml).expect("a valid cluster");
    let out =
        netc::compile_with(&sources, &netc::Options { cluster: Some(&cluster), ..netc::Options::default() });
    (sources, out)
}

#[test]
fn assertion_broken_by_a_clusters_pods_is_e0502() {
    let (sources, out) = assertion_broken_on_a_cluster();
    // The first assertion fails for a possible pod and for the cluster's `legacy-7f9c`; the
    // second only for a possible pod: no `web` pod runs on the cluster.
    assert_eq!(codes(&out), ["E0501", "E0502", "E0501"], "{}", source_and_diagnostics(&sources, &out));
    snapshot_settings().bind(|| {
        insta::assert_snapshot!(
            "assertion_broken_by_a_clusters_pods_is_e0502",
            source_and_diagnostics(&sources, &out)
        );
    });
}

/// E0002 needs a file of 4 GiB or more, which no test can afford: the diagnostic is made from the
/// syntax error `syntax::parse` returns for such a file.
fn too_large_diagnostic() -> Diagnostic {
    diagnostics::from_syntax(0, &SyntaxError::TooLarge { bytes: 4_294_967_296 })
}

#[test]
fn file_of_4_gib_or_more_is_e0002() {
    let sources = common::source("frontend -> backend:80\n");
    let out = netc::Compilation { diagnostics: vec![too_large_diagnostic()], ..netc::Compilation::default() };
    assert_eq!(codes(&out), ["E0002"]);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("file_of_4_gib_or_more_is_e0002", source_and_diagnostics(&sources, &out));
    });
}

/// E0003 is made by the binary's reader, which finds the first byte that is not UTF-8 and shows
/// the file lossily (the byte as U+FFFD); this is the diagnostic it makes for `caf\xe9` on line 2.
fn not_utf8_diagnostic() -> Diagnostic {
    let span = netc::ast::Span::new(30, 33);
    diagnostics::from_syntax(0, &SyntaxError::NotUtf8 { span, byte: 0xe9 })
}

#[test]
fn source_that_is_not_utf8_is_e0003() {
    let sources = common::source("frontend -> backend:8080\n# caf\u{fffd}\n");
    let out = netc::Compilation { diagnostics: vec![not_utf8_diagnostic()], ..netc::Compilation::default() };
    assert_eq!(codes(&out), ["E0003"]);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!("source_that_is_not_utf8_is_e0003", source_and_diagnostics(&sources, &out));
    });
}

#[test]
fn every_code_is_documented_and_produced_by_a_case() {
    let mut produced: BTreeSet<&str> =
        CASES.iter().flat_map(|(_, _, source)| codes(&compile(source).1)).collect();
    produced.insert(too_large_diagnostic().code);
    produced.insert(not_utf8_diagnostic().code);
    // W0001 is about an invisible character, which a snapshot would hold as it is:
    // compiler/tests/hostile.rs shows its output.
    produced.extend(codes(&compile("frontend -> backend:80 # \u{202e}344 ot\n").1));
    produced.extend(import_codes());
    produced.insert(internal_import_diagnostic().code);
    produced.extend(codes(&assertion_broken_on_a_cluster().1));
    for code in ALL_CODES {
        let section =
            explain(code).unwrap_or_else(|| panic!("docs/diagnostics.md has no section `## {code}: ...`"));
        assert!(section.starts_with(&format!("## {code}: ")), "{code}: heading is `## {code}: title`");
        assert!(section.contains("**Fix:**"), "{code}: the section says how to fix it");
        assert!(produced.contains(code), "{code}: no case in compiler/tests/diagnostics.rs produces it");
    }
    let all: BTreeSet<&str> = ALL_CODES.iter().copied().collect();
    assert!(produced.is_subset(&all), "codes missing from ALL_CODES: {:?}", produced.difference(&all));
    for line in DIAGNOSTICS_DOC.lines() {
        if let Some(code) = line.strip_prefix("## ").and_then(|h| h.split(':').next()).filter(|c| is_code(c))
        {
            assert!(all.contains(code), "docs/diagnostics.md documents {code}, which is not in ALL_CODES");
        }
    }
}

/// The codes `netc import` gives a few YAML inputs: one per kind of problem.
fn import_codes() -> Vec<&'static str> {
    let np = |meta: &str, spec: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{{meta}}}\nspec: {spec}\n")
    };
    let inputs = [
        "kind: NetworkPolicy\nspec: {a: [}\n".to_owned(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n".to_owned(),
        np("name: p", "{podSelector: 3}"),
        np("name: p", "{podSelector: {}, ingress: [{ports: [{port: 0}]}]}"),
        np("name: p, namespace: ingress", "{podSelector: {}}"),
        format!("{}---\n{}", np("name: p", "{podSelector: {}}"), np("name: p", "{podSelector: {}}")),
    ];
    let mut out = Vec::new();
    for text in inputs {
        let files = [SourceFile::new("policies.yaml", text)];
        let (objects, problems) = netc::import::read(&files);
        out.extend(problems.iter().map(|d| d.code));
        if let Err(e) = netc::import::import(&objects.policies) {
            out.push(diagnostics::from_import(&e, objects.loc_of(&e)).code);
        }
    }
    out
}

/// E0605 means a bug of `netc import`, which no input is known to cause: the diagnostic made from
/// the error it would return.
fn internal_import_diagnostic() -> Diagnostic {
    let e =
        netc::import::ImportError::Internal { source: "x ->\n".into(), diagnostics: "error[E0001]".into() };
    diagnostics::from_import(&e, None)
}

#[test]
fn import_problems_have_their_codes() {
    assert_eq!(import_codes(), ["E0601", "E0602", "E0603", "E0603", "E0604", "W0601"]);
    let d = internal_import_diagnostic();
    assert_eq!((d.code, d.severity), ("E0605", Severity::Error));
}

fn is_code(word: &str) -> bool {
    word.len() == 5 && word.starts_with(['E', 'W']) && word[1..].chars().all(|c| c.is_ascii_digit())
}

#[test]
fn explain_finds_codes_in_any_case_and_only_real_ones() {
    let section = explain("e0202").expect("lower case works");
    assert!(section.starts_with("## E0202: "), "{section}");
    assert!(section.contains("did you mean `10.0.0.0/8`?"), "the section shows the diagnostic: {section}");
    assert!(!section.contains("## E0203"), "the section stops before the next one");
    assert_eq!(
        explain(" W0203 ").as_deref().map(|s| s.lines().next()),
        Some(Some("## W0203: guarded egress without DNS"))
    );
    let w0102 = explain("W0102").expect("documented");
    assert!(
        w0102.contains("## nothing follows") && w0102.contains("**Fix:**"),
        "a `##` line in an example is no heading: {w0102}"
    );
    assert_eq!(explain("E9999"), None);
    assert_eq!(explain("E020"), None, "a prefix of a code is not a code");
}

#[test]
fn several_errors_in_one_file_are_reported_together() {
    let source =
        "namespace Shop {\n  web -> api:70000\n  web -> 10.1.2.3/8\n}\nhermit isolated\nweb -> hermit:80\n";
    let (sources, out) = compile(source);
    assert_eq!(codes(&out), ["E0107", "E0102", "E0202", "E0301"], "{:#?}", out.diagnostics);
    assert!(out.ir.is_none());
    snapshot_settings().bind(|| {
        insta::assert_snapshot!(
            "several_errors_in_one_file_are_reported_together",
            source_and_diagnostics(&sources, &out)
        );
    });
}

#[test]
fn errors_in_several_files_are_reported_together() {
    let sources = vec![
        SourceFile::new("shop.np", "namespace shop {\n  frontend -> api:8080/tpc\n}\n"),
        SourceFile::new("edge.np", "web -> 10.0.0.0/8 except 11.0.0.0/16\nweb -> shop/api:8080\n"),
    ];
    let out = netc::compile(&sources);
    let places: Vec<(&str, usize)> = out
        .diagnostics
        .iter()
        .map(|d| (d.code, d.location().expect("every diagnostic has a primary label").file))
        .collect();
    assert_eq!(places, [("E0101", 0), ("E0203", 1)], "{:#?}", out.diagnostics);
    snapshot_settings().bind(|| {
        insta::assert_snapshot!(
            "errors_in_several_files_are_reported_together",
            source_and_diagnostics(&sources, &out)
        );
    });
}

#[test]
fn syntax_errors_of_every_file_are_reported_together() {
    let sources = vec![SourceFile::new("a.np", "a -> b:[80 443]\n"), SourceFile::new("b.np", "c => d\n")];
    let out = netc::compile(&sources);
    let files: Vec<usize> = out.diagnostics.iter().filter_map(Diagnostic::location).map(|l| l.file).collect();
    assert_eq!(codes(&out), ["E0001", "E0001"]);
    assert_eq!(files, [0, 1]);
}

#[test]
fn arrow_into_a_door_declared_open_from_a_guarded_egress_is_silent() {
    // The arrow is written as an egress rule on `frontend`, so it has an effect.
    let (_, out) =
        compile("frontend egress guarded\nfrontend -> dns\napi ingress open\nfrontend -> api:80\n");
    assert_eq!(codes(&out), [] as [&str; 0], "{:#?}", out.diagnostics);
}

#[test]
fn both_isolated_ends_of_an_arrow_are_reported() {
    let (_, out) = compile("hermit isolated\nrecluse isolated\nhermit -> recluse:80\n");
    assert_eq!(codes(&out), ["E0301", "E0301"], "{:#?}", out.diagnostics);
}

#[test]
fn json_diagnostics_carry_file_line_column_code_and_message() {
    // Columns count characters: `é` is two bytes but one column.
    let source =
        "namespace shop {\n  web -> api:70000\n}\nworkload w = {a=\"é\", b=-x}\nweb egress guarded\n";
    let (sources, out) = compile(source);
    let json = diagnostics::render_json(&out.diagnostics, &sources);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let summary: Vec<(&str, &str, &str, u64, u64, u64)> = lines
        .iter()
        .map(|v| {
            (
                v["severity"].as_str().expect("severity"),
                v["code"].as_str().expect("code"),
                v["file"].as_str().expect("file"),
                v["line"].as_u64().expect("line"),
                v["column"].as_u64().expect("column"),
                v["end_column"].as_u64().expect("end_column"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("error", "E0102", FILE_NAME, 2, 14, 19),
            ("error", "E0106", FILE_NAME, 4, 17, 20),
            ("error", "E0106", FILE_NAME, 4, 24, 26),
        ],
        "{json}"
    );
    assert_eq!(lines[0]["message"], "port `70000` is out of range");
    assert_eq!(lines[0]["label"], "ports are 1 to 65535");
    assert!(lines[0]["help"].as_str().is_some_and(|h| h.contains("65535")));
    assert!(lines[0]["notes"].is_array());
}

#[test]
fn warnings_do_not_stop_compilation() {
    let source = "web egress guarded\nweb -> api:80\nweb -> api:80\nfrontend -> backend:80\nfrontend -> backend:443\nweb -> backnd:9090\n";
    let (_, out) = compile(source);
    assert_eq!(codes(&out), ["W0203", "W0205", "W0204", "W0101", "W0205"], "{:#?}", out.diagnostics);
    assert!(out.has_warnings() && !out.has_errors());
    let ir = out.ir.expect("warnings leave the IR");
    let policies = netc::codegen::network_policies(&ir);
    assert!(policies.iter().any(|p| p.metadata.name.as_deref() == Some("api")), "{policies:#?}");
}

fn netc(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_netc")).args(args).current_dir(dir).output().expect("netc runs")
}

#[test]
fn warnings_fail_the_cli_only_with_deny_warnings() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(FILE_NAME), "web egress guarded\nweb -> api:80\n").expect("write");
    let plain = netc(dir.path(), &["check", "--color", "never", FILE_NAME]);
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("warning[W0203]"));
    let denied = netc(dir.path(), &["check", "--color", "never", "--deny-warnings", FILE_NAME]);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    let built = netc(dir.path(), &["build", FILE_NAME]);
    assert_eq!(built.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&built.stdout).contains("kind: NetworkPolicy"));
    let json = netc(dir.path(), &["check", "--message-format", "json", FILE_NAME]);
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert!(
        stderr.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "only JSON lines: {stderr}"
    );
}

/// docs/diagnostics.md shows, for each example, what `netc check policies.np` prints: run each
/// one and compare, so that the page cannot drift from the compiler.
#[test]
fn every_documented_example_prints_the_documented_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut checked = BTreeSet::new();
    let mut section = "";
    let mut example: Option<String> = None;
    // A ```yaml block after a ```netc one is the cluster of a `--cluster` run (E0502).
    let mut cluster: Option<String> = None;
    let mut lines = DIAGNOSTICS_DOC.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading.split(':').next().unwrap_or(heading);
            example = None;
            cluster = None;
        } else if line == "```netc" || line == "```yaml" {
            let block: String =
                lines.by_ref().take_while(|l| *l != "```").map(|l| format!("{l}\n")).collect();
            if line == "```yaml" && example.is_some() {
                cluster = Some(block);
            } else {
                example = Some(block);
            }
        } else if line == "```text" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            let Some(command) = block.first().and_then(|c| c.strip_prefix("$ netc ")) else { continue };
            let mut args: Vec<&str> = command.split_whitespace().collect();
            if args.last() != Some(&FILE_NAME) && args[..] != ["import", YAML_FILE_NAME] {
                continue; // E0002's, E0003's and W0001's runs on files Markdown cannot hold
            }
            let source =
                example.as_deref().unwrap_or_else(|| panic!("{section}: output without a ```netc example"));
            let file = if args[0] == "import" { YAML_FILE_NAME } else { FILE_NAME };
            std::fs::write(dir.path().join(file), source).expect("write example");
            if let Some(at) = args.iter().position(|a| *a == "--cluster") {
                let text = cluster
                    .as_deref()
                    .unwrap_or_else(|| panic!("{section}: --cluster without a ```yaml cluster"));
                std::fs::write(dir.path().join(args[at + 1]), text).expect("write the cluster");
            }
            if !args.contains(&"json") {
                args.splice(1..1, ["--color", "never"]);
            }
            let out = netc(dir.path(), &args);
            let printed = String::from_utf8_lossy(&out.stderr);
            let printed: Vec<&str> = printed.trim_end().lines().map(str::trim_end).collect();
            assert_eq!(
                printed.join("\n"),
                block[1..].join("\n"),
                "docs/diagnostics.md, {section}: `netc {command}` prints something else; paste this into the page:\n{}",
                printed.join("\n")
            );
            if is_code(section) {
                assert!(
                    printed.iter().any(|l| l.contains(&format!("[{section}]"))),
                    "{section}: its example shows another code"
                );
            }
            checked.insert(section.to_owned());
        }
    }
    // E0002, E0003 and W0001 need files Markdown cannot hold (too large, not UTF-8, invisible
    // characters): compiler/tests/hostile.rs runs their examples.
    // E0605 is a bug of netc import that no input is known to cause.
    for code in ALL_CODES.iter().filter(|c| !["E0002", "E0003", "W0001", "E0605"].contains(*c)) {
        assert!(checked.contains(*code), "{code}: its section shows no `$ netc check policies.np` output");
    }
}
