//! Every phase's errors turned into diagnostics; the only module that touches codespan-reporting.
//!
//! Each diagnostic has a stable code (documented in `docs/diagnostics.md`, printed by
//! `netc explain CODE`), a short title, a primary label at the exact span, secondary labels for
//! the other places involved, notes for context and a help line with the fix.

use codespan_reporting::files::{Files, SimpleFiles};
use codespan_reporting::term;
use serde::Serialize;

use crate::SourceFile;
use crate::allow::AllowError;
use crate::ast::Span;
use crate::check::{CheckError, Loc, NameKind, NameRule, Unsupported};
use crate::lower::{LowerError, Side};
use crate::syntax::{SyntaxError, SyntaxHint};

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops the build.
    Error,
    /// Reported; stops the build only with `--deny-warnings`.
    Warning,
}

/// A labelled place in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub at: Loc,
    /// What is said about it.
    pub message: String,
    /// The place the diagnostic is about (one per diagnostic), or another place involved.
    pub primary: bool,
}

/// A problem, ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, `E0102`.
    pub code: &'static str,
    /// Short title.
    pub message: String,
    /// Primary label first.
    pub labels: Vec<Label>,
    /// Context.
    pub notes: Vec<String>,
    /// The fix.
    pub help: Option<String>,
    /// The fix as an edit a tool can apply (an editor's quick fix), when the help names exactly one.
    pub suggestion: Option<Suggestion>,
}

/// An edit that carries out a diagnostic's help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// What the edit does, for a menu: "Replace with `10.0.0.0/8`".
    pub title: String,
    /// The place the edit is about.
    pub at: Loc,
    /// The edit.
    pub edit: Edit,
}

/// The kinds of edit a [`Suggestion`] makes; the text is in the editor, so edits that depend on it
/// (indentation, a qualified name) are described rather than spelled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Replace the text of the span.
    Replace(String),
    /// The span ends with the name `old` (possibly after `namespace/`): replace that name.
    ReplaceName {
        /// The name as written.
        old: String,
        /// The name to write instead.
        new: String,
    },
    /// Add a line after the line on which the span ends, indented like it.
    InsertLineAfter(String),
}

impl Diagnostic {
    fn new(severity: Severity, code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
            suggestion: None,
        }
    }

    fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, code, message)
    }

    fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, code, message)
    }

    fn primary(mut self, at: Loc, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { at, message: message.into(), primary: true });
        self
    }

    fn secondary(mut self, at: Loc, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { at, message: message.into(), primary: false });
        self
    }

    fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    fn suggest(mut self, at: Loc, title: impl Into<String>, edit: Edit) -> Diagnostic {
        self.suggestion = Some(Suggestion { title: title.into(), at, edit });
        self
    }

    /// The primary location.
    #[must_use]
    pub fn location(&self) -> Option<Loc> {
        self.labels.iter().find(|l| l.primary).map(|l| l.at)
    }
}

/// A syntax error in file `file`.
#[must_use]
pub fn from_syntax(file: usize, e: &SyntaxError) -> Diagnostic {
    match e {
        SyntaxError::Unexpected { span, expected, found, hint } => {
            let what = match found.as_str() {
                "" => "end of file".to_owned(),
                "\n" | "\r" => "line break".to_owned(),
                s if s.trim().is_empty() => "space".to_owned(),
                s => format!("`{s}`"),
            };
            if let Some(SyntaxHint::DirectionEndsDefault { read_as, arrow }) = hint {
                return Diagnostic::error("E0001", format!("`{found}` here ends `{read_as}`, not the arrow after it"))
                    .primary(Loc { file, span: *span }, format!("read as part of `{read_as}` on the line above"))
                    .note(format!("line breaks are white space: a statement ends where its last part ends, so this reads as `{read_as}` followed by the two-sided arrow `{arrow}`"))
                    .help(format!(
                        "for `{read_as}` write it on one line; for a one-sided arrow (`{found} {arrow}`), write it before the `default` statement"
                    ));
            }
            let wanted = words_list(expected);
            let d = Diagnostic::error("E0001", format!("unexpected {what}"))
                .primary(Loc { file, span: *span }, format!("expected {wanted}"));
            let d = if let Some(hint) = hint {
                d.help(match hint {
                    SyntaxHint::PortListWithoutBrackets(fixed) => {
                        format!("several ports are written as a list in brackets: `{fixed}`")
                    }
                    SyntaxHint::OtherArrow => {
                        "netc's arrow is `->`: `frontend -> backend:8080`".to_owned()
                    }
                    SyntaxHint::IsolatedWithDirection(subject) => format!(
                        "`isolated` guards both doors and takes no direction: write `{subject} isolated`, or `{subject} ingress guarded` to guard one door"
                    ),
                    SyntaxHint::DirectionEndsDefault { .. } => unreachable!("returned above"),
                })
            } else if found.starts_with(':') && expected.contains(&"`=`") {
                d.help("labels are written `key=value` in netc, not `key: value`: `{app=api}`")
            } else if expected.contains(&"`]`") && expected.contains(&"`,`") {
                d.help("separate the ports of a list with commas: `backend:[80, 443]`")
            } else if found.starts_with(',') || expected.contains(&"a port") {
                d.help("a list of ports is written in brackets: `backend:[80, 443]`")
            } else if expected.contains(&"a target") || expected.contains(&"a workload") {
                d.help("an arrow reads `source -> target:port`, for example `frontend -> backend:8080`")
            } else {
                d.help("see docs/language.md for the syntax of each statement")
            };
            d.note("every statement is one of: `workload NAME = {labels}`, `external NAME = CIDR`, `A -> B:PORT`, `A isolated`, `A ingress|egress guarded|open`, `default deny|allow [ingress|egress]`")
        }
        SyntaxError::TooLarge { bytes } => {
            Diagnostic::error("E0002", format!("file too large ({bytes} bytes)"))
                .primary(Loc { file, span: Span::default() }, "netc reads files up to 4 GiB")
                .help("split the intent over several files and pass them all to netc")
        }
        SyntaxError::InputTooLarge { bytes, limit } => {
            let title = match bytes {
                Some(bytes) => format!("file too large ({bytes} bytes)"),
                None => format!("file too large (more than {limit} bytes)"),
            };
            Diagnostic::error("E0002", title)
                .primary(Loc { file, span: Span::default() }, format!("netc reads files up to {limit} bytes"))
                .note("the size is checked before reading, and a stream is read no further than the bound")
                .help(
                    "split the intent over several files and pass them all to netc, or raise the bound with \
                     the environment variable NETC_MAX_INPUT_BYTES",
                )
        }
        SyntaxError::NotUtf8 { span, byte } => Diagnostic::error("E0003", "file is not UTF-8")
            .primary(Loc { file, span: *span }, format!("byte 0x{byte:02x} is not valid UTF-8 here"))
            .note("netc source is UTF-8 text; the excerpt shows the bad byte as \u{fffd}")
            .help("save the file as UTF-8 (`iconv -f latin1 -t utf-8`, or your editor's encoding setting)"),
    }
}

