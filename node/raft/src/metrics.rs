//! What this process's raft engine does, for the node's `/metrics`:
//! - `restate_raft_fsyncs_total`: ready rounds whose batch was written with an fsync;
//! - `restate_raft_entries_persisted_total`: raft log entries those batches persisted
//!   (over all groups; `entries / fsyncs` is how many entries share one fsync);
//! - `restate_raft_fsync_seconds`: how long each synced write took;
//! - `restate_raft_proposal_seconds`: from a proposal reaching the engine to its answer
//!   (committed by a quorum, applied, written here), for proposals made on this node;
//! - `restate_raft_batches_total{outcome}`: batches of raft messages for a peer: `streamed`
//!   (handed to the peer's stream), `sent` (a unary call the peer answered), `dropped` (the
//!   peer's stream was full or ending), `failed` (a unary call failed), `stream_failed`
//!   (a stream ended with an error; what it carried is reported unreachable).
//!
//! One set per process (a node runs one engine); the node registers them in its registry.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts};

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

/// Sub-millisecond resolution where a local disk and loopback hops live, up to a second.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_2, 0.000_3, 0.000_5, 0.000_75, 0.001, 0.001_5, 0.002, 0.003, 0.005, 0.008, 0.013, 0.02,
    0.05, 0.1, 0.25, 1.0,
];

fn latency_histogram(name: &str, help: &str) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())).expect("valid metric")
}

pub(crate) static FSYNC_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    latency_histogram("restate_raft_fsync_seconds", "Duration of the raft engine's synced writes (one per ready round)")
});

pub(crate) static PROPOSAL_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    latency_histogram(
        "restate_raft_proposal_seconds",
        "From a proposal reaching this node's raft engine to its answer (committed, applied and written)",
    )
});

pub(crate) static BATCHES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new("restate_raft_batches_total", "Batches of raft messages for peers, by outcome"),
        &["outcome"],
    )
    .expect("valid metric")
});

/// The collectors to register in the node's registry.
pub fn raft_metrics() -> Vec<Box<dyn Collector>> {
    vec![
        Box::new(FSYNCS.clone()),
        Box::new(ENTRIES.clone()),
        Box::new(FSYNC_SECONDS.clone()),
        Box::new(PROPOSAL_SECONDS.clone()),
        Box::new(BATCHES.clone()),
    ]
}
