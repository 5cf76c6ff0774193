//! Phase 1: text to [`crate::ast::File`] with pest. The only module that sees pest types.

use netc_grammar::{NetcParser, Rule};
use pest::Parser;
use pest::iterators::Pair;

use crate::ast::{
    Allow, Arrow, CidrPeer, DefaultAction, Direction, DoorWords, Endpoint, EndpointKind, File, Item,
    NamespaceRef, PodRef, PortItem, PortSyntax, Selector, SelectorOp, SelectorRequirement, Span, Spanned,
    Statement, StatementKind, Target,
};

/// The words that cannot be names, as the grammar's `keyword` rule lists them (a test keeps the
/// two equal).
pub const KEYWORDS: [&str; 14] = [
    "namespace",
    "workload",
    "external",
    "anywhere",
    "dns",
    "priority",
    "nodes",
    "node",
    "isolated",
    "guarded",
    "open",
    "ingress",
    "egress",
    "except",
];

/// Whether `s` can be written as a bare name (workload, external, namespace): a letter, then
/// letters, digits, `-` and `_`, not ending with `-`, and not a keyword.
#[must_use]
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.ends_with('-')
        && !KEYWORDS.contains(&s)
}

/// Whether `c` is a bidirectional formatting character (the embeddings, overrides and isolates of
/// Unicode's bidi algorithm, and the marks): invisible, they can make source read differently from
/// what it means ("Trojan Source", CVE-2021-42574).
#[must_use]
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// The Unicode name of a bidirectional formatting character, for messages.
#[must_use]
pub fn bidi_control_name(c: char) -> &'static str {
    match c {
        '\u{202a}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202b}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202c}' => "POP DIRECTIONAL FORMATTING",
        '\u{202d}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202e}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{200e}' => "LEFT-TO-RIGHT MARK",
        '\u{200f}' => "RIGHT-TO-LEFT MARK",
        '\u{061c}' => "ARABIC LETTER MARK",
        _ => "bidirectional formatting character",
    }
}

/// Where in a line a bidirectional formatting character stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BidiPlace {
    /// A `##` doc comment, which becomes the `netc.dev/intent` annotation.
    DocComment,
    /// A `#` comment.
    Comment,
    /// A quoted label value.
    String,
    /// Anywhere else: a name, a selector, between tokens.
    Code,
}

/// A run of bidirectional formatting characters in a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidiControl {
    /// The run's bytes.
    pub span: Span,
    /// Its characters, in order.
    pub chars: Vec<char>,
    /// What it stands in.
    pub place: BidiPlace,
}

/// At most this many runs are reported per file (a file made of them would otherwise give one
/// warning per character).
pub const BIDI_REPORTED: usize = 16;

/// The runs of bidirectional formatting characters in `text` (at most [`BIDI_REPORTED`]), and how
/// many runs there are in all. One pass over the text; comments and quoted strings are told
/// apart the way the grammar reads them (a string ends at its quote or at the end of the line).
#[must_use]
pub fn bidi_controls(text: &str) -> (Vec<BidiControl>, usize) {
    let mut found: Vec<BidiControl> = Vec::new();
    let mut total = 0;
    let mut place = BidiPlace::Code;
    let mut last_end = usize::MAX;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match (place, c) {
            (_, '\n') => place = BidiPlace::Code,
            (BidiPlace::Code, '#') => {
                place = if chars.peek().is_some_and(|(_, n)| *n == '#') {
                    BidiPlace::DocComment
                } else {
                    BidiPlace::Comment
                };
            }
            (BidiPlace::Code, '"') => place = BidiPlace::String,
            (BidiPlace::String, '"') => place = BidiPlace::Code,
            (_, c) if is_bidi_control(c) => {
                let end = at + c.len_utf8();
                if u32::try_from(end).is_err() {
                    break; // spans are 32-bit; such a file is refused as too large anyway
                }
                if last_end == at {
                    // The run goes on (if it is one of those reported).
                    if let Some(run) = found.last_mut().filter(|r| r.span.end as usize == at) {
                        run.span = Span::new(run.span.start as usize, end);
                        run.chars.push(c);
                    }
                } else {
                    total += 1;
                    if found.len() < BIDI_REPORTED {
                        found.push(BidiControl { span: Span::new(at, end), chars: vec![c], place });
                    }
                }
                last_end = end;
            }
            _ => {}
        }
    }
    (found, total)
}

