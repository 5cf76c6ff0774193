//! Hostile and careless input to the `netc` binary (issue 8): bounded reads, files that are not
//! what they seem, names that try to become code or YAML, and output directories in odd states.
//! Each test was written against a reproducer that misbehaved before the fix.
//!
//! Every test works in its own temporary directory. To add a case: write the inputs with
//! [`Sandbox::write`], run [`Sandbox::netc`] (or [`Sandbox::netc_with`] for stdin and environment),
//! and assert on the [`Run`]: exit code, stdout, stderr, and what the directory holds afterwards.

mod common;

use common::sandbox::{Sandbox, assert_code};
use std::process::{Command, Stdio};

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
    assert!(run.stderr.contains("error[E0002]: file too large (more than 1000 bytes)"), "{}", run.stderr);
    assert!(run.stderr.contains("┌─ <stdin>:1:1"), "{}", run.stderr);
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
    assert!(run.stderr.contains("error[E0003]: file is not UTF-8"), "{}", run.stderr);
    assert!(run.stderr.contains("┌─ np.yaml:3:21"), "{}", run.stderr);
    assert!(run.stderr.contains("byte 0xe9 is not valid UTF-8 here"), "{}", run.stderr);
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

// ---------- `build -o DIR` touches only its own files (items 1, 5, 6) ----------

/// The files a kustomization lists.
fn listed(kustomization: &str) -> Vec<String> {
    kustomization.lines().filter_map(|l| l.strip_prefix("- ")).map(str::to_owned).collect()
}

#[test]
fn build_into_a_directory_leaves_files_of_other_tools_and_names_alone() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    let foreign = [
        ("out/default.sync.yaml", "# Generated by netconfig-sync v2 -- keep!\nkind: ConfigMap\n"),
        (
            "out/other.yml",
            "# Generated by netc from policies.np. Do not edit: change the source and run `netc build`.\n",
        ),
        (
            "out/.hidden.yaml",
            "# Generated by netc from policies.np. Do not edit: change the source and run `netc build`.\n",
        ),
        ("out/notes.yaml", "# Generated by netc\nmine: true\n"),
    ];
    for (path, text) in foreign {
        s.write(path, text);
    }
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 0);
    let run = s.netc(&["build", "--check", "policies.np", "-o", "out"]);
    assert_code(&run, 0);
    s.write("policies.np", "frontend -> backend:8080\n");
    let run = s.netc(&["build", "--check", "policies.np", "-o", "out"]);
    assert_code(&run, 1);
    assert!(
        !run.stdout.contains("sync") && !run.stdout.contains("other.yml") && !run.stdout.contains("hidden")
    );
    assert!(run.stdout.contains("a/out/default.hermit.yaml"), "{}", run.stdout);
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 0);
    for (path, text) in foreign {
        assert_eq!(s.read(path), text, "{path} was touched");
    }
    assert!(!s.path("out/default.hermit.yaml").exists(), "the stale policy is removed");
    assert_eq!(listed(&s.read("out/kustomization.yaml")), ["default.backend.yaml"]);
}

#[test]
fn a_second_project_building_into_the_same_directory_is_refused() {
    let s = Sandbox::new();
    s.write("a/policies.np", GOOD);
    s.write("b/policies.np", "api -> db:5432\n");
    assert_code(&s.netc(&["build", "a/policies.np", "-o", "out"]), 0);
    let before = s.entries("out");
    let run = s.netc(&["build", "b/policies.np", "-o", "out"]);
    assert_code(&run, 2);
    assert!(run.stderr.contains("refusing to mix"), "{}", run.stderr);
    assert_eq!(s.entries("out"), before, "nothing written or removed");
    // The same project with a file added is the same project.
    s.write("a/more.np", "api -> db:5432\n");
    assert_code(&s.netc(&["build", "a/policies.np", "a/more.np", "-o", "out"]), 0);
    assert!(s.path("out/default.db.yaml").exists());
}

