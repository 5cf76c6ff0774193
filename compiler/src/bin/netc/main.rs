//! The `netc` command: all file IO, colour and exit codes live here; the library is pure.
//!
//! Exit codes: 0 success, 1 problems in the input (or, with `--check`, out-of-date output),
//! 2 usage or IO errors.

mod analyze;
mod cluster;
mod graph;
mod import;
mod input;
mod memory;
mod output;
mod report;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use netc::SourceFile;
use netc::diagnostics::{self, Diagnostic, Severity};

/// Out of memory: exit 2 with a message, not an abort (see `memory`).
#[global_allocator]
static ALLOCATOR: memory::ExitOnExhaustion = memory::ExitOnExhaustion;

const EXAMPLES: &str = "\
Examples:
  netc build policies.np                  write NetworkPolicy YAML to stdout
  netc build policies.np -o deploy/netpol one file per policy plus kustomization.yaml
  netc build --check -o deploy/netpol policies.np
                                          exit 1 with a diff if deploy/netpol is stale
  netc build --emit ir policies.np > policies.ir.json
                                          the IR that netcd enforces
  netc check policies.np                  diagnostics only
  netc fmt policies.np                    rewrite in canonical layout
  netc explain E0202                      what a diagnostic code means";

/// netc: Kubernetes network intent in, NetworkPolicy out.
#[derive(Parser, Debug)]
#[command(name = "netc", version, about, after_help = EXAMPLES)]
struct Cli {
    /// When to colour diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile intent to NetworkPolicy YAML (or IR).
    #[command(after_help = EXAMPLES)]
    Build(BuildArgs),
    /// Check intent and report diagnostics; write nothing.
    Check(CheckArgs),
    /// Rewrite files in canonical layout, keeping comments.
    Fmt(FmtArgs),
    /// Explain a flow (allowed or denied, and by which lines), or a diagnostic code (E0202).
    #[command(after_help = analyze::EXPLAIN_EXAMPLES)]
    Explain(analyze::ExplainArgs),
    /// Who can talk to whom on a cluster, per port: a table, CSV or JSON.
    #[command(after_help = analyze::MATRIX_EXAMPLES)]
    Matrix(analyze::MatrixArgs),
    /// The connectivity a change adds and removes (exit 0 none, 1 changed, 2 error).
    #[command(after_help = analyze::DIFF_EXAMPLES)]
    Diff(analyze::DiffArgs),
    /// Draw who may talk to whom, as Graphviz DOT or Mermaid.
    #[command(after_help = graph::EXAMPLES)]
    Graph(graph::GraphArgs),
    /// Write one self-contained HTML report: graph, matrix, doors, rules, warnings, source.
    #[command(after_help = report::EXAMPLES)]
    Report(report::ReportArgs),
    /// Turn NetworkPolicy YAML into netc source with the same meaning.
    #[command(after_help = import::EXAMPLES)]
    Import(import::ImportArgs),
    /// Serve editors over stdio: the language server (diagnostics as you type, hover, definition,
    /// references, rename, completion, formatting, quick fixes, outline). See docs/editors.md.
    Lsp,
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args, Debug)]
struct DiagnosticArgs {
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
    /// How to print diagnostics: for people, or JSON lines for CI and editors.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    message_format: MessageFormat,
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// Source files, compiled together in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output directory (YAML: one file per policy plus kustomization.yaml) or file (IR).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write nothing; exit 1 with a diff when the output directory is out of date.
    #[arg(long, requires = "output")]
    check: bool,
    /// What to produce.
    #[arg(long, value_enum, default_value_t = Emit::Yaml)]
    emit: Emit,
    /// The ConfigMap's name (`--emit configmap`).
    #[arg(long, value_name = "NAME", default_value = "netc-ir", value_parser = configmap_name)]
    configmap_name: String,
    /// The ConfigMap's namespace (`--emit configmap`).
    #[arg(long, value_name = "NAMESPACE", default_value = "netc-system", value_parser = configmap_namespace)]
    configmap_namespace: String,
    /// Judge the YAML with an independent NetworkPolicy evaluator against the IR on a cluster
    /// first; write nothing (exit 1) if they differ on any flow.
    #[arg(long)]
    verify: bool,
    /// A cluster: the program's assertions are also checked on its pods (E0502), it is
    /// checked against the program as by `netc check --cluster` (warnings), --verify runs on it
    /// (default: one synthesized from the program), and each of its nodes must have room for the
    /// build in its eBPF maps (fail when a map would be over half full, or over
    /// --max-map-entries). Files, directories (their .yaml/.yml/.json files) or - for standard
    /// input; repeat or separate with commas.
    #[arg(long, value_name = "INV", value_delimiter = ',')]
    cluster: Vec<PathBuf>,
    /// Print what the build costs on stderr: per namespace the NetworkPolicy objects, rules and
    /// bytes; with --cluster, per node the entries netcd needs in each eBPF map beside its limit
    /// and capacity (a table, or one JSON line with --message-format json).
    #[arg(long)]
    stats: bool,
    /// Fail (nothing written) when a node needs more of a map than this: 40% or 0.4 of every map,
    /// or MAP=N, MAP=40% for one map (endpoints, ipcache, cidrs, policy, port_ranges, frontends,
    /// rule_counters); repeatable. Needs --cluster. At most 50%: netcd writes a new generation
    /// beside the live one.
    #[arg(long, value_name = "LIMIT", requires = "cluster", value_parser = netc::stats::parse_map_limit)]
    max_map_entries: Vec<netc::stats::MapLimit>,
    /// Fail (nothing written) when a namespace gets more NetworkPolicy objects than this.
    #[arg(long, value_name = "N")]
    max_objects_per_namespace: Option<usize>,
    /// Fail (nothing written) when a namespace's NetworkPolicy objects have more rules than this.
    #[arg(long, value_name = "N")]
    max_rules_per_namespace: Option<usize>,
    /// Fail (nothing written) when a namespace's NetworkPolicy files take more bytes than this
    /// (a number, or with KiB or MiB: 512KiB).
    #[arg(long, value_name = "BYTES", value_parser = byte_count)]
    max_bytes_per_namespace: Option<usize>,
    #[command(flatten)]
    prove: ProveArgs,
    #[command(flatten)]
    diagnostics: DiagnosticArgs,
}

