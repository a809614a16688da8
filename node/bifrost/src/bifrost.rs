//! Virtual logs: one per [`LogId`], made of a chain of segments, each stored in a loglet.
//!
//! The chain lives in the [`Logs`] metadata object. Segment `i` holds the virtual LSNs
//! `[base_i, base_{i+1} - 1]`; the last segment is the writable tail (see
//! [`crate::segment_math`] for the arithmetic). A log moves to a new segment only by
//! [`Bifrost::seal_and_extend`]: the tail loglet is sealed first, so its last LSN is
//! final, and the new segment starts right after it. LSNs therefore never repeat or go
//! backwards across segments, and an append that races a seal either lands in the old
//! segment (before the seal) or fails there with [`LogletError::Sealed`] having written
//! nothing, and is retried on the new tail.
//!
//! # Metadata
//!
//! [`Bifrost`] reads [`Logs`] from the node's [`MetadataView`]. The hot paths (`append`,
//! `read`, `find_tail`) use the view's copy and read the store when they meet an unknown
//! log or a sealed tail (the sign that the chain grew); operations that change or report
//! the chain (`seal_and_extend`, `trim`, `trim_point`, `describe`, `list`) read the store
//! first. A stale copy can only be behind, never wrong: segments are never removed and
//! their base LSNs and loglets never change. Only a segment's nodeset changes (repair
//! replaces a dead log-server); the view receives the change as the metadata store
//! applies it, and an old nodeset still names a majority of the group's live members.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use restate_metadata::objects::{Logs, Segment};
use restate_metadata::{typed, MetadataStoreError, MetadataView, Precondition};
use restate_types::{Backoff, LogId, LogProviderKind, LogletId, Lsn, PlainNodeId, Version};

use crate::loglet::{LogRecord, Loglet, LogletError, TrimGap};
use crate::segment_math::{check_chain, is_empty_segment, segment_end, segment_for, to_loglet, to_virtual, trim_plan};

/// Why a virtual-log operation failed. Messages name the log, the segment and the numbers
/// involved, and what the caller can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BifrostError {
    #[error("log {0} does not exist; `restatectl logs list` shows the logs")]
    UnknownLog(LogId),
    /// The request itself is wrong (trim beyond the tail, empty append, ...); nothing changed.
    #[error("{0}")]
    InvalidInput(String),
    /// A segment's loglet cannot be reached from this node (not implemented here, held by
    /// another node, or a seal that never got its successor segment).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Loglet(#[from] LogletError),
    #[error("the log metadata (Logs) could not be read or written: {0}")]
    Metadata(#[from] MetadataStoreError),
}

/// How Bifrost gets the loglet of a segment; local today, replicated later.
///
/// Must hand out one shared handle per loglet (as [`crate::LocalLogletProvider`] does):
/// two independent handles of one loglet could give out the same LSN twice.
#[async_trait]
pub trait LogletProvider: Send + Sync {
    /// The loglet storing `segment`, or [`BifrostError::Unavailable`] saying why this
    /// node cannot reach it.
    async fn loglet(&self, segment: &Segment) -> Result<Arc<dyn Loglet>, BifrostError>;

    /// A local segment held by another node, read through that node (read-only).
    async fn remote_local(&self, segment: &Segment) -> Result<Arc<dyn Loglet>, BifrostError> {
        Err(BifrostError::Unavailable(format!(
            "the segment starting at LSN {} (loglet {}) is a local loglet on {}",
            segment.base_lsn,
            segment.loglet_id,
            describe_nodeset(&segment.nodeset)
        )))
    }
}

/// The answer to one [`Bifrost::read`]; every LSN in it is virtual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReadBatch {
    /// Set when the requested start lay at or below the log's trim point; `records` then
    /// begin right after `trim_gap.to`. A gap is never reported after records of the same
    /// batch: the batch ends before it and the next read reports it.
    pub trim_gap: Option<TrimGap>,
    /// Contiguous records in LSN order, at most `max_records`; empty at the tail.
    pub records: Vec<LogRecord>,
    /// Where the next read should start to continue without gaps or repeats.
    pub next_lsn: Lsn,
}

