//! `netcd run`: load the IR and inventory, attach to the local pods' veths, stream verdicts,
//! reload when the files change. Everything here is IO; the decisions are in [`crate::plan`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use netc_ir::{Inventory, Ir};

use crate::abi;
use crate::datapath::{self, AttachMode, Datapath, DatapathError};
use crate::events::{self, Clock};
use crate::metrics::Metrics;
use crate::netif::{NoPodRoute, ifindex, ifname, route_interface};
use crate::plan::{Plan, PlanOptions, PlannedEndpoint};

/// What `netcd run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The IR JSON file (`netc build --emit ir`).
    pub ir: PathBuf,
    /// The inventory (kubectl YAML or JSON).
    pub inventory: PathBuf,
    /// Audit instead of enforce.
    pub audit: bool,
    /// Where to pin.
    pub bpffs: PathBuf,
    /// This node's name; `None`: every pod of the inventory is local.
    pub node: Option<String>,
    /// How to attach.
    pub attach: AttachMode,
    /// Print allowed new flows too.
    pub report_allowed: bool,
    /// The conntrack's capacity in entries ([`default_conntrack_entries`] unless told otherwise);
    /// from [`MIN_CONNTRACK_ENTRIES`] to [`MAX_CONNTRACK_ENTRIES`].
    pub conntrack_entries: u32,
    /// The interfaces by which pod traffic leaves the node (`--uplink`). With at least one, calls
    /// to the inventory's Services are judged after kube-proxy's translation (docs/runtime.md,
    /// "Services"); without, on their frontend at the client's veth.
    pub uplinks: Vec<String>,
    /// The skb mark bit of Service calls (`--service-mark`, [`abi::DEFAULT_SERVICE_MARK`]).
    pub service_mark: u32,
}

impl RunConfig {
    /// The plan options of this configuration.
    fn plan_options(&self) -> PlanOptions {
        PlanOptions { node: self.node.clone(), audit: self.audit, services: !self.uplinks.is_empty() }
    }
}

/// Conntrack entries per online CPU unless told otherwise: kube-proxy's figure for the kernel's
/// own conntrack (nf_conntrack, 32,768 per core).
pub const CONNTRACK_ENTRIES_PER_CPU: u32 = 32_768;
/// The smallest default conntrack: two CPUs' worth. kube-proxy's minimum for nf_conntrack is
/// twice that (131,072), but nf_conntrack also tracks the node's own and NATed connections;
/// netc's holds pod flows only (one entry per door a flow crosses).
pub const MIN_DEFAULT_CONNTRACK_ENTRIES: u32 = 65_536;
/// The largest default conntrack (16 CPUs' worth, 32 MiB): the table is charged to netcd's
/// memory cgroup, and a default must fit the DaemonSet's memory limit on any node. Larger nodes
/// that need more ask for it (`--conntrack-entries`) and raise the limit with it.
pub const MAX_DEFAULT_CONNTRACK_ENTRIES: u32 = 524_288;

/// The conntrack capacity `netcd run` asks for unless told otherwise:
/// [`CONNTRACK_ENTRIES_PER_CPU`] per online CPU, from [`MIN_DEFAULT_CONNTRACK_ENTRIES`] to
/// [`MAX_DEFAULT_CONNTRACK_ENTRIES`] (then rounded up to a power of two). 64 bytes an entry:
/// 4 MiB on a 2-CPU node, 32 MiB from 16 CPUs on.
#[must_use]
pub fn default_conntrack_entries() -> u32 {
    let cpus = aya::util::online_cpus().map_or(1, |c| u32::try_from(c.len()).unwrap_or(u32::MAX));
    CONNTRACK_ENTRIES_PER_CPU
        .saturating_mul(cpus)
        .clamp(MIN_DEFAULT_CONNTRACK_ENTRIES, MAX_DEFAULT_CONNTRACK_ENTRIES)
}
/// The smallest conntrack netcd accepts (256 sets of 4). It is also Cilium's floor for its
/// conntrack tables.
pub const MIN_CONNTRACK_ENTRIES: u32 = 1_024;
/// The largest conntrack netcd accepts (Cilium's ceiling too): 1 GiB of kernel memory, all of it
/// allocated when the map is created.
pub const MAX_CONNTRACK_ENTRIES: u32 = 16_777_216;

