//! Raft log storage of one group: durable in RocksDB; the newest entries also in memory.
//!
//! Contract: every mutation is staged into a caller-supplied `WriteBatch` AND applied to
//! the in-memory state; the engine writes (and fsyncs) the batch before it acts on
//! anything that depends on persistence (`persisted_messages`, advancing).
//!
//! Memory does not grow with the log: only the newest entries are kept in memory
//! ([`TAIL_CACHE_ENTRIES`], [`TAIL_CACHE_BYTES`]: where raft works, replicating and
//! committing); older ones are read from RocksDB when asked for (a member catching up, a
//! machine that reads records from its log). Loading a group reads its state and the
//! newest entries only, never the whole log.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use restate_storage::rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use restate_storage::NodeStorage;

use crate::keys;

pub const CF_RAFT: &str = restate_storage::CF_RAFT;

/// At most this many of the newest entries stay in memory (plus one ready round's worth).
pub const TAIL_CACHE_ENTRIES: usize = 1024;
/// ... and at most about this many bytes of them.
pub const TAIL_CACHE_BYTES: usize = 2 << 20;

struct Core {
    hard_state: HardState,
    conf_state: ConfState,
    /// Last snapshot (with data); its index/term precede the first entry.
    snapshot: Snapshot,
    /// The index of the last entry (the snapshot's index when there is none).
    last_index: u64,
    /// The newest entries: a contiguous suffix of the log, ending at `last_index`.
    tail: VecDeque<Entry>,
    tail_bytes: usize,
}

impl Core {
    fn snapshot_meta(&self) -> &SnapshotMetadata {
        self.snapshot.get_metadata()
    }
    fn first_index(&self) -> u64 {
        self.snapshot_meta().index + 1
    }
    /// The index of the first entry held in memory (`last_index + 1` when none is).
    fn tail_start(&self) -> u64 {
        self.last_index + 1 - self.tail.len() as u64
    }
    fn cached(&self, index: u64) -> Option<&Entry> {
        let start = self.tail_start();
        (index >= start && index <= self.last_index).then(|| &self.tail[(index - start) as usize])
    }
    /// Drops the oldest cached entries beyond the bounds. Called before appending, so the
    /// dropped ones were staged in an earlier round and are on disk.
    fn shrink_tail(&mut self) {
        while self.tail.len() > TAIL_CACHE_ENTRIES || (self.tail_bytes > TAIL_CACHE_BYTES && self.tail.len() > 1) {
            let dropped = self.tail.pop_front().expect("not empty");
            self.tail_bytes -= dropped.data.len();
        }
    }
}

/// The raft `Storage` of one group. Cheap to clone (shared core).
#[derive(Clone)]
pub struct GroupStorage {
    group: u64,
    storage: NodeStorage,
    core: Arc<RwLock<Core>>,
}

fn decode<M: protobuf::Message>(what: &str, bytes: &[u8]) -> Result<M, raft::Error> {
    M::parse_from_bytes(bytes)
        .map_err(|e| raft::Error::Store(StorageError::Other(format!("corrupt raft {what}: {e}").into())))
}

fn encode<M: protobuf::Message>(message: &M) -> Vec<u8> {
    message.write_to_bytes().expect("raft protobuf messages encode")
}

fn store_error(what: &str, e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(format!("{what}: {e}").into()))
}

/// Reads the stored entries `low..high` of `group` in order, stopping before they add up
/// to more than `max_bytes` (at least one is returned) and at the first index missing on
/// disk. Returns them with their total size.
fn read_entries(
    storage: &NodeStorage,
    group: u64,
    low: u64,
    high: u64,
    max_bytes: u64,
) -> Result<(Vec<Entry>, u64), raft::Error> {
    let mut opts = ReadOptions::default();
    opts.set_iterate_upper_bound(keys::entry_key(group, high).to_vec());
    let start = keys::entry_key(group, low);
    let iter = storage.db().iterator_cf_opt(storage.cf(CF_RAFT), opts, IteratorMode::From(&start, Direction::Forward));
    let mut out = Vec::new();
    let mut total = 0u64;
    for (expected, item) in (low..).zip(iter) {
        let (key, value) = item.map_err(|e| store_error("reading raft log", e))?;
        if keys::index_of_entry_key(&key) != Some(expected) || keys::group_of(&key) != Some(group) {
            break;
        }
        let entry: Entry = decode("entry", &value)?;
        let size = u64::from(entry.compute_size());
        if !out.is_empty() && total + size > max_bytes {
            break;
        }
        total += size;
        out.push(entry);
    }
    Ok((out, total))
}

