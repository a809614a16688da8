//! Admin REST API (9070): `/health`, `/status`, the service registry ([`deployments`])
//! and invocations ([`invocations`]); errors are [`error::ApiError`].
//!
//! - `POST /deployments` `{"uri", "additional_headers"?, "force"?, "dry_run"?}`: discovers
//!   the deployment (`GET {uri}/discover`), then records it and its services in the
//!   `Schema` metadata object (read-modify-write with a version precondition, so
//!   concurrent registrations through different nodes never lose one another). 201 with
//!   the deployment id and its services; 200 when the same URI is already registered
//!   identically (nothing changes) or for a dry run.
//! - `GET /deployments`, `GET /deployments/{id}`, `DELETE /deployments/{id}[?force=true]`.
//! - `GET /services`, `GET /services/{name}`.
//! - `/invocations`: see [`invocations`].
//! - `POST /query`: SQL over the cluster's tables, see [`query`].
//! - `GET /cluster`: nodes, partitions and logs for the UI's overview ([`cluster`]).
//! - `GET /services/{service}/state/{key}`, `POST /services/{service}/state`: an object's
//!   state, read and replaced with a version precondition ([`state`]).
//! - `/ui/`: the web UI ([`ui`]); `GET /` from a browser redirects there.
//!
//! Errors are JSON `{"message": ...}`: 400 for unusable requests, 404 for unknown ids and
//! names, 409 for what `force` would allow, 502 when the deployment cannot be discovered,
//! 503 when the metadata store does not answer. Client input never causes a 500.

mod cluster;
mod deployments;
mod error;
mod invocations;
mod query;
mod state;
mod ui;

use std::sync::Arc;

use axum::http::{Method, StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use restate_metadata::MetadataStore;
use serde_json::json;

use restate_service_protocol::{DeploymentClient, RequestSigner};

use crate::lifecycle::NodeState;
use crate::routing_metadata::RoutingMetadata;
use error::ApiError;

/// The admin API; discovery requests are signed with `request_signer`; `queries` answers
/// `POST /query`.
pub(crate) fn router(
    state: NodeState,
    metadata: Arc<dyn MetadataStore>,
    routing: Arc<RoutingMetadata>,
    request_signer: Option<Arc<RequestSigner>>,
    queries: restate_query::QueryEngine,
    ctl: Arc<crate::node_ctl_context::NodeCtlContext>,
) -> Router {
    Router::new()
        .route("/health", get(|| async { "OK\n" }))
        .route(
            "/status",
            get(move || {
                let phase = state.phase();
                async move { Json(json!({ "phase": phase.name(), "reason": phase.reason() })) }
            }),
        )
        .merge(deployments::router(metadata, DeploymentClient::default().with_request_identity(request_signer)))
        .merge(invocations::router(routing.clone()))
        .merge(state::router(routing))
        .merge(query::router(queries))
        .merge(cluster::router(ctl))
        .merge(ui::router())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn unknown_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no such admin endpoint: {method} {}; the admin API serves /health, /status, /deployments[/{{id}}], /services[/{{name}}] and /invocations[/{{id}}[/cancel|/kill]]",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{} does not accept {method}", uri.path()))
}