/// The conntrack's entries for a capacity asked: the next power of two (a key's set is the low
/// bits of its hash, so the number of sets is a power of two).
#[must_use]
pub fn conntrack_slots(asked: u32) -> u32 {
    asked.checked_next_power_of_two().unwrap_or(1 << 31)
}

/// The capacity of the conntrack pinned under `bpffs`, as the kernel reports it; `None` when no
/// conntrack is pinned there.
///
/// # Errors
/// [`DatapathError::Map`] when a pin exists but is not a readable map.
pub fn pinned_conntrack_entries(bpffs: &Path) -> Result<Option<u32>, DatapathError> {
    let path = bpffs.join(abi::MAP_CONNTRACK);
    if !path.exists() {
        return Ok(None);
    }
    let info = aya::maps::MapInfo::from_pin(&path)
        .map_err(|source| DatapathError::Map { map: abi::MAP_CONNTRACK, source })?;
    Ok(Some(info.max_entries()))
}

/// The conntrack capacity in force after [`load_datapath`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConntrackCapacity {
    /// Entries asked for (`--conntrack-entries`).
    pub asked: u32,
    /// Entries of the map in force, as the kernel reports them.
    pub in_force: u32,
    /// Whether the map in force was pinned already (by an earlier netcd) and was kept, with its
    /// entries, whatever its size.
    pub adopted: bool,
}

impl ConntrackCapacity {
    /// Whether the map in force has the size asked (rounded up to a power of two).
    #[must_use]
    pub fn as_asked(&self) -> bool {
        self.in_force == conntrack_slots(self.asked)
    }

    /// The log line saying what is in force and, when it is not what was asked, why and how to
    /// change it.
    #[must_use]
    pub fn describe(&self, bpffs: &Path) -> String {
        let sets = format!("{} sets of {}", self.in_force / abi::CT_WAYS, abi::CT_WAYS);
        if !self.as_asked() {
            return format!(
                "conntrack: {} entries in force, NOT the {} asked: the conntrack pinned under {} by an earlier netcd is kept, with its open connections ({sets}); a pinned map cannot be resized: to change it, run `netcd detach --bpffs {}` (enforcement stops until netcd runs again) and start netcd again",
                self.in_force,
                self.asked,
                bpffs.display(),
                bpffs.display()
            );
        }
        let rounded = if self.in_force == self.asked {
            String::new()
        } else {
            format!(", {} asked, rounded up to a power of two", self.asked)
        };
        format!(
            "conntrack: {} entries{rounded} ({sets}){}",
            self.in_force,
            if self.adopted { ", the pinned one kept with its open connections" } else { "" }
        )
    }
}

/// Load the datapath pinned under `bpffs` (see [`Datapath::load`]) with a conntrack of
/// `conntrack_entries` (rounded up to a power of two). A conntrack already pinned there (an
/// earlier netcd) is kept as it is, whatever its size: the kernel cannot resize a map, and aya
/// reuses a pinned map without comparing its size with the one asked. The returned
/// [`ConntrackCapacity`] says what is in force; [`ConntrackCapacity::describe`] says it in a log
/// line.
///
/// # Errors
/// [`DaemonError::ConntrackEntries`] for a capacity out of range, or a [`DatapathError`].
pub fn load_datapath(
    bpffs: &Path,
    conntrack_entries: u32,
) -> Result<(Datapath, ConntrackCapacity), DaemonError> {
    if !(MIN_CONNTRACK_ENTRIES..=MAX_CONNTRACK_ENTRIES).contains(&conntrack_entries) {
        return Err(DaemonError::ConntrackEntries(conntrack_entries));
    }
    let adopted = pinned_conntrack_entries(bpffs)?.is_some();
    let datapath = Datapath::load_with_capacities(
        Some(bpffs),
        &[(abi::MAP_CONNTRACK, conntrack_slots(conntrack_entries))],
    )?;
    let in_force = pinned_conntrack_entries(bpffs)?.ok_or_else(|| DatapathError::Map {
        map: abi::MAP_CONNTRACK,
        source: aya::maps::MapError::InvalidName { name: abi::MAP_CONNTRACK.into() },
    })?;
    Ok((datapath, ConntrackCapacity { asked: conntrack_entries, in_force, adopted }))
}

