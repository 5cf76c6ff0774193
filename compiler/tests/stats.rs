//! `netc build --stats` and the build's budget (`--max-...`, and the nodes' map capacities with
//! `--cluster`) as users and CI run them: the table and its JSON form, each failure's message and
//! exit code, and that a build over its budget writes nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::sandbox::{Run, Sandbox, assert_code};

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)).expect("read")
}

/// A sandbox with the shop example and its cluster (short names in messages).
fn shop() -> Sandbox {
    let s = Sandbox::new();
    s.write("shop.np", repo("examples/shop.np"));
    s.write("cluster.yaml", repo("compiler/tests/fixtures/shop-cluster.yaml"));
    s
}

fn snapshot(name: &str, text: &str) {
    common::snapshot_settings().bind(|| insta::assert_snapshot!(name, text));
}

/// The `{"stats": ...}` line of a JSON run's stderr.
fn stats_json(run: &Run) -> serde_json::Value {
    let line = run.stderr.lines().find(|l| l.starts_with("{\"stats\"")).expect("a stats line");
    serde_json::from_str::<serde_json::Value>(line).expect("JSON")["stats"].clone()
}

#[test]
fn stats_table_counts_objects_rules_and_bytes_as_written_to_a_directory() {
    let dir = shop();
    let run = dir.netc(&["build", "--stats", "shop.np", "-o", "out"]);
    assert_code(&run, 0);
    snapshot("stats_table_of_the_shop", &run.stderr);

    // The same figures, from the files the build wrote.
    let mut written: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for entry in std::fs::read_dir(dir.path("out")).expect("out") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        if name == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let policies = netc::yaml::parse_network_policies(&text).expect("NetworkPolicy YAML");
        let spec = policies[0].spec.clone().expect("spec");
        let rules = spec.ingress.map_or(0, |r| r.len()) + spec.egress.map_or(0, |r| r.len());
        let namespace = name.split('.').next().expect("namespace").to_owned();
        let e = written.entry(namespace).or_default();
        *e = (e.0 + 1, e.1 + rules, e.2 + text.len());
    }
    let json = dir.netc(&["build", "--stats", "--message-format", "json", "shop.np", "-o", "out"]);
    assert_code(&json, 0);
    let stats = stats_json(&json);
    let reported: BTreeMap<String, (usize, usize, usize)> = stats["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|n| {
            let count = |k: &str| usize::try_from(n[k].as_u64().expect("a count")).expect("fits");
            (
                n["namespace"].as_str().expect("name").to_owned(),
                (count("objects"), count("rules"), count("bytes")),
            )
        })
        .collect();
    assert_eq!(reported, written);
    assert!(stats.get("nodes").is_none(), "no nodes without a cluster");
}

#[test]
fn stats_with_a_cluster_report_each_nodes_map_entries_beside_their_limits() {
    let dir = shop();
    let run = dir.netc(&["build", "--stats", "--cluster", "cluster.yaml", "shop.np", "-o", "out"]);
    assert_code(&run, 0);
    snapshot("stats_table_of_the_shop_on_its_cluster", &run.stderr);

    let json =
        dir.netc(&["build", "--stats", "--message-format", "json", "--cluster", "cluster.yaml", "shop.np"]);
    assert_code(&json, 0);
    let nodes = stats_json(&json)["nodes"].as_array().expect("nodes").clone();
    let names: Vec<&str> = nodes.iter().map(|n| n["node"].as_str().expect("node")).collect();
    assert_eq!(names, ["worker-1", "worker-2", "worker-3"]);
    for node in &nodes {
        let maps = node["maps"].as_array().expect("maps");
        let map = |name: &str| maps.iter().find(|m| m["map"] == name).expect("map reported");
        // Each node guards its own pods and knows every pod address of the cluster.
        assert_eq!(map("netc_endpoints")["entries"], node["pods"]);
        assert!(map("netc_policy")["entries"].as_u64().expect("entries") > 0);
        assert_eq!(map("netc_policy")["capacity"], netc_ir::capacity::POLICY);
        assert_eq!(map("netc_policy")["limit"], netc_ir::capacity::POLICY / 2);
        assert_eq!(map("netc_rule_counters")["limit"], serde_json::Value::Null);
    }
    let ipcache: Vec<&serde_json::Value> = nodes
        .iter()
        .map(|n| {
            &n["maps"].as_array().expect("maps").iter().find(|m| m["map"] == "netc_ipcache").expect("ipcache")
                ["entries"]
        })
        .collect();
    assert!(ipcache.windows(2).all(|w| w[0] == w[1]), "every node has every address: {ipcache:?}");
}

/// A build over its budget fails with exit 1, says what, where, how much and how to fix it, and
/// writes nothing: not to stdout, not to the output directory (`-o`, if given).
fn assert_refused(dir: &Sandbox, args: &[&str], says: &[&str]) -> String {
    let run = dir.netc(args);
    assert_code(&run, 1);
    assert_eq!(run.stdout, "", "nothing on stdout");
    for s in says {
        assert!(run.stderr.contains(s), "{s:?} not in:\n{}", run.stderr);
    }
    assert!(run.stderr.contains("= help: "), "{}", run.stderr);
    assert!(run.stderr.ends_with("error: the build is over its budget; nothing written\n"), "{}", run.stderr);
    if let Some(out) = args.iter().position(|a| *a == "-o").map(|i| args[i + 1]) {
        assert!(!dir.path(out).exists(), "{out} was not created");
    }
    run.stderr
}

