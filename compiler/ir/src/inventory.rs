//! The cluster description (inventory): namespaces, pods and extra external addresses.
//!
//! Read from Kubernetes objects as `kubectl get ns,pods -A -o yaml` (or `-o json`) prints them:
//! a `List`, `NamespaceList`/`PodList`, or a stream of single objects. netc adds one kind of its
//! own for addresses outside the cluster that analyses should consider:
//!
//! ```yaml
//! apiVersion: netc.dev/v1
//! kind: ExternalAddress
//! metadata: {name: payments-api}
//! address: 203.0.113.10
//! ```
//!
//! Services (`kubectl get svc -A -o yaml`) are read for netcd, which judges a call to a Service
//! frontend (ClusterIP, external IP, load-balancer IP, NodePort) after kube-proxy translates it;
//! the evaluators judge pod flows and never need them.
//!
//! Pods may carry the annotation `netc.dev/host-interface: <ifname>` naming their host-side veth,
//! for netcd. Only the fields netc needs are read; everything else is ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PortValue, Protocol};

/// The label every namespace carries with its own name (Kubernetes >= 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The pod annotation naming the pod's host-side interface.
pub const HOST_INTERFACE_ANNOTATION: &str = "netc.dev/host-interface";

/// A cluster, as far as policy evaluation needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Namespaces, sorted by name.
    pub namespaces: Vec<Namespace>,
    /// Pods, sorted by (namespace, name).
    pub pods: Vec<Pod>,
    /// Addresses outside the cluster, sorted by name.
    pub externals: Vec<ExternalAddress>,
    /// Namespaces that pods live in but that the input did not describe; they were added with
    /// only their name label, and label-based namespace selectors may judge them wrongly.
    pub implied_namespaces: Vec<String>,
    /// Services with a cluster IP or node ports, sorted by (namespace, name).
    #[serde(default)]
    pub services: Vec<Service>,
}

/// A Service's frontends: what kube-proxy translates to a backend pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// `spec.clusterIPs` (or `spec.clusterIP`), `spec.externalIPs` and
    /// `status.loadBalancer.ingress[].ip`: every address kube-proxy translates for it. Empty for
    /// a headless Service (`clusterIP: None`), which has no frontend of its own.
    pub addresses: Vec<IpAddr>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Its protocol.
    pub protocol: Protocol,
    /// The Service port, on its addresses.
    pub port: u16,
    /// The port of the backend pods it leads to (a number or a container port's name).
    pub target_port: PortValue,
    /// The node port (NodePort and LoadBalancer Services), on every address of every node.
    pub node_port: Option<u16>,
}

/// A namespace and its labels (always including [`NAMESPACE_NAME_LABEL`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// The name.
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
}

/// A pod: where it lives, its labels, addresses and named container ports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The labels.
    pub labels: BTreeMap<String, String>,
    /// `status.podIPs` (or `status.podIP`); empty while the pod has none.
    pub ips: Vec<IpAddr>,
    /// Named container ports, for resolving named ports in rules.
    pub ports: Vec<NamedPort>,
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// The host-side interface, from the [`HOST_INTERFACE_ANNOTATION`] annotation.
    pub host_interface: Option<String>,
    /// `spec.hostNetwork`: such pods share the node's address and NetworkPolicy does not apply.
    pub host_network: bool,
}

/// A named container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// The container port number.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

/// An address outside the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalAddress {
    /// A name for reports.
    pub name: String,
    /// The address.
    pub address: IpAddr,
}

/// Why an inventory was refused; always names the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryError {
    /// `pod shop/web-1`, `document 3`, ...
    pub object: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

impl std::error::Error for InventoryError {}

fn err(object: impl Into<String>, message: impl Into<String>) -> InventoryError {
    InventoryError { object: object.into(), message: message.into() }
}