/// A file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxError {
    /// The parser stopped here; `expected` lists what would have been accepted, in words.
    Unexpected {
        /// Where parsing stopped.
        span: Span,
        /// What could have come next (words, not rule names); sorted, no duplicates.
        expected: Vec<&'static str>,
        /// What was found (a short excerpt, or the one white-space character the parser stopped
        /// at), empty at the end of the file.
        found: String,
        /// A likely mistake recognised from the text around, for a precise help line.
        hint: Option<SyntaxHint>,
    },
    /// The file is too large to address with 32-bit offsets.
    TooLarge {
        /// Its size in bytes.
        bytes: usize,
    },
    /// The file is larger than the reader's bound, found before reading it (`bytes` is its size)
    /// or while reading a stream (`bytes` is `None`). Made by the reader, not by [`parse`].
    InputTooLarge {
        /// Its size in bytes, when known.
        bytes: Option<u64>,
        /// The bound.
        limit: u64,
    },
    /// The file is not UTF-8; `span` covers the first invalid byte (shown as U+FFFD). Made by the
    /// reader, not by [`parse`].
    NotUtf8 {
        /// Where the first invalid byte is.
        span: Span,
        /// Its value.
        byte: u8,
    },
}

/// A common mistake recognised at a syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyntaxHint {
    /// `backend:80, 443`: several ports without brackets; carries the fix, `backend:[80, 443]`.
    PortListWithoutBrackets(String),
    /// `a => b` (or `→`): an arrow from another language.
    OtherArrow,
    /// `web ingress isolated`: `isolated` takes no direction; carries the subject.
    IsolatedWithDirection(String),
    /// `default deny` on one line and `egress a -> b` on the next: line breaks are white space,
    /// so the direction ends the `default` statement and the arrow loses it; carries the
    /// `default` statement as read (`default deny egress`) and the arrow after it.
    DirectionEndsDefault {
        /// The `default` statement as the parser read it.
        read_as: String,
        /// The rest of the line after the direction: the arrow it was written with.
        arrow: String,
    },
}

