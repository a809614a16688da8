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
        }
    }
}
