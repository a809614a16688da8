//! Operations on invocations that already exist, on the node leading their partition:
//! attach to a result, look one up, cancel or kill it, list them.
//!
//! Reads answer from the leader's store after it has applied its log up to the tail it
//! found when asked, so anything acknowledged before the question (a `/send`, a kill) is
//! visible in the answer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use restate_types::{Lsn, PartitionId};

use super::worker::{Worker, WorkerError};
use restate_partition::{
    Command, InvocationId, InvocationRecord, InvocationResult, InvocationStatus, PartitionReads, RocksDbPartitionStore,
    SignalId, SignalResult,
};

/// How long a read waits for the leader to apply its log up to the tail.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// What the leader knows of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationLookup {
    /// Never submitted to this partition, or purged after the retention period.
    NotFound,
    /// Inboxed, invoked or suspended (the status's [`InvocationStatus::name`]).
    Running {
        status: &'static str,
    },
    Completed(InvocationResult),
}

impl InvocationLookup {
    fn of(record: Option<&InvocationRecord>) -> InvocationLookup {
        match record.map(|r| &r.status) {
            None => InvocationLookup::NotFound,
            Some(InvocationStatus::Completed { result, .. }) => InvocationLookup::Completed(result.clone()),
            Some(status) => InvocationLookup::Running { status: status.name() },
        }
    }
}

/// What `Worker::list_invocations` reports of one invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationSummary {
    pub id: InvocationId,
    pub partition: PartitionId,
    /// `Service/handler` or `Object/key/handler`.
    pub target: String,
    /// `inboxed`, `invoked`, `suspended` or `completed`.
    pub status: &'static str,
    pub idempotency_key: Option<String>,
    pub submitted_at_ms: u64,
    pub completed_at_ms: Option<u64>,
    /// For completed ones: whether the result is a failure, with its code and message.
    pub failure: Option<(u32, String)>,
    /// The leader's current attempt of an `invoked` invocation (none between rounds).
    pub attempt: Option<super::AttemptState>,
}

/// Kill stops an invocation at once; cancel asks it to stop (see [`Command::Cancel`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Cancel,
    Kill,
    /// Forget a completed invocation now ([`Command::Purge`]).
    Purge,
    /// Stop running an invoked or suspended invocation until resumed ([`Command::Pause`]).
    Pause,
    /// Run a paused or suspended invocation now, or retry a backing-off one now
    /// ([`Command::Resume`]).
    Resume,
}

/// What became of a restart-as-new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restarted {
    /// The new invocation's id (it runs once the record is applied).
    New(InvocationId),
    NotFound,
    /// Not completed: its status's [`InvocationStatus::name`].
    NotCompleted(&'static str),
    /// A workflow's run has one id per key.
    WorkflowRun,
    /// Completed before this node kept inputs of completed invocations.
    InputNotKept,
}

impl Worker {
    /// Waits for `id`'s result (at once if it completed). 404 failure if the partition
    /// does not know `id`.
    pub async fn attach(&self, partition: PartitionId, id: InvocationId) -> Result<InvocationResult, WorkerError> {
        let handle = self.leader_handle(partition)?;
        let (response, rx) = handle.waiter(&id);
        self.append_external(&handle, Command::Attach { id, response }).await?;
        rx.await.map_err(|_| WorkerError::LeaderChanged(partition))
    }

    /// `id`'s state now, without waiting for it to complete.
    pub async fn lookup(&self, partition: PartitionId, id: InvocationId) -> Result<InvocationLookup, WorkerError> {
        let store = self.caught_up_store(partition).await?;
        let record = store.invocation(&id).map_err(|e| WorkerError::Store { partition, reason: e.to_string() })?;
        Ok(InvocationLookup::of(record.as_ref()))
    }

