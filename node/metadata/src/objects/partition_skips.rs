//! Log records an operator chose to skip (`restatectl partitions skip-record`): a record
//! that cannot be applied stops its partition at its LSN on every replica; once its LSN is
//! listed here, every processor of the partition passes over it without applying it (its
//! content is lost, on purpose) and goes on. Listing an LSN is permanent and idempotent.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Skipped LSNs per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSkips {
    pub skipped: BTreeMap<u16, BTreeSet<u64>>,
}

impl PartitionSkips {
    /// Whether the record at `lsn` of `partition` is to be skipped.
    pub fn skips(&self, partition: u16, lsn: u64) -> bool {
        self.skipped.get(&partition).is_some_and(|lsns| lsns.contains(&lsn))
    }

    /// Lists `lsn` of `partition`; false when it was listed already.
    pub fn add(&mut self, partition: u16, lsn: u64) -> bool {
        self.skipped.entry(partition).or_default().insert(lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_are_per_partition_and_adding_twice_changes_nothing() {
        let mut skips = PartitionSkips::default();
        assert!(skips.add(3, 17));
        assert!(!skips.add(3, 17));
        assert!(skips.skips(3, 17));
        assert!(!skips.skips(3, 18) && !skips.skips(2, 17));
        let json = serde_json::to_string(&skips).unwrap();
        assert_eq!(serde_json::from_str::<PartitionSkips>(&json).unwrap(), skips);
    }
}
