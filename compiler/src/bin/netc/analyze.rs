//! `netc explain` (of a flow), `netc matrix`, `netc diff` and `netc build --verify`: reading the
//! files, clusters and git revisions, printing, and exit codes. The analyses themselves are in
//! the library (`netc::analysis`).

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::{Args, ValueEnum};
use netc::SourceFile;
use netc::analysis::diff::diff as connectivity_diff;
use netc::analysis::explain::explain as explain_flow;
use netc::analysis::matrix::{Matrix, Probe};
use netc::analysis::synth::synthesize;
use netc::analysis::table::render_table;
use netc::analysis::verify::{Verification, verify as verify_yaml};
use netc::diagnostics;
use netc_ir::{Inventory, Ir, Protocol};

use crate::cluster::{self, ClusterArgs};
use crate::{DiagnosticArgs, Failure, input, output, stream_stdout, write_stdout};

pub const EXPLAIN_EXAMPLES: &str = "\
Examples:
  netc explain E0202                      what a diagnostic code means
  netc explain shop.np --cluster cluster.yaml --from shop/web-1 --to shop/db-0:5432
                                          why this flow is allowed or denied, and the line that allows it
  netc explain shop.np --cluster cluster.yaml --from 10.0.0.7 --to payments:443
                                          ends may be addresses or ExternalAddress names";

pub const MATRIX_EXAMPLES: &str = "\
Examples:
  netc matrix shop.np --cluster cluster.yaml                    who can talk to whom, as a table
  netc matrix shop.np --cluster cluster.yaml --format csv > m.csv
  netc matrix shop.np --cluster cluster.yaml --ports 80,443,53/udp --format json";

pub const DIFF_EXAMPLES: &str = "\
Examples:
  netc diff old.np new.np                                 on a cluster synthesized from both
  netc diff policies/ ../other/policies/ --cluster cluster.yaml
  netc diff origin/main:policies policies                 what this branch changes (pull requests)
Exit status: 0 no connectivity change, 1 connectivity changed, 2 error.";

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A diagnostic code (E0202), or the source files of the flow to explain.
    #[arg(required = true, value_name = "CODE|FILE")]
    items: Vec<String>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Who opens the connection: NS/POD, an IP address, or an ExternalAddress name.
    #[arg(long, value_name = "NS/POD|ADDRESS")]
    from: Option<String>,
    /// Where to: NS/POD:PORT[/PROTO], ADDRESS:PORT ([V6]:PORT), or NAME:PORT; PORT may be a
    /// container port's name.
    #[arg(long, value_name = "NS/POD:PORT[/PROTO]")]
    to: Option<String>,
    #[command(flatten)]
    diagnostics: DiagnosticArgs,
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// Source files, compiled together in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// How to print the matrix.
    #[arg(long, value_enum, default_value_t = MatrixFormat::Table)]
    format: MatrixFormat,
    /// The ports to try, e.g. `80,443,53/udp` (TCP unless marked); default: every port the rules
    /// mention and one they do not.
    #[arg(long, value_name = "PORTS")]
    ports: Option<String>,
    /// Wrap the table at this many columns (default: $COLUMNS, else 120).
    #[arg(long)]
    width: Option<usize>,
    #[command(flatten)]
    diagnostics: DiagnosticArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum MatrixFormat {
    /// Rows send, columns receive; pods that behave alike merged; wrapped to the width.
    Table,
    /// Every pod and address, one row and column each, every probe spelled out.
    Grid,
    /// `from,to,<probe>...` with 1 (allowed) or 0.
    Csv,
    /// `{"probes", "endpoints", "allowed": [{"from", "to", "probes"}]}`.
    Json,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The program before: a .np file, a directory of .np files, or REV:PATH (read with git).
    old: String,
    /// The program after, in the same forms.
    new: String,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// `text` for a terminal; `markdown` for a pull-request comment (a table of the connectivity
    /// added and removed, with the source lines responsible).
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    format: DiffFormat,
}

/// How `netc diff` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffFormat {
    /// `+`/`-` lines per pod pair.
    Text,
    /// A Markdown table per workload pair, with the lines responsible.
    Markdown,
}

