//! `netc report`: one self-contained HTML page about a netc program.
//!
//! The page holds a summary, the graph (drawn here as inline SVG with a small deterministic
//! layout, so no Graphviz is needed), the connectivity table, each workload's two doors with the
//! statements that guard them, every rule with its id and a link to its source line, every
//! `assert` statement (held, or failed with its counterexamples), the warnings, and the source itself with an anchor on every line. It has inline CSS, no script and
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
//!     assertions: &out.assertions,
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

mod layout;
use layout::{SvgGraph, layout};

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
    /// Every diagnostic of the compilation (warnings, and failed assertions when compiled with
    /// [`crate::Assertions::Keep`]). Those of failed assertions (E0501, E0502) are shown with their
    /// assertion rather than among the warnings.
    pub diagnostics: &'a [Diagnostic],
    /// The program's `assert` statements and what became of them ([`crate::Compilation::assertions`]).
    pub assertions: &'a [crate::AssertionOutcome],
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
        None => Graph::from_ir(input.ir, &graph::ExternalNames::from_sources(input.sources)),
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
    assertions: Vec<AssertionRow>,
    /// How many assertions failed.
    failed: usize,
    warnings: Vec<Warning>,
    sources: Vec<SourceView>,
}

/// One `assert` statement.
#[derive(Debug, Serialize)]
struct AssertionRow {
    /// The statement as written (continuation lines joined).
    text: String,
    held: bool,
    location: Link,
    failures: Vec<AssertionFailure>,
}

/// One way an assertion fails: for a possible pod (E0501) or on the cluster (E0502).
#[derive(Debug, Serialize)]
struct AssertionFailure {
    code: &'static str,
    /// `for every possible pod` or `on the cluster`.
    scope: &'static str,
    /// The claim that does not hold.
    claim: String,
    /// The counterexample and the other notes of the diagnostic.
    notes: Vec<String>,
    /// The statements the evaluator names (rules that allow the flow, or guards).
    because: Vec<Link>,
    because_label: &'static str,
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
    intent: String,
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
    lines: Vec<Vec<&'a str>>,
}

impl<'a> Sources<'a> {
    fn new(files: &'a [SourceFile]) -> Sources<'a> {
        let line_starts = files
            .iter()
            .map(|s| std::iter::once(0).chain(s.text.match_indices('\n').map(|(i, _)| i + 1)).collect())
            .collect();
        let lines = files.iter().map(|s| s.text.lines().collect()).collect();
        Sources { files, line_starts, lines }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|f| f.name == name)
    }

    fn line_text(&self, file: usize, line: usize) -> &str {
        self.lines.get(file).and_then(|l| l.get(line.wrapping_sub(1))).copied().unwrap_or("")
    }

    /// The `##` doc comment right above the statement at `span`, as one paragraph.
    fn doc_above(&self, span: &Span) -> Option<String> {
        let file = self.index(&span.file)?;
        let lines = self.lines.get(file)?;
        let mut docs = Vec::new();
        let mut i = (span.line as usize).checked_sub(1)?;
        while i > 0 {
            let Some(doc) = lines.get(i - 1).and_then(|l| l.trim_start().strip_prefix("##")) else { break };
            docs.push(doc.trim());
            i -= 1;
        }
        docs.reverse();
        let text = docs.join(" ");
        (!text.trim().is_empty()).then(|| text.trim().to_owned())
    }

