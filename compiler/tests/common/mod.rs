//! Helpers shared by the compiler's integration tests (`mod common;` in each test file).
//!
//! Each test binary uses a different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod sandbox;

use std::path::PathBuf;

use netc::{Compilation, SourceFile};

/// The name every single-file test source is given, as `netc check policies.np` would.
pub const FILE_NAME: &str = "policies.np";

/// The repository's `snapshots/` directory, where every insta snapshot lives.
pub fn snapshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../snapshots");
    // Canonical, so that insta records `/…/snapshots/x.snap` rather than `compiler/../snapshots`.
    dir.canonicalize().unwrap_or(dir)
}

/// insta settings for this repository: snapshots in `snapshots/`, named after the test alone.
pub fn snapshot_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(snapshot_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings
}

/// One source file named [`FILE_NAME`].
pub fn source(text: &str) -> Vec<SourceFile> {
    vec![SourceFile::new(FILE_NAME, text)]
}

/// Compile one file named [`FILE_NAME`].
pub fn compile(text: &str) -> (Vec<SourceFile>, Compilation) {
    let sources = source(text);
    let out = netc::compile(&sources);
    (sources, out)
}

/// The codes of a compilation's diagnostics, in the order reported.
pub fn codes(out: &Compilation) -> Vec<&'static str> {
    out.diagnostics.iter().map(|d| d.code).collect()
}

/// Sources and the diagnostics as netc prints them (no colour), in one text for a snapshot.
pub fn source_and_diagnostics(sources: &[SourceFile], out: &Compilation) -> String {
    let mut text = String::new();
    for s in sources {
        let header =
            if sources.len() == 1 { "--- source".to_owned() } else { format!("--- source {}", s.name) };
        text.push_str(&header);
        text.push('\n');
        text.push_str(&s.text);
        if !s.text.ends_with('\n') {
            text.push('\n');
        }
    }
    text.push_str("--- diagnostics\n");
    text.push_str(&netc::diagnostics::render(&out.diagnostics, sources, false));
    text
}
