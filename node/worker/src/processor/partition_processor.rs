//! One partition's processor: applies the log to the state machine; when this node's
//! announcement for the planned epoch is applied, it leads and acts on effects.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use restate_types::{Lsn, PartitionId};
use tokio::sync::mpsc;

use super::context::{ProcessorHandle, WorkerContext};
use super::snapshots;
use restate_metadata::objects::PartitionSkips;
use restate_partition::{
    Command, Effect, Envelope, InvocationId, PartitionReads, PartitionStateMachine, RocksDbPartitionStore,
    WorkflowCutoffs,
};

const READ_BATCH: usize = 256;
/// Bounds of the pause between reads that found nothing new (doubling while idle).
const MIN_IDLE: Duration = Duration::from_millis(1);
const MAX_IDLE: Duration = Duration::from_millis(50);

/// Leader-side bookkeeping of invocation rounds.
struct Rounds {
    in_flight: HashSet<InvocationId>,
    /// Invoked again while a round was running: run once more when it ends.
    again: HashSet<InvocationId>,
    done_tx: mpsc::UnboundedSender<InvocationId>,
}

fn open(ctx: &WorkerContext, partition: PartitionId) -> Option<PartitionStateMachine<RocksDbPartitionStore>> {
    match PartitionStateMachine::open(RocksDbPartitionStore::new(ctx.storage.clone(), partition)) {
        Ok(machine) => Some(machine),
        Err(e) => {
            tracing::error!(partition = %partition, "partition processor cannot open its state: {e}");
            None
        }
    }
}