/// Reads committed entries of a group straight from the node's RocksDB, for a state
/// machine that keeps its records in the raft log (on disk, see [`crate::StateMachine`]).
/// Entries a machine has applied are on disk, and stay until it lets the log be cut
/// below them.
#[derive(Clone)]
pub struct RaftLogReader {
    group: u64,
    storage: NodeStorage,
}

impl RaftLogReader {
    pub fn new(storage: NodeStorage, group: u64) -> RaftLogReader {
        RaftLogReader { group, storage }
    }

    /// The command (entry data) at `index`, or `None` if no entry is stored there (cut
    /// away, or not yet written).
    pub fn command(&self, index: u64) -> Result<Option<Bytes>, String> {
        let raw = self
            .storage
            .db()
            .get_pinned_cf(self.storage.cf(CF_RAFT), keys::entry_key(self.group, index))
            .map_err(|e| format!("reading raft entry {index} of group {}: {e}", self.group))?;
        raw.map(|bytes| {
            Entry::parse_from_bytes(&bytes)
                .map(|entry| entry.data)
                .map_err(|e| format!("corrupt raft entry {index} of group {}: {e}", self.group))
        })
        .transpose()
    }

    /// Bytes the group's raft log takes in RocksDB's files (an estimate; entries still in
    /// memtables are not counted).
    pub fn approximate_size(&self) -> u64 {
        let from = keys::entry_key(self.group, 0);
        let to = keys::entry_key(self.group, u64::MAX);
        self.storage.approximate_size(CF_RAFT, &from, &to)
    }
}

