//! A small routed "node" built from network namespaces: one namespace per pod, a veth pair
//! each, the host side in the test's namespace routing between them (forwarding enabled on
//! those host-side interfaces only). Everything is named uniquely and removed on drop.
//!
//! Tests run at once in several processes (`cargo test` of two worktrees, CI beside an engineer):
//! names carry the process id whole ([`unique_tag`]), and the addresses of the test's own
//! namespace come from a /24 the process holds a lock on ([`Subnet`]), so no two processes ever
//! add the same route or interface.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A tag no other running process makes: this process's id (base 36, at most 5 characters) and
/// a counter. Interface names built from it stay within the kernel's 15 characters.
pub fn unique_tag() -> String {
    let mut pid = std::process::id();
    let mut digits = Vec::new();
    loop {
        digits.push(char::from_digit(pid % 36, 36).expect("a base-36 digit"));
        pid /= 36;
        if pid == 0 {
            break;
        }
    }
    let pid: String = digits.into_iter().rev().collect();
    format!("{pid}{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Where the subnet locks live (a tmpfs: gone at reboot, like the routes they guard).
const SUBNET_LOCKS: &str = "/run/netc-test-subnets";

/// A number `n` naming /24s (`PREFIX.n.0/24` for each prefix given) that this process holds: an
/// exclusive `flock` on a file per number, released when the process ends however it ends. A
/// number whose /24s already have a route or an address in this namespace (a copy of the tests
/// that predates the locks, leftovers of a killed run) is skipped too.
#[derive(Debug)]
pub struct Subnet {
    pub n: u8,
    _lock: File,
}

impl Subnet {
    /// The first free number from `preferred` on (wrapping within 1..=254).
    pub fn claim(prefixes: &[&str], preferred: u8) -> Subnet {
        std::fs::create_dir_all(SUBNET_LOCKS).expect("the subnet lock directory");
        let in_use: Vec<String> = [&["-o", "route", "show", "table", "all"][..], &["-o", "addr", "show"]]
            .iter()
            .flat_map(|args| {
                let out = Command::new("ip").args(*args).output().expect("ip");
                String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        for k in 0..254u16 {
            let n = u8::try_from((u16::from(preferred.max(1)) - 1 + k) % 254 + 1).expect("1..=254");
            let path = format!("{SUBNET_LOCKS}/{}.{n}", prefixes[0]);
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .expect("a subnet lock file");
            // SAFETY: flock on an fd `file` keeps open.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
                continue;
            }
            let taken = prefixes.iter().any(|p| {
                let net = format!("{p}.{n}.");
                in_use.iter().any(|word| word.starts_with(&net))
            });
            if !taken {
                return Subnet { n, _lock: file };
            }
        }
        panic!("no free /24 in {prefixes:?}: 254 held by other processes or in use");
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a setup command");
    assert!(out.status.success(), "`{}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn sh_quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

/// One pod: its namespace, host-side interface and address.
#[derive(Debug, Clone)]
pub struct TestPod {
    pub name: String,
    pub namespace: String,
    pub app: String,
    pub netns: String,
    pub host_if: String,
    pub ip: Ipv4Addr,
}

/// The topology; dropping it removes the namespaces and host-side veths it made.
#[derive(Debug)]
pub struct Node {
    pub pods: Vec<TestPod>,
    pub tag: String,
    /// Its /24s: 10.213.`n`.0/24 for the pods, 10.214.`n`.0/24 free for the test's other needs.
    pub subnet: Subnet,
}

impl Node {
    /// Pods given as (k8s namespace, name, app label); addresses 10.213.S.(i+1), where S is
    /// `preferred` or, when another process holds it, the next free one ([`Subnet`]).
    pub fn new(preferred: u8, pods: &[(&str, &str, &str)]) -> Node {
        let tag = unique_tag();
        let subnet = Subnet::claim(&["10.213", "10.214"], preferred);
        let s = subnet.n;
        let mut node = Node { pods: Vec::new(), tag: tag.clone(), subnet };
        for (i, (namespace, name, app)) in pods.iter().enumerate() {
            let netns = format!("netc-{tag}-{i}");
            let host_if = format!("nc{tag}h{i}");
            let ip = Ipv4Addr::new(10, 213, s, u8::try_from(i + 1).expect("few pods"));
            let pod = TestPod {
                name: (*name).to_owned(),
                namespace: (*namespace).to_owned(),
                app: (*app).to_owned(),
                netns: netns.clone(),
                host_if: host_if.clone(),
                ip,
            };
            node.pods.push(pod);
            let peer = format!("nc{tag}p{i}");
            sh(&["ip", "netns", "add", &netns]);
            sh(&["ip", "link", "add", &host_if, "type", "veth", "peer", "name", &peer]);
            sh(&["ip", "link", "set", &peer, "netns", &netns]);
            sh(&["ip", "-n", &netns, "link", "set", &peer, "name", "eth0"]);
            sh(&["ip", "-n", &netns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"]);
            sh(&["ip", "-n", &netns, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", &netns, "link", "set", "lo", "up"]);
            sh(&["ip", "link", "set", &host_if, "up"]);
            // The pod reaches everything through its host side, like Calico's 169.254.1.1.
            let host_mac = std::fs::read_to_string(format!("/sys/class/net/{host_if}/address"))
                .expect("host veth mac")
                .trim()
                .to_owned();
            sh(&["ip", "-n", &netns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"]);
            sh(&["ip", "-n", &netns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"]);
            sh(&[
                "ip",
                "-n",
                &netns,
                "neigh",
                "replace",
                "169.254.1.1",
                "lladdr",
                &host_mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
            let pod_mac = String::from_utf8(
                Command::new("ip")
                    .args(["-n", &netns, "-br", "link", "show", "eth0"])
                    .output()
                    .expect("ip link")
                    .stdout,
            )
            .expect("utf8")
            .split_whitespace()
            .nth(2)
            .expect("mac")
            .to_owned();
            sh(&["ip", "route", "add", &format!("{ip}/32"), "dev", &host_if]);
            sh(&[
                "ip",
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                &pod_mac,
                "dev",
                &host_if,
                "nud",
                "permanent",
            ]);
            // Forwarding on this interface only; the global setting is left alone.
            sh(&["sysctl", "-qw", &format!("net.ipv4.conf.{host_if}.forwarding=1")]);
        }
        node
    }

    pub fn pod(&self, name: &str) -> &TestPod {
        self.pods.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no pod {name}"))
    }

    /// The inventory (kubectl-style JSON List) of this node's pods and their namespaces.
    pub fn inventory_json(&self, namespace_labels: &[(&str, &[(&str, &str)])], leave_out: &[&str]) -> String {
        let mut items = Vec::new();
        for (ns, labels) in namespace_labels {
            let labels: serde_json::Map<String, serde_json::Value> =
                labels.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect();
            items.push(serde_json::json!({"kind": "Namespace", "metadata": {"name": ns, "labels": labels}}));
        }
        for p in self.pods.iter().filter(|p| !leave_out.contains(&p.name.as_str())) {
            items.push(serde_json::json!({
                "kind": "Pod",
                "metadata": {"name": p.name, "namespace": p.namespace, "labels": {"app": p.app},
                             "annotations": {"netc.dev/host-interface": p.host_if}},
                "spec": {"nodeName": "test-node"},
                "status": {"podIP": p.ip.to_string()}
            }));
        }
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for p in &self.pods {
            // Deleting the namespace frees its veth lazily: delete the host side now.
            sh_quiet(&["ip", "link", "del", &p.host_if]);
            sh_quiet(&["ip", "netns", "del", &p.netns]);
        }
    }
}

/// Run `f` on a thread that has entered network namespace `netns`.
pub fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = File::open(&path).expect("open the netns");
        // SAFETY: setns on this thread only, with a valid namespace fd kept open for the call.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}");
        f()
    })
    .join()
    .expect("netns thread")
}

/// An echo server in a pod; stops when dropped.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
}

impl EchoServer {
    pub fn start(pod: &TestPod, port: u16) -> EchoServer {
        EchoServer::listen(&pod.netns, IpAddr::from([0u8; 4]), port)
    }

    /// An echo server on `address:port` in network namespace `netns` (`::` takes IPv4 and IPv6).
    pub fn listen(netns: &str, address: IpAddr, port: u16) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let listener =
            in_netns(netns, move || TcpListener::bind((address, port)).expect("bind the echo server"));
        listener.set_nonblocking(true).expect("nonblocking");
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let flag = Arc::clone(&flag);
                        std::thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                            let mut buf = [0u8; 256];
                            while !flag.load(Ordering::Relaxed) {
                                match s.read(&mut buf) {
                                    Ok(0) => break,
                                    Ok(n) => {
                                        if s.write_all(&buf[..n]).is_err() {
                                            break;
                                        }
                                    }
                                    Err(e)
                                        if matches!(
                                            e.kind(),
                                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                        ) => {}
                                    Err(_) => break,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        EchoServer { stop }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Open a TCP connection from `from` to `to:port` within `timeout`.
pub fn connect(from: &TestPod, to: &TestPod, port: u16, timeout: Duration) -> Option<TcpStream> {
    let addr = SocketAddr::from((to.ip, port));
    in_netns(&from.netns, move || TcpStream::connect_timeout(&addr, timeout).ok())
}

/// Close `stream` with a reset when it is dropped (SO_LINGER 0), not with a FIN: the socket is
/// gone at once, so no packet of it (a retransmitted FIN or data segment) is sent later, under a
/// policy the test has changed meanwhile. Such a late packet of a flow whose conntrack entry a
/// denial removed is judged as a new flow, and counted as one (see kube_watch_needs_root.rs).
pub fn reset_on_close(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid socket fd and a `linger` of the size given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).expect("small"),
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
}

/// Send a line and wait for the echo.
pub fn echo(stream: &mut TcpStream, timeout: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(timeout));
    if stream.write_all(b"ping\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    stream.read_exact(&mut buf).is_ok() && &buf == b"ping\n"
}

/// Whether `from` can open a connection to `to:port` and get an echo (replies flow).
pub fn reaches(from: &TestPod, to: &TestPod, port: u16) -> bool {
    match connect(from, to, port, Duration::from_millis(1500)) {
        Some(mut s) => echo(&mut s, Duration::from_millis(1500)),
        None => false,
    }
}

/// Whether the node itself (this process, in the namespace that routes the pods: a kubelet
/// probe) can open a connection to `to:port` and get an echo.
pub fn node_reaches(to: &TestPod, port: u16) -> bool {
    let addr = SocketAddr::from((to.ip, port));
    match TcpStream::connect_timeout(&addr, Duration::from_millis(1500)) {
        Ok(mut s) => echo(&mut s, Duration::from_millis(1500)),
        Err(_) => false,
    }
}

/// Wait (at most `wait`) until `check` holds, polling every 200 ms; panic saying `what` if not.
pub fn eventually(what: &str, wait: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("not within {wait:?}: {what}");
}

/// A running netcd: its stdout (JSON lines) and stderr lines arrive on channels.
pub struct Netcd {
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: mpsc::Receiver<String>,
}

impl Netcd {
    pub fn start(args: &[&str]) -> Netcd {
        Netcd::spawn(Command::new(env!("CARGO_BIN_EXE_netcd")).args(args))
    }

    /// [`Netcd::start`] in network namespace `netns` (a "node" of its own; the mount namespace,
    /// and so /sys/fs/bpf, stays this process's).
    pub fn start_in(netns: &str, args: &[&str]) -> Netcd {
        use std::os::unix::process::CommandExt as _;
        let file = File::open(format!("/run/netns/{netns}")).expect("open the netns");
        let fd = file.as_raw_fd();
        let mut command = Command::new(env!("CARGO_BIN_EXE_netcd"));
        command.args(args);
        // SAFETY: between fork and exec only setns is called (async-signal-safe) on an fd that
        // `file` keeps open until the child is spawned.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let netcd = Netcd::spawn(&mut command);
        drop(file);
        netcd
    }

    fn spawn(command: &mut Command) -> Netcd {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start netcd");
        let (otx, stdout) = mpsc::channel();
        let (etx, stderr) = mpsc::channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = otx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[netcd] {line}");
                let _ = etx.send(line);
            }
        });
        Netcd { child, stdout, stderr }
    }

    /// Wait (bounded) for a stderr line containing `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("netcd did not log `{needle}` within {timeout:?}"),
            }
        }
    }

    /// Where it serves /metrics (`--metrics-addr 127.0.0.1:0`: it binds a free port and logs it).
    pub fn metrics_addr(&self, timeout: Duration) -> SocketAddr {
        let line = self.wait_log("metrics on http://", timeout);
        line.split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .and_then(|a| a.parse().ok())
            .expect("metrics address")
    }

    /// The JSON events printed so far (waits `settle` for stragglers).
    pub fn events(&self, settle: Duration) -> Vec<serde_json::Value> {
        std::thread::sleep(settle);
        self.stdout.try_iter().filter_map(|l| serde_json::from_str(&l).ok()).collect()
    }

    /// The JSON events printed so far and until `done` holds of them, at most `wait` (verdicts
    /// come through the ring buffer and netcd's reader: on a loaded machine, not at once).
    pub fn events_until(
        &self,
        wait: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + wait;
        let mut events = self.events(Duration::ZERO);
        while !done(&events) && Instant::now() < deadline {
            events.extend(self.events(Duration::from_millis(100)));
        }
        events
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Netcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A unique bpffs directory for one test; `netcd detach` on it when dropped.
pub struct Bpffs(pub PathBuf);

impl Bpffs {
    /// Mounts /sys/fs/bpf when it is not (a fresh machine): each test that pins must be able to
    /// run first, whatever order the tests run in.
    pub fn new(tag: &str) -> Bpffs {
        let dir = PathBuf::from(format!("/sys/fs/bpf/netc-test-{tag}"));
        netc_runtime::datapath::ensure_bpffs(&dir).expect("a bpf file system on /sys/fs/bpf");
        Bpffs(dir)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("utf8 path")
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_netcd")).args(["detach", "--bpffs", self.arg()]).output();
    }
}
