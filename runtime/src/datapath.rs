//! The kernel side: load the C datapath with aya, write plans into its maps as generations,
//! attach it to interfaces, pin it, run it on crafted packets.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle};
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType, TestRun, TestRunOptions};
use aya::{Ebpf, EbpfLoader};

use crate::abi::{
    self, CidrKeyData, Config, CtKey, CtSlot, CtValue, Endpoint, EndpointKey, Frontend, FrontendKey, IpKey,
    PolicyKey, PolicyValue, RangeKeyData,
};
use std::net::IpAddr;

use crate::plan::{Delta, Plan, PolicyEntry, RangeEntry};

/// The default bpffs directory netcd pins under.
pub const DEFAULT_BPFFS_DIR: &str = "/sys/fs/bpf/netc";

/// tc priority and handle of netc's filters on the clsact/netlink path (fixed, so a restarted
/// netcd replaces its own filter in place instead of adding a second one).
const NETLINK_PRIORITY: u16 = 0x4e43;
const NETLINK_HANDLE: TcHandle = TcHandle::new(0, 1);

/// How programs are attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// TCX links (kernel >= 6.6), pinned under `<bpffs>/links/`.
    Tcx,
    /// A clsact qdisc and tc filters through netlink (any kernel); filters outlive the process.
    Netlink,
}

impl AttachMode {
    /// The name used on the command line and in `status`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AttachMode::Tcx => "tcx",
            AttachMode::Netlink => "netlink",
        }
    }
}

/// What went wrong in the kernel part.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// The object could not be loaded (verifier, permissions, BTF).
    #[error(
        "cannot load the netc datapath: {0} (netcd needs root or CAP_BPF+CAP_NET_ADMIN, and a kernel with BTF)"
    )]
    Load(#[from] aya::EbpfError),
    /// A program could not be loaded or attached.
    #[error("program {program}: {source}")]
    Program {
        /// The program name.
        program: &'static str,
        /// The cause.
        source: ProgramError,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// The map name.
        map: &'static str,
        /// The cause.
        source: MapError,
    },
    /// Attaching to or detaching from an interface failed.
    #[error("interface {interface}: {message}")]
    Interface {
        /// The interface name.
        interface: String,
        /// What happened.
        message: String,
    },
    /// A file system operation on the bpffs directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A map pinned by an earlier netcd has another layout than this netcd's.
    #[error(
        "{path} was pinned by a netcd with another map layout ({found}; this netcd needs {wanted}): run `netcd detach --bpffs {dir}` (enforcement stops until netcd runs again) and start netcd again",
        dir = path.parent().map_or_else(String::new, |d| d.display().to_string())
    )]
    StaleLayout {
        /// The pinned map.
        path: PathBuf,
        /// What it is.
        found: String,
        /// What this netcd needs.
        wanted: String,
    },
    /// No pinned netc state where it was looked for.
    #[error("no netc datapath is pinned under {0} (is netcd running, or was it given another --bpffs?)")]
    NotPinned(PathBuf),
    /// A change in place was asked of a datapath this process has applied no generation to.
    #[error("no generation of this process is live to change in place")]
    NotLive,
    /// A global map (ipcache, CIDRs) is full: the new state cannot be applied at all.
    #[error("map {map} is full ({entries} entries wanted); the previous state stays in force")]
    Full {
        /// The map name.
        map: &'static str,
        /// How many entries the plan needed.
        entries: usize,
    },
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> DatapathError {
    move |source| DatapathError::Map { map, source }
}

fn prog_err(program: &'static str) -> impl FnOnce(ProgramError) -> DatapathError {
    move |source| DatapathError::Program { program, source }
}

/// Whether a map error means "no room" (E2BIG from a full hash, ENOSPC/ENOMEM).
/// Refuse maps pinned by a netcd whose layout differs (aya would reuse them as they are, and the
/// datapath would then read them wrongly): the conntrack is an array of `CtSlot`s, the config a
/// `Config`. Loading checks it; `netcd status` too, to say so instead of misreading them.
///
/// # Errors
/// [`DatapathError::StaleLayout`] naming the map and the fix, or a map error.
pub fn check_pinned_layout(dir: &Path) -> Result<(), DatapathError> {
    let wanted = [
        (abi::MAP_CONFIG, std::mem::size_of::<Config>()),
        (abi::MAP_CONNTRACK, std::mem::size_of::<CtSlot>()),
    ];
    for (name, value_size) in wanted {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let info = aya::maps::MapInfo::from_pin(&path).map_err(map_err(name))?;
        let kind = info.map_type().map_err(map_err(name))?;
        let found_size = usize::try_from(info.value_size()).unwrap_or(usize::MAX);
        if kind != aya::maps::MapType::Array || found_size != value_size {
            return Err(DatapathError::StaleLayout {
                path,
                found: format!("{kind:?} of {found_size}-byte values"),
                wanted: format!("Array of {value_size}-byte values"),
            });
        }
    }
    Ok(())
}

/// A random, non-zero conntrack hash seed.
fn random_seed() -> Result<u64, DatapathError> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|source| DatapathError::Io { path: path.to_owned(), source })?;
    Ok(u64::from_ne_bytes(bytes) | 1)
}

/// The loop the two policy maps share (they differ in key type and insert signature): each
/// (set, key, rule) is inserted unless its set failed already; a full map fails the set
/// (`failed_sets` with why, `failed` for this write), any other error stops. Keys written go to
/// `keys`.
fn insert_set_entries<K: Copy>(
    entries: impl Iterator<Item = (u32, K, u32)>,
    mut insert: impl FnMut(&K, PolicyValue) -> Result<(), MapError>,
    map: &'static str,
    keys: &mut Vec<K>,
    failed_sets: &mut BTreeMap<u32, String>,
    failed: &mut BTreeSet<u32>,
) -> Result<(), DatapathError> {
    for (set, key, rule) in entries {
        if failed_sets.contains_key(&set) {
            continue;
        }
        match insert(&key, PolicyValue { rule, pad: 0 }) {
            Ok(()) => keys.push(key),
            Err(e) if is_full(&e) => {
                failed_sets.insert(set, format!("{map} is full"));
                failed.insert(set);
            }
            Err(e) => return Err(map_err(map)(e)),
        }
    }
    Ok(())
}

fn is_full(e: &MapError) -> bool {
    matches!(e, MapError::SyscallError(s) if matches!(s.io_error.raw_os_error(), Some(libc::E2BIG | libc::ENOSPC | libc::ENOMEM)))
}

/// A removal of a key that is not there is no error here.
fn ignore_missing(result: Result<(), MapError>) -> Result<(), MapError> {
    match result {
        Err(MapError::KeyNotFound) => Ok(()),
        other => other,
    }
}

/// The number of entries a hash map or trie holds at most.
fn capacity(map: &Map) -> Option<u32> {
    match map {
        Map::HashMap(data) | Map::LpmTrie(data) => data.info().ok().map(|i| i.max_entries()),
        _ => None,
    }
}

fn policy_key(generation: u32, entry: &PolicyEntry) -> PolicyKey {
    PolicyKey {
        generation,
        set: entry.set,
        identity: entry.identity,
        direction: entry.direction,
        protocol: entry.protocol,
        port: entry.port.to_be(),
    }
}

fn range_key(generation: u32, range: &RangeEntry) -> Key<RangeKeyData> {
    let entry = &range.entry;
    Key::new(
        abi::RANGE_KEY_FIXED_BITS + u32::from(range.bits),
        RangeKeyData {
            generation,
            set: entry.set,
            identity: entry.identity,
            direction: entry.direction,
            protocol: entry.protocol,
            port: entry.port.to_be(),
        },
    )
}

/// The maps of a datapath, owned (taken from a loaded object or opened from pins).
#[derive(Debug)]
pub struct Maps {
    config: Map,
    endpoints: Map,
    ipcache: Map,
    cidrs: Map,
    policy: Map,
    ranges: Map,
    conntrack: Map,
    rule_counters: Map,
    stats: Map,
    frontends: Map,
}

