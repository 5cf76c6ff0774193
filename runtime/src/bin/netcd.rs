//! netcd: the netc node daemon. Enforces a netc IR on this node's pods with eBPF.
//!
//! ```text
//! netcd run --ir policies.ir.json --inventory cluster.yaml [--mode audit] [--bpffs DIR]
//!           [--conntrack-entries N] [--uplink IFACE]... [--service-mark BIT]
//!           [--metrics-addr ADDR] [--log-format text|json]
//! netcd run --kubernetes [--kubeconfig FILE] [--policy-configmap NS/NAME | --network-policies] [--node NAME] ...
//! netcd status
//! netcd detach
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use netc_runtime::abi;
use netc_runtime::daemon::{self, RunConfig};
use netc_runtime::datapath::{self, AttachMode, DEFAULT_BPFFS_DIR, Maps};
use netc_runtime::kube::cluster::PolicyConfigMap;
use netc_runtime::kube::{KubeOptions, PolicySource};
use netc_runtime::metrics::{self, Metrics};
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "netcd", version, about = "Enforce a netc IR on this node's pods with eBPF")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Drop what the policy does not allow.
    Enforce,
    /// Let everything pass; report would-be drops as `audit` verdicts.
    Audit,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Attach {
    /// TCX links (Linux >= 6.6), pinned.
    Tcx,
    /// clsact qdisc + tc filter over netlink (any kernel).
    Netlink,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One readable line per message.
    Text,
    /// One JSON object per line (tracing's JSON format), for log collectors.
    Json,
}

fn parse_configmap(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("`{text}` is not NAMESPACE/NAME (for example netc-system/netc-ir)")),
    }
}

fn parse_mark(text: &str) -> Result<u32, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    };
    match parsed {
        Ok(bit) if bit.count_ones() == 1 && bit != 0x4000 && bit != 0x8000 => Ok(bit),
        Ok(0x4000 | 0x8000) => {
            Err(format!("{text} is one of kube-proxy's mark bits (0x4000, 0x8000): take another"))
        }
        _ => Err(format!("`{text}` is not a single mark bit: give one bit, as 0x10000")),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETCD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("netcd=info,error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.without_time().init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process")]
enum Cmd {
    /// Load the IR, attach to the local pods' host-side veths, print verdicts as JSON lines,
    /// reload when the IR or inventory file changes. Enforcement stays after netcd exits.
    Run {
        /// The IR JSON (`netc build --emit ir`).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "kubernetes",
            conflicts_with = "kubernetes"
        )]
        ir: Option<PathBuf>,
        /// The pods and namespaces (`kubectl get ns,pods -A -o yaml`, YAML or JSON).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "kubernetes",
            conflicts_with = "kubernetes"
        )]
        inventory: Option<PathBuf>,
        /// Watch the API server instead of reading files: namespaces, pods and the policy
        /// ConfigMap (in-cluster config, or --kubeconfig / $KUBECONFIG).
        #[arg(long)]
        kubernetes: bool,
        /// The kubeconfig to reach the API server with (default: in-cluster, then $KUBECONFIG,
        /// then ~/.kube/config).
        #[arg(long, value_name = "FILE", requires = "kubernetes")]
        kubeconfig: Option<PathBuf>,
        /// The ConfigMap holding the IR (`netc build --emit configmap`), as NAMESPACE/NAME.
        #[arg(long, value_name = "NAMESPACE/NAME", default_value = "netc-system/netc-ir", value_parser = parse_configmap)]
        policy_configmap: (String, String),
        /// The key of the ConfigMap's data holding the IR JSON.
        #[arg(long, value_name = "KEY", default_value = "policies.ir.json")]
        policy_key: String,
        /// Enforce the cluster's own NetworkPolicy objects (all namespaces, read as `netc import
        /// --emit ir` reads them) instead of the IR of a ConfigMap.
        #[arg(long, requires = "kubernetes", conflicts_with_all = ["policy_configmap", "policy_key"])]
        network_policies: bool,
        /// Serve Prometheus metrics on /metrics and the probes /healthz and /readyz here
        /// (e.g. 0.0.0.0:9464); off unless given.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Enforce, or only report would-be drops.
        #[arg(long, value_enum, default_value = "enforce")]
        mode: Mode,
        /// The bpffs directory to pin programs, links and maps under.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_BPFFS_DIR)]
        bpffs: PathBuf,
        /// Only pods with this `spec.nodeName` are local (default: every pod of the inventory).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// How to attach to interfaces (default: tcx on Linux >= 6.6, else netlink).
        #[arg(long, value_enum)]
        attach: Option<Attach>,
        /// Do not print allowed new flows, only denied and audited ones.
        #[arg(long)]
        quiet_allowed: bool,
        /// Capacity of the conntrack in entries, one per flow per door it crosses (1024 to
        /// 16777216). The default follows kube-proxy's sizing of the kernel's conntrack: 32768
        /// per online CPU, here from 65536 to 524288; a flow between two pods of this node takes two
        /// entries (the client's egress door, the server's ingress door). Rounded
        /// up to a power of two and allocated whole at start, 64 bytes per entry. A flow can only
        /// be in the 4 entries of its set; a new flow in a full set replaces the one of the four
        /// used least recently: that connection's next packet is judged as a new flow, and a reply
        /// may then be dropped (docs/runtime.md, "Sizing the conntrack"). A conntrack pinned by an
        /// earlier netcd keeps its size until `netcd detach`.
        #[arg(
            long,
            value_name = "N",
            value_parser = clap::value_parser!(u32)
                .range(i64::from(daemon::MIN_CONNTRACK_ENTRIES)..=i64::from(daemon::MAX_CONNTRACK_ENTRIES)),
        )]
        conntrack_entries: Option<u32>,
        /// An interface by which pod traffic leaves this node: the uplink, or the overlay's
        /// tunnel device (flannel.1); repeat for each. With it, a pod's call to a Service of the
        /// inventory (ClusterIP, external IP, NodePort) is judged after kube-proxy's
        /// translation, on the backend pod and targetPort; without, on the Service's address and
        /// port at the pod's veth (docs/runtime.md, "Services").
        #[arg(long = "uplink", value_name = "IFACE")]
        uplinks: Vec<String>,
        /// The packet mark bit netcd sets on Service calls between the client's veth and the
        /// hook that judges them after the translation: one bit no other component of the node
        /// uses (kube-proxy uses 0x4000 and 0x8000).
        #[arg(long, value_name = "BIT", default_value = "0x10000", value_parser = parse_mark)]
        service_mark: u32,
    },
    /// Show what is loaded: generation, endpoints, map sizes, counters.
    Status {
        /// The bpffs directory netcd pinned under.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_BPFFS_DIR)]
        bpffs: PathBuf,
    },
    /// Remove netc's classifiers from every interface and unpin everything: enforcement stops.
    Detach {
        /// The bpffs directory netcd pinned under.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_BPFFS_DIR)]
        bpffs: PathBuf,
    },
}

