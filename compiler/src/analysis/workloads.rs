//! Pods and flows written the way people read them: which named workload of the IR a pod belongs
//! to, and how to write a set of pods, an address or a port as netc source (for the arrows that
//! `explain` suggests, and for grouping flows by workload in `diff`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use netc_ir::{Ir, LabelSelector, Operator, Pod, Protocol, Workload};

use crate::syntax;

/// Labels that controllers put on pods and that say nothing about what the pod is (they differ
/// between replicas or revisions), left out of suggested selectors.
const NOISE_LABELS: [&str; 6] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
];

/// The named workload of `ir` that `pod` belongs to: same namespace, selector matching the pod's
/// labels; the most specific one (most requirements) when several match, the first of those in
/// IR order on a tie.
#[must_use]
pub fn workload_of<'i>(ir: &'i Ir, pod: &Pod) -> Option<&'i Workload> {
    let weight = |w: &Workload| w.selector.match_labels.len() + w.selector.match_expressions.len();
    let mut best: Option<&Workload> = None;
    for w in ir.workloads.iter().filter(|w| w.namespace == pod.namespace && w.selector.matches(&pod.labels)) {
        if best.is_none_or(|b| weight(w) > weight(b)) {
            best = Some(w);
        }
    }
    best
}

/// A selector that picks `pod` and its replicas: `app=<value>` when the pod has an `app` label,
/// otherwise its labels less the per-replica ones. `None` when nothing is left.
#[must_use]
pub fn replica_selector(pod: &Pod) -> Option<LabelSelector> {
    if let Some(app) = pod.labels.get("app") {
        return Some(LabelSelector::labels([("app", app.as_str())]));
    }
    let labels: BTreeMap<String, String> = pod
        .labels
        .iter()
        .filter(|(k, _)| !NOISE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!labels.is_empty()).then(|| LabelSelector { match_labels: labels, match_expressions: Vec::new() })
}

/// How to write `pod` (and the pods like it) in a statement of namespace `context`: the name of
/// its workload; else, with `bare`, the value of its `app` label as an undeclared name (which
/// means `app=<name>`) when that is a valid name no workload of the namespace uses; else an
/// inline selector. Qualified with the pod's namespace when that is another. A pod with no
/// telling labels is written as its whole namespace (`*` or `ns/*`).
#[must_use]
pub fn pod_source(ir: &Ir, pod: &Pod, context: &str, bare: bool) -> String {
    let bare_name = pod.labels.get("app").filter(|app| {
        bare && syntax::is_name(app)
            && !ir.workloads.iter().any(|w| w.namespace == pod.namespace && w.name == **app)
    });
    let local = match (workload_of(ir, pod), bare_name) {
        (Some(w), _) => w.name.clone(),
        (None, Some(app)) => app.clone(),
        (None, None) => match replica_selector(pod) {
            Some(s) => selector_source(&s),
            None => "*".to_owned(),
        },
    };
    if pod.namespace == context { local } else { format!("{}/{local}", pod.namespace) }
}

/// A label selector in netc notation: `{app=web, tier in (a, b), !legacy}`, values quoted when
/// they are not bare words.
#[must_use]
pub fn selector_source(selector: &LabelSelector) -> String {
    let mut parts: Vec<String> =
        selector.match_labels.iter().map(|(k, v)| format!("{k}={}", value(v))).collect();
    for r in &selector.match_expressions {
        let values = || r.values.iter().map(|v| value(v)).collect::<Vec<_>>().join(", ");
        parts.push(match r.operator {
            Operator::In => format!("{} in ({})", r.key, values()),
            Operator::NotIn => format!("{} notin ({})", r.key, values()),
            Operator::Exists => r.key.clone(),
            Operator::DoesNotExist => format!("!{}", r.key),
        });
    }
    format!("{{{}}}", parts.join(", "))
}

fn value(v: &str) -> String {
    let bare = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if bare { v.to_owned() } else { format!("\"{v}\"") }
}

/// An address as a netc endpoint that a port may follow: IPv4 as is, IPv6 as a `/128` block (a
/// bare IPv6 address would swallow the `:port`).
#[must_use]
pub fn address_source(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/128"),
    }
}

/// A port in netc notation, with its colon: `:8080`, `:53/udp`, `:http`.
#[must_use]
pub fn port_source(protocol: Protocol, port: &str) -> String {
    match protocol {
        Protocol::Tcp => format!(":{port}"),
        Protocol::Udp => format!(":{port}/udp"),
        Protocol::Sctp => format!(":{port}/sctp"),
    }
}

/// The workload a pod is shown under when flows are grouped: `namespace/name` of its named
/// workload in the first IR that has one, else `namespace/<app label>`, else the name of the
/// controller that made it (see [`controller_name`]).
#[must_use]
pub fn group_of(irs: &[&Ir], pod: &Pod) -> String {
    if let Some(w) = irs.iter().find_map(|ir| workload_of(ir, pod)) {
        return format!("{}/{}", pod.namespace, w.name);
    }
    match pod.labels.get("app") {
        Some(app) => format!("{}/{app}", pod.namespace),
        None => format!("{}/{}", pod.namespace, controller_name(pod)),
    }
}