    /// Cancels or kills `id` if it is still running, or purges it if it completed; answers
    /// what it found before. Otherwise (and for an unknown id) nothing changes.
    pub async fn signal(
        &self,
        partition: PartitionId,
        id: InvocationId,
        signal: Signal,
    ) -> Result<InvocationLookup, WorkerError> {
        let found = self.lookup(partition, id).await?;
        let at_ms = super::now_ms();
        let command = match (&found, signal) {
            (InvocationLookup::Running { .. }, Signal::Cancel) => Some(Command::Cancel { id, at_ms }),
            (InvocationLookup::Running { .. }, Signal::Kill) => Some(Command::Kill { id, at_ms }),
            (InvocationLookup::Completed(_), Signal::Purge) => Some(Command::Purge { id }),
            (InvocationLookup::Running { status: "invoked" | "suspended" }, Signal::Pause) => {
                Some(Command::Pause { id })
            }
            (InvocationLookup::Running { status: "invoked" | "suspended" | "paused" }, Signal::Resume) => {
                Some(Command::Resume { id })
            }
            _ => None,
        };
        if let Some(command) = command {
            let handle = self.leader_handle(partition)?;
            self.append_external(&handle, command).await?;
        }
        Ok(found)
    }

    /// Starts a new invocation (id: `id`'s partition key and `uuid`) with completed
    /// invocation `id`'s target and input, or says why it cannot.
    pub async fn restart_as_new(
        &self,
        partition: PartitionId,
        id: InvocationId,
        uuid: [u8; 16],
    ) -> Result<Restarted, WorkerError> {
        let store = self.caught_up_store(partition).await?;
        let failed = |e: restate_partition::StoreError| WorkerError::Store { partition, reason: e.to_string() };
        let Some(record) = store.invocation(&id).map_err(failed)? else { return Ok(Restarted::NotFound) };
        if !matches!(record.status, InvocationStatus::Completed { .. }) {
            return Ok(Restarted::NotCompleted(record.status.name()));
        }
        if record.target.is_workflow_run() {
            return Ok(Restarted::WorkflowRun);
        }
        if store.kept_input(&id).map_err(failed)?.is_none() {
            return Ok(Restarted::InputNotKept);
        }
        let new_id = InvocationId::new(id.partition_key(), uuid);
        let handle = self.leader_handle(partition)?;
        self.append_external(&handle, Command::RestartAsNew { id, new_id, at_ms: super::now_ms() }).await?;
        Ok(Restarted::New(new_id))
    }

    /// Delivers `signal` with `result` to `id` (an awakeable's completion, a named signal)
    /// if it is still running: the first delivery of a signal id wins, later ones change
    /// nothing. Answers what the partition knew of `id` before.
    pub async fn notify(
        &self,
        partition: PartitionId,
        id: InvocationId,
        signal: SignalId,
        result: SignalResult,
    ) -> Result<InvocationLookup, WorkerError> {
        let found = self.lookup(partition, id).await?;
        if let InvocationLookup::Running { .. } = found {
            let handle = self.leader_handle(partition)?;
            self.append_external(&handle, Command::Signal { id, signal, result }).await?;
        }
        Ok(found)
    }

    /// Replaces object `service`/`key`'s state with `entries` through this partition's log
    /// (dropped when applied if the state's version is no longer `expected_version`).
    pub async fn set_state(
        &self,
        partition: PartitionId,
        service: String,
        key: String,
        entries: Vec<restate_partition::StateEntry>,
        expected_version: Option<String>,
    ) -> Result<(), WorkerError> {
        let handle = self.leader_handle(partition)?;
        self.append_external(&handle, Command::SetState { service, key, entries, expected_version }).await
    }

