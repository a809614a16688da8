//! What applying a record asks the leader to do, and what a new leader finds to do.
//!
//! Followers drop effects. The leader acts on them after `apply` or `apply_batch`
//! returned: the state they follow from is stored by then, possibly with the changes of
//! later records of the same run (an effect reads the state when it is acted on, so it
//! sees those too). Effects are never needed for correctness after a
//! crash: [`PendingWork`], read from state alone, yields the same work again.

use super::ids::InvocationId;
use super::outbox::OutboxEntry;
use super::outcome::InvocationResult;
use super::record::Timer;

/// One thing for the leader to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start or resume the invocation: run a round with `Start` (eager state from
    /// `read_state`) and its whole journal (see [`super::start_request`]). If a round of
    /// it is already running, let it finish; its records are checked on apply.
    Invoke { id: InvocationId },
    /// The invocation was killed: drop any round of it in flight (its records would be
    /// ignored anyway).
    Abort { id: InvocationId },
    /// Answer the ingress request `request_id` with the invocation's result. Not durable:
    /// an ingress that lost its leader reads the result by id
    /// (`PartitionReads::invocation`) instead.
    Respond { request_id: String, id: InvocationId, result: InvocationResult },
    /// Append `TimerFired { id, completion_id }` once the clock reaches `due_ms` (at once
    /// if it already has).
    ScheduleTimer { due_ms: u64, id: InvocationId, completion_id: u32 },
    /// Route the outbox entry (see [`OutboxMessage`](super::OutboxMessage)), then append
    /// `OutboxDelivered { seq }`.
    Send { entry: OutboxEntry },
}

/// Work a leader must pick up when it takes over: everything the stored state says is in
/// progress. Inboxed invocations are not listed: they start when their key's lock frees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingWork {
    /// Invocations with status `Invoked`: run a round of each.
    pub invoked: Vec<InvocationId>,
    /// Invocations waiting for a notification (a timer, a call result): nothing to do
    /// until it arrives; listed for status reporting.
    pub suspended: Vec<InvocationId>,
    /// Every registered timer, earliest first.
    pub timers: Vec<Timer>,
    /// Every undelivered outbox entry, in order.
    pub outbox: Vec<OutboxEntry>,
}

impl PendingWork {
    /// The effects that restart this work: `Invoke` for each invoked invocation,
    /// `ScheduleTimer` for each timer, `Send` for each outbox entry.
    pub fn effects(&self) -> Vec<Effect> {
        let invokes = self.invoked.iter().map(|id| Effect::Invoke { id: *id });
        let timers = self.timers.iter().map(|t| Effect::ScheduleTimer {
            due_ms: t.due_ms,
            id: t.id,
            completion_id: t.completion_id,
        });
        let sends = self.outbox.iter().map(|entry| Effect::Send { entry: entry.clone() });
        invokes.chain(timers).chain(sends).collect()
    }
}
