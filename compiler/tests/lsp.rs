//! The language server over its protocol: a client on an in-memory connection (the same messages
//! an editor sends over stdio) talks to `netc::lsp::run` in a thread, on files in a scratch
//! directory. One test per request or behaviour; to add one, write the files with `workspace`,
//! open them with `open`, and assert on what `request` answers. The real-editor test is
//! `editors_neovim.rs`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidOpenTextDocument, Exit, Initialized, Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    CodeActionRequest, Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest,
    Initialize, PrepareRenameRequest, References, Rename, Request as _, Shutdown,
};
use lsp_types::{
    CodeActionOrCommand, CompletionResponse, Diagnostic, DocumentSymbolResponse, GotoDefinitionResponse,
    Hover, HoverContents, Location, NumberOrString, Position, PublishDiagnosticsParams, Range, TextEdit, Url,
    WorkspaceEdit,
};
use serde_json::{Value, json};

struct Client {
    connection: Connection,
    server: Option<JoinHandle<Result<(), netc::lsp::ServerError>>>,
    next_id: i32,
    /// Diagnostics published so far, per document, in order.
    published: HashMap<Url, Vec<Vec<Diagnostic>>>,
    _dir: tempfile::TempDir,
    root: PathBuf,
}

/// A scratch directory holding `files`, and a server initialised with `options`.
#[allow(clippy::needless_pass_by_value)] // `json!({...})` at every call site reads best.
fn workspace(files: &[(&str, &str)], options: Value) -> Client {
    let dir = tempfile::tempdir().expect("scratch directory");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let (server_side, client_side) = Connection::memory();
    let server = std::thread::spawn(move || netc::lsp::run(&server_side));
    let root = dir.path().canonicalize().expect("canonical");
    let mut client = Client {
        connection: client_side,
        server: Some(server),
        next_id: 0,
        published: HashMap::new(),
        _dir: dir,
        root,
    };
    let init = json!({
        "capabilities": {},
        "rootUri": Url::from_directory_path(&client.root).expect("url"),
        "initializationOptions": &options,
    });
    let answer = client.request_raw(Initialize::METHOD, init).expect("initialize succeeds");
    assert_eq!(answer["serverInfo"]["name"], "netc");
    client.notify(Initialized::METHOD, json!({}));
    client
}

