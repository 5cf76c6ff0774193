//! The protocol loop: one thread, one message at a time (rust-analyzer's `lsp-server` style),
//! the open documents, which files compile together, and debounced diagnostics.
//!
//! The only part of the language server that reads files: the other `.np` files of a document's
//! directory, which compile with it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidChangeWatchedFiles, DidCloseTextDocument, DidOpenTextDocument,
    DidSaveTextDocument, Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    CodeActionRequest, Completion, DocumentSymbolRequest, Formatting, GotoDefinition, HoverRequest,
    PrepareRenameRequest, References, Rename, Request as _,
};
use lsp_types::{
    CodeActionProviderCapability, CompletionOptions, InitializeParams, OneOf, PrepareRenameResponse,
    PublishDiagnosticsParams, RenameOptions, ServerCapabilities, ServerInfo, TextDocumentSyncCapability,
    TextDocumentSyncKind, Url,
};
use serde_json::Value;

use super::analysis::{Analysis, Names};
use crate::SourceFile;

/// Which files compile together with an open document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every `.np` file of the document's directory, in name order (`netc build dir/*.np`).
    Directory,
    /// The document alone.
    File,
}

/// Settings from the client's `initializationOptions`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which files compile together.
    pub scope: Scope,
    /// How long typing must pause before diagnostics are computed and published.
    pub debounce: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { scope: Scope::Directory, debounce: Duration::from_millis(DEFAULT_DEBOUNCE_MS) }
    }
}

/// The default pause before diagnostics: long enough to fold a burst of keystrokes (a paste, a
/// macro, auto-repeat) into one compilation, short enough not to be seen.
pub const DEFAULT_DEBOUNCE_MS: u64 = 25;

impl Settings {
    fn from_options(options: Option<&Value>) -> Settings {
        let mut s = Settings::default();
        if let Some(o) = options {
            if o.get("scope").and_then(Value::as_str) == Some("file") {
                s.scope = Scope::File;
            }
            if let Some(ms) = o.get("debounceMs").and_then(Value::as_u64) {
                s.debounce = Duration::from_millis(ms);
            }
        }
        s
    }
}

/// A failure of the connection itself (not of a request).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The client broke the protocol, or went away during initialisation.
    #[error("language server protocol: {0}")]
    Protocol(#[from] lsp_server::ProtocolError),
    /// The client's initialize parameters did not decode.
    #[error("bad initialize parameters: {0}")]
    Initialize(#[from] serde_json::Error),
    /// The channel to the client closed.
    #[error("the connection to the editor closed")]
    Closed,
}

/// Serve one client on `connection` until it asks to shut down (or goes away).
///
/// # Errors
/// A broken connection.
pub fn run(connection: &Connection) -> Result<(), ServerError> {
    let (id, params) = connection.initialize_start()?;
    let init: InitializeParams = serde_json::from_value(params)?;
    let settings = Settings::from_options(init.initialization_options.as_ref());
    let capabilities = ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(lsp_types::HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        rename_provider: Some(OneOf::Right(RenameOptions {
            prepare_provider: Some(true),
            work_done_progress_options: lsp_types::WorkDoneProgressOptions::default(),
        })),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![":".into(), "/".into(), "[".into()]),
            ..CompletionOptions::default()
        }),
        document_formatting_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    };
    let result = serde_json::json!({
        "capabilities": capabilities,
        "serverInfo": ServerInfo { name: "netc".into(), version: Some(env!("CARGO_PKG_VERSION").into()) },
    });
    connection.initialize_finish(id, result)?;
    let mut server = Server::new(settings);
    loop {
        let message = match server.deadline {
            Some(deadline) => match connection.receiver.recv_deadline(deadline) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    server.publish_dirty(connection)?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            },
            None => match connection.receiver.recv() {
                Ok(m) => m,
                Err(_) => return Ok(()),
            },
        };
        match message {
            Message::Request(req) => {
                if connection.handle_shutdown(&req)? {
                    return Ok(());
                }
                let response = server.request(connection, req)?;
                connection.sender.send(Message::Response(response)).map_err(|_| ServerError::Closed)?;
            }
            Message::Notification(n) => server.notification(n),
            Message::Response(_) => {}
        }
    }
}

/// A set of files compiled together, by name: a directory, or one document's URI.
type UnitKey = String;

struct Server {
    settings: Settings,
    /// Open documents and their text.
    documents: HashMap<Url, String>,
    /// The latest analysis of each unit.
    units: HashMap<UnitKey, Analysis>,
    /// The names of each unit at its last complete parse.
    names: HashMap<UnitKey, Names>,
    /// Units whose text changed since their analysis.
    dirty: BTreeSet<UnitKey>,
    /// When to compile the dirty units and publish (debounce).
    deadline: Option<Instant>,
}

