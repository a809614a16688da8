//! Where a partition's state lives: an ordered key-value space per partition
//! ([`PartitionStore`]), and the typed reads over it ([`PartitionReads`]) that the state
//! machine, the leader's invoker and the ingress use.
//!
//! Keys are partition-relative (layout in [`super::keys`]); an implementation may prefix
//! them (RocksDB prefixes the partition id). Both implementations hold byte-identical
//! key-value pairs for the same applied log, which [`PartitionReads::canonical_dump`]
//! shows.

use std::collections::BTreeMap;

use bytes::Bytes;
use restate_types::{Lsn, PartitionId};

use super::codec::{from_json, CorruptValue};
use super::ids::InvocationId;
use super::journal::JournalEntry;
use super::keys;
use super::outbox::OutboxEntry;
use super::promise::PromiseState;
use super::record::{IdempotencyKey, InvocationRecord, InvocationStatus, LeaderEpoch, Timer};

/// Why a store read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB refused the operation (disk full, I/O error, closed database, ...).
    #[error("partition {partition}: RocksDB {op} failed: {source}")]
    Rocks {
        partition: PartitionId,
        op: &'static str,
        #[source]
        source: restate_storage::rocksdb::Error,
    },
    /// A stored value does not decode: the data was written by an incompatible version
    /// or damaged. The partition cannot continue from this store; restore a snapshot or
    /// rebuild it from the log.
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
}

/// One stored pair: partition-relative key and value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Ordered reads of one partition's keys.
pub trait KvRead {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Every pair with `lower <= key < upper` (`upper = None`: to the end), ascending by key.
    fn scan(&self, lower: &[u8], upper: Option<&[u8]>) -> Result<Vec<KeyValue>, StoreError>;

    /// Every pair whose key starts with `prefix`, ascending.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        self.scan(prefix, keys::prefix_end(prefix).as_deref())
    }
}

/// A partition's state store.
///
/// Contract: [`PartitionStore::commit`] applies a whole [`WriteSet`] atomically (after a
/// crash either all of it or none is visible), and reads through any clone of the store
/// see committed sets only. Durability may lag (no fsync): the log is the source of
/// truth, and the applied LSN is always in the same set as the changes it covers, so a
/// lost tail is simply re-applied.
pub trait PartitionStore: KvRead + Send + Sync {
    /// The partition this store holds.
    fn partition_id(&self) -> PartitionId;

    /// Applies every change of `changes` atomically.
    fn commit(&self, changes: WriteSet) -> Result<(), StoreError>;
}

/// Changes to commit together: the last put or delete per key wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteSet {
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl WriteSet {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.changes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.changes.insert(key, None);
    }

    /// Takes every change of `later` in, over this set's changes to the same keys.
    pub fn absorb(&mut self, later: WriteSet) {
        if self.changes.is_empty() {
            self.changes = later.changes;
        } else {
            self.changes.extend(later.changes);
        }
    }

    /// The change to `key`: `Some(Some(value))` put, `Some(None)` deleted, `None` untouched.
    pub fn change(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.changes.get(key).map(|v| v.as_deref())
    }

    /// Changes in key order (`None`: delete).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.changes.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    /// Changes to keys in `lower..upper` (`None`: unbounded), in key order.
    pub fn range<'a>(
        &'a self,
        lower: &[u8],
        upper: Option<&[u8]>,
    ) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        use std::ops::Bound;
        let upper = match upper {
            Some(upper) => Bound::Excluded(upper.to_vec()),
            None => Bound::Unbounded,
        };
        self.changes.range((Bound::Included(lower.to_vec()), upper)).map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Typed reads of a partition's state, for every [`KvRead`] (a store, or the state
/// machine's transaction while it applies a record).
pub trait PartitionReads: KvRead {
    /// LSN of the last applied record ([`Lsn::INVALID`] before the first).
    fn applied_lsn(&self) -> Result<Lsn, StoreError> {
        Ok(Lsn(self.get_u64(keys::APPLIED_LSN)?.unwrap_or(0)))
    }

    /// The leader announced last, if any.
    fn leader(&self) -> Result<Option<LeaderEpoch>, StoreError> {
        self.get_json("leader epoch", keys::LEADER)
    }

