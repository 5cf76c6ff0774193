//! `netc report`: one self-contained HTML page about a netc program.
//!
//! The page holds a summary, the graph (drawn here as inline SVG with a small deterministic
//! layout, so no Graphviz is needed), the connectivity table, each workload's two doors with the
//! statements that guard them, every rule with its id and a link to its source line, the
//! warnings, and the source itself with an anchor on every line. It has inline CSS, no script and
//! no external resource, so it can be attached to a pull request or opened from disk.
//!
//! The templates are `compiler/templates/*.tera`, compiled into the library; tera escapes every
//! value (autoescape is on for all of them), so doc comments and names cannot inject markup.
//! Output is byte-identical for the same input.
//!
//! ```
//! let sources = [netc::SourceFile::new("a.np", "frontend -> backend:8080\nhermit isolated\n")];
//! let out = netc::compile(&sources);
//! let ir = out.ir.as_ref().expect("compiles");
//! let html = netc::report::render(&netc::report::ReportInput {
//!     sources: &sources,
//!     ir,
//!     diagnostics: &out.diagnostics,
//!     cluster: None,
//! })
//! .expect("the templates are valid");
//! assert!(html.contains("<svg"));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use netc_ir::{Direction, Inventory, Ir, Span};
use serde::Serialize;

use crate::SourceFile;
use crate::analysis::matrix::Matrix;
use crate::diagnostics::{self, Diagnostic, Severity};
use crate::graph::{self, DoorView, Graph, NodeKind, Reach};

const PAGE: &str = include_str!("../templates/report.html.tera");
const SVG: &str = include_str!("../templates/graph.svg.tera");
const CSS: &str = include_str!("../templates/report.css.tera");

/// What a report is about.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// The source files, in compilation order (shown with line anchors).
    pub sources: &'a [SourceFile],
    /// Their IR.
    pub ir: &'a Ir,
    /// Every diagnostic of the compilation (warnings, since there is an IR).
    pub diagnostics: &'a [Diagnostic],
    /// A cluster to show the effect on: a name for it (the file) and its contents.
    pub cluster: Option<(&'a str, &'a Inventory)>,
}

/// The templates failed to render: a bug in netc, never the input's fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError(String);

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot render the report (a bug in netc, please report it): {}", self.0)
    }
}

impl std::error::Error for ReportError {}

impl From<tera::Error> for ReportError {
    fn from(e: tera::Error) -> ReportError {
        // tera's Display omits the causes, which name the template line.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        ReportError(text)
    }
}

/// The whole page as HTML.
///
/// # Errors
/// [`ReportError`] if the built-in templates fail, which would be a bug.
pub fn render(input: &ReportInput<'_>) -> Result<String, ReportError> {
    let graph = match input.cluster {
        None => Graph::from_ir(input.ir),
        Some((_, inventory)) => {
            let probes = Matrix::default_probes(input.ir, inventory);
            let matrix = Matrix::compute(input.ir, inventory, &probes);
            Graph::from_cluster(input.ir, inventory, &matrix)
        }
    };
    let page = Page::build(input, &graph);
    let mut tera = tera::Tera::default();
    tera.add_raw_templates([("report.html.tera", PAGE), ("graph.svg.tera", SVG), ("report.css.tera", CSS)])?;
    tera.autoescape_on(vec![".tera"]);
    let context = tera::Context::from_serialize(&page)?;
    Ok(tera.render("report.html.tera", &context)?)
}

// ---------- the page's data ----------

#[derive(Debug, Serialize)]
struct Page {
    title: String,
    version: &'static str,
    files: Vec<String>,
    short_files: Vec<String>,
    cluster: Option<String>,
    headline: String,
    stats: Vec<Stat>,
    graph: SvgGraph,
    graph_caption: String,
    dot: String,
    mermaid: String,
    table: Table,
    workloads: Vec<WorkloadCard>,
    rules: Vec<RuleRow>,
    warnings: Vec<Warning>,
    sources: Vec<SourceView>,
}

