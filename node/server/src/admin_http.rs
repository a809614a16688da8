//! Admin REST API (9070). For now: `GET /health`; deployments arrive with the worker layer.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::lifecycle::NodeState;

pub(crate) fn router(state: NodeState) -> Router {
    Router::new().route("/health", get(|| async { "OK\n" })).route(
        "/status",
        get(move || {
            let phase = state.phase();
            async move { Json(json!({ "phase": phase.name(), "reason": phase.reason() })) }
        }),
    )
}
