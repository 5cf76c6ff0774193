//! The Rust side of `runtime/ebpf/netc_abi.h`: the structs the datapath and netcd share.
//!
//! Every struct is `#[repr(C)]` with explicit padding and no `bool`, exactly as in the header;
//! `tests/abi_layout.rs` checks sizes and offsets against what the C compiler prints. Comments
//! on what each field means live once, in the header.
#![allow(missing_docs, reason = "each item mirrors netc_abi.h, where it is documented")]

/// The compiled datapath (`ebpf/netc.c`).
pub static DATAPATH_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/netc.bpf.o"));
/// An empty classifier (`ebpf/empty.c`), the benchmarks' baseline.
pub static EMPTY_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/empty.bpf.o"));
/// The datapath plus programs that judge 64 new flows per run and insert 64 conntrack keys per run
/// (`ebpf/bench.c`), for benches.
pub static BENCH_OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bench.bpf.o"));
/// The host program that prints the C layout of the shared structs (for the layout test).
pub const LAYOUT_PRINTER: &str = concat!(env!("OUT_DIR"), "/netc-abi-layout");

/// Program names, as in the C source.
pub const PROG_FROM_POD: &str = "netc_from_pod";
pub const PROG_TO_POD: &str = "netc_to_pod";
/// On the tc egress of the node's uplinks: judges Service calls translated to a backend on
/// another node.
pub const PROG_UPLINK: &str = "netc_uplink";
pub const PROG_EMPTY: &str = "netc_empty";
pub const PROG_BENCH_NEW_FLOWS: &str = "netc_bench_new_flows";
/// Inserts `BENCH_FLOWS_PER_RUN` fresh keys into the conntrack map per run, nothing else.
pub const PROG_BENCH_CONNTRACK_INSERT: &str = "netc_bench_conntrack_insert";
/// Writes 64 bytes at `BENCH_FLOWS_PER_RUN` pseudo-random slots of a 32 MiB array per run: the
/// memory floor of any flow table the size of the default conntrack.
pub const PROG_BENCH_TABLE_TOUCH: &str = "netc_bench_table_touch";
/// New flows `PROG_BENCH_NEW_FLOWS` judges (and keys `PROG_BENCH_CONNTRACK_INSERT` inserts) per
/// run.
pub const BENCH_FLOWS_PER_RUN: u32 = 64;

/// Map names, as in the C source (also their pin names under the bpffs directory).
pub const MAP_CONFIG: &str = "netc_config";
pub const MAP_ENDPOINTS: &str = "netc_endpoints";
pub const MAP_IPCACHE: &str = "netc_ipcache";
pub const MAP_CIDRS: &str = "netc_cidrs";
pub const MAP_POLICY: &str = "netc_policy";
pub const MAP_PORT_RANGES: &str = "netc_port_ranges";
pub const MAP_CONNTRACK: &str = "netc_conntrack";
pub const MAP_EVENTS: &str = "netc_events";
pub const MAP_RULE_COUNTERS: &str = "netc_rule_counters";
pub const MAP_STATS: &str = "netc_stats";
pub const MAP_FRONTENDS: &str = "netc_frontends";
pub const MAP_SERVICE_CALLS: &str = "netc_service_calls";
/// Every map, for pinning and removal.
pub const ALL_MAPS: [&str; 12] = [
    MAP_CONFIG,
    MAP_ENDPOINTS,
    MAP_IPCACHE,
    MAP_CIDRS,
    MAP_POLICY,
    MAP_PORT_RANGES,
    MAP_CONNTRACK,
    MAP_EVENTS,
    MAP_RULE_COUNTERS,
    MAP_STATS,
    MAP_FRONTENDS,
    MAP_SERVICE_CALLS,
];

/// The capacity of each map netcd fills from a plan: `netc_ir::capacity`, the numbers `netc build
/// --stats` and `--max-...` check a build against (the C maps get them from build.rs).
pub const MAP_CAPACITIES: [(&str, u32); 7] = netc_ir::capacity::MAPS;

pub const FAMILY_V4: u32 = 4;
pub const FAMILY_V6: u32 = 6;

// Doors, identities, door and endpoint flags: defined with the plan that writes them (netc-ir,
// so that the compiler counts map entries with netcd's own planner).
pub use netc_ir::plan::abi::{
    DOOR_ANY_PEER, DOOR_ANY_PORT, DOOR_ANY_PROTO, DOOR_GUARDED, DOOR_RANGES, EGRESS, EP_AUDIT,
    EP_FAIL_CLOSED, IDENTITY_ANY, IDENTITY_WORLD, INGRESS,
};