/// Warnings about the bidirectional formatting characters of file `file` (W0001): one per run,
/// the first [`crate::syntax::BIDI_REPORTED`] of `total` runs.
#[must_use]
pub fn from_bidi(file: usize, runs: &[crate::syntax::BidiControl], total: usize) -> Vec<Diagnostic> {
    use crate::syntax::{BidiPlace, bidi_control_name};
    let mut out: Vec<Diagnostic> = runs
        .iter()
        .map(|run| {
            let place = match run.place {
                BidiPlace::DocComment => "a doc comment",
                BidiPlace::Comment => "a comment",
                BidiPlace::String => "a quoted value",
                BidiPlace::Code => "the source",
            };
            let names: Vec<String> = run
                .chars
                .iter()
                .map(|c| format!("U+{:04X} {}", u32::from(*c), bidi_control_name(*c)))
                .collect();
            let escaped: String = run.chars.iter().map(|c| c.escape_unicode().to_string()).collect();
            let what = if run.chars.len() == 1 { "character" } else { "characters" };
            let d = Diagnostic::warning("W0001", format!("invisible bidirectional control {what} in {place}"))
                .primary(
                    Loc { file, span: run.span },
                    format!("{}: the text around it may show in another order than netc reads it", names.join(", ")),
                )
                .note(
                    "bidirectional control characters make text display differently from what it means (\"Trojan Source\", CVE-2021-42574); netc's messages show them escaped",
                );
            let d = if run.place == BidiPlace::DocComment {
                d.note(
                    "a `##` doc comment becomes the `netc.dev/intent` annotation of the generated NetworkPolicies, where reviewers read it",
                )
            } else {
                d
            };
            d.help(format!(
                "delete {}: most editors do not show it (search for `{escaped}`); right-to-left text needs no control characters",
                if run.chars.len() == 1 { "it" } else { "them" }
            ))
            .suggest(Loc { file, span: run.span }, "Delete the invisible characters", Edit::Replace(String::new()))
        })
        .collect();
    if let Some(last) = out.last_mut().filter(|_| total > runs.len()) {
        last.notes.push(format!(
            "{} more runs of such characters in this file are not reported",
            total - runs.len()
        ));
    }
    out
}

/// A YAML file given to `netc import` (file `file`) that holds no readable NetworkPolicy objects:
/// E0601 (not YAML), E0602 (another kind of object), E0603 (fields of the wrong type).
#[must_use]
pub fn from_yaml(file: usize, text: &str, e: &crate::yaml::ParseError) -> Diagnostic {
    use crate::yaml::ParseErrorKind;
    let at = Loc { file, span: line_rest(text, e.offset) };
    let document = format!("document {} of the file", e.document);
    match e.kind {
        ParseErrorKind::Syntax => Diagnostic::error("E0601", "not valid YAML")
            .primary(at, format!("the YAML reader stopped here ({document})"))
            .note(e.message.clone())
            .help(
                "fix the YAML (or JSON) at this place; `kubectl get networkpolicies -o yaml` writes it right",
            ),
        ParseErrorKind::NotNetworkPolicy => Diagnostic::error("E0602", "not a NetworkPolicy")
            .primary(at, format!("{} ({document})", e.message))
            .note("netc import reads NetworkPolicy objects, one per document, or `List`s of them")
            .help("pass only NetworkPolicy files, or select them: `kubectl get networkpolicies -A -o yaml`"),
        ParseErrorKind::Invalid => Diagnostic::error("E0603", "not a valid NetworkPolicy")
            .primary(at, format!("this object ({document})"))
            .note(e.message.clone())
            .help("give each field the type NetworkPolicy v1 has (`kubectl explain networkpolicy.spec`)"),
    }
}

/// An object `netc import` cannot import (E0603 invalid, E0604 inexpressible, E0605 a bug of
/// netc's), at the `metadata.name` of the policy at fault when it is known.
#[must_use]
pub fn from_import(e: &crate::import::ImportError, at: Option<Loc>) -> Diagnostic {
    use crate::import::{Construct, ImportError};
    let place = |d: Diagnostic, label: String| match at {
        Some(at) => d.primary(at, label),
        None => d.note(label),
    };
    match e {
        ImportError::Invalid { policy, field, problem } => place(
            Diagnostic::error("E0603", format!("NetworkPolicy {policy} is not valid")),
            format!("{field}: {problem}"),
        )
        .note("the Kubernetes API server would refuse this object, so it has no meaning to keep")
        .help(format!("correct `{field}` as the API server requires")),
        ImportError::Inexpressible { policy, field, construct } => {
            let Construct::NamespaceName { namespace } = construct;
            place(
                Diagnostic::error("E0604", format!("netc cannot express NetworkPolicy {policy}")),
                format!("{field}: policies of namespace `{namespace}` cannot be written"),
            )
            .note(format!(
                "`{namespace}` is a netc keyword or does not start with a letter, so `namespace {namespace} {{ ... }}` cannot be written"
            ))
            .help("leave this object out of the import and keep applying it as YAML")
        }
        ImportError::Internal { source, diagnostics } => {
            Diagnostic::error("E0605", "internal error: the imported source does not compile")
                .note(format!("the source written:\n{source}"))
                .note(format!("the compiler's diagnostics:\n{diagnostics}"))
                .help("this is a bug in netc import: please report it with the YAML")
        }
    }
}

/// W0601: NetworkPolicy `id` is given again later (`later`): only the last one is imported.
#[must_use]
pub fn object_given_twice(id: &str, at: Loc, later: Loc) -> Diagnostic {
    Diagnostic::warning("W0601", format!("NetworkPolicy {id} is given twice"))
        .primary(at, "this one is not imported")
        .secondary(later, "the one given later is imported")
        .note("`kubectl apply` of both leaves the later one on the cluster, so netc import keeps that one")
        .help("remove the object that is not meant, or rename one of the two")
}

/// From `offset` to the end of its line (one character at least, none at the end of the text).
fn line_rest(text: &str, offset: usize) -> Span {
    let offset = offset.min(text.len());
    let end = text[offset..].find('\n').map_or(text.len(), |n| offset + n);
    Span::new(offset, end.max(offset + text[offset..].chars().next().map_or(0, char::len_utf8)))
}

