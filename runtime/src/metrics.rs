//! netcd's Prometheus metrics and health endpoints: where the node agent is observed from outside.
//!
//! Sits beside the daemon loop ([`crate::daemon`]) and the Kubernetes watch ([`crate::kube`]):
//! they record into one [`Metrics`] (verdict events, apply latency, watch restarts and relists,
//! syncs); what the kernel counts (packets, drops, conntrack fill, map fill) is read from the maps
//! pinned under the bpffs directory at each scrape, so a scrape always shows the maps as they are.
//!
//! Endpoints ([`serve`], axum): `GET /metrics` (OpenMetrics text), `GET /healthz` (liveness: the
//! process answers), `GET /readyz` (readiness: the first sync is done and its state is applied to
//! the maps; 503 before).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::abi;
use crate::datapath::Maps;
use crate::events::VerdictLine;
use crate::plan::Plan;

/// Labels of `netcd_verdicts_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `allow`, `deny` or `audit`.
    pub verdict: String,
    /// The rule's stable id; `none` when no rule allowed it (denials, audits), `open` when the door
    /// is open, `fail-closed` for an endpoint whose policy did not fit, `node` for the pod's own
    /// node, `unknown` for a generation an earlier netcd applied.
    pub rule: String,
    /// `new-flow`, or `policy-changed` for an open flow judged again after a policy change.
    pub reason: String,
}

/// Labels of the per-resource watch metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// `namespaces`, `pods`, `configmap`, `networkpolicies`.
    pub resource: String,
}

/// Labels of `netcd_networkpolicy_refused`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `namespace/name` of the object.
    pub policy: String,
    /// What is enforced instead: `last-accepted`, `isolate-its-pods`, `isolate-namespace`.
    pub fallback: String,
}

/// Labels of the apply latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApplyLabels {
    /// What triggered it: `file`, `watch`.
    pub source: String,
}

/// Everything netcd records, and the registry they are exported from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Verdict events read from the ring buffer (new flows judged; allowed ones only when netcd
    /// reports allowed flows).
    pub verdicts: Family<VerdictLabels, Counter>,
    /// Time to apply one new state (in place or a new generation), seconds.
    pub apply_seconds: Family<ApplyLabels, Histogram>,
    /// Time from a Kubernetes watch event arriving to its state written in the maps, seconds.
    pub event_to_enforced_seconds: Histogram,
    /// Applies that failed (the previous state stayed in force).
    pub apply_failures: Counter,
    /// Watch streams that failed and were restarted (connection refused or dropped, 410 Gone, ...).
    pub watch_restarts: Family<ResourceLabels, Counter>,
    /// Full lists (the first one, and each after a 410 Gone or a restart that needs one).
    pub watch_relists: Family<ResourceLabels, Counter>,
    /// Unix time of the last sync applied to the maps (first sync, then each applied change).
    pub last_sync: Gauge<f64, AtomicU64>,
    /// 1 while every watch is connected, 0 while some is failing (the last state stays enforced).
    pub api_server_up: Gauge,
    /// 1 per NetworkPolicy object the importer refuses (`--network-policies`).
    network_policies_refused: Family<RefusedLabels, Gauge>,
    /// The live plan's size: local pods, identities, policy sets, entries.
    plan: PlanGauges,
    health: Health,
}

/// The live plan's size, set after each apply.
#[derive(Debug, Default)]
struct PlanGauges {
    endpoints: Gauge,
    identities: Gauge,
    policy_sets: Gauge,
    policy_entries: Gauge,
    largest_set_entries: Gauge,
    services: Gauge,
    frontends: Gauge,
}

/// What the probes answer.
#[derive(Debug, Default)]
struct Health {
    ready: AtomicBool,
    why_not_ready: Mutex<String>,
}

