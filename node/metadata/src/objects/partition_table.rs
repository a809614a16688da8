use std::collections::BTreeMap;

use restate_types::{LogId, PartitionId};
use serde::{Deserialize, Serialize};

/// How the key space is split into partitions, and which log each partition uses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PartitionTable {
    pub partitions: BTreeMap<PartitionId, Partition>,
}

/// A partition owns the inclusive range of 64-bit partition keys `[start_key, end_key]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub start_key: u64,
    pub end_key: u64,
    pub log_id: LogId,
}

impl PartitionTable {
    /// `n` partitions of (nearly) equal share covering all of `0..=u64::MAX`, without gaps.
    pub fn evenly_split(n: u32) -> PartitionTable {
        assert!((1..=u16::MAX as u32).contains(&n), "partition count {n} out of range");
        let n = n as u128;
        let space = u64::MAX as u128 + 1;
        let partitions = (0..n)
            .map(|i| {
                let start = (space * i / n) as u64;
                let end = (space * (i + 1) / n - 1) as u64;
                (PartitionId(i as u16), Partition { start_key: start, end_key: end, log_id: LogId(i as u32) })
            })
            .collect();
        PartitionTable { partitions }
    }

    /// Whether the table can be used: at least one partition, each range well-formed,
    /// together covering `0..=u64::MAX` without gap or overlap, one log per partition.
    /// The error names the rule that failed.
    pub fn check(&self) -> Result<(), String> {
        let mut ranges: Vec<(PartitionId, &Partition)> = self.partitions.iter().map(|(id, p)| (*id, p)).collect();
        if ranges.is_empty() {
            return Err("it has no partitions".to_owned());
        }
        ranges.sort_by_key(|(_, p)| p.start_key);
        let mut logs = std::collections::BTreeSet::new();
        let mut next = 0u64;
        for (i, (id, p)) in ranges.iter().enumerate() {
            if p.start_key > p.end_key {
                return Err(format!("partition {id} starts at {} after its end {}", p.start_key, p.end_key));
            }
            if p.start_key != next {
                return Err(if p.start_key > next {
                    format!("no partition owns the keys {next}..{}", p.start_key - 1)
                } else {
                    format!("partition {id} overlaps the partition before it at key {}", p.start_key)
                });
            }
            if !logs.insert(p.log_id) {
                return Err(format!("log {} is used by more than one partition", p.log_id));
            }
            if p.end_key == u64::MAX {
                if let Some((after, _)) = ranges.get(i + 1) {
                    return Err(format!("partition {after} lies past the end of the key space"));
                }
                return Ok(());
            }
            next = p.end_key + 1;
        }
        Err(format!("no partition owns the keys {next}..{}", u64::MAX))
    }

    /// The partition that owns `key`.
    pub fn find(&self, key: u64) -> Option<(PartitionId, &Partition)> {
        self.partitions.iter().find(|(_, p)| p.start_key <= key && key <= p.end_key).map(|(id, p)| (*id, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_key_space_without_gaps() {
        for n in [1, 3, 24, 1000] {
            let table = PartitionTable::evenly_split(n);
            let parts: Vec<_> = table.partitions.values().collect();
            assert_eq!(parts.len(), n as usize);
            assert_eq!(parts[0].start_key, 0);
            assert_eq!(parts.last().unwrap().end_key, u64::MAX);
            for pair in parts.windows(2) {
                assert_eq!(pair[0].end_key + 1, pair[1].start_key);
            }
            assert!(table.find(u64::MAX / 2).is_some());
            assert_eq!(table.check(), Ok(()));
        }
    }

    #[test]
    fn a_table_with_a_gap_an_overlap_or_a_shared_log_is_refused_with_the_rule() {
        let mut gap = PartitionTable::evenly_split(2);
        gap.partitions.get_mut(&PartitionId(1)).unwrap().start_key += 10;
        assert!(gap.check().unwrap_err().contains("no partition owns the keys"), "{:?}", gap.check());
        let mut overlap = PartitionTable::evenly_split(2);
        overlap.partitions.get_mut(&PartitionId(1)).unwrap().start_key -= 1;
        assert!(overlap.check().unwrap_err().contains("overlaps"));
        let mut shared = PartitionTable::evenly_split(2);
        shared.partitions.get_mut(&PartitionId(1)).unwrap().log_id = LogId(0);
        assert!(shared.check().unwrap_err().contains("more than one partition"));
        let mut short = PartitionTable::evenly_split(2);
        short.partitions.remove(&PartitionId(1));
        assert!(short.check().unwrap_err().contains("no partition owns the keys"));
        assert!(PartitionTable::default().check().unwrap_err().contains("no partitions"));
    }
}