fn kernel_has_tcx() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 6)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run {
            ir,
            inventory,
            kubernetes,
            kubeconfig,
            policy_configmap,
            policy_key,
            network_policies,
            metrics_addr,
            log_format,
            mode,
            bpffs,
            node,
            attach,
            quiet_allowed,
            conntrack_entries,
            uplinks,
            service_mark,
        } => {
            init_logging(log_format);
            let attach = match attach {
                Some(Attach::Tcx) => AttachMode::Tcx,
                Some(Attach::Netlink) => AttachMode::Netlink,
                None if kernel_has_tcx() => AttachMode::Tcx,
                None => AttachMode::Netlink,
            };
            let config = RunConfig {
                // Unused with --kubernetes (clap requires both otherwise).
                ir: ir.unwrap_or_default(),
                inventory: inventory.unwrap_or_default(),
                audit: matches!(mode, Mode::Audit),
                bpffs,
                node,
                attach,
                report_allowed: !quiet_allowed,
                conntrack_entries: conntrack_entries.unwrap_or_else(daemon::default_conntrack_entries),
                uplinks,
                service_mark,
            };
            let metrics = Metrics::new(config.bpffs.clone());
            if let Some(addr) = metrics_addr {
                match metrics::serve(addr, Arc::clone(&metrics)) {
                    Ok(bound) => {
                        tracing::info!(target: "netcd", "metrics on http://{bound}/metrics, probes on /healthz and /readyz");
                    }
                    Err(e) => {
                        eprintln!("netcd: error: cannot serve metrics on {addr}: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            if kubernetes {
                let (namespace, name) = policy_configmap;
                let policy = if network_policies {
                    PolicySource::NetworkPolicies
                } else {
                    PolicySource::ConfigMap(PolicyConfigMap { namespace, name, key: policy_key })
                };
                let options = KubeOptions { kubeconfig, policy };
                netc_runtime::kube::run(&config, &options, &metrics).map_err(|e| e.to_string())
            } else {
                daemon::run(&config, Some(&metrics)).map_err(|e| e.to_string())
            }
        }
        Cmd::Status { bpffs } => status(&bpffs),
        Cmd::Detach { bpffs } => match datapath::detach_all(&bpffs) {
            Ok(interfaces) => {
                println!(
                    "netcd: detached from {} interface(s){}; removed everything under {}",
                    interfaces.len(),
                    if interfaces.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", interfaces.join(", "))
                    },
                    bpffs.display()
                );
                Ok(())
            }
            // Nothing to remove is what an uninstall script wants to hear, also the second time.
            Err(datapath::DatapathError::NotPinned(_)) => {
                println!("netcd: nothing of netc's is pinned under {}: nothing to remove", bpffs.display());
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netcd: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn doors(flags: u16) -> String {
    if flags & abi::DOOR_GUARDED == 0 {
        return "open".into();
    }
    let mut kinds = vec!["guarded"];
    for (bit, name) in [
        (abi::DOOR_ANY_PEER, "any-peer"),
        (abi::DOOR_ANY_PROTO, "any-protocol"),
        (abi::DOOR_ANY_PORT, "any-port"),
        (abi::DOOR_RANGES, "ranges"),
    ] {
        if flags & bit != 0 {
            kinds.push(name);
        }
    }
    kinds.join(",")
}

fn status(bpffs: &std::path::Path) -> Result<(), String> {
    datapath::check_pinned_layout(bpffs).map_err(|e| e.to_string())?;
    let maps = Maps::from_pins(bpffs).map_err(|e| e.to_string())?;
    let config = maps.config().map_err(|e| e.to_string())?;
    println!("datapath pinned under {}", bpffs.display());
    println!(
        "generation {}, epoch {}{}",
        config.generation,
        config.epoch,
        if config.flags & abi::CONFIG_REPORT_ALLOWED != 0 { " (reporting allowed flows)" } else { "" }
    );
    let links = datapath::pinned_link_interfaces(bpffs);
    println!("tcx links pinned: {}", if links.is_empty() { "none".to_owned() } else { links.join(", ") });
    let endpoints = maps.live_endpoints().map_err(|e| e.to_string())?;
    println!("endpoints: {}", endpoints.len());
    for (ifindex, ep) in &endpoints {
        let name =
            netc_runtime::netif::ifname(*ifindex).unwrap_or_else(|| format!("ifindex {ifindex} (gone)"));
        let mut flags = Vec::new();
        if ep.flags & abi::EP_AUDIT != 0 {
            flags.push("AUDIT");
        }
        if ep.flags & abi::EP_FAIL_CLOSED != 0 {
            flags.push("FAIL-CLOSED");
        }
        println!(
            "  {name:<16} endpoint {:<4} ingress {:<28} egress {:<28} {}",
            ep.id,
            doors(ep.door[usize::from(abi::INGRESS)]),
            doors(ep.door[usize::from(abi::EGRESS)]),
            flags.join(" ")
        );
    }
    let conntrack = daemon::pinned_conntrack_entries(bpffs).map_err(|e| e.to_string())?;
    println!("map entries:");
    for (name, n) in maps.counts().map_err(|e| e.to_string())? {
        match conntrack {
            Some(capacity) if name == abi::MAP_CONNTRACK => {
                println!(
                    "  {name:<18} {n} of {capacity} ({} sets of {})",
                    capacity / abi::CT_WAYS,
                    abi::CT_WAYS
                );
            }
            _ => println!("  {name:<18} {n}"),
        }
    }
    let stats = maps.stats().map_err(|e| e.to_string())?;
    println!(
        "packets: {} new flows passed, {} dropped, {} audited, {} not IP; {} events lost",
        stats[abi::STAT_PASSED_NEW as usize],
        stats[abi::STAT_DROPPED as usize],
        stats[abi::STAT_AUDITED as usize],
        stats[abi::STAT_NOT_IP as usize],
        stats[abi::STAT_EVENTS_LOST as usize]
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(extra: &[&str]) -> Result<Cli, clap::Error> {
        let mut args = vec!["netcd", "run", "--ir", "a.json", "--inventory", "b.yaml"];
        args.extend_from_slice(extra);
        Cli::try_parse_from(args)
    }

    fn conntrack_entries(cli: &Cli) -> Option<u32> {
        match cli.command {
            Cmd::Run { conntrack_entries, .. } => conntrack_entries,
            _ => panic!("not run"),
        }
    }

    #[test]
    fn conntrack_entries_default_and_bounds() {
        let cli = run_args(&[]).expect("parses");
        assert_eq!(conntrack_entries(&cli), None, "the default depends on the machine");
        let default = daemon::default_conntrack_entries();
        assert!(
            (daemon::MIN_DEFAULT_CONNTRACK_ENTRIES..=daemon::MAX_DEFAULT_CONNTRACK_ENTRIES)
                .contains(&default)
                && default.is_multiple_of(daemon::CONNTRACK_ENTRIES_PER_CPU)
        );
        for ok in ["1024", "32768", "16777216"] {
            let cli = run_args(&["--conntrack-entries", ok]).expect("in range");
            assert_eq!(conntrack_entries(&cli).map(|n| n.to_string()).as_deref(), Some(ok));
        }
        for bad in ["1023", "0", "16777217", "-5", "lots"] {
            let e = run_args(&[&format!("--conntrack-entries={bad}")]).expect_err("refused");
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}: {e}");
            let text = e.to_string();
            assert!(text.contains("--conntrack-entries"), "{text}");
            if bad.parse::<i64>().is_ok() {
                assert!(text.contains("1024..=16777216"), "the range is named: {text}");
            }
        }
    }
}