impl Metrics {
    /// Metrics for a netcd whose maps are pinned under `bpffs` (read at each scrape).
    #[must_use]
    pub fn new(bpffs: PathBuf) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let verdicts = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "netcd_verdicts",
            "Verdict events (new flows, and open flows judged again after a policy change), by door, verdict and the rule that allowed them",
            verdicts.clone(),
        );
        let apply_seconds = Family::<ApplyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register(
            "netcd_apply_seconds",
            "Time to write one new state into the maps (in place or a new generation)",
            apply_seconds.clone(),
        );
        let event_to_enforced_seconds = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "netcd_event_to_enforced_seconds",
            "Time from a Kubernetes watch event arriving to its state written in the maps",
            event_to_enforced_seconds.clone(),
        );
        let apply_failures = Counter::default();
        registry.register(
            "netcd_apply_failures",
            "States that could not be applied (the previous one stayed in force)",
            apply_failures.clone(),
        );
        let watch_restarts = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "netcd_watch_restarts",
            "Kubernetes watch streams that failed and were restarted",
            watch_restarts.clone(),
        );
        let watch_relists = Family::<ResourceLabels, Counter>::default();
        registry.register(
            "netcd_watch_relists",
            "Full lists of a Kubernetes resource (the first, then after 410 Gone or a restart)",
            watch_relists.clone(),
        );
        let last_sync = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "netcd_last_sync_timestamp_seconds",
            "Unix time of the last state applied to the maps",
            last_sync.clone(),
        );
        let api_server_up = Gauge::default();
        registry.register(
            "netcd_api_server_up",
            "1 while every watch of the API server is healthy, 0 while some fails (last state enforced)",
            api_server_up.clone(),
        );
        let network_policies_refused = Family::<RefusedLabels, Gauge>::default();
        registry.register(
            "netcd_networkpolicy_refused",
            "1 per NetworkPolicy object netc's importer refuses, with what is enforced for it instead",
            network_policies_refused.clone(),
        );
        let plan = PlanGauges::default();
        for (name, help, gauge) in [
            ("netcd_endpoints", "Local pods in the live plan", &plan.endpoints),
            (
                "netcd_identities",
                "Peer identities in the live plan (reserved ones included)",
                &plan.identities,
            ),
            (
                "netcd_policy_sets",
                "Policy sets in the live plan (local pods selected alike share one)",
                &plan.policy_sets,
            ),
            (
                "netcd_policy_entries",
                "Policy entries (exact and port ranges) of the live plan, all policy sets",
                &plan.policy_entries,
            ),
            (
                "netcd_policy_set_entries_max",
                "Policy entries of the largest policy set of the live plan",
                &plan.largest_set_entries,
            ),
            (
                "netcd_services",
                "Services whose calls are judged after kube-proxy's translation (0 without --uplink)",
                &plan.services,
            ),
            (
                "netcd_service_frontends",
                "Service frontends (address or node port, protocol, port) in the live plan",
                &plan.frontends,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register_collector(Box::new(MapCollector { bpffs }));
        Arc::new(Metrics {
            registry,
            verdicts,
            apply_seconds,
            event_to_enforced_seconds,
            apply_failures,
            watch_restarts,
            watch_relists,
            last_sync,
            api_server_up,
            network_policies_refused,
            plan,
            health: Health { ready: AtomicBool::new(false), why_not_ready: Mutex::new("starting".into()) },
        })
    }

    /// Count one verdict event (`line`: the event as printed, which names its rule).
    pub fn record_verdict(&self, event: &abi::Event, line: &VerdictLine) {
        let rule = match event.rule {
            abi::RULE_NONE => "none".to_owned(),
            abi::RULE_OPEN => "open".to_owned(),
            abi::RULE_FAIL_CLOSED => "fail-closed".to_owned(),
            abi::RULE_NODE => "node".to_owned(),
            _ => line.rule.as_ref().and_then(|r| r.id.clone()).unwrap_or_else(|| "unknown".to_owned()),
        };
        self.verdicts
            .get_or_create(&VerdictLabels {
                direction: line.direction.into(),
                verdict: line.verdict.into(),
                rule,
                reason: line.reason.into(),
            })
            .inc();
    }

    /// Record one applied state: its duration, and now as the last sync.
    pub fn record_apply(&self, source: &str, took: Duration) {
        self.apply_seconds.get_or_create(&ApplyLabels { source: source.into() }).observe(took.as_secs_f64());
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        self.last_sync.set(now.as_secs_f64());
    }

    /// Record the size of the plan now live.
    pub fn record_plan(&self, plan: &Plan) {
        let mut per_set: BTreeMap<u32, i64> = BTreeMap::new();
        for entry in plan.policy.keys() {
            *per_set.entry(entry.set).or_default() += 1;
        }
        for range in plan.ranges.keys() {
            *per_set.entry(range.entry.set).or_default() += 1;
        }
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.plan.endpoints.set(count(plan.endpoints.len()));
        self.plan.identities.set(i64::from(plan.identity_count));
        self.plan.policy_sets.set(count(per_set.len()));
        self.plan.policy_entries.set(count(plan.policy.len() + plan.ranges.len()));
        self.plan.largest_set_entries.set(per_set.values().copied().max().unwrap_or(0));
        // Without the Service path the plan names no Service (and has no frontend).
        self.plan.services.set(if plan.frontends.is_empty() { 0 } else { count(plan.services.len()) });
        self.plan.frontends.set(count(plan.frontends.len()));
    }

    /// The NetworkPolicy objects refused now (`namespace/name`, fallback), replacing the last set.
    pub fn set_network_policies_refused(&self, refused: impl Iterator<Item = (String, &'static str)>) {
        self.network_policies_refused.clear();
        for (policy, fallback) in refused {
            self.network_policies_refused
                .get_or_create(&RefusedLabels { policy, fallback: fallback.into() })
                .set(1);
        }
    }

    /// Ready from now on (first sync applied).
    pub fn set_ready(&self) {
        self.health.ready.store(true, Ordering::SeqCst);
    }

    /// Not ready, and why (shown by `/readyz`).
    pub fn set_not_ready(&self, why: &str) {
        self.health.ready.store(false, Ordering::SeqCst);
        *self.health.why_not_ready.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = why.into();
    }

    /// Whether `/readyz` answers 200.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.health.ready.load(Ordering::SeqCst)
    }

    /// The OpenMetrics text of every metric (what `/metrics` serves).
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a collector that cannot read the maps writes nothing.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Reads the pinned maps at each scrape: packet counters, drops, conntrack and map fill.
#[derive(Debug)]
struct MapCollector {
    bpffs: PathBuf,
}

/// Conntrack slots counted per scrape before the count is extrapolated: counting reads every slot
/// with one syscall each, and a scrape must stay cheap on a 16-million-entry table.
const CONNTRACK_SLOTS_COUNTED: u32 = 65_536;

/// (map, entries, capacity) of every map that fills: the tables netcd writes and the conntrack.
fn map_fill(maps: &Maps, bpffs: &std::path::Path) -> Result<Vec<(&'static str, u64, u32)>, String> {
    let capacity = |name: &str| {
        aya::maps::MapInfo::from_pin(bpffs.join(name)).map(|i| i.max_entries()).map_err(|e| e.to_string())
    };
    let mut fill = Vec::new();
    for (name, used) in maps.table_counts().map_err(|e| e.to_string())? {
        fill.push((name, used as u64, capacity(name)?));
    }
    let (used, total) = maps.conntrack_used_sampled(CONNTRACK_SLOTS_COUNTED).map_err(|e| e.to_string())?;
    fill.push((abi::MAP_CONNTRACK, used, total));
    Ok(fill)
}

impl Collector for MapCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Nothing pinned yet (or not readable): the kernel-side metrics are absent, not zero.
        let Ok(maps) = Maps::from_pins(&self.bpffs) else { return Ok(()) };
        if let Ok(stats) = maps.stats() {
            let mut family = encoder.encode_descriptor(
                "netcd_packets",
                "Packets judged by the datapath, by result",
                None,
                MetricType::Counter,
            )?;
            for (index, result) in [
                (abi::STAT_PASSED_ESTABLISHED, "passed_established"),
                (abi::STAT_PASSED_NEW, "passed_new"),
                (abi::STAT_DROPPED, "dropped"),
                (abi::STAT_AUDITED, "audited"),
                (abi::STAT_NOT_IP, "not_ip"),
            ] {
                let labels = [("result", result)];
                ConstCounter::new(stats[index as usize]).encode(family.encode_family(&labels)?)?;
            }
            ConstCounter::new(stats[abi::STAT_DROPPED as usize]).encode(encoder.encode_descriptor(
                "netcd_drops",
                "Packets dropped by policy (the sum of deny verdicts, all doors)",
                None,
                MetricType::Counter,
            )?)?;
            ConstCounter::new(stats[abi::STAT_CT_EVICTED as usize]).encode(encoder.encode_descriptor(
                "netcd_conntrack_evictions",
                "Open flows pushed out of a full conntrack set by a new flow",
                None,
                MetricType::Counter,
            )?)?;
            ConstCounter::new(stats[abi::STAT_EVENTS_LOST as usize]).encode(encoder.encode_descriptor(
                "netcd_events_lost",
                "Verdict events lost because the ring buffer was full (netcd_verdicts_total misses them)",
                None,
                MetricType::Counter,
            )?)?;
        }
        if let Ok(config) = maps.config() {
            ConstGauge::new(i64::from(config.generation)).encode(encoder.encode_descriptor(
                "netcd_generation",
                "The policy generation in force",
                None,
                MetricType::Gauge,
            )?)?;
        }
        if let Ok(fill) = map_fill(&maps, &self.bpffs) {
            let mut entries = encoder.encode_descriptor(
                "netcd_map_entries",
                "Entries in each map (all generations; the conntrack's estimated from a sample of its slots)",
                None,
                MetricType::Gauge,
            )?;
            for (name, used, _) in &fill {
                let labels = [("map", *name)];
                ConstGauge::new(i64::try_from(*used).unwrap_or(i64::MAX))
                    .encode(entries.encode_family(&labels)?)?;
            }
            let mut capacity = encoder.encode_descriptor(
                "netcd_map_capacity",
                "Capacity of each map in entries",
                None,
                MetricType::Gauge,
            )?;
            for (name, _, max) in &fill {
                let labels = [("map", *name)];
                ConstGauge::new(i64::from(*max)).encode(capacity.encode_family(&labels)?)?;
            }
            let mut ratio = encoder.encode_descriptor(
                "netcd_map_fill_ratio",
                "Entries / capacity of each map (a full policy map fails endpoints closed; a full conntrack set evicts)",
                None,
                MetricType::Gauge,
            )?;
            for (name, used, max) in &fill {
                let labels = [("map", *name)];
                #[allow(clippy::cast_precision_loss, reason = "a ratio; exact to 2^52 entries")]
                let value = if *max == 0 { 0.0 } else { *used as f64 / f64::from(*max) };
                ConstGauge::new(value).encode(ratio.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` on `addr` from a thread of its own (with its own
/// small tokio runtime, so the synchronous file-inventory daemon can serve too). Returns the
/// address bound (port 0 picks a free one).
///
/// # Errors
/// The address cannot be bound.
pub fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("netcd-metrics".into()).spawn(move || {
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(target: "netcd", "metrics endpoint: {e}");
                    return;
                }
            };
            if let Err(e) = axum::serve(listener, router(metrics)).await {
                tracing::error!(target: "netcd", "metrics endpoint stopped: {e}");
            }
        });
    })?;
    Ok(bound)
}

/// The HTTP routes (also used in tests without a socket).
pub fn router(metrics: Arc<Metrics>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let for_metrics = Arc::clone(&metrics);
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = Arc::clone(&for_metrics);
                async move {
                    let body =
                        tokio::task::spawn_blocking(move || metrics.encode()).await.unwrap_or_default();
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let metrics = Arc::clone(&metrics);
                async move {
                    if metrics.is_ready() {
                        (StatusCode::OK, "ready\n".to_owned())
                    } else {
                        let why = metrics
                            .health
                            .why_not_ready
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .clone();
                        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n"))
                    }
                }
            }),
        )
}
