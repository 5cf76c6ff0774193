//! Every file in `examples/` compiles, one test per file, named after it.
//!
//! Each test compiles the example, checks that it has no errors (and exactly the warnings its
//! comments explain), that it is in `netc fmt` layout, that the generated YAML parses back into
//! k8s-openapi `NetworkPolicy` objects equal to the ones netc made, and snapshots the source, the
//! diagnostics and the YAML together in `snapshots/example_<name>.snap`.
//!
//! To add an example: write `examples/NAME.np`, add a test `fn NAME()` here (path separators and
//! hyphens become `_`, so `examples/seed/allow-frontend.np` is `seed_allow_frontend`; the test
//! `every_example_has_a_test` fails until it exists), run `cargo test -p netc --test examples`,
//! and review the new snapshot before accepting it.

mod common;

use std::path::{Path, PathBuf};

use netc::{SourceFile, codegen, yaml};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Compile `examples/<relative>` and check it; returns the snapshot text.
fn example(relative: &str, expected_warnings: &[&str]) -> String {
    let path = examples_dir().join(relative);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    // Named as `netc build examples/...` run from the repository root names it.
    let sources = vec![SourceFile::new(format!("examples/{relative}"), text.clone())];
    let out = netc::compile(&sources);
    let rendered = netc::diagnostics::render(&out.diagnostics, &sources, false);
    assert!(!out.has_errors(), "{relative} has errors:\n{rendered}");
    let mut warnings = common::codes(&out);
    warnings.sort_unstable();
    assert_eq!(
        warnings, expected_warnings,
        "{relative}: only the warnings its comments explain:\n{rendered}"
    );

    let formatted = netc::fmt::format(&text).expect("it parses, so it formats");
    assert_eq!(formatted, text, "{relative} is not in `netc fmt` layout");

    let ir = out.ir.as_ref().expect("no errors, so there is IR");
    let objects = codegen::network_policies(ir);
    assert!(!objects.is_empty(), "{relative} produces NetworkPolicy objects");
    let stream = yaml::render_stream(&objects, &ir.sources);
    let parsed = yaml::parse_network_policies(&stream)
        .unwrap_or_else(|e| panic!("{relative}: the YAML does not parse back into NetworkPolicy: {e}"));
    assert_eq!(parsed, objects, "{relative}: the YAML parses back into the same objects");
    for object in &objects {
        let one = yaml::render_policy(object, &ir.sources);
        assert_eq!(yaml::parse_network_policies(&one).expect("one file"), vec![object.clone()]);
    }

    let mut snapshot = common::source_and_diagnostics(&sources, &out);
    snapshot.push_str("--- networkpolicy\n");
    snapshot.push_str(&stream);
    snapshot
}

fn snapshot(name: &str, text: &str) {
    common::snapshot_settings().bind(|| insta::assert_snapshot!(format!("example_{name}"), text));
}

#[test]
fn seed_allow_frontend() {
    snapshot("seed_allow_frontend", &example("seed/allow-frontend.np", &[]));
}

#[test]
fn seed_restrict_egress() {
    // W0203 is intended: the file stays equivalent to the article (see its comments).
    snapshot("seed_restrict_egress", &example("seed/restrict-egress.np", &[]));
}

#[test]
fn seed_complete_isolation() {
    snapshot("seed_complete_isolation", &example("seed/complete-isolation.np", &[]));
}

#[test]
fn seed_allow_monitoring() {
    snapshot("seed_allow_monitoring", &example("seed/allow-monitoring.np", &[]));
}

#[test]
fn shop() {
    snapshot("shop", &example("shop.np", &[]));
}

/// Every `.np` file under `dir`, relative to `root`, sorted.
fn np_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            np_files(root, &path, out);
        } else if path.extension().is_some_and(|x| x == "np") {
            let relative = path.strip_prefix(root).expect("under the root");
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    out.sort();
}

#[test]
fn every_example_has_a_test() {
    let root = examples_dir();
    let mut files = Vec::new();
    np_files(&root, &root, &mut files);
    assert!(files.len() >= 5, "the seed examples and the shop at least: {files:?}");
    let this_file = include_str!("examples.rs");
    let missing: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let test = f.trim_end_matches(".np").replace(['/', '-', '.'], "_");
            let has_test = this_file.contains(&format!("fn {test}()"))
                && this_file.contains(&format!("example(\"{f}\""));
            (!has_test).then(|| format!("examples/{f} needs `fn {test}()` calling example(\"{f}\", ...)"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "examples without a test in compiler/tests/examples.rs:\n{}",
        missing.join("\n")
    );
}