fn words_list(items: &[&str]) -> String {
    match items {
        [] => "something else".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// What is wrong with a name, in words ("is longer than 63 characters").
#[must_use]
pub fn name_rule_words(rule: NameRule) -> String {
    match rule {
        NameRule::TooLong(n) => format!("is longer than {n} characters"),
        NameRule::Ends => "must start and end with a letter or digit".to_owned(),
        NameRule::BadCharacter(c) => format!("contains `{c}`, which is not allowed here"),
        NameRule::Empty => "is empty".to_owned(),
        NameRule::UpperCase => "contains upper-case letters".to_owned(),
        NameRule::NoLetter => "needs at least one letter".to_owned(),
        NameRule::DoubleHyphen => "contains `--`".to_owned(),
    }
}

/// A check error.
#[must_use]
pub fn from_check(e: &CheckError) -> Diagnostic {
    match e {
        CheckError::UnknownProtocol { at, protocol, suggestion } => {
            let d = Diagnostic::error("E0101", format!("unknown protocol `{protocol}`"))
                .primary(*at, "NetworkPolicy knows TCP, UDP and SCTP only")
                .note("a port without a protocol is TCP");
            match suggestion {
                Some(s) => d
                    .help(format!("did you mean `{s}`?"))
                    .suggest(*at, format!("Replace with `{s}`"), Edit::Replace((*s).to_owned())),
                None if protocol.eq_ignore_ascii_case("icmp") => d.help(
                    "NetworkPolicy cannot filter ICMP; leave the protocol out, or use a CNI-specific policy (CiliumNetworkPolicy, Calico) for ICMP",
                ),
                None => d.help("write `/tcp`, `/udp` or `/sctp` after the port"),
            }
        }
        CheckError::PortOutOfRange { at, port } => Diagnostic::error("E0102", format!("port `{port}` is out of range"))
            .primary(*at, "ports are 1 to 65535")
            .help("use the container port the pod listens on, between 1 and 65535"),
        CheckError::EndPortBelowPort { at, port, end_port } => {
            Diagnostic::error("E0103", format!("port range `{port}-{end_port}` ends before it starts"))
                .primary(*at, format!("{end_port} is below {port}"))
                .help(format!("write the lower port first: `{end_port}-{port}`"))
                .suggest(*at, format!("Write `{end_port}-{port}`"), Edit::Replace(format!("{end_port}-{port}")))
        }
        CheckError::InvalidName { at, kind, text, rule } => {
            let (code, what, fix) = match kind {
                NameKind::PortName => (
                    "E0104",
                    "named port",
                    "port names are 1 to 15 lower-case letters, digits and single hyphens, with at least one letter (like `http` or `grpc-web`)",
                ),
                NameKind::LabelKeyName => (
                    "E0105",
                    "label key",
                    "a label key is an optional DNS prefix and `/`, then up to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
                ),
                NameKind::LabelKeyPrefix => (
                    "E0105",
                    "label key prefix",
                    "the prefix before `/` is a lower-case DNS subdomain like `example.com` (at most 253 characters)",
                ),
                NameKind::LabelValue => (
                    "E0106",
                    "label value",
                    "label values are empty or up to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit; quote nothing else",
                ),
                NameKind::Namespace => (
                    "E0107",
                    "namespace name",
                    "namespace names are up to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit",
                ),
                NameKind::ImplicitWorkload => (
                    "E0108",
                    "workload name",
                    "an undeclared name means the label `app=<name>`, so it must be a valid label value; rename it, or declare it with `workload NAME = {labels}`",
                ),
            };
            Diagnostic::error(code, format!("invalid {what} `{text}`"))
                .primary(*at, format!("this {what} {}", name_rule_words(*rule)))
                .help(fix)
        }
        CheckError::DuplicateLabelKey { at, first, key } => {
            Diagnostic::error("E0112", format!("label key `{key}` appears twice in one selector"))
                .primary(*at, "repeated here")
                .secondary(*first, "first used here")
                .help(format!(
                    "a pod has one value for `{key}`: to accept several, write `{key} in (a, b)`; to require \
                     `{key}` with none of some values, `{key}, {key} notin (a, b)`"
                ))
        }
        CheckError::DuplicateWorkload { at, first, name, namespace } => Diagnostic::error(
            "E0109",
            format!("workload `{name}` is declared twice in namespace `{namespace}`"),
        )
        .primary(*at, "declared again here")
        .secondary(*first, "first declared here")
        .help("remove one declaration, or give one of them another name"),
        CheckError::DuplicateExternal { at, first, name } => {
            Diagnostic::error("E0110", format!("external `{name}` is declared twice"))
                .primary(*at, "declared again here")
                .secondary(*first, "first declared here")
                .help("list all of its address blocks in one declaration: `external NAME = CIDR, CIDR`")
        }
        CheckError::UsedBeforeDeclaration { at, declared, name } => {
            Diagnostic::error("E0111", format!("`{name}` is used before its declaration"))
                .primary(*at, "used here")
                .secondary(*declared, "declared later here")
                .note("before its declaration a bare name would mean the label `app=<name>`, a different set of pods")
                .help(format!("move the declaration of `{name}` above its first use"))
        }
        CheckError::PossibleTypo { at, name, suggestion, suggestion_at, both_once } => {
            let d = Diagnostic::warning("W0101", format!("`{name}` is used once and is not declared"))
                .primary(*at, format!("this means the pods labelled `app={name}`"));
            let d = if *both_once {
                d.secondary(*suggestion_at, format!("`{suggestion}` is used once too, here"))
                    .note("two similar names, each used once: one of them is probably misspelt")
                    .help(format!("did you mean `{suggestion}`? if both are meant, declare them with `workload NAME = {{labels}}`"))
            } else {
                d.secondary(*suggestion_at, format!("`{suggestion}` is declared or used here"))
                    .help(format!("did you mean `{suggestion}`?"))
            };
            d.suggest(
                *at,
                format!("Replace `{name}` with `{suggestion}`"),
                Edit::ReplaceName { old: name.clone(), new: suggestion.clone() },
            )
        }
        CheckError::DeclaredElsewhere { at, name, namespace, declared, declared_namespace } => {
            Diagnostic::warning("W0104", format!("`{name}` is declared in namespace `{declared_namespace}`, not in `{namespace}`"))
                .primary(*at, format!("here, in `{namespace}`, this means the pods labelled `app={name}`"))
                .secondary(*declared, format!("declared here, for namespace `{declared_namespace}`"))
                .note("a workload name belongs to the namespace it is declared in; statements outside any namespace belong to `default`")
                .help(format!(
                    "write `{declared_namespace}/{name}` for the pods declared there, declare `{name}` in `{namespace}` too, or write `{{app={name}}}` if the label is meant"
                ))
        }
        CheckError::NamespaceOfQualifiedWorkload { at, name, declared } => {
            Diagnostic::error("E0113", format!("`{name}` already says which namespaces it is in"))
                .primary(*at, "a namespace given to a workload declared with its own")
                .secondary(*declared, "declared with its namespaces here")
                .help(format!("write `{name}` alone, or declare another workload for the pods of this namespace"))
        }
        CheckError::InvalidCidr { at, text } if text.contains(':') && !text.contains('/') => {
            Diagnostic::error("E0201", format!("`{text}` needs a prefix length"))
                .primary(*at, "an IPv6 address without `/length`")
                .note("after an IPv6 address, `:443` could be a port or more of the address")
                .help(match text.rsplit_once(':') {
                    Some((addr, port))
                        if addr.parse::<std::net::Ipv6Addr>().is_ok() && port.parse::<u16>().is_ok() =>
                    {
                        format!("did you mean address `{addr}` on port {port}? write `{addr}/128:{port}`")
                    }
                    _ => format!("write the address with its length: `{text}/128` for one address"),
                })
        }
        CheckError::InvalidCidr { at, text } => Diagnostic::error("E0201", format!("`{text}` is not an address block"))
            .primary(*at, "expected an IPv4 or IPv6 address with an optional prefix length")
            .help("write a block like `10.0.0.0/8` or `2001:db8::/32`, or a single address like `203.0.113.7`"),
        CheckError::HostBitsSet { at, text, network } => {
            Diagnostic::error("E0202", format!("`{text}` has bits set after its prefix"))
                .primary(*at, format!("the block this prefix describes starts at {}", network.network()))
                .note("Kubernetes accepts this, but reads it as the whole block, which is rarely what was meant")
                .help(format!("did you mean `{network}`?"))
                .suggest(*at, format!("Replace with `{network}`"), Edit::Replace(network.to_string()))
        }
        CheckError::ExceptOutsideCidr { at, cidr_at, except, cidr } => {
            Diagnostic::error("E0203", format!("`{except}` is not inside `{cidr}`"))
                .primary(*at, "this exception")
                .secondary(*cidr_at, "is not strictly inside this block")
                .help("an `except` prefix must lie inside its block and be smaller than it; remove it or fix the block")
        }
        CheckError::MixedFamilies { at, cidr_at } => {
            Diagnostic::error("E0204", "an exception of another address family")
                .primary(*at, "this exception")
                .secondary(*cidr_at, "belongs to a block of the other family")
                .help("write IPv4 and IPv6 blocks as separate peers: `external x = 10.0.0.0/8, fd00::/8`")
        }
        CheckError::NoDoorsOutsideCluster { at } => {
            Diagnostic::error("E0205", "addresses outside the cluster have no doors to guard")
                .primary(*at, "not a set of pods")
                .help("doors belong to pods; to control traffic to or from addresses, write an arrow: `web -> 203.0.113.0/24:443`")
        }
        CheckError::DoorNeedsOneNamespace { at } => {
            Diagnostic::error("E0206", "a door statement names pods of one namespace")
                .primary(*at, "these pods may live in several namespaces")
                .note("a NetworkPolicy lives in one namespace and selects pods of that namespace only")
                .help("write the statement once per namespace: `namespace shop { * egress guarded }`")
        }
        CheckError::DnsAsSource { at } => Diagnostic::error("E0207", "`dns` can only be a target")
            .primary(*at, "`dns` is the cluster DNS service, a destination")
            .help("write `web -> dns` to let `web` resolve names"),
        CheckError::PortsOnDns { at } => Diagnostic::error("E0208", "`dns` takes no ports")
            .primary(*at, "`dns` already means port 53, UDP and TCP")
            .help("remove the ports; for another resolver, name it: `kube-system/{k8s-app=my-dns}:53/udp`"),
        CheckError::Unsupported { at, feature } => unsupported(*at, *feature),
        CheckError::StrayDoc { at } => Diagnostic::warning("W0102", "doc comment attached to nothing")
            .primary(*at, "no statement follows this `##` comment")
            .help("put the doc comment right above a statement, or use `#` for an ordinary comment"),
    }
}

fn unsupported(at: Loc, feature: Unsupported) -> Diagnostic {
    let (code, title, label, help) = match feature {
        Unsupported::DenyRule => (
            "E0401",
            "NetworkPolicy cannot express deny rules",
            "a deny arrow",
            "NetworkPolicy only allows; leave the flow out and guard the target's door (`B ingress guarded`), or target AdminNetworkPolicy or CiliumNetworkPolicy, which can deny",
        ),
        Unsupported::Priority => (
            "E0402",
            "NetworkPolicy has no priorities",
            "policies are a union: none outranks another",
            "remove the priority; AdminNetworkPolicy has priorities if you need ordering",
        ),
        Unsupported::Fqdn => (
            "E0403",
            "NetworkPolicy cannot match DNS names",
            "a domain name",
            "declare the service's address blocks instead: `external payments = 203.0.113.0/24`; CiliumNetworkPolicy's toFQDNs can match names",
        ),
        Unsupported::L7 => (
            "E0404",
            "NetworkPolicy cannot filter on HTTP paths or methods",
            "an L7 rule",
            "remove the clause to allow the whole port; CiliumNetworkPolicy can filter HTTP",
        ),
        Unsupported::Nodes => (
            "E0405",
            "NetworkPolicy cannot select nodes",
            "nodes as a peer",
            "declare the node addresses as an external block: `external nodes-net = 10.0.0.0/24`; CiliumClusterwideNetworkPolicy can select nodes",
        ),
    };
    Diagnostic::error(code, title).primary(at, label).help(help)
}

/// A door-model error or warning.
#[must_use]
pub fn from_lower(e: &LowerError) -> Diagnostic {
    match e {
        LowerError::IsolatedInFlow { at, isolated, name } => {
            Diagnostic::error("E0301", format!("`{name}` is isolated but this arrow names it"))
                .primary(*at, "a flow to or from an isolated workload")
                .secondary(*isolated, "declared isolated here")
                .help(format!(
                    "remove the arrow, or replace `{name} isolated` with `{name} guarded` to allow only the declared flows"
                ))
        }
        LowerError::OverlapsIsolated { at, isolated, end, name, narrower } => Diagnostic::error(
            "E0301",
            format!("`{end}` can include pods of `{name}`, which is isolated"),
        )
        .primary(*at, format!("a flow to or from `{end}`, whose pods may also be `{name}` pods"))
        .secondary(*isolated, format!("`{name}` declared isolated here"))
        .note(
            "a pod whose labels fit both selectors would be isolated and take part in this flow: the two promises cannot both hold",
        )
        .help(match narrower {
            Some(n) => format!(
                "write `{n}` to leave `{name}`'s pods out, or replace `{name} isolated` with `{name} guarded`"
            ),
            None => format!(
                "leave `{name}`'s pods out of `{end}` (a selector that contradicts `{name}`'s), or replace `{name} isolated` with `{name} guarded`"
            ),
        }),
        LowerError::RedundantFlow { at, by, direction, name } => {
            Diagnostic::warning("W0206", format!("this flow is already allowed by a wider one on the {direction} of `{name}`"))
                .primary(*at, "every peer and port of this flow is covered")
                .secondary(*by, "by the flow of this arrow")
                .note("the covered rule is not written: NetworkPolicy rules of one door are OR'ed")
                .help("remove the narrower arrow, or narrow the wider one")
        }
        LowerError::ContradictoryDoor { at, guard, name, direction } => {
            Diagnostic::error("E0302", format!("the {direction} door of `{name}` is declared both open and guarded"))
                .primary(*at, "declared open here")
                .secondary(*guard, "guarded here")
                .help("keep one of the two statements")
        }
        LowerError::CannotOpen { at, guard, name, wider, direction } => Diagnostic::error(
            "E0303",
            format!("the {direction} door of `{name}` cannot be opened: `{wider}` guards it"),
        )
        .primary(*at, "declared open here")
        .secondary(*guard, format!("this guards the {direction} of `{wider}`, which includes `{name}`"))
        .note("NetworkPolicies only add: a policy that guards a door cannot be undone by another")
        .help(format!(
            "remove the open statement and allow `{name}`'s flows with arrows, or guard fewer pods than `{wider}`"
        )),
        LowerError::NoEffect { at, source, target, target_side, source_side, one_sided } => {
            let arrow = if *one_sided { format!("egress {source} -> {target}") } else { format!("{source} -> {target}") };
            let mut d = Diagnostic::warning("W0201", format!("`{arrow}` has no effect"))
                .primary(*at, "this flow is allowed anyway");
            let both_no_door = source == target && *source_side == Side::NoDoor && *target_side == Side::NoDoor;
            d = match target_side {
                Side::NoDoor if both_no_door => d.note(format!("`{target}`, at both ends, is outside the cluster or spans namespaces: netc guards no door of it")),
                Side::NoDoor => d.note(format!("`{target}` is outside the cluster or spans namespaces: netc guards no door of it")),
                Side::Open if *one_sided => d.note(format!(
                    "a one-sided arrow does not guard its target's ingress, and nothing else guards the ingress of `{target}`: it is open"
                )),
                Side::Open => d.note(format!("the ingress of `{target}` is open")),
                Side::DeclaredOpen(l) => d.secondary(*l, format!("the ingress of `{target}` is declared open here")),
            };
            d = match source_side {
                Side::NoDoor if both_no_door => d,
                Side::NoDoor => d.note(format!("`{source}` is outside the cluster or spans namespaces: netc guards no door of it")),
                Side::Open => d.note(format!("the egress of `{source}` is open (egress is guarded only when asked)")),
                Side::DeclaredOpen(l) => d.secondary(*l, format!("the egress of `{source}` is declared open here")),
            };
            // Never suggest a statement that would itself be an error (E0205, E0302).
            d.help(match (source_side, target_side) {
                (Side::Open, _) => format!(
                    "to restrict what `{source}` may reach, add `{source} egress guarded`; otherwise remove the arrow"
                ),
                (Side::DeclaredOpen(_), _) => format!(
                    "to restrict what `{source}` may reach, change its `egress open` to `egress guarded`; otherwise remove the arrow"
                ),
                (Side::NoDoor, Side::DeclaredOpen(_)) => {
                    format!("remove `{target} ingress open` to let the arrow guard `{target}`, or remove the arrow")
                }
                (Side::NoDoor, _) => "netc guards no door at either end of this arrow: remove it".to_owned(),
            })
        }
        LowerError::TargetDeclaredOpen { at, open, name } => {
            Diagnostic::warning("W0202", format!("arrow into `{name}`, whose ingress is declared open, has no effect"))
                .primary(*at, "no rule is written for this target")
                .secondary(*open, "declared open here")
                .note("an arrow into an open door is written only as an egress rule, and no source of this arrow has a guarded egress")
                .help(format!(
                    "remove `{name} ingress open` to let the arrow guard `{name}`, guard the sources' egress, or remove the arrow"
                ))
        }
        LowerError::MissingDns { at, name } => {
            Diagnostic::warning("W0203", format!("`{name}` may not resolve names: its egress is guarded without DNS"))
                .primary(*at, "egress guarded here, and no flow allows DNS")
                .note("pods look up Service names through the cluster DNS on port 53; without it most clients fail in confusing ways")
                .help(format!("add the line `{name} -> dns`"))
                .suggest(*at, format!("Add `{name} -> dns`"), Edit::InsertLineAfter(format!("{name} -> dns")))
        }
        LowerError::ArrowGuardsTarget { at, target, source, egress_guard } => Diagnostic::warning(
            "W0205",
            format!("this arrow also guards the ingress of `{target}`"),
        )
        .primary(*at, format!("from here on, only declared flows reach `{target}`"))
        .secondary(*egress_guard, format!("the egress of `{source}` is guarded here"))
        .note(format!(
            "an arrow guards its target's ingress: pods that reached `{target}` before and are not named by an arrow are now refused"
        ))
        .help(format!(
            "to restrict only what `{source}` sends, write the one-sided arrow `egress {source} -> {target}`; to guard `{target}` on purpose, say so: `{target} ingress guarded`"
        )),
        LowerError::LabelSourceEgress { at, source, target, fix, doors } => {
            let mut d = Diagnostic::warning(
                "W0207",
                format!("pods of `{source}` whose egress is guarded cannot send this flow"),
            )
            .primary(*at, format!("no egress rule is written for these pods' flow to `{target}`"));
            for (door, guard) in doors.iter().take(3) {
                d = d.secondary(*guard, format!("the egress of `{door}` is guarded here"));
            }
            d.note("an egress rule is written on a policy of the sending pods' own namespace, and NetworkPolicy cannot make it depend on that namespace's labels: an arrow from pods of namespaces chosen by labels (`{team=x}/*`, `*/*`) is written as ingress rules only")
                .help(format!(
                    "if those pods should send it, add the one-sided arrow `{fix}` (one per namespace concerned); if not, acknowledge it with `@allow(W0207)`"
                ))
        }
        LowerError::DuplicateFlow { at, first } => Diagnostic::warning("W0204", "this flow is already allowed")
            .primary(*at, "same peers and ports as an earlier arrow")
            .secondary(*first, "first allowed here")
            .help("remove the repeated arrow"),
    }
}

/// A problem of an `@allow` attribute.
#[must_use]
pub fn from_allow(e: &AllowError) -> Diagnostic {
    match e {
        AllowError::NotAWarning { at, code, suggestion } => {
            let d = Diagnostic::error("E0114", format!("`@allow({code})` names no warning"))
                .primary(*at, "not the code of a warning");
            let d = if code.to_ascii_uppercase().starts_with('E') && ALL_CODES.contains(&code.to_ascii_uppercase().as_str()) {
                d.note("errors cannot be allowed: the program says something NetworkPolicy cannot do, or is wrong")
            } else {
                d.note("`@allow` takes the codes of warnings (`W....`), as printed in brackets: `warning[W0203]`")
            };
            match suggestion {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help("fix what the error says, or remove the attribute; `netc explain CODE` describes each code"),
            }
        }
        AllowError::AllowsNothing { at, code } => {
            Diagnostic::warning("W0103", format!("`@allow({code})` allows nothing here"))
                .primary(*at, format!("the statement below has no {code} warning"))
                .note("an attribute acknowledges the warnings of the one statement that follows it")
                .help("remove the code from the attribute (the warning it was written for is gone), or move the attribute above the statement that has the warning")
        }
    }
}

/// An assertion that does not hold, with its counterexample: E0501 for the proof over every
/// possible pod, E0502 for the pods of a given cluster.
#[must_use]
pub fn from_assert(e: &crate::prove::assertions::AssertError) -> Diagnostic {
    use crate::prove::assertions::Origin;
    let cx = &e.counterexample;
    let on_cluster = matches!(e.origin, Origin::Cluster { .. });
    let end = |w: &crate::prove::flows::Witness| {
        if on_cluster { w.real(cx.protocol, cx.port) } else { w.to_string() }
    };
    let (label, because_label, flow) = match e.door {
        None => {
            let flow = format!("from {} to {} on {} {}", end(&cx.src), end(&cx.dst), cx.protocol, cx.port);
            if e.because.is_empty() || e.claim.starts_with("no ") || e.claim.contains("isolated") {
                ("this flow is allowed", "this rule allows it", flow)
            } else {
                ("this flow is refused", "this guards the door that refuses it", flow)
            }
        }
        Some(direction) => {
            let pod = match direction {
                netc_ir::Direction::Ingress => &cx.dst,
                netc_ir::Direction::Egress => &cx.src,
            };
            ("not for this pod", "this guards it", end(pod))
        }
    };
    let mut d = match &e.origin {
        Origin::Proof => {
            Diagnostic::error("E0501", format!("assertion does not hold: {}", e.claim)).primary(e.at, label)
        }
        Origin::Cluster { .. } => {
            Diagnostic::error("E0502", format!("assertion does not hold on the given cluster: {}", e.claim))
                .primary(e.at, format!("{label} on the cluster"))
        }
    };
    for b in &e.because {
        d = d.secondary(*b, because_label);
    }
    d = d.note(if on_cluster {
        format!("on the cluster: {flow}")
    } else {
        format!("counterexample: {flow}")
    });
    if e.because.is_empty() && e.door.is_none() {
        d = d.note("no policy guards a door this flow passes: both are open");
    }
    if !e.confirmed {
        d = d.note("netc's evaluator does not confirm this counterexample: this is a bug in netc's prover, please report it");
    }
    if let Origin::Cluster { explain, outside_pod_cidrs } = &e.origin {
        if let Some(args) = explain {
            d = d.note(format!("`netc explain` with the same files, --cluster and `{args}` shows why"));
        }
        if !outside_pod_cidrs.is_empty() {
            d = d.note(format!(
                "{} outside every --pod-cidr given: the proof for every possible pod did not consider {}",
                outside_pod_cidrs.iter().map(|p| format!("`{p}` is")).collect::<Vec<_>>().join(", "),
                if outside_pod_cidrs.len() == 1 { "it" } else { "them" }
            ));
        }
    }
    d.help(
        "change the program so that it keeps the promise, or the assertion if the program is what you mean",
    )
}

/// The code-to-text file set codespan needs.
fn files(sources: &[SourceFile]) -> SimpleFiles<&str, &str> {
    let mut files = SimpleFiles::new();
    for s in sources {
        files.add(s.name.as_str(), s.text.as_str());
    }
    files
}

/// Render diagnostics the way rustc does, optionally with ANSI colour.
///
/// What is shown of a source is made safe for a terminal first (see the `excerpt` module): control and
/// bidirectional formatting characters are written as `\u{1b}`-style escapes, and very long lines
/// are cut around the places the labels point at; titles, labels, notes and file names are
/// escaped the same way.
#[must_use]
pub fn render(diagnostics: &[Diagnostic], sources: &[SourceFile], colour: bool) -> String {
    let files = excerpt::Shown::new(diagnostics, sources);
    let config = term::Config::default();
    let mut out = String::new();
    for d in diagnostics {
        let cs = files.to_codespan(d);
        if colour {
            let mut buf = term::termcolor::Buffer::ansi();
            let styles = term::Styles::default();
            let mut w = term::StylesWriter::new(&mut buf, &styles);
            if term::emit_to_write_style(&mut w, &config, &files, &cs).is_ok() {
                out.push_str(&String::from_utf8_lossy(buf.as_slice()));
                continue;
            }
        }
        if term::emit_to_string(&mut out, &config, &files, &cs).is_err() {
            // A label outside its file would be a bug of ours; still say what we know.
            out.push_str(&format!("{}[{}]: {}\n", severity_word(d.severity), d.code, d.message));
        }
    }
    out
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as JSON, for CI annotations and editors.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    /// `error` or `warning`.
    pub severity: Severity,
    /// `E0102`.
    pub code: &'a str,
    /// The title.
    pub message: &'a str,
    /// File name as given.
    pub file: Option<&'a str>,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    /// 1-based.
    pub end_line: Option<usize>,
    /// 1-based, in characters, exclusive.
    pub end_column: Option<usize>,
    /// What the primary label says.
    pub label: Option<&'a str>,
    /// Notes.
    pub notes: &'a [String],
    /// The fix.
    pub help: Option<&'a str>,
}

/// Diagnostics as JSON lines (one object per line).
#[must_use]
pub fn render_json(diagnostics: &[Diagnostic], sources: &[SourceFile]) -> String {
    let files = files(sources);
    let mut out = String::new();
    for d in diagnostics {
        let primary = d.labels.iter().find(|l| l.primary);
        let pos = |offset: u32, file: usize| -> Option<(usize, usize)> {
            let loc = files.location(file, offset as usize).ok()?;
            Some((loc.line_number, loc.column_number))
        };
        let start = primary.and_then(|l| pos(l.at.span.start, l.at.file));
        let end = primary.and_then(|l| pos(l.at.span.end, l.at.file));
        let j = JsonDiagnostic {
            severity: d.severity,
            code: d.code,
            message: &d.message,
            file: primary.and_then(|l| sources.get(l.at.file)).map(|s| s.name.as_str()),
            line: start.map(|p| p.0),
            column: start.map(|p| p.1),
            end_line: end.map(|p| p.0),
            end_column: end.map(|p| p.1),
            label: primary.map(|l| l.message.as_str()),
            notes: &d.notes,
            help: d.help.as_deref(),
        };
        out.push_str(&serde_json::to_string(&j).expect("plain data"));
        out.push('\n');
    }
    out
}

/// The documentation of every diagnostic code, from `docs/diagnostics.md`.
pub const DIAGNOSTICS_DOC: &str = include_str!("../../docs/diagnostics.md");

/// The section of `docs/diagnostics.md` about `code` (`E0102`, case-insensitive).
#[must_use]
pub fn explain(code: &str) -> Option<String> {
    let code = code.trim().to_ascii_uppercase();
    let heading = format!("## {code}");
    let lines: Vec<&str> = DIAGNOSTICS_DOC.lines().collect();
    let start = lines.iter().position(|l| *l == heading || l.starts_with(&format!("{heading}:")))?;
    // The section ends at the next heading; a `## ` line inside a fenced example is a doc comment.
    let mut in_fence = false;
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            if l.starts_with("```") {
                in_fence = !in_fence;
            }
            !in_fence && l.starts_with("## ")
        })
        .map_or(lines.len(), |p| start + 1 + p);
    Some(lines[start..end].join("\n").trim_end().to_owned() + "\n")
}

