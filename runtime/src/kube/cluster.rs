//! The cluster as the watch has seen it: namespaces, pods, Services and the policy, kept from kube-runtime's
//! watcher events, turned into the [`Inventory`] and [`Ir`] the daemon applies. Pure (no IO), so
//! the relist rules are unit-tested here.
//!
//! Relists never show a partial state: the objects of a list (`Init`, `InitApply`..., `InitDone`)
//! are gathered beside the live ones and replace them in one step at `InitDone`, so a flow is
//! never judged against half a list; objects the list no longer holds are deleted at that step.

use std::collections::BTreeMap;

use ::kube::ResourceExt as _;
use ::kube::runtime::watcher::Event;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netc_ir::inventory::NAMESPACE_NAME_LABEL;
use netc_ir::{Inventory, Ir};

use super::PolicySource;
use super::network_policies::{self, Lowering, Refusal};

/// One kind of object as the watch has seen it.
#[derive(Debug, Clone)]
pub struct Objects<T> {
    live: BTreeMap<String, T>,
    /// The objects of a list in progress (between `Init` and `InitDone`).
    listing: Option<BTreeMap<String, T>>,
    /// Whether a first list completed.
    synced: bool,
}

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Objects { live: BTreeMap::new(), listing: None, synced: false }
    }
}

/// What one watcher event did to the live objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The live objects did not change (an event inside a list, or one that changes nothing the
    /// daemon uses).
    None,
    /// The live objects changed.
    Changed,
    /// A list completed and replaced the live objects.
    Relisted,
}

impl<T: PartialEq> Objects<T> {
    /// Apply one watcher event, the object already converted (`None`: the object is to be left out,
    /// e.g. a finished pod, which deletes it if it was there).
    pub fn apply<K: ::kube::Resource>(
        &mut self,
        event: Event<K>,
        convert: impl Fn(&K) -> Option<(String, T)>,
    ) -> Change {
        match event {
            Event::Init => {
                self.listing = Some(BTreeMap::new());
                Change::None
            }
            Event::InitApply(object) => {
                if let Some((key, value)) = convert(&object) {
                    self.listing.get_or_insert_with(BTreeMap::new).insert(key, value);
                }
                Change::None
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let changed = !self.synced || listed != self.live;
                self.live = listed;
                self.synced = true;
                if changed { Change::Relisted } else { Change::None }
            }
            Event::Apply(object) => match convert(&object) {
                Some((key, value)) => {
                    if self.live.get(&key) == Some(&value) {
                        Change::None
                    } else {
                        self.live.insert(key, value);
                        Change::Changed
                    }
                }
                None => self.remove(&object_key(&object)),
            },
            Event::Delete(object) => self.remove(&object_key(&object)),
        }
    }

    fn remove(&mut self, key: &str) -> Change {
        if self.live.remove(key).is_some() { Change::Changed } else { Change::None }
    }

    /// Whether a first list completed.
    #[must_use]
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// The live objects by key.
    #[must_use]
    pub fn live(&self) -> &BTreeMap<String, T> {
        &self.live
    }
}