#[test]
fn each_namespace_limit_fails_the_build_naming_the_namespace_the_count_and_the_limit() {
    let dir = shop();
    let out = assert_refused(
        &dir,
        &["build", "--max-objects-per-namespace", "4", "shop.np", "-o", "out"],
        &[
            "error: namespace `shop`: this build writes 7 NetworkPolicy objects, over --max-objects-per-namespace 4",
        ],
    );
    snapshot("stats_over_max_objects_per_namespace", &out);
    assert_refused(
        &dir,
        &["build", "--max-rules-per-namespace", "3", "shop.np", "-o", "out"],
        &["NetworkPolicy rules, over --max-rules-per-namespace 3"],
    );
    assert_refused(
        &dir,
        &["build", "--max-bytes-per-namespace", "1KiB", "shop.np"],
        &["bytes of NetworkPolicy YAML, over --max-bytes-per-namespace 1024"],
    );
    // At the figures themselves, the build passes.
    let json = dir.netc(&["build", "--stats", "--message-format", "json", "shop.np"]);
    let stats = stats_json(&json);
    let most = |k: &str| {
        stats["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|n| n[k].as_u64().expect("count"))
            .max()
            .expect("some")
    };
    let (objects, rules, bytes) =
        (most("objects").to_string(), most("rules").to_string(), most("bytes").to_string());
    let run = dir.netc(&[
        "build",
        "--max-objects-per-namespace",
        &objects,
        "--max-rules-per-namespace",
        &rules,
        "--max-bytes-per-namespace",
        &bytes,
        "shop.np",
        "-o",
        "out",
    ]);
    assert_code(&run, 0);
    assert_eq!(run.stderr, "out: 20 policies, 21 written, 0 removed, 0 unchanged\n");
}

#[test]
fn a_map_limit_fails_the_build_naming_the_node_the_map_and_the_entries() {
    let dir = shop();
    let out = assert_refused(
        &dir,
        &["build", "--cluster", "cluster.yaml", "--max-map-entries", "ipcache=20", "shop.np", "-o", "out"],
        &[
            // Every pod address of the cluster (30 pods) is an entry on every node.
            "error: node `worker-1`: map `netc_ipcache` needs 30 entries for this build, over its limit of 20 (--max-map-entries ipcache=20;",
            "error: node `worker-3`: map `netc_ipcache`",
        ],
    );
    snapshot("stats_over_max_map_entries", &out);
    // A share of every map: 0.001% of the policy map is 10 entries.
    assert_refused(
        &dir,
        &["build", "--cluster", "cluster.yaml", "--max-map-entries", "0.001%", "shop.np", "-o", "out"],
        &["map `netc_policy` needs", "over its limit of 10 (--max-map-entries 0.001%;"],
    );
    // In JSON, one error line per map over its limit.
    let run = dir.netc(&[
        "build",
        "--message-format",
        "json",
        "--cluster",
        "cluster.yaml",
        "--max-map-entries",
        "ipcache=20",
        "shop.np",
    ]);
    assert_code(&run, 1);
    let errors: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON lines"))
        .filter(|v| v["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 3, "{}", run.stderr);
    assert!(
        errors[0]["message"]
            .as_str()
            .expect("message")
            .starts_with("node `worker-1`: map `netc_ipcache` needs 30")
    );
}

#[test]
fn bad_budget_options_are_usage_errors() {
    let dir = shop();
    for (args, says) in [
        (&["--max-map-entries", "40%"][..], "--cluster"),
        (&["--cluster", "cluster.yaml", "--max-map-entries", "60%"][..], "more than half a map"),
        (&["--cluster", "cluster.yaml", "--max-map-entries", "conntrack=10"][..], "no map `conntrack`"),
        (&["--cluster", "cluster.yaml", "--max-map-entries", "1000"][..], "share of every map"),
        (&["--max-bytes-per-namespace", "1GB"][..], "not a number of bytes"),
    ] {
        let run = dir.netc(&[&["build"][..], args, &["shop.np"]].concat());
        assert_code(&run, 2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}

/// A cluster of `pods` pods on one node, `big`, each with an address.
fn crowded_node(pods: usize) -> String {
    let items: Vec<serde_json::Value> = (0..pods)
        .map(|i| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"namespace": "default", "name": format!("p{i}"), "labels": {"app": "web"}},
                "spec": {"nodeName": "big"},
                "status": {"podIPs": [{"ip": format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255)}]}
            })
        })
        .chain([
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
        ])
        .collect();
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

#[test]
fn without_a_limit_a_node_whose_map_would_be_over_half_full_fails_the_build() {
    let dir = Sandbox::new();
    dir.write("web.np", "web isolated\n");
    let half = usize::try_from(netc_ir::capacity::ENDPOINTS / 2).expect("fits");
    dir.write("full.json", crowded_node(half));
    dir.write("over.json", crowded_node(half + 1));
    let run = dir.netc(&["build", "--cluster", "full.json", "web.np", "-o", "out"]);
    assert_code(&run, 0);
    assert_refused(
        &dir,
        &["build", "--cluster", "over.json", "web.np", "-o", "out2"],
        &[&format!(
            "error: node `big`: map `netc_endpoints` needs {} entries for this build, over its limit of {half} (half the map's capacity of {}",
            half + 1,
            netc_ir::capacity::ENDPOINTS
        )],
    );
}
