//! [`Cached`]: one typed metadata object kept in memory for readers on a hot path (the
//! ingress routes every request with the schema, the partition table, the scheduling
//! plan and the nodes). A copy younger than the cache's max age is served without
//! asking the store; an older one is refreshed by the first reader that needs it.
//! Readers that find the copy wrong (an unknown service, a leader that says it does not
//! lead) call [`Cached::refresh`] and look again, so a change is seen at once by whoever
//! depends on it, and by everyone else within the max age.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use restate_types::Version;

use crate::objects::MetadataObject;
use crate::store::{MetadataStore, MetadataStoreError};
use crate::typed;

/// A cached copy of `T` (see the module docs).
pub struct Cached<T> {
    max_age: Duration,
    copy: Mutex<Option<Fetched<T>>>,
}

struct Fetched<T> {
    value: Option<Arc<(T, Version)>>,
    at: Instant,
}

impl<T: MetadataObject> Cached<T> {
    pub fn new(max_age: Duration) -> Cached<T> {
        Cached { max_age, copy: Mutex::new(None) }
    }

    /// The object (`None`: never written), at most `max_age` old.
    pub async fn get(&self, store: &dyn MetadataStore) -> Result<Option<Arc<(T, Version)>>, MetadataStoreError> {
        if let Some(fetched) = self.copy.lock().expect("not poisoned").as_ref() {
            if fetched.at.elapsed() < self.max_age {
                return Ok(fetched.value.clone());
            }
        }
        self.refresh(store).await
    }

    /// [`Cached::refresh`] when `fresh` (the caller met a stale copy), else [`Cached::get`].
    pub async fn read(
        &self,
        store: &dyn MetadataStore,
        fresh: bool,
    ) -> Result<Option<Arc<(T, Version)>>, MetadataStoreError> {
        if fresh {
            self.refresh(store).await
        } else {
            self.get(store).await
        }
    }

    /// Reads the object from the store now and keeps it. A concurrent refresh that read
    /// a newer version is not overwritten by an older one.
    pub async fn refresh(&self, store: &dyn MetadataStore) -> Result<Option<Arc<(T, Version)>>, MetadataStoreError> {
        let read_at = Instant::now();
        let value = typed::get::<T>(store).await?.map(Arc::new);
        let mut copy = self.copy.lock().expect("not poisoned");
        let newer_kept = copy.as_ref().is_some_and(|kept| version(&kept.value) > version(&value));
        if newer_kept {
            return Ok(copy.as_ref().and_then(|kept| kept.value.clone()));
        }
        *copy = Some(Fetched { value: value.clone(), at: read_at });
        Ok(value)
    }
}

fn version<T>(value: &Option<Arc<(T, Version)>>) -> Option<Version> {
    value.as_ref().map(|v| v.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::PartitionTable;
    use crate::store::Precondition;
    use crate::LocalMetadataStore;
    use restate_storage::{NodeStorage, StorageOptions};

    fn table(partitions: u32) -> PartitionTable {
        PartitionTable::evenly_split(partitions)
    }

    #[tokio::test]
    async fn serves_the_copy_until_it_is_older_than_max_age_or_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalMetadataStore::new(NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap());
        let cached = Cached::<PartitionTable>::new(Duration::from_secs(3600));
        assert!(cached.get(&store).await.unwrap().is_none(), "never written");

        typed::put(&store, &table(2), Precondition::None).await.unwrap();
        assert!(cached.get(&store).await.unwrap().is_none(), "the cached absence is younger than max age");
        let fresh = cached.refresh(&store).await.unwrap().unwrap();
        assert_eq!(fresh.0.partitions.len(), 2);

        typed::put(&store, &table(3), Precondition::None).await.unwrap();
        assert_eq!(cached.get(&store).await.unwrap().unwrap().0.partitions.len(), 2, "still the cached copy");

        let expiring = Cached::<PartitionTable>::new(Duration::ZERO);
        assert_eq!(expiring.get(&store).await.unwrap().unwrap().0.partitions.len(), 3, "max age 0 always reads");
    }
}
