//! A fake Kubernetes API server, in process, speaking the list/watch protocol kube-rs's real
//! client speaks to a real one: `GET /api/v1/{namespaces,pods}` and
//! `GET /api/v1/namespaces/{ns}/configmaps` (with `fieldSelector=metadata.name=...`) and
//! `GET /apis/networking.k8s.io/v1/networkpolicies` and `GET /api/v1/services`, lists with
//! `limit`/`continue` pages and a `resourceVersion`, watches (`watch=true`) streamed as chunked
//! JSON lines from a `resourceVersion`, `BOOKMARK` events when asked for, `410 Gone` (an `ERROR`
//! event with an `Expired` Status, as the API server sends it) for versions compacted away, and
//! watches dropped mid-stream. Tests drive it: create, replace, delete objects, compact, drop
//! every open watch, send bookmarks, or answer every request with 503 (the API server away).
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::SinkExt as _;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// What changed, as watchers are told.
#[derive(Debug, Clone)]
enum Message {
    /// (resourceVersion, kind, ADDED/MODIFIED/DELETED, object)
    Event(u64, &'static str, &'static str, Value),
    /// Send a bookmark now at this resourceVersion.
    Bookmark(u64),
    /// Close every open watch.
    Drop,
}

#[derive(Debug, Default)]
struct Store {
    rv: u64,
    /// (kind, namespace, name) -> object
    objects: BTreeMap<(&'static str, String, String), Value>,
    /// Every change, for watches from an older resourceVersion.
    log: Vec<(u64, &'static str, &'static str, Value)>,
    /// Watches from a version below this get 410 Gone.
    compacted: u64,
    /// Requests served, by "list KIND" / "watch KIND".
    requests: BTreeMap<String, u64>,
    /// While set, every request gets 503 (the API server is "down" but the port answers).
    unavailable: bool,
}

struct Shared {
    store: Mutex<Store>,
    changes: broadcast::Sender<Message>,
}

/// The running fake; stops with the test process.
pub struct FakeApiServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "namespaces" => "Namespace",
        "pods" => "Pod",
        "networkpolicies" => "NetworkPolicy",
        "services" => "Service",
        _ => "ConfigMap",
    }
}

fn api_version(kind: &str) -> &'static str {
    if kind == "NetworkPolicy" { "networking.k8s.io/v1" } else { "v1" }
}

