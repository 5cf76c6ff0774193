//! The analysis commands of the `netc` binary end to end: `explain` (flows and codes), `matrix`,
//! `diff` (files, directories, git revisions) and `build --verify`, with their exit codes.
//!
//! Each test runs the real binary in a temporary directory of its own. To add a case: write the
//! files it needs with [`Dir::write`], run [`Dir::netc`], and assert the exit code and the output.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().expect("a temporary directory"))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    fn netc(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("COLUMNS")
            .output()
            .expect("netc runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn netc_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("netc runs");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        let out = child.wait_with_output().expect("netc ends");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn git(&self, args: &[&str]) {
        let status = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .output()
            .expect("git runs");
        assert!(status.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&status.stderr));
    }
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name).display().to_string()
}

fn expect(run: &Run, code: i32) {
    assert_eq!(run.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", run.stdout, run.stderr);
}

const SHOP: &str = "namespace shop {\n  web -> api:8080\n  api -> db:5432\n}\n";

const CLUSTER: &str = "\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
- {apiVersion: v1, kind: Pod, metadata: {name: web-1, namespace: shop, labels: {app: web}}, status: {podIP: 10.0.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: api-1, namespace: shop, labels: {app: api}}, status: {podIP: 10.0.0.2}}
- {apiVersion: v1, kind: Pod, metadata: {name: db-0, namespace: shop, labels: {app: db}}, status: {podIP: 10.0.0.3}}
- {apiVersion: netc.dev/v1, kind: ExternalAddress, metadata: {name: payments}, address: 203.0.113.5}
";

fn shop_dir() -> Dir {
    let d = Dir::new();
    d.write("shop.np", SHOP);
    d.write("cluster.yaml", CLUSTER);
    d
}

// ---------- explain ----------

#[test]
fn explain_of_a_code_still_prints_its_documentation() {
    let d = Dir::new();
    let run = d.netc(&["explain", "E0202"]);
    expect(&run, 0);
    assert!(run.stdout.contains("E0202"));
    expect(&d.netc(&["explain", "E9999"]), 2);
}

#[test]
fn explain_says_allowed_or_denied_and_exits_0() {
    let d = shop_dir();
    let args = |from: &'static str, to: &'static str| {
        ["explain", "shop.np", "--cluster", "cluster.yaml", "--from", from, "--to", to]
    };
    let ok = d.netc(&args("shop/web-1", "shop/api-1:8080"));
    expect(&ok, 0);
    assert!(ok.stdout.starts_with("shop/web-1 -> shop/api-1 on TCP/8080: ALLOWED\n"), "{}", ok.stdout);
    assert!(ok.stdout.contains("shop.np:2:3"), "{}", ok.stdout);
    let no = d.netc(&args("10.0.0.1", "shop/db-0:5432"));
    expect(&no, 0);
    assert!(no.stdout.starts_with("shop/web-1 -> shop/db-0 on TCP/5432: DENIED\n"), "{}", no.stdout);
    assert!(no.stdout.contains("add to namespace shop:\n    web -> db:5432\n"), "{}", no.stdout);
    let out = d.netc(&args("shop/api-1", "payments:443"));
    expect(&out, 0);
    assert!(out.stdout.contains("ALLOWED"), "api's egress is open: {}", out.stdout);
}

#[test]
fn explain_errors_exit_2_with_did_you_mean() {
    let d = shop_dir();
    let run = |from: &str, to: &str| {
        d.netc(&["explain", "shop.np", "--cluster", "cluster.yaml", "--from", from, "--to", to])
    };
    let pod = run("shop/web-2", "shop/db-0:5432");
    expect(&pod, 2);
    assert!(
        pod.stderr.contains("namespace `shop` has no pod `web-2`; did you mean `shop/web-1`?"),
        "{}",
        pod.stderr
    );
    let ns = run("sohp/web-1", "shop/db-0:5432");
    expect(&ns, 2);
    assert!(ns.stderr.contains("did you mean `shop/web-1`?"), "{}", ns.stderr);
    let port = run("shop/web-1", "shop/db-0");
    expect(&port, 2);
    assert!(port.stderr.contains("has no port"), "{}", port.stderr);
    let only_from = d.netc(&["explain", "shop.np", "--cluster", "cluster.yaml", "--from", "shop/web-1"]);
    expect(&only_from, 2);
    let no_flow = d.netc(&["explain", "shop.np"]);
    expect(&no_flow, 2);
    assert!(no_flow.stderr.contains("--from"), "{}", no_flow.stderr);
    d.write("bad.yaml", "kind: Pod\nmetadata: {name: p}\nstatus: {podIP: nope}\n");
    let inv = d.netc(&["explain", "shop.np", "--cluster", "bad.yaml", "--from", "a/b", "--to", "a/b:1"]);
    // A cluster that does not read is a problem of the input (exit 1), as for every command.
    expect(&inv, 1);
    assert!(inv.stderr.contains("pod default/p"), "the object is named: {}", inv.stderr);
    d.write("broken.np", "web -> api:99999\n");
    let broken = d.netc(&[
        "explain",
        "broken.np",
        "--cluster",
        "cluster.yaml",
        "--from",
        "shop/web-1",
        "--to",
        "shop/db-0:1",
    ]);
    expect(&broken, 1);
    assert!(broken.stderr.contains("E0102"), "{}", broken.stderr);
}

#[test]
fn explain_without_a_cluster_uses_one_synthesized_from_the_program() {
    let d = shop_dir();
    let run = d.netc(&["explain", "shop.np", "--from", "shop/web", "--to", "shop/db:5432"]);
    expect(&run, 0);
    assert!(run.stdout.starts_with("shop/web -> shop/db on TCP/5432: DENIED"), "{}", run.stdout);
    assert!(run.stderr.contains("synthesized"), "{}", run.stderr);
}

#[test]
fn explain_points_from_a_workload_name_to_its_pods() {
    // Issue 9: synthesized pods are named after their `app` label, so the workload name
    // (`storefront`) or a left-out namespace (`default/...`) is no pod: say which pods are meant.
    let d = Dir::new();
    d.write("p.np", "namespace shop {\n  workload storefront = {app=web}\n  storefront -> api:8080\n}\n");
    let run = d.netc(&["explain", "p.np", "--from", "shop/storefront", "--to", "shop/api:8080"]);
    expect(&run, 2);
    assert!(
        run.stderr.contains("namespace `shop` has no pod `storefront`; did you mean `shop/web`?"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("the pods of workload `storefront` (`app=web`)"), "{}", run.stderr);
    let run = d.netc(&["explain", "p.np", "--from", "shop/web", "--to", "default/api:8080"]);
    expect(&run, 2);
    assert!(
        run.stderr.contains("the cluster has no namespace `default`; did you mean `shop/api`?"),
        "{}",
        run.stderr
    );
}

// ---------- --cluster: several inputs, directories, standard input ----------

/// [`CLUSTER`] in two parts (a directory of YAML and JSON), and a file describing `web-1` again
/// with other labels and address.
fn split_cluster(d: &Dir) {
    d.write(
        "parts/a-shop.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {app: web}}\nstatus: {podIP: 10.0.0.1}\n",
    );
    d.write(
        "parts/b-pods.json",
        r#"{"apiVersion":"v1","kind":"List","items":[
  {"apiVersion":"v1","kind":"Pod","metadata":{"name":"api-1","namespace":"shop","labels":{"app":"api"}},"status":{"podIP":"10.0.0.2"}},
  {"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-0","namespace":"shop","labels":{"app":"db"}},"status":{"podIP":"10.0.0.3"}},
  {"apiVersion":"netc.dev/v1","kind":"ExternalAddress","metadata":{"name":"payments"},"address":"203.0.113.5"}]}"#,
    );
    d.write("parts/notes.txt", "not a cluster file: a directory is read for .yaml, .yml and .json only\n");
    d.write(
        "relabel.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {app: other}}\nstatus: {podIP: 10.0.0.9}\n",
    );
}

