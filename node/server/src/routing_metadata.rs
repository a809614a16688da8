//! The metadata the ingress routes with, cached ([`Cached`]): the service registry, the
//! partition table, the scheduling plan and the nodes. Copies are at most
//! [`MAX_AGE`] old; a caller that met a stale copy (an unknown service, a node that does
//! not lead) asks again with `fresh = true`, which reads the store.

use std::sync::Arc;
use std::time::Duration;

use restate_metadata::objects::{NodesConfiguration, PartitionTable, SchedulingPlan, Schema};
use restate_metadata::{Cached, MetadataStore};
use restate_types::{PartitionId, Version};
use restate_worker::partition::{partition_for, InvocationId};

use crate::worker_channels::WorkerChannels;

/// How old a cached copy may be: registrations and leader changes made through another
/// node are seen within this time even by requests that do not miss.
pub(crate) const MAX_AGE: Duration = Duration::from_millis(500);

pub(crate) struct RoutingMetadata {
    pub store: Arc<dyn MetadataStore>,
    /// Channels to the nodes routed to (partition leaders).
    pub workers: WorkerChannels,
    schema: Cached<Schema>,
    partitions: Cached<PartitionTable>,
    plan: Cached<SchedulingPlan>,
    nodes: Cached<NodesConfiguration>,
}

impl RoutingMetadata {
    pub fn new(store: Arc<dyn MetadataStore>) -> Arc<RoutingMetadata> {
        Arc::new(RoutingMetadata {
            store,
            workers: WorkerChannels::default(),
            schema: Cached::new(MAX_AGE),
            partitions: Cached::new(MAX_AGE),
            plan: Cached::new(MAX_AGE),
            nodes: Cached::new(MAX_AGE),
        })
    }

    /// The registered services (`None` when none were ever registered).
    pub async fn schema(&self, fresh: bool) -> Result<Option<Arc<(Schema, Version)>>, String> {
        self.schema.read(self.store.as_ref(), fresh).await.map_err(|e| e.to_string())
    }

    /// The partition an invocation id belongs to.
    pub async fn partition_of(&self, id: &InvocationId, fresh: bool) -> Result<PartitionId, String> {
        let table = self.partitions.read(self.store.as_ref(), fresh).await;
        let table = table.map_err(|e| e.to_string())?.ok_or("the cluster has no partitions yet")?;
        Ok(PartitionId(partition_for(id.partition_key(), table.0.partitions.len() as u32) as u16))
    }

    /// The partition table, read fresh (for administrative requests).
    pub async fn partition_table(&self) -> Result<Arc<PartitionTable>, String> {
        let table = self.partitions.refresh(self.store.as_ref()).await.map_err(|e| e.to_string())?;
        Ok(Arc::new(table.map(|t| t.0.clone()).ok_or("the cluster has no partitions yet (is it provisioned?)")?))
    }

    /// The node address of `partition`'s planned leader.
    pub async fn leader_address(&self, partition: PartitionId, fresh: bool) -> Result<String, String> {
        let store = self.store.as_ref();
        let plan = self.plan.read(store, fresh).await;
        let plan = plan.map_err(|e| e.to_string())?.ok_or("no partition has a leader yet")?;
        let placement =
            plan.0.partitions.get(&partition).ok_or_else(|| format!("partition {partition} has no leader yet"))?;
        let leader = placement.leader;
        let address = |nodes: Option<Arc<(NodesConfiguration, _)>>| {
            nodes.and_then(|n| n.0.nodes.get(&leader).map(|node| node.address.clone()))
        };
        if let Some(address) = address(self.nodes.get(store).await.map_err(|e| e.to_string())?) {
            return Ok(address);
        }
        // A node that just joined may be missing from an older copy.
        address(self.nodes.refresh(store).await.map_err(|e| e.to_string())?)
            .ok_or_else(|| format!("leader {leader} of partition {partition} is not a known node"))
    }

    /// The scheduling plan and nodes, read fresh (for listings and administrative requests).
    pub async fn plan_and_nodes(&self) -> Result<(Arc<SchedulingPlan>, Arc<NodesConfiguration>), String> {
        let store = self.store.as_ref();
        let plan = self.plan.refresh(store).await.map_err(|e| e.to_string())?;
        let nodes = self.nodes.refresh(store).await.map_err(|e| e.to_string())?;
        Ok((
            Arc::new(plan.map(|p| p.0.clone()).unwrap_or_default()),
            Arc::new(nodes.map(|n| n.0.clone()).unwrap_or_default()),
        ))
    }
}