/// Why netcd stopped or refused an input.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The IR is not valid.
    #[error("{path}: {source}")]
    Ir {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: netc_ir::IrError,
    },
    /// The inventory is not valid.
    #[error("{path}: {source}")]
    Inventory {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: netc_ir::InventoryError,
    },
    /// The kernel side failed.
    #[error(transparent)]
    Datapath(#[from] DatapathError),
    /// The file watcher failed.
    #[error("cannot watch the input files: {0}")]
    Watch(#[from] notify::Error),
    /// A conntrack capacity out of range.
    #[error(
        "a conntrack of {0} entries: the capacity must be from {MIN_CONNTRACK_ENTRIES} to {MAX_CONNTRACK_ENTRIES}"
    )]
    ConntrackEntries(u32),
}

/// Read and validate both inputs.
///
/// # Errors
/// [`DaemonError`] naming the file and what is wrong with it.
pub fn read_inputs(ir_path: &Path, inventory_path: &Path) -> Result<(Ir, Inventory), DaemonError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| DaemonError::Read { path: path.to_owned(), source })
    };
    let ir = Ir::from_json(&read(ir_path)?)
        .map_err(|source| DaemonError::Ir { path: ir_path.to_owned(), source })?;
    let inventory = Inventory::from_yaml(&read(inventory_path)?)
        .map_err(|source| DaemonError::Inventory { path: inventory_path.to_owned(), source })?;
    Ok((ir, inventory))
}

/// Endpoint id -> (interface, ifindex) for the plan's endpoints that have one here; and a
/// warning for each that has none.
#[must_use]
pub fn resolve_interfaces(endpoints: &[PlannedEndpoint]) -> (BTreeMap<u32, (String, u32)>, Vec<String>) {
    let mut found = BTreeMap::new();
    let mut warnings = Vec::new();
    for ep in endpoints {
        // An explicit annotation is the operator's word; a route is taken only to a pod's own veth.
        let name = match &ep.interface {
            Some(name) => Ok(name.clone()),
            None => {
                let mut refusal = NoPodRoute::NoRoute;
                let mut routed = None;
                for ip in &ep.ips {
                    match route_interface(*ip) {
                        Ok(dev) => {
                            routed = Some(dev);
                            break;
                        }
                        Err(why @ NoPodRoute::NotAPodInterface { .. }) => refusal = why,
                        Err(NoPodRoute::NoRoute) => {}
                    }
                }
                routed.ok_or(refusal)
            }
        };
        match name.as_deref().ok().and_then(|n| ifindex(n).map(|i| (n.to_owned(), i))) {
            Some(hit) => {
                found.insert(ep.id, hit);
            }
            None => warnings.push(format!(
                "pod {}/{}: no host-side interface found ({}); it is not enforced until one appears",
                ep.namespace,
                ep.name,
                match &name {
                    Ok(n) => format!("interface `{n}` does not exist"),
                    Err(why) => format!(
                        "no `netc.dev/host-interface` annotation and {why}; annotate the pod with its host-side interface"
                    ),
                }
            )),
        }
    }
    (found, warnings)
}

/// Plans by generation, for naming the rules of events from a generation just replaced.
type Plans = Arc<Mutex<(BTreeMap<u32, Arc<Plan>>, HashMap<u32, String>)>>;

fn log(message: &str) {
    tracing::info!(target: "netcd", "{message}");
}

struct State {
    datapath: Datapath,
    attached: BTreeSet<String>,
    plans: Plans,
    /// The inputs and generation now live, to change pods in place (the plan is in `plans`).
    live: Option<(Ir, Inventory, u32)>,
    /// Endpoint id -> (interface, ifindex) of the live generation's enforced endpoints.
    endpoints: BTreeMap<u32, (String, u32)>,
}