impl Client {
    fn uri(&self, name: &str) -> Url {
        Url::from_file_path(self.root.join(name)).expect("url")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn notify(&self, method: &str, params: Value) {
        let n = Notification { method: method.to_owned(), params };
        self.connection.sender.send(Message::Notification(n)).expect("server listens");
    }

    fn open(&self, name: &str) {
        let text = std::fs::read_to_string(self.path(name)).expect("read");
        self.open_text(name, &text);
    }

    fn open_text(&self, name: &str, text: &str) {
        self.notify(
            DidOpenTextDocument::METHOD,
            json!({"textDocument": {"uri": self.uri(name), "languageId": "netc", "version": 1, "text": text}}),
        );
    }

    fn change(&self, name: &str, version: i32, text: &str) {
        self.notify(
            DidChangeTextDocument::METHOD,
            json!({"textDocument": {"uri": self.uri(name), "version": version}, "contentChanges": [{"text": text}]}),
        );
    }

    fn take(&mut self, message: Message) -> Option<Response> {
        match message {
            Message::Response(r) => Some(r),
            Message::Notification(n) if n.method == PublishDiagnostics::METHOD => {
                let p: PublishDiagnosticsParams = serde_json::from_value(n.params).expect("decodes");
                self.published.entry(p.uri).or_default().push(p.diagnostics);
                None
            }
            Message::Notification(_) | Message::Request(_) => None,
        }
    }

    fn request_raw(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let req = Request { id: id.clone(), method: method.to_owned(), params };
        self.connection.sender.send(Message::Request(req)).expect("server listens");
        loop {
            let message =
                self.connection.receiver.recv_timeout(Duration::from_secs(30)).expect("the server answers");
            if let Some(r) = self.take(message) {
                assert_eq!(r.id, id);
                return match (r.result, r.error) {
                    (_, Some(e)) => Err(e.message),
                    (Some(v), None) => Ok(v),
                    (None, None) => Ok(Value::Null),
                };
            }
        }
    }

    fn request<R: lsp_types::request::Request>(&mut self, params: Value) -> Result<R::Result, String> {
        self.request_raw(R::METHOD, params).map(|v| serde_json::from_value(v).expect("decodes"))
    }

    /// Wait for the next diagnostics published for `name`.
    fn diagnostics(&mut self, name: &str) -> Vec<Diagnostic> {
        let uri = self.uri(name);
        let seen = self.published.get(&uri).map_or(0, Vec::len);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.published.get(&uri).map_or(0, Vec::len) == seen {
            let message =
                self.connection.receiver.recv_deadline(deadline).expect("diagnostics are published in time");
            assert!(self.take(message).is_none(), "no request is pending");
        }
        self.published[&uri].last().cloned().expect("one was published")
    }

    fn at(&self, name: &str, line: u32, character: u32) -> Value {
        json!({"textDocument": {"uri": self.uri(name)}, "position": {"line": line, "character": character}})
    }

    fn shutdown(mut self) {
        self.request_raw(Shutdown::METHOD, Value::Null).expect("shutdown succeeds");
        self.notify(Exit::METHOD, Value::Null);
        let server = self.server.take().expect("running");
        server.join().expect("no panic").expect("the server stops cleanly");
    }
}

fn code(d: &Diagnostic) -> &str {
    match &d.code {
        Some(NumberOrString::String(s)) => s,
        _ => "",
    }
}

fn hover_text(h: Option<Hover>) -> String {
    match h.expect("a hover").contents {
        HoverContents::Markup(m) => m.value,
        other => panic!("markdown expected, got {other:?}"),
    }
}

fn apply(text: &str, edits: &[TextEdit]) -> String {
    let index = netc::lsp::text::LineIndex::new(text);
    let mut edits: Vec<(usize, usize, &str)> = edits
        .iter()
        .map(|e| (index.offset(text, e.range.start), index.offset(text, e.range.end), e.new_text.as_str()))
        .collect();
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = text.to_owned();
    for (start, end, new) in edits {
        out.replace_range(start..end, new);
    }
    out
}

fn range(l1: u32, c1: u32, l2: u32, c2: u32) -> Range {
    Range { start: Position { line: l1, character: c1 }, end: Position { line: l2, character: c2 } }
}

const SHOP: &str = "\
namespace shop {
  ## The API.
  workload api = {app=api, tier=backend}
  frontend -> api:http
  api egress guarded
  api -> dns
  api -> db:5432
}
";

#[test]
fn initialize_advertises_every_feature_and_shutdown_stops_the_server() {
    let (server_side, client) = Connection::memory();
    let server = std::thread::spawn(move || netc::lsp::run(&server_side));
    let req =
        Request { id: 1.into(), method: Initialize::METHOD.into(), params: json!({"capabilities": {}}) };
    client.sender.send(req.into()).expect("send");
    let Ok(Message::Response(r)) = client.receiver.recv_timeout(Duration::from_secs(30)) else {
        panic!("no answer")
    };
    let caps = &r.result.expect("result")["capabilities"];
    for feature in [
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "renameProvider",
        "completionProvider",
        "documentFormattingProvider",
        "codeActionProvider",
        "documentSymbolProvider",
        "textDocumentSync",
    ] {
        assert!(!caps[feature].is_null(), "{feature} missing from {caps}");
    }
    client.sender.send(Notification::new(Initialized::METHOD.into(), json!({})).into()).expect("send");
    client
        .sender
        .send(Request { id: 2.into(), method: Shutdown::METHOD.into(), params: Value::Null }.into())
        .expect("send");
    let Ok(Message::Response(r)) = client.receiver.recv_timeout(Duration::from_secs(30)) else {
        panic!("no answer")
    };
    assert_eq!(r.id, 2.into());
    client.sender.send(Notification::new(Exit::METHOD.into(), Value::Null).into()).expect("send");
    server.join().expect("no panic").expect("clean stop");
}

#[test]
fn opening_a_file_with_an_error_publishes_it_with_code_range_and_fix() {
    let mut c = workspace(&[("bad.np", "web -> 10.0.0.1/8:443\n")], json!({}));
    c.open("bad.np");
    let diags = c.diagnostics("bad.np");
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(code(d), "E0202");
    assert_eq!(d.range, range(0, 7, 0, 17));
    assert_eq!(d.source.as_deref(), Some("netc"));
    assert!(d.message.starts_with("`10.0.0.1/8` has bits set after its prefix"), "{}", d.message);
    assert!(d.message.contains("help: did you mean `10.0.0.0/8`?"), "{}", d.message);
    c.shutdown();
}

