//! The rule between requested log replication and node count.
//!
//! A replicated loglet with replication r is a raft group of 2r-1 log servers (a majority of
//! r), so r needs at least 2r-1 nodes, and n nodes allow at most r = (n+1)/2. A spec that asks
//! for more is accepted: the cluster runs at what its nodes allow, reports it in the
//! `ReplicationPending` condition, and rises to the requested replication as nodes join.

use restate_types::ReplicationProperty;

/// Replication a cluster of `nodes` nodes can run at: the largest r with 2r-1 <= nodes (at
/// least 1, so that a cluster that is still starting has a well-defined answer).
pub fn max_replication(nodes: u32) -> u32 {
    nodes.div_ceil(2).max(1)
}

/// Nodes that replication `r` needs: 2r-1.
pub fn nodes_needed(replication: u32) -> u32 {
    (2 * replication.max(1)).saturating_sub(1)
}

/// What replication the cluster should run at, given what the spec asks for and how many
/// nodes it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationPlan {
    /// `spec.replication`.
    pub requested: u32,
    /// The node count the plan is for.
    pub nodes: u32,
    /// What to run at now: `min(requested, max_replication(nodes))`.
    pub effective: u32,
}

impl ReplicationPlan {
    /// The plan for `requested` replication on `nodes` nodes. The reconciler passes the nodes
    /// that can hold log replicas now (joined and not draining), never more than
    /// `spec.replicas`.
    pub fn new(requested: u32, nodes: u32) -> ReplicationPlan {
        let requested = requested.max(1);
        ReplicationPlan { requested, nodes, effective: requested.min(max_replication(nodes)) }
    }

    /// Whether the cluster runs below the requested replication for lack of nodes (also
    /// while it has fewer nodes than even the effective replication needs).
    pub fn is_pending(&self) -> bool {
        self.effective < self.requested || self.nodes < nodes_needed(self.effective)
    }

    /// Condition reason: `NotEnoughNodes` while pending, else `ReplicationReached`.
    pub fn reason(&self) -> &'static str {
        if self.is_pending() {
            "NotEnoughNodes"
        } else {
            "ReplicationReached"
        }
    }

    /// Condition message with the arithmetic.
    pub fn message(&self) -> String {
        let needed = nodes_needed(self.requested);
        if self.nodes < nodes_needed(self.effective) {
            let nodes = if self.nodes == 1 { "1 node is".to_owned() } else { format!("{} nodes are", self.nodes) };
            format!(
                "waiting for nodes: replication {} needs {} and {nodes} ready",
                self.effective,
                plural_nodes(nodes_needed(self.effective))
            )
        } else if self.is_pending() {
            format!(
                "spec.replication is {} but {} at most {}: replication {} needs 2*{}-1 = {needed} nodes; \
                 running at {} until the cluster has {needed} nodes",
                self.requested,
                if self.nodes == 1 { "1 node allows".to_owned() } else { format!("{} nodes allow", self.nodes) },
                self.effective,
                self.requested,
                self.requested,
                self.effective,
            )
        } else {
            format!("running at the requested replication {} ({} nodes, {needed} needed)", self.requested, self.nodes)
        }
    }
}

fn plural_nodes(n: u32) -> String {
    if n == 1 {
        "1 node".to_owned()
    } else {
        format!("{n} nodes")
    }
}

