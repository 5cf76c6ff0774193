//! netc-runtime: the netc IR enforced on a node with eBPF.
//!
//! - [`plan`]: the pure part. IR + inventory -> identities, ipcache, policy entries, endpoint
//!   configurations. No kernel needed; unit-tested on its own. It is `netc_ir::plan`, shared with
//!   the compiler, which counts a node's map entries with it (`netc build --stats`).
//! - [`abi`]: the structs shared with the C datapath (`runtime/ebpf/`), checked against it.
//! - [`datapath`]: loads the datapath with aya, writes a plan as a new generation and flips to it,
//!   attaches to interfaces (TCX or clsact/netlink), pins everything under a bpffs directory.
//! - [`packet`]: crafted packets for `BPF_PROG_TEST_RUN` (tests and benchmarks).
//! - [`events`]: verdict events as JSON lines.
//! - [`netif`]: interface names, indexes and routes.
//! - [`daemon`]: `netcd run`: load, attach, stream, watch and reload.
//! - [`kube`]: `netcd run --kubernetes`: the API server's namespaces, pods and policy ConfigMap,
//!   watched, fed to the daemon.
//! - [`metrics`]: the Prometheus `/metrics` and the `/healthz` and `/readyz` probes.
//!
//! See `docs/runtime.md` for the design and a walk-through.

pub mod abi;
pub mod daemon;
pub mod datapath;
pub mod events;
pub mod kube;
pub mod metrics;
pub mod netif;
pub mod packet;
pub use netc_ir::plan;
