//! `netcd run --kubernetes` end to end: network-namespace pods, a fake API server speaking the
//! real list/watch protocol to kube-rs's real client (common/fake_apiserver.rs), netcd watching
//! it, and real TCP traffic whose verdicts change as the test changes objects through the API:
//! relabels (allowed -> denied -> allowed), a namespace relabel, a pod's address arriving late, an
//! address change, a pod deleted and recreated under its name, a dropped watch (re-watch from the
//! last version), the API server unavailable (last state enforced), 410 Gone (relist), bookmarks
//! (no relist needed). Then /metrics is scraped, parsed with a Prometheus text-format parser, and
//! its verdict counts checked against the connections the test made. Needs root.

mod common;
#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::netns::{Bpffs, EchoServer, Netcd, Node, connect, echo};
use common::*;
use fake_apiserver::{FakeApiServer, configmap, namespace, pod};
use netc_ir::{LabelSelector, Peer};

const WAIT: Duration = Duration::from_secs(30);
const NODE: &str = "test-node";

/// GET `path` on `addr`: (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    // Chunked bodies: keep it simple, the parser below skips chunk-size lines (hex digits only).
    Some((status, body))
}

/// Wait (bounded) until `check` holds, polling.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("not within {WAIT:?}: {what}");
}

/// Scrape and parse /metrics.
fn scrape(addr: SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = http_get(addr, "/metrics").expect("scrape /metrics");
    assert_eq!(status, 200, "{body}");
    // Drop the chunk-size lines of a chunked body and the OpenMetrics `# EOF` marker.
    let lines = body
        .lines()
        .filter(|l| (l.is_empty() || !l.chars().all(|c| c.is_ascii_hexdigit())) && *l != "# EOF")
        .map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("a valid Prometheus text exposition")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn kubernetes_watch_drives_enforcement_through_relabels_relists_and_outages_needs_root() {
    if !can_run_as_root("kubernetes_watch_drives_enforcement_needs_root") {
        return;
    }
    let node = Node::new(
        140,
        &[
            ("shop", "client", "client"),
            ("shop", "server", "server"),
            ("shop", "late", "client"),
            ("ops", "probe", "probe"),
        ],
    );
    let _server = EchoServer::start(node.pod("server"), 8080);
    let bpffs = Bpffs::new(&node.tag);
    let dir = std::env::temp_dir().join(format!("netc-kube-{}", node.tag));
    std::fs::create_dir_all(&dir).expect("temp dir");

    // shop/server accepts 8080 from app=client of its namespace and from any pod of a
    // team=monitoring namespace.
    let monitoring =
        Peer::Pods { namespaces: Some(LabelSelector::labels([("team", "monitoring")])), pods: None };
    let ir = ir(vec![policy(
        "shop",
        "server",
        guarded(vec![
            rule("allow-client", 3, vec![app("client")], vec![tcp(8080)]),
            rule("allow-monitoring", 4, vec![monitoring], vec![tcp(8080)]),
        ]),
        open(),
    )]);

    let api = FakeApiServer::start();
    let kubeconfig = dir.join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    let pod_object = |name: &str, labels: &[(&str, &str)], ip: Option<&str>| {
        let p = node.pod(name);
        pod(&p.namespace, name, labels, ip, &p.host_if, NODE)
    };
    let ip_of = |name: &str| node.pod(name).ip.to_string();
    api.apply(namespace("shop", &[]));
    api.apply(namespace("ops", &[]));
    api.apply(configmap("netc-system", "netc-ir", "policies.ir.json", &ir.to_json()));
    for name in ["client", "server", "probe"] {
        let app = node.pod(name).app.clone();
        api.apply(pod_object(name, &[("app", &app)], Some(&ip_of(name))));
    }
    // `late` is scheduled but has no address yet.
    api.apply(pod_object("late", &[("app", "client")], None));

    let netcd = Netcd::start(&[
        "run",
        "--kubernetes",
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--node",
        NODE,
        "--bpffs",
        bpffs.arg(),
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let line = netcd.wait_log("metrics on http://", WAIT);
    let metrics: SocketAddr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .expect("metrics address");
    netcd.wait_log("first sync with the API server applied", WAIT);
    assert_eq!(http_get(metrics, "/readyz").map(|r| r.0), Some(200), "ready after the first sync");
    assert_eq!(http_get(metrics, "/healthz").map(|r| r.0), Some(200));

    let (client, server, late, probe) =
        (node.pod("client"), node.pod("server"), node.pod("late"), node.pod("probe"));
    // Every connection attempt to server:8080 goes through `reach`, which counts what the
    // metrics must show: connections from client and late opened (only allow-client ever lets
    // them in), and attempts refused (each is at least one deny verdict).
    let allowed_by_client_rule = std::cell::Cell::new(0u32);
    let refused = std::cell::Cell::new(0u32);
    let reach = |from: &common::netns::TestPod| {
        // A connection opened is one SYN allowed at server's ingress: one allow verdict, even if
        // a policy change made meanwhile cuts it before the echo.
        let Some(mut stream) = connect(from, server, 8080, Duration::from_millis(1500)) else {
            refused.set(refused.get() + 1);
            return false;
        };
        if from.name == "client" || from.name == "late" {
            allowed_by_client_rule.set(allowed_by_client_rule.get() + 1);
        }
        echo(&mut stream, Duration::from_millis(1500))
    };
    assert!(reach(client), "first sync: client -> server:8080");
    assert!(!reach(probe), "ops is not team=monitoring");
    assert!(!reach(late), "a pod without an address is no peer: its packets come from nobody known");

    // The address arrives.
    api.apply(pod_object("late", &[("app", "client")], Some(&ip_of("late"))));
    eventually("late's address is enforced", || reach(late));

    // Relabel: allowed -> denied -> allowed.
    api.apply(pod_object("client", &[("app", "visitor")], Some(&ip_of("client"))));
    eventually("client relabelled app=visitor is denied", || !reach(client));
    api.apply(pod_object("client", &[("app", "client")], Some(&ip_of("client"))));
    eventually("client relabelled back is allowed", || reach(client));

    // A namespace relabel.
    api.apply(namespace("ops", &[("team", "monitoring")]));
    eventually("ops labelled team=monitoring lets probe in", || reach(probe));

    // An address change: the API says client is elsewhere; its real address is nobody's now.
    api.apply(pod_object("client", &[("app", "client")], Some("10.213.140.200")));
    eventually("client's old address is no longer app=client", || !reach(client));
    api.apply(pod_object("client", &[("app", "client")], Some(&ip_of("client"))));
    eventually("client's address back", || reach(client));

    // Deleted, then recreated under the same name.
    api.delete("Pod", "shop", "client");
    eventually("client deleted is denied", || !reach(client));
    api.apply(pod_object("client", &[("app", "client")], Some(&ip_of("client"))));
    eventually("client recreated is allowed", || reach(client));

    // A dropped watch: netcd re-watches from the last version it saw and misses nothing.
    let watches_before = api.requests("watch pods");
    let lists_before = api.requests("list pods");
    api.drop_watches();
    api.apply(pod_object("client", &[("app", "visitor")], Some(&ip_of("client"))));
    eventually("a change made while the watch reconnects arrives", || !reach(client));
    assert!(api.requests("watch pods") > watches_before, "netcd watched pods again");
    assert_eq!(api.requests("list pods"), lists_before, "a dropped watch needs no relist");

    // The API server unavailable: the last state stays enforced.
    api.set_unavailable(true);
    netcd.wait_log("the last state applied stays enforced", WAIT);
    assert!(!reach(client), "still denied while the API server is down");
    assert!(reach(probe), "still allowed while the API server is down");
    assert_eq!(http_get(metrics, "/readyz").map(|r| r.0), Some(200), "enforcing the last state: still ready");
    // Changes made meanwhile, and the log they are in compacted away: the watch gets 410 Gone
    // when it is back and must relist. The relist also drops a pod deleted meanwhile.
    api.apply(pod_object("client", &[("app", "client")], Some(&ip_of("client"))));
    api.delete("Pod", "ops", "probe");
    api.compact();
    let lists_before = api.requests("list pods");
    api.set_unavailable(false);
    eventually("after 410 Gone and a relist, client is allowed again", || reach(client));
    eventually("the relist removed probe, deleted while netcd was not watching", || !reach(probe));
    assert!(api.requests("list pods") > lists_before, "410 Gone made netcd relist pods");

    // Bookmarks: the ConfigMap watch sees no events, only bookmarks; with them its version is
    // current, so a compaction now does not make it relist.
    // The ConfigMap watch may still be backing off after the outage: wait until it watches.
    let configmap_watches = api.requests("watch configmaps");
    api.drop_watches();
    eventually("the ConfigMap is watched", || api.requests("watch configmaps") > configmap_watches);
    std::thread::sleep(Duration::from_millis(300));
    // Changes the ConfigMap watch does not see move the version on first.
    api.apply(pod_object("late", &[("app", "client")], Some(&ip_of("late"))));
    api.apply(namespace("shop", &[("tier", "shop")]));
    std::thread::sleep(Duration::from_millis(500));
    let configmap_lists = api.requests("list configmaps");
    let configmap_watches = api.requests("watch configmaps");
    api.bookmark();
    std::thread::sleep(Duration::from_millis(500));
    api.compact();
    api.drop_watches();
    eventually("netcd watches the ConfigMap again", || api.requests("watch configmaps") > configmap_watches);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        api.requests("list configmaps"),
        configmap_lists,
        "the bookmark spared the ConfigMap a relist"
    );

    // The policy changes through its ConfigMap: a new generation. allow-client goes.
    let narrower = common::ir(vec![policy(
        "shop",
        "server",
        guarded(vec![rule(
            "allow-monitoring",
            4,
            vec![Peer::Pods {
                namespaces: Some(LabelSelector::labels([("team", "monitoring")])),
                pods: None,
            }],
            vec![tcp(8080)],
        )]),
        open(),
    )]);
    api.apply(configmap("netc-system", "netc-ir", "policies.ir.json", &narrower.to_json()));
    eventually("the new policy from the ConfigMap denies client", || !reach(client));
    // A broken policy is refused and the last one stays.
    api.apply(configmap("netc-system", "netc-ir", "policies.ir.json", "{not json"));
    netcd.wait_log("the last policy stays enforced", WAIT);
    assert!(!reach(client));

    // The metrics, parsed, against the traffic.
    std::thread::sleep(Duration::from_millis(500));
    let scrape = scrape(metrics);
    // One allow verdict by allow-client per connection opened; a SYN allowed just before a
    // policy change whose connection the client then saw fail (its SYN-ACK judged by the new
    // state) adds one, so a few more are tolerated, never fewer.
    let allowed = value(
        &scrape,
        "netcd_verdicts_total",
        &[("direction", "ingress"), ("verdict", "allow"), ("rule", "allow-client"), ("reason", "new-flow")],
    );
    let opened = f64::from(allowed_by_client_rule.get());
    assert!(
        (opened..=opened + 2.0).contains(&allowed),
        "allow verdicts by allow-client ({allowed}) against connections opened ({opened})"
    );
    let denied = value(
        &scrape,
        "netcd_verdicts_total",
        &[("direction", "ingress"), ("verdict", "deny"), ("reason", "new-flow")],
    );
    assert!(
        denied >= f64::from(refused.get()) && refused.get() >= 9,
        "every refused attempt ({}) is at least one deny verdict: {denied}",
        refused.get()
    );
    assert_eq!(
        value(&scrape, "netcd_drops_total", &[]),
        value(&scrape, "netcd_packets_total", &[("result", "dropped")])
    );
    assert!(value(&scrape, "netcd_drops_total", &[]) >= denied, "each deny verdict is a dropped packet");
    assert!(
        value(&scrape, "netcd_watch_relists_total", &[("resource", "pods")]) >= 2.0,
        "first list and the 410 relist"
    );
    assert!(value(&scrape, "netcd_watch_restarts_total", &[("resource", "pods")]) >= 1.0, "the outage");
    assert_eq!(value(&scrape, "netcd_api_server_up", &[]), 1.0);
    assert_eq!(value(&scrape, "netcd_endpoints", &[]), 3.0, "client, server, late are local (probe deleted)");
    assert!(value(&scrape, "netcd_last_sync_timestamp_seconds", &[]) > 1.0e9);
    assert!(value(&scrape, "netcd_map_entries", &[("map", "netc_ipcache")]) >= 3.0);
    assert!(value(&scrape, "netcd_map_capacity", &[("map", "netc_conntrack")]) >= 1024.0);
    assert!(value(&scrape, "netcd_apply_seconds_count", &[("source", "watch")]) >= 10.0);
    // The figure docs/kubernetes.md quotes: from a watch event's arrival to its state in the maps.
    let (sum, count) = (
        value(&scrape, "netcd_event_to_enforced_seconds_sum", &[]),
        value(&scrape, "netcd_event_to_enforced_seconds_count", &[]),
    );
    eprintln!("event to enforced: {count} applies, mean {:.3} ms", sum / count.max(1.0) * 1e3);
    drop(netcd);
    let _ = std::fs::remove_dir_all(&dir);
}
