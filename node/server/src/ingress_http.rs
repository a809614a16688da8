//! Ingress HTTP (8080) on nodes with the worker or http-ingress role.
//!
//! Every request is routed against the registered services (the `schema` metadata
//! object) by [`crate::ingress_route`]: unknown services or handlers get 404 naming
//! them, wrong methods 405, bodies over `[ingress] request-body-size-limit` 413. Valid
//! invocations go to their partition's leader ([`crate::invocations::submit`]): the
//! call waits for the result (200 with the handler's output, or the failure's code),
//! `/send` answers 202 with the invocation id at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use restate_metadata::objects::Schema;
use serde_json::json;

use crate::ingress_route::{route, IngressRequest, Target};
use crate::routing_metadata::RoutingMetadata;
use crate::running_roles::RunningRoles;

/// What routing sees before any deployment was registered.
static EMPTY_SCHEMA: std::sync::LazyLock<Schema> = std::sync::LazyLock::new(Schema::default);
use restate_metadata::objects::HandlerType;
use restate_partition::{self as partition, Failure, InvocationId, InvocationRequest, InvocationResult, ResponseSink};
use restate_proto::worker as pb;
use restate_worker::processor::InvocationLookup;

#[derive(Clone)]
struct Ingress {
    metadata: Arc<RoutingMetadata>,
    worker: RunningRoles,
    body_limit: usize,
}

pub(crate) fn router(metadata: Arc<RoutingMetadata>, worker: RunningRoles, body_limit: u64) -> Router {
    let body_limit = usize::try_from(body_limit).unwrap_or(usize::MAX);
    Router::new()
        .fallback(handle)
        .with_state(Ingress { metadata, worker, body_limit })
        .layer(DefaultBodyLimit::disable())
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
    // The cached registry first; a 404 is only answered after a fresh read (the service
    // may have been registered through another node a moment ago).
    let mut routed = Err(None);
    for fresh in [false, true] {
        routed = match ingress.metadata.schema(fresh).await {
            Ok(schema) => route(&parts.method, &path, schema.as_ref().map_or(&EMPTY_SCHEMA, |s| &s.0)).map_err(Some),
            Err(e) => {
                let reason = format!("service registry unavailable: {e}");
                return answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason);
            }
        };
        if !matches!(&routed, Err(Some(refusal)) if refusal.status == StatusCode::NOT_FOUND) {
            break;
        }
    }
    let request = match routed {
        Ok(request) => request,
        Err(refusal) => {
            let refusal = refusal.expect("routed at least once");
            let code = if refusal.status == StatusCode::NOT_FOUND { "not_found" } else { "bad_request" };
            return answer(refusal.status, code, refusal.message);
        }
    };
    let body: Bytes = match axum::body::to_bytes(body, ingress.body_limit).await {
        Ok(body) => body,
        Err(e) => {
            let too_large = std::iter::successors(std::error::Error::source(&e), |s| s.source())
                .any(|s| s.is::<http_body_util::LengthLimitError>());
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
        IngressRequest::Invoke { target, send } => {
            let idempotency_key = parts.headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| !name.as_str().starts_with("content-") && *name != http::header::HOST)
                .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
                .collect();
            let delay = match send_delay(parts.uri.query(), send) {
                Ok(delay) => delay,
                Err(reason) => return answer(StatusCode::BAD_REQUEST, "bad_request", reason),
            };
            let workflow_run = target.is_workflow_run();
            let request = invocation_request(target, body, headers, idempotency_key, delay);
            let id = request.id;
            if send && workflow_run {
                match lookup(&ingress, &id).await {
                    Ok(InvocationLookup::NotFound) => {}
                    Ok(_) => {
                        let answer = json!({ "invocationId": id.to_string(), "status": "PreviouslyAccepted" });
                        return (StatusCode::ACCEPTED, Json(answer)).into_response();
                    }
                    Err(reason) => return answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason),
                }
            }
            match crate::invocations::submit(&ingress.metadata, &ingress.worker, request, !send).await {
                Ok(None) => {
                    (StatusCode::ACCEPTED, Json(json!({ "invocationId": id.to_string(), "status": "Accepted" })))
                        .into_response()
                }
                Ok(Some(result)) => result_response(result),
                Err(reason) => answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason),
            }
        }
        IngressRequest::Attach { invocation_id } => {
            let id = match parse_id(&invocation_id) {
                Ok(id) => id,
                Err(refusal) => return *refusal,
            };
            attach(&ingress, id).await
        }
        IngressRequest::Output { invocation_id } => {
            let id = match parse_id(&invocation_id) {
                Ok(id) => id,
                Err(refusal) => return *refusal,
            };
            output(&ingress, id).await
        }
        IngressRequest::WorkflowAttach { workflow, key } => {
            attach(&ingress, InvocationId::for_workflow_run(&workflow, &key)).await
        }
        IngressRequest::WorkflowOutput { workflow, key } => {
            output(&ingress, InvocationId::for_workflow_run(&workflow, &key)).await
        }
        IngressRequest::CompleteAwakeable { awakeable_id, resolve } => {
            complete_awakeable(&ingress, &awakeable_id, resolve, body).await
        }
    }
}

