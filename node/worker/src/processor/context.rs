//! What a worker's processors share: the node's parts they use ([`WorkerContext`]) and
//! each processor's handle as the rest of the node sees it ([`ProcessorHandle`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restate_bifrost::Bifrost;
use restate_metadata::MetadataView;
use restate_storage::NodeStorage;
use restate_types::{LogId, PartitionId, PlainNodeId};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::attempts::{Attempts, RetryPolicy};
use restate_partition::InvocationResult;
use restate_service_protocol::DeploymentClient;

/// What processors need from the node.
pub struct WorkerContext {
    pub me: PlainNodeId,
    pub node_name: String,
    /// The node's metadata view: the scheduling plan, partition table and schema.
    pub metadata: MetadataView,
    pub bifrost: Arc<Bifrost>,
    pub storage: NodeStorage,
    pub deployments: DeploymentClient,
    /// `[worker.invoker] abort-timeout`: the longest one invocation round may take.
    pub invoke_abort_timeout: std::time::Duration,
    /// `[invocation.default-retry-policy]`: pacing of failed attempts, and the last one.
    pub retry_policy: RetryPolicy,
    /// How long completed invocations (results, idempotency keys) are kept before the
    /// leader purges them (`[worker] idempotency-retention`).
    pub idempotency_retention: Duration,
    /// How long finished workflow runs (result, state, promises) are kept unless their
    /// service sets its own (`[worker] workflow-completion-retention`).
    pub workflow_completion_retention: Duration,
    /// Where partition snapshots go (`[worker.snapshots] destination`), if anywhere.
    pub snapshots: Option<restate_snapshots::SnapshotRepository>,
    /// Leaders snapshot after this many applied records (`snapshot-interval-num-records`).
    pub snapshot_interval_records: Option<u64>,
    /// Recorded in snapshot metadata.
    pub cluster_name: String,
    /// Every task of the worker (processors, rounds, timers, deliveries): stopped and
    /// awaited when the worker stops, so nothing holds the node's storage afterwards.
    pub tasks: Mutex<JoinSet<()>>,
}

impl WorkerContext {
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().expect("not poisoned");
        // Reap finished tasks so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }
}

/// One partition's processor as the rest of the node sees it.
pub(crate) struct ProcessorHandle {
    pub partition: PartitionId,
    pub log: LogId,
    /// `Some(epoch)` while the plan says this node leads at `epoch`.
    pub planned: watch::Sender<Option<u64>>,
    /// The epoch this node leads at (its announcement applied), 0 when not leading.
    pub active_epoch: AtomicU64,
    /// Ingress requests waiting for their invocation's result, by request id.
    pub waiters: Mutex<HashMap<String, oneshot::Sender<InvocationResult>>>,
    /// Poked after a local append, so the processor reads at once.
    pub wake: Notify,
    pub applied_lsn: AtomicU64,
    /// The record this processor cannot apply, and why: it stops there until an operator
    /// lists the LSN in `PartitionSkips`.
    pub blocked: Mutex<Option<(u64, String)>>,
    /// The last leader epoch applied from the log.
    pub known_epoch: AtomicU64,
    /// LSN of the latest published snapshot known here (0: none).
    pub archived_lsn: AtomicU64,
    /// A leader's automatic snapshot is being made (at most one at a time).
    pub snapshot_in_flight: AtomicBool,
    /// The rounds this node runs as the leader, with their attempt state.
    pub attempts: Attempts,
    pub shutdown: CancellationToken,
}
