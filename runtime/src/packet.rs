//! Crafted Ethernet frames for `BPF_PROG_TEST_RUN` (tests and benchmarks). Checksums are left
//! zero: the classifier never reads them.

use std::net::IpAddr;

/// IP protocol numbers.
pub const TCP: u8 = 6;
/// UDP.
pub const UDP: u8 = 17;
/// SCTP.
pub const SCTP: u8 = 132;
/// ICMP.
pub const ICMP: u8 = 1;
/// ICMPv6.
pub const ICMPV6: u8 = 58;

/// TCP SYN flag.
pub const SYN: u8 = 0x02;
/// TCP ACK flag.
pub const ACK: u8 = 0x10;

/// One packet's addresses, protocol and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Source address.
    pub src: IpAddr,
    /// Destination address (same family as `src`).
    pub dst: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// Source port (ignored without ports).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

impl Packet {
    /// A packet.
    #[must_use]
    pub fn new(src: IpAddr, dst: IpAddr, protocol: u8, sport: u16, dport: u16) -> Packet {
        Packet { src, dst, protocol, sport, dport }
    }

    /// The reply: addresses and ports swapped.
    #[must_use]
    pub fn reply(&self) -> Packet {
        Packet { src: self.dst, dst: self.src, protocol: self.protocol, sport: self.dport, dport: self.sport }
    }

    /// The frame, with a SYN for TCP.
    #[must_use]
    pub fn frame(&self) -> Vec<u8> {
        frame(self, SYN, 0)
    }
}

fn transport(p: &Packet, tcp_flags: u8) -> Vec<u8> {
    let mut l4 = Vec::new();
    let ports = |l4: &mut Vec<u8>| {
        l4.extend_from_slice(&p.sport.to_be_bytes());
        l4.extend_from_slice(&p.dport.to_be_bytes());
    };
    match p.protocol {
        TCP => {
            ports(&mut l4);
            l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, tcp_flags, 0xff, 0xff, 0, 0, 0, 0]);
        }
        UDP => {
            ports(&mut l4);
            l4.extend_from_slice(&[0, 8, 0, 0]);
        }
        SCTP => {
            ports(&mut l4);
            // verification tag, checksum, then an INIT chunk header.
            l4.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 20]);
            l4.extend_from_slice(&[0; 16]);
        }
        _ => l4.extend_from_slice(&[8, 0, 0, 0, 0, 1, 0, 1]),
    }
    l4
}

/// A frame with explicit TCP flags; `fragment_offset` (in 8-byte units) > 0 makes an IPv4
/// later fragment, which carries no transport header.
#[must_use]
pub fn frame(p: &Packet, tcp_flags: u8, fragment_offset: u16) -> Vec<u8> {
    let l4 = if fragment_offset > 0 { vec![0u8; 16] } else { transport(p, tcp_flags) };
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            let total = u16::try_from(20 + l4.len()).expect("small packet");
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 1]);
            f.extend_from_slice(&(fragment_offset & 0x1fff).to_be_bytes());
            f.extend_from_slice(&[64, p.protocol, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&u16::try_from(l4.len()).expect("small packet").to_be_bytes());
            f.extend_from_slice(&[p.protocol, 64]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        _ => panic!("a packet's addresses must share a family"),
    }
    f.extend_from_slice(&l4);
    f
}

/// An ARP request (who-has), which the classifier must pass untouched.
#[must_use]
pub fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x08, 0x06];
    f.extend_from_slice(&[
        0, 1, 0x08, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ]);
    f
}

/// An IPv6 neighbour solicitation, which the classifier must pass untouched.
#[must_use]
pub fn neighbour_solicitation(src: std::net::Ipv6Addr, target: std::net::Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0x33, 0x33, 0xff, 0, 0, 1, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd];
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 24, ICMPV6, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&target.octets());
    f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&target.octets());
    f
}

/// An MLDv2 listener report to ff02::16 behind a hop-by-hop header with a router alert, as a
/// pod's kernel sends when its interface comes up; the classifier must pass it untouched.
#[must_use]
pub fn mld_report(src: std::net::Ipv6Addr) -> Vec<u8> {
    let dst: std::net::Ipv6Addr = "ff02::16".parse().expect("a multicast address");
    let mut f = vec![0x33, 0x33, 0, 0, 0, 0x16, 0x02, 0, 0, 0, 0, 1, 0x86, 0xdd];
    // 8 bytes of hop-by-hop options, then an 8-byte report with no records (type 143).
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, 0, 1]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&[ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
    f.extend_from_slice(&[143, 0, 0, 0, 0, 0, 0, 0]);
    f
}

/// An IGMPv3 membership report to 224.0.0.22 (MLD's IPv4 twin), which the classifier must pass.
#[must_use]
pub fn igmp_report(src: std::net::Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0x01, 0, 0x5e, 0, 0, 0x16, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(&[0x46, 0xc0, 0, 32, 0, 1, 0, 0, 1, 2, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&[224, 0, 0, 22]);
    f.extend_from_slice(&[0x94, 4, 0, 0]); // router alert option
    f.extend_from_slice(&[0x22, 0, 0, 0, 0, 0, 0, 0]);
    f
}
