//! `netcd run --kubernetes`: the Kubernetes watch that feeds the daemon.
//!
//! Where it sits: in place of the inventory and IR files of `netcd run --ir --inventory`. It
//! watches the API server with kube-rs's watcher (list, then watch from the list's
//! resourceVersion, bookmarks, relist after 410 Gone, re-watch after a dropped connection) and
//! turns every change into the daemon's one way of changing enforcement,
//! [`Running::apply`](crate::daemon::Running::apply): pods changed with the same policy are
//! changed in place ([`Plan::update_in_place`](crate::plan::Plan::update_in_place)); a new policy
//! or a namespace relabel becomes a new generation flipped in one map write.
//!
//! - Namespaces and Pods: all of them (remote pods are peers; `--node` picks the local ones by
//!   `spec.nodeName`).
//! - Services, all of them, with `--uplink` (the Service path, docs/runtime.md "Services"): their
//!   frontends (cluster, external and load-balancer IPs, ports, node ports). No EndpointSlices:
//!   netcd judges a call after kube-proxy's translation, on the backend kube-proxy picked, so it
//!   needs to know which addresses are frontends, never which backends are behind them.
//! - The policy: the IR in a ConfigMap (`netc build --emit configmap`), or the cluster's own
//!   NetworkPolicy objects (all namespaces), lowered object by object by netc's importer
//!   ([`network_policies`]).
//!
//! Another kind of object joins the watch as one more `Update` variant, one more stream in
//! `streams`, and one more [`cluster::Objects`] in [`Cluster`].
//!
//! Consistency: a list's objects replace the live ones in one step ([`cluster`]); events that are
//! ready together are applied together. While the API server is unreachable the last applied
//! state stays enforced (it is in the pinned maps), netcd logs it and `netcd_api_server_up` is 0.

pub mod cluster;
pub mod network_policies;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ::kube::runtime::{WatchStreamExt as _, watcher};
use ::kube::{Api, Client};
use futures::{FutureExt as _, StreamExt as _, stream::BoxStream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netc_ir::Ir;

use crate::daemon::{DaemonError, RunConfig, Running};
use crate::metrics::{Metrics, ResourceLabels};
use cluster::{Change, Cluster, PolicyConfigMap};

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The IR JSON under a key of a ConfigMap.
    ConfigMap(PolicyConfigMap),
    /// The cluster's NetworkPolicy objects, all namespaces.
    NetworkPolicies,
}

/// How `netcd run --kubernetes` reaches the API server and finds the policy.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// A kubeconfig file; `None`: in-cluster config (the pod's service account), else
    /// `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The policy.
    pub policy: PolicySource,
}

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No usable client configuration.
    #[error(
        "cannot configure the Kubernetes client: {0}; in a pod, give it a service account; elsewhere, pass --kubeconfig FILE or set KUBECONFIG"
    )]
    Config(String),
    /// The tokio runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// One item of the merged watch streams.
enum Update {
    Namespace(watcher::Event<Namespace>),
    // Boxed: a Pod is five times the size of the others, a Service twice.
    Pod(Box<watcher::Event<Pod>>),
    Policy(watcher::Event<ConfigMap>),
    NetworkPolicy(watcher::Event<NetworkPolicy>),
    Service(Box<watcher::Event<Service>>),
}

/// Resource names as metrics and logs name them.
const NAMESPACES: &str = "namespaces";
const PODS: &str = "pods";
const CONFIGMAP: &str = "configmap";
const NETWORK_POLICIES: &str = "networkpolicies";
const SERVICES: &str = "services";

type Item = (&'static str, Result<Update, watcher::Error>);

/// Run until killed, fed by the API server.
///
/// # Errors
/// A [`KubeError`] when the client cannot be configured or the first state cannot be applied;
/// later failures are logged and the last state stays enforced.
pub fn run(config: &RunConfig, options: &KubeOptions, metrics: &Arc<Metrics>) -> Result<(), KubeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(watch(config, options, metrics))
}

async fn client(options: &KubeOptions) -> Result<Client, KubeError> {
    let mut config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = ::kube::config::Kubeconfig::read_from(path)
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?;
            ::kube::Config::from_custom_kubeconfig(kubeconfig, &::kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| KubeError::Config(format!("{}: {e}", path.display())))?
        }
        None => ::kube::Config::infer().await.map_err(|e| KubeError::Config(e.to_string()))?,
    };
    // kube's client retries a 503 or 429 itself, up to 15 times over minutes, before a watcher
    // sees the error; the watcher's own backoff retries anyway, and netcd must know (and say)
    // at once that the API server is not answering.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))
}

