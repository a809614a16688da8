//! Durable promises of workflows: one value or failure per (workflow, key, promise name),
//! completed once by `CompletePromiseCommand` (from the run handler or a shared handler)
//! and read by `GetPromiseCommand` (waits until completed) or `PeekPromiseCommand` (answers
//! at once). Kept with the workflow's state until the run's result is purged.

use serde::{Deserialize, Serialize};

use super::ids::InvocationId;
use super::outcome::{invocation_result, Failure, InvocationResult};
use restate_service_protocol::protocol::pb;

/// A promise as stored under `keys::promise`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromiseState {
    /// Not completed yet; these `GetPromiseCommand`s wait for it.
    Pending {
        waiters: Vec<PromiseWaiter>,
    },
    Completed(#[serde(with = "invocation_result")] InvocationResult),
}

/// A `GetPromiseCommand` waiting for the promise: its invocation and completion id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseWaiter {
    pub id: InvocationId,
    pub completion_id: u32,
}

/// The value or failure a `CompletePromiseCommand` carries; `None` when it carries neither.
pub(crate) fn completion_of(command: &pb::CompletePromiseCommandMessage) -> Option<InvocationResult> {
    use pb::complete_promise_command_message::Completion;
    match command.completion.as_ref()? {
        Completion::CompletionValue(value) => Some(Ok(value.content.clone())),
        Completion::CompletionFailure(failure) => Some(Err(Failure::from_pb(failure))),
    }
}

/// The failure a second completion of promise `name` gets (the first wins).
pub(crate) fn already_completed(name: &str) -> Failure {
    Failure::new(409, format!("promise '{name}' is already completed"))
}

/// The failure of promise commands outside a workflow (no key to keep the promise under).
pub(crate) fn outside_workflow(name: &str) -> Failure {
    Failure::new(400, format!("promise '{name}': durable promises exist only in workflows"))
}
