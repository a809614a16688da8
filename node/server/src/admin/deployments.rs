//! The service registry on the admin API: `/deployments[/{id}]` and `/services[/{name}]`
//! (see the module docs of `admin` for the requests and answers).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::{HeaderMap, HeaderName, HeaderValue};
use restate_metadata::objects::{
    new_deployment_id, now_rfc3339, Deployment, HandlerDefinition, HandlerType, NewDeployment, Registration,
    RegistrationOutcome, Schema, SchemaError, ServiceDefinition, ServiceSchema,
};
use restate_metadata::{typed, MetadataStore};
use restate_service_protocol::discovery::{EndpointManifest, ProtocolMode};
use restate_service_protocol::protocol::ProtocolVersion;
use restate_service_protocol::{DeploymentClient, DiscoveryError, HttpVersion};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;

/// What the registry handlers share.
struct Admin {
    metadata: Arc<dyn MetadataStore>,
    deployments: DeploymentClient,
}

pub(super) fn router(metadata: Arc<dyn MetadataStore>, deployments: DeploymentClient) -> Router {
    let admin = Arc::new(Admin { metadata, deployments });
    Router::new()
        .route("/deployments", get(list_deployments).post(register_deployment))
        .route(
            "/deployments/{id}",
            get(get_deployment).delete(delete_deployment).patch(update_deployment).put(update_deployment),
        )
        .route("/services", get(list_services))
        .route("/services/{name}", get(get_service).patch(modify_service))
        .with_state(admin)
}

async fn current_schema(metadata: &dyn MetadataStore) -> Result<Schema, ApiError> {
    Ok(typed::get::<Schema>(metadata).await?.map(|(schema, _)| schema).unwrap_or_default())
}

// ---- JSON shapes (close to Restate's admin API) ----

fn handler_json(handler: &HandlerDefinition) -> Value {
    json!({ "name": handler.name, "ty": handler.ty.map(HandlerType::as_str) })
}

fn service_json(service: &ServiceSchema) -> Value {
    json!({
        "name": service.name,
        "ty": service.ty.as_str(),
        "handlers": service.handlers.iter().map(handler_json).collect::<Vec<_>>(),
        "deployment_id": service.deployment_id,
        "revision": service.revision,
        "workflow_completion_retention": service.workflow_completion_retention_ms.map(|ms| format!("{}s", ms / 1000)),
    })
}

/// A deployment; `with_handlers` adds each service's handlers (the single-deployment view).
/// The additional headers' values (often credentials) are never shown, only their names.
fn deployment_json(schema: &Schema, deployment: &Deployment, with_handlers: bool) -> Value {
    let services: Vec<Value> = deployment
        .services
        .iter()
        .map(|s| {
            let mut service = json!({
                "name": s.definition.name,
                "ty": s.definition.ty.as_str(),
                "revision": s.revision,
                // Whether this deployment still serves the service's latest revision.
                "latest": schema.service(&s.definition.name).is_some_and(|latest| latest.deployment_id == deployment.id),
            });
            if with_handlers {
                service["handlers"] = s.definition.handlers.iter().map(handler_json).collect();
            }
            service
        })
        .collect();
    json!({
        "id": deployment.id,
        "uri": deployment.uri,
        "protocol_mode": deployment.protocol_mode,
        "min_protocol_version": deployment.min_protocol_version,
        "max_protocol_version": deployment.max_protocol_version,
        "http_version": if deployment.use_http_11 { "HTTP/1.1" } else { "HTTP/2.0" },
        "additional_headers": masked_headers(&deployment.additional_headers),
        "created_at": deployment.created_at,
        "services": services,
    })
}

/// `headers` with every value replaced by `***`.
fn masked_headers(headers: &BTreeMap<String, String>) -> BTreeMap<&str, &'static str> {
    headers.keys().map(|name| (name.as_str(), restate_config::REDACTED)).collect()
}