/// The merged watch streams; Services only when `services` (the Service path is on).
fn streams(client: &Client, source: &PolicySource, services: bool) -> BoxStream<'static, Item> {
    // kube's default watcher: paginated list, then watch from its resourceVersion with
    // bookmarks; a 410 Gone relists, a closed watch re-watches from the last version seen. The
    // backoff spaces retries while the API server is down (up to 30 s apart, reset on success).
    let config = watcher::Config::default();
    let namespaces = watcher(Api::<Namespace>::all(client.clone()), config.clone())
        .default_backoff()
        .map(|e| (NAMESPACES, e.map(Update::Namespace)));
    let pods = watcher(Api::<Pod>::all(client.clone()), config.clone())
        .default_backoff()
        .map(|e| (PODS, e.map(|e| Update::Pod(Box::new(e)))));
    let policy = match source {
        PolicySource::ConfigMap(source) => watcher(
            Api::<ConfigMap>::namespaced(client.clone(), &source.namespace),
            config.clone().fields(&format!("metadata.name={}", source.name)),
        )
        .default_backoff()
        .map(|e| (CONFIGMAP, e.map(Update::Policy)))
        .boxed(),
        PolicySource::NetworkPolicies => watcher(Api::<NetworkPolicy>::all(client.clone()), config.clone())
            .default_backoff()
            .map(|e| (NETWORK_POLICIES, e.map(Update::NetworkPolicy)))
            .boxed(),
    };
    let mut all = vec![namespaces.boxed(), pods.boxed(), policy];
    if services {
        all.push(
            watcher(Api::<Service>::all(client.clone()), config)
                .default_backoff()
                .map(|e| (SERVICES, e.map(|e| Update::Service(Box::new(e)))))
                .boxed(),
        );
    }
    futures::stream::select_all(all).boxed()
}

fn log(message: &str) {
    tracing::info!(target: "netcd", "{message}");
}

fn warn(message: &str) {
    tracing::warn!(target: "netcd", "{message}");
}

/// What the watch says it watches, for logs and readiness.
fn watched(source: &PolicySource, services: bool) -> String {
    let objects = if services { "namespaces, pods, Services" } else { "namespaces, pods" };
    match source {
        PolicySource::ConfigMap(c) => {
            format!("{objects} and the policy ConfigMap {}/{} (key {})", c.namespace, c.name, c.key)
        }
        PolicySource::NetworkPolicies => format!("{objects} and NetworkPolicies (all namespaces)"),
    }
}

/// The policy problems last reported, so that each is said once, not at every pod event.
#[derive(Debug, Default)]
struct Reported {
    /// The policy ConfigMap's problem.
    policy: Option<String>,
    /// The NetworkPolicy objects refused.
    refusals: Vec<network_policies::Refusal>,
}

/// The IR to enforce now. `Err`: the policy cannot be used (the ConfigMap is missing or broken);
/// the caller keeps the last one. NetworkPolicy objects the importer refuses are reported here
/// (log and `netcd_networkpolicy_refused`) and handled as [`network_policies`] says.
fn policy_ir(
    cluster: &mut Cluster,
    source: &PolicySource,
    metrics: &Metrics,
    reported: &mut Reported,
) -> Result<Ir, String> {
    match source {
        PolicySource::ConfigMap(c) => {
            let ir = cluster.ir(c).map_err(|e| e.to_string());
            if ir.is_ok() {
                reported.policy = None;
            }
            ir
        }
        PolicySource::NetworkPolicies => {
            let (ir, refusals) = cluster.network_policies_ir();
            if refusals != reported.refusals {
                for refusal in refusals.iter().filter(|r| !reported.refusals.contains(r)) {
                    warn(&refusal.to_string());
                }
                for fixed in
                    reported.refusals.iter().filter(|r| !refusals.iter().any(|n| n.policy == r.policy))
                {
                    log(&format!("NetworkPolicy {} is accepted again", fixed.policy));
                }
                metrics.set_network_policies_refused(
                    refusals.iter().map(|r| (r.policy.clone(), r.fallback.as_str())),
                );
                reported.refusals = refusals;
            }
            Ok(ir)
        }
    }
}

