//! Admin REST API for invocations (9070), answered by the partition leaders:
//!
//! - `GET /invocations[?status=S][&limit=N]`: every invocation the partitions still hold
//!   (running, inboxed, suspended, and completed ones within their retention), oldest
//!   first; `unavailable` lists partitions whose leader did not answer.
//! - `GET /invocations/{id}`: one invocation's status (and result once completed).
//! - `PATCH /invocations/{id}/cancel`, `PATCH /invocations/{id}/kill`, and Restate's older
//!   `DELETE /invocations/{id}?mode=cancel|kill` (default cancel): 202 when the signal was
//!   appended, 404 for an unknown id, 409 when it already completed.
//! - `PATCH /invocations/{id}/purge` (or `DELETE ...?mode=purge`): forgets a completed
//!   invocation (result, idempotency key) now: 202, 404 unknown, 409 while it runs.
//! - `PATCH /invocations/{id}/pause`: a running or suspended invocation stops until
//!   resumed (its attempt in flight is dropped): 202, 409 if pending, scheduled or done.
//! - `PATCH /invocations/{id}/resume[?deployment=latest|keep]`: a paused or suspended
//!   invocation runs now, a backing-off one retries now (every attempt goes to the
//!   service's latest deployment, so a fixed deployment registered meanwhile is used).
//! - `PATCH /invocations/{id}/restart-as-new`: a new invocation with a completed one's
//!   target, input and headers: 200 `{"new_invocation_id": ...}`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use restate_partition::InvocationId;
use restate_proto::worker as pb;
use restate_worker::processor::InvocationLookup;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::invocations::{list_all, lookup_from_wire, on_leader};
use crate::routing_metadata::RoutingMetadata;

const STATUSES: [&str; 6] = ["scheduled", "inboxed", "invoked", "suspended", "paused", "completed"];

pub(crate) fn router(metadata: Arc<RoutingMetadata>) -> Router {
    Router::new()
        .route("/invocations", get(list))
        .route("/invocations/{id}", get(describe).delete(delete))
        .route("/invocations/{id}/cancel", patch(|s, p| signal(s, p, Action::Cancel)))
        .route("/invocations/{id}/kill", patch(|s, p| signal(s, p, Action::Kill)))
        .route("/invocations/{id}/purge", patch(|s, p| signal(s, p, Action::Purge)))
        .route("/invocations/{id}/pause", patch(|s, p| signal(s, p, Action::Pause)))
        .route("/invocations/{id}/resume", patch(resume))
        .route("/invocations/{id}/restart-as-new", patch(restart_as_new))
        .with_state(metadata)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(metadata): State<Arc<RoutingMetadata>>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::bad_request(format!("{e}; GET /invocations takes ?status=<{}> and ?limit=<n>", STATUSES.join("|")))
    })?;
    if let Some(status) = &query.status {
        if !STATUSES.contains(&status.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown status '{status}': use one of {}",
                STATUSES.join(", ")
            )));
        }
    }
    let (all, unavailable) = list_all(&metadata)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot list invocations: {e}")))?;
    let invocations: Vec<Value> = all
        .iter()
        .filter(|i| query.status.as_ref().is_none_or(|s| *s == i.status))
        .take(query.limit.unwrap_or(usize::MAX))
        .map(summary_json)
        .collect();
    Ok(Json(json!({ "invocations": invocations, "unavailable": unavailable })))
}

fn summary_json(i: &pb::InvocationSummary) -> Value {
    json!({
        "id": i.invocation_id,
        "partition_id": i.partition_id,
        "target": i.target,
        "status": i.status,
        "idempotency_key": i.idempotency_key,
        "submitted_at_ms": i.submitted_at_ms,
        "completed_at_ms": i.completed_at_ms,
        "failure": i.failed.then(|| json!({ "code": i.failure_code, "message": i.failure_message })),
        "attempt": i.attempt.as_ref().map(|a| json!({
            "retry_count": a.retry_count,
            "in_flight": a.in_flight,
            "last_start_at_ms": a.last_start_at_ms,
            "next_retry_at_ms": a.next_retry_at_ms,
            "last_failure": a.last_failure,
            "last_failure_error_code": a.last_failure_code,
            "deployment_id": a.deployment_id,
        })),
    })
}

fn parse_id(text: &str) -> Result<InvocationId, ApiError> {
    text.parse().map_err(|e| ApiError::bad_request(format!("'{text}' is not an invocation id: {e}")))
}

fn unavailable(e: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e)
}

fn not_found(id: &InvocationId) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("invocation {id} not found (never submitted, or purged after [worker] idempotency-retention)"),
    )
}