pub const RULE_NONE: u32 = 0xffff_ffff;
pub const RULE_OPEN: u32 = 0xffff_fffe;
pub const RULE_FAIL_CLOSED: u32 = 0xffff_fffd;
/// From the pod's own node: always let in (Kubernetes); remembered so that replies pass.
pub const RULE_NODE: u32 = 0xffff_fffc;
/// A Service call at the client's veth: judged after kube-proxy's translation.
pub const RULE_SERVICE: u32 = 0xffff_fffb;

pub const SERVICE_NONE: u32 = 0xffff_ffff;
/// `Event::flags`: a Service call judged after the translation.
pub const EVENT_SERVICE: u8 = 1 << 0;

pub const VERDICT_ALLOW: u8 = 1;
pub const VERDICT_DENY: u8 = 2;
pub const VERDICT_AUDIT: u8 = 3;
/// Only in a conntrack entry: a TCP Service call at the client's veth not judged yet after the
/// translation; its replies do not pass until it is.
pub const VERDICT_PENDING: u8 = 4;

pub const REASON_NEW: u8 = 1;
pub const REASON_REJUDGE: u8 = 2;

pub const STAT_PASSED_ESTABLISHED: u32 = 0;
pub const STAT_PASSED_NEW: u32 = 1;
pub const STAT_DROPPED: u32 = 2;
pub const STAT_AUDITED: u32 = 3;
pub const STAT_EVENTS_LOST: u32 = 4;
pub const STAT_NOT_IP: u32 = 5;
/// Flows pushed out of a full conntrack set by a new flow (the one of the set used least recently).
pub const STAT_CT_EVICTED: u32 = 6;
pub const STAT_COUNT: u32 = 8;

pub const CONFIG_REPORT_ALLOWED: u32 = 1 << 0;
pub const CONFIG_SERVICES: u32 = 1 << 1;

/// The Service mark bit unless told otherwise: the bit above kube-proxy's 0x4000 (masquerade)
/// and 0x8000 (drop).
pub const DEFAULT_SERVICE_MARK: u32 = 0x1_0000;