impl GroupStorage {
    fn rl(&self) -> RwLockReadGuard<'_, Core> {
        self.core.read().expect("raft storage lock poisoned")
    }
    fn wl(&self) -> RwLockWriteGuard<'_, Core> {
        self.core.write().expect("raft storage lock poisoned")
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    /// Loads a group's state, or an empty (uninitialized) one if nothing is stored. Reads
    /// the newest entries only.
    pub fn load(storage: &NodeStorage, group: u64) -> Result<GroupStorage, raft::Error> {
        let db = storage.db();
        let cf = storage.cf(CF_RAFT);
        let get = |kind| db.get_cf(cf, keys::state_key(group, kind)).map_err(|e| store_error("reading raft state", e));
        let hard_state =
            get(keys::HARD_STATE)?.map(|b| decode::<HardState>("hard state", &b)).transpose()?.unwrap_or_default();
        let conf_state =
            get(keys::CONF_STATE)?.map(|b| decode::<ConfState>("conf state", &b)).transpose()?.unwrap_or_default();
        let snapshot =
            get(keys::SNAPSHOT)?.map(|b| decode::<Snapshot>("snapshot", &b)).transpose()?.unwrap_or_default();
        let snapshot_index = snapshot.get_metadata().index;
        // The newest entries, read backwards from the end of the group's key range.
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(keys::entry_key(group, snapshot_index + 1).to_vec());
        let end = keys::entry_key(group, u64::MAX);
        let mut newest: Vec<Entry> = Vec::new();
        let mut bytes = 0usize;
        for item in db.iterator_cf_opt(cf, opts, IteratorMode::From(&end, Direction::Reverse)) {
            let (key, value) = item.map_err(|e| store_error("reading raft log", e))?;
            let Some(index) = keys::index_of_entry_key(&key).filter(|_| keys::group_of(&key) == Some(group)) else {
                break;
            };
            if let Some(last) = newest.last() {
                assert_eq!(index + 1, last.index, "raft log of group {group} has a hole before {}", last.index);
            }
            let entry: Entry = decode("entry", &value)?;
            bytes += entry.data.len();
            newest.push(entry);
            if newest.len() >= TAIL_CACHE_ENTRIES || bytes >= TAIL_CACHE_BYTES {
                break;
            }
        }
        newest.reverse();
        let last_index = newest.last().map_or(snapshot_index, |e| e.index);
        let core = Core { hard_state, conf_state, snapshot, last_index, tail: newest.into(), tail_bytes: bytes };
        Ok(GroupStorage { group, storage: storage.clone(), core: Arc::new(RwLock::new(core)) })
    }

    /// Whether this group has ever been initialized (bootstrapped, or given a snapshot).
    pub fn is_initialized(&self) -> bool {
        let core = self.rl();
        !core.conf_state.voters.is_empty() || !core.conf_state.learners.is_empty() || core.last_index > 0
    }

    /// Initializes a new group: a snapshot at index 1 with `voters` and the state
    /// machine's initial `data`.
    pub fn bootstrap(
        &self,
        voters: Vec<u64>,
        data: Vec<u8>,
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data.into());
        let meta = snapshot.mut_metadata();
        meta.index = 1;
        meta.term = 1;
        meta.mut_conf_state().voters = voters;
        self.apply_snapshot(snapshot, batch, cf);
    }

    pub fn append(
        &self,
        entries: &[Entry],
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        let Some(first) = entries.first() else { return };
        let mut core = self.wl();
        assert!(
            first.index >= core.first_index(),
            "group {}: appending at {} before the first index {}",
            self.group,
            first.index,
            core.first_index()
        );
        assert!(
            first.index <= core.last_index + 1,
            "group {}: appending at {} leaves a hole after {}",
            self.group,
            first.index,
            core.last_index
        );
        core.shrink_tail();
        // A conflicting suffix is replaced: drop it in memory and on disk.
        if first.index <= core.last_index {
            let start = core.tail_start();
            if first.index >= start {
                let keep = (first.index - start) as usize;
                let dropped: usize = core.tail.drain(keep..).map(|e| e.data.len()).sum();
                core.tail_bytes -= dropped;
            } else {
                core.tail.clear();
                core.tail_bytes = 0;
            }
            batch.delete_range_cf(cf, keys::entry_key(self.group, first.index), keys::entry_key(self.group, u64::MAX));
        }
        for entry in entries {
            batch.put_cf(cf, keys::entry_key(self.group, entry.index), encode(entry));
            core.tail_bytes += entry.data.len();
            core.tail.push_back(entry.clone());
        }
        core.last_index = entries.last().expect("not empty").index;
    }

    pub fn set_hard_state(
        &self,
        hs: HardState,
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        batch.put_cf(cf, keys::state_key(self.group, keys::HARD_STATE), encode(&hs));
        self.wl().hard_state = hs;
    }

    pub fn set_commit(
        &self,
        commit: u64,
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        let mut hs = self.rl().hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(hs, batch, cf);
    }

    pub fn set_conf_state(
        &self,
        cs: ConfState,
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        batch.put_cf(cf, keys::state_key(self.group, keys::CONF_STATE), encode(&cs));
        self.wl().conf_state = cs;
    }

    /// Replaces the log with a snapshot (received from the leader, or bootstrapped).
    pub fn apply_snapshot(
        &self,
        snapshot: Snapshot,
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        let meta = snapshot.get_metadata().clone();
        let mut core = self.wl();
        assert!(
            meta.index >= core.snapshot_meta().index,
            "group {}: snapshot at {} is older than the current one at {}",
            self.group,
            meta.index,
            core.snapshot_meta().index
        );
        batch.delete_range_cf(cf, keys::entry_key(self.group, 0), keys::entry_key(self.group, u64::MAX));
        batch.put_cf(cf, keys::state_key(self.group, keys::SNAPSHOT), encode(&snapshot));
        batch.put_cf(cf, keys::state_key(self.group, keys::CONF_STATE), encode(meta.get_conf_state()));
        core.tail.clear();
        core.tail_bytes = 0;
        core.last_index = meta.index;
        core.conf_state = meta.get_conf_state().clone();
        if core.hard_state.commit < meta.index {
            core.hard_state.commit = meta.index;
        }
        if core.hard_state.term < meta.term {
            core.hard_state.term = meta.term;
        }
        batch.put_cf(cf, keys::state_key(self.group, keys::HARD_STATE), encode(&core.hard_state));
        core.snapshot = snapshot;
    }

    /// Stores a snapshot of the state machine at `index` (<= applied) and drops the log
    /// up to it. `data` is the state as of `index`.
    pub fn compact_to_snapshot(
        &self,
        index: u64,
        data: Vec<u8>,
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        if index <= self.rl().snapshot_meta().index {
            return;
        }
        let term = raft::Storage::term(self, index)
            .unwrap_or_else(|e| panic!("group {}: no term for compaction index {index}: {e}", self.group));
        let mut core = self.wl();
        assert!(
            index <= core.last_index,
            "group {}: compacting to {index} beyond the last index {}",
            self.group,
            core.last_index
        );
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data.into());
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(core.conf_state.clone());
        batch.put_cf(cf, keys::state_key(self.group, keys::SNAPSHOT), encode(&snapshot));
        batch.delete_range_cf(cf, keys::entry_key(self.group, 0), keys::entry_key(self.group, index + 1));
        while core.tail.front().is_some_and(|e| e.index <= index) {
            let dropped = core.tail.pop_front().expect("not empty");
            core.tail_bytes -= dropped.data.len();
        }
        core.snapshot = snapshot;
    }

    /// Whether membership changed since the stored snapshot was taken.
    pub fn snapshot_conf_is_stale(&self) -> bool {
        let core = self.rl();
        core.snapshot_meta().get_conf_state() != &core.conf_state
    }

    pub fn snapshot_index(&self) -> u64 {
        self.rl().snapshot_meta().index
    }

    /// Data of the stored snapshot (the state machine restores from it at startup).
    pub fn snapshot_data(&self) -> (u64, Vec<u8>) {
        let core = self.rl();
        (core.snapshot_meta().index, core.snapshot.get_data().to_vec())
    }

    pub fn hard_state(&self) -> HardState {
        self.rl().hard_state.clone()
    }

    pub fn conf_state(&self) -> ConfState {
        self.rl().conf_state.clone()
    }

    /// Entries after the snapshot (in memory or on disk).
    pub fn log_length(&self) -> u64 {
        let core = self.rl();
        core.last_index - core.snapshot_meta().index
    }

    /// Entries held in memory, and their bytes.
    pub fn cached(&self) -> (usize, usize) {
        let core = self.rl();
        (core.tail.len(), core.tail_bytes)
    }
}

