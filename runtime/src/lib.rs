//! netc-runtime: the IR in eBPF maps.
