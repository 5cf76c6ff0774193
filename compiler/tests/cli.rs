//! The `netc` binary as users and CI run it: exit codes, what goes to stdout and stderr, the
//! output directory's rules (atomic, deterministic, never touching files netc did not generate,
//! deleting what intent no longer asks for), `--check`, `--emit ir`, `fmt`, `explain`,
//! completions and help.
//!
//! Every test works in its own temporary directory and runs `netc` there, so paths in messages
//! are short and stable. To add a case: write the sources with [`Sandbox::write`], run
//! [`Sandbox::netc`], and assert on the [`Run`].

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::networking::v1::NetworkPolicySpec;
use netc::yaml::parse_network_policies;

/// Two workloads: backend (ingress guarded by the arrow) and hermit (both doors).
const GOOD: &str = "frontend -> backend:8080\nhermit isolated\n";
/// Only backend's policy is left: hermit's intent was removed.
const GOOD_WITHOUT_HERMIT: &str = "frontend -> backend:8080\n";
/// E0102 (port out of range) and E0202 (host bits set).
const BAD: &str = "frontend -> backend:70000\nweb -> 10.1.2.3/8:443\n";
/// W0203: guarded egress without DNS, and nothing else wrong.
const WARNS: &str = "api egress guarded\negress api -> db:5432\n";
/// Compiles like GOOD, but not in `netc fmt` layout.
const UNFORMATTED: &str = "frontend->backend:8080\n\n\n\nhermit   isolated   # a monk\n";

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

    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, text).expect("write test file");
    }

    fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).expect("read test file")
    }

    /// Run `netc ARGS` in the sandbox, without colour.
    fn netc(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            .output()
            .expect("netc runs");
        Run {
            code: out.status.code().expect("netc exits, it is not killed by a signal"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// Every file under `relative` (recursively), name -> (content, inode, mtime in ns).
    fn tree(&self, relative: &str) -> BTreeMap<String, (Vec<u8>, u64, i128)> {
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

    /// File names under `relative`, sorted.
    fn names(&self, relative: &str) -> Vec<String> {
        self.tree(relative).into_keys().collect()
    }
}

fn assert_code(run: &Run, code: i32) {
    assert_eq!(run.code, code, "exit code; stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

// ---------- exit codes ----------

#[test]
fn exit_code_0_for_a_good_file_with_nothing_on_stderr() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    let run = s.netc(&["build", "policies.np"]);
    assert_code(&run, 0);
    assert_eq!(run.stderr, "");
    let run = s.netc(&["check", "policies.np"]);
    assert_code(&run, 0);
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
}

#[test]
fn exit_code_1_for_errors_in_the_input_all_reported_and_nothing_built() {
    let s = Sandbox::new();
    s.write("policies.np", BAD);
    for command in ["build", "check"] {
        let run = s.netc(&[command, "policies.np"]);
        assert_code(&run, 1);
        assert_eq!(run.stdout, "", "{command}: no YAML for a program with errors");
        assert!(run.stderr.contains("error[E0102]"), "{}", run.stderr);
        assert!(run.stderr.contains("error[E0202]"), "{}", run.stderr);
        assert!(run.stderr.contains("┌─ policies.np:2:8"), "{}", run.stderr);
        assert!(run.stderr.contains("netc stopped: 2 errors"), "{}", run.stderr);
        assert!(!run.stderr.contains('\u{1b}'), "no colour with NO_COLOR");
    }
    // Nothing written to an output directory either.
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 1);
    assert!(!s.path("out").exists(), "no directory made for a program with errors");
}

#[test]
fn exit_code_1_for_a_syntax_error() {
    let s = Sandbox::new();
    s.write("policies.np", "frontend -> \n");
    let run = s.netc(&["check", "policies.np"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0001]"), "{}", run.stderr);
}

#[test]
fn exit_code_2_for_a_missing_file_naming_it() {
    let s = Sandbox::new();
    for command in ["build", "check", "fmt"] {
        let run = s.netc(&[command, "nope.np"]);
        assert_code(&run, 2);
        assert!(run.stderr.contains("cannot read nope.np"), "{command}: {}", run.stderr);
        assert_eq!(run.stdout, "");
    }
}

#[test]
fn exit_code_2_for_usage_errors() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    for args in [
        &[][..],
        &["frobnicate"],
        &["build"],
        &["build", "--no-such-flag", "policies.np"],
        &["build", "--check", "policies.np"], // --check needs -o
        &["build", "--emit", "xml", "policies.np"],
        &["completions", "cmd.exe"],
    ] {
        let run = s.netc(args);
        assert_code(&run, 2);
        assert_eq!(run.stdout, "", "{args:?}");
        assert!(run.stderr.contains("Usage") || run.stderr.contains("--help"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn exit_code_2_when_the_output_directory_cannot_be_made() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    s.write("taken", "a file where the directory should go\n");
    let run = s.netc(&["build", "policies.np", "-o", "taken"]);
    assert_code(&run, 2);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert_eq!(s.read("taken"), "a file where the directory should go\n");
}

// ---------- build to stdout ----------

#[test]
fn build_writes_one_yaml_stream_to_stdout() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    let run = s.netc(&["build", "policies.np"]);
    assert_code(&run, 0);
    assert!(run.stdout.starts_with("# Generated by netc from policies.np."), "{}", run.stdout);
    let objects = parse_network_policies(&run.stdout).expect("the stream parses as NetworkPolicy objects");
    let names: Vec<_> = objects.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
    assert_eq!(names, ["backend", "hermit"]);
    assert_eq!(run.stdout.lines().filter(|l| *l == "---").count(), 2, "one document per object");
    // Deterministic: the same bytes on every run.
    assert_eq!(s.netc(&["build", "policies.np"]).stdout, run.stdout);
}

#[test]
fn build_compiles_several_files_together_in_order() {
    let s = Sandbox::new();
    s.write("a.np", "workload api = {app=api, tier=backend}\n");
    s.write("b.np", "web -> api:443\n");
    let run = s.netc(&["build", "a.np", "b.np"]);
    assert_code(&run, 0);
    assert!(run.stdout.starts_with("# Generated by netc from a.np, b.np."), "{}", run.stdout);
    assert!(run.stdout.contains("tier: backend"), "b.np sees a.np's declaration:\n{}", run.stdout);
}

// ---------- build -o DIR ----------

#[test]
fn build_into_a_directory_writes_one_file_per_policy_and_a_kustomization() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    let run = s.netc(&["build", "policies.np", "-o", "deploy/netpol"]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, "", "nothing on stdout when writing a directory");
    assert_eq!(
        s.names("deploy/netpol"),
        ["default.backend.yaml", "default.hermit.yaml", "kustomization.yaml"]
    );
    let backend = s.read("deploy/netpol/default.backend.yaml");
    assert!(backend.starts_with("# Generated by netc from policies.np."), "{backend}");
    let objects = parse_network_policies(&backend).expect("parses");
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].metadata.name.as_deref(), Some("backend"));
    let kustomization = s.read("deploy/netpol/kustomization.yaml");
    assert!(
        kustomization.ends_with("resources:\n- default.backend.yaml\n- default.hermit.yaml\n"),
        "{kustomization}"
    );
    // The files hold exactly what the stream holds.
    let stream = parse_network_policies(&s.netc(&["build", "policies.np"]).stdout).expect("stream");
    let hermit = parse_network_policies(&s.read("deploy/netpol/default.hermit.yaml")).expect("parses");
    assert_eq!(stream, [objects, hermit].concat());
}

#[test]
fn building_again_changes_no_byte_and_rewrites_no_file() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    assert_code(&s.netc(&["build", "policies.np", "-o", "out"]), 0);
    let before = s.tree("out");
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 0);
    let after = s.tree("out");
    // Same bytes, same inodes and mtimes: unchanged files are not even rewritten.
    assert_eq!(before, after);
    assert!(run.stderr.contains("0 written"), "{}", run.stderr);
}

