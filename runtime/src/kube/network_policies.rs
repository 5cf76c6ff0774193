//! The cluster's own NetworkPolicy objects as the policy (`netcd run --kubernetes
//! --network-policies`): each object is lowered to IR by netc's importer, object by object
//! ([`netc::import::to_ir`], the lowering of `netc import --emit ir`), so that a verdict names the
//! object and the rule (`shop/allow-web:ingress[0]`, source `networkpolicy/shop/allow-web:1`).
//!
//! # An object the importer refuses
//!
//! The API server validates NetworkPolicy objects, so a refusal means netc reads an object
//! differently from the API server (a field of a newer Kubernetes, a netc bug). netcd never
//! enforces less than the objects ask because of one: the object is reported (log and
//! `netcd_networkpolicy_refused`), the others are enforced as they are, and for the refused one
//! ([`Fallback`]):
//! - the last version of it that was accepted stays enforced (an edit that broke it);
//! - else (a new object) its pods are isolated in the directions it guards, with no rule: it
//!   allows nothing until it is fixed (fail closed);
//! - else (even its pod selector or policy types cannot be read) every pod of its namespace is
//!   isolated both ways.
//!
//! Refusing the whole set instead would keep enforcing deleted policies and ignore new ones
//! while one object is broken; skipping the object would let its pods talk to anyone.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicySpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use netc_ir::{Ir, Span};

/// What netcd keeps of an object: what its meaning depends on (namespace, name, spec, the
/// `netc.dev/intent` annotation that documents it), so that a change of status or of other
/// metadata is no change.
#[must_use]
pub fn keep(object: &NetworkPolicy) -> NetworkPolicy {
    let intent = netc::codegen::INTENT_ANNOTATION;
    NetworkPolicy {
        metadata: ObjectMeta {
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone(),
            annotations: object
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(intent))
                .map(|doc| BTreeMap::from([(intent.to_owned(), doc.clone())])),
            ..ObjectMeta::default()
        },
        spec: object.spec.clone(),
    }
}

/// What is enforced for an object the importer refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The last version of it that was accepted.
    LastAccepted,
    /// Its pods isolated in the directions it guards, with no rule.
    IsolateItsPods,
    /// Every pod of its namespace isolated both ways.
    IsolateNamespace,
}

impl Fallback {
    /// As metrics and logs name it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Fallback::LastAccepted => "last-accepted",
            Fallback::IsolateItsPods => "isolate-its-pods",
            Fallback::IsolateNamespace => "isolate-namespace",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Fallback::LastAccepted => "its last accepted version stays enforced",
            Fallback::IsolateItsPods => {
                "its pods allow nothing in the directions it guards until it is fixed"
            }
            Fallback::IsolateNamespace => "every pod of its namespace allows nothing until it is fixed",
        }
    }
}

/// An object the importer refused, and what is enforced for it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `namespace/name`.
    pub policy: String,
    /// The importer's message (which field, what is wrong).
    pub problem: String,
    /// What is enforced instead.
    pub fallback: Fallback,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The importer's messages start with `NetworkPolicy namespace/name: `.
        let problem =
            self.problem.strip_prefix(&format!("NetworkPolicy {}: ", self.policy)).unwrap_or(&self.problem);
        write!(f, "NetworkPolicy {} is refused: {problem}; {}", self.policy, self.fallback.describe())
    }
}

/// The lowering of the live objects, remembering each object's last accepted version.
#[derive(Debug, Default)]
pub struct Lowering {
    /// By `namespace/name`: the last version accepted and its IR policies (none when its pod
    /// selector matches no pod).
    accepted: BTreeMap<String, (NetworkPolicy, Vec<netc_ir::Policy>)>,
}