impl Maps {
    fn take(ebpf: &mut Ebpf) -> Result<(Maps, Map), DatapathError> {
        let mut take = |name: &'static str| {
            ebpf.take_map(name).ok_or_else(|| DatapathError::Map {
                map: name,
                source: MapError::InvalidName { name: name.into() },
            })
        };
        Ok((
            Maps {
                config: take(abi::MAP_CONFIG)?,
                endpoints: take(abi::MAP_ENDPOINTS)?,
                ipcache: take(abi::MAP_IPCACHE)?,
                cidrs: take(abi::MAP_CIDRS)?,
                policy: take(abi::MAP_POLICY)?,
                ranges: take(abi::MAP_PORT_RANGES)?,
                conntrack: take(abi::MAP_CONNTRACK)?,
                rule_counters: take(abi::MAP_RULE_COUNTERS)?,
                stats: take(abi::MAP_STATS)?,
                frontends: take(abi::MAP_FRONTENDS)?,
            },
            take(abi::MAP_EVENTS)?,
        ))
    }

    /// Open the maps pinned under `dir` (for `netcd status` and `detach`).
    ///
    /// # Errors
    /// [`DatapathError::NotPinned`] when nothing is pinned there.
    pub fn from_pins(dir: &Path) -> Result<Maps, DatapathError> {
        if !dir.join(abi::MAP_CONFIG).exists() {
            return Err(DatapathError::NotPinned(dir.to_owned()));
        }
        let open = |name: &'static str| -> Result<Map, DatapathError> {
            let data = MapData::from_pin(dir.join(name)).map_err(map_err(name))?;
            Map::from_map_data(data).map_err(map_err(name))
        };
        Ok(Maps {
            config: open(abi::MAP_CONFIG)?,
            endpoints: open(abi::MAP_ENDPOINTS)?,
            ipcache: open(abi::MAP_IPCACHE)?,
            cidrs: open(abi::MAP_CIDRS)?,
            policy: open(abi::MAP_POLICY)?,
            ranges: open(abi::MAP_PORT_RANGES)?,
            conntrack: open(abi::MAP_CONNTRACK)?,
            rule_counters: open(abi::MAP_RULE_COUNTERS)?,
            stats: open(abi::MAP_STATS)?,
            frontends: open(abi::MAP_FRONTENDS)?,
        })
    }

    /// The live configuration (generation 0: nothing applied yet).
    ///
    /// # Errors
    /// A map error.
    pub fn config(&self) -> Result<Config, DatapathError> {
        let a: Array<&MapData, Config> = Array::try_from(&self.config).map_err(map_err(abi::MAP_CONFIG))?;
        a.get(&0, 0).map_err(map_err(abi::MAP_CONFIG))
    }

    fn set_config(&mut self, config: Config) -> Result<(), DatapathError> {
        let mut a: Array<&mut MapData, Config> =
            Array::try_from(&mut self.config).map_err(map_err(abi::MAP_CONFIG))?;
        a.set(0, config, 0).map_err(map_err(abi::MAP_CONFIG))
    }

    /// Endpoints of the live generation: ifindex -> endpoint.
    ///
    /// # Errors
    /// A map error.
    pub fn live_endpoints(&self) -> Result<BTreeMap<u32, Endpoint>, DatapathError> {
        let generation = self.config()?.generation;
        let m: HashMap<&MapData, EndpointKey, Endpoint> =
            HashMap::try_from(&self.endpoints).map_err(map_err(abi::MAP_ENDPOINTS))?;
        let mut out = BTreeMap::new();
        for item in &m {
            let (k, v) = item.map_err(map_err(abi::MAP_ENDPOINTS))?;
            if k.generation == generation {
                out.insert(k.ifindex, v);
            }
        }
        Ok(out)
    }

    /// Entries per map (all generations): (name, count).
    ///
    /// # Errors
    /// A map error.
    pub fn counts(&self) -> Result<Vec<(&'static str, usize)>, DatapathError> {
        let mut counts = self.table_counts()?;
        counts.push((abi::MAP_CONNTRACK, {
            let slots: Array<&MapData, CtSlot> =
                Array::try_from(&self.conntrack).map_err(map_err(abi::MAP_CONNTRACK))?;
            slots.iter().filter(|slot| slot.as_ref().is_ok_and(|s| s.key.family != 0)).count()
        }));
        Ok(counts)
    }

    /// Conntrack slots in use, counted on at most `sample` slots spread evenly over the table and
    /// scaled to all of it (a flow's set is chosen by hash, so an even spread is a fair sample;
    /// exact when `sample` covers the table), and the table's size. One syscall per slot read:
    /// this is how `/metrics` stays cheap on a large conntrack.
    ///
    /// # Errors
    /// A map error.
    pub fn conntrack_used_sampled(&self, sample: u32) -> Result<(u64, u32), DatapathError> {
        let slots: Array<&MapData, CtSlot> =
            Array::try_from(&self.conntrack).map_err(map_err(abi::MAP_CONNTRACK))?;
        let total = slots.len();
        let step = total.div_ceil(sample.max(1)).max(1);
        let (mut read, mut used) = (0u64, 0u64);
        for index in (0..total).step_by(step as usize) {
            let slot = slots.get(&index, 0).map_err(map_err(abi::MAP_CONNTRACK))?;
            read += 1;
            used += u64::from(slot.key.family != 0);
        }
        Ok(((used * u64::from(total)).checked_div(read).unwrap_or(0), total))
    }

    /// Entries per map, the conntrack left out (see [`Maps::counts`]).
    ///
    /// # Errors
    /// A map error.
    pub fn table_counts(&self) -> Result<Vec<(&'static str, usize)>, DatapathError> {
        fn count<K: aya::Pod, V: aya::Pod>(map: &Map, name: &'static str) -> Result<usize, DatapathError> {
            let m: HashMap<&MapData, K, V> = HashMap::try_from(map).map_err(map_err(name))?;
            Ok(m.keys().count())
        }
        fn count_lpm<K: aya::Pod, V: aya::Pod>(
            map: &Map,
            name: &'static str,
        ) -> Result<usize, DatapathError> {
            let m: LpmTrie<&MapData, K, V> = LpmTrie::try_from(map).map_err(map_err(name))?;
            Ok(m.keys().count())
        }
        Ok(vec![
            (abi::MAP_ENDPOINTS, count::<EndpointKey, Endpoint>(&self.endpoints, abi::MAP_ENDPOINTS)?),
            (abi::MAP_IPCACHE, count::<IpKey, u32>(&self.ipcache, abi::MAP_IPCACHE)?),
            (abi::MAP_CIDRS, count_lpm::<CidrKeyData, u32>(&self.cidrs, abi::MAP_CIDRS)?),
            (abi::MAP_POLICY, count::<PolicyKey, PolicyValue>(&self.policy, abi::MAP_POLICY)?),
            (
                abi::MAP_PORT_RANGES,
                count_lpm::<RangeKeyData, PolicyValue>(&self.ranges, abi::MAP_PORT_RANGES)?,
            ),
            (abi::MAP_FRONTENDS, count::<FrontendKey, Frontend>(&self.frontends, abi::MAP_FRONTENDS)?),
        ])
    }

    /// The datapath's packet counters, summed over CPUs, indexed by `abi::STAT_*`.
    ///
    /// # Errors
    /// A map error.
    pub fn stats(&self) -> Result<Vec<u64>, DatapathError> {
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(&self.stats).map_err(map_err(abi::MAP_STATS))?;
        (0..abi::STAT_COUNT)
            .map(|i| a.get(&i, 0).map(|v| v.iter().sum()).map_err(map_err(abi::MAP_STATS)))
            .collect()
    }

    /// New flows allowed by rule `index`, summed over CPUs.
    ///
    /// # Errors
    /// A map error.
    pub fn rule_counter(&self, index: u32) -> Result<u64, DatapathError> {
        let a: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(&self.rule_counters).map_err(map_err(abi::MAP_RULE_COUNTERS))?;
        a.get(&index, 0).map(|v| v.iter().sum()).map_err(map_err(abi::MAP_RULE_COUNTERS))
    }

    /// The conntrack entry for `key`, if any (found in its set as the datapath finds it).
    ///
    /// # Errors
    /// A map error.
    pub fn conntrack(&self, key: &CtKey) -> Result<Option<CtValue>, DatapathError> {
        let config = self.config()?;
        let slots: Array<&MapData, CtSlot> =
            Array::try_from(&self.conntrack).map_err(map_err(abi::MAP_CONNTRACK))?;
        if config.ct_sets == 0 {
            return Ok(None);
        }
        let first = abi::ct_first_slot(key, config.ct_sets, config.ct_seed);
        for way in 0..abi::CT_WAYS {
            let slot = slots.get(&(first + way), 0).map_err(map_err(abi::MAP_CONNTRACK))?;
            if slot.seq % 2 == 0 && slot.key == *key {
                return Ok(Some(slot.value));
            }
        }
        Ok(None)
    }

    /// Give the conntrack its number of sets (from its size) and, the first time, a random hash
    /// seed, in `netc_config`; the seed of maps pinned earlier is kept, or their flows would be
    /// looked for in the wrong sets. Returns the conntrack's slots.
    fn init_conntrack(&mut self) -> Result<u32, DatapathError> {
        let slots = match &self.conntrack {
            Map::Array(data) => data.info().map_err(map_err(abi::MAP_CONNTRACK))?.max_entries(),
            _ => {
                return Err(map_err(abi::MAP_CONNTRACK)(MapError::InvalidName {
                    name: abi::MAP_CONNTRACK.into(),
                }));
            }
        };
        // A power of two of sets: a key's set is the low bits of its hash.
        let sets = (slots / abi::CT_WAYS).checked_ilog2().map_or(0, |bits| 1u32 << bits);
        let mut config = self.config()?;
        let seed = config.ct_seed;
        if config.ct_sets != sets || seed == 0 {
            config.ct_sets = sets;
            if seed == 0 {
                config.ct_seed = random_seed()?;
            }
            self.set_config(config)?;
        }
        Ok(sets * abi::CT_WAYS)
    }
}

