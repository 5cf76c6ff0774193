//! End to end: a node made of network namespaces and veth pairs, `netcd` attached to the
//! host-side veths, real TCP connections. The article's four scenarios, the node's own
//! connections into guarded pods (kubelet probes), replies, audit, reload
//! revoking an open connection, bad input kept out, kill -9 and restart, detach; over both
//! attach paths (TCX links and clsact/netlink). Needs root; skips with a message otherwise.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::netns::{Bpffs, EchoServer, Netcd, Node, connect, echo, node_reaches, reaches};
use common::*;
use netc_ir::{Ir, LabelSelector, Peer};

const WAIT: Duration = Duration::from_secs(20);

/// The article's four policies, as netc lowers them (frontend -> backend:8080 for the first).
fn article_ir(with_frontend_rule: bool) -> Ir {
    let fe_rules = if with_frontend_rule {
        vec![rule("allow-frontend", 3, vec![app("frontend")], vec![tcp(8080)])]
    } else {
        vec![]
    };
    let monitoring =
        Peer::Pods { namespaces: Some(LabelSelector::labels([("team", "monitoring")])), pods: None };
    ir(vec![
        policy(
            "app-space",
            "web",
            guarded(vec![rule("allow-monitoring", 12, vec![monitoring], vec![])]),
            open(),
        ),
        policy(
            "default",
            "backend",
            guarded(fe_rules),
            guarded(vec![rule("restrict-egress", 6, vec![app("database")], vec![])]),
        ),
        policy("default", "hermit", guarded(vec![]), guarded(vec![])),
    ])
}

const PODS: &[(&str, &str, &str)] = &[
    ("default", "frontend", "frontend"),
    ("default", "backend", "backend"),
    ("default", "database", "database"),
    ("default", "hermit", "hermit"),
    ("app-space", "web", "web"),
    ("monitoring", "prometheus", "prometheus"),
    ("other", "intruder", "intruder"),
    ("default", "frontend-2", "frontend"),
];

const NAMESPACES: &[(&str, &[(&str, &str)])] =
    &[("default", &[]), ("app-space", &[]), ("monitoring", &[("team", "monitoring")]), ("other", &[])];

/// Fields drop in order: detach first, while the interfaces still exist.
struct Setup {
    bpffs: Bpffs,
    _servers: Vec<EchoServer>,
    node: Node,
    dir: PathBuf,
    ir_path: PathBuf,
    inventory_path: PathBuf,
}

impl Setup {
    fn new(subnet: u8) -> Setup {
        let node = Node::new(subnet, PODS);
        let dir = std::env::temp_dir().join(format!("netc-e2e-{}", node.tag));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ir_path = dir.join("policies.ir.json");
        let inventory_path = dir.join("inventory.json");
        std::fs::write(&ir_path, article_ir(true).to_json()).expect("write IR");
        // frontend-2 joins later (a new replica): see the reload test.
        std::fs::write(&inventory_path, node.inventory_json(NAMESPACES, &["frontend-2"]))
            .expect("write inventory");
        let servers = vec![
            EchoServer::start(node.pod("backend"), 8080),
            EchoServer::start(node.pod("backend"), 9999),
            EchoServer::start(node.pod("database"), 5432),
            EchoServer::start(node.pod("frontend"), 9000),
            EchoServer::start(node.pod("hermit"), 7000),
            EchoServer::start(node.pod("web"), 80),
        ];
        let bpffs = Bpffs::new(&node.tag);
        Setup { node, dir, ir_path, inventory_path, bpffs, _servers: servers }
    }

    fn netcd(&self, mode: &str, attach: &str) -> Netcd {
        let d = self.start_netcd(mode, attach);
        d.wait_log("live", WAIT);
        d
    }

    fn start_netcd(&self, mode: &str, attach: &str) -> Netcd {
        Netcd::start(&[
            "run",
            "--ir",
            self.ir_path.to_str().expect("utf8"),
            "--inventory",
            self.inventory_path.to_str().expect("utf8"),
            "--mode",
            mode,
            "--attach",
            attach,
            "--bpffs",
            self.bpffs.arg(),
        ])
    }

    fn reaches(&self, from: &str, to: &str, port: u16) -> bool {
        reaches(self.node.pod(from), self.node.pod(to), port)
    }