#[test]
fn files_netc_did_not_generate_are_kept_and_never_overwritten() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    // Someone's own files in the output directory, one of them where netc wants to write.
    s.write("out/default.backend.yaml", "# hand-written, keep\nkind: NetworkPolicy\n");
    s.write("out/notes.yaml", "# mine\n");
    s.write("out/README.md", "not YAML at all\n");
    let before = s.tree("out");
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 2);
    assert!(
        run.stderr.contains("default.backend.yaml exists and was not generated by netc"),
        "{}",
        run.stderr
    );
    // Nothing at all was written: not the colliding file, not the others.
    assert_eq!(s.tree("out"), before);

    // Without the collision, netc writes its files and leaves the others alone.
    std::fs::remove_file(s.path("out/default.backend.yaml")).expect("remove");
    let before = s.tree("out");
    assert_code(&s.netc(&["build", "policies.np", "-o", "out"]), 0);
    let after = s.tree("out");
    for name in ["notes.yaml", "README.md"] {
        assert_eq!(after.get(name), before.get(name), "{name} untouched");
    }
    assert!(after.contains_key("default.backend.yaml"));
}

#[test]
fn a_hand_written_kustomization_is_never_overwritten() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    s.write("out/kustomization.yaml", "resources: [mine.yaml]\n");
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 2);
    assert_eq!(s.names("out"), ["kustomization.yaml"]);
    assert_eq!(s.read("out/kustomization.yaml"), "resources: [mine.yaml]\n");
}