// ---- POST /deployments ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    /// The deployment's address, e.g. `http://127.0.0.1:9080`.
    uri: String,
    #[serde(default)]
    additional_headers: BTreeMap<String, String>,
    /// Overwrite a registration of the same URI that differs; allow service type changes.
    #[serde(default)]
    force: bool,
    /// Discover and check, but write nothing.
    #[serde(default)]
    dry_run: bool,
    /// Restate's flag for HTTP/1.1 deployments (only `false` is supported).
    #[serde(default)]
    use_http_11: bool,
}

const REGISTER_EXAMPLE: &str = r#"{"uri": "http://127.0.0.1:9080"}"#;

fn parse_register_request(body: &[u8]) -> Result<RegisterRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "the request body is empty; expected a JSON object like {REGISTER_EXAMPLE}"
        )));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let request: RegisterRequest = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!(
                "the request body is not valid JSON ({inner}); expected e.g. {REGISTER_EXAMPLE}"
            ))
        } else if path == "." {
            ApiError::bad_request(format!("invalid request body: {inner}; expected e.g. {REGISTER_EXAMPLE}"))
        } else {
            ApiError::bad_request(format!("invalid request body: field '{path}': {inner}"))
        }
    })?;
    Ok(request)
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, ApiError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ApiError::bad_request(format!("field 'additional_headers': '{name}' is not a valid header name"))
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            ApiError::bad_request(format!("field 'additional_headers.{name}': the value is not a valid header value"))
        })?;
        map.insert(header, value);
    }
    Ok(map)
}

fn discovery_error(err: DiscoveryError) -> ApiError {
    match err {
        DiscoveryError::Address(_) => ApiError::bad_request(format!("field 'uri': {err}")),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, format!("discovery failed: {err}")),
    }
}

/// Discovers the deployment over HTTP/1.1 when asked to, else over HTTP/2 with prior
/// knowledge, falling back to HTTP/1.1 when the endpoint answers but does not speak
/// HTTP/2 that way (an HTTP/1.1-only server). Returns the manifest and how it was reached.
async fn discover(
    client: &DeploymentClient,
    uri: &http::Uri,
    use_http_11: bool,
    headers: &HeaderMap,
) -> Result<(EndpointManifest, HttpVersion), ApiError> {
    if use_http_11 {
        let manifest = client.discover(uri, HttpVersion::Http11, headers).await.map_err(discovery_error)?;
        return Ok((manifest, HttpVersion::Http11));
    }
    match client.discover(uri, HttpVersion::Http2, headers).await {
        Ok(manifest) => Ok((manifest, HttpVersion::Http2)),
        Err(http2 @ DiscoveryError::Request { .. }) => {
            match client.discover(uri, HttpVersion::Http11, headers).await {
                Ok(manifest) => {
                    tracing::info!(%uri, "the deployment does not speak HTTP/2 with prior knowledge; using HTTP/1.1");
                    Ok((manifest, HttpVersion::Http11))
                }
                // Neither works: the HTTP/2 failure is the one to explain.
                Err(_) => Err(discovery_error(http2)),
            }
        }
        Err(other) => Err(discovery_error(other)),
    }
}

fn new_deployment(
    uri: &str,
    headers: BTreeMap<String, String>,
    manifest: EndpointManifest,
    http: HttpVersion,
) -> NewDeployment {
    NewDeployment {
        uri: uri.to_owned(),
        use_http_11: http == HttpVersion::Http11,
        additional_headers: headers,
        protocol_mode: manifest.protocol_mode.map(|mode| {
            match mode {
                ProtocolMode::BidiStream => "BIDI_STREAM",
                ProtocolMode::RequestResponse => "REQUEST_RESPONSE",
            }
            .to_owned()
        }),
        min_protocol_version: manifest.min_protocol_version,
        max_protocol_version: manifest.max_protocol_version,
        services: manifest
            .services
            .iter()
            .map(|service| ServiceDefinition {
                name: service.name.clone(),
                ty: service.ty,
                handlers: service
                    .handlers
                    .iter()
                    .map(|h| HandlerDefinition { name: h.name.clone(), ty: h.effective_ty(service.ty) })
                    .collect(),
            })
            .collect(),
    }
}

