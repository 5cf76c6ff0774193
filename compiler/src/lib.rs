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
#[derive(Debug, Clone)]
pub struct Compilation {
    /// `None` when any error was found.
    pub ir: Option<netc_ir::Ir>,
    /// Errors and warnings, errors first, each group in source order.
    pub diagnostics: Vec<Diagnostic>,
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
    let (compilation, phases) = compile_keeping_phases(sources);
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
    if ok && !model.assertions.is_empty() {
        // Proved on the IR, which is what the YAML and netcd are made of.
        let file_of = |name: &str| sources.iter().position(|s| s.name == name);
        let failures = prove::assertions::check(&model.assertions, &ir, &file_of);
        ok = failures.is_empty();
        diagnostics.extend(failures.iter().map(diagnostics::from_assert));
    }
    // Acknowledged warnings go; an acknowledgement is stale only if every warning was computed.
    let allow_errors = allow::apply(&parsed, &mut diagnostics, ok);
    diagnostics.extend(allow_errors.iter().map(diagnostics::from_allow));
    let ok = ok && allow_errors.iter().all(allow::AllowError::is_warning);
    let phases = Phases { files: parsed.into_iter().map(Some).collect(), model: Some(model) };
    (finish(ok.then_some(ir), diagnostics), phases)
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
    Compilation { ir, diagnostics }
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