#[derive(Debug, Serialize)]
struct Stat {
    value: String,
    label: String,
    class: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Link {
    text: String,
    href: String,
    /// The statement at the target, for a tooltip or an excerpt.
    excerpt: String,
}

#[derive(Debug, Serialize)]
struct Table {
    note: String,
    columns: Vec<Header>,
    rows: Vec<TableRow>,
}

#[derive(Debug, Serialize)]
struct Header {
    label: String,
    title: String,
    href: String,
}

#[derive(Debug, Serialize)]
struct TableRow {
    header: Header,
    cells: Vec<TableCell>,
}

#[derive(Debug, Serialize)]
struct TableCell {
    class: &'static str,
    text: String,
    title: String,
}

#[derive(Debug, Serialize)]
struct WorkloadCard {
    anchor: String,
    name: String,
    namespace: String,
    detail: String,
    kind: &'static str,
    isolated: bool,
    intent: Vec<String>,
    doors: Vec<DoorCard>,
}

#[derive(Debug, Serialize)]
struct DoorCard {
    direction: &'static str,
    state: &'static str,
    class: &'static str,
    explanation: String,
    statements: Vec<Link>,
    rules: Vec<RuleChip>,
}

#[derive(Debug, Serialize)]
struct RuleChip {
    id: String,
    href: String,
    text: String,
}

#[derive(Debug, Serialize)]
struct RuleRow {
    id: String,
    anchor: String,
    policy: String,
    direction: &'static str,
    subject: String,
    subject_href: String,
    peers: String,
    ports: String,
    source: Link,
}

#[derive(Debug, Serialize)]
struct Warning {
    severity: &'static str,
    code: &'static str,
    message: String,
    location: Option<Link>,
    help: Option<String>,
    notes: Vec<String>,
    text: String,
}

#[derive(Debug, Serialize)]
struct SourceView {
    name: String,
    anchor: String,
    lines: Vec<SourceLine>,
}

#[derive(Debug, Serialize)]
struct SourceLine {
    number: usize,
    id: String,
    class: &'static str,
    tokens: Vec<Token>,
    rules: Vec<RuleChip>,
}

#[derive(Debug, Serialize)]
struct Token {
    class: &'static str,
    text: String,
}

/// Line starts and file indices, to turn spans into links.
struct Sources<'a> {
    files: &'a [SourceFile],
    line_starts: Vec<Vec<usize>>,
}

impl<'a> Sources<'a> {
    fn new(files: &'a [SourceFile]) -> Sources<'a> {
        let line_starts = files
            .iter()
            .map(|s| std::iter::once(0).chain(s.text.match_indices('\n').map(|(i, _)| i + 1)).collect())
            .collect();
        Sources { files, line_starts }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|f| f.name == name)
    }

    fn line_text(&self, file: usize, line: usize) -> &str {
        self.files.get(file).and_then(|f| f.text.lines().nth(line.saturating_sub(1))).unwrap_or("")
    }

    fn line_of(&self, file: usize, offset: u32) -> usize {
        self.line_starts.get(file).map_or(1, |s| s.partition_point(|&start| start <= offset as usize).max(1))
    }

    fn link_to(&self, file: usize, line: usize) -> Link {
        let name = self.files.get(file).map_or("", |f| f.name.as_str());
        Link {
            text: format!("{}:{line}", short_name(name)),
            href: format!("#{}", line_anchor(file, line)),
            excerpt: excerpt(self.line_text(file, line)),
        }
    }

    fn link(&self, span: &Span) -> Link {
        match self.index(&span.file) {
            Some(file) => self.link_to(file, span.line as usize),
            None => Link { text: span.to_string(), href: String::new(), excerpt: String::new() },
        }
    }
}

fn line_anchor(file: usize, line: usize) -> String {
    format!("src-{file}-{line}")
}

fn rule_anchor(id: &str) -> String {
    format!("rule-{id}")
}

fn node_anchor(index: usize) -> String {
    format!("node-{index}")
}

