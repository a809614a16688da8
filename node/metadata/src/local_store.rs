use async_trait::async_trait;
use bytes::Bytes;
use restate_storage::{rocksdb::WriteBatch, NodeStorage, CF_METADATA};
use restate_types::Version;
use tokio::sync::Mutex;

use crate::change_index::{ChangeIndex, KeyChange};
use crate::feed::{FeedUpdate, FollowableStore};
use crate::store::{validate_key, validate_ops, MetadataStore, MetadataStoreError, VersionedValue, WriteOp};

/// The metadata store in this node's RocksDB (`[metadata-server] type = "local"`).
///
/// Layout in `CF_METADATA`: key bytes -> 4-byte big-endian version ++ value bytes.
/// Writes are serialized by one lock, so check-then-write is atomic; each write is one
/// fsynced RocksDB batch.
pub struct LocalMetadataStore {
    storage: NodeStorage,
    write_lock: Mutex<()>,
    /// The keys of recent writes (the change feed); recorded after each write is durable.
    index: std::sync::Mutex<ChangeIndex>,
    /// The sequence number of the latest write.
    changed: tokio::sync::watch::Sender<u64>,
}

impl LocalMetadataStore {
    pub fn new(storage: NodeStorage) -> LocalMetadataStore {
        LocalMetadataStore {
            storage,
            write_lock: Mutex::new(()),
            index: std::sync::Mutex::new(ChangeIndex::default()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    fn read(&self, key: &str) -> Result<Option<VersionedValue>, MetadataStoreError> {
        let raw = self
            .storage
            .db()
            .get_pinned_cf(self.storage.cf(CF_METADATA), key.as_bytes())
            .map_err(|e| MetadataStoreError::Storage(format!("reading key '{key}': {e}")))?;
        raw.map(|bytes| decode(key, &bytes)).transpose()
    }

    /// Every key with its version, in key order (for migration and inspection).
    pub fn scan(&self) -> Result<Vec<(String, VersionedValue)>, MetadataStoreError> {
        let mut out = Vec::new();
        for item in
            self.storage.db().iterator_cf(self.storage.cf(CF_METADATA), restate_storage::rocksdb::IteratorMode::Start)
        {
            let (k, v) = item.map_err(|e| MetadataStoreError::Storage(format!("scanning: {e}")))?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let value = decode(&key, &v)?;
            out.push((key, value));
        }
        Ok(out)
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<VersionedValue, MetadataStoreError> {
    if bytes.len() < 4 {
        return Err(MetadataStoreError::Storage(format!(
            "stored value of key '{key}' is {} bytes, shorter than its 4-byte version header",
            bytes.len()
        )));
    }
    let version = Version(u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")));
    Ok(VersionedValue { version, value: Bytes::copy_from_slice(&bytes[4..]) })
}

fn encode(version: Version, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + value.len());
    out.extend_from_slice(&version.0.to_be_bytes());
    out.extend_from_slice(value);
    out
}

#[async_trait]
impl MetadataStore for LocalMetadataStore {
    async fn get(&self, key: &str) -> Result<Option<VersionedValue>, MetadataStoreError> {
        validate_key(key)?;
        self.read(key)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Version>, MetadataStoreError> {
        validate_ops(&ops)?;
        let _guard = self.write_lock.lock().await;
        let mut batch = WriteBatch::default();
        let cf = self.storage.cf(CF_METADATA);
        let mut versions = Vec::with_capacity(ops.len());
        let mut changes = Vec::with_capacity(ops.len());
        for op in &ops {
            let current = self.read(op.key())?.map(|v| v.version);
            if !op.precondition().holds(current) {
                return Err(MetadataStoreError::PreconditionFailed {
                    key: op.key().to_owned(),
                    expected: op.precondition(),
                    current,
                });
            }
            match op {
                WriteOp::Put { key, value, .. } => {
                    let version = current.map_or(Version::FIRST, Version::next);
                    batch.put_cf(cf, key.as_bytes(), encode(version, value));
                    versions.push(version);
                    changes.push((key.clone(), KeyChange::Put));
                }
                WriteOp::Delete { key, .. } => {
                    batch.delete_cf(cf, key.as_bytes());
                    versions.push(current.unwrap_or(Version(0)));
                    changes.push((key.clone(), KeyChange::Deleted));
                }
            }
        }
        self.storage.write_durable(batch).map_err(|e| MetadataStoreError::Storage(e.to_string()))?;
        let seq = self.index.lock().expect("not poisoned").record(changes);
        self.changed.send_replace(seq);
        Ok(versions)
    }
}

impl FollowableStore for LocalMetadataStore {
    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A write is recorded in the index after it is in RocksDB, so values read here are at
    /// least as new as the sequence number taken before reading them.
    fn update_since(&self, since: Option<u64>) -> Result<(u64, FeedUpdate), MetadataStoreError> {
        let (seq, changed) = {
            let index = self.index.lock().expect("not poisoned");
            (index.seq(), since.and_then(|since| index.changed_since(since)))
        };
        crate::feed::update_since(seq, changed, |key| self.read(key), || Ok(self.scan()?.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Precondition;
    use restate_storage::StorageOptions;

    fn open(dir: &std::path::Path) -> LocalMetadataStore {
        LocalMetadataStore::new(NodeStorage::open(dir, &StorageOptions::default()).unwrap())
    }

    #[tokio::test]
    async fn versions_start_at_one_and_rise_per_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert_eq!(store.get("k").await.unwrap(), None);
        assert_eq!(store.put("k", Bytes::from("a"), Precondition::None).await.unwrap(), Version(1));
        assert_eq!(
            store.put("k", Bytes::from("b"), Precondition::MatchesVersion(Version(1))).await.unwrap(),
            Version(2)
        );
        let v = store.get("k").await.unwrap().unwrap();
        assert_eq!((v.version, v.value), (Version(2), Bytes::from("b")));
    }

    #[tokio::test]
    async fn stale_version_is_refused_naming_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put("k", Bytes::from("a"), Precondition::None).await.unwrap();
        store.put("k", Bytes::from("b"), Precondition::None).await.unwrap();
        let err = store.put("k", Bytes::from("c"), Precondition::MatchesVersion(Version(1))).await.unwrap_err();
        assert_eq!(
            err,
            MetadataStoreError::PreconditionFailed {
                key: "k".into(),
                expected: Precondition::MatchesVersion(Version(1)),
                current: Some(Version(2))
            }
        );
        assert!(err.to_string().contains("at version 2"), "{err}");
        assert_eq!(store.get("k").await.unwrap().unwrap().value, Bytes::from("b"), "nothing changed");
        let err = store.put("k", Bytes::from("c"), Precondition::DoesNotExist).await.unwrap_err();
        assert!(matches!(err, MetadataStoreError::PreconditionFailed { current: Some(Version(2)), .. }));
    }

    #[tokio::test]
    async fn multi_key_write_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put("b", Bytes::from("existing"), Precondition::None).await.unwrap();
        let ops = vec![
            WriteOp::Put { key: "a".into(), value: Bytes::from("1"), precondition: Precondition::DoesNotExist },
            WriteOp::Put { key: "b".into(), value: Bytes::from("2"), precondition: Precondition::DoesNotExist },
        ];
        let err = store.write(ops).await.unwrap_err();
        assert!(matches!(err, MetadataStoreError::PreconditionFailed { ref key, .. } if key == "b"));
        assert_eq!(store.get("a").await.unwrap(), None, "the first op must not have applied");
    }

    #[tokio::test]
    async fn values_and_versions_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            for i in 0..3 {
                store.put("k", Bytes::from(format!("v{i}")), Precondition::None).await.unwrap();
            }
            store.delete("gone", Precondition::None).await.unwrap();
        }
        let store = open(dir.path());
        let v = store.get("k").await.unwrap().unwrap();
        assert_eq!((v.version, v.value), (Version(3), Bytes::from("v2")));
        assert_eq!(store.scan().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn delete_checks_its_precondition() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.put("k", Bytes::from("a"), Precondition::None).await.unwrap();
        assert!(store.delete("k", Precondition::MatchesVersion(Version(7))).await.is_err());
        store.delete("k", Precondition::MatchesVersion(Version(1))).await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), None);
        // A re-created key starts again at version 1.
        assert_eq!(store.put("k", Bytes::from("x"), Precondition::DoesNotExist).await.unwrap(), Version(1));
    }

    #[tokio::test]
    async fn bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        assert!(matches!(store.write(vec![]).await, Err(MetadataStoreError::InvalidRequest(_))));
        assert!(matches!(store.get("").await, Err(MetadataStoreError::InvalidRequest(_))));
        let dup = vec![
            WriteOp::Put { key: "a".into(), value: Bytes::new(), precondition: Precondition::None },
            WriteOp::Delete { key: "a".into(), precondition: Precondition::None },
        ];
        assert!(matches!(store.write(dup).await, Err(MetadataStoreError::InvalidRequest(_))));
    }
}