/// The keys written for one generation, so the old one can be deleted without a scan.
#[derive(Default)]
struct Written {
    generation: u32,
    endpoints: Vec<EndpointKey>,
    ipcache: Vec<IpKey>,
    cidrs: Vec<Key<CidrKeyData>>,
    policy: Vec<PolicyKey>,
    ranges: Vec<Key<RangeKeyData>>,
    frontends: Vec<FrontendKey>,
    /// Endpoint id -> the ifindex its entry is keyed by, for changes in place.
    interfaces: BTreeMap<u32, u32>,
    /// Endpoint id -> its policy set, for the endpoints with an interface.
    sets: BTreeMap<u32, u32>,
    /// Policy sets whose entries did not fit, and why: their endpoints are written failed
    /// closed.
    failed: BTreeMap<u32, String>,
}

impl Written {
    /// (endpoint id, why) for the endpoints with an interface whose set is one of `sets`.
    fn failed_endpoints(&self, sets: &BTreeSet<u32>) -> Vec<(u32, String)> {
        self.sets
            .iter()
            .filter(|(_, set)| sets.contains(set))
            .filter_map(|(ep, set)| self.failed.get(set).map(|why| (*ep, why.clone())))
            .collect()
    }
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Written")
            .field("generation", &self.generation)
            .field("endpoints", &self.endpoints.len())
            .field("ipcache", &self.ipcache.len())
            .field("cidrs", &self.cidrs.len())
            .field("policy", &self.policy.len())
            .field("ranges", &self.ranges.len())
            .field("frontends", &self.frontends.len())
            .finish()
    }
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The generation now live.
    pub generation: u32,
    /// Map entries written.
    pub entries: usize,
    /// Endpoints whose entries did not fit: they drop everything (or audit it) until a later
    /// apply fits. (endpoint id, reason)
    pub fail_closed: Vec<(u32, String)>,
    /// Time from the first write to the flip (for a change in place: to the last write that
    /// changes what a packet sees, before the entries nothing reaches any more are deleted).
    pub to_flip: Duration,
    /// Time including the removal of the previous generation (or of the unreachable entries).
    pub total: Duration,
    /// Whether established flows are judged again on their next packet (a new generation or a
    /// new epoch).
    pub rejudge: bool,
}

/// A loaded datapath: the two classifiers and their maps.
#[derive(Debug)]
pub struct Datapath {
    ebpf: Ebpf,
    maps: Maps,
    events: Option<Map>,
    pin_dir: Option<PathBuf>,
    live: Option<Written>,
    /// Links kept alive by this process when nothing is pinned (tests).
    unpinned_links: Vec<SchedClassifierLink>,
    /// The skb mark bit of Service calls (`netc_config.service_mark`); 0: Services are judged
    /// on their frontend.
    service_mark: u32,
}

impl Datapath {
    /// Load the datapath. With `pin_dir`, maps and programs are pinned there; maps already pinned
    /// there (a previous netcd) are reused as they are, so enforcement continues across restarts.
    /// Without, everything is private to this process (tests, benchmarks).
    ///
    /// # Errors
    /// [`DatapathError`] when loading or pinning fails.
    pub fn load(pin_dir: Option<&Path>) -> Result<Datapath, DatapathError> {
        Datapath::load_with_capacities(pin_dir, &[])
    }

    /// [`Datapath::load`] with some maps' capacities changed (`(map name, max entries)`), to
    /// test what happens when a map is full.
    ///
    /// # Errors
    /// As [`Datapath::load`].
    pub fn load_with_capacities(
        pin_dir: Option<&Path>,
        capacities: &[(&str, u32)],
    ) -> Result<Datapath, DatapathError> {
        Datapath::load_object(
            abi::DATAPATH_OBJECT,
            &[abi::PROG_FROM_POD, abi::PROG_TO_POD, abi::PROG_UPLINK],
            pin_dir,
            capacities,
        )
    }

    /// The benchmark object (`ebpf/bench.c`): the datapath (`abi::PROG_UPLINK` included) plus `abi::PROG_BENCH_NEW_FLOWS`,
    /// `abi::PROG_BENCH_CONNTRACK_INSERT` and `abi::PROG_BENCH_TABLE_TOUCH`, with some maps' capacities changed as in
    /// [`Datapath::load_with_capacities`].
    ///
    /// # Errors
    /// As [`Datapath::load`].
    pub fn load_bench(capacities: &[(&str, u32)]) -> Result<Datapath, DatapathError> {
        Datapath::load_object(
            abi::BENCH_OBJECT,
            &[
                abi::PROG_FROM_POD,
                abi::PROG_TO_POD,
                abi::PROG_UPLINK,
                abi::PROG_BENCH_NEW_FLOWS,
                abi::PROG_BENCH_CONNTRACK_INSERT,
                abi::PROG_BENCH_TABLE_TOUCH,
            ],
            None,
            capacities,
        )
    }

