//! The cluster as one node sees it: metadata plus a liveness probe of every node.

use std::time::Duration;

use restate_metadata::objects::{ClusterConfiguration, NodeConfig, NodesConfiguration, SchedulingPlan};
use restate_metadata::{typed, MetadataStoreError};
use restate_proto::node_ctl::{self as pb, node_ctl_client::NodeCtlClient};
use tonic::transport::Endpoint;

use crate::node_ctl_context::NodeCtlContext;

const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

pub(crate) fn configuration_to_wire(c: &ClusterConfiguration, version: u32) -> pb::ClusterConfiguration {
    pb::ClusterConfiguration {
        cluster_name: c.cluster_name.clone(),
        cluster_fingerprint: c.cluster_fingerprint.clone(),
        num_partitions: c.num_partitions,
        replication: c.replication.node,
        replication_property: c.replication.to_string(),
        log_provider: c.log_provider.to_string(),
        version,
        provisioned_at_unix_ms: c.provisioned_at_unix_ms,
    }
}

pub(crate) async fn cluster_status(ctx: &NodeCtlContext) -> Result<pb::ClusterStatus, MetadataStoreError> {
    let me = ctx.node_info();
    let metadata = ctx.status_metadata.as_ref();
    let Some((configuration, config_version)) = typed::get::<ClusterConfiguration>(metadata).await? else {
        return Ok(pb::ClusterStatus {
            cluster_name: ctx.config.cluster_name.clone(),
            provisioned: false,
            answered_by: Some(me),
            ..Default::default()
        });
    };
    let (nodes, nodes_version) = typed::get::<NodesConfiguration>(metadata).await?.unwrap_or_default();
    let probes = nodes.nodes.values().map(|node| probe(ctx, node, &me));
    let statuses = futures::future::join_all(probes).await;
    let controller = typed::get::<restate_cluster::ControllerLease>(metadata).await?.map(|(lease, _)| lease);
    let plan = typed::get::<SchedulingPlan>(metadata).await?.map(|(plan, _)| plan).unwrap_or_default();
    let alive: Vec<String> = statuses.iter().filter(|s| s.alive).map(|s| s.node_id.clone()).collect();
    let led = plan.partitions.values().filter(|p| alive.contains(&p.leader.to_string())).count() as u32;
    let partitions_unled = configuration.num_partitions.saturating_sub(led);
    Ok(pb::ClusterStatus {
        cluster_name: configuration.cluster_name.clone(),
        provisioned: true,
        cluster_fingerprint: configuration.cluster_fingerprint.clone(),
        configuration: Some(configuration_to_wire(&configuration, config_version.0)),
        nodes: statuses,
        answered_by: Some(me),
        nodes_config_version: nodes_version.0,
        cluster_controller: controller.as_ref().map(|l| l.holder.to_string()).unwrap_or_default(),
        cluster_controller_term: controller.map_or(0, |l| l.term),
        partitions_unled,
    })
}

/// A node is alive when it answers `GetNodeInfo` as a running member and as the
/// incarnation recorded in metadata (same name, same cluster, at least that generation).
async fn probe(ctx: &NodeCtlContext, node: &NodeConfig, me: &pb::NodeInfo) -> pb::NodeStatus {
    let info = if node.name == me.name { Ok(me.clone()) } else { fetch_info(&node.address).await };
    let (version, storage_format_version) =
        info.as_ref().map_or((String::new(), 0), |i| (i.version.clone(), i.storage_format_version));
    let (alive, detail) = match info {
        Ok(info) if info.name != node.name => (false, format!("{} answers as node '{}'", node.address, info.name)),
        Ok(info) if info.cluster_name != ctx.config.cluster_name => {
            (false, format!("{} belongs to cluster '{}'", node.address, info.cluster_name))
        }
        Ok(info) if info.state != "running" => (false, format!("{}: {}", info.state, info.state_reason)),
        Ok(info) if info.generation < node.generation => {
            (false, format!("stale incarnation (generation {} < {})", info.generation, node.generation))
        }
        Ok(info) => (true, info.state),
        Err(reason) => (false, reason),
    };
    pb::NodeStatus {
        node_id: node.id.to_string(),
        generation: node.generation,
        name: node.name.clone(),
        address: node.address.clone(),
        roles: node.roles.iter().map(|r| r.to_string()).collect(),
        alive,
        detail,
        metadata_server_state: node.metadata_server_state.as_str().to_owned(),
        log_server_state: node.log_server_state.as_str().to_owned(),
        version,
        storage_format_version,
        restarting: node.restarting,
        location: node.location.to_string(),
    }
}

async fn fetch_info(address: &str) -> Result<pb::NodeInfo, String> {
    let endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|e| format!("bad address {address}: {e}"))?
        .timeout(PROBE_TIMEOUT);
    let channel = restate_proto::channel::connect(endpoint, PROBE_TIMEOUT)
        .await
        .map_err(|e| format!("unreachable: {}", error_chain(&e)))?;
    NodeCtlClient::new(channel)
        .get_node_info(pb::GetNodeInfoRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("no answer: {}", s.message()))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        text = format!("{text}: {next}");
        source = next.source();
    }
    text
}