    /// The article's four scenarios, each allowed flow also proving that replies come back.
    fn assert_article_scenarios(&self) {
        // allow-frontend: frontend reaches backend:8080; nothing else reaches backend.
        assert!(self.reaches("frontend", "backend", 8080), "frontend -> backend:8080");
        assert!(!self.reaches("frontend", "backend", 9999), "frontend -> backend:9999 is not declared");
        assert!(!self.reaches("database", "backend", 8080), "database -> backend");
        // restrict-egress: backend talks to database only.
        assert!(self.reaches("backend", "database", 5432), "backend -> database");
        assert!(!self.reaches("backend", "frontend", 9000), "backend -> frontend");
        // complete-isolation: hermit reaches nothing and nothing reaches it.
        assert!(!self.reaches("hermit", "frontend", 9000), "hermit -> frontend");
        assert!(!self.reaches("frontend", "hermit", 7000), "frontend -> hermit");
        // allow-monitoring: only the monitoring namespace reaches web.
        assert!(self.reaches("prometheus", "web", 80), "monitoring -> web");
        assert!(!self.reaches("frontend", "web", 80), "default -> web");
        assert!(!self.reaches("intruder", "web", 80), "other -> web");
        // The node reaches every pod, guarded or not (Kubernetes; kubelet probes): hermit allows
        // nobody in, backend:9999 is allowed to no pod.
        assert!(node_reaches(self.node.pod("hermit"), 7000), "node -> hermit");
        assert!(node_reaches(self.node.pod("backend"), 9999), "node -> backend:9999");
        // Unselected doors are untouched.
        assert!(self.reaches("database", "frontend", 9000), "database -> frontend (both doors open)");
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn netcd_cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netcd")).args(args).output().expect("run netcd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn find_event<'a>(
    events: &'a [serde_json::Value],
    verdict: &str,
    src: &str,
    dst: &str,
) -> Option<&'a serde_json::Value> {
    events.iter().find(|e| e["verdict"] == verdict && e["src"] == src && e["dst"] == dst)
}

