//! The drain and remove procedures (`NodeCtl.DrainNode` / `RemoveNode`, `restatectl nodes
//! drain|remove`, the operator before it shrinks a StatefulSet), against the metadata store.
//!
//! Draining marks the node in NodesConfiguration (the controller then moves its log
//! replicas and partition leaderships, see [`crate::plan`] and [`crate::scheduling`]) and
//! removes its vote from the replicated metadata store. Every call is idempotent and
//! answers with what is left ([`crate::drain::drain_progress`]), so callers repeat the
//! same request until it says drained.

use restate_metadata::objects::{
    ClusterConfiguration, Logs, MetadataObject, MetadataServerState, NodesConfiguration, SchedulingPlan,
};
use restate_metadata::replicated::admin_client::{on_leader, voting_members};
use restate_metadata::{typed, MetadataStore};
use restate_proto::metadata as mpb;
use restate_types::PlainNodeId;

use crate::drain::{drain_progress, refuse_drain, DrainProgress};

/// Why a drain or remove request did nothing; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    /// The cluster's state forbids it now (the message names the way out).
    #[error("{0}")]
    Refused(String),
    /// The metadata store (or one of its members) did not answer; safe to repeat.
    #[error("{0}")]
    Unavailable(String),
}

/// A draining node and what still ties it to the cluster.
#[derive(Debug, Clone)]
pub struct DrainReport {
    pub node: PlainNodeId,
    pub name: String,
    pub progress: DrainProgress,
}

/// Resolves `wanted` (`N4`, `4` or a node name) among the registered nodes.
pub fn resolve_node(nodes: &NodesConfiguration, wanted: &str) -> Result<PlainNodeId, DrainError> {
    let wanted = wanted.trim();
    if wanted.is_empty() {
        return Err(DrainError::InvalidInput("no node given: pass a node id (N4) or name".into()));
    }
    let by_number = wanted.trim_start_matches(['N', 'n']).parse::<u32>().ok();
    nodes.nodes.values().find(|n| n.name == wanted || Some(n.id.0) == by_number).map(|n| n.id).ok_or_else(|| {
        let known: Vec<String> = nodes.nodes.values().map(|n| format!("{} ({})", n.id, n.name)).collect();
        DrainError::NotFound(format!("node '{wanted}' is not registered; known: {}", known.join(", ")))
    })
}

fn store_error(e: impl std::fmt::Display) -> DrainError {
    DrainError::Unavailable(format!("metadata store unavailable: {e}"))
}

async fn read<T: MetadataObject + Default>(store: &dyn MetadataStore) -> Result<T, DrainError> {
    Ok(typed::get::<T>(store).await.map_err(store_error)?.map(|(v, _)| v).unwrap_or_default())
}

/// The voting members of the metadata store, asked of the nodes that serve it.
async fn metadata_voters(nodes: &NodesConfiguration) -> Vec<mpb::Member> {
    let servers: Vec<String> = nodes
        .nodes
        .values()
        .filter(|n| n.metadata_server_state != MetadataServerState::None)
        .map(|n| n.address.clone())
        .collect();
    voting_members(&servers).await
}

