//! What the controller should change in the logs' placement, computed from metadata and
//! liveness alone (pure), and how each change rewrites [`Logs`].

use std::collections::{BTreeMap, BTreeSet};

use restate_metadata::objects::{ClusterConfiguration, Logs, NodesConfiguration, Segment};
use restate_types::{LogId, LogProviderKind, LogletId, PlainNodeId, ReplicationProperty};

use crate::placement::{add_load, choose_nodeset, keeps_spread, tail_load};

/// One change of a log's segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A replicated tail segment that waited for log-servers gets its nodeset.
    Place { log: LogId, loglet: LogletId, nodeset: Vec<PlainNodeId> },
    /// `dead` (unreachable beyond the grace period, or draining) leaves the segment's
    /// nodeset and `spare` joins it; the loglet group follows (see [`crate::membership`]).
    Replace { log: LogId, loglet: LogletId, dead: PlainNodeId, spare: PlainNodeId },
    /// A draining member leaves a nodeset that has no spare to take its place but is
    /// larger than the cluster's replication needs (e.g. a sealed segment written at a
    /// higher replication): the group shrinks, and the segment's replication becomes what
    /// the smaller group holds.
    Shrink { log: LogId, loglet: LogletId, leaving: PlainNodeId },
    /// The tail has less replication than the cluster's configuration, or its nodeset does
    /// not keep the configuration's spread over zones/regions, and the log-servers that
    /// answer can do better: seal it and continue on a segment with `replication`.
    Improve { log: LogId, replication: u32, nodeset: Vec<PlainNodeId> },
}

/// The inputs of one planning round.
pub struct ClusterView<'a> {
    pub logs: &'a Logs,
    pub nodes: &'a NodesConfiguration,
    pub config: Option<&'a ClusterConfiguration>,
    /// Log-servers whose last probe answered.
    pub alive: &'a BTreeSet<PlainNodeId>,
    /// Log-servers unreachable for longer than the grace period.
    pub dead: &'a BTreeSet<PlainNodeId>,
}

/// Every action for this round; at most one per segment.
pub fn plan(view: &ClusterView<'_>) -> Vec<Action> {
    let log_servers: BTreeSet<PlainNodeId> = view.nodes.log_servers().map(|n| n.id).collect();
    let alive: Vec<PlainNodeId> = log_servers.intersection(view.alive).copied().collect();
    let placeable = placement_candidates(view);
    let mut load = tail_load(view.logs);
    let mut actions = Vec::new();
    for (log, chain) in &view.logs.logs {
        let last = chain.segments.len().saturating_sub(1);
        for (i, segment) in chain.segments.iter().enumerate() {
            if segment.kind != LogProviderKind::Replicated {
                continue;
            }
            if segment.nodeset.is_empty() {
                if i == last {
                    if let Ok(nodeset) = choose_nodeset(&placeable, view.nodes, &load, spread_for(view, segment)) {
                        add_load(&mut load, &nodeset);
                        actions.push(Action::Place { log: *log, loglet: segment.loglet_id, nodeset });
                    }
                }
                continue;
            }
            if let Some(action) = replacement(*log, segment, &alive, view, &load) {
                if let Action::Replace { spare, .. } = &action {
                    add_load(&mut load, &[*spare]);
                }
                actions.push(action);
                continue;
            }
            if i == last {
                if let Some(config) = view.config {
                    let wanted = config.replication;
                    let short = segment.replication < wanted.node
                        || (segment.replication == wanted.node && !keeps_spread(&segment.nodeset, view.nodes, wanted));
                    if config.log_provider == LogProviderKind::Replicated && short {
                        if let Ok(nodeset) = choose_nodeset(&alive, view.nodes, &load, wanted) {
                            add_load(&mut load, &nodeset);
                            actions.push(Action::Improve { log: *log, replication: wanted.node, nodeset });
                        }
                    }
                }
            }
        }
    }
    actions
}

