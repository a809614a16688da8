//! The deterministic state machine every partition processor (leader and followers) runs
//! over its partition's log: durable invocations, their journals, virtual-object state
//! and locks, idempotency keys, timers and the outbox.
//!
//! Pure or storage-only: no networking, no tasks, no clock. The leader's invoker, the
//! ingress and the log plumbing build on it.
//!
//! # Log records
//!
//! Every record of a partition's log is an [`Envelope`] `{ epoch, command }`, encoded as
//! one format-version byte followed by JSON ([`Envelope::encode`]). [`Command`]s:
//!
//! | command | proposed by | effect on state |
//! | --- | --- | --- |
//! | `AnnounceLeader { epoch, node }` | a new leader, before anything else | current epoch := `epoch` if higher |
//! | `Invoke(InvocationRequest)` | ingress; another partition's leader (calls) | new invocation, or the sink joins the existing one |
//! | `Journal { id, first_command_index, entries }` | leader (invoker) | entries appended; state, timers, outbox per command |
//! | `Suspend { id, known_entries, awaiting }` | leader (invoker) | `Suspended`, or resumed at once if an awaited notification came meanwhile |
//! | `Complete { id, result, completed_at_ms }` | leader (invoker) | `Completed`; lock to the next in the inbox; sinks answered |
//! | `TimerFired { id, completion_id }` | leader (timer) | sleep completion appended; resumes |
//! | `CallResult { id, completion_id, result }` | callee partition's leader | call completion appended; resumes |
//! | `OutboxDelivered { seq }` | leader (router) | outbox entry removed |
//! | `Kill { id, at_ms }` / `Cancel { id, at_ms }` | operators (CLI, admin API) | failed with 409 / CANCEL signal appended |
//! | `GetOutput { id, response }` / `AwaitedResult { id, completion_id, awaits, outcome }` | another partition's leader (outbox) | a waiting handler's attach/get-output answered / its notification appended |
//! | `Signal { id, signal, result }` | ingress (awakeables), another partition's leader (outbox) | signal notification appended (first of an id wins); resumes |
//! | `PurgeIdempotency { older_than_ms, workflows }` | leader (retention) | old completed invocations and their keys forgotten; workflow runs by their own cutoffs, with their state and promises |
//! | `Purge { id }` / `SetState { service, key, entries, expected_version }` | operators (admin API) | one completed invocation forgotten / an object's state replaced |
//! | `Pause { id }` / `Resume { id }` | operators; the leader after the retry policy's last attempt | `Paused` (round dropped, notifications kept) / `Invoked` again |
//! | `RestartAsNew { id, new_id, at_ms }` | operators (admin API) | `new_id` invoked with completed `id`'s kept input |
//!
//! # Fencing and idempotence
//!
//! The state machine remembers the highest announced epoch. Commands only this
//! partition's leader proposes ([`Command::is_leader_proposal`]: journal, suspend,
//! complete, timer, outbox acknowledgement, purge) are **ignored when their envelope's
//! epoch is lower**: a deposed leader cannot change anything once its successor's
//! announcement is in the log. The other commands come from outside the partition (the
//! ingress, other partitions, operators), where this partition's epoch means nothing;
//! they carry epoch 0 ([`Envelope::external`]) and are idempotent by content instead: a
//! repeated `Invoke` (same id or same idempotency key) attaches its response sink to the
//! existing invocation; a `CallResult` or `TimerFired` for a completion that already has
//! its notification is dropped; `Kill`/`Cancel` of a finished invocation do nothing.
//! Leader proposals are idempotent too where a retried append could duplicate them
//! (`Journal` applies only when `first_command_index` equals the journal's command count).
//!
//! Applying is keyed by LSN ([`PartitionStateMachine::apply`]): a record at or below the
//! stored applied LSN is skipped, and the applied LSN is written in the same atomic write
//! as the record's changes. Ignored records advance it too. So replaying a log from any
//! point, on any replica, from either store, ends in the same state.
//!
//! # State (per partition)
//!
//! - **Invocations** ([`InvocationRecord`]): target, idempotency key, response sinks and
//!   status: `Scheduled` (submitted with a delay; a timer with completion id
//!   [`START_TIMER`] starts it), `Inboxed` (waiting for its key's lock), `Invoked` (the leader runs it),
//!   `Suspended` (waiting for a notification), `Paused` (held by an operator or the retry
//!   policy), `Completed { result, completed_at_ms }`.
//! - **Journals**: per invocation, the entries in order as the SDK sent them
//!   ([`JournalEntry`]: frame type, flags, body), starting with the `InputCommand` the
//!   state machine writes at `Invoke`; `known_entries` counts them. Deleted on completion.
//! - **User state** of virtual objects and workflows, `(service, key, state key) -> bytes`,
//!   changed when `SetState`/`ClearState`/`ClearAllState` commands are applied;
//!   `GetLazyState[Keys]` commands are answered from it at once.
//! - **Exclusive locks**: one per `(service, key)`, held by the running non-shared
//!   invocation, with a FIFO inbox of waiting ones. Shared handlers and plain services
//!   never take it. Completion (or kill) hands the lock to the head of the inbox.
//! - **Idempotency index** `(service, handler, key, idempotency key) -> id`, kept with the
//!   completed invocation until `PurgeIdempotency` forgets both.
//! - **Timers** `(id, completion id) -> due` from `SleepCommand`s.
//! - **Outbox**: calls and one-way calls for other invocations (`Invoke` in the callee's
//!   partition) and results for calling invocations (`CallResult` in the caller's).
//! - **Promises** of workflows `(service, key, name) -> PromiseState` (pending with the
//!   `GetPromiseCommand`s waiting, or completed): `CompletePromiseCommand` completes one
//!   once and wakes its waiters, `PeekPromiseCommand` answers at once. A workflow's run has
//!   one id per key ([`InvocationId::for_workflow_run`]), so submitting it again joins the
//!   first run; purging the run's result also forgets the workflow's state and promises.
//! - The **applied LSN** and the **current leader epoch**.
//!
//! # Invocation lifecycle (what the leader does with [`Effect`]s)
//!
//! 1. `Invoke` creates the invocation (`Invoked`, or `Inboxed` behind the key's lock) and
//!    emits [`Effect::Invoke`].
//! 2. The invoker reads [`start_request`] (`Start` + journal + eager state), runs a round,
//!    and appends the SDK's new entries as one `Journal` record (converting each
//!    `ProposeRunCompletion` into its `RunCompletionNotification` with
//!    [`JournalEntry::run_completion`]), then, by the terminal message: `End` ->
//!    `Complete` with the `OutputCommand`'s result; `Suspension` -> `Suspend` with the
//!    round's `known_entries`; `Error` -> retry later with backoff (nothing appended), or
//!    `Complete` with a failure when the SDK says not to retry.
//! 3. `Suspend` leaves the invocation `Suspended` unless a notification at or past
//!    `known_entries` is already in the journal (the SDK has not seen it): then it emits
//!    `Invoke` again. Any notification appended to a suspended invocation (timer, call
//!    result, cancel) resumes it with `Invoke`.
//! 4. `SleepCommand` -> [`Effect::ScheduleTimer`] -> the leader appends `TimerFired` when
//!    due. `CallCommand`/`OneWayCallCommand` -> the callee's id (derived from the caller's
//!    id and the command index) is journaled as `CallInvocationIdCompletionNotification`,
//!    the call goes to the outbox -> [`Effect::Send`] -> the leader resolves the callee's
//!    kind, appends `Invoke` to the callee's partition, then `OutboxDelivered` here.
//! 5. `Complete` answers every sink: [`Effect::Respond`] for ingress requests, an outbox
//!    `CallResult` for a calling invocation.
//!
//! After a restart or leader change, [`PartitionStateMachine::pending_work`] rebuilds all
//! of it from state alone: invoked invocations to run, timers to schedule, outbox entries
//! to route. Ingress responses are not durable: an ingress whose leader changed reads the
//! result by id ([`PartitionReads::invocation`]) or idempotency key.
//!
//! # Ids and routing
//!
//! [`InvocationId`] = (partition key, 16 bytes from the proposer), string form `inv_...`;
//! [`InvocationId::for_target`] routes keyed targets by `(service, key)`,
//! idempotent requests by `(service, handler, idempotency key)`, others by the uuid.
//! [`partition_for`] maps a partition key to a partition index (the ranges of the
//! metadata's `PartitionTable::evenly_split`).
//!
//! # Storage
//!
//! [`PartitionStore`] is an ordered key-value space per partition committed in atomic
//! [`WriteSet`]s (layout in `keys.rs`); [`PartitionReads`] adds the typed reads
//! (`invocation`, `journal`, `read_state`, `status_by_idempotency`, ...).
//! [`RocksDbPartitionStore`] keeps every partition of a node in the RocksDB column family
//! `partition` under a 2-byte partition-id prefix, one unsynced WriteBatch per batch of
//! records read together;
//! [`MemoryPartitionStore`] is the in-memory twin for tests.
//!
//! # Not supported yet
//!
//! Nothing: every command of service protocol 5-7 that asks the runtime for something
//! is answered.

