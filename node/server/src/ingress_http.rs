//! Ingress HTTP (8080) on nodes with the worker or http-ingress role.
//!
//! Invocations need registered deployments; until a service is registered every service
//! path answers 404 naming the service, which is what a client of a cluster without
//! deployments sees.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;

pub(crate) fn router() -> Router {
    Router::new()
        .route("/restate/health", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/{service}", any(unknown_service))
        .route("/{service}/{*rest}", any(unknown_service_with_path))
}

async fn unknown_service(Path(service): Path<String>) -> (StatusCode, Json<serde_json::Value>) {
    not_found(&service)
}

async fn unknown_service_with_path(
    Path((service, _)): Path<(String, String)>,
) -> (StatusCode, Json<serde_json::Value>) {
    not_found(&service)
}

fn not_found(service: &str) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "code": "not_found",
            "message": format!("service '{service}' not found: no deployment registered for it (register one with `restate deployments register <URL>`)"),
        })),
    )
}