/// The file name without its directories: reports are read far from the checkout.
fn short_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn excerpt(line: &str) -> String {
    let t = line.trim();
    if t.chars().count() > 90 {
        format!("{}…", t.chars().take(89).collect::<String>())
    } else {
        t.to_owned()
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

impl Page {
    fn build(input: &ReportInput<'_>, graph: &Graph) -> Page {
        let sources = Sources::new(input.sources);
        let ir = input.ir;
        let files: Vec<String> = input.sources.iter().map(|s| s.name.clone()).collect();
        let short: Vec<String> = files.iter().map(|f| short_name(f).to_owned()).collect();
        let title = format!("netc report: {}", short.join(", "));
        let rules = rule_rows(ir, graph, &sources);
        let warnings = warning_list(input.diagnostics, input.sources, &sources);
        let workloads = workload_cards(ir, graph, &sources);
        let (stats, headline) = stats(ir, graph, input, &workloads, &warnings);
        Page {
            title,
            version: env!("CARGO_PKG_VERSION"),
            files,
            short_files: short,
            cluster: input.cluster.map(|(name, _)| name.to_owned()),
            headline,
            stats,
            graph: layout(graph),
            graph_caption: graph.caption().trim_start_matches("netc graph: ").to_owned(),
            dot: graph.to_dot(),
            mermaid: graph.to_mermaid(),
            table: table(graph),
            workloads,
            rules,
            warnings,
            sources: source_views(ir, &sources),
        }
    }
}

fn stats(
    ir: &Ir,
    graph: &Graph,
    input: &ReportInput<'_>,
    workloads: &[WorkloadCard],
    warnings: &[Warning],
) -> (Vec<Stat>, String) {
    let pods = |n: &&graph::Node| matches!(n.kind, NodeKind::Workload | NodeKind::Dns);
    let doors = |d: Direction| {
        graph
            .nodes
            .iter()
            .filter(pods)
            .filter(|n| if d == Direction::Ingress { &n.ingress } else { &n.egress }.is_guarded())
            .count()
    };
    let (guarded_in, guarded_out) = (doors(Direction::Ingress), doors(Direction::Egress));
    let isolated = graph.nodes.iter().filter(|n| n.isolated).count();
    let rule_count = ir.rules().count();
    let namespaces = graph.namespaces.len();
    let mut stats = vec![
        Stat {
            value: workloads.len().to_string(),
            label: if input.cluster.is_some() { "pod groups" } else { "workloads" }.to_owned(),
            class: "",
        },
        Stat {
            value: namespaces.to_string(),
            label: if namespaces == 1 { "namespace" } else { "namespaces" }.to_owned(),
            class: "",
        },
        Stat { value: ir.policies.len().to_string(), label: "NetworkPolicies".to_owned(), class: "" },
        Stat {
            value: rule_count.to_string(),
            label: if rule_count == 1 { "rule" } else { "rules" }.to_owned(),
            class: "allowed",
        },
        Stat {
            value: format!("{guarded_in} / {}", workloads.len()),
            label: "ingress doors guarded".to_owned(),
            class: "guarded",
        },
        Stat {
            value: format!("{guarded_out} / {}", workloads.len()),
            label: "egress doors guarded".to_owned(),
            class: "guarded",
        },
    ];
    if isolated > 0 {
        stats.push(Stat { value: isolated.to_string(), label: "isolated".to_owned(), class: "isolated" });
    }
    if let Some((_, inventory)) = input.cluster {
        let applicable = graph.cells.iter().filter(|c| c.reach != Reach::NotApplicable).count();
        let denied = graph.cells.iter().filter(|c| c.reach == Reach::None).count();
        stats.push(Stat { value: inventory.pods.len().to_string(), label: "pods".to_owned(), class: "" });
        stats.push(Stat {
            value: format!("{denied} / {applicable}"),
            label: "group pairs fully denied".to_owned(),
            class: "denied",
        });
    }
    let warning_count = warnings.len();
    stats.push(Stat {
        value: warning_count.to_string(),
        label: if warning_count == 1 { "warning" } else { "warnings" }.to_owned(),
        class: if warning_count == 0 { "allowed" } else { "warning" },
    });
    let headline = format!(
        "{} in {}: {} of {} doors guarded, {}, {}.",
        plural(workloads.len(), "workload", "workloads"),
        plural(namespaces, "namespace", "namespaces"),
        guarded_in + guarded_out,
        workloads.len() * 2,
        plural(rule_count, "rule", "rules"),
        plural(warning_count, "warning", "warnings"),
    );
    (stats, headline)
}

fn table(graph: &Graph) -> Table {
    let header = |i: usize| {
        let n = &graph.nodes[i];
        let label = match &n.namespace {
            Some(ns) if graph.namespaces.len() > 1 => format!("{ns}/{}", n.label),
            _ => n.label.clone(),
        };
        Header { label, title: n.detail.clone(), href: format!("#{}", node_anchor(i)) }
    };
    let n = graph.nodes.len();
    let rows = (0..n)
        .map(|from| TableRow {
            header: header(from),
            cells: (0..n)
                .map(|to| {
                    let cell = graph.cell(from, to);
                    let class = match (cell.reach, cell.partial) {
                        (Reach::All, false) => "all",
                        (Reach::Some, false) => "some",
                        (Reach::All | Reach::Some, true) => "partial",
                        (Reach::None, _) => "none",
                        (Reach::NotApplicable, _) => "na",
                    };
                    let verdict = match cell.reach {
                        Reach::All => {
                            format!("allowed on any port{}", if cell.partial { " for some pods" } else { "" })
                        }
                        Reach::Some => format!(
                            "allowed on {}{}",
                            cell.text,
                            if cell.partial { " for some pods" } else { "" }
                        ),
                        Reach::None => "denied".to_owned(),
                        Reach::NotApplicable => "two addresses: no door of ours".to_owned(),
                    };
                    let text = match cell.reach {
                        Reach::All => "any".to_owned(),
                        Reach::None => "✕".to_owned(),
                        _ => cell.text.clone(),
                    };
                    TableCell {
                        class,
                        text,
                        title: format!("{} → {}: {verdict}", graph.nodes[from].label, graph.nodes[to].label),
                    }
                })
                .collect(),
        })
        .collect();
    let note = if graph.from_cluster {
        "Rows send, columns receive. Each cell is what the cluster's pods of the row may open to the pods of the column, on the ports the rules mention (\"other ports\" stands for every port no rule names). \"some pods\": not every pod pair of the two groups gets the same."
    } else {
        "Rows send, columns receive. Each cell is what the intent allows from a pod of the row to a pod of the column: the sender's egress door AND the receiver's ingress door. Worked out for pods carrying exactly the labels of each selector; give a cluster (--cluster) for exact answers on real pods."
    };
    Table { note: note.to_owned(), columns: (0..n).map(header).collect(), rows }
}

fn rule_chip(ir: &Ir, id: &str) -> RuleChip {
    let text = ir
        .rules()
        .find(|(_, _, r)| r.id == id)
        .map(|(policy, dir, rule)| {
            let peers = if rule.peers.is_empty() {
                "anywhere".to_owned()
            } else {
                rule.peers.iter().map(|p| graph::peer_text(ir, policy, p)).collect::<Vec<_>>().join(", ")
            };
            let word = if dir == Direction::Ingress { "from" } else { "to" };
            format!("{word} {peers} on {}", graph::ports_text(&rule.ports))
        })
        .unwrap_or_default();
    RuleChip { id: id.to_owned(), href: format!("#{}", rule_anchor(id)), text }
}

fn workload_cards(ir: &Ir, graph: &Graph, sources: &Sources<'_>) -> Vec<WorkloadCard> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            n.kind == NodeKind::Workload
                || (n.kind == NodeKind::Dns
                    && !(n.ingress == DoorView::Unknown && n.egress == DoorView::Unknown))
        })
        .map(|(i, n)| {
            let mut intent: Vec<String> = Vec::new();
            let doors = [(Direction::Ingress, &n.ingress), (Direction::Egress, &n.egress)]
                .into_iter()
                .map(|(dir, view)| {
                    let (state, class, explanation) = match view {
                        DoorView::Guarded { rules, .. } if rules.is_empty() => (
                            "guarded",
                            "guarded",
                            "nothing passes: the door is guarded and no rule opens it".to_owned(),
                        ),
                        DoorView::Guarded { .. } => (
                            "guarded",
                            "guarded",
                            format!(
                                "only the rules below let traffic {}",
                                if dir == Direction::Ingress { "in" } else { "out" }
                            ),
                        ),
                        DoorView::Open => {
                            ("open", "open", "anything passes: no policy guards this door".to_owned())
                        }
                        DoorView::Partly => (
                            "partly guarded",
                            "partly",
                            "some of these pods are guarded by a narrower policy, the others are open"
                                .to_owned(),
                        ),
                        DoorView::Unknown | DoorView::NotApplicable => ("unknown", "na", String::new()),
                    };
                    let (statements, rules) = match view {
                        DoorView::Guarded { policies, statements, rules } => {
                            for &p in policies {
                                if let Some(doc) = &ir.policies[p].doc {
                                    for line in doc.lines() {
                                        if !intent.iter().any(|l| l == line) {
                                            intent.push(line.to_owned());
                                        }
                                    }
                                }
                            }
                            (
                                statements.iter().map(|s| sources.link(s)).collect(),
                                rules.iter().map(|r| rule_chip(ir, r)).collect(),
                            )
                        }
                        _ => (Vec::new(), Vec::new()),
                    };
                    DoorCard {
                        direction: if dir == Direction::Ingress { "ingress" } else { "egress" },
                        state,
                        class,
                        explanation,
                        statements,
                        rules,
                    }
                })
                .collect();
            WorkloadCard {
                anchor: node_anchor(i),
                name: n.label.clone(),
                namespace: n.namespace.clone().unwrap_or_else(|| "kube-system".to_owned()),
                detail: n.detail.clone(),
                kind: if n.kind == NodeKind::Dns { "dns" } else { "workload" },
                isolated: n.isolated,
                intent,
                doors,
            }
        })
        .collect()
}

