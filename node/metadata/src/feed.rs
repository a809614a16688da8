//! The change feed of a metadata server: what `MetadataServer.Watch` streams to every
//! node's [`crate::MetadataView`].
//!
//! A [`FollowableStore`] numbers its applied writes ([`crate::change_index`]) and answers
//! "what changed after write N" with [`update_since`] (pure): the stream starts with the
//! whole store (`full`), then sends only the keys that changed, and an empty update once a
//! second while nothing does, so a subscriber notices a dead stream within a few seconds.
//! A wake-up costs what changed, not the store's size.

use std::collections::BTreeMap;

use tokio::sync::watch;

#[cfg(test)]
use crate::change_index::ChangeIndex;
use crate::change_index::ChangedKeys;
use crate::store::{MetadataStoreError, VersionedValue};

/// A store whose changes can be followed.
pub trait FollowableStore: Send + Sync {
    /// The sequence number of the latest applied write; rises with every one.
    fn changes(&self) -> watch::Receiver<u64>;

    /// What changed after write `since` (`None`: the whole store), and the sequence number
    /// the answer brings the subscriber to. Served only when this server may serve the
    /// feed now: a replicated store serves it only from its leader (others answer
    /// `NotLeader` with the leader's address), so a follower that fell behind never hands
    /// out an old picture as current.
    fn update_since(&self, since: Option<u64>) -> Result<(u64, FeedUpdate), MetadataStoreError>;
}

/// One update of the feed: the keys that are gone (applied first), then the values to
/// (re)install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedUpdate {
    /// The whole store: keys not in `values` have no value.
    pub full: bool,
    pub values: Vec<(String, VersionedValue)>,
    pub deleted: Vec<String>,
}

impl FeedUpdate {
    pub fn is_empty(&self) -> bool {
        !self.full && self.values.is_empty() && self.deleted.is_empty()
    }
}

/// The update that brings a subscriber to write `seq`, given the keys changed since it last
/// looked (`None`: nothing sent yet, or it is too far behind for the store's
/// [`ChangeIndex`]: see [`ChangeIndex::changed_since`]), reading current values with `get`
/// (only the changed keys) or `all` (when the whole store must be sent).
///
/// Values read may be newer than the returned sequence number (a write landed meanwhile);
/// the next update sends those keys again, which a view ignores. A key deleted in between
/// is listed in `deleted` even if it exists again, so a view drops its old version first
/// (a re-created key starts again at version 1).
pub fn update_since(
    seq: u64,
    changed: Option<ChangedKeys>,
    mut get: impl FnMut(&str) -> Result<Option<VersionedValue>, MetadataStoreError>,
    all: impl FnOnce() -> Result<BTreeMap<String, VersionedValue>, MetadataStoreError>,
) -> Result<(u64, FeedUpdate), MetadataStoreError> {
    let Some(changed) = changed else {
        let values = all()?.into_iter().collect();
        return Ok((seq, FeedUpdate { full: true, values, deleted: vec![] }));
    };
    let mut update = FeedUpdate::default();
    for (key, deleted_in_between) in changed {
        match get(&key)? {
            Some(value) => {
                if deleted_in_between {
                    update.deleted.push(key.clone());
                }
                update.values.push((key, value));
            }
            None => update.deleted.push(key),
        }
    }
    Ok((seq, update))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change_index::KeyChange;
    use bytes::Bytes;
    use restate_types::Version;

    fn value(version: u32, text: &str) -> VersionedValue {
        VersionedValue { version: Version(version), value: Bytes::from(text.to_owned()) }
    }

    /// A store: its values and the index of its writes.
    #[derive(Default)]
    struct Store {
        values: BTreeMap<String, VersionedValue>,
        index: ChangeIndex,
    }

    impl Store {
        fn put(&mut self, key: &str, text: &str) {
            let version = self.values.get(key).map_or(1, |v| v.version.0 + 1);
            self.values.insert(key.to_owned(), value(version, text));
            self.index.record(vec![(key.to_owned(), KeyChange::Put)]);
        }

        fn delete(&mut self, key: &str) {
            self.values.remove(key);
            self.index.record(vec![(key.to_owned(), KeyChange::Deleted)]);
        }

        fn update(&self, since: &mut Option<u64>) -> FeedUpdate {
            let changed = since.and_then(|since| self.index.changed_since(since));
            let (seq, update) = update_since(
                self.index.seq(),
                changed,
                |key| Ok(self.values.get(key).cloned()),
                || Ok(self.values.clone()),
            )
            .unwrap();
            *since = Some(seq);
            update
        }
    }

    #[test]
    fn the_first_update_is_the_whole_store_then_only_changes() {
        let mut store = Store::default();
        store.put("a", "x");
        store.put("b", "y");
        let mut since = None;
        let first = store.update(&mut since);
        assert!(first.full);
        assert_eq!(first.values.len(), 2);

        assert!(store.update(&mut since).is_empty(), "nothing changed");

        store.put("a", "z");
        store.put("c", "w");
        store.delete("b");
        let changed = store.update(&mut since);
        assert!(!changed.full);
        assert_eq!(changed.values, vec![("a".to_owned(), value(2, "z")), ("c".to_owned(), value(1, "w"))]);
        assert_eq!(changed.deleted, vec!["b".to_owned()]);
    }

    #[test]
    fn a_key_deleted_and_written_again_is_dropped_then_sent_again() {
        let mut store = Store::default();
        store.put("a", "x");
        store.put("a", "y");
        let mut since = None;
        store.update(&mut since);
        store.delete("a");
        store.put("a", "new");
        let update = store.update(&mut since);
        assert_eq!(update.deleted, vec!["a".to_owned()]);
        assert_eq!(update.values, vec![("a".to_owned(), value(1, "new"))]);
    }

    #[test]
    fn a_subscriber_the_index_forgot_gets_the_whole_store() {
        let mut store = Store { index: ChangeIndex::with_capacity(2), ..Store::default() };
        let mut since = None;
        store.update(&mut since);
        for text in ["1", "2", "3"] {
            store.put("a", text);
        }
        let update = store.update(&mut since);
        assert!(update.full, "three writes behind an index of two");
        assert_eq!(update.values, vec![("a".to_owned(), value(3, "3"))]);
    }
}
