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

/// The invocation a command's target names: by id, by idempotent request (the id the
/// ingress derives from the idempotency key) or by workflow key (its run).
pub(crate) fn target_id(
    invocation_id: Option<&str>,
    idempotent: Option<&pb::IdempotentRequestTarget>,
    workflow: Option<&pb::WorkflowTarget>,
) -> Result<InvocationId, Failure> {
    if let Some(text) = invocation_id {
        return text.parse().map_err(|e| Failure::new(400, format!("{e}")));
    }
    if let Some(target) = idempotent {
        let key = target.service_key.as_deref().filter(|k| !k.is_empty());
        return Ok(InvocationId::for_idempotent_request(
            &target.service_name,
            &target.handler_name,
            key,
            &target.idempotency_key,
        ));
    }
    if let Some(target) = workflow {
        return Ok(InvocationId::for_workflow_run(&target.workflow_name, &target.workflow_key));
    }
    Err(Failure::new(400, "the command names no target invocation"))
}