impl Lowering {
    /// The IR of `live` (objects by `namespace/name`, as [`keep`] leaves them), and the objects
    /// refused. Objects unchanged since the last call are not lowered again.
    pub fn lower(&mut self, live: &BTreeMap<String, NetworkPolicy>) -> (Ir, Vec<Refusal>) {
        self.accepted.retain(|key, _| live.contains_key(key));
        let mut ir = Ir::empty();
        let mut refusals = Vec::new();
        for (key, object) in live {
            if let Some((seen, policies)) = self.accepted.get(key)
                && seen == object
            {
                ir.policies.extend(policies.iter().cloned());
                continue;
            }
            match lower_one(object) {
                Ok(policies) => {
                    ir.policies.extend(policies.iter().cloned());
                    self.accepted.insert(key.clone(), (object.clone(), policies));
                }
                Err(problem) => {
                    let (policies, fallback) = match self.accepted.get(key) {
                        Some((_, policies)) => (policies.clone(), Fallback::LastAccepted),
                        None => match lower_one(&isolating(object, false)) {
                            Ok(policies) => (policies, Fallback::IsolateItsPods),
                            Err(_) => (
                                lower_one(&isolating(object, true)).unwrap_or_default(),
                                Fallback::IsolateNamespace,
                            ),
                        },
                    };
                    ir.policies.extend(policies);
                    refusals.push(Refusal { policy: key.clone(), problem, fallback });
                }
            }
        }
        ir.policies.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        ir.sources = ir.policies.iter().map(|p| p.span.file.clone()).collect();
        (ir, refusals)
    }
}

/// Where verdicts say a rule of `object` comes from.
fn origin(object: &NetworkPolicy) -> Span {
    let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
    let name = object.metadata.name.as_deref().unwrap_or("");
    Span { file: format!("networkpolicy/{namespace}/{name}"), line: 1, column: 1, start: 0, end: 0 }
}

/// One object through the importer: its IR policies, or the importer's message.
fn lower_one(object: &NetworkPolicy) -> Result<Vec<netc_ir::Policy>, String> {
    netc::import::to_ir(std::slice::from_ref(object), &[origin(object)])
        .map(|ir| ir.policies)
        .map_err(|e| e.to_string())
}

