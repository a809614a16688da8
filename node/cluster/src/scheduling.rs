//! Which worker leads each partition (pure). Every registered worker follows every
//! partition; the leader is an alive worker in the zone that leads the fewest partitions,
//! the least-loaded one there (so leaders spread over zones first), kept while it answers, and
//! replaced (epoch + 1, preferring a follower) once it has been unreachable longer than
//! the fail-over delay or is no longer a worker. A partition whose log is a local loglet
//! is led by the node that holds it (`local_writers`): no other node can append to it.

use std::collections::{BTreeMap, BTreeSet};

use restate_metadata::objects::{Logs, PartitionPlacement, PartitionTable, SchedulingPlan};
use restate_types::{LogProviderKind, PartitionId, PlainNodeId};

/// Partitions whose log only one node can write: the log's tail segment is a local
/// loglet, held by that node alone.
pub fn local_writers(table: &PartitionTable, logs: &Logs) -> BTreeMap<PartitionId, PlainNodeId> {
    table
        .partitions
        .iter()
        .filter_map(|(id, partition)| {
            let tail = logs.logs.get(&partition.log_id)?.segments.last()?;
            match tail.nodeset.as_slice() {
                [only] if tail.kind == LogProviderKind::Local => Some((*id, *only)),
                _ => None,
            }
        })
        .collect()
}

/// The plan after this round, or `None` if nothing changes. A partition in `writers` is
/// led only by its writer (no other node can append to its log): it moves there, and
/// waits while the writer is not an alive worker. `zones` names each worker's zone
/// (`region.zone`; missing or empty: no location, one shared zone).
pub fn schedule(
    table: &PartitionTable,
    current: &SchedulingPlan,
    workers: &BTreeSet<PlainNodeId>,
    alive: &BTreeSet<PlainNodeId>,
    failed: &BTreeSet<PlainNodeId>,
    writers: &BTreeMap<PartitionId, PlainNodeId>,
    zones: &BTreeMap<PlainNodeId, String>,
) -> Option<SchedulingPlan> {
    let mut next = current.clone();
    next.partitions.retain(|id, _| table.partitions.contains_key(id));
    let mut leaderships = Leaderships { per_node: BTreeMap::new(), per_zone: BTreeMap::new(), zones };
    for placement in next.partitions.values() {
        leaderships.add(placement.leader);
    }
    let candidates: Vec<PlainNodeId> = workers.intersection(alive).copied().collect();
    for id in table.partitions.keys() {
        let existing = next.partitions.get(id).cloned();
        let writer = writers.get(id);
        let keep = existing.as_ref().is_some_and(|p| {
            workers.contains(&p.leader) && !failed.contains(&p.leader) && writer.is_none_or(|w| *w == p.leader)
        });
        let (leader, leader_epoch) = match (&existing, keep) {
            (Some(p), true) => (p.leader, p.leader_epoch),
            _ => {
                let eligible: Vec<PlainNodeId> = match writer {
                    Some(writer) => candidates.iter().copied().filter(|c| c == writer).collect(),
                    None => candidates.clone(),
                };
                let Some(leader) = leaderships.least_loaded(&eligible) else { continue };
                if let Some(old) = &existing {
                    leaderships.remove(old.leader);
                }
                leaderships.add(leader);
                (leader, existing.as_ref().map_or(1, |p| p.leader_epoch + 1))
            }
        };
        let followers = workers.iter().copied().filter(|w| *w != leader).collect();
        next.partitions.insert(*id, PartitionPlacement { leader, leader_epoch, followers });
    }
    (next != *current).then_some(next)
}

/// Partitions led per node and per zone, as the round assigns them.
struct Leaderships<'a> {
    per_node: BTreeMap<PlainNodeId, usize>,
    per_zone: BTreeMap<&'a str, usize>,
    zones: &'a BTreeMap<PlainNodeId, String>,
}

