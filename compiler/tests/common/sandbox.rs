//! The `netc` binary run as users and CI run it, in a temporary directory of the test's own.
//!
//! To add a case: write the inputs with [`Sandbox::write`], run [`Sandbox::netc`] (or
//! [`Sandbox::netc_with`] for stdin and environment), and assert on the [`Run`]: exit code
//! ([`assert_code`]), stdout, stderr, and what the directory holds afterwards ([`Sandbox::tree`],
//! [`Sandbox::names`], [`Sandbox::entries`]).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What one run of `netc` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Fail with the run's output unless it exited with `code`.
pub fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, code, "exit code; stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

/// A temporary working directory for one test, removed when dropped.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox { dir: tempfile::tempdir().expect("a temporary directory") }
    }

    /// `relative` inside the sandbox.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Write a file, creating its parent directories.
    pub fn write(&self, relative: &str, text: impl AsRef<[u8]>) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, text).expect("write test file");
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).expect("read test file")
    }

    /// Run `netc ARGS` in the sandbox, without colour and without stdin.
    pub fn netc(&self, args: &[&str]) -> Run {
        self.netc_with(args, &[], None)
    }

    /// Run `netc ARGS` with extra environment and optional stdin, without colour.
    pub fn netc_with(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
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

    /// Every file under `relative` (recursively), name -> (content, inode, mtime in ns); a
    /// symbolic link's content is `-> TARGET`.
    pub fn tree(&self, relative: &str) -> BTreeMap<String, (Vec<u8>, u64, i128)> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (Vec<u8>, u64, i128)>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for entry in entries {
                let path = entry.expect("entry").path();
                let meta = std::fs::symlink_metadata(&path).expect("metadata");
                if meta.is_dir() {
                    walk(root, &path, out);
                } else {
                    let name = path.strip_prefix(root).expect("under root").display().to_string();
                    let content = if meta.file_type().is_symlink() {
                        format!("-> {}", std::fs::read_link(&path).expect("link").display()).into_bytes()
                    } else {
                        std::fs::read(&path).expect("read")
                    };
                    let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
                    out.insert(name, (content, meta.ino(), mtime));
                }
            }
        }
        let root = self.path(relative);
        let mut out = BTreeMap::new();
        walk(&root, &root, &mut out);
        out
    }

    /// File names under `relative` (recursively, directories left out), sorted.
    pub fn names(&self, relative: &str) -> Vec<String> {
        self.tree(relative).into_keys().collect()
    }

    /// Every entry of directory `relative` (not recursive, directories and hidden files
    /// included), sorted: what a stray temporary file or lock would show up in.
    pub fn entries(&self, relative: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(relative))
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}