impl FakeApiServer {
    /// Start on a free port of 127.0.0.1, on a runtime of its own.
    pub fn start() -> FakeApiServer {
        FakeApiServer::serve_on(std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake API server"))
    }

    /// Start on `listener` (e.g. one bound inside another network namespace: a socket stays in
    /// the namespace it was made in, so a netcd there reaches the fake on its own 127.0.0.1).
    pub fn serve_on(listener: std::net::TcpListener) -> FakeApiServer {
        let (changes, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared { store: Mutex::new(Store { rv: 100, ..Store::default() }), changes });
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/api/v1/namespaces", get(cluster_scoped_namespaces))
            .route("/api/v1/pods", get(cluster_scoped_pods))
            .route("/api/v1/namespaces/{ns}/configmaps", get(namespaced_configmaps))
            .route("/apis/networking.k8s.io/v1/networkpolicies", get(cluster_scoped_network_policies))
            .route("/api/v1/services", get(cluster_scoped_services))
            .with_state(Arc::clone(&shared));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                axum::serve(listener, app).await.expect("serve");
            });
        });
        FakeApiServer { addr, shared }
    }

    /// A kubeconfig file pointing at this server (plain HTTP, no credentials).
    pub fn kubeconfig(&self, path: &std::path::Path) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n    namespace: default\nusers:\n- name: nobody\n  user: {{}}\ncurrent-context: fake\n",
            self.addr
        );
        std::fs::write(path, text).expect("write kubeconfig");
    }

    fn change(&self, kind: &'static str, event: &'static str, mut object: Value) -> u64 {
        let mut store = self.shared.store.lock().expect("store");
        store.rv += 1;
        let rv = store.rv;
        let meta = object["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), rv.to_string().into());
        let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("").to_owned();
        let name = meta["name"].as_str().expect("name").to_owned();
        let key = (kind, namespace, name);
        if event == "DELETED" {
            store.objects.remove(&key);
        } else {
            store.objects.insert(key, object.clone());
        }
        store.log.push((rv, kind, event, object.clone()));
        drop(store);
        let _ = self.shared.changes.send(Message::Event(rv, kind, event, object));
        rv
    }

    /// Create or replace an object (a `kind: Namespace/Pod/ConfigMap/NetworkPolicy/Service` JSON
    /// object).
    pub fn apply(&self, object: Value) -> u64 {
        let kind = match object["kind"].as_str().expect("kind") {
            "Namespace" => "Namespace",
            "Pod" => "Pod",
            "ConfigMap" => "ConfigMap",
            "NetworkPolicy" => "NetworkPolicy",
            "Service" => "Service",
            other => panic!("the fake serves no {other}"),
        };
        let exists = {
            let store = self.shared.store.lock().expect("store");
            let meta = &object["metadata"];
            store.objects.contains_key(&(
                kind,
                meta["namespace"].as_str().unwrap_or("").to_owned(),
                meta["name"].as_str().expect("name").to_owned(),
            ))
        };
        self.change(kind, if exists { "MODIFIED" } else { "ADDED" }, object)
    }

    /// Delete an object (`kind`, namespace or "" for namespaces, name).
    pub fn delete(&self, kind: &'static str, namespace: &str, name: &str) -> u64 {
        let object = {
            let store = self.shared.store.lock().expect("store");
            store
                .objects
                .get(&(kind, namespace.to_owned(), name.to_owned()))
                .cloned()
                .expect("object to delete")
        };
        self.change(kind, "DELETED", object)
    }

    /// Forget the change log: watches from any version before now get 410 Gone and must relist.
    pub fn compact(&self) {
        let mut store = self.shared.store.lock().expect("store");
        store.compacted = store.rv + 1;
        store.log.clear();
    }

    /// Close every open watch connection (clients re-watch from their last version).
    pub fn drop_watches(&self) {
        let _ = self.shared.changes.send(Message::Drop);
    }

    /// Send a bookmark at the current version on every watch that asked for bookmarks.
    pub fn bookmark(&self) {
        let rv = self.shared.store.lock().expect("store").rv;
        let _ = self.shared.changes.send(Message::Bookmark(rv));
    }

    /// Answer every request with 503 (true) or serve again (false); open watches are closed.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.store.lock().expect("store").unavailable = unavailable;
        if unavailable {
            self.drop_watches();
        }
    }

    /// How many requests of this kind ("list pods", "watch pods", ...) were served.
    pub fn requests(&self, what: &str) -> u64 {
        self.shared.store.lock().expect("store").requests.get(what).copied().unwrap_or(0)
    }
}

async fn cluster_scoped_namespaces(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    serve(&shared, "namespaces", None, &query)
}

async fn cluster_scoped_pods(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    serve(&shared, "pods", None, &query)
}

async fn cluster_scoped_network_policies(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    serve(&shared, "networkpolicies", None, &query)
}

async fn cluster_scoped_services(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    serve(&shared, "services", None, &query)
}

async fn namespaced_configmaps(
    State(shared): State<Arc<Shared>>,
    Path(ns): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    serve(&shared, "configmaps", Some(ns), &query)
}