impl Inventory {
    /// Parse an inventory given as JSON.
    ///
    /// # Errors
    /// [`InventoryError`] naming the object that is malformed.
    pub fn from_json(text: &str) -> Result<Inventory, InventoryError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| err("inventory", format!("not valid JSON: {e}")))?;
        Inventory::from_documents(vec![doc])
    }

    /// Parse an inventory given as YAML (one or many documents) or JSON.
    ///
    /// # Errors
    /// [`InventoryError`] naming the document or object that is malformed.
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::from_documents(yaml_documents(text)?)
    }

    /// Parse several inputs (`(name, text)`: files, standard input) as one cluster, in order, as
    /// `kubectl apply -f a.yaml -f b.yaml` would: an object described again (same kind, namespace
    /// and name) replaces the earlier description, and is listed in the second value so that the
    /// caller can warn about it.
    ///
    /// # Errors
    /// [`InventoryError`] whose object starts with the input's name (`b.yaml: pod shop/web-1`).
    #[cfg(feature = "yaml")]
    pub fn from_yaml_files(files: &[(String, String)]) -> Result<(Inventory, Vec<Replaced>), InventoryError> {
        let mut all = Vec::new();
        for (name, text) in files {
            let in_file = |e: InventoryError| err(format!("{name}: {}", e.object), e.message);
            let objects = collect_objects(yaml_documents(text).map_err(in_file)?).map_err(in_file)?;
            all.extend(objects.into_iter().map(|(origin, object)| (format!("{name}: {origin}"), object)));
        }
        let mut replaced = Vec::new();
        let inventory = assemble(all, Some(&mut replaced))?;
        Ok((inventory, replaced))
    }

    /// Build an inventory from already-parsed documents; an object described twice is an error.
    ///
    /// # Errors
    /// [`InventoryError`] naming the object that is malformed.
    pub fn from_documents(docs: Vec<Value>) -> Result<Inventory, InventoryError> {
        assemble(collect_objects(docs)?, None)
    }

    /// The namespace called `name`.
    #[must_use]
    pub fn namespace(&self, name: &str) -> Option<&Namespace> {
        self.namespaces.binary_search_by(|n| n.name.as_str().cmp(name)).ok().map(|i| &self.namespaces[i])
    }

    /// The pod `namespace/name`.
    #[must_use]
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .binary_search_by(|p| (p.namespace.as_str(), p.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(|i| &self.pods[i])
    }
}

/// An object described again by a later document or input, which replaced the earlier
/// description (see [`Inventory::from_yaml_files`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    /// `pod shop/web-1`, `namespace shop`, `external address payments`.
    pub object: String,
    /// Where it was described first: `a.yaml: document 2`.
    pub first: String,
    /// Where it was described again, the description used: `b.yaml: document 1, item 3`.
    pub again: String,
}

/// The documents of a YAML (or JSON) text, bounded in nesting before parsing.
#[cfg(feature = "yaml")]
fn yaml_documents(text: &str) -> Result<Vec<Value>, InventoryError> {
    let text = crate::yaml_bounds::strip_bom(text);
    crate::yaml_bounds::check_nesting(text).map_err(|e| err("inventory", e.to_string()))?;
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = Value::deserialize(de)
            .map_err(|e| err(format!("document {}", i + 1), format!("not valid YAML: {e}")))?;
        docs.push(doc);
    }
    Ok(docs)
}

/// One object of an inventory, as read.
enum Object {
    Namespace(Namespace),
    Pod(Pod),
    External(ExternalAddress),
    Service(Service),
}

impl Object {
    /// The kind and name that identify it (`pod shop/web-1`).
    fn identity(&self) -> String {
        match self {
            Object::Namespace(ns) => format!("namespace {}", ns.name),
            Object::Pod(pod) => format!("pod {}/{}", pod.namespace, pod.name),
            Object::External(e) => format!("external address {}", e.name),
            Object::Service(s) => format!("service {}/{}", s.namespace, s.name),
        }
    }
}

/// The objects of `docs`, lists unfolded, in order, each with where it was read (`document 2,
/// item 3`).
fn collect_objects(docs: Vec<Value>) -> Result<Vec<(String, Object)>, InventoryError> {
    let mut objects = Vec::new();
    let mut queue: Vec<(String, Value)> =
        docs.into_iter().enumerate().map(|(i, d)| (format!("document {}", i + 1), d)).rev().collect();
    while let Some((origin, doc)) = queue.pop() {
        if doc.is_null() {
            continue;
        }
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let object = match kind {
            "List" | "NamespaceList" | "PodList" | "ServiceList" => {
                let items = doc
                    .get("items")
                    .and_then(Value::as_array)
                    .ok_or_else(|| err(&origin, format!("a {kind} needs an `items` array")))?;
                for (i, item) in items.iter().enumerate().rev() {
                    queue.push((format!("{origin}, item {}", i + 1), item.clone()));
                }
                continue;
            }
            "Namespace" => Object::Namespace(parse_namespace(&origin, &doc)?),
            "Pod" => Object::Pod(parse_pod(&origin, &doc)?),
            "ExternalAddress" => Object::External(parse_external(&origin, &doc)?),
            "Service" => Object::Service(parse_service(&origin, &doc)?),
            "" => {
                return Err(err(origin, "has no `kind`; expected Namespace, Pod, List or ExternalAddress"));
            }
            // Other objects (Deployments, EndpointSlices, ...) are common in `kubectl get all`
            // output and carry nothing the evaluation needs.
            _ => continue,
        };
        objects.push((origin, object));
    }
    Ok(objects)
}