    /// The rows of `table` that `filter` keeps in the partitions this node leads (as of
    /// their applied LSN; only `partitions`, when given), each with its partition.
    pub fn scan_table(
        &self,
        table: restate_partition::introspect::PartitionTable,
        filter: &restate_partition::introspect::RowFilter,
        partitions: Option<&[PartitionId]>,
    ) -> Result<Vec<(PartitionId, restate_partition::introspect::Row)>, WorkerError> {
        let mut all = Vec::new();
        for status in self.status().into_iter().filter(|s| s.leading) {
            let partition = status.partition;
            if partitions.is_some_and(|wanted| !wanted.contains(&partition)) {
                continue;
            }
            let store = RocksDbPartitionStore::new(self.ctx.storage.clone(), partition);
            let rows = restate_partition::introspect::rows(&store, table, filter)
                .map_err(|e| WorkerError::Store { partition, reason: e.to_string() })?;
            all.extend(rows.into_iter().map(|row| (partition, row)));
        }
        Ok(all)
    }

    /// Invocation `id`, if a partition this node leads holds it (as of its applied LSN).
    pub fn invocation_summary(&self, id: InvocationId) -> Result<Option<InvocationSummary>, WorkerError> {
        for status in self.status().into_iter().filter(|s| s.leading) {
            let partition = status.partition;
            let store = RocksDbPartitionStore::new(self.ctx.storage.clone(), partition);
            let record = store.invocation(&id).map_err(|e| WorkerError::Store { partition, reason: e.to_string() })?;
            if let Some(record) = record {
                return Ok(Some(summary(partition, id, record, self.processor(partition).as_deref())));
            }
        }
        Ok(None)
    }

    /// Every invocation of the partitions this node leads (as of their applied LSN),
    /// by partition, then id.
    pub fn list_invocations(&self) -> Result<Vec<InvocationSummary>, WorkerError> {
        let mut all = Vec::new();
        for status in self.status().into_iter().filter(|s| s.leading) {
            let partition = status.partition;
            let store = RocksDbPartitionStore::new(self.ctx.storage.clone(), partition);
            let invocations =
                store.invocations().map_err(|e| WorkerError::Store { partition, reason: e.to_string() })?;
            let handle = self.processor(partition);
            all.extend(invocations.into_iter().map(|(id, record)| summary(partition, id, record, handle.as_deref())));
        }
        Ok(all)
    }

    /// The leader's store once it applied everything up to the log's tail as of now.
    async fn caught_up_store(&self, partition: PartitionId) -> Result<RocksDbPartitionStore, WorkerError> {
        let handle = self.leader_handle(partition)?;
        let tail = self
            .ctx
            .bifrost
            .find_tail(handle.log)
            .await
            .map_err(|e| WorkerError::Append { partition, reason: format!("finding the log's tail: {e}") })?;
        let last = Lsn(tail.next_lsn.0.saturating_sub(1));
        let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
        while handle.applied_lsn.load(Ordering::SeqCst) < last.0 {
            if tokio::time::Instant::now() >= deadline {
                return Err(WorkerError::Store {
                    partition,
                    reason: format!(
                        "the processor did not apply its log up to LSN {last} within {}s (applied: {})",
                        CATCH_UP_WAIT.as_secs(),
                        handle.applied_lsn.load(Ordering::SeqCst)
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(RocksDbPartitionStore::new(self.ctx.storage.clone(), partition))
    }
}

fn summary(
    partition: PartitionId,
    id: InvocationId,
    record: InvocationRecord,
    processor: Option<&super::context::ProcessorHandle>,
) -> InvocationSummary {
    let (completed_at_ms, failure) = match &record.status {
        InvocationStatus::Completed { result, completed_at_ms } => {
            (Some(*completed_at_ms), result.as_ref().err().map(|f| (f.code, f.message.clone())))
        }
        _ => (None, None),
    };
    InvocationSummary {
        id,
        partition,
        target: record.target.to_string(),
        status: record.status.name(),
        idempotency_key: record.idempotency_key,
        submitted_at_ms: record.submitted_at_ms,
        completed_at_ms,
        failure,
        attempt: processor.filter(|_| record.status == InvocationStatus::Invoked).and_then(|p| p.attempts.state(&id)),
    }
}