    fn load_object(
        object: &[u8],
        programs: &[&'static str],
        pin_dir: Option<&Path>,
        capacities: &[(&str, u32)],
    ) -> Result<Datapath, DatapathError> {
        if let Some(dir) = pin_dir {
            ensure_bpffs(dir)?;
        }
        let mut loader = EbpfLoader::new();
        for (name, size) in capacities {
            loader.map_max_entries(name, *size);
        }
        if let Some(dir) = pin_dir {
            std::fs::create_dir_all(dir.join("links"))
                .map_err(|source| DatapathError::Io { path: dir.join("links"), source })?;
            for name in abi::ALL_MAPS {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        if let Some(dir) = pin_dir {
            check_pinned_layout(dir)?;
        }
        let mut ebpf = loader.load(object)?;
        for &name in programs {
            let program: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| prog_err(name)(ProgramError::NotLoaded))?
                .try_into()
                .map_err(prog_err(name))?;
            program.load().map_err(prog_err(name))?;
            if let Some(dir) = pin_dir {
                let path = dir.join(name);
                // A pin from an earlier netcd names the old program; links keep what they run.
                let _ = std::fs::remove_file(&path);
                program
                    .pin(&path)
                    .map_err(|e| DatapathError::Io { path, source: io::Error::other(e.to_string()) })?;
            }
        }
        let (mut maps, events) = Maps::take(&mut ebpf)?;
        maps.init_conntrack()?;
        Ok(Datapath {
            ebpf,
            maps,
            events: Some(events),
            pin_dir: pin_dir.map(Path::to_owned),
            live: None,
            unpinned_links: Vec::new(),
            service_mark: abi::DEFAULT_SERVICE_MARK,
        })
    }

    /// The maps.
    #[must_use]
    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// Take the verdict event ring buffer (once).
    ///
    /// # Errors
    /// A map error when it was taken already or has the wrong type.
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, DatapathError> {
        let map = self.events.take().ok_or_else(|| {
            map_err(abi::MAP_EVENTS)(MapError::InvalidName { name: abi::MAP_EVENTS.into() })
        })?;
        RingBuf::try_from(map).map_err(map_err(abi::MAP_EVENTS))
    }

    /// Write `plan` as a new generation beside the live one, flip to it in one map write, then
    /// delete the old generation. `interfaces` maps endpoint ids to the ifindex of their
    /// host-side veth; endpoints without one are left out. Flows judged under the old generation
    /// are judged again by the datapath on their next packet.
    ///
    /// # Errors
    /// [`DatapathError::Full`] when the addresses do not fit (nothing changes), or a map error.
    pub fn apply(
        &mut self,
        plan: &Plan,
        interfaces: &BTreeMap<u32, u32>,
        report_allowed: bool,
    ) -> Result<ApplyReport, DatapathError> {
        let start = Instant::now();
        let config = self.maps.config()?;
        let old = config.generation;
        let generation = if old == u32::MAX { 1 } else { old + 1 };
        let mut written = Written { generation, ..Written::default() };
        let result = self.write_generation(plan, interfaces, &mut written);
        let fail_closed = match result {
            Ok(f) => f,
            Err(e) => {
                self.delete(&written);
                return Err(e);
            }
        };
        let mut flags = if report_allowed { abi::CONFIG_REPORT_ALLOWED } else { 0 };
        if !written.frontends.is_empty() {
            flags |= abi::CONFIG_SERVICES;
        }
        self.maps.set_config(Config { generation, flags, service_mark: self.service_mark, ..config })?;
        let to_flip = start.elapsed();
        let entries = written.endpoints.len()
            + written.ipcache.len()
            + written.cidrs.len()
            + written.policy.len()
            + written.ranges.len()
            + written.frontends.len();
        match self.live.take() {
            Some(previous) if previous.generation == old => self.delete(&previous),
            _ => self.delete_other_generations(generation)?,
        }
        self.live = Some(written);
        Ok(ApplyReport { generation, entries, fail_closed, to_flip, total: start.elapsed(), rejudge: true })
    }

    /// Change the live generation in place ([`crate::plan::Plan::update_in_place`]), in the
    /// order that keeps every packet's view whole: new policy entries (nothing reaches them
    /// yet), endpoints (one write switches an endpoint to another policy set, or gives an
    /// endpoint the kinds of lookups a new identity's entries need), pod addresses, removed
    /// addresses and endpoints, the epoch when flows must be judged again, and last the entries
    /// nothing reaches any more. `interfaces` maps the ids of the delta's new
    /// endpoints to their ifindex; endpoints already live keep theirs. Endpoints whose new entries
    /// do not fit fail closed, as in [`Datapath::apply`].
    ///
    /// # Errors
    /// [`DatapathError::Full`] (before anything is written) when the addresses or endpoints may
    /// not fit, [`DatapathError::NotLive`] when this process applied no generation yet, or a map
    /// error (the live state may then be partly changed: apply a whole generation).
    pub fn apply_delta(
        &mut self,
        delta: &Delta,
        interfaces: &BTreeMap<u32, u32>,
    ) -> Result<ApplyReport, DatapathError> {
        let start = Instant::now();
        let config = self.maps.config()?;
        let mut live = match self.live.take() {
            Some(live) if live.generation == config.generation => live,
            other => {
                self.live = other;
                return Err(DatapathError::NotLive);
            }
        };
        let result = self.write_delta(delta, interfaces, config, &mut live);
        let in_force = start.elapsed();
        let removed =
            if result.is_ok() { self.remove_entries(delta, config.generation, &mut live) } else { 0 };
        self.live = Some(live);
        let (entries, fail_closed) = result?;
        Ok(ApplyReport {
            generation: config.generation,
            entries: entries + removed,
            fail_closed,
            to_flip: in_force,
            total: start.elapsed(),
            rejudge: delta.rejudge,
        })
    }

    fn write_delta(
        &mut self,
        delta: &Delta,
        interfaces: &BTreeMap<u32, u32>,
        config: Config,
        live: &mut Written,
    ) -> Result<(usize, Vec<(u32, String)>), DatapathError> {
        let generation = config.generation;
        for (map, name, live_count, added) in [
            (&self.maps.ipcache, abi::MAP_IPCACHE, live.ipcache.len(), delta.ipcache.len()),
            (&self.maps.endpoints, abi::MAP_ENDPOINTS, live.endpoints.len(), delta.endpoints.len()),
        ] {
            if capacity(map).is_some_and(|c| live_count + added > c as usize) {
                return Err(DatapathError::Full { map: name, entries: live_count + added });
            }
        }
        let mut at = live.interfaces.clone();
        at.extend(interfaces.iter().filter(|(id, _)| delta.endpoints.iter().any(|e| e.id == **id)));
        let mut failed = BTreeSet::new();
        let entries_before = live.policy.len() + live.ranges.len();
        self.write_policy(delta.policy.iter().map(|(k, v)| (k, v)), live, &mut failed)?;
        self.write_ranges(delta.ranges.iter().map(|(k, v)| (k, v)), live, &mut failed)?;
        let mut writes = live.policy.len() + live.ranges.len() - entries_before;
        // Endpoints: those of the delta, and any that failed closed just now. Before the
        // addresses: an endpoint whose doors gain kinds of lookups for a new identity must have
        // them before an address maps to that identity.
        let mut endpoints: HashMap<&mut MapData, EndpointKey, Endpoint> =
            HashMap::try_from(&mut self.maps.endpoints).map_err(map_err(abi::MAP_ENDPOINTS))?;
        let mut rewritten = BTreeSet::new();
        for ep in &delta.endpoints {
            let Some(ifindex) = at.get(&ep.id) else { continue };
            let key = EndpointKey { generation, ifindex: *ifindex };
            let mut flags = ep.flags;
            if live.failed.contains_key(&ep.set) {
                flags |= abi::EP_FAIL_CLOSED;
                failed.insert(ep.set); // reported below, with the set's other endpoints
            }
            endpoints
                .insert(key, Endpoint { id: ep.id, flags, door: ep.doors, set: ep.set }, 0)
                .map_err(map_err(abi::MAP_ENDPOINTS))?;
            if live.interfaces.insert(ep.id, *ifindex).is_none() && !live.endpoints.contains(&key) {
                live.endpoints.push(key);
            }
            live.sets.insert(ep.id, ep.set);
            rewritten.insert(*ifindex);
            writes += 1;
        }
        // Endpoints of a set that failed (just now, or before for the delta's endpoints).
        let fail_closed = live.failed_endpoints(&failed);
        for (id, _) in &fail_closed {
            let Some(ifindex) = live.interfaces.get(id) else { continue };
            let key = EndpointKey { generation, ifindex: *ifindex };
            if !rewritten.contains(ifindex)
                && let Ok(mut value) = endpoints.get(&key, 0)
            {
                value.flags |= abi::EP_FAIL_CLOSED;
                endpoints.insert(key, value, 0).map_err(map_err(abi::MAP_ENDPOINTS))?;
                writes += 1;
            }
        }
        self.write_ipcache(delta.ipcache.iter().map(|(k, v)| (k, v)), generation, live)?;
        writes += delta.ipcache.len();
        // What stops being reachable, then the epoch, then what nothing reaches any more.
        {
            let mut ipcache: HashMap<&mut MapData, IpKey, u32> =
                HashMap::try_from(&mut self.maps.ipcache).map_err(map_err(abi::MAP_IPCACHE))?;
            let mut gone = BTreeSet::new();
            for ip in &delta.ipcache_removed {
                let (family, addr) = abi::addr_bytes(*ip);
                let key = IpKey { generation, family, addr };
                ignore_missing(ipcache.remove(&key)).map_err(map_err(abi::MAP_IPCACHE))?;
                gone.insert(key);
            }
            live.ipcache.retain(|k| !gone.contains(k));
            writes += gone.len();
        }
        let mut endpoints: HashMap<&mut MapData, EndpointKey, Endpoint> =
            HashMap::try_from(&mut self.maps.endpoints).map_err(map_err(abi::MAP_ENDPOINTS))?;
        let mut gone_keys = BTreeSet::new();
        for id in &delta.endpoints_removed {
            live.sets.remove(id);
            let Some(ifindex) = live.interfaces.remove(id) else { continue };
            if rewritten.contains(&ifindex) {
                continue; // its interface now holds the endpoint that replaced it
            }
            let key = EndpointKey { generation, ifindex };
            ignore_missing(endpoints.remove(&key)).map_err(map_err(abi::MAP_ENDPOINTS))?;
            gone_keys.insert(key);
        }
        live.endpoints.retain(|k| !gone_keys.contains(k));
        writes += gone_keys.len();
        if delta.rejudge {
            self.maps.set_config(Config { epoch: config.epoch.wrapping_add(1), ..config })?;
            writes += 1;
        }
        Ok((writes, fail_closed))
    }

    /// Delete the policy and range entries of endpoints a delta removed (best effort: a key
    /// already gone is fine). Returns how many.
    fn remove_entries(&mut self, delta: &Delta, generation: u32, live: &mut Written) -> usize {
        let policy: BTreeSet<PolicyKey> =
            delta.policy_removed.iter().map(|e| policy_key(generation, e)).collect();
        if let Ok(mut m) = HashMap::<&mut MapData, PolicyKey, PolicyValue>::try_from(&mut self.maps.policy) {
            for k in &policy {
                let _ = m.remove(k);
            }
        }
        live.policy.retain(|k| !policy.contains(k));
        let ranges: BTreeSet<(u32, RangeKeyData)> = delta
            .ranges_removed
            .iter()
            .map(|r| {
                let k = range_key(generation, r);
                (k.prefix_len(), k.data())
            })
            .collect();
        if let Ok(mut m) = LpmTrie::<&mut MapData, RangeKeyData, PolicyValue>::try_from(&mut self.maps.ranges)
        {
            for (bits, data) in &ranges {
                let _ = m.remove(&Key::new(*bits, *data));
            }
        }
        live.ranges.retain(|k| !ranges.contains(&(k.prefix_len(), k.data())));
        policy.len() + ranges.len()
    }

    fn write_ipcache<'a>(
        &mut self,
        entries: impl ExactSizeIterator<Item = (&'a IpAddr, &'a u32)>,
        generation: u32,
        written: &mut Written,
    ) -> Result<(), DatapathError> {
        let wanted = entries.len();
        let mut ipcache: HashMap<&mut MapData, IpKey, u32> =
            HashMap::try_from(&mut self.maps.ipcache).map_err(map_err(abi::MAP_IPCACHE))?;
        for (ip, identity) in entries {
            let (family, addr) = abi::addr_bytes(*ip);
            let key = IpKey { generation, family, addr };
            let fresh = matches!(ipcache.get(&key, 0), Err(MapError::KeyNotFound));
            ipcache.insert(key, identity, 0).map_err(|e| {
                if is_full(&e) {
                    DatapathError::Full { map: abi::MAP_IPCACHE, entries: wanted }
                } else {
                    map_err(abi::MAP_IPCACHE)(e)
                }
            })?;
            if fresh {
                written.ipcache.push(key);
            }
        }
        Ok(())
    }

    /// Write policy entries; a set whose entries do not fit is recorded in `written.failed` and
    /// `failed` (its other entries are skipped, and so are those of sets that failed before).
    /// Every set's entries are written, whether or not one of its endpoints has an interface yet:
    /// a pod that joins the set later, in place, finds them there.
    fn write_policy<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a PolicyEntry, &'a u32)>,
        written: &mut Written,
        failed: &mut BTreeSet<u32>,
    ) -> Result<(), DatapathError> {
        let generation = written.generation;
        let mut policy: HashMap<&mut MapData, PolicyKey, PolicyValue> =
            HashMap::try_from(&mut self.maps.policy).map_err(map_err(abi::MAP_POLICY))?;
        insert_set_entries(
            entries.map(|(e, rule)| (e.set, policy_key(generation, e), *rule)),
            |key, value| policy.insert(key, value, 0),
            abi::MAP_POLICY,
            &mut written.policy,
            &mut written.failed,
            failed,
        )
    }

