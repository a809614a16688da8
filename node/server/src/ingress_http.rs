//! Ingress HTTP (8080) on nodes with the worker or http-ingress role.
//!
//! Every request is routed against the registered services (the `schema` metadata
//! object) by [`crate::ingress_route`]: unknown services or handlers get 404 naming
//! them, wrong methods 405, bodies over `[ingress] request-body-size-limit` 413. Valid
//! invocations are answered 503 for now: executing them needs the partition
//! processors, which are not wired to the ingress yet.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use restate_metadata::objects::Schema;
use restate_metadata::{typed, MetadataStore};
use serde_json::json;

use crate::ingress_route::{route, IngressRequest};

#[derive(Clone)]
struct Ingress {
    metadata: Arc<dyn MetadataStore>,
    body_limit: usize,
}

pub(crate) fn router(metadata: Arc<dyn MetadataStore>, body_limit: u64) -> Router {
    let body_limit = usize::try_from(body_limit).unwrap_or(usize::MAX);
    Router::new().fallback(handle).with_state(Ingress { metadata, body_limit }).layer(DefaultBodyLimit::disable())
}

fn answer(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

async fn handle(State(ingress): State<Ingress>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if path == "/restate/health" && parts.method == http::Method::GET {
        return Json(json!({ "status": "ok" })).into_response();
    }
    let schema = match typed::get::<Schema>(ingress.metadata.as_ref()).await {
        Ok(found) => found.map(|(s, _)| s).unwrap_or_default(),
        Err(e) => {
            return answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("service registry unavailable: {e}"))
        }
    };
    let request = match route(&parts.method, &path, &schema) {
        Ok(request) => request,
        Err(refusal) => {
            let code = if refusal.status == StatusCode::NOT_FOUND { "not_found" } else { "bad_request" };
            return answer(refusal.status, code, refusal.message);
        }
    };
    let body: Bytes = match axum::body::to_bytes(body, ingress.body_limit).await {
        Ok(body) => body,
        Err(e) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            return if too_large {
                answer(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "request body larger than {} bytes ([ingress] request-body-size-limit)",
                        ingress.body_limit
                    ),
                )
            } else {
                answer(StatusCode::BAD_REQUEST, "bad_request", format!("unreadable request body: {e}"))
            };
        }
    };
    match request {
        IngressRequest::Health => Json(json!({ "status": "ok" })).into_response(),
        IngressRequest::Invoke { target, send } => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "{}{}/{}{} ({} bytes) is a valid invocation, but this build does not execute invocations yet: partition processors are not wired to the ingress",
                target.service,
                target.key.map(|k| format!("/{k}")).unwrap_or_default(),
                target.handler,
                if send { "/send" } else { "" },
                body.len()
            ),
        ),
        IngressRequest::Attach { invocation_id } | IngressRequest::Output { invocation_id } => {
            answer(StatusCode::NOT_FOUND, "not_found", format!("invocation '{invocation_id}' not found"))
        }
    }
}
