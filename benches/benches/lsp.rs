//! `netc lsp`: what a keystroke costs, from the editor's `didChange` to the diagnostics it gets
//! back, on examples/shop.np and on a 10,000-arrow file; beside it, the baseline measured in the
//! same run: `netc check` of the same text in-process (`netc::compile`, no process start, no file
//! IO), the least any server that recompiles on each change can cost. Also a hover, a completion
//! and a definition request on the large file.
//!
//! The server runs in a thread on an in-memory connection (the same messages as over stdio) with
//! `debounceMs: 0`, so the figures are the work itself; an editor adds the debounce pause
//! (25 ms by default) before it.
//!
//! Run: `cargo bench -p netc-benches --bench lsp`

use std::time::{Duration, Instant};

use lsp_server::{Connection, Message, Notification, Request, RequestId};
use netc::SourceFile;
use netc_benches::program;
use serde_json::{Value, json};

struct Client {
    connection: Connection,
    server: Option<std::thread::JoinHandle<()>>,
    next_id: i32,
    uri: String,
}

impl Client {
    fn start(dir: &std::path::Path, file: &str, text: &str) -> Client {
        std::fs::write(dir.join(file), text).expect("write");
        let (server_side, connection) = Connection::memory();
        let server = std::thread::spawn(move || netc::lsp::run(&server_side).expect("the server runs"));
        let uri = format!("file://{}", dir.join(file).display());
        let mut c = Client { connection, server: Some(server), next_id: 0, uri };
        c.request("initialize", json!({"capabilities": {}, "initializationOptions": {"debounceMs": 0}}));
        c.notify("initialized", json!({}));
        c.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": c.uri, "languageId": "netc", "version": 1, "text": text}}),
        );
        c.wait_diagnostics();
        c
    }

    fn notify(&self, method: &str, params: Value) {
        let n = Notification { method: method.to_owned(), params };
        self.connection.sender.send(Message::Notification(n)).expect("server listens");
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let req = Request { id: id.clone(), method: method.to_owned(), params };
        self.connection.sender.send(Message::Request(req)).expect("server listens");
        loop {
            match self.connection.receiver.recv_timeout(Duration::from_secs(60)).expect("an answer") {
                Message::Response(r) if r.id == id => return r.result.unwrap_or(Value::Null),
                _ => {}
            }
        }
    }

    /// Wait for the diagnostics of the document; how many there are.
    fn wait_diagnostics(&self) -> usize {
        loop {
            match self.connection.receiver.recv_timeout(Duration::from_secs(60)).expect("diagnostics") {
                Message::Notification(n)
                    if n.method == "textDocument/publishDiagnostics" && n.params["uri"] == self.uri =>
                {
                    return n.params["diagnostics"].as_array().map_or(0, Vec::len);
                }
                _ => {}
            }
        }
    }

    /// One keystroke: the whole new text (full synchronisation), then its diagnostics.
    fn keystroke(&self, version: i32, text: &str) -> Duration {
        let start = Instant::now();
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": self.uri, "version": version}, "contentChanges": [{"text": text}]}),
        );
        self.wait_diagnostics();
        start.elapsed()
    }

    fn stop(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        if let Some(s) = self.server.take() {
            s.join().expect("the server stops");
        }
    }
}

/// Milliseconds, with two decimals below 10 ms.
fn ms(d: Duration) -> String {
    let m = d.as_secs_f64() * 1e3;
    if m < 10.0 { format!("{m:.2} ms") } else { format!("{m:.1} ms") }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p95(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    println!(
        "netc lsp: didChange -> publishDiagnostics (debounce 0), beside netc check of the same text in-process"
    );
    println!(
        "{:>22} {:>7} {:>10} {:>10} {:>12} {:>8}",
        "file", "lines", "keystroke", "p95", "netc check", "ratio"
    );
    let dir = std::env::temp_dir().join(format!("netc-lsp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let shop = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shop.np"))
        .expect("shop.np");
    let big = program(10_000, 1_000, 10);
    for (name, text, rounds) in
        [("examples/shop.np", shop.as_str(), 200), ("10,000 arrows", big.as_str(), 20)]
    {
        let sub = dir.join(name.replace(['/', ' ', ','], "_"));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let mut client = Client::start(&sub, "bench.np", text);
        // Alternate two texts (a comment typed and removed), as keystrokes do.
        let typed = format!("{text}# k\n");
        let keystrokes: Vec<Duration> =
            (0..rounds).map(|i| client.keystroke(i + 2, if i % 2 == 0 { &typed } else { text })).collect();
        let checks: Vec<Duration> = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                let out = netc::compile(&[SourceFile::new("bench.np", text)]);
                assert!(!out.has_errors(), "the benchmark's text compiles");
                start.elapsed()
            })
            .collect();
        let (k, c) = (median(keystrokes.clone()), median(checks));
        println!(
            "{name:>22} {:>7} {:>10} {:>10} {:>12} {:>7.2}x",
            text.lines().count(),
            ms(k),
            ms(p95(keystrokes)),
            ms(c),
            k.as_secs_f64() / c.as_secs_f64()
        );
        if name == "10,000 arrows" {
            // Requests on the large file: the first name of its last arrow (the line before `}`).
            let last = text.lines().count().saturating_sub(2);
            let at = json!({"textDocument": {"uri": client.uri}, "position": {"line": last, "character": 3}});
            for method in [
                "textDocument/hover",
                "textDocument/definition",
                "textDocument/completion",
                "textDocument/references",
            ] {
                let mut params = at.clone();
                params["context"] = json!({"includeDeclaration": true});
                let times: Vec<Duration> = (0..10)
                    .map(|_| {
                        let start = Instant::now();
                        let answer = client.request(method, params.clone());
                        assert!(!answer.is_null(), "{method} answers on the large file");
                        start.elapsed()
                    })
                    .collect();
                println!("{:>22} {method}: {}", "", ms(median(times)));
            }
        }
        client.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
