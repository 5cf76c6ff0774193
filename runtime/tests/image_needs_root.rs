//! netcd's container image, built and started on this machine: deploy/image/build-local.sh
//! builds the final stage of deploy/Containerfile (FROM scratch: the binary and its shared
//! libraries) with podman; the image's root file system is mounted (`podman image mount`, read
//! only, as `readOnlyRootFilesystem` in deploy/daemonset.yaml) and netcd run from it under chroot
//! (`podman run` cannot set its rlimits in this sandbox), watching the fake API server:
//! - its probes answer, and it is not ready while the policy ConfigMap is missing;
//! - as a non-root user (65534) holding only the capabilities deploy/daemonset.yaml grants
//!   (BPF, PERFMON, NET_ADMIN, as ambient capabilities set by capsh), with /proc, /sys, /dev and a
//!   bpffs mounted into the image's root as a container runtime and the DaemonSet's hostPath
//!   would, netcd loads its datapath, attaches to two network-namespace pods' veths and
//!   enforces the cluster's NetworkPolicy: one connection allowed, one denied.
//!
//! Needs root, podman and capsh (libcap2-bin).

mod common;
#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::can_run_as_root;
use common::netns::{EchoServer, Node, reaches};
use fake_apiserver::{FakeApiServer, namespace, network_policy, pod, service};

fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some((text.split_whitespace().nth(1)?.parse().ok()?, text))
}

/// Removes what the test made, whatever happens.
struct Cleanup {
    tag: String,
    /// Mounted into the image's root, in order (unmounted in reverse).
    mounts: Vec<String>,
    /// A bpffs netcd pinned under (its classifiers are detached first).
    bpffs: Option<String>,
}

impl Cleanup {
    fn mount(&mut self, args: &[&str], target: &str) {
        let done = Command::new("mount").args(args).arg(target).status();
        assert!(done.is_ok_and(|s| s.success()), "mount {args:?} {target}");
        self.mounts.push(target.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(bpffs) = &self.bpffs {
            let _ = Command::new(env!("CARGO_BIN_EXE_netcd")).args(["detach", "--bpffs", bpffs]).output();
        }
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = Command::new("podman").args(["image", "unmount", &self.tag]).output();
        let _ = Command::new("podman").args(["rmi", "-f", &self.tag]).output();
    }
}

#[test]
fn the_image_builds_from_scratch_and_netcd_starts_from_it_needs_root() {
    if !can_run_as_root("the_image_builds_from_scratch_and_netcd_starts_from_it_needs_root") {
        return;
    }
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("skipped: podman is not installed (.ci/install-deps installs it)");
        return;
    }
    let tag = format!("localhost/netcd-test-{}:test", std::process::id());
    let mut cleanup = Cleanup { tag: tag.clone(), mounts: Vec::new(), bpffs: None };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/image/build-local.sh");
    let built =
        Command::new(script).args([env!("CARGO_BIN_EXE_netcd"), &tag]).output().expect("run build-local.sh");
    assert!(built.status.success(), "image build failed: {}", String::from_utf8_lossy(&built.stderr));

    // What the image holds: netcd and its libraries, nothing else (no shell).
    let mounted = Command::new("podman").args(["image", "mount", &tag]).output().expect("podman image mount");
    assert!(mounted.status.success(), "{}", String::from_utf8_lossy(&mounted.stderr));
    let root = String::from_utf8(mounted.stdout).expect("utf8").trim().to_owned();
    assert!(std::path::Path::new(&root).join("usr/bin/netcd").exists());
    assert!(!std::path::Path::new(&root).join("bin/sh").exists(), "no shell in the image");

