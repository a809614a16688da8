//! Raft log storage of one group: durable in RocksDB, served from memory.
//!
//! Contract: every mutation is staged into a caller-supplied `WriteBatch` AND applied to
//! the in-memory copy; the engine writes (and fsyncs) the batch before it acts on
//! anything that depends on persistence (`persisted_messages`, advancing). The log stays
//! short because the engine compacts it behind state-machine snapshots, so keeping the
//! live suffix in memory is cheap.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use restate_storage::rocksdb::{IteratorMode, ReadOptions, WriteBatch};
use restate_storage::NodeStorage;

use crate::keys;

pub const CF_RAFT: &str = restate_storage::CF_RAFT;

struct Core {
    hard_state: HardState,
    conf_state: ConfState,
    /// Last snapshot (with data); its index/term precede `entries[0]`.
    snapshot: Snapshot,
    /// Contiguous entries after the snapshot.
    entries: Vec<Entry>,
}

impl Core {
    fn snapshot_meta(&self) -> &SnapshotMetadata {
        self.snapshot.get_metadata()
    }
    fn first_index(&self) -> u64 {
        self.snapshot_meta().index + 1
    }
    fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.snapshot_meta().index, |e| e.index)
    }
}

/// The raft `Storage` of one group. Cheap to clone (shared core).
#[derive(Clone)]
pub struct GroupStorage {
    group: u64,
    core: Arc<RwLock<Core>>,
}

fn decode<M: protobuf::Message>(what: &str, bytes: &[u8]) -> Result<M, raft::Error> {
    M::parse_from_bytes(bytes)
        .map_err(|e| raft::Error::Store(StorageError::Other(format!("corrupt raft {what}: {e}").into())))
}

fn encode<M: protobuf::Message>(message: &M) -> Vec<u8> {
    message.write_to_bytes().expect("raft protobuf messages encode")
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

    /// Loads a group's state, or an empty (uninitialized) one if nothing is stored.
    pub fn load(storage: &NodeStorage, group: u64) -> Result<GroupStorage, raft::Error> {
        let db = storage.db();
        let cf = storage.cf(CF_RAFT);
        let get = |kind| {
            db.get_cf(cf, keys::state_key(group, kind))
                .map_err(|e| raft::Error::Store(StorageError::Other(format!("reading raft state: {e}").into())))
        };
        let hard_state =
            get(keys::HARD_STATE)?.map(|b| decode::<HardState>("hard state", &b)).transpose()?.unwrap_or_default();
        let conf_state =
            get(keys::CONF_STATE)?.map(|b| decode::<ConfState>("conf state", &b)).transpose()?.unwrap_or_default();
        let snapshot =
            get(keys::SNAPSHOT)?.map(|b| decode::<Snapshot>("snapshot", &b)).transpose()?.unwrap_or_default();
        let mut entries = Vec::new();
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(keys::entry_key(group, u64::MAX).to_vec());
        let start = keys::entry_key(group, snapshot.get_metadata().index + 1);
        let iter =
            db.iterator_cf_opt(cf, opts, IteratorMode::From(&start, restate_storage::rocksdb::Direction::Forward));
        for item in iter {
            let (key, value) =
                item.map_err(|e| raft::Error::Store(StorageError::Other(format!("reading raft log: {e}").into())))?;
            if keys::group_of(&key) != Some(group) || keys::index_of_entry_key(&key).is_none() {
                break;
            }
            let entry: Entry = decode("entry", &value)?;
            if let Some(last) = entries.last() {
                let last: &Entry = last;
                assert_eq!(last.index + 1, entry.index, "raft log of group {group} has a hole after {}", last.index);
            }
            entries.push(entry);
        }
        Ok(GroupStorage { group, core: Arc::new(RwLock::new(Core { hard_state, conf_state, snapshot, entries })) })
    }

    /// Whether this group has ever been initialized (bootstrapped, or given a snapshot).
    pub fn is_initialized(&self) -> bool {
        let core = self.rl();
        !core.conf_state.voters.is_empty() || !core.conf_state.learners.is_empty() || core.last_index() > 0
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
            first.index <= core.last_index() + 1,
            "group {}: appending at {} leaves a hole after {}",
            self.group,
            first.index,
            core.last_index()
        );
        // Conflicting suffix is replaced: drop it in memory and on disk.
        let keep = (first.index - core.first_index()) as usize;
        if keep < core.entries.len() {
            core.entries.truncate(keep);
            batch.delete_range_cf(cf, keys::entry_key(self.group, first.index), keys::entry_key(self.group, u64::MAX));
        }
        for entry in entries {
            batch.put_cf(cf, keys::entry_key(self.group, entry.index), encode(entry));
        }
        core.entries.extend_from_slice(entries);
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
        core.entries.clear();
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

    /// Stores a snapshot the state machine made at `index` (<= applied) and drops the log
    /// up to it. `data` is the state as of `index`.
    pub fn compact_to_snapshot(
        &self,
        index: u64,
        data: Vec<u8>,
        batch: &mut WriteBatch,
        cf: &impl restate_storage::rocksdb::AsColumnFamilyRef,
    ) {
        let mut core = self.wl();
        if index <= core.snapshot_meta().index {
            return;
        }
        assert!(
            index <= core.last_index(),
            "group {}: compacting to {index} beyond the last index {}",
            self.group,
            core.last_index()
        );
        let offset = core.first_index();
        let term = core.entries[(index - offset) as usize].term;
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data.into());
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(core.conf_state.clone());
        batch.put_cf(cf, keys::state_key(self.group, keys::SNAPSHOT), encode(&snapshot));
        batch.delete_range_cf(cf, keys::entry_key(self.group, 0), keys::entry_key(self.group, index + 1));
        core.entries.drain(..(index + 1 - offset) as usize);
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

    pub fn log_length(&self) -> u64 {
        self.rl().entries.len() as u64
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
        let core = self.rl();
        if low < core.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= core.last_index() + 1,
            "group {}: entries up to {high} requested, last is {}",
            self.group,
            core.last_index()
        );
        let offset = core.first_index();
        let slice = &core.entries[(low - offset) as usize..(high - offset) as usize];
        let limit = max_size.into().unwrap_or(u64::MAX);
        let mut total = 0u64;
        let mut out = Vec::new();
        for entry in slice {
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
        if idx > core.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(core.entries[(idx - core.first_index()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.rl().first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.rl().last_index())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let core = self.rl();
        if core.snapshot_meta().index < request_index {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        Ok(core.snapshot.clone())
    }
}
