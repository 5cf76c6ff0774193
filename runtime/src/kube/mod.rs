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
//! - The policy: the IR in a ConfigMap (`netc build --emit configmap`). The cluster's own
//!   NetworkPolicy objects are the other source ([`PolicySource::NetworkPolicies`]); netcd cannot
//!   enforce them yet, and says so (the seam is marked in [`run`]).
//!
//! Consistency: a list's objects replace the live ones in one step ([`cluster`]); events that are
//! ready together are applied together. While the API server is unreachable the last applied
//! state stays enforced (it is in the pinned maps), netcd logs it and `netcd_api_server_up` is 0.

pub mod cluster;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ::kube::runtime::{WatchStreamExt as _, watcher};
use ::kube::{Api, Client};
use futures::{FutureExt as _, StreamExt as _, stream::BoxStream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};

use crate::daemon::{DaemonError, RunConfig, Running};
use crate::metrics::{Metrics, ResourceLabels};
use cluster::{Change, Cluster, PolicyConfigMap};

/// Where the policy comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The IR JSON under a key of a ConfigMap.
    ConfigMap(PolicyConfigMap),
    /// The cluster's NetworkPolicy objects (not enforced by netcd yet).
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
    /// The policy source is not supported yet.
    #[error(
        "netcd cannot enforce the cluster's NetworkPolicy objects yet; compile the policy with `netc build --emit configmap` and pass --policy-configmap NAMESPACE/NAME"
    )]
    NetworkPoliciesNotSupported,
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
    // Boxed: a Pod is five times the size of the others.
    Pod(Box<watcher::Event<Pod>>),
    Policy(watcher::Event<ConfigMap>),
}

/// Resource names as metrics and logs name them.
const NAMESPACES: &str = "namespaces";
const PODS: &str = "pods";
const CONFIGMAP: &str = "configmap";

type Item = (&'static str, Result<Update, watcher::Error>);

/// Run until killed, fed by the API server.
///
/// # Errors
/// A [`KubeError`] when the client cannot be configured or the first state cannot be applied;
/// later failures are logged and the last state stays enforced.
pub fn run(config: &RunConfig, options: &KubeOptions, metrics: &Arc<Metrics>) -> Result<(), KubeError> {
    let PolicySource::ConfigMap(source) = &options.policy else {
        // Seam for the cluster's NetworkPolicy objects: once netcd can enforce them, watch
        // `Api::<NetworkPolicy>::all` here as a fourth stream into `Cluster` and build the IR from
        // them where `Cluster::ir` reads the ConfigMap.
        return Err(KubeError::NetworkPoliciesNotSupported);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(watch(config, options, source, metrics))
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

fn streams(client: &Client, source: &PolicyConfigMap) -> BoxStream<'static, Item> {
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
    let policy = watcher(
        Api::<ConfigMap>::namespaced(client.clone(), &source.namespace),
        config.fields(&format!("metadata.name={}", source.name)),
    )
    .default_backoff()
    .map(|e| (CONFIGMAP, e.map(Update::Policy)));
    futures::stream::select_all([namespaces.boxed(), pods.boxed(), policy.boxed()]).boxed()
}

fn log(message: &str) {
    tracing::info!(target: "netcd", "{message}");
}

fn warn(message: &str) {
    tracing::warn!(target: "netcd", "{message}");
}

/// The watch loop: merge the three streams, keep [`Cluster`] current, apply when it changed.
async fn watch(
    config: &RunConfig,
    options: &KubeOptions,
    source: &PolicyConfigMap,
    metrics: &Arc<Metrics>,
) -> Result<(), KubeError> {
    let client = client(options).await?;
    log(&format!(
        "watching namespaces, pods and ConfigMap {}/{} (key {}) on {}",
        source.namespace,
        source.name,
        source.key,
        client.default_namespace()
    ));
    metrics.set_not_ready("waiting for the first list of namespaces, pods and the policy ConfigMap");
    let mut events = streams(&client, source);
    let mut cluster = Cluster::default();
    let mut running: Option<Running> = None;
    let mut failing: std::collections::BTreeSet<&'static str> = std::collections::BTreeSet::new();
    // The policy last refused, so that it is said once, not at every pod event.
    let mut refused_policy: Option<String> = None;
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
                            cluster.policy_event(e, &source.key)
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
        if !changed || !cluster.synced() {
            continue;
        }
        let ir = match cluster.ir(source) {
            Ok(ir) => {
                refused_policy = None;
                ir
            }
            Err(e) => {
                let message = e.to_string();
                if refused_policy.as_ref() != Some(&message) {
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
                    refused_policy = Some(message);
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