/// The inventory of `objects`. An object described twice is an error, or with `replaced`, the
/// later description wins and the replacement is recorded there.
fn assemble(
    objects: Vec<(String, Object)>,
    mut replaced: Option<&mut Vec<Replaced>>,
) -> Result<Inventory, InventoryError> {
    // Each identity's index in `kept`; a later description takes the slot of the earlier one.
    let mut slot: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept: Vec<(String, Object)> = Vec::new();
    for (origin, object) in objects {
        let identity = object.identity();
        match slot.get(&identity) {
            None => {
                slot.insert(identity, kept.len());
                kept.push((origin, object));
            }
            Some(&i) => {
                let Some(replaced) = replaced.as_deref_mut() else {
                    return Err(err(identity, "is described twice"));
                };
                replaced.push(Replaced { object: identity, first: kept[i].0.clone(), again: origin.clone() });
                kept[i] = (origin, object);
            }
        }
    }
    let mut inv = Inventory::default();
    for (_, object) in kept {
        match object {
            Object::Namespace(ns) => inv.namespaces.push(ns),
            Object::Pod(pod) => inv.pods.push(pod),
            Object::External(e) => inv.externals.push(e),
            Object::Service(s) => inv.services.push(s),
        }
    }
    let mut seen_ns: BTreeSet<String> = inv.namespaces.iter().map(|n| n.name.clone()).collect();
    for pod in &inv.pods {
        if seen_ns.insert(pod.namespace.clone()) {
            inv.implied_namespaces.push(pod.namespace.clone());
            inv.namespaces.push(Namespace {
                name: pod.namespace.clone(),
                labels: BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), pod.namespace.clone())]),
            });
        }
    }
    inv.namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    inv.pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    inv.externals.sort_by(|a, b| a.name.cmp(&b.name));
    inv.services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    inv.implied_namespaces.sort();
    Ok(inv)
}

fn metadata<'a>(origin: &str, doc: &'a Value, kind: &str) -> Result<(&'a Value, String), InventoryError> {
    let meta = doc.get("metadata").ok_or_else(|| err(origin, format!("{kind} has no `metadata`")))?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err(origin, format!("{kind} has no `metadata.name`")))?;
    Ok((meta, name.to_owned()))
}

fn string_map(
    object: &str,
    value: Option<&Value>,
    field: &str,
) -> Result<BTreeMap<String, String>, InventoryError> {
    let Some(value) = value else { return Ok(BTreeMap::new()) };
    if value.is_null() {
        return Ok(BTreeMap::new());
    }
    let map = value.as_object().ok_or_else(|| err(object, format!("`{field}` must be a map of strings")))?;
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            other => Err(err(object, format!("`{field}.{k}` must be a string, found {other}; quote it"))),
        })
        .collect()
}

fn parse_namespace(origin: &str, doc: &Value) -> Result<Namespace, InventoryError> {
    let (meta, name) = metadata(origin, doc, "Namespace")?;
    let object = format!("namespace {name}");
    let mut labels = string_map(&object, meta.get("labels"), "metadata.labels")?;
    // The API server sets this label on every namespace; older exports may lack it.
    labels.entry(NAMESPACE_NAME_LABEL.to_owned()).or_insert_with(|| name.clone());
    Ok(Namespace { name, labels })
}

