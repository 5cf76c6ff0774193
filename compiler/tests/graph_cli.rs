//! `netc graph` and `netc report` as users and CI run them: exit codes, stdout, `-o` (written
//! atomically, whole), `--cluster`, and nothing written when the input has errors.
//!
//! Every test runs `netc` in its own temporary directory. To add a case: write the files with
//! `write`, run `netc(dir, args)` and assert on the exit code, stdout, stderr and files.

use std::path::Path;
use std::process::Command;

const GOOD: &str = "frontend -> backend:8080\nhermit isolated\n";
const BAD: &str = "frontend -> backend:70000\n";
const WARNS: &str = "api egress guarded\napi -> db:5432\n";
const CLUSTER: &str = "\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: default}}
- {apiVersion: v1, kind: Pod, metadata: {name: frontend-1, namespace: default, labels: {app: frontend}}, status: {podIP: 10.0.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: backend-1, namespace: default, labels: {app: backend}}, status: {podIP: 10.0.0.2}}
- {apiVersion: v1, kind: Pod, metadata: {name: other-1, namespace: default, labels: {app: other}}, status: {podIP: 10.0.0.3}}
";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn netc(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("netc runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write a test file");
}

#[test]
fn graph_prints_dot_by_default_and_mermaid_on_request() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write(dir.path(), "p.np", GOOD);
    let dot = netc(dir.path(), &["graph", "p.np"]);
    assert_eq!(dot.code, 0, "{}", dot.stderr);
    assert!(dot.stdout.starts_with("// netc graph") && dot.stdout.contains("digraph netc {"));
    assert!(dot.stdout.contains("\"default/frontend\" -> \"default/backend\" [label=\"8080\"];"));
    assert!(dot.stderr.is_empty());
    let mermaid = netc(dir.path(), &["graph", "--format", "mermaid", "p.np"]);
    assert_eq!(mermaid.code, 0);
    assert!(mermaid.stdout.contains("flowchart LR") && mermaid.stdout.contains("-->|\"8080\"|"));
    assert_eq!(netc(dir.path(), &["graph", "p.np"]).stdout, dot.stdout, "the same bytes every run");
}

#[test]
fn graph_writes_a_file_with_dash_o_and_draws_a_cluster() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write(dir.path(), "p.np", GOOD);
    write(dir.path(), "cluster.yaml", CLUSTER);
    let run = netc(dir.path(), &["graph", "--cluster", "cluster.yaml", "p.np", "-o", "g.dot"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let dot = std::fs::read_to_string(dir.path().join("g.dot")).expect("g.dot written");
    assert!(dot.contains("\"default/frontend\" -> \"default/backend\" [label=\"8080\"];"), "{dot}");
    assert!(!dot.contains("\"default/other\" -> \"default/backend\""), "other may not reach backend");
    assert!(dot.contains("pod backend-1"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".netc-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left behind");
}

#[test]
fn errors_fail_with_exit_1_and_write_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write(dir.path(), "bad.np", BAD);
    let graph = netc(dir.path(), &["graph", "bad.np", "-o", "g.dot"]);
    assert_eq!(graph.code, 1);
    assert!(graph.stderr.contains("error[E0102]"), "{}", graph.stderr);
    assert!(!dir.path().join("g.dot").exists());
    let report = netc(dir.path(), &["report", "bad.np", "-o", "r.html"]);
    assert_eq!(report.code, 1);
    assert!(report.stderr.contains("error[E0102]"));
    assert!(!dir.path().join("r.html").exists());
}

#[test]
fn a_bad_cluster_is_an_input_error_naming_the_object() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write(dir.path(), "p.np", GOOD);
    write(dir.path(), "cluster.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {namespace: default}\n");
    let run = netc(dir.path(), &["graph", "--cluster", "cluster.yaml", "p.np"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: cluster.yaml: "), "{}", run.stderr);
    let missing = netc(dir.path(), &["report", "--cluster", "nowhere.yaml", "p.np", "-o", "r.html"]);
    assert_eq!(missing.code, 2, "an unreadable file is an IO error");
    assert!(missing.stderr.contains("nowhere.yaml"));
    assert!(!dir.path().join("r.html").exists());
}

#[test]
fn report_writes_the_page_and_shows_warnings_on_stderr_too() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write(dir.path(), "p.np", WARNS);
    let run = netc(dir.path(), &["report", "p.np", "-o", "report.html"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("warning[W0203]") && run.stderr.contains("wrote report.html"));
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report written");
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("warning W0203"));
    let denied = netc(dir.path(), &["report", "p.np", "-o", "strict.html", "--deny-warnings"]);
    assert_eq!(denied.code, 1);
    assert!(!dir.path().join("strict.html").exists());
    let usage = netc(dir.path(), &["report", "p.np"]);
    assert_eq!(usage.code, 2, "-o is required");
    assert!(usage.stderr.contains("--output"));
}
