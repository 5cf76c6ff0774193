//! `netc report`: the HTML page, checked as text (the browser test, `report_browser.rs`, renders
//! it for real).
//!
//! What is asserted: every rule has an anchor and appears with its id; every source line has an
//! anchor; every in-page link points at an anchor that exists; the page fetches nothing and runs
//! no script; everything from the source is escaped; warnings are shown; the same input gives the
//! same bytes.
//!
//! To add a case: render with `report(...)` (or `report_with_cluster`) and assert on the text.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use netc::SourceFile;
use netc::report::{ReportInput, render};
use netc_ir::Inventory;

fn repo(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn example(relative: &str) -> Vec<SourceFile> {
    let text =
        std::fs::read_to_string(repo(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"));
    vec![SourceFile::new(relative, text)]
}

fn report(sources: &[SourceFile], cluster: Option<&Inventory>) -> String {
    // As `netc report` compiles: failed assertions keep the IR, the page shows them.
    let options = netc::Options { cluster, assertions: netc::Assertions::Keep, ..netc::Options::default() };
    let out = netc::compile_with(sources, &options);
    let ir = out.ir.as_ref().unwrap_or_else(|| {
        panic!("does not compile:\n{}", netc::diagnostics::render(&out.diagnostics, sources, false))
    });
    render(&ReportInput {
        sources,
        ir,
        diagnostics: &out.diagnostics,
        assertions: &out.assertions,
        cluster: cluster.map(|inventory| ("cluster.yaml", inventory)),
    })
    .expect("the built-in templates render")
}

/// The page's `<section id="NAME">`, up to its end.
fn section<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html.find(&format!("<section id=\"{name}\"")).unwrap_or_else(|| panic!("no section {name}"));
    let end = html[start..].find("</section>").map_or(html.len(), |e| start + e + "</section>".len());
    &html[start..end]
}

/// Every assertion is listed, held or failed; a failed one with its counterexample for every
/// possible pod (E0501) and, given a cluster, the cluster's pods that break it (E0502), with links
/// to the rule lines the evaluator names. Failed assertions are not repeated among the warnings.
#[test]
fn assertions_are_shown_held_or_failed_with_their_counterexamples() {
    let sources = example("examples/shop.np");
    let statements = sources[0].text.lines().filter(|l| l.starts_with("assert ")).count();
    let held = report(&sources, None);
    let part = section(&held, "assertions");
    assert_eq!(part.matches("<li class=\"assertion held\"").count(), statements, "{part}");
    assert!(!part.contains("assertion failed"), "{part}");
    assert!(part.contains(&escape("assert web/* !-> data/*")), "{part}");

    // The web tier reaches a data store: `assert web/* !-> data/*` fails, on the cluster too.
    let text = sources[0].text.replacen(
        "  storefront -> assets:8080\n",
        "  storefront -> assets:8080\n  storefront -> data/redis:6379\n",
        1,
    );
    let rule_line = text.lines().position(|l| l == "  storefront -> data/redis:6379").expect("added") + 1;
    let mutated = vec![SourceFile::new("examples/shop.np", text)];
    let cluster = Inventory::from_yaml(
        &std::fs::read_to_string(repo("compiler/tests/fixtures/shop-cluster.yaml")).expect("fixture"),
    )
    .expect("a valid cluster");
    let html = report(&mutated, Some(&cluster));
    let part = section(&html, "assertions");
    assert_eq!(part.matches("<li class=\"assertion held\"").count(), statements - 1, "{part}");
    assert_eq!(part.matches("<li class=\"assertion failed\"").count(), 1, "{part}");
    assert!(part.contains("error E0501") && part.contains("error E0502"), "{part}");
    assert!(
        part.contains(&escape("counterexample: from a pod labelled {app=storefront} in namespace `web`")),
        "{part}"
    );
    assert!(part.contains(&escape("on the cluster: from pod `web/storefront-")), "{part}");
    // The rule that lets the flow through, linked to its source line.
    assert!(part.contains(&format!("href=\"#src-0-{rule_line}\"")), "{part}");
    assert!(!section(&html, "warnings").contains("E0501"), "failed assertions are shown once");
    common::snapshot_settings()
        .bind(|| insta::assert_snapshot!("report_assertions_failed_on_the_cluster", part));
}

/// Every value of `attribute="..."` in the page.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!(" {attribute}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let start = i + needle.len();
            let end = html[start..].find('"').map_or(html.len(), |e| start + e);
            &html[start..end]
        })
        .collect()
}

/// HTML escaping as tera does it.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2F;")
}

#[test]
fn every_rule_appears_with_its_id_and_an_anchor() {
    let sources = example("examples/shop.np");
    let ir = netc::compile(&sources).ir.expect("compiles");
    let html = report(&sources, None);
    let ids: BTreeSet<&str> = attribute_values(&html, "id").into_iter().collect();
    let mut count = 0;
    for (_, _, rule) in ir.rules() {
        assert!(ids.contains(format!("rule-{}", rule.id).as_str()), "no anchor for rule {}", rule.id);
        assert!(
            html.contains(&format!("<code class=\"rid\">{}</code>", rule.id)),
            "rule {} not listed",
            rule.id
        );
        count += 1;
    }
    assert!(count > 40, "the shop has many rules ({count})");
}