async fn register_deployment(State(admin): State<Arc<Admin>>, body: Bytes) -> Result<Response, ApiError> {
    let request = parse_register_request(&body)?;
    let uri: http::Uri = request.uri.trim().parse().map_err(|err| {
        ApiError::bad_request(format!(
            "field 'uri': '{}' is not a URI ({err}); expected e.g. http://127.0.0.1:9080",
            request.uri
        ))
    })?;
    let headers = header_map(&request.additional_headers)?;
    let (manifest, http) = discover(&admin.deployments, &uri, request.use_http_11, &headers).await?;
    if manifest.negotiate_protocol_version().is_none() {
        return Err(ApiError::bad_request(format!(
            "the deployment at {uri} speaks service protocol versions {} to {}; this cluster speaks {} to {}",
            manifest.min_protocol_version,
            manifest.max_protocol_version,
            ProtocolVersion::MIN.number(),
            ProtocolVersion::MAX.number()
        )));
    }
    let new = new_deployment(&request.uri, request.additional_headers.clone(), manifest, http);
    let new_id = new_deployment_id();
    let now = now_rfc3339();

    if request.dry_run {
        let mut schema = current_schema(admin.metadata.as_ref()).await?;
        let registration = schema.register(new, request.force, &new_id, &now)?;
        return Ok((StatusCode::OK, Json(registration_json(&schema, &registration, true))).into_response());
    }

    let mut registration: Option<Registration> = None;
    let (schema, _) = typed::read_modify_write::<Schema, SchemaError, _>(admin.metadata.as_ref(), |current| {
        let mut schema = current.unwrap_or_default();
        let result = schema.register(new.clone(), request.force, &new_id, &now)?;
        let changed = result.outcome != RegistrationOutcome::Unchanged;
        registration = Some(result);
        Ok(changed.then_some(schema))
    })
    .await??;
    let registration = registration.expect("the update ran at least once");
    let status = match registration.outcome {
        RegistrationOutcome::Unchanged => StatusCode::OK,
        RegistrationOutcome::Created | RegistrationOutcome::Overwritten => StatusCode::CREATED,
    };
    tracing::info!(
        id = %registration.id,
        uri = %new.uri,
        outcome = ?registration.outcome,
        services = ?registration.services.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "deployment registration"
    );
    Ok((status, Json(registration_json(&schema, &registration, false))).into_response())
}

fn registration_json(schema: &Schema, registration: &Registration, dry_run: bool) -> Value {
    let deployment = schema.deployment(&registration.id);
    json!({
        "id": registration.id,
        "uri": deployment.map(|d| d.uri.as_str()),
        "outcome": registration.outcome,
        "dry_run": dry_run,
        "min_protocol_version": deployment.map(|d| d.min_protocol_version),
        "max_protocol_version": deployment.map(|d| d.max_protocol_version),
        "services": registration.services.iter().map(service_json).collect::<Vec<_>>(),
        "removed_services": registration.removed_services,
    })
}

// ---- deployments and services ----

async fn list_deployments(State(admin): State<Arc<Admin>>) -> Result<Json<Value>, ApiError> {
    let schema = current_schema(admin.metadata.as_ref()).await?;
    let deployments: Vec<Value> = schema.deployments.values().map(|d| deployment_json(&schema, d, false)).collect();
    Ok(Json(json!({ "deployments": deployments })))
}

async fn get_deployment(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let schema = current_schema(admin.metadata.as_ref()).await?;
    let deployment =
        schema.deployment(&id).ok_or_else(|| ApiError::from(SchemaError::DeploymentNotFound { id: id.clone() }))?;
    Ok(Json(deployment_json(&schema, deployment, true)))
}

// ---- PATCH / PUT /deployments/{id} ----

/// What an update changes; absent fields keep the deployment's current values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRequest {
    uri: Option<String>,
    additional_headers: Option<BTreeMap<String, String>>,
    use_http_11: Option<bool>,
    /// Accept services whose handlers changed.
    #[serde(default)]
    overwrite: bool,
    #[serde(default)]
    dry_run: bool,
}

