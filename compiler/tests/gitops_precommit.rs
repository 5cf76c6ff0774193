//! The repository's `.pre-commit-hooks.yaml`, run by the real `pre-commit` (PyPI; installed by
//! `.ci/install-deps`) on a scratch git repository laid out as docs/gitops.md says: a clean
//! repository passes, a stale output directory fails `netc-build-check`, a badly formatted file
//! fails `netc-fmt`, a warning fails `netc-check`. The hooks are taken from a local clone of the
//! hooks file (a git repository holding this checkout's `.pre-commit-hooks.yaml`), which is what
//! `repo: <netc's URL>` gives users without the network. Skips (with the reason) where
//! `pre-commit` or `git` is missing.
//!
//! To add a case: change the scratch repository, `commit_all`, and assert on `run_hooks`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn found(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=netc test",
            "-c",
            "user.email=test@netc.invalid",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

struct Scratch {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    cache: PathBuf,
}

fn netc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netc")).parent().expect("a directory").to_path_buf()
}

fn path_with_netc() -> String {
    format!("{}:{}", netc_dir().display(), std::env::var("PATH").unwrap_or_default())
}

const SHOP: &str = "namespace shop {\n  ## The storefront calls the API.\n  web -> api:8080\n}\n";

/// A hooks repository (this checkout's hooks file) and a user repository with `policies/shop.np`,
/// its generated `deploy/netpol`, and a `.pre-commit-config.yaml` using the three hooks.
fn scratch() -> Scratch {
    let dir = tempfile::tempdir().expect("scratch directory");
    let hooks = dir.path().join("netc-hooks");
    std::fs::create_dir(&hooks).expect("mkdir");
    let hooks_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.pre-commit-hooks.yaml");
    std::fs::copy(hooks_file, hooks.join(".pre-commit-hooks.yaml")).expect("copy the hooks file");
    git(&hooks, &["init", "-q"]);
    git(&hooks, &["add", "-A"]);
    git(&hooks, &["commit", "-qm", "hooks"]);
    let rev = String::from_utf8(git(&hooks, &["rev-parse", "HEAD"]).stdout).expect("utf-8");

    let repo = dir.path().join("cluster-config");
    std::fs::create_dir_all(repo.join("policies")).expect("mkdir");
    std::fs::write(repo.join("policies/shop.np"), SHOP).expect("write");
    let built = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["build", "-o", "deploy/netpol", "policies/shop.np"])
        .current_dir(&repo)
        .output()
        .expect("netc runs");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let config = format!(
        "repos:\n  - repo: {}\n    rev: {}\n    hooks:\n      - id: netc-fmt\n      - id: netc-check\n        args: [policies]\n      - id: netc-build-check\n        args: [policies, deploy/netpol]\n",
        hooks.display(),
        rev.trim()
    );
    std::fs::write(repo.join(".pre-commit-config.yaml"), config).expect("write");
    git(&repo, &["init", "-q"]);
    commit_all(&repo);
    let cache = dir.path().join("pre-commit-cache");
    Scratch { _dir: dir, repo, cache }
}

fn commit_all(repo: &Path) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-qm", "change", "--allow-empty"]);
}

/// `pre-commit run --all-files`: whether it passed, and what it printed.
fn run_hooks(s: &Scratch) -> (bool, String) {
    let out = Command::new("pre-commit")
        .args(["run", "--all-files", "--color", "never"])
        .current_dir(&s.repo)
        .env("PATH", path_with_netc())
        .env("PRE_COMMIT_HOME", &s.cache)
        .output()
        .expect("pre-commit runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn hook_line<'a>(output: &'a str, name: &str) -> &'a str {
    output.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no line for {name} in:\n{output}"))
}

fn tools_missing() -> bool {
    for tool in ["pre-commit", "git"] {
        if !found(tool) {
            eprintln!("skipped: `{tool}` is not installed (.ci/install-deps installs it)");
            return true;
        }
    }
    false
}

#[test]
fn pre_commit_passes_a_clean_repository() {
    if tools_missing() {
        return;
    }
    let s = scratch();
    let (ok, out) = run_hooks(&s);
    assert!(ok, "{out}");
    for hook in ["netc fmt --check", "netc check", "netc build --check"] {
        assert!(hook_line(&out, hook).ends_with("Passed"), "{hook}: {out}");
    }
}

#[test]
fn pre_commit_fails_a_stale_output_directory_with_the_diff() {
    if tools_missing() {
        return;
    }
    let s = scratch();
    std::fs::write(
        s.repo.join("policies/shop.np"),
        format!("{SHOP}namespace data {{\n  shop/api -> db:5432\n}}\n"),
    )
    .expect("write");
    commit_all(&s.repo);
    let (ok, out) = run_hooks(&s);
    assert!(!ok, "{out}");
    assert!(hook_line(&out, "netc build --check").ends_with("Failed"), "{out}");
    assert!(hook_line(&out, "netc fmt --check").ends_with("Passed"), "{out}");
    assert!(out.contains("+++ b/deploy/netpol/data.db.yaml"), "{out}");
    assert!(out.contains("deploy/netpol is out of date"), "{out}");
    // Rebuilding and committing makes it pass again.
    let built = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["build", "-o", "deploy/netpol", "policies/shop.np"])
        .current_dir(&s.repo)
        .output()
        .expect("netc runs");
    assert!(built.status.success());
    commit_all(&s.repo);
    let (ok, out) = run_hooks(&s);
    assert!(ok, "{out}");
}

#[test]
fn pre_commit_fails_a_badly_formatted_file_and_a_warning() {
    if tools_missing() {
        return;
    }
    let s = scratch();
    // The same statements on the same lines (so the YAML stays current), laid out badly.
    std::fs::write(
        s.repo.join("policies/shop.np"),
        "namespace   shop{\n  ## The storefront calls the API.\n    web->api:8080\n}\n",
    )
    .expect("write");
    commit_all(&s.repo);
    let (ok, out) = run_hooks(&s);
    assert!(!ok, "{out}");
    assert!(hook_line(&out, "netc fmt --check").ends_with("Failed"), "{out}");
    assert!(out.contains("+  web -> api:8080"), "the diff shows the fix: {out}");
    assert!(hook_line(&out, "netc build --check").ends_with("Passed"), "{out}");

    // A warning (W0201: an arrow that changes nothing) fails netc-check.
    std::fs::write(s.repo.join("policies/shop.np"), format!("{SHOP}web -> 203.0.113.0/24:443\n"))
        .expect("write");
    commit_all(&s.repo);
    let (ok, out) = run_hooks(&s);
    assert!(!ok, "{out}");
    assert!(hook_line(&out, "netc check").ends_with("Failed"), "{out}");
    assert!(out.contains("W0201"), "{out}");
}