#[test]
fn a_symlink_where_netc_would_write_is_not_replaced() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    s.write("mine.yaml", "# my own policy, kept elsewhere\n");
    std::fs::create_dir(s.path("out")).expect("mkdir");
    std::os::unix::fs::symlink("../mine.yaml", s.path("out/default.backend.yaml")).expect("symlink");
    let before = s.tree("out");
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 2);
    assert!(run.stderr.contains("default.backend.yaml"), "{}", run.stderr);
    assert_eq!(s.tree("out"), before, "the link is still there and nothing was written");
    assert_eq!(s.read("mine.yaml"), "# my own policy, kept elsewhere\n");
}

#[test]
fn generated_files_of_removed_intent_are_deleted() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    s.write("out/notes.yaml", "# mine\n");
    assert_code(&s.netc(&["build", "policies.np", "-o", "out"]), 0);
    assert!(s.path("out/default.hermit.yaml").exists());
    s.write("policies.np", GOOD_WITHOUT_HERMIT);
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 0);
    assert!(run.stderr.contains("1 removed"), "{}", run.stderr);
    assert_eq!(s.names("out"), ["default.backend.yaml", "kustomization.yaml", "notes.yaml"]);
    assert!(!s.read("out/kustomization.yaml").contains("hermit"));
    assert_eq!(s.read("out/notes.yaml"), "# mine\n");
}

// ---------- build --check ----------

#[test]
fn check_mode_passes_on_a_fresh_directory_and_writes_nothing() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    assert_code(&s.netc(&["build", "policies.np", "-o", "out"]), 0);
    let before = s.tree("out");
    let run = s.netc(&["build", "--check", "-o", "out", "policies.np"]);
    assert_code(&run, 0);
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains("up to date"), "{}", run.stderr);
    assert_eq!(s.tree("out"), before);
}

#[test]
fn check_mode_fails_with_a_readable_diff_when_stale_and_writes_nothing() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    assert_code(&s.netc(&["build", "policies.np", "-o", "out"]), 0);
    // The intent changes (a port, and hermit removed) but nobody regenerated the YAML.
    s.write("policies.np", "frontend -> backend:9090\n");
    let before = s.tree("out");
    let run = s.netc(&["build", "--check", "-o", "out", "policies.np"]);
    assert_code(&run, 1);
    assert_eq!(s.tree("out"), before, "--check writes nothing");
    let diff = &run.stdout;
    assert!(diff.contains("--- a/out/default.backend.yaml\n+++ b/out/default.backend.yaml\n"), "{diff}");
    assert!(diff.contains("\n-      port: 8080\n") && diff.contains("\n+      port: 9090\n"), "{diff}");
    // The file to be deleted shows as all removed lines.
    assert!(diff.contains("--- a/out/default.hermit.yaml\n+++ b/out/default.hermit.yaml\n"), "{diff}");
    assert!(diff.contains("\n-  name: hermit\n"), "{diff}");
    assert!(run.stderr.contains("out of date") && run.stderr.contains("netc build -o out"), "{}", run.stderr);
}

