//! Hostile and careless input to the `netc` binary (issue 8): bounded reads, files that are not
//! what they seem, names that try to become code or YAML, and output directories in odd states.
//! Each test was written against a reproducer that misbehaved before the fix.
//!
//! Every test works in its own temporary directory. To add a case: write the inputs with
//! [`Sandbox::write`], run [`Sandbox::netc`] (or [`Sandbox::netc_with`] for stdin and environment),
//! and assert on the [`Run`]: exit code, stdout, stderr, and what the directory holds afterwards.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What one run of `netc` did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A temporary working directory for one test.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn write(&self, relative: &str, text: impl AsRef<[u8]>) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, text).expect("write test file");
    }

    fn netc(&self, args: &[&str]) -> Run {
        self.netc_with(args, &[], None)
    }

    /// Run `netc ARGS` with extra environment and optional stdin, without colour.
    fn netc_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_netc"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("NETC_MAX_INPUT_BYTES")
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("netc runs");
        if let Some(bytes) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin piped");
            // netc may stop reading early (that is the point of some tests): a broken pipe is fine.
            let _ = pipe.write_all(bytes);
        }
        let out = child.wait_with_output().expect("netc finishes");
        Run {
            code: out.status.code().expect("netc exits, it is not killed by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }
}

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, code, "exit code; stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

const GOOD: &str = "frontend -> backend:8080\nhermit isolated\n";

// ---------- input bounds (item 11) ----------

#[test]
fn a_source_larger_than_the_bound_is_e0002_before_it_is_read() {
    let s = Sandbox::new();
    s.write("big.np", GOOD.repeat(100));
    let run = s.netc_with(&["check", "big.np"], &[("NETC_MAX_INPUT_BYTES", "1000")], None);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0002]: file too large (4100 bytes)"), "{}", run.stderr);
    assert!(run.stderr.contains("netc reads files up to 1000 bytes"), "{}", run.stderr);
    let run = s.netc(&["check", "big.np"]);
    assert_code(&run, 0);
}

#[test]
fn a_stream_is_read_no_further_than_the_bound() {
    let s = Sandbox::new();
    let text = GOOD.repeat(1000);
    let env = [("NETC_MAX_INPUT_BYTES", "1000")];
    let run = s.netc_with(&["check", "/dev/stdin"], &env, Some(text.as_bytes()));
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0002]: file too large (more than 1000 bytes)"), "{}", run.stderr);
    let run = s.netc_with(&["import", "-"], &env, Some("# padding\n".repeat(1000).as_bytes()));
    assert_code(&run, 1);
    assert!(run.stderr.contains("error: <stdin>: input too large (more than 1000 bytes"), "{}", run.stderr);
}

#[test]
fn dev_zero_as_a_source_stops_at_the_bound() {
    let s = Sandbox::new();
    let run = s.netc_with(&["check", "/dev/zero"], &[("NETC_MAX_INPUT_BYTES", "65536")], None);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0002]"), "{}", run.stderr);
}

#[test]
fn an_oversized_cluster_file_is_refused_before_parsing() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    s.write("cluster.yaml", "# padding\n".repeat(200));
    let env = [("NETC_MAX_INPUT_BYTES", "1000")];
    let run = s.netc_with(&["graph", "policies.np", "--cluster", "cluster.yaml"], &env, None);
    assert_code(&run, 1);
    assert!(run.stderr.contains("cluster.yaml: file too large (2000 bytes"), "{}", run.stderr);
}

// ---------- non-UTF-8 and byte-order marks (smaller points) ----------

