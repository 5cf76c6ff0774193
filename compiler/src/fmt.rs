//! `netc fmt`: canonical layout, comments kept, idempotent.
//!
//! One statement per line, two-space indentation in namespace blocks, single spaces around
//! `->`, `=` and after commas, lower-case protocols, at most one blank line in a row. A statement
//! longer than [`WIDTH`] columns is wrapped after commas and after its arrow, filling each line,
//! continuation lines indented four more spaces (as rustfmt wraps long lists). Comments are
//! taken from the text between statements (the parser drops them): a comment on the line of a
//! statement stays there; others keep their own lines. A statement with a comment inside it is
//! left exactly as written, so nothing is ever lost.

use crate::ast::{
    CidrPeer, DefaultAction, DoorWords, Endpoint, EndpointKind, File, Item, NamespaceRef, PodRef, PortItem,
    PortSyntax, Selector, SelectorOp, Statement, StatementKind, Target,
};
use crate::syntax::{self, SyntaxError};

/// Format a whole file.
///
/// # Errors
/// The file's syntax error; nothing is formatted then.
pub fn format(text: &str) -> Result<String, SyntaxError> {
    let file: File = syntax::parse(text)?;
    let mut f = Formatter { text, lines: Vec::new(), pos: 0, scope_top: false };
    for item in &file.items {
        match item {
            Item::Statement(s) => f.statement(s, 0),
            Item::StrayDoc(span) => {
                f.gap(span.start as usize, 0);
                f.push_line(0, text[span.range()].trim_end());
                f.pos = span.end as usize;
            }
            Item::NamespaceHeader { name, span } => {
                f.gap(span.start as usize, 0);
                f.push_line(0, &format!("namespace {}", name.node));
                f.pos = span.end as usize;
            }
            Item::NamespaceBlock { name, statements, stray_docs, span } => {
                f.gap(span.start as usize, 0);
                f.push_line(0, &format!("namespace {} {{", name.node));
                let brace = text[name.span.end as usize..]
                    .find('{')
                    .map_or(name.span.end as usize, |i| name.span.end as usize + i + 1);
                f.pos = brace;
                f.open_scope();
                // Statements and stray docs in source order.
                let mut inner: Vec<(u32, Option<&Statement>, Option<crate::ast::Span>)> =
                    statements.iter().map(|s| (start_of(s), Some(s), None)).collect();
                inner.extend(stray_docs.iter().map(|d| (d.start, None, Some(*d))));
                inner.sort_by_key(|(start, _, _)| *start);
                for (_, s, d) in inner {
                    if let Some(s) = s {
                        f.statement(s, 1);
                    } else if let Some(d) = d {
                        f.gap(d.start as usize, 1);
                        f.push_line(1, text[d.range()].trim_end());
                        f.pos = d.end as usize;
                    }
                }
                f.gap(span.end as usize - 1, 1);
                f.close_scope();
                f.push_line(0, "}");
                f.pos = span.end as usize;
            }
        }
    }
    f.gap(text.len(), 0);
    while f.lines.last().is_some_and(String::is_empty) {
        f.lines.pop();
    }
    let mut out = f.lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

fn start_of(s: &Statement) -> u32 {
    let doc = s.docs.first().map(|d| d.span.start);
    let allow = allow_lines(s).first().map(|(span, _)| span.start);
    doc.into_iter().chain(allow).min().unwrap_or(s.span.start)
}

/// The `@allow(...)` attributes of a statement, each as its span and its canonical line.
fn allow_lines(s: &Statement) -> Vec<(crate::ast::Span, String)> {
    s.allows
        .iter()
        .map(|a| {
            let codes: Vec<&str> = a.codes.iter().map(|c| c.node.as_str()).collect();
            (a.span, format!("@allow({})", codes.join(", ")))
        })
        .collect()
}

/// The width `netc fmt` wraps long statements at, in characters (rustfmt's default).
pub const WIDTH: usize = 100;

struct Formatter<'a> {
    text: &'a str,
    lines: Vec<String>,
    pos: usize,
    /// Right after a block's `{`, before its first line: no blank line and no trailing comment
    /// go there. (A flag, not a marker line removed on every push: that made formatting
    /// quadratic in the number of lines.)
    scope_top: bool,
}

