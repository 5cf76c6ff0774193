//! The language features over one compilation unit (the files compiled together): pure functions
//! from the sources, the compiler's own phases and a position to LSP answers. No IO here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use lsp_types::{
    CodeAction, CodeActionKind, CompletionItem, CompletionItemKind, Diagnostic as LspDiagnostic,
    DiagnosticRelatedInformation, DiagnosticSeverity, DocumentSymbol, Hover, HoverContents, Location,
    MarkupContent, MarkupKind, NumberOrString, Position, Range, SymbolKind, TextEdit, Url, WorkspaceEdit,
};
use netc_ir::{Direction, LabelSelector, Policy};

use super::index::{Index, Symbol};
use super::text::LineIndex;
use crate::ast::{Item, PortSyntax};
use crate::check::DEFAULT_NAMESPACE;
use crate::diagnostics::{self, Diagnostic, Edit, Severity};
use crate::{Compilation, Phases, SourceFile};

/// One compilation unit, compiled, with what the features need to answer quickly.
#[derive(Debug)]
pub struct Analysis {
    /// The sources, in compilation order.
    pub sources: Vec<SourceFile>,
    /// The document of each source.
    pub uris: Vec<Url>,
    lines: Vec<LineIndex>,
    /// Diagnostics and IR.
    pub compilation: Compilation,
    phases: Phases,
    /// Names and ports.
    pub index: Index,
    /// The names, for completion, gathered on first use.
    names: std::sync::OnceLock<Names>,
}

/// Keywords offered by completion, with what each starts.
const KEYWORDS: &[(&str, &str)] = &[
    ("namespace", "namespace NAME { ... } or a header for the lines below"),
    ("workload", "workload NAME = {labels}"),
    ("external", "external NAME = CIDR [except CIDR], ..."),
    ("default deny", "guard both doors of every pod of the namespace"),
    ("default allow", "let anything through both doors of every pod of the namespace"),
    ("isolated", "both doors guarded, no flows"),
    ("ingress guarded", "only declared flows enter"),
    ("egress guarded", "only declared flows leave"),
    ("ingress open", "anything enters"),
    ("egress open", "anything leaves"),
    ("guarded", "both doors guarded"),
    ("anywhere", "every address, in the cluster and out of it"),
    ("dns", "the cluster DNS: kube-dns, UDP and TCP 53"),
    ("except", "carve a prefix out of an address block"),
    ("egress", "egress A -> B: a one-sided arrow, written on A's egress only (B's ingress is not guarded)"),
    ("@allow", "@allow(W0203): acknowledge warnings of the statement below"),
];

impl Analysis {
    /// Compile `sources` (with their documents) and index them.
    #[must_use]
    pub fn new(sources: Vec<SourceFile>, uris: Vec<Url>) -> Analysis {
        let (compilation, phases) = crate::compile_keeping_phases(&sources);
        let index = Index::new(&phases.files);
        let lines = sources.iter().map(|s| LineIndex::new(&s.text)).collect();
        Analysis { sources, uris, lines, compilation, phases, index, names: std::sync::OnceLock::new() }
    }

    /// The index of the file of `uri` in this unit.
    #[must_use]
    pub fn file_of(&self, uri: &Url) -> Option<usize> {
        self.uris.iter().position(|u| u == uri)
    }

    /// The byte offset of `position` in file `file`.
    #[must_use]
    pub fn offset(&self, file: usize, position: Position) -> usize {
        self.lines[file].offset(&self.sources[file].text, position)
    }

    fn range(&self, file: usize, span: crate::ast::Span) -> Range {
        self.lines[file].range(&self.sources[file].text, span)
    }

    fn location(&self, file: usize, span: crate::ast::Span) -> Location {
        Location { uri: self.uris[file].clone(), range: self.range(file, span) }
    }

    fn line_number(&self, file: usize, span: crate::ast::Span) -> usize {
        self.lines[file].line_of(span.start as usize) + 1
    }