    // A writable /tmp for the kubeconfig (the image is read only).
    let tmp = std::env::temp_dir().join(format!("netc-image-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    cleanup.mount(&["--bind", tmp.to_str().expect("utf8")], &format!("{root}/tmp"));

    let api = FakeApiServer::start();
    api.apply(namespace("default", &[]));
    api.kubeconfig(&tmp.join("kubeconfig"));
    let mut netcd = Command::new("chroot")
        .args([&root, "/usr/bin/netcd", "run", "--kubernetes", "--kubeconfig", "/tmp/kubeconfig"])
        .args(["--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--bpffs", "/tmp/bpffs"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netcd from the image");
    let mut stderr = netcd.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = tx.send(text.clone());
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    let metrics: SocketAddr = loop {
        if let Ok(t) = rx.recv_timeout(Duration::from_millis(200)) {
            log = t;
        }
        // JSON logs: {"fields":{"message":"metrics on http://127.0.0.1:PORT/metrics, ..."}}
        if let Some(addr) =
            log.split("http://").nth(1).and_then(|r| r.split('/').next()).and_then(|a| a.parse().ok())
        {
            break addr;
        }
        assert!(Instant::now() < deadline, "netcd from the image did not serve metrics: {log}");
    };
    assert!(
        log.lines().next().is_some_and(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "JSON logs: {log}"
    );
    let mut ready = None;
    while Instant::now() < deadline {
        ready = http_get(metrics, "/readyz");
        if ready.as_ref().is_some_and(|(_, body)| body.contains("no policy yet")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = netcd.kill();
    let _ = netcd.wait();
    while let Ok(t) = rx.try_recv() {
        log = t;
    }
    let (status, body) = ready.unwrap_or_else(|| panic!("/readyz does not answer; netcd said: {log}"));
    assert_eq!(status, 503, "not ready without the policy ConfigMap: {body}");
    assert!(body.contains("netc-system/netc-ir"), "{body}");
    assert!(api.requests("list pods") >= 1, "netcd from the image listed pods from the API server");

    enforces_as_non_root_with_the_daemonset_capabilities(&root, &tmp, &mut cleanup);
    drop(cleanup);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The capabilities deploy/daemonset.yaml adds (all others dropped), as capsh names them, and
/// their bits (linux/capability.h: NET_ADMIN 12, PERFMON 38, BPF 39).
const CAPABILITIES: &str = "cap_bpf,cap_perfmon,cap_net_admin";
const CAPABILITY_BITS: u64 = (1 << 12) | (1 << 38) | (1 << 39);
const NOBODY: &str = "65534";

fn enforces_as_non_root_with_the_daemonset_capabilities(
    root: &str,
    tmp: &std::path::Path,
    cleanup: &mut Cleanup,
) {
    const NODE: &str = "image-node";
    let node = Node::new(
        142,
        &[("shop", "client", "client"), ("shop", "server", "server"), ("shop", "visitor", "visitor")],
    );
    let _server = EchoServer::start(node.pod("server"), 8080);
    // What a container runtime mounts, and the DaemonSet's hostPath bpffs (here a fresh one, owned
    // by the user netcd runs as: the host's /sys/fs/bpf is root's, which is why the DaemonSet
    // runs netcd as root with these capabilities only).
    cleanup.mount(&["-t", "proc", "proc"], &format!("{root}/proc"));
    cleanup.mount(&["--bind", "/sys"], &format!("{root}/sys"));
    // /dev (netcd seeds its conntrack hash from /dev/urandom), as every runtime provides it.
    cleanup.mount(&["--bind", "/dev"], &format!("{root}/dev"));
    // Mounted through the image's /tmp (a bind mount of `tmp`), where netcd sees it.
    std::fs::create_dir_all(tmp.join("bpffs")).expect("bpffs dir");
    let bpffs = format!("{root}/tmp/bpffs");
    cleanup.mount(&["-t", "bpf", "bpf"], &bpffs);
    cleanup.bpffs = Some(bpffs.clone());
    let owned = Command::new("chown").args([&format!("{NOBODY}:{NOBODY}"), &bpffs]).status();
    assert!(owned.is_ok_and(|s| s.success()), "chown the bpffs");

    // The DaemonSet's `--uplink`: here a veth of the test's own, removed after.
    let uplink = Uplink::new(&node.tag);
    let api = FakeApiServer::start();
    api.kubeconfig(&tmp.join("kubeconfig"));
    api.apply(namespace("shop", &[]));
    // A Service: with --uplink the watch reads them, as the ClusterRole allows.
    api.apply(service(
        "shop",
        "server",
        &serde_json::json!({"clusterIP": "10.96.142.10", "ports": [{"port": 80, "targetPort": 8080}]}),
    ));
    for p in &node.pods {
        api.apply(pod("shop", &p.name, &[("app", &p.app)], Some(&p.ip.to_string()), &p.host_if, NODE));
    }
    api.apply(network_policy(
        "shop",
        "server",
        &serde_json::json!({"podSelector": {"matchLabels": {"app": "server"}},
                            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                         "ports": [{"port": 8080}]}]}),
    ));
    // capsh, as root: the three capabilities inheritable, chroot into the image, keep them across
    // the change to user 65534, raise them as ambient (what a non-root process keeps across
    // exec), then exec the image's netcd.
    let mut netcd = Command::new("capsh")
        .args([
            &format!("--inh={CAPABILITIES}"),
            &format!("--chroot={root}"),
            "--keep=1",
            &format!("--gid={NOBODY}"),
            &format!("--groups={NOBODY}"),
            &format!("--uid={NOBODY}"),
            &format!("--addamb={CAPABILITIES}"),
            "--shell=/usr/bin/netcd",
            "--",
        ])
        .args([
            "run",
            "--kubernetes",
            "--network-policies",
            "--kubeconfig",
            "/tmp/kubeconfig",
            "--node",
            NODE,
        ])
        .args(["--bpffs", "/tmp/bpffs", "--conntrack-entries", "65536", "--quiet-allowed"])
        .args(["--uplink", &uplink.0])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netcd from the image as non-root");
    let stderr = netcd.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[netcd from the image] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.contains("first sync with the API server applied")) {
        assert!(Instant::now() < deadline, "netcd from the image did not sync: {log:#?}");
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            log.push(line);
        }
        assert!(netcd.try_wait().ok().flatten().is_none(), "netcd from the image exited: {log:#?}");
    }
    // What it runs as: user 65534, exactly the three capabilities.
    let status = std::fs::read_to_string(format!("/proc/{}/status", netcd.id())).expect("status");
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_default().to_owned()
    };
    assert!(field("Uid:").split_whitespace().all(|u| u == NOBODY), "non-root: {}", field("Uid:"));
    for set in ["CapEff:", "CapPrm:"] {
        assert_eq!(u64::from_str_radix(&field(set), 16).ok(), Some(CAPABILITY_BITS), "{set} {}", field(set));
    }
    assert!(
        log.iter()
            .any(|l| l.contains("Services: calls to the inventory's frontends") && l.contains(&uplink.0)),
        "the uplink is attached (NET_ADMIN suffices): {log:#?}"
    );
    let (client, server, visitor) = (node.pod("client"), node.pod("server"), node.pod("visitor"));
    assert!(reaches(client, server, 8080), "the policy lets client in");
    assert!(!reaches(visitor, server, 8080), "and not visitor: enforced from the image");
    let _ = netcd.kill();
    let _ = netcd.wait();
}

/// A veth standing in for the node's uplink (this kernel may lack the dummy device); deleted,
/// with its peer, when dropped.
struct Uplink(String);

impl Uplink {
    fn new(tag: &str) -> Uplink {
        let (name, peer) = (format!("nc{tag}u"), format!("nc{tag}w"));
        let added =
            Command::new("ip").args(["link", "add", &name, "type", "veth", "peer", "name", &peer]).status();
        assert!(added.is_ok_and(|s| s.success()), "ip link add {name} type veth");
        let name = name.as_str();
        let up = Command::new("ip").args(["link", "set", name, "up"]).status();
        assert!(up.is_ok_and(|s| s.success()), "ip link set {name} up");
        Uplink(name.to_owned())
    }
}

impl Drop for Uplink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}