pub(crate) async fn run(ctx: Arc<WorkerContext>, handle: Arc<ProcessorHandle>) {
    let partition = handle.partition;
    let Some(mut machine) = open(&ctx, partition) else { return };
    if machine.applied_lsn() == Lsn::INVALID {
        // No state here (a new or wiped node): the latest snapshot, when there is one,
        // saves replaying the log from its start. If the repository cannot be read now,
        // the log is the fallback; a trim gap met later retries the restore.
        match snapshots::restore(&ctx, &handle, Lsn::INVALID).await {
            Ok(Some(_)) => {
                let Some(restored) = open(&ctx, partition) else { return };
                machine = restored;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(partition = %partition, "no snapshot restored, reading the log from its start: {e}")
            }
        }
    } else {
        snapshots::refresh_archived_lsn(&ctx, &handle).await;
    }
    report_progress(&handle, &machine);
    tracing::info!(partition = %partition, applied_lsn = %machine.applied_lsn(), "partition processor started");
    let mut since_snapshot = 0u64;
    let mut planned = handle.planned.subscribe();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut rounds = Rounds { in_flight: HashSet::new(), again: HashSet::new(), done_tx };
    let mut announced = 0u64;
    let mut idle = MIN_IDLE;
    let mut last_purge: Option<tokio::time::Instant> = None;
    loop {
        if handle.shutdown.is_cancelled() {
            return;
        }
        // The interval follows the shortest retention now in force (a service's own
        // retention may be set or shortened at any time).
        let purge_due = last_purge.is_none_or(|at| at.elapsed() >= purge_interval(shortest_retention(&ctx)));
        if purge_due {
            last_purge = Some(tokio::time::Instant::now());
            purge_expired(&ctx, &handle, &machine).await;
        }
        let want = *planned.borrow_and_update();
        match want {
            Some(epoch) if epoch > machine.leader_epoch() && epoch > announced => {
                let record = Envelope::announce_leader(epoch, ctx.node_name.clone()).encode();
                match ctx.bifrost.append(handle.log, vec![record]).await {
                    Ok(_) => announced = epoch,
                    Err(e) => tracing::warn!(partition = %partition, epoch, "announcing leadership failed: {e}"),
                }
            }
            Some(_) => {}
            None => {
                if handle.active_epoch.swap(0, Ordering::SeqCst) != 0 {
                    tracing::info!(partition = %partition, "no longer leading");
                    handle.waiters.lock().expect("not poisoned").clear();
                    rounds.in_flight.clear();
                    rounds.again.clear();
                }
            }
        }
        let from = Lsn(machine.applied_lsn().0 + 1);
        let batch = match ctx.bifrost.read(handle.log, from, READ_BATCH).await {
            Ok(batch) if batch.trim_gap.is_some_and(|gap| gap.to >= from) => {
                // Records this processor has not applied are gone: only a snapshot at or
                // past the trim point can continue it. Never skip the gap.
                let gap = batch.trim_gap.expect("checked");
                match snapshots::restore(&ctx, &handle, gap.to).await {
                    Ok(_) => {
                        let Some(restored) = open(&ctx, partition) else { return };
                        machine = restored;
                        report_progress(&handle, &machine);
                        if handle.active_epoch.swap(0, Ordering::SeqCst) != 0 {
                            rounds.in_flight.clear();
                            rounds.again.clear();
                        }
                    }
                    Err(e) => {
                        tracing::error!(partition = %partition, "the log is trimmed up to LSN {} past this processor's applied LSN {}; restoring a snapshot failed, retrying in 2 s: {e}", gap.to, machine.applied_lsn());
                        tokio::select! {
                            _ = handle.shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        }
                    }
                }
                continue;
            }
            Ok(batch) => batch,
            Err(e) => {
                tracing::debug!(partition = %partition, "reading the log: {e}");
                if let Woke::RoundDone(finished) =
                    sleep_or_wake(&handle, &mut planned, &mut done_rx, Duration::from_millis(200)).await
                {
                    rerun_if_asked(&ctx, &handle, &machine, &mut rounds, finished);
                }
                continue;
            }
        };
        if batch.records.is_empty() {
            // Caught up: an announcement of ours applied before a restart still stands
            // when the plan keeps us leader at its epoch (no new record will say so).
            take_leadership_if_announced(&ctx, &handle, &machine, &mut rounds, want);
            // Poll again soon after a signal: an append acknowledged through this node may
            // become readable here a moment later (the replica applies after the commit).
            idle = match sleep_or_wake(&handle, &mut planned, &mut done_rx, idle).await {
                Woke::TimedOut => (idle * 2).min(MAX_IDLE),
                Woke::Signalled => MIN_IDLE,
                Woke::RoundDone(finished) => {
                    rerun_if_asked(&ctx, &handle, &machine, &mut rounds, finished);
                    MIN_IDLE
                }
            };
            continue;
        }
        idle = MIN_IDLE;
        since_snapshot += batch.records.len() as u64;
        // One store write per run of records; a leader change or a record that cannot be
        // applied ends a run (see `apply_batch`).
        let mut rest = &batch.records[..];
        while !rest.is_empty() {
            let applied = machine.apply_batch(rest.iter().map(|record| (record.lsn, &record.payload[..])));
            rest = &rest[applied.consumed..];
            if applied.consumed > 0 {
                unblock(&handle);
                report_progress(&handle, &machine);
                if let Some(epoch) = take_leadership_if_announced(&ctx, &handle, &machine, &mut rounds, want) {
                    for effect in applied.effects {
                        act(&ctx, &handle, &machine, &mut rounds, epoch, effect);
                    }
                }
            }
            let Some(e) = applied.error else { continue };
            let lsn = rest[0].lsn;
            if skip_if_listed(&ctx, &handle, &mut machine, lsn).await {
                report_progress(&handle, &machine);
                rest = &rest[1..];
                continue;
            }
            block(&handle, lsn.0, e.to_string());
            tokio::select! {
                _ = handle.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            break;
        }
        while let Ok(finished) = done_rx.try_recv() {
            rerun_if_asked(&ctx, &handle, &machine, &mut rounds, finished);
        }
        if ctx.snapshot_interval_records.is_some_and(|every| since_snapshot >= every)
            && handle.active_epoch.load(Ordering::SeqCst) != 0
            && ctx.snapshots.is_some()
            && !handle.snapshot_in_flight.swap(true, Ordering::SeqCst)
        {
            since_snapshot = 0;
            let (ctx, handle) = (ctx.clone(), handle.clone());
            ctx.clone().spawn(async move {
                if let Err(e) = snapshots::create(&ctx, &handle).await {
                    tracing::warn!(partition = %handle.partition, "automatic snapshot failed: {e}");
                }
                handle.snapshot_in_flight.store(false, Ordering::SeqCst);
            });
        }
    }
}

/// Marks the processor stopped at `lsn` (logged once per LSN): status, metrics and the
/// ingress show it until the record is applied or skipped.
fn block(handle: &ProcessorHandle, lsn: u64, reason: String) {
    let mut blocked = handle.blocked.lock().expect("not poisoned");
    if blocked.as_ref().is_none_or(|(at, _)| *at != lsn) {
        tracing::error!(partition = %handle.partition, lsn, "partition blocked: cannot apply the log record at LSN {lsn}: {reason}; `restatectl partitions skip-record {} {lsn} --yes` skips it (its content is lost)", handle.partition);
    }
    *blocked = Some((lsn, reason));
}

fn unblock(handle: &ProcessorHandle) {
    if let Some((lsn, _)) = handle.blocked.lock().expect("not poisoned").take() {
        tracing::info!(partition = %handle.partition, lsn, "partition unblocked");
    }
}

/// Skips the record at `lsn` when an operator listed it (`PartitionSkips`, read fresh:
/// the listing is what unblocks); whether it did.
async fn skip_if_listed(
    ctx: &WorkerContext,
    handle: &ProcessorHandle,
    machine: &mut PartitionStateMachine<RocksDbPartitionStore>,
    lsn: Lsn,
) -> bool {
    let listed = match ctx.metadata.refresh::<PartitionSkips>().await {
        Ok(skips) => skips.is_some_and(|skips| skips.0.skips(handle.partition.0, lsn.0)),
        Err(e) => {
            tracing::debug!(partition = %handle.partition, "reading the skipped records: {e}");
            false
        }
    };
    if !listed {
        return false;
    }
    match machine.skip(lsn) {
        Ok(()) => {
            tracing::warn!(partition = %handle.partition, %lsn, "skipped the log record at LSN {lsn} as an operator asked: its content is lost");
            unblock(handle);
            true
        }
        Err(e) => {
            tracing::error!(partition = %handle.partition, %lsn, "skipping the log record failed: {e}");
            false
        }
    }
}

/// Makes the machine's applied LSN and leader epoch visible to status and readers.
fn report_progress(handle: &ProcessorHandle, machine: &PartitionStateMachine<RocksDbPartitionStore>) {
    handle.applied_lsn.store(machine.applied_lsn().0, Ordering::SeqCst);
    handle.known_epoch.store(machine.leader_epoch(), Ordering::SeqCst);
}

/// Leads when the plan wants this node to lead at the epoch of the last announcement
/// applied, and that announcement is this node's; picks up the pending work on the
/// transition. The epoch led at, or `None` when not leading.
fn take_leadership_if_announced(
    ctx: &Arc<WorkerContext>,
    handle: &Arc<ProcessorHandle>,
    machine: &PartitionStateMachine<RocksDbPartitionStore>,
    rounds: &mut Rounds,
    want: Option<u64>,
) -> Option<u64> {
    let epoch = machine.leader_epoch();
    let leading = want == Some(epoch) && machine.leader().is_some_and(|l| l.node == ctx.node_name);
    if !leading {
        return None;
    }
    if handle.active_epoch.swap(epoch, Ordering::SeqCst) != epoch {
        tracing::info!(partition = %handle.partition, epoch, "leading partition");
        match machine.pending_work() {
            Ok(work) => {
                for effect in work.effects() {
                    act(ctx, handle, machine, rounds, epoch, effect);
                }
            }
            Err(e) => tracing::error!(partition = %handle.partition, "reading pending work: {e}"),
        }
    }
    Some(epoch)
}

/// How often a leader looks for completed invocations past their retention: a tenth of
/// the retention, between 1 s and 1 min.
fn purge_interval(retention: Duration) -> Duration {
    (retention / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// As the leader, appends `PurgeIdempotency` when completed invocations are older than
/// the retention (nothing when none are, so an idle partition's log does not grow).
async fn purge_expired(
    ctx: &WorkerContext,
    handle: &ProcessorHandle,
    machine: &PartitionStateMachine<RocksDbPartitionStore>,
) {
    let epoch = handle.active_epoch.load(Ordering::SeqCst);
    if epoch == 0 {
        return;
    }
    let now = super::now_ms();
    let older_than_ms = now.saturating_sub(ctx.idempotency_retention.as_millis() as u64);
    let workflows = workflow_cutoffs(ctx, now);
    match expired(machine.store(), older_than_ms, &workflows) {
        Ok(expired) if expired.is_empty() => {}
        Ok(expired) => {
            let record = Envelope::from_leader(epoch, Command::PurgeIdempotency { older_than_ms, workflows }).encode();
            match ctx.bifrost.append(handle.log, vec![record]).await {
                Ok(_) => {
                    tracing::debug!(partition = %handle.partition, count = expired.len(), "purging completed invocations past their retention")
                }
                Err(e) => tracing::warn!(partition = %handle.partition, "appending a retention purge failed: {e}"),
            }
        }
        Err(e) => tracing::error!(partition = %handle.partition, "reading completed invocations: {e}"),
    }
}

/// The shortest retention in force: the `[worker]` ones and every workflow service's own.
fn shortest_retention(ctx: &WorkerContext) -> Duration {
    let services = ctx.metadata.get::<restate_metadata::objects::Schema>().and_then(|schema| {
        schema.0.services.values().filter_map(|s| s.workflow_completion_retention_ms).min().map(Duration::from_millis)
    });
    services.into_iter().fold(ctx.idempotency_retention.min(ctx.workflow_completion_retention), Duration::min)
}

/// The workflow cutoffs of a purge at `now`: `[worker] workflow-completion-retention`, and
/// each workflow service's own retention from the schema.
fn workflow_cutoffs(ctx: &WorkerContext, now: u64) -> WorkflowCutoffs {
    let by_service = ctx
        .metadata
        .get::<restate_metadata::objects::Schema>()
        .map(|schema| {
            schema
                .0
                .services
                .values()
                .filter_map(|s| Some((s.name.clone(), now.saturating_sub(s.workflow_completion_retention_ms?))))
                .collect()
        })
        .unwrap_or_default();
    WorkflowCutoffs {
        default_ms: Some(now.saturating_sub(ctx.workflow_completion_retention.as_millis() as u64)),
        by_service,
    }
}

/// The completed invocations a purge with these cutoffs would forget.
fn expired(
    store: &RocksDbPartitionStore,
    older_than_ms: u64,
    workflows: &WorkflowCutoffs,
) -> Result<Vec<InvocationId>, restate_partition::StoreError> {
    let mut expired = Vec::new();
    for (completed_at_ms, id) in store.completed_before(workflows.latest(older_than_ms))? {
        let Some(record) = store.invocation(&id)? else { continue };
        if completed_at_ms
            < workflows.cutoff_for(&record.target.service, record.target.is_workflow_run(), older_than_ms)
        {
            expired.push(id);
        }
    }
    Ok(expired)
}

/// Why [`sleep_or_wake`] returned.
enum Woke {
    /// Nothing happened within the timeout.
    TimedOut,
    /// Shutdown, a plan change, or a record appended through this node.
    Signalled,
    /// A round of this invocation finished.
    RoundDone(InvocationId),
}

/// Waits for new records, a plan change, a finished round or `timeout`.
async fn sleep_or_wake(
    handle: &ProcessorHandle,
    planned: &mut tokio::sync::watch::Receiver<Option<u64>>,
    done_rx: &mut mpsc::UnboundedReceiver<InvocationId>,
    timeout: Duration,
) -> Woke {
    tokio::select! {
        _ = handle.shutdown.cancelled() => Woke::Signalled,
        _ = planned.changed() => Woke::Signalled,
        _ = handle.wake.notified() => Woke::Signalled,
        finished = done_rx.recv() => finished.map_or(Woke::Signalled, Woke::RoundDone),
        _ = tokio::time::sleep(timeout) => Woke::TimedOut,
    }
}

fn rerun_if_asked(
    ctx: &Arc<WorkerContext>,
    handle: &Arc<ProcessorHandle>,
    machine: &PartitionStateMachine<RocksDbPartitionStore>,
    rounds: &mut Rounds,
    finished: InvocationId,
) {
    rounds.in_flight.remove(&finished);
    let epoch = handle.active_epoch.load(Ordering::SeqCst);
    if rounds.again.remove(&finished) && epoch != 0 {
        act(ctx, handle, machine, rounds, epoch, Effect::Invoke { id: finished });
    }
}

/// Carries out one effect as the leader at `epoch`.
fn act(
    ctx: &Arc<WorkerContext>,
    handle: &Arc<ProcessorHandle>,
    machine: &PartitionStateMachine<RocksDbPartitionStore>,
    rounds: &mut Rounds,
    epoch: u64,
    effect: Effect,
) {
    match effect {
        Effect::Invoke { id } => {
            if !rounds.in_flight.insert(id) {
                // Once more when it ends; a backing-off round (a resume) retries now.
                rounds.again.insert(id);
                handle.attempts.retry_now(&id);
                return;
            }
            match machine.start_request(&id) {
                Ok(Some(start)) => {
                    let done = rounds.done_tx.clone();
                    let (ctx, handle) = (ctx.clone(), handle.clone());
                    ctx.clone().spawn(async move {
                        super::invoker::run_round(&ctx, &handle, epoch, start).await;
                        let _ = done.send(id);
                        handle.wake.notify_one();
                    });
                }
                Ok(None) => {
                    rounds.in_flight.remove(&id);
                }
                Err(e) => {
                    rounds.in_flight.remove(&id);
                    tracing::error!(invocation = %id, "reading the invocation's journal: {e}");
                }
            }
        }
        Effect::Respond { request_id, result, .. } => {
            if let Some(waiter) = handle.waiters.lock().expect("not poisoned").remove(&request_id) {
                let _ = waiter.send(result);
            }
        }
        Effect::ScheduleTimer { due_ms, id, completion_id } => {
            let (ctx, handle) = (ctx.clone(), handle.clone());
            ctx.clone().spawn(async move {
                let wait = due_ms.saturating_sub(super::now_ms());
                tokio::select! {
                    _ = handle.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
                }
                if handle.active_epoch.load(Ordering::SeqCst) != epoch {
                    return;
                }
                let record = Envelope::from_leader(epoch, Command::TimerFired { id, completion_id }).encode();
                if let Err(e) = ctx.bifrost.append(handle.log, vec![record]).await {
                    tracing::warn!(invocation = %id, "appending a fired timer failed: {e}");
                }
                handle.wake.notify_one();
            });
        }
        Effect::Send { entry } => {
            let (ctx, handle) = (ctx.clone(), handle.clone());
            ctx.clone().spawn(async move { super::router::deliver(&ctx, &handle, epoch, entry).await });
        }
        Effect::Abort { id } => {
            // Paused or killed: the round in flight stops (its records would be ignored).
            rounds.again.remove(&id);
            handle.attempts.abort(&id);
        }
    }
}
