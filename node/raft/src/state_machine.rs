use bytes::Bytes;

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

/// The replicated state of one group, driven by the engine thread.
///
/// Contract: `apply` and `apply_membership` are called exactly once per committed entry,
/// in log order, starting after the index the machine was restored to. The machine is
/// in-memory: at startup the engine restores it from the group's last snapshot and
/// replays the committed entries after it.
pub trait StateMachine: Send + 'static {
    /// Applies a committed command; the returned bytes answer the proposer (if it waits
    /// on this node). Must be deterministic.
    fn apply(&mut self, index: u64, command: &[u8]) -> Bytes;

    /// Applies a committed membership change; `voters`/`learners` are the members after it.
    fn apply_membership(&mut self, index: u64, change: &MembershipChange, voters: &[u64], learners: &[u64]);

    /// The whole state as of the last applied entry.
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the state with a snapshot taken at `index`.
    fn restore(&mut self, index: u64, snapshot: &[u8]);

    /// Applied entries between snapshots, when this machine's snapshots are costlier
    /// (or cheaper) than the engine default assumes.
    fn snapshot_interval_entries(&self) -> Option<u64> {
        None
    }
}
