//! [`MetadataView`]: the node's one copy of the cluster metadata.
//!
//! One view per node, created at start and handed to every component (worker, loglet
//! hosting, Bifrost, the ingress, the invoker, the cluster controller). It holds the latest
//! version it has seen of every metadata key and serves reads from memory ([`MetadataView::get`]),
//! so reading metadata on a hot path or in a loop costs no round trip to the metadata
//! leader. It is kept fresh by one mechanism:
//! - the metadata server's change feed (`MetadataServer.Watch`, followed by
//!   `view_follower`) pushes every change as it applies;
//! - every write made through [`MetadataView::store`] installs what it wrote at once, and
//!   every linearizable read through it ([`MetadataView::read`] with `fresh`) installs what
//!   it read.
//!
//! Versions only go forward: a value older than the one held is ignored, whichever path it
//! came by. A key disappears only when the feed says it was deleted.
//!
//! The view may lag the store by the time a change takes to be pushed (milliseconds while
//! the feed runs; until the feed is back when no metadata server answers). Readers whose
//! decision guards a write still read through the store (compare-and-put with the version
//! read); a stale view can then only make the write fail, never apply it wrongly.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use restate_types::Version;
use tokio::sync::watch;

use crate::metrics::{count_read, view_version, ReadKind};
use crate::objects::MetadataObject;
use crate::store::{MetadataStore, MetadataStoreError, VersionedValue, WriteOp};
use crate::typed;

/// The node's view of the cluster metadata (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct MetadataView {
    inner: Arc<ViewInner>,
}

struct ViewInner {
    /// Linearizable reads and writes (the metadata client).
    store: Arc<dyn MetadataStore>,
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    value: Option<VersionedValue>,
    /// The typed object decoded from `value` (an `Arc<(T, Version)>`), once asked for.
    decoded: Option<(Version, Arc<dyn Any + Send + Sync>)>,
    /// The version of `value` that did not decode (reported once).
    undecodable: Option<Version>,
    /// Rises with every change of this key; carries its version (`None`: absent).
    version: watch::Sender<Option<Version>>,
}

impl Entry {
    fn new() -> Entry {
        Entry { value: None, decoded: None, undecodable: None, version: watch::channel(None).0 }
    }
}

impl MetadataView {
    /// An empty view over `store`. It learns values from reads and writes through
    /// [`Self::store`] and, once `view_follower::follow` runs, from the feed.
    pub fn new(store: Arc<dyn MetadataStore>) -> MetadataView {
        MetadataView { inner: Arc::new(ViewInner { store, entries: Mutex::new(HashMap::new()) }) }
    }

    /// The store behind the view, for writes and for reads that guard a write. Writes
    /// through it update the view at once; reads through it are linearizable and update
    /// the view too.
    pub fn store(&self) -> Arc<dyn MetadataStore> {
        Arc::new(self.clone())
    }