/// `object` with its rules taken away: its pods (every pod of its namespace when `namespace`)
/// isolated in the directions it guards (both when `namespace`).
fn isolating(object: &NetworkPolicy, namespace: bool) -> NetworkPolicy {
    let spec = object.spec.clone().unwrap_or_default();
    let types = if namespace {
        vec!["Ingress".to_owned(), "Egress".to_owned()]
    } else {
        match spec.policy_types {
            Some(types) if !types.is_empty() => types,
            // The API's default: Ingress, and Egress when it has egress rules.
            _ if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) => {
                vec!["Ingress".to_owned(), "Egress".to_owned()]
            }
            _ => vec!["Ingress".to_owned()],
        }
    };
    NetworkPolicy {
        metadata: object.metadata.clone(),
        spec: Some(NetworkPolicySpec {
            pod_selector: if namespace { Some(LabelSelector::default()) } else { spec.pod_selector },
            policy_types: Some(types),
            ingress: None,
            egress: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netc_ir::DoorState;

    fn object(name: &str, yaml_spec: &str) -> NetworkPolicy {
        let text = format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n{yaml_spec}"
        );
        keep(&serde_yaml::from_str(&text).expect("a NetworkPolicy"))
    }

    const ALLOW_WEB: &str = "  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {app: web}}}]\n    ports: [{port: 5432}]\n";
    // The API server refuses a port of 0; a validator that disagrees with the API server is
    // what a refusal looks like in a cluster.
    const BAD_PORT: &str = "  podSelector: {matchLabels: {app: db}}\n  ingress:\n  - from: [{podSelector: {}}]\n    ports: [{port: 0}]\n";
    const BAD_SELECTOR: &str = "  podSelector: {matchLabels: {'bad key!': x}}\n  policyTypes: [Ingress]\n";

    fn live(objects: &[NetworkPolicy]) -> BTreeMap<String, NetworkPolicy> {
        objects
            .iter()
            .map(|o| (format!("shop/{}", o.metadata.name.as_deref().unwrap_or_default()), o.clone()))
            .collect()
    }

    #[test]
    fn each_object_is_one_policy_whose_rules_name_the_object_and_the_rule_index() {
        let (ir, refused) = Lowering::default().lower(&live(&[object("allow-web", ALLOW_WEB)]));
        assert!(refused.is_empty());
        ir.validate().expect("valid IR");
        let rules: Vec<_> =
            ir.rules().map(|(p, _, r)| (p.name.clone(), r.id.clone(), r.span.file.clone())).collect();
        assert_eq!(
            rules,
            [(
                "allow-web".to_owned(),
                "shop/allow-web:ingress[0]".to_owned(),
                "networkpolicy/shop/allow-web".to_owned()
            )]
        );
    }

    #[test]
    fn a_refused_edit_keeps_the_last_accepted_version_and_a_new_refused_object_fails_closed() {
        let mut lowering = Lowering::default();
        let good = object("db", ALLOW_WEB);
        let (accepted, _) = lowering.lower(&live(&[good]));

        // An edit the importer refuses: the accepted version stays, reported.
        let (ir, refused) = lowering.lower(&live(&[object("db", BAD_PORT)]));
        assert_eq!(ir, accepted, "the last accepted version is enforced");
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].fallback, Fallback::LastAccepted);
        assert!(refused[0].problem.contains("spec.ingress[0].ports[0].port"), "{}", refused[0].problem);

        // A new object refused: its pods allow nothing at the door it guards.
        let (ir, refused) = lowering.lower(&live(&[object("db", ALLOW_WEB), object("new", BAD_PORT)]));
        assert_eq!(
            refused.iter().map(|r| (r.policy.as_str(), r.fallback)).collect::<Vec<_>>(),
            [("shop/new", Fallback::IsolateItsPods)]
        );
        let new = ir.policies.iter().find(|p| p.name == "new").expect("new is enforced");
        assert_eq!(new.selector, netc_ir::LabelSelector::labels([("app", "db")]));
        assert_eq!(new.ingress.state, DoorState::Guarded);
        assert!(new.ingress.rules.is_empty(), "no rule: nothing allowed");
        assert_eq!(new.egress.state, DoorState::Open, "it guards only ingress");

        // Not even the pod selector can be read: the whole namespace allows nothing.
        let (ir, refused) = lowering.lower(&live(&[object("worse", BAD_SELECTOR)]));
        assert_eq!(refused[0].fallback, Fallback::IsolateNamespace);
        let worse = &ir.policies[0];
        assert_eq!(worse.selector, netc_ir::LabelSelector::everything());
        assert!(worse.ingress.state == DoorState::Guarded && worse.egress.state == DoorState::Guarded);
        assert!(worse.ingress.rules.is_empty() && worse.egress.rules.is_empty());
        assert!(!ir.policies.iter().any(|p| p.name == "db"), "deleted objects leave");

        // Fixed: enforced as written, nothing refused.
        let (ir, refused) = lowering.lower(&live(&[object("worse", ALLOW_WEB)]));
        assert!(refused.is_empty());
        assert_eq!(ir.policies[0].ingress.rules.len(), 1);
    }

    #[test]
    fn only_what_the_meaning_depends_on_is_kept() {
        let mut a: NetworkPolicy = serde_yaml::from_str(
            "metadata: {name: a, namespace: shop, resourceVersion: '7', labels: {x: y}, annotations: {netc.dev/intent: why, other: z}}\nspec: {podSelector: {}}",
        )
        .expect("object");
        let kept = keep(&a);
        a.metadata.resource_version = Some("8".into());
        assert_eq!(keep(&a), kept, "a new resourceVersion is no change");
        assert_eq!(
            kept.metadata.annotations,
            Some(BTreeMap::from([("netc.dev/intent".to_owned(), "why".to_owned())]))
        );
    }
}