/// An invocation's state now, from its partition's leader.
async fn lookup(ingress: &Ingress, id: &InvocationId) -> Result<InvocationLookup, String> {
    let found = crate::invocations::on_leader(&ingress.metadata, id, |mut client, partition| {
        let reference = pb::InvocationRef { partition_id: partition.0 as u32, invocation_id: id.to_string() };
        async move { client.lookup(reference).await }
    })
    .await;
    found.map(crate::invocations::lookup_from_wire)
}

/// `.../attach`: waits for the invocation's result (404 when it is unknown).
async fn attach(ingress: &Ingress, id: InvocationId) -> Response {
    let attached = crate::invocations::on_leader(&ingress.metadata, &id, |mut client, partition| {
        let reference = pb::InvocationRef { partition_id: partition.0 as u32, invocation_id: id.to_string() };
        async move { client.attach(reference).await }
    })
    .await;
    match attached.map(crate::invocations::from_wire) {
        Ok(Some(result)) => result_response(result),
        Ok(None) => answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the leader gave no result".into()),
        Err(reason) => answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason),
    }
}

/// `.../output`: the result if the invocation completed, 470 while it runs, 404 unknown.
async fn output(ingress: &Ingress, id: InvocationId) -> Response {
    match lookup(ingress, &id).await {
        Ok(InvocationLookup::Completed(result)) => result_response(result),
        Ok(InvocationLookup::Running { status }) => answer(
            NOT_READY,
            "not_ready",
            format!("invocation {id} has not completed yet (status: {status}); GET .../attach waits for it"),
        ),
        Ok(InvocationLookup::NotFound) => answer(StatusCode::NOT_FOUND, "not_found", Failure::not_found(&id).message),
        Err(reason) => answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason),
    }
}