/// Parse one file.
///
/// Large files are parsed on all cores: the text is cut before lines that start with
/// `namespace` (always the start of a top-level item, since `namespace` is a keyword that no
/// statement can contain), the pieces are parsed at once, and their items joined in order, which
/// gives the same tree as one parse. Should a piece not parse, the whole file is parsed again in
/// one piece, so that the error is exactly the one a single parse reports.
///
/// # Errors
/// The first syntax error, with the position and what was expected there.
pub fn parse(text: &str) -> Result<File, SyntaxError> {
    if u32::try_from(text.len()).is_err() {
        return Err(SyntaxError::TooLarge { bytes: text.len() });
    }
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    // A byte-order mark (editors on Windows write one) is not part of the program; spans keep
    // counting from the start of the file.
    let bom = if text.starts_with('\u{feff}') { '\u{feff}'.len_utf8() } else { 0 };
    let mut pieces = split_points(text, threads);
    pieces[0] = bom;
    if pieces.len() > 2 {
        let results: Vec<Result<Vec<Item>, SyntaxError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pieces
                .windows(2)
                .map(|w| {
                    let (start, end) = (w[0], w[1]);
                    scope.spawn(move || parse_items(&text[start..end], start))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        if results.iter().all(Result::is_ok) {
            let items = results.into_iter().flat_map(Result::unwrap_or_default).collect();
            return Ok(File { items });
        }
    }
    Ok(File { items: parse_items(&text[bom..], bom)? })
}

/// Below this size a file is parsed in one piece: threads would cost more than they save.
const PARALLEL_PARSE_BYTES: usize = 256 * 1024;

/// Offsets that cut `text` into about `threads` pieces at top-level `namespace` lines, with 0 and
/// `text.len()` at the ends.
fn split_points(text: &str, threads: usize) -> Vec<usize> {
    let mut points = vec![0];
    if threads > 1 && text.len() >= PARALLEL_PARSE_BYTES {
        let step = text.len() / threads;
        for i in 1..threads {
            let from = (step * i).max(*points.last().expect("starts with 0"));
            let mut at = from;
            while let Some(nl) = text.get(at..).and_then(|t| t.find("\nnamespace")) {
                let cut = at + nl + 1;
                let after = text.as_bytes().get(cut + "namespace".len()).copied();
                if after.is_some_and(|b| b.is_ascii_whitespace()) {
                    points.push(cut);
                    break;
                }
                at = cut;
            }
        }
    }
    points.push(text.len());
    points.dedup();
    points
}

thread_local! {
    /// Where the piece being converted starts in its file; added to every span.
    static BASE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The first `default` statement whose direction was written on the line of the statement
    /// after it (see [`SyntaxHint::DirectionEndsDefault`]), found while converting a piece.
    static AMBIGUOUS: std::cell::RefCell<Option<SyntaxError>> = const { std::cell::RefCell::new(None) };
}

/// Parse a piece of a file that starts at byte `base` of it.
fn parse_items(text: &str, base: usize) -> Result<Vec<Item>, SyntaxError> {
    let mut pairs = NetcParser::parse(Rule::file, text).map_err(|e| {
        // Parse again with pest's record of the literal tokens it tried (`,` `]` `=` ...), which
        // makes for better messages; it costs time, so only on the error path.
        pest::set_error_detail(true);
        let detailed = NetcParser::parse(Rule::file, text).err();
        pest::set_error_detail(false);
        let mut err = convert_error(detailed.as_ref().unwrap_or(&e), text);
        if let SyntaxError::Unexpected { span, .. } = &mut err {
            *span = Span::new(span.start as usize + base, span.end as usize + base);
        }
        err
    })?;
    BASE.with(|b| b.set(base));
    let file = pairs.next().expect("pest returns the `file` pair on success");
    let mut items = Vec::new();
    for pair in file.into_inner() {
        match pair.as_rule() {
            Rule::namespace_block => items.push(namespace_block(pair)),
            Rule::namespace_header => {
                let whole = span(&pair);
                let name = spanned_str(&first(pair));
                items.push(Item::NamespaceHeader { name, span: whole });
            }
            Rule::statement => items.push(Item::Statement(statement(pair))),
            Rule::doc => items.push(Item::StrayDoc(span(&pair))),
            Rule::EOI => {}
            other => unreachable!("grammar: unexpected {other:?} in file"),
        }
    }
    BASE.with(|b| b.set(0));
    if let Some(e) = AMBIGUOUS.with(|a| a.borrow_mut().take()) {
        return Err(e);
    }
    Ok(items)
}

/// `default deny` at the end of one line and `egress a -> b` on the next read as `default deny
/// egress` and `a -> b`: a statement ends where its last part ends, whatever the line breaks. A
/// `default` statement whose direction is on a later line than its action, followed on that line
/// by more of the program, was almost surely meant the other way (a one-sided arrow after
/// `default deny`), and read this way the namespace's other door stays open: refused, with both
/// ways to write it.
fn direction_on_the_next_statements_line(action: &Pair<'_, Rule>, direction: &Pair<'_, Rule>) {
    let text = action.get_input();
    let between = &text[action.as_span().end()..direction.as_span().start()];
    let rest_of_line = text[direction.as_span().end()..].split('\n').next().unwrap_or("").trim();
    if !between.contains('\n') || rest_of_line.is_empty() || rest_of_line.starts_with('#') {
        return;
    }
    let at = span(direction);
    let error = SyntaxError::Unexpected {
        span: at,
        expected: Vec::new(),
        found: direction.as_str().to_owned(),
        hint: Some(SyntaxHint::DirectionEndsDefault {
            read_as: format!("default {} {}", action.as_str(), direction.as_str()),
            arrow: rest_of_line.chars().take(60).collect(),
        }),
    };
    AMBIGUOUS.with(|a| {
        let mut a = a.borrow_mut();
        if a.is_none() {
            *a = Some(error);
        }
    });
}

fn convert_error(e: &pest::error::Error<Rule>, text: &str) -> SyntaxError {
    let mut pos = match e.location {
        pest::error::InputLocation::Pos(p) | pest::error::InputLocation::Span((p, _)) => p,
    };
    let mut expected: Vec<&'static str> = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().filter_map(|r| rule_words(*r)).collect()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // Punctuation the parser would have taken: pest lists rules, not literals, in `positives`.
    if let Some(attempts) = e.parse_attempts() {
        let literals: Vec<&'static str> = attempts
            .expected_tokens()
            .iter()
            // Tokens print as themselves (pest does not export their type).
            .filter_map(|t| literal_words(&t.to_string()))
            .collect();
        if attempts.max_position > pos && !literals.is_empty() {
            pos = attempts.max_position;
            expected = literals;
        } else if attempts.max_position == pos {
            expected.extend(literals);
        }
    }
    expected.sort_unstable();
    expected.dedup();
    let rest = &text[pos..];
    // Stopped at white space: the excerpt is that one character and the span is empty, so the
    // label sits at the end of the line instead of spanning a line break.
    if let Some(space) = rest.chars().next().filter(|c| c.is_whitespace()) {
        return SyntaxError::Unexpected {
            span: Span::new(pos, pos),
            expected,
            found: space.to_string(),
            hint: None,
        };
    }
    let found: String =
        rest.split(|c: char| c.is_whitespace()).next().unwrap_or("").chars().take(24).collect();
    let hint = hint(text, pos, &found);
    SyntaxError::Unexpected { span: Span::new(pos, pos + found.len()), expected, found, hint }
}

/// Whether `s` reads as one port item: `80`, `53/udp`, `8000-8100`, `*/tcp`.
fn looks_like_port(s: &str) -> bool {
    let port = s.split('/').next().unwrap_or("");
    (port == "*" || port.starts_with(|c: char| c.is_ascii_digit()))
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '*'))
}