    /// The latest `T` the view holds (`None`: absent, or not seen yet). No I/O.
    pub fn get<T: MetadataObject + 'static>(&self) -> Option<Arc<(T, Version)>> {
        count_read(T::KEY, ReadKind::View);
        let mut entries = self.inner.entries.lock().expect("not poisoned");
        let entry = entries.get_mut(T::KEY)?;
        let value = entry.value.as_ref()?;
        if let Some((version, decoded)) = &entry.decoded {
            if *version == value.version {
                if let Ok(typed) = decoded.clone().downcast::<(T, Version)>() {
                    return Some(typed);
                }
            }
        }
        match typed::decode::<T>(&value.value) {
            Ok(object) => {
                let typed = Arc::new((object, value.version));
                entry.decoded = Some((value.version, typed.clone() as Arc<dyn Any + Send + Sync>));
                Some(typed)
            }
            Err(e) => {
                if entry.undecodable != Some(value.version) {
                    tracing::error!(version = value.version.0, "metadata view: {e}");
                    entry.undecodable = Some(value.version);
                }
                None
            }
        }
    }

    /// `T` read through the store now (linearizable) when `fresh`, else from the view.
    /// Callers that found the view's copy wrong (an unknown service, a leader that says it
    /// does not lead) ask with `fresh`.
    pub async fn read<T: MetadataObject + 'static>(
        &self,
        fresh: bool,
    ) -> Result<Option<Arc<(T, Version)>>, MetadataStoreError> {
        if fresh {
            self.refresh::<T>().await
        } else {
            Ok(self.get::<T>())
        }
    }

    /// Reads `T` through the store now (linearizable), installs it, and returns the
    /// view's copy (which may be newer still, if a change arrived meanwhile).
    pub async fn refresh<T: MetadataObject + 'static>(&self) -> Result<Option<Arc<(T, Version)>>, MetadataStoreError> {
        let Some(value) = self.inner.store.get(T::KEY).await? else { return Ok(None) };
        let (version, bytes) = (value.version, value.value.clone());
        self.install(T::KEY, value);
        match self.get::<T>() {
            Some(held) if held.1 >= version => Ok(Some(held)),
            // What was read does not decode (or a newer copy does not): the caller's error
            // to report, naming the object.
            _ => Ok(Some(Arc::new((typed::decode::<T>(&bytes)?, version)))),
        }
    }

    /// Follows changes of `T`: the receiver holds its current version and wakes on every
    /// change (read the value with [`Self::get`]).
    pub fn subscribe<T: MetadataObject>(&self) -> watch::Receiver<Option<Version>> {
        self.inner
            .entries
            .lock()
            .expect("not poisoned")
            .entry(T::KEY.to_owned())
            .or_insert_with(Entry::new)
            .version
            .subscribe()
    }

    /// Waits until the view holds `T` at `version` or later, at most `timeout`.
    pub async fn wait_for_version<T: MetadataObject + 'static>(
        &self,
        version: Version,
        timeout: Duration,
    ) -> Result<Arc<(T, Version)>, MetadataStoreError> {
        let mut versions = self.subscribe::<T>();
        let reached = tokio::time::timeout(timeout, versions.wait_for(|v| v.is_some_and(|v| v >= version))).await;
        match reached {
            Ok(Ok(_)) => self.get::<T>().ok_or_else(|| {
                MetadataStoreError::Storage(format!(
                    "{} (key '{}') does not decode in this node's view",
                    T::NAME,
                    T::KEY
                ))
            }),
            _ => Err(MetadataStoreError::Unavailable(format!(
                "this node's view did not reach {} version {} within {timeout:?}",
                T::NAME,
                version.0
            ))),
        }
    }

    /// Installs `value` under `key` unless the view already holds that version or a newer one.
    pub(crate) fn install(&self, key: &str, value: VersionedValue) {
        let mut entries = self.inner.entries.lock().expect("not poisoned");
        let entry = entries.entry(key.to_owned()).or_insert_with(Entry::new);
        if entry.value.as_ref().is_some_and(|held| held.version >= value.version) {
            return;
        }
        let version = value.version;
        entry.value = Some(value);
        entry.version.send_replace(Some(version));
        view_version(key, version.0);
    }

    /// Forgets `key` (the feed said it was deleted).
    pub(crate) fn remove(&self, key: &str) {
        let mut entries = self.inner.entries.lock().expect("not poisoned");
        let Some(entry) = entries.get_mut(key) else { return };
        if entry.value.take().is_none() {
            return;
        }
        entry.decoded = None;
        entry.version.send_replace(None);
        view_version(key, 0);
    }

    /// The keys the view holds a value for.
    pub(crate) fn keys(&self) -> Vec<String> {
        let entries = self.inner.entries.lock().expect("not poisoned");
        entries.iter().filter(|(_, e)| e.value.is_some()).map(|(k, _)| k.clone()).collect()
    }
}

