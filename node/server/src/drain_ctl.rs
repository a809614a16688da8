//! Draining and removing nodes (`NodeCtl.DrainNode`, `NodeCtl.RemoveNode`; `restatectl
//! nodes drain|remove`; the operator before it shrinks a StatefulSet).
//!
//! Draining marks the node in NodesConfiguration (the cluster controller then moves its
//! log replicas and partition leaderships, see `restate_cluster::plan` and `scheduling`)
//! and removes its vote from the replicated metadata store. Every call is idempotent and
//! answers with what is left, so callers poll the same request until it says drained.

use std::time::Duration;

use restate_cluster::drain::{drain_progress, refuse_drain};
use restate_metadata::objects::{ClusterConfiguration, Logs, MetadataServerState, NodesConfiguration, SchedulingPlan};
use restate_metadata::typed;
use restate_proto::metadata::{self as mpb, metadata_server_admin_client::MetadataServerAdminClient};
use restate_proto::node_ctl as pb;
use restate_types::PlainNodeId;
use tonic::Status;

use crate::node_ctl_context::NodeCtlContext;

/// Resolves `wanted` (N4, 4 or a node name) among the registered nodes.
fn resolve(nodes: &NodesConfiguration, wanted: &str) -> Result<PlainNodeId, Status> {
    let wanted = wanted.trim();
    if wanted.is_empty() {
        return Err(Status::invalid_argument("no node given: pass a node id (N4) or name"));
    }
    let by_number = wanted.trim_start_matches(['N', 'n']).parse::<u32>().ok();
    nodes.nodes.values().find(|n| n.name == wanted || Some(n.id.0) == by_number).map(|n| n.id).ok_or_else(|| {
        let known: Vec<String> = nodes.nodes.values().map(|n| format!("{} ({})", n.id, n.name)).collect();
        Status::not_found(format!("node '{wanted}' is not registered; known: {}", known.join(", ")))
    })
}

fn store_error(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("metadata store unavailable: {e}"))
}

async fn read<T: restate_metadata::objects::MetadataObject + Default>(ctx: &NodeCtlContext) -> Result<T, Status> {
    Ok(typed::get::<T>(ctx.metadata.as_ref()).await.map_err(store_error)?.map(|(v, _)| v).unwrap_or_default())
}

/// The voting members of the replicated metadata store, asked of the first node that is
/// a member (empty when the cluster keeps its metadata elsewhere).
async fn metadata_members(nodes: &NodesConfiguration) -> Vec<mpb::Member> {
    for node in nodes.nodes.values().filter(|n| n.metadata_server_state != MetadataServerState::None) {
        let Ok(endpoint) = tonic::transport::Endpoint::from_shared(node.address.clone()) else { continue };
        let endpoint = endpoint.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(5));
        let mut client = MetadataServerAdminClient::new(endpoint.connect_lazy());
        if let Ok(status) = client.status(mpb::StatusRequest {}).await {
            let status = status.into_inner();
            if status.state == "member" {
                return status.members.into_iter().filter(|m| m.voter).collect();
            }
        }
    }
    Vec::new()
}