#[test]
fn typing_a_fix_clears_the_diagnostic() {
    let mut c = workspace(&[("bad.np", "web -> 10.0.0.1/8:443\n")], json!({"debounceMs": 0}));
    c.open("bad.np");
    assert_eq!(c.diagnostics("bad.np").len(), 1);
    c.change("bad.np", 2, "web -> 10.0.0.0/8:443\n");
    // An arrow whose source's egress is open and whose target is outside: W0201 only.
    let after: Vec<String> = c.diagnostics("bad.np").iter().map(|d| code(d).to_owned()).collect();
    assert_eq!(after, ["W0201"]);
    c.change("bad.np", 3, "web egress guarded\nweb -> dns\nweb -> 10.0.0.0/8:443\n");
    assert_eq!(c.diagnostics("bad.np"), []);
    c.shutdown();
}

#[test]
fn the_files_of_a_directory_compile_together_with_related_locations_across_files() {
    let mut c = workspace(
        &[
            ("a.np", "namespace shop {\n  workload api = {app=api}\n}\n"),
            ("b.np", "namespace shop {\n  workload api = {app=api-v2}\n  web -> api:80\n}\n"),
        ],
        json!({}),
    );
    c.open("b.np");
    let b = c.diagnostics("b.np");
    assert_eq!(b.iter().map(code).collect::<Vec<_>>(), ["E0109"], "{b:#?}");
    let related = b[0].related_information.as_ref().expect("points at the first declaration");
    assert_eq!(related[0].location.uri, c.uri("a.np"));
    assert_eq!(related[0].location.range, range(1, 11, 1, 14));
    assert_eq!(related[0].message, "first declared here");
    // a.np is published too (clean), since it compiled with b.np.
    assert_eq!(c.published[&c.uri("a.np")], [vec![]]);
    c.shutdown();
}

#[test]
fn an_edit_in_one_file_changes_the_diagnostics_of_another_without_saving() {
    let mut c = workspace(
        &[
            ("a.np", "namespace shop {\n  workload api = {app=api}\n}\n"),
            ("b.np", "namespace shop {\n  web -> api:80\n}\n"),
        ],
        json!({"debounceMs": 0}),
    );
    c.open("a.np");
    c.open("b.np");
    assert_eq!(c.diagnostics("b.np"), []);
    // The declaration moves below its use, in the unsaved buffer of a.np: b.np now uses `api`
    // before it is declared? No: a.np comes first. Declare it twice instead.
    c.change("b.np", 2, "namespace shop {\n  web -> api:80\n  workload api = {app=x}\n}\n");
    let b = c.diagnostics("b.np");
    assert!(b.iter().any(|d| code(d) == "E0109"), "{b:#?}");
    c.shutdown();
}

#[test]
fn keystrokes_in_a_burst_are_compiled_once_after_the_pause() {
    let mut c = workspace(&[("a.np", "web -> api:80\n")], json!({"debounceMs": 300}));
    c.open("a.np");
    // The open and these changes all fall within one pause: one publication, of the last text.
    for (v, port) in [(2, "7"), (3, "70"), (4, "700"), (5, "7000"), (6, "70000")] {
        c.change("a.np", v, &format!("web -> api:{port}\n"));
    }
    let diags = c.diagnostics("a.np");
    assert_eq!(
        diags.iter().map(code).collect::<Vec<_>>(),
        ["E0102"],
        "the last text (port 70000): {diags:#?}"
    );
    // Nothing more arrives: the earlier texts were never compiled.
    std::thread::sleep(Duration::from_millis(600));
    while let Ok(m) = c.connection.receiver.try_recv() {
        assert!(c.take(m).is_none());
    }
    assert_eq!(c.published[&c.uri("a.np")].len(), 1, "{:#?}", c.published);
    c.shutdown();
}