/// The view as a store: reads and writes go to the store behind it, and what they read or
/// wrote is installed in the view.
#[async_trait]
impl MetadataStore for MetadataView {
    async fn get(&self, key: &str) -> Result<Option<VersionedValue>, MetadataStoreError> {
        let read = self.inner.store.get(key).await?;
        if let Some(value) = &read {
            self.install(key, value.clone());
        }
        Ok(read)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Version>, MetadataStoreError> {
        let versions = self.inner.store.write(ops.clone()).await?;
        for (op, version) in ops.into_iter().zip(&versions) {
            if let WriteOp::Put { key, value, .. } = op {
                self.install(&key, VersionedValue { version: *version, value });
            }
        }
        Ok(versions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::PartitionTable;
    use crate::store::Precondition;
    use crate::LocalMetadataStore;
    use restate_storage::{NodeStorage, StorageOptions};

    fn local_store(dir: &std::path::Path) -> Arc<LocalMetadataStore> {
        Arc::new(LocalMetadataStore::new(NodeStorage::open(dir, &StorageOptions::default()).unwrap()))
    }

    #[tokio::test]
    async fn writes_through_the_view_are_seen_at_once_and_versions_only_go_forward() {
        let dir = tempfile::tempdir().unwrap();
        let view = MetadataView::new(local_store(dir.path()));
        assert!(view.get::<PartitionTable>().is_none(), "nothing seen yet");

        let mut versions = view.subscribe::<PartitionTable>();
        let store = view.store();
        typed::put(store.as_ref(), &PartitionTable::evenly_split(2), Precondition::None).await.unwrap();
        assert!(versions.has_changed().unwrap(), "subscribers wake on a write through the view");
        assert_eq!(*versions.borrow_and_update(), Some(Version(1)));
        let seen = view.get::<PartitionTable>().unwrap();
        assert_eq!((seen.0.partitions.len(), seen.1), (2, Version(1)));

        typed::put(store.as_ref(), &PartitionTable::evenly_split(3), Precondition::None).await.unwrap();
        // An older value arriving late (a slow read) does not take the view back.
        view.install(
            PartitionTable::KEY,
            VersionedValue { version: Version(1), value: typed::encode(&PartitionTable::evenly_split(2)) },
        );
        assert_eq!(view.get::<PartitionTable>().unwrap().0.partitions.len(), 3);
        assert_eq!(
            view.wait_for_version::<PartitionTable>(Version(2), Duration::from_secs(1)).await.unwrap().1,
            Version(2)
        );
        assert!(view.wait_for_version::<PartitionTable>(Version(3), Duration::from_millis(10)).await.is_err());
    }

    #[tokio::test]
    async fn a_fresh_read_sees_writes_made_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let store = local_store(dir.path());
        let view = MetadataView::new(store.clone());
        typed::put(store.as_ref(), &PartitionTable::evenly_split(4), Precondition::None).await.unwrap();
        assert!(view.read::<PartitionTable>(false).await.unwrap().is_none(), "not pushed to this view");
        assert_eq!(view.read::<PartitionTable>(true).await.unwrap().unwrap().0.partitions.len(), 4);
        assert_eq!(view.get::<PartitionTable>().unwrap().1, Version(1), "the fresh read was installed");
    }

    #[tokio::test]
    async fn undecodable_values_read_as_absent_in_the_view_and_fail_a_fresh_read() {
        let dir = tempfile::tempdir().unwrap();
        let view = MetadataView::new(local_store(dir.path()));
        view.store()
            .put(PartitionTable::KEY, bytes::Bytes::from_static(b"not json"), Precondition::None)
            .await
            .unwrap();
        assert!(view.get::<PartitionTable>().is_none());
        let err = view.read::<PartitionTable>(true).await.unwrap_err();
        assert!(err.to_string().contains("PartitionTable"), "{err}");
    }
}