/// Whether `object` of `kind` is selected by the request (namespace, `metadata.name=` field
/// selector: the only one netcd uses).
fn selected(
    kind: &str,
    object_kind: &str,
    object: &Value,
    namespace: Option<&str>,
    field: Option<&str>,
) -> bool {
    if kind != object_kind {
        return false;
    }
    let meta = &object["metadata"];
    if let Some(ns) = namespace
        && meta["namespace"].as_str() != Some(ns)
    {
        return false;
    }
    match field.and_then(|f| f.strip_prefix("metadata.name=")) {
        Some(name) => meta["name"].as_str() == Some(name),
        None => true,
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn serve(
    shared: &Arc<Shared>,
    resource: &str,
    namespace: Option<String>,
    query: &BTreeMap<String, String>,
) -> Response {
    let kind = kind_of(resource);
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let field = query.get("fieldSelector").cloned();
    let mut store = shared.store.lock().expect("store");
    *store.requests.entry(format!("{} {resource}", if watch { "watch" } else { "list" })).or_default() += 1;
    if store.unavailable {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(status(503, "ServiceUnavailable", "the fake is down")),
        )
            .into_response();
    }
    if !watch {
        // A list, in pages of `limit` (continue token = the offset, at the list's version).
        let limit: usize =
            query.get("limit").and_then(|l| l.parse().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
        let (offset, rv) = match query.get("continue").and_then(|c| c.split_once(':')) {
            Some((o, v)) => (o.parse().unwrap_or(0), v.parse().unwrap_or(store.rv)),
            None => (0, store.rv),
        };
        let items: Vec<Value> = store
            .objects
            .iter()
            .filter(|((k, _, _), o)| selected(kind, k, o, namespace.as_deref(), field.as_deref()))
            .map(|(_, o)| o.clone())
            .collect();
        let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if offset + page.len() < items.len() {
            metadata["continue"] = format!("{}:{rv}", offset + page.len()).into();
        }
        return axum::Json(json!({"kind": format!("{kind}List"), "apiVersion": api_version(kind),
                                 "metadata": metadata, "items": page}))
        .into_response();
    }
    // A watch from `resourceVersion`: what changed since, then what changes, as JSON lines.
    let from: u64 = query.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(store.rv);
    let bookmarks = query.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let mut receiver = shared.changes.subscribe();
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<String, std::convert::Infallible>>(1024);
    let line = |v: Value| Ok(format!("{v}\n"));
    if from + 1 < store.compacted {
        // 410 Gone, as the API server says it on a watch: an ERROR event, then the end.
        let gone = status(410, "Expired", &format!("too old resource version: {from} ({})", store.compacted));
        let _ = tx.try_send(line(json!({"type": "ERROR", "object": gone})));
        drop(tx);
        return Response::new(Body::from_stream(rx));
    }
    let mut sent = from;
    for (rv, k, event, object) in &store.log {
        if *rv > from && selected(kind, k, object, namespace.as_deref(), field.as_deref()) {
            let _ = tx.try_send(line(json!({"type": event, "object": object})));
        }
        sent = sent.max(*rv);
    }
    drop(store);
    tokio::spawn(async move {
        loop {
            let message = match receiver.recv().await {
                Ok(m) => m,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let out = match message {
                Message::Drop => return,
                Message::Bookmark(rv) if bookmarks => json!({"type": "BOOKMARK", "object": {
                    "kind": kind, "apiVersion": api_version(kind), "metadata": {"resourceVersion": rv.to_string()}}}),
                Message::Bookmark(_) => continue,
                Message::Event(rv, k, event, object) => {
                    if rv <= sent || !selected(kind, k, &object, namespace.as_deref(), field.as_deref()) {
                        continue;
                    }
                    sent = rv;
                    json!({"type": event, "object": object})
                }
            };
            if tx.send(line(out)).await.is_err() {
                return;
            }
        }
    });
    Response::new(Body::from_stream(rx))
}

/// A Namespace object.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

/// A running Pod object on `node`.
pub fn pod(
    namespace: &str,
    name: &str,
    labels: &[(&str, &str)],
    ip: Option<&str>,
    host_if: &str,
    node: &str,
) -> Value {
    let labels: serde_json::Map<String, Value> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), Value::from(*v))).collect();
    let mut status = json!({"phase": "Running"});
    if let Some(ip) = ip {
        status["podIP"] = ip.into();
        status["podIPs"] = json!([{"ip": ip}]);
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace, "labels": labels,
                        "uid": format!("uid-{namespace}-{name}-{}", ip.unwrap_or("none")),
                        "annotations": {"netc.dev/host-interface": host_if}},
           "spec": {"nodeName": node, "containers": [{"name": "main", "image": "none"}]},
           "status": status})
}

/// The policy ConfigMap.
pub fn configmap(namespace: &str, name: &str, key: &str, ir_json: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": namespace},
           "data": {key: ir_json}})
}

/// A NetworkPolicy object; `spec` as the API has it (JSON).
pub fn network_policy(namespace: &str, name: &str, spec: &Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// A Service object; `spec` as the API has it (JSON).
pub fn service(namespace: &str, name: &str, spec: &Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}
