//! The records of a partition's log: [`Envelope`]s carrying [`Command`]s (their byte
//! encoding is the `envelope_codec` module's).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use restate_types::ServiceType;

use super::awaiting::{AwaitedOutcome, Awaits};
use super::codec::base64_bytes;
use super::ids::InvocationId;
use super::journal::JournalEntry;
use super::outcome::{invocation_result, InvocationResult};
use super::retention::WorkflowCutoffs;
use super::signal::{SignalId, SignalResult};
use super::suspension::Awaiting;

/// One record of a partition's log.
///
/// `epoch` is the leader epoch of the proposer. Commands only a partition's own leader
/// proposes ([`Command::is_leader_proposal`]) are ignored when `epoch` is below the
/// highest epoch announced so far: that fences a deposed leader. Commands from elsewhere
/// (the ingress, other partitions' leaders, operators) are applied whatever their epoch
/// (by convention 0, see [`Envelope::external`]) and are idempotent by content instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub epoch: u64,
    pub command: Command,
}

impl Envelope {
    /// A record proposed by the partition's leader of `epoch`.
    pub fn from_leader(epoch: u64, command: Command) -> Envelope {
        Envelope { epoch, command }
    }

    /// A record proposed by something other than this partition's leader (epoch 0).
    pub fn external(command: Command) -> Envelope {
        Envelope { epoch: 0, command }
    }

    /// The announcement a new leader appends before anything else.
    pub fn announce_leader(epoch: u64, node: impl Into<String>) -> Envelope {
        Envelope { epoch, command: Command::AnnounceLeader { epoch, node: node.into() } }
    }
}

/// What a log record asks the partition to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// A new leader took over with `epoch` (strictly higher than any before, or ignored;
    /// the envelope's own epoch is not consulted).
    AnnounceLeader { epoch: u64, node: String },
    /// A new invocation (or a repeated one: same id, or same idempotency key).
    Invoke(InvocationRequest),
    /// Entries the SDK produced in one round (and notifications the leader derived from
    /// them, e.g. `RunCompletionNotification` for a proposed `ctx.run` result), in order.
    ///
    /// `first_command_index` is the number of commands the journal held before these
    /// entries (the leader knows it: the commands it sent in the round's request, plus
    /// those it appended since). The record applies only when it matches the journal, so
    /// a record appended twice is applied once.
    Journal { id: InvocationId, first_command_index: u32, entries: Vec<JournalEntry> },
    /// The round ended with a `Suspension`. `known_entries` is `StartMessage.known_entries`
    /// of that round: the SDK has seen journal entries below it and its own commands, so
    /// any notification at or past it is news and resumes the invocation at once.
    /// `awaiting`: what the SDK suspended on (see [`Awaiting`]); `None` in records written
    /// before it was recorded (then any news resumes it).
    Suspend {
        id: InvocationId,
        known_entries: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        awaiting: Option<Awaiting>,
    },
    /// The invocation finished (the round ended with `End` after an `OutputCommand`, or it
    /// failed for good).
    Complete {
        id: InvocationId,
        #[serde(with = "invocation_result")]
        result: InvocationResult,
        completed_at_ms: u64,
    },
    /// A timer registered by a `SleepCommand` is due.
    TimerFired { id: InvocationId, completion_id: u32 },
    /// The result of a call made by `id`'s `CallCommand` (`completion_id` is its
    /// `result_completion_id`); appended by the callee's partition leader.
    CallResult {
        id: InvocationId,
        completion_id: u32,
        #[serde(with = "invocation_result")]
        result: InvocationResult,
    },
    /// The leader routed outbox entry `seq` (appended it to its destination log).
    OutboxDelivered { seq: u64 },
    /// Stop the invocation at once, failing it with 409 "killed" (no compensation).
    Kill { id: InvocationId, at_ms: u64 },
    /// Ask the invocation to cancel: an inboxed one fails with 409 "cancelled" at once, a
    /// running one gets the CANCEL signal in its journal (the SDK fails the handler).
    Cancel { id: InvocationId, at_ms: u64 },
    /// Forget completed invocations (result and idempotency key) completed before
    /// `older_than_ms` (retention).
    /// Workflow runs follow `workflows` (their service's cutoff, or its default).
    PurgeIdempotency {
        older_than_ms: u64,
        #[serde(default, skip_serializing_if = "WorkflowCutoffs::is_none")]
        workflows: WorkflowCutoffs,
    },
    /// `response` waits for invocation `id`'s result (answered at once if it completed;
    /// with 404 "not found" if the partition does not know the id: never submitted, or
    /// purged after its retention). Appended after the invocation's own record by anyone
    /// who saw that record acknowledged, so it never overtakes it.
    Attach { id: InvocationId, response: ResponseSink },
    /// Answer `response` (a waiting handler's `GetInvocationOutputCommand`) with `id`'s
    /// result now: the result if it completed, "not ready" if it runs, 404 if unknown.
    GetOutput { id: InvocationId, response: ResponseSink },
    /// The answer to handler `id`'s `AttachInvocationCommand` / `GetInvocationOutputCommand`
    /// with `completion_id`, from the target's partition: appended as the matching
    /// notification (once per completion id); resumes a suspended invocation.
    AwaitedResult { id: InvocationId, completion_id: u32, awaits: Awaits, outcome: AwaitedOutcome },
    /// A signal for invocation `id` (an awakeable's completion, a named signal): appended
    /// to its journal unless a signal with the same id is there already (the first
    /// wins); ignored for finished or unknown invocations. Resumes a suspended one.
    Signal { id: InvocationId, signal: SignalId, result: SignalResult },
    /// Forget completed invocation `id` now (its result, idempotency key and, for a
    /// workflow run, the workflow's state and promises), as its retention would later. An
    /// invocation that is not completed is left alone.
    Purge { id: InvocationId },
    /// Replace the whole state of object (or workflow) `service`/`key` with `entries`
    /// (none: clear it), unless `expected_version` is set and the state's
    /// `introspect::state_version` is another by then (the edit is then dropped).
    SetState {
        service: String,
        key: String,
        entries: Vec<StateEntry>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_version: Option<String>,
    },
    /// Stop running invocation `id` (`Invoked` or `Suspended`) until `Resume`: its round in
    /// flight is dropped (an operator's pause, or the retry policy's last attempt failed
    /// with `on-max-attempts = "pause"`). Anything else is left alone.
    Pause { id: InvocationId },
    /// Run `id` again now: a paused or suspended invocation gets a round (a suspended one
    /// replays its journal as it is). An invoked one is left alone (the leader retries a
    /// backing-off round at once when it sees the record).
    Resume { id: InvocationId },
    /// Start `new_id` (same partition key as `id`) with completed invocation `id`'s target,
    /// input and headers, without its idempotency key; nothing if `id` is not completed,
    /// its input was not kept, it is a workflow run, or `new_id` exists.
    RestartAsNew { id: InvocationId, new_id: InvocationId, at_ms: u64 },
}

