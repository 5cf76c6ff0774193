//! The conntrack's capacity (`netcd run --conntrack-entries`): the map gets the size asked
//! (rounded up to a power of two); a conntrack pinned already keeps its own size (aya reuses a pin
//! without comparing sizes), and netcd says so instead of running silently with a size nobody
//! asked; a conntrack pinned by a netcd of another layout is refused with the fix; `netcd status`
//! shows the capacity. Needs root; skips with a message otherwise. Each test pins under its own
//! /sys/fs/bpf/netc-test-ct-* directory and removes it (`netcd detach`) when it ends.

mod common;

use std::path::Path;
use std::time::Duration;

use common::can_run_as_root;
use common::netns::{Bpffs, Netcd};
use netc_runtime::abi;
use netc_runtime::daemon::{self, ConntrackCapacity};
use netc_runtime::datapath::{self, Datapath};

fn bpffs(test: &str) -> Bpffs {
    let dir = Bpffs::new(&format!("ct-{test}-{}", std::process::id()));
    // A directory left by an earlier, killed run of this test.
    let _ = datapath::detach_all(&dir.0);
    dir
}

fn pinned(dir: &Path) -> u32 {
    daemon::pinned_conntrack_entries(dir).expect("readable").expect("a conntrack is pinned")
}

#[test]
fn a_pinned_conntrack_keeps_its_size_and_netcd_says_so_needs_root() {
    if !can_run_as_root("a_pinned_conntrack_keeps_its_size_and_netcd_says_so_needs_root") {
        return;
    }
    let dir = bpffs("pinned");
    let small = 4096;

    // What aya does by itself: the first load creates and pins a map of the size asked; a second
    // load asking another size silently reuses the pinned map.
    let first = Datapath::load_with_capacities(Some(&dir.0), &[(abi::MAP_CONNTRACK, 4096)]).expect("load");
    assert_eq!(pinned(&dir.0), small);
    drop(first);
    let second = Datapath::load_with_capacities(Some(&dir.0), &[(abi::MAP_CONNTRACK, 8192)]).expect("load");
    assert_eq!(pinned(&dir.0), small, "aya reuses the pinned map whatever size is asked");
    drop(second);

    // netcd's loader reports it: in force, not as asked, adopted, and the log line names the fix.
    let (dp, capacity) = daemon::load_datapath(&dir.0, 8192).expect("load");
    assert_eq!(capacity, ConntrackCapacity { asked: 8192, in_force: small, adopted: true });
    assert!(!capacity.as_asked());
    let line = capacity.describe(&dir.0);
    assert!(line.contains(&format!("{small} entries in force, NOT the 8192 asked")), "{line}");
    assert!(line.contains(&format!("netcd detach --bpffs {}", dir.arg())), "{line}");
    drop(dp);

    // The same size again is adopted quietly; after a detach the new size is created.
    let (dp, capacity) = daemon::load_datapath(&dir.0, 4096).expect("load");
    assert!(capacity.adopted && capacity.as_asked(), "{capacity:?}");
    assert!(!capacity.describe(&dir.0).contains("NOT"), "{}", capacity.describe(&dir.0));
    drop(dp);
    datapath::detach_all(&dir.0).expect("detach");
    let (_dp, capacity) = daemon::load_datapath(&dir.0, 8192).expect("load");
    assert_eq!(capacity, ConntrackCapacity { asked: 8192, in_force: 8192, adopted: false });
    assert!(capacity.as_asked());
    assert_eq!(pinned(&dir.0), capacity.in_force);
}

#[test]
fn out_of_range_capacities_are_refused_before_loading_needs_root() {
    if !can_run_as_root("out_of_range_capacities_are_refused_before_loading_needs_root") {
        return;
    }
    let dir = bpffs("range");
    for bad in [0, daemon::MIN_CONNTRACK_ENTRIES - 1, daemon::MAX_CONNTRACK_ENTRIES + 1] {
        let e = daemon::load_datapath(&dir.0, bad).expect_err("out of range");
        assert!(e.to_string().contains("from 1024 to 16777216"), "{e}");
    }
    assert!(!dir.0.join(abi::MAP_CONNTRACK).exists(), "nothing was pinned");
}

#[test]
fn capacities_round_up_to_a_power_of_two_needs_root() {
    if !can_run_as_root("capacities_round_up_to_a_power_of_two_needs_root") {
        return;
    }
    // A key's set is the low bits of its hash: the number of sets is a power of two.
    let dir = bpffs("round");
    let (_dp, capacity) = daemon::load_datapath(&dir.0, 5001).expect("load");
    assert_eq!(capacity.in_force, 8192);
    assert_eq!(pinned(&dir.0), 8192);
    assert!(capacity.as_asked(), "rounding is not a mismatch: {capacity:?}");
    let line = capacity.describe(&dir.0);
    assert!(line.contains("5001 asked, rounded up to a power of two"), "{line}");
    assert!(line.contains("2048 sets of 4"), "{line}");
}