    /// The diagnostics of each file, every file of the unit present (empty lists clear old ones).
    #[must_use]
    pub fn diagnostics(&self) -> Vec<(Url, Vec<LspDiagnostic>)> {
        let mut per_file: Vec<Vec<LspDiagnostic>> = vec![Vec::new(); self.sources.len()];
        for d in &self.compilation.diagnostics {
            let file = d.location().map_or(0, |l| l.file);
            if let Some(list) = per_file.get_mut(file) {
                list.push(self.to_lsp(d));
            }
        }
        self.uris.iter().cloned().zip(per_file).collect()
    }

    fn to_lsp(&self, d: &Diagnostic) -> LspDiagnostic {
        let range = d.location().map_or_else(Range::default, |l| self.range(l.file, l.span));
        let mut message = d.message.clone();
        if let Some(primary) = d.labels.iter().find(|l| l.primary)
            && !primary.message.is_empty()
        {
            let _ = write!(message, "\n{}", primary.message);
        }
        for n in &d.notes {
            let _ = write!(message, "\nnote: {n}");
        }
        if let Some(h) = &d.help {
            let _ = write!(message, "\nhelp: {h}");
        }
        let related: Vec<DiagnosticRelatedInformation> = d
            .labels
            .iter()
            .filter(|l| !l.primary && l.at.file < self.sources.len())
            .map(|l| DiagnosticRelatedInformation {
                location: self.location(l.at.file, l.at.span),
                message: l.message.clone(),
            })
            .collect();
        LspDiagnostic {
            range,
            severity: Some(match d.severity {
                Severity::Error => DiagnosticSeverity::ERROR,
                Severity::Warning => DiagnosticSeverity::WARNING,
            }),
            code: Some(NumberOrString::String(d.code.to_owned())),
            source: Some("netc".to_owned()),
            message,
            related_information: (!related.is_empty()).then_some(related),
            ..LspDiagnostic::default()
        }
    }

    /// Where the symbol under the cursor is defined.
    #[must_use]
    pub fn definition(&self, file: usize, position: Position) -> Option<Location> {
        let o = self.index.at(file, self.offset(file, position))?;
        let d = self.index.definition(&o.symbol)?;
        Some(self.location(d.file, d.span))
    }

    /// Every place the symbol under the cursor is written.
    #[must_use]
    pub fn references(&self, file: usize, position: Position, include_declaration: bool) -> Vec<Location> {
        let Some(o) = self.index.at(file, self.offset(file, position)) else { return Vec::new() };
        self.index
            .of(&o.symbol)
            .filter(|r| include_declaration || !r.declaration)
            .map(|r| self.location(r.file, r.span))
            .collect()
    }

    /// The range of the name under the cursor, if it can be renamed.
    ///
    /// # Errors
    /// Why it cannot be renamed.
    pub fn prepare_rename(&self, file: usize, position: Position) -> Result<Option<Range>, String> {
        let Some(o) = self.index.at(file, self.offset(file, position)) else { return Ok(None) };
        self.renamable(&o.symbol)?;
        Ok(Some(self.range(o.file, o.span)))
    }

    fn renamable(&self, symbol: &Symbol) -> Result<(), String> {
        if let Symbol::Workload { namespace, name } = symbol
            && !self.index.of(symbol).any(|o| o.declaration)
        {
            return Err(format!(
                "`{name}` is not declared: it means the pods labelled `app={name}` in `{namespace}`, so renaming it \
                 would select other pods; declare it first (`workload {name} = {{app={name}}}`), then rename"
            ));
        }
        if self.compilation.diagnostics.iter().any(|d| d.code == "E0001") {
            return Err(
                "a file of this set has a syntax error: fix it first, so that every use is found".to_owned()
            );
        }
        Ok(())
    }