/// Recognise a common mistake at the error at byte `pos` (the text found there: `found`).
fn hint(text: &str, pos: usize, found: &str) -> Option<SyntaxHint> {
    if found.starts_with("=>") || found.starts_with('→') || found.starts_with("-->") {
        return Some(SyntaxHint::OtherArrow);
    }
    let before = text[..pos].trim_end();
    if found.starts_with("isolated") {
        let subject = before.strip_suffix("ingress").or_else(|| before.strip_suffix("egress"))?.trim_end();
        let start = subject.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        return Some(SyntaxHint::IsolatedWithDirection(subject[start..].to_owned()));
    }
    // `backend:80, 443`: the error is at `443`, after a comma that follows `target:port`.
    let first_port = found.trim_end_matches(',');
    if looks_like_port(first_port) {
        let head = before.strip_suffix(',')?.trim_end();
        let start = head.rfind(|c: char| c.is_whitespace() || c == ',').map_or(0, |i| i + 1);
        let (target, port) = head[start..].rsplit_once(':')?;
        if target.is_empty() || !looks_like_port(port) {
            return None;
        }
        let mut ports = vec![port.to_owned()];
        for item in text[pos..].split(',') {
            let item = item.trim();
            let item = item.split(|c: char| c.is_whitespace()).next().unwrap_or("");
            if !looks_like_port(item) {
                break;
            }
            ports.push(item.to_owned());
        }
        return Some(SyntaxHint::PortListWithoutBrackets(format!("{target}:[{}]", ports.join(", "))));
    }
    None
}

/// Punctuation in words.
fn literal_words(token: &str) -> Option<&'static str> {
    Some(match token {
        "," => "`,`",
        "]" => "`]`",
        "[" => "`[`",
        "}" => "`}`",
        "{" => "`{`",
        ")" => "`)`",
        "(" => "`(`",
        "=" | "==" => "`=`",
        "!=" => "`!=`",
        "->" => "`->`",
        "/" => "`/`",
        _ => return None,
    })
}

/// Rule names in words, for "expected ..." (pest's `renamed_rules`, done once here).
fn rule_words(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::namespace_block | Rule::namespace_header => "`namespace`",
        Rule::statement | Rule::item | Rule::ns_item => "a statement",
        Rule::doc => "a doc comment",
        Rule::allow => "`@allow(CODE)`",
        Rule::diag_code => "a warning code",
        Rule::qualified => "pods `namespaces/pods`",
        Rule::egress_only => "`egress`",
        Rule::workload_decl => "`workload`",
        Rule::external_decl => "`external`",
        Rule::default_stmt => "`default`",
        Rule::default_action => "`deny`, `allow`",
        Rule::door_stmt | Rule::subject => "a workload",
        Rule::isolated => "`isolated`",
        Rule::door_decl | Rule::door_state | Rule::door_words => "`guarded`, `open`",
        Rule::direction => "`ingress`, `egress`",
        Rule::arrow | Rule::arrow_op | Rule::deny_op => "`->`",
        Rule::sources | Rule::endpoint | Rule::reference | Rule::ref_head | Rule::ref_tail | Rule::dotted => {
            "a workload"
        }
        Rule::name => "a workload",
        Rule::targets | Rule::target => "a target",
        Rule::priority_stmt => "`priority`",
        Rule::assert_stmt | Rule::assert_kw => "`assert`",
        Rule::l7_clause | Rule::l7_path => return None,
        Rule::anywhere => "`anywhere`",
        Rule::dns => "`dns`",
        Rule::nodes => return None,
        Rule::ns_name => "a namespace",
        Rule::all => "`*`",
        Rule::selector => "a selector `{key=value}`",
        Rule::requirement | Rule::eq_req | Rule::ne_req | Rule::set_req | Rule::exists | Rule::not_exists => {
            "a label requirement"
        }
        Rule::set_op => "`in`, `notin`",
        Rule::label_key => "a label key",
        Rule::label_value | Rule::bare_value | Rule::string => "a label value",
        Rule::port_spec => "`:` and a port",
        Rule::port_list => "a port list `[80, 443]`",
        Rule::port_item | Rule::port_range | Rule::port_number | Rule::port_name | Rule::port_any => "a port",
        Rule::protocol => "a protocol (`tcp`, `udp`, `sctp`)",
        Rule::cidr_peer | Rule::cidr | Rule::ipv4 | Rule::ipv6 => "an address block",
        Rule::except => "`except`",
        Rule::integer => "a number",
        Rule::keyword | Rule::ident | Rule::file => return None,
        Rule::WHITESPACE | Rule::COMMENT | Rule::ident_char => return None,
    })
}

