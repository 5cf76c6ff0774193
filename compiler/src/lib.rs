//! netc: Kubernetes network intent in, NetworkPolicy out.

pub mod ast;
pub mod syntax;
pub mod codegen;
pub mod yaml;
pub mod analysis;