impl raft::Storage for GroupStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let core = self.rl();
        Ok(RaftState { hard_state: core.hard_state.clone(), conf_state: core.conf_state.clone() })
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let limit = max_size.into().unwrap_or(u64::MAX);
        let core = self.rl();
        if low < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= core.last_index + 1,
            "group {}: entries up to {high} requested, last is {}",
            self.group,
            core.last_index
        );
        let mut out = Vec::new();
        let mut total = 0u64;
        let tail_start = core.tail_start();
        if low < tail_start {
            let disk_high = high.min(tail_start);
            (out, total) = read_entries(&self.storage, self.group, low, disk_high, limit)?;
            if out.is_empty() {
                return Err(store_error("reading raft log", format!("entry {low} of group {} is missing", self.group)));
            }
            if (out.len() as u64) < disk_high - low || total > limit {
                return Ok(out);
            }
        }
        for index in low.max(tail_start)..high {
            let entry = core.cached(index).expect("within the cached tail");
            total += u64::from(entry.compute_size());
            // At least one entry is always returned.
            if !out.is_empty() && total > limit {
                break;
            }
            out.push(entry.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let core = self.rl();
        let meta = core.snapshot_meta();
        if idx == meta.index {
            return Ok(meta.term);
        }
        if idx < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > core.last_index {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if let Some(entry) = core.cached(idx) {
            return Ok(entry.term);
        }
        let (entry, _) = read_entries(&self.storage, self.group, idx, idx + 1, u64::MAX)?;
        entry
            .first()
            .map(|e| e.term)
            .ok_or_else(|| store_error("reading raft log", format!("entry {idx} of group {} is missing", self.group)))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.rl().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.rl().last_index)
    }

    /// The stored snapshot, with the group's current members: a member added after the
    /// snapshot was taken finds itself in it (raft-rs refuses a snapshot that does not name
    /// the receiver), and replays the membership changes after it, which are idempotent.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let core = self.rl();
        if core.snapshot_meta().index < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut snapshot = core.snapshot.clone();
        snapshot.mut_metadata().set_conf_state(core.conf_state.clone());
        Ok(snapshot)
    }
}
