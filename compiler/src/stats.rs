//! What a build costs: `netc build --stats` and the budgets of the `--max-...` options.
//!
//! - Per namespace: the NetworkPolicy objects written, their rules (ingress and egress entries)
//!   and their bytes (each object's file as `netc build -o DIR` writes it, header line included).
//! - Per node of a cluster: the entries netcd will write into each eBPF map there, counted by
//!   building the very plan netcd builds ([`netc_ir::plan::Plan::build`], with the node's pods as
//!   its local pods), beside the map's capacity ([`netc_ir::capacity`], the numbers the datapath's
//!   maps are compiled with).
//!
//! A map keyed by generation holds two generations while netcd applies a new one (the new one is
//! written beside the live one, then the old one is deleted; a restarted netcd does the same over
//! its pinned maps), so a node has room for a build only while each such map's entries stay
//! within half its capacity: that is the limit a build is checked against even with no
//! `--max-...` option ([`map_limit`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use netc_ir::plan::{Plan, PlanOptions};
use netc_ir::{Inventory, Ir, capacity};

/// One namespace's share of a build.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceStats {
    /// The namespace.
    pub namespace: String,
    /// NetworkPolicy objects.
    pub objects: usize,
    /// Their rules: entries of `spec.ingress` and `spec.egress`.
    pub rules: usize,
    /// Bytes of their files as `-o DIR` writes them.
    pub bytes: usize,
}

/// The NetworkPolicy objects, rules and bytes of each namespace, in namespace order.
#[must_use]
pub fn namespaces(policies: &[NetworkPolicy], sources: &[String]) -> Vec<NamespaceStats> {
    let header = crate::yaml::header(sources).len();
    let mut by_namespace: BTreeMap<String, NamespaceStats> = BTreeMap::new();
    for (policy, body) in policies.iter().zip(crate::yaml::render_each(policies)) {
        let namespace = policy.metadata.namespace.clone().unwrap_or_default();
        let entry = by_namespace
            .entry(namespace.clone())
            .or_insert_with(|| NamespaceStats { namespace, ..NamespaceStats::default() });
        entry.objects += 1;
        let spec = policy.spec.as_ref();
        entry.rules += spec.and_then(|s| s.ingress.as_ref()).map_or(0, Vec::len)
            + spec.and_then(|s| s.egress.as_ref()).map_or(0, Vec::len);
        entry.bytes += header + body.len();
    }
    by_namespace.into_values().collect()
}

/// One map on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapUse {
    /// The map's name in the datapath (`netc_policy`).
    pub map: &'static str,
    /// Entries netcd writes there for this build.
    pub entries: usize,
    /// Entries the map holds.
    pub capacity: u32,
}

/// The maps of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStats {
    /// The node (`spec.nodeName`); `None`: the cluster names no node, and every pod is counted
    /// as local, as netcd does without `--node`.
    pub node: Option<String>,
    /// Pods netcd guards there (endpoints).
    pub pods: usize,
    /// Policy sets: groups of local pods selected by the same policies, sharing their entries.
    pub policy_sets: usize,
    /// Each map, in [`capacity::MAPS`] order.
    pub maps: Vec<MapUse>,
}

impl NodeStats {
    /// The node as messages name it.
    #[must_use]
    pub fn name(&self) -> String {
        match &self.node {
            Some(n) => format!("node `{n}`"),
            None => "the node (the cluster names no node: every pod counted as local)".to_owned(),
        }
    }
}

/// The nodes of `inventory`: every `spec.nodeName` its pods carry, in order.
#[must_use]
pub fn node_names(inventory: &Inventory) -> Vec<String> {
    let nodes: BTreeSet<&String> = inventory.pods.iter().filter_map(|p| p.node.as_ref()).collect();
    nodes.into_iter().cloned().collect()
}