/// Where a waiting tail may be placed: the registered log-servers, alive or not yet probed
/// (a cluster still starting), as provisioning promised; not the dead ones.
fn placement_candidates(view: &ClusterView<'_>) -> Vec<PlainNodeId> {
    view.nodes.log_servers().map(|n| n.id).filter(|n| !view.dead.contains(n)).collect()
}

/// Why replicated tails still wait for a nodeset, by log: the arithmetic of why the
/// registered log-servers that are not dead cannot hold them.
pub fn unplaced(view: &ClusterView<'_>) -> BTreeMap<LogId, String> {
    let candidates = placement_candidates(view);
    view.logs
        .logs
        .iter()
        .filter_map(|(log, chain)| {
            let tail = chain.segments.last()?;
            if tail.kind != LogProviderKind::Replicated || !tail.nodeset.is_empty() {
                return None;
            }
            choose_nodeset(&candidates, view.nodes, &BTreeMap::new(), spread_for(view, tail))
                .err()
                .map(|why| (*log, why))
        })
        .collect()
}

/// The replication property `segment` is held to: the cluster's spread at the segment's
/// own copy count.
fn spread_for(view: &ClusterView<'_>, segment: &Segment) -> ReplicationProperty {
    view.config
        .map_or(ReplicationProperty::nodes(segment.replication), |c| c.replication.with_nodes(segment.replication))
}

/// A dead (or removed) member of `segment`, else a draining one, swapped for the least loaded alive
/// log-server outside its nodeset that keeps the segment's spread over zones (any spare when
/// none does: the copy count comes first, a later round improves the spread), if the group
/// still has a majority of reachable members (a group without one cannot change its
/// membership). Dead members go first: they cost redundancy now, a draining member still
/// serves.
fn replacement(
    log: LogId,
    segment: &Segment,
    alive: &[PlainNodeId],
    view: &ClusterView<'_>,
    load: &BTreeMap<PlainNodeId, usize>,
) -> Option<Action> {
    let draining = |n: &PlainNodeId| view.nodes.nodes.get(n).is_some_and(|c| c.draining);
    let leaving = segment
        .nodeset
        .iter()
        .copied()
        .find(|n| view.dead.contains(n) || !view.nodes.nodes.contains_key(n))
        .or_else(|| segment.nodeset.iter().copied().find(|n| draining(n) && view.alive.contains(n)))?;
    let reachable_members = segment.nodeset.iter().filter(|n| view.alive.contains(n)).count();
    if reachable_members < segment.nodeset.len() / 2 + 1 {
        return None;
    }
    let mut spares: Vec<PlainNodeId> = alive.iter().copied().filter(|n| !segment.nodeset.contains(n)).collect();
    spares.sort_by_key(|node| (load.get(node).copied().unwrap_or(0), *node));
    let spread = spread_for(view, segment);
    let keeps = |spare: &PlainNodeId| {
        let next: Vec<PlainNodeId> = segment.nodeset.iter().map(|n| if *n == leaving { *spare } else { *n }).collect();
        keeps_spread(&next, view.nodes, spread)
    };
    if let Some(spare) = spares.iter().find(|s| keeps(s)).or(spares.first()).copied() {
        return Some(Action::Replace { log, loglet: segment.loglet_id, dead: leaving, spare });
    }
    // No spare: a draining member may still go if the rest holds the configured replication.
    let configured = view.config.map_or(segment.replication, |c| c.replication.node);
    let rest = segment.nodeset.len() as u32 - 1;
    (draining(&leaving) && rest >= ClusterConfiguration::log_servers_needed(configured).max(1))
        .then_some(Action::Shrink { log, loglet: segment.loglet_id, leaving })
}