    /// The edits that rename the symbol under the cursor to `new_name`.
    ///
    /// # Errors
    /// Why it cannot be renamed (not declared, an invalid or taken name).
    pub fn rename(&self, file: usize, position: Position, new_name: &str) -> Result<WorkspaceEdit, String> {
        let o = self.index.at(file, self.offset(file, position)).ok_or("no name here to rename")?;
        self.renamable(&o.symbol)?;
        if !crate::syntax::is_name(new_name) {
            return Err(format!(
                "`{new_name}` cannot be a name: a letter, then letters, digits, `-` and `_`, and not a keyword"
            ));
        }
        let taken = match &o.symbol {
            Symbol::Workload { namespace, .. } => self.index.occurrences.iter().any(|x| {
                matches!(&x.symbol, Symbol::Workload { namespace: n, name } if n == namespace && name == new_name)
                    || matches!(&x.symbol, Symbol::External(name) if name == new_name)
            }),
            Symbol::External(_) => self.index.occurrences.iter().any(|x| {
                matches!(&x.symbol, Symbol::External(name) | Symbol::Workload { name, .. } if name == new_name)
            }),
            Symbol::Namespace(_) => {
                self.index.occurrences.iter().any(|x| matches!(&x.symbol, Symbol::Namespace(n) if n == new_name))
            }
        };
        if taken && new_name != o.symbol.name() {
            return Err(format!("`{new_name}` already names something here: renaming would merge the two"));
        }
        let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
        for r in self.index.of(&o.symbol) {
            changes
                .entry(self.uris[r.file].clone())
                .or_default()
                .push(TextEdit { range: self.range(r.file, r.span), new_text: new_name.to_owned() });
        }
        Ok(WorkspaceEdit { changes: Some(changes), ..WorkspaceEdit::default() })
    }