/// The map entries of `plan` (built for one node), in [`capacity::MAPS`] order.
#[must_use]
pub fn map_entries(plan: &Plan) -> Vec<MapUse> {
    capacity::MAPS
        .iter()
        .map(|(map, capacity)| {
            let entries = match *map {
                "netc_endpoints" => plan.endpoints.len(),
                "netc_ipcache" => plan.ipcache.len(),
                "netc_cidrs" => plan.cidrs.len(),
                "netc_policy" => plan.policy.len(),
                "netc_port_ranges" => plan.ranges.len(),
                "netc_frontends" => plan.frontends.len(),
                // One counter per rule (an index at or above the capacity is not counted).
                _ => plan.rules.len(),
            };
            MapUse { map, entries, capacity: *capacity }
        })
        .collect()
}

/// The options netcd plans `node` with, counting the most a build can need there: Service
/// frontends as with `--uplink` (without it `netc_frontends` stays empty).
#[must_use]
pub fn plan_options(node: Option<&str>) -> PlanOptions {
    PlanOptions { node: node.map(str::to_owned), audit: false, services: true }
}

/// The map entries netcd needs on each node of `inventory` for `ir` (one row for the whole
/// cluster when it names no node).
#[must_use]
pub fn nodes(ir: &Ir, inventory: &Inventory) -> Vec<NodeStats> {
    let names = node_names(inventory);
    let nodes: Vec<Option<String>> =
        if names.is_empty() { vec![None] } else { names.into_iter().map(Some).collect() };
    crate::par::map_in_order(nodes, 1, |node| {
        let plan = Plan::build(ir, inventory, &plan_options(node.as_deref()));
        NodeStats {
            pods: plan.endpoints.len(),
            policy_sets: plan.set_count(),
            maps: map_entries(&plan),
            node,
        }
    })
}

/// Whether a map holds one set of entries per generation (all but the rule counters, which are
/// indexed by rule).
#[must_use]
pub fn keyed_by_generation(map: &str) -> bool {
    map != "netc_rule_counters"
}

/// How much of a map a build may fill: a number of entries or a share of its capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// At most this many entries.
    Entries(u64),
    /// At most this percentage of the capacity (0 < p <= 50).
    Percent(f64),
}

/// One `--max-map-entries` value: for every map, or for one.
#[derive(Debug, Clone, PartialEq)]
pub struct MapLimit {
    /// `None`: every map.
    pub map: Option<&'static str>,
    /// How much.
    pub amount: Amount,
    /// As given on the command line (for messages).
    pub given: String,
}

/// The share of a generation-keyed map one build may take: half (see the module's doc).
pub const GENERATION_SHARE_PERCENT: f64 = 50.0;

/// Parse a `--max-map-entries` value: `40%`, `0.4` (a share of every map's capacity),
/// `MAP=N` (at most N entries of one map) or `MAP=40%`. A map is named as the datapath names it
/// (`netc_policy`) or without its prefix (`policy`).
///
/// # Errors
/// A message for the user when the value is not one of these, names no map, or asks for more
/// than half a map (a node needs room for two generations during an update).
pub fn parse_map_limit(value: &str) -> Result<MapLimit, String> {
    let (map, amount) = match value.split_once('=') {
        Some((name, amount)) => {
            let name = name.trim();
            let full = if name.starts_with("netc_") { name.to_owned() } else { format!("netc_{name}") };
            let Some((map, _)) = capacity::MAPS.iter().find(|(m, _)| *m == full) else {
                let names: Vec<&str> =
                    capacity::MAPS.iter().map(|(m, _)| m.trim_start_matches("netc_")).collect();
                return Err(format!("no map `{name}`; the maps are {}", names.join(", ")));
            };
            (Some(*map), amount.trim())
        }
        None => (None, value.trim()),
    };
    let amount =
        if let Some(p) = amount.strip_suffix('%') {
            percent(p.trim().parse::<f64>().ok())?
        } else if amount.contains('.') {
            percent(amount.parse::<f64>().ok().map(|f| f * 100.0))?
        } else if map.is_some() {
            Amount::Entries(amount.parse::<u64>().map_err(|_| {
                format!("`{amount}` is not a number of entries (or a share such as 40% or 0.4)")
            })?)
        } else {
            return Err(format!(
                "`{amount}`: give a share of every map (40% or 0.4), or entries of one map (policy=100000)"
            ));
        };
    Ok(MapLimit { map, amount, given: value.to_owned() })
}

