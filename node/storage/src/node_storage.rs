use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteBufferManager,
    WriteOptions, DB,
};

use crate::identity::{IdentityMismatch, NodeIdentity};

/// Node identity marker, cluster membership facts of this node.
pub const CF_NODE: &str = "node";
/// Versioned key-value pairs of the local metadata store.
pub const CF_METADATA: &str = "metadata";
/// Records of local loglets.
pub const CF_LOGLET: &str = "loglet";
/// Raft logs, hard states and snapshots of every raft group on this node.
pub const CF_RAFT: &str = "raft";
/// State of the partition processors on this node (invocations, journals, per-key user
/// state, timers, outbox), keys prefixed with the partition id so partitions share it.
pub const CF_PARTITION: &str = "partition";

const ALL_CFS: [&str; 5] = [CF_NODE, CF_METADATA, CF_LOGLET, CF_RAFT, CF_PARTITION];
const IDENTITY_KEY: &[u8] = b"identity";
/// The storage format the data was last written with (u32 BE), see `STORAGE_FORMAT_VERSION`.
const STORAGE_FORMAT_KEY: &[u8] = b"storage-format";

#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// The one budget that the block cache and all write buffers share.
    pub total_memory_bytes: u64,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions { total_memory_bytes: 256 << 20 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot open the node's RocksDB at {path}: {source}. Is another restate-server using this base-dir? Stop it, or give this node its own `base-dir`")]
    Open { path: PathBuf, source: rocksdb::Error },
    #[error("cannot create data directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("RocksDB {op} failed: {source}")]
    Rocks { op: &'static str, source: rocksdb::Error },
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error(transparent)]
    Identity(#[from] IdentityMismatch),
    #[error("the data in {path} was written with storage format {stored}, newer than this restate-server's {supported}: it cannot read it. Run a restate-server as new as the one that wrote it (a downgrade across storage formats is not possible); the data is left as it is")]
    NewerFormat { path: PathBuf, stored: u32, supported: u32 },
}

impl StorageError {
    pub fn rocks(op: &'static str) -> impl FnOnce(rocksdb::Error) -> StorageError {
        move |source| StorageError::Rocks { op, source }
    }
}

/// Obsolete write-ahead log files kept for reuse (RocksDB `recycle_log_file_num`).
pub const WAL_FILES_RECYCLED: usize = 4;

/// The node's RocksDB. Cheap to clone; closed when the last clone drops.
#[derive(Clone)]
pub struct NodeStorage {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    path: PathBuf,
    /// Durable writes sync the WAL; tests may turn it off for speed.
    sync_writes: bool,
}

impl NodeStorage {
    /// Opens (creating if needed) the database in `dir` with every column family.
    pub fn open(dir: &Path, options: &StorageOptions) -> Result<NodeStorage, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::CreateDir { path: dir.to_owned(), source })?;
        let budget = options.total_memory_bytes.max(16 << 20) as usize;
        // Half the budget caches blocks, half buffers writes; write buffers are charged
        // to the cache so the sum never exceeds the budget.
        let cache = Cache::new_lru_cache(budget);
        let write_buffers = WriteBufferManager::new_write_buffer_manager_with_cache(budget / 2, false, cache.clone());

        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);

        let mut cf_opts = Options::default();
        cf_opts.set_block_based_table_factory(&table);
        cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);

        let mut db_opts = cf_opts.clone();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_write_buffer_manager(&write_buffers);
        db_opts.set_max_background_jobs(2);
        db_opts.set_keep_log_file_num(3);
        // Write-ahead log files no longer needed are kept and rewritten in place instead of
        // new ones being created: a synced write then flushes data only, where appending
        // to a growing file also commits its new size (about 30-40% slower per fdatasync
        // on ext4). Every raft round ends in one such sync.
        db_opts.set_recycle_log_file_num(WAL_FILES_RECYCLED);

        let cfs = ALL_CFS.iter().map(|name| ColumnFamilyDescriptor::new(*name, cf_opts.clone()));
        let db = DB::open_cf_descriptors(&db_opts, dir, cfs)
            .map_err(|source| StorageError::Open { path: dir.to_owned(), source })?;
        Ok(NodeStorage { inner: Arc::new(Inner { db, path: dir.to_owned(), sync_writes: true }) })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn db(&self) -> &DB {
        &self.inner.db
    }

    /// The handle of one of the `CF_*` column families (all exist after `open`).
    pub fn cf(&self, name: &str) -> &ColumnFamily {
        self.inner.db.cf_handle(name).unwrap_or_else(|| panic!("column family {name} is created at open"))
    }

    /// Writes a batch atomically; durable before return (WAL fsync).
    pub fn write_durable(&self, batch: WriteBatch) -> Result<(), StorageError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(self.inner.sync_writes);
        self.inner.db.write_opt(batch, &opts).map_err(StorageError::rocks("write"))
    }

    /// Bytes the keys `from..to` of column family `cf` take in RocksDB's files (its cheap
    /// estimate; what is still in memtables is not counted).
    pub fn approximate_size(&self, cf: &str, from: &[u8], to: &[u8]) -> u64 {
        let range = rocksdb::Range::new(from, to);
        self.inner.db.get_approximate_sizes_cf(self.cf(cf), &[range]).first().copied().unwrap_or(0)
    }

    /// Flushes memtables and the WAL; called on clean shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.inner.db.flush_wal(true).map_err(StorageError::rocks("flush wal"))?;
        for name in ALL_CFS {
            self.inner.db.flush_cf(self.cf(name)).map_err(StorageError::rocks("flush"))?;
        }
        Ok(())
    }

    /// The identity stored in this database, if any.
    pub fn identity(&self) -> Result<Option<NodeIdentity>, StorageError> {
        let raw = self.db().get_cf(self.cf(CF_NODE), IDENTITY_KEY).map_err(StorageError::rocks("get identity"))?;
        raw.map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| StorageError::Corrupt { what: "node identity marker", detail: e.to_string() })
        })
        .transpose()
    }

    /// Checks that this data belongs to `node_name` in `cluster_name`, writing the marker
    /// on first use. Refuses data written by another node or for another cluster.
    /// Checks the data's storage format against `supported` (this binary's): data of a newer
    /// format is refused, untouched; data of an older one (or without a mark) is marked as
    /// `supported` from now on. Returns the format found (`None`: no mark yet).
    pub fn claim_storage_format(&self, supported: u32) -> Result<Option<u32>, StorageError> {
        let stored = self
            .db()
            .get_cf(self.cf(CF_NODE), STORAGE_FORMAT_KEY)
            .map_err(StorageError::rocks("read storage format"))?
            .map(|bytes| {
                <[u8; 4]>::try_from(bytes.as_slice()).map(u32::from_be_bytes).map_err(|_| StorageError::Corrupt {
                    what: "storage format mark",
                    detail: format!("{} bytes, expected 4", bytes.len()),
                })
            })
            .transpose()?;
        match stored {
            Some(stored) if stored > supported => {
                Err(StorageError::NewerFormat { path: self.path().to_owned(), stored, supported })
            }
            Some(stored) if stored == supported => Ok(Some(stored)),
            _ => {
                let mut batch = WriteBatch::default();
                batch.put_cf(self.cf(CF_NODE), STORAGE_FORMAT_KEY, supported.to_be_bytes());
                self.write_durable(batch)?;
                Ok(stored)
            }
        }
    }

    pub fn claim_identity(&self, node_name: &str, cluster_name: &str) -> Result<NodeIdentity, StorageError> {
        if let Some(existing) = self.identity()? {
            existing.check(node_name, cluster_name, self.path())?;
            return Ok(existing);
        }
        let identity = NodeIdentity::new(node_name, cluster_name);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_NODE), IDENTITY_KEY, serde_json::to_vec(&identity).expect("identity serializes"));
        self.write_durable(batch)?;
        Ok(identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_ahead_logs_are_recycled_and_what_they_held_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
            // Each flush switches the write-ahead log; the later writes go to recycled files.
            for round in 0u8..4 {
                let mut batch = WriteBatch::default();
                batch.put_cf(storage.cf(CF_RAFT), [round], vec![round; 4096]);
                storage.write_durable(batch).unwrap();
                for name in ALL_CFS {
                    storage.db().flush_cf(storage.cf(name)).unwrap();
                }
            }
            let mut batch = WriteBatch::default();
            batch.put_cf(storage.cf(CF_RAFT), b"last", b"in the log only");
            storage.write_durable(batch).unwrap();
        }
        // RocksDB drops options it cannot honour with the others; the OPTIONS file it
        // wrote says what it runs with.
        let options: String = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("OPTIONS-"))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        assert!(
            options.contains(&format!("recycle_log_file_num={WAL_FILES_RECYCLED}")),
            "WAL recycling is not in effect:\n{options}"
        );
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let cf = storage.cf(CF_RAFT);
        for round in 0u8..4 {
            assert_eq!(storage.db().get_cf(cf, [round]).unwrap(), Some(vec![round; 4096]), "round {round}");
        }
        assert_eq!(storage.db().get_cf(cf, b"last").unwrap().as_deref(), Some(&b"in the log only"[..]));
    }

    #[test]
    fn identity_is_written_once_and_guards_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let first = {
            let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
            storage.claim_identity("node-1", "prod").unwrap()
        };
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let again = storage.claim_identity("node-1", "prod").unwrap();
        assert_eq!(first, again, "the marker survives a reopen unchanged");

        let err = storage.claim_identity("node-1", "staging").unwrap_err().to_string();
        assert!(err.contains("staging") && err.contains("prod"), "{err}");
        let err = storage.claim_identity("node-2", "prod").unwrap_err().to_string();
        assert!(err.contains("node-2") && err.contains("node-1"), "{err}");
        // A refused claim leaves the marker alone.
        assert_eq!(storage.identity().unwrap().unwrap(), first);
    }

    #[test]
    fn data_of_a_newer_storage_format_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        assert_eq!(storage.claim_storage_format(1).unwrap(), None, "no mark yet");
        assert_eq!(storage.claim_storage_format(2).unwrap(), Some(1), "an upgrade moves the mark");
        assert_eq!(storage.claim_storage_format(2).unwrap(), Some(2));
        let err = storage.claim_storage_format(1).unwrap_err().to_string();
        assert!(err.contains("storage format 2") && err.contains("this restate-server's 1"), "{err}");
        assert_eq!(storage.claim_storage_format(2).unwrap(), Some(2), "the refusal changed nothing");
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let _first = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let err = NodeStorage::open(dir.path(), &StorageOptions::default()).err().unwrap().to_string();
        assert!(err.contains("base-dir"), "{err}");
    }
}
