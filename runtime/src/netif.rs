//! Network interfaces by name and index, and the route to a pod's address.

use std::ffi::{CStr, CString};
use std::process::Command;

/// The ifindex of an interface name, if it exists.
#[must_use]
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of an ifindex, if it exists.
#[must_use]
pub fn ifname(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    Some(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// Why no host-side interface was taken from the route to a pod's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPodRoute {
    /// `ip route get` found no route (or only loopback), or could not run.
    NoRoute,
    /// The route leads to an interface that is not a pod's host-side end: the node's uplink (the
    /// default route), a bridge such as `cni0`, a tunnel. Attaching there would judge traffic of
    /// the whole node, or of every pod behind the bridge, as this pod's.
    NotAPodInterface {
        /// The interface the route leads to.
        dev: String,
        /// Its link kind (`ip -d link`), empty for a physical device.
        kind: String,
    },
}

impl std::fmt::Display for NoPodRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoRoute => f.write_str("no route to its addresses"),
            Self::NotAPodInterface { dev, kind } => write!(
                f,
                "the route to its address leads to `{dev}` ({}), which is not a pod's host-side veth",
                if kind.is_empty() { "a physical device" } else { kind.as_str() }
            ),
        }
    }
}

/// Link kinds that are one pod's host-side end: a veth pair's peer, or a netkit device.
const POD_LINK_KINDS: [&str; 2] = ["veth", "netkit"];

/// The host-side interface of the pod at `ip`: the interface the node routes `ip` through (`ip
/// route get`), if that is one pod's own device (a veth or netkit). Anything else is refused, so
/// that a pod without a route of its own never makes netcd attach to the uplink or a bridge.
pub fn route_interface(ip: std::net::IpAddr) -> Result<String, NoPodRoute> {
    let out = Command::new("ip")
        .args(["-j", "route", "get", &ip.to_string()])
        .output()
        .map_err(|_| NoPodRoute::NoRoute)?;
    if !out.status.success() {
        return Err(NoPodRoute::NoRoute);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| NoPodRoute::NoRoute)?;
    let dev =
        v.get(0).and_then(|r| r.get("dev")).and_then(serde_json::Value::as_str).ok_or(NoPodRoute::NoRoute)?;
    if dev == "lo" {
        return Err(NoPodRoute::NoRoute);
    }
    let kind = link_kind(dev);
    if POD_LINK_KINDS.contains(&kind.as_str()) {
        Ok(dev.to_owned())
    } else {
        Err(NoPodRoute::NotAPodInterface { dev: dev.to_owned(), kind })
    }
}

/// The link kind of an interface (`ip -d link show`'s `linkinfo.info_kind`), empty when it has
/// none (a physical device) or cannot be read.
#[must_use]
pub fn link_kind(dev: &str) -> String {
    let Ok(out) = Command::new("ip").args(["-j", "-d", "link", "show", "dev", dev]).output() else {
        return String::new();
    };
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get(0)?.get("linkinfo")?.get("info_kind")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}
