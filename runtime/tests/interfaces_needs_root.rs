//! netcd finds a pod's host-side interface from the route to its address only when that route
//! leads to a pod's own device (a veth): a pod without a route of its own must never make netcd
//! attach to the node's uplink or a bridge, where it would judge the whole node's traffic as the
//! pod's. Needs root (creates links in the root namespace, named after this process, removed after).

mod common;

use std::net::IpAddr;
use std::process::Command;

use netc_runtime::daemon::resolve_interfaces;
use netc_runtime::netif::{NoPodRoute, route_interface};
use netc_runtime::plan::PlannedEndpoint;

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Links made by this test, deleted when it ends (also on panic).
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for link in &self.0 {
            let _ = Command::new("ip").args(["link", "del", link]).status();
        }
    }
}

fn endpoint(id: u32, address: IpAddr) -> PlannedEndpoint {
    PlannedEndpoint {
        id,
        set: 1,
        namespace: "default".into(),
        name: format!("pod-{id}"),
        interface: None,
        ips: vec![address],
        flags: 0,
        doors: [0, 0],
    }
}

#[test]
fn a_route_is_taken_only_to_a_pods_veth_needs_root() {
    if !common::can_run_as_root("a_route_is_taken_only_to_a_pods_veth_needs_root") {
        return;
    }
    // Unique names and a /24 of 198.18.0.0/24 and of 198.19.0.0/24 (benchmarking range) that
    // this process holds; only routes are looked up, no packet is sent.
    let tag = common::netns::unique_tag();
    let subnet = common::netns::Subnet::claim(&["198.18", "198.19"], 1);
    let octet = subnet.n;
    let (veth, peer, ifb_dev, bridge) =
        (format!("nrv{tag}"), format!("nrp{tag}"), format!("nri{tag}"), format!("nrb{tag}"));
    let links = Links(vec![veth.clone(), ifb_dev.clone(), bridge.clone()]);
    ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
    ip(&["link", "add", &ifb_dev, "type", "ifb"]);
    ip(&["link", "add", &bridge, "type", "bridge"]);
    for link in [&veth, &peer, &ifb_dev, &bridge] {
        ip(&["link", "set", link, "up"]);
    }
    let pod_on_veth: IpAddr = format!("198.18.{octet}.7").parse().expect("address");
    let behind_ifb: IpAddr = format!("198.19.{octet}.7").parse().expect("address");
    let behind_bridge: IpAddr = format!("198.19.{octet}.9").parse().expect("address");
    ip(&["route", "add", &format!("{pod_on_veth}/32"), "dev", &veth]);
    ip(&["route", "add", &format!("{behind_ifb}/32"), "dev", &ifb_dev]);
    ip(&["route", "add", &format!("{behind_bridge}/32"), "dev", &bridge]);

    assert_eq!(route_interface(pod_on_veth), Ok(veth.clone()));
    assert_eq!(
        route_interface(behind_ifb),
        Err(NoPodRoute::NotAPodInterface { dev: ifb_dev.clone(), kind: "ifb".into() })
    );
    assert_eq!(
        route_interface(behind_bridge),
        Err(NoPodRoute::NotAPodInterface { dev: bridge.clone(), kind: "bridge".into() })
    );

    // The daemon's resolution: the veth pod is attached, the others are reported and left alone.
    let (found, warnings) =
        resolve_interfaces(&[endpoint(1, pod_on_veth), endpoint(2, behind_ifb), endpoint(3, behind_bridge)]);
    assert_eq!(found.keys().copied().collect::<Vec<_>>(), vec![1], "{warnings:?}");
    assert_eq!(found[&1].0, veth);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains(&format!("leads to `{ifb_dev}`")), "{warnings:?}");
    assert!(warnings[1].contains(&format!("leads to `{bridge}`")), "{warnings:?}");
    drop(links);
}

#[test]
fn the_default_route_is_never_a_pods_interface_needs_root() {
    if !common::can_run_as_root("the_default_route_is_never_a_pods_interface_needs_root") {
        return;
    }
    // 192.0.2.1 (TEST-NET-1) has no route of its own here: the lookup ends on the default route
    // (the uplink) or on nothing; never on a pod's interface. No packet is sent.
    let address: IpAddr = "192.0.2.1".parse().expect("address");
    match route_interface(address) {
        Ok(dev) => panic!("the uplink `{dev}` was taken for a pod's interface"),
        Err(why) => eprintln!("192.0.2.1: {why}"),
    }
}