/// How the assertions are proved.
#[derive(Args, Debug, Default)]
pub(crate) struct ProveArgs {
    /// Pods' addresses lie in this block (IPv4 or IPv6; repeat for several, e.g. one per family):
    /// assertions are proved for pods at these addresses only, so an address block that covers
    /// none of them cannot break a `!->` (docs/language.md, "Assertions").
    #[arg(long = "pod-cidr", value_name = "CIDR", value_parser = pod_cidr)]
    pub pod_cidrs: Vec<ipnet::IpNet>,
}

fn pod_cidr(text: &str) -> Result<ipnet::IpNet, String> {
    let net: ipnet::IpNet = text.parse().map_err(|_| {
        format!("`{text}` is not an address block: write it as 10.244.0.0/16 or fd00:10:244::/56")
    })?;
    if net.trunc() != net {
        return Err(format!("`{text}` has bits set after its prefix: did you mean `{}`?", net.trunc()));
    }
    Ok(net)
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Source files, checked together in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also check the program against a cluster: its assertions on the cluster's pods (E0502),
    /// namespaces it uses that the cluster lacks, selectors matching none of its pods, address
    /// blocks covering its pods (warnings; with --deny-warnings they fail the check).
    #[command(flatten)]
    cluster: cluster::ClusterArgs,
    #[command(flatten)]
    prove: ProveArgs,
    #[command(flatten)]
    diagnostics: DiagnosticArgs,
}

#[derive(Args, Debug)]
struct FmtArgs {
    /// Source files to format in place.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write nothing; exit 1 with a diff when a file is not formatted.
    #[arg(long)]
    check: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Emit {
    /// NetworkPolicy YAML.
    Yaml,
    /// The IR as JSON, for netcd.
    Ir,
    /// The IR as JSON in a ConfigMap, for `netcd run --kubernetes` (see docs/kubernetes.md).
    Configmap,
}

/// `--max-bytes-per-namespace`: a number of bytes, or KiB / MiB of them.
fn byte_count(value: &str) -> Result<usize, String> {
    let (number, unit) = match value.trim() {
        v if v.ends_with("KiB") => (&v[..v.len() - 3], 1 << 10),
        v if v.ends_with("MiB") => (&v[..v.len() - 3], 1 << 20),
        v => (v, 1),
    };
    number
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("`{value}` is not a number of bytes (as 1048576, 512KiB or 1MiB)"))
}

