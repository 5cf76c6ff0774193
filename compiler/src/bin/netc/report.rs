//! `netc report`: one self-contained HTML page (graph, matrix, doors, rules, warnings, source).

use std::path::PathBuf;

use clap::Args;
use netc::report::ReportInput;

use crate::{DiagnosticArgs, Failure, cluster, output};

pub const EXAMPLES: &str = "\
Examples:
  netc report policies.np -o report.html  the intent, from the source alone
  netc report --cluster cluster.yaml policies/*.np -o report.html
                                          the effect on a cluster's pods (kubectl get ns,pods -A -o yaml)";

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Source files, compiled together in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A cluster (`kubectl get ns,pods -A -o yaml`, YAML or JSON; files, directories or -,
    /// repeated or separated by commas) to show the effect on.
    #[arg(long, value_name = "INV", value_delimiter = ',')]
    cluster: Vec<PathBuf>,
    /// The HTML file to write (atomically).
    #[arg(short, long, required = true)]
    output: PathBuf,
    #[command(flatten)]
    prove: crate::ProveArgs,
    #[command(flatten)]
    diagnostics: DiagnosticArgs,
}

pub fn run(args: &ReportArgs, colour: bool) -> Result<(), Failure> {
    let sources = crate::read_sources(&args.files, &args.diagnostics, colour)?;
    let given = cluster::read(&args.cluster, crate::analyze::reads_stdin(&args.files))?;
    // Failed assertions are errors, but the page shows them: the IR is kept when they are the only
    // errors (and the exit status is still 1).
    let options = netc::Options {
        cluster: given.as_ref().map(|g| &g.inventory),
        assertions: netc::Assertions::Keep,
        pod_cidrs: &args.prove.pod_cidrs,
    };
    let compiled = netc::compile_with(&sources, &options);
    // Diagnostics are printed as usual, and shown in the page too.
    let printed = crate::report(&compiled.diagnostics, &sources, &args.diagnostics, colour);
    let assertions_failed = compiled.assertions.iter().any(|a| !a.failures.is_empty());
    if printed.is_err() && !assertions_failed {
        // Other errors, or warnings denied: nothing is written.
        return printed;
    }
    let ir = compiled.ir.as_ref().ok_or(Failure::Input)?;
    if let Some(given) = &given {
        cluster::warn(given, &[ir], &sources);
    }
    let cluster = given.as_ref().map(|g| (g.name.as_str(), &g.inventory));
    let input = ReportInput {
        sources: &sources,
        ir,
        diagnostics: &compiled.diagnostics,
        assertions: &compiled.assertions,
        cluster,
    };
    let html = netc::report::render(&input).map_err(|e| Failure::Io(e.to_string()))?;
    output::write_atomic(&args.output, html.as_bytes())?;
    let failed = compiled.assertions.iter().filter(|a| !a.failures.is_empty()).count();
    if assertions_failed {
        eprintln!("wrote {} (it shows the {failed} failed assertion(s))", args.output.display());
    } else {
        eprintln!("wrote {}", args.output.display());
    }
    printed
}
