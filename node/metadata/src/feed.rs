//! The change feed of a metadata server: what `MetadataServer.Watch` streams to every
//! node's [`crate::MetadataView`].
//!
//! A [`FollowableStore`] says when it changed and what it holds; [`next_update`] (pure)
//! turns "what this subscriber was sent" and "what the store holds now" into the next
//! update. The stream starts with the whole store (`full`), then sends only what changed,
//! and an empty update once a second while nothing does, so a subscriber notices a dead
//! stream within a few seconds.

use std::collections::BTreeMap;

use restate_types::Version;
use tokio::sync::watch;

use crate::store::{MetadataStoreError, VersionedValue};

/// A store whose changes can be followed.
pub trait FollowableStore: Send + Sync {
    /// Rises after every applied write.
    fn changes(&self) -> watch::Receiver<u64>;

    /// Every key's current value, when this server may serve the feed now. A replicated
    /// store serves it only from its leader (others answer `NotLeader` with the leader's
    /// address), so a follower that fell behind never hands out an old picture as current.
    fn entries(&self) -> Result<BTreeMap<String, VersionedValue>, MetadataStoreError>;
}

/// One update of the feed: the values to (re)install and the keys that are gone.
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

/// The next update for a subscriber that was sent `sent` (key -> version; `None`: nothing
/// sent yet), given the store's `current` entries. Updates `sent` to match.
pub fn next_update(
    sent: &mut Option<BTreeMap<String, Version>>,
    current: &BTreeMap<String, VersionedValue>,
) -> FeedUpdate {
    let versions = || current.iter().map(|(k, v)| (k.clone(), v.version)).collect();
    let Some(known) = sent.as_mut() else {
        *sent = Some(versions());
        return FeedUpdate {
            full: true,
            values: current.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            deleted: vec![],
        };
    };
    let values: Vec<(String, VersionedValue)> = current
        .iter()
        .filter(|(key, value)| known.get(*key) != Some(&value.version))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deleted: Vec<String> = known.keys().filter(|key| !current.contains_key(*key)).cloned().collect();
    *known = versions();
    FeedUpdate { full: false, values, deleted }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn value(version: u32, text: &str) -> VersionedValue {
        VersionedValue { version: Version(version), value: Bytes::from(text.to_owned()) }
    }

    fn store(entries: &[(&str, u32, &str)]) -> BTreeMap<String, VersionedValue> {
        entries.iter().map(|(k, v, t)| ((*k).to_owned(), value(*v, t))).collect()
    }

    #[test]
    fn the_first_update_is_the_whole_store_then_only_changes() {
        let mut sent = None;
        let first = next_update(&mut sent, &store(&[("a", 1, "x"), ("b", 3, "y")]));
        assert!(first.full);
        assert_eq!(first.values.len(), 2);

        let unchanged = next_update(&mut sent, &store(&[("a", 1, "x"), ("b", 3, "y")]));
        assert!(unchanged.is_empty(), "nothing changed: {unchanged:?}");

        let changed = next_update(&mut sent, &store(&[("a", 2, "z"), ("c", 1, "w")]));
        assert!(!changed.full);
        assert_eq!(changed.values, vec![("a".to_owned(), value(2, "z")), ("c".to_owned(), value(1, "w"))]);
        assert_eq!(changed.deleted, vec!["b".to_owned()]);
    }

    #[test]
    fn a_key_deleted_and_written_again_is_sent_again() {
        let mut sent = None;
        next_update(&mut sent, &store(&[("a", 4, "x")]));
        assert_eq!(next_update(&mut sent, &store(&[])).deleted, vec!["a".to_owned()]);
        assert_eq!(next_update(&mut sent, &store(&[("a", 1, "new")])).values, vec![("a".to_owned(), value(1, "new"))]);
    }
}