/// Starts (or continues) draining `wanted`: marks it draining, removes its metadata vote,
/// and reports what is left on it.
pub async fn drain(store: &dyn MetadataStore, wanted: &str) -> Result<DrainReport, DrainError> {
    let nodes: NodesConfiguration = read(store).await?;
    let id = resolve_node(&nodes, wanted)?;
    let replication = typed::get::<ClusterConfiguration>(store)
        .await
        .map_err(store_error)?
        .map(|(c, _)| c.replication)
        .ok_or_else(|| DrainError::Refused("the cluster is not provisioned yet: nothing to drain".into()))?;
    if let Some(refusal) = refuse_drain(&nodes, id, replication) {
        return Err(DrainError::Refused(refusal));
    }
    let mut started = false;
    typed::read_modify_write::<NodesConfiguration, DrainError, _>(store, |current| {
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

    let mut members = metadata_voters(&nodes).await;
    if let Some(member) = members.iter().find(|m| m.node_id == id.0).cloned() {
        if members.len() == 1 {
            return Err(DrainError::Refused(format!(
                "{id} ({name}) is the only member of the metadata store: add another metadata server before draining it"
            )));
        }
        let addresses: Vec<String> =
            members.iter().filter(|m| m.raft_id != member.raft_id).map(|m| m.address.clone()).collect();
        on_leader(&addresses, |mut c| async move { c.remove(mpb::RemoveRequest { raft_id: member.raft_id }).await })
            .await
            .map_err(|e| DrainError::Unavailable(format!("removing {id} ({name}) from the metadata store: {e}")))?;
        tracing::info!(node = %id, raft_id = member.raft_id, "draining: removed from the metadata store");
        members.retain(|m| m.raft_id != member.raft_id);
        typed::read_modify_write::<NodesConfiguration, DrainError, _>(store, |current| {
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

    let voters: Vec<PlainNodeId> = members.iter().map(|m| PlainNodeId(m.node_id)).collect();
    let progress = progress_of(store, id, &voters).await?;
    Ok(DrainReport { node: id, name, progress })
}

async fn progress_of(
    store: &dyn MetadataStore,
    node: PlainNodeId,
    voters: &[PlainNodeId],
) -> Result<DrainProgress, DrainError> {
    let logs: Logs = read(store).await?;
    let plan: SchedulingPlan = read(store).await?;
    Ok(drain_progress(node, &logs, &plan, voters))
}

/// A node about to restart and the partitions it still leads.
#[derive(Debug, Clone)]
pub struct RestartReport {
    pub node: PlainNodeId,
    pub name: String,
    /// Partitions the scheduling plan still has it lead (the controller moves them).
    pub led_partitions: Vec<restate_types::PartitionId>,
    /// It still leads the replicated metadata store (it is handing the leadership over).
    pub metadata_leader: bool,
}

impl RestartReport {
    /// Whether restarting it now costs no partition and no metadata store its leader.
    pub fn is_ready(&self) -> bool {
        self.led_partitions.is_empty() && !self.metadata_leader
    }
}

/// Prepares `wanted` for a restart: marks it (its partition leaderships move to other
/// workers; it keeps its log replicas and metadata vote, and the mark clears when it
/// registers again) and reports the partitions it still leads. Idempotent: repeat until
/// ready. Refused for the last worker (no one would lead).
pub async fn prepare_restart(store: &dyn MetadataStore, wanted: &str) -> Result<RestartReport, DrainError> {
    let nodes: NodesConfiguration = read(store).await?;
    let id = resolve_node(&nodes, wanted)?;
    let name = nodes.nodes.get(&id).map(|n| n.name.clone()).unwrap_or_default();
    let is_worker = nodes.active_workers().any(|n| n.id == id);
    if is_worker && nodes.active_workers().filter(|n| n.id != id).count() == 0 {
        return Err(DrainError::Refused(format!(
            "{id} ({name}) is the only worker: its partitions would have no leader while it restarts; \
             restart it without preparing (a short outage) or add a worker"
        )));
    }
    let mut marked = false;
    typed::read_modify_write::<NodesConfiguration, DrainError, _>(store, |current| {
        let mut next = current.unwrap_or_default();
        marked = next.start_restarting(id);
        Ok(marked.then_some(next))
    })
    .await
    .map_err(store_error)??;
    if marked {
        tracing::info!(node = %id, name = %name, "preparing for a restart: partition leaderships move off the node");
    }
    let plan: SchedulingPlan = read(store).await?;
    let led_partitions = plan.partitions.iter().filter(|(_, p)| p.leader == id).map(|(id, _)| *id).collect();
    let metadata_leader = hand_over_metadata_leadership(&nodes, id).await;
    Ok(RestartReport { node: id, name, led_partitions, metadata_leader })
}

/// Asks the replicated metadata store's leader to hand its leadership over if it runs on
/// `node`; whether it still does. A store that is not replicated (or does not answer)
/// counts as not led by `node`: its restart then costs at most an election.
async fn hand_over_metadata_leadership(nodes: &NodesConfiguration, node: PlainNodeId) -> bool {
    let servers: Vec<String> = nodes
        .nodes
        .values()
        .filter(|n| n.metadata_server_state == MetadataServerState::Member)
        .map(|n| n.address.clone())
        .collect();
    if servers.len() < 2 {
        return false;
    }
    let request = mpb::HandOverLeadershipRequest { node_id: node.0 };
    match on_leader(&servers, |mut c| async move { c.hand_over_leadership(request).await }).await {
        Ok(answer) => answer.leader_node_id == node.0,
        Err(e) => {
            tracing::debug!(node = %node, "the metadata store's leader did not answer the hand-over: {e}");
            false
        }
    }
}

/// Removes `wanted` from NodesConfiguration once it is drained (or at once with `force`,
/// for a node gone for good). `None` when no such node is registered: removing twice is
/// not an error, the node is gone either way.
pub async fn remove(
    store: &dyn MetadataStore,
    wanted: &str,
    force: bool,
) -> Result<Option<(PlainNodeId, String)>, DrainError> {
    let nodes: NodesConfiguration = read(store).await?;
    let id = match resolve_node(&nodes, wanted) {
        Ok(id) => id,
        Err(DrainError::NotFound(_)) => return Ok(None),
        Err(other) => return Err(other),
    };
    let node = nodes.nodes[&id].clone();
    if !force {
        if !node.draining {
            return Err(DrainError::Refused(format!(
                "{id} ({}) is not draining: run `restatectl nodes drain {}` first (or --force for a node gone for good)",
                node.name, node.name
            )));
        }
        let voters: Vec<PlainNodeId> = metadata_voters(&nodes).await.iter().map(|m| PlainNodeId(m.node_id)).collect();
        let progress = progress_of(store, id, &voters).await?;
        if !progress.is_drained() {
            return Err(DrainError::Refused(format!(
                "{id} ({}) is not drained yet: {}; wait for `restatectl nodes drain {} --wait`",
                node.name,
                progress.summary(),
                node.name
            )));
        }
    }
    typed::read_modify_write::<NodesConfiguration, DrainError, _>(store, |current| {
        let mut next = current.unwrap_or_default();
        Ok(next.nodes.remove(&id).map(|_| next))
    })
    .await
    .map_err(store_error)??;
    tracing::info!(node = %id, name = %node.name, force, "node removed from the cluster");
    Ok(Some((id, node.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_resolve_by_id_number_or_name() {
        let mut nodes = NodesConfiguration::default();
        nodes.nodes.insert(
            PlainNodeId(4),
            restate_metadata::objects::NodeConfig {
                id: PlainNodeId(4),
                generation: 1,
                name: "n4".into(),
                address: "http://127.0.0.1:5122/".into(),
                roles: restate_types::RoleSet::default(),
                metadata_server_state: MetadataServerState::None,
                log_server_state: restate_metadata::objects::LogServerState::Disabled,
                storage_id: "s".into(),
                draining: false,
                restarting: false,
                location: Default::default(),
            },
        );
        for wanted in ["N4", "4", "n4", " n4 "] {
            assert_eq!(resolve_node(&nodes, wanted).unwrap(), PlainNodeId(4), "{wanted}");
        }
        assert!(matches!(resolve_node(&nodes, "N5"), Err(DrainError::NotFound(m)) if m.contains("N4 (n4)")));
        assert!(matches!(resolve_node(&nodes, " "), Err(DrainError::InvalidInput(_))));
    }
}