/// Moves a deployment to a new address (or new headers, or HTTP version) keeping its id,
/// so its services and running invocations continue there. The endpoint is discovered and
/// must serve the same services (see `Schema::update_deployment`).
async fn update_deployment(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: UpdateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        UpdateRequest::default()
    } else {
        let deserializer = &mut serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(deserializer).map_err(|err| {
            let path = err.path().to_string();
            ApiError::bad_request(format!(
                "invalid request body: {}{}; expected e.g. {{\"uri\": \"http://127.0.0.1:9081\"}}",
                if path == "." { String::new() } else { format!("field '{path}': ") },
                err.into_inner()
            ))
        })?
    };
    let schema = current_schema(admin.metadata.as_ref()).await?;
    let existing =
        schema.deployment(&id).ok_or_else(|| ApiError::from(SchemaError::DeploymentNotFound { id: id.clone() }))?;
    let uri_text = request.uri.clone().unwrap_or_else(|| existing.uri.clone());
    let uri: http::Uri = uri_text.trim().parse().map_err(|err| {
        ApiError::bad_request(format!(
            "field 'uri': '{uri_text}' is not a URI ({err}); expected e.g. http://127.0.0.1:9080"
        ))
    })?;
    let headers_map = request.additional_headers.clone().unwrap_or_else(|| existing.additional_headers.clone());
    let headers = header_map(&headers_map)?;
    let use_http_11 = request.use_http_11.unwrap_or(existing.use_http_11);
    let (manifest, http) = discover(&admin.deployments, &uri, use_http_11, &headers).await?;
    let new = new_deployment(&uri_text, headers_map, manifest, http);

    if request.dry_run {
        let mut schema = schema;
        let updated = schema.update_deployment(&id, new, request.overwrite)?;
        return Ok((StatusCode::OK, Json(deployment_json(&schema, &updated, true))).into_response());
    }
    let mut updated: Option<restate_metadata::objects::Deployment> = None;
    let (schema, _) = typed::read_modify_write::<Schema, SchemaError, _>(admin.metadata.as_ref(), |current| {
        let mut schema = current.unwrap_or_default();
        let unchanged = schema.clone();
        let result = schema.update_deployment(&id, new.clone(), request.overwrite)?;
        updated = Some(result);
        Ok((schema != unchanged).then_some(schema))
    })
    .await??;
    let updated = updated.expect("the update ran at least once");
    tracing::info!(%id, uri = %updated.uri, http_11 = updated.use_http_11, "deployment updated");
    Ok((StatusCode::OK, Json(deployment_json(&schema, &updated, true))).into_response())
}

/// `force` from a query string: absent or `false`/`0` is false, `true`/`1`/bare is true.
fn parse_force(query: Option<&str>) -> Result<bool, ApiError> {
    let mut force = false;
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, "true"));
        match key {
            "force" => {
                force = match value {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "query parameter 'force': '{other}' is not a boolean (true or false)"
                        )))
                    }
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter '{other}'; DELETE /deployments/{{id}} takes only 'force'"
                )))
            }
        }
    }
    Ok(force)
}

async fn delete_deployment(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let force = parse_force(query.as_deref())?;
    let mut removed: Option<Vec<String>> = None;
    typed::read_modify_write::<Schema, SchemaError, _>(admin.metadata.as_ref(), |current| {
        let mut schema = current.unwrap_or_default();
        let removal = schema.remove_deployment(&id, force)?;
        removed = Some(removal.removed_services);
        Ok(Some(schema))
    })
    .await??;
    let removed_services = removed.expect("the update ran at least once");
    tracing::info!(%id, ?removed_services, "deployment removed");
    Ok(Json(json!({ "id": id, "removed_services": removed_services })))
}

async fn list_services(State(admin): State<Arc<Admin>>) -> Result<Json<Value>, ApiError> {
    let schema = current_schema(admin.metadata.as_ref()).await?;
    let services: Vec<Value> = schema.services.values().map(service_json).collect();
    Ok(Json(json!({ "services": services })))
}

async fn get_service(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let schema = current_schema(admin.metadata.as_ref()).await?;
    let service = schema
        .service(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("service '{name}' not found")))?;
    Ok(Json(service_json(service)))
}

