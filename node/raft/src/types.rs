use std::time::Duration;

/// Tuning of every group of an engine.
#[derive(Debug, Clone)]
pub struct RaftOptions {
    pub tick_interval: Duration,
    /// Ticks without a leader before a follower campaigns (randomized up to 2x).
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// A snapshot is taken (and the log compacted) after this many applied entries.
    pub snapshot_interval_entries: u64,
    /// How long a proposal may wait for its entry to apply before the caller is told
    /// the outcome is unknown.
    pub proposal_timeout: Duration,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            tick_interval: Duration::from_millis(50),
            election_tick: 12,
            heartbeat_tick: 2,
            snapshot_interval_entries: 1000,
            proposal_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a request to a group did not take effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    /// Only the leader accepts it; `leader` is the current leader's raft id if known.
    #[error("not the leader{}", .leader.map(|l| format!(" (leader is raft peer {l})")).unwrap_or_default())]
    NotLeader { leader: Option<u64> },
    /// The proposal was dropped (leadership changed before it committed); it did not apply.
    #[error("the proposal was dropped before it committed (leadership changed); it did not take effect")]
    Dropped,
    /// No answer within the proposal timeout; it may or may not apply later.
    #[error("no commit within {0:?}; the outcome is unknown")]
    Timeout(Duration),
    #[error("raft group {0} does not exist on this node")]
    NoSuchGroup(u64),
    #[error("raft group {0} already exists on this node")]
    GroupExists(u64),
    #[error("invalid membership change: {0}")]
    InvalidMembership(String),
    #[error("the raft engine has stopped")]
    Stopped,
    #[error("raft: {0}")]
    Raft(String),
}

/// A group's state as seen from this node, published after every ready round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: u64,
    pub peer: u64,
    pub is_leader: bool,
    /// 0 when unknown.
    pub leader: u64,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    /// Entries held in the log (after the last snapshot), on disk.
    pub log_length: u64,
    /// Bytes of entry data this node holds in memory for the group (the newest entries).
    pub cached_bytes: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// On the leader: (peer, matched index) of every other member.
    pub progress: Vec<(u64, u64)>,
}
