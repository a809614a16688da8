//! Calls of pod 0's node-control API: provisioning (`NodeCtl.Provision`, exactly as
//! `restatectl provision` does: a cluster that is already provisioned answers with its
//! fingerprint and `newly_provisioned = false`, which counts as success) and snapshots
//! (`NodeCtl.CreateSnapshots`, as `restatectl snapshots create`), the cluster's status and
//! its log replication (`GetClusterStatus`, `SetClusterConfiguration`).

use std::collections::BTreeMap;
use std::time::Duration;

use restate_proto::node_ctl::{
    node_ctl_client::NodeCtlClient, CreateSnapshotsRequest, DrainNodeRequest, GetClusterStatusRequest,
    ListPartitionProcessorsRequest, PartitionSnapshot, PrepareRestartRequest, ProvisionRequest, RemoveNodeRequest,
    SetClusterConfigurationRequest,
};

use restate_proto::channel::NodeChannel;
use restate_proto::credentials::ClusterSecret;
use restate_types::ReplicationProperty;

use crate::scale_in::DrainAnswer;

/// A node of a cluster as the operator calls it: the node's fabric address and the
/// cluster secret its port requires.
#[derive(Debug, Clone)]
pub struct NodeEndpoint {
    pub address: String,
    pub secret: ClusterSecret,
}

/// What the cluster says of itself (node control `GetClusterStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub alive_nodes: u32,
    pub log_replication: ReplicationProperty,
    /// Names of the nodes that are members of the replicated metadata store.
    pub metadata_members: Vec<String>,
    /// Names of every registered node (alive or not).
    pub registered: Vec<String>,
    /// Partitions without an alive leader.
    pub partitions_unled: u32,
    /// The data's storage format: the highest any node reports (0: none reports one).
    pub storage_format: u32,
}

/// The cluster's view through the node `node`.
pub async fn cluster_view(node: &NodeEndpoint) -> Result<ClusterView, String> {
    let address = &node.address;
    let status = connect(node, Duration::from_secs(10))
        .await?
        .get_cluster_status(GetClusterStatusRequest {})
        .await
        .map_err(|s| format!("{address} did not report the cluster's status: {}", s.message()))?
        .into_inner();
    let mut metadata_members: Vec<String> =
        status.nodes.iter().filter(|n| n.metadata_server_state == "member").map(|n| n.name.clone()).collect();
    metadata_members.sort();
    Ok(ClusterView {
        alive_nodes: status.nodes.iter().filter(|n| n.alive).count() as u32,
        log_replication: status.configuration.map_or(ReplicationProperty::nodes(0), |c| {
            c.replication_property.parse().unwrap_or(ReplicationProperty::nodes(c.replication))
        }),
        metadata_members,
        registered: status.nodes.iter().map(|n| n.name.clone()).collect(),
        partitions_unled: status.partitions_unled,
        storage_format: status.nodes.iter().map(|n| n.storage_format_version).max().unwrap_or(0),
    })
}

/// Sets the cluster's log replication through the node `node` (as `restatectl
/// config set --log-replication`).
pub async fn set_replication(node: &NodeEndpoint, replication: ReplicationProperty) -> Result<(), String> {
    let address = &node.address;
    connect(node, Duration::from_secs(60))
        .await?
        .set_cluster_configuration(SetClusterConfigurationRequest {
            log_provider: None,
            replication: Some(replication.node),
            replication_property: Some(replication.to_string()),
        })
        .await
        .map_err(|s| format!("{address} refused replication {replication}: {}", s.message()))?;
    Ok(())
}

