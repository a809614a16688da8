//! A loglet stored in the node's own RocksDB, column family [`CF_LOGLET`].
//!
//! # Key layout
//!
//! All keys start with a one-byte kind, so records and per-loglet metadata can never
//! collide and each kind sorts as one contiguous range (integers are big-endian, so
//! byte order is numeric order):
//!
//! | key                                   | value                                   |
//! |---------------------------------------|-----------------------------------------|
//! | `b'r'` ++ loglet_id:u64 ++ lsn:u64    | the record's payload, verbatim          |
//! | `b'm'` ++ loglet_id:u64 ++ `0x01`     | trim point: u64 (absent = never trimmed) |
//! | `b'm'` ++ loglet_id:u64 ++ `0x02`     | seal: the tail's `next_lsn` at sealing, u64 (absent = open) |
//!
//! Records of one loglet are therefore one key range, ordered by LSN, and the last one
//! is found with a single reverse seek.
//!
//! # Consistency
//!
//! Appends and seals are serialized by one async mutex and each is one durable
//! `WriteBatch`; the in-memory tail advances only after the batch is durable, so readers
//! never see a record that a crash could take back. A trim deletes its records and
//! records the new trim point in one batch, and a read takes the trim point and the
//! records from one RocksDB snapshot, so a concurrent trim can never make a read skip
//! records silently.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use restate_storage::rocksdb::{ReadOptions, WriteBatch};
use restate_storage::{NodeStorage, CF_LOGLET};
use restate_types::{LogletId, Lsn};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use crate::loglet::{LogRecord, Loglet, LogletError, ReadBatch, TailState, TrimGap};
use crate::loglet_keys::{loglet_key, lsn_key, lsn_of, LOCAL_META, LOCAL_RECORD};

const META_TRIM_POINT: u8 = 0x01;
const META_SEAL: u8 = 0x02;

fn record_key(id: LogletId, lsn: Lsn) -> [u8; 17] {
    lsn_key(LOCAL_RECORD, id, lsn.0)
}

fn meta_key(id: LogletId, kind: u8) -> Vec<u8> {
    loglet_key(LOCAL_META, id, [kind])
}

/// The LSN in a record key of loglet `id`, or `None` if the key is not one.
fn lsn_of_record_key(id: LogletId, key: &[u8]) -> Option<Lsn> {
    lsn_of(LOCAL_RECORD, id, key).map(Lsn)
}

fn decode_lsn(id: LogletId, what: &str, value: &[u8]) -> Result<Lsn, LogletError> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| {
        LogletError::Storage(format!("loglet {id}: stored {what} is corrupt: expected 8 bytes, found {}", value.len()))
    })?;
    Ok(Lsn(u64::from_be_bytes(bytes)))
}

/// The trim point from the result of reading its key; absent means never trimmed.
fn decode_trim_point(
    id: LogletId,
    stored: Result<Option<Vec<u8>>, restate_storage::rocksdb::Error>,
) -> Result<Lsn, LogletError> {
    match stored.map_err(|e| storage_error(id, "reading the trim point", e))? {
        Some(value) => decode_lsn(id, "trim point", &value),
        None => Ok(Lsn::INVALID),
    }
}

fn storage_error(id: LogletId, op: &str, err: impl fmt::Display) -> LogletError {
    LogletError::Storage(format!("{op} for loglet {id} failed: {err}"))
}

/// A loglet whose records live in this node's RocksDB.
///
/// Cheap to clone; clones share the in-memory tail. Open at most one per loglet id and
/// [`NodeStorage`] (clones aside) — [`crate::LocalLogletProvider`] does that — since two
/// independently opened handles would hand out the same LSNs twice.
#[derive(Clone)]
pub struct LocalLoglet {
    inner: Arc<Inner>,
}

struct Inner {
    id: LogletId,
    storage: NodeStorage,
    /// The authoritative tail; changed only by the holder of `writer`.
    tail: watch::Sender<TailState>,
    /// Serializes appends and seals.
    writer: Arc<Mutex<WriterState>>,
    /// Serializes trims; holds the durable trim point.
    trim: Arc<Mutex<Lsn>>,
}