/// Key of an object the conversion left out: it can only be removed, by the key the conversion
/// would have given. Every kind here is keyed `namespace/name` (cluster-scoped: `name`).
fn object_key<K: ::kube::Resource>(object: &K) -> String {
    match object.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyConfigMap {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The key of `data` holding the IR JSON.
    pub key: String,
}

/// Everything the watch has seen.
#[derive(Debug, Default)]
pub struct Cluster {
    /// Namespaces by name.
    pub namespaces: Objects<netc_ir::Namespace>,
    /// Pods by `namespace/name`; finished pods (phase Succeeded or Failed) are left out: they
    /// have no traffic and their addresses are given to new pods.
    pub pods: Objects<netc_ir::Pod>,
    /// Services by `namespace/name`, their frontends as the inventory has them (watched only
    /// with `--uplink`: the Service path is off without).
    pub services: Objects<netc_ir::Service>,
    /// The policy ConfigMap's IR text (`None`: the ConfigMap has no such key).
    pub policy: Objects<Option<String>>,
    /// NetworkPolicy objects by `namespace/name`, as [`network_policies::keep`] leaves them.
    pub network_policies: Objects<NetworkPolicy>,
    /// Their lowering to IR, with each one's last accepted version.
    lowering: Lowering,
}

/// Why an object or the policy could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// An object the inventory parser refuses (it is left out; the rest is enforced).
    #[error("{0}")]
    Object(String),
    /// The policy ConfigMap is missing, or has no IR under the key.
    #[error(
        "no policy yet: ConfigMap {namespace}/{name} {what}; create it with `netc build --emit configmap --configmap-name {name} --configmap-namespace {namespace} policies.np | kubectl apply -f -`"
    )]
    NoPolicy {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What is missing.
        what: String,
    },
    /// The IR in the ConfigMap is not valid.
    #[error("ConfigMap {namespace}/{name}, key {key}: {message}")]
    BadPolicy {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Cluster {
    /// Apply a namespace event.
    pub fn namespace_event(&mut self, event: Event<Namespace>) -> Change {
        self.namespaces
            .apply(event, |ns| convert_namespace(ns).map_err(|e| tracing::warn!(target: "netcd", "{e}")).ok())
    }

    /// Apply a pod event.
    pub fn pod_event(&mut self, event: Event<Pod>) -> Change {
        self.pods.apply(event, |pod| match convert_pod(pod) {
            Ok(converted) => converted,
            Err(e) => {
                tracing::warn!(target: "netcd", "{e}");
                None
            }
        })
    }

    /// Apply a Service event. A Service the inventory parser refuses (it cannot be: the API server
    /// validates the same fields) is left out with a warning, as a refused pod is.
    pub fn service_event(&mut self, event: Event<Service>) -> Change {
        self.services.apply(event, |service| {
            convert_service(service).map_err(|e| tracing::warn!(target: "netcd", "{e}")).ok()
        })
    }

    /// Apply an event of the policy ConfigMap.
    pub fn policy_event(&mut self, event: Event<ConfigMap>, key: &str) -> Change {
        self.policy
            .apply(event, |cm| Some((object_key(cm), cm.data.as_ref().and_then(|d| d.get(key)).cloned())))
    }

    /// Apply a NetworkPolicy event.
    pub fn network_policy_event(&mut self, event: Event<NetworkPolicy>) -> Change {
        self.network_policies.apply(event, |np| Some((object_key(np), network_policies::keep(np))))
    }

    /// Whether every watch (namespaces, pods, the policy of `source`, and Services when
    /// `services`) completed its first list.
    #[must_use]
    pub fn synced(&self, source: &PolicySource, services: bool) -> bool {
        let policy = match source {
            PolicySource::ConfigMap(_) => self.policy.synced(),
            PolicySource::NetworkPolicies => self.network_policies.synced(),
        };
        self.namespaces.synced() && self.pods.synced() && policy && (!services || self.services.synced())
    }

    /// The IR of the live NetworkPolicy objects, and those refused ([`network_policies`]: what
    /// is enforced for them instead).
    pub fn network_policies_ir(&mut self) -> (Ir, Vec<Refusal>) {
        self.lowering.lower(self.network_policies.live())
    }

    /// The IR of the policy ConfigMap.
    ///
    /// # Errors
    /// [`ClusterError::NoPolicy`] or [`ClusterError::BadPolicy`].
    pub fn ir(&self, source: &PolicyConfigMap) -> Result<Ir, ClusterError> {
        let no_policy = |what: &str| ClusterError::NoPolicy {
            namespace: source.namespace.clone(),
            name: source.name.clone(),
            what: what.into(),
        };
        let text = match self.policy.live().values().next() {
            None => return Err(no_policy("does not exist")),
            Some(None) => return Err(no_policy(&format!("has no key `{}` in its data", source.key))),
            Some(Some(text)) => text,
        };
        Ir::from_json(text).map_err(|e| ClusterError::BadPolicy {
            namespace: source.namespace.clone(),
            name: source.name.clone(),
            key: source.key.clone(),
            message: e.to_string(),
        })
    }

    /// The inventory the daemon plans with: every namespace, every running pod (remote pods
    /// are peers; `--node` picks the local ones) and every Service. Namespaces that pods live in but the watch has
    /// not seen (yet) get their name label only, as the file inventory does.
    #[must_use]
    pub fn inventory(&self) -> Inventory {
        let mut inventory = Inventory {
            namespaces: self.namespaces.live().values().cloned().collect(),
            pods: self.pods.live().values().cloned().collect(),
            services: self.services.live().values().cloned().collect(),
            ..Inventory::default()
        };
        for pod in &inventory.pods {
            if !self.namespaces.live().contains_key(&pod.namespace)
                && inventory.implied_namespaces.last() != Some(&pod.namespace)
            {
                inventory.implied_namespaces.push(pod.namespace.clone());
            }
        }
        inventory.implied_namespaces.dedup();
        for name in &inventory.implied_namespaces {
            inventory.namespaces.push(netc_ir::Namespace {
                name: name.clone(),
                labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), name.clone())]),
            });
        }
        inventory.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
        // Pods are keyed `namespace/name`, so the map's order is (namespace, name) except where a
        // namespace name is a prefix of another; sort to the inventory's order anyway.
        inventory.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        inventory.services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        inventory
    }
}