fn percent(p: Option<f64>) -> Result<Amount, String> {
    match p {
        Some(p) if p > 0.0 && p <= GENERATION_SHARE_PERCENT => Ok(Amount::Percent(p)),
        Some(p) if p > GENERATION_SHARE_PERCENT && p <= 100.0 => Err(format!(
            "{p}% is more than half a map: netcd writes a new generation beside the live one, so a \
             build that fills more than half of a map cannot be applied over one of its size; give \
             at most 50%"
        )),
        _ => Err("a share is a number above 0 and at most 50%, as 40% or 0.4".to_owned()),
    }
}

/// The limit of `map` (of `capacity` entries) on a node, and why: the smallest of half its
/// capacity (for maps keyed by generation) and the `--max-map-entries` values naming it.
/// `None`: no limit (the rule counters, unless a value names them: rules beyond the capacity are
/// enforced, only not counted).
#[must_use]
pub fn map_limit(map: &str, capacity: u32, limits: &[MapLimit]) -> Option<(u64, String)> {
    let mut best: Option<(u64, String)> = keyed_by_generation(map).then(|| {
        (
            u64::from(capacity) / 2,
            format!(
                "half the map's capacity of {capacity}: netcd writes a new generation beside the live one"
            ),
        )
    });
    for limit in limits.iter().filter(|l| l.map.is_none_or(|m| m == map)) {
        let value = match limit.amount {
            Amount::Entries(n) => n,
            // Truncation is meant: at most the share, in whole entries.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Amount::Percent(p) => (f64::from(capacity) * p / 100.0).floor() as u64,
        };
        if best.as_ref().is_none_or(|(b, _)| value < *b) {
            best = Some((value, format!("--max-map-entries {}; the map holds {capacity}", limit.given)));
        }
    }
    best
}

/// The limits on each namespace's share of a build (`--max-...-per-namespace`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceLimits {
    /// `--max-objects-per-namespace`.
    pub objects: Option<usize>,
    /// `--max-rules-per-namespace`.
    pub rules: Option<usize>,
    /// `--max-bytes-per-namespace`.
    pub bytes: Option<usize>,
}

impl NamespaceLimits {
    /// Whether any limit is set.
    #[must_use]
    pub fn any(&self) -> bool {
        self.objects.is_some() || self.rules.is_some() || self.bytes.is_some()
    }
}

/// A budget a build goes over: what, how much, the limit, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// One line: where and what (`node `a`: map `netc_policy` needs 600000 entries, over its limit of 524288 (...)`).
    pub message: String,
    /// How to bring the build back within it.
    pub help: String,
}

impl Exceeded {
    /// As printed for people: `error: ...` and a help line.
    #[must_use]
    pub fn text(&self) -> String {
        format!("error: {}\n  = help: {}\n", self.message, self.help)
    }
}

/// The namespaces over their limits.
#[must_use]
pub fn namespaces_over(stats: &[NamespaceStats], limits: &NamespaceLimits) -> Vec<Exceeded> {
    let mut out = Vec::new();
    for ns in stats {
        let checks = [
            (
                ns.objects,
                limits.objects,
                "NetworkPolicy objects",
                "--max-objects-per-namespace",
                "merge workloads the same rules apply to (one selector, one object), or raise the limit",
            ),
            (
                ns.rules,
                limits.rules,
                "NetworkPolicy rules",
                "--max-rules-per-namespace",
                "list several peers or ports in one arrow (`a, b -> c:80, 443`), or raise the limit",
            ),
            (
                ns.bytes,
                limits.bytes,
                "bytes of NetworkPolicy YAML",
                "--max-bytes-per-namespace",
                "split the namespace's intent, group peers by label instead of naming each, or raise the limit",
            ),
        ];
        for (count, limit, what, option, help) in checks {
            if let Some(limit) = limit.filter(|l| count > *l) {
                out.push(Exceeded {
                    message: format!(
                        "namespace `{}`: this build writes {count} {what}, over {option} {limit}",
                        ns.namespace
                    ),
                    help: help.to_owned(),
                });
            }
        }
    }
    out
}

