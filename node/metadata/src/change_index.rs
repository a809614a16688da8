//! Which keys each applied write changed, for a store's most recent writes: what lets the
//! change feed tell a subscriber what changed since it last looked at the cost of what
//! changed, not of the store's size. Pure bookkeeping; each store records its writes here
//! in the order they apply.

use std::collections::{BTreeMap, VecDeque};

/// How many writes an index remembers by default. A subscriber that falls further behind
/// than this between two looks is sent the whole store again.
pub const RETAINED_WRITES: usize = 4096;

/// What one write did to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    Put,
    Deleted,
}

/// The keys changed after some sequence number: for each, whether it was deleted at some
/// point in between (it may have been written again since).
pub type ChangedKeys = BTreeMap<String, bool>;

/// A sequence number per applied write (the first write is 1) and the keys of the last
/// `capacity` writes.
#[derive(Debug)]
pub struct ChangeIndex {
    /// The sequence number of the latest recorded write (0: none yet).
    seq: u64,
    /// The writes numbered `seq - recent.len() + 1 ..= seq`, oldest first.
    recent: VecDeque<Vec<(String, KeyChange)>>,
    capacity: usize,
}

impl Default for ChangeIndex {
    fn default() -> Self {
        ChangeIndex::with_capacity(RETAINED_WRITES)
    }
}

impl ChangeIndex {
    pub fn with_capacity(capacity: usize) -> ChangeIndex {
        ChangeIndex { seq: 0, recent: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// The sequence number of the latest recorded write.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Records one applied write; returns its sequence number.
    pub fn record(&mut self, changes: Vec<(String, KeyChange)>) -> u64 {
        self.seq += 1;
        self.recent.push_back(changes);
        if self.recent.len() > self.capacity {
            self.recent.pop_front();
        }
        self.seq
    }

    /// Records that anything may have changed (a snapshot replaced the store's contents):
    /// changes since any earlier sequence number can no longer be told.
    pub fn record_replaced(&mut self) -> u64 {
        self.seq += 1;
        self.recent.clear();
        self.seq
    }

    /// The keys changed by the writes after `since`, or `None` when the index no longer
    /// knows (too old, or a number this index never gave out): the caller must start over
    /// from the whole store.
    pub fn changed_since(&self, since: u64) -> Option<ChangedKeys> {
        let oldest_known = self.seq - self.recent.len() as u64;
        if since < oldest_known || since > self.seq {
            return None;
        }
        let mut keys = ChangedKeys::new();
        for write in self.recent.iter().skip((since - oldest_known) as usize) {
            for (key, change) in write {
                let deleted = keys.entry(key.clone()).or_insert(false);
                *deleted |= *change == KeyChange::Deleted;
            }
        }
        Some(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> (String, KeyChange) {
        (key.to_owned(), KeyChange::Put)
    }

    fn deleted(key: &str) -> (String, KeyChange) {
        (key.to_owned(), KeyChange::Deleted)
    }

    #[test]
    fn tells_the_keys_written_after_a_sequence_number() {
        let mut index = ChangeIndex::default();
        assert_eq!(index.changed_since(0), Some(ChangedKeys::new()));
        assert_eq!(index.record(vec![put("a")]), 1);
        assert_eq!(index.record(vec![put("b"), put("c")]), 2);
        assert_eq!(index.record(vec![put("a")]), 3);
        let since_1: Vec<_> = index.changed_since(1).unwrap().into_keys().collect();
        assert_eq!(since_1, ["a", "b", "c"]);
        let since_2: Vec<_> = index.changed_since(2).unwrap().into_keys().collect();
        assert_eq!(since_2, ["a"]);
        assert!(index.changed_since(3).unwrap().is_empty());
        assert_eq!(index.changed_since(4), None, "a number never given out");
    }

    #[test]
    fn a_deletion_in_between_is_reported_even_if_the_key_came_back() {
        let mut index = ChangeIndex::default();
        index.record(vec![put("a")]);
        index.record(vec![deleted("a")]);
        index.record(vec![put("a")]);
        assert_eq!(index.changed_since(0).unwrap().get("a"), Some(&true));
        assert_eq!(index.changed_since(2).unwrap().get("a"), Some(&false));
    }

    #[test]
    fn forgets_old_writes_and_everything_after_a_replacement() {
        let mut index = ChangeIndex::with_capacity(2);
        for key in ["a", "b", "c"] {
            index.record(vec![put(key)]);
        }
        assert_eq!(index.changed_since(0), None, "write 1 is forgotten");
        assert_eq!(index.changed_since(1).unwrap().len(), 2);
        let replaced = index.record_replaced();
        assert_eq!(index.changed_since(3), None);
        assert!(index.changed_since(replaced).unwrap().is_empty());
        index.record(vec![put("d")]);
        assert_eq!(index.changed_since(replaced).unwrap().into_keys().collect::<Vec<_>>(), ["d"]);
    }
}