/// Applies a metadata-only action to `logs`; false if `logs` no longer matches what the
/// action was planned from (then nothing changes). [`Action::Improve`] needs a seal and
/// goes through Bifrost instead.
pub fn apply(logs: &mut Logs, action: &Action) -> bool {
    match action {
        Action::Place { log, loglet, nodeset } => {
            let Some(tail) = logs.logs.get_mut(log).and_then(|c| c.segments.last_mut()) else { return false };
            if tail.loglet_id != *loglet || !tail.nodeset.is_empty() {
                return false;
            }
            tail.nodeset = nodeset.clone();
            true
        }
        Action::Replace { log, loglet, dead, spare } => {
            let Some(segment) =
                logs.logs.get_mut(log).and_then(|c| c.segments.iter_mut().find(|s| s.loglet_id == *loglet))
            else {
                return false;
            };
            if segment.nodeset.contains(spare) {
                return false;
            }
            let Some(slot) = segment.nodeset.iter_mut().find(|n| *n == dead) else { return false };
            *slot = *spare;
            segment.nodeset.sort();
            segment.joined.retain(|n| n != dead);
            segment.joined.push(*spare);
            true
        }
        Action::Shrink { log, loglet, leaving } => {
            let Some(segment) =
                logs.logs.get_mut(log).and_then(|c| c.segments.iter_mut().find(|s| s.loglet_id == *loglet))
            else {
                return false;
            };
            if !segment.nodeset.contains(leaving) || segment.nodeset.len() < 2 {
                return false;
            }
            segment.nodeset.retain(|n| n != leaving);
            segment.joined.retain(|n| n != leaving);
            // A raft group of n members holds a record on a majority of them.
            segment.replication = segment.replication.min(segment.nodeset.len() as u32 / 2 + 1);
            true
        }
        Action::Improve { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_types::{Location, Lsn, RoleSet};

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

    fn logs(replication: u32, nodeset: &[u32]) -> Logs {
        Logs::initial(1, LogProviderKind::Replicated, replication, ids(nodeset))
    }

    fn config(replication: u32) -> ClusterConfiguration {
        ClusterConfiguration {
            cluster_name: "c".into(),
            cluster_fingerprint: "f".into(),
            num_partitions: 1,
            replication: ReplicationProperty::nodes(replication),
            log_provider: LogProviderKind::Replicated,
            provisioned_at_unix_ms: 0,
        }
    }

    fn set(v: &[u32]) -> BTreeSet<PlainNodeId> {
        ids(v).into_iter().collect()
    }

    #[test]
    fn waiting_segments_are_placed_once_enough_log_servers_registered() {
        let logs = logs(2, &[]);
        let (alive, dead) = (set(&[]), set(&[]));
        let few = nodes(2);
        let view = ClusterView { logs: &logs, nodes: &few, config: None, alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty());
        let enough = nodes(3);
        let view = ClusterView { logs: &logs, nodes: &enough, config: None, alive: &alive, dead: &dead };
        assert_eq!(plan(&view), vec![Action::Place { log: LogId(0), loglet: LogletId(1), nodeset: ids(&[1, 2, 3]) }]);
    }

    #[test]
    fn a_dead_member_is_replaced_by_an_alive_spare() {
        let logs = logs(2, &[1, 2, 3]);
        let nodes = nodes(4);
        let (alive, dead) = (set(&[1, 2, 4]), set(&[3]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: None, alive: &alive, dead: &dead };
        let actions = plan(&view);
        assert_eq!(
            actions,
            vec![Action::Replace { log: LogId(0), loglet: LogletId(1), dead: PlainNodeId(3), spare: PlainNodeId(4) }]
        );
        let mut next = logs.clone();
        assert!(apply(&mut next, &actions[0]));
        let segment = &next.logs[&LogId(0)].segments[0];
        assert_eq!(segment.nodeset, ids(&[1, 2, 4]));
        assert_eq!(segment.joined, ids(&[4]));
        assert!(!segment.bootstraps_on(PlainNodeId(1)), "a repaired group is never bootstrapped again");
        // Applying the same action again changes nothing.
        assert!(!apply(&mut next, &actions[0]));
    }

    #[test]
    fn no_replacement_without_a_spare_or_without_a_live_majority() {
        let logs = logs(2, &[1, 2, 3]);
        let three = nodes(3);
        let (alive, dead) = (set(&[1, 2]), set(&[3]));
        let view = ClusterView { logs: &logs, nodes: &three, config: None, alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty(), "no spare");
        let five = nodes(5);
        let (alive, dead) = (set(&[1, 4, 5]), set(&[2, 3]));
        let view = ClusterView { logs: &logs, nodes: &five, config: None, alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty(), "one live member of three cannot change the group");
    }

    #[test]
    fn a_draining_member_is_replaced_while_it_still_serves() {
        let logs = logs(2, &[1, 2, 3]);
        let mut nodes = nodes(4);
        assert!(nodes.start_draining(PlainNodeId(2)));
        let (alive, dead) = (set(&[1, 2, 3, 4]), set(&[]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: None, alive: &alive, dead: &dead };
        assert_eq!(
            plan(&view),
            vec![Action::Replace { log: LogId(0), loglet: LogletId(1), dead: PlainNodeId(2), spare: PlainNodeId(4) }]
        );
        // No read-write spare: the draining member stays until one exists.
        let three = {
            let mut n = self::nodes(3);
            n.start_draining(PlainNodeId(2));
            n
        };
        let view = ClusterView { logs: &logs, nodes: &three, config: None, alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty());
        // A draining node is never chosen as a spare.
        let mut four = self::nodes(4);
        four.start_draining(PlainNodeId(4));
        let (alive, dead) = (set(&[1, 2, 4]), set(&[3]));
        let view = ClusterView { logs: &logs, nodes: &four, config: None, alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty());
    }

    #[test]
    fn a_draining_member_without_a_spare_shrinks_a_nodeset_larger_than_needed() {
        // Sealed at replication 3 over all five nodes; the cluster now runs at 2.
        let logs = logs(3, &[1, 2, 3, 4, 5]);
        let mut nodes = nodes(5);
        nodes.start_draining(PlainNodeId(5));
        let config = config(2);
        let (alive, dead) = (set(&[1, 2, 3, 4, 5]), set(&[]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        let actions = plan(&view);
        assert_eq!(actions, vec![Action::Shrink { log: LogId(0), loglet: LogletId(1), leaving: PlainNodeId(5) }]);
        let mut next = logs.clone();
        assert!(apply(&mut next, &actions[0]));
        let segment = &next.logs[&LogId(0)].segments[0];
        assert_eq!((segment.nodeset.clone(), segment.replication), (ids(&[1, 2, 3, 4]), 3));
        assert!(!apply(&mut next, &actions[0]), "applied once");
        // At the configured replication's minimum (3 for r=2), nothing shrinks further.
        let small = self::logs(2, &[1, 2, 3]);
        let mut three = self::nodes(3);
        three.start_draining(PlainNodeId(3));
        let alive = set(&[1, 2, 3]);
        let view = ClusterView { logs: &small, nodes: &three, config: Some(&config), alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty());
    }

    #[test]
    fn unreachable_but_not_yet_dead_members_are_left_alone() {
        let logs = logs(2, &[1, 2, 3]);
        let nodes = nodes(4);
        let (alive, dead) = (set(&[1, 2, 4]), set(&[]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: None, alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty());
    }

    #[test]
    fn replication_is_raised_when_the_cluster_can_satisfy_the_configuration() {
        let logs = logs(1, &[1]);
        let nodes = nodes(3);
        let config = config(2);
        let (alive, dead) = (set(&[1, 2]), set(&[]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty(), "two alive log-servers cannot hold replication 2");
        let alive = set(&[1, 2, 3]);
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        assert_eq!(plan(&view), vec![Action::Improve { log: LogId(0), replication: 2, nodeset: ids(&[1, 2, 3]) }]);
    }

    /// Nodes 1..=n, node i in zone `zones[i-1]` of region "r".
    fn zoned_nodes(zones: &[&str]) -> NodesConfiguration {
        let mut nodes = NodesConfiguration::default();
        for (i, zone) in zones.iter().enumerate() {
            let location: Location = format!("r.{zone}").parse().unwrap();
            nodes.register(&format!("n{}", i + 1), "http://x:1", &RoleSet::all(), "s", false, &location);
        }
        nodes
    }

    #[test]
    fn tails_that_cannot_be_placed_say_why() {
        let nodes = zoned_nodes(&["a", "a", "b"]);
        let mut config = config(2);
        config.replication = "{zone: 2, node: 2}".parse().unwrap();
        let logs = logs(2, &[]);
        let (alive, dead) = (set(&[1, 2, 3]), set(&[]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        assert!(plan(&view).is_empty());
        let why = unplaced(&view);
        assert!(why[&LogId(0)].contains("at most 1 in any zone"), "{why:?}");
        let placed = self::logs(2, &[1, 2, 3]);
        let view = ClusterView { logs: &placed, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        assert!(unplaced(&view).is_empty());
    }

    #[test]
    fn nodesets_are_repaired_and_improved_to_keep_the_zone_spread() {
        // {zone: 2, node: 2}: three members, one per zone.
        let nodes = zoned_nodes(&["a", "a", "b", "c", "b"]);
        let mut config = config(2);
        config.replication = "{zone: 2, node: 2}".parse().unwrap();
        // A tail on 1, 2, 3 has two members in zone a: improved onto one per zone.
        let logs = logs(2, &[1, 2, 3]);
        let (alive, dead) = (set(&[1, 2, 3, 4, 5]), set(&[]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        match plan(&view).as_slice() {
            [Action::Improve { replication: 2, nodeset, .. }] => {
                assert!(crate::placement::keeps_spread(nodeset, &nodes, config.replication), "{nodeset:?}");
            }
            other => panic!("{other:?}"),
        }
        // A tail on 1, 3, 4 (a, b, c) whose member in c is dead: 5 (zone b) would put two in b,
        // 2 (zone a) two in a; with no spare that keeps the spread, the least loaded takes the
        // copy and a later round improves.
        let logs = self::logs(2, &[1, 3, 4]);
        let (alive, dead) = (set(&[1, 2, 3, 5]), set(&[4]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        assert!(matches!(plan(&view).as_slice(), [Action::Replace { dead, .. }] if *dead == PlainNodeId(4)));
        // With a spare in zone c it is the one chosen, though others come first by load and id.
        let nodes = zoned_nodes(&["a", "a", "b", "c", "b", "c"]);
        let (alive, dead) = (set(&[1, 2, 3, 5, 6]), set(&[4]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        assert_eq!(
            plan(&view),
            vec![Action::Replace { log: LogId(0), loglet: LogletId(1), dead: PlainNodeId(4), spare: PlainNodeId(6) }]
        );
    }

    #[test]
    fn sealed_segments_are_repaired_but_never_improved() {
        let mut logs = logs(1, &[1]);
        let chain = logs.logs.get_mut(&LogId(0)).unwrap();
        chain.segments.push(Segment {
            base_lsn: Lsn(10),
            kind: LogProviderKind::Replicated,
            loglet_id: LogletId(7),
            replication: 2,
            nodeset: ids(&[1, 2, 3]),
            joined: vec![],
        });
        let nodes = nodes(4);
        let config = config(2);
        let (alive, dead) = (set(&[2, 3, 4]), set(&[1]));
        let view = ClusterView { logs: &logs, nodes: &nodes, config: Some(&config), alive: &alive, dead: &dead };
        // Segment 0 (replication 1, its only member dead) has no live majority; the
        // tail loses node 1 to the spare 4.
        assert_eq!(
            plan(&view),
            vec![Action::Replace { log: LogId(0), loglet: LogletId(7), dead: PlainNodeId(1), spare: PlainNodeId(4) }]
        );
    }
}