struct WriterState {
    /// Set when a write's outcome is unknown (it failed, but may have reached the disk):
    /// the in-memory tail may then be behind the disk, so writing on could reuse LSNs.
    /// Reopening recovers the tail from disk.
    failed: Option<String>,
}

impl fmt::Debug for LocalLoglet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLoglet").field("id", &self.inner.id).field("tail", &*self.inner.tail.borrow()).finish()
    }
}

impl LocalLoglet {
    /// Opens loglet `id` in `storage`, creating it empty if it has no data yet, and
    /// recovers its tail, trim point and seal from disk. Does blocking I/O (a few point
    /// reads and one seek).
    pub fn open(storage: NodeStorage, id: LogletId) -> Result<LocalLoglet, LogletError> {
        let db = storage.db();
        let cf = storage.cf(CF_LOGLET);

        let trim_point = decode_trim_point(id, db.get_cf(cf, meta_key(id, META_TRIM_POINT)))?;
        let sealed_at =
            match db.get_cf(cf, meta_key(id, META_SEAL)).map_err(|e| storage_error(id, "reading the seal", e))? {
                Some(value) => Some(decode_lsn(id, "seal", &value)?),
                None => None,
            };

        let mut opts = ReadOptions::default();
        opts.set_iterate_lower_bound(record_key(id, Lsn(0)));
        let mut iter = db.raw_iterator_cf_opt(cf, opts);
        iter.seek_for_prev(record_key(id, Lsn(u64::MAX)));
        let last_record = match iter.key() {
            Some(key) => Some(lsn_of_record_key(id, key).ok_or_else(|| {
                LogletError::Storage(format!("loglet {id}: found a foreign key while seeking its last record"))
            })?),
            None => None,
        };
        iter.status().map_err(|e| storage_error(id, "seeking the last record", e))?;
        drop(iter);

        // With every record trimmed, only the trim point remembers how far the log went.
        let next_lsn = last_record.unwrap_or(Lsn::INVALID).max(trim_point).next();
        if let Some(sealed_at) = sealed_at {
            if sealed_at != next_lsn {
                return Err(LogletError::Storage(format!(
                    "loglet {id} was sealed with next LSN {sealed_at}, but its records end before LSN {next_lsn}; its data is corrupt"
                )));
            }
        }
        tracing::debug!(loglet = %id, %next_lsn, %trim_point, sealed = sealed_at.is_some(), "opened local loglet");

        let (tail, _) = watch::channel(TailState { next_lsn, sealed: sealed_at.is_some() });
        Ok(LocalLoglet {
            inner: Arc::new(Inner {
                id,
                storage,
                tail,
                writer: Arc::new(Mutex::new(WriterState { failed: None })),
                trim: Arc::new(Mutex::new(trim_point)),
            }),
        })
    }

    pub fn id(&self) -> LogletId {
        self.inner.id
    }

    /// Runs blocking storage work off the async worker threads. The work runs to
    /// completion even if the calling future is dropped, so state changes that belong
    /// to a durable write are never lost to cancellation.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T, LogletError> + Send + 'static,
    ) -> Result<T, LogletError> {
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || work(&inner)).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(LogletError::Storage(format!(
                "loglet {}: storage task did not run: {err} (is the runtime shutting down?)",
                self.inner.id
            ))),
        }
    }
}

impl Inner {
    fn check_writable(&self, writer: &WriterState) -> Result<TailState, LogletError> {
        if let Some(failure) = &writer.failed {
            return Err(LogletError::Storage(format!(
                "loglet {} refuses writes after a failed write ({failure}); restart the node to recover its tail from disk",
                self.id
            )));
        }
        Ok(*self.tail.borrow())
    }