fn parse_pod(origin: &str, doc: &Value) -> Result<Pod, InventoryError> {
    let (meta, name) = metadata(origin, doc, "Pod")?;
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("default").to_owned();
    let object = format!("pod {namespace}/{name}");
    let labels = string_map(&object, meta.get("labels"), "metadata.labels")?;
    let annotations = string_map(&object, meta.get("annotations"), "metadata.annotations")?;
    let spec = doc.get("spec");
    let status = doc.get("status");

    let mut ips = Vec::new();
    let mut add_ip = |text: &str| -> Result<(), InventoryError> {
        let ip: IpAddr = text
            .parse()
            .map_err(|_| err(&object, format!("`{text}` in status.podIPs is not an IP address")))?;
        if !ips.contains(&ip) {
            ips.push(ip);
        }
        Ok(())
    };
    if let Some(list) = status.and_then(|s| s.get("podIPs")).and_then(Value::as_array) {
        for entry in list {
            let ip = entry
                .get("ip")
                .and_then(Value::as_str)
                .ok_or_else(|| err(&object, "every status.podIPs entry needs an `ip` string"))?;
            add_ip(ip)?;
        }
    }
    if let Some(ip) = status.and_then(|s| s.get("podIP")).and_then(Value::as_str) {
        add_ip(ip)?;
    }

    let mut ports = Vec::new();
    for group in ["initContainers", "containers"] {
        let Some(containers) = spec.and_then(|s| s.get(group)).and_then(Value::as_array) else { continue };
        for c in containers {
            let Some(list) = c.get("ports").and_then(Value::as_array) else { continue };
            for p in list {
                let Some(port_name) = p.get("name").and_then(Value::as_str) else { continue };
                let number = p
                    .get("containerPort")
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0)
                    .ok_or_else(|| {
                        err(
                            &object,
                            format!("container port `{port_name}` needs a containerPort in 1..65535"),
                        )
                    })?;
                let protocol =
                    parse_protocol(&object, &format!("container port `{port_name}`"), p.get("protocol"))?;
                ports.push(NamedPort { name: port_name.to_owned(), port: number, protocol });
            }
        }
    }
    ports.sort();
    ports.dedup();

    Ok(Pod {
        node: spec.and_then(|s| s.get("nodeName")).and_then(Value::as_str).map(str::to_owned),
        host_network: spec.and_then(|s| s.get("hostNetwork")).and_then(Value::as_bool).unwrap_or(false),
        host_interface: annotations.get(HOST_INTERFACE_ANNOTATION).cloned(),
        namespace,
        name,
        labels,
        ips,
        ports,
    })
}

fn parse_protocol(object: &str, what: &str, value: Option<&Value>) -> Result<Protocol, InventoryError> {
    match value.and_then(Value::as_str).unwrap_or("TCP") {
        "TCP" => Ok(Protocol::Tcp),
        "UDP" => Ok(Protocol::Udp),
        "SCTP" => Ok(Protocol::Sctp),
        other => Err(err(object, format!("{what} has protocol `{other}`; use TCP, UDP or SCTP"))),
    }
}

fn port_number(object: &str, what: &str, value: &Value) -> Result<u16, InventoryError> {
    value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
        .ok_or_else(|| err(object, format!("{what} must be a port number in 1..65535, found {value}")))
}

