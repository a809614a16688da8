//! A virtual object's (or workflow's) state through the admin API:
//! - `GET /services/{service}/state/{key}`: `{"service", "object_key", "version",
//!   "state": {state key: [bytes]}, "state_utf8": {state key: text or null}}`, read from
//!   the key's partition leader;
//! - `POST /services/{service}/state` `{"object_key", "new_state": {state key: [bytes]},
//!   "version"?}`: replaces the whole state (`{}` clears it) through the partition's log,
//!   as Restate's admin API does; with `version`, only while the state still has that
//!   version (409 naming the current one otherwise). 202: the edit is in the log.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use restate_partition::introspect::{state_version, PartitionTable, Row, RowFilter};
use restate_partition::{partition_for, partition_key};
use restate_proto::worker as pb;
use restate_types::{PartitionId, ServiceType};
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::invocations::{on_partition_leader, scan_all, Target};
use crate::routing_metadata::RoutingMetadata;

pub(super) fn router(metadata: Arc<RoutingMetadata>) -> Router {
    Router::new()
        .route("/services/{service}/state/{key}", get(get_state))
        .route("/services/{service}/state", post(set_state))
        .with_state(metadata)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetStateRequest {
    object_key: String,
    new_state: BTreeMap<String, Vec<u8>>,
    #[serde(default)]
    version: Option<String>,
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
}

/// The service must be a registered virtual object or workflow.
async fn keyed_service(metadata: &RoutingMetadata, service: &str) -> Result<(), ApiError> {
    let schema = metadata.schema(true).await.map_err(unavailable)?;
    let found = schema.as_ref().and_then(|held| held.0.service(service).map(|s| s.ty));
    match found {
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no service '{service}' is registered"))),
        Some(ServiceType::Service) => Err(ApiError::bad_request(format!(
            "'{service}' is a plain service: only virtual objects and workflows have state"
        ))),
        Some(_) => Ok(()),
    }
}

/// The object's (state key, value) pairs in key order, from its partition's leader.
async fn current(metadata: &RoutingMetadata, service: &str, key: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, ApiError> {
    let filter =
        RowFilter { service_name: Some(service.to_owned()), service_key: Some(key.to_owned()), invocation_id: None };
    let rows = scan_all(metadata, PartitionTable::State, &filter).await.map_err(unavailable)?;
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = rows
        .into_iter()
        .filter_map(|row| match row {
            Row::State { key, value, .. } => Some((key.to_vec(), value.to_vec())),
            _ => None,
        })
        .collect();
    pairs.sort();
    Ok(pairs)
}

fn version_of(pairs: &[(Vec<u8>, Vec<u8>)]) -> String {
    state_version(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
}

async fn get_state(
    State(metadata): State<Arc<RoutingMetadata>>,
    Path((service, key)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    keyed_service(&metadata, &service).await?;
    let pairs = current(&metadata, &service, &key).await?;
    let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    let state: BTreeMap<String, &Vec<u8>> = pairs.iter().map(|(k, v)| (name(k), v)).collect();
    let state_utf8: BTreeMap<String, Option<&str>> =
        pairs.iter().map(|(k, v)| (name(k), std::str::from_utf8(v).ok())).collect();
    Ok(Json(json!({
        "service": service, "object_key": key, "version": version_of(&pairs),
        "state": state, "state_utf8": state_utf8,
    })))
}

async fn set_state(
    State(metadata): State<Arc<RoutingMetadata>>,
    Path(service): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: SetStateRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be {{\"object_key\": \"...\", \"new_state\": {{\"key\": [bytes...]}}, \"version\"?: \"...\"}}: {e}"
        ))
    })?;
    keyed_service(&metadata, &service).await?;
    let key = request.object_key;
    if let Some(expected) = &request.version {
        let version = version_of(&current(&metadata, &service, &key).await?);
        if *expected != version {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "the state of {service}/{key} is at version {version}, not {expected}: read it again and retry"
                ),
            ));
        }
    }
    let table = metadata.partition_table().await.map_err(unavailable)?;
    let partition = PartitionId(partition_for(partition_key(&service, &key), table.partitions.len() as u32) as u16);
    let entries: Vec<pb::StateEntry> =
        request.new_state.into_iter().map(|(k, v)| pb::StateEntry { key: k.into_bytes(), value: v }).collect();
    let count = entries.len();
    on_partition_leader(&metadata, Target::Partition(partition), |mut client, partition| {
        let request = pb::SetStateRequest {
            partition_id: u32::from(partition.0),
            service: service.clone(),
            key: key.clone(),
            entries: entries.clone(),
            expected_version: request.version.clone(),
        };
        async move { client.set_state(request).await }
    })
    .await
    .map_err(unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "service": service, "object_key": key, "keys": count }))).into_response())
}
