//! Where a replicated loglet's records are on this node's disk.
//!
//! The records stay in the raft log's entries (an append command is one entry holding
//! its records), so each is written once, in the synced batch of its raft round. Beside
//! the raft log, in column family [`CF_LOGLET`], a loglet keeps:
//! - `x ++ loglet ++ first LSN` -> raft index: one key per applied append, so a read finds
//!   the entry holding an LSN with one seek and streams from there;
//! - `s ++ loglet` -> the applied raft index and the [`LogletState`] (tail, trim point,
//!   seal), written in the same batch as the raft state of the entry that changed it;
//! - `l ++ loglet ++ LSN` -> record: records that arrived in a snapshot written before
//!   records moved to disk (an upgraded node), until they are trimmed.
//!
//! Nothing here grows in memory with the log; a restart reads the state key only.

use bytes::{Buf, BufMut, Bytes};
use restate_raft::RaftLogReader;
use restate_storage::rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};
use restate_storage::{NodeStorage, CF_LOGLET};
use restate_types::LogletId;

use super::state::{Command, LogletState};
use crate::loglet_keys::{loglet_key, lsn_key, lsn_of, REPLICATED_CARRIED, REPLICATED_INDEX, REPLICATED_STATE};

const INDEX_PREFIX: u8 = REPLICATED_INDEX;
const LEGACY_PREFIX: u8 = REPLICATED_CARRIED;
/// Payload bytes one read returns at most, past its first record.
pub const MAX_READ_BYTES: usize = 4 << 20;

fn state_key(loglet: LogletId) -> Vec<u8> {
    loglet_key(REPLICATED_STATE, loglet, [])
}

fn u64_of(value: &[u8]) -> Result<u64, String> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| format!("expected 8 bytes, found {}", value.len()))?;
    Ok(u64::from_be_bytes(bytes))
}

/// One loglet's records and state on this node's disk.
#[derive(Clone)]
pub struct LogletRecords {
    loglet: LogletId,
    storage: NodeStorage,
    raft_log: RaftLogReader,
}

impl LogletRecords {
    pub fn new(loglet: LogletId, storage: NodeStorage, raft_log: RaftLogReader) -> LogletRecords {
        LogletRecords { loglet, storage, raft_log }
    }

    fn cf(&self) -> &restate_storage::rocksdb::ColumnFamily {
        self.storage.cf(CF_LOGLET)
    }

    /// The applied raft index and the state as of it, if this node ever applied anything.
    pub fn load_state(&self) -> Result<Option<(u64, LogletState)>, String> {
        let raw = self
            .storage
            .db()
            .get_pinned_cf(self.cf(), state_key(self.loglet))
            .map_err(|e| format!("reading the state of loglet {}: {e}", self.loglet))?;
        let Some(mut raw) = raw.as_deref() else { return Ok(None) };
        if raw.len() != 25 {
            return Err(format!("stored state of loglet {} is {} bytes, expected 25", self.loglet, raw.len()));
        }
        let applied = raw.get_u64();
        let next_lsn = raw.get_u64();
        let trim_point = raw.get_u64();
        let sealed = raw.get_u8() == 1;
        Ok(Some((applied, LogletState { trim_point, next_lsn, sealed })))
    }

    pub fn stage_state(&self, batch: &mut WriteBatch, applied: u64, state: &LogletState) {
        let mut value = Vec::with_capacity(25);
        value.put_u64(applied);
        value.put_u64(state.next_lsn);
        value.put_u64(state.trim_point);
        value.put_u8(u8::from(state.sealed));
        batch.put_cf(self.cf(), state_key(self.loglet), value);
    }

    /// Records that the append at raft index `index` holds the records from `first_lsn` on.
    pub fn stage_append(&self, batch: &mut WriteBatch, first_lsn: u64, index: u64) {
        batch.put_cf(self.cf(), lsn_key(INDEX_PREFIX, self.loglet, first_lsn), index.to_be_bytes());
    }

    /// Forgets everything (a snapshot replaces the loglet's contents), keeping `records`
    /// that the snapshot carried.
    pub fn stage_replace(&self, batch: &mut WriteBatch, records: &[(u64, Bytes)]) {
        for prefix in [INDEX_PREFIX, LEGACY_PREFIX] {
            batch.delete_range_cf(self.cf(), lsn_key(prefix, self.loglet, 0), lsn_key(prefix, self.loglet, u64::MAX));
        }
        for (lsn, payload) in records {
            batch.put_cf(self.cf(), lsn_key(LEGACY_PREFIX, self.loglet, *lsn), payload);
        }
    }

    /// The stored append holding `lsn` (or the last one before it): its first LSN and raft
    /// index. `None` when no indexed append starts at or before `lsn`.
    fn append_holding(&self, lsn: u64) -> Result<Option<(u64, u64)>, String> {
        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(lsn_key(INDEX_PREFIX, self.loglet, 0).to_vec());
        let from = lsn_key(INDEX_PREFIX, self.loglet, lsn);
        let mut iter =
            self.storage.db().iterator_cf_opt(self.cf(), opts, IteratorMode::From(&from, Direction::Reverse));
        match iter.next() {
            Some(Ok((key, value))) => match lsn_of(INDEX_PREFIX, self.loglet, &key) {
                Some(first) => Ok(Some((first, u64_of(&value)?))),
                None => Ok(None),
            },
            Some(Err(e)) => Err(format!("reading the record index of loglet {}: {e}", self.loglet)),
            None => Ok(None),
        }
    }