    /// What the thing under the cursor means: a name, a port, or a diagnostic code.
    #[must_use]
    pub fn hover(&self, file: usize, position: Position) -> Option<Hover> {
        let offset = self.offset(file, position);
        let (text, span) = if let Some(o) = self.index.at(file, offset) {
            (self.hover_symbol(&o.symbol), o.span)
        } else if let Some(p) = self.index.port_at(file, offset) {
            (hover_port(&p.port, p.protocol.as_deref()), p.span)
        } else {
            let (word, span) = word_at(&self.sources[file].text, offset)?;
            (diagnostics::explain(word).filter(|_| is_code(word))?, span)
        };
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: text }),
            range: Some(self.range(file, span)),
        })
    }

    fn hover_symbol(&self, symbol: &Symbol) -> String {
        let mut out = String::new();
        let def = self.index.definition(symbol);
        let place = |o: &super::index::Occurrence| {
            format!("{}:{}", self.sources[o.file].name, self.line_number(o.file, o.span))
        };
        match symbol {
            Symbol::Workload { namespace, name } => {
                let model = self.phases.model.as_ref();
                let selector = model
                    .and_then(|m| m.workloads.iter().find(|w| w.namespace == *namespace && w.name == *name))
                    .map_or_else(|| LabelSelector::labels([("app", name.as_str())]), |w| w.selector.clone());
                let _ = writeln!(out, "**workload `{name}`** in namespace `{namespace}`\n");
                let _ = writeln!(out, "pods `{{{selector}}}`\n");
                match def {
                    Some(d) if d.declaration => {
                        let _ = writeln!(out, "declared at {}\n", place(d));
                    }
                    Some(d) => {
                        let _ = writeln!(
                            out,
                            "not declared: means the label `app={name}`; first used at {}\n",
                            place(d)
                        );
                    }
                    None => {}
                }
                if let Some(docs) = model
                    .and_then(|m| m.workloads.iter().find(|w| w.namespace == *namespace && w.name == *name))
                    .map(|w| w.docs.join(" "))
                    .filter(|d| !d.is_empty())
                {
                    let _ = writeln!(out, "> {docs}\n");
                }
                self.hover_doors(&mut out, namespace, &selector);
            }
            Symbol::External(name) => {
                let _ = writeln!(out, "**external `{name}`**\n");
                if let Some(d) = def {
                    let line = self.lines[d.file]
                        .line(&self.sources[d.file].text, self.lines[d.file].line_of(d.span.start as usize));
                    let _ = writeln!(out, "```netc\n{}\n```\n", self.sources[d.file].text[line].trim());
                    let _ = writeln!(out, "declared at {}\n", place(d));
                }
                let _ = writeln!(
                    out,
                    "addresses outside the cluster: no doors; arrows to or from it become `ipBlock` peers"
                );
            }
            Symbol::Namespace(name) => {
                let _ = writeln!(out, "**namespace `{name}`**\n");
                let _ = writeln!(out, "selected by the label `kubernetes.io/metadata.name={name}`\n");
                if let Some(ir) = &self.compilation.ir {
                    let policies: Vec<&Policy> =
                        ir.policies.iter().filter(|p| p.namespace == *name).collect();
                    let _ = writeln!(out, "{} NetworkPolicies:", policies.len());
                    for p in policies {
                        let _ = writeln!(out, "- `{}` for `{}`", p.name, p.workload);
                    }
                }
            }
        }
        out
    }

    fn hover_doors(&self, out: &mut String, namespace: &str, selector: &LabelSelector) {
        let Some(ir) = &self.compilation.ir else {
            let _ = writeln!(out, "doors and policies: shown once the errors are fixed");
            return;
        };
        // The policies whose selectors take in every one of these pods.
        let policies: Vec<&Policy> = ir
            .policies
            .iter()
            .filter(|p| p.namespace == namespace && crate::lower::covers(&p.selector, selector))
            .collect();
        for direction in Direction::BOTH {
            let guards: Vec<&Policy> =
                policies.iter().copied().filter(|p| p.door(direction).is_guarded()).collect();
            if guards.is_empty() {
                let _ = writeln!(out, "- {direction}: **open**");
            } else {
                let lines: BTreeSet<String> = guards
                    .iter()
                    .flat_map(|p| &p.door(direction).guarded_by)
                    .map(|s| format!("{}:{}", s.file, s.line))
                    .collect();
                let rules: usize = guards.iter().map(|p| p.door(direction).rules.len()).sum();
                let _ = writeln!(
                    out,
                    "- {direction}: **guarded** ({rules} rules), by {}",
                    lines.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
        }
        if policies.is_empty() {
            let _ = writeln!(out, "\nno NetworkPolicy selects these pods");
            return;
        }
        let _ = writeln!(out, "\nNetworkPolicies selecting these pods:");
        for p in policies {
            let _ = writeln!(out, "- `{}/{}` (for `{}`)", p.namespace, p.name, p.workload);
            for direction in Direction::BOTH {
                for r in &p.door(direction).rules {
                    let _ = writeln!(out, "  - {direction} `{}` from {}:{}", r.id, r.span.file, r.span.line);
                }
            }
        }
    }

    /// Formatting edits: the whole text replaced by `netc fmt`'s, or nothing when it is formatted
    /// or does not parse.
    #[must_use]
    pub fn format(&self, file: usize) -> Option<Vec<TextEdit>> {
        let text = &self.sources[file].text;
        let formatted = crate::fmt::format(text).ok()?;
        if formatted == *text {
            return Some(Vec::new());
        }
        let end = self.lines[file].position(text, text.len());
        Some(vec![TextEdit { range: Range { start: Position::default(), end }, new_text: formatted }])
    }

    /// Quick fixes for the diagnostics touching `range` that carry a suggestion.
    #[must_use]
    pub fn code_actions(&self, file: usize, range: Range) -> Vec<CodeAction> {
        let start = self.offset(file, range.start);
        let end = self.offset(file, range.end);
        let mut actions = Vec::new();
        for d in &self.compilation.diagnostics {
            let (Some(loc), Some(s)) = (d.location(), &d.suggestion) else { continue };
            if loc.file != file || (loc.span.end as usize) < start || (loc.span.start as usize) > end {
                continue;
            }
            let Some(edit) = self.suggestion_edit(s) else { continue };
            let mut changes = HashMap::new();
            changes.insert(self.uris[s.at.file].clone(), vec![edit]);
            actions.push(CodeAction {
                title: s.title.clone(),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![self.to_lsp(d)]),
                edit: Some(WorkspaceEdit { changes: Some(changes), ..WorkspaceEdit::default() }),
                is_preferred: Some(true),
                ..CodeAction::default()
            });
        }
        actions
    }

    fn suggestion_edit(&self, s: &diagnostics::Suggestion) -> Option<TextEdit> {
        let file = s.at.file;
        let text = &self.sources.get(file)?.text;
        let span = s.at.span;
        match &s.edit {
            Edit::Replace(new) => Some(TextEdit { range: self.range(file, span), new_text: new.clone() }),
            Edit::ReplaceName { old, new } => {
                let written = text.get(span.range())?;
                if !written.ends_with(old.as_str()) {
                    return None;
                }
                let start = span.end as usize - old.len();
                let name_span = crate::ast::Span::new(start, span.end as usize);
                Some(TextEdit { range: self.range(file, name_span), new_text: new.clone() })
            }
            Edit::InsertLineAfter(line) => {
                let lines = &self.lines[file];
                let end_line = lines.line_of(span.end.saturating_sub(1) as usize);
                let this = lines.line(text, end_line);
                let indent: String = text[this.clone()].chars().take_while(|c| c.is_whitespace()).collect();
                let at = lines.position(text, this.end);
                Some(TextEdit { range: Range { start: at, end: at }, new_text: format!("\n{indent}{line}") })
            }
        }
    }

    /// An outline: namespaces, and in each the workloads and externals the file names.
    #[must_use]
    #[allow(deprecated)] // `DocumentSymbol::deprecated` must be written, though deprecated.
    pub fn document_symbols(&self, file: usize) -> Vec<DocumentSymbol> {
        let Some(Some(ast)) = self.phases.files.get(file) else { return Vec::new() };
        let symbol = |name: String, detail: Option<String>, kind, span, selection, children| DocumentSymbol {
            name,
            detail,
            kind,
            tags: None,
            deprecated: None,
            range: self.range(file, span),
            selection_range: self.range(file, selection),
            children,
        };
        // Each namespace's region: a block, or a header up to the next header.
        let mut regions: Vec<(String, crate::ast::Span, crate::ast::Span)> = Vec::new();
        let text_end = self.sources[file].text.len();
        let mut headers = ast.items.iter().filter_map(|i| match i {
            Item::NamespaceHeader { name, span } => Some((name, *span)),
            _ => None,
        });
        let mut header = headers.next();
        for item in &ast.items {
            if let Item::NamespaceBlock { name, span, .. } = item {
                regions.push((name.node.clone(), *span, name.span));
            }
        }
        while let Some((name, span)) = header {
            let next = headers.next();
            let end = next.map_or(text_end, |(_, s)| s.start as usize);
            regions.push((name.node.clone(), crate::ast::Span::new(span.start as usize, end), name.span));
            header = next;
        }
        let mut children: BTreeMap<usize, Vec<DocumentSymbol>> = BTreeMap::new();
        let mut top = Vec::new();
        let mut seen = BTreeSet::new();
        for o in self.index.occurrences.iter().filter(|o| o.file == file) {
            let (kind, detail) = match &o.symbol {
                Symbol::Namespace(_) => continue,
                Symbol::External(_) if o.declaration => (SymbolKind::CONSTANT, Some("external".to_owned())),
                Symbol::External(_) => continue,
                Symbol::Workload { name, .. } if o.declaration => {
                    (SymbolKind::CLASS, Some("workload".to_owned()))
                }
                Symbol::Workload { name, .. } => {
                    if self.index.of(&o.symbol).any(|x| x.declaration) {
                        continue;
                    }
                    (SymbolKind::VARIABLE, Some(format!("app={name}")))
                }
            };
            if !seen.insert(o.symbol.clone()) && !o.declaration {
                continue;
            }
            let sym = symbol(o.symbol.name().to_owned(), detail, kind, o.span, o.span, None);
            match regions.iter().position(|(_, r, _)| r.start <= o.span.start && o.span.end <= r.end) {
                Some(i) => children.entry(i).or_default().push(sym),
                None => top.push(sym),
            }
        }
        for (i, (name, span, selection)) in regions.iter().enumerate() {
            top.push(symbol(
                name.clone(),
                Some("namespace".to_owned()),
                SymbolKind::NAMESPACE,
                *span,
                *selection,
                Some(children.remove(&i).unwrap_or_default()),
            ));
        }
        top.sort_by_key(|s| (s.range.start.line, s.range.start.character));
        top
    }

    /// Completions at the cursor: named ports after `:`, protocols after a port's `/`, workloads of
    /// a namespace after `ns/`, else names, namespaces and keywords.
    #[must_use]
    pub fn completion(&self, file: usize, position: Position, names: &Names) -> Vec<CompletionItem> {
        let text = &self.sources[file].text;
        let offset = self.offset(file, position);
        let line = self.lines[file].line(text, position.line as usize);
        let before = &text[line.start..offset.max(line.start)];
        let item = |label: &str, kind, detail: &str| CompletionItem {
            label: label.to_owned(),
            kind: Some(kind),
            detail: Some(detail.to_owned()),
            ..CompletionItem::default()
        };
        let token_start = before.rfind(|c: char| c.is_whitespace() || c == ',').map_or(0, |i| i + 1);
        let token = &before[token_start..];
        let in_list = before.rfind('[').is_some_and(|o| before.rfind(']').is_none_or(|c| c < o))
            && before.contains(':');
        if token.contains(':') || in_list {
            let port = token.rsplit([':', '[']).next().unwrap_or("");
            if port.contains('/') {
                return ["tcp", "udp", "sctp"]
                    .iter()
                    .map(|p| item(p, CompletionItemKind::ENUM_MEMBER, "protocol"))
                    .collect();
            }
            return names.ports.iter().map(|p| item(p, CompletionItemKind::VALUE, "named port")).collect();
        }
        if let Some((ns, _)) = token.rsplit_once('/') {
            return names
                .workloads
                .get(ns)
                .into_iter()
                .flatten()
                .map(|w| item(w, CompletionItemKind::CLASS, &format!("workload in {ns}")))
                .collect();
        }
        let ns = namespace_at(text, offset);
        let mut out: Vec<CompletionItem> = names
            .workloads
            .get(&ns)
            .into_iter()
            .flatten()
            .map(|w| item(w, CompletionItemKind::CLASS, &format!("workload in {ns}")))
            .collect();
        out.extend(names.externals.iter().map(|e| item(e, CompletionItemKind::CONSTANT, "external")));
        out.extend(names.namespaces.iter().map(|n| {
            let mut i = item(n, CompletionItemKind::MODULE, "namespace");
            i.insert_text = Some(format!("{n}/"));
            i
        }));
        out.extend(KEYWORDS.iter().map(|(k, d)| item(k, CompletionItemKind::KEYWORD, d)));
        out
    }

    /// The names this unit knows, for completion. A file that does not parse (the line being
    /// typed) is parsed again with the offending lines blanked, so that its other names count.
    #[must_use]
    pub fn names(&self) -> &Names {
        self.names.get_or_init(|| self.gather_names())
    }

    fn gather_names(&self) -> Names {
        let recovered: Vec<Option<crate::ast::File>> = self
            .phases
            .files
            .iter()
            .zip(&self.sources)
            .map(|(parsed, source)| match parsed {
                Some(_) => None,
                None => parse_blanking_errors(&source.text),
            })
            .collect();
        let recovered_index = Index::new(&recovered);
        let mut names = Names::default();
        for o in self.index.occurrences.iter().chain(&recovered_index.occurrences) {
            match &o.symbol {
                Symbol::Workload { namespace, name } => {
                    names.workloads.entry(namespace.clone()).or_default().insert(name.clone());
                    names.namespaces.insert(namespace.clone());
                }
                Symbol::External(name) => {
                    names.externals.insert(name.clone());
                }
                Symbol::Namespace(name) => {
                    names.namespaces.insert(name.clone());
                }
            }
        }
        for p in self.index.ports.iter().chain(&recovered_index.ports) {
            if let PortSyntax::Name(n) = &p.port {
                names.ports.insert(n.clone());
            }
        }
        names
    }

    /// Whether every file parsed (so that [`Analysis::names`] is complete).
    #[must_use]
    pub fn parsed(&self) -> bool {
        self.phases.files.iter().all(Option::is_some)
    }
}