#[test]
fn a_cluster_in_several_files_means_the_same_as_in_one() {
    let d = shop_dir();
    split_cluster(&d);
    let csv = |cluster: &[&str]| {
        let mut args = vec!["matrix", "shop.np", "--format", "csv"];
        args.extend_from_slice(cluster);
        let run = d.netc(&args);
        expect(&run, 0);
        run
    };
    let whole = csv(&["--cluster", "cluster.yaml"]);
    assert!(whole.stdout.contains("\nshop/web-1,shop/api-1,"), "{}", whole.stdout);
    let commas = csv(&["--cluster", "parts/a-shop.yaml,parts/b-pods.json"]);
    let repeated = csv(&["--cluster", "parts/a-shop.yaml", "--cluster", "parts/b-pods.json"]);
    let directory = csv(&["--cluster", "parts"]);
    for run in [&commas, &repeated, &directory] {
        assert_eq!(run.stdout, whole.stdout, "{}", run.stderr);
        assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    }
    let stdin = d.netc_stdin(
        &["matrix", "shop.np", "--format", "csv", "--cluster", "parts/a-shop.yaml,-"],
        &std::fs::read_to_string(d.path().join("parts/b-pods.json")).expect("read"),
    );
    expect(&stdin, 0);
    assert_eq!(stdin.stdout, whole.stdout, "{}", stdin.stderr);
    // The same object twice: the later wins, with a warning naming both places.
    let relabelled = csv(&["--cluster", "parts,relabel.yaml"]);
    assert!(
        relabelled.stderr.contains(
            "warning: pod shop/web-1 is described twice (parts/a-shop.yaml: document 2, then relabel.yaml: \
             document 1); the later description is used, as kubectl would"
        ),
        "{}",
        relabelled.stderr
    );
    assert!(
        !relabelled.stdout.contains("shop/web-1,shop/api-1,1"),
        "web-1 is no web pod now: {}",
        relabelled.stdout
    );
    // Errors name the file: an object that does not read, a directory with nothing to read.
    d.write("bad/x.yml", "kind: Pod\nmetadata: {name: p}\nstatus: {podIP: nope}\n");
    let bad = d.netc(&["matrix", "shop.np", "--cluster", "parts,bad"]);
    expect(&bad, 1);
    assert!(bad.stderr.contains("error: bad/x.yml: pod default/p: `nope`"), "{}", bad.stderr);
    std::fs::create_dir_all(d.path().join("empty")).expect("mkdir");
    let empty = d.netc(&["matrix", "shop.np", "--cluster", "empty"]);
    expect(&empty, 2);
    assert!(empty.stderr.contains("no .yaml, .yml or .json files"), "{}", empty.stderr);
    // A directory is read as netc reads every directory: no link leading out of it.
    std::fs::create_dir_all(d.path().join("linked")).expect("mkdir");
    std::os::unix::fs::symlink("/etc/hostname", d.path().join("linked/host.yaml")).expect("symlink");
    let linked = d.netc(&["matrix", "shop.np", "--cluster", "linked"]);
    expect(&linked, 2);
    assert!(linked.stderr.contains("is a symbolic link that leads outside"), "{}", linked.stderr);
    let twice = d.netc_stdin(&["check", "-", "--cluster", "-"], SHOP);
    expect(&twice, 2);
    assert!(twice.stderr.contains("standard input is already read"), "{}", twice.stderr);
}

