//! Analyses of policy over a cluster: an independent NetworkPolicy evaluator (to check codegen
//! and imported YAML against the IR evaluator) and the all-pairs connectivity matrix, and on top
//! of them `explain` (why one flow is allowed or denied), `diff` (what a change does to
//! connectivity; `review` words it for a pull request), `verify` (the generated YAML means what the IR means), the readable matrix
//! table, the ipBlock-covers-pods and selects-nothing warnings and the cluster synthesized when
//! none is given.
//!
//! The reference evaluator over the IR is [`netc_ir::eval`]; these modules build on or check it.

pub mod diff;
pub mod empty_selectors;
pub mod explain;
pub mod ip_blocks;
pub mod k8s_eval;
pub mod matrix;
pub mod review;
pub mod synth;
pub mod table;
pub mod verify;
pub mod workloads;
