//! Compiles the C datapath (runtime/ebpf/*.c) with clang into BPF objects that the crate embeds,
//! and the layout printer that runtime/tests/abi_layout.rs compares with the Rust structs.
//! Only this crate needs clang; the compiler crate `netc` never does.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

// The map capacities, shared with the compiler: the same file the `netc-ir` crate compiles.
// Only `ALL` is needed here; `MAPS` is for the compiler and netcd.
#[allow(dead_code)]
#[path = "../compiler/ir/src/capacity.rs"]
mod capacity;

const INSTALL_HINT: &str = "install the eBPF toolchain: \
    `sudo apt-get install -y clang llvm libbpf-dev linux-libc-dev` (Debian/Ubuntu)";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("NETC_CLANG").unwrap_or_else(|_| "clang".to_owned());
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    // Debian keeps asm/ headers under the multiarch triple; BPF has no arch of its own.
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    println!("cargo:rerun-if-env-changed=NETC_CLANG");
    println!("cargo:rerun-if-changed=../compiler/ir/src/capacity.rs");
    let defines: Vec<String> =
        capacity::ALL.iter().map(|(name, value)| format!("-DNETC_CAP_{name}={value}")).collect();
    for file in ["ebpf/netc.c", "ebpf/empty.c", "ebpf/bench.c", "ebpf/netc_abi.h", "ebpf/layout.c"] {
        println!("cargo:rerun-if-changed={file}");
    }
    for (source, object) in
        [("ebpf/netc.c", "netc.bpf.o"), ("ebpf/empty.c", "empty.bpf.o"), ("ebpf/bench.c", "bench.bpf.o")]
    {
        let mut args = vec!["-O2", "-g", "-Wall", "-Werror", "-target", "bpf", "-mcpu=v3", "-I", &multiarch];
        args.extend(defines.iter().map(String::as_str));
        args.extend(["-c", source, "-o"]);
        run(&clang, &args, &out.join(object));
    }
    run(&clang, &["-O2", "-Wall", "ebpf/layout.c", "-o"], &out.join("netc-abi-layout"));
}

fn run(clang: &str, args: &[&str], output: &Path) {
    let status = Command::new(clang).args(args).arg(output).status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`{clang} {} {}` failed ({s}); if headers such as <bpf/bpf_helpers.h> or <asm/types.h> \
             are missing, {INSTALL_HINT}",
            args.join(" "),
            output.display()
        ),
        Err(e) => {
            panic!("cannot run `{clang}` ({e}): the netc datapath is C compiled with clang; {INSTALL_HINT}")
        }
    }
}
