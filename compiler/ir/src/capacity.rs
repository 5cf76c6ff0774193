//! The capacities (in entries) of the eBPF maps netcd fills from a program and an inventory: one
//! set of numbers for the runtime, which sizes its maps with them, and the compiler, which checks
//! a build against them (`netc build --stats`, `--max-...`).
//!
//! The C datapath gets them from `runtime/build.rs`, which includes this very file and passes each
//! constant to clang as `-DNETC_CAP_<NAME>=<value>` (see [`ALL`]); runtime/ebpf/netc.c refuses to
//! compile without them. So a node's maps hold exactly what a build was checked against.
//!
//! This file has no `use` and no dependency, so that a build script can include it by path.

/// `netc_endpoints`: local pods (one entry per pod interface on the node).
pub const ENDPOINTS: u32 = 16_384;
/// `netc_ipcache`: pod addresses (every address of every pod of the cluster, per node).
pub const IPCACHE: u32 = 262_144;
/// `netc_cidrs`: address prefixes of ipBlocks (each CIDR and each `except` is one entry).
pub const CIDRS: u32 = 262_144;
/// `netc_policy`: (policy set, direction, peer identity, protocol, port) entries.
pub const POLICY: u32 = 1_048_576;
/// `netc_port_ranges`: aligned blocks of port ranges, per (policy set, direction, peer).
pub const PORT_RANGES: u32 = 262_144;
/// `netc_frontends`: Service frontends (address x port, and each node port twice: IPv4 and
/// IPv6), filled only when netcd runs with `--uplink`.
pub const FRONTENDS: u32 = 65_536;
/// `netc_rule_counters`: rules with a counter (a rule index at or above it is not counted).
pub const RULES: u32 = 1 << 18;

/// Every capacity with the name of its C macro (`NETC_CAP_<name>`).
pub const ALL: [(&str, u32); 7] = [
    ("ENDPOINTS", ENDPOINTS),
    ("IPCACHE", IPCACHE),
    ("CIDRS", CIDRS),
    ("POLICY", POLICY),
    ("PORT_RANGES", PORT_RANGES),
    ("FRONTENDS", FRONTENDS),
    ("RULES", RULES),
];

/// Every capacity with the name of its map in the datapath (`runtime/ebpf/netc.c`).
pub const MAPS: [(&str, u32); 7] = [
    ("netc_endpoints", ENDPOINTS),
    ("netc_ipcache", IPCACHE),
    ("netc_cidrs", CIDRS),
    ("netc_policy", POLICY),
    ("netc_port_ranges", PORT_RANGES),
    ("netc_frontends", FRONTENDS),
    ("netc_rule_counters", RULES),
];