/// How to need fewer entries of `map`.
fn map_help(map: &str) -> &'static str {
    match map {
        "netc_endpoints" => "schedule fewer pods on this node (one entry per pod netcd guards there)",
        "netc_ipcache" => {
            "every address of every pod of the cluster is an entry on every node, whatever the policies: \
             a cluster this large needs its pods split among several clusters"
        }
        "netc_cidrs" => "use fewer ipBlock prefixes (each CIDR and each `except` is one entry)",
        "netc_policy" | "netc_port_ranges" => {
            "give the pods of a node fewer distinct selections (pods selected by the same policies share their entries), \
             name peers by label rather than one by one, or use fewer ports and ranges per rule"
        }
        "netc_frontends" => {
            "expose fewer Service ports (each address x port, and each node port twice, is one entry)"
        }
        _ => "use fewer rules",
    }
}

/// The maps of nodes over their limits (see [`map_limit`]).
#[must_use]
pub fn nodes_over(stats: &[NodeStats], limits: &[MapLimit]) -> Vec<Exceeded> {
    let mut out = Vec::new();
    for node in stats {
        for m in &node.maps {
            let Some((limit, why)) = map_limit(m.map, m.capacity, limits) else { continue };
            let entries = u64::try_from(m.entries).unwrap_or(u64::MAX);
            if entries > limit {
                out.push(Exceeded {
                    message: format!(
                        "{}: map `{}` needs {entries} entries for this build, over its limit of {limit} ({why})",
                        node.name(),
                        m.map
                    ),
                    help: if why.starts_with("--max-map-entries") {
                        format!("{}; or raise --max-map-entries", map_help(m.map))
                    } else {
                        map_help(m.map).to_owned()
                    },
                });
            }
        }
    }
    out
}

/// The table `--stats` prints for people.
#[must_use]
pub fn render_table(
    namespaces: &[NamespaceStats],
    nodes: Option<&[NodeStats]>,
    limits: &[MapLimit],
) -> String {
    let mut out = String::new();
    let width = namespaces.iter().map(|n| n.namespace.len()).chain([9]).max().unwrap_or(9);
    out.push_str(&format!("{:<width$}  {:>7}  {:>7}  {:>10}\n", "namespace", "objects", "rules", "bytes"));
    let mut total = NamespaceStats { namespace: "total".to_owned(), ..NamespaceStats::default() };
    for ns in namespaces {
        out.push_str(&format!(
            "{:<width$}  {:>7}  {:>7}  {:>10}\n",
            ns.namespace, ns.objects, ns.rules, ns.bytes
        ));
        total.objects += ns.objects;
        total.rules += ns.rules;
        total.bytes += ns.bytes;
    }
    out.push_str(&format!(
        "{:<width$}  {:>7}  {:>7}  {:>10}\n",
        total.namespace, total.objects, total.rules, total.bytes
    ));
    let Some(nodes) = nodes else { return out };
    out.push('\n');
    for node in nodes {
        out.push_str(&format!(
            "{}: {} pod(s) guarded, {} policy set(s)\n",
            node.name(),
            node.pods,
            node.policy_sets
        ));
        out.push_str(&format!(
            "  {:<20}  {:>9}  {:>9}  {:>9}  {:>6}\n",
            "map", "entries", "limit", "capacity", "used"
        ));
        for m in &node.maps {
            let limit =
                map_limit(m.map, m.capacity, limits).map_or_else(|| "-".to_owned(), |(l, _)| l.to_string());
            #[allow(clippy::cast_precision_loss)]
            let used = m.entries as f64 * 100.0 / f64::from(m.capacity);
            out.push_str(&format!(
                "  {:<20}  {:>9}  {:>9}  {:>9}  {:>5.1}%\n",
                m.map, m.entries, limit, m.capacity, used
            ));
        }
    }
    out
}

