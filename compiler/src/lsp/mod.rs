//! `netc lsp`: the language server. It sits beside the pipeline, not in it: on every change it
//! runs the compiler's own phases (syntax, check, lower: [`crate::compile_keeping_phases`]) over
//! the files that compile together, and answers the editor from their results. There is no second
//! parser; what the editor shows is what `netc build` would say.
//!
//! ```text
//! editor --LSP (stdio)--> server (loop, documents, debounce)
//!                           '--> analysis: compile_keeping_phases -> diagnostics, IR, syntax trees
//!                                  '--> index (names, ports) -> hover, definition, references,
//!                                       rename, completion, symbols, formatting, quick fixes
//! ```
//!
//! - [`server`]: the protocol loop (rust-analyzer's `lsp-server`), and the only file reading;
//! - [`analysis`]: each feature as a pure function of a compiled unit and a position;
//! - [`index`]: where each workload, external and namespace is written;
//! - [`text`]: byte offsets to LSP positions (UTF-16 columns).

pub mod analysis;
pub mod index;
pub mod server;
pub mod text;

pub use server::{ServerError, run};

/// Serve an editor over stdin and stdout until it shuts the server down.
///
/// # Errors
/// A broken connection.
pub fn run_stdio() -> Result<(), ServerError> {
    let (connection, io_threads) = lsp_server::Connection::stdio();
    run(&connection)?;
    drop(connection);
    io_threads.join().map_err(|_| ServerError::Closed)
}