#[test]
fn hover_on_a_name_shows_selector_declaration_doors_policies_and_rule_ids() {
    let mut c = workspace(&[("shop.np", SHOP)], json!({}));
    c.open("shop.np");
    // `api` in `frontend -> api:http`.
    let text = hover_text(c.request::<HoverRequest>(c.at("shop.np", 3, 15)).expect("hover"));
    assert!(text.contains("**workload `api`** in namespace `shop`"), "{text}");
    assert!(text.contains("pods `{app=api, tier=backend}`"), "{text}");
    assert!(text.contains("declared at"), "{text}");
    assert!(text.contains("shop.np:3"), "{text}");
    assert!(text.contains("> The API."), "{text}");
    assert!(text.contains("- ingress: **guarded** (1 rules)"), "{text}");
    assert!(text.contains("- egress: **guarded** (2 rules)"), "{text}");
    assert!(text.contains("`shop/api` (for `api`)"), "{text}");
    let ir = netc::compile(&[netc::SourceFile::new("shop.np", SHOP)]).ir.expect("compiles");
    let api = ir.policies.iter().find(|p| p.workload == "api").expect("api's policy");
    for rule in api.ingress.rules.iter().chain(&api.egress.rules) {
        assert!(text.contains(&format!("`{}`", rule.id)), "rule {} missing from {text}", rule.id);
    }
    // `frontend`: never declared, its egress open and no policy.
    let text = hover_text(c.request::<HoverRequest>(c.at("shop.np", 3, 4)).expect("hover"));
    assert!(text.contains("not declared: means the label `app=frontend`"), "{text}");
    assert!(text.contains("- ingress: **open**") && text.contains("- egress: **open**"), "{text}");
    assert!(text.contains("no NetworkPolicy selects these pods"), "{text}");
    c.shutdown();
}

#[test]
fn hover_on_ports_tells_protocol_and_range() {
    let mut c = workspace(&[("p.np", "web -> api:[8080, 9000-9100/udp, http, */sctp]\n")], json!({}));
    c.open("p.np");
    let at =
        |c: &mut Client, col| hover_text(c.request::<HoverRequest>(c.at("p.np", 0, col)).expect("hover"));
    assert!(at(&mut c, 13).starts_with("**TCP port 8080** (no protocol written: TCP)"));
    assert!(at(&mut c, 20).starts_with("**UDP ports 9000 to 9100**"));
    assert!(at(&mut c, 35).starts_with("**named port `http`, TCP**"));
    assert!(at(&mut c, 41).starts_with("**every SCTP port**"));
    c.shutdown();
}

#[test]
fn hover_on_a_diagnostic_code_shows_the_explain_text() {
    let mut c = workspace(&[("c.np", "# W0203 is why web resolves names\nweb -> api:80\n")], json!({}));
    c.open("c.np");
    let text = hover_text(c.request::<HoverRequest>(c.at("c.np", 0, 4)).expect("hover"));
    assert_eq!(text, netc::diagnostics::explain("W0203").expect("documented"));
    c.shutdown();
}

#[test]
fn definition_jumps_to_the_declaration_in_another_file() {
    let mut c = workspace(
        &[
            ("a.np", "namespace shop {\n  workload api = {app=api}\n}\n"),
            ("b.np", "namespace web {\n  storefront -> shop/api:80\n}\n"),
        ],
        json!({}),
    );
    c.open("b.np");
    let Some(GotoDefinitionResponse::Scalar(loc)) =
        c.request::<GotoDefinition>(c.at("b.np", 1, 22)).expect("definition")
    else {
        panic!("one location")
    };
    assert_eq!(loc, Location { uri: c.uri("a.np"), range: range(1, 11, 1, 14) });
    // A namespace reference goes to the namespace block.
    let Some(GotoDefinitionResponse::Scalar(loc)) =
        c.request::<GotoDefinition>(c.at("b.np", 1, 17)).expect("definition")
    else {
        panic!("one location")
    };
    assert_eq!(loc, Location { uri: c.uri("a.np"), range: range(0, 10, 0, 14) });
    // An undeclared name goes to its first use.
    let Some(GotoDefinitionResponse::Scalar(loc)) =
        c.request::<GotoDefinition>(c.at("b.np", 1, 4)).expect("definition")
    else {
        panic!("one location")
    };
    assert_eq!(loc.range, range(1, 2, 1, 12));
    c.shutdown();
}

