//! netc: Kubernetes network intent in, NetworkPolicy out.
//!
//! The library is pure: source text in, an [`netc_ir::Ir`] and [`diagnostics::Diagnostic`]s out.
//! Files, colour and exit codes belong to the `netc` binary. The pipeline, one module per phase:
//!
//! ```text
//! text --syntax--> ast --check--> Model --lower--> Ir --codegen--> NetworkPolicy --yaml--> text
//! ```
//!
//! ```
//! let out = netc::compile(&[netc::SourceFile::new("policies.np", "frontend -> backend:8080\nhermit isolated\n")]);
//! assert!(!out.has_errors());
//! let ir = out.ir.expect("compiles");
//! assert_eq!(ir.policies.len(), 2); // backend's ingress, hermit's two doors
//! ```

pub mod allow;
pub mod analysis;
pub mod ast;
pub mod check;
pub mod codegen;
pub mod diagnostics;
pub mod fmt;
pub mod graph;
pub mod import;
pub mod lower;
pub mod lsp;
mod par;
pub mod prove;
pub mod report;
pub mod stats;
pub mod syntax;
pub mod yaml;

use diagnostics::{Diagnostic, Severity};

/// One source file: a name for messages and spans, and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The name as given (a path, usually).
    pub name: String,
    /// The whole text.
    pub text: String,
}

impl SourceFile {
    /// A source file.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile { name: name.into(), text: text.into() }
    }
}

/// The result of compiling: the IR when there were no errors, and every diagnostic.
#[derive(Debug, Clone, Default)]
pub struct Compilation {
    /// `None` when any error was found (but see [`Assertions::Keep`]).
    pub ir: Option<netc_ir::Ir>,
    /// Errors and warnings, errors first, each group in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// Every `assert` statement, in source order, with what became of it (empty when the
    /// assertions were not checked: errors before them, or [`Assertions::Skip`]).
    pub assertions: Vec<AssertionOutcome>,
}

/// One `assert` statement after checking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionOutcome {
    /// The statement.
    pub at: check::Loc,
    /// Empty when it holds; else its failure for every possible pod (E0501) and, with a cluster,
    /// on the cluster's pods (E0502), each with its counterexample.
    pub failures: Vec<prove::assertions::AssertError>,
}

impl Compilation {
    /// Whether any diagnostic is an error.
    #[must_use]
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// Whether any diagnostic is a warning.
    #[must_use]
    pub fn has_warnings(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Warning)
    }
}

/// Compile source files (in the order given) into IR, collecting every problem.
#[must_use]
pub fn compile(sources: &[SourceFile]) -> Compilation {
    compile_with(sources, &Options::default())
}

/// What a compilation may be given beside the sources (`netc check` and `netc build` options).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// A cluster (`--cluster`): `assert` statements are also checked on its pods, and one that
    /// some of them break is error E0502 naming them (docs/language.md, "Assertions").
    pub cluster: Option<&'a netc_ir::Inventory>,
    /// What to do with `assert` statements.
    pub assertions: Assertions,
    /// Where pods' addresses lie (`--pod-cidr`): the proof of the assertions considers pods at
    /// these addresses only (empty: any address). Outside addresses stay unbounded.
    pub pod_cidrs: &'a [ipnet::IpNet],
}

/// What a compilation does with `assert` statements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Assertions {
    /// Check them; a failed one is an error and there is no IR (`netc check`, `netc build`).
    #[default]
    Enforce,
    /// Check them and report failures as errors, but keep the IR when they are the only errors
    /// (`netc report`, which shows them).
    Keep,
    /// Do not check them (`netc explain`: a flow's verdict does not depend on them, and it is
    /// how one looks into a failed assertion).
    Skip,
}

/// [`compile`] with [`Options`].
#[must_use]
pub fn compile_with(sources: &[SourceFile], options: &Options<'_>) -> Compilation {
    let (compilation, phases) = compile_keeping_phases_with(sources, options);
    drop_later(phases);
    compilation
}

/// What the phases before the IR made of the sources, kept for tools that answer questions about
/// the text (the language server): the syntax trees and the checked model.
#[derive(Debug, Clone, Default)]
pub struct Phases {
    /// One entry per source, `None` for a file with a syntax error.
    pub files: Vec<Option<ast::File>>,
    /// The checked model, when every file parsed.
    pub model: Option<check::Model>,
}

/// [`compile`], keeping the syntax trees and the checked model instead of freeing them.
#[must_use]
pub fn compile_keeping_phases(sources: &[SourceFile]) -> (Compilation, Phases) {
    compile_keeping_phases_with(sources, &Options::default())
}