impl<'a> Leaderships<'a> {
    fn zone(&self, node: PlainNodeId) -> &'a str {
        self.zones.get(&node).map_or("", String::as_str)
    }

    fn add(&mut self, node: PlainNodeId) {
        *self.per_node.entry(node).or_insert(0) += 1;
        *self.per_zone.entry(self.zone(node)).or_insert(0) += 1;
    }

    fn remove(&mut self, node: PlainNodeId) {
        let zone = self.zone(node);
        if let Some(n) = self.per_node.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = self.per_zone.get_mut(zone) {
            *n = n.saturating_sub(1);
        }
    }

    /// The candidate in the zone leading the fewest partitions, the least loaded there,
    /// ties by id.
    fn least_loaded(&self, candidates: &[PlainNodeId]) -> Option<PlainNodeId> {
        candidates.iter().copied().min_by_key(|n| {
            let zone = self.per_zone.get(self.zone(*n)).copied().unwrap_or(0);
            (zone, self.per_node.get(n).copied().unwrap_or(0), *n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[u32]) -> BTreeSet<PlainNodeId> {
        v.iter().map(|i| PlainNodeId(*i)).collect()
    }

    /// `schedule` with no partition pinned to a local log's node.
    fn unpinned(
        table: &PartitionTable,
        current: &SchedulingPlan,
        workers: &BTreeSet<PlainNodeId>,
        alive: &BTreeSet<PlainNodeId>,
        failed: &BTreeSet<PlainNodeId>,
    ) -> Option<SchedulingPlan> {
        schedule(table, current, workers, alive, failed, &BTreeMap::new(), &BTreeMap::new())
    }

    #[test]
    fn leaders_are_spread_and_every_other_worker_follows() {
        let table = PartitionTable::evenly_split(3);
        let plan = unpinned(&table, &SchedulingPlan::default(), &set(&[1, 2, 3]), &set(&[1, 2, 3]), &set(&[])).unwrap();
        let leaders: BTreeSet<PlainNodeId> = plan.partitions.values().map(|p| p.leader).collect();
        assert_eq!(leaders, set(&[1, 2, 3]));
        for p in plan.partitions.values() {
            assert_eq!(p.leader_epoch, 1);
            assert_eq!(p.followers.len(), 2);
            assert!(!p.followers.contains(&p.leader));
        }
        // Stable: nothing changes while everyone answers.
        assert_eq!(unpinned(&table, &plan, &set(&[1, 2, 3]), &set(&[1, 2, 3]), &set(&[])), None);
    }

    #[test]
    fn a_failed_leader_is_replaced_with_a_higher_epoch() {
        let table = PartitionTable::evenly_split(1);
        let plan = unpinned(&table, &SchedulingPlan::default(), &set(&[1, 2, 3]), &set(&[1, 2, 3]), &set(&[])).unwrap();
        let first = plan.partitions[&PartitionId(0)].clone();
        // Unreachable but not yet past the fail-over delay: kept.
        let alive_without: BTreeSet<PlainNodeId> = set(&[1, 2, 3]).into_iter().filter(|n| *n != first.leader).collect();
        assert_eq!(unpinned(&table, &plan, &set(&[1, 2, 3]), &alive_without, &set(&[])), None);
        let next = unpinned(&table, &plan, &set(&[1, 2, 3]), &alive_without, &[first.leader].into()).unwrap();
        let second = &next.partitions[&PartitionId(0)];
        assert_ne!(second.leader, first.leader);
        assert_eq!(second.leader_epoch, first.leader_epoch + 1);
        assert!(second.followers.contains(&first.leader), "the old leader follows once it returns");
    }

    #[test]
    fn a_partition_on_a_local_log_is_led_by_the_node_that_holds_it() {
        let table = PartitionTable::evenly_split(2);
        let writers: BTreeMap<PartitionId, PlainNodeId> =
            [(PartitionId(0), PlainNodeId(1)), (PartitionId(1), PlainNodeId(1))].into();
        let all = set(&[1, 2, 3]);
        let none = BTreeMap::new();
        let plan = schedule(&table, &SchedulingPlan::default(), &all, &all, &set(&[]), &writers, &none).unwrap();
        assert!(plan.partitions.values().all(|p| p.leader == PlainNodeId(1)), "{plan:?}");
        // A plan made without the constraint moves its leaders to the writer.
        let spread = unpinned(&table, &SchedulingPlan::default(), &all, &all, &set(&[])).unwrap();
        let moved = schedule(&table, &spread, &all, &all, &set(&[]), &writers, &none).unwrap();
        for (id, placement) in &moved.partitions {
            assert_eq!(placement.leader, PlainNodeId(1));
            let before = &spread.partitions[id];
            let epoch = if before.leader == PlainNodeId(1) { before.leader_epoch } else { before.leader_epoch + 1 };
            assert_eq!(placement.leader_epoch, epoch);
        }
        // A dead writer: nobody else can lead; the placement waits for it.
        let without_writer = set(&[2, 3]);
        assert_eq!(schedule(&table, &moved, &all, &without_writer, &set(&[1]), &writers, &none), None);
    }

    #[test]
    fn local_writers_are_the_holders_of_local_tail_segments() {
        use restate_metadata::objects::{Chain, Segment};
        use restate_types::{LogId, LogletId, Lsn};
        let table = PartitionTable::evenly_split(2);
        let segment = |kind, nodeset: Vec<u32>| Segment {
            base_lsn: Lsn(1),
            kind,
            loglet_id: LogletId(0),
            replication: 1,
            nodeset: nodeset.into_iter().map(PlainNodeId).collect(),
            joined: vec![],
        };
        let mut logs = Logs::default();
        logs.logs.insert(LogId(0), Chain { segments: vec![segment(LogProviderKind::Local, vec![2])] });
        logs.logs.insert(LogId(1), Chain { segments: vec![segment(LogProviderKind::Replicated, vec![1, 2, 3])] });
        let writers = local_writers(&table, &logs);
        let log_of = |p: u16| table.partitions[&PartitionId(p)].log_id;
        let expected: BTreeMap<PartitionId, PlainNodeId> = [0u16, 1]
            .into_iter()
            .filter(|p| log_of(*p) == LogId(0))
            .map(|p| (PartitionId(p), PlainNodeId(2)))
            .collect();
        assert_eq!(writers, expected);
    }

    #[test]
    fn leaders_spread_over_zones_before_nodes() {
        // Zone a has three workers, b and c one each: six partitions go 2/2/2 by zone,
        // not 4/1/1 as by node alone.
        let zones: BTreeMap<PlainNodeId, String> = [(1, "r.a"), (2, "r.a"), (3, "r.a"), (4, "r.b"), (5, "r.c")]
            .map(|(n, z)| (PlainNodeId(n), z.to_owned()))
            .into();
        let table = PartitionTable::evenly_split(6);
        let all = set(&[1, 2, 3, 4, 5]);
        let plan =
            schedule(&table, &SchedulingPlan::default(), &all, &all, &set(&[]), &BTreeMap::new(), &zones).unwrap();
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for p in plan.partitions.values() {
            *per_zone.entry(zones[&p.leader].as_str()).or_insert(0) += 1;
        }
        assert_eq!(per_zone, [("r.a", 2), ("r.b", 2), ("r.c", 2)].into(), "{plan:?}");
        // Zone b lost: its partitions move to the zones leading fewest.
        let without_b = set(&[1, 2, 3, 5]);
        let next = schedule(&table, &plan, &all, &without_b, &set(&[4]), &BTreeMap::new(), &zones).unwrap();
        assert!(next.partitions.values().all(|p| p.leader != PlainNodeId(4)));
        let in_c = next.partitions.values().filter(|p| p.leader == PlainNodeId(5)).count();
        assert_eq!(in_c, 3, "{next:?}");
    }

    #[test]
    fn no_alive_worker_means_no_placement_yet() {
        let table = PartitionTable::evenly_split(2);
        assert_eq!(unpinned(&table, &SchedulingPlan::default(), &set(&[1]), &set(&[]), &set(&[])), None);
    }
}