async fn describe(
    State(metadata): State<Arc<RoutingMetadata>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let found = on_leader(&metadata, &id, |mut client, partition| {
        let reference = pb::InvocationRef { partition_id: partition.0 as u32, invocation_id: id.to_string() };
        async move { client.lookup(reference).await }
    })
    .await
    .map_err(unavailable)?;
    Ok(Json(match lookup_from_wire(found) {
        InvocationLookup::NotFound => return Err(not_found(&id)),
        InvocationLookup::Running { status } => json!({ "id": id.to_string(), "status": status }),
        InvocationLookup::Completed(Ok(output)) => json!({
            "id": id.to_string(),
            "status": "completed",
            "output": String::from_utf8_lossy(&output),
        }),
        InvocationLookup::Completed(Err(failure)) => json!({
            "id": id.to_string(),
            "status": "completed",
            "failure": { "code": failure.code, "message": failure.message },
        }),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    mode: Option<String>,
}

async fn delete(
    state: State<Arc<RoutingMetadata>>,
    path: Path<String>,
    query: Result<Query<DeleteQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::bad_request(format!("{e}; use ?mode=cancel, ?mode=kill or ?mode=purge")))?;
    let action = match query.mode.as_deref() {
        None | Some("cancel") => Action::Cancel,
        Some("kill") => Action::Kill,
        Some("purge") => Action::Purge,
        Some(other) => return Err(ApiError::bad_request(format!("unknown mode '{other}': use cancel, kill or purge"))),
    };
    signal(state, path, action).await
}

/// What `PATCH /invocations/{id}/...` (or `DELETE ...?mode=`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Ask a running invocation to stop.
    Cancel,
    /// Stop a running invocation at once.
    Kill,
    /// Forget a completed invocation (its result and idempotency key).
    Purge,
    /// Stop running a running or suspended invocation until resumed.
    Pause,
    /// Run a paused or suspended invocation now; retry a backing-off one now.
    Resume,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Kill => "kill",
            Action::Purge => "purge",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }

    /// Why `action` does not apply to a running invocation in `status` (`None`: it does).
    fn refusal(self, id: &InvocationId, status: &str) -> Option<String> {
        match (self, status) {
            (Action::Purge, _) => {
                Some(format!("invocation {id} is {status}, not completed: cancel or kill it first, then purge it"))
            }
            (Action::Pause, "inboxed" | "scheduled") | (Action::Resume, "inboxed" | "scheduled") => Some(format!(
                "invocation {id} is {}: it has not started, so there is nothing to {}",
                if status == "inboxed" { "pending (waiting for its key's lock)" } else { "scheduled" },
                self.name()
            )),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResumeQuery {
    deployment: Option<String>,
}

/// `?deployment=`: `latest` and `keep` are what this cluster does anyway (every attempt
/// goes to the service's latest deployment; nothing is pinned).
fn check_deployment_choice(deployment: Option<&str>) -> Result<(), ApiError> {
    match deployment {
        None | Some("latest") | Some("keep") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "deployment '{other}': this cluster runs every attempt on the service's latest deployment and pins none; \
             register the deployment to use (restate deployments register) and resume with ?deployment=latest"
        ))),
    }
}

async fn resume(
    state: State<Arc<RoutingMetadata>>,
    path: Path<String>,
    query: Result<Query<ResumeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("{e}; use ?deployment=latest")))?;
    check_deployment_choice(query.deployment.as_deref())?;
    signal(state, path, Action::Resume).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestartQuery {
    from: Option<u32>,
    deployment: Option<String>,
}

async fn restart_as_new(
    State(metadata): State<Arc<RoutingMetadata>>,
    Path(id): Path<String>,
    query: Result<Query<RestartQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("{e}; use ?from=0 and ?deployment=latest")))?;
    if query.from.is_some_and(|from| from != 0) {
        return Err(ApiError::bad_request(
            "restarting from a journal prefix is not supported: a completed invocation's journal is not kept; \
             omit ?from (or use ?from=0) to restart from the input",
        ));
    }
    check_deployment_choice(query.deployment.as_deref())?;
    let id = parse_id(&id)?;
    // One new id for every attempt: a retried request starts the new invocation once.
    let new_uuid: [u8; 16] = rand::random();
    let answer = on_leader(&metadata, &id, |mut client, partition| {
        let request = pb::RestartAsNewRequest {
            partition_id: partition.0 as u32,
            invocation_id: id.to_string(),
            new_uuid: new_uuid.to_vec(),
        };
        async move { client.restart_as_new(request).await }
    })
    .await
    .map_err(unavailable)?;
    use pb::restart_as_new_response::Refusal;
    let conflict = |message: String| Err(ApiError::new(StatusCode::CONFLICT, message));
    match answer.refusal() {
        Refusal::None => Ok(Json(json!({ "new_invocation_id": answer.new_invocation_id })).into_response()),
        Refusal::NotFound => Err(not_found(&id)),
        Refusal::NotCompleted => conflict(format!(
            "invocation {id} is {}, not completed: only a completed invocation can be restarted as new",
            answer.status
        )),
        Refusal::WorkflowRun => conflict(format!(
            "invocation {id} is a workflow's run, which has one id per key: purge it and submit the workflow again"
        )),
        Refusal::InputNotKept => conflict(format!(
            "invocation {id} completed before this cluster kept the inputs of completed invocations: submit it again"
        )),
    }
}

async fn signal(
    State(metadata): State<Arc<RoutingMetadata>>,
    Path(id): Path<String>,
    action: Action,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let found = on_leader(&metadata, &id, |mut client, partition| {
        let request = pb::SignalRequest {
            partition_id: partition.0 as u32,
            invocation_id: id.to_string(),
            kill: action == Action::Kill,
            purge: action == Action::Purge,
            pause: action == Action::Pause,
            resume: action == Action::Resume,
        };
        async move { client.signal(request).await }
    })
    .await
    .map_err(unavailable)?;
    let name = action.name();
    let accepted = |previous: &str| {
        Ok((StatusCode::ACCEPTED, Json(json!({ "id": id.to_string(), "action": name, "previous_status": previous })))
            .into_response())
    };
    match (lookup_from_wire(found), action) {
        (InvocationLookup::NotFound, _) => Err(not_found(&id)),
        (InvocationLookup::Completed(_), Action::Purge) => accepted("completed"),
        (InvocationLookup::Completed(_), _) => {
            Err(ApiError::new(StatusCode::CONFLICT, format!("invocation {id} already completed; nothing to {name}")))
        }
        (InvocationLookup::Running { status }, action) => match action.refusal(&id, status) {
            Some(refusal) => Err(ApiError::new(StatusCode::CONFLICT, refusal)),
            None => accepted(status),
        },
    }
}