#[test]
fn check_mode_on_a_missing_directory_fails_and_creates_nothing() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    let run = s.netc(&["build", "--check", "-o", "out", "policies.np"]);
    assert_code(&run, 1);
    assert!(run.stdout.contains("+++ b/out/default.backend.yaml"), "{}", run.stdout);
    assert!(!s.path("out").exists());
}

// ---------- --emit ir ----------

#[test]
fn emit_ir_writes_json_that_the_ir_crate_reads() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    let run = s.netc(&["build", "--emit", "ir", "policies.np"]);
    assert_code(&run, 0);
    let ir = netc_ir::Ir::from_json(&run.stdout).expect("valid, versioned IR");
    assert_eq!(ir.version, netc_ir::IR_VERSION);
    assert_eq!(ir.sources, ["policies.np"]);
    let backend = ir.policies.iter().find(|p| p.name == "backend").expect("backend's policy");
    let rule = &backend.ingress.rules[0];
    assert!(rule.id.starts_with('r') && rule.id.len() == 13, "stable rule id: {}", rule.id);
    assert_eq!((rule.span.file.as_str(), rule.span.line, rule.span.column), ("policies.np", 1, 1));

    // To a file, atomically; --check compares it.
    assert_code(&s.netc(&["build", "--emit", "ir", "-o", "ir.json", "policies.np"]), 0);
    assert_eq!(s.read("ir.json"), run.stdout);
    assert_code(&s.netc(&["build", "--emit", "ir", "--check", "-o", "ir.json", "policies.np"]), 0);
    s.write("policies.np", GOOD_WITHOUT_HERMIT);
    let stale = s.netc(&["build", "--emit", "ir", "--check", "-o", "ir.json", "policies.np"]);
    assert_code(&stale, 1);
    assert!(stale.stdout.contains("-      \"name\": \"hermit\""), "{}", stale.stdout);
    assert_eq!(s.read("ir.json"), run.stdout, "--check wrote nothing");
}

#[test]
fn emit_configmap_wraps_the_same_ir_in_a_configmap_named_as_asked() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    let ir = s.netc(&["build", "--emit", "ir", "policies.np"]);
    let run = s.netc(&["build", "--emit", "configmap", "policies.np"]);
    assert_code(&run, 0);
    assert!(run.stdout.starts_with("# Generated by netc from policies.np."), "{}", run.stdout);
    let object: serde_yaml::Value = serde_yaml::from_str(&run.stdout).expect("YAML");
    assert_eq!(object["apiVersion"], "v1");
    assert_eq!(object["kind"], "ConfigMap");
    assert_eq!(object["metadata"]["name"], "netc-ir", "the name netcd reads by default");
    assert_eq!(object["metadata"]["namespace"], "netc-system");
    let data = object["data"]["policies.ir.json"].as_str().expect("the IR under the key netcd reads");
    assert_eq!(data, ir.stdout, "byte for byte the IR of --emit ir");
    netc_ir::Ir::from_json(data).expect("valid IR");

    let named = s.netc(&[
        "build",
        "--emit",
        "configmap",
        "--configmap-name",
        "shop.policy",
        "--configmap-namespace",
        "netcd",
        "-o",
        "cm.yaml",
        "policies.np",
    ]);
    assert_code(&named, 0);
    let object: serde_yaml::Value = serde_yaml::from_str(&s.read("cm.yaml")).expect("YAML");
    assert_eq!(
        (object["metadata"]["name"].as_str(), object["metadata"]["namespace"].as_str()),
        (Some("shop.policy"), Some("netcd"))
    );

    for (option, bad, why) in [
        ("--configmap-name", "Netc_IR", "contains upper-case letters"),
        ("--configmap-name", "ir-", "must start and end with a letter or digit"),
        ("--configmap-namespace", "netc.system", "contains `.`"),
    ] {
        let run = s.netc(&["build", "--emit", "configmap", option, bad, "policies.np"]);
        assert_code(&run, 2);
        assert!(run.stderr.contains(why) && run.stderr.contains(option), "{option} {bad}: {}", run.stderr);
    }
}