fn parse_service(origin: &str, doc: &Value) -> Result<Service, InventoryError> {
    let (meta, name) = metadata(origin, doc, "Service")?;
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("default").to_owned();
    let object = format!("service {namespace}/{name}");
    let spec = doc.get("spec");
    let mut texts: Vec<(&str, &str)> = Vec::new();
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let mut cluster_ips = strings(spec.and_then(|s| s.get("clusterIPs")));
    if cluster_ips.is_empty()
        && let Some(ip) = spec.and_then(|s| s.get("clusterIP")).and_then(Value::as_str)
    {
        cluster_ips.push(ip.to_owned());
    }
    let external_ips = strings(spec.and_then(|s| s.get("externalIPs")));
    let lb_ips: Vec<String> = doc
        .pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|i| i.get("ip").and_then(Value::as_str)).map(str::to_owned).collect())
        .unwrap_or_default();
    for ip in &cluster_ips {
        // `None` (headless) and `""` (not allocated yet): no frontend of its own.
        if ip != "None" && !ip.is_empty() {
            texts.push(("spec.clusterIPs", ip));
        }
    }
    texts.extend(external_ips.iter().map(|ip| ("spec.externalIPs", ip.as_str())));
    texts.extend(lb_ips.iter().map(|ip| ("status.loadBalancer.ingress", ip.as_str())));
    let mut addresses = Vec::new();
    for (field, text) in texts {
        let ip: IpAddr =
            text.parse().map_err(|_| err(&object, format!("`{text}` in {field} is not an IP address")))?;
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    let mut ports = Vec::new();
    if let Some(list) = spec.and_then(|s| s.get("ports")).and_then(Value::as_array) {
        for (i, p) in list.iter().enumerate() {
            let what = format!("spec.ports[{i}]");
            let protocol = parse_protocol(&object, &what, p.get("protocol"))?;
            let port = port_number(
                &object,
                &format!("{what}.port"),
                p.get("port").ok_or_else(|| err(&object, format!("{what} needs a `port`")))?,
            )?;
            let target_port = match p.get("targetPort") {
                None | Some(Value::Null) => PortValue::Number(port),
                Some(Value::String(name)) => match name.parse::<u16>() {
                    Ok(n) if n != 0 => PortValue::Number(n),
                    _ => PortValue::Name(name.clone()),
                },
                Some(v) => PortValue::Number(port_number(&object, &format!("{what}.targetPort"), v)?),
            };
            let node_port = match p.get("nodePort") {
                None | Some(Value::Null) => None,
                Some(v) => Some(port_number(&object, &format!("{what}.nodePort"), v)?),
            };
            ports.push(ServicePort { protocol, port, target_port, node_port });
        }
    }
    Ok(Service { namespace, name, addresses, ports })
}