impl Server {
    fn new(settings: Settings) -> Server {
        Server {
            settings,
            documents: HashMap::new(),
            units: HashMap::new(),
            names: HashMap::new(),
            dirty: BTreeSet::new(),
            deadline: None,
        }
    }

    fn unit_key(&self, uri: &Url) -> UnitKey {
        match (self.settings.scope, directory_of(uri)) {
            (Scope::Directory, Some(dir)) => format!("dir:{}", dir.display()),
            _ => format!("uri:{uri}"),
        }
    }

    fn touch(&mut self, uri: &Url) {
        let key = self.unit_key(uri);
        self.dirty.insert(key);
        self.deadline = Some(Instant::now() + self.settings.debounce);
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidOpenTextDocumentParams>(n.params) {
                    self.documents.insert(p.text_document.uri.clone(), p.text_document.text);
                    self.touch(&p.text_document.uri);
                }
            }
            DidChangeTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidChangeTextDocumentParams>(n.params) {
                    // Full synchronisation: the last change holds the whole text.
                    if let Some(change) = p.content_changes.into_iter().last() {
                        self.documents.insert(p.text_document.uri.clone(), change.text);
                        self.touch(&p.text_document.uri);
                    }
                }
            }
            DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidCloseTextDocumentParams>(n.params) {
                    self.documents.remove(&p.text_document.uri);
                    self.touch(&p.text_document.uri);
                }
            }
            DidSaveTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidSaveTextDocumentParams>(n.params) {
                    self.touch(&p.text_document.uri);
                }
            }
            DidChangeWatchedFiles::METHOD => {
                if let Ok(p) = serde_json::from_value::<lsp_types::DidChangeWatchedFilesParams>(n.params) {
                    for change in p.changes {
                        self.touch(&change.uri);
                    }
                }
            }
            _ => {}
        }
    }

    /// The sources of the unit of `uri`: open documents as typed, other files as on disk.
    fn sources(&self, uri: &Url) -> (Vec<SourceFile>, Vec<Url>) {
        let mut members: Vec<(Url, String)> = Vec::new();
        if let (Scope::Directory, Some(dir)) = (self.settings.scope, directory_of(uri)) {
            let mut on_disk: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "np") && p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            for open in self.documents.keys() {
                if let Ok(path) = open.to_file_path()
                    && path.parent() == Some(dir.as_path())
                    && !on_disk.contains(&path)
                {
                    on_disk.push(path);
                }
            }
            on_disk.sort();
            for path in on_disk {
                let Ok(member) = Url::from_file_path(&path) else { continue };
                let text = match self.documents.get(&member) {
                    Some(t) => t.clone(),
                    None => match std::fs::read_to_string(&path) {
                        Ok(t) => t,
                        Err(_) => continue,
                    },
                };
                members.push((member, text));
            }
        }
        if !members.iter().any(|(u, _)| u == uri) {
            let text = self
                .documents
                .get(uri)
                .cloned()
                .or_else(|| uri.to_file_path().ok().and_then(|p| std::fs::read_to_string(p).ok()))
                .unwrap_or_default();
            members.push((uri.clone(), text));
        }
        let names = members.iter().map(|(u, _)| display_name(u)).collect::<Vec<_>>();
        let (uris, texts): (Vec<Url>, Vec<String>) = members.into_iter().unzip();
        let sources = names.into_iter().zip(texts).map(|(n, t)| SourceFile::new(n, t)).collect();
        (sources, uris)
    }

    /// The analysis of the unit of `uri`, compiled now if its text changed; `publish` tells the
    /// caller whether it was (and so whether diagnostics are due).
    fn analysis(&mut self, uri: &Url) -> (&Analysis, bool) {
        let key = self.unit_key(uri);
        let stale =
            self.dirty.contains(&key) || self.units.get(&key).is_none_or(|a| a.file_of(uri).is_none());
        if stale {
            let (sources, uris) = self.sources(uri);
            let analysis = Analysis::new(sources, uris);
            let parsed = analysis.parsed();
            // Freeing a large program's trees takes a while: not on the editor's time.
            if let Some(previous) = self.units.insert(key.clone(), analysis) {
                // The text stops parsing (a line half typed): keep the names it had, for
                // completion. Only then, so that a keystroke that parses pays nothing for it.
                if !parsed && previous.parsed() {
                    self.names.insert(key.clone(), previous.names().clone());
                }
                crate::drop_later(previous);
            }
            self.dirty.remove(&key);
        }
        (&self.units[&key], stale)
    }

    /// Compile every dirty unit and publish its diagnostics.
    fn publish_dirty(&mut self, connection: &Connection) -> Result<(), ServerError> {
        self.deadline = None;
        let dirty = std::mem::take(&mut self.dirty);
        for key in dirty {
            // A unit is named after a member: an open document of it, or its directory's files.
            let Some(uri) = self.documents.keys().find(|u| self.unit_key(u) == key).cloned() else {
                // No open document left in it: clear what was published for it.
                if let Some(old) = self.units.remove(&key) {
                    for uri in &old.uris {
                        publish(connection, uri.clone(), Vec::new())?;
                    }
                }
                continue;
            };
            self.dirty.insert(key);
            let (analysis, _) = self.analysis(&uri);
            for (uri, diagnostics) in analysis.diagnostics() {
                publish(connection, uri, diagnostics)?;
            }
        }
        Ok(())
    }

    fn request(&mut self, connection: &Connection, req: Request) -> Result<Response, ServerError> {
        let id = req.id.clone();
        let Some(uri) =
            req.params.pointer("/textDocument/uri").and_then(Value::as_str).and_then(|u| Url::parse(u).ok())
        else {
            return Ok(error(id, ErrorCode::MethodNotFound, format!("no handler for {}", req.method)));
        };
        let key = self.unit_key(&uri);
        let (_, compiled) = self.analysis(&uri);
        if compiled {
            // Answering from newer text than was published: publish it too, so that what the
            // editor shows and what it is told agree.
            for (u, d) in self.units[&key].diagnostics() {
                publish(connection, u, d)?;
            }
        }
        let analysis = &self.units[&key];
        let names = || {
            let mut names = analysis.names().clone();
            if !analysis.parsed()
                && let Some(last) = self.names.get(&key)
            {
                names.merge(last);
            }
            names
        };
        let file = analysis.file_of(&uri).expect("the unit of a document holds it");
        let params = req.params;
        let position = |p: &Value| -> Option<lsp_types::Position> {
            serde_json::from_value(p.pointer("/position")?.clone()).ok()
        };
        let reply = |value: Result<Value, serde_json::Error>| match value {
            Ok(v) => Response { id: id.clone(), result: Some(v), error: None },
            Err(e) => error(id.clone(), ErrorCode::InternalError, e.to_string()),
        };
        let pos = position(&params).unwrap_or_default();
        Ok(match req.method.as_str() {
            HoverRequest::METHOD => reply(serde_json::to_value(analysis.hover(file, pos))),
            GotoDefinition::METHOD => reply(serde_json::to_value(analysis.definition(file, pos))),
            References::METHOD => {
                let include =
                    params.pointer("/context/includeDeclaration").and_then(Value::as_bool).unwrap_or(true);
                reply(serde_json::to_value(analysis.references(file, pos, include)))
            }
            PrepareRenameRequest::METHOD => match analysis.prepare_rename(file, pos) {
                Ok(range) => reply(serde_json::to_value(range.map(PrepareRenameResponse::Range))),
                Err(message) => error(id, ErrorCode::RequestFailed, message),
            },
            Rename::METHOD => {
                let new_name = params.pointer("/newName").and_then(Value::as_str).unwrap_or_default();
                match analysis.rename(file, pos, new_name) {
                    Ok(edit) => reply(serde_json::to_value(edit)),
                    Err(message) => error(id, ErrorCode::RequestFailed, message),
                }
            }
            Completion::METHOD => reply(serde_json::to_value(analysis.completion(file, pos, &names()))),
            Formatting::METHOD => reply(serde_json::to_value(analysis.format(file))),
            CodeActionRequest::METHOD => {
                let range = params
                    .pointer("/range")
                    .and_then(|r| serde_json::from_value(r.clone()).ok())
                    .unwrap_or_default();
                reply(serde_json::to_value(analysis.code_actions(file, range)))
            }
            DocumentSymbolRequest::METHOD => reply(serde_json::to_value(analysis.document_symbols(file))),
            _ => error(id, ErrorCode::MethodNotFound, format!("no handler for {}", req.method)),
        })
    }
}

fn error(id: RequestId, code: ErrorCode, message: String) -> Response {
    Response::new_err(id, code as i32, message)
}

fn publish(
    connection: &Connection,
    uri: Url,
    diagnostics: Vec<lsp_types::Diagnostic>,
) -> Result<(), ServerError> {
    let params = PublishDiagnosticsParams { uri, diagnostics, version: None };
    let n = Notification::new(PublishDiagnostics::METHOD.to_owned(), params);
    connection.sender.send(Message::Notification(n)).map_err(|_| ServerError::Closed)
}

fn directory_of(uri: &Url) -> Option<PathBuf> {
    uri.to_file_path().ok().and_then(|p| p.parent().map(Path::to_path_buf))
}

/// The name a document goes by in messages and `netc.dev/source`: its path, or the URI.
fn display_name(uri: &Url) -> String {
    match uri.to_file_path() {
        Ok(path) => {
            let relative = std::env::current_dir()
                .ok()
                .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf));
            relative.unwrap_or(path).display().to_string()
        }
        Err(()) => uri.to_string(),
    }
}