#[test]
fn a_source_that_is_not_utf8_is_e0003_located_in_the_chosen_format() {
    let s = Sandbox::new();
    s.write("latin1.np", b"frontend -> backend:8080\n# caf\xe9\nhermit isolated\n");
    let run = s.netc(&["check", "latin1.np"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0003]: file is not UTF-8"), "{}", run.stderr);
    assert!(run.stderr.contains("latin1.np:2:6"), "{}", run.stderr);
    assert!(run.stderr.contains("byte 0xe9 is not valid UTF-8 here"), "{}", run.stderr);
    let run = s.netc(&["check", "--message-format", "json", "latin1.np"]);
    assert_code(&run, 1);
    let line: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
    assert_eq!(line["code"], "E0003");
    assert_eq!((line["line"].as_u64(), line["column"].as_u64()), (Some(2), Some(6)), "{line}");
}

#[test]
fn yaml_that_is_not_utf8_names_the_file_line_and_column() {
    let s = Sandbox::new();
    s.write("np.yaml", b"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: caf\xe9}\n");
    let run = s.netc(&["import", "np.yaml"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error: np.yaml: 3:21: not UTF-8 (byte 0xe9"), "{}", run.stderr);
}

#[test]
fn a_byte_order_mark_before_a_source_is_not_part_of_the_program() {
    let s = Sandbox::new();
    s.write("bom.np", format!("\u{feff}{GOOD}"));
    let run = s.netc(&["build", "bom.np"]);
    assert_code(&run, 0);
    assert!(run.stdout.contains("name: hermit"), "{}", run.stdout);
    // Spans still count from the start of the file: the error is on the port, not before it.
    s.write("bad.np", "\u{feff}frontend -> backend:70000\n");
    let run = s.netc(&["check", "bad.np"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0102]"), "{}", run.stderr);
    assert!(run.stderr.contains("^^^^^ ports are 1 to 65535"), "{}", run.stderr);
}

// ---------- directories read by `netc diff` (item 4) ----------

#[test]
fn diff_of_a_directory_refuses_a_link_that_leads_outside_it() {
    let s = Sandbox::new();
    s.write("old/a.np", GOOD);
    s.write("new/a.np", GOOD);
    std::os::unix::fs::symlink("/proc/self/environ", s.path("new/z.np")).expect("symlink");
    let run = s.netc_with(&["diff", "old", "new"], &[("NETC_TEST_SECRET", "hunter2-secret")], None);
    assert_code(&run, 2);
    assert!(
        !run.stderr.contains("hunter2-secret") && !run.stdout.contains("hunter2-secret"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("z.np is a symbolic link that leads outside new"), "{}", run.stderr);
}

#[test]
fn diff_of_a_directory_reads_a_link_inside_it_once() {
    let s = Sandbox::new();
    s.write("old/a.np", GOOD);
    s.write("new/real/a.np", GOOD);
    std::os::unix::fs::symlink("real/a.np", s.path("new/b.np")).expect("symlink");
    let run = s.netc(&["diff", "old", "new"]);
    // Read twice, `hermit isolated` would be declared twice (an error); read once, nothing changed.
    assert_code(&run, 0);
}

#[test]
fn diff_of_a_directory_refuses_a_fifo_instead_of_hanging() {
    let s = Sandbox::new();
    s.write("old/a.np", GOOD);
    s.write("new/a.np", GOOD);
    let fifo = s.path("new/z.np");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let run = s.netc(&["diff", "old", "new"]);
    assert_code(&run, 2);
    assert!(run.stderr.contains("z.np is not a regular file"), "{}", run.stderr);
}

#[test]
fn diff_never_passes_a_revision_to_git_as_an_option() {
    let s = Sandbox::new();
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(s.path(""))
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .expect("git runs");
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    };
    git(&["init", "-q"]);
    s.write("a.np", GOOD);
    git(&["add", "a.np"]);
    git(&["commit", "-qm", "a"]);
    // `git show --output=FILE` would write FILE: as an object name it is just an unknown revision.
    let run = s.netc(&["diff", "--", "--output=pwned:a.np", "a.np"]);
    assert_code(&run, 2);
    assert!(!run.stderr.contains("unknown option"), "git took the revision for an option: {}", run.stderr);
    assert!(run.stderr.contains("--output=pwned:a.np"), "{}", run.stderr);
    assert!(
        !s.path("pwned").exists() && !s.path("pwned:a.np").exists(),
        "git took the revision for an option"
    );
}