async fn connect(node: &NodeEndpoint, timeout: Duration) -> Result<NodeCtlClient<NodeChannel>, String> {
    let address = &node.address;
    let endpoint = tonic::transport::Endpoint::from_shared(address.to_owned())
        .map_err(|e| format!("node address {address}: {e}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|e| format!("cannot reach {address}: {e}"))?;
    Ok(NodeCtlClient::new(restate_proto::channel::with_secret(channel, Some(node.secret.clone()))))
}

/// The node's partition processors: (partition, applied LSN) of all, and of those it leads.
pub async fn partition_processors(node: &NodeEndpoint) -> Result<(BTreeMap<u32, u64>, BTreeMap<u32, u64>), String> {
    let address = &node.address;
    let processors = connect(node, Duration::from_secs(10))
        .await?
        .list_partition_processors(ListPartitionProcessorsRequest {})
        .await
        .map_err(|s| format!("{address} did not list its partition processors: {}", s.message()))?
        .into_inner()
        .processors;
    let all = processors.iter().map(|p| (p.partition_id, p.applied_lsn)).collect();
    let led = processors.iter().filter(|p| p.mode == "leader").map(|p| (p.partition_id, p.applied_lsn)).collect();
    Ok((all, led))
}

/// Snapshots every partition through the node `node` (which finds each partition's
/// leader), trimming the logs behind them when `trim_log`; one answer per partition.
pub async fn create_snapshots(node: &NodeEndpoint, trim_log: bool) -> Result<Vec<PartitionSnapshot>, String> {
    let address = &node.address;
    let answer = connect(node, Duration::from_secs(300))
        .await?
        .create_snapshots(CreateSnapshotsRequest { partition_ids: Vec::new(), trim_log })
        .await
        .map_err(|s| format!("{address} could not create snapshots: {}", s.message()))?;
    Ok(answer.into_inner().snapshots)
}

/// Provisions the cluster through the node `node` with `partitions` partitions,
/// replicated logs at `replication`; returns the cluster's fingerprint.
pub async fn provision(
    node: &NodeEndpoint,
    partitions: u32,
    replication: ReplicationProperty,
) -> Result<String, String> {
    let address = &node.address;
    let answer = connect(node, Duration::from_secs(30))
        .await?
        .provision(ProvisionRequest {
            num_partitions: Some(partitions),
            replication: Some(replication.node),
            replication_property: Some(replication.to_string()),
            log_provider: Some("replicated".to_owned()),
        })
        .await
        .map_err(|s| format!("{address} refused provisioning: {}", s.message()))?
        .into_inner();
    if answer.cluster_fingerprint.is_empty() {
        return Err(format!("{address} answered provisioning without a cluster fingerprint"));
    }
    Ok(answer.cluster_fingerprint)
}

/// Asks the node `node` to drain `node` (idempotent; as `restatectl nodes drain`). A
/// refusal or an unreachable node is an undrained answer whose summary says why.
pub async fn drain_node(via: &NodeEndpoint, node: &str) -> DrainAnswer {
    let answer = match connect(via, Duration::from_secs(30)).await {
        Ok(mut client) => {
            client.drain_node(DrainNodeRequest { node: node.to_owned() }).await.map_err(|s| s.message().to_owned())
        }
        Err(reason) => Err(reason),
    };
    match answer {
        Ok(r) => {
            let r = r.into_inner();
            DrainAnswer { pod: node.to_owned(), drained: r.drained, summary: r.summary }
        }
        Err(reason) => DrainAnswer { pod: node.to_owned(), drained: false, summary: reason },
    }
}

/// Asks `node`'s partition leaderships to move away before its pod restarts (as
/// `restatectl nodes prepare-restart`): `None` when it leads nothing (restart it now), else
/// what it still leads.
pub async fn prepare_restart(via: &NodeEndpoint, node: &str) -> Result<Option<String>, String> {
    let address = &via.address;
    let answer = connect(via, Duration::from_secs(30))
        .await?
        .prepare_restart(PrepareRestartRequest { node: node.to_owned() })
        .await
        .map_err(|s| format!("{address} did not prepare {node} for a restart: {}", s.message()))?
        .into_inner();
    if answer.ready {
        return Ok(None);
    }
    let mut left = Vec::new();
    if answer.partitions_led > 0 {
        left.push(format!("{} partition leadership(s)", answer.partitions_led));
    }
    if answer.metadata_leader {
        left.push("the metadata store's leadership".to_owned());
    }
    Ok(Some(left.join(" and ")))
}

/// Forgets the drained `node` (as `restatectl nodes remove`); true if it was registered.
pub async fn remove_node(via: &NodeEndpoint, node: &str) -> Result<bool, String> {
    let address = &via.address;
    let answer = connect(via, Duration::from_secs(30))
        .await?
        .remove_node(RemoveNodeRequest { node: node.to_owned(), force: false })
        .await
        .map_err(|s| format!("{address} did not remove {node}: {}", s.message()))?;
    Ok(answer.into_inner().removed)
}
