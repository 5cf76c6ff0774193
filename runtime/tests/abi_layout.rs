//! The structs shared with the C datapath have the same layout on both sides: sizes and field
//! offsets printed by the C compiler (runtime/ebpf/layout.c, built by build.rs) against Rust's.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::process::Command;

use netc_runtime::abi::*;

fn c_layout() -> BTreeMap<String, usize> {
    let out = Command::new(LAYOUT_PRINTER).output().expect("run the layout printer built by build.rs");
    assert!(out.status.success(), "layout printer failed");
    String::from_utf8(out.stdout)
        .expect("ascii")
        .lines()
        .map(|l| {
            let (name, n) = l.rsplit_once(' ').expect("`name value` lines");
            (
                name.trim_end_matches(" size").to_owned() + if l.contains(" size ") { "#size" } else { "" },
                n.parse().expect("a number"),
            )
        })
        .collect()
}

macro_rules! rust_layout {
    ($out:ident, $c:literal, $t:ty, [$($f:ident),*]) => {
        $out.insert(concat!($c, "#size").to_owned(), size_of::<$t>());
        $( $out.insert(concat!($c, ".", stringify!($f)).to_owned(), offset_of!($t, $f)); )*
    };
}

#[test]
fn shared_structs_have_the_c_layout() {
    let mut rust = BTreeMap::new();
    rust_layout!(
        rust,
        "netc_config",
        Config,
        [generation, flags, epoch, ct_sets, ct_seed, service_mark, pad]
    );
    rust_layout!(rust, "netc_frontend_key", FrontendKey, [generation, family, protocol, port, addr]);
    rust_layout!(rust, "netc_frontend", Frontend, [service, pad]);
    rust_layout!(rust, "netc_endpoint_key", EndpointKey, [generation, ifindex]);
    rust_layout!(rust, "netc_endpoint", Endpoint, [id, flags, door, set]);
    rust_layout!(rust, "netc_ip_key", IpKey, [generation, family, addr]);
    rust_layout!(rust, "netc_policy_key", PolicyKey, [generation, set, identity, direction, protocol, port]);
    rust_layout!(rust, "netc_policy_value", PolicyValue, [rule, pad]);
    rust_layout!(
        rust,
        "netc_ct_key",
        CtKey,
        [saddr, daddr, sport, dport, ifindex, family, protocol, hook, pad]
    );
    rust_layout!(rust, "netc_ct_value", CtValue, [generation, epoch, rule, verdict, pad, stamp]);
    rust_layout!(rust, "netc_ct_slot", CtSlot, [seq, key, value]);
    rust_layout!(
        rust,
        "netc_event",
        Event,
        [
            time_ns,
            generation,
            rule,
            endpoint,
            ifindex,
            saddr,
            daddr,
            sport,
            dport,
            family,
            protocol,
            direction,
            verdict,
            reason,
            flags,
            frontend_port,
            service,
            frontend
        ]
    );
    // The LPM keys are aya's Key<prefixlen: u32, data>: the data starts 4 bytes in.
    rust.insert("netc_cidr_key#size".into(), 4 + size_of::<CidrKeyData>());
    rust.insert("netc_cidr_key.prefixlen".into(), 0);
    rust.insert("netc_cidr_key.generation".into(), 4 + offset_of!(CidrKeyData, generation));
    rust.insert("netc_cidr_key.family".into(), 4 + offset_of!(CidrKeyData, family));
    rust.insert("netc_cidr_key.addr".into(), 4 + offset_of!(CidrKeyData, addr));
    rust.insert("netc_range_key#size".into(), 4 + size_of::<RangeKeyData>());
    rust.insert("netc_range_key.prefixlen".into(), 0);
    rust.insert("netc_range_key.generation".into(), 4 + offset_of!(RangeKeyData, generation));
    rust.insert("netc_range_key.set".into(), 4 + offset_of!(RangeKeyData, set));
    rust.insert("netc_range_key.identity".into(), 4 + offset_of!(RangeKeyData, identity));
    rust.insert("netc_range_key.direction".into(), 4 + offset_of!(RangeKeyData, direction));
    rust.insert("netc_range_key.protocol".into(), 4 + offset_of!(RangeKeyData, protocol));
    rust.insert("netc_range_key.port".into(), 4 + offset_of!(RangeKeyData, port));
    assert_eq!(size_of::<aya::maps::lpm_trie::Key<CidrKeyData>>(), 4 + size_of::<CidrKeyData>());

    // The conntrack hash: the key whose byte i is i + 1 (as layout.c builds it).
    let byte = |i: u8| i + 1;
    let key = CtKey {
        saddr: std::array::from_fn(|i| byte(u8::try_from(i).expect("small"))),
        daddr: std::array::from_fn(|i| byte(u8::try_from(i + 16).expect("small"))),
        sport: u16::from_ne_bytes([byte(32), byte(33)]),
        dport: u16::from_ne_bytes([byte(34), byte(35)]),
        ifindex: u32::from_ne_bytes([byte(36), byte(37), byte(38), byte(39)]),
        family: byte(40),
        protocol: byte(41),
        hook: byte(42),
        pad: byte(43),
    };
    rust.insert("ct_hash".into(), usize::try_from(ct_hash(&key, 0x0123_4567_89ab_cdef)).expect("64-bit"));

    let c = c_layout();
    assert_eq!(rust, c, "Rust (left) and C (right) disagree on a shared struct's layout");
    // The range key's prefix counts every byte before the port.
    assert_eq!(RANGE_KEY_FIXED_BITS as usize, 8 * (c["netc_range_key.port"] - 4));
    assert_eq!(CIDR_KEY_FIXED_BITS as usize, 8 * (c["netc_cidr_key.addr"] - 4));
}