/// Whether a source is read from standard input.
pub fn reads_stdin(files: &[PathBuf]) -> bool {
    files.iter().any(|f| f == Path::new("-"))
}

/// The given cluster (with its warnings on stderr: see `cluster::warn`), or one synthesized from
/// `irs` (no warnings: its pods are what the program names, at addresses no block covers).
fn cluster_for(
    paths: &[PathBuf],
    stdin_taken: bool,
    irs: &[&Ir],
    sources: &[SourceFile],
) -> Result<Inventory, Failure> {
    match cluster::read(paths, stdin_taken)? {
        Some(given) => {
            cluster::warn(&given, irs, sources);
            Ok(given.inventory)
        }
        None => Ok(synthesize(irs)),
    }
}

fn looks_like_code(s: &str) -> bool {
    s.len() == 5 && s.starts_with(['E', 'W', 'e', 'w']) && s[1..].chars().all(|c| c.is_ascii_digit())
}

pub fn explain(args: &ExplainArgs, colour: bool) -> Result<(), Failure> {
    if args.from.is_none() && args.to.is_none() && !args.cluster.given() {
        return match args.items.as_slice() {
            [code] if looks_like_code(code) || !Path::new(code).exists() => crate::explain(code),
            _ => Err(Failure::Io(
                "to explain a flow, give --from NS/POD and --to NS/POD:PORT (and --cluster INV); \
                 to explain a diagnostic, give one code such as E0202"
                    .to_owned(),
            )),
        };
    }
    let (Some(from), Some(to)) = (&args.from, &args.to) else {
        return Err(Failure::Io("explaining a flow needs both --from and --to".to_owned()));
    };
    let files: Vec<PathBuf> = args.items.iter().map(PathBuf::from).collect();
    // Assertions are not checked: a flow's verdict does not depend on them, and explaining a
    // flow is how one looks into an assertion that fails (E0501, E0502).
    let options = netc::Options { assertions: netc::Assertions::Skip, ..netc::Options::default() };
    let (sources, ir) = crate::compile_with(&files, &args.diagnostics, &options, colour)?;
    let inventory = cluster_for(&args.cluster.paths, reads_stdin(&files), &[&ir], &sources)?;
    if !args.cluster.given() {
        eprintln!(
            "note: no --cluster: explaining on a cluster synthesized from the program ({} pods; `netc matrix` lists them)",
            inventory.pods.len()
        );
    }
    let explanation =
        explain_flow(&sources, &ir, &inventory, from, to).map_err(|e| Failure::Io(e.to_string()))?;
    write_stdout(&explanation.render())
}

/// `80,443/udp` as probes.
fn parse_ports(text: &str) -> Result<Vec<Probe>, Failure> {
    let mut probes = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (port, protocol) = match item.split_once('/') {
            None => (item, Protocol::Tcp),
            Some((port, proto)) => (
                port,
                match proto.to_ascii_lowercase().as_str() {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    _ => return Err(Failure::Io(format!("--ports: `{proto}` is not tcp, udp or sctp"))),
                },
            ),
        };
        let number = port
            .parse::<u16>()
            .ok()
            .filter(|n| *n != 0)
            .ok_or_else(|| Failure::Io(format!("--ports: `{port}` is not a port number in 1..65535")))?;
        let probe = Probe::new(protocol, number);
        if !probes.contains(&probe) {
            probes.push(probe);
        }
    }
    if probes.is_empty() {
        return Err(Failure::Io("--ports: give at least one port, e.g. 80,443,53/udp".to_owned()));
    }
    Ok(probes)
}