#[test]
fn a_conntrack_pinned_by_another_layout_is_refused_needs_root() {
    if !can_run_as_root("a_conntrack_pinned_by_another_layout_is_refused_needs_root") {
        return;
    }
    // What an older netcd pinned: an LRU hash of 44-byte keys and 16-byte values.
    let dir = bpffs("layout");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let path = dir.0.join(abi::MAP_CONNTRACK);
    let made = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&path)
        .args(["type", "lru_hash", "key", "44", "value", "16", "entries", "1024", "name", "netc_conntrack"])
        .status()
        .expect("run bpftool (Debian package bpftool)");
    assert!(made.success(), "bpftool map create");
    let e = daemon::load_datapath(&dir.0, 8192).expect_err("another layout");
    let text = e.to_string();
    assert!(text.contains("another map layout") && text.contains("LruHash"), "{text}");
    assert!(text.contains(&format!("netcd detach --bpffs {}", dir.arg())), "{text}");
    // Nothing else was pinned, and the old map is untouched.
    assert!(!dir.0.join(abi::MAP_CONFIG).exists());
    assert_eq!(pinned(&dir.0), 1024);
    // `netcd status` says the same when the rest is pinned too (a config map made the same way).
    let config = dir.0.join(abi::MAP_CONFIG);
    let made = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&config)
        .args(["type", "array", "key", "4", "value", "16", "entries", "1", "name", "netc_config"])
        .status()
        .expect("run bpftool");
    assert!(made.success(), "bpftool map create");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_netcd"))
        .args(["status", "--bpffs", dir.arg()])
        .output()
        .expect("run netcd status");
    let text = String::from_utf8_lossy(&status.stderr);
    assert!(!status.status.success() && text.contains("another map layout"), "{text}");
    // The fix the messages name works on them.
    let detach = std::process::Command::new(env!("CARGO_BIN_EXE_netcd"))
        .args(["detach", "--bpffs", dir.arg()])
        .output()
        .expect("run netcd detach");
    assert!(detach.status.success(), "{}", String::from_utf8_lossy(&detach.stderr));
    assert!(!config.exists() && !path.exists(), "netcd detach removed the old maps");
}

fn on_bpffs(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: an all-zero statfs is a valid out-buffer; `c` is NUL-terminated.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut buf) };
    #[allow(clippy::unnecessary_cast, reason = "f_type's width differs between architectures")]
    let kind = buf.f_type as i64;
    rc == 0 && kind == 0xcafe_4a11
}

/// The first CI run on a fresh machine failed here: /sys/fs/bpf was not mounted yet when this
/// file's layout test made its directory, and passed once another test had mounted it. Each
/// test that pins mounts it itself (`Bpffs::new`). Checked in a mount namespace of this thread's
/// own, with /sys/fs/bpf unmounted as after boot, so nothing outside the test changes.
#[test]
fn a_pinning_test_runs_first_on_a_fresh_machine_needs_root() {
    if !can_run_as_root("a_pinning_test_runs_first_on_a_fresh_machine_needs_root") {
        return;
    }
    let outcome = std::thread::spawn(|| {
        // SAFETY: unshare and mount with constant arguments; only this thread's view changes
        // (CLONE_NEWNS gives it its own fs struct and mount namespace).
        unsafe {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(format!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error()));
            }
            // Private first, so that the unmount below never reaches the machine's namespace.
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return Err(format!("make / private: {}", std::io::Error::last_os_error()));
            }
            while on_bpffs(Path::new("/sys/fs/bpf")) {
                if libc::umount2(c"/sys/fs/bpf".as_ptr(), libc::MNT_DETACH) != 0 {
                    return Err(format!("umount /sys/fs/bpf: {}", std::io::Error::last_os_error()));
                }
            }
        }
        let dir = bpffs("fresh");
        std::fs::create_dir_all(&dir.0).map_err(|e| format!("create {}: {e}", dir.0.display()))?;
        Ok(on_bpffs(&dir.0))
    })
    .join()
    .expect("the thread ends");
    assert_eq!(outcome, Ok(true), "the test's pin directory is on a bpf file system");
}