/// The names of a unit, kept from its last complete parse so that completion works while the
/// line being typed does not parse yet.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// namespace -> workload names.
    pub workloads: BTreeMap<String, BTreeSet<String>>,
    /// External names.
    pub externals: BTreeSet<String>,
    /// Namespace names.
    pub namespaces: BTreeSet<String>,
    /// Named ports.
    pub ports: BTreeSet<String>,
}

impl Names {
    /// Add the names of `other`.
    pub fn merge(&mut self, other: &Names) {
        for (ns, names) in &other.workloads {
            self.workloads.entry(ns.clone()).or_default().extend(names.iter().cloned());
        }
        self.externals.extend(other.externals.iter().cloned());
        self.namespaces.extend(other.namespaces.iter().cloned());
        self.ports.extend(other.ports.iter().cloned());
    }
}

/// Parse `text` with the lines the parser stops at blanked out (a few times at most): enough to
/// read the names of a file whose one line is half typed. Offsets stay those of the text.
fn parse_blanking_errors(text: &str) -> Option<crate::ast::File> {
    let mut text = text.to_owned();
    for _ in 0..8 {
        match crate::syntax::parse(&text) {
            Ok(file) => return Some(file),
            Err(crate::syntax::SyntaxError::Unexpected { span, .. }) => {
                let at = (span.start as usize).min(text.len());
                let index = LineIndex::new(&text);
                let line = index.line_of(at);
                // The parser may stop at the start of the line after the unfinished one: then
                // that earlier line is the one to drop.
                let before_on_line = &text[index.line(&text, line).start..at];
                let line = if before_on_line.trim().is_empty() {
                    (0..line).rev().find(|&l| !text[index.line(&text, l)].trim().is_empty()).unwrap_or(line)
                } else {
                    line
                };
                let (start, end) = (index.line(&text, line).start, index.line(&text, line).end);
                let blank: String =
                    text[start..end].chars().map(|c| if c == '\n' { c } else { ' ' }).collect();
                if blank == text[start..end] {
                    return None;
                }
                text.replace_range(start..end, &blank);
            }
            Err(_) => return None,
        }
    }
    None
}

