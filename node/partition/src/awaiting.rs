//! Handlers waiting on other invocations' results: `AttachInvocationCommand` (waits for the
//! target to complete) and `GetInvocationOutputCommand` (answers at once, "not ready"
//! while the target runs), by invocation id, idempotent request or workflow key.
//!
//! The waiter's partition sends the request through its outbox; the target's partition
//! answers through its own outbox as [`Command::AwaitedResult`](super::Command), which
//! appends the matching notification to the waiter's journal.

use serde::{Deserialize, Serialize};

use super::ids::InvocationId;
use super::outcome::{invocation_result, Failure, InvocationResult};
use restate_service_protocol::protocol::pb;

/// What a waiting handler asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Awaits {
    /// The target's result once it completes (`AttachInvocationCommand`).
    Attach,
    /// The target's result if it completed, else "not ready" (`GetInvocationOutputCommand`).
    GetOutput,
}

/// The answer to a waiting handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwaitedOutcome {
    /// The target has not completed (only for [`Awaits::GetOutput`]).
    NotReady,
    Completed(#[serde(with = "invocation_result")] InvocationResult),
}

/// How an attach or get-output command names its target (the same oneof in both).
pub(crate) enum TargetRef<'a> {
    Id(&'a str),
    Idempotent(&'a pb::IdempotentRequestTarget),
    Workflow(&'a pb::WorkflowTarget),
}

impl<'a> TargetRef<'a> {
    pub(crate) fn of_attach(command: &'a pb::AttachInvocationCommandMessage) -> Option<TargetRef<'a>> {
        use pb::attach_invocation_command_message::Target as T;
        Some(match command.target.as_ref()? {
            T::InvocationId(text) => TargetRef::Id(text),
            T::IdempotentRequestTarget(target) => TargetRef::Idempotent(target),
            T::WorkflowTarget(target) => TargetRef::Workflow(target),
        })
    }

    pub(crate) fn of_get_output(command: &'a pb::GetInvocationOutputCommandMessage) -> Option<TargetRef<'a>> {
        use pb::get_invocation_output_command_message::Target as T;
        Some(match command.target.as_ref()? {
            T::InvocationId(text) => TargetRef::Id(text),
            T::IdempotentRequestTarget(target) => TargetRef::Idempotent(target),
            T::WorkflowTarget(target) => TargetRef::Workflow(target),
        })
    }
}

/// The invocation a command's target names: by id, by idempotent request (the id the
/// ingress derives from the idempotency key) or by workflow key (its run).
pub(crate) fn target_id(target: Option<TargetRef<'_>>) -> Result<InvocationId, Failure> {
    match target {
        Some(TargetRef::Id(text)) => text.parse().map_err(|e| Failure::new(400, format!("{e}"))),
        Some(TargetRef::Idempotent(target)) => Ok(InvocationId::for_idempotent_request(
            &target.service_name,
            &target.handler_name,
            target.service_key.as_deref().filter(|k| !k.is_empty()),
            &target.idempotency_key,
        )),
        Some(TargetRef::Workflow(target)) => {
            Ok(InvocationId::for_workflow_run(&target.workflow_name, &target.workflow_key))
        }
        None => Err(Failure::new(400, "the command names no target invocation")),
    }
}
