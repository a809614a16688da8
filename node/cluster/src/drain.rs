//! How far a draining node is from holding nothing the cluster needs (pure). The
//! controller moves the work (see [`crate::plan`] and [`crate::scheduling`]); this only
//! reads metadata and says what is left, so an operator or `restatectl nodes drain --wait`
//! knows when the node can be stopped and removed.

use restate_metadata::objects::{ClusterConfiguration, Logs, NodesConfiguration, SchedulingPlan};
use restate_types::{LogId, LogletId, PartitionId, PlainNodeId, ReplicationProperty};

use crate::placement::choose_nodeset;

/// What still ties a draining node to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DrainProgress {
    /// Segments whose nodeset still names the node (its replicas not yet moved).
    pub log_segments: Vec<(LogId, LogletId)>,
    /// Partitions the node still leads.
    pub led_partitions: Vec<PartitionId>,
    /// Whether the node still votes in the replicated metadata store.
    pub metadata_member: bool,
}

impl DrainProgress {
    /// Nothing left: stopping the node loses no replica, leadership or vote.
    pub fn is_drained(&self) -> bool {
        self.log_segments.is_empty() && self.led_partitions.is_empty() && !self.metadata_member
    }

    /// One line for logs, CLI output and the operator's status.
    pub fn summary(&self) -> String {
        if self.is_drained() {
            return "drained".into();
        }
        let mut left = Vec::new();
        if !self.log_segments.is_empty() {
            left.push(format!("{} log segment(s) still replicated on it", self.log_segments.len()));
        }
        if !self.led_partitions.is_empty() {
            left.push(format!("leads {} partition(s)", self.led_partitions.len()));
        }
        if self.metadata_member {
            left.push("still a metadata store member".into());
        }
        left.join(", ")
    }
}

/// What is left on `node`; `metadata_members` are the node ids voting in the metadata store.
pub fn drain_progress(
    node: PlainNodeId,
    logs: &Logs,
    plan: &SchedulingPlan,
    metadata_members: &[PlainNodeId],
) -> DrainProgress {
    let log_segments = logs
        .logs
        .iter()
        .flat_map(|(log, chain)| chain.segments.iter().map(move |s| (*log, s)))
        .filter(|(_, s)| s.nodeset.contains(&node))
        .map(|(log, s)| (log, s.loglet_id))
        .collect();
    let led_partitions = plan.partitions.iter().filter(|(_, p)| p.leader == node).map(|(id, _)| *id).collect();
    DrainProgress { log_segments, led_partitions, metadata_member: metadata_members.contains(&node) }
}

/// Why `node` may not start draining, if it may not: the remaining read-write log-servers
/// must still be able to hold the configured replication (2r - 1 of them, spread over
/// zones as it asks, so that every nodeset finds a spare), and some other worker must
/// remain.
pub fn refuse_drain(nodes: &NodesConfiguration, node: PlainNodeId, replication: ReplicationProperty) -> Option<String> {
    let Some(target) = nodes.nodes.get(&node) else {
        return Some(format!("{node} is not a node of this cluster"));
    };
    if target.draining {
        return None;
    }
    let is_log_server = nodes.log_servers().any(|n| n.id == node);
    let remaining: Vec<PlainNodeId> = nodes.log_servers().filter(|n| n.id != node).map(|n| n.id).collect();
    let needed = ClusterConfiguration::log_servers_needed(replication.node);
    if is_log_server && (remaining.len() as u32) < needed {
        let r = replication.node;
        return Some(format!(
            "draining {node} ({}) would leave {} log-server(s); log replication {replication} \
             needs {needed} (2 x {r} - 1): lower the replication first \
             (restatectl config set --log-replication N) or add a node",
            target.name,
            remaining.len()
        ));
    }
    if is_log_server {
        if let Err(why) = choose_nodeset(&remaining, nodes, &Default::default(), replication) {
            return Some(format!(
                "draining {node} ({}) would leave log-servers that cannot hold the replication: {why}",
                target.name
            ));
        }
    }
    let is_worker = nodes.active_workers().any(|n| n.id == node);
    if is_worker && nodes.active_workers().filter(|n| n.id != node).count() == 0 {
        return Some(format!("{node} ({}) is the last worker: no one would run the partitions", target.name));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_metadata::objects::PartitionPlacement;
    use restate_types::{Location, LogProviderKind, RoleSet};

    fn ids(v: &[u32]) -> Vec<PlainNodeId> {
        v.iter().map(|i| PlainNodeId(*i)).collect()
    }

    fn nodes(n: u32) -> NodesConfiguration {
        let mut nodes = NodesConfiguration::default();
        for i in 1..=n {
            nodes.register(&format!("n{i}"), "http://x:1", &RoleSet::all(), "s", false, &Location::default());
        }
        nodes
    }

    #[test]
    fn progress_names_segments_leaderships_and_membership_until_all_are_gone() {
        let logs = Logs::initial(2, LogProviderKind::Replicated, 2, ids(&[1, 2, 3]));
        let mut plan = SchedulingPlan::default();
        plan.partitions.insert(
            PartitionId(0),
            PartitionPlacement { leader: PlainNodeId(3), leader_epoch: 1, followers: ids(&[1, 2]) },
        );
        let progress = drain_progress(PlainNodeId(3), &logs, &plan, &ids(&[1, 2, 3]));
        assert_eq!(progress.log_segments.len(), 2);
        assert_eq!(progress.led_partitions, vec![PartitionId(0)]);
        assert!(progress.metadata_member);
        assert!(!progress.is_drained());
        assert!(progress.summary().contains("2 log segment(s)"), "{}", progress.summary());

        let elsewhere = Logs::initial(2, LogProviderKind::Replicated, 2, ids(&[1, 2, 4]));
        plan.partitions.get_mut(&PartitionId(0)).unwrap().leader = PlainNodeId(1);
        let progress = drain_progress(PlainNodeId(3), &elsewhere, &plan, &ids(&[1, 2]));
        assert!(progress.is_drained());
        assert_eq!(progress.summary(), "drained");
    }

    #[test]
    fn draining_below_the_replication_or_the_last_worker_is_refused() {
        let four = nodes(4);
        assert_eq!(
            refuse_drain(&four, PlainNodeId(4), ReplicationProperty::nodes(2)),
            None,
            "three log-servers still hold replication 2"
        );
        let three = nodes(3);
        let refusal = refuse_drain(&three, PlainNodeId(3), ReplicationProperty::nodes(2)).unwrap();
        assert!(refusal.contains("would leave 2 log-server(s); log replication 2 needs 3"), "{refusal}");
        let one = nodes(1);
        assert!(refuse_drain(&one, PlainNodeId(1), ReplicationProperty::nodes(0)).unwrap().contains("last worker"));
        assert!(refuse_drain(&three, PlainNodeId(9), ReplicationProperty::nodes(1)).unwrap().contains("not a node"));
        let mut draining = nodes(3);
        draining.start_draining(PlainNodeId(3));
        assert_eq!(
            refuse_drain(&draining, PlainNodeId(3), ReplicationProperty::nodes(2)),
            None,
            "already draining: asking again is fine"
        );
    }
}