    /// As [`Datapath::write_policy`], for port range blocks.
    fn write_ranges<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a RangeEntry, &'a u32)>,
        written: &mut Written,
        failed: &mut BTreeSet<u32>,
    ) -> Result<(), DatapathError> {
        let generation = written.generation;
        let mut ranges: LpmTrie<&mut MapData, RangeKeyData, PolicyValue> =
            LpmTrie::try_from(&mut self.maps.ranges).map_err(map_err(abi::MAP_PORT_RANGES))?;
        insert_set_entries(
            entries.map(|(r, rule)| (r.entry.set, range_key(generation, r), *rule)),
            |key, value| ranges.insert(key, value, 0),
            abi::MAP_PORT_RANGES,
            &mut written.ranges,
            &mut written.failed,
            failed,
        )
    }

    fn write_generation(
        &mut self,
        plan: &Plan,
        interfaces: &BTreeMap<u32, u32>,
        written: &mut Written,
    ) -> Result<Vec<(u32, String)>, DatapathError> {
        let generation = written.generation;
        self.write_ipcache(plan.ipcache.iter(), generation, written)?;
        {
            let mut cidrs: LpmTrie<&mut MapData, CidrKeyData, u32> =
                LpmTrie::try_from(&mut self.maps.cidrs).map_err(map_err(abi::MAP_CIDRS))?;
            for (net, identity) in &plan.cidrs {
                let (family, addr) = abi::addr_bytes(net.network());
                let key = Key::new(
                    abi::CIDR_KEY_FIXED_BITS + u32::from(net.prefix_len()),
                    CidrKeyData { generation, family, addr },
                );
                cidrs.insert(&key, identity, 0).map_err(|e| {
                    if is_full(&e) {
                        DatapathError::Full { map: abi::MAP_CIDRS, entries: plan.cidrs.len() }
                    } else {
                        map_err(abi::MAP_CIDRS)(e)
                    }
                })?;
                written.cidrs.push(key);
            }
        }
        written.sets = plan
            .endpoints
            .iter()
            .filter(|ep| interfaces.contains_key(&ep.id))
            .map(|ep| (ep.id, ep.set))
            .collect();
        if self.service_mark != 0 {
            let mut frontends: HashMap<&mut MapData, FrontendKey, Frontend> =
                HashMap::try_from(&mut self.maps.frontends).map_err(map_err(abi::MAP_FRONTENDS))?;
            for (entry, service) in &plan.frontends {
                let (family, addr) = abi::addr_bytes(entry.address);
                let key = FrontendKey {
                    generation,
                    family: u8::try_from(family).unwrap_or(0),
                    protocol: entry.protocol,
                    port: entry.port.to_be(),
                    addr,
                };
                frontends.insert(key, Frontend { service: *service, pad: 0 }, 0).map_err(|e| {
                    if is_full(&e) {
                        DatapathError::Full { map: abi::MAP_FRONTENDS, entries: plan.frontends.len() }
                    } else {
                        map_err(abi::MAP_FRONTENDS)(e)
                    }
                })?;
                written.frontends.push(key);
            }
        }
        let mut failed = BTreeSet::new();
        self.write_policy(plan.policy.iter(), written, &mut failed)?;
        self.write_ranges(plan.ranges.iter(), written, &mut failed)?;
        let mut endpoints: HashMap<&mut MapData, EndpointKey, Endpoint> =
            HashMap::try_from(&mut self.maps.endpoints).map_err(map_err(abi::MAP_ENDPOINTS))?;
        for ep in &plan.endpoints {
            let Some(ifindex) = interfaces.get(&ep.id) else { continue };
            let key = EndpointKey { generation, ifindex: *ifindex };
            let mut flags = ep.flags;
            if written.failed.contains_key(&ep.set) {
                flags |= abi::EP_FAIL_CLOSED;
            }
            let value = Endpoint { id: ep.id, flags, door: ep.doors, set: ep.set };
            endpoints.insert(key, value, 0).map_err(|e| {
                if is_full(&e) {
                    DatapathError::Full { map: abi::MAP_ENDPOINTS, entries: plan.endpoints.len() }
                } else {
                    map_err(abi::MAP_ENDPOINTS)(e)
                }
            })?;
            written.endpoints.push(key);
            written.interfaces.insert(ep.id, *ifindex);
        }
        Ok(written.failed_endpoints(&failed))
    }

    /// Best-effort removal of one generation's keys (a key already gone is fine).
    fn delete(&mut self, written: &Written) {
        if let Ok(mut m) = HashMap::<&mut MapData, EndpointKey, Endpoint>::try_from(&mut self.maps.endpoints)
        {
            for k in &written.endpoints {
                let _ = m.remove(k);
            }
        }
        if let Ok(mut m) = HashMap::<&mut MapData, IpKey, u32>::try_from(&mut self.maps.ipcache) {
            for k in &written.ipcache {
                let _ = m.remove(k);
            }
        }
        if let Ok(mut m) = LpmTrie::<&mut MapData, CidrKeyData, u32>::try_from(&mut self.maps.cidrs) {
            for k in &written.cidrs {
                let _ = m.remove(k);
            }
        }
        if let Ok(mut m) = HashMap::<&mut MapData, PolicyKey, PolicyValue>::try_from(&mut self.maps.policy) {
            for k in &written.policy {
                let _ = m.remove(k);
            }
        }
        if let Ok(mut m) = LpmTrie::<&mut MapData, RangeKeyData, PolicyValue>::try_from(&mut self.maps.ranges)
        {
            for k in &written.ranges {
                let _ = m.remove(k);
            }
        }
        if let Ok(mut m) = HashMap::<&mut MapData, FrontendKey, Frontend>::try_from(&mut self.maps.frontends)
        {
            for k in &written.frontends {
                let _ = m.remove(k);
            }
        }
    }

    /// Remove every key not of `generation` (after a restart, when the old keys are unknown).
    fn delete_other_generations(&mut self, generation: u32) -> Result<(), DatapathError> {
        let mut stale = Written::default();
        {
            let m: HashMap<&MapData, EndpointKey, Endpoint> =
                HashMap::try_from(&self.maps.endpoints).map_err(map_err(abi::MAP_ENDPOINTS))?;
            stale.endpoints =
                m.keys().filter_map(Result::ok).filter(|k| k.generation != generation).collect();
        }
        {
            let m: HashMap<&MapData, IpKey, u32> =
                HashMap::try_from(&self.maps.ipcache).map_err(map_err(abi::MAP_IPCACHE))?;
            stale.ipcache = m.keys().filter_map(Result::ok).filter(|k| k.generation != generation).collect();
        }
        {
            let m: LpmTrie<&MapData, CidrKeyData, u32> =
                LpmTrie::try_from(&self.maps.cidrs).map_err(map_err(abi::MAP_CIDRS))?;
            stale.cidrs =
                m.keys().filter_map(Result::ok).filter(|k| k.data().generation != generation).collect();
        }
        {
            let m: HashMap<&MapData, PolicyKey, PolicyValue> =
                HashMap::try_from(&self.maps.policy).map_err(map_err(abi::MAP_POLICY))?;
            stale.policy = m.keys().filter_map(Result::ok).filter(|k| k.generation != generation).collect();
        }
        {
            let m: LpmTrie<&MapData, RangeKeyData, PolicyValue> =
                LpmTrie::try_from(&self.maps.ranges).map_err(map_err(abi::MAP_PORT_RANGES))?;
            stale.ranges =
                m.keys().filter_map(Result::ok).filter(|k| k.data().generation != generation).collect();
        }
        {
            let m: HashMap<&MapData, FrontendKey, Frontend> =
                HashMap::try_from(&self.maps.frontends).map_err(map_err(abi::MAP_FRONTENDS))?;
            stale.frontends =
                m.keys().filter_map(Result::ok).filter(|k| k.generation != generation).collect();
        }
        self.delete(&stale);
        Ok(())
    }

    /// Point `ifindex` at endpoint `endpoint` of `plan` in the live generation (one map write).
    /// Used by tests and benchmarks that run every endpoint's packets through one device.
    ///
    /// # Errors
    /// A map error, or an unknown endpoint.
    pub fn bind(&mut self, plan: &Plan, endpoint: u32, ifindex: u32) -> Result<(), DatapathError> {
        let generation = self.maps.config()?.generation;
        let ep = plan
            .endpoints
            .iter()
            .find(|e| e.id == endpoint)
            .ok_or_else(|| map_err(abi::MAP_ENDPOINTS)(MapError::KeyNotFound))?;
        let mut m: HashMap<&mut MapData, EndpointKey, Endpoint> =
            HashMap::try_from(&mut self.maps.endpoints).map_err(map_err(abi::MAP_ENDPOINTS))?;
        let key = EndpointKey { generation, ifindex };
        m.insert(key, Endpoint { id: ep.id, flags: ep.flags, door: ep.doors, set: ep.set }, 0)
            .map_err(map_err(abi::MAP_ENDPOINTS))?;
        if let Some(live) = &mut self.live {
            live.endpoints.push(key);
        }
        Ok(())
    }

    fn classifier(&mut self, name: &'static str) -> Result<&mut SchedClassifier, DatapathError> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| prog_err(name)(ProgramError::NotLoaded))?
            .try_into()
            .map_err(prog_err(name))
    }

    /// Attach both classifiers to `interface` (a pod's host-side veth): `netc_from_pod` on its
    /// tc ingress, `netc_to_pod` on its tc egress. An attachment left by an earlier netcd is
    /// replaced in place (atomically), so there is no moment without a classifier.
    ///
    /// # Errors
    /// [`DatapathError::Interface`] naming the interface.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<(), DatapathError> {
        self.attach_programs(
            interface,
            mode,
            &[(abi::PROG_FROM_POD, TcAttachType::Ingress), (abi::PROG_TO_POD, TcAttachType::Egress)],
        )
    }

    fn attach_programs(
        &mut self,
        interface: &str,
        mode: AttachMode,
        programs: &[(&'static str, TcAttachType)],
    ) -> Result<(), DatapathError> {
        let ierr = |message: String| DatapathError::Interface { interface: interface.to_owned(), message };
        if mode == AttachMode::Netlink
            && let Err(e) = tc::qdisc_add_clsact(interface)
        {
            // EEXIST: the qdisc is there already, which is what we want.
            let exists = matches!(&e, tc::TcError::NetlinkError(n) if n.raw_os_error() == Some(libc::EEXIST));
            if !exists {
                return Err(ierr(format!("cannot add the clsact qdisc: {e}")));
            }
        }
        let pin_dir = self.pin_dir.clone();
        for &(name, hook) in programs {
            let program = self.classifier(name)?;
            match mode {
                AttachMode::Tcx => {
                    let pin = pin_dir.as_ref().map(|d| link_pin_path(d, interface, hook));
                    let existing = pin.as_ref().filter(|p| p.exists()).map(PinnedLink::from_pin);
                    let link_id = match existing {
                        Some(Ok(pinned)) => {
                            let link = SchedClassifierLink::try_from(FdLink::from(pinned))
                                .map_err(|e| ierr(format!("pinned link is not a TCX link: {e}")))?;
                            program
                                .attach_to_link(link)
                                .map_err(|e| ierr(format!("cannot replace the pinned {name} link: {e}")))?
                        }
                        Some(Err(e)) => return Err(ierr(format!("cannot open the pinned {name} link: {e}"))),
                        None => program
                            .attach_with_options(
                                interface,
                                hook,
                                TcAttachOptions::TcxOrder(LinkOrder::default()),
                            )
                            .map_err(|e| ierr(format!("cannot attach {name} (tcx): {e}")))?,
                    };
                    let link = program.take_link(link_id).map_err(|e| ierr(e.to_string()))?;
                    match pin {
                        Some(path) => {
                            let fd: FdLink =
                                link.try_into().map_err(|e| ierr(format!("not an fd link: {e}")))?;
                            if !path.exists() {
                                fd.pin(&path)
                                    .map_err(|e| ierr(format!("cannot pin {}: {e}", path.display())))?;
                            }
                            // Dropping the fd leaves the link to its pin.
                        }
                        None => self.unpinned_links.push(link),
                    }
                }
                AttachMode::Netlink => {
                    let replaced = SchedClassifierLink::attached(
                        interface,
                        hook,
                        NETLINK_PRIORITY,
                        NETLINK_HANDLE,
                        None,
                    )
                    .map_err(|e| ierr(e.to_string()))
                    .and_then(|old| program.attach_to_link(old).map_err(|e| ierr(e.to_string())));
                    let link_id = match replaced {
                        Ok(id) => id,
                        Err(_) => program
                            .attach_with_options(
                                interface,
                                hook,
                                TcAttachOptions::Netlink(NlOptions {
                                    priority: NETLINK_PRIORITY,
                                    handle: NETLINK_HANDLE,
                                    classid: None,
                                }),
                            )
                            .map_err(|e| ierr(format!("cannot attach {name} (netlink): {e}")))?,
                    };
                    let link = program.take_link(link_id).map_err(|e| ierr(e.to_string()))?;
                    if pin_dir.is_some() {
                        // tc filters live in the kernel until removed: forgetting the handle
                        // keeps aya from detaching it when this process ends.
                        std::mem::forget(link);
                    } else {
                        self.unpinned_links.push(link);
                    }
                }
            }
        }
        Ok(())
    }

    /// The skb mark bit of Service calls, from the next [`Datapath::apply`] on; 0 turns the
    /// Service path off (a Service call is then judged on its frontend at the client's veth).
    /// [`abi::DEFAULT_SERVICE_MARK`] unless set.
    pub fn set_service_mark(&mut self, mark: u32) {
        self.service_mark = mark;
    }

    /// Attach `netc_uplink` to the tc egress of `interface`, an interface by which pod traffic
    /// leaves the node (the uplink; a tunnel device with an overlay): it judges Service calls
    /// that kube-proxy translated to a backend on another node. Replaced in place like
    /// [`Datapath::attach`].
    ///
    /// # Errors
    /// [`DatapathError::Interface`] naming the interface.
    pub fn attach_uplink(&mut self, interface: &str, mode: AttachMode) -> Result<(), DatapathError> {
        self.attach_programs(interface, mode, &[(abi::PROG_UPLINK, TcAttachType::Egress)])
    }

    /// Run `program` (`abi::PROG_FROM_POD` or `abi::PROG_TO_POD`) on one packet, `repeat` times,
    /// with BPF_PROG_TEST_RUN. The packet arrives on the loopback device (ifindex 1): bind that
    /// ifindex to an endpoint with [`Datapath::bind`]. It is a forwarded packet (came in on
    /// [`FORWARDED_FROM`]: another pod, another node), as every packet of a pod's egress door is
    /// and every packet of its ingress door not made by its node; [`Datapath::test_run_from_node`]
    /// runs one the node made. Returns the tc verdict and the kernel's average time per run.
    ///
    /// # Errors
    /// A program error.
    pub fn test_run(
        &self,
        program: &'static str,
        packet: &[u8],
        repeat: u32,
    ) -> Result<(i32, Duration), DatapathError> {
        test_run_program(&self.ebpf, program, packet, repeat)
    }

    /// [`Datapath::test_run`] on a packet the node's own network stack made (a kubelet probe):
    /// its ingress ifindex is 0.
    ///
    /// # Errors
    /// A program error.
    pub fn test_run_from_node(
        &self,
        program: &'static str,
        packet: &[u8],
        repeat: u32,
    ) -> Result<(i32, Duration), DatapathError> {
        test_run_arriving(&self.ebpf, program, packet, repeat, 0)
    }

    /// [`Datapath::test_run`] (once) on a packet that came in on `ingress_ifindex` and carries
    /// skb mark `mark`: a Service call after kube-proxy's translation, at `abi::PROG_TO_POD` or
    /// `abi::PROG_UPLINK`, carries the Service mark and its client's veth. Returns the tc verdict
    /// and the packet's mark after the program (`abi::PROG_FROM_POD` sets the Service mark on a
    /// Service call).
    ///
    /// # Errors
    /// A program error.
    pub fn test_run_marked(
        &self,
        program: &'static str,
        packet: &[u8],
        ingress_ifindex: u32,
        mark: u32,
    ) -> Result<(i32, u32), DatapathError> {
        let (verdict, _, mark) = test_run_skb(&self.ebpf, program, packet, 1, ingress_ifindex, mark)?;
        Ok((verdict, mark))
    }

    /// [`Datapath::test_run_marked`] with the kernel's time of the run (one run: the mark a
    /// program clears would be gone at the second).
    ///
    /// # Errors
    /// A program error.
    pub fn test_run_marked_timed(
        &self,
        program: &'static str,
        packet: &[u8],
        ingress_ifindex: u32,
        mark: u32,
    ) -> Result<(i32, u32, Duration), DatapathError> {
        let (verdict, took, mark) = test_run_skb(&self.ebpf, program, packet, 1, ingress_ifindex, mark)?;
        Ok((verdict, mark, took))
    }
}

/// The ingress ifindex of the packets [`Datapath::test_run`] runs: any interface but none (0 is
/// a packet the node made). Not a device: the classifier only compares it with 0.
pub const FORWARDED_FROM: u32 = 2;

/// Run a loaded classifier of `ebpf` on a forwarded packet; see [`Datapath::test_run`].
///
/// # Errors
/// A program error.
pub fn test_run_program(
    ebpf: &Ebpf,
    program: &'static str,
    packet: &[u8],
    repeat: u32,
) -> Result<(i32, Duration), DatapathError> {
    test_run_arriving(ebpf, program, packet, repeat, FORWARDED_FROM)
}

/// Byte offset of `mark` in `struct __sk_buff` (the 3rd `__u32`; UAPI, stable).
const SKB_MARK: usize = 8;
/// Byte offset of `ingress_ifindex` in `struct __sk_buff` (the 10th `__u32`; UAPI, stable).
const SKB_INGRESS_IFINDEX: usize = 36;

fn test_run_arriving(
    ebpf: &Ebpf,
    program: &'static str,
    packet: &[u8],
    repeat: u32,
    ingress_ifindex: u32,
) -> Result<(i32, Duration), DatapathError> {
    let (verdict, duration, _) = test_run_skb(ebpf, program, packet, repeat, ingress_ifindex, 0)?;
    Ok((verdict, duration))
}

fn test_run_skb(
    ebpf: &Ebpf,
    program: &'static str,
    packet: &[u8],
    repeat: u32,
    ingress_ifindex: u32,
    mark: u32,
) -> Result<(i32, Duration, u32), DatapathError> {
    let prog: &SchedClassifier = ebpf
        .program(program)
        .ok_or_else(|| prog_err(program)(ProgramError::NotLoaded))?
        .try_into()
        .map_err(prog_err(program))?;
    let mut out = vec![0u8; packet.len() + 256];
    // The __sk_buff up to ifindex: all zero (the kernel refuses other fields) but the mark and
    // the ingress ifindex, which BPF_PROG_TEST_RUN copies into the skb (and the mark back out).
    let mut ctx = [0u8; SKB_INGRESS_IFINDEX + 8];
    ctx[SKB_MARK..SKB_MARK + 4].copy_from_slice(&mark.to_ne_bytes());
    ctx[SKB_INGRESS_IFINDEX..SKB_INGRESS_IFINDEX + 4].copy_from_slice(&ingress_ifindex.to_ne_bytes());
    // The kernel writes the whole __sk_buff back (192 bytes on Linux 6.x) and refuses a shorter
    // buffer (ENOSPC).
    let mut ctx_out = [0u8; 256];
    let opts = TestRunOptions {
        data_in: Some(packet),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx),
        ctx_out: Some(&mut ctx_out),
        repeat,
        ..TestRunOptions::default()
    };
    let result = prog.test_run(opts).map_err(prog_err(program))?;
    let mark_out = u32::from_ne_bytes(ctx_out[SKB_MARK..SKB_MARK + 4].try_into().expect("4 bytes"));
    Ok((result.return_value.cast_signed(), result.duration, mark_out))
}

