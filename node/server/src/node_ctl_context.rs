//! What the node-control handlers (`node_ctl`, `cluster_view`, `drain_ctl`) read of the node.

use std::sync::Arc;

use restate_config::Config;
use restate_metadata::MetadataStore;
use restate_proto::node_ctl as pb;

use crate::lifecycle::{NodePhase, NodeState};
use crate::membership::MembershipContext;
use crate::metrics::NodeMetrics;

/// Everything the node-control handlers read.
pub(crate) struct NodeCtlContext {
    pub config: Arc<Config>,
    pub advertised_address: String,
    pub metadata_client_addresses: Vec<String>,
    pub storage_id: String,
    pub state: NodeState,
    pub metadata: Arc<dyn MetadataStore>,
    /// The same store with a short retry budget, for status views.
    pub status_metadata: Arc<dyn MetadataStore>,
    pub membership: Arc<MembershipContext>,
    pub metrics: NodeMetrics,
    /// Bifrost and the worker, once the node runs.
    pub roles: crate::running_roles::RunningRoles,
    /// Routing metadata (from the node's view), for requests answered by partition leaders.
    pub routing: Arc<crate::routing_metadata::RoutingMetadata>,
    /// SQL over the cluster's tables (`restatectl sql`).
    pub queries: restate_query::QueryEngine,
}

impl NodeCtlContext {
    pub fn node_info(&self) -> pb::NodeInfo {
        let phase = self.state.phase();
        let (node_id, generation) = match &phase {
            NodePhase::Running { node_id } => (node_id.id.to_string(), node_id.generation),
            _ => (String::new(), 0),
        };
        pb::NodeInfo {
            name: self.config.node_name.clone(),
            cluster_name: self.config.cluster_name.clone(),
            advertised_address: self.advertised_address.clone(),
            roles: self.config.roles.iter().map(|r| r.to_string()).collect(),
            node_id,
            generation,
            state: phase.name().to_owned(),
            state_reason: phase.reason(),
            metadata_server_type: self.config.metadata_server.kind.to_string(),
            metadata_client_addresses: self.metadata_client_addresses.clone(),
            storage_id: self.storage_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: self.state.uptime().as_millis() as u64,
            storage_format_version: restate_storage::STORAGE_FORMAT_VERSION,
        }
    }
}
