//! netc: Kubernetes network intent in, NetworkPolicy out.

pub mod ast;
pub mod syntax;