/// The span of a pair without the white space and comments pest skips after a rule's last
/// token when an optional part that follows matches nothing.
fn span(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    let start = BASE.with(std::cell::Cell::get) + s.start();
    if pair.as_rule() == Rule::doc {
        // A doc comment starts with `#` itself: stripping comments would leave nothing of it.
        return Span::new(start, start + s.as_str().trim_end().len());
    }
    Span::new(start, start + meaningful_len(s.as_str()))
}

/// Length of `text` without trailing white space and `#` comments.
fn meaningful_len(text: &str) -> usize {
    let mut end = text.trim_end().len();
    if !text.as_bytes().contains(&b'#') {
        // No comment to strip (most pairs): no need to scan the last line for one.
        return end;
    }
    loop {
        let line_start = text[..end].rfind('\n').map_or(0, |i| i + 1);
        let Some(hash) = comment_start(&text[line_start..end]) else { return end };
        end = text[..line_start + hash].trim_end().len();
    }
}

/// Where a `#` comment starts in one line, outside quoted strings.
fn comment_start(line: &str) -> Option<usize> {
    let mut in_string = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '#' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

fn first(pair: Pair<'_, Rule>) -> Pair<'_, Rule> {
    pair.into_inner().next().expect("grammar: rule has at least one child")
}

fn spanned_str(pair: &Pair<'_, Rule>) -> Spanned<String> {
    Spanned { span: span(pair), node: pair.as_str().to_owned() }
}

fn namespace_block(pair: Pair<'_, Rule>) -> Item {
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    let name = spanned_str(&inner.next().expect("grammar: namespace name"));
    let mut statements = Vec::new();
    let mut stray_docs = Vec::new();
    for p in inner {
        match p.as_rule() {
            Rule::statement => statements.push(statement(p)),
            Rule::doc => stray_docs.push(span(&p)),
            other => unreachable!("grammar: unexpected {other:?} in namespace block"),
        }
    }
    Item::NamespaceBlock { name, statements, stray_docs, span: whole }
}

fn statement(pair: Pair<'_, Rule>) -> Statement {
    let mut docs = Vec::new();
    let mut allows = Vec::new();
    let mut body = None;
    for p in pair.into_inner() {
        match p.as_rule() {
            Rule::doc => {
                let text = p.as_str().trim_start_matches("##");
                let text = text.strip_prefix(' ').unwrap_or(text).trim_end();
                docs.push(Spanned { span: span(&p), node: text.to_owned() });
            }
            Rule::allow => {
                let whole = span(&p);
                allows.push(Allow { codes: p.into_inner().map(|c| spanned_str(&c)).collect(), span: whole });
            }
            _ => body = Some(p),
        }
    }
    let body = body.expect("grammar: a statement has a body");
    let stmt_span = span(&body);
    Statement { docs, allows, kind: statement_kind(body), span: stmt_span }
}

fn statement_kind(body: Pair<'_, Rule>) -> StatementKind {
    let stmt_span = span(&body);
    match body.as_rule() {
        Rule::workload_decl => {
            let mut inner = body.into_inner();
            let name = spanned_str(&inner.next().expect("grammar: workload name"));
            let value = inner.next().expect("grammar: workload pods");
            let (namespace, pods) = if value.as_rule() == Rule::qualified {
                let mut parts = value.into_inner();
                let ns = parts.next().expect("grammar: namespace part");
                let ns_span = span(&ns);
                let ns = match ns.as_rule() {
                    Rule::all => NamespaceRef::All,
                    Rule::selector => NamespaceRef::Selector(selector(ns)),
                    Rule::ns_name => NamespaceRef::Named(ns.as_str().to_owned()),
                    other => unreachable!("grammar: unexpected {other:?} as namespace"),
                };
                let pods = parts.next().expect("grammar: pods part");
                let pods_span = span(&pods);
                let pods = match pods.as_rule() {
                    Rule::all => PodRef::All,
                    Rule::selector => PodRef::Selector(selector(pods)),
                    other => unreachable!("grammar: unexpected {other:?} as pods"),
                };
                (Some(Spanned { node: ns, span: ns_span }), Spanned { node: pods, span: pods_span })
            } else {
                let s = span(&value);
                (None, Spanned { node: PodRef::Selector(selector(value)), span: s })
            };
            StatementKind::Workload { name, namespace, pods }
        }
        Rule::external_decl => {
            let mut inner = body.into_inner();
            let name = spanned_str(&inner.next().expect("grammar: external name"));
            StatementKind::External { name, blocks: inner.map(cidr_peer).collect() }
        }
        Rule::default_stmt => {
            let mut inner = body.into_inner();
            let action_pair = inner.next().expect("grammar: default action");
            let action = Spanned {
                span: span(&action_pair),
                node: if action_pair.as_str() == "deny" { DefaultAction::Deny } else { DefaultAction::Allow },
            };
            let direction = inner.next().map(|d| {
                direction_on_the_next_statements_line(&action_pair, &d);
                Spanned { span: span(&d), node: direction(&d) }
            });
            StatementKind::Default { action, direction }
        }
        Rule::door_stmt => {
            let mut inner = body.into_inner();
            let subject = endpoint(first(inner.next().expect("grammar: door subject")));
            let words = inner.next().expect("grammar: door words");
            let door = Spanned { span: span(&words), node: door_words(words) };
            StatementKind::Door { subject, door }
        }
        Rule::arrow => StatementKind::Arrow(arrow(body)),
        Rule::priority_stmt => StatementKind::Priority(stmt_span),
        Rule::assert_stmt => {
            let mut inner = body.into_inner();
            let keyword = span(&inner.next().expect("grammar: `assert`"));
            let claim = statement_kind(inner.next().expect("grammar: what is asserted"));
            StatementKind::Assert { keyword, claim: Box::new(claim) }
        }
        other => unreachable!("grammar: unexpected {other:?} as statement"),
    }
}

fn direction(pair: &Pair<'_, Rule>) -> Direction {
    if pair.as_str().starts_with("ingress") { Direction::Ingress } else { Direction::Egress }
}

fn door_words(pair: Pair<'_, Rule>) -> DoorWords {
    match pair.as_rule() {
        Rule::isolated => DoorWords::Isolated,
        Rule::door_decl => {
            let mut dir = None;
            let mut guarded = true;
            for p in pair.into_inner() {
                match p.as_rule() {
                    Rule::direction => dir = Some(direction(&p)),
                    Rule::door_state => guarded = p.as_str().starts_with("guarded"),
                    other => unreachable!("grammar: unexpected {other:?} in door"),
                }
            }
            DoorWords::State { direction: dir, guarded }
        }
        other => unreachable!("grammar: unexpected {other:?} as door words"),
    }
}

fn arrow(pair: Pair<'_, Rule>) -> Arrow {
    let mut inner = pair.into_inner().peekable();
    let egress_only = inner.next_if(|p| p.as_rule() == Rule::egress_only).map(|p| span(&p));
    let sources = inner.next().expect("grammar: sources").into_inner().map(endpoint).collect();
    let op_pair = inner.next().expect("grammar: arrow op");
    let op = Spanned { span: span(&op_pair), node: op_pair.into_inner().next().is_some() };
    let targets = inner.next().expect("grammar: targets").into_inner().map(target).collect();
    Arrow { egress_only, sources, op, targets }
}

fn target(pair: Pair<'_, Rule>) -> Target {
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    let endpoint = endpoint(inner.next().expect("grammar: target endpoint"));
    let mut ports = None;
    let mut l7 = None;
    for p in inner {
        match p.as_rule() {
            Rule::port_spec => {
                let s = span(&p);
                let spec = first(p);
                let items = match spec.as_rule() {
                    Rule::port_list => spec.into_inner().map(port_item).collect(),
                    Rule::port_item => vec![port_item(spec)],
                    other => unreachable!("grammar: unexpected {other:?} in port spec"),
                };
                ports = Some(Spanned { span: s, node: items });
            }
            Rule::l7_clause => l7 = Some(span(&p)),
            other => unreachable!("grammar: unexpected {other:?} in target"),
        }
    }
    Target { endpoint, ports, l7, span: whole }
}

fn port_item(pair: Pair<'_, Rule>) -> PortItem {
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    let p = inner.next().expect("grammar: port");
    let port_span = span(&p);
    let port = match p.as_rule() {
        Rule::port_any => PortSyntax::Any,
        Rule::port_number => PortSyntax::Number(p.as_str().to_owned()),
        Rule::port_name => PortSyntax::Name(p.as_str().to_owned()),
        Rule::port_range => {
            let mut nums = p.into_inner();
            let lo = nums.next().expect("grammar: range start").as_str().to_owned();
            let hi = nums.next().expect("grammar: range end").as_str().to_owned();
            PortSyntax::Range(lo, hi)
        }
        other => unreachable!("grammar: unexpected {other:?} as port"),
    };
    let protocol = inner.next().as_ref().map(spanned_str);
    PortItem { port: Spanned { node: port, span: port_span }, protocol, span: whole }
}

fn endpoint(pair: Pair<'_, Rule>) -> Endpoint {
    debug_assert_eq!(pair.as_rule(), Rule::endpoint);
    let whole = span(&pair);
    let p = first(pair);
    let kind = match p.as_rule() {
        Rule::anywhere => EndpointKind::Anywhere,
        Rule::dns => EndpointKind::Dns,
        Rule::nodes => EndpointKind::Nodes,
        Rule::cidr_peer => EndpointKind::Cidr(cidr_peer(p)),
        Rule::reference => reference(p),
        other => unreachable!("grammar: unexpected {other:?} as endpoint"),
    };
    Endpoint { kind, span: whole }
}

/// `pods` or `namespace/pods`.
fn reference(pair: Pair<'_, Rule>) -> EndpointKind {
    let mut inner = pair.into_inner();
    let head = inner.next().expect("grammar: reference head");
    let head_span = span(&head);
    let head = first(head);
    let Some(tail) = inner.next() else {
        let pods = match head.as_rule() {
            Rule::all => PodRef::All,
            Rule::selector => PodRef::Selector(selector(head)),
            Rule::dotted if head.as_str().contains('.') => {
                return EndpointKind::Fqdn(head.as_str().to_owned());
            }
            Rule::dotted => PodRef::Named(head.as_str().to_owned()),
            other => unreachable!("grammar: unexpected {other:?} as pods"),
        };
        return EndpointKind::Pods { namespace: None, pods: Spanned { node: pods, span: head_span } };
    };
    let ns = match head.as_rule() {
        Rule::all => NamespaceRef::All,
        Rule::selector => NamespaceRef::Selector(selector(head)),
        Rule::dotted if head.as_str().contains('.') => return EndpointKind::Fqdn(head.as_str().to_owned()),
        Rule::dotted => NamespaceRef::Named(head.as_str().to_owned()),
        other => unreachable!("grammar: unexpected {other:?} as namespace"),
    };
    let tail_span = span(&tail);
    let tail = first(tail);
    let pods = match tail.as_rule() {
        Rule::all => PodRef::All,
        Rule::selector => PodRef::Selector(selector(tail)),
        Rule::name => PodRef::Named(tail.as_str().to_owned()),
        other => unreachable!("grammar: unexpected {other:?} as pods"),
    };
    EndpointKind::Pods {
        namespace: Some(Spanned { node: ns, span: head_span }),
        pods: Spanned { node: pods, span: tail_span },
    }
}

fn cidr_peer(pair: Pair<'_, Rule>) -> CidrPeer {
    let whole = span(&pair);
    let mut inner = pair.into_inner();
    let cidr = spanned_str(&inner.next().expect("grammar: cidr"));
    let except = inner.next().map(|e| e.into_inner().map(|p| spanned_str(&p)).collect()).unwrap_or_default();
    CidrPeer { cidr, except, span: whole }
}

fn selector(pair: Pair<'_, Rule>) -> Selector {
    let whole = span(&pair);
    let requirements = pair.into_inner().map(requirement).collect();
    Selector { requirements, span: whole }
}

fn requirement(pair: Pair<'_, Rule>) -> SelectorRequirement {
    let whole = span(&pair);
    let r = first(pair);
    let rule = r.as_rule();
    let mut inner = r.into_inner();
    let key = spanned_str(&inner.next().expect("grammar: label key"));
    let op = match rule {
        Rule::eq_req => SelectorOp::Equals(label_value(&inner.next().expect("grammar: value"))),
        Rule::ne_req => SelectorOp::NotEquals(label_value(&inner.next().expect("grammar: value"))),
        Rule::set_req => {
            let op = inner.next().expect("grammar: set op");
            let values = inner.map(|p| label_value(&p)).collect();
            if op.as_str() == "in" { SelectorOp::In(values) } else { SelectorOp::NotIn(values) }
        }
        Rule::exists => SelectorOp::Exists,
        Rule::not_exists => SelectorOp::DoesNotExist,
        other => unreachable!("grammar: unexpected {other:?} as requirement"),
    };
    SelectorRequirement { key, op, span: whole }
}

fn label_value(pair: &Pair<'_, Rule>) -> Spanned<String> {
    let s = span(pair);
    let text = pair.as_str();
    let node = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text).to_owned();
    Spanned { node, span: s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_fixed_forms_parse() {
        let file = parse("frontend -> backend:8080\nhermit isolated\n").expect("parses");
        assert_eq!(file.items.len(), 2);
        let Item::Statement(Statement { kind: StatementKind::Arrow(a), .. }) = &file.items[0] else {
            panic!("first item is an arrow: {:?}", file.items[0]);
        };
        assert_eq!(a.targets[0].ports.as_ref().map(|p| p.node.len()), Some(1));
        assert!(matches!(
            &file.items[1],
            Item::Statement(Statement { kind: StatementKind::Door { door, .. }, .. }) if door.node == DoorWords::Isolated
        ));
    }

    #[test]
    fn spans_end_at_the_last_token_not_at_skipped_comments() {
        let text = "x -> hermit  # why\n# more\n\nweb isolated\n";
        let file = parse(text).expect("parses");
        let Item::Statement(s) = &file.items[0] else { panic!("statement") };
        assert_eq!(&text[s.span.range()], "x -> hermit");
    }

    #[test]
    fn doc_comment_spans_cover_the_whole_comment() {
        let text = "## serves the shop\nweb isolated\n## nothing follows  \n";
        let file = parse(text).expect("parses");
        let Item::Statement(s) = &file.items[0] else { panic!("statement") };
        assert_eq!(&text[s.docs[0].span.range()], "## serves the shop");
        let Item::StrayDoc(stray) = &file.items[1] else { panic!("stray doc: {:?}", file.items[1]) };
        assert_eq!(&text[stray.range()], "## nothing follows");
    }

    #[test]
    fn an_error_at_white_space_is_not_at_the_end_of_the_file() {
        let text = "a -> b:80- 90\n";
        let Err(SyntaxError::Unexpected { span, found, .. }) = parse(text) else { panic!("should fail") };
        assert_eq!(found, " ");
        assert_eq!(span, Span::new(10, 10));
    }

    #[test]
    fn large_files_parse_in_pieces_to_the_same_tree() {
        let mut text = String::from("# header\nweb -> db:5432\n");
        for i in 0..9000 {
            text.push_str(&format!("namespace ns{i} {{\n  ## doc {i}\n  a{i} -> b{i}:[80, 53/udp]\n}}\n"));
        }
        text.push_str("namespace tail\nx isolated\n");
        assert!(text.len() > PARALLEL_PARSE_BYTES);
        assert!(split_points(&text, 4).len() > 2, "the text is cut");
        let whole = parse_items(&text, 0).expect("parses");
        let pieces = parse(&text).expect("parses").items;
        assert_eq!(pieces.len(), whole.len());
        if let Some(i) = (0..whole.len()).find(|&i| pieces[i] != whole[i]) {
            panic!("item {i} differs:\n{:?}\n{:?}", pieces[i], whole[i]);
        }
        // An error in a late piece is reported where a single parse reports it.
        let broken = format!("{text}namespace bad {{\n  a -> \n}}\n");
        assert!(parse(&broken) == parse_items(&broken, 0).map(|items| File { items }), "same error");
    }

    #[test]
    fn keywords_are_the_grammars() {
        let grammar = include_str!("../../grammar/netc.pest");
        let rule =
            grammar.split("keyword    = @{").nth(1).and_then(|r| r.split('}').next()).expect("keyword rule");
        let mut listed: Vec<&str> = rule.split('"').skip(1).step_by(2).collect();
        let mut ours = KEYWORDS.to_vec();
        listed.sort_unstable();
        ours.sort_unstable();
        assert_eq!(listed, ours, "syntax::KEYWORDS must list the grammar's `keyword` rule");
        for kw in KEYWORDS {
            assert!(!is_name(kw));
            assert!(parse(&format!("workload {kw} = {{a=b}}")).is_err(), "{kw} is refused as a name");
        }
        for name in ["default", "web", "api-v2", "a_b"] {
            assert!(is_name(name));
            assert!(parse(&format!("workload {name} = {{a=b}}")).is_ok(), "{name} is a name");
        }
        assert!(!is_name("web-") && !is_name("2fa") && !is_name("a.b"));
    }

    #[test]
    fn errors_say_what_was_expected_in_words() {
        let Err(SyntaxError::Unexpected { expected, found, .. }) = parse("frontend ->") else {
            panic!("should fail");
        };
        assert_eq!(expected, vec!["`{`", "a workload"]);
        assert_eq!(found, "");
    }
}
