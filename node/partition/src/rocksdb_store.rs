//! [`PartitionStore`] in the node's RocksDB: column family `partition`, every key
//! prefixed with the partition id (2 bytes, big-endian), so all partitions of a node
//! share one column family and one memory budget.

use restate_storage::rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch, WriteOptions};
use restate_storage::NodeStorage;
use restate_types::PartitionId;

use super::keys::prefix_end;
use super::store::{KeyValue, KvRead, PartitionStore, StoreError, WriteSet};

/// Name of the column family (`restate_storage`'s `CF_PARTITION`; the crate does not
/// re-export that constant yet, `NodeStorage::cf` panics if the two ever disagree).
pub const CF_PARTITION: &str = "partition";

/// One partition's state in the node's RocksDB. Cheap to clone; clones share the
/// database, so the leader's invoker and the ingress can read while the state machine
/// applies (they see whole committed records only).
#[derive(Clone)]
pub struct RocksDbPartitionStore {
    storage: NodeStorage,
    partition: PartitionId,
    prefix: [u8; 2],
}

impl std::fmt::Debug for RocksDbPartitionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbPartitionStore")
            .field("path", &self.storage.path())
            .field("partition", &self.partition)
            .finish()
    }
}

impl RocksDbPartitionStore {
    /// The store of `partition` in `storage` (opened with the `partition` column family).
    pub fn new(storage: NodeStorage, partition: PartitionId) -> RocksDbPartitionStore {
        RocksDbPartitionStore { storage, partition, prefix: partition.0.to_be_bytes() }
    }

    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    pub(crate) fn storage(&self) -> &NodeStorage {
        &self.storage
    }

    /// The prefix of every key of this partition in the column family.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(2 + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(key);
        full
    }

    fn error(&self, op: &'static str) -> impl FnOnce(restate_storage::rocksdb::Error) -> StoreError {
        let partition = self.partition;
        move |source| StoreError::Rocks { partition, op, source }
    }
}

impl KvRead for RocksDbPartitionStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let cf = self.storage.cf(CF_PARTITION);
        Ok(self.storage.db().get_pinned_cf(cf, self.full_key(key)).map_err(self.error("get"))?.map(|v| v.to_vec()))
    }

    fn scan(&self, lower: &[u8], upper: Option<&[u8]>) -> Result<Vec<KeyValue>, StoreError> {
        let cf = self.storage.cf(CF_PARTITION);
        let lower = self.full_key(lower);
        // Unbounded scans stop at the end of this partition's prefix.
        let upper = match upper {
            Some(upper) => Some(self.full_key(upper)),
            None => prefix_end(&self.prefix),
        };
        let mut options = ReadOptions::default();
        if let Some(upper) = &upper {
            options.set_iterate_upper_bound(upper.clone());
        }
        let mode = IteratorMode::From(&lower, Direction::Forward);
        let mut out = Vec::new();
        for item in self.storage.db().iterator_cf_opt(cf, options, mode) {
            let (key, value) = item.map_err(self.error("scan"))?;
            if !key.starts_with(&self.prefix) {
                break;
            }
            out.push((key[self.prefix.len()..].to_vec(), value.to_vec()));
        }
        Ok(out)
    }
}

impl PartitionStore for RocksDbPartitionStore {
    fn partition_id(&self) -> PartitionId {
        self.partition
    }

    /// One WriteBatch, written without fsync (the WAL is still written, so a process
    /// crash loses nothing; a machine crash may lose a tail the log replays).
    fn commit(&self, changes: WriteSet) -> Result<(), StoreError> {
        let cf = self.storage.cf(CF_PARTITION);
        let mut batch = WriteBatch::default();
        for (key, change) in changes.iter() {
            match change {
                Some(value) => batch.put_cf(cf, self.full_key(key), value),
                None => batch.delete_cf(cf, self.full_key(key)),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.storage.db().write_opt(batch, &options).map_err(self.error("write"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_storage::StorageOptions;

    #[test]
    fn partitions_share_the_column_family_without_seeing_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let first = RocksDbPartitionStore::new(storage.clone(), PartitionId(1));
        let last = RocksDbPartitionStore::new(storage.clone(), PartitionId(u16::MAX));
        for (store, value) in [(&first, b"one".as_slice()), (&last, b"last".as_slice())] {
            let mut changes = WriteSet::default();
            changes.put(b"k1".to_vec(), value.to_vec());
            changes.put(b"k2".to_vec(), value.to_vec());
            store.commit(changes).unwrap();
        }
        let mut delete = WriteSet::default();
        delete.delete(b"k1".to_vec());
        first.commit(delete).unwrap();

        assert_eq!(first.scan(&[], None).unwrap(), vec![(b"k2".to_vec(), b"one".to_vec())]);
        assert_eq!(last.scan(&[], None).unwrap().len(), 2);
        assert_eq!(last.scan(b"k2", None).unwrap(), vec![(b"k2".to_vec(), b"last".to_vec())]);
        assert_eq!(last.scan(b"k1", Some(b"k2")).unwrap(), vec![(b"k1".to_vec(), b"last".to_vec())]);
        assert_eq!(first.get(b"k1").unwrap(), None);
        assert_eq!(last.get(b"k1").unwrap(), Some(b"last".to_vec()));
    }
}