impl Formatter<'_> {
    fn push_line(&mut self, indent: usize, line: &str) {
        self.scope_top = false;
        self.lines.push(format!("{}{line}", "  ".repeat(indent)));
    }

    fn open_scope(&mut self) {
        self.scope_top = true;
    }

    fn close_scope(&mut self) {
        self.scope_top = false;
        while self.lines.last().is_some_and(String::is_empty) {
            self.lines.pop();
        }
    }

    /// Comments and blank lines between `self.pos` and `end`.
    fn gap(&mut self, end: usize, indent: usize) {
        let gap = &self.text[self.pos.min(end)..end];
        self.pos = end;
        let mut segments = gap.split('\n');
        // Text on the line where the previous unit ended: a trailing comment.
        if let Some(first) = segments.next() {
            let c = first.trim();
            if !c.is_empty() {
                if let Some(last) = self.lines.last_mut().filter(|l| !self.scope_top && !l.is_empty()) {
                    last.push_str("  ");
                    last.push_str(c);
                } else {
                    self.push_line(indent, c);
                }
            }
        }
        let rest: Vec<&str> = segments.collect();
        let n = rest.len();
        let mut blank = false;
        for (i, seg) in rest.into_iter().enumerate() {
            let c = seg.trim();
            let is_last = i + 1 == n;
            if c.is_empty() {
                // The last segment is the indentation before the next unit, not a blank line.
                if !is_last {
                    blank = true;
                }
                continue;
            }
            self.separate(blank);
            blank = false;
            self.push_line(indent, c);
        }
        self.separate(blank);
    }

    /// One blank line where the source had at least one, except at the top of a scope.
    fn separate(&mut self, blank: bool) {
        if blank && !self.scope_top && self.lines.last().is_some_and(|l| !l.is_empty()) {
            self.lines.push(String::new());
        }
    }

    fn statement(&mut self, s: &Statement, indent: usize) {
        self.gap(start_of(s) as usize, indent);
        // Doc comments and `@allow` lines in source order, one per line.
        let mut attached: Vec<(crate::ast::Span, String)> = s
            .docs
            .iter()
            .map(|d| (d.span, if d.node.is_empty() { "##".to_owned() } else { format!("## {}", d.node) }))
            .collect();
        attached.extend(allow_lines(s));
        attached.sort_by_key(|(span, _)| span.start);
        for (span, line) in attached {
            // Comments between the doc comments, or after them, stay where they were.
            self.gap(span.start as usize, indent);
            self.push_line(indent, &line);
            self.pos = span.end as usize;
        }
        self.gap(s.span.start as usize, indent);
        let original = &self.text[s.span.range()];
        if has_comment(original) {
            // Keep statements with comments inside exactly as written.
            for (i, line) in original.lines().enumerate() {
                let line = if i == 0 { line.trim() } else { line.trim_end() };
                if i == 0 {
                    self.push_line(indent, line);
                } else {
                    self.lines.push(line.to_owned());
                }
            }
        } else {
            let line = render_statement(s, self.text);
            let mut wrapped = wrap(&line, indent).into_iter();
            if let Some(first) = wrapped.next() {
                self.push_line(indent, &first);
            }
            self.lines.extend(wrapped);
        }
        self.pos = s.span.end as usize;
    }
}

/// `line` (a statement on one line) cut to fit [`WIDTH`] at indentation `indent`: the first line
/// without its indentation, the others with theirs. Lines break after a comma or an arrow outside
/// quoted strings, which the parser reads as white space; a piece longer than the width (one
/// long name or selector) gets a line of its own and is not cut.
fn wrap(line: &str, indent: usize) -> Vec<String> {
    let margin = 2 * indent;
    if margin + line.chars().count() <= WIDTH {
        return vec![line.to_owned()];
    }
    // Pieces end after `, ` or `-> ` (every arrow, `-/->` included, ends so), spaces dropped.
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_string = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => in_string = !in_string,
            b' ' if !in_string && i > start && (bytes[i - 1] == b',' || line[..i].ends_with(" ->")) => {
                pieces.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&line[start..]);
    let continuation = " ".repeat(margin + 4);
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut width = margin;
    for piece in pieces {
        let n = piece.chars().count();
        if current.is_empty() {
            current.push_str(piece);
            width += n;
        } else if width + 1 + n <= WIDTH {
            current.push(' ');
            current.push_str(piece);
            width += 1 + n;
        } else {
            out.push(std::mem::take(&mut current));
            current = format!("{continuation}{piece}");
            width = margin + 4 + n;
        }
    }
    out.push(current);
    out
}

/// Whether `text` holds a `#` outside a quoted string.
fn has_comment(text: &str) -> bool {
    let mut in_string = false;
    for c in text.chars() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return true,
            _ => {}
        }
    }
    false
}

