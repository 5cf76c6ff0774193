//! Services behind kube-proxy, end to end, IPv4 and IPv6: two "nodes" (network namespaces
//! joined by a veth "wire"), each routing its own pods; on node A netcd (with `--uplink` on the
//! wire) and a kube-proxy stand-in made of real netfilter rules of kube-proxy's shape
//! (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-* DNAT chains, KUBE-NODEPORTS with KUBE-EXT-*,
//! KUBE-MARK-MASQ and KUBE-POSTROUTING's MASQUERADE); node B has backends only. The article's
//! restrict-egress: backend may call database on 5432, and (an ipBlock a user writes "for the
//! Services") anything in the Service CIDR on port 80. Real connections, replies included:
//! database's Services (ClusterIP, NodePort, a backend on this node or on the other) are allowed,
//! frontend's (80 -> 9000) denied although the ipBlock covers their ClusterIP and port; audit
//! mode lets them through and says so. Everything lives in namespaces of the test's own (prefix
//! `node-`), so the netfilter rules and sysctls go with them. The same cluster also runs under
//! `netcd run --kubernetes`, its objects served by the fake API server (inside node A), Services
//! created, retargeted and deleted through the API. Needs root; skips otherwise.

mod common;
#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::netns::{Bpffs, EchoServer, Netcd, echo, in_netns, unique_tag};
use common::*;
use fake_apiserver::FakeApiServer;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a setup command");
    assert!(out.status.success(), "`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// One pod of the test cluster.
struct SvcPod {
    name: &'static str,
    app: &'static str,
    /// `a` or `b`.
    node: char,
    netns: String,
    host_if: String,
    v4: IpAddr,
    v6: IpAddr,
}

/// A Service of the stand-in: ClusterIP `.{last}` (both families), port 80 to `backend`'s
/// `target`, a node port when given.
struct Svc {
    name: &'static str,
    last: u8,
    backend: &'static str,
    target: u16,
    node_port: Option<u16>,
}

const SERVICES: &[Svc] = &[
    Svc { name: "database", last: 10, backend: "database", target: 5432, node_port: Some(30432) },
    Svc { name: "frontend", last: 20, backend: "frontend", target: 9000, node_port: Some(30900) },
    Svc { name: "database-remote", last: 30, backend: "database-b", target: 5432, node_port: None },
    Svc { name: "frontend-remote", last: 40, backend: "frontend-b", target: 9000, node_port: None },
];

/// Fields drop in order: detach first, then the servers, then the namespaces.
struct Cluster {
    bpffs: Bpffs,
    _servers: Vec<EchoServer>,
    pods: Vec<SvcPod>,
    node_a: String,
    node_b: String,
    wire: String,
    subnet: u8,
    dir: PathBuf,
}

impl Cluster {
    fn new(subnet: u8) -> Cluster {
        let tag = unique_tag();
        let (node_a, node_b) = (format!("node-{tag}-a"), format!("node-{tag}-b"));
        let wire = format!("nd{tag}w");
        for node in [&node_a, &node_b] {
            sh(&["ip", "netns", "add", node]);
            sh(&["ip", "-n", node, "link", "set", "lo", "up"]);
            sh(&["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
            sh(&["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        }
        let peer = format!("nd{tag}v");
        sh(&[
            "ip", "-n", &node_a, "link", "add", &wire, "type", "veth", "peer", "name", &peer, "netns",
            &node_b,
        ]);
        for (node, dev, end) in [(&node_a, &wire, 1), (&node_b, &peer, 2)] {
            sh(&["ip", "-n", node, "addr", "add", &format!("10.216.{subnet}.{end}/30"), "dev", dev]);
            sh(&["ip", "-n", node, "addr", "add", &format!("fd16:{subnet}::{end}/64"), "dev", dev, "nodad"]);
            sh(&["ip", "-n", node, "link", "set", dev, "up"]);
        }
        // Static neighbours on the wire too: no first packet waits for resolution.
        let wire_mac = |netns: &str, dev: &str| {
            let out =
                Command::new("ip").args(["-n", netns, "-br", "link", "show", dev]).output().expect("ip link");
            String::from_utf8(out.stdout).expect("utf8").split_whitespace().nth(2).expect("a mac").to_owned()
        };
        let (mac_a, mac_b) = (wire_mac(&node_a, &wire), wire_mac(&node_b, &peer));
        for (node, dev, end, mac) in [(&node_a, &wire, 2, &mac_b), (&node_b, &peer, 1, &mac_a)] {
            for address in [format!("10.216.{subnet}.{end}"), format!("fd16:{subnet}::{end}")] {
                sh(&[
                    "ip",
                    "-n",
                    node,
                    "neigh",
                    "replace",
                    &address,
                    "lladdr",
                    mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ]);
            }
        }
        let mut cluster = Cluster {
            bpffs: Bpffs::new(&format!("node-{tag}")),
            _servers: Vec::new(),
            pods: Vec::new(),
            node_a,
            node_b,
            wire,
            subnet,
            dir: std::env::temp_dir().join(format!("netc-services-{tag}")),
        };
        let pods: [(&str, &str, char); 5] = [
            ("backend", "backend", 'a'),
            ("database", "database", 'a'),
            ("frontend", "frontend", 'a'),
            ("database-b", "database", 'b'),
            ("frontend-b", "frontend", 'b'),
        ];
        for (i, (name, app, node)) in pods.into_iter().enumerate() {
            let i = u8::try_from(i).expect("few pods");
            let pod = SvcPod {
                name,
                app,
                node,
                netns: format!("node-{tag}-{node}{i}"),
                host_if: format!("nd{tag}{node}{i}"),
                v4: format!("10.215.{subnet}.{}", if node == 'a' { 1 + i } else { 129 + i })
                    .parse()
                    .expect("ip"),
                v6: format!("fd15:{subnet}:{node}::{}", 1 + i).parse().expect("ip"),
            };
            cluster.add_pod(&pod);
            cluster.pods.push(pod);
        }
        // Each node routes the other's pods over the wire.
        for (node, v4, v6, via) in [
            (&cluster.node_a, format!("10.215.{subnet}.128/25"), format!("fd15:{subnet}:b::/64"), 2),
            (&cluster.node_b, format!("10.215.{subnet}.0/25"), format!("fd15:{subnet}:a::/64"), 1),
        ] {
            sh(&["ip", "-n", node, "route", "add", &v4, "via", &format!("10.216.{subnet}.{via}")]);
            sh(&["ip", "-n", node, "-6", "route", "add", &v6, "via", &format!("fd16:{subnet}::{via}")]);
        }
        cluster._servers =
            [("database", 5432), ("frontend", 9000), ("database-b", 5432), ("frontend-b", 9000)]
                .iter()
                .map(|(pod, port)| {
                    EchoServer::listen(&cluster.pod(pod).netns, IpAddr::from([0u16; 8]), *port)
                })
                .collect();
        cluster.kube_proxy("iptables", false);
        cluster.kube_proxy("ip6tables", true);
        std::fs::create_dir_all(&cluster.dir).expect("temp dir");
        std::fs::write(cluster.dir.join("policies.ir.json"), restrict_egress().to_json()).expect("write IR");
        std::fs::write(cluster.dir.join("inventory.json"), cluster.inventory()).expect("write inventory");
        cluster
    }

    /// A pod namespace behind a veth of its node: host side routed, the pod's default route
    /// through it (169.254.1.1 and fe80::1, answered by static neighbours).
    fn add_pod(&self, pod: &SvcPod) {
        let node = if pod.node == 'a' { &self.node_a } else { &self.node_b };
        let (ns, host) = (&pod.netns, &pod.host_if);
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "-n", node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns]);
        sh(&["ip", "-n", ns, "addr", "add", &format!("{}/32", pod.v4), "dev", "eth0"]);
        sh(&["ip", "-n", ns, "addr", "add", &format!("{}/128", pod.v6), "dev", "eth0", "nodad"]);
        sh(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", node, "link", "set", host, "up"]);
        let mac = |netns: &str, dev: &str| {
            let out =
                Command::new("ip").args(["-n", netns, "-br", "link", "show", dev]).output().expect("ip link");
            String::from_utf8(out.stdout).expect("utf8").split_whitespace().nth(2).expect("a mac").to_owned()
        };
        let (host_mac, pod_mac) = (mac(node, host), mac(ns, "eth0"));
        sh(&["ip", "-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"]);
        sh(&["ip", "-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"]);
        sh(&["ip", "-n", ns, "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"]);
        for gateway in ["169.254.1.1", "fe80::1"] {
            sh(&[
                "ip",
                "-n",
                ns,
                "neigh",
                "replace",
                gateway,
                "lladdr",
                &host_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
        }
        for (address, prefix) in [(pod.v4, 32), (pod.v6, 128)] {
            sh(&["ip", "-n", node, "route", "add", &format!("{address}/{prefix}"), "dev", host]);
            sh(&[
                "ip",
                "-n",
                node,
                "neigh",
                "replace",
                &address.to_string(),
                "lladdr",
                &pod_mac,
                "dev",
                host,
                "nud",
                "permanent",
            ]);
        }
    }

    fn pod(&self, name: &str) -> &SvcPod {
        self.pods.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no pod {name}"))
    }

    fn cluster_ip(&self, v6: bool, last: u8) -> IpAddr {
        let text = if v6 {
            format!("fd96:{}::{last}", self.subnet)
        } else {
            format!("10.96.{}.{last}", self.subnet)
        };
        text.parse().expect("ip")
    }

    /// Node A's address on the wire (a node address: NodePorts answer there).
    fn node_address(&self, v6: bool) -> IpAddr {
        let text = if v6 { format!("fd16:{}::1", self.subnet) } else { format!("10.216.{}.1", self.subnet) };
        text.parse().expect("ip")
    }

    /// kube-proxy's iptables rules for [`SERVICES`] in node A, in its own shape (nat table).
    fn kube_proxy(&self, tool: &str, v6: bool) {
        let cluster_cidr =
            if v6 { format!("fd15:{}::/32", self.subnet) } else { format!("10.215.{}.0/24", self.subnet) };
        let rules: Vec<String> = {
            let mut r = vec![
                "-N KUBE-SERVICES".to_owned(),
                "-N KUBE-NODEPORTS".to_owned(),
                "-N KUBE-POSTROUTING".to_owned(),
                "-N KUBE-MARK-MASQ".to_owned(),
                "-A PREROUTING -m comment --comment kubernetes-service-portals -j KUBE-SERVICES".to_owned(),
                "-A OUTPUT -m comment --comment kubernetes-service-portals -j KUBE-SERVICES".to_owned(),
                "-A POSTROUTING -m comment --comment kubernetes-postrouting-rules -j KUBE-POSTROUTING"
                    .to_owned(),
                "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000".to_owned(),
                "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN".to_owned(),
                "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0".to_owned(),
                "-A KUBE-POSTROUTING -j MASQUERADE --random-fully".to_owned(),
            ];
            for svc in SERVICES {
                let chain = svc.name.to_uppercase().replace('-', "_");
                let backend = self.pod(svc.backend);
                let to = SocketAddr::new(if v6 { backend.v6 } else { backend.v4 }, svc.target);
                let cip = self.cluster_ip(v6, svc.last);
                let (svc_chain, sep, ext) =
                    (format!("KUBE-SVC-{chain}"), format!("KUBE-SEP-{chain}"), format!("KUBE-EXT-{chain}"));
                r.push(format!("-N {svc_chain}"));
                r.push(format!("-N {sep}"));
                r.push(format!("-A KUBE-SERVICES -d {cip} -p tcp --dport 80 -j {svc_chain}"));
                r.push(format!(
                    "-A {svc_chain} ! -s {cluster_cidr} -d {cip} -p tcp --dport 80 -j KUBE-MARK-MASQ"
                ));
                r.push(format!("-A {svc_chain} -j {sep}"));
                r.extend(endpoint_rules(&sep, to));
                if let Some(node_port) = svc.node_port {
                    r.push(format!("-N {ext}"));
                    r.push(format!("-A KUBE-NODEPORTS -p tcp --dport {node_port} -j {ext}"));
                    r.push(format!("-A {ext} -j KUBE-MARK-MASQ"));
                    r.push(format!("-A {ext} -j {svc_chain}"));
                }
            }
            r.push("-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS".to_owned());
            r
        };
        self.nat(tool, &rules);
    }

    /// Rules of node A's nat table, by `tool` (iptables or ip6tables).
    fn nat(&self, tool: &str, rules: &[String]) {
        for rule in rules {
            let mut args = vec!["ip", "netns", "exec", &self.node_a, tool, "-w", "-t", "nat"];
            args.extend(rule.split(' '));
            sh(&args);
        }
    }

    /// What kube-proxy does when Service `name`'s endpoints change: its KUBE-SEP chain now
    /// translates to pod `backend`'s `port` (both families).
    fn retarget(&self, name: &str, backend: &str, port: u16) {
        let sep = format!("KUBE-SEP-{}", name.to_uppercase().replace('-', "_"));
        let pod = self.pod(backend);
        for (tool, address) in [("iptables", pod.v4), ("ip6tables", pod.v6)] {
            let mut rules = vec![format!("-F {sep}")];
            rules.extend(endpoint_rules(&sep, SocketAddr::new(address, port)));
            self.nat(tool, &rules);
        }
    }

    /// The Namespace and Pod objects (node A's pods with their interface).
    fn pod_objects(&self) -> Vec<serde_json::Value> {
        let mut items =
            vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})];
        for p in &self.pods {
            items.push(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": p.name, "namespace": "default", "labels": {"app": p.app},
                             "annotations": {"netc.dev/host-interface": p.host_if}},
                "spec": {"nodeName": format!("node-{}", p.node)},
                "status": {"phase": "Running", "podIP": p.v4.to_string(),
                           "podIPs": [{"ip": p.v4.to_string()}, {"ip": p.v6.to_string()}]}
            }));
        }
        items
    }

    /// Service `svc` as the API has it, its port 80 targeting `target` on pods app=`app`.
    fn service_object(&self, svc: &Svc, app: &str, target: u16) -> serde_json::Value {
        let mut port = json!({"port": 80, "targetPort": target});
        if let Some(n) = svc.node_port {
            port["nodePort"] = n.into();
        }
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": svc.name, "namespace": "default"},
            "spec": {"type": if svc.node_port.is_some() { "NodePort" } else { "ClusterIP" },
                     "selector": {"app": app},
                     "clusterIPs": [self.cluster_ip(false, svc.last).to_string(), self.cluster_ip(true, svc.last).to_string()],
                     "ports": [port]}
        })
    }

    /// The inventory: namespace, pods and Services.
    fn inventory(&self) -> String {
        let mut items = self.pod_objects();
        for svc in SERVICES {
            items.push(self.service_object(svc, self.pod(svc.backend).app, svc.target));
        }
        json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }

    fn netcd(&self, mode: &str) -> Netcd {
        let path = |f: &str| self.dir.join(f).to_str().expect("utf8").to_owned();
        let d = Netcd::start_in(
            &self.node_a,
            &[
                "run",
                "--ir",
                &path("policies.ir.json"),
                "--inventory",
                &path("inventory.json"),
                "--node",
                "node-a",
                "--mode",
                mode,
                "--attach",
                "tcx",
                "--bpffs",
                self.bpffs.arg(),
                "--uplink",
                &self.wire,
            ],
        );
        d.wait_log("live", WAIT);
        d
    }

    /// Whether pod `from` gets an echo from `to:port` (the reply path included).
    fn reaches(&self, from: &str, to: IpAddr, port: u16) -> bool {
        let addr = SocketAddr::new(to, port);
        in_netns(&self.pod(from).netns, move || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(1500))
                .ok()
                .is_some_and(|mut s| echo(&mut s, Duration::from_millis(1500)))
        })
    }

    /// Whether `from` reaches Service `name`'s ClusterIP on port 80.
    fn calls(&self, from: &str, name: &str, v6: bool) -> bool {
        let svc = SERVICES.iter().find(|s| s.name == name).expect("a Service of the stand-in");
        self.reaches(from, self.cluster_ip(v6, svc.last), 80)
    }
}

