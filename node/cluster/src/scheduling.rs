//! Which worker leads each partition (pure). Every registered worker follows every
//! partition; the leader is the least-loaded alive worker, kept while it answers, and
//! replaced (epoch + 1, preferring a follower) once it has been unreachable longer than
//! the fail-over delay or is no longer a worker.

use std::collections::{BTreeMap, BTreeSet};

use restate_metadata::objects::{PartitionPlacement, PartitionTable, SchedulingPlan};
use restate_types::PlainNodeId;

/// The plan after this round, or `None` if nothing changes.
pub fn schedule(
    table: &PartitionTable,
    current: &SchedulingPlan,
    workers: &BTreeSet<PlainNodeId>,
    alive: &BTreeSet<PlainNodeId>,
    failed: &BTreeSet<PlainNodeId>,
) -> Option<SchedulingPlan> {
    let mut next = current.clone();
    next.partitions.retain(|id, _| table.partitions.contains_key(id));
    let mut leaderships: BTreeMap<PlainNodeId, usize> = BTreeMap::new();
    for placement in next.partitions.values() {
        *leaderships.entry(placement.leader).or_insert(0) += 1;
    }
    let candidates: Vec<PlainNodeId> = workers.intersection(alive).copied().collect();
    for id in table.partitions.keys() {
        let existing = next.partitions.get(id).cloned();
        let keep = existing.as_ref().is_some_and(|p| workers.contains(&p.leader) && !failed.contains(&p.leader));
        let (leader, leader_epoch) = match (&existing, keep) {
            (Some(p), true) => (p.leader, p.leader_epoch),
            _ => {
                let Some(leader) = least_loaded(&candidates, &leaderships) else { continue };
                if let Some(old) = &existing {
                    if let Some(n) = leaderships.get_mut(&old.leader) {
                        *n = n.saturating_sub(1);
                    }
                }
                *leaderships.entry(leader).or_insert(0) += 1;
                (leader, existing.as_ref().map_or(1, |p| p.leader_epoch + 1))
            }
        };
        let followers = workers.iter().copied().filter(|w| *w != leader).collect();
        next.partitions.insert(*id, PartitionPlacement { leader, leader_epoch, followers });
    }
    (next != *current).then_some(next)
}

fn least_loaded(candidates: &[PlainNodeId], load: &BTreeMap<PlainNodeId, usize>) -> Option<PlainNodeId> {
    candidates.iter().copied().min_by_key(|n| (load.get(n).copied().unwrap_or(0), *n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_types::PartitionId;

    fn set(v: &[u32]) -> BTreeSet<PlainNodeId> {
        v.iter().map(|i| PlainNodeId(*i)).collect()
    }

    #[test]
    fn leaders_are_spread_and_every_other_worker_follows() {
        let table = PartitionTable::evenly_split(3);
        let plan = schedule(&table, &SchedulingPlan::default(), &set(&[1, 2, 3]), &set(&[1, 2, 3]), &set(&[])).unwrap();
        let leaders: BTreeSet<PlainNodeId> = plan.partitions.values().map(|p| p.leader).collect();
        assert_eq!(leaders, set(&[1, 2, 3]));
        for p in plan.partitions.values() {
            assert_eq!(p.leader_epoch, 1);
            assert_eq!(p.followers.len(), 2);
            assert!(!p.followers.contains(&p.leader));
        }
        // Stable: nothing changes while everyone answers.
        assert_eq!(schedule(&table, &plan, &set(&[1, 2, 3]), &set(&[1, 2, 3]), &set(&[])), None);
    }

    #[test]
    fn a_failed_leader_is_replaced_with_a_higher_epoch() {
        let table = PartitionTable::evenly_split(1);
        let plan = schedule(&table, &SchedulingPlan::default(), &set(&[1, 2, 3]), &set(&[1, 2, 3]), &set(&[])).unwrap();
        let first = plan.partitions[&PartitionId(0)].clone();
        // Unreachable but not yet past the fail-over delay: kept.
        let alive_without: BTreeSet<PlainNodeId> = set(&[1, 2, 3]).into_iter().filter(|n| *n != first.leader).collect();
        assert_eq!(schedule(&table, &plan, &set(&[1, 2, 3]), &alive_without, &set(&[])), None);
        let next = schedule(&table, &plan, &set(&[1, 2, 3]), &alive_without, &[first.leader].into()).unwrap();
        let second = &next.partitions[&PartitionId(0)];
        assert_ne!(second.leader, first.leader);
        assert_eq!(second.leader_epoch, first.leader_epoch + 1);
        assert!(second.followers.contains(&first.leader), "the old leader follows once it returns");
    }

    #[test]
    fn no_alive_worker_means_no_placement_yet() {
        let table = PartitionTable::evenly_split(2);
        assert_eq!(schedule(&table, &SchedulingPlan::default(), &set(&[1]), &set(&[]), &set(&[])), None);
    }
}