fn rule_rows(ir: &Ir, graph: &Graph, sources: &Sources<'_>) -> Vec<RuleRow> {
    ir.rules()
        .map(|(policy, dir, rule)| {
            let subject_href = graph
                .nodes
                .iter()
                .position(|n| {
                    n.namespace.as_deref() == Some(policy.namespace.as_str())
                        && match &n.ingress {
                            DoorView::Guarded { rules, .. } if dir == Direction::Ingress => {
                                rules.contains(&rule.id)
                            }
                            _ => match &n.egress {
                                DoorView::Guarded { rules, .. } if dir == Direction::Egress => {
                                    rules.contains(&rule.id)
                                }
                                _ => false,
                            },
                        }
                })
                .map(|i| format!("#{}", node_anchor(i)))
                .unwrap_or_default();
            let peers = if rule.peers.is_empty() {
                "anywhere".to_owned()
            } else {
                rule.peers.iter().map(|p| graph::peer_text(ir, policy, p)).collect::<Vec<_>>().join(", ")
            };
            RuleRow {
                id: rule.id.clone(),
                anchor: rule_anchor(&rule.id),
                policy: format!("{}/{}", policy.namespace, policy.name),
                direction: if dir == Direction::Ingress { "ingress" } else { "egress" },
                subject: policy.workload.clone(),
                subject_href,
                peers: format!("{} {peers}", if dir == Direction::Ingress { "from" } else { "to" }),
                ports: graph::ports_text(&rule.ports),
                source: sources.link(&rule.span),
            }
        })
        .collect()
}

