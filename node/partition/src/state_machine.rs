//! [`PartitionStateMachine`]: applies a partition's log, record by record, to its store.

use restate_types::{Lsn, PartitionId};

use super::apply::{Applier, Outcome};
use super::command::{Command, Envelope};
use super::effect::{Effect, PendingWork};
use super::envelope_codec::EnvelopeError;
use super::keys;
use super::record::{InvocationStatus, LeaderEpoch};
use super::start::{start_request, StartRequest};
use super::store::{KvRead, PartitionReads, PartitionStore, StoreError, WriteSet};
use super::transaction::Transaction;
use super::InvocationId;
use crate::codec::to_json;

/// Why a record could not be applied. The state is unchanged (nothing of the record was
/// committed), so the caller may retry the same LSN once the cause is fixed; it must not
/// skip it.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("partition {partition}: LSN {lsn} is not a readable envelope: {source}")]
    Envelope {
        partition: PartitionId,
        lsn: Lsn,
        #[source]
        source: EnvelopeError,
    },
    #[error("partition {partition}: cannot apply LSN {lsn} ({command}): {source}")]
    Store {
        partition: PartitionId,
        lsn: Lsn,
        command: &'static str,
        #[source]
        source: StoreError,
    },
}

/// What [`PartitionStateMachine::apply_batch`] did with the front of a batch.
#[derive(Debug, Default)]
pub struct BatchApplied {
    /// How many records it consumed: applied, ignored or applied before.
    pub consumed: usize,
    /// The effects of the consumed records, in log order.
    pub effects: Vec<Effect>,
    /// Why the record after the consumed ones (or, for a failed commit, the first one)
    /// could not be applied; the caller must not skip it on its own.
    pub error: Option<ApplyError>,
}

/// One record's changes, not yet committed.
struct Staged {
    changes: WriteSet,
    effects: Vec<Effect>,
    new_leader: Option<LeaderEpoch>,
}

/// The deterministic state machine of one partition. Every replica (leader and
/// followers) applies the same log to it and ends in the same state; only the leader
/// acts on the returned [`Effect`]s.
///
/// It holds the store and caches two values from it (applied LSN and leader epoch),
/// updated only after a record's changes are committed.
pub struct PartitionStateMachine<S: PartitionStore> {
    store: S,
    applied_lsn: Lsn,
    leader: Option<LeaderEpoch>,
}

impl<S: PartitionStore> PartitionStateMachine<S> {
    /// Resumes from whatever `store` holds (empty: applied LSN 0, no leader).
    pub fn open(store: S) -> Result<PartitionStateMachine<S>, StoreError> {
        let applied_lsn = store.applied_lsn()?;
        let leader = store.leader()?;
        Ok(PartitionStateMachine { store, applied_lsn, leader })
    }

    pub fn partition_id(&self) -> PartitionId {
        self.store.partition_id()
    }

    /// LSN of the last applied (or ignored) record; the next record to read is the one
    /// after it.
    pub fn applied_lsn(&self) -> Lsn {
        self.applied_lsn
    }

    /// The leader announced last.
    pub fn leader(&self) -> Option<&LeaderEpoch> {
        self.leader.as_ref()
    }

    /// The epoch announced last (0 before any announcement). A new leader must announce
    /// a higher one.
    pub fn leader_epoch(&self) -> u64 {
        self.leader.as_ref().map_or(0, |leader| leader.epoch)
    }

    /// The store, for reads (clone it to read from another task).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Decodes a log record and applies it (see [`PartitionStateMachine::apply`]). A
    /// record that does not decode is an error, not skipped: skipping could make this
    /// replica diverge from one that can read it (e.g. a newer format).
    pub fn apply_record(&mut self, lsn: Lsn, record: &[u8]) -> Result<Vec<Effect>, ApplyError> {
        let applied = self.apply_batch([(lsn, record)]);
        match applied.error {
            Some(e) => Err(e),
            None => Ok(applied.effects),
        }
    }

    /// Applies the record at `lsn`.
    ///
    /// - `lsn <= applied_lsn()`: already applied, nothing happens (no effects).
    /// - `AnnounceLeader` with an epoch above the current one makes it current; others are
    ///   ignored.
    /// - A leader-only command ([`Command::is_leader_proposal`]) whose envelope epoch is
    ///   below the current epoch is ignored (a deposed leader's proposal).
    /// - Anything else changes state as the module documentation describes.
    ///
    /// All changes and the new applied LSN are committed in one write; ignored records
    /// advance the applied LSN too. LSNs must ascend but may skip numbers (the caller
    /// must not feed records past a trim gap it has not restored a snapshot for).
    pub fn apply(&mut self, lsn: Lsn, envelope: &Envelope) -> Result<Vec<Effect>, ApplyError> {
        if lsn <= self.applied_lsn {
            return Ok(Vec::new());
        }
        let staged = self.stage(&self.store, lsn, envelope)?;
        self.commit(staged.changes, lsn, staged.new_leader).map_err(|source| ApplyError::Store {
            partition: self.partition_id(),
            lsn,
            command: envelope.command.name(),
            source,
        })?;
        Ok(staged.effects)
    }