/// Where a log's tail stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTail {
    /// The virtual LSN the next appended record will get.
    pub next_lsn: Lsn,
    /// The tail segment's loglet is sealed: a [`Bifrost::seal_and_extend`] is under way
    /// (or was interrupted before it recorded the next segment). `next_lsn` is still
    /// right: the next segment starts there.
    pub sealed: bool,
    pub segment_base_lsn: Lsn,
    pub segment_kind: LogProviderKind,
    pub loglet_id: LogletId,
}

/// One segment of a [`LogDescription`]. Numbers that need the segment's loglet are
/// `None` when it cannot be reached; `unavailable` then says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDescription {
    pub base_lsn: Lsn,
    pub kind: LogProviderKind,
    pub loglet_id: LogletId,
    pub replication: u32,
    pub nodeset: Vec<PlainNodeId>,
    /// Every segment but the last is sealed; the last one is while a seal is under way.
    pub sealed: bool,
    /// The virtual LSN after the segment's last record.
    pub tail: Option<Lsn>,
    /// The virtual LSN up to which the segment's records were trimmed.
    pub trim_point: Option<Lsn>,
    pub unavailable: Option<String>,
    /// The node ordering appends to this segment (replicated: the loglet leader; local:
    /// its node).
    pub sequencer: Option<String>,
}

/// What [`Bifrost::describe`] reports about one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDescription {
    pub log_id: LogId,
    /// The version of the Logs metadata this description was made from.
    pub metadata_version: Version,
    /// In chain order; the last one is the tail segment.
    pub segments: Vec<SegmentDescription>,
    /// The log's trim point, if every segment it depends on was reachable.
    pub trim_point: Option<Lsn>,
    /// The virtual LSN the next append gets, if the tail segment was reachable.
    pub tail: Option<Lsn>,
}

/// The virtual logs of the cluster, as one node reads and writes them.
pub struct Bifrost {
    metadata: MetadataView,
    provider: Arc<dyn LogletProvider>,
    /// When set, local segments placed on other nodes are refused instead of being
    /// opened (and thus created empty) in this node's storage.
    me: Option<PlainNodeId>,
    metrics: Option<crate::metrics::BifrostMetrics>,
}

/// The Logs a chain was read from, and its version (`Version(0)`: none stored yet).
type LogsAt = Arc<(Logs, Version)>;

/// How long an append keeps waiting for the successor of a sealed tail segment before
/// giving up. A seal_and_extend writes it right after sealing, so a long wait means the
/// extension was interrupted.
const SEALED_TAIL_WAIT: Duration = Duration::from_secs(10);
/// Bound on seal_and_extend's re-read-and-retry after a concurrent change of Logs.
const EXTEND_ATTEMPTS: usize = 32;

impl Bifrost {
    pub fn new(metadata: MetadataView, provider: Arc<dyn LogletProvider>) -> Bifrost {
        Bifrost { metadata, provider, me: None, metrics: None }
    }

    /// Records append and trim metrics.
    pub fn with_metrics(mut self, metrics: crate::metrics::BifrostMetrics) -> Bifrost {
        self.metrics = Some(metrics);
        self
    }

    /// Declares which node this is. Local segments record their node in the nodeset;
    /// with this set, a local segment of another node is [`BifrostError::Unavailable`]
    /// rather than silently opened as an empty loglet in this node's storage. Without it,
    /// every local segment is taken to be this node's (single-node clusters, tests).
    pub fn with_node_id(mut self, me: PlainNodeId) -> Bifrost {
        self.me = Some(me);
        self
    }

    /// Appends `records` (at least one) atomically to the log's tail segment and returns
    /// the virtual LSN of the last one. If the tail was sealed meanwhile (a concurrent
    /// seal_and_extend), retries on the new tail once the metadata shows it, waiting up to
    /// 10 s for it before answering [`BifrostError::Unavailable`]. Each record lands
    /// exactly once: a sealed loglet rejects the whole batch without writing any of it.
    pub async fn append(&self, log: LogId, records: Vec<Bytes>) -> Result<Lsn, BifrostError> {
        let started = std::time::Instant::now();
        let (count, bytes) = (records.len(), records.iter().map(Bytes::len).sum::<usize>());
        let result = self.append_inner(log, records).await;
        if let Some(metrics) = &self.metrics {
            match &result {
                Ok(_) => metrics.appended(log.0, count, bytes, started.elapsed().as_secs_f64()),
                Err(_) => metrics.append_failed(),
            }
        }
        result
    }