#[test]
fn references_find_every_use_across_files() {
    let mut c = workspace(
        &[
            ("a.np", "namespace shop {\n  workload api = {app=api}\n  web -> api:80\n}\n"),
            (
                "b.np",
                "namespace shop {\n  api egress guarded\n}\nnamespace data {\n  shop/api -> db:5432\n  api -> db:1\n}\n",
            ),
        ],
        json!({}),
    );
    c.open("a.np");
    let refs = c.request::<References>(json!({
        "textDocument": {"uri": c.uri("a.np")}, "position": {"line": 1, "character": 12},
        "context": {"includeDeclaration": true}
    }));
    let mut refs: Vec<(String, Range)> = refs
        .expect("references")
        .expect("some")
        .into_iter()
        .map(|l| (l.uri.path().rsplit('/').next().unwrap_or("").to_owned(), l.range))
        .collect();
    refs.sort_by_key(|(f, r)| (f.clone(), r.start.line));
    // `api` in namespace data (line 6 of b.np) is another workload.
    assert_eq!(
        refs,
        [
            ("a.np".to_owned(), range(1, 11, 1, 14)),
            ("a.np".to_owned(), range(2, 9, 2, 12)),
            ("b.np".to_owned(), range(1, 2, 1, 5)),
            ("b.np".to_owned(), range(4, 7, 4, 10)),
        ]
    );
    c.shutdown();
}

#[test]
fn rename_changes_every_use_and_keeps_the_meaning() {
    let a = "namespace shop {\n  workload api = {app=api}\n  web -> api:80\n}\n";
    let b = "namespace data {\n  shop/api -> db:5432\n}\n";
    let mut c = workspace(&[("a.np", a), ("b.np", b)], json!({}));
    c.open("a.np");
    let prepared = c.request::<PrepareRenameRequest>(c.at("a.np", 2, 10)).expect("renamable");
    assert_eq!(prepared, Some(lsp_types::PrepareRenameResponse::Range(range(2, 9, 2, 12))));
    let mut params = c.at("a.np", 2, 10);
    params["newName"] = json!("orders-api");
    let edit: WorkspaceEdit = c.request::<Rename>(params).expect("renamed").expect("edits");
    let changes = edit.changes.expect("changes");
    let new_a = apply(a, &changes[&c.uri("a.np")]);
    let new_b = apply(b, &changes[&c.uri("b.np")]);
    assert_eq!(new_a, "namespace shop {\n  workload orders-api = {app=api}\n  web -> orders-api:80\n}\n");
    assert_eq!(new_b, "namespace data {\n  shop/orders-api -> db:5432\n}\n");
    // Same policies, same rules: only names changed.
    let before = netc::compile(&[netc::SourceFile::new("a.np", a), netc::SourceFile::new("b.np", b)]);
    let after =
        netc::compile(&[netc::SourceFile::new("a.np", &new_a), netc::SourceFile::new("b.np", &new_b)]);
    // Same pods, same peers, same ports: only names changed.
    type Meaning = Vec<(String, netc_ir::LabelSelector, Vec<(Vec<netc_ir::Peer>, Vec<netc_ir::Port>)>)>;
    let rules = |c: &netc::Compilation| -> Meaning {
        let ir = c.ir.as_ref().expect("compiles");
        ir.policies
            .iter()
            .map(|p| {
                let rules =
                    p.ingress.rules.iter().chain(&p.egress.rules).map(|r| (r.peers.clone(), r.ports.clone()));
                (p.namespace.clone(), p.selector.clone(), rules.collect())
            })
            .collect()
    };
    assert_eq!(rules(&before), rules(&after));
    c.shutdown();
}

#[test]
fn rename_refuses_undeclared_names_invalid_names_and_names_taken() {
    let a = "namespace shop {\n  workload api = {app=api}\n  web -> api:80\n  web -> cart:80\n}\n";
    let mut c = workspace(&[("a.np", a)], json!({}));
    c.open("a.np");
    let err = c.request::<PrepareRenameRequest>(c.at("a.np", 2, 3)).expect_err("web is not declared");
    assert!(err.contains("`web` is not declared: it means the pods labelled `app=web`"), "{err}");
    let mut params = c.at("a.np", 2, 10);
    params["newName"] = json!("isolated");
    let err = c.request::<Rename>(params.clone()).expect_err("a keyword");
    assert!(err.contains("cannot be a name"), "{err}");
    params["newName"] = json!("cart");
    let err = c.request::<Rename>(params).expect_err("taken");
    assert!(err.contains("`cart` already names something here"), "{err}");
    c.shutdown();
}