    fn append(&self, mut writer: OwnedMutexGuard<WriterState>, records: Vec<Bytes>) -> Result<Lsn, LogletError> {
        let tail = self.check_writable(&writer)?;
        if tail.sealed {
            return Err(LogletError::Sealed);
        }
        let count = records.len() as u64;
        let last = tail.next_lsn.0.checked_add(count - 1).filter(|last| *last < u64::MAX).ok_or_else(|| {
            LogletError::InvalidInput(format!(
                "cannot append {count} records to loglet {}: LSNs from {} on would overflow",
                self.id, tail.next_lsn
            ))
        })?;

        let cf = self.storage.cf(CF_LOGLET);
        let mut batch = WriteBatch::default();
        for (lsn, payload) in (tail.next_lsn.0..=last).zip(&records) {
            batch.put_cf(cf, record_key(self.id, Lsn(lsn)), payload);
        }
        if let Err(err) = self.storage.write_durable(batch) {
            let err = storage_error(self.id, "appending", err);
            writer.failed = Some(err.to_string());
            return Err(err);
        }
        self.tail.send_modify(|t| t.next_lsn = Lsn(last + 1));
        Ok(Lsn(last))
    }

    fn seal(&self, mut writer: OwnedMutexGuard<WriterState>) -> Result<TailState, LogletError> {
        let tail = self.check_writable(&writer)?;
        if tail.sealed {
            return Ok(tail);
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.storage.cf(CF_LOGLET), meta_key(self.id, META_SEAL), tail.next_lsn.0.to_be_bytes());
        if let Err(err) = self.storage.write_durable(batch) {
            let err = storage_error(self.id, "sealing", err);
            writer.failed = Some(err.to_string());
            return Err(err);
        }
        self.tail.send_modify(|t| t.sealed = true);
        tracing::debug!(loglet = %self.id, next_lsn = %tail.next_lsn, "sealed local loglet");
        Ok(TailState { sealed: true, ..tail })
    }

    fn trim(&self, mut current: OwnedMutexGuard<Lsn>, trim_point: Lsn) -> Result<Lsn, LogletError> {
        if trim_point <= *current {
            return Ok(*current);
        }
        let last = self.tail.borrow().last_lsn();
        if trim_point > last {
            let holds = if last == Lsn::INVALID {
                "it holds no records yet".to_owned()
            } else {
                format!("its last record is LSN {last}")
            };
            return Err(LogletError::InvalidInput(format!(
                "cannot trim loglet {} to LSN {trim_point}: {holds}",
                self.id
            )));
        }
        // A failed write may or may not have reached the disk; either way retrying the
        // same trim is harmless, so the in-memory trim point just stays behind.
        let cf = self.storage.cf(CF_LOGLET);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf, record_key(self.id, current.next()), record_key(self.id, trim_point.next()));
        batch.put_cf(cf, meta_key(self.id, META_TRIM_POINT), trim_point.0.to_be_bytes());
        self.storage.write_durable(batch).map_err(|e| storage_error(self.id, "trimming", e))?;
        *current = trim_point;
        tracing::debug!(loglet = %self.id, %trim_point, "trimmed local loglet");
        Ok(trim_point)
    }

    fn read(&self, from: Lsn, max_records: usize) -> Result<ReadBatch, LogletError> {
        let id = self.id;
        // Taken before the snapshot, so every record below it is in the snapshot unless trimmed.
        let tail = *self.tail.borrow();
        let db = self.storage.db();
        let cf = self.storage.cf(CF_LOGLET);
        let snapshot = db.snapshot();

        let trim_point = decode_trim_point(id, snapshot.get_cf(cf, meta_key(id, META_TRIM_POINT)))?;
        let (trim_gap, start) =
            if from <= trim_point { (Some(TrimGap { from, to: trim_point }), trim_point.next()) } else { (None, from) };

        let mut records = Vec::new();
        if start < tail.next_lsn {
            let mut opts = ReadOptions::default();
            opts.set_iterate_upper_bound(record_key(id, tail.next_lsn));
            let mut iter = snapshot.raw_iterator_cf_opt(cf, opts);
            iter.seek(record_key(id, start));
            let mut expected = start;
            while records.len() < max_records && expected < tail.next_lsn {
                let found = match (iter.key(), iter.value()) {
                    (Some(key), Some(value)) => Some((lsn_of_record_key(id, key), value)),
                    _ => None,
                };
                match found {
                    Some((Some(lsn), value)) if lsn == expected => {
                        records.push(LogRecord { lsn, payload: Bytes::copy_from_slice(value) });
                    }
                    _ => {
                        iter.status().map_err(|e| storage_error(id, "reading records", e))?;
                        return Err(LogletError::Storage(format!(
                            "loglet {id} is missing record LSN {expected} (trim point {trim_point}, next LSN {}); its data is corrupt",
                            tail.next_lsn
                        )));
                    }
                }
                expected = expected.next();
                iter.next();
            }
            iter.status().map_err(|e| storage_error(id, "reading records", e))?;
        }
        let next_lsn = Lsn(start.0 + records.len() as u64);
        Ok(ReadBatch { trim_gap, records, next_lsn, tail })
    }
}