fn warning_list(diags: &[Diagnostic], files: &[SourceFile], sources: &Sources<'_>) -> Vec<Warning> {
    diags
        .iter()
        .map(|d| {
            let location =
                d.location().map(|loc| sources.link_to(loc.file, sources.line_of(loc.file, loc.span.start)));
            Warning {
                severity: match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                code: d.code,
                message: d.message.clone(),
                location,
                help: d.help.clone(),
                notes: d.notes.clone(),
                text: diagnostics::render(std::slice::from_ref(d), files, false),
            }
        })
        .collect()
}

fn source_views(ir: &Ir, sources: &Sources<'_>) -> Vec<SourceView> {
    // Rules and guards by (file, line).
    let mut rules_at: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    for (_, _, rule) in ir.rules() {
        if let Some(f) = sources.index(&rule.span.file) {
            let ids = rules_at.entry((f, rule.span.line as usize)).or_default();
            if !ids.contains(&rule.id) {
                ids.push(rule.id.clone());
            }
        }
    }
    let mut guards_at: BTreeMap<(usize, usize), ()> = BTreeMap::new();
    for p in &ir.policies {
        for dir in Direction::BOTH {
            for s in &p.door(dir).guarded_by {
                if let Some(f) = sources.index(&s.file) {
                    guards_at.insert((f, s.line as usize), ());
                }
            }
        }
    }
    sources
        .files
        .iter()
        .enumerate()
        .map(|(f, file)| SourceView {
            name: file.name.clone(),
            anchor: format!("src-{f}"),
            lines: file
                .text
                .lines()
                .enumerate()
                .map(|(i, text)| {
                    let number = i + 1;
                    let rules: Vec<RuleChip> = rules_at
                        .get(&(f, number))
                        .map(|ids| ids.iter().map(|id| rule_chip(ir, id)).collect())
                        .unwrap_or_default();
                    let class = if !rules.is_empty() {
                        "rule"
                    } else if guards_at.contains_key(&(f, number)) {
                        "guard"
                    } else {
                        ""
                    };
                    SourceLine { number, id: line_anchor(f, number), class, tokens: tokens(text), rules }
                })
                .collect(),
        })
        .collect()
}

/// A light highlighting of one line of netc: comments, doc comments, keywords, arrows, numbers.
fn tokens(line: &str) -> Vec<Token> {
    const KEYWORDS: [&str; 16] = [
        "namespace",
        "workload",
        "external",
        "default",
        "deny",
        "allow",
        "anywhere",
        "dns",
        "isolated",
        "guarded",
        "open",
        "ingress",
        "egress",
        "except",
        "in",
        "notin",
    ];
    let mut out: Vec<Token> = Vec::new();
    let push = |out: &mut Vec<Token>, class: &'static str, text: &str| {
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(last) if last.class == class => last.text.push_str(text),
            _ => out.push(Token { class, text: text.to_owned() }),
        }
    };
    let (code, comment) = match line.find('#') {
        Some(i) => line.split_at(i),
        None => (line, ""),
    };
    let mut rest = code;
    while !rest.is_empty() {
        if rest.starts_with("->") {
            push(&mut out, "arrow", "->");
            rest = &rest[2..];
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_ascii_alphabetic() {
            let end = rest
                .char_indices()
                .find(|&(i, ch)| {
                    !(ch.is_ascii_alphanumeric() || ch == '_' || (ch == '-' && !rest[i..].starts_with("->")))
                })
                .map_or(rest.len(), |(i, _)| i);
            let word = &rest[..end];
            let prev_is_label = out.last().is_some_and(|t| t.text.ends_with('{') || t.text.ends_with(", "));
            let class = if KEYWORDS.contains(&word) && !prev_is_label { "kw" } else { "" };
            push(&mut out, class, word);
            rest = &rest[end..];
        } else if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.' || ch == '/' || ch == ':'))
                .unwrap_or(rest.len());
            push(&mut out, "num", &rest[..end]);
            rest = &rest[end..];
        } else {
            let len = c.len_utf8();
            let class = if matches!(c, '{' | '}' | '[' | ']' | '(' | ')') { "punct" } else { "" };
            push(&mut out, class, &rest[..len]);
            rest = &rest[len..];
        }
    }
    if comment.starts_with("##") {
        push(&mut out, "doc", comment);
    } else {
        push(&mut out, "comment", comment);
    }
    out
}

// ---------- the graph, laid out ----------

#[derive(Debug, Serialize)]
struct SvgGraph {
    width: u32,
    height: u32,
    bands: Vec<SvgBand>,
    nodes: Vec<SvgNode>,
    edges: Vec<SvgEdge>,
    empty: bool,
}

#[derive(Debug, Serialize)]
struct SvgBand {
    x: String,
    y: String,
    /// Where the title goes.
    tx: String,
    ty: String,
    width: String,
    height: String,
    title: String,
    namespace: bool,
}

