//! A partition's whole state as one RocksDB SST file: exported from a consistent
//! point-in-time view (a RocksDB snapshot, so the applied LSN stored among the keys is
//! the LSN the file stands for), and imported in place of whatever the node held.
//!
//! Keys are stored as they are in the column family (partition-id prefix included), so a
//! file restores into the same partition id only; [`import`] checks that.

use std::path::Path;

use restate_storage::rocksdb::{
    IngestExternalFileOptions, IteratorMode, Options, ReadOptions, SstFileWriter, WriteBatch,
};
use restate_types::Lsn;

use super::keys::{self, prefix_end};
use super::rocksdb_store::{RocksDbPartitionStore, CF_PARTITION};
use super::store::{PartitionReads, StoreError};

/// Why a partition's state could not be exported or imported.
#[derive(Debug, thiserror::Error)]
pub enum StateSnapshotError {
    #[error("partition {partition} has applied no log record yet: nothing to snapshot")]
    Empty { partition: u16 },
    #[error("partition {partition}: writing the snapshot file {path} failed: {source}")]
    Write { partition: u16, path: String, source: restate_storage::rocksdb::Error },
    #[error("partition {partition}: the snapshot file {path} cannot be ingested: {source}")]
    Ingest { partition: u16, path: String, source: restate_storage::rocksdb::Error },
    #[error("partition {partition}: the snapshot file {path} holds no applied LSN for this partition (a snapshot of another partition, or damaged)")]
    Foreign { partition: u16, path: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes every key of the partition, as of one instant, to a new SST file at `path`;
/// returns the applied LSN the file stands for.
pub fn export(store: &RocksDbPartitionStore, path: &Path) -> Result<Lsn, StateSnapshotError> {
    let partition = store.partition().0;
    let storage = store.storage();
    let db = storage.db();
    let cf = storage.cf(CF_PARTITION);
    let snapshot = db.snapshot();
    let prefix = store.prefix();
    let mut read = ReadOptions::default();
    read.set_snapshot(&snapshot);
    if let Some(upper) = prefix_end(prefix) {
        read.set_iterate_upper_bound(upper);
    }
    let options = Options::default();
    let mut lsn = None;
    let mut writer: Option<SstFileWriter> = None;
    let write_error = |source| StateSnapshotError::Write { partition, path: path.display().to_string(), source };
    let mode = IteratorMode::From(prefix, restate_storage::rocksdb::Direction::Forward);
    for item in db.iterator_cf_opt(cf, read, mode) {
        let (key, value) =
            item.map_err(|source| StoreError::Rocks { partition: store.partition(), op: "export scan", source })?;
        if !key.starts_with(prefix) {
            break;
        }
        if &key[prefix.len()..] == keys::APPLIED_LSN {
            lsn = keys::u64_at(&value, 0);
        }
        if writer.is_none() {
            let created = SstFileWriter::create(&options);
            created.open(path).map_err(write_error)?;
            writer = Some(created);
        }
        writer.as_mut().expect("created above").put(&key, &value).map_err(write_error)?;
    }
    let (Some(lsn), Some(mut writer)) = (lsn.filter(|l| *l > 0), writer) else {
        return Err(StateSnapshotError::Empty { partition });
    };
    writer.finish().map_err(write_error)?;
    Ok(Lsn(lsn))
}

/// Replaces the partition's state with the SST file at `path` (written by [`export`] for
/// the same partition id); returns the applied LSN now stored. A crash in between leaves
/// the partition empty (applied LSN 0), never mixed.
pub fn import(store: &RocksDbPartitionStore, path: &Path) -> Result<Lsn, StateSnapshotError> {
    let partition = store.partition().0;
    let storage = store.storage();
    let db = storage.db();
    let cf = storage.cf(CF_PARTITION);
    let prefix = store.prefix();
    let clear_error = |source| StoreError::Rocks { partition: store.partition(), op: "clear before import", source };
    match prefix_end(prefix) {
        Some(upper) => {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf, prefix, &upper);
            db.write(batch).map_err(clear_error)?;
        }
        None => {
            let mut batch = WriteBatch::default();
            for item in db.iterator_cf(cf, IteratorMode::From(prefix, restate_storage::rocksdb::Direction::Forward)) {
                let (key, _) = item.map_err(clear_error)?;
                if !key.starts_with(prefix) {
                    break;
                }
                batch.delete_cf(cf, key);
            }
            db.write(batch).map_err(clear_error)?;
        }
    }
    let mut options = IngestExternalFileOptions::default();
    options.set_move_files(false);
    db.ingest_external_file_cf_opts(cf, &options, vec![path]).map_err(|source| StateSnapshotError::Ingest {
        partition,
        path: path.display().to_string(),
        source,
    })?;
    match store.applied_lsn()? {
        Lsn(0) => Err(StateSnapshotError::Foreign { partition, path: path.display().to_string() }),
        lsn => Ok(lsn),
    }
}

#[cfg(test)]
mod tests {
    use restate_storage::{NodeStorage, StorageOptions};
    use restate_types::PartitionId;

    use super::*;
    use crate::{KvRead, PartitionStore, WriteSet};

    fn store(storage: &NodeStorage, partition: u16) -> RocksDbPartitionStore {
        RocksDbPartitionStore::new(storage.clone(), PartitionId(partition))
    }

    fn write(store: &RocksDbPartitionStore, lsn: u64, pairs: &[(&str, &str)]) {
        let mut changes = WriteSet::default();
        for (k, v) in pairs {
            changes.put(k.as_bytes().to_vec(), v.as_bytes().to_vec());
        }
        changes.put(keys::APPLIED_LSN.to_vec(), lsn.to_be_bytes().to_vec());
        store.commit(changes).unwrap();
    }

    #[test]
    fn a_partition_round_trips_through_a_file_without_touching_its_neighbours() {
        let dir = tempfile::tempdir().unwrap();
        let source = NodeStorage::open(&dir.path().join("a"), &StorageOptions::default()).unwrap();
        write(&store(&source, 3), 42, &[("k1", "v1"), ("k2", "v2")]);
        write(&store(&source, 4), 7, &[("other", "x")]);
        let file = dir.path().join("p3.sst");
        assert_eq!(export(&store(&source, 3), &file).unwrap(), Lsn(42));

        let target = NodeStorage::open(&dir.path().join("b"), &StorageOptions::default()).unwrap();
        write(&store(&target, 3), 99, &[("stale", "gone")]);
        write(&store(&target, 2), 5, &[("neighbour", "kept")]);
        assert_eq!(import(&store(&target, 3), &file).unwrap(), Lsn(42));
        assert_eq!(store(&target, 3).canonical_dump().unwrap(), store(&source, 3).canonical_dump().unwrap());
        assert_eq!(store(&target, 2).get(b"neighbour").unwrap(), Some(b"kept".to_vec()));
    }

    #[test]
    fn an_empty_partition_has_nothing_to_export_and_a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let err = export(&store(&storage, 1), &dir.path().join("p1.sst")).unwrap_err();
        assert!(matches!(err, StateSnapshotError::Empty { partition: 1 }), "{err}");

        write(&store(&storage, 5), 10, &[("k", "v")]);
        let file = dir.path().join("p5.sst");
        export(&store(&storage, 5), &file).unwrap();
        let err = import(&store(&storage, 6), &file).unwrap_err();
        assert!(err.to_string().contains("partition 6"), "{err}");
    }
}
