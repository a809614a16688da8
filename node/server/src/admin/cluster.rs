//! `GET /cluster`: what the web UI's overview shows, in one answer: every node with its
//! roles and liveness (each probed as `restatectl status` does), the partitions with their
//! leaders and followers (and, from this node's processors, applied and snapshot LSNs), and
//! the logs' segment chains with replication and nodesets (and their trim points and tails
//! where this node reads logs).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use restate_metadata::objects::{Logs, NodesConfiguration, SchedulingPlan};
use restate_metadata::typed;
use serde_json::{json, Value};

use super::error::ApiError;
use crate::node_ctl_context::NodeCtlContext;

pub(super) fn router(ctx: Arc<NodeCtlContext>) -> Router {
    Router::new().route("/cluster", get(cluster)).with_state(ctx)
}

async fn cluster(State(ctx): State<Arc<NodeCtlContext>>) -> Result<Json<Value>, ApiError> {
    let unavailable = |e: restate_metadata::MetadataStoreError| {
        ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("the metadata store did not answer: {e}"))
    };
    let status = crate::cluster_view::cluster_status(&ctx).await.map_err(unavailable)?;
    let nodes: Vec<Value> = status
        .nodes
        .iter()
        .map(|n| {
            json!({
                "node_id": n.node_id, "name": n.name, "address": n.address, "roles": n.roles,
                "alive": n.alive, "detail": n.detail, "metadata_server_state": n.metadata_server_state,
                "log_server_state": n.log_server_state, "location": n.location,
            })
        })
        .collect();
    let metadata = ctx.status_metadata.as_ref();
    let plan = typed::get::<SchedulingPlan>(metadata).await.map_err(unavailable)?.map(|(p, _)| p).unwrap_or_default();
    let logs = typed::get::<Logs>(metadata).await.map_err(unavailable)?.map(|(l, _)| l.logs).unwrap_or_default();
    // Trim points and tails need a log reader; nodes that run none leave them out.
    let mut log_points = serde_json::Map::new();
    if let Some(bifrost) = ctx.roles.bifrost() {
        // Only the points are used here: no nodeset locations needed.
        if let Ok(described) = crate::logs_ctl::list(bifrost, &NodesConfiguration::default()).await {
            for log in described.logs {
                log_points.insert(log.log_id.to_string(), json!({ "trim_point": log.trim_point, "tail": log.tail }));
            }
        }
    }
    let processors: serde_json::Map<String, Value> = ctx
        .roles
        .worker()
        .map(|worker| worker.status())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.partition.0.to_string(), json!({ "applied_lsn": p.applied_lsn, "snapshot_lsn": p.archived_lsn })))
        .collect();
    Ok(Json(json!({
        "cluster_name": status.cluster_name,
        "provisioned": status.provisioned,
        "cluster_controller": status.cluster_controller,
        "nodes": nodes,
        "partitions": plan.partitions,
        "logs": logs,
        "log_points": log_points,
        "processors": processors,
    })))
}