fn render_statement(s: &Statement, text: &str) -> String {
    match &s.kind {
        StatementKind::Workload { name, namespace, pods } => {
            let pods = render_pods(&pods.node);
            match namespace {
                None => format!("workload {} = {pods}", name.node),
                Some(ns) => format!("workload {} = {}/{pods}", name.node, render_namespace(&ns.node)),
            }
        }
        StatementKind::External { name, blocks } => {
            let blocks: Vec<String> = blocks.iter().map(render_cidr).collect();
            format!("external {} = {}", name.node, blocks.join(", "))
        }
        StatementKind::Default { action, direction } => {
            let a = match action.node {
                DefaultAction::Deny => "deny",
                DefaultAction::Allow => "allow",
            };
            match direction {
                Some(d) => format!("default {a} {}", d.node),
                None => format!("default {a}"),
            }
        }
        StatementKind::Door { subject, door } => {
            let words = match door.node {
                DoorWords::Isolated => "isolated".to_owned(),
                DoorWords::State { direction, guarded } => {
                    let state = if guarded { "guarded" } else { "open" };
                    match direction {
                        Some(d) => format!("{d} {state}"),
                        None => state.to_owned(),
                    }
                }
            };
            format!("{} {words}", render_endpoint(subject, text))
        }
        StatementKind::Arrow(a) => {
            let sources: Vec<String> = a.sources.iter().map(|e| render_endpoint(e, text)).collect();
            let targets: Vec<String> = a.targets.iter().map(|t| render_target(t, text)).collect();
            let side = if a.egress_only.is_some() { "egress " } else { "" };
            format!("{side}{} {} {}", sources.join(", "), &text[a.op.span.range()], targets.join(", "))
        }
        StatementKind::Priority(span) => text[span.range()].split_whitespace().collect::<Vec<_>>().join(" "),
        StatementKind::Assert { claim, .. } => {
            let inner =
                Statement { docs: Vec::new(), allows: Vec::new(), kind: (**claim).clone(), span: s.span };
            format!("assert {}", render_statement(&inner, text))
        }
    }
}

fn render_target(t: &Target, text: &str) -> String {
    let mut out = render_endpoint(&t.endpoint, text);
    if let Some(ports) = &t.ports {
        out.push(':');
        let items: Vec<String> = ports.node.iter().map(render_port).collect();
        if items.len() == 1 && !text[ports.span.range()].contains('[') {
            out.push_str(&items[0]);
        } else {
            out.push('[');
            out.push_str(&items.join(", "));
            out.push(']');
        }
    }
    if let Some(l7) = t.l7 {
        out.push(' ');
        out.push_str(&text[l7.range()].split_whitespace().collect::<Vec<_>>().join(" "));
    }
    out
}

fn render_port(p: &PortItem) -> String {
    let mut out = match &p.port.node {
        PortSyntax::Any => "*".to_owned(),
        PortSyntax::Number(n) | PortSyntax::Name(n) => n.clone(),
        PortSyntax::Range(a, b) => format!("{a}-{b}"),
    };
    if let Some(proto) = &p.protocol {
        out.push('/');
        out.push_str(&proto.node.to_ascii_lowercase());
    }
    out
}

fn render_endpoint(e: &Endpoint, text: &str) -> String {
    match &e.kind {
        EndpointKind::Anywhere => "anywhere".to_owned(),
        EndpointKind::Dns => "dns".to_owned(),
        EndpointKind::Nodes | EndpointKind::Fqdn(_) => text[e.span.range()].to_owned(),
        EndpointKind::Cidr(c) => render_cidr(c),
        EndpointKind::Pods { namespace, pods } => {
            let pods = render_pods(&pods.node);
            match namespace {
                None => pods,
                Some(ns) => format!("{}/{pods}", render_namespace(&ns.node)),
            }
        }
    }
}

fn render_pods(pods: &PodRef) -> String {
    match pods {
        PodRef::All => "*".to_owned(),
        PodRef::Selector(s) => render_selector(s),
        PodRef::Named(n) => n.clone(),
    }
}

fn render_namespace(ns: &NamespaceRef) -> String {
    match ns {
        NamespaceRef::All => "*".to_owned(),
        NamespaceRef::Selector(s) => render_selector(s),
        NamespaceRef::Named(n) => n.clone(),
    }
}

fn render_cidr(c: &CidrPeer) -> String {
    match c.except.as_slice() {
        [] => c.cidr.node.clone(),
        [one] => format!("{} except {}", c.cidr.node, one.node),
        many => {
            let list: Vec<&str> = many.iter().map(|e| e.node.as_str()).collect();
            format!("{} except ({})", c.cidr.node, list.join(", "))
        }
    }
}