    /// Where the raft log may be cut once every record up to `trim_point` is gone: the
    /// index before the append holding the first kept record, and the state as of that
    /// index (all its records trimmed). Also stages the deletion of what the trim made
    /// useless (index keys of appends wholly trimmed, carried records). `None` when the
    /// cut cannot be placed yet (the first kept record is not indexed on disk).
    pub fn stage_trim(
        &self,
        batch: &mut WriteBatch,
        trim_point: u64,
        state: &LogletState,
        applied: u64,
    ) -> Result<Option<(u64, LogletState)>, String> {
        batch.delete_range_cf(
            self.cf(),
            lsn_key(LEGACY_PREFIX, self.loglet, 0),
            lsn_key(LEGACY_PREFIX, self.loglet, trim_point + 1),
        );
        if trim_point + 1 >= state.next_lsn {
            // Everything is trimmed: the log may go up to the trim itself.
            batch.delete_range_cf(
                self.cf(),
                lsn_key(INDEX_PREFIX, self.loglet, 0),
                lsn_key(INDEX_PREFIX, self.loglet, u64::MAX),
            );
            return Ok(Some((applied, *state)));
        }
        let Some((first_lsn, index)) = self.append_holding(trim_point + 1)? else { return Ok(None) };
        batch.delete_range_cf(
            self.cf(),
            lsn_key(INDEX_PREFIX, self.loglet, 0),
            lsn_key(INDEX_PREFIX, self.loglet, first_lsn),
        );
        // As of `index - 1`, the last record was `first_lsn - 1`, and all were trimmed.
        let at_cut = LogletState { trim_point: first_lsn - 1, next_lsn: first_lsn, sealed: false };
        Ok(Some((index - 1, at_cut)))
    }

    /// Up to `max` records with LSN >= `from` and below `state.next_lsn`, in order,
    /// streamed from disk (carried records first, then the raft log's appends), and no more
    /// than [`MAX_READ_BYTES`] of payload past the first record (a reader of large records
    /// holds a bounded batch). Stops early at a record not on disk yet (an append applied
    /// but its index not yet written): the reader asks again.
    pub fn read(&self, from: u64, max: usize, state: &LogletState) -> Result<Vec<(u64, Bytes)>, String> {
        let from = from.max(state.trim_point + 1).max(1);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if from >= state.next_lsn || max == 0 {
            return Ok(out);
        }
        // Records carried by an old snapshot (usually none).
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(lsn_key(LEGACY_PREFIX, self.loglet, state.next_lsn).to_vec());
        let start = lsn_key(LEGACY_PREFIX, self.loglet, from);
        for item in self.storage.db().iterator_cf_opt(self.cf(), opts, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item.map_err(|e| format!("reading loglet {}: {e}", self.loglet))?;
            let Some(lsn) = lsn_of(LEGACY_PREFIX, self.loglet, &key) else { break };
            if lsn != from + out.len() as u64 || out.len() >= max || bytes >= MAX_READ_BYTES {
                break;
            }
            bytes += value.len();
            out.push((lsn, Bytes::copy_from_slice(&value)));
        }
        let mut next = from + out.len() as u64;
        if out.len() >= max || next >= state.next_lsn || bytes >= MAX_READ_BYTES {
            return Ok(out);
        }
        let Some((first_lsn, _)) = self.append_holding(next)? else { return Ok(out) };
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(lsn_key(INDEX_PREFIX, self.loglet, state.next_lsn).to_vec());
        let start = lsn_key(INDEX_PREFIX, self.loglet, first_lsn);
        for item in self.storage.db().iterator_cf_opt(self.cf(), opts, IteratorMode::From(&start, Direction::Forward)) {
            let (key, value) = item.map_err(|e| format!("reading the record index of loglet {}: {e}", self.loglet))?;
            let Some(first) = lsn_of(INDEX_PREFIX, self.loglet, &key) else { break };
            if first > next {
                break; // not indexed yet
            }
            let index = u64_of(&value)?;
            let Some(command) = self.raft_log.command(index)? else { break }; // cut away meanwhile
            let Command::Append(records) = Command::decode(&command)? else {
                return Err(format!(
                    "loglet {}: raft entry {index} is indexed as an append but is not one",
                    self.loglet
                ));
            };
            for (offset, payload) in records.into_iter().enumerate() {
                let lsn = first + offset as u64;
                if lsn < next {
                    continue;
                }
                if lsn >= state.next_lsn || out.len() >= max || bytes >= MAX_READ_BYTES {
                    return Ok(out);
                }
                bytes += payload.len();
                out.push((lsn, payload));
                next = lsn + 1;
            }
        }
        Ok(out)
    }

    /// Bytes this loglet takes on disk: its raft log and index (RocksDB's estimate).
    pub fn approximate_size(&self) -> u64 {
        let index = self.storage.approximate_size(
            CF_LOGLET,
            &lsn_key(INDEX_PREFIX, self.loglet, 0),
            &lsn_key(INDEX_PREFIX, self.loglet, u64::MAX),
        );
        let legacy = self.storage.approximate_size(
            CF_LOGLET,
            &lsn_key(LEGACY_PREFIX, self.loglet, 0),
            &lsn_key(LEGACY_PREFIX, self.loglet, u64::MAX),
        );
        self.raft_log.approximate_size() + index + legacy
    }
}