#[derive(Debug, Serialize)]
struct SvgNode {
    href: String,
    x: String,
    y: String,
    width: String,
    height: String,
    /// x of the text, and the baselines of its three lines.
    tx: String,
    y1: String,
    y2: String,
    y3: String,
    /// The door pills: top and height.
    door_y: String,
    door_h: String,
    /// x of the pills.
    left: String,
    class: String,
    label: String,
    detail: String,
    /// `(class, text)` pieces of the doors line.
    doors: Vec<Token>,
    title: String,
    /// The door bars: left (ingress) and right (egress) classes, empty for none.
    ingress: &'static str,
    egress: &'static str,
    right: String,
}

#[derive(Debug, Serialize)]
struct SvgEdge {
    d: String,
    href: String,
    class: &'static str,
    label: String,
    lx: String,
    ly: String,
    title: String,
}

const NODE_H: f64 = 58.0;
const NODE_GAP: f64 = 18.0;
const RANK_GAP: f64 = 150.0;
const BAND_PAD: f64 = 14.0;
const BAND_TITLE: f64 = 26.0;
const BAND_GAP: f64 = 18.0;
const MARGIN: f64 = 16.0;

fn px(v: f64) -> String {
    format!("{v:.1}")
}

/// Rough text widths (the page uses the system sans-serif), to size boxes without a font.
fn text_width(s: &str, size: f64) -> f64 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' | ' ' | 'f' | 't' | 'r' | '/'
            | '(' | ')' | '[' | ']' | '{' | '}' => 0.33,
            'm' | 'w' | 'M' | 'W' | '@' => 0.85,
            c if c.is_ascii_uppercase() || c.is_ascii_digit() => 0.62,
            _ => 0.55,
        })
        .sum::<f64>()
        * size
}

/// Monospace text: every character is 0.6 em wide (DejaVu Sans Mono, Menlo, Consolas alike).
fn mono_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * 0.6 * size
}

/// `s`, cut with an ellipsis to fit `max_width` as measured by `width`.
fn clip(s: &str, max_width: f64, size: f64, width: fn(&str, f64) -> f64) -> String {
    if width(s, size) <= max_width {
        return s.to_owned();
    }
    let mut out = String::new();
    for c in s.chars() {
        out.push(c);
        if width(&out, size) + width("…", size) > max_width {
            out.pop();
            break;
        }
    }
    out.push('…');
    out
}