/// The name of the Deployment, StatefulSet or DaemonSet a pod belongs to, read off its name and
/// the labels controllers set: `web-7d9f8b6c5-x2x9q` with `pod-template-hash: 7d9f8b6c5` is
/// `web`; `db-0` of a StatefulSet is `db`; `kube-proxy-5p4vd` of a DaemonSet is `kube-proxy`.
/// A pod no controller made keeps its own name.
#[must_use]
pub fn controller_name(pod: &Pod) -> String {
    let name = pod.name.as_str();
    if let Some(hash) = pod.labels.get("pod-template-hash")
        && let Some(at) = name.find(&format!("-{hash}-"))
    {
        return name[..at].to_owned();
    }
    if pod.labels.contains_key("statefulset.kubernetes.io/pod-name")
        && let Some((stem, index)) = name.rsplit_once('-')
        && index.chars().all(|c| c.is_ascii_digit())
    {
        return stem.to_owned();
    }
    if pod.labels.contains_key("pod-template-generation")
        && let Some((stem, _)) = name.rsplit_once('-')
    {
        return stem.to_owned();
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use netc_ir::{Requirement, Span};

    fn pod(ns: &str, labels: &[(&str, &str)]) -> Pod {
        Pod {
            namespace: ns.into(),
            name: "p".into(),
            labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ips: vec![],
            ports: vec![],
            node: None,
            host_interface: None,
            host_network: false,
        }
    }

    fn workload(name: &str, ns: &str, selector: LabelSelector) -> Workload {
        Workload {
            name: name.into(),
            namespace: ns.into(),
            selector,
            span: Span { file: "a.np".into(), line: 1, column: 1, start: 0, end: 1 },
        }
    }

    #[test]
    fn pods_are_written_as_their_most_specific_workload_or_an_inline_selector() {
        let mut ir = Ir::empty();
        ir.workloads = vec![
            workload("web", "shop", LabelSelector::labels([("app", "web")])),
            workload("web-canary", "shop", LabelSelector::labels([("app", "web"), ("track", "canary")])),
        ];
        let canary = pod("shop", &[("app", "web"), ("track", "canary")]);
        assert_eq!(pod_source(&ir, &canary, "shop", true), "web-canary");
        assert_eq!(pod_source(&ir, &canary, "other", false), "shop/web-canary");
        assert_eq!(pod_source(&ir, &pod("shop", &[("app", "web")]), "shop", false), "web");
        let db = pod("data", &[("app", "db"), ("pod-template-hash", "x")]);
        assert_eq!(pod_source(&ir, &db, "shop", false), "data/{app=db}");
        assert_eq!(pod_source(&ir, &db, "shop", true), "data/db");
        assert_eq!(pod_source(&ir, &pod("shop", &[("app", "dns")]), "shop", true), "{app=dns}", "a keyword");
        assert_eq!(pod_source(&ir, &pod("shop", &[("app", "9x")]), "shop", true), "{app=9x}");
        assert_eq!(
            pod_source(&ir, &pod("shop", &[("tier", "be"), ("pod-template-hash", "x")]), "shop", true),
            "{tier=be}"
        );
        assert_eq!(pod_source(&ir, &pod("data", &[("pod-template-hash", "x")]), "shop", true), "data/*");
        assert_eq!(group_of(&[&ir], &canary), "shop/web-canary");
        assert_eq!(group_of(&[&ir], &pod("data", &[("app", "db")])), "data/db");
        let mut made = pod("web", &[("pod-template-hash", "7d9f8b6c5")]);
        made.name = "front-7d9f8b6c5-x2x9q".into();
        assert_eq!(group_of(&[&ir], &made), "web/front");
        made.labels = BTreeMap::from([("statefulset.kubernetes.io/pod-name".to_owned(), "db-12".to_owned())]);
        made.name = "db-12".into();
        assert_eq!(controller_name(&made), "db");
        made.labels = BTreeMap::from([("pod-template-generation".to_owned(), "1".to_owned())]);
        made.name = "kube-proxy-5p4vd".into();
        assert_eq!(controller_name(&made), "kube-proxy");
        made.labels.clear();
        assert_eq!(controller_name(&made), "kube-proxy-5p4vd", "no controller labels");
    }

    #[test]
    fn selectors_addresses_and_ports_are_valid_netc() {
        let s = LabelSelector {
            match_labels: BTreeMap::from([
                ("app".to_owned(), "web".to_owned()),
                ("v".to_owned(), "1.2 x".to_owned()),
            ]),
            match_expressions: vec![
                Requirement {
                    key: "tier".into(),
                    operator: Operator::In,
                    values: vec!["a".into(), "b".into()],
                },
                Requirement { key: "legacy".into(), operator: Operator::DoesNotExist, values: vec![] },
            ],
        };
        assert_eq!(selector_source(&s), "{app=web, v=\"1.2 x\", tier in (a, b), !legacy}");
        assert_eq!(address_source("fd00::1".parse().expect("ip")), "fd00::1/128");
        assert_eq!(address_source("10.0.0.1".parse().expect("ip")), "10.0.0.1");
        assert_eq!(port_source(Protocol::Udp, "53"), ":53/udp");
        assert_eq!(port_source(Protocol::Tcp, "http"), ":http");
    }
}