pub fn matrix(args: &MatrixArgs, colour: bool) -> Result<(), Failure> {
    let probes = args.ports.as_deref().map(parse_ports).transpose()?;
    let (sources, ir) = crate::compile(&args.files, &args.diagnostics, colour)?;
    let inventory = cluster_for(&args.cluster.paths, reads_stdin(&args.files), &[&ir], &sources)?;
    if !args.cluster.given() {
        eprintln!(
            "note: no --cluster: the matrix of a cluster synthesized from the program (one pod per workload)"
        );
    }
    let probes = probes.unwrap_or_else(|| Matrix::default_probes(&ir, &inventory));
    let matrix = Matrix::compute(&ir, &inventory, &probes);
    if matrix.split_by_family > 0 {
        eprintln!(
            "note: {} pairs of dual-stack ends are judged differently over IPv4 and over IPv6 (an address block \
             matches one of a pod's addresses and not the other); their cells show what both families allow; \
             `netc explain --to ADDRESS:PORT` judges one family",
            matrix.split_by_family
        );
    }
    let width =
        args.width.or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())).unwrap_or(120);
    // CSV and JSON are for machines and large clusters: streamed pair by pair, never held.
    match args.format {
        MatrixFormat::Table => write_stdout(&render_table(&matrix, &inventory, &[&ir], width)),
        MatrixFormat::Grid => write_stdout(&matrix.render_text()),
        MatrixFormat::Csv => stream_stdout(|out| matrix.write_csv(out)),
        MatrixFormat::Json => stream_stdout(|out| matrix.write_json(out)),
    }
}

/// One side of a diff: its sources, read from the working tree or from git.
fn load_side(spec: &str) -> Result<Vec<SourceFile>, Failure> {
    let path = Path::new(spec);
    if path.is_dir() {
        let files = input::files_in_tree(path, &[".np"]).map_err(Failure::Io)?;
        if files.is_empty() {
            return Err(Failure::Io(format!("{spec}: no .np files in this directory")));
        }
        return files.iter().map(|f| read_source(f, &f.display().to_string())).collect();
    }
    if path.exists() {
        return Ok(vec![read_source(path, spec)?]);
    }
    let Some((rev, inner)) = spec.split_once(':') else {
        return Err(Failure::Io(format!(
            "{spec}: no such file or directory (for a git revision write REV:PATH)"
        )));
    };
    let object = format!("{rev}:{inner}");
    let kind = git(&["cat-file", "-t", "--end-of-options", &object])
        .map_err(|e| Failure::Io(format!("{spec}: not a file or directory, and git cannot read it: {e}")))?;
    if kind.trim() == "tree" {
        let listing = git(&["ls-tree", "-r", "-z", "--name-only", "--end-of-options", &object])
            .map_err(|e| Failure::Io(format!("{spec}: {e}")))?;
        let mut names: Vec<&str> = listing.split('\0').filter(|n| n.ends_with(".np")).collect();
        names.sort_unstable();
        if names.is_empty() {
            return Err(Failure::Io(format!("{spec}: no .np files in this directory at {rev}")));
        }
        let prefix =
            if inner.is_empty() || inner.ends_with('/') { inner.to_owned() } else { format!("{inner}/") };
        names
            .iter()
            .map(|n| {
                let object = format!("{rev}:{prefix}{n}");
                git(&["show", "--end-of-options", &object])
                    .map(|text| SourceFile::new(object.clone(), text))
                    .map_err(Failure::Io)
            })
            .collect()
    } else {
        let text =
            git(&["show", "--end-of-options", &object]).map_err(|e| Failure::Io(format!("{spec}: {e}")))?;
        Ok(vec![SourceFile::new(object, text)])
    }
}

/// One source of a diff side, within netc's input bounds; a problem ends the diff (exit 2).
fn read_source(path: &Path, name: &str) -> Result<SourceFile, Failure> {
    input::read_text(path)
        .map(|text| SourceFile::new(name, text))
        .map_err(|e| Failure::Io(format!("cannot read {name}: {}", e.message())))
}

