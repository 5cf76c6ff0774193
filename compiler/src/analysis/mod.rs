//! Analyses of policy over a cluster: an independent NetworkPolicy evaluator (to check codegen
//! and imported YAML against the IR evaluator) and the all-pairs connectivity matrix.
//!
//! The reference evaluator over the IR is [`netc_ir::eval`]; these modules build on or check it.

pub mod k8s_eval;
pub mod matrix;