#[test]
fn every_source_line_has_an_anchor_and_rules_link_to_their_line() {
    let sources = example("examples/shop.np");
    let html = report(&sources, None);
    let ids: BTreeSet<&str> = attribute_values(&html, "id").into_iter().collect();
    let lines = sources[0].text.lines().count();
    for n in 1..=lines {
        assert!(ids.contains(format!("src-0-{n}").as_str()), "line {n} has no anchor");
    }
    assert!(!ids.contains(format!("src-0-{}", lines + 1).as_str()));
    // The rules of the arrow `storefront -> assets:8080` link to its line.
    let line =
        sources[0].text.lines().position(|l| l.contains("storefront -> assets:8080")).expect("line") + 1;
    assert!(html.contains(&format!("href=\"#src-0-{line}\">shop.np:{line}</a>")));
}

#[test]
fn every_link_in_the_page_points_at_an_anchor_of_the_page() {
    for sources in [example("examples/shop.np"), example("examples/seed/restrict-egress.np")] {
        let html = report(&sources, None);
        let ids: BTreeSet<&str> = attribute_values(&html, "id").into_iter().collect();
        let hrefs = attribute_values(&html, "href");
        assert!(hrefs.len() > 20, "{} links", hrefs.len());
        for href in hrefs {
            let target = href.strip_prefix('#').unwrap_or_else(|| panic!("a link out of the page: {href}"));
            assert!(ids.contains(target), "{}: link to #{target}, which does not exist", sources[0].name);
        }
    }
}

#[test]
fn the_page_is_self_contained_with_no_script_and_nothing_fetched() {
    let html = report(&example("examples/shop.np"), None);
    assert!(html.starts_with("<!DOCTYPE html>"));
    let lower = html.to_ascii_lowercase();
    for forbidden in ["<script", "<link", "<img", "<iframe", "@import", "url(http", " src=\"", "javascript:"]
    {
        assert!(!lower.contains(forbidden), "the page contains {forbidden}");
    }
    // The one URL is the SVG namespace, which is a name, not a fetch.
    assert!(!lower.contains("https:"));
    assert_eq!(lower.matches("http:").count(), 1);
    assert!(html.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(html.contains("<style>") && html.contains("<svg"));
}

#[test]
fn markup_in_doc_comments_and_names_is_escaped() {
    let sources = common::source(
        "## <script>alert(\"doc\")</script> & <b>bold</b>\nfrontend -> backend:8080\n## </style><img src=x onerror=alert(1)>\nhermit isolated\n",
    );
    let html = report(&sources, None);
    assert!(!html.contains("<script>"), "a doc comment's <script> reached the page");
    assert!(!html.contains("<b>bold</b>") && !html.contains("<img"));
    assert_eq!(html.matches("</style>").count(), 1, "only the page's own </style>");
    assert!(html.contains(
        "&lt;script&gt;alert(&quot;doc&quot;)&lt;&#x2F;script&gt; &amp; &lt;b&gt;bold&lt;&#x2F;b&gt;"
    ));
}

#[test]
fn warnings_are_shown_with_their_code_and_a_link_to_their_line() {
    // Two guarded egresses without DNS: W0203 twice.
    let sources = common::source(
        "backend egress guarded\negress backend -> database:5432\n\nworker egress guarded\negress worker -> database:5432\n",
    );
    let out = netc::compile(&sources);
    assert_eq!(common::codes(&out), ["W0203", "W0203"]);
    let html = report(&sources, None);
    for d in &out.diagnostics {
        let line =
            sources[0].text[..d.location().expect("located").span.start as usize].matches('\n').count() + 1;
        let shown = format!(
            "warning {}</span><strong>{}</strong><a href=\"#src-0-{line}\">",
            d.code,
            escape(&d.message)
        );
        assert!(html.contains(&shown), "{} is not shown with its line {line}: {shown}", d.code);
    }
    assert!(html.contains(&format!("<span class=\"count warn\">{}</span>", out.diagnostics.len())));
    let clean = report(&common::source("frontend -> backend:8080\n"), None);
    assert!(clean.contains("No warnings."));
}

#[test]
fn the_summary_counts_workloads_doors_and_rules() {
    let html = report(&common::source("frontend -> backend:8080\nhermit isolated\n"), None);
    assert!(html.contains("3 workloads in 1 namespace: 3 of 6 doors guarded, 1 rule, 0 warnings."), "{html}");
    assert!(html.contains("isolated: no flows in or out"), "the hermit is drawn isolated");
}

#[test]
fn with_a_cluster_the_matrix_is_of_the_clusters_pods() {
    let sources = example("examples/seed/allow-frontend.np");
    let text = std::fs::read_to_string(repo("compiler/tests/fixtures/seed-cluster.yaml")).expect("fixture");
    let inventory = Inventory::from_yaml(&text).expect("valid inventory");
    let html = report(&sources, Some(&inventory));
    assert!(html.contains("Evaluated on the cluster <code>cluster.yaml</code>"));
    assert!(html.contains("2 pods: frontend, frontend-canary"));
    // frontend -> backend is allowed on every port; database -> backend is denied.
    assert!(html.contains("title=\"frontend → backend: allowed on any port\""), "frontend to backend");
    assert!(html.contains("title=\"database → backend: denied\""), "database to backend");
    assert_eq!(html, report(&sources, Some(&inventory)), "byte-identical with a cluster too");
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let first = report(&example("examples/shop.np"), None);
    for _ in 0..3 {
        assert_eq!(report(&example("examples/shop.np"), None), first);
    }
}
