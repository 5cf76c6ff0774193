//! `netc graph`: who may talk to whom, as Graphviz DOT or Mermaid.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use netc::analysis::matrix::Matrix;
use netc::graph::{ExternalNames, Graph};
use netc_ir::Inventory;

use crate::{DiagnosticArgs, Failure, input, output, write_stdout};

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
    /// A cluster (`kubectl get ns,pods -A -o yaml`, YAML or JSON): draw its pods, grouped by
    /// workload, and the flows allowed between them.
    #[arg(long, value_name = "INV")]
    cluster: Option<PathBuf>,
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

/// Read a cluster inventory; a bad one is an input error naming the object.
pub fn read_inventory(path: &Path) -> Result<Inventory, Failure> {
    let text = match input::read_text(path) {
        Ok(text) => text,
        Err(input::ReadError::Io(e)) => {
            return Err(Failure::Io(format!("cannot read {}: {e}", path.display())));
        }
        Err(e) => {
            eprintln!("error: {}: {}", path.display(), e.message());
            return Err(Failure::Input);
        }
    };
    Inventory::from_yaml(&text).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        Failure::Input
    })
}

pub fn run(args: &GraphArgs, colour: bool) -> Result<(), Failure> {
    let (sources, ir) = crate::compile(&args.files, &args.diagnostics, colour)?;
    let graph = match &args.cluster {
        None => Graph::from_ir(&ir, &ExternalNames::from_sources(&sources)),
        Some(path) => {
            let inventory = read_inventory(path)?;
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