    /// Applies records from the front of `records` (LSN and encoded envelope, ascending)
    /// as [`PartitionStateMachine::apply_record`] would one by one, but commits them in
    /// one write: each record reads the changes of the records before it.
    ///
    /// A leader announcement is a run of its own: the run stops before it and after it,
    /// so that the caller can take or give up leadership between the effects of the
    /// records before it (the previous leader's to act on) and of those after it (the
    /// new leader's; a new leader picks up what came before from the state). A run also
    /// stops before a record that cannot be applied, which [`BatchApplied::error`] then
    /// names (the records before it are committed; nothing of it is). A failed commit
    /// commits nothing, consumes nothing and names the first record to apply (the one at
    /// the batch's front, unless that was applied before). The caller continues with the
    /// records after [`BatchApplied::consumed`].
    pub fn apply_batch<'r>(&mut self, records: impl IntoIterator<Item = (Lsn, &'r [u8])>) -> BatchApplied {
        let mut pending = Transaction::new(&self.store);
        let mut applied = BatchApplied::default();
        let mut first = None;
        let mut last = None;
        let mut new_leader = None;
        for (lsn, record) in records {
            if lsn <= last.map_or(self.applied_lsn, |(lsn, _)| lsn) {
                applied.consumed += 1;
                continue;
            }
            let envelope = match Envelope::decode(record) {
                Ok(envelope) => envelope,
                Err(source) => {
                    applied.error = Some(ApplyError::Envelope { partition: self.partition_id(), lsn, source });
                    break;
                }
            };
            let announcement = matches!(envelope.command, Command::AnnounceLeader { .. });
            if announcement && first.is_some() {
                // An announcement starts a run of its own (see above).
                break;
            }
            let staged = match self.stage(&pending, lsn, &envelope) {
                Ok(staged) => staged,
                Err(e) => {
                    applied.error = Some(e);
                    break;
                }
            };
            let command = envelope.command.name();
            pending.absorb(staged.changes);
            applied.effects.extend(staged.effects);
            applied.consumed += 1;
            first.get_or_insert((lsn, command));
            last = Some((lsn, command));
            if announcement {
                new_leader = staged.new_leader;
                break;
            }
        }
        let (Some((first_lsn, first_command)), Some((lsn, _))) = (first, last) else { return applied };
        let changes = pending.into_writes();
        if let Err(source) = self.commit(changes, lsn, new_leader) {
            let partition = self.partition_id();
            let command = if first_lsn == lsn { first_command } else { "the first of a batch of records" };
            return BatchApplied {
                consumed: 0,
                effects: Vec::new(),
                error: Some(ApplyError::Store { partition, lsn: first_lsn, command, source }),
            };
        }
        applied
    }

    /// Commits `changes` with `lsn` as the applied LSN in one write, then caches the
    /// applied LSN and `new_leader` (when the write failed, nothing changed).
    fn commit(&mut self, mut changes: WriteSet, lsn: Lsn, new_leader: Option<LeaderEpoch>) -> Result<(), StoreError> {
        changes.put(keys::APPLIED_LSN.to_vec(), lsn.0.to_be_bytes().to_vec());
        self.store.commit(changes)?;
        self.applied_lsn = lsn;
        if let Some(leader) = new_leader {
            self.leader = Some(leader);
        }
        Ok(())
    }

    /// The changes and effects of applying `envelope` at `lsn` over `base` (the store,
    /// or the store with a batch's earlier changes), without the applied LSN; the
    /// machine's state is unchanged until they are committed.
    fn stage(&self, base: &impl KvRead, lsn: Lsn, envelope: &Envelope) -> Result<Staged, ApplyError> {
        let command = &envelope.command;
        let store_error =
            |source| ApplyError::Store { partition: self.partition_id(), lsn, command: command.name(), source };
        let mut applier = Applier::new(base);
        let mut new_leader = None;
        let outcome = match command {
            Command::AnnounceLeader { epoch, node } => {
                if self.leader.as_ref().is_none_or(|current| *epoch > current.epoch) {
                    let leader = LeaderEpoch { epoch: *epoch, node: node.clone() };
                    applier.tx.put(keys::LEADER.to_vec(), to_json(&leader));
                    new_leader = Some(leader);
                    Outcome::Applied
                } else {
                    Outcome::Ignored(format!("epoch {epoch} is not above the current epoch {}", self.leader_epoch()))
                }
            }
            command if command.is_leader_proposal() && envelope.epoch < self.leader_epoch() => {
                Outcome::Ignored(format!(
                    "fenced: proposed in epoch {}, the current leader's epoch is {}",
                    envelope.epoch,
                    self.leader_epoch()
                ))
            }
            command => applier.apply(command).map_err(store_error)?,
        };
        if let Outcome::Ignored(reason) = &outcome {
            tracing::debug!(partition = %self.partition_id(), %lsn, command = command.name(), reason, "log record ignored");
        }
        let Applier { tx, effects } = applier;
        Ok(Staged { changes: tx.into_writes(), effects, new_leader })
    }

    /// Passes over the record at `lsn` without applying it (an operator's explicit choice
    /// for a record that cannot be applied): only the applied LSN moves, in one write.
    pub fn skip(&mut self, lsn: Lsn) -> Result<(), StoreError> {
        if lsn <= self.applied_lsn {
            return Ok(());
        }
        self.commit(WriteSet::default(), lsn, None)
    }

    /// Everything in progress according to the stored state: what a new leader resumes
    /// (see [`PendingWork::effects`]).
    pub fn pending_work(&self) -> Result<PendingWork, StoreError> {
        let mut work = PendingWork::default();
        for id in self.store.running_invocations()? {
            match self.store.invocation(&id)?.map(|record| record.status) {
                Some(InvocationStatus::Invoked) => work.invoked.push(id),
                Some(InvocationStatus::Suspended) => work.suspended.push(id),
                _ => {}
            }
        }
        work.timers = self.store.timers()?;
        work.outbox = self.store.outbox()?;
        Ok(work)
    }

    /// The request that starts or resumes `id` (see [`start_request`]).
    pub fn start_request(&self, id: &InvocationId) -> Result<Option<StartRequest>, StoreError> {
        start_request(&self.store, id)
    }
}
