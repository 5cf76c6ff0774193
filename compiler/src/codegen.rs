//! IR -> Kubernetes `NetworkPolicy` objects (k8s-openapi types).
//!
//! One object per IR [`Policy`] that guards at least one door, sorted by (namespace, name). The
//! objects are canonical, so that GitOps diffs show only real changes:
//!
//! - `spec.podSelector` is always written, `{}` included (all pods of the namespace).
//! - `spec.policyTypes` is always written and lists exactly the guarded doors (`Ingress` first).
//! - A guarded door with no rules *omits* its `ingress`/`egress` field (Kubernetes reads a missing
//!   field as "nothing passes"); an empty list meaning "nobody" is never written.
//! - A rule with no peers omits `from`/`to` (anyone); with no ports omits `ports` (every port).
//! - Every port names its protocol explicitly, even TCP.
//! - Namespaces chosen by name are `namespaceSelector` on `kubernetes.io/metadata.name` (the IR
//!   already stores them that way).
//! - metadata: label `app.kubernetes.io/managed-by: netc`; annotation `netc.dev/source:
//!   <file>:<line>` of the policy's statement; `netc.dev/intent: <doc>` when the policy has a doc.
//!
//! Rendering the objects to YAML is [`crate::yaml`]'s job.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use netc_ir::{Door, Ir, LabelSelector, Peer, Policy, Port, PortValue, Rule};

/// The label that marks objects netc generated.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "netc";
/// Annotation: `<file>:<line>` of the statement the policy comes from.
pub const SOURCE_ANNOTATION: &str = "netc.dev/source";
/// Annotation: the doc comment of the statements that made the policy.
pub const INTENT_ANNOTATION: &str = "netc.dev/intent";

/// One `NetworkPolicy` per IR policy with a guarded door, sorted by (namespace, name).
#[must_use]
pub fn network_policies(ir: &Ir) -> Vec<NetworkPolicy> {
    let mut policies: Vec<&Policy> =
        ir.policies.iter().filter(|p| p.ingress.is_guarded() || p.egress.is_guarded()).collect();
    policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    // The objects are independent of each other: many are built on all cores, in order.
    crate::par::map_in_order(policies, 256, network_policy)
}

/// The `NetworkPolicy` for one IR policy (also for one whose doors are both open, which
/// [`network_policies`] leaves out: it would guard nothing).
#[must_use]
pub fn network_policy(policy: &Policy) -> NetworkPolicy {
    let mut annotations = BTreeMap::from([(
        SOURCE_ANNOTATION.to_owned(),
        format!("{}:{}", policy.span.file, policy.span.line),
    )]);
    if let Some(doc) = &policy.doc {
        annotations.insert(INTENT_ANNOTATION.to_owned(), doc.clone());
    }
    let mut policy_types = Vec::new();
    if policy.ingress.is_guarded() {
        policy_types.push("Ingress".to_owned());
    }
    if policy.egress.is_guarded() {
        policy_types.push("Egress".to_owned());
    }
    NetworkPolicy {
        metadata: meta::ObjectMeta {
            name: Some(policy.name.clone()),
            namespace: Some(policy.namespace.clone()),
            labels: Some(BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned())])),
            annotations: Some(annotations),
            ..meta::ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(label_selector(&policy.selector)),
            policy_types: Some(policy_types),
            ingress: door_rules(&policy.ingress).map(|rules| {
                rules.iter().map(|r| NetworkPolicyIngressRule { from: peers(r), ports: ports(r) }).collect()
            }),
            egress: door_rules(&policy.egress).map(|rules| {
                rules.iter().map(|r| NetworkPolicyEgressRule { to: peers(r), ports: ports(r) }).collect()
            }),
        }),
    }
}

/// A stable file name for one generated object: `<namespace>.<name>.yaml`. Namespaces are
/// DNS-1123 labels (no dots), so the name is unambiguous.
#[must_use]
pub fn file_name(policy: &NetworkPolicy) -> String {
    format!(
        "{}.{}.yaml",
        policy.metadata.namespace.as_deref().unwrap_or("default"),
        policy.metadata.name.as_deref().unwrap_or("unnamed")
    )
}

/// The rules of a door, or `None` when the field must be omitted (open, or guarded with no rules).
fn door_rules(door: &Door) -> Option<&[Rule]> {
    (door.is_guarded() && !door.rules.is_empty()).then_some(door.rules.as_slice())
}

fn peers(rule: &Rule) -> Option<Vec<NetworkPolicyPeer>> {
    (!rule.peers.is_empty()).then(|| rule.peers.iter().map(peer).collect())
}

fn ports(rule: &Rule) -> Option<Vec<NetworkPolicyPort>> {
    (!rule.ports.is_empty()).then(|| rule.ports.iter().map(port).collect())
}

fn peer(peer: &Peer) -> NetworkPolicyPeer {
    match peer {
        Peer::Pods { namespaces, pods } => NetworkPolicyPeer {
            // Both absent is not valid IR; it would mean "every pod of the own namespace", which
            // is what an empty podSelector says.
            pod_selector: match (namespaces, pods) {
                (None, None) => Some(meta::LabelSelector::default()),
                (_, pods) => pods.as_ref().map(label_selector),
            },
            namespace_selector: namespaces.as_ref().map(label_selector),
            ip_block: None,
        },
        Peer::IpBlock { cidr, except } => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.to_string(),
                except: (!except.is_empty()).then(|| except.iter().map(ToString::to_string).collect()),
            }),
            namespace_selector: None,
            pod_selector: None,
        },
    }
}

