//! The node's partition processors and the entry point for invocations on them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restate_bifrost::Bifrost;
use restate_metadata::objects::{PartitionTable, SchedulingPlan};
use restate_metadata::{typed, MetadataStore};
use restate_storage::NodeStorage;
use restate_types::{LogId, PartitionId, PlainNodeId};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::partition::{Command, Envelope, InvocationId, InvocationRequest, InvocationResult, ResponseSink};
use crate::DeploymentClient;

/// What processors need from the node.
pub struct WorkerContext {
    pub me: PlainNodeId,
    pub node_name: String,
    pub metadata: Arc<dyn MetadataStore>,
    pub bifrost: Arc<Bifrost>,
    pub storage: NodeStorage,
    pub deployments: DeploymentClient,
    /// How long completed invocations (results, idempotency keys) are kept before the
    /// leader purges them (`[worker] idempotency-retention`).
    pub idempotency_retention: Duration,
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

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// This node does not lead the partition (now): ask the current leader.
    #[error("this node does not lead partition {0} (yet); the scheduling plan names the leader")]
    NotLeader(PartitionId),
    #[error("appending the invocation to partition {partition}'s log failed: {reason}")]
    Append { partition: PartitionId, reason: String },
    /// A snapshot could not be made or published.
    #[error("partition {partition}: snapshot failed: {reason}")]
    Snapshot { partition: PartitionId, reason: String },
    /// The partition's stored state could not be read (or not caught up in time).
    #[error("partition {partition}: {reason}")]
    Store { partition: PartitionId, reason: String },
    /// The leader changed before the result arrived; the invocation goes on.
    #[error("partition {0} changed leader before the invocation finished; ask again with the same id")]
    LeaderChanged(PartitionId),
}

/// What `Worker::status` reports of one processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorStatus {
    pub partition: PartitionId,
    pub leading: bool,
    /// The last leader epoch applied from the log.
    pub epoch: u64,
    pub applied_lsn: u64,
    /// LSN of the latest published snapshot this node knows of (0: none).
    pub archived_lsn: u64,
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
    /// The last leader epoch applied from the log.
    pub known_epoch: AtomicU64,
    /// LSN of the latest published snapshot known here (0: none).
    pub archived_lsn: AtomicU64,
    /// A leader's automatic snapshot is being made (at most one at a time).
    pub snapshot_in_flight: AtomicBool,
    pub shutdown: CancellationToken,
}

pub struct Worker {
    pub(crate) ctx: Arc<WorkerContext>,
    processors: Mutex<BTreeMap<PartitionId, Arc<ProcessorHandle>>>,
}

impl Worker {
    pub fn new(ctx: WorkerContext) -> Arc<Worker> {
        Arc::new(Worker { ctx: Arc::new(ctx), processors: Mutex::new(BTreeMap::new()) })
    }

