//! A cluster made up from the policies themselves, for `diff` and `build --verify` when no
//! inventory is given.
//!
//! [`synthesize`] builds an [`Inventory`] with one pod for every set of pods the IRs tell apart,
//! so that every rule and every door has someone to judge:
//!
//! - **Namespaces**: every namespace a policy, a workload or a peer names, with its name label;
//!   for every namespace selector by other labels (`{team=monitoring}/*`), one namespace
//!   `ns-<n>` carrying labels that satisfy it; and one namespace `other` that nothing names.
//! - **Pods**: per policy and per named workload, one pod in its namespace with labels that
//!   satisfy its selector; per pod peer, one such pod in every namespace the peer can reach
//!   (its own namespace, or each synthesized namespace its namespace selector matches); and in
//!   every namespace one pod `other` without labels. Pods are named after their `app` label (or
//!   their other labels), made unique with `-2`, `-3`, ...
//! - **Named ports**: every pod carries every named port the rules mention, numbered from
//!   30001 in name order (the same in both IRs of a diff), since a named port's number is only
//!   known from a real cluster.
//! - **Addresses**: pods get IPv4 addresses from the first of 10.244.0.0/16, 100.64.0.0/16,
//!   172.31.0.0/16 that no ipBlock of the IRs overlaps, so that no address block matches a pod by
//!   accident. Externals: one address inside every ipBlock and outside its excepts (named after
//!   the block), one inside every except (named `except <prefix>`), and one address that no
//!   block covers (`other-address`, plus `other-address-v6` when the IRs use IPv6).
//!
//! Selectors that no labels can satisfy (`a=b` with `a notin (b)`) get no pod. The cluster is a
//! deterministic function of the IRs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{
    ExternalAddress, Inventory, Ir, LabelSelector, NamedPort, Namespace, Operator, Peer, Pod, PortValue,
    Protocol,
};