#[test]
fn every_command_that_takes_a_cluster_takes_several_inputs() {
    let d = shop_dir();
    split_cluster(&d);
    d.write(
        "netpol.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: api, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: api}}\n  policyTypes: [Ingress]\n",
    );
    let cluster = "parts,relabel.yaml";
    let commands: [&[&str]; 8] = [
        &["check", "shop.np", "--cluster", cluster],
        &["matrix", "shop.np", "--cluster", cluster],
        &["explain", "shop.np", "--cluster", cluster, "--from", "shop/api-1", "--to", "shop/db-0:5432"],
        &["diff", "shop.np", "shop.np", "--cluster", cluster],
        &["graph", "shop.np", "--cluster", cluster],
        &["report", "shop.np", "--cluster", cluster, "-o", "r.html"],
        &["build", "--verify", "shop.np", "--cluster", cluster],
        &["import", "--verify", "netpol.yaml", "--cluster", cluster],
    ];
    for args in commands {
        let run = d.netc(args);
        expect(&run, 0);
        assert!(run.stderr.contains("pod shop/web-1 is described twice"), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn namespaces_missing_from_the_cluster_are_one_warning() {
    // Issue 9: a cluster exported from one namespace (`kubectl get pods -n shop`) lacks the
    // namespaces the program also uses; say so once, listing them, not once per selector.
    let d = shop_dir();
    d.write(
        "wide.np",
        "namespace shop {\n  web -> api:8080\n  db ingress guarded\n  api egress guarded\n  api -> db:5432, dns\n  egress api -> payments/gateway:443\n  @allow(W0207)\n  {team=ops}/* -> api:9090\n}\n",
    );
    for command in ["check", "matrix"] {
        let run = d.netc(&[command, "wide.np", "--cluster", "cluster.yaml"]);
        expect(&run, 0);
        assert_eq!(run.stderr.matches("warning: ").count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.contains("warning: the cluster (cluster.yaml) lacks 3 namespaces the program uses"),
            "{}",
            run.stderr
        );
        for line in [
            "  - namespace `kube-system` (first used at wide.np:5:3)",
            "  - namespace `payments` (first used at wide.np:6:3)",
            "  - a namespace labelled `team=ops` (first used at wide.np:8:3)",
        ] {
            assert!(run.stderr.contains(line), "{line}\n{}", run.stderr);
        }
    }
    let strict = d.netc(&["check", "--deny-warnings", "wide.np", "--cluster", "cluster.yaml"]);
    expect(&strict, 1);
    assert!(strict.stderr.contains("warnings about the cluster are denied"), "{}", strict.stderr);
    expect(&d.netc(&["check", "--deny-warnings", "shop.np", "--cluster", "cluster.yaml"]), 0);
    // For CI annotations: every line JSON with --message-format json.
    let json = d.netc(&["check", "--message-format", "json", "wide.np", "--cluster", "cluster.yaml"]);
    expect(&json, 0);
    let lines: Vec<serde_json::Value> =
        json.stderr.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 1, "{}", json.stderr);
    assert_eq!(lines[0]["severity"], "warning");
    assert!(
        lines[0]["message"].as_str().is_some_and(|m| m.starts_with("the cluster (cluster.yaml) lacks 3"))
    );
    assert!(lines[0]["text"].as_str().is_some_and(|t| t.contains("namespace `payments`")));
}

// ---------- matrix ----------

#[test]
fn matrix_prints_a_table_csv_or_json() {
    let d = shop_dir();
    let table = d.netc(&["matrix", "shop.np", "--cluster", "cluster.yaml"]);
    expect(&table, 0);
    assert!(table.stdout.contains("[1] shop/api"), "{}", table.stdout);
    let csv = d.netc(&[
        "matrix",
        "shop.np",
        "--cluster",
        "cluster.yaml",
        "--format",
        "csv",
        "--ports",
        "8080,5432,53/udp",
    ]);
    expect(&csv, 0);
    assert!(csv.stdout.starts_with("from,to,TCP/8080,TCP/5432,UDP/53\n"), "{}", csv.stdout);
    assert!(csv.stdout.contains("\nshop/web-1,shop/api-1,1,0,0\n"), "{}", csv.stdout);
    assert!(csv.stdout.contains("\nshop/api-1,shop/db-0,0,1,0\n"), "{}", csv.stdout);
    let json = d.netc(&["matrix", "shop.np", "--cluster", "cluster.yaml", "--format", "json"]);
    expect(&json, 0);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(value["allowed"].as_array().is_some_and(|a| !a.is_empty()));
    let bad = d.netc(&["matrix", "shop.np", "--cluster", "cluster.yaml", "--ports", "80/icmp"]);
    expect(&bad, 2);
    assert!(bad.stderr.contains("icmp"), "{}", bad.stderr);
}

#[test]
fn an_address_block_covering_pods_is_warned_about_on_stderr() {
    let d = shop_dir();
    d.write("blocks.np", "namespace shop {\n  10.0.0.0/30 -> db:5432\n}\n");
    let run = d.netc(&["matrix", "blocks.np", "--cluster", "cluster.yaml"]);
    expect(&run, 0);
    assert!(
        run.stderr.contains("covers 3 pods of the cluster: shop/api-1, shop/db-0, shop/web-1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("2 |   10.0.0.0/30 -> db:5432"), "{}", run.stderr);
    assert!(!run.stdout.contains("warning"), "warnings go to stderr");
}

#[test]
fn a_selector_that_matches_no_pod_of_the_cluster_is_warned_about_on_stderr() {
    // Issue 9, item 8: `dbb` means `app=dbb`, which no pod of the cluster carries.
    let d = shop_dir();
    d.write("typo.np", "namespace shop {\n  web -> db:5432\n  api -> dbb:5432\n}\n");
    let run = d.netc(&["matrix", "typo.np", "--cluster", "cluster.yaml"]);
    expect(&run, 0);
    assert!(
        run.stderr.contains(
            "warning: pods `app=dbb` of namespace `shop` (policy `dbb`) select no pod of the cluster"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("3 |   api -> dbb:5432"), "{}", run.stderr);
    assert!(!run.stderr.contains("`app=db`"), "the selectors that match say nothing: {}", run.stderr);
}

// ---------- diff ----------

#[test]
fn diff_exits_0_when_nothing_changes_and_1_when_connectivity_changes() {
    let d = shop_dir();
    d.write("same.np", "namespace shop {\n  api -> db:[5432]\n  web -> api:8080\n}\n");
    let same = d.netc(&["diff", "shop.np", "same.np"]);
    expect(&same, 0);
    assert!(same.stdout.contains("no connectivity change"), "{}", same.stdout);
    d.write("more.np", "namespace shop {\n  web -> api:[8080, 8443]\n  api -> db:5432\n}\n");
    let more = d.netc(&["diff", "shop.np", "more.np", "--cluster", "cluster.yaml"]);
    expect(&more, 1);
    assert!(
        more.stdout.contains("shop/web -> shop/api\n  + shop/web-1 -> shop/api-1  TCP/8443\n"),
        "{}",
        more.stdout
    );
    assert!(
        more.stdout.ends_with("connectivity changed: 1 flow added, 0 removed, between 1 workload pair\n"),
        "{}",
        more.stdout
    );
}

#[test]
fn diff_as_markdown_is_a_pull_request_comment_with_the_lines_responsible() {
    let d = shop_dir();
    d.write("more.np", "namespace shop {\n  web -> api:[8080, 8443]\n  api -> db:5432\n}\n");
    let run = d.netc(&["diff", "--format", "markdown", "shop.np", "more.np", "--cluster", "cluster.yaml"]);
    expect(&run, 1);
    assert!(
        run.stdout.starts_with("### netc: connectivity change\n\n**1 flow added, 0 removed**"),
        "{}",
        run.stdout
    );
    let row =
        run.stdout.lines().find(|l| l.starts_with("| ➕ added | `shop/web` | `shop/api` | TCP/8443 | 1 |"));
    let row = row.unwrap_or_else(|| panic!("no row for the added port: {}", run.stdout));
    assert!(row.contains("allowed by `more.np:2` (ingress rule `"), "{row}");
    let same = d.netc(&["diff", "--format", "markdown", "shop.np", "shop.np"]);
    expect(&same, 0);
    assert!(same.stdout.contains("No flow changes."), "{}", same.stdout);
}

#[test]
fn diff_errors_exit_2() {
    let d = shop_dir();
    expect(&d.netc(&["diff", "shop.np", "missing.np"]), 2);
    d.write("broken.np", "web -> \n");
    let broken = d.netc(&["diff", "shop.np", "broken.np"]);
    expect(&broken, 2);
    assert!(broken.stderr.contains("NEW (broken.np) does not compile"), "{}", broken.stderr);
    expect(&d.netc(&["diff", "shop.np", "shop.np", "--cluster", "nowhere.yaml"]), 2);
    expect(&d.netc(&["diff", "shop.np"]), 2);
}

#[test]
fn diff_reads_directories_and_git_revisions() {
    let d = Dir::new();
    d.write("policies/shop.np", SHOP);
    d.write("policies/web.np", "namespace web {\n  frontend -> shop/web:80\n}\n");
    d.git(&["init", "-q"]);
    d.git(&["add", "."]);
    d.git(&["commit", "-q", "-m", "policies"]);
    let unchanged = d.netc(&["diff", "HEAD:policies", "policies"]);
    expect(&unchanged, 0);
    let file_unchanged = d.netc(&["diff", "HEAD:policies/shop.np", "policies/shop.np"]);
    expect(&file_unchanged, 0);
    d.write("policies/shop.np", "namespace shop {\n  web -> api:8080\n}\n");
    let changed = d.netc(&["diff", "HEAD:policies", "policies"]);
    expect(&changed, 1);
    assert!(changed.stdout.contains("shop/api -> shop/db"), "{}", changed.stdout);
    assert!(changed.stdout.contains("  + shop/"), "db's ingress opens again: {}", changed.stdout);
    expect(&d.netc(&["diff", "HEAD~5:policies", "policies"]), 2);
    let not_np = d.netc(&["diff", "HEAD:nothing-here", "policies"]);
    expect(&not_np, 2);
}

// ---------- build --verify ----------

#[test]
fn build_verify_checks_the_yaml_before_writing_it() {
    let d = shop_dir();
    let stream = d.netc(&["build", "--verify", "shop.np"]);
    expect(&stream, 0);
    assert!(stream.stdout.contains("kind: NetworkPolicy"), "{}", stream.stdout);
    assert!(
        stream.stderr.contains("verified: the 2 generated NetworkPolicies mean what the source says"),
        "{}",
        stream.stderr
    );
    let dir = d.netc(&["build", "--verify", "--cluster", "cluster.yaml", "shop.np", "-o", "out"]);
    expect(&dir, 0);
    assert!(dir.stderr.contains("the given cluster"), "{}", dir.stderr);
    assert!(d.path().join("out/kustomization.yaml").exists());
    let seed = d.netc(&[
        "build",
        "--verify",
        "--cluster",
        &fixture("shop-cluster.yaml"),
        &fixture("../../../examples/shop.np"),
    ]);
    expect(&seed, 0);
    // Without --verify, --cluster is for the assertions (and the cluster's warnings): no verify.
    let plain = d.netc(&["build", "--cluster", "cluster.yaml", "shop.np"]);
    expect(&plain, 0);
    assert!(plain.stdout.contains("kind: NetworkPolicy"), "{}", plain.stdout);
    assert!(!plain.stderr.contains("verified"), "{}", plain.stderr);
}

/// A cluster of `pods` pods in namespace shop (apps a0 to a9) and a program over it.
fn large_cluster(pods: usize) -> Dir {
    use std::fmt::Write as _;
    let d = Dir::new();
    let mut yaml = String::from(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n",
    );
    for i in 0..pods {
        let _ = writeln!(
            yaml,
            "- {{apiVersion: v1, kind: Pod, metadata: {{name: p{i}, namespace: shop, labels: {{app: a{}}}}}, status: {{podIP: 10.0.{}.{}}}}}",
            i % 10,
            i / 200,
            i % 200 + 1
        );
    }
    d.write("cluster.yaml", &yaml);
    d.write("shop.np", "namespace shop {\n  a1 -> a2:[80-90, 443]\n}\n");
    d
}

/// Run netc under `ulimit -v KB` (address space), stdout to `out` in the directory.
fn netc_limited(d: &Dir, kb: u32, args: &str) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {kb} && exec \"$NETC\" {args} > out"))
        .env("NETC", env!("CARGO_BIN_EXE_netc"))
        .current_dir(d.path())
        .output()
        .expect("sh runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `--format csv|json` is written pair by pair: output far larger than the memory allowed (the
/// whole output was built in memory first, and aborted with exit 134 under the same limit).
#[test]
fn matrix_csv_and_json_stream_in_bounded_memory() {
    let d = large_cluster(600);
    let ports: Vec<String> = (1..=100).map(|p| p.to_string()).collect();
    let csv = netc_limited(
        &d,
        60_000,
        &format!("matrix shop.np --cluster cluster.yaml --format csv --ports {}", ports.join(",")),
    );
    expect(&csv, 0);
    let written = std::fs::read_to_string(d.path().join("out")).expect("out");
    assert_eq!(written.lines().count(), 1 + 600 * 600, "a header and every pair");
    assert!(written.len() > 60_000 * 1024, "more output ({} bytes) than the memory allowed", written.len());
    assert!(written.contains("\nshop/p1,shop/p2,"), "pairs are written");
    // JSON lists the allowed pairs with their probes: 90,000 pairs of 20 probes held as strings
    // took more than the limit.
    let d = large_cluster(300);
    let json = netc_limited(
        &d,
        60_000,
        &format!("matrix shop.np --cluster cluster.yaml --format json --ports {}", ports[..20].join(",")),
    );
    expect(&json, 0);
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.path().join("out")).expect("out"))
            .expect("valid JSON");
    assert_eq!(value["endpoints"].as_array().map(Vec::len), Some(300));
    assert!(
        value["allowed"].as_array().is_some_and(|a| a.len() > 80_000),
        "every pair but those into a2 is allowed"
    );
}

/// Out of memory is exit 2 with a message, never Rust's abort (exit 134).
#[test]
fn running_out_of_memory_exits_2_with_a_message() {
    let d = large_cluster(3_000);
    let run = netc_limited(&d, 60_000, "matrix shop.np --cluster cluster.yaml --format csv");
    expect(&run, 2);
    assert!(run.stderr.contains("error: out of memory"), "{}", run.stderr);
}