fn port(port: &Port) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(port.protocol.as_str().to_owned()),
        port: port.port.as_ref().map(|p| match p {
            PortValue::Number(n) => IntOrString::Int(i32::from(*n)),
            PortValue::Name(name) => IntOrString::String(name.clone()),
        }),
        end_port: port.end_port.map(i32::from),
    }
}

/// A k8s-openapi selector; empty parts are omitted, so the empty selector is written `{}`.
fn label_selector(selector: &LabelSelector) -> meta::LabelSelector {
    meta::LabelSelector {
        match_labels: (!selector.match_labels.is_empty()).then(|| selector.match_labels.clone()),
        match_expressions: (!selector.match_expressions.is_empty()).then(|| {
            selector
                .match_expressions
                .iter()
                .map(|r| meta::LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: r.operator.as_str().to_owned(),
                    values: (!r.values.is_empty()).then(|| r.values.clone()),
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netc_ir::{DoorState, Operator, Protocol, Requirement, Span};

    fn span(line: u32) -> Span {
        Span { file: "shop.np".into(), line, column: 1, start: 0, end: 1 }
    }

    fn policy(namespace: &str, name: &str, ingress: Door, egress: Door) -> Policy {
        Policy {
            name: name.into(),
            namespace: namespace.into(),
            workload: name.into(),
            selector: LabelSelector::labels([("app", name)]),
            doc: None,
            ingress,
            egress,
            span: span(3),
        }
    }

    fn guarded(rules: Vec<Rule>) -> Door {
        Door { state: DoorState::Guarded, guarded_by: vec![span(3)], rules }
    }

    fn spec(np: &NetworkPolicy) -> &NetworkPolicySpec {
        np.spec.as_ref().expect("codegen always writes a spec")
    }

    #[test]
    fn policies_with_both_doors_open_are_not_emitted_and_the_rest_are_sorted() {
        let mut ir = Ir::empty();
        ir.policies = vec![
            policy("b", "x", guarded(vec![]), Door::open()),
            policy("a", "z", Door::open(), Door::open()),
            policy("a", "y", Door::open(), guarded(vec![])),
        ];
        let names: Vec<_> = network_policies(&ir)
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.metadata.namespace.as_deref().unwrap_or("?"),
                    p.metadata.name.as_deref().unwrap_or("?")
                )
            })
            .collect();
        assert_eq!(names, ["a/y", "b/x"]);
    }

    #[test]
    fn guarded_doors_without_rules_omit_the_field_but_list_the_policy_type() {
        let np = network_policy(&policy("a", "hermit", guarded(vec![]), guarded(vec![])));
        let s = spec(&np);
        assert_eq!(s.policy_types.as_deref(), Some(&["Ingress".to_owned(), "Egress".to_owned()][..]));
        assert!(s.ingress.is_none() && s.egress.is_none());
        assert_eq!(s.pod_selector.as_ref().and_then(|p| p.match_labels.as_ref()).map(BTreeMap::len), Some(1));
    }

    #[test]
    fn rules_without_peers_or_ports_omit_them_and_protocols_are_explicit() {
        let any = Rule { id: "any".into(), peers: vec![], ports: vec![], span: span(4) };
        let web = Rule {
            id: "web".into(),
            peers: vec![Peer::Pods { namespaces: Some(LabelSelector::namespace_named("shop")), pods: None }],
            ports: vec![Port {
                protocol: Protocol::Tcp,
                port: Some(PortValue::Number(80)),
                end_port: Some(90),
            }],
            span: span(5),
        };
        let np = network_policy(&policy("a", "api", guarded(vec![any, web]), Door::open()));
        let ingress = spec(&np).ingress.as_ref().expect("two rules");
        assert_eq!(ingress[0], NetworkPolicyIngressRule::default());
        let peer = &ingress[1].from.as_ref().expect("one peer")[0];
        assert!(peer.pod_selector.is_none());
        let ns = peer.namespace_selector.as_ref().and_then(|s| s.match_labels.as_ref()).expect("by name");
        assert_eq!(ns.get("kubernetes.io/metadata.name").map(String::as_str), Some("shop"));
        let port = &ingress[1].ports.as_ref().expect("one port")[0];
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!((port.port.clone(), port.end_port), (Some(IntOrString::Int(80)), Some(90)));
        assert_eq!(spec(&np).policy_types.as_deref(), Some(&["Ingress".to_owned()][..]));
        assert!(spec(&np).egress.is_none());
    }

    #[test]
    fn metadata_carries_the_source_line_the_doc_and_the_managed_by_label() {
        let mut p = policy("a", "api", guarded(vec![]), Door::open());
        p.doc = Some("Only the shop talks to the API.".into());
        p.selector = LabelSelector {
            match_labels: BTreeMap::new(),
            match_expressions: vec![Requirement {
                key: "tier".into(),
                operator: Operator::Exists,
                values: vec![],
            }],
        };
        let np = network_policy(&p);
        let ann = np.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(ann.get(SOURCE_ANNOTATION).map(String::as_str), Some("shop.np:3"));
        assert_eq!(ann.get(INTENT_ANNOTATION).map(String::as_str), Some("Only the shop talks to the API."));
        let labels = np.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels.get(MANAGED_BY_LABEL).map(String::as_str), Some("netc"));
        let sel = spec(&np).pod_selector.as_ref().expect("selector");
        let req = &sel.match_expressions.as_ref().expect("expressions")[0];
        assert_eq!((req.operator.as_str(), req.values.is_none()), ("Exists", true));
        assert_eq!(file_name(&np), "a.api.yaml");
    }
}