/// Ranks by longest path over the edges (back edges of a depth-first search ignored, self loops
/// too), so flows read left to right.
fn ranks(graph: &Graph) -> Vec<usize> {
    let n = graph.nodes.len();
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for e in &graph.edges {
        if e.from != e.to && !succ[e.from].contains(&e.to) {
            succ[e.from].push(e.to);
        }
    }
    // Iterative DFS marking back edges.
    let mut state = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut forward: Vec<Vec<usize>> = vec![Vec::new(); n];
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if *next < succ[v].len() {
                let w = succ[v][*next];
                *next += 1;
                match state[w] {
                    0 => {
                        forward[v].push(w);
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    2 => forward[v].push(w),
                    _ => {} // back edge
                }
            } else {
                state[v] = 2;
                stack.pop();
            }
        }
    }
    // Longest path on the DAG, by Kahn's order.
    let mut indegree = vec![0usize; n];
    for f in &forward {
        for &w in f {
            indegree[w] += 1;
        }
    }
    let mut rank = vec![0usize; n];
    let mut queue: std::collections::VecDeque<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    while let Some(v) = queue.pop_front() {
        for &w in &forward[v] {
            rank[w] = rank[w].max(rank[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    // Pull pure sources right, next to what they feed, so they do not all pile up in column 0.
    for v in 0..n {
        let has_in = graph.edges.iter().any(|e| e.to == v && e.from != v);
        let min_succ = forward[v].iter().map(|&w| rank[w]).min();
        if !has_in
            && let Some(m) = min_succ
            && m > 0
        {
            rank[v] = m - 1;
        }
    }
    rank
}

fn layout(graph: &Graph) -> SvgGraph {
    let n = graph.nodes.len();
    if n == 0 {
        return SvgGraph {
            width: 400,
            height: 60,
            bands: Vec::new(),
            nodes: Vec::new(),
            edges: Vec::new(),
            empty: true,
        };
    }
    let rank = ranks(graph);
    let columns = rank.iter().max().map_or(1, |m| m + 1);
    // Node widths and column widths.
    let lines: Vec<(String, String, Option<String>)> = graph
        .nodes
        .iter()
        .map(|node| {
            let detail = if node.detail == node.label { String::new() } else { node.detail.clone() };
            let doors = if node.isolated { Some("isolated".to_owned()) } else { graph::doors_line(node) };
            (node.label.clone(), detail, doors)
        })
        .collect();
    let natural: Vec<f64> = lines
        .iter()
        .map(|(l, d, doors)| {
            text_width(l, 13.5)
                .max(mono_width(d, 11.0))
                .max(doors.as_deref().map_or(0.0, |s| text_width(s, 11.0)))
                + 34.0
        })
        .collect();
    let mut col_width = vec![130.0f64; columns];
    for v in 0..n {
        col_width[rank[v]] = col_width[rank[v]].max(natural[v].min(270.0));
    }
    let mut col_x = vec![0.0; columns];
    let mut x = MARGIN + BAND_PAD;
    for c in 0..columns {
        col_x[c] = x;
        x += col_width[c] + RANK_GAP;
    }
    let width = x - RANK_GAP + BAND_PAD + MARGIN;
    // Bands: each namespace, then everything else.
    let mut bands: Vec<(Option<&str>, Vec<usize>)> =
        graph.namespaces.iter().map(|ns| (Some(ns.as_str()), graph.nodes_in(Some(ns)).collect())).collect();
    let others: Vec<usize> = graph.nodes_in(None).collect();
    if !others.is_empty() {
        bands.push((None, others));
    }
    // Order nodes within each (band, column) by the mean position of their neighbours, twice.
    let mut slot: Vec<f64> = (0..n).map(|v| v as f64).collect();
    let mut cells: Vec<Vec<Vec<usize>>> = bands
        .iter()
        .map(|(_, members)| {
            let mut by_col = vec![Vec::new(); columns];
            for &v in members {
                by_col[rank[v]].push(v);
            }
            by_col
        })
        .collect();
    for _ in 0..2 {
        for band in &mut cells {
            for col in band.iter_mut() {
                let key = |v: usize| {
                    let neighbours: Vec<f64> = graph
                        .edges
                        .iter()
                        .filter_map(|e| {
                            if e.to == v && e.from != v {
                                Some(slot[e.from])
                            } else if e.from == v && e.to != v {
                                Some(slot[e.to])
                            } else {
                                None
                            }
                        })
                        .collect();
                    if neighbours.is_empty() {
                        slot[v]
                    } else {
                        neighbours.iter().sum::<f64>() / neighbours.len() as f64
                    }
                };
                let mut keyed: Vec<(f64, usize)> = col.iter().map(|&v| (key(v), v)).collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                *col = keyed.into_iter().map(|(_, v)| v).collect();
            }
        }
        let mut order = 0.0;
        for band in &cells {
            let tallest = band.iter().map(Vec::len).max().unwrap_or(0);
            for row in 0..tallest {
                for col in band {
                    if let Some(&v) = col.get(row) {
                        slot[v] = order;
                    }
                }
                order += 1.0;
            }
        }
    }
    // Positions.
    let mut pos = vec![(0.0f64, 0.0f64, 0.0f64); n]; // x, y, width
    let mut svg_bands = Vec::new();
    let mut y = MARGIN;
    for ((ns, _), band) in bands.iter().zip(&cells) {
        let tallest = band.iter().map(Vec::len).max().unwrap_or(0) as f64;
        let inner = tallest * NODE_H + (tallest - 1.0).max(0.0) * NODE_GAP;
        let height = BAND_TITLE + inner + 2.0 * BAND_PAD;
        for (c, col) in band.iter().enumerate() {
            let count = col.len() as f64;
            let used = count * NODE_H + (count - 1.0).max(0.0) * NODE_GAP;
            let mut ny = y + BAND_TITLE + BAND_PAD + (inner - used) / 2.0;
            for &v in col {
                pos[v] = (col_x[c], ny, col_width[c]);
                ny += NODE_H + NODE_GAP;
            }
        }
        svg_bands.push(SvgBand {
            x: px(MARGIN),
            y: px(y),
            tx: px(MARGIN + 12.0),
            ty: px(y + 18.0),
            width: px(width - 2.0 * MARGIN),
            height: px(height),
            title: ns.map_or_else(|| "outside these namespaces".to_owned(), |ns| format!("namespace {ns}")),
            namespace: ns.is_some(),
        });
        y += height + BAND_GAP;
    }
    let height = y - BAND_GAP + MARGIN;
    // Where edges attach: spread along the door bars, ordered by the other end's height.
    let mut outs: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    let mut ins: Vec<Vec<(f64, usize)>> = vec![Vec::new(); n];
    for (i, e) in graph.edges.iter().enumerate() {
        outs[e.from].push((pos[e.to].1, i));
        ins[e.to].push((pos[e.from].1, i));
    }
    let mut start_y = vec![0.0; graph.edges.len()];
    let mut end_y = vec![0.0; graph.edges.len()];
    for v in 0..n {
        for (list, target) in [(&mut outs[v], &mut start_y), (&mut ins[v], &mut end_y)] {
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let k = list.len() as f64;
            for (j, &(_, e)) in list.iter().enumerate() {
                let top = pos[v].1 + 14.0;
                let span = NODE_H - 28.0;
                target[e] =
                    if k <= 1.0 { pos[v].1 + NODE_H / 2.0 } else { top + span * (j as f64) / (k - 1.0) };
            }
        }
    }
    let edges = graph
        .edges
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (x1, y1) = (pos[e.from].0 + pos[e.from].2 + 3.5, start_y[i]);
            let (x2, y2) = (pos[e.to].0 - 5.0, end_y[i]);
            let (c1, c2, mid) = if e.from == e.to {
                let (bx, by) = (pos[e.from].0, pos[e.from].1 + NODE_H);
                let c1 = (x1 + 40.0, by + 36.0);
                let c2 = (bx - 40.0, by + 36.0);
                (c1, c2, ((x1 + bx) / 2.0, by + 27.0 + 6.0))
            } else if x2 > x1 + 10.0 {
                let dx = (x2 - x1) / 2.0;
                let c1 = (x1 + dx, y1);
                let c2 = (x2 - dx, y2);
                (c1, c2, bezier_mid((x1, y1), c1, c2, (x2, y2)))
            } else {
                // Backwards: swing out to the right and come back in from the left, below.
                let c1 = (x1 + 120.0, y1 + 90.0);
                let c2 = (x2 - 120.0, y2 + 90.0);
                (c1, c2, bezier_mid((x1, y1), c1, c2, (x2, y2)))
            };
            let label = graph.edge_label(e);
            let title = format!(
                "{} → {}: {}{}",
                graph.nodes[e.from].label,
                graph.nodes[e.to].label,
                label,
                if e.rules.is_empty() { String::new() } else { format!(" (rule {})", e.rules.join(", ")) }
            );
            SvgEdge {
                d: format!(
                    "M {} {} C {} {}, {} {}, {} {}",
                    px(x1),
                    px(y1),
                    px(c1.0),
                    px(c1.1),
                    px(c2.0),
                    px(c2.1),
                    px(x2),
                    px(y2)
                ),
                href: e.rules.first().map(|r| format!("#{}", rule_anchor(r))).unwrap_or_default(),
                class: if e.partial { "edge partial" } else { "edge" },
                label: clip(&label, 160.0, 11.0, mono_width),
                lx: px(mid.0),
                ly: px(mid.1 + 4.0),
                title,
            }
        })
        .collect();
    let nodes = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(v, node)| {
            let (x, y, w) = pos[v];
            let (label, detail, doors) = &lines[v];
            let door_class = |d: &DoorView| match d {
                DoorView::Guarded { .. } => "guarded",
                DoorView::Open => "open",
                DoorView::Partly => "partly",
                DoorView::Unknown | DoorView::NotApplicable => "",
            };
            let mut door_tokens = Vec::new();
            if node.isolated {
                door_tokens
                    .push(Token { class: "isolated", text: "isolated: no flows in or out".to_owned() });
            } else if doors.is_some() {
                for (word, view) in [("in", &node.ingress), ("out", &node.egress)] {
                    if !view.word().is_empty() {
                        if !door_tokens.is_empty() {
                            door_tokens.push(Token { class: "sep", text: " · ".to_owned() });
                        }
                        door_tokens
                            .push(Token { class: door_class(view), text: format!("{word} {}", view.word()) });
                    }
                }
            }
            let kind = match node.kind {
                NodeKind::Workload => "workload",
                NodeKind::Namespaces => "namespaces",
                NodeKind::Dns => "dns",
                NodeKind::External => "external",
                NodeKind::Anywhere => "anywhere",
            };
            let mut class = format!("node {kind}");
            if node.isolated {
                class.push_str(" isolated");
            }
            SvgNode {
                href: if matches!(node.kind, NodeKind::Workload | NodeKind::Dns) {
                    format!("#{}", node_anchor(v))
                } else {
                    String::new()
                },
                x: px(x),
                y: px(y),
                width: px(w),
                height: px(NODE_H),
                tx: px(x + 14.0),
                y1: px(y + if detail.is_empty() { 25.0 } else { 21.0 }),
                y2: px(y + 36.5),
                y3: px(y + if detail.is_empty() { 43.0 } else { 51.0 }),
                door_y: px(y + 9.0),
                door_h: px(NODE_H - 18.0),
                left: px(x - 3.5),
                class,
                label: clip(label, w - 28.0, 13.5, text_width),
                detail: clip(detail, w - 28.0, 11.0, mono_width),
                doors: door_tokens,
                title: [label.as_str(), detail.as_str(), doors.as_deref().unwrap_or("")]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join("\n"),
                ingress: if node.isolated { "isolated" } else { door_class(&node.ingress) },
                egress: if node.isolated { "isolated" } else { door_class(&node.egress) },
                right: px(x + w - 3.5),
            }
        })
        .collect();
    SvgGraph {
        width: width.ceil() as u32,
        height: height.ceil() as u32,
        bands: svg_bands,
        nodes,
        edges,
        empty: false,
    }
}

fn bezier_mid(p0: (f64, f64), p1: (f64, f64), p2: (f64, f64), p3: (f64, f64)) -> (f64, f64) {
    ((p0.0 + 3.0 * p1.0 + 3.0 * p2.0 + p3.0) / 8.0, (p0.1 + 3.0 * p1.1 + 3.0 * p2.1 + p3.1) / 8.0)
}