    /// One invocation's record (status, target, waiting sinks, journal counters).
    fn invocation(&self, id: &InvocationId) -> Result<Option<InvocationRecord>, StoreError> {
        self.get_json("invocation record", &keys::invocation(id))
    }

    /// Every invocation this partition knows (running, inboxed, completed and not yet
    /// purged), by id.
    fn invocations(&self) -> Result<Vec<(InvocationId, InvocationRecord)>, StoreError> {
        self.scan_prefix(&[keys::INVOCATION])?
            .into_iter()
            .map(|(key, value)| {
                let id = keys::id_at(&key, 1).ok_or_else(|| corrupt("invocation key", &key, "too short"))?;
                Ok((id, from_json("invocation record", &key, &value)?))
            })
            .collect()
    }

    /// Invocations in status `Invoked`, `Suspended` or `Paused`, by id (an index: no scan of
    /// completed invocations).
    fn running_invocations(&self) -> Result<Vec<InvocationId>, StoreError> {
        self.scan_prefix(&[keys::RUNNING])?
            .into_iter()
            .map(|(key, _)| keys::id_at(&key, 1).ok_or_else(|| corrupt("running index key", &key, "too short")))
            .collect()
    }

    /// Completed invocation `id`'s `InputCommand` entry, kept for restart-as-new (`None`:
    /// not completed, completed before inputs were kept, or purged).
    fn kept_input(&self, id: &InvocationId) -> Result<Option<JournalEntry>, StoreError> {
        let key = keys::kept_input(id);
        match self.get(&key)? {
            None => Ok(None),
            Some(value) => JournalEntry::from_stored(&value)
                .map(Some)
                .ok_or_else(|| corrupt("kept input", &key, "shorter than a journal entry header")),
        }
    }

    /// The invocation's journal in order (`journal(id).len() == known_entries`); empty
    /// for unknown and completed invocations.
    fn journal(&self, id: &InvocationId) -> Result<Vec<JournalEntry>, StoreError> {
        self.scan_prefix(&keys::journal_prefix(id))?
            .into_iter()
            .map(|(key, value)| {
                JournalEntry::from_stored(&value).ok_or_else(|| corrupt("journal entry", &key, "shorter than 4 bytes"))
            })
            .collect()
    }

    /// Every user-state entry of the object `(service, key)`, ascending by state key: the
    /// eager state for `StartMessage.state_map`.
    fn read_state(&self, service: &str, key: &str) -> Result<Vec<(Bytes, Bytes)>, StoreError> {
        let prefix = keys::state_prefix(service, key);
        Ok(self
            .scan_prefix(&prefix)?
            .into_iter()
            .map(|(k, v)| (Bytes::copy_from_slice(&k[prefix.len()..]), Bytes::from(v)))
            .collect())
    }