/// A KUBE-SEP chain's rules: hairpin traffic masqueraded, then the DNAT to the endpoint.
fn endpoint_rules(sep: &str, to: SocketAddr) -> [String; 2] {
    [
        format!("-A {sep} -s {} -j KUBE-MARK-MASQ", to.ip()),
        format!("-A {sep} -p tcp -j DNAT --to-destination {to}"),
    ]
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        for ns in self.pods.iter().map(|p| &p.netns).chain([&self.node_a, &self.node_b]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// backend: ingress only from frontend:8080; egress to database:5432 and to the Service CIDR on
/// port 80 (both families).
fn restrict_egress() -> netc_ir::Ir {
    ir(vec![policy(
        "default",
        "backend",
        guarded(vec![rule("allow-frontend", 3, vec![app("frontend")], vec![tcp(8080)])]),
        guarded(vec![
            rule("restrict-egress", 6, vec![app("database")], vec![tcp(5432)]),
            rule("service-cidr", 7, vec![block("10.96.0.0/12", &[]), block("fd96::/16", &[])], vec![tcp(80)]),
        ]),
    )])
}

#[test]
fn service_calls_are_judged_on_the_backend_after_kube_proxy_needs_root() {
    if !can_run_as_root("service_calls_are_judged_on_the_backend_after_kube_proxy_needs_root") {
        return;
    }
    let c = Cluster::new(40);
    // The stand-in works: without netcd every Service answers.
    for v6 in [false, true] {
        for svc in SERVICES {
            assert!(c.calls("backend", svc.name, v6), "without netcd, backend -> {} (v6: {v6})", svc.name);
        }
    }
    let netcd = c.netcd("enforce");
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        assert!(c.calls("backend", "database", v6), "{family}: database's Service, backend on this node");
        assert!(
            !c.calls("backend", "frontend", v6),
            "{family}: frontend's Service: 9000 is not allowed, the ipBlock does not matter"
        );
        assert!(c.calls("backend", "database-remote", v6), "{family}: database's Service, backend on node B");
        assert!(!c.calls("backend", "frontend-remote", v6), "{family}: frontend's Service on node B");
        let node = c.node_address(v6);
        assert!(c.reaches("backend", node, 30432), "{family}: database's NodePort (masqueraded)");
        assert!(!c.reaches("backend", node, 30900), "{family}: frontend's NodePort");
        let frontend = c.pod("frontend");
        assert!(
            !c.reaches("backend", if v6 { frontend.v6 } else { frontend.v4 }, 9000),
            "{family}: frontend directly"
        );
        assert!(
            c.calls("frontend", "frontend-remote", v6),
            "{family}: an open egress door calls any Service"
        );
    }
    // The deny line names the Service, the frontend called and the backend it was judged on, and
    // the client by its own address (masquerade may have replaced the packet's).
    let backend = c.pod("backend");
    let cases = [
        (
            false,
            "frontend",
            SocketAddr::new(c.cluster_ip(false, 20), 80),
            SocketAddr::new(c.pod("frontend").v4, 9000),
        ),
        (
            true,
            "frontend-remote",
            SocketAddr::new(c.cluster_ip(true, 40), 80),
            SocketAddr::new(c.pod("frontend-b").v6, 9000),
        ),
        (
            false,
            "frontend",
            SocketAddr::new(c.node_address(false), 30900),
            SocketAddr::new(c.pod("frontend").v4, 9000),
        ),
    ];
    let denied_at = |events: &[serde_json::Value], frontend: SocketAddr| {
        events
            .iter()
            .find(|e| e["verdict"] == "deny" && e["service"]["frontend"] == frontend.to_string().as_str())
            .cloned()
    };
    let allowed_remote = |events: &[serde_json::Value]| {
        events
            .iter()
            .find(|e| e["verdict"] == "allow" && e["service"]["name"] == "default/database-remote")
            .cloned()
    };
    let events = netcd.events_until(WAIT, |events| {
        cases.iter().all(|(_, _, frontend, _)| denied_at(events, *frontend).is_some())
            && allowed_remote(events).is_some()
    });
    for (v6, name, frontend, target) in cases {
        let line = events
            .iter()
            .find(|e| e["verdict"] == "deny" && e["service"]["frontend"] == frontend.to_string().as_str())
            .unwrap_or_else(|| panic!("a deny line for {frontend}: {events:#?}"));
        assert_eq!(line["service"]["name"], format!("default/{name}").as_str(), "{line}");
        assert_eq!(line["service"]["backend"], target.to_string().as_str(), "{line}");
        assert_eq!(line["pod"], "default/backend", "{line}");
        assert_eq!(line["direction"], "egress", "{line}");
        assert_eq!(line["src"], (if v6 { backend.v6 } else { backend.v4 }).to_string().as_str(), "{line}");
        assert_eq!(line["dst"], target.ip().to_string().as_str(), "{line}");
        assert_eq!(line["dport"], 9000, "{line}");
    }
    let allowed =
        allowed_remote(&events).unwrap_or_else(|| panic!("an allow line for database-remote: {events:#?}"));
    assert_eq!(allowed["rule"]["id"], "restrict-egress", "{allowed}");
}

#[test]
fn audit_mode_lets_a_denied_service_call_through_and_names_it_needs_root() {
    if !can_run_as_root("audit_mode_lets_a_denied_service_call_through_and_names_it_needs_root") {
        return;
    }
    let c = Cluster::new(41);
    let netcd = c.netcd("audit");
    assert!(c.calls("backend", "frontend", false), "audit: the call goes through");
    assert!(c.calls("backend", "frontend-remote", true), "audit: and on IPv6 to node B");
    let names = ["default/frontend", "default/frontend-remote"];
    let events = netcd.events_until(WAIT, |events| {
        names.iter().all(|n| events.iter().any(|e| e["verdict"] == "audit" && e["service"]["name"] == *n))
    });
    for (name, dst) in [(names[0], c.pod("frontend").v4), (names[1], c.pod("frontend-b").v6)] {
        let line = events
            .iter()
            .find(|e| e["verdict"] == "audit" && e["service"]["name"] == name)
            .unwrap_or_else(|| panic!("an audit line for {name}: {events:#?}"));
        assert_eq!(line["dst"], dst.to_string().as_str(), "{line}");
        assert_eq!(line["pod"], "default/backend", "{line}");
        assert!(line["rule"].is_null(), "{line}");
    }
}

/// Wait (bounded) until `check` holds.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    common::netns::eventually(what, WAIT, check);
}