#[test]
fn a_source_name_with_line_breaks_cannot_add_yaml() {
    let s = Sandbox::new();
    let name = "x\napiVersion: v1\nkind: Namespace\nmetadata: {name: pwned}\n#.np";
    s.write(name, GOOD);
    let run = s.netc(&["build", name]);
    assert_code(&run, 0);
    let objects =
        netc::yaml::parse_network_policies(&run.stdout).expect("only NetworkPolicies in the stream");
    assert_eq!(objects.len(), 2, "{}", run.stdout);
    assert!(
        run.stdout.starts_with("# Generated by netc from \"x\\napiVersion: v1\\nkind: Namespace"),
        "{}",
        run.stdout
    );
    assert_code(&s.netc(&["build", name, "-o", "out"]), 0);
    for file in s.entries("out") {
        let text = s.read(&format!("out/{file}"));
        let kinds: Vec<String> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| {
                let v = <serde_yaml::Value as serde::Deserialize>::deserialize(d).expect("YAML");
                v["kind"].as_str().unwrap_or("").to_owned()
            })
            .collect();
        let expected = if file == "kustomization.yaml" { "Kustomization" } else { "NetworkPolicy" };
        assert_eq!(kinds, [expected], "{file}:\n{text}");
    }
}

#[test]
fn a_build_waits_for_the_one_already_writing_the_directory() {
    use std::io::Read;
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    std::fs::create_dir(s.path("out")).expect("mkdir");
    // Stand in for a build that is writing: hold the directory's lock.
    let held = std::fs::File::open(s.path("out")).expect("open dir");
    held.lock().expect("lock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(["build", "policies.np", "-o", "out"])
        .current_dir(s.path(""))
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc runs");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(child.try_wait().expect("status").is_none(), "the second build did not wait");
    assert!(
        s.entries("out").is_empty(),
        "written while another build held the directory: {:?}",
        s.entries("out")
    );
    drop(held);
    let status = child.wait().expect("netc finishes");
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr).expect("stderr");
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("waiting for another netc build into out"), "{stderr}");
    assert_eq!(listed(&s.read("out/kustomization.yaml")), ["default.backend.yaml", "default.hermit.yaml"]);
}

#[test]
fn concurrent_builds_never_leave_a_kustomization_naming_missing_files() {
    let s = Sandbox::new();
    s.write("a.np", GOOD);
    s.write("b.np", "frontend -> backend:8080\nghost isolated\n");
    for round in 0..6 {
        let spawn = |file: &str| {
            Command::new(env!("CARGO_BIN_EXE_netc"))
                .args(["build", file, "-o", "out"])
                .current_dir(s.path(""))
                .stderr(Stdio::null())
                .spawn()
                .expect("netc runs")
        };
        // Same source names on both sides would be refused as two projects: use one name.
        std::fs::copy(s.path(if round % 2 == 0 { "a.np" } else { "b.np" }), s.path("p.np")).expect("copy");
        let (mut one, mut two) = (spawn("p.np"), spawn("p.np"));
        assert!(one.wait().expect("wait").success() && two.wait().expect("wait").success());
        for file in listed(&s.read("out/kustomization.yaml")) {
            assert!(s.path(&format!("out/{file}")).exists(), "round {round}: {file} is listed but missing");
        }
    }
}

#[test]
fn what_an_interrupted_build_left_is_seen_by_check_and_cleaned_by_the_next_build() {
    let s = Sandbox::new();
    s.write("policies.np", GOOD);
    assert_code(&s.netc(&["build", "policies.np", "-o", "out"]), 0);
    // A build of `GOOD + ghost isolated`, killed after writing ghost's file and before the
    // kustomization: its journal, the file it wrote, and the temporary file it was writing.
    s.write("more.np", format!("{GOOD}ghost isolated\n"));
    let run = s.netc(&["build", "more.np"]);
    let ghost = run.stdout.split("---\n").find(|d| d.contains("name: ghost")).expect("ghost's policy");
    let header =
        "# Generated by netc from policies.np. Do not edit: change the source and run `netc build`.\n";
    s.write("out/default.ghost.yaml", format!("{header}{ghost}"));
    s.write(
        "out/.netc-build-in-progress",
        "# netc build -o: files being written (removed when the build is done)\ndefault.ghost.yaml\n",
    );
    s.write("out/.netc-tmp-Ab12Cd", "apiVersion: networking.k8s.io/v1\nkind: NetworkPol");
    let run = s.netc(&["build", "--check", "policies.np", "-o", "out"]);
    assert_code(&run, 1);
    assert!(run.stdout.contains("a/out/default.ghost.yaml"), "{}", run.stdout);
    assert!(run.stdout.contains("out/.netc-tmp-Ab12Cd: left by an interrupted netc build"), "{}", run.stdout);
    let run = s.netc(&["build", "policies.np", "-o", "out"]);
    assert_code(&run, 0);
    assert_eq!(
        s.entries("out"),
        ["default.backend.yaml", "default.hermit.yaml", "kustomization.yaml"],
        "{}",
        run.stderr
    );
    assert_code(&s.netc(&["build", "--check", "policies.np", "-o", "out"]), 0);
}