/// `PATCH /services/{name}`: what may change of a service (Restate's "modify service").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModifyServiceRequest {
    /// A workflow's completion retention (`"1h"`, `"7d"`, ISO 8601 `"PT1H"`); `null`
    /// returns to `[worker] workflow-completion-retention`.
    workflow_completion_retention: Option<String>,
}

async fn modify_service(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(&body);
    let request: ModifyServiceRequest = serde_path_to_error::deserialize(deserializer).map_err(|err| {
        ApiError::bad_request(format!(
            "invalid request body: {}; expected e.g. {{\"workflow_completion_retention\": \"1h\"}}",
            err.into_inner()
        ))
    })?;
    let retention_ms = match &request.workflow_completion_retention {
        None => None,
        Some(text) => Some(
            restate_config::parse_duration(text)
                .map_err(|e| ApiError::bad_request(format!("field 'workflow_completion_retention': {e}")))?
                .as_millis() as u64,
        ),
    };
    let (schema, _) = typed::read_modify_write::<Schema, SchemaError, _>(admin.metadata.as_ref(), |current| {
        let mut schema = current.unwrap_or_default();
        schema.set_workflow_completion_retention(&name, retention_ms)?;
        Ok(Some(schema))
    })
    .await??;
    let service = schema.service(&name).expect("set above");
    tracing::info!(service = %name, retention_ms = ?retention_ms, "service modified");
    Ok(Json(service_json(service)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(err: ApiError) -> (StatusCode, String) {
        (err.status, err.message)
    }

    #[test]
    fn register_requests_name_what_is_wrong() {
        let (status, text) = message(parse_register_request(b"").unwrap_err());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("empty"), "{text}");

        let (_, text) = message(parse_register_request(b"{\"uri\": ").unwrap_err());
        assert!(text.contains("not valid JSON"), "{text}");

        let (_, text) = message(parse_register_request(b"{}").unwrap_err());
        assert!(text.contains("missing field `uri`"), "{text}");

        let (_, text) = message(parse_register_request(br#"{"uri": "http://a", "force": "yes"}"#).unwrap_err());
        assert!(text.contains("field 'force'"), "{text}");

        let (_, text) = message(parse_register_request(br#"{"uri": "http://a", "forse": true}"#).unwrap_err());
        assert!(text.contains("unknown field `forse`"), "{text}");

        let (_, text) = message(parse_register_request(br#"{"uri": "http://a", "use_http_11": "yes"}"#).unwrap_err());
        assert!(text.contains("field 'use_http_11'"), "{text}");
        assert!(parse_register_request(br#"{"uri": "http://a", "use_http_11": true}"#).unwrap().use_http_11);

        let (_, text) =
            message(parse_register_request(br#"{"uri": "http://a", "additional_headers": {"a": 1}}"#).unwrap_err());
        assert!(text.contains("field 'additional_headers.a'"), "{text}");

        let ok = parse_register_request(br#"{"uri": "http://a", "additional_headers": {"x-k": "v"}, "force": true}"#)
            .unwrap();
        assert!(ok.force && !ok.dry_run);
        assert_eq!(ok.additional_headers["x-k"], "v");
        let shown = masked_headers(&ok.additional_headers);
        assert_eq!(serde_json::to_string(&shown).unwrap(), r#"{"x-k":"***"}"#, "values are never shown");
    }

    #[test]
    fn bad_headers_are_refused() {
        let headers = BTreeMap::from([("bad name".to_owned(), "v".to_owned())]);
        let (status, text) = message(header_map(&headers).unwrap_err());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(text.contains("'bad name'"), "{text}");
        let headers = BTreeMap::from([("x-ok".to_owned(), "line\nbreak".to_owned())]);
        assert!(header_map(&headers).is_err());
    }

    #[test]
    fn force_query_parameter() {
        assert!(!parse_force(None).unwrap());
        assert!(parse_force(Some("force=true")).unwrap());
        assert!(parse_force(Some("force")).unwrap());
        assert!(!parse_force(Some("force=false")).unwrap());
        assert_eq!(parse_force(Some("force=maybe")).unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(parse_force(Some("forse=true")).unwrap_err().message.contains("'forse'"));
    }
}