/// A Namespace object as the inventory has it, through the file inventory's own parser (one
/// definition of what netc reads from an object).
///
/// # Errors
/// [`ClusterError::Object`] when the parser refuses it.
pub fn convert_namespace(ns: &Namespace) -> Result<(String, netc_ir::Namespace), ClusterError> {
    let mut inventory = parse_one(ns, "Namespace")?;
    let converted = inventory
        .namespaces
        .pop()
        .ok_or_else(|| ClusterError::Object("a namespace without a name".into()))?;
    Ok((converted.name.clone(), converted))
}

/// A Pod object as the inventory has it; `None` for a finished pod (phase Succeeded or Failed).
///
/// # Errors
/// [`ClusterError::Object`] when the parser refuses it.
pub fn convert_pod(pod: &Pod) -> Result<Option<(String, netc_ir::Pod)>, ClusterError> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Ok(None);
    }
    let mut inventory = parse_one(pod, "Pod")?;
    let converted =
        inventory.pods.pop().ok_or_else(|| ClusterError::Object("a pod without a name".into()))?;
    Ok(Some((format!("{}/{}", converted.namespace, converted.name), converted)))
}

/// A Service object as the inventory has it: its frontends (cluster IPs, external and
/// load-balancer IPs, ports and node ports; none for a headless Service).
///
/// # Errors
/// [`ClusterError::Object`] when the parser refuses it.
pub fn convert_service(service: &Service) -> Result<(String, netc_ir::Service), ClusterError> {
    let mut inventory = parse_one(service, "Service")?;
    let converted =
        inventory.services.pop().ok_or_else(|| ClusterError::Object("a Service without a name".into()))?;
    Ok((format!("{}/{}", converted.namespace, converted.name), converted))
}