/// [`compile_keeping_phases`] with [`Options`].
#[must_use]
pub fn compile_keeping_phases_with(sources: &[SourceFile], options: &Options<'_>) -> (Compilation, Phases) {
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        let (runs, total) = syntax::bidi_controls(&s.text);
        diagnostics.extend(diagnostics::from_bidi(i, &runs, total));
        match syntax::parse(&s.text) {
            Ok(f) => files.push(Some(f)),
            Err(e) => {
                files.push(None);
                diagnostics.push(diagnostics::from_syntax(i, &e));
            }
        }
    }
    if diagnostics.iter().any(|d| d.severity == Severity::Error) {
        // Names in a file that does not parse are unknown, so checking the others would report
        // errors that are not there.
        return (finish(None, diagnostics), Phases { files, model: None });
    }
    let parsed: Vec<ast::File> = files.into_iter().flatten().collect();
    let (model, check_errors) = check::check(&parsed);
    diagnostics.extend(check_errors.iter().map(diagnostics::from_check));
    let check_ok = !check_errors.iter().any(|e| !e.is_warning());
    let locator = Locator::new(sources);
    let (ir, lower_errors) = lower::lower(&model, &locator);
    // After check errors the model lacks what failed to check, so the door model's warnings
    // (a missing DNS flow, say) could be wrong; its errors still hold and are reported too.
    diagnostics
        .extend(lower_errors.iter().filter(|e| check_ok || !e.is_warning()).map(diagnostics::from_lower));
    let mut ok = check_ok && !lower_errors.iter().any(|e| !e.is_warning());
    let mut assertions = Vec::new();
    let mut only_assertions_failed = false;
    if ok && !model.assertions.is_empty() && options.assertions != Assertions::Skip {
        // Proved on the IR, which is what the YAML and netcd are made of.
        let file_of = |name: &str| sources.iter().position(|s| s.name == name);
        let mut failures = prove::assertions::check(&model.assertions, &ir, options.pod_cidrs, &file_of);
        if let Some(cluster) = options.cluster {
            // Both run: the proof speaks of pods that may come, the cluster of pods that exist.
            failures.extend(prove::on_cluster::check(
                &model.assertions,
                &ir,
                cluster,
                options.pod_cidrs,
                &file_of,
            ));
        }
        ok = failures.is_empty();
        only_assertions_failed = !ok;
        diagnostics.extend(failures.iter().map(diagnostics::from_assert));
        // One per statement (a statement with several sources or targets is several claims).
        let mut seen = std::collections::HashSet::new();
        assertions = model
            .assertions
            .iter()
            .filter(|a| seen.insert(a.at))
            .map(|a| AssertionOutcome {
                at: a.at,
                failures: failures.iter().filter(|f| f.at == a.at).cloned().collect(),
            })
            .collect();
    }
    // Acknowledged warnings go; an acknowledgement is stale only if every warning was computed.
    let allow_errors = allow::apply(&parsed, &mut diagnostics, ok);
    diagnostics.extend(allow_errors.iter().map(diagnostics::from_allow));
    let allowed = allow_errors.iter().all(allow::AllowError::is_warning);
    let keep = allowed && (ok || (only_assertions_failed && options.assertions == Assertions::Keep));
    let phases = Phases { files: parsed.into_iter().map(Some).collect(), model: Some(model) };
    let mut compilation = finish(keep.then_some(ir), diagnostics);
    compilation.assertions = assertions;
    (compilation, phases)
}

/// Free a large structure on another thread: for a 100k-line program, freeing the AST and the
/// checked model takes a tenth of the build, and nothing needs to wait for it.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    if std::thread::Builder::new().name("netc-drop".into()).spawn(move || drop(value)).is_err() {
        // No thread to be had: the value was moved into the failed closure and is freed here.
    }
}

fn finish(ir: Option<netc_ir::Ir>, mut diagnostics: Vec<Diagnostic>) -> Compilation {
    diagnostics.sort_by_key(|d| (d.severity, d.location().map(|l| (l.file, l.span.start))));
    diagnostics.dedup();
    Compilation { ir, diagnostics, assertions: Vec::new() }
}

/// Byte offsets to file, line and column.
struct Locator<'a> {
    sources: &'a [SourceFile],
    line_starts: Vec<Vec<usize>>,
    /// Per file, the character index of every [`CHAR_CHECKPOINT`]-th byte (rounded down to a
    /// character boundary): a column is then counted over at most that many bytes, so that 600k
    /// spans on one line cost linear time rather than a count from the line start each.
    char_checkpoints: Vec<Vec<(usize, usize)>>,
}

const CHAR_CHECKPOINT: usize = 1024;

impl<'a> Locator<'a> {
    fn new(sources: &'a [SourceFile]) -> Locator<'a> {
        let line_starts = sources
            .iter()
            .map(|s| std::iter::once(0).chain(s.text.match_indices('\n').map(|(i, _)| i + 1)).collect())
            .collect();
        let char_checkpoints = sources
            .iter()
            .map(|s| {
                let text = &s.text;
                let mut points = Vec::with_capacity(text.len() / CHAR_CHECKPOINT + 1);
                let (mut at, mut chars) = (0, 0);
                for k in 0..=text.len() / CHAR_CHECKPOINT {
                    let mut pos = (k * CHAR_CHECKPOINT).min(text.len());
                    while !text.is_char_boundary(pos) {
                        pos -= 1;
                    }
                    chars += text[at..pos].chars().count();
                    at = pos;
                    points.push((pos, chars));
                }
                points
            })
            .collect();
        Locator { sources, line_starts, char_checkpoints }
    }

    /// The number of characters before byte `offset` of file `file` (a character boundary).
    fn char_index(&self, file: usize, offset: usize) -> usize {
        let text = &self.sources[file].text;
        let points = &self.char_checkpoints[file];
        let (pos, chars) = points[(offset / CHAR_CHECKPOINT).min(points.len() - 1)];
        chars + text.get(pos..offset).map_or(0, |t| t.chars().count())
    }
}

impl lower::Locate for Locator<'_> {
    fn span(&self, loc: check::Loc) -> netc_ir::Span {
        let starts = &self.line_starts[loc.file];
        let offset = loc.span.start as usize;
        let line = starts.partition_point(|&s| s <= offset).max(1);
        let text = &self.sources[loc.file].text;
        let line_start = starts[line - 1];
        let column = if text.is_char_boundary(offset) && offset >= line_start {
            self.char_index(loc.file, offset) - self.char_index(loc.file, line_start) + 1
        } else {
            1
        };
        netc_ir::Span {
            file: self.sources[loc.file].name.clone(),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            start: loc.span.start,
            end: loc.span.end,
        }
    }

    fn file_names(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name.clone()).collect()
    }
}