#[async_trait]
impl Loglet for LocalLoglet {
    async fn append(&self, records: Vec<Bytes>) -> Result<Lsn, LogletError> {
        if records.is_empty() {
            return Err(LogletError::InvalidInput(format!(
                "cannot append to loglet {}: the batch is empty; pass at least one record",
                self.inner.id
            )));
        }
        // The guard travels into the blocking task, so a cancelled caller cannot release
        // the lock while its write is still in flight.
        let writer = Arc::clone(&self.inner.writer).lock_owned().await;
        self.blocking(move |inner| inner.append(writer, records)).await
    }

    async fn read(&self, from: Lsn, max_records: usize) -> Result<ReadBatch, LogletError> {
        if max_records == 0 {
            return Err(LogletError::InvalidInput(format!(
                "cannot read loglet {}: max_records is 0; ask for at least one record",
                self.inner.id
            )));
        }
        let from = from.max(Lsn::OLDEST);
        self.blocking(move |inner| inner.read(from, max_records)).await
    }

    async fn wait_for_tail(&self, beyond: Lsn) -> Result<TailState, LogletError> {
        let mut tail = self.inner.tail.subscribe();
        let wanted_next = beyond.0.saturating_add(1);
        let state = tail
            .wait_for(|t| t.sealed || t.next_lsn.0 > wanted_next)
            .await
            .expect("the tail's sender lives as long as the loglet");
        Ok(*state)
    }

    async fn find_tail(&self) -> Result<TailState, LogletError> {
        Ok(*self.inner.tail.borrow())
    }

    async fn trim(&self, trim_point: Lsn) -> Result<Lsn, LogletError> {
        let current = Arc::clone(&self.inner.trim).lock_owned().await;
        self.blocking(move |inner| inner.trim(current, trim_point)).await
    }

    async fn trim_point(&self) -> Result<Lsn, LogletError> {
        Ok(*self.inner.trim.lock().await)
    }

    async fn seal(&self) -> Result<TailState, LogletError> {
        let writer = Arc::clone(&self.inner.writer).lock_owned().await;
        self.blocking(move |inner| inner.seal(writer)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_sort_by_loglet_then_lsn_and_never_collide_with_metadata() {
        let a = LogletId(1);
        let b = LogletId(2);
        assert!(record_key(a, Lsn(u64::MAX)) < record_key(b, Lsn(0)));
        assert!(record_key(a, Lsn(255)) < record_key(a, Lsn(256)));
        assert_eq!(lsn_of_record_key(a, &record_key(a, Lsn(42))), Some(Lsn(42)));
        assert_eq!(lsn_of_record_key(a, &record_key(b, Lsn(42))), None);
        for kind in [META_TRIM_POINT, META_SEAL] {
            let meta = meta_key(a, kind);
            assert_eq!(lsn_of_record_key(a, &meta), None);
            // Metadata sorts outside every loglet's record range.
            assert!(meta.as_slice() < record_key(LogletId(0), Lsn(0)).as_slice());
        }
        assert_ne!(meta_key(a, META_TRIM_POINT), meta_key(a, META_SEAL));
    }
}