fn configmap_name(name: &str) -> Result<String, String> {
    netc::check::dns1123_subdomain(name).map(|()| name.to_owned()).map_err(|rule| {
        format!(
            "`{name}` {}: a ConfigMap name is a DNS-1123 subdomain (lower-case letters, digits, `-` and `.`, at most 253 characters)",
            diagnostics::name_rule_words(rule)
        )
    })
}

fn configmap_namespace(name: &str) -> Result<String, String> {
    netc::check::dns1123_label(name).map(|()| name.to_owned()).map_err(|rule| {
        format!(
            "`{name}` {}: a namespace name is a DNS-1123 label (lower-case letters, digits and `-`, at most 63 characters)",
            diagnostics::name_rule_words(rule)
        )
    })
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum MessageFormat {
    /// Rustc-style, with source excerpts.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ColorChoice {
    /// Colour when stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// What went wrong, as far as the exit code is concerned.
#[derive(Debug)]
enum Failure {
    /// The input has errors (already reported), or output is stale.
    Input,
    /// Usage or IO error, with a message for stderr.
    Io(String),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let colour = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let result = match cli.command {
        Command::Build(args) => build(&args, colour),
        Command::Check(args) => check(&args, colour),
        Command::Fmt(args) => fmt(&args, colour),
        Command::Explain(args) => analyze::explain(&args, colour),
        Command::Matrix(args) => analyze::matrix(&args, colour),
        Command::Diff(args) => analyze::diff(&args, colour),
        Command::Graph(args) => graph::run(&args, colour),
        Command::Report(args) => report::run(&args, colour),
        Command::Import(args) => import::run(&args, colour),
        Command::Lsp => netc::lsp::run_stdio().map_err(|e| Failure::Io(e.to_string())),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "netc", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input) => ExitCode::from(1),
        Err(Failure::Io(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// Read every source file. IO errors name the file (exit 2); a file too large or not UTF-8 is a
/// located diagnostic (E0002, E0003), reported in the chosen format with the others (exit 1).
fn read_sources(files: &[PathBuf], args: &DiagnosticArgs, colour: bool) -> Result<Vec<SourceFile>, Failure> {
    read_sources_named(files, source_name, args, colour)
}

/// [`read_sources`], naming each file with `name`.
fn read_sources_named(
    files: &[PathBuf],
    name: fn(&Path) -> String,
    args: &DiagnosticArgs,
    colour: bool,
) -> Result<Vec<SourceFile>, Failure> {
    let mut sources = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    for (i, p) in files.iter().enumerate() {
        let name = name(p);
        match input::read_text(p) {
            Ok(text) => sources.push(SourceFile::new(name, text)),
            Err(input::ReadError::Io(e)) => {
                return Err(Failure::Io(format!("cannot read {}: {e}", p.display())));
            }
            Err(input::ReadError::TooLarge { bytes, limit }) => {
                problems.push(diagnostics::from_syntax(
                    i,
                    &netc::syntax::SyntaxError::InputTooLarge { bytes, limit },
                ));
                sources.push(SourceFile::new(name, String::new()));
            }
            Err(input::ReadError::NotUtf8 { bytes, offset }) => {
                let byte = bytes.get(offset).copied().unwrap_or_default();
                // The valid text before the bad byte keeps its offsets; the rest is shown lossily.
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let end = u32::try_from(offset + char::REPLACEMENT_CHARACTER.len_utf8()).unwrap_or(u32::MAX);
                let start = u32::try_from(offset).unwrap_or(u32::MAX);
                let span = netc::ast::Span { start, end };
                problems
                    .push(diagnostics::from_syntax(i, &netc::syntax::SyntaxError::NotUtf8 { span, byte }));
                sources.push(SourceFile::new(name, text));
            }
        }
    }
    if !problems.is_empty() {
        report(&problems, &sources, args, colour)?;
    }
    Ok(sources)
}

/// The name a source goes by in diagnostics, headers and `netc.dev/source`: relative to the
/// working directory when it lies below it, without a leading `./`, so that the generated files
/// do not change with where a checkout happens to live (a CI runner's path, say).
fn source_name(path: &Path) -> String {
    let relative =
        std::env::current_dir().ok().and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
    let path = relative.as_deref().unwrap_or(path);
    let path = path.strip_prefix(".").unwrap_or(path);
    path.display().to_string()
}

/// Print diagnostics to stderr; fail when there are errors (or warnings with `--deny-warnings`).
fn report(
    diags: &[Diagnostic],
    sources: &[SourceFile],
    args: &DiagnosticArgs,
    colour: bool,
) -> Result<(), Failure> {
    let text = match args.message_format {
        MessageFormat::Human => diagnostics::render(diags, sources, colour),
        MessageFormat::Json => diagnostics::render_json(diags, sources),
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = diags.len() - errors;
    if args.message_format == MessageFormat::Human && !diags.is_empty() {
        let _ = writeln!(err, "{}", summary(errors, warnings));
    }
    if errors > 0 || (args.deny_warnings && warnings > 0) {
        if errors == 0 && args.message_format == MessageFormat::Human {
            let _ = writeln!(err, "error: warnings are denied (--deny-warnings)");
        }
        return Err(Failure::Input);
    }
    Ok(())
}

fn summary(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}s") };
    match (errors, warnings) {
        (0, w) => format!("{} emitted", plural(w, "warning")),
        (e, 0) => format!("netc stopped: {}", plural(e, "error")),
        (e, w) => format!("netc stopped: {}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

fn compile(
    files: &[PathBuf],
    args: &DiagnosticArgs,
    colour: bool,
) -> Result<(Vec<SourceFile>, netc_ir::Ir), Failure> {
    compile_with(files, args, &netc::Options::default(), colour)
}

/// [`compile`] with options (a cluster to check the assertions on, or assertions skipped).
pub(crate) fn compile_with(
    files: &[PathBuf],
    args: &DiagnosticArgs,
    options: &netc::Options<'_>,
    colour: bool,
) -> Result<(Vec<SourceFile>, netc_ir::Ir), Failure> {
    let sources = read_sources(files, args, colour)?;
    let out = netc::compile_with(&sources, options);
    report(&out.diagnostics, &sources, args, colour)?;
    let ir = out.ir.ok_or(Failure::Input)?;
    Ok((sources, ir))
}

/// Print the warnings about a given cluster in the chosen format; fail when warnings are denied.
fn warn_about_cluster(
    given: &cluster::Cluster,
    ir: &netc_ir::Ir,
    sources: &[SourceFile],
    args: &DiagnosticArgs,
) -> Result<(), Failure> {
    let warnings = match args.message_format {
        MessageFormat::Human => cluster::warn(given, &[ir], sources),
        MessageFormat::Json => cluster::warn_json(given, &[ir], sources),
    };
    if args.deny_warnings && warnings > 0 {
        if args.message_format == MessageFormat::Human {
            eprintln!("error: warnings about the cluster are denied (--deny-warnings)");
        }
        return Err(Failure::Input);
    }
    Ok(())
}

fn build(args: &BuildArgs, colour: bool) -> Result<(), Failure> {
    let given = cluster::read(&args.cluster, analyze::reads_stdin(&args.files))?;
    let options = netc::Options {
        cluster: given.as_ref().map(|c| &c.inventory),
        pod_cidrs: &args.prove.pod_cidrs,
        ..netc::Options::default()
    };
    let (sources, ir) = compile_with(&args.files, &args.diagnostics, &options, colour)?;
    if let Some(given) = &given {
        warn_about_cluster(given, &ir, &sources, &args.diagnostics)?;
    }
    if args.verify {
        let to_dir = args.output.is_some() && args.emit == Emit::Yaml;
        analyze::verify(&ir, given.as_ref().map(|c| &c.inventory), to_dir)?;
    }
    budget(args, &ir, given.as_ref().map(|g| &g.inventory))?;
    match args.emit {
        Emit::Ir | Emit::Configmap => {
            let json = if args.emit == Emit::Ir {
                ir.to_json()
            } else {
                netc::yaml::configmap(
                    &ir.to_json(),
                    &args.configmap_name,
                    &args.configmap_namespace,
                    &ir.sources,
                )
            };
            match &args.output {
                None => write_stdout(&json),
                Some(path) if args.check => output::check_file(path, &json),
                Some(path) => output::write_atomic(path, json.as_bytes()),
            }
        }
        Emit::Yaml => {
            let policies = netc::codegen::network_policies(&ir);
            let written = match &args.output {
                None => stream_stdout(|out| netc::yaml::write_stream(out, &policies, &ir.sources)),
                Some(dir) => {
                    let files = output::yaml_files(&policies, &ir.sources);
                    if args.check {
                        output::check_dir(dir, &files, &ir.sources)
                    } else {
                        output::write_dir(dir, &files, &ir.sources)
                    }
                }
            };
            // The process ends right after this: freeing a large program's objects one by one
            // (a twentieth of the build at 100k arrows) would only delay the exit.
            std::mem::forget((policies, ir));
            written
        }
    }
}

/// `--stats` and the budgets: print what the build costs, and fail (before anything is written)
/// when a namespace is over a `--max-...-per-namespace` limit or a node of the cluster would need
/// more of a map than it may take (docs/cli.md, "The build's budget").
fn budget(args: &BuildArgs, ir: &netc_ir::Ir, inventory: Option<&netc_ir::Inventory>) -> Result<(), Failure> {
    use netc::stats;
    let limits = stats::NamespaceLimits {
        objects: args.max_objects_per_namespace,
        rules: args.max_rules_per_namespace,
        bytes: args.max_bytes_per_namespace,
    };
    if !args.stats && !limits.any() && inventory.is_none() {
        return Ok(());
    }
    let namespaces = if args.stats || limits.any() {
        stats::namespaces(&netc::codegen::network_policies(ir), &ir.sources)
    } else {
        Vec::new()
    };
    let nodes = inventory.map(|inventory| stats::nodes(ir, inventory));
    let json = args.diagnostics.message_format == MessageFormat::Json;
    if args.stats {
        if json {
            eprintln!("{}", stats::to_json(&namespaces, nodes.as_deref(), &args.max_map_entries));
        } else {
            eprint!("{}", stats::render_table(&namespaces, nodes.as_deref(), &args.max_map_entries));
        }
    }
    let mut over = stats::namespaces_over(&namespaces, &limits);
    if let Some(nodes) = &nodes {
        over.extend(stats::nodes_over(nodes, &args.max_map_entries));
    }
    if over.is_empty() {
        return Ok(());
    }
    for e in &over {
        if json {
            let text = e.text();
            eprintln!(
                "{}",
                serde_json::json!({"severity": "error", "code": null, "message": e.message, "text": text})
            );
        } else {
            eprint!("{}", e.text());
        }
    }
    if !json {
        eprintln!("error: the build is over its budget; nothing written");
    }
    Err(Failure::Input)
}

fn check(args: &CheckArgs, colour: bool) -> Result<(), Failure> {
    let given = cluster::read(&args.cluster.paths, analyze::reads_stdin(&args.files))?;
    let options = netc::Options {
        cluster: given.as_ref().map(|c| &c.inventory),
        pod_cidrs: &args.prove.pod_cidrs,
        ..netc::Options::default()
    };
    let (sources, ir) = compile_with(&args.files, &args.diagnostics, &options, colour)?;
    match &given {
        Some(given) => warn_about_cluster(given, &ir, &sources, &args.diagnostics),
        None => Ok(()),
    }
}

fn fmt(args: &FmtArgs, colour: bool) -> Result<(), Failure> {
    let human = DiagnosticArgs { deny_warnings: false, message_format: MessageFormat::Human };
    let sources = read_sources(&args.files, &human, colour)?;
    let mut stale = false;
    let mut failed = false;
    for (i, source) in sources.iter().enumerate() {
        let formatted = match netc::fmt::format(&source.text) {
            Ok(f) => f,
            Err(e) => {
                let d = diagnostics::from_syntax(i, &e);
                eprint!("{}", diagnostics::render(&[d], &sources, colour));
                failed = true;
                continue;
            }
        };
        if formatted == source.text {
            continue;
        }
        if args.check {
            stale = true;
            print!("{}", output::unified_diff(&source.name, &source.text, &formatted));
        } else {
            // Through a symbolic link to the file it names: replacing the link with a formatted
            // copy would leave the real file unformatted.
            let path = std::fs::canonicalize(&source.name).unwrap_or_else(|_| PathBuf::from(&source.name));
            output::write_atomic(&path, formatted.as_bytes())?;
            eprintln!("formatted {}", source.name);
        }
    }
    if failed || stale { Err(Failure::Input) } else { Ok(()) }
}

fn explain(code: &str) -> Result<(), Failure> {
    match diagnostics::explain(code) {
        Some(text) => write_stdout(&text),
        None => Err(Failure::Io(format!(
            "no diagnostic code `{code}`; codes look like E0202 or W0203 (see docs/diagnostics.md)"
        ))),
    }
}

fn write_stdout(text: &str) -> Result<(), Failure> {
    stream_stdout(|out| out.write_all(text.as_bytes()))
}

/// Write to stdout through a large buffer (a build's stream is written document by document).
fn stream_stdout(
    write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`netc build | head`) is the reader's choice, not our failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::Io(format!("cannot write to stdout: {e}"))),
    }
}
