//! netcd's container image, built and started on this machine: deploy/image/build-local.sh
//! builds the final stage of deploy/Containerfile (FROM scratch: the binary and its shared
//! libraries) with podman; the image's root file system is mounted (`podman image mount`, read
//! only, as `readOnlyRootFilesystem` in deploy/daemonset.yaml) and netcd run from it under chroot
//! (`podman run` cannot set its rlimits in this sandbox), watching the fake API server: its probes
//! answer, and it is not ready while the policy ConfigMap is missing. Needs root and podman.

mod common;
#[path = "common/fake_apiserver.rs"]
mod fake_apiserver;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::can_run_as_root;
use fake_apiserver::{FakeApiServer, namespace};

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
    tmp_mount: Option<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(m) = &self.tmp_mount {
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
    let mut cleanup = Cleanup { tag: tag.clone(), tmp_mount: None };
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
    let tmp_mount = format!("{root}/tmp");
    let bound = Command::new("mount").args(["--bind", tmp.to_str().expect("utf8"), &tmp_mount]).status();
    assert!(bound.is_ok_and(|s| s.success()), "bind-mount /tmp into the image");
    cleanup.tmp_mount = Some(tmp_mount);

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
    drop(cleanup);
    let _ = std::fs::remove_dir_all(&tmp);
}
