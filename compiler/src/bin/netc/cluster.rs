//! `--cluster`: the cluster an analysis runs on, from files, directories and standard input, and
//! the warnings every command given one prints about it (docs/analysis.md, "The cluster").
//!
//! `--cluster` may be repeated or take several inputs separated by commas (as `kubectl -f`); a
//! directory stands for its `.yaml`, `.yml` and `.json` files (read through [`input`], so links
//! leading out of it and special files are refused), `-` for standard input. The inputs are read
//! in order as one cluster: an object described again replaces the earlier description, with a
//! warning, as `kubectl apply` would.

use std::path::{Path, PathBuf};

use clap::Args;
use netc::SourceFile;
use netc::analysis::empty_selectors;
use netc::analysis::ip_blocks::{blocks_covering_pods, render_warnings};
use netc_ir::{Inventory, Ir};

use crate::{Failure, input};

/// The file names a directory given to `--cluster` is read for.
pub const EXTENSIONS: [&str; 3] = [".yaml", ".yml", ".json"];

/// `--cluster`, as every command that analyses a cluster takes it (`build` has its own, which
/// requires `--verify`).
#[derive(Args, Debug, Default)]
pub struct ClusterArgs {
    /// The cluster (`kubectl get ns,pods -A -o yaml`, YAML or JSON, plus ExternalAddress
    /// objects): files, directories (their .yaml/.yml/.json files) or - for standard input;
    /// repeat the option or separate with commas. Without it, a cluster synthesized from the
    /// program (docs/analysis.md).
    #[arg(long = "cluster", value_name = "INV", value_delimiter = ',')]
    pub paths: Vec<PathBuf>,
}

impl ClusterArgs {
    /// Whether a cluster is given.
    pub fn given(&self) -> bool {
        !self.paths.is_empty()
    }
}

/// A cluster read from the command line.
pub struct Cluster {
    /// The pods, namespaces and external addresses.
    pub inventory: Inventory,
    /// The inputs, for messages and reports: `cluster.yaml`, `a.yaml, b.yaml`.
    pub name: String,
}

/// The inputs `paths` stand for, in order: directories expanded, each file once.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        if path.as_os_str().is_empty() {
            return Err(Failure::Io("--cluster: an empty name (two commas in a row?)".to_owned()));
        }
        let found = if path != Path::new("-") && path.is_dir() {
            let found = input::files_in_tree(path, &EXTENSIONS).map_err(Failure::Io)?;
            if found.is_empty() {
                return Err(Failure::Io(format!(
                    "--cluster {}: no .yaml, .yml or .json files in this directory",
                    path.display()
                )));
            }
            found
        } else {
            vec![path.clone()]
        };
        for file in found {
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

/// Read the cluster `paths` name (`None` when none is given). `stdin_taken`: standard input is
/// already read for something else (a source given as `-`), so `-` cannot be the cluster too.
///
/// An unreadable input is an IO error (exit 2); one that is too large, not UTF-8 or not a valid
/// cluster is an input error naming the file and the object (exit 1).
pub fn read(paths: &[PathBuf], stdin_taken: bool) -> Result<Option<Cluster>, Failure> {
    if paths.is_empty() {
        return Ok(None);
    }
    let files = expand(paths)?;
    if stdin_taken && files.iter().any(|f| f == Path::new("-")) {
        return Err(Failure::Io(
            "--cluster -: standard input is already read for the sources; give the cluster as a file"
                .to_owned(),
        ));
    }
    let mut texts = Vec::with_capacity(files.len());
    for file in &files {
        let name = if file == Path::new("-") { "<stdin>".to_owned() } else { file.display().to_string() };
        match input::read_text(file) {
            Ok(text) => texts.push((name, text)),
            Err(input::ReadError::Io(e)) => return Err(Failure::Io(format!("cannot read {name}: {e}"))),
            Err(e) => {
                eprintln!("error: {name}: {}", e.message());
                return Err(Failure::Input);
            }
        }
    }
    let (inventory, replaced) = Inventory::from_yaml_files(&texts).map_err(|e| {
        eprintln!("error: {e}");
        Failure::Input
    })?;
    for r in &replaced {
        eprintln!(
            "warning: {} is described twice ({}, then {}); the later description is used, as kubectl would",
            r.object, r.first, r.again
        );
    }
    let name = texts.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", ");
    Ok(Some(Cluster { inventory, name }))
}

/// What is worth knowing about `cluster` before trusting an analysis of `irs` on it: namespaces
/// the program uses that it lacks (one warning), namespaces it implies without describing, address
/// blocks covering its pods, and selectors matching none of its pods; each warning's text, starting
/// with `warning: `.
fn warnings(cluster: &Cluster, irs: &[&Ir], sources: &[SourceFile]) -> Vec<String> {
    let inventory = &cluster.inventory;
    let mut missing = empty_selectors::MissingNamespaces::default();
    for ir in irs {
        let more = empty_selectors::missing_namespaces(ir, inventory);
        for (name, span) in more.named {
            if !missing.named.iter().any(|(n, _)| *n == name) {
                missing.named.push((name, span));
            }
        }
        for (selector, span) in more.selected {
            if !missing.selected.iter().any(|(s, _)| *s == selector) {
                missing.selected.push((selector, span));
            }
        }
    }
    let mut text = empty_selectors::render_missing(&missing, &format!("the cluster ({})", cluster.name));
    for ns in &inventory.implied_namespaces {
        text.push_str(&format!(
            "warning: {}: namespace `{ns}` has pods but is not described; it is taken to carry only its name label\n",
            cluster.name
        ));
    }
    for ir in irs {
        text.push_str(&render_warnings(&blocks_covering_pods(ir, inventory), ir, sources));
        text.push_str(&empty_selectors::render_warnings(
            &empty_selectors::selectors_matching_nothing(ir, inventory),
            sources,
        ));
    }
    // One block per warning: its first line starts with `warning: `.
    let mut blocks: Vec<String> = Vec::new();
    for line in text.lines() {
        match blocks.last_mut() {
            Some(block) if !line.starts_with("warning: ") => {
                block.push_str(line);
                block.push('\n');
            }
            _ => blocks.push(format!("{line}\n")),
        }
    }
    blocks
}

/// Print the warnings about `cluster` (see [`warnings`]) on stderr; how many there were.
pub fn warn(cluster: &Cluster, irs: &[&Ir], sources: &[SourceFile]) -> usize {
    let found = warnings(cluster, irs, sources);
    for block in &found {
        eprint!("{block}");
    }
    found.len()
}

/// The same warnings as JSON lines, for `--message-format json`: `severity`, `code` (null: they
/// are about the cluster, not a line of the program), `message` (the first line) and `text` (the
/// whole warning as printed for people).
pub fn warn_json(cluster: &Cluster, irs: &[&Ir], sources: &[SourceFile]) -> usize {
    let found = warnings(cluster, irs, sources);
    for block in &found {
        let message = block.lines().next().unwrap_or("").trim_start_matches("warning: ");
        let line =
            serde_json::json!({"severity": "warning", "code": null, "message": message, "text": block});
        eprintln!("{line}");
    }
    found.len()
}