fn empty_inputs(dir: &Path) -> (String, String) {
    std::fs::create_dir_all(dir).expect("temp dir");
    let ir = dir.join("policies.ir.json");
    let inventory = dir.join("inventory.json");
    std::fs::write(&ir, netc_ir::Ir::empty().to_json()).expect("write IR");
    std::fs::write(&inventory, r#"{"apiVersion": "v1", "kind": "List", "items": []}"#)
        .expect("write inventory");
    (ir.to_str().expect("utf8").to_owned(), inventory.to_str().expect("utf8").to_owned())
}

#[test]
fn netcd_run_and_status_show_the_capacity_in_force_needs_root() {
    if !can_run_as_root("netcd_run_and_status_show_the_capacity_in_force_needs_root") {
        return;
    }
    const WAIT: Duration = Duration::from_secs(20);
    let dir = bpffs("netcd");
    let inputs = std::env::temp_dir().join(format!("netc-ct-netcd-{}", std::process::id()));
    let (ir, inventory) = empty_inputs(&inputs);
    let run = |entries: &str| {
        Netcd::start(&[
            "run",
            "--ir",
            &ir,
            "--inventory",
            &inventory,
            "--bpffs",
            dir.arg(),
            "--conntrack-entries",
            entries,
        ])
    };
    let netcd = run("2048");
    let line = netcd.wait_log("conntrack:", WAIT);
    let in_force = 2048;
    assert!(line.contains(&format!("conntrack: {in_force} entries")) && !line.contains("NOT"), "{line}");
    netcd.wait_log("live", WAIT);
    drop(netcd);

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_netcd"))
        .args(["status", "--bpffs", dir.arg()])
        .output()
        .expect("run netcd status");
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}{}", String::from_utf8_lossy(&status.stderr));
    let row = text.lines().find(|l| l.trim_start().starts_with(abi::MAP_CONNTRACK)).expect("a conntrack row");
    assert!(row.contains(&format!(" of {in_force} (")), "{row}");

    // Restarted with another size: the pinned conntrack stays, and the log says so.
    let netcd = run("65536");
    let line = netcd.wait_log("conntrack:", WAIT);
    assert!(line.contains(&format!("{in_force} entries in force, NOT the 65536 asked")), "{line}");
    assert!(line.contains("netcd detach"), "{line}");
    netcd.wait_log("live", WAIT);
    drop(netcd);
    assert_eq!(pinned(&dir.0), in_force);
    let _ = std::fs::remove_dir_all(&inputs);
}

/// An uninstall script runs `netcd detach` whatever state the node is in, maybe twice.
#[test]
fn netcd_detach_with_nothing_pinned_succeeds_and_says_so_needs_root() {
    if !can_run_as_root("netcd_detach_with_nothing_pinned_succeeds_and_says_so_needs_root") {
        return;
    }
    let dir = bpffs("detach-twice");
    std::fs::create_dir_all(&dir.0).expect("dir");
    let first = Datapath::load_with_capacities(Some(&dir.0), &[(abi::MAP_CONNTRACK, 1024)]).expect("load");
    drop(first);
    for round in ["something pinned", "nothing left", "no directory"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_netcd"))
            .args(["detach", "--bpffs", dir.arg()])
            .output()
            .expect("run netcd detach");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{round}: {text}{}", String::from_utf8_lossy(&out.stderr));
        if round == "something pinned" {
            assert!(text.contains("removed everything under"), "{round}: {text}");
            assert!(!dir.0.exists(), "pins and directory removed");
            std::fs::create_dir_all(&dir.0).expect("an empty directory again");
        } else {
            assert!(text.contains("nothing to remove"), "{round}: {text}");
            let _ = std::fs::remove_dir(&dir.0);
        }
    }
}

/// The maps a plan fills have the capacities the compiler checks a build against
/// (`netc_ir::capacity`, through `abi::MAP_CAPACITIES`): one set of numbers, read back from the
/// kernel.
#[test]
fn maps_have_the_capacities_the_compiler_checks_against_needs_root() {
    if !can_run_as_root("maps_have_the_capacities_the_compiler_checks_against_needs_root") {
        return;
    }
    let dir = bpffs("capacities");
    let datapath = Datapath::load(Some(&dir.0)).expect("load");
    for (map, capacity) in abi::MAP_CAPACITIES {
        let info = aya::maps::MapInfo::from_pin(dir.0.join(map)).expect("pinned");
        assert_eq!(info.max_entries(), capacity, "{map}");
    }
    assert_eq!(netc_ir::capacity::ALL.len(), abi::MAP_CAPACITIES.len(), "every capacity has its map");
    drop(datapath);
    datapath::detach_all(&dir.0).expect("detach");
}