/// A cluster with a pod for every set of pods the IRs tell apart; see the module documentation.
#[must_use]
pub fn synthesize(irs: &[&Ir]) -> Inventory {
    let mut namespaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let add_namespace = |namespaces: &mut BTreeMap<String, BTreeMap<String, String>>, name: &str| {
        namespaces
            .entry(name.to_owned())
            .or_insert_with(|| BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), name.to_owned())]));
    };
    // 1. Namespaces named anywhere.
    let mut label_selectors: BTreeSet<&LabelSelector> = BTreeSet::new();
    for ir in irs {
        for p in &ir.policies {
            add_namespace(&mut namespaces, &p.namespace);
        }
        for w in &ir.workloads {
            add_namespace(&mut namespaces, &w.namespace);
        }
        for (_, _, rule) in ir.rules() {
            for peer in &rule.peers {
                if let Peer::Pods { namespaces: Some(s), .. } = peer {
                    match s.as_namespace_name() {
                        Some(name) => add_namespace(&mut namespaces, name),
                        None if !s.is_empty() => {
                            label_selectors.insert(s);
                        }
                        None => {}
                    }
                }
            }
        }
    }
    // 2. A namespace for every namespace selector by labels.
    let mut counter = 0;
    for selector in label_selectors {
        let Some(mut labels) = satisfy(selector) else { continue };
        match labels.get(NAMESPACE_NAME_LABEL).cloned() {
            Some(name) => {
                add_namespace(&mut namespaces, &name);
                if let Some(existing) = namespaces.get_mut(&name) {
                    existing.append(&mut labels);
                }
            }
            None => {
                counter += 1;
                let mut name = format!("ns-{counter}");
                while namespaces.contains_key(&name) {
                    counter += 1;
                    name = format!("ns-{counter}");
                }
                labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
                namespaces.insert(name, labels);
            }
        }
    }
    let other_ns = unused(&namespaces, "other");
    add_namespace(&mut namespaces, &other_ns);
    let inventory_namespaces: Vec<Namespace> = namespaces
        .iter()
        .map(|(name, labels)| Namespace { name: name.clone(), labels: labels.clone() })
        .collect();

    // 3. Pods: (namespace, labels), in a set so that equal pods are made once.
    let mut pods: BTreeSet<(String, BTreeMap<String, String>)> = BTreeSet::new();
    for ns in namespaces.keys() {
        pods.insert((ns.clone(), BTreeMap::new()));
    }
    let mut want = |ns: &str, selector: &LabelSelector| {
        if let Some(labels) = satisfy(selector) {
            pods.insert((ns.to_owned(), labels));
        }
    };
    for ir in irs {
        for p in &ir.policies {
            want(&p.namespace, &p.selector);
        }
        for w in &ir.workloads {
            want(&w.namespace, &w.selector);
        }
        for (policy, _, rule) in ir.rules() {
            for peer in &rule.peers {
                let Peer::Pods { namespaces: ns_selector, pods: Some(pod_selector) } = peer else { continue };
                match ns_selector {
                    None => want(&policy.namespace, pod_selector),
                    Some(s) => {
                        for ns in inventory_namespaces.iter().filter(|n| s.matches(&n.labels)) {
                            want(&ns.name, pod_selector);
                        }
                    }
                }
            }
        }
    }

    // 4. Named ports, addresses, names.
    let named: BTreeSet<(String, Protocol)> = irs
        .iter()
        .flat_map(|ir| ir.rules())
        .flat_map(|(_, _, r)| r.ports.iter())
        .filter_map(|p| match &p.port {
            Some(PortValue::Name(n)) => Some((n.clone(), p.protocol)),
            _ => None,
        })
        .collect();
    let ports: Vec<NamedPort> = named
        .iter()
        .zip(30001u16..)
        .map(|((name, protocol), port)| NamedPort { name: name.clone(), port, protocol: *protocol })
        .collect();
    let blocks: Vec<(IpNet, Vec<IpNet>)> = irs
        .iter()
        .flat_map(|ir| ir.rules())
        .flat_map(|(_, _, r)| r.peers.iter())
        .filter_map(|p| match p {
            Peer::IpBlock { cidr, except } => Some((*cidr, except.clone())),
            Peer::Pods { .. } => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let base = ["10.244.0.0/16", "100.64.0.0/16", "172.31.0.0/16"]
        .iter()
        .filter_map(|r| r.parse::<IpNet>().ok())
        .find(|range| !blocks.iter().any(|(cidr, _)| cidr.contains(range) || range.contains(cidr)))
        .and_then(|range| match range.network() {
            IpAddr::V4(v4) => Some(u32::from(v4)),
            IpAddr::V6(_) => None,
        })
        .unwrap_or_else(|| u32::from(Ipv4Addr::new(10, 244, 0, 0)));
    let mut names: BTreeSet<(String, String)> = BTreeSet::new();
    let mut inventory_pods = Vec::new();
    for (i, (namespace, labels)) in pods.into_iter().enumerate() {
        let stem = pod_name(&labels);
        let mut name = stem.clone();
        let mut n = 1;
        while !names.insert((namespace.clone(), name.clone())) {
            n += 1;
            name = format!("{stem}-{n}");
        }
        let offset = u32::try_from(i + 1).unwrap_or(u32::MAX);
        inventory_pods.push(Pod {
            namespace,
            name,
            labels,
            ips: vec![IpAddr::V4(Ipv4Addr::from(base.saturating_add(offset)))],
            ports: ports.clone(),
            node: None,
            host_interface: None,
            host_network: false,
        });
    }
    inventory_pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    // 5. Externals.
    let mut externals: Vec<ExternalAddress> = Vec::new();
    let mut taken: BTreeSet<IpAddr> = BTreeSet::new();
    for (cidr, except) in &blocks {
        if let Some(address) = inside(cidr, except)
            && taken.insert(address)
        {
            externals.push(ExternalAddress { name: cidr.to_string(), address });
        }
        for e in except {
            if let Some(address) = inside(e, &[])
                && taken.insert(address)
            {
                externals.push(ExternalAddress { name: format!("except {e}"), address });
            }
        }
    }
    let uncovered = |candidates: &[&str]| {
        candidates
            .iter()
            .filter_map(|c| c.parse::<IpAddr>().ok())
            .find(|ip| !blocks.iter().any(|(cidr, _)| cidr.contains(ip)))
    };
    if let Some(address) = uncovered(&["192.0.2.1", "198.51.100.1", "203.0.113.1", "8.8.8.8", "1.1.1.1"]) {
        externals.push(ExternalAddress { name: "other-address".into(), address });
    }
    if blocks.iter().any(|(cidr, _)| matches!(cidr, IpNet::V6(_)))
        && let Some(address) = uncovered(&["2001:db8::1", "2001:db8:ffff::1", "2606:4700::1"])
    {
        externals.push(ExternalAddress { name: "other-address-v6".into(), address });
    }
    externals.sort_by(|a, b| a.name.cmp(&b.name));

    Inventory {
        namespaces: inventory_namespaces,
        pods: inventory_pods,
        externals,
        implied_namespaces: Vec::new(),
        services: Vec::new(),
    }
}

/// Labels that satisfy `selector`, or `None` when none can.
fn satisfy(selector: &LabelSelector) -> Option<BTreeMap<String, String>> {
    let mut labels = selector.match_labels.clone();
    for r in &selector.match_expressions {
        match r.operator {
            Operator::In => {
                let first = r.values.first()?;
                labels.entry(r.key.clone()).or_insert_with(|| first.clone());
            }
            Operator::Exists => {
                // A value the key's exclusions (`key, key notin (...)`) leave free.
                let excluded = |v: &str| {
                    selector.match_expressions.iter().any(|e| {
                        e.key == r.key && e.operator == Operator::NotIn && e.values.iter().any(|x| x == v)
                    })
                };
                let free = std::iter::once("yes".to_owned())
                    .chain((2..).map(|n| format!("yes{n}")))
                    .find(|v| !excluded(v))
                    .expect("finitely many values are excluded");
                labels.entry(r.key.clone()).or_insert(free);
            }
            Operator::NotIn | Operator::DoesNotExist => {}
        }
    }
    selector.matches(&labels).then_some(labels)
}

/// A readable pod name for `labels`.
fn pod_name(labels: &BTreeMap<String, String>) -> String {
    let raw = match labels.get("app") {
        Some(app) => app.clone(),
        None if labels.is_empty() => "other".to_owned(),
        None => labels.values().filter(|v| !v.is_empty()).cloned().collect::<Vec<_>>().join("-"),
    };
    let cleaned: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() { "pod".to_owned() } else { trimmed.chars().take(50).collect() }
}

fn unused(namespaces: &BTreeMap<String, BTreeMap<String, String>>, stem: &str) -> String {
    let mut name = stem.to_owned();
    let mut n = 1;
    while namespaces.contains_key(&name) {
        n += 1;
        name = format!("{stem}-{n}");
    }
    name
}

/// An address inside `block` and in none of `except`: the first host address (or the network
/// address of a single-address block) that is not excepted, trying a few.
fn inside(block: &IpNet, except: &[IpNet]) -> Option<IpAddr> {
    let ok = |ip: &IpAddr| block.contains(ip) && !except.iter().any(|e| e.contains(ip));
    let candidates: Vec<IpAddr> = match block {
        IpNet::V4(n) => {
            let start = u32::from(n.network());
            let end = u32::from(n.broadcast());
            let mut c: Vec<IpAddr> = (0..64u32)
                .filter_map(|i| start.checked_add(i + 1))
                .filter(|a| *a <= end)
                .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .collect();
            c.push(IpAddr::V4(n.network()));
            c.push(IpAddr::V4(n.broadcast()));
            // The middle, then the far end: excepts usually carve out the start.
            let mid = start + (end - start) / 2;
            c.push(IpAddr::V4(Ipv4Addr::from(mid)));
            c.push(IpAddr::V4(Ipv4Addr::from(end.saturating_sub(1).max(start))));
            c
        }
        IpNet::V6(n) => {
            let start = u128::from(n.network());
            let end = u128::from(n.broadcast());
            let mut c: Vec<IpAddr> = (0..64u128)
                .filter_map(|i| start.checked_add(i + 1))
                .filter(|a| *a <= end)
                .map(|a| IpAddr::V6(a.into()))
                .collect();
            c.push(IpAddr::V6(n.network()));
            c.push(IpAddr::V6((start + (end - start) / 2).into()));
            c.push(IpAddr::V6(end.saturating_sub(1).max(start).into()));
            c
        }
    };
    candidates.into_iter().find(ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceFile;

    fn ir(text: &str) -> Ir {
        let out = crate::compile(&[SourceFile::new("s.np", text)]);
        out.ir.unwrap_or_else(|| panic!("compiles: {:?}", out.diagnostics))
    }

    #[test]
    fn every_selector_block_and_except_gets_someone() {
        let ir = ir("namespace shop {\n  frontend -> backend:http\n  {team=monitoring}/* -> web:9090\n  \
                     backend egress guarded\n  backend -> 203.0.113.0/24 except 203.0.113.0/28:443, dns\n}\n");
        let inv = synthesize(&[&ir]);
        let ns: Vec<&str> = inv.namespaces.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(ns, ["kube-system", "ns-1", "other", "shop"]);
        assert_eq!(
            inv.namespace("ns-1").and_then(|n| n.labels.get("team")).map(String::as_str),
            Some("monitoring")
        );
        let pods: Vec<String> = inv.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
        assert_eq!(
            pods,
            [
                "kube-system/kube-dns",
                "kube-system/other",
                "ns-1/other",
                "other/other",
                "shop/backend",
                "shop/frontend",
                "shop/other",
                "shop/web",
            ]
        );
        let backend = inv.pod("shop", "backend").expect("backend pod");
        assert_eq!(
            backend.ports,
            vec![NamedPort { name: "http".into(), port: 30001, protocol: Protocol::Tcp }]
        );
        assert!(backend.ips[0].to_string().starts_with("10.244."));
        let ext: Vec<(String, String)> =
            inv.externals.iter().map(|e| (e.name.clone(), e.address.to_string())).collect();
        assert_eq!(
            ext,
            [
                ("203.0.113.0/24", "203.0.113.16"),
                ("except 203.0.113.0/28", "203.0.113.1"),
                ("other-address", "192.0.2.1"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn a_key_required_with_exclusions_gets_a_value_it_allows() {
        let ir = ir("workload api = {tier, tier notin (yes, yes2)}\napi -> web:80\n");
        let inv = synthesize(&[&ir]);
        let api = inv.pods.iter().find(|p| p.labels.contains_key("tier")).expect("a pod for api");
        assert_eq!(api.labels.get("tier").map(String::as_str), Some("yes3"));
    }

    #[test]
    fn pods_avoid_address_blocks_and_unsatisfiable_selectors_get_no_pod() {
        let mut ir = ir("x isolated\n10.0.0.0/8 -> web:80\n");
        // Only an IR written by hand can hold a selector no labels satisfy (netc refuses a key
        // twice, but for `key, key notin (...)`, which some labels always satisfy).
        ir.workloads.push(netc_ir::Workload {
            name: "never".into(),
            namespace: "default".into(),
            selector: LabelSelector {
                match_labels: BTreeMap::from([("a".to_owned(), "b".to_owned())]),
                match_expressions: vec![netc_ir::Requirement {
                    key: "a".into(),
                    operator: Operator::NotIn,
                    values: vec!["b".into()],
                }],
            },
            span: ir.policies[0].span.clone(),
        });
        let inv = synthesize(&[&ir]);
        assert!(inv.pods.iter().all(|p| p.ips[0].to_string().starts_with("100.64.")), "{:?}", inv.pods);
        assert!(!inv.pods.iter().any(|p| p.labels.contains_key("a")));
        assert_eq!(synthesize(&[&ir]), inv, "deterministic");
    }
}
