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

/// The interface the node routes `ip` through (`ip route get`), unless it is loopback.
#[must_use]
pub fn route_interface(ip: std::net::IpAddr) -> Option<String> {
    let out = Command::new("ip").args(["-j", "route", "get", &ip.to_string()]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let dev = v.get(0)?.get("dev")?.as_str()?;
    (dev != "lo").then(|| dev.to_owned())
}