fn hover_port(port: &PortSyntax, protocol: Option<&str>) -> String {
    let proto = protocol.map_or_else(|| "TCP".to_owned(), str::to_ascii_uppercase);
    let default = if protocol.is_none() { " (no protocol written: TCP)" } else { "" };
    match port {
        PortSyntax::Any => format!("**every {proto} port**{default}"),
        PortSyntax::Number(n) => {
            format!("**{proto} port {n}**{default}\n\nthe pod's own (target) port, not a Service port")
        }
        PortSyntax::Range(a, b) => format!(
            "**{proto} ports {a} to {b}**{default}\n\nwritten as `port: {a}` with `endPort: {b}`; both ends included"
        ),
        PortSyntax::Name(n) => format!(
            "**named port `{n}`, {proto}**{default}\n\nresolved on each destination pod: the container port named `{n}`"
        ),
    }
}

fn is_code(word: &str) -> bool {
    word.len() == 5
        && matches!(word.as_bytes()[0], b'E' | b'W' | b'e' | b'w')
        && word[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The word (letters and digits) around `offset`.
fn word_at(text: &str, offset: usize) -> Option<(&str, crate::ast::Span)> {
    let offset = offset.min(text.len());
    let is_word = |c: char| c.is_ascii_alphanumeric();
    let start = text[..offset].rfind(|c: char| !is_word(c)).map_or(0, |i| i + 1);
    let end = text[offset..].find(|c: char| !is_word(c)).map_or(text.len(), |i| offset + i);
    (start < end).then(|| (&text[start..end], crate::ast::Span::new(start, end)))
}

/// The namespace the text at `offset` belongs to, read from the text itself (the line being typed
/// may not parse): the innermost open `namespace NAME {`, else the last `namespace NAME` header.
#[must_use]
pub fn namespace_at(text: &str, offset: usize) -> String {
    let mut header = DEFAULT_NAMESPACE.to_owned();
    let mut block: Option<String> = None;
    for line in text[..offset.min(text.len())].lines() {
        let code = line.split('#').next().unwrap_or("").trim();
        if let Some(rest) = code.strip_prefix("namespace ") {
            let name = rest.trim_end_matches('{').trim();
            if rest.trim_end().ends_with('{') {
                block = Some(name.to_owned());
            } else {
                header = name.to_owned();
            }
        } else if code.starts_with('}') {
            block = None;
        }
    }
    block.unwrap_or(header)
}
