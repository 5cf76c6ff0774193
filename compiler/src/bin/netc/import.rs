//! `netc import`: NetworkPolicy YAML in, netc source with the same meaning out.

use std::path::{Path, PathBuf};

use clap::Args;
use netc::SourceFile;
use netc::analysis::synth::synthesize;
use netc::analysis::verify::{Verification, verify};

use crate::cluster::{self, Cluster};
use netc::diagnostics::{self, Diagnostic, Severity};

use crate::{DiagnosticArgs, Failure, output, write_stdout};

pub const EXAMPLES: &str = "\
Examples:
  kubectl get networkpolicies -A -o yaml | netc import - > policies.np
                                          a cluster's policies as netc source
  netc import deploy/netpol/*.yaml -o policies.np
                                          files of a repository, written atomically
  netc import --verify --cluster cluster.yaml netpol.yaml
                                          also judge every flow of a cluster both ways
  netc import --emit ir netpol/*.yaml > policies.ir.json
                                          the objects one to one as IR, for netcd to enforce
                                          (verdicts name the object and rule index)";

/// What `netc import` writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportEmit {
    /// netc source with the same meaning.
    Source,
    /// The objects lowered one to one to IR JSON, for `netcd run --ir`: each rule keeps its
    /// object's namespace/name and its index, which netcd's verdicts print.
    Ir,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// NetworkPolicy YAML or JSON files: single objects, multi-document streams, `List`s; `-`
    /// reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write the source to this file (atomically) instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Check that the source means what the YAML means: judge every flow of a cluster (given
    /// with --cluster, or synthesized from the source) with the NetworkPolicy evaluator on the
    /// YAML and with the IR evaluator on the source; write nothing if they differ.
    #[arg(long)]
    verify: bool,
    /// The cluster for --verify (`kubectl get ns,pods -A -o yaml`): files, directories or -;
    /// repeat the option or separate with commas.
    #[arg(long, value_name = "INV", requires = "verify", value_delimiter = ',')]
    cluster: Vec<PathBuf>,
    /// `source` (netc source) or `ir` (the objects one to one as IR JSON, for netcd).
    #[arg(long, value_enum, default_value = "source")]
    emit: ImportEmit,
    #[command(flatten)]
    diagnostics: DiagnosticArgs,
}

/// The name a file goes by in messages and in the header: `<stdin>` for `-`.
fn file_name(path: &Path) -> String {
    if path == Path::new("-") { "<stdin>".to_owned() } else { path.display().to_string() }
}

pub fn run(args: &ImportArgs, colour: bool) -> Result<(), Failure> {
    // Files too large or not UTF-8 are E0002/E0003, reported in the chosen format (exit 1).
    let sources = crate::read_sources_named(&args.files, file_name, &args.diagnostics, colour)?;
    let (objects, mut problems) = netc::import::read(&sources);
    let report = |diags: &[Diagnostic]| crate::report(diags, &sources, &args.diagnostics, colour);
    if problems.iter().any(|d| d.severity == Severity::Error) {
        return report(&problems).and(Err(Failure::Input));
    }
    let policies = &objects.policies;
    let texts: Vec<(String, String)> = sources.iter().map(|s| (s.name.clone(), s.text.clone())).collect();
    let kept = netc::import::last_of_each(policies);
    if args.emit == ImportEmit::Ir {
        // What `kubectl apply` would leave: the last of objects with one namespace and name.
        let objects_kept: Vec<_> = kept.iter().map(|&i| policies[i].clone()).collect();
        let origins: Vec<_> = kept.iter().map(|&i| objects.origin(i, &sources)).collect();
        let ir = match netc::import::to_ir(&objects_kept, &origins) {
            Ok(ir) => ir,
            Err(e) => {
                problems.push(diagnostics::from_import(&e, objects.loc_of(&e)));
                return report(&problems).and(Err(Failure::Input));
            }
        };
        report(&problems)?;
        if args.verify {
            verify_ir(&ir, &texts, given_cluster(args)?)?;
        }
        let json = ir.to_json();
        return match &args.output {
            None => write_stdout(&json),
            Some(path) => output::write_atomic(path, json.as_bytes()),
        };
    }
    let source = match netc::import::import(policies) {
        Ok(source) => source,
        Err(e) => {
            problems.push(diagnostics::from_import(&e, objects.loc_of(&e)));
            return report(&problems).and(Err(Failure::Input));
        }
    };
    report(&problems)?;
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    let plural = if policies.len() == 1 { "" } else { "s" };
    let header = format!(
        "# Imported by `netc import` from {} NetworkPolicy object{plural} in {}.\n\n",
        policies.len(),
        names.join(", ")
    );
    let source = if source.is_empty() { header } else { format!("{header}{source}") };
    if args.verify {
        verify_import(&source, &texts, given_cluster(args)?)?;
    }
    match &args.output {
        None => write_stdout(&source),
        Some(path) => output::write_atomic(path, source.as_bytes()),
    }
}

/// The cluster `--cluster` names, read (standard input may hold the YAML already).
fn given_cluster(args: &ImportArgs) -> Result<Option<Cluster>, Failure> {
    cluster::read(&args.cluster, args.files.iter().any(|f| f == Path::new("-")))
}

/// `--emit ir --verify`: the lowered IR judged by the IR evaluator against the YAML judged by
/// the NetworkPolicy evaluator, on every flow of the cluster.
fn verify_ir(ir: &netc_ir::Ir, texts: &[(String, String)], cluster: Option<Cluster>) -> Result<(), Failure> {
    let inventory = match cluster {
        Some(given) => given.inventory,
        None => synthesize(&[ir]),
    };
    let documents: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    match verify(ir, &documents, &inventory) {
        Ok(Verification::Agree { flows, .. }) => {
            eprintln!("verified: the IR means what the NetworkPolicies mean on {flows} flows");
            Ok(())
        }
        Ok(Verification::Differ(mismatch)) => {
            eprintln!("error: --verify: the IR does not mean what the NetworkPolicies mean; nothing written");
            eprintln!("{mismatch}");
            eprintln!("  this is a bug in netc import: please report it with the YAML");
            Err(Failure::Input)
        }
        Err(e) => {
            eprintln!("error: --verify: {e}");
            Err(Failure::Input)
        }
    }
}

/// Judge every flow of the cluster both ways: the original YAML with the NetworkPolicy
/// evaluator, the imported source with the IR evaluator.
fn verify_import(source: &str, texts: &[(String, String)], cluster: Option<Cluster>) -> Result<(), Failure> {
    let out = netc::compile(&[SourceFile::new("imported.np", source)]);
    let Some(ir) = out.ir else {
        eprintln!("error: --verify: the imported source does not compile; this is a bug in netc import");
        return Err(Failure::Input);
    };
    let on = if cluster.is_some() { "the given cluster" } else { "a cluster synthesized from the source" };
    let inventory = match cluster {
        Some(given) => given.inventory,
        None => synthesize(&[&ir]),
    };
    let documents: Vec<&str> = texts.iter().map(|(_, t)| t.as_str()).collect();
    match verify(&ir, &documents, &inventory) {
        Ok(Verification::Agree { flows, endpoints, probes }) => {
            let ports = if probes == 1 { "port" } else { "ports" };
            eprintln!(
                "verified: the source means what the NetworkPolicies mean on {flows} flows ({endpoints} pods \
                 and addresses, {probes} {ports} each, {on})"
            );
            Ok(())
        }
        Ok(Verification::Differ(mismatch)) => {
            eprintln!(
                "error: --verify: the imported source does not mean what the NetworkPolicies mean; nothing written"
            );
            // `verify` names the sides after `build`: the IR is the imported source here.
            eprintln!("{mismatch}");
            eprintln!("  (IR = the imported source; generated NetworkPolicies = the input YAML)");
            eprintln!("  this is a bug in netc import: please report it with the YAML");
            Err(Failure::Input)
        }
        Err(e) => {
            eprintln!("error: --verify: {e}");
            Err(Failure::Input)
        }
    }
}