fn parse_external(origin: &str, doc: &Value) -> Result<ExternalAddress, InventoryError> {
    let (_, name) = metadata(origin, doc, "ExternalAddress")?;
    let object = format!("external address {name}");
    let text = doc
        .get("address")
        .and_then(Value::as_str)
        .ok_or_else(|| err(&object, "needs an `address` field holding an IP address"))?;
    let address = text.parse().map_err(|_| err(&object, format!("`{text}` is not an IP address")))?;
    Ok(ExternalAddress { name, address })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"apiVersion":"v1","kind":"List","items":[
        {"kind":"Namespace","metadata":{"name":"shop","labels":{"team":"shop"}}},
        {"kind":"Pod","metadata":{"name":"web-1","namespace":"shop","labels":{"app":"web"},
          "annotations":{"netc.dev/host-interface":"veth1"}},
         "spec":{"nodeName":"n1","containers":[{"ports":[{"name":"http","containerPort":8080}]}]},
         "status":{"podIP":"10.0.0.5","podIPs":[{"ip":"10.0.0.5"},{"ip":"fd00::5"}]}},
        {"kind":"Pod","metadata":{"name":"db","namespace":"data"}},
        {"kind":"Service","metadata":{"name":"db","namespace":"data"},
         "spec":{"type":"NodePort","clusterIPs":["10.96.0.10","fd00:96::10"],"externalIPs":["203.0.113.7"],
           "ports":[{"port":80,"targetPort":"http","nodePort":30080},{"protocol":"UDP","port":53}]}},
        {"kind":"Service","metadata":{"name":"headless"},"spec":{"clusterIP":"None","ports":[{"port":5432}]}},
        {"apiVersion":"netc.dev/v1","kind":"ExternalAddress","metadata":{"name":"api"},"address":"203.0.113.1"}
    ]}"#;

    #[test]
    fn reads_kubectl_lists() {
        let inv = Inventory::from_json(SAMPLE).expect("valid inventory");
        assert_eq!(inv.namespaces.len(), 2);
        let shop = inv.namespace("shop").expect("shop");
        assert_eq!(shop.labels.get(NAMESPACE_NAME_LABEL).map(String::as_str), Some("shop"));
        assert_eq!(inv.implied_namespaces, vec!["data".to_owned()]);
        let web = inv.pod("shop", "web-1").expect("web-1");
        assert_eq!(web.ips.len(), 2);
        assert_eq!(web.ports, vec![NamedPort { name: "http".into(), port: 8080, protocol: Protocol::Tcp }]);
        assert_eq!(web.host_interface.as_deref(), Some("veth1"));
        assert_eq!(inv.externals[0].address, "203.0.113.1".parse::<IpAddr>().expect("ip"));
        let names: Vec<_> = inv.services.iter().map(|s| format!("{}/{}", s.namespace, s.name)).collect();
        assert_eq!(names, ["data/db", "default/headless"]);
        let db = &inv.services[0];
        let ips: Vec<IpAddr> =
            ["10.96.0.10", "fd00:96::10", "203.0.113.7"].iter().map(|t| t.parse().expect("ip")).collect();
        assert_eq!(db.addresses, ips);
        assert_eq!(
            db.ports,
            vec![
                ServicePort {
                    protocol: Protocol::Tcp,
                    port: 80,
                    target_port: PortValue::Name("http".into()),
                    node_port: Some(30080)
                },
                ServicePort {
                    protocol: Protocol::Udp,
                    port: 53,
                    target_port: PortValue::Number(53),
                    node_port: None
                },
            ]
        );
        assert!(inv.services[1].addresses.is_empty(), "a headless Service has no frontend");
    }

    #[test]
    fn service_errors_name_the_service_and_field() {
        let bad = r#"{"kind":"Service","metadata":{"name":"s","namespace":"x"},"spec":{"clusterIP":"10.96.0.300"}}"#;
        let e = Inventory::from_json(bad).expect_err("bad ip");
        assert_eq!(e.object, "service x/s");
        assert!(e.message.contains("spec.clusterIPs"), "{e}");
        let bad =
            r#"{"kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":80,"nodePort":70000}]}}"#;
        let e = Inventory::from_json(bad).expect_err("bad node port");
        assert!(e.message.contains("spec.ports[0].nodePort"), "{e}");
        let bad =
            r#"{"kind":"Service","metadata":{"name":"s"},"spec":{"ports":[{"port":80,"protocol":"ICMP"}]}}"#;
        let e = Inventory::from_json(bad).expect_err("bad protocol");
        assert!(e.message.contains("use TCP, UDP or SCTP"), "{e}");
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn several_inputs_make_one_cluster_and_the_last_description_wins() {
        let files = [
            (
                "a.yaml".to_owned(),
                "kind: Pod\nmetadata: {name: web-1, namespace: shop, labels: {app: web}}\nstatus: {podIP: 10.0.0.1}\n"
                    .to_owned(),
            ),
            (
                "b.json".to_owned(),
                r#"{"kind":"List","items":[{"kind":"Namespace","metadata":{"name":"shop","labels":{"team":"x"}}},
                   {"kind":"Pod","metadata":{"name":"web-1","namespace":"shop","labels":{"app":"new"}},"status":{"podIP":"10.0.0.9"}}]}"#
                    .to_owned(),
            ),
        ];
        let (inv, replaced) = Inventory::from_yaml_files(&files).expect("valid inputs");
        assert_eq!(inv.pods.len(), 1);
        assert_eq!(inv.pods[0].labels.get("app").map(String::as_str), Some("new"));
        assert!(inv.implied_namespaces.is_empty(), "the namespace is described by b.json");
        assert_eq!(
            replaced,
            [Replaced {
                object: "pod shop/web-1".into(),
                first: "a.yaml: document 1".into(),
                again: "b.json: document 1, item 2".into()
            }]
        );
        // One input alone still refuses a second description, and errors name the input.
        assert!(Inventory::from_yaml(&format!("{}---\n{}", files[0].1, files[0].1)).is_err());
        let bad = [("c.yaml".to_owned(), "kind: Pod\nmetadata: {namespace: x}\n".to_owned())];
        let e = Inventory::from_yaml_files(&bad).expect_err("no name");
        assert_eq!(e.to_string(), "c.yaml: document 1: Pod has no `metadata.name`");
    }

    #[test]
    fn errors_name_the_object() {
        let bad = r#"{"kind":"Pod","metadata":{"name":"p","namespace":"x"},"status":{"podIP":"nope"}}"#;
        let e = Inventory::from_json(bad).expect_err("bad ip");
        assert_eq!(e.object, "pod x/p");
        assert!(e.message.contains("`nope`"));
        let e = Inventory::from_json(r#"{"metadata":{}}"#).expect_err("no kind");
        assert!(e.message.contains("no `kind`"));
        let e = Inventory::from_json(r#"{"kind":"Pod","metadata":{"name":"p","labels":{"a":1}}}"#)
            .expect_err("non-string label");
        assert!(e.message.contains("quote it"), "{e}");
    }
}