/// Bits of `netc_range_key` before the port (prefix lengths count from `generation`).
pub const RANGE_KEY_FIXED_BITS: u32 = 8 * 14;
/// Bits of `netc_cidr_key` before the address.
pub const CIDR_KEY_FIXED_BITS: u32 = 64;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    pub generation: u32,
    pub flags: u32,
    pub epoch: u32,
    /// Sets of the conntrack (its slots / [`CT_WAYS`], a power of two).
    pub ct_sets: u32,
    /// The conntrack hash's seed.
    pub ct_seed: u64,
    pub service_mark: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrontendKey {
    pub generation: u32,
    pub family: u8,
    pub protocol: u8,
    /// Network byte order.
    pub port: u16,
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frontend {
    pub service: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub generation: u32,
    pub ifindex: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub id: u32,
    pub flags: u32,
    pub door: [u16; 2],
    pub set: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpKey {
    pub generation: u32,
    pub family: u32,
    pub addr: [u8; 16],
}

/// The data part of `netc_cidr_key` (aya's `lpm_trie::Key` adds the prefix length in front).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CidrKeyData {
    pub generation: u32,
    pub family: u32,
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub generation: u32,
    pub set: u32,
    pub identity: u32,
    pub direction: u8,
    pub protocol: u8,
    /// Network byte order.
    pub port: u16,
}

/// The data part of `netc_range_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeKeyData {
    pub generation: u32,
    pub set: u32,
    pub identity: u32,
    pub direction: u8,
    pub protocol: u8,
    /// Network byte order.
    pub port: u16,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyValue {
    pub rule: u32,
    pub pad: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CtKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub ifindex: u32,
    pub family: u8,
    pub protocol: u8,
    pub hook: u8,
    pub pad: u8,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtValue {
    pub generation: u32,
    pub epoch: u32,
    pub rule: u32,
    pub verdict: u8,
    pub pad: u8,
    /// When it was last used: coarse seconds (2^30 ns) modulo 2^16.
    pub stamp: u16,
}

/// One slot of the conntrack array (`netc_ct_slot`): `seq` is odd while a CPU writes it; a key
/// of family 0 is an empty slot.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CtSlot {
    pub seq: u32,
    pub key: CtKey,
    pub value: CtValue,
}

/// Slots of one conntrack set (`NETC_CT_WAYS`).
pub const CT_WAYS: u32 = 4;

/// The conntrack hash of a key (`ct_hash` in ebpf/conntrack.h, word for word).
#[must_use]
pub fn ct_hash(key: &CtKey, seed: u64) -> u64 {
    let mut bytes = [0u8; 44];
    bytes[..16].copy_from_slice(&key.saddr);
    bytes[16..32].copy_from_slice(&key.daddr);
    bytes[32..34].copy_from_slice(&key.sport.to_ne_bytes());
    bytes[34..36].copy_from_slice(&key.dport.to_ne_bytes());
    bytes[36..40].copy_from_slice(&key.ifindex.to_ne_bytes());
    bytes[40..44].copy_from_slice(&[key.family, key.protocol, key.hook, key.pad]);
    let word = |i: usize| u64::from(u32::from_ne_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes")));
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15;
    for i in (0..10).step_by(2) {
        h ^= (word(i) << 32) | word(i + 1);
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
    }
    h ^= word(10);
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 29;
    h
}

/// The first slot of a key's set in a conntrack of `sets` sets (`ct_first_slot`).
#[must_use]
pub fn ct_first_slot(key: &CtKey, sets: u32, seed: u64) -> u32 {
    let high = u32::try_from(ct_hash(key, seed) >> 32).expect("the high half fits");
    // Wrapping, as the C does: with no sets (a table under 4 slots) the index is out of range
    // and nothing is found.
    (high & sets.wrapping_sub(1)).wrapping_mul(CT_WAYS)
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Event {
    pub time_ns: u64,
    pub generation: u32,
    pub rule: u32,
    pub endpoint: u32,
    pub ifindex: u32,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub protocol: u8,
    pub direction: u8,
    pub verdict: u8,
    pub reason: u8,
    pub flags: u8,
    /// Host byte order.
    pub frontend_port: u16,
    pub service: u32,
    pub frontend: [u8; 16],
}

// SAFETY: each type is #[repr(C)], made only of integers and integer arrays, with every byte
// accounted for by a field (explicit padding), so any bit pattern is valid and none is uninit.
unsafe impl aya::Pod for Config {}
// SAFETY: as above.
unsafe impl aya::Pod for EndpointKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Endpoint {}
// SAFETY: as above.
unsafe impl aya::Pod for IpKey {}
// SAFETY: as above.
unsafe impl aya::Pod for CidrKeyData {}
// SAFETY: as above.
unsafe impl aya::Pod for PolicyKey {}
// SAFETY: as above.
unsafe impl aya::Pod for RangeKeyData {}
// SAFETY: as above.
unsafe impl aya::Pod for PolicyValue {}
// SAFETY: as above.
unsafe impl aya::Pod for CtKey {}
// SAFETY: as above.
unsafe impl aya::Pod for CtValue {}
// SAFETY: as above.
unsafe impl aya::Pod for CtSlot {}
// SAFETY: as above.
unsafe impl aya::Pod for Event {}
// SAFETY: as above.
unsafe impl aya::Pod for FrontendKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Frontend {}

impl Event {
    /// Decode an event from ring buffer bytes; `None` when the record is too short.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Event> {
        if bytes.len() < size_of::<Event>() {
            return None;
        }
        // SAFETY: the length is checked above, Event is Pod (any bit pattern is valid), and
        // read_unaligned copes with the ring buffer's 8-byte alignment not being Event's.
        Some(unsafe { bytes.as_ptr().cast::<Event>().read_unaligned() })
    }
}

/// Family and 16-byte address as stored in keys (IPv4 in the first 4 bytes).
#[must_use]
pub fn addr_bytes(ip: std::net::IpAddr) -> (u32, [u8; 16]) {
    let mut out = [0u8; 16];
    match ip {
        std::net::IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (FAMILY_V4, out)
        }
        std::net::IpAddr::V6(v6) => (FAMILY_V6, v6.octets()),
    }
}

/// The address stored in a key, back as an `IpAddr`.
#[must_use]
pub fn addr_from_bytes(family: u8, bytes: [u8; 16]) -> std::net::IpAddr {
    if u32::from(family) == FAMILY_V4 {
        std::net::IpAddr::from([bytes[0], bytes[1], bytes[2], bytes[3]])
    } else {
        std::net::IpAddr::from(bytes)
    }
}