#[test]
fn rename_of_a_namespace_renames_blocks_and_qualified_references() {
    let a = "namespace shop {\n  api -> db:80\n}\nnamespace web {\n  x -> shop/api:80\n}\n";
    let mut c = workspace(&[("a.np", a)], json!({}));
    c.open("a.np");
    let mut params = c.at("a.np", 0, 11);
    params["newName"] = json!("store");
    let edit = c.request::<Rename>(params).expect("renamed").expect("edits");
    let new = apply(a, &edit.changes.expect("changes")[&c.uri("a.np")]);
    assert_eq!(new, "namespace store {\n  api -> db:80\n}\nnamespace web {\n  x -> store/api:80\n}\n");
    c.shutdown();
}

fn labels(r: Option<CompletionResponse>) -> Vec<String> {
    match r.expect("completions") {
        CompletionResponse::Array(items) => items.into_iter().map(|i| i.label).collect(),
        CompletionResponse::List(l) => l.items.into_iter().map(|i| i.label).collect(),
    }
}

#[test]
fn completion_offers_what_fits_where_the_cursor_is() {
    let text = "external payments = 203.0.113.0/24\nnamespace shop {\n  workload api = {app=api}\n  web -> api:http, cart:metrics\n  web -> \n}\nnamespace data {\n  x -> shop/\n  x -> db:\n  x -> db:80/\n}\n";
    let mut c = workspace(&[("a.np", text)], json!({}));
    c.open("a.np");
    // Line 4 `  web -> `: names of shop, externals, namespaces, keywords.
    let l = labels(c.request::<Completion>(c.at("a.np", 4, 9)).expect("completion"));
    for want in ["api", "cart", "web", "payments", "data", "shop", "dns", "anywhere"] {
        assert!(l.contains(&want.to_owned()), "{want} missing from {l:?}");
    }
    assert!(!l.contains(&"x".to_owned()), "x is a workload of data, not shop: {l:?}");
    // `shop/`: the workloads of shop only.
    let l = labels(c.request::<Completion>(c.at("a.np", 7, 12)).expect("completion"));
    assert_eq!(l, ["api", "cart", "web"]);
    // After `:`: named ports.
    let l = labels(c.request::<Completion>(c.at("a.np", 8, 10)).expect("completion"));
    assert_eq!(l, ["http", "metrics"]);
    // After a port's `/`: protocols.
    let l = labels(c.request::<Completion>(c.at("a.np", 9, 13)).expect("completion"));
    assert_eq!(l, ["tcp", "udp", "sctp"]);
    c.shutdown();
}

#[test]
fn completion_still_knows_the_names_while_the_line_does_not_parse() {
    let text = "namespace shop {\n  workload api = {app=api}\n  web -> api:80\n}\n";
    let mut c = workspace(&[("a.np", text)], json!({"debounceMs": 0}));
    c.open("a.np");
    assert_eq!(c.diagnostics("a.np"), []);
    let typing = "namespace shop {\n  workload api = {app=api}\n  web -> api:80\n  web -> \n}\n";
    c.change("a.np", 2, typing);
    let l = labels(c.request::<Completion>(c.at("a.np", 3, 9)).expect("completion"));
    assert!(l.contains(&"api".to_owned()) && l.contains(&"web".to_owned()), "{l:?}");
    c.shutdown();
}

#[test]
fn formatting_returns_what_netc_fmt_writes() {
    let messy = "namespace   shop{\nweb->api:[80,443/UDP]\n     api  isolated # alone\n}\n";
    let mut c = workspace(&[("m.np", messy)], json!({}));
    c.open("m.np");
    let edits = c
        .request::<Formatting>(
            json!({"textDocument": {"uri": c.uri("m.np")}, "options": {"tabSize": 2, "insertSpaces": true}}),
        )
        .expect("formatting")
        .expect("edits");
    let formatted = netc::fmt::format(messy).expect("parses");
    assert_ne!(formatted, messy);
    assert_eq!(apply(messy, &edits), formatted);
    c.shutdown();
}

fn actions(c: &mut Client, name: &str, r: Range) -> Vec<lsp_types::CodeAction> {
    let params = json!({"textDocument": {"uri": c.uri(name)}, "range": r, "context": {"diagnostics": []}});
    c.request::<CodeActionRequest>(params)
        .expect("code actions")
        .unwrap_or_default()
        .into_iter()
        .map(|a| match a {
            CodeActionOrCommand::CodeAction(a) => a,
            CodeActionOrCommand::Command(c) => panic!("a command: {c:?}"),
        })
        .collect()
}

