//! Messages a partition sends to other partitions (and to itself) through their logs.
//!
//! The state machine only records them; the leader routes each entry (appends the
//! command it becomes to the destination partition's log) and then appends
//! [`Command::OutboxDelivered`] to its own log. A new leader resends every entry still
//! present; the receiving side is idempotent (same invocation id, same completion id),
//! so a resend after a crash is harmless.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::codec::base64_bytes;
use restate_types::ServiceType;

use super::awaiting::{AwaitedOutcome, Awaits};
use super::command::{Command, InvocationRequest, ResponseSink, Target};
use super::ids::InvocationId;
use super::outcome::{invocation_result, Failure, InvocationResult};
use super::signal::{SignalId, SignalResult};

/// One message waiting to be routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in this partition's outbox (ascending in log order).
    pub seq: u64,
    /// Deliver not before this time (ms since the UNIX epoch; 0 = at once). Entries
    /// written before delayed calls became `Scheduled` invocations in the callee's
    /// partition carry a delayed one-way call's `invoke_time` here.
    pub deliver_at_ms: u64,
    pub message: OutboxMessage,
}

/// What to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxMessage {
    /// A call or one-way call from a journal: becomes a [`Command::Invoke`] in the
    /// callee's partition (partition key of `id`), once the router resolved the target's
    /// kind from the schema ([`OutboundInvocation::into_request`]).
    Invoke(OutboundInvocation),
    /// A finished invocation's result for its caller: becomes [`Command::CallResult`] in
    /// the caller's partition (partition key of `caller`).
    CallResult {
        caller: InvocationId,
        completion_id: u32,
        #[serde(with = "invocation_result")]
        result: InvocationResult,
    },
    /// A signal for another invocation (`SendSignalCommand`, `CompleteAwakeableCommand`):
    /// becomes [`Command::Signal`] in the target's partition.
    Signal { target: InvocationId, signal: SignalId, result: SignalResult },
    /// A handler waits on `target`'s result: becomes [`Command::Attach`] (or
    /// [`Command::GetOutput`]) with `response` in the target's partition.
    Await { target: InvocationId, response: ResponseSink },
    /// The answer for a waiting handler: becomes [`Command::AwaitedResult`] in its partition.
    AwaitedResult { waiter: InvocationId, completion_id: u32, awaits: Awaits, outcome: AwaitedOutcome },
}

impl OutboxMessage {
    /// The command this message becomes in its destination's log, for every message but
    /// [`OutboxMessage::Invoke`] (`None`: that one needs the schema, see
    /// [`OutboundInvocation::into_request`]).
    pub fn command(&self) -> Option<Command> {
        Some(match self {
            OutboxMessage::Invoke(_) => return None,
            OutboxMessage::CallResult { caller, completion_id, result } => {
                Command::CallResult { id: *caller, completion_id: *completion_id, result: result.clone() }
            }
            OutboxMessage::Signal { target, signal, result } => {
                Command::Signal { id: *target, signal: signal.clone(), result: result.clone() }
            }
            OutboxMessage::Await { target, response } => match response {
                ResponseSink::Awaiter { awaits: Awaits::GetOutput, .. } => {
                    Command::GetOutput { id: *target, response: response.clone() }
                }
                _ => Command::Attach { id: *target, response: response.clone() },
            },
            OutboxMessage::AwaitedResult { waiter, completion_id, awaits, outcome } => Command::AwaitedResult {
                id: *waiter,
                completion_id: *completion_id,
                awaits: *awaits,
                outcome: outcome.clone(),
            },
        })
    }

    /// The partition key of the destination: route with `partition_for(key, n)`.
    pub fn destination_partition_key(&self) -> u64 {
        match self {
            OutboxMessage::Invoke(invocation) => invocation.id.partition_key(),
            OutboxMessage::CallResult { caller, .. } => caller.partition_key(),
            OutboxMessage::Signal { target, .. } | OutboxMessage::Await { target, .. } => target.partition_key(),
            OutboxMessage::AwaitedResult { waiter, .. } => waiter.partition_key(),
        }
    }
}

/// A call as the caller's journal states it. The state machine does not know the
/// schema, so the callee's kind (service, virtual object, workflow; shared handler or
/// not) is left for the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundInvocation {
    /// Derived from the caller's id and the command's index (stable across replays), and
    /// routed like [`InvocationId::for_target`].
    pub id: InvocationId,
    pub service: String,
    pub handler: String,
    /// The callee's key; `None` when the command's key was empty.
    pub key: Option<String>,
    #[serde(with = "base64_bytes")]
    pub input: Bytes,
    pub headers: Vec<(String, String)>,
    pub idempotency_key: Option<String>,
    /// `Caller` for calls, `None` for one-way calls.
    pub response: ResponseSink,
    /// A delayed one-way call's start time (`OneWayCallCommand.invoke_time`, ms since the
    /// UNIX epoch; 0 = at once): the callee's partition holds it `Scheduled` until then.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invoke_at_ms: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl OutboundInvocation {
    /// The `Invoke` request for the callee's partition, with the kind the schema gives.
    pub fn into_request(self, kind: ServiceType, handler_shared: bool, submitted_at_ms: u64) -> InvocationRequest {
        InvocationRequest {
            id: self.id,
            target: Target { service: self.service, handler: self.handler, key: self.key, kind, handler_shared },
            input: self.input,
            headers: self.headers,
            idempotency_key: self.idempotency_key,
            response: self.response,
            submitted_at_ms,
            invoke_at_ms: self.invoke_at_ms,
        }
    }

    /// What to append instead when the call cannot be made (e.g. the schema has no such
    /// service or handler: `Failure::new(404, ...)`): the failure for a waiting caller,
    /// `None` for a one-way call (nobody to tell).
    pub fn rejection(&self, failure: Failure) -> Option<Command> {
        match &self.response {
            ResponseSink::Caller { invocation_id, completion_id } => {
                Some(Command::CallResult { id: *invocation_id, completion_id: *completion_id, result: Err(failure) })
            }
            ResponseSink::None | ResponseSink::Ingress { .. } | ResponseSink::Awaiter { .. } => None,
        }
    }
}
