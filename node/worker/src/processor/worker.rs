//! The node's partition processors and the entry point for invocations on them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use restate_metadata::objects::{PartitionTable, SchedulingPlan};
use restate_types::PartitionId;
use tokio::sync::{oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::context::{ProcessorHandle, WorkerContext};

use restate_partition::{Command, Envelope, InvocationId, InvocationRequest, InvocationResult, ResponseSink};

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
    /// The partition stopped at a record it cannot apply: nothing new is accepted.
    #[error("partition {partition} is blocked at LSN {lsn}: {reason}; `restatectl partitions skip-record {partition} {lsn} --yes` skips that record (its content is lost)")]
    Blocked { partition: PartitionId, lsn: u64, reason: String },
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
    /// The record it cannot apply and why, while it is stopped there.
    pub blocked: Option<(u64, String)>,
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
    /// partition this node leads or follows, tells each whether it should lead. Looks
    /// again whenever the view's plan or partition table changes.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut plan_changes = self.ctx.metadata.subscribe::<SchedulingPlan>();
        let mut table_changes = self.ctx.metadata.subscribe::<PartitionTable>();
        loop {
            plan_changes.mark_unchanged();
            table_changes.mark_unchanged();
            self.follow_plan(&shutdown);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = plan_changes.changed() => {}
                _ = table_changes.changed() => {}
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

    fn follow_plan(&self, shutdown: &CancellationToken) {
        let Some(plan) = self.ctx.metadata.get::<SchedulingPlan>() else { return };
        let Some(table) = self.ctx.metadata.get::<PartitionTable>() else { return };
        let (plan, table) = (&plan.0, &table.0);
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
                            blocked: Mutex::new(None),
                            known_epoch: AtomicU64::new(0),
                            archived_lsn: AtomicU64::new(0),
                            snapshot_in_flight: AtomicBool::new(false),
                            attempts: Default::default(),
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
    }

    /// The processor of `partition` if this node leads it (its announcement applied).
    /// `partition`'s processor on this node, leading or not.
    pub(crate) fn processor(&self, partition: PartitionId) -> Option<Arc<ProcessorHandle>> {
        self.processors.lock().expect("not poisoned").get(&partition).cloned()
    }

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
                blocked: h.blocked.lock().expect("not poisoned").clone(),
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
        if let Some((lsn, reason)) = handle.blocked.lock().expect("not poisoned").clone() {
            return Err(WorkerError::Blocked { partition, lsn, reason });
        }
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
    /// (through [`restate_partition::Effect::Respond`] while this node leads).
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

impl Worker {
    /// Exports and publishes a snapshot of `partition`, which this node must lead.
    pub async fn create_snapshot(&self, partition: PartitionId) -> Result<super::SnapshotCreated, WorkerError> {
        let handle = self.leader_handle(partition)?;
        super::snapshots::create(&self.ctx, &handle).await.map_err(|reason| WorkerError::Snapshot { partition, reason })
    }
}
