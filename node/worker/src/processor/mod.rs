//! Partition processors on a worker node: one task per partition this node leads or
//! follows (from the controller's `scheduling_plan`). Every processor applies its
//! partition's log to the [`restate_partition`] state machine; the leader (the node whose
//! `AnnounceLeader` for the planned epoch is in the log) also acts on the effects:
//! invocation rounds against deployments, timers, outbox routing, and answers to the
//! ingress requests waiting on it.

mod attempts;
mod context;
mod invocation_ops;
mod invoker;
mod partition_processor;
mod router;
mod snapshots;
mod worker;

pub use attempts::{AttemptState, OnMaxAttempts, RetryPolicy};
pub use context::WorkerContext;
pub use invocation_ops::{InvocationLookup, InvocationSummary, Restarted, Signal};
pub use snapshots::SnapshotCreated;
pub use worker::{ProcessorStatus, Worker, WorkerError};

/// Milliseconds since the UNIX epoch (the proposer's clock; recorded in log records,
/// never read while applying).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
