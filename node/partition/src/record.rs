//! What a partition stores per invocation, leader, timer and idempotency key (the values
//! behind the keys of the `keys` module).

use serde::{Deserialize, Serialize};

use super::command::{ResponseSink, Target};
use super::ids::InvocationId;
use super::journal::CANCEL_SIGNAL_ID;
use super::outcome::{invocation_result, InvocationResult};
use super::signal::SignalId;
use super::suspension::Awaiting;

/// The leader the log announced last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderEpoch {
    pub epoch: u64,
    pub node: String,
}

/// Everything about one invocation except its journal entries (stored one per key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRecord {
    pub target: Target,
    pub idempotency_key: Option<String>,
    pub submitted_at_ms: u64,
    pub status: InvocationStatus,
    /// Who waits for the result: every sink attached so far (the first request's, then
    /// repeats with the same id or idempotency key), without duplicates. Emptied when the
    /// invocation completes (each got its answer then).
    pub sinks: Vec<ResponseSink>,
    pub journal: JournalMeta,
}

/// Where an invocation is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationStatus {
    /// Submitted with a delay: starts at `due_ms` (ms since the UNIX epoch), when the
    /// leader's timer appends `TimerFired { id, completion_id: START_TIMER }`.
    Scheduled { due_ms: u64 },
    /// Waiting in its key's inbox for the exclusive lock; `seq` orders the inbox.
    Inboxed { seq: u64 },
    /// Running (or to be run) by the leader's invoker.
    Invoked,
    /// Waiting for a notification; the next one appended to its journal resumes it.
    Suspended,
    /// Stopped by an operator (`Pause`) or after its retry policy's last attempt: no round
    /// runs and notifications are kept in the journal without resuming it, until `Resume`
    /// (or a cancel, which must reach the handler) makes it `Invoked` again.
    Paused,
    /// Finished; the result is kept until purged by retention. The journal is deleted.
    Completed {
        #[serde(with = "invocation_result")]
        result: InvocationResult,
        completed_at_ms: u64,
    },
}

impl InvocationStatus {
    /// Short name for listings: `scheduled`, `inboxed`, `invoked`, `suspended`, `paused`,
    /// `completed`.
    pub fn name(&self) -> &'static str {
        match self {
            InvocationStatus::Scheduled { .. } => "scheduled",
            InvocationStatus::Inboxed { .. } => "inboxed",
            InvocationStatus::Invoked => "invoked",
            InvocationStatus::Suspended => "suspended",
            InvocationStatus::Paused => "paused",
            InvocationStatus::Completed { .. } => "completed",
        }
    }

    /// Whether it has a journal and takes notifications: `Invoked`, `Suspended` or `Paused`.
    pub fn is_running(&self) -> bool {
        matches!(self, InvocationStatus::Invoked | InvocationStatus::Suspended | InvocationStatus::Paused)
    }
}

/// Counters over an invocation's journal, kept beside it so applying a record never
/// scans the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalMeta {
    /// Number of entries (commands + notifications): `StartMessage.known_entries`.
    pub known_entries: u32,
    /// Number of commands (the next command's index).
    pub commands: u32,
    /// Completion ids that already have a notification, ascending (a second one for the
    /// same id is dropped).
    pub completed_ids: Vec<u32>,
    /// Index of the newest notification, if any.
    pub last_notification_index: Option<u32>,
    /// Whether the CANCEL signal is in the journal.
    pub cancel_signalled: bool,
    /// Every other signal in the journal, in arrival order (a second one with the same
    /// id is dropped: the first completion of an awakeable wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<SignalId>,
    /// What the SDK waits on since its last suspension (`None`: it did not say, or it
    /// runs): only a notification for one of these resumes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting: Option<Awaiting>,
}

impl JournalMeta {
    pub fn has_completion(&self, completion_id: u32) -> bool {
        self.completed_ids.binary_search(&completion_id).is_ok()
    }

    pub fn has_signal(&self, signal: &SignalId) -> bool {
        match signal {
            SignalId::Index(CANCEL_SIGNAL_ID) => self.cancel_signalled,
            other => self.signals.contains(other),
        }
    }

    /// Records that `signal` is in the journal.
    pub fn add_signal(&mut self, signal: SignalId) {
        match signal {
            SignalId::Index(CANCEL_SIGNAL_ID) => self.cancel_signalled = true,
            other => self.signals.push(other),
        }
    }
}

/// A durable timer of a `SleepCommand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    /// Wake-up time, milliseconds since the UNIX epoch (the command's `wake_up_time`).
    pub due_ms: u64,
    pub id: InvocationId,
    pub completion_id: u32,
}

/// The scope of an idempotency key: a repeated request matches when all four agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub service: String,
    pub handler: String,
    pub key: Option<String>,
    pub idempotency_key: String,
}

impl IdempotencyKey {
    /// The scope of `idempotency_key` for requests to `target`.
    pub fn for_target(target: &Target, idempotency_key: &str) -> IdempotencyKey {
        IdempotencyKey {
            service: target.service.clone(),
            handler: target.handler.clone(),
            key: target.key.clone(),
            idempotency_key: idempotency_key.to_owned(),
        }
    }
}
