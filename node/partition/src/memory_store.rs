//! [`PartitionStore`] in memory, for tests and tools: a sorted map behind a mutex.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use restate_types::PartitionId;

use super::store::{KeyValue, KvRead, PartitionStore, StoreError, WriteSet};

/// One partition's state in memory. Clones share the data (like clones of a RocksDB
/// store share the database), so a reader can hold one while the state machine applies.
#[derive(Debug, Clone)]
pub struct MemoryPartitionStore {
    partition: PartitionId,
    data: Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl MemoryPartitionStore {
    /// An empty store for `partition`.
    pub fn new(partition: PartitionId) -> MemoryPartitionStore {
        MemoryPartitionStore { partition, data: Arc::default() }
    }

    fn data(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // Only a panic inside `commit` (allocation failure) could poison the lock; the map
        // is still a valid map then, so keep serving it.
        self.data.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl KvRead for MemoryPartitionStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.data().get(key).cloned())
    }

    fn scan(&self, lower: &[u8], upper: Option<&[u8]>) -> Result<Vec<KeyValue>, StoreError> {
        use std::ops::Bound;
        let upper = match upper {
            Some(upper) => Bound::Excluded(upper.to_vec()),
            None => Bound::Unbounded,
        };
        Ok(self.data().range((Bound::Included(lower.to_vec()), upper)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

impl PartitionStore for MemoryPartitionStore {
    fn partition_id(&self) -> PartitionId {
        self.partition
    }

    fn commit(&self, changes: WriteSet) -> Result<(), StoreError> {
        let mut data = self.data();
        for (key, change) in changes.iter() {
            match change {
                Some(value) => data.insert(key.to_vec(), value.to_vec()),
                None => data.remove(key),
            };
        }
        Ok(())
    }
}