#[test]
fn article_scenarios_over_tcx_with_events_status_and_detach_needs_root() {
    if !can_run_as_root("article_scenarios_over_tcx_with_events_status_and_detach_needs_root") {
        return;
    }
    let s = Setup::new(10);
    let netcd = s.netcd("enforce", "tcx");
    s.assert_article_scenarios();

    let db = s.node.pod("database").ip.to_string();
    let be = s.node.pod("backend").ip.to_string();
    let fe = s.node.pod("frontend").ip.to_string();
    let events = netcd.events_until(WAIT, |events| {
        find_event(events, "deny", &db, &be).is_some() && find_event(events, "allow", &fe, &be).is_some()
    });
    let deny = find_event(&events, "deny", &db, &be).expect("a deny event for database -> backend");
    assert_eq!(deny["direction"], "ingress");
    assert_eq!(deny["pod"], "default/backend");
    assert_eq!(deny["dport"], 8080);
    assert_eq!(deny["protocol"], "TCP");
    assert!(deny["rule"].is_null());
    assert!(deny["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    let allow = find_event(&events, "allow", &fe, &be).expect("an allow event for frontend -> backend");
    assert_eq!(allow["rule"]["id"], "allow-frontend");
    assert_eq!(allow["rule"]["source"], "test.np:3");

    let (ok, text) = netcd_cli(&["status", "--bpffs", s.bpffs.arg()]);
    assert!(ok, "{text}");
    assert!(text.contains("endpoints: 7"), "{text}"); // frontend-2 is not in the inventory
    assert!(text.contains(&s.node.pod("hermit").host_if), "{text}");

    // detach removes enforcement: database reaches backend again.
    drop(netcd);
    let (ok, text) = netcd_cli(&["detach", "--bpffs", s.bpffs.arg()]);
    assert!(ok, "{text}");
    assert!(!s.bpffs.0.exists(), "pins removed");
    assert!(s.reaches("database", "backend", 8080), "no enforcement after detach");
    let (ok, text) = netcd_cli(&["status", "--bpffs", s.bpffs.arg()]);
    assert!(!ok && text.contains("no netc datapath is pinned"), "{text}");
}

#[test]
fn article_scenarios_over_clsact_netlink_survive_kill_needs_root() {
    if !can_run_as_root("article_scenarios_over_clsact_netlink_survive_kill_needs_root") {
        return;
    }
    let s = Setup::new(11);
    let mut netcd = s.netcd("enforce", "netlink");
    let tc = std::process::Command::new("tc")
        .args(["filter", "show", "dev", &s.node.pod("backend").host_if, "ingress"])
        .output()
        .expect("tc");
    assert!(String::from_utf8_lossy(&tc.stdout).contains("netc_from_pod"), "a clsact filter is attached");
    s.assert_article_scenarios();
    netcd.kill();
    assert!(!s.reaches("database", "backend", 8080), "tc filters keep enforcing after kill -9");
    assert!(s.reaches("frontend", "backend", 8080));
    let restarted = s.netcd("enforce", "netlink");
    s.assert_article_scenarios();
    // The verdicts queued while netcd was down came out with `"pod": null` and
    // `"rule": {"index": 1}`: one schema for every line now, those included.
    let events = restarted.events(Duration::from_millis(500));
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    };
    let sorted = |k: &[&str]| {
        let mut k: Vec<String> = k.iter().map(|s| (*s).to_owned()).collect();
        k.sort();
        k
    };
    let (fe, be) = (s.node.pod("frontend").ip.to_string(), s.node.pod("backend").ip.to_string());
    let queued = events
        .iter()
        .find(|e| {
            e["verdict"] == "allow"
                && e["src"] == fe.as_str()
                && e["dst"] == be.as_str()
                && e["note"].as_str().is_some_and(|n| n.contains("earlier netcd"))
        })
        .unwrap_or_else(|| panic!("the allowed flow made while netcd was down: {events:#?}"));
    assert_eq!(queued["pod"], "default/backend", "{queued}");
    for e in &events {
        let mut k = keys(e);
        k.retain(|k| k != "note");
        let line = [
            "time",
            "verdict",
            "direction",
            "pod",
            "interface",
            "src",
            "sport",
            "dst",
            "dport",
            "protocol",
            "rule",
            "reason",
            "generation",
        ];
        assert_eq!(k, sorted(&line), "{e}");
        assert!(e["pod"].is_string(), "{e}");
        assert!(e["rule"].is_null() || keys(&e["rule"]) == sorted(&["id", "source", "policy"]), "{e}");
    }
    let tc = std::process::Command::new("tc")
        .args(["filter", "show", "dev", &s.node.pod("backend").host_if, "ingress"])
        .output()
        .expect("tc");
    let filters = String::from_utf8_lossy(&tc.stdout);
    let ours = filters.lines().filter(|l| l.contains("name netc_from_pod")).count();
    assert_eq!(ours, 1, "the restart replaced its filter in place: {filters}");
}

#[test]
fn audit_mode_drops_nothing_and_reports_needs_root() {
    if !can_run_as_root("audit_mode_drops_nothing_and_reports_needs_root") {
        return;
    }
    let s = Setup::new(12);
    let netcd = s.netcd("audit", "tcx");
    assert!(s.reaches("database", "backend", 8080), "audit lets a would-be drop through");
    assert!(s.reaches("frontend", "hermit", 7000));
    assert!(s.reaches("frontend", "backend", 8080));
    let db = s.node.pod("database").ip.to_string();
    let be = s.node.pod("backend").ip.to_string();
    let events = netcd.events_until(WAIT, |events| find_event(events, "audit", &db, &be).is_some());
    let audit = find_event(&events, "audit", &db, &be).expect("an audit event for database -> backend");
    assert_eq!(audit["direction"], "ingress");
    assert!(audit["note"].as_str().is_some_and(|n| n.contains("no rule")));
    assert!(events.iter().all(|e| e["verdict"] != "deny"), "audit never denies: {events:?}");
}

#[test]
fn reload_revokes_open_connections_keeps_bad_input_out_and_survives_kill_needs_root() {
    if !can_run_as_root("reload_revokes_open_connections_keeps_bad_input_out_and_survives_kill_needs_root") {
        return;
    }
    let s = Setup::new(13);
    let mut netcd = s.netcd("enforce", "tcx");
    let (fe, be) = (s.node.pod("frontend"), s.node.pod("backend"));
    let mut open = connect(fe, be, 8080, Duration::from_secs(2)).expect("frontend -> backend connects");
    assert!(echo(&mut open, Duration::from_secs(2)));

    // A new frontend replica: added in place, enforced at once, nothing judged again.
    assert!(!s.reaches("frontend-2", "backend", 8080), "unknown to netcd yet: not a frontend");
    std::fs::write(&s.inventory_path, s.node.inventory_json(NAMESPACES, &[])).expect("write inventory");
    let line = netcd.wait_log("changed in place in generation 1", WAIT);
    assert!(!line.contains("judged again"), "adding a replica judges nothing again: {line}");
    assert!(s.reaches("frontend-2", "backend", 8080), "the new replica is a frontend");
    assert!(echo(&mut open, Duration::from_secs(2)), "open connections are untouched");

    // The replica goes away again: removed in place; its open connection stops passing, the
    // other frontend's does not.
    let mut open2 = connect(s.node.pod("frontend-2"), be, 8080, Duration::from_secs(2))
        .expect("frontend-2 -> backend connects");
    assert!(echo(&mut open2, Duration::from_secs(2)));
    std::fs::write(&s.inventory_path, s.node.inventory_json(NAMESPACES, &["frontend-2"])).expect("write");
    let line = netcd.wait_log("changed in place in generation 1", WAIT);
    assert!(line.contains("judged again"), "a removal judges open connections again: {line}");
    assert!(!echo(&mut open2, Duration::from_millis(1500)), "the removed pod's connection is cut");
    assert!(echo(&mut open, Duration::from_secs(2)), "the remaining frontend's connection passes");

    // A broken IR is refused; the running state stays.
    std::fs::write(&s.ir_path, "{ not json").expect("write");
    netcd.wait_log("previous state stays in force", WAIT);
    assert!(echo(&mut open, Duration::from_secs(2)), "the connection survives a rejected IR");
    assert!(!s.reaches("database", "backend", 8080));

    // Revoke frontend -> backend: the open connection is cut at its next packet.
    std::fs::write(&s.ir_path, article_ir(false).to_json()).expect("write");
    netcd.wait_log("generation 2 live", WAIT);
    assert!(!echo(&mut open, Duration::from_millis(1500)), "the revoked connection no longer passes");
    assert!(!s.reaches("frontend", "backend", 8080));
    assert!(s.reaches("backend", "database", 5432), "unrelated flows still pass");

    // kill -9: the pinned links and maps keep enforcing.
    netcd.kill();
    assert!(!s.reaches("frontend", "backend", 8080), "still revoked after kill -9");
    assert!(s.reaches("backend", "database", 5432));
    assert!(!s.reaches("hermit", "frontend", 9000));

    // A restarted netcd adopts the pinned state and applies the restored IR.
    std::fs::write(&s.ir_path, article_ir(true).to_json()).expect("write");
    let restarted = s.start_netcd("enforce", "tcx");
    restarted.wait_log("adopting the datapath pinned", WAIT);
    restarted.wait_log("generation 3 live", WAIT);
    s.assert_article_scenarios();
}

/// Runs a setup command, panicking with its stderr when it fails.
fn run(args: &[&str]) {
    let out = std::process::Command::new(args[0]).args(&args[1..]).output().expect("run a setup command");
    assert!(out.status.success(), "`{}`: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A client outside the cluster behind a veth of the node, and kube-proxy's shape of NodePort
/// rules for it (iptables, nat table: DNAT in PREROUTING, MASQUERADE in POSTROUTING), in chains
/// named after the test; all removed when dropped.
struct Outside {
    netns: String,
    host_if: String,
    chain: String,
    rules: Vec<Vec<String>>,
}

impl Outside {
    fn new(tag: &str, subnet: u8) -> Outside {
        let netns = format!("netc-{tag}-out");
        let host_if = format!("nc{tag}o");
        let peer = format!("nc{tag}q");
        run(&["ip", "netns", "add", &netns]);
        run(&["ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer]);
        run(&["ip", "link", "set", &peer, "netns", &netns]);
        run(&["ip", "-n", &netns, "link", "set", &peer, "name", "eth0"]);
        run(&["ip", "-n", &netns, "addr", "add", &format!("10.214.{subnet}.2/30"), "dev", "eth0"]);
        run(&["ip", "-n", &netns, "link", "set", "eth0", "up"]);
        run(&["ip", "-n", &netns, "route", "add", "default", "via", &format!("10.214.{subnet}.1")]);
        run(&["ip", "addr", "add", &format!("10.214.{subnet}.1/30"), "dev", &host_if]);
        run(&["ip", "link", "set", &host_if, "up"]);
        run(&["sysctl", "-qw", &format!("net.ipv4.conf.{host_if}.forwarding=1")]);
        let chain = format!("NETC-{tag}").to_uppercase();
        run(&["iptables", "-t", "nat", "-N", &chain]);
        Outside { netns, host_if, chain, rules: Vec::new() }
    }

    /// `node:port` (the node's address on this veth) DNATed to `to:to_port` and masqueraded, as
    /// kube-proxy does for a NodePort with `externalTrafficPolicy: Cluster`.
    fn node_port(&mut self, subnet: u8, port: u16, to: std::net::Ipv4Addr, to_port: u16) {
        let jump =
            ["PREROUTING", "-i", &self.host_if, "-j", &self.chain].iter().map(|s| (*s).to_owned()).collect();
        if self.rules.is_empty() {
            self.add(jump);
        }
        let node = format!("10.214.{subnet}.1");
        let dnat: Vec<String> = [
            &self.chain as &str,
            "-d",
            &node,
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-j",
            "DNAT",
            "--to-destination",
            &format!("{to}:{to_port}"),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        self.add(dnat);
        let masquerade: Vec<String> =
            ["POSTROUTING", "-s", &format!("10.214.{subnet}.2"), "-d", &to.to_string(), "-j", "MASQUERADE"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        self.add(masquerade);
    }

    fn add(&mut self, rule: Vec<String>) {
        let mut args = vec!["iptables", "-t", "nat", "-A"];
        args.extend(rule.iter().map(String::as_str));
        run(&args);
        self.rules.push(rule);
    }

    /// Whether the outside client gets an echo from `node:port`.
    fn reaches(&self, subnet: u8, port: u16) -> bool {
        let addr = std::net::SocketAddr::from(([10, 214, subnet, 1], port));
        common::netns::in_netns(&self.netns, move || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(1500))
                .ok()
                .is_some_and(|mut s| echo(&mut s, Duration::from_millis(1500)))
        })
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        for rule in self.rules.iter().rev() {
            let mut args = vec!["iptables", "-t", "nat", "-D"];
            args.extend(rule.iter().map(String::as_str));
            let _ = std::process::Command::new(args[0]).args(&args[1..]).output();
        }
        let _ = std::process::Command::new("iptables").args(["-t", "nat", "-X", &self.chain]).output();
        let _ = std::process::Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.netns]).output();
    }
}

/// Masquerade must not make traffic look like the node's own: a NodePort connection from outside
/// the cluster that kube-proxy's rules DNAT to a pod and masquerade to a node address arrives
/// forwarded, and the pod's guarded ingress judges it (hermit allows nobody), while the node
/// itself still reaches hermit and the same path to an open pod works.
#[test]
fn a_masqueraded_node_port_connection_is_not_the_nodes_own_needs_root() {
    if !can_run_as_root("a_masqueraded_node_port_connection_is_not_the_nodes_own_needs_root") {
        return;
    }
    let s = Setup::new(14);
    // 10.214.S.0/24 belongs to the node's subnet claim: no other process uses it.
    let subnet = s.node.subnet.n;
    let mut outside = Outside::new(&s.node.tag, subnet);
    outside.node_port(subnet, 30070, s.node.pod("hermit").ip, 7000);
    outside.node_port(subnet, 30090, s.node.pod("frontend").ip, 9000);
    assert!(outside.reaches(subnet, 30070), "without netcd the NodePort path reaches hermit");
    let netcd = s.netcd("enforce", "tcx");
    assert!(outside.reaches(subnet, 30090), "the NodePort path works to a pod whose ingress is open");
    assert!(
        !outside.reaches(subnet, 30070),
        "masqueraded to a node address, still judged: hermit allows nobody"
    );
    assert!(node_reaches(s.node.pod("hermit"), 7000), "the node itself reaches hermit");
    // The denied packet came masqueraded: from an address of the node, not the client's.
    let hermit = s.node.pod("hermit").ip.to_string();
    let at_hermit =
        |e: &&serde_json::Value| e["verdict"] == "deny" && e["dst"] == hermit.as_str() && e["dport"] == 7000;
    let events = netcd.events_until(WAIT, |events| events.iter().any(|e| at_hermit(&e)));
    let deny = events.iter().find(at_hermit).unwrap_or_else(|| panic!("a deny line at hermit: {events:#?}"));
    assert_ne!(deny["src"], format!("10.214.{subnet}.2").as_str(), "masqueraded: {deny}");
    assert_eq!(deny["direction"], "ingress");
    drop(outside);
}