// ---------- diagnostics options ----------

#[test]
fn warnings_pass_unless_denied() {
    let s = Sandbox::new();
    s.write("policies.np", WARNS);
    let run = s.netc(&["build", "policies.np"]);
    assert_code(&run, 0);
    assert!(
        run.stderr.contains("warning[W0203]") && run.stderr.contains("1 warning emitted"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("kind: NetworkPolicy"));

    for command in ["build", "check"] {
        let run = s.netc(&[command, "--deny-warnings", "policies.np"]);
        assert_code(&run, 1);
        assert!(run.stderr.contains("warning[W0203]"), "{}", run.stderr);
        assert!(run.stderr.contains("warnings are denied"), "{}", run.stderr);
        assert_eq!(run.stdout, "", "{command}: nothing built when warnings are denied");
    }
    // Denying warnings changes nothing for a file without any.
    s.write("clean.np", GOOD);
    assert_code(&s.netc(&["check", "--deny-warnings", "clean.np"]), 0);
}

#[test]
fn json_diagnostics_are_one_object_per_line_with_positions() {
    let s = Sandbox::new();
    s.write("policies.np", BAD);
    let run = s.netc(&["check", "--message-format", "json", "policies.np"]);
    assert_code(&run, 1);
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    let summary: Vec<_> = lines
        .iter()
        .map(|d| {
            (
                d["severity"].as_str().unwrap_or("?").to_owned(),
                d["code"].as_str().unwrap_or("?").to_owned(),
                d["file"].as_str().unwrap_or("?").to_owned(),
                d["line"].as_u64().unwrap_or(0),
                d["column"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("error".to_owned(), "E0102".to_owned(), "policies.np".to_owned(), 1, 21),
            ("error".to_owned(), "E0202".to_owned(), "policies.np".to_owned(), 2, 8),
        ]
    );
    assert!(lines.iter().all(|d| d["message"].is_string() && d["help"].is_string()));

    // Warnings too, and with --deny-warnings there is still nothing but JSON on stderr.
    s.write("warns.np", WARNS);
    let run = s.netc(&["build", "--message-format", "json", "--deny-warnings", "warns.np"]);
    assert_code(&run, 1);
    let lines: Vec<serde_json::Value> =
        run.stderr.lines().map(|l| serde_json::from_str(l).expect("only JSON on stderr")).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["code"], "W0203");
    assert_eq!(lines[0]["severity"], "warning");
}

// ---------- fmt ----------

/// The names and specs of a YAML stream's objects: what they mean, without the annotations.
fn specs(stream: &str) -> Vec<(Option<String>, Option<NetworkPolicySpec>)> {
    let objects = parse_network_policies(stream).expect("a NetworkPolicy stream");
    objects.into_iter().map(|p| (p.metadata.name, p.spec)).collect()
}

#[test]
fn fmt_rewrites_in_canonical_layout_keeping_comments_and_meaning() {
    let s = Sandbox::new();
    s.write("policies.np", UNFORMATTED);
    let built_before = specs(&s.netc(&["build", "policies.np"]).stdout);
    let run = s.netc(&["fmt", "policies.np"]);
    assert_code(&run, 0);
    assert!(run.stderr.contains("formatted policies.np"), "{}", run.stderr);
    let formatted = s.read("policies.np");
    assert_eq!(formatted, "frontend -> backend:8080\n\nhermit isolated  # a monk\n");
    // Formatting keeps the meaning (the `netc.dev/source` line numbers may move).
    assert_eq!(specs(&s.netc(&["build", "policies.np"]).stdout), built_before);
    // Idempotent: a second run changes nothing and says nothing.
    let again = s.netc(&["fmt", "policies.np"]);
    assert_code(&again, 0);
    assert_eq!(again.stderr, "");
    assert_eq!(s.read("policies.np"), formatted);
}

#[test]
fn fmt_check_reports_a_diff_and_changes_nothing() {
    let s = Sandbox::new();
    s.write("messy.np", UNFORMATTED);
    s.write("tidy.np", GOOD);
    let run = s.netc(&["fmt", "--check", "messy.np", "tidy.np"]);
    assert_code(&run, 1);
    assert!(run.stdout.contains("--- a/messy.np\n+++ b/messy.np\n"), "{}", run.stdout);
    assert!(run.stdout.contains("\n-frontend->backend:8080\n+frontend -> backend:8080\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("tidy.np"), "formatted files are not in the diff");
    assert_eq!(s.read("messy.np"), UNFORMATTED);
    let run = s.netc(&["fmt", "--check", "tidy.np"]);
    assert_code(&run, 0);
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
}

#[test]
fn fmt_writes_through_a_symlink_to_the_file_it_names() {
    let s = Sandbox::new();
    s.write("shared/policies.np", UNFORMATTED);
    std::os::unix::fs::symlink("shared/policies.np", s.path("policies.np")).expect("symlink");
    assert_code(&s.netc(&["fmt", "policies.np"]), 0);
    let link = std::fs::symlink_metadata(s.path("policies.np")).expect("metadata");
    assert!(link.file_type().is_symlink(), "the link is still a link");
    assert_eq!(s.read("shared/policies.np"), "frontend -> backend:8080\n\nhermit isolated  # a monk\n");
}

#[test]
fn fmt_refuses_a_file_that_does_not_parse_and_leaves_it_alone() {
    let s = Sandbox::new();
    s.write("broken.np", "frontend ->\n");
    let run = s.netc(&["fmt", "broken.np"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0001]"), "{}", run.stderr);
    assert_eq!(s.read("broken.np"), "frontend ->\n");
}

// ---------- explain, completions, help ----------

#[test]
fn explain_prints_the_documentation_of_a_code() {
    let s = Sandbox::new();
    let run = s.netc(&["explain", "E0202"]);
    assert_code(&run, 0);
    assert!(run.stdout.contains("E0202"), "{}", run.stdout);
    assert!(run.stdout.contains("10.0.0.0/8"), "the example and its fix:\n{}", run.stdout);
    assert!(!run.stdout.contains("## E0203"), "only the section of E0202:\n{}", run.stdout);
    assert_eq!(s.netc(&["explain", "e0202"]).stdout, run.stdout, "case does not matter");
    let unknown = s.netc(&["explain", "E9999"]);
    assert_code(&unknown, 2);
    assert!(unknown.stderr.contains("no diagnostic code `E9999`"), "{}", unknown.stderr);
}

#[test]
fn every_code_the_compiler_can_emit_is_explained() {
    let s = Sandbox::new();
    for code in netc::diagnostics::ALL_CODES {
        let run = s.netc(&["explain", code]);
        assert_code(&run, 0);
        assert!(run.stdout.contains(code), "{code}: {}", run.stdout);
    }
}

#[test]
fn completions_for_bash_name_the_subcommands() {
    let s = Sandbox::new();
    let run = s.netc(&["completions", "bash"]);
    assert_code(&run, 0);
    assert!(run.stdout.contains("complete -F _netc"), "{}", run.stdout);
    for sub in ["build", "check", "fmt", "explain", "completions", "--deny-warnings", "--message-format"] {
        assert!(run.stdout.contains(sub), "{sub} missing from the completions");
    }
}

#[test]
fn help_shows_examples() {
    let s = Sandbox::new();
    for args in [&["--help"][..], &["build", "--help"], &["help"]] {
        let run = s.netc(args);
        assert_code(&run, 0);
        assert!(run.stdout.contains("Examples:"), "{args:?}:\n{}", run.stdout);
        assert!(run.stdout.contains("netc build policies.np -o deploy/netpol"), "{args:?}:\n{}", run.stdout);
    }
    let version = s.netc(&["--version"]);
    assert_code(&version, 0);
    assert!(version.stdout.starts_with("netc "), "{}", version.stdout);
}