/// The log replication to set now, if it should change: the copy count raised to what
/// `spec.replication` and the alive nodes allow, lowered only when `spec.replication` itself
/// asks for fewer copies than run now (nodes that are down for a while do not lower it: their
/// replicas come back or are repaired); the spread over zones and regions as the spec says
/// (capped at the copy count).
pub fn replication_change(
    requested: ReplicationProperty,
    alive_nodes: u32,
    current: ReplicationProperty,
) -> Option<ReplicationProperty> {
    let wanted = requested.node.max(1);
    let copies = if wanted < current.node {
        wanted
    } else {
        ReplicationPlan::new(wanted, alive_nodes).effective.max(current.node)
    };
    let target = requested.with_nodes(copies);
    (target != current).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(count: u32) -> ReplicationProperty {
        ReplicationProperty::nodes(count)
    }

    #[test]
    fn nodes_allow_replication_up_to_a_majority() {
        let table = [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (6, 3), (7, 4)];
        for (nodes, max) in table {
            assert_eq!(max_replication(nodes), max, "{nodes} nodes");
        }
        assert_eq!(nodes_needed(1), 1);
        assert_eq!(nodes_needed(2), 3);
        assert_eq!(nodes_needed(3), 5);
        for r in 1..20 {
            assert_eq!(max_replication(nodes_needed(r)), r);
            assert!(max_replication(nodes_needed(r) - 1) < r || r == 1);
        }
    }

    #[test]
    fn replication_three_on_three_nodes_is_pending_at_two() {
        let plan = ReplicationPlan::new(3, 3);
        assert_eq!(plan.effective, 2);
        assert!(plan.is_pending());
        assert_eq!(plan.reason(), "NotEnoughNodes");
        let message = plan.message();
        assert!(message.contains("spec.replication is 3 but 3 nodes allow at most 2"), "{message}");
        assert!(message.contains("2*3-1 = 5 nodes"), "{message}");
        assert!(message.contains("running at 2 until the cluster has 5 nodes"), "{message}");
    }

    #[test]
    fn replication_is_reached_once_enough_nodes_joined() {
        let plan = ReplicationPlan::new(3, 5);
        assert_eq!(plan.effective, 3);
        assert!(!plan.is_pending());
        assert_eq!(plan.reason(), "ReplicationReached");
        let plan = ReplicationPlan::new(2, 7);
        assert_eq!(plan.effective, 2, "never above the request");
        assert!(!plan.is_pending());
    }

    #[test]
    fn one_node_runs_at_one() {
        let plan = ReplicationPlan::new(2, 1);
        assert_eq!(plan.effective, 1);
        assert!(plan.message().contains("1 node allows at most 1"), "{}", plan.message());
        assert!(!ReplicationPlan::new(1, 1).is_pending());
        assert_eq!(ReplicationPlan::new(0, 3).requested, 1, "0 is treated as 1");
    }

    #[test]
    fn no_nodes_yet_is_never_reported_as_running_at_the_replication() {
        let plan = ReplicationPlan::new(1, 0);
        assert!(plan.is_pending());
        assert_eq!(plan.reason(), "NotEnoughNodes");
        assert_eq!(plan.message(), "waiting for nodes: replication 1 needs 1 node and 0 nodes are ready");
        let plan = ReplicationPlan::new(2, 2);
        assert!(plan.message().starts_with("spec.replication is 2 but 2 nodes allow at most 1"), "{}", plan.message());
    }

    #[test]
    fn replication_rises_with_the_nodes_and_falls_only_with_the_spec() {
        assert_eq!(replication_change(n(2), 1, n(1)), None, "one node allows 1");
        assert_eq!(replication_change(n(2), 3, n(1)), Some(n(2)), "three nodes allow 2");
        assert_eq!(replication_change(n(3), 4, n(2)), None, "replication 3 needs 5 nodes");
        assert_eq!(replication_change(n(3), 5, n(2)), Some(n(3)));
        assert_eq!(replication_change(n(2), 2, n(2)), None, "a node down does not lower it");
        assert_eq!(replication_change(n(1), 5, n(2)), Some(n(1)), "the spec lowers it");
    }

    #[test]
    fn the_spread_follows_the_spec_at_the_copies_the_nodes_allow() {
        let zoned: ReplicationProperty = "{zone: 2, node: 3}".parse().unwrap();
        assert_eq!(replication_change(zoned, 5, n(3)), Some(zoned), "a spread added to a running count");
        assert_eq!(replication_change(zoned, 3, n(1)).unwrap().to_string(), "{zone: 2, node: 2}");
        assert_eq!(replication_change(zoned, 5, zoned), None);
        assert_eq!(replication_change(n(3), 5, zoned), Some(n(3)), "the spec drops the spread");
    }
}