/// One state key and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    #[serde(with = "base64_bytes")]
    pub key: Bytes,
    #[serde(with = "base64_bytes")]
    pub value: Bytes,
}

impl Command {
    /// Whether only this partition's leader proposes the command, so it is fenced by
    /// epoch. The others come from outside the partition and are idempotent by content.
    pub fn is_leader_proposal(&self) -> bool {
        match self {
            Command::Journal { .. }
            | Command::Suspend { .. }
            | Command::Complete { .. }
            | Command::TimerFired { .. }
            | Command::OutboxDelivered { .. }
            | Command::PurgeIdempotency { .. } => true,
            Command::AnnounceLeader { .. }
            | Command::Invoke(_)
            | Command::CallResult { .. }
            | Command::Kill { .. }
            | Command::Cancel { .. }
            | Command::Attach { .. }
            | Command::GetOutput { .. }
            | Command::AwaitedResult { .. }
            | Command::Signal { .. }
            | Command::Purge { .. }
            | Command::SetState { .. }
            | Command::Pause { .. }
            | Command::Resume { .. }
            | Command::RestartAsNew { .. } => false,
        }
    }

    /// Short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::AnnounceLeader { .. } => "announce_leader",
            Command::Invoke(_) => "invoke",
            Command::Journal { .. } => "journal",
            Command::Suspend { .. } => "suspend",
            Command::Complete { .. } => "complete",
            Command::TimerFired { .. } => "timer_fired",
            Command::CallResult { .. } => "call_result",
            Command::OutboxDelivered { .. } => "outbox_delivered",
            Command::Kill { .. } => "kill",
            Command::Cancel { .. } => "cancel",
            Command::PurgeIdempotency { .. } => "purge_idempotency",
            Command::Attach { .. } => "attach",
            Command::Signal { .. } => "signal",
            Command::GetOutput { .. } => "get_output",
            Command::AwaitedResult { .. } => "awaited_result",
            Command::Purge { .. } => "purge",
            Command::SetState { .. } => "set_state",
            Command::Pause { .. } => "pause",
            Command::Resume { .. } => "resume",
            Command::RestartAsNew { .. } => "restart_as_new",
        }
    }
}