/// `POST /restate/awakeables/{id}/resolve|reject`: 202 once the owning invocation's
/// partition has it (or already had a completion: the first wins), 404 when the
/// invocation is unknown or purged, 400 for a malformed id. Waits (bounded) for a
/// partition leader during a fail-over, as calls do.
async fn complete_awakeable(ingress: &Ingress, awakeable_id: &str, resolve: bool, body: Bytes) -> Response {
    let (id, index) = match partition::parse_awakeable_id(awakeable_id) {
        Ok(parsed) => parsed,
        Err(e) => return answer(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    let result = if resolve {
        partition::SignalResult::Value(body)
    } else {
        let message = String::from_utf8_lossy(&body).trim().to_owned();
        let message = if message.is_empty() { "rejected".to_owned() } else { message };
        partition::SignalResult::Failure(Failure::new(500, message))
    };
    let signal = partition::SignalId::Index(index);
    let found = crate::invocations::on_leader(&ingress.metadata, &id, |mut client, partition| {
        let request = crate::invocations::notify_to_wire(partition, &id, &signal, &result);
        async move { client.notify(request).await }
    })
    .await;
    match found.map(crate::invocations::lookup_from_wire) {
        Ok(InvocationLookup::NotFound) => answer(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("awakeable {awakeable_id}: its invocation {id} is unknown (never started, or purged after its retention)"),
        ),
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(reason) => answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason),
    }
}

/// The `delay` query parameter of a `/send` (`?delay=10s`, `500ms`, `1.5m`, `2h`, or ISO
/// 8601 `PT10S`): the invocation starts that much later. Refused on calls (a call waits
/// for its result) and when it does not parse.
fn send_delay(query: Option<&str>, send: bool) -> Result<Option<std::time::Duration>, String> {
    let Some(raw) = query.into_iter().flat_map(|q| q.split('&')).find_map(|pair| pair.strip_prefix("delay=")) else {
        return Ok(None);
    };
    let text = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    if !send {
        return Err(format!(
            "delay={text}: only /send accepts a delay (a call waits for its result); use .../send?delay={text}"
        ));
    }
    restate_config::parse_duration(&text)
        .map(Some)
        .map_err(|e| format!("delay={text}: {e} (for example ?delay=10s, 500ms, 5m, PT10S)"))
}

/// Restate's status for `/output` of an invocation that has not completed yet.
const NOT_READY: StatusCode = match StatusCode::from_u16(470) {
    Ok(status) => status,
    Err(_) => panic!("470 is a valid status code"),
};

/// The id in an attach/output path, or the 400 answer.
fn parse_id(text: &str) -> Result<InvocationId, Box<Response>> {
    text.parse().map_err(|e| Box::new(answer(StatusCode::BAD_REQUEST, "bad_request", format!("{e}"))))
}

/// 200 with the handler's output, or the failure's code (a 4xx/5xx; anything else 500)
/// with its message.
fn result_response(result: InvocationResult) -> Response {
    match result {
        Ok(output) => (StatusCode::OK, [(http::header::CONTENT_TYPE, "application/json")], output).into_response(),
        Err(failure) => {
            let status = u16::try_from(failure.code)
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            answer(status, "invocation_failed", failure.message)
        }
    }
}

/// The log command for a routed invocation. With an idempotency key the id is derived
/// from (service, handler, key, idempotency key), so a repeated request is the same
/// invocation; otherwise it is random.
fn invocation_request(
    target: Target,
    input: Bytes,
    headers: Vec<(String, String)>,
    idempotency_key: Option<String>,
    delay: Option<std::time::Duration>,
) -> InvocationRequest {
    let now_ms = restate_worker::processor::now_ms();
    let id = match (target.is_workflow_run(), &target.key, &idempotency_key) {
        // One run per workflow key: a second submission joins the first.
        (true, Some(key), _) => InvocationId::for_workflow_run(&target.service, key),
        (_, key, Some(idempotency_key)) => {
            InvocationId::for_idempotent_request(&target.service, &target.handler, key.as_deref(), idempotency_key)
        }
        (_, key, None) => {
            InvocationId::for_target(&target.service, &target.handler, key.as_deref(), None, rand::random())
        }
    };
    InvocationRequest {
        id,
        target: partition::Target {
            service: target.service,
            handler: target.handler,
            key: target.key,
            kind: target.ty,
            handler_shared: target.handler_ty == Some(HandlerType::Shared),
        },
        input,
        headers,
        idempotency_key,
        response: ResponseSink::None,
        submitted_at_ms: now_ms,
        invoke_at_ms: delay.map_or(0, |delay| now_ms.saturating_add(delay.as_millis() as u64)),
    }
}