pub(crate) async fn drain(ctx: &NodeCtlContext, wanted: &str) -> Result<pb::DrainNodeResponse, Status> {
    let nodes: NodesConfiguration = read(ctx).await?;
    let id = resolve(&nodes, wanted)?;
    let replication = typed::get::<ClusterConfiguration>(ctx.metadata.as_ref())
        .await
        .map_err(store_error)?
        .map(|(c, _)| c.replication)
        .ok_or_else(|| Status::failed_precondition("the cluster is not provisioned yet: nothing to drain"))?;
    if let Some(refusal) = refuse_drain(&nodes, id, replication) {
        return Err(Status::failed_precondition(refusal));
    }
    let mut started = false;
    typed::read_modify_write::<NodesConfiguration, Status, _>(ctx.metadata.as_ref(), |current| {
        let mut next = current.unwrap_or_default();
        started = next.start_draining(id);
        Ok(started.then_some(next))
    })
    .await
    .map_err(store_error)??;
    let name = nodes.nodes.get(&id).map(|n| n.name.clone()).unwrap_or_default();
    if started {
        tracing::info!(node = %id, name = %name, "draining: log replicas and partitions move off the node");
    }

    let mut members = metadata_members(&nodes).await;
    if let Some(member) = members.iter().find(|m| m.node_id == id.0).cloned() {
        if members.len() == 1 {
            return Err(Status::failed_precondition(format!(
                "{id} ({name}) is the only member of the metadata store: add another metadata server before draining it"
            )));
        }
        let addresses: Vec<String> =
            members.iter().filter(|m| m.raft_id != member.raft_id).map(|m| m.address.clone()).collect();
        crate::metadata_join::on_leader(&addresses, |mut c| async move {
            c.remove(mpb::RemoveRequest { raft_id: member.raft_id }).await
        })
        .await
        .map_err(|e| Status::unavailable(format!("removing {id} ({name}) from the metadata store: {e}")))?;
        tracing::info!(node = %id, raft_id = member.raft_id, "draining: removed from the metadata store");
        members.retain(|m| m.raft_id != member.raft_id);
        typed::read_modify_write::<NodesConfiguration, Status, _>(ctx.metadata.as_ref(), |current| {
            let mut next = current.unwrap_or_default();
            let Some(node) = next.nodes.get_mut(&id) else { return Ok(None) };
            if node.metadata_server_state != MetadataServerState::Member {
                return Ok(None);
            }
            node.metadata_server_state = MetadataServerState::Standby;
            Ok(Some(next))
        })
        .await
        .map_err(store_error)??;
    }

    let logs: Logs = read(ctx).await?;
    let plan: SchedulingPlan = read(ctx).await?;
    let voters: Vec<PlainNodeId> = members.iter().map(|m| PlainNodeId(m.node_id)).collect();
    let progress = drain_progress(id, &logs, &plan, &voters);
    Ok(pb::DrainNodeResponse {
        node_id: id.to_string(),
        name,
        drained: progress.is_drained(),
        log_segments_left: progress.log_segments.len() as u32,
        partitions_led: progress.led_partitions.len() as u32,
        metadata_member: progress.metadata_member,
        summary: progress.summary(),
    })
}

pub(crate) async fn remove(ctx: &NodeCtlContext, wanted: &str, force: bool) -> Result<pb::RemoveNodeResponse, Status> {
    let nodes: NodesConfiguration = read(ctx).await?;
    let id = match resolve(&nodes, wanted) {
        Ok(id) => id,
        // Removing twice is not an error: the node is gone either way.
        Err(s) if s.code() == tonic::Code::NotFound => {
            return Ok(pb::RemoveNodeResponse { node_id: String::new(), name: wanted.to_owned(), removed: false })
        }
        Err(s) => return Err(s),
    };
    let node = nodes.nodes[&id].clone();
    if !force {
        if !node.draining {
            return Err(Status::failed_precondition(format!(
                "{id} ({}) is not draining: run `restatectl nodes drain {}` first (or --force for a node gone for good)",
                node.name, node.name
            )));
        }
        let logs: Logs = read(ctx).await?;
        let plan: SchedulingPlan = read(ctx).await?;
        let voters: Vec<PlainNodeId> = metadata_members(&nodes).await.iter().map(|m| PlainNodeId(m.node_id)).collect();
        let progress = drain_progress(id, &logs, &plan, &voters);
        if !progress.is_drained() {
            return Err(Status::failed_precondition(format!(
                "{id} ({}) is not drained yet: {}; wait for `restatectl nodes drain {} --wait`",
                node.name,
                progress.summary(),
                node.name
            )));
        }
    }
    typed::read_modify_write::<NodesConfiguration, Status, _>(ctx.metadata.as_ref(), |current| {
        let mut next = current.unwrap_or_default();
        Ok(next.nodes.remove(&id).map(|_| next))
    })
    .await
    .map_err(store_error)??;
    tracing::info!(node = %id, name = %node.name, force, "node removed from the cluster");
    Ok(pb::RemoveNodeResponse { node_id: id.to_string(), name: node.name, removed: true })
}