/// A request to run `target` with `input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvocationRequest {
    /// See [`InvocationId::for_target`]: the id's partition key must be this partition's.
    pub id: InvocationId,
    pub target: Target,
    #[serde(with = "base64_bytes")]
    pub input: Bytes,
    /// Headers passed to the handler (in the journal's `InputCommand`).
    pub headers: Vec<(String, String)>,
    /// Deduplicates per (service, handler, key, idempotency key) while the result is kept.
    pub idempotency_key: Option<String>,
    /// Who waits for the result.
    pub response: ResponseSink,
    /// Proposer's wall clock; informational, and the completion time of a request refused
    /// at apply time.
    pub submitted_at_ms: u64,
    /// Start not before this time (ms since the UNIX epoch; 0 = at once): the invocation
    /// is `Scheduled` until the leader's timer starts it (`/send?delay=`, a delayed
    /// one-way call).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invoke_at_ms: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The handler an invocation runs, with what the state machine needs from the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub service: String,
    pub handler: String,
    /// The virtual object's or workflow's key; `None` for plain services.
    pub key: Option<String>,
    #[serde(with = "service_type_in_records")]
    pub kind: ServiceType,
    /// A shared handler of a virtual object or workflow: runs concurrently, never takes
    /// the key's lock (and, by the SDK's contract, does not write state).
    pub handler_shared: bool,
}

impl Target {
    /// Whether the invocation must hold its key's lock: non-shared handlers of virtual
    /// objects and workflows.
    pub fn is_exclusive(&self) -> bool {
        self.kind != ServiceType::Service && !self.handler_shared
    }

    /// A workflow's run handler (a workflow's exclusive handler; the others are shared).
    pub fn is_workflow_run(&self) -> bool {
        self.kind == ServiceType::Workflow && !self.handler_shared
    }

    /// `(service, key)` of a keyed target (virtual object or workflow with a key).
    pub fn object(&self) -> Option<(&str, &str)> {
        match (&self.kind, &self.key) {
            (ServiceType::Service, _) | (_, None) => None,
            (_, Some(key)) => Some((&self.service, key)),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}/{}/{}", self.service, key, self.handler),
            None => write!(f, "{}/{}", self.service, self.handler),
        }
    }
}

/// `#[serde(with = "service_type_in_records")]`: log records spell the service type in
/// snake_case (`virtual_object`), as they always have.
mod service_type_in_records {
    use restate_types::ServiceType;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Recorded {
        Service,
        VirtualObject,
        Workflow,
    }

    pub fn serialize<S: Serializer>(ty: &ServiceType, serializer: S) -> Result<S::Ok, S::Error> {
        match ty {
            ServiceType::Service => Recorded::Service,
            ServiceType::VirtualObject => Recorded::VirtualObject,
            ServiceType::Workflow => Recorded::Workflow,
        }
        .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ServiceType, D::Error> {
        Ok(match Recorded::deserialize(deserializer)? {
            Recorded::Service => ServiceType::Service,
            Recorded::VirtualObject => ServiceType::VirtualObject,
            Recorded::Workflow => ServiceType::Workflow,
        })
    }
}

/// Where an invocation's result goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseSink {
    /// Nobody waits (one-way send; the result stays readable by id until purged).
    None,
    /// An ingress request waits; the leader answers it with [`super::Effect::Respond`].
    Ingress { request_id: String },
    /// Another invocation's `CallCommand` waits; the result travels to the caller's
    /// partition through the outbox as a [`Command::CallResult`].
    Caller { invocation_id: InvocationId, completion_id: u32 },
    /// Another invocation's `AttachInvocationCommand` or `GetInvocationOutputCommand`
    /// waits; the result travels as a [`Command::AwaitedResult`].
    Awaiter { invocation_id: InvocationId, completion_id: u32, awaits: Awaits },
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A request of a virtual object's exclusive handler (for the tests of this crate).
    pub(crate) fn request() -> InvocationRequest {
        InvocationRequest {
            id: InvocationId::new(42, [9; 16]),
            target: Target {
                service: "Counter".into(),
                handler: "add".into(),
                key: Some("k".into()),
                kind: ServiceType::VirtualObject,
                handler_shared: false,
            },
            input: Bytes::from_static(b"1"),
            headers: vec![("x".into(), "y".into())],
            idempotency_key: Some("idem".into()),
            response: ResponseSink::Ingress { request_id: "r1".into() },
            submitted_at_ms: 1000,
            invoke_at_ms: 0,
        }
    }

    #[test]
    fn only_leader_proposals_are_fenced() {
        let id = InvocationId::new(1, [1; 16]);
        assert!(Command::Suspend { id, known_entries: 1, awaiting: None }.is_leader_proposal());
        assert!(Command::TimerFired { id, completion_id: 1 }.is_leader_proposal());
        assert!(!Command::Invoke(request()).is_leader_proposal());
        assert!(!Command::CallResult { id, completion_id: 1, result: Ok(Bytes::new()) }.is_leader_proposal());
    }

    #[test]
    fn exclusivity_follows_kind_and_shared_flag() {
        let mut target = request().target;
        assert!(target.is_exclusive());
        assert_eq!(target.object(), Some(("Counter", "k")));
        target.handler_shared = true;
        assert!(!target.is_exclusive());
        target.kind = ServiceType::Service;
        target.handler_shared = false;
        assert!(!target.is_exclusive());
        assert_eq!(target.object(), None);
        assert_eq!(target.to_string(), "Counter/k/add");
    }
}