    /// Whether the statement at `span` is an arrow (its doc is about a flow, not about doors).
    fn is_arrow(&self, span: &Span) -> bool {
        self.index(&span.file).is_some_and(|f| self.line_text(f, span.line as usize).contains("->"))
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
        let shown_with_assertions = |d: &&Diagnostic| !matches!(d.code, "E0501" | "E0502");
        let others: Vec<Diagnostic> =
            input.diagnostics.iter().filter(shown_with_assertions).cloned().collect();
        let warnings = warning_list(&others, input.sources, &sources);
        let assertions = assertion_rows(input.assertions, &sources);
        let failed = assertions.iter().filter(|a| !a.held).count();
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
            assertions,
            failed,
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

/// Above this many nodes the page leaves the matrix out (150 nodes are 22,500 cells).
const MAX_TABLE_NODES: usize = 150;

fn table(graph: &Graph) -> Table {
    let header = |i: usize| {
        let n = &graph.nodes[i];
        let label = match &n.namespace {
            Some(ns) if graph.namespaces.len() > 1 => format!("{ns}/{}", n.label),
            _ => n.label.clone(),
        };
        // Only workloads have a card of doors to link to.
        let href = if has_card(n) { format!("#{}", node_anchor(i)) } else { String::new() };
        Header { label, title: n.detail.clone(), href }
    };
    let n = graph.nodes.len();
    if n > MAX_TABLE_NODES {
        return Table {
            note: format!(
                "{n} rows and columns are too many for a page ({} cells); `netc matrix` prints the whole matrix as a table, CSV or JSON.",
                n * n
            ),
            columns: Vec::new(),
            rows: Vec::new(),
        };
    }
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

/// Whether a node gets a card in the Doors section: workloads, and `dns` when the program says
/// something about its doors.
fn has_card(n: &graph::Node) -> bool {
    n.kind == NodeKind::Workload
        || (n.kind == NodeKind::Dns && !(n.ingress == DoorView::Unknown && n.egress == DoorView::Unknown))
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
        .filter(|(_, n)| has_card(n))
        .map(|(i, n)| {
            // The workload's own declaration comes first.
            let mut intent: Vec<String> = ir
                .workloads
                .iter()
                .find(|w| Some(&w.namespace) == n.namespace.as_ref() && w.name == n.label)
                .filter(|w| {
                    sources.index(&w.span.file).is_some_and(|f| {
                        sources.line_text(f, w.span.line as usize).trim_start().starts_with("workload")
                    })
                })
                .and_then(|w| sources.doc_above(&w.span))
                .into_iter()
                .collect();
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
                        DoorView::Guarded { statements, rules, .. } => {
                            // What the door statements (not the arrows: their intent is the
                            // rule's) say about these pods.
                            for s in statements.iter().filter(|s| !sources.is_arrow(s)) {
                                if let Some(doc) = sources.doc_above(s)
                                    && !intent.contains(&doc)
                                {
                                    intent.push(doc);
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
                .pods_node(&policy.namespace, &policy.selector)
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
                intent: sources.doc_above(&rule.span).unwrap_or_default(),
            }
        })
        .collect()
}

fn assertion_rows(outcomes: &[crate::AssertionOutcome], sources: &Sources<'_>) -> Vec<AssertionRow> {
    let link = |loc: &crate::check::Loc| sources.link_to(loc.file, sources.line_of(loc.file, loc.span.start));
    outcomes
        .iter()
        .map(|o| {
            let text = sources
                .files
                .get(o.at.file)
                .and_then(|f| f.text.get(o.at.span.start as usize..o.at.span.end as usize))
                .unwrap_or_default();
            let failures = o
                .failures
                .iter()
                .map(|e| {
                    let d = diagnostics::from_assert(e);
                    let on_cluster = matches!(e.origin, crate::prove::assertions::Origin::Cluster { .. });
                    AssertionFailure {
                        code: d.code,
                        scope: if on_cluster { "on the cluster" } else { "for every possible pod" },
                        claim: e.claim.clone(),
                        notes: d.notes.clone(),
                        because: e.because.iter().map(link).collect(),
                        because_label: if e.claim.starts_with("no ") || e.claim.contains("isolated") {
                            "allowed by"
                        } else {
                            "refused or guarded by"
                        },
                    }
                })
                .collect::<Vec<_>>();
            AssertionRow {
                text: text.split_whitespace().collect::<Vec<_>>().join(" "),
                held: failures.is_empty(),
                location: link(&o.at),
                failures,
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
            let class = match word {
                _ if prev_is_label || !KEYWORDS.contains(&word) => "",
                // The door words in the page's colours: guarded blue, open amber.
                "guarded" | "isolated" | "deny" => "kw guard",
                "open" | "allow" => "kw open",
                _ => "kw",
            };
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