    /// One user-state entry.
    fn state_value(&self, service: &str, key: &str, state_key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.get(&keys::state(service, key, state_key))?.map(Bytes::from))
    }

    /// A workflow's promise `name` (`None`: never read nor completed).
    fn promise(&self, service: &str, key: &str, name: &str) -> Result<Option<PromiseState>, StoreError> {
        self.get_json("promise", &keys::promise(service, key, name))
    }

    /// The invocation holding the exclusive lock of `(service, key)`.
    fn lock_holder(&self, service: &str, key: &str) -> Result<Option<InvocationId>, StoreError> {
        let key = keys::lock(service, key);
        self.get(&key)?.map(|v| keys::id_at(&v, 0).ok_or_else(|| corrupt("lock holder", &key, "not an id"))).transpose()
    }

    /// The invocations waiting for `(service, key)`'s lock, first in line first, each
    /// with its inbox sequence number.
    fn inbox(&self, service: &str, key: &str) -> Result<Vec<(u64, InvocationId)>, StoreError> {
        let prefix = keys::inbox_prefix(service, key);
        self.scan_prefix(&prefix)?
            .into_iter()
            .map(|(k, v)| match (keys::u64_at(&k, prefix.len()), keys::id_at(&v, 0)) {
                (Some(seq), Some(id)) => Ok((seq, id)),
                _ => Err(corrupt("inbox entry", &k, "malformed key or id")),
            })
            .collect()
    }

    /// The invocation that owns an idempotency key (until purged).
    fn invocation_by_idempotency(&self, key: &IdempotencyKey) -> Result<Option<InvocationId>, StoreError> {
        let k = keys::idempotency(key);
        self.get(&k)?
            .map(|v| keys::id_at(&v, 0).ok_or_else(|| corrupt("idempotency entry", &k, "not an id")))
            .transpose()
    }

    /// The invocation that owns an idempotency key, with its status (a completed one
    /// carries its result).
    fn status_by_idempotency(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<(InvocationId, InvocationStatus)>, StoreError> {
        let Some(id) = self.invocation_by_idempotency(key)? else { return Ok(None) };
        Ok(self.invocation(&id)?.map(|record| (id, record.status)))
    }

    /// Every registered timer, earliest first (ties by id, then completion id).
    fn timers(&self) -> Result<Vec<Timer>, StoreError> {
        let mut timers = self.timers_in(&keys::timers_all())?;
        timers.sort();
        Ok(timers)
    }

    /// The timers of one invocation.
    fn timers_of(&self, id: &InvocationId) -> Result<Vec<Timer>, StoreError> {
        self.timers_in(&keys::timer_prefix(id))
    }

    #[doc(hidden)]
    fn timers_in(&self, prefix: &[u8]) -> Result<Vec<Timer>, StoreError> {
        self.scan_prefix(prefix)?
            .into_iter()
            .map(|(k, v)| {
                let id = keys::id_at(&k, 1);
                let completion_id = keys::u32_at(&k, 25);
                let due = keys::u64_at(&v, 0);
                match (id, completion_id, due) {
                    (Some(id), Some(completion_id), Some(due_ms)) => Ok(Timer { due_ms, id, completion_id }),
                    _ => Err(corrupt("timer", &k, "malformed key or due time")),
                }
            })
            .collect()
    }

    /// Every undelivered outbox entry, in sequence order.
    fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.scan_prefix(&keys::outbox_all())?
            .into_iter()
            .map(|(k, v)| Ok(from_json("outbox entry", &k, &v)?))
            .collect()
    }

    /// The next inbox/outbox sequence number.
    fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.get_u64(keys::NEXT_SEQ)?.unwrap_or(1))
    }

    /// Completed invocations with `completed_at_ms < older_than_ms`, oldest first.
    fn completed_before(&self, older_than_ms: u64) -> Result<Vec<(u64, InvocationId)>, StoreError> {
        let upper = keys::retention(older_than_ms, &InvocationId::new(0, [0; 16]));
        self.scan(&[keys::RETENTION], Some(&upper))?
            .into_iter()
            .map(|(k, _)| match (keys::u64_at(&k, 1), keys::id_at(&k, 9)) {
                (Some(at), Some(id)) => Ok((at, id)),
                _ => Err(corrupt("retention entry", &k, "malformed key")),
            })
            .collect()
    }

    /// Every key-value pair of the partition, one line each (`key = value`, bytes
    /// escaped), in key order: equal dumps mean equal state.
    fn canonical_dump(&self) -> Result<String, StoreError> {
        Ok(self
            .scan(&[], None)?
            .into_iter()
            .map(|(k, v)| format!("{} = {}\n", k.escape_ascii(), v.escape_ascii()))
            .collect())
    }

    #[doc(hidden)]
    fn get_u64(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        self.get(key)?.map(|v| keys::u64_at(&v, 0).ok_or_else(|| corrupt("counter", key, "not 8 bytes"))).transpose()
    }

    #[doc(hidden)]
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        Ok(self.get(key)?.map(|v| from_json(what, key, &v)).transpose()?)
    }
}

impl<T: KvRead + ?Sized> PartitionReads for T {}

fn corrupt(what: &'static str, key: &[u8], detail: &str) -> StoreError {
    StoreError::Corrupt(CorruptValue { what, key: key.escape_ascii().to_string(), detail: detail.to_owned() })
}