// ---------- `netc import` never turns input into statements (item 2) ----------

const DENY_ALL: &str =
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: shop\n";

#[test]
fn import_refuses_a_policy_name_that_is_not_a_dns_subdomain() {
    let s = Sandbox::new();
    s.write("np.yaml", format!("{DENY_ALL}  name: \"p\\nanywhere -> *\\n##\"\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress]\n"));
    let run = s.netc(&["import", "np.yaml"]);
    assert_code(&run, 1);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("metadata.name: `p\\u{a}anywhere -> *\\u{a}##` is not a DNS-1123 subdomain"),
        "{}",
        run.stderr
    );
}

#[test]
fn import_keeps_an_intent_annotation_inside_its_comment() {
    let s = Sandbox::new();
    let intent = "deny all\\ranywhere -> *\\r\\n\\u001b[2Jsecond line";
    s.write(
        "np.yaml",
        format!(
            "{DENY_ALL}  name: deny-all\n  annotations:\n    netc.dev/intent: \"{intent}\"\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress]\n"
        ),
    );
    let run = s.netc(&["import", "--verify", "np.yaml"]);
    assert_code(&run, 0);
    assert!(
        run.stdout.contains("  ## deny all\n  ## anywhere -> *\n  ## \\u{1b}[2Jsecond line\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.lines().all(|l| !l.trim_start().starts_with("anywhere")), "{}", run.stdout);
}

#[test]
fn import_keeps_the_last_of_two_objects_with_one_name_and_names_files() {
    let s = Sandbox::new();
    let allow = format!("{DENY_ALL}  name: p\nspec:\n  podSelector: {{}}\n  ingress: [{{}}]\n");
    let deny = format!("{DENY_ALL}  name: p\nspec:\n  podSelector: {{}}\n  policyTypes: [Ingress]\n");
    s.write("allow.yaml", &allow);
    s.write("deny.yaml", &deny);
    let run = s.netc(&["import", "allow.yaml", "deny.yaml"]);
    assert_code(&run, 0);
    assert!(run.stderr.contains("warning[W0601]: NetworkPolicy shop/p is given twice"), "{}", run.stderr);
    assert!(run.stderr.contains("┌─ allow.yaml:5:3"), "at the name of the first one: {}", run.stderr);
    assert!(run.stderr.contains("┌─ deny.yaml:5:3"), "beside the name of the one kept: {}", run.stderr);
    assert!(run.stdout.contains("default deny ingress"), "the deny-all is kept:\n{}", run.stdout);
    assert!(!run.stdout.contains("anywhere"), "the allow-all is dropped:\n{}", run.stdout);
    // An error names the file of the policy at fault.
    s.write(
        "bad.yaml",
        format!("{DENY_ALL}  name: q\nspec:\n  podSelector: {{}}\n  policyTypes: [Sideways]\n"),
    );
    let run = s.netc(&["import", "deny.yaml", "bad.yaml"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0603]: NetworkPolicy shop/q is not valid"), "{}", run.stderr);
    assert!(run.stderr.contains("┌─ bad.yaml:5:3"), "{}", run.stderr);
    assert!(run.stderr.contains("spec.policyTypes[0]: unknown type `Sideways`"), "{}", run.stderr);
    // With --deny-warnings the object given twice fails the import, and nothing is written.
    let run = s.netc(&["import", "--deny-warnings", "allow.yaml", "deny.yaml"]);
    assert_code(&run, 1);
    assert_eq!(run.stdout, "");
}

// ---------- doc comments keep their order (item 7) ----------

#[test]
fn import_errors_have_codes_and_name_file_and_line_in_either_format() {
    let s = Sandbox::new();
    let np = |name: &str, spec: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  namespace: shop\n  name: {name}\nspec:\n{spec}"
        )
    };
    s.write("ok.yaml", np("ok", "  podSelector: {}\n"));
    s.write(
        "syntax.yaml",
        format!("{}---\n{}", np("ok2", "  podSelector: {}\n"), np("x", "  podSelector: {a: [}\n")),
    );
    s.write(
        "service.yaml",
        format!(
            "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n",
            np("ok3", "  podSelector: {}\n")
        ),
    );
    s.write("types.yaml", np("t", "  podSelector: 3\n"));
    s.write(
        "port.yaml",
        format!(
            "{}---\n{}",
            np("ok4", "  podSelector: {}\n"),
            np("p", "  podSelector: {}\n  ingress: [{ports: [{port: 70000}]}]\n")
        ),
    );
    s.write("keyword.yaml", np("k", "  podSelector: {}\n").replace("namespace: shop", "namespace: ingress"));
    // (file, code, line, column): each error at its place in its own file, every file reported.
    let cases = [
        ("syntax.yaml", "E0601", 15, 21),
        ("service.yaml", "E0602", 10, 1),
        ("types.yaml", "E0603", 2, 1),
        ("port.yaml", "E0603", 13, 3),
        ("keyword.yaml", "E0604", 5, 3),
    ];
    for (file, code, line, column) in cases {
        let run = s.netc(&["import", "ok.yaml", file]);
        assert_code(&run, 1);
        assert!(run.stderr.contains(&format!("error[{code}]")), "{file}: {}", run.stderr);
        assert!(run.stderr.contains(&format!("┌─ {file}:{line}:{column}")), "{file}: {}", run.stderr);
        assert_eq!(run.stdout, "", "nothing written");
        let run = s.netc(&["import", "--message-format", "json", "ok.yaml", file]);
        assert_code(&run, 1);
        let json: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
        assert_eq!(
            (json["code"].as_str(), json["file"].as_str(), json["line"].as_u64(), json["column"].as_u64()),
            (Some(code), Some(file), Some(line), Some(column)),
            "{json}"
        );
    }
    // Files that do not parse are all reported at once.
    let run = s.netc(&["import", "syntax.yaml", "service.yaml"]);
    assert!(run.stderr.contains("error[E0601]") && run.stderr.contains("error[E0602]"), "{}", run.stderr);
    assert!(run.stderr.contains("netc stopped: 2 errors"), "{}", run.stderr);
    // A file that cannot be read is still exit 2.
    assert_code(&s.netc(&["import", "ok.yaml", "missing.yaml"]), 2);
}

#[test]
fn a_multi_line_doc_comment_keeps_its_lines_in_source_order() {
    let source = "## zebras first,\n##\n## aardvarks second.\n## zebras first,\nfrontend -> backend:8080\n\n## and then the hermit\nhermit isolated\n## also backend\nbackend ingress guarded\n";
    let out = netc::compile(&[netc::SourceFile::new("p.np", source)]);
    let ir = out.ir.expect("compiles");
    let doc = |w: &str| ir.policies.iter().find(|p| p.workload == w).and_then(|p| p.doc.clone());
    assert_eq!(
        doc("backend").as_deref(),
        Some("zebras first,\n\naardvarks second.\nzebras first,\nalso backend")
    );
    assert_eq!(doc("hermit").as_deref(), Some("and then the hermit"));
}

// ---------- what diagnostics echo of a source (item 4) ----------

#[test]
fn an_excerpt_escapes_terminal_control_and_bidi_characters() {
    let s = Sandbox::new();
    s.write("p.np", "frontend -> backend:70000 # \u{1b}]0;pwned\u{7}\u{1b}[2J \u{202e}evil\n");
    let run = s.netc(&["check", "p.np"]);
    assert_code(&run, 1);
    assert!(!run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{202e}'), "{:?}", run.stderr);
    assert!(run.stderr.contains("\\u{1b}]0;pwned\\u{7}\\u{1b}[2J \\u{202e}evil"), "{}", run.stderr);
    assert!(
        run.stderr.contains("^^^^^ ports are 1 to 65535"),
        "the label still points at the port: {}",
        run.stderr
    );
}

// ---------- bidirectional control characters: "Trojan Source" (smaller point) ----------

/// The arrow reads `frontend -> backend:80 # to 443` in an editor that applies the override, but
/// the comment starts at `#`: the program allows port 80 only.
const TROJAN: &str =
    "frontend -> backend:80 # \u{202e}344 ot\u{202c}\n## \u{2067}only the API\u{2069}\nweb -> api:443\n";

#[test]
fn bidi_controls_in_comments_are_w0001_at_their_place_and_json() {
    let s = Sandbox::new();
    s.write("trojan.np", TROJAN);
    let run = s.netc(&["check", "trojan.np"]);
    assert_code(&run, 0);
    assert!(!run.stderr.contains('\u{202e}'), "characters are escaped: {:?}", run.stderr);
    assert!(
        run.stderr.contains("warning[W0001]: invisible bidirectional control character in a comment"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("trojan.np:1:26"), "{}", run.stderr);
    assert!(run.stderr.contains("U+202E RIGHT-TO-LEFT OVERRIDE"), "{}", run.stderr);
    assert!(
        run.stderr.contains("warning[W0001]: invisible bidirectional control character in a doc comment"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`netc.dev/intent` annotation"), "{}", run.stderr);
    assert!(run.stderr.contains("4 warnings emitted"), "{}", run.stderr);
    // JSON: one line per run of characters, at the character (1-based, counted in characters).
    let run = s.netc(&["check", "--message-format", "json", "trojan.np"]);
    let lines: Vec<serde_json::Value> =
        run.stderr.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let at: Vec<_> = lines
        .iter()
        .map(|l| (l["code"].as_str(), l["line"].as_u64(), l["column"].as_u64(), l["end_column"].as_u64()))
        .collect();
    assert_eq!(
        at,
        [
            (Some("W0001"), Some(1), Some(26), Some(27)),
            (Some("W0001"), Some(1), Some(33), Some(34)),
            (Some("W0001"), Some(2), Some(4), Some(5)),
            (Some("W0001"), Some(2), Some(17), Some(18))
        ],
        "{}",
        run.stderr
    );
    // A warning: the build goes on, and CI can deny it.
    assert_code(&s.netc(&["build", "trojan.np"]), 0);
    assert_code(&s.netc(&["check", "--deny-warnings", "trojan.np"]), 1);
}

#[test]
fn the_documented_w0001_example_prints_what_the_page_shows() {
    let section = netc::diagnostics::explain("W0001").expect("W0001 is documented");
    let block = section.split("```text\n").nth(1).and_then(|b| b.split("```").next()).expect("an example");
    let (command, shown) = block.split_once('\n').expect("a command line");
    assert_eq!(command, "$ netc check trojan.np");
    let s = Sandbox::new();
    s.write("trojan.np", "frontend -> backend:80 # \u{202e}344 ot\u{202c}\n");
    let run = s.netc(&["check", "trojan.np"]);
    assert_code(&run, 0);
    let printed: Vec<&str> = run.stderr.trim_end().lines().map(str::trim_end).collect();
    assert_eq!(
        printed.join("\n"),
        shown.trim_end(),
        "docs/diagnostics.md W0001: paste this:\n{}",
        run.stderr
    );
}

#[test]
fn bidi_controls_in_a_quoted_value_or_a_name_are_w0001_beside_the_error() {
    let s = Sandbox::new();
    s.write("value.np", "workload api = {app=\"a\u{202e}b\"}\nfrontend -> api:80\n");
    let run = s.netc(&["check", "value.np"]);
    assert!(
        run.stderr.contains("warning[W0001]: invisible bidirectional control character in a quoted value"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("value.np:1:23"), "{}", run.stderr);
    // In a name it is also a syntax error; the warning says what the invisible character is.
    s.write("name.np", "front\u{2066}end -> backend:80\n");
    let run = s.netc(&["check", "name.np"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("error[E0001]"), "{}", run.stderr);
    assert!(
        run.stderr.contains("warning[W0001]: invisible bidirectional control character in the source"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("U+2066 LEFT-TO-RIGHT ISOLATE"), "{}", run.stderr);
}

#[test]
fn a_file_full_of_bidi_controls_gives_a_bounded_number_of_warnings() {
    let s = Sandbox::new();
    s.write("many.np", format!("{GOOD}{}", "# \u{202e}x\n".repeat(10_000)));
    let run = s.netc(&["check", "--message-format", "json", "many.np"]);
    assert_code(&run, 0);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), netc::syntax::BIDI_REPORTED, "{}", run.stderr.len());
    assert!(lines.last().is_some_and(|l| l.contains("9984 more runs")), "{:?}", lines.last());
}

#[test]
fn an_excerpt_of_a_very_long_line_is_cut_around_the_label() {
    let s = Sandbox::new();
    let before = (0..300).map(|i| format!("w{i}")).collect::<Vec<_>>().join(", ");
    let after = (0..300).map(|i| format!("v{i}")).collect::<Vec<_>>().join(", ");
    s.write("p.np", format!("{before} -> backend:70000, {after}\n"));
    let run = s.netc(&["check", "p.np"]);
    assert_code(&run, 1);
    let longest = run.stderr.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(longest < 400, "a line of {longest} characters:\n{}", run.stderr);
    assert!(run.stderr.contains("backend:70000"), "{}", run.stderr);
    assert!(run.stderr.contains("^^^^^ ports are 1 to 65535"), "{}", run.stderr);
    assert!(run.stderr.contains('\u{2026}'), "{}", run.stderr);
    let column = before.len() + " -> backend:".len() + 1;
    assert!(run.stderr.contains(&format!("p.np:1:{column}\n")), "the real column: {}", run.stderr);
}

// ---------- YAML: nesting bounded before parsing, byte-order marks (item 9, smaller) ----------

#[test]
fn deeply_nested_yaml_is_refused_before_parsing_as_import_and_as_cluster() {
    let s = Sandbox::new();
    // 100k levels in 500 KB: 38 s of CPU in the YAML parser before this was bounded.
    let deep = format!("kind: NetworkPolicy\nspec: {}x{}\n", "{a: ".repeat(100_000), "}".repeat(100_000));
    s.write("deep.yaml", &deep);
    s.write("policies.np", GOOD);
    let run = s.netc(&["import", "deep.yaml"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("2:407: nested more than 100 levels deep"), "{}", run.stderr);
    let run = s.netc(&["graph", "policies.np", "--cluster", "deep.yaml"]);
    assert_code(&run, 1);
    assert!(run.stderr.contains("nested more than 100 levels deep"), "{}", run.stderr);
}

#[test]
fn a_byte_order_mark_before_yaml_is_not_part_of_the_first_key() {
    let s = Sandbox::new();
    s.write(
        "np.yaml",
        "\u{feff}apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n",
    );
    let run = s.netc(&["import", "np.yaml"]);
    assert_code(&run, 0);
    assert!(run.stdout.contains("default deny ingress"), "{}", run.stdout);
    s.write("policies.np", GOOD);
    s.write("cluster.yaml", "\u{feff}kind: Pod\nmetadata: {name: web-1, namespace: default, labels: {app: frontend}}\nstatus: {podIP: 10.0.0.1}\n");
    let run = s.netc(&["graph", "policies.np", "--cluster", "cluster.yaml"]);
    assert_code(&run, 0);
}

// ---------- hostile input, generated: parser, importer, inventory reader (property tests) ----------

mod generated {
    use proptest::prelude::*;

    /// Pieces an attacker or a careless editor puts in files: control and bidi characters, line
    /// breaks of every kind, byte-order marks, deep and unbalanced nesting, quotes, aliases.
    const PIECES: &[&str] = &[
        "\u{1b}[2J",
        "\u{202e}",
        "\u{2066}",
        "\r",
        "\r\n",
        "\n",
        "\t",
        "\u{feff}",
        "\u{0}",
        "\u{85}",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "#",
        "## ",
        "- ",
        ": ",
        ", ",
        "&a ",
        "*a",
        "---\n",
        "...\n",
        "->",
        ":80",
        "isolated",
        "namespace ",
        "{app=x}",
        "anywhere",
        "*",
        "kind: NetworkPolicy\n",
        "kind: Pod\n",
        "kind: List\nitems:\n",
        "apiVersion: networking.k8s.io/v1\n",
        "metadata: {name: ",
        "namespace: shop",
        "spec:\n  podSelector: {}\n",
        "  ingress: [{from: [{podSelector: {}}]}]\n",
        "netc.dev/intent: ",
        "p\\nanywhere -> *\\n##",
        "web",
    ];

    fn soup(picks: &[(usize, u8)]) -> String {
        let mut out = String::new();
        for &(i, repeat) in picks {
            out.push_str(&PIECES[i % PIECES.len()].repeat(usize::from(repeat % 4) + 1));
        }
        out
    }

    /// Whether `text` holds a character a terminal would act on rather than show.
    fn raw_control(text: &str) -> bool {
        text.chars().any(|c| (c.is_control() && c != '\n' && c != '\t') || netc::syntax::is_bidi_control(c))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn sources_of_hostile_pieces_compile_without_panic_and_render_safely(
            picks in prop::collection::vec((0usize..64, any::<u8>()), 0..60)
        ) {
            let text = soup(&picks);
            let sources = vec![netc::SourceFile::new("a\u{1b}.np", text.as_str())];
            let out = netc::compile(&sources);
            prop_assert_eq!(out.ir.is_some(), !out.has_errors());
            let human = netc::diagnostics::render(&out.diagnostics, &sources, false);
            prop_assert!(!raw_control(&human), "raw control characters in:\n{:?}", human);
            let _ = netc::diagnostics::render_json(&out.diagnostics, &sources);
        }

        #[test]
        fn yaml_of_hostile_pieces_never_panics_and_imports_only_what_compiles(
            picks in prop::collection::vec((0usize..64, any::<u8>()), 0..60),
            depth in 0usize..400,
        ) {
            let text = format!("{}{}{}", soup(&picks), "{a: ".repeat(depth), "}".repeat(depth));
            // As `netc import` reads it: located diagnostics (E06xx, W0601), shown safely.
            let files = vec![netc::SourceFile::new("np\u{1b}.yaml", text.as_str())];
            let (objects, mut problems) = netc::import::read(&files);
            if !problems.iter().any(|d| d.severity == netc::diagnostics::Severity::Error) {
                match netc::import::import(&objects.policies) {
                    Ok(source) => {
                        let out = netc::compile(&[netc::SourceFile::new("imported.np", source.as_str())]);
                        prop_assert!(!out.has_errors(), "{}", source);
                        prop_assert!(!raw_control(&source), "{:?}", source);
                    }
                    Err(e) => {
                        prop_assert!(!matches!(e, netc::import::ImportError::Internal { .. }), "{}", e);
                        problems.push(netc::diagnostics::from_import(&e, objects.loc_of(&e)));
                    }
                }
            }
            for d in &problems {
                let at = d.location().map(|l| (l.file, l.span.start as usize, l.span.end as usize));
                prop_assert!(
                    at.is_none_or(|(f, s, e)| f == 0 && s <= e && e <= text.len() && text.is_char_boundary(s) && text.is_char_boundary(e)),
                    "{:?} out of the file", d
                );
            }
            let human = netc::diagnostics::render(&problems, &files, false);
            prop_assert!(!raw_control(&human), "raw control characters in:\n{:?}", human);
            let _ = netc::diagnostics::render_json(&problems, &files);
            let _ = netc_ir::Inventory::from_yaml(&text);
        }
    }
}