impl State {
    /// Pods added, removed or changed with the same IR: change the live generation in place
    /// ([`Plan::update_in_place`]). Gives the inputs back when the change needs a whole new
    /// generation, or when writing it in place failed (a whole generation then repairs it).
    fn update_in_place(
        &mut self,
        config: &RunConfig,
        ir: Ir,
        inventory: Inventory,
    ) -> Result<Option<(Ir, Inventory)>, DaemonError> {
        let start = std::time::Instant::now();
        let options = config.plan_options();
        let Some((live_ir, live_inventory, generation)) = &self.live else {
            return Ok(Some((ir, inventory)));
        };
        if *live_ir != ir {
            return Ok(Some((ir, inventory)));
        }
        let generation = *generation;
        let mut plans = self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Taken out of the registry so that it is not shared and changes without a copy.
        let Some(mut plan) = plans.0.remove(&generation) else { return Ok(Some((ir, inventory))) };
        let delta = Arc::make_mut(&mut plan).update_in_place(&ir, live_inventory, &inventory, &options);
        plans.0.insert(generation, plan);
        let Some(delta) = delta else { return Ok(Some((ir, inventory))) };
        let (interfaces, warnings) = resolve_interfaces(&delta.endpoints);
        for w in &warnings {
            log(w);
        }
        plans.1.extend(interfaces.values().map(|(n, i)| (*i, n.clone())));
        drop(plans);
        let by_id: BTreeMap<u32, u32> = interfaces.iter().map(|(id, (_, index))| (*id, *index)).collect();
        let report = match self.datapath.apply_delta(&delta, &by_id) {
            Ok(report) => report,
            Err(e) => {
                log(&format!("cannot change generation {generation} in place ({e}): applying a new one"));
                return Ok(Some((ir, inventory)));
            }
        };
        let enforced = start.elapsed();
        for id in &delta.endpoints_removed {
            self.endpoints.remove(id);
        }
        self.endpoints.extend(interfaces);
        let wanted: BTreeSet<String> = self.endpoints.values().map(|(n, _)| n.clone()).collect();
        for name in &wanted {
            if self.attached.insert(name.clone()) {
                self.datapath.attach(name, config.attach)?;
            }
        }
        for gone in self.attached.difference(&wanted) {
            if let Err(e) = datapath::detach_interface(&config.bpffs, gone) {
                log(&format!("cannot detach from {gone}: {e}"));
            }
        }
        self.attached = wanted;
        for (id, why) in &report.fail_closed {
            log(&format!("endpoint {id} FAILS CLOSED (all its traffic is dropped): {why}"));
        }
        let interfaces_took = start.elapsed() - enforced;
        log(&format!(
            "pods changed in place in generation {}: {} address(es) written, {} removed; {} endpoint(s) written, {} removed; {} new identit{}; {} new policy set(s); {} map writes{} in {:.2} ms{}",
            report.generation,
            delta.ipcache.len(),
            delta.ipcache_removed.len(),
            delta.endpoints.len(),
            delta.endpoints_removed.len(),
            delta.new_identities,
            if delta.new_identities == 1 { "y" } else { "ies" },
            delta.new_sets,
            report.entries,
            if delta.rejudge { "; open connections are judged again" } else { "" },
            enforced.as_secs_f64() * 1e3,
            if interfaces_took > Duration::from_micros(100) {
                format!(
                    " (then {:.1} ms attaching and detaching interfaces)",
                    interfaces_took.as_secs_f64() * 1e3
                )
            } else {
                String::new()
            }
        ));
        self.live = Some((ir, inventory, generation));
        Ok(None)
    }

    /// Build, attach and apply one IR + inventory. On error, nothing of the running state changed
    /// except possibly new attachments (which pass traffic until their entries exist).
    fn apply(&mut self, config: &RunConfig, ir: Ir, inventory: Inventory) -> Result<(), DaemonError> {
        let Some((ir, inventory)) = self.update_in_place(config, ir, inventory)? else { return Ok(()) };
        let plan = Plan::build(&ir, &inventory, &config.plan_options());
        let (interfaces, warnings) = resolve_interfaces(&plan.endpoints);
        for w in &warnings {
            log(w);
        }
        let by_id: BTreeMap<u32, u32> = interfaces.iter().map(|(id, (_, index))| (*id, *index)).collect();
        let report = self.datapath.apply(&plan, &by_id, config.report_allowed)?;
        // Attach after the entries exist, so a new pod is enforced from its first packet.
        let wanted: BTreeSet<String> = interfaces.values().map(|(n, _)| n.clone()).collect();
        for name in &wanted {
            if !self.attached.contains(name) {
                self.datapath.attach(name, config.attach)?;
            }
        }
        for gone in self.attached.difference(&wanted) {
            if let Err(e) = datapath::detach_interface(&config.bpffs, gone) {
                log(&format!("cannot detach from {gone}: {e}"));
            }
        }
        self.attached = wanted;
        self.endpoints.clone_from(&interfaces);
        for (id, why) in &report.fail_closed {
            if let Some(ep) = plan.endpoints.iter().find(|e| e.id == *id) {
                log(&format!(
                    "pod {}/{} FAILS CLOSED (all its traffic is dropped): {why}",
                    ep.namespace, ep.name
                ));
            }
        }
        log(&format!(
            "generation {} live: {} pods enforced ({} mode, {} attach), {} identities, {} map entries, applied in {:.1} ms",
            report.generation,
            interfaces.len(),
            if config.audit { "audit" } else { "enforce" },
            config.attach.as_str(),
            plan.identity_count,
            report.entries,
            report.total.as_secs_f64() * 1e3
        ));
        let mut plans = self.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        plans.0.insert(report.generation, Arc::new(plan));
        while plans.0.len() > 2 {
            plans.0.pop_first();
        }
        plans.1 = interfaces.values().map(|(n, i)| (*i, n.clone())).collect();
        drop(plans);
        self.live = Some((ir, inventory, report.generation));
        Ok(())
    }
}