#[test]
fn code_actions_apply_the_fixes_the_diagnostics_suggest() {
    let text = "namespace shop {\n  api egress guarded\n  api -> 10.0.0.1/8:443\n  catalog -> api:80/upd\n  checkout -> api:9000-8000\n  cart -> api:80\n  cart -> api:81\n  crat -> api:82\n}\n";
    let mut c = workspace(&[("f.np", text)], json!({}));
    c.open("f.np");
    let fix = |c: &mut Client, line: u32| -> (String, String) {
        let found = actions(c, "f.np", range(line, 0, line, 40));
        assert_eq!(found.len(), 1, "line {line}: {found:#?}");
        let a = &found[0];
        let edits = &a.edit.as_ref().expect("an edit").changes.as_ref().expect("changes")[&c.uri("f.np")];
        (a.title.clone(), apply(text, edits))
    };
    let (title, fixed) = fix(&mut c, 2);
    assert_eq!(title, "Replace with `10.0.0.0/8`");
    assert!(fixed.contains("  api -> 10.0.0.0/8:443\n"), "{fixed}");
    let (title, fixed) = fix(&mut c, 3);
    assert_eq!(title, "Replace with `udp`");
    assert!(fixed.contains("catalog -> api:80/udp\n"), "{fixed}");
    let (_, fixed) = fix(&mut c, 4);
    assert!(fixed.contains("checkout -> api:8000-9000\n"), "{fixed}");
    let (title, fixed) = fix(&mut c, 7);
    assert_eq!(title, "Replace `crat` with `cart`");
    assert!(fixed.contains("  cart -> api:82\n"), "{fixed}");
    // The fixed file has one diagnostic fewer; the E0202 fix makes it compile.
    assert!(netc::compile(&[netc::SourceFile::new("f.np", &fixed)]).diagnostics.len() < 5);
    c.shutdown();
}

#[test]
fn code_action_adds_the_dns_line_a_guarded_egress_needs_indented_like_its_statement() {
    let text = "namespace shop {\n  api egress guarded\n  egress api -> db:5432\n}\n";
    let mut c = workspace(&[("d.np", text)], json!({}));
    c.open("d.np");
    let found = actions(&mut c, "d.np", range(1, 3, 1, 3));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].title, "Add `api -> dns`");
    let diag = &found[0].diagnostics.as_ref().expect("the diagnostic it fixes")[0];
    assert_eq!(code(diag), "W0203");
    let fixed = apply(
        text,
        &found[0].edit.as_ref().expect("edit").changes.as_ref().expect("changes")[&c.uri("d.np")],
    );
    assert_eq!(fixed, "namespace shop {\n  api egress guarded\n  api -> dns\n  egress api -> db:5432\n}\n");
    assert!(netc::compile(&[netc::SourceFile::new("d.np", &fixed)]).diagnostics.is_empty());
    c.shutdown();
}

#[test]
fn document_symbols_outline_namespaces_and_their_workloads() {
    let text = "external pay = 203.0.113.0/24\nnamespace shop {\n  workload api = {app=api}\n  web -> api:80\n  web -> pay:443\n}\nnamespace data\ndb isolated\n";
    let mut c = workspace(&[("s.np", text)], json!({}));
    c.open("s.np");
    let Some(DocumentSymbolResponse::Nested(symbols)) =
        c.request::<DocumentSymbolRequest>(json!({"textDocument": {"uri": c.uri("s.np")}})).expect("symbols")
    else {
        panic!("a nested outline")
    };
    let outline: Vec<(String, Vec<String>)> = symbols
        .iter()
        .map(|s| (s.name.clone(), s.children.iter().flatten().map(|c| c.name.clone()).collect()))
        .collect();
    assert_eq!(
        outline,
        [
            ("pay".to_owned(), vec![]),
            ("shop".to_owned(), vec!["api".to_owned(), "web".to_owned()]),
            ("data".to_owned(), vec!["db".to_owned()]),
        ]
    );
    assert_eq!(symbols[1].kind, lsp_types::SymbolKind::NAMESPACE);
    c.shutdown();
}

#[test]
fn a_document_outside_any_directory_scope_compiles_alone() {
    let mut c = workspace(
        &[("a.np", "workload api = {app=api}\n"), ("b.np", "workload api = {app=x}\n")],
        json!({"scope": "file"}),
    );
    c.open("b.np");
    // Compiled together these would be E0109; alone, b.np is clean.
    assert_eq!(c.diagnostics("b.np"), []);
    c.shutdown();
}