/// Run git in the current directory; its stdout (read no further than netc's input bound), or its
/// stderr as the error. Callers put `--end-of-options` before arguments taken from the command
/// line, so that a `REV:PATH` starting with `-` is never read as an option.
fn git(args: &[&str]) -> Result<String, String> {
    use std::io::Read;
    let mut child = Command::new("git")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let limit = input::max_input_bytes();
    let mut stdout = Vec::new();
    let read = child.stdout.take().map(|s| s.take(limit.saturating_add(1)).read_to_end(&mut stdout));
    if read.is_some_and(|r| r.is_ok()) && stdout.len() as u64 > limit {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "git printed more than {limit} bytes (set {} to change the bound)",
            input::MAX_INPUT_ENV
        ));
    }
    let out = child.wait_with_output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        String::from_utf8(stdout).map_err(|_| "git printed something that is not UTF-8".to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Compile one side of a diff; errors are printed and end the diff with exit 2.
fn compile_side(label: &str, spec: &str, colour: bool) -> Result<(Vec<SourceFile>, Ir), Failure> {
    let sources = load_side(spec)?;
    let out = netc::compile(&sources);
    if out.has_errors() {
        eprint!("{}", diagnostics::render(&out.diagnostics, &sources, colour));
    }
    match out.ir {
        Some(ir) => Ok((sources, ir)),
        None => Err(Failure::Io(format!("{label} ({spec}) does not compile; nothing compared"))),
    }
}

pub fn diff(args: &DiffArgs, colour: bool) -> Result<(), Failure> {
    let (old_sources, old) = compile_side("OLD", &args.old, colour)?;
    let (new_sources, new) = compile_side("NEW", &args.new, colour)?;
    let mut sources = old_sources;
    sources.extend(new_sources);
    let stdin_taken = args.old == "-" || args.new == "-";
    let inventory = match cluster::read(&args.cluster.paths, stdin_taken)? {
        Some(given) => {
            cluster::warn(&given, &[&new], &sources);
            given.inventory
        }
        None => {
            let inventory = synthesize(&[&old, &new]);
            eprintln!(
                "note: no --cluster: compared on a cluster synthesized from both programs ({} pods, {} addresses; see docs/analysis.md)",
                inventory.pods.len(),
                inventory.externals.len()
            );
            inventory
        }
    };
    let change = connectivity_diff(&old, &new, &inventory);
    let text = match args.format {
        DiffFormat::Text => change.render(),
        DiffFormat::Markdown => netc::analysis::review::markdown(&change, &old, &new, &inventory),
    };
    write_stdout(&text)?;
    if change.is_empty() { Ok(()) } else { Err(Failure::Input) }
}

/// `netc build --verify`: judge the YAML `build` is about to write against the IR; print the
/// first differing flow and fail (exit 1) on any difference. `to_dir`: the YAML goes to an output
/// directory (one document per file) rather than one stream.
/// `given`: the cluster of `--cluster` (its warnings already printed), else one is synthesized.
pub fn verify(ir: &Ir, given: Option<&Inventory>, to_dir: bool) -> Result<(), Failure> {
    let synthesized;
    let inventory = match given {
        Some(inventory) => inventory,
        None => {
            synthesized = synthesize(&[ir]);
            &synthesized
        }
    };
    let policies = netc::codegen::network_policies(ir);
    let documents: Vec<String> = if to_dir {
        output::yaml_files(&policies, &ir.sources)
            .into_iter()
            .filter(|(name, _)| name != "kustomization.yaml")
            .map(|(_, text)| text)
            .collect()
    } else {
        vec![netc::yaml::render_stream(&policies, &ir.sources)]
    };
    let texts: Vec<&str> = documents.iter().map(String::as_str).collect();
    let on = if given.is_some() { "the given cluster" } else { "a cluster synthesized from the program" };
    match verify_yaml(ir, &texts, inventory) {
        Ok(Verification::Agree { flows, endpoints, probes }) => {
            eprintln!(
                "verified: the {} generated NetworkPolicies mean what the source says on {flows} flows \
                 ({endpoints} pods and addresses, {probes} ports each, {on})",
                policies.len()
            );
            Ok(())
        }
        Ok(Verification::Differ(mismatch)) => {
            eprintln!(
                "error: --verify: the generated NetworkPolicies do not mean what the source says; nothing written"
            );
            eprintln!("{mismatch}");
            eprintln!("  this is a bug in netc: please report it with the source");
            Err(Failure::Input)
        }
        Err(e) => {
            eprintln!("error: --verify: {e}; nothing written");
            Err(Failure::Input)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_with_protocols_and_reject_nonsense() {
        let probes = parse_ports("80, 443/udp,80").map_err(|_| ()).expect("valid");
        assert_eq!(probes, [Probe::new(Protocol::Tcp, 80), Probe::new(Protocol::Udp, 443)]);
        assert!(parse_ports("0").is_err());
        assert!(parse_ports("80/icmp").is_err());
        assert!(parse_ports(",").is_err());
        assert!(looks_like_code("E0202") && looks_like_code("w0101") && !looks_like_code("shop.np"));
    }
}
