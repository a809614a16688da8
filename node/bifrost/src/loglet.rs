//! The loglet contract: what a log segment's storage offers, independent of how it
//! stores records (local RocksDB today, a replicated loglet later).

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use restate_types::Lsn;

/// Where a loglet's tail stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailState {
    /// The LSN the next appended record would get; `Lsn(1)` for an empty loglet.
    /// Every record below it (and above the trim point) is durable and readable.
    pub next_lsn: Lsn,
    /// A sealed loglet accepts no more appends; `next_lsn` is then final.
    pub sealed: bool,
}

impl TailState {
    /// The LSN of the last record ever appended; `Lsn(0)` if none was.
    pub fn last_lsn(&self) -> Lsn {
        self.next_lsn.prev()
    }
}

/// One record read back from a loglet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub lsn: Lsn,
    pub payload: Bytes,
}

/// The records `from..=to` were trimmed: a reader that asked for them gets this instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrimGap {
    /// The first LSN the reader asked for.
    pub from: Lsn,
    /// The trim point: the last LSN that is gone.
    pub to: Lsn,
}

/// The answer to one [`Loglet::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    /// Set when the requested start lay at or below the trim point; `records` then begin
    /// right after `trim_gap.to`.
    pub trim_gap: Option<TrimGap>,
    /// Contiguous records in LSN order, at most `max_records` of them. Empty when the
    /// reader is at (or beyond) the tail.
    pub records: Vec<LogRecord>,
    /// Where the next read should start to continue without gaps or repeats.
    pub next_lsn: Lsn,
    /// The tail as it stood when the read began.
    pub tail: TailState,
}

/// Why a loglet operation failed. Messages carry the diagnosis: which loglet, which
/// numbers, and what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogletError {
    /// The loglet was sealed; nothing more can be appended to it.
    #[error("the loglet is sealed and accepts no more appends; append to the log's next segment instead")]
    Sealed,
    /// The request itself is wrong (empty append, trim beyond the tail, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// The storage underneath failed or holds data that breaks the loglet's invariants.
    #[error("loglet storage failed: {0}")]
    Storage(String),
}

/// A log segment's storage: an append-only sequence of records numbered by contiguous
/// LSNs starting at `Lsn(1)`, that can be trimmed at the head and sealed at the tail.
///
/// Implementations are shared between tasks (`Arc<dyn Loglet>`), so every method takes
/// `&self`; concurrent appends are ordered by the loglet, never by the caller.
#[async_trait]
pub trait Loglet: Send + Sync {
    /// Appends `records` in order, atomically (all or none) and durably before returning.
    /// Returns the LSN of the last record of the batch; the first record ever appended to
    /// a loglet gets `Lsn(1)`. Fails with [`LogletError::Sealed`] once sealed and with
    /// [`LogletError::InvalidInput`] for an empty batch.
    async fn append(&self, records: Vec<Bytes>) -> Result<Lsn, LogletError>;

    /// Reads up to `max_records` (at least 1) records with LSN >= `from`, in order.
    /// `from == Lsn(0)` means `Lsn(1)`. If `from` is at or below the trim point the batch
    /// starts right after the trim point and reports the skipped range in `trim_gap`.
    /// Never waits: at the tail it returns an empty batch (see [`Loglet::wait_for_tail`]).
    async fn read(&self, from: Lsn, max_records: usize) -> Result<ReadBatch, LogletError>;

    /// Resolves once the loglet holds a record with LSN > `beyond`, or is sealed, and
    /// returns the tail at that moment. Resolves at once if that already holds. Waits
    /// without polling; cancel-safe.
    async fn wait_for_tail(&self, beyond: Lsn) -> Result<TailState, LogletError>;

    /// The current tail. Records below `next_lsn` are durable.
    async fn find_tail(&self) -> Result<TailState, LogletError>;

    /// Durably deletes every record with LSN <= `trim_point` and returns the trim point
    /// now in effect. A `trim_point` at or below the current one changes nothing and
    /// returns the current one. Trimming beyond the last appended record is
    /// [`LogletError::InvalidInput`] and changes nothing.
    async fn trim(&self, trim_point: Lsn) -> Result<Lsn, LogletError>;

    /// The LSN up to which (inclusive) records were trimmed; `Lsn(0)` if never trimmed.
    async fn trim_point(&self) -> Result<Lsn, LogletError>;

    /// Durably seals the loglet: later appends fail with [`LogletError::Sealed`]. Waits for
    /// an append in progress, so the returned tail is final. Idempotent.
    async fn seal(&self) -> Result<TailState, LogletError>;

    /// The node that orders appends right now (a replicated loglet's leader), if known.
    async fn sequencer(&self) -> Option<String> {
        None
    }
}

/// One step of a [`LogletReadStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Record(LogRecord),
    /// The records the reader was about to read were trimmed; reading resumes after `to`.
    TrimGap(TrimGap),
}

/// Reads a loglet from an LSN onward, waiting at the tail for new records.
///
/// Yields every record exactly once in LSN order, and a [`LogEntry::TrimGap`] in place
/// of records trimmed before the reader got to them. Ends (`Ok(None)`) only after the
/// last record of a sealed loglet.
pub struct LogletReadStream {
    loglet: Arc<dyn Loglet>,
    next_lsn: Lsn,
    batch_size: usize,
    buffered: VecDeque<LogEntry>,
}

impl LogletReadStream {
    const DEFAULT_BATCH_SIZE: usize = 256;

    /// A reader positioned at `from` (`Lsn(0)` means `Lsn(1)`).
    pub fn new(loglet: Arc<dyn Loglet>, from: Lsn) -> LogletReadStream {
        LogletReadStream {
            loglet,
            next_lsn: from.max(Lsn::OLDEST),
            batch_size: Self::DEFAULT_BATCH_SIZE,
            buffered: VecDeque::new(),
        }
    }

    /// How many records one underlying read fetches at most (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> LogletReadStream {
        self.batch_size = batch_size.max(1);
        self
    }

    /// The LSN of the next record this reader will yield.
    pub fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The next entry, waiting at the tail until one exists. `Ok(None)` once the loglet
    /// is sealed and fully read. Cancel-safe: a cancelled call loses no entry.
    pub async fn next(&mut self) -> Result<Option<LogEntry>, LogletError> {
        loop {
            if let Some(entry) = self.buffered.pop_front() {
                return Ok(Some(entry));
            }
            let batch = self.loglet.read(self.next_lsn, self.batch_size).await?;
            self.next_lsn = batch.next_lsn;
            if let Some(gap) = batch.trim_gap {
                self.buffered.push_back(LogEntry::TrimGap(gap));
            }
            self.buffered.extend(batch.records.into_iter().map(LogEntry::Record));
            if !self.buffered.is_empty() {
                continue;
            }
            let tail = self.loglet.wait_for_tail(self.next_lsn.prev()).await?;
            if tail.sealed && tail.next_lsn <= self.next_lsn {
                return Ok(None);
            }
        }
    }
}
