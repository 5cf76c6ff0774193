//! The netc grammar (`grammar/netc.pest`) compiled into a pest parser.
//!
//! Only the compiler's syntax module uses this; it turns the pairs into an owned AST at once.

use pest_derive::Parser;

/// The parser generated from `netc.pest`.
#[derive(Parser, Debug)]
#[grammar = "netc.pest"]
pub struct NetcParser;