/// Every code this compiler can emit, for docs tests.
pub const ALL_CODES: &[&str] = &[
    "E0001", "E0002", "E0003", "E0101", "E0102", "E0103", "E0104", "E0105", "E0106", "E0107", "E0108",
    "E0109", "E0110", "E0111", "E0112", "E0113", "E0114", "E0201", "E0202", "E0203", "E0204", "E0205",
    "E0206", "E0207", "E0208", "E0301", "E0302", "E0303", "E0401", "E0402", "E0403", "E0404", "E0405",
    "E0501", "E0502", "E0601", "E0602", "E0603", "E0604", "E0605", "W0001", "W0101", "W0102", "W0103",
    "W0104", "W0201", "W0202", "W0203", "W0204", "W0205", "W0206", "W0207", "W0601",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_reads_past_doc_comments_inside_examples() {
        let section = explain("W0102").expect("W0102 is documented");
        assert!(section.contains("## nothing follows"), "{section}");
        assert!(section.contains("**Fix:**"), "the section goes on after its example: {section}");
    }
}

/// Sources as a terminal may show them: escapes for control and bidirectional formatting
/// characters, long lines cut around the labels, and the label spans moved to match.
mod excerpt {
    use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel, LabelStyle};
    use codespan_reporting::files;

    use super::{Diagnostic, Severity};
    use crate::SourceFile;

    /// A line longer than this many bytes is cut.
    const LONG_LINE: usize = 320;
    /// How much of a cut line is kept at its start and on each side of a label's ends.
    const WINDOW: usize = 60;

    /// Whether `c` must not reach a terminal as it is.
    fn unsafe_char(c: char) -> bool {
        (c.is_control() && c != '\t' && c != '\n') || crate::syntax::is_bidi_control(c)
    }

    /// `text` with every unsafe character escaped (`\u{1b}`).
    pub fn escape(text: &str) -> String {
        if !text.chars().any(unsafe_char) {
            return text.to_owned();
        }
        text.chars()
            .map(|c| if unsafe_char(c) { c.escape_unicode().to_string() } else { c.to_string() })
            .collect()
    }

    /// One file as shown: its text, and how offsets of the original map to it.
    struct ShownFile {
        text: String,
        /// Where each line of `text` starts.
        line_starts: Vec<usize>,
        /// (original start, shown start, original length, shown length), in order; a run copied
        /// as it is has equal lengths and maps byte for byte.
        segments: Vec<(usize, usize, usize, usize, bool)>,
    }

    impl ShownFile {
        fn new(text: &str, labelled: &[usize]) -> ShownFile {
            let mut shown = ShownFile {
                text: String::with_capacity(text.len()),
                line_starts: Vec::new(),
                segments: Vec::new(),
            };
            let mut line_start = 0;
            let mut marks = labelled.iter().copied().peekable();
            while line_start <= text.len() {
                let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
                let mut keep: Vec<(usize, usize)> = Vec::new();
                if line_end - line_start > LONG_LINE {
                    keep.push((line_start, line_start + WINDOW));
                    while let Some(&m) = marks.peek() {
                        if m > line_end {
                            break;
                        }
                        marks.next();
                        if m >= line_start {
                            keep.push((
                                m.saturating_sub(WINDOW / 2).max(line_start),
                                (m + WINDOW / 2).min(line_end),
                            ));
                        }
                    }
                    keep.sort_unstable();
                } else {
                    while marks.peek().is_some_and(|&m| m <= line_end) {
                        marks.next();
                    }
                    keep.push((line_start, line_end));
                }
                let mut at = line_start;
                for (a, b) in keep {
                    let a = floor_char(text, a.max(at));
                    let b = floor_char(text, b);
                    if a > at {
                        shown.replace(at, a - at, "\u{2026}");
                    }
                    if b > a {
                        shown.copy_escaped(text, a, b);
                        at = b;
                    }
                    at = at.max(a);
                }
                if line_end > at {
                    shown.replace(at, line_end - at, "\u{2026}");
                }
                if line_end < text.len() {
                    shown.copy(text, line_end, line_end + 1);
                }
                line_start = line_end + 1;
            }
            shown.line_starts =
                std::iter::once(0).chain(shown.text.match_indices('\n').map(|(i, _)| i + 1)).collect();
            shown
        }

        /// The original offset shown at `at` (the start of what a replacement stands for).
        fn unmap(&self, at: usize) -> usize {
            let i = self.segments.partition_point(|s| s.1 <= at).saturating_sub(1);
            match self.segments.get(i) {
                None => 0,
                Some(&(o, s, ol, _, copied)) => {
                    if copied {
                        o + (at - s).min(ol)
                    } else {
                        o
                    }
                }
            }
        }

        fn copy(&mut self, text: &str, a: usize, b: usize) {
            match self.segments.last_mut() {
                Some((o, s, ol, sl, true)) if *o + *ol == a && *s + *sl == self.text.len() => {
                    *ol += b - a;
                    *sl += b - a;
                }
                _ => self.segments.push((a, self.text.len(), b - a, b - a, true)),
            }
            self.text.push_str(&text[a..b]);
        }

        fn replace(&mut self, a: usize, len: usize, with: &str) {
            self.segments.push((a, self.text.len(), len, with.len(), false));
            self.text.push_str(with);
        }

        fn copy_escaped(&mut self, text: &str, a: usize, b: usize) {
            let mut run = a;
            for (i, c) in text[a..b].char_indices() {
                let i = a + i;
                let lone_cr = c == '\r' && text.as_bytes().get(i + 1) != Some(&b'\n');
                if unsafe_char(c) && (c != '\r' || lone_cr) {
                    if i > run {
                        self.copy(text, run, i);
                    }
                    self.replace(i, c.len_utf8(), &c.escape_unicode().to_string());
                    run = i + c.len_utf8();
                }
            }
            if b > run {
                self.copy(text, run, b);
            }
        }

        /// Where original offset `at` is shown; `end`: the end of a span (after a replacement
        /// rather than before it).
        fn map(&self, at: usize, end: bool) -> usize {
            let i = self.segments.partition_point(|s| s.0 <= at).saturating_sub(1);
            match self.segments.get(i) {
                None => 0,
                Some(&(o, s, ol, sl, copied)) => {
                    if at >= o + ol {
                        s + sl
                    } else if copied {
                        s + (at - o)
                    } else if end && at > o {
                        s + sl
                    } else {
                        s
                    }
                }
            }
        }
    }

    fn floor_char(text: &str, mut at: usize) -> usize {
        at = at.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    /// Codespan reads the shown text, but the `file:line:column` it prints is the original's
    /// (lines are never added or removed, so only columns differ).
    impl<'a> files::Files<'a> for Shown<'_> {
        type FileId = usize;
        type Name = &'a str;
        type Source = &'a str;

        fn name(&'a self, id: usize) -> Result<&'a str, files::Error> {
            self.names.get(id).map(String::as_str).ok_or(files::Error::FileMissing)
        }

        fn source(&'a self, id: usize) -> Result<&'a str, files::Error> {
            Ok(self.file(id)?.text.as_str())
        }

        fn line_index(&'a self, id: usize, byte_index: usize) -> Result<usize, files::Error> {
            let starts = &self.file(id)?.line_starts;
            Ok(starts.partition_point(|&s| s <= byte_index).saturating_sub(1))
        }

        fn line_range(
            &'a self,
            id: usize,
            line_index: usize,
        ) -> Result<std::ops::Range<usize>, files::Error> {
            let f = self.file(id)?;
            let start = |line: usize| match line.cmp(&f.line_starts.len()) {
                std::cmp::Ordering::Less => Ok(f.line_starts[line]),
                std::cmp::Ordering::Equal => Ok(f.text.len()),
                std::cmp::Ordering::Greater => {
                    Err(files::Error::LineTooLarge { given: line, max: f.line_starts.len() - 1 })
                }
            };
            Ok(start(line_index)?..start(line_index + 1)?)
        }

        fn column_number(
            &'a self,
            id: usize,
            line_index: usize,
            byte_index: usize,
        ) -> Result<usize, files::Error> {
            let f = self.file(id)?;
            let original = &self.sources[id].text;
            let at = f.unmap(byte_index).min(original.len());
            let line_start = original[..at].rfind('\n').map_or(0, |i| i + 1);
            let _ = line_index;
            Ok(original.get(line_start..at).map_or(1, |t| t.chars().count() + 1))
        }
    }

    /// Every source as shown for a set of diagnostics.
    pub struct Shown<'a> {
        sources: &'a [SourceFile],
        files: Vec<ShownFile>,
        names: Vec<String>,
    }

    impl<'a> Shown<'a> {
        pub fn new(diagnostics: &[Diagnostic], sources: &'a [SourceFile]) -> Shown<'a> {
            let mut marks: Vec<Vec<usize>> = vec![Vec::new(); sources.len()];
            for l in diagnostics.iter().flat_map(|d| &d.labels) {
                if let Some(m) = marks.get_mut(l.at.file) {
                    m.push(l.at.span.start as usize);
                    m.push(l.at.span.end as usize);
                }
            }
            let files = sources
                .iter()
                .zip(&mut marks)
                .map(|(s, m)| {
                    m.sort_unstable();
                    ShownFile::new(&s.text, m)
                })
                .collect();
            Shown { sources, files, names: sources.iter().map(|s| escape(&s.name)).collect() }
        }

        fn file(&self, id: usize) -> Result<&ShownFile, files::Error> {
            self.files.get(id).ok_or(files::Error::FileMissing)
        }

        pub fn to_codespan(&self, d: &Diagnostic) -> CsDiagnostic<usize> {
            let severity = match d.severity {
                Severity::Error => codespan_reporting::diagnostic::Severity::Error,
                Severity::Warning => codespan_reporting::diagnostic::Severity::Warning,
            };
            let labels = d
                .labels
                .iter()
                .filter(|l| l.at.file < self.sources.len())
                .map(|l| {
                    let style = if l.primary { LabelStyle::Primary } else { LabelStyle::Secondary };
                    let f = &self.files[l.at.file];
                    let start = f.map(l.at.span.start as usize, false);
                    let end = f.map(l.at.span.end as usize, true).max(start);
                    CsLabel::new(style, l.at.file, start..end).with_message(escape(&l.message))
                })
                .collect();
            let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {}", escape(n))).collect();
            if let Some(h) = &d.help {
                notes.push(format!("help: {}", escape(h)));
            }
            CsDiagnostic::new(severity)
                .with_code(d.code)
                .with_message(escape(&d.message))
                .with_labels(labels)
                .with_notes(notes)
        }
    }
}