/// The machine-readable form: one JSON object (`--message-format json` prints it as one line
/// `{"stats": ...}`).
#[must_use]
pub fn to_json(
    namespaces: &[NamespaceStats],
    nodes: Option<&[NodeStats]>,
    limits: &[MapLimit],
) -> serde_json::Value {
    let nodes = nodes.map(|nodes| {
        nodes
            .iter()
            .map(|n| {
                let maps: Vec<serde_json::Value> = n
                    .maps
                    .iter()
                    .map(|m| {
                        let limit = map_limit(m.map, m.capacity, limits).map(|(l, _)| l);
                        serde_json::json!({"map": m.map, "entries": m.entries, "limit": limit, "capacity": m.capacity})
                    })
                    .collect();
                serde_json::json!({"node": n.node, "pods": n.pods, "policy_sets": n.policy_sets, "maps": maps})
            })
            .collect::<Vec<_>>()
    });
    let mut stats = serde_json::json!({ "namespaces": namespaces });
    if let Some(nodes) = nodes {
        stats["nodes"] = serde_json::Value::Array(nodes);
    }
    serde_json::json!({ "stats": stats })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_limits_parse_as_shares_or_entries_of_one_map() {
        let share = parse_map_limit("40%").expect("share");
        assert_eq!((share.map, share.amount), (None, Amount::Percent(40.0)));
        assert_eq!(parse_map_limit("0.25").expect("fraction").amount, Amount::Percent(25.0));
        let one = parse_map_limit("policy=100000").expect("entries");
        assert_eq!((one.map, one.amount), (Some("netc_policy"), Amount::Entries(100_000)));
        assert_eq!(parse_map_limit("netc_ipcache=10%").expect("share of one").map, Some("netc_ipcache"));
        assert!(parse_map_limit("51%").expect_err("over half").contains("more than half"));
        assert!(parse_map_limit("0%").is_err());
        assert!(parse_map_limit("100").expect_err("entries of every map").contains("share of every map"));
        assert!(parse_map_limit("conntrack=5").expect_err("no such map").contains("no map `conntrack`"));
        assert!(parse_map_limit("policy=lots").is_err());
    }

    #[test]
    fn a_maps_limit_is_the_smallest_of_half_its_capacity_and_the_values_naming_it() {
        let half = u64::from(capacity::POLICY / 2);
        assert_eq!(map_limit("netc_policy", capacity::POLICY, &[]).expect("limit").0, half);
        // The rule counters hold no generations: no limit unless asked.
        assert_eq!(map_limit("netc_rule_counters", capacity::RULES, &[]), None);
        let limits = [parse_map_limit("10%").expect("share"), parse_map_limit("policy=5").expect("entries")];
        assert_eq!(map_limit("netc_policy", capacity::POLICY, &limits).expect("limit").0, 5);
        let (ipcache, why) = map_limit("netc_ipcache", capacity::IPCACHE, &limits).expect("limit");
        assert_eq!(ipcache, u64::from(capacity::IPCACHE) / 10);
        assert!(why.contains("--max-map-entries 10%"), "{why}");
        let big = [parse_map_limit("policy=99999999").expect("entries")];
        assert_eq!(
            map_limit("netc_policy", capacity::POLICY, &big).expect("limit").0,
            half,
            "never above half"
        );
    }

    #[test]
    fn nodes_over_their_limits_are_named_with_the_map_the_count_and_the_limit() {
        let node = |name: &str, entries: usize| NodeStats {
            node: Some(name.to_owned()),
            pods: 1,
            policy_sets: 1,
            maps: vec![MapUse { map: "netc_endpoints", entries, capacity: 10 }],
        };
        let over = nodes_over(&[node("a", 5), node("b", 6)], &[]);
        assert_eq!(over.len(), 1);
        assert_eq!(
            over[0].message,
            "node `b`: map `netc_endpoints` needs 6 entries for this build, over its limit of 5 (half the map's \
             capacity of 10: netcd writes a new generation beside the live one)"
        );
    }
}