/// The empty classifier (benchmark baseline), loaded.
///
/// # Errors
/// Load errors.
pub fn load_empty() -> Result<Ebpf, DatapathError> {
    let mut ebpf = Ebpf::load(abi::EMPTY_OBJECT)?;
    let program: &mut SchedClassifier = ebpf
        .program_mut(abi::PROG_EMPTY)
        .ok_or_else(|| prog_err(abi::PROG_EMPTY)(ProgramError::NotLoaded))?
        .try_into()
        .map_err(prog_err(abi::PROG_EMPTY))?;
    program.load().map_err(prog_err(abi::PROG_EMPTY))?;
    Ok(ebpf)
}

fn link_pin_path(dir: &Path, interface: &str, hook: TcAttachType) -> PathBuf {
    let side = if hook == TcAttachType::Ingress { "ingress" } else { "egress" };
    dir.join("links").join(format!("{interface}_{side}"))
}

/// Remove netc's classifiers from `interface`, whichever way they were attached. Missing ones
/// are fine.
///
/// # Errors
/// [`DatapathError::Interface`] when a present attachment cannot be removed.
pub fn detach_interface(pin_dir: &Path, interface: &str) -> Result<(), DatapathError> {
    for (name, hook) in [
        (abi::PROG_FROM_POD, TcAttachType::Ingress),
        (abi::PROG_TO_POD, TcAttachType::Egress),
        (abi::PROG_UPLINK, TcAttachType::Egress),
    ] {
        let path = link_pin_path(pin_dir, interface, hook);
        if path.exists() {
            let pinned = PinnedLink::from_pin(&path).map_err(|e| DatapathError::Interface {
                interface: interface.to_owned(),
                message: format!("cannot open pinned link {}: {e}", path.display()),
            })?;
            // Unpinning drops the last reference: the link detaches.
            drop(pinned.unpin().map_err(|source| DatapathError::Io { path: path.clone(), source })?);
        }
        if crate::netif::ifindex(interface).is_none() {
            // Gone with its pod: the kernel removed its filters and links with it.
            continue;
        }
        match tc::qdisc_detach_program(interface, hook, name) {
            Ok(()) => {}
            Err(tc::TcError::IoError(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                // No clsact qdisc on the interface: nothing of ours there either.
                let text = e.to_string();
                if !text.contains("No such file") && !text.contains("Invalid argument") {
                    return Err(DatapathError::Interface { interface: interface.to_owned(), message: text });
                }
            }
        }
    }
    Ok(())
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: an all-zero statfs is a valid out-buffer for statfs(2).
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `buf` is writable for the call.
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut buf) };
    #[allow(clippy::unnecessary_cast, reason = "f_type's width differs between architectures")]
    let kind = buf.f_type as i64;
    rc == 0 && kind == BPF_FS_MAGIC
}