/// The watch loop: merge the streams, keep [`Cluster`] current, apply when it changed.
async fn watch(config: &RunConfig, options: &KubeOptions, metrics: &Arc<Metrics>) -> Result<(), KubeError> {
    let client = client(options).await?;
    let source = &options.policy;
    // The Service path is on with `--uplink` only (a translated call must meet a classifier on
    // its way out); without, Services are not needed, nor the RBAC to read them.
    let services = !config.uplinks.is_empty();
    log(&format!("watching {} on {}", watched(source, services), client.default_namespace()));
    metrics.set_not_ready(&format!("waiting for the first list of {}", watched(source, services)));
    let mut events = streams(&client, source, services);
    let mut cluster = Cluster::default();
    let mut running: Option<Running> = None;
    let mut failing: std::collections::BTreeSet<&'static str> = std::collections::BTreeSet::new();
    let mut reported = Reported::default();
    while let Some(first) = events.next().await {
        let arrived = Instant::now();
        let mut changed = false;
        let mut item = Some(first);
        // Take every event that is ready now: a burst (a list, a rollout) is applied once.
        while let Some((resource, result)) = item.take() {
            let labels = ResourceLabels { resource: resource.into() };
            match result {
                Ok(update) => {
                    if failing.remove(resource) {
                        log(&format!("the watch of {resource} is back"));
                    }
                    let change = match update {
                        Update::Namespace(e) => {
                            count_relist(metrics, &labels, &e);
                            cluster.namespace_event(e)
                        }
                        Update::Pod(e) => {
                            count_relist(metrics, &labels, &e);
                            cluster.pod_event(*e)
                        }
                        Update::Policy(e) => {
                            count_relist(metrics, &labels, &e);
                            match source {
                                PolicySource::ConfigMap(c) => cluster.policy_event(e, &c.key),
                                PolicySource::NetworkPolicies => Change::None,
                            }
                        }
                        Update::NetworkPolicy(e) => {
                            count_relist(metrics, &labels, &e);
                            cluster.network_policy_event(e)
                        }
                        Update::Service(e) => {
                            count_relist(metrics, &labels, &e);
                            cluster.service_event(*e)
                        }
                    };
                    changed |= change != Change::None;
                }
                Err(e) => {
                    metrics.watch_restarts.get_or_create(&labels).inc();
                    failing.insert(resource);
                    let generation = running.as_ref().map_or_else(
                        || "nothing is enforced yet".to_owned(),
                        |_| "the last state applied stays enforced".to_owned(),
                    );
                    warn(&format!("watch of {resource} failed, retrying: {e}; {generation}"));
                }
            }
            metrics.api_server_up.set(i64::from(failing.is_empty()));
            item = events.next().now_or_never().flatten();
        }
        if !changed || !cluster.synced(source, services) {
            continue;
        }
        let ir = match policy_ir(&mut cluster, source, metrics, &mut reported) {
            Ok(ir) => ir,
            Err(message) => {
                if reported.policy.as_ref() != Some(&message) {
                    warn(&format!(
                        "{message}; {}",
                        if running.is_some() {
                            "the last policy stays enforced"
                        } else {
                            "nothing is enforced yet"
                        }
                    ));
                    if running.is_none() {
                        metrics.set_not_ready(&message);
                    }
                    reported.policy = Some(message);
                }
                match running.as_ref().and_then(Running::live) {
                    // Pods keep changing under the last good policy.
                    Some((live, _)) => live.clone(),
                    None => continue,
                }
            }
        };
        let inventory = cluster.inventory();
        match &mut running {
            None => {
                // Blocking here is fine: this future runs on the thread of `block_on`, not on one of
                // the runtime's workers, which keep the watch connections going meanwhile.
                let started = Running::start(config, ir, inventory, Some(Arc::clone(metrics)));
                match started {
                    Ok(r) => {
                        running = Some(r);
                        metrics.set_ready();
                        log("first sync with the API server applied: ready");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(r) => {
                if let Some((live_ir, live_inventory)) = r.live()
                    && *live_ir == ir
                    && *live_inventory == inventory
                {
                    continue;
                }
                match r.apply(config, ir, inventory, "watch") {
                    Ok(()) => metrics.event_to_enforced_seconds.observe(arrived.elapsed().as_secs_f64()),
                    Err(e) => warn(&format!(
                        "applying the watched state failed, the previous state stays in force: {e}"
                    )),
                }
            }
        }
    }
    Ok(())
}

fn count_relist<K>(metrics: &Metrics, labels: &ResourceLabels, event: &watcher::Event<K>) {
    if matches!(event, watcher::Event::Init) {
        metrics.watch_relists.get_or_create(labels).inc();
    }
}
