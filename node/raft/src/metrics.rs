//! What this process's raft engine writes, for the node's `/metrics`:
//! - `restate_raft_fsyncs_total`: ready rounds whose batch was written with an fsync;
//! - `restate_raft_entries_persisted_total`: raft log entries those batches persisted
//!   (over all groups; `entries / fsyncs` is how many entries share one fsync).
//!
//! One set per process (a node runs one engine); the node registers them in its registry.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{IntCounter, Opts};

pub(crate) static FSYNCS: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::with_opts(Opts::new(
        "restate_raft_fsyncs_total",
        "Ready rounds of the raft engine whose write was synced (one fsync each, for all groups)",
    ))
    .expect("valid metric")
});

pub(crate) static ENTRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::with_opts(Opts::new(
        "restate_raft_entries_persisted_total",
        "Raft log entries persisted by the engine, over all groups",
    ))
    .expect("valid metric")
});

/// The collectors to register in the node's registry.
pub fn raft_metrics() -> Vec<Box<dyn Collector>> {
    vec![Box::new(FSYNCS.clone()), Box::new(ENTRIES.clone())]
}
