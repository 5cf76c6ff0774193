//! netc: Kubernetes network intent in, NetworkPolicy out.