/// A running netcd, whatever feeds it (the inventory file, or the Kubernetes watch of
/// [`crate::kube`]): the datapath loaded, a first state applied, verdict events streaming to
/// stdout (and counted in [`Metrics`] when given).
#[derive(Debug)]
pub struct Running {
    state: State,
    stop: Arc<AtomicBool>,
    printer: Option<std::thread::JoinHandle<()>>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("attached", &self.attached).finish_non_exhaustive()
    }
}

impl Running {
    /// Load (or adopt) the datapath pinned under `config.bpffs`, apply `ir` + `inventory`, detach
    /// from interfaces an earlier run attached to whose pods are gone, and start printing events.
    ///
    /// # Errors
    /// A [`DaemonError`] when the datapath cannot be loaded or the first state applied.
    pub fn start(
        config: &RunConfig,
        ir: Ir,
        inventory: Inventory,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Running, DaemonError> {
        if let Some(note) = datapath::ensure_bpffs(&config.bpffs)? {
            log(&note);
        }
        let adopting = config.bpffs.join(abi::MAP_CONFIG).exists();
        let (mut datapath, conntrack) = load_datapath(&config.bpffs, config.conntrack_entries)?;
        if adopting {
            log(&format!(
                "adopting the datapath pinned under {} (generation {} stays in force until the new one is applied)",
                config.bpffs.display(),
                datapath.maps().config()?.generation
            ));
        }
        log(&conntrack.describe(&config.bpffs));
        // The Service path only with a classifier on every way out of the node: attached before
        // the first generation names any frontend.
        datapath.set_service_mark(if config.uplinks.is_empty() { 0 } else { config.service_mark });
        for uplink in &config.uplinks {
            datapath.attach_uplink(uplink, config.attach)?;
        }
        if !config.uplinks.is_empty() {
            log(&format!(
                "Services: calls to the inventory's frontends are judged after kube-proxy's translation (mark {:#x}; uplinks {})",
                config.service_mark,
                config.uplinks.join(", ")
            ));
        }
        let ring = datapath.take_events()?;
        let plans: Plans = Arc::new(Mutex::new((BTreeMap::new(), HashMap::new())));
        // Links pinned by an earlier run are replaced in place by the first apply (no gap); those
        // whose pods are gone are removed after it.
        let previous = datapath::pinned_link_interfaces(&config.bpffs);
        let state = State {
            datapath,
            attached: BTreeSet::new(),
            plans: Arc::clone(&plans),
            live: None,
            endpoints: BTreeMap::new(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut running = Running { state, stop: Arc::clone(&stop), printer: None, metrics: metrics.clone() };
        running.apply(config, ir, inventory, "start")?;
        for gone in
            previous.iter().filter(|i| !running.state.attached.contains(*i) && !config.uplinks.contains(i))
        {
            if let Err(e) = datapath::detach_interface(&config.bpffs, gone) {
                log(&format!("cannot detach from {gone}: {e}"));
            }
        }
        running.printer =
            Some(std::thread::spawn(move || print_events(ring, &plans, &stop, metrics.as_deref())));
        Ok(running)
    }

    /// Apply a new IR + inventory: in place when only pods changed, else as a new generation
    /// flipped in one write. On error the previous state stays in force. `source` names what
    /// asked, for the apply latency metric.
    ///
    /// # Errors
    /// A [`DaemonError`] when the new state could not be applied.
    pub fn apply(
        &mut self,
        config: &RunConfig,
        ir: Ir,
        inventory: Inventory,
        source: &str,
    ) -> Result<(), DaemonError> {
        let start = std::time::Instant::now();
        let result = self.state.apply(config, ir, inventory);
        if let Some(metrics) = &self.metrics {
            match &result {
                Ok(()) => {
                    metrics.record_apply(source, start.elapsed());
                    let plans = self.state.plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some(plan) = self.state.live.as_ref().and_then(|(_, _, g)| plans.0.get(g)) {
                        metrics.record_plan(plan);
                    }
                    drop(plans);
                }
                Err(_) => {
                    metrics.apply_failures.inc();
                }
            }
        }
        result
    }

    /// The IR and inventory in force (`None` before the first apply succeeded).
    #[must_use]
    pub fn live(&self) -> Option<(&Ir, &Inventory)> {
        self.state.live.as_ref().map(|(ir, inventory, _)| (ir, inventory))
    }

    /// Stop printing events; enforcement stays pinned.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(printer) = self.printer.take() {
            let _ = printer.join();
        }
    }
}

/// Run until killed: enforcement stays pinned after the process ends (`netcd detach` removes it).
///
/// # Errors
/// A [`DaemonError`] when the first load fails; later bad inputs are reported and skipped.
pub fn run(config: &RunConfig, metrics: Option<&Arc<Metrics>>) -> Result<(), DaemonError> {
    let (ir, inventory) = read_inputs(&config.ir, &config.inventory)?;
    let mut running = Running::start(config, ir, inventory, metrics.cloned())?;
    if let Some(metrics) = metrics {
        metrics.set_ready();
    }

    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if let Ok(e) = e
            && !matches!(e.kind, notify::EventKind::Access(_))
        {
            let _ = tx.send(e.paths);
        }
    })?;
    let watched: Vec<PathBuf> = [&config.ir, &config.inventory]
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| (*p).clone()))
        .collect();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for p in &watched {
        dirs.insert(p.parent().map_or_else(|| PathBuf::from("."), Path::to_owned));
    }
    for d in &dirs {
        // Directories, not files: editors and `kubectl ... > file` replace files.
        notify::Watcher::watch(&mut watcher, d, notify::RecursiveMode::NonRecursive)?;
    }
    log(&format!("watching {} and {} for changes", config.ir.display(), config.inventory.display()));
    while let Ok(paths) = rx.recv() {
        let ours = |paths: &[PathBuf]| {
            paths.iter().any(|p| watched.iter().any(|w| p == w || p.file_name() == w.file_name()))
        };
        if !ours(&paths) {
            continue;
        }
        // Let a burst of writes settle, then read once.
        std::thread::sleep(Duration::from_millis(150));
        while rx.try_recv().is_ok() {}
        match read_inputs(&config.ir, &config.inventory) {
            Ok((ir, inventory)) => {
                if let Err(e) = running.apply(config, ir, inventory, "file") {
                    log(&format!("reload failed, the previous state stays in force: {e}"));
                }
            }
            Err(e) => log(&format!("rejected the new input, the previous state stays in force: {e}")),
        }
    }
    running.stop();
    Ok(())
}

fn print_events(
    mut ring: aya::maps::RingBuf<aya::maps::MapData>,
    plans: &Plans,
    stop: &AtomicBool,
    metrics: Option<&Metrics>,
) {
    let clock = Clock::now();
    let fd = ring.as_raw_fd();
    let stdout = std::io::stdout();
    while !stop.load(Ordering::Relaxed) {
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd and the ring buffer fd stays open while `ring` lives.
        unsafe { libc::poll(&raw mut pfd, 1, 200) };
        let mut lines = Vec::new();
        {
            let guard = plans.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            while let Some(item) = ring.next() {
                if let Some(event) = abi::Event::from_bytes(&item) {
                    let interface = guard.1.get(&event.ifindex).cloned().or_else(|| ifname(event.ifindex));
                    let line = events::line(&event, &clock, &guard.0, interface.as_deref());
                    if let Some(metrics) = metrics {
                        metrics.record_verdict(&event, &line);
                    }
                    lines.push(serde_json::to_string(&line).unwrap_or_default());
                }
            }
        }
        if !lines.is_empty() {
            let mut out = stdout.lock();
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
        }
    }
}
