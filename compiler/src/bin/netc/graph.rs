//! `netc graph`: who may talk to whom, as Graphviz DOT or Mermaid.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use netc::analysis::matrix::Matrix;
use netc::graph::{ExternalNames, Graph};

use crate::{DiagnosticArgs, Failure, cluster, output, write_stdout};

pub const EXAMPLES: &str = "\
Examples:
  netc graph policies.np | dot -Tsvg > policies.svg
                                          the intent: workloads and the rules between them
  netc graph --format mermaid policies.np paste into a Markdown file or a pull request
  netc graph --cluster cluster.yaml policies.np -o cluster.dot
                                          the pods of a cluster and the flows allowed between them";

#[derive(Args, Debug)]
pub struct GraphArgs {
    /// Source files, compiled together in this order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// A cluster (`kubectl get ns,pods -A -o yaml`, YAML or JSON; files, directories or -,
    /// repeated or separated by commas): draw its pods, grouped by workload, and the flows
    /// allowed between them.
    #[arg(long, value_name = "INV", value_delimiter = ',')]
    cluster: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    format: GraphFormat,
    /// Write to this file (atomically) instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    diagnostics: DiagnosticArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GraphFormat {
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// A Mermaid flowchart (GitHub and GitLab render it in Markdown).
    Mermaid,
}

pub fn run(args: &GraphArgs, colour: bool) -> Result<(), Failure> {
    let (sources, ir) = crate::compile(&args.files, &args.diagnostics, colour)?;
    let graph = match cluster::read(&args.cluster, crate::analyze::reads_stdin(&args.files))? {
        None => Graph::from_ir(&ir, &ExternalNames::from_sources(&sources)),
        Some(given) => {
            cluster::warn(&given, &[&ir], &sources);
            let inventory = given.inventory;
            let matrix = Matrix::compute(&ir, &inventory, &Matrix::default_probes(&ir, &inventory));
            Graph::from_cluster(&ir, &inventory, &matrix)
        }
    };
    let text = match args.format {
        GraphFormat::Dot => graph.to_dot(),
        GraphFormat::Mermaid => graph.to_mermaid(),
    };
    match &args.output {
        None => write_stdout(&text),
        Some(path) => output::write_atomic(path, text.as_bytes()),
    }
}
