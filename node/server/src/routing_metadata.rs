//! The metadata the ingress routes with, from the node's [`MetadataView`]: the service
//! registry, the partition table, the scheduling plan and the nodes. The view receives
//! changes as the metadata store applies them; a caller that met a stale copy (an unknown
//! service, a node that does not lead) asks again with `fresh = true`, which reads the
//! store.

use std::sync::Arc;

use restate_metadata::objects::{NodesConfiguration, PartitionTable, SchedulingPlan, Schema};
use restate_metadata::MetadataView;
use restate_partition::{partition_for, InvocationId};
use restate_types::{PartitionId, PlainNodeId, Version};

use crate::worker_channels::WorkerChannels;

/// One per node, shared by the ingress, the admin API and node control.
pub(crate) struct RoutingMetadata {
    pub metadata: MetadataView,
    /// Channels to the nodes routed to (partition leaders).
    pub workers: WorkerChannels,
}

impl RoutingMetadata {
    pub fn new(metadata: MetadataView) -> Arc<RoutingMetadata> {
        Arc::new(RoutingMetadata { metadata, workers: WorkerChannels::default() })
    }

    /// The registered services (`None` when none were ever registered).
    pub async fn schema(&self, fresh: bool) -> Result<Option<Arc<(Schema, Version)>>, String> {
        self.metadata.read::<Schema>(fresh).await.map_err(|e| e.to_string())
    }

    /// The partition an invocation id belongs to.
    pub async fn partition_of(&self, id: &InvocationId, fresh: bool) -> Result<PartitionId, String> {
        let table = self.metadata.read::<PartitionTable>(fresh).await;
        let table = table.map_err(|e| e.to_string())?.ok_or("the cluster has no partitions yet")?;
        Ok(PartitionId(partition_for(id.partition_key(), table.0.partitions.len() as u32) as u16))
    }

    /// The partition table, read fresh (for administrative requests).
    pub async fn partition_table(&self) -> Result<Arc<PartitionTable>, String> {
        let table = self.metadata.refresh::<PartitionTable>().await.map_err(|e| e.to_string())?;
        Ok(Arc::new(table.map(|t| t.0.clone()).ok_or("the cluster has no partitions yet (is it provisioned?)")?))
    }

    /// The node address of `partition`'s planned leader.
    pub async fn leader_address(&self, partition: PartitionId, fresh: bool) -> Result<String, String> {
        let plan = self.metadata.read::<SchedulingPlan>(fresh).await;
        let plan = plan.map_err(|e| e.to_string())?.ok_or("no partition has a leader yet")?;
        let placement =
            plan.0.partitions.get(&partition).ok_or_else(|| format!("partition {partition} has no leader yet"))?;
        let leader = placement.leader;
        if let Some(address) = address_of(leader, self.metadata.get::<NodesConfiguration>()) {
            return Ok(address);
        }
        // A node that just joined may be missing from the view for a moment.
        address_of(leader, self.metadata.refresh::<NodesConfiguration>().await.map_err(|e| e.to_string())?)
            .ok_or_else(|| format!("leader {leader} of partition {partition} is not a known node"))
    }

    /// Resolves once the view's plan names a leader for `partition` at another address
    /// than `address`: a request still waiting on the old leader (partitioned away, its
    /// connection silent) can be given up and sent again, with the same invocation id, to
    /// the new one. Pending while the plan keeps `address`.
    pub async fn leader_moved_from(&self, partition: PartitionId, address: &str) {
        let mut changes = self.metadata.subscribe::<SchedulingPlan>();
        loop {
            if self.viewed_leader_address(partition).is_some_and(|planned| planned != address) {
                return;
            }
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    fn viewed_leader_address(&self, partition: PartitionId) -> Option<String> {
        let plan = self.metadata.get::<SchedulingPlan>()?;
        let leader = plan.0.partitions.get(&partition)?.leader;
        address_of(leader, self.metadata.get::<NodesConfiguration>())
    }

    /// The scheduling plan and nodes, read fresh (for listings and administrative requests).
    pub async fn plan_and_nodes(&self) -> Result<(Arc<SchedulingPlan>, Arc<NodesConfiguration>), String> {
        let plan = self.metadata.refresh::<SchedulingPlan>().await.map_err(|e| e.to_string())?;
        let nodes = self.metadata.refresh::<NodesConfiguration>().await.map_err(|e| e.to_string())?;
        Ok((
            Arc::new(plan.map(|p| p.0.clone()).unwrap_or_default()),
            Arc::new(nodes.map(|n| n.0.clone()).unwrap_or_default()),
        ))
    }
}

/// The address of node `id` in `nodes`, if it is known there.
fn address_of(id: PlainNodeId, nodes: Option<Arc<(NodesConfiguration, Version)>>) -> Option<String> {
    nodes.and_then(|n| n.0.nodes.get(&id).map(|node| node.address.clone()))
}