/// A gauge of netcd's /metrics at `addr` in network namespace `netns` (`None` if absent).
fn gauge(netns: &str, addr: SocketAddr, name: &str) -> Option<f64> {
    use std::io::{Read as _, Write as _};
    let text = in_netns(netns, move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text)
    })?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `netcd run --kubernetes`: the same cluster and kube-proxy stand-in, its objects served by the
/// fake API server (listening inside node A, where netcd runs), the policy in the ConfigMap. The
/// watch reads Services: created, their backends and targetPort changed, deleted and created
/// again through the API, and real calls through their ClusterIPs and NodePorts follow.
#[test]
fn services_from_the_kubernetes_watch_are_judged_after_kube_proxy_needs_root() {
    if !can_run_as_root("services_from_the_kubernetes_watch_are_judged_after_kube_proxy_needs_root") {
        return;
    }
    let c = Cluster::new(42);
    // A second server on database: a targetPort the policy does not allow.
    let _extra = EchoServer::listen(&c.pod("database").netns, IpAddr::from([0u16; 8]), 9000);
    let listener = in_netns(&c.node_a, || {
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake API server in node A")
    });
    let api = FakeApiServer::serve_on(listener);
    let kubeconfig = c.dir.join("kubeconfig");
    api.kubeconfig(&kubeconfig);
    for object in c.pod_objects() {
        api.apply(object);
    }
    api.apply(fake_apiserver::configmap(
        "netc-system",
        "netc-ir",
        "policies.ir.json",
        &restrict_egress().to_json(),
    ));
    let netcd = Netcd::start_in(
        &c.node_a,
        &[
            "run",
            "--kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().expect("utf8"),
            "--node",
            "node-a",
            "--bpffs",
            c.bpffs.arg(),
            "--metrics-addr",
            "127.0.0.1:0",
            "--uplink",
            &c.wire,
        ],
    );
    let metrics = netcd.metrics_addr(WAIT);
    netcd.wait_log("first sync with the API server applied", WAIT);
    let services = || gauge(&c.node_a, metrics, "netcd_services");
    let frontends = || gauge(&c.node_a, metrics, "netcd_service_frontends");
    assert_eq!(services(), Some(0.0), "no Service in the API yet");

    // No Service known: a call is judged on the ClusterIP and port 80 at backend's veth, which
    // the ipBlock allows, and kube-proxy takes it to frontend:9000 (the hole the watch closes).
    for v6 in [false, true] {
        assert!(c.calls("backend", "frontend", v6), "no Service known: judged on the ClusterIP (v6: {v6})");
    }

    // The Services are created through the API.
    for svc in SERVICES {
        api.apply(c.service_object(svc, c.pod(svc.backend).app, svc.target));
    }
    eventually("the Services reach netcd", || services() == Some(4.0));
    // Two ClusterIPs per Service, and each NodePort on both families' any-address.
    assert_eq!(frontends(), Some(12.0));
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        assert!(!c.calls("backend", "frontend", v6), "{family}: frontend's Service: 9000 is not allowed");
        assert!(c.calls("backend", "database", v6), "{family}: database's Service, backend on this node");
        assert!(c.calls("backend", "database-remote", v6), "{family}: database's Service on node B");
        assert!(!c.calls("backend", "frontend-remote", v6), "{family}: frontend's Service on node B");
        let node = c.node_address(v6);
        assert!(c.reaches("backend", node, 30432), "{family}: database's NodePort");
        assert!(!c.reaches("backend", node, 30900), "{family}: frontend's NodePort");
    }

    // frontend's Service gets other backends (app=database, targetPort 5432): the API object
    // changes and kube-proxy rewrites its endpoint chain; the calls follow the translation.
    let frontend = SERVICES.iter().find(|s| s.name == "frontend").expect("frontend");
    api.apply(c.service_object(frontend, "database", 5432));
    c.retarget("frontend", "database", 5432);
    for v6 in [false, true] {
        assert!(
            c.calls("backend", "frontend", v6),
            "frontend's Service now leads to database:5432 (v6: {v6})"
        );
    }
    api.apply(c.service_object(frontend, "frontend", 9000));
    c.retarget("frontend", "frontend", 9000);
    assert!(!c.calls("backend", "frontend", false), "and back to frontend:9000");

    // database's Service gets targetPort 9000, which backend's egress does not allow.
    let database = SERVICES.iter().find(|s| s.name == "database").expect("database");
    api.apply(c.service_object(database, "database", 9000));
    c.retarget("database", "database", 9000);
    for v6 in [false, true] {
        assert!(!c.calls("backend", "database", v6), "database's Service on targetPort 9000 (v6: {v6})");
    }
    assert!(!c.reaches("backend", c.node_address(false), 30432), "its NodePort too");
    api.apply(c.service_object(database, "database", 5432));
    c.retarget("database", "database", 5432);
    assert!(c.calls("backend", "database", false), "targetPort 5432 again");

    // The verdict lines name the Service, the frontend and the backend the call was judged on
    // (they come through the ring buffer and netcd's reader: gathered until both are there).
    let backend = c.pod("backend");
    let line = |events: &[serde_json::Value], verdict: &str, name: &str, target: SocketAddr| {
        events
            .iter()
            .find(|e| {
                e["verdict"] == verdict
                    && e["service"]["name"] == format!("default/{name}").as_str()
                    && e["service"]["backend"] == target.to_string().as_str()
            })
            .cloned()
    };
    let (to_database, to_database_9000) =
        (SocketAddr::new(c.pod("database").v4, 5432), SocketAddr::new(c.pod("database").v6, 9000));
    let events = netcd.events_until(WAIT, |events| {
        line(events, "allow", "frontend", to_database).is_some()
            && line(events, "deny", "database", to_database_9000).is_some()
    });
    let judged = |verdict: &str, name: &str, target: SocketAddr| {
        line(&events, verdict, name, target)
            .unwrap_or_else(|| panic!("a {verdict} line for {name}: {events:#?}"))
    };
    let retargeted = judged("allow", "frontend", to_database);
    assert_eq!(retargeted["rule"]["id"], "restrict-egress", "{retargeted}");
    assert_eq!(retargeted["src"], backend.v4.to_string().as_str(), "{retargeted}");
    let denied = judged("deny", "database", to_database_9000);
    assert_eq!(
        denied["service"]["frontend"],
        format!("[{}]:80", c.cluster_ip(true, 10)).as_str(),
        "{denied}"
    );

    // frontend's Service deleted (kube-proxy has not removed its rules yet): its ClusterIP is no
    // frontend any more, so a call to it is judged on that address and port again.
    api.delete("Service", "default", "frontend");
    eventually("the deletion reaches netcd", || services() == Some(3.0));
    assert_eq!(frontends(), Some(8.0));
    assert!(c.calls("backend", "frontend", false), "judged on the ClusterIP: the ipBlock allows port 80");
    // Created again: judged on the backend again.
    api.apply(c.service_object(frontend, "frontend", 9000));
    eventually("the Service is back", || services() == Some(4.0));
    assert!(!c.calls("backend", "frontend", false), "frontend's Service: denied again");
    assert!(!c.calls("backend", "frontend", true), "and on IPv6");
}
