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

const STATUSES: [&str; 5] = ["scheduled", "inboxed", "invoked", "suspended", "completed"];

pub(crate) fn router(metadata: Arc<RoutingMetadata>) -> Router {
    Router::new()
        .route("/invocations", get(list))
        .route("/invocations/{id}", get(describe).delete(delete))
        .route("/invocations/{id}/cancel", patch(|s, p| signal(s, p, Action::Cancel)))
        .route("/invocations/{id}/kill", patch(|s, p| signal(s, p, Action::Kill)))
        .route("/invocations/{id}/purge", patch(|s, p| signal(s, p, Action::Purge)))
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
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Kill => "kill",
            Action::Purge => "purge",
        }
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
        (InvocationLookup::Running { status }, Action::Purge) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("invocation {id} is {status}, not completed: cancel or kill it first, then purge it"),
        )),
        (InvocationLookup::Running { status }, _) => accepted(&status),
    }
}
