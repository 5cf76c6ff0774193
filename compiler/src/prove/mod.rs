//! The prover: exact reasoning about sets of pods and about what a compiled program allows, for
//! every possible pod rather than for the pods of one cluster.
//!
//! Where it sits in the pipeline: beside the door model. `lower` asks it whether an arrow's pods
//! can overlap an isolated workload or a guarded subset of its source, and whether a rule is
//! covered by another rule of its door; the assertion checker runs it on the finished IR (see
//! docs/architecture.md).
//!
//! ```text
//! Model --lower--> Ir --> ...
//!         |  ^
//!         v  |  overlap, inclusion, intersection of selectors (labels, pods)
//!        prove
//! ```
//!
//! The building block is the product: a label selector is a conjunction of per-key tests, so the
//! label maps it selects are a product of per-key value sets ([`labels::Conj`]); a set of pods is
//! a product of a namespace part and a pod part ([`pods::PodSet`]). Intersection, emptiness and
//! inclusion of products are decided key by key, exactly, over the infinite space of label maps.

pub mod assertions;
pub mod cube;
pub mod flows;
pub mod index;
pub mod labels;
pub mod on_cluster;
pub mod pods;

pub use index::SelectorIndex;
pub use labels::{Conj, intersect_selectors};
pub use pods::PodSet;