/// Make sure `dir` can hold pins: it must lie on a bpf file system. When `/sys/fs/bpf` itself is
/// not mounted (fresh machines, some containers), mount it, as Cilium and Calico do. Returns a
/// note to log when it mounted something.
///
/// # Errors
/// [`DatapathError::Io`] saying what to mount when `dir` is elsewhere and not on bpffs.
pub fn ensure_bpffs(dir: &Path) -> Result<Option<String>, DatapathError> {
    let mut probe = dir;
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => break,
        }
    }
    if is_bpffs(probe) {
        return Ok(None);
    }
    let root = Path::new("/sys/fs/bpf");
    if dir.starts_with(root) && probe == root {
        let src = c"bpf";
        let target = c"/sys/fs/bpf";
        // SAFETY: all strings are NUL-terminated literals; data may be NULL for bpffs.
        let rc = unsafe { libc::mount(src.as_ptr(), target.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
        if rc == 0 {
            return Ok(Some("mounted a bpf file system on /sys/fs/bpf".into()));
        }
        return Err(DatapathError::Io { path: root.to_owned(), source: io::Error::last_os_error() });
    }
    Err(DatapathError::Io {
        path: dir.to_owned(),
        source: io::Error::other(format!(
            "{} is not on a bpf file system; mount one (`mount -t bpf bpf /sys/fs/bpf`) and pin under it",
            probe.display()
        )),
    })
}

/// Interfaces with a pinned TCX link under `pin_dir`.
#[must_use]
pub fn pinned_link_interfaces(pin_dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(pin_dir.join("links"))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.rsplit_once('_')).map(|(i, _)| i.to_owned()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Remove everything netc pinned under `pin_dir`: links (which detaches them), netlink filters
/// on every interface, programs and maps. Enforcement stops.
///
/// # Errors
/// [`DatapathError::NotPinned`] when nothing of netc's is pinned there (`netcd detach` takes that
/// for success: an uninstall runs it whatever state the node is in); otherwise the first failure;
/// what could be removed before it is removed.
pub fn detach_all(pin_dir: &Path) -> Result<Vec<String>, DatapathError> {
    let ours =
        abi::ALL_MAPS.iter().chain([abi::PROG_FROM_POD, abi::PROG_TO_POD, abi::PROG_UPLINK, "links"].iter());
    if !ours.clone().any(|name| pin_dir.join(name).exists()) {
        return Err(DatapathError::NotPinned(pin_dir.to_owned()));
    }
    let mut interfaces = pinned_link_interfaces(pin_dir);
    // Netlink filters are not pinned: the interfaces of this datapath's endpoints (any
    // generation) are where they can be. Other datapaths' interfaces are left alone.
    if let Ok(maps) = Maps::from_pins(pin_dir)
        && let Ok(m) = HashMap::<&MapData, EndpointKey, Endpoint>::try_from(&maps.endpoints)
    {
        for key in m.keys().filter_map(Result::ok) {
            if let Some(name) = crate::netif::ifname(key.ifindex) {
                interfaces.push(name);
            }
        }
    }
    interfaces.sort();
    interfaces.dedup();
    let mut touched = Vec::new();
    for interface in &interfaces {
        detach_interface(pin_dir, interface)?;
        touched.push(interface.clone());
    }
    // An uplink's tc filter (netlink attach) is not pinned and names no endpoint: look for
    // netc_uplink on every interface's egress.
    for entry in std::fs::read_dir("/sys/class/net").into_iter().flatten().filter_map(Result::ok) {
        if let Some(interface) = entry.file_name().to_str()
            && !interfaces.iter().any(|i| i == interface)
            && tc::qdisc_detach_program(interface, TcAttachType::Egress, abi::PROG_UPLINK).is_ok()
        {
            touched.push(interface.to_owned());
        }
    }
    for name in abi::ALL_MAPS.iter().chain([abi::PROG_FROM_POD, abi::PROG_TO_POD, abi::PROG_UPLINK].iter()) {
        let path = pin_dir.join(name);
        if path.exists() {
            std::fs::remove_file(&path).map_err(|source| DatapathError::Io { path, source })?;
        }
    }
    let _ = std::fs::remove_dir(pin_dir.join("links"));
    let _ = std::fs::remove_dir(pin_dir);
    Ok(touched)
}