fn parse_one<K: serde::Serialize>(object: &K, kind: &str) -> Result<Inventory, ClusterError> {
    let mut doc = serde_json::to_value(object).map_err(|e| ClusterError::Object(format!("{kind}: {e}")))?;
    // k8s-openapi writes apiVersion and kind; a watch event's object may lack them, so set kind.
    if let Some(map) = doc.as_object_mut() {
        map.insert("kind".into(), kind.into());
    }
    Inventory::from_documents(vec![doc]).map_err(|e| ClusterError::Object(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, app: &str, ip: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                labels: Some(BTreeMap::from([("app".to_owned(), app.to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec { node_name: Some("node-1".into()), ..PodSpec::default() }),
            status: Some(PodStatus {
                pod_ip: ip.map(str::to_owned),
                phase: Some("Running".into()),
                ..PodStatus::default()
            }),
        }
    }

    fn namespace(name: &str, team: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([("team".to_owned(), team.to_owned())])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    fn names(cluster: &Cluster) -> Vec<String> {
        cluster.inventory().pods.iter().map(|p| format!("{}={:?}", p.name, p.ips)).collect()
    }

    #[test]
    fn a_relist_replaces_the_live_pods_in_one_step_and_deletes_what_it_no_longer_lists() {
        let mut cluster = Cluster::default();
        assert_eq!(cluster.pod_event(Event::Init), Change::None);
        cluster.pod_event(Event::InitApply(pod("a", "web", Some("10.0.0.1"))));
        cluster.pod_event(Event::InitApply(pod("b", "web", Some("10.0.0.2"))));
        assert!(!cluster.pods.synced(), "not synced before InitDone");
        assert!(names(&cluster).is_empty(), "nothing live before InitDone");
        assert_eq!(cluster.pod_event(Event::InitDone), Change::Relisted);
        assert_eq!(names(&cluster), ["a=[10.0.0.1]", "b=[10.0.0.2]"]);

        // A relist (after 410 Gone) in progress: the live pods stay whole until InitDone.
        cluster.pod_event(Event::Init);
        cluster.pod_event(Event::InitApply(pod("b", "web", Some("10.0.0.9"))));
        assert_eq!(names(&cluster), ["a=[10.0.0.1]", "b=[10.0.0.2]"], "old state whole during the list");
        assert_eq!(cluster.pod_event(Event::InitDone), Change::Relisted);
        assert_eq!(names(&cluster), ["b=[10.0.0.9]"], "a, missed while disconnected, is deleted");

        // A relist that lists what is live changes nothing.
        cluster.pod_event(Event::Init);
        cluster.pod_event(Event::InitApply(pod("b", "web", Some("10.0.0.9"))));
        assert_eq!(cluster.pod_event(Event::InitDone), Change::None);
    }

    #[test]
    fn pod_events_add_change_and_delete_and_finished_pods_leave() {
        let mut cluster = Cluster::default();
        cluster.pod_event(Event::Init);
        cluster.pod_event(Event::InitDone);
        assert_eq!(cluster.pod_event(Event::Apply(pod("a", "web", None))), Change::Changed);
        assert_eq!(names(&cluster), ["a=[]"], "a pod without an address yet is known");
        assert_eq!(cluster.pod_event(Event::Apply(pod("a", "web", Some("10.0.0.1")))), Change::Changed);
        assert_eq!(cluster.pod_event(Event::Apply(pod("a", "web", Some("10.0.0.1")))), Change::None);
        let mut finished = pod("a", "web", Some("10.0.0.1"));
        finished.status.as_mut().expect("status").phase = Some("Succeeded".into());
        assert_eq!(cluster.pod_event(Event::Apply(finished)), Change::Changed);
        assert!(names(&cluster).is_empty(), "a finished pod gives its address back");
        cluster.pod_event(Event::Apply(pod("b", "db", Some("10.0.0.2"))));
        assert_eq!(cluster.pod_event(Event::Delete(pod("b", "db", Some("10.0.0.2")))), Change::Changed);
        assert!(names(&cluster).is_empty());
    }

    #[test]
    fn pods_of_unseen_namespaces_get_an_implied_one_and_namespace_labels_are_kept() {
        let mut cluster = Cluster::default();
        cluster.pod_event(Event::Apply(pod("a", "web", Some("10.0.0.1"))));
        let inventory = cluster.inventory();
        assert_eq!(inventory.implied_namespaces, ["shop"]);
        assert_eq!(inventory.namespaces[0].labels[NAMESPACE_NAME_LABEL], "shop");
        cluster.namespace_event(Event::Apply(namespace("shop", "blue")));
        let inventory = cluster.inventory();
        assert!(inventory.implied_namespaces.is_empty());
        assert_eq!(inventory.namespaces[0].labels["team"], "blue");
        assert_eq!(inventory.namespaces[0].labels[NAMESPACE_NAME_LABEL], "shop", "the name label is added");
    }

    fn service(name: &str, cluster_ip: &str, target: i32) -> Service {
        use k8s_openapi::api::core::v1::{ServicePort as Port, ServiceSpec};
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(cluster_ip.into()),
                cluster_ips: Some(vec![cluster_ip.into()]),
                ports: Some(vec![Port {
                    port: 80,
                    target_port: Some(IntOrString::Int(target)),
                    node_port: Some(30080),
                    ..Port::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    #[test]
    fn services_are_kept_as_the_inventory_reads_them_and_follow_their_events() {
        let mut cluster = Cluster::default();
        let source = PolicySource::NetworkPolicies;
        cluster.namespace_event(Event::Init);
        cluster.namespace_event(Event::InitDone);
        cluster.pod_event(Event::Init);
        cluster.pod_event(Event::InitDone);
        cluster.network_policy_event(Event::Init);
        cluster.network_policy_event(Event::InitDone);
        assert!(cluster.synced(&source, false), "without the Service path, Services are not waited for");
        assert!(!cluster.synced(&source, true), "with it, their first list is");
        cluster.service_event(Event::Init);
        cluster.service_event(Event::InitApply(service("web", "10.96.0.10", 8080)));
        cluster.service_event(Event::InitApply(service("headless", "None", 5432)));
        assert_eq!(cluster.service_event(Event::InitDone), Change::Relisted);
        assert!(cluster.synced(&source, true));
        let inventory = cluster.inventory();
        let names: Vec<_> = inventory.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["headless", "web"], "sorted like the file inventory's");
        let web = &inventory.services[1];
        assert_eq!(web.addresses, ["10.96.0.10".parse::<std::net::IpAddr>().expect("ip")]);
        assert_eq!(web.ports[0].target_port, netc_ir::PortValue::Number(8080));
        assert_eq!(web.ports[0].node_port, Some(30080));
        assert!(inventory.services[0].addresses.is_empty(), "a headless Service has no frontend");
        // A new targetPort is a change; the same object again is none; a deletion removes it.
        assert_eq!(cluster.service_event(Event::Apply(service("web", "10.96.0.10", 9000))), Change::Changed);
        assert_eq!(cluster.service_event(Event::Apply(service("web", "10.96.0.10", 9000))), Change::None);
        assert_eq!(cluster.service_event(Event::Delete(service("web", "10.96.0.10", 9000))), Change::Changed);
        assert_eq!(cluster.inventory().services.len(), 1);
        // One the inventory parser refuses (a bad address) is left out, not kept half-read.
        assert_eq!(cluster.service_event(Event::Apply(service("bad", "10.96.0.300", 80))), Change::None);
        assert_eq!(cluster.inventory().services.len(), 1);
    }

    #[test]
    fn the_policy_comes_from_the_configmap_key_and_a_bad_one_is_refused_with_the_fix() {
        let source = PolicyConfigMap {
            namespace: "netc-system".into(),
            name: "netc-ir".into(),
            key: "policies.ir.json".into(),
        };
        let mut cluster = Cluster::default();
        let error = cluster.ir(&source).expect_err("no configmap");
        assert!(error.to_string().contains("netc build --emit configmap"), "{error}");
        let configmap = |data: &str| ConfigMap {
            metadata: ObjectMeta {
                name: Some("netc-ir".into()),
                namespace: Some("netc-system".into()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([("policies.ir.json".to_owned(), data.to_owned())])),
            ..ConfigMap::default()
        };
        cluster.policy_event(Event::Apply(configmap("{")), &source.key);
        assert!(matches!(cluster.ir(&source), Err(ClusterError::BadPolicy { .. })));
        let ir = Ir { version: netc_ir::IR_VERSION, sources: vec![], workloads: vec![], policies: vec![] };
        cluster.policy_event(Event::Apply(configmap(&ir.to_json())), &source.key);
        assert_eq!(cluster.ir(&source).expect("valid"), ir);
    }
}