fn render_value(v: &str) -> String {
    let bare = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if bare { v.to_owned() } else { format!("\"{v}\"") }
}

fn render_selector(s: &Selector) -> String {
    let reqs: Vec<String> = s
        .requirements
        .iter()
        .map(|r| {
            let k = &r.key.node;
            let list = |vs: &[crate::ast::Spanned<String>]| {
                vs.iter().map(|v| render_value(&v.node)).collect::<Vec<_>>().join(", ")
            };
            match &r.op {
                SelectorOp::Equals(v) => format!("{k}={}", render_value(&v.node)),
                SelectorOp::NotEquals(v) => format!("{k}!={}", render_value(&v.node)),
                SelectorOp::In(vs) => format!("{k} in ({})", list(vs)),
                SelectorOp::NotIn(vs) => format!("{k} notin ({})", list(vs)),
                SelectorOp::Exists => k.clone(),
                SelectorOp::DoesNotExist => format!("!{k}"),
            }
        })
        .collect();
    format!("{{{}}}", reqs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_canonically_and_keeps_comments() {
        let src = "# top\n\n\nnamespace shop {\n    frontend->backend:8080 # trailing\n\n\n  ## doc\n  web,api -> db:[5432/TCP]\n}\nhermit   isolated\n";
        let out = format(src).expect("parses");
        assert_eq!(
            out,
            "# top\n\nnamespace shop {\n  frontend -> backend:8080  # trailing\n\n  ## doc\n  web, api -> db:[5432/tcp]\n}\nhermit isolated\n"
        );
        assert_eq!(format(&out).expect("parses"), out, "idempotent");
    }

    #[test]
    fn comments_between_doc_comments_and_their_statement_are_kept() {
        let src = "# c1\n## doc\n# c2\n## more\n  # c3\na -> b\n";
        let out = format(src).expect("parses");
        assert_eq!(out, "# c1\n## doc\n# c2\n## more\n# c3\na -> b\n");
        assert_eq!(format(&out).expect("parses"), out, "idempotent");
    }

    #[test]
    fn long_statements_wrap_at_the_width_filling_each_line() {
        let targets: Vec<String> = (0..30).map(|i| format!("service-{i}:80{i:02}")).collect();
        let src = format!("namespace shop {{\n  loadgenerator -> {}  # trailing\n}}\n", targets.join(", "));
        let out = format(&src).expect("parses");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 6, "{out}");
        for l in &lines {
            let code = l.split("  #").next().unwrap_or(l);
            assert!(code.chars().count() <= WIDTH, "line longer than {WIDTH}: {l}");
        }
        assert!(lines[1].starts_with("  loadgenerator -> service-0:8000, service-1:8001,"), "{out}");
        assert!(lines[2].starts_with("      service-"), "continuation lines indented 4 more: {out}");
        assert!(out.contains("  # trailing\n}"), "the trailing comment stays on the last line: {out}");
        assert_eq!(format(&out).expect("parses"), out, "idempotent");
        // The same statement: every target with its ports, in order.
        let targets_of = |t: &str| -> Vec<String> {
            let file = crate::syntax::parse(t).expect("parses");
            let Some(Item::NamespaceBlock { statements, .. }) = file.items.first() else { return vec![] };
            let StatementKind::Arrow(a) = &statements[0].kind else { return vec![] };
            a.targets.iter().map(|target| render_target(target, t)).collect()
        };
        assert_eq!(targets_of(&out), targets, "{out}");
    }

    #[test]
    fn a_selector_with_a_quoted_comma_is_not_cut_inside_the_quotes() {
        let long = "x".repeat(60);
        let src = format!("workload {long} = {{app=\"a, b\", tier in (one, two, three, four, five, six)}}\n");
        let out = format(&src).expect("parses");
        assert!(out.contains("\"a, b\""), "{out}");
        assert_eq!(format(&out).expect("parses"), out, "idempotent");
    }

    #[test]
    fn short_statements_stay_on_one_line() {
        let src = "web, admin -> api:[80, 443], metrics:9090\n";
        assert_eq!(format(src).expect("parses"), src);
    }

    #[test]
    fn statements_with_inner_comments_are_kept_verbatim() {
        let src = "a -> b:80,  # first\n     c:443\n";
        let out = format(src).expect("parses");
        assert_eq!(out, src);
    }
}
