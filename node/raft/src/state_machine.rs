use bytes::Bytes;
use restate_storage::rocksdb::WriteBatch;

/// A change of a group's members, as proposed and as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Receives the log but does not vote (catching up).
    AddLearner {
        peer: u64,
        context: Bytes,
    },
    /// Votes. A learner is promoted by adding it as a voter.
    AddVoter {
        peer: u64,
        context: Bytes,
    },
    Remove {
        peer: u64,
    },
}

impl MembershipChange {
    pub fn peer(&self) -> u64 {
        match self {
            MembershipChange::AddLearner { peer, .. }
            | MembershipChange::AddVoter { peer, .. }
            | MembershipChange::Remove { peer } => *peer,
        }
    }
}

/// Where a machine whose state lives on disk may cut the raft log: everything up to
/// `index` is no longer needed, and `snapshot` is the machine's state as of `index` (what
/// a member that needs entries below the cut is sent instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    pub index: u64,
    pub snapshot: Vec<u8>,
}

/// The replicated state of one group, driven by the engine thread.
///
/// Contract: `apply` and `apply_membership` are called exactly once per committed entry,
/// in log order, starting after the index the machine was restored to.
///
/// Two kinds of machines:
/// - in memory (the default): at startup the engine restores the machine from the group's
///   last snapshot and replays the committed entries after it; the engine snapshots it
///   every `snapshot_interval_entries` and cuts the log behind the snapshot;
/// - on disk: the machine stages its state into `writes` (the same RocksDB batch as the
///   raft state of the entry, written before the engine acts on the outcome), reports the
///   index it has applied at open ([`StateMachine::durable_applied`]), and says itself
///   where the log may be cut ([`StateMachine::compaction`]); it may keep reading the raft
///   log above the cut (the log is its record store).
pub trait StateMachine: Send + 'static {
    /// Applies a committed command; the returned bytes answer the proposer (if it waits
    /// on this node). Must be deterministic.
    fn apply(&mut self, index: u64, command: &[u8], writes: &mut WriteBatch) -> Bytes;

    /// Applies a committed membership change; `voters`/`learners` are the members after it.
    fn apply_membership(&mut self, index: u64, change: &MembershipChange, voters: &[u64], learners: &[u64]);

    /// The whole state as of the last applied entry (in-memory machines).
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the state with a snapshot taken at `index`.
    fn restore(&mut self, index: u64, snapshot: &[u8], writes: &mut WriteBatch);

    /// Applied entries between snapshots, when this machine's snapshots are costlier
    /// (or cheaper) than the engine default assumes (in-memory machines).
    fn snapshot_interval_entries(&self) -> Option<u64> {
        None
    }

    /// For a machine on disk: the last index whose effects it holds durably (read when it
    /// was created); `None` for an in-memory machine, or one with nothing on disk yet.
    fn durable_applied(&self) -> Option<u64> {
        None
    }

    /// For a machine on disk: where the raft log may be cut now. The engine never
    /// snapshots such a machine on its own (`snapshot` is not called).
    fn compaction(&self) -> Option<Compaction> {
        None
    }

    /// Called once what the machine staged in this round's `apply` calls is written: a
    /// machine on disk publishes its new state to readers here, never earlier (readers
    /// would look for writes not made yet). Proposers are answered after it.
    fn on_written(&mut self) {}

    /// Whether this machine is on disk (see the trait's documentation).
    fn is_durable(&self) -> bool {
        false
    }
}