    async fn append_inner(&self, log: LogId, records: Vec<Bytes>) -> Result<Lsn, BifrostError> {
        if records.is_empty() {
            return Err(BifrostError::InvalidInput(format!(
                "cannot append to log {log}: the batch is empty; pass at least one record"
            )));
        }
        let mut segments = self.chain(log, false).await?.1;
        let mut waited = Duration::ZERO;
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(100));
        loop {
            let tail = segments.last().expect("checked chains are non-empty").clone();
            let loglet = self.loglet(log, &tail).await?;
            match loglet.append(records.clone()).await {
                Ok(lsn) => return virtual_lsn(log, &tail, lsn),
                Err(LogletError::Sealed) => {}
                Err(err) => return Err(err.into()),
            }
            // Sealed: wait until the metadata names a newer tail.
            loop {
                segments = self.chain(log, true).await?.1;
                if segments.last().is_some_and(|s| s.loglet_id != tail.loglet_id) {
                    break;
                }
                if waited >= SEALED_TAIL_WAIT {
                    return Err(BifrostError::Unavailable(format!(
                        "cannot append to log {log}: its tail segment (loglet {}, from LSN {}) is sealed and the metadata still names no segment after it ({} ms later); a seal_and_extend was probably interrupted — run it again to add the next segment",
                        tail.loglet_id,
                        tail.base_lsn,
                        waited.as_millis()
                    )));
                }
                let delay = backoff.next_delay();
                tokio::time::sleep(delay).await;
                waited += delay;
            }
        }
    }

    /// Reads up to `max_records` (at least 1) records with virtual LSN >= `from` (`Lsn(0)`
    /// means `Lsn(1)`), crossing from sealed segments into their successors seamlessly.
    /// Trimmed records are reported as one [`TrimGap`] (spanning segments if need be),
    /// never skipped silently. Stops at the tail; never waits.
    pub async fn read(&self, log: LogId, from: Lsn, max_records: usize) -> Result<LogReadBatch, BifrostError> {
        if max_records == 0 {
            return Err(BifrostError::InvalidInput(format!(
                "cannot read log {log}: max_records is 0; ask for at least one record"
            )));
        }
        let mut segments = self.chain(log, false).await?.1;
        let mut refreshed = false;
        let mut out = LogReadBatch { trim_gap: None, records: Vec::new(), next_lsn: from.max(Lsn::OLDEST) };

        // Records before the chain's first segment no longer exist anywhere.
        let first_base = segments[0].base_lsn;
        if out.next_lsn < first_base {
            out.trim_gap = Some(TrimGap { from: out.next_lsn, to: first_base.prev() });
            out.next_lsn = first_base;
        }

        let mut index = segment_for(&segments, out.next_lsn);
        while out.records.len() < max_records {
            let segment = segments[index].clone();
            let end = segment_end(&segments, index);
            if end.is_some_and(|end| out.next_lsn > end) {
                index += 1;
                continue;
            }
            let loglet = match self.loglet(log, &segment).await {
                Ok(loglet) => loglet,
                // Hand out what was read; the next read (starting here) reports the error.
                Err(_) if !out.records.is_empty() || out.trim_gap.is_some() => break,
                Err(err) => return Err(err),
            };
            let remaining = max_records - out.records.len();
            let want = match end {
                Some(end) => remaining.min(usize::try_from(end.0 - out.next_lsn.0 + 1).unwrap_or(usize::MAX)),
                None => remaining,
            };
            let loglet_from =
                to_loglet(segment.base_lsn, out.next_lsn).expect("segment_for picks a segment at or below");
            let batch = loglet.read(loglet_from, want).await?;
            if let Some(gap) = batch.trim_gap {
                if !out.records.is_empty() {
                    break;
                }
                let to = virtual_lsn(log, &segment, gap.to)?;
                if end.is_some_and(|end| to > end) {
                    return Err(inconsistent(format!(
                        "log {log}: loglet {} is trimmed up to LSN {to}, beyond its segment's last LSN {}",
                        segment.loglet_id,
                        end.expect("checked")
                    )));
                }
                let from = out.trim_gap.map_or(out.next_lsn, |earlier| earlier.from);
                out.trim_gap = Some(TrimGap { from, to });
            }
            for record in batch.records {
                out.records.push(LogRecord { lsn: virtual_lsn(log, &segment, record.lsn)?, payload: record.payload });
            }
            out.next_lsn = virtual_lsn(log, &segment, batch.next_lsn)?;

            match end {
                Some(end) if out.next_lsn > end => index += 1,
                Some(_) if out.records.len() < max_records => {
                    // A sealed segment's loglet must hold every LSN up to the next base.
                    return Err(inconsistent(format!(
                        "log {log}: the segment of loglet {} should hold records up to LSN {}, but its loglet ends before LSN {}",
                        segment.loglet_id,
                        end.expect("checked").0,
                        virtual_lsn(log, &segment, batch.tail.next_lsn)?
                    )));
                }
                Some(_) => break,
                None => {
                    // A sealed tail read to its end means the chain grew (or is about
                    // to): look once for the successor before calling this the tail.
                    let tail_next = virtual_lsn(log, &segment, batch.tail.next_lsn)?;
                    if !batch.tail.sealed || out.next_lsn < tail_next || refreshed {
                        break;
                    }
                    refreshed = true;
                    segments = self.chain(log, true).await?.1;
                    if index + 1 >= segments.len() {
                        break;
                    }
                    index += 1;
                }
            }
        }
        Ok(out)
    }

    /// The log's tail: the virtual LSN the next append gets.
    pub async fn find_tail(&self, log: LogId) -> Result<LogTail, BifrostError> {
        let mut segments = self.chain(log, false).await?.1;
        let mut refreshed = false;
        loop {
            let tail = segments.last().expect("checked chains are non-empty");
            let state = self.loglet(log, tail).await?.find_tail().await?;
            if state.sealed && !refreshed {
                // The cache may be behind a seal_and_extend: look for the successor once.
                refreshed = true;
                let fresh = self.chain(log, true).await?.1;
                if fresh.len() > segments.len() {
                    segments = fresh;
                    continue;
                }
            }
            return Ok(LogTail {
                next_lsn: virtual_lsn(log, tail, state.next_lsn)?,
                sealed: state.sealed,
                segment_base_lsn: tail.base_lsn,
                segment_kind: tail.kind,
                loglet_id: tail.loglet_id,
            });
        }
    }

    /// Trims the log: durably deletes every record with virtual LSN <= `trim_point`, in
    /// every segment it touches (oldest first, so a trim cut short leaves a clean prefix).
    /// Returns the trim point now in effect. One at or below the current trim point
    /// changes nothing and returns the current one; one beyond the last written record is
    /// [`BifrostError::InvalidInput`] and changes nothing.
    pub async fn trim(&self, log: LogId, trim_point: Lsn) -> Result<Lsn, BifrostError> {
        let reached = self.trim_inner(log, trim_point).await?;
        if let Some(metrics) = &self.metrics {
            metrics.trimmed(log.0, reached.0);
        }
        Ok(reached)
    }

    async fn trim_inner(&self, log: LogId, trim_point: Lsn) -> Result<Lsn, BifrostError> {
        let segments = self.chain(log, true).await?.1;
        let tail = segments.last().expect("checked chains are non-empty");
        let tail_state = self.loglet(log, tail).await?.find_tail().await?;
        let last = virtual_lsn(log, tail, tail_state.next_lsn)?.prev();
        if trim_point > last {
            let holds = if last == Lsn::INVALID {
                "it holds no records yet".to_owned()
            } else {
                format!("its last record is LSN {last}")
            };
            return Err(BifrostError::InvalidInput(format!("cannot trim log {log} to LSN {trim_point}: {holds}")));
        }
        let current = self.trim_point_of(log, &segments).await?;
        if trim_point <= current {
            return Ok(current);
        }
        for (index, loglet_trim_point) in trim_plan(&segments, current, trim_point) {
            self.loglet(log, &segments[index]).await?.trim(loglet_trim_point).await?;
        }
        tracing::debug!(%log, %trim_point, "trimmed virtual log");
        Ok(trim_point)
    }

    /// The virtual LSN up to which (inclusive) the log was trimmed; `Lsn(0)` if never.
    pub async fn trim_point(&self, log: LogId) -> Result<Lsn, BifrostError> {
        let segments = self.chain(log, true).await?.1;
        self.trim_point_of(log, &segments).await
    }

    /// Seals the tail segment and appends a new segment of `kind` with `replication` and
    /// `nodeset`, starting right after the sealed tail's last record; its loglet id is
    /// taken from `Logs.next_loglet_id`. Logs is written with a version precondition and
    /// the whole step redone on a concurrent change. Returns the new tail segment.
    ///
    /// Idempotent-ish: if the tail already has this kind, replication and nodeset and
    /// either holds no record yet or was added by a concurrent call since this one
    /// started, it is returned unchanged — repeating a reconfiguration adds no segment.
    pub async fn seal_and_extend(
        &self,
        log: LogId,
        kind: LogProviderKind,
        replication: u32,
        nodeset: Vec<PlainNodeId>,
    ) -> Result<Segment, BifrostError> {
        check_placement(log, kind, replication, &nodeset)?;
        let mut first_tail: Option<LogletId> = None;
        for _ in 0..EXTEND_ATTEMPTS {
            let (cached, segments) = self.chain(log, true).await?;
            let tail = segments.last().expect("checked chains are non-empty");
            let first_tail = *first_tail.get_or_insert(tail.loglet_id);
            let same_placement = tail.kind == kind && tail.replication == replication && tail.nodeset == nodeset;
            if same_placement && tail.loglet_id != first_tail {
                return Ok(tail.clone());
            }
            let loglet = self.loglet(log, tail).await?;
            if same_placement {
                let state = loglet.find_tail().await?;
                if !state.sealed && state.next_lsn == Lsn::OLDEST {
                    return Ok(tail.clone());
                }
            }
            // Sealing first makes the tail final; sealing again (after a conflict) is a no-op.
            let sealed = loglet.seal().await?;
            let base_lsn = virtual_lsn(log, tail, sealed.next_lsn)?;

            let mut logs = cached.0.clone();
            let loglet_id = logs.next_loglet_id;
            logs.next_loglet_id = LogletId(loglet_id.0.checked_add(1).ok_or_else(|| {
                inconsistent(format!("no loglet id is left after {loglet_id} (Logs.next_loglet_id)"))
            })?);
            let segment = Segment { base_lsn, kind, loglet_id, replication, nodeset: nodeset.clone(), joined: vec![] };
            logs.logs.get_mut(&log).expect("chain() found the log").segments.push(segment.clone());

            // Through the view's store: the view holds the new chain as soon as it is written.
            match typed::put(self.metadata.store().as_ref(), &logs, Precondition::MatchesVersion(cached.1)).await {
                Ok(_) => {
                    tracing::info!(%log, sealed_loglet = %tail.loglet_id, %base_lsn, %kind, new_loglet = %loglet_id, "sealed and extended log");
                    return Ok(segment);
                }
                Err(MetadataStoreError::PreconditionFailed { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(BifrostError::Unavailable(format!(
            "could not extend log {log}: the Logs metadata kept changing under {EXTEND_ATTEMPTS} attempts; try again"
        )))
    }

    /// Moves every log onto segments of `kind`, `replication` and `nodeset` (a changed
    /// cluster configuration): a log whose tail differs is sealed and continues on a new
    /// segment ([`Self::seal_and_extend`]). Returns how many logs were extended; running it
    /// again extends none.
    pub async fn reconfigure(
        &self,
        kind: LogProviderKind,
        replication: u32,
        nodeset: Vec<PlainNodeId>,
    ) -> Result<usize, BifrostError> {
        let mut extended = 0;
        for log in self.list().await? {
            let (_, segments) = self.chain(log, true).await?;
            let tail = segments.last().expect("checked chains are non-empty");
            if tail.kind == kind && tail.replication == replication && tail.nodeset == nodeset {
                continue;
            }
            self.seal_and_extend(log, kind, replication, nodeset.clone()).await?;
            extended += 1;
        }
        tracing::info!(logs = extended, provider = %kind, replication, nodeset = ?nodeset, "logs continue on new segments");
        Ok(extended)
    }

    /// The loglet id of `log`'s tail segment when that loglet is sealed (nothing can be
    /// appended until a segment follows it), else `None`. The chain is the metadata view's
    /// (no metadata read: the controller asks this of every log every few seconds).
    pub async fn sealed_tail(&self, log: LogId) -> Result<Option<LogletId>, BifrostError> {
        let (_, segments) = self.chain(log, false).await?;
        let tail = segments.last().expect("checked chains are non-empty");
        let state = self.loglet(log, tail).await?.find_tail().await?;
        Ok(state.sealed.then_some(tail.loglet_id))
    }

    /// Adds a segment after `log`'s sealed tail `sealed`, placed as that tail was; nothing
    /// when the tail is another loglet by now (someone extended it meanwhile).
    pub async fn extend_sealed_tail(&self, log: LogId, sealed: LogletId) -> Result<Option<Segment>, BifrostError> {
        let (_, segments) = self.chain(log, true).await?;
        let tail = segments.last().expect("checked chains are non-empty").clone();
        if tail.loglet_id != sealed {
            return Ok(None);
        }
        self.seal_and_extend(log, tail.kind, tail.replication, tail.nodeset).await.map(Some)
    }

    /// The log's chain as the store holds it now, with what each segment's loglet says.
    /// Unreachable segments are described from the metadata alone.
    pub async fn describe(&self, log: LogId) -> Result<LogDescription, BifrostError> {
        let (cached, segments) = self.chain(log, true).await?;
        let mut described = Vec::with_capacity(segments.len());
        for (index, segment) in segments.iter().enumerate() {
            let is_tail = index + 1 == segments.len();
            let mut description = SegmentDescription {
                base_lsn: segment.base_lsn,
                kind: segment.kind,
                loglet_id: segment.loglet_id,
                replication: segment.replication,
                nodeset: segment.nodeset.clone(),
                sealed: !is_tail,
                tail: None,
                trim_point: None,
                unavailable: None,
                sequencer: match segment.kind {
                    LogProviderKind::Local => segment.nodeset.first().map(|n| n.to_string()),
                    LogProviderKind::Replicated => None,
                },
            };
            let reached = async {
                let loglet = self.loglet(log, segment).await?;
                let state = loglet.find_tail().await?;
                let trim_point = loglet.trim_point().await?;
                if let Some(sequencer) = loglet.sequencer().await {
                    description.sequencer = Some(sequencer);
                }
                Ok::<_, BifrostError>((
                    state.sealed,
                    virtual_lsn(log, segment, state.next_lsn)?,
                    virtual_lsn(log, segment, trim_point)?,
                ))
            }
            .await;
            match reached {
                Ok((sealed, tail, trim_point)) => {
                    description.sealed |= sealed;
                    description.tail = Some(tail);
                    description.trim_point = Some(trim_point);
                }
                Err(err) => description.unavailable = Some(err.to_string()),
            }
            described.push(description);
        }
        Ok(LogDescription {
            log_id: log,
            metadata_version: cached.1,
            tail: described.last().and_then(|s| s.tail),
            trim_point: self.trim_point_of(log, &segments).await.ok(),
            segments: described,
        })
    }

    /// Every log in the metadata, in id order.
    pub async fn list(&self) -> Result<Vec<LogId>, BifrostError> {
        Ok(self.logs(true).await?.0.logs.keys().copied().collect())
    }

    /// The virtual trim point, from the loglets' trim points: walks the segments oldest
    /// first and stops at the first one not trimmed wholly, so only segments the answer
    /// depends on must be reachable.
    async fn trim_point_of(&self, log: LogId, segments: &[Segment]) -> Result<Lsn, BifrostError> {
        // Records before the chain's first segment are gone.
        let mut trim_point = segments[0].base_lsn.prev();
        for (index, segment) in segments.iter().enumerate() {
            if is_empty_segment(segments, index) {
                continue;
            }
            let loglet_trim_point = self.loglet(log, segment).await?.trim_point().await?;
            if loglet_trim_point == Lsn::INVALID {
                break;
            }
            trim_point = virtual_lsn(log, segment, loglet_trim_point)?;
            if segment_end(segments, index).is_none_or(|end| trim_point < end) {
                break;
            }
        }
        Ok(trim_point)
    }

    /// The loglet of `segment`, with the log named in every error.
    async fn loglet(&self, log: LogId, segment: &Segment) -> Result<Arc<dyn Loglet>, BifrostError> {
        if let Some(me) = self.me {
            if segment.kind == LogProviderKind::Local && !segment.nodeset.is_empty() && !segment.nodeset.contains(&me) {
                if let Ok(remote) = self.provider.remote_local(segment).await {
                    return Ok(remote);
                }
                return Err(BifrostError::Unavailable(format!(
                    "log {log}: the segment starting at LSN {} (loglet {}) is a local loglet on {}; this node is {me} and cannot reach it",
                    segment.base_lsn,
                    segment.loglet_id,
                    describe_nodeset(&segment.nodeset)
                )));
            }
        }
        self.provider.loglet(segment).await.map_err(|err| match err {
            BifrostError::Unavailable(reason) => BifrostError::Unavailable(format!("log {log}: {reason}")),
            other => other,
        })
    }

    /// The checked chain of `log`, from the store if `fresh`, else from the view (read
    /// from the store once if the view does not know the log).
    async fn chain(&self, log: LogId, fresh: bool) -> Result<(LogsAt, Vec<Segment>), BifrostError> {
        let mut logs = self.logs(fresh).await?;
        if !fresh && !logs.0.logs.contains_key(&log) {
            logs = self.logs(true).await?;
        }
        let chain = logs.0.logs.get(&log).ok_or(BifrostError::UnknownLog(log))?;
        check_chain(&chain.segments)
            .map_err(|reason| inconsistent(format!("the chain of log {log} is malformed: {reason}")))?;
        let segments = chain.segments.clone();
        Ok((logs, segments))
    }

    async fn logs(&self, fresh: bool) -> Result<LogsAt, BifrostError> {
        let read = self.metadata.read::<Logs>(fresh).await?;
        Ok(read.unwrap_or_else(|| Arc::new((Logs::default(), Version(0)))))
    }
}

/// Rejects placements no segment can have, before anything is sealed.
fn check_placement(
    log: LogId,
    kind: LogProviderKind,
    replication: u32,
    nodeset: &[PlainNodeId],
) -> Result<(), BifrostError> {
    let invalid = |reason: String| Err(BifrostError::InvalidInput(format!("cannot extend log {log}: {reason}")));
    if replication == 0 {
        return invalid("replication 0 is invalid: every record needs at least one copy".to_owned());
    }
    if kind == LogProviderKind::Local {
        if replication != 1 {
            return invalid(format!(
                "a local loglet keeps exactly one copy, so replication must be 1 (got {replication}); use a replicated segment for more"
            ));
        }
        if nodeset.len() != 1 {
            return invalid(format!(
                "a local segment lives on exactly one node, so its nodeset must name one node (got {})",
                describe_nodeset(nodeset)
            ));
        }
    }
    Ok(())
}

/// `segment`'s `loglet_lsn` as a virtual LSN; overflow means the metadata is corrupt.
fn virtual_lsn(log: LogId, segment: &Segment, loglet_lsn: Lsn) -> Result<Lsn, BifrostError> {
    to_virtual(segment.base_lsn, loglet_lsn).ok_or_else(|| {
        inconsistent(format!(
            "log {log}: LSN {loglet_lsn} of loglet {} does not fit a virtual LSN from base {}",
            segment.loglet_id, segment.base_lsn
        ))
    })
}

fn inconsistent(reason: String) -> BifrostError {
    BifrostError::Metadata(MetadataStoreError::Storage(format!("the log metadata is inconsistent: {reason}")))
}

/// `[N1, N2]`, or a note that no node was assigned yet.
pub(crate) fn describe_nodeset(nodeset: &[PlainNodeId]) -> String {
    if nodeset.is_empty() {
        return "[] (no nodes assigned yet)".to_owned();
    }
    let nodes: Vec<String> = nodeset.iter().map(ToString::to_string).collect();
    format!("[{}]", nodes.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_are_checked_before_anything_is_sealed() {
        let log = LogId(3);
        assert!(check_placement(log, LogProviderKind::Local, 1, &[PlainNodeId(1)]).is_ok());
        assert!(check_placement(log, LogProviderKind::Replicated, 2, &[]).is_ok());
        let err = check_placement(log, LogProviderKind::Replicated, 0, &[]).unwrap_err().to_string();
        assert!(err.contains("log 3") && err.contains("replication 0"), "{err}");
        let err = check_placement(log, LogProviderKind::Local, 2, &[PlainNodeId(1)]).unwrap_err().to_string();
        assert!(err.contains("got 2"), "{err}");
        let err = check_placement(log, LogProviderKind::Local, 1, &[]).unwrap_err().to_string();
        assert!(err.contains("exactly one node"), "{err}");
    }

    #[test]
    fn unknown_logs_point_at_the_listing() {
        assert_eq!(
            BifrostError::UnknownLog(LogId(7)).to_string(),
            "log 7 does not exist; `restatectl logs list` shows the logs"
        );
        assert_eq!(describe_nodeset(&[PlainNodeId(1), PlainNodeId(3)]), "[N1, N3]");
    }
}