mod apply;
mod awaiting;
mod codec;
mod command;
mod effect;
mod envelope_codec;
mod envelope_wire;
mod ids;
pub mod introspect;
mod journal;
mod journal_columns;
mod keys;
mod memory_store;
mod outbox;
mod outcome;
mod promise;
mod record;
mod retention;
mod rocksdb_store;
mod signal;
mod start;
mod state_machine;
pub mod state_snapshot;
mod store;
mod suspension;
mod transaction;

#[cfg(test)]
mod tests;

pub use awaiting::{AwaitedOutcome, Awaits};
pub use codec::CorruptValue;
pub use command::{Command, Envelope, InvocationRequest, ResponseSink, StateEntry, Target};
pub use effect::{Effect, PendingWork};
pub use envelope_codec::{EnvelopeError, ENVELOPE_FORMAT_JSON, ENVELOPE_FORMAT_VERSION};
pub use ids::{
    partition_for, partition_key, partition_key_range, stable_hash, InvalidInvocationId, InvocationId,
    INVOCATION_ID_LEN, INVOCATION_ID_PREFIX,
};
pub use journal::{JournalEntry, JournalEntryError, NotificationId, CANCEL_SIGNAL_ID, START_TIMER};
pub use memory_store::MemoryPartitionStore;
pub use outbox::{OutboundInvocation, OutboxEntry, OutboxMessage};
pub use outcome::{Failure, InvocationResult};
pub use promise::{PromiseState, PromiseWaiter};
pub use record::{IdempotencyKey, InvocationRecord, InvocationStatus, JournalMeta, LeaderEpoch, Timer};
pub use retention::WorkflowCutoffs;
pub use rocksdb_store::{RocksDbPartitionStore, CF_PARTITION};
pub use signal::{
    awakeable_id, parse_awakeable_id, InvalidAwakeableId, SignalId, SignalResult, AWAKEABLE_ID_PREFIX,
    LEGACY_AWAKEABLE_ID_PREFIX,
};
pub use start::{start_request, StartRequest};
pub use state_machine::{ApplyError, BatchApplied, PartitionStateMachine};
pub use store::{KeyValue, KvRead, PartitionReads, PartitionStore, StoreError, WriteSet};
pub use suspension::Awaiting;