    /// Follows the scheduling plan until `shutdown`: starts a processor for every
    /// partition this node leads or follows, tells each whether it should lead.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.follow_plan(&shutdown).await {
                tracing::debug!("worker: {e}");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
        for handle in self.processors.lock().expect("not poisoned").values() {
            handle.shutdown.cancel();
        }
        let mut tasks = std::mem::take(&mut *self.ctx.tasks.lock().expect("not poisoned"));
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        tracing::info!("partition processors stopped");
    }

    async fn follow_plan(&self, shutdown: &CancellationToken) -> Result<(), String> {
        let store = self.ctx.metadata.as_ref();
        let Some((plan, _)) = typed::get::<SchedulingPlan>(store).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let Some((table, _)) = typed::get::<PartitionTable>(store).await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let me = self.ctx.me;
        for (partition, placement) in &plan.partitions {
            let Some(definition) = table.partitions.get(partition) else { continue };
            let leads = placement.leader == me;
            if !leads && !placement.followers.contains(&me) {
                // Not placed here (any more, e.g. this node is draining): stop its processor.
                let removed = self.processors.lock().expect("not poisoned").remove(partition);
                if let Some(handle) = removed {
                    handle.planned.send_replace(None);
                    handle.shutdown.cancel();
                    tracing::info!(partition = %partition, "partition no longer placed on this node: processor stopped");
                }
                continue;
            }
            let handle = {
                let mut processors = self.processors.lock().expect("not poisoned");
                processors
                    .entry(*partition)
                    .or_insert_with(|| {
                        let handle = Arc::new(ProcessorHandle {
                            partition: *partition,
                            log: definition.log_id,
                            planned: watch::channel(None).0,
                            active_epoch: AtomicU64::new(0),
                            waiters: Mutex::new(HashMap::new()),
                            wake: Notify::new(),
                            applied_lsn: AtomicU64::new(0),
                            known_epoch: AtomicU64::new(0),
                            archived_lsn: AtomicU64::new(0),
                            snapshot_in_flight: AtomicBool::new(false),
                            shutdown: shutdown.child_token(),
                        });
                        self.ctx.spawn(super::partition_processor::run(self.ctx.clone(), handle.clone()));
                        handle
                    })
                    .clone()
            };
            let want = leads.then_some(placement.leader_epoch);
            handle.planned.send_if_modified(|current| {
                let changed = *current != want;
                *current = want;
                changed
            });
        }
        Ok(())
    }

    /// The processor of `partition` if this node leads it (its announcement applied).
    pub(crate) fn leader_handle(&self, partition: PartitionId) -> Result<Arc<ProcessorHandle>, WorkerError> {
        self.processors
            .lock()
            .expect("not poisoned")
            .get(&partition)
            .cloned()
            .filter(|h| h.active_epoch.load(Ordering::SeqCst) != 0)
            .ok_or(WorkerError::NotLeader(partition))
    }

    /// Appends `command` from outside the partition (epoch 0) to the log of the partition
    /// `handle` leads, and wakes its processor to apply it at once.
    pub(crate) async fn append_external(&self, handle: &ProcessorHandle, command: Command) -> Result<(), WorkerError> {
        let record = Envelope::external(command).encode();
        self.ctx
            .bifrost
            .append(handle.log, vec![record])
            .await
            .map_err(|e| WorkerError::Append { partition: handle.partition, reason: e.to_string() })?;
        handle.wake.notify_one();
        Ok(())
    }

    /// Whether this node currently leads `partition` (its announcement applied).
    pub fn leads(&self, partition: PartitionId) -> bool {
        self.processors
            .lock()
            .expect("not poisoned")
            .get(&partition)
            .is_some_and(|h| h.active_epoch.load(Ordering::SeqCst) != 0)
    }

    /// The partitions with a processor here, in partition order.
    pub fn status(&self) -> Vec<ProcessorStatus> {
        self.processors
            .lock()
            .expect("not poisoned")
            .values()
            .map(|h| ProcessorStatus {
                partition: h.partition,
                leading: h.active_epoch.load(Ordering::SeqCst) != 0,
                epoch: h.known_epoch.load(Ordering::SeqCst),
                applied_lsn: h.applied_lsn.load(Ordering::SeqCst),
                archived_lsn: h.archived_lsn.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Appends `request` to its partition's log through this node, which must lead the
    /// partition. With `wait`, resolves with the result (also for a repeated id or
    /// idempotency key: the state machine attaches the new waiter to the existing
    /// invocation); otherwise once the request is in the log.
    pub async fn invoke(
        &self,
        partition: PartitionId,
        mut request: InvocationRequest,
        wait: bool,
    ) -> Result<Option<InvocationResult>, WorkerError> {
        let handle = self.leader_handle(partition)?;
        let answer = if wait {
            let (sink, rx) = handle.waiter(&request.id);
            request.response = sink;
            Some(rx)
        } else {
            request.response = ResponseSink::None;
            None
        };
        self.append_external(&handle, Command::Invoke(request)).await?;
        match answer {
            None => Ok(None),
            Some(rx) => rx.await.map(Some).map_err(|_| WorkerError::LeaderChanged(partition)),
        }
    }
}

impl ProcessorHandle {
    /// A new ingress sink for invocation `id` and the receiver its result arrives on
    /// (through [`crate::partition::Effect::Respond`] while this node leads).
    pub(crate) fn waiter(&self, id: &InvocationId) -> (ResponseSink, oneshot::Receiver<InvocationResult>) {
        let request_id = format!("{id}-{}", rand_suffix());
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("not poisoned").insert(request_id.clone(), tx);
        (ResponseSink::Ingress { request_id }, rx)
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.finish()
}
