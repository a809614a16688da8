//! The replicated loglets this node is a member of: one raft group each, on the node's
//! raft engine, with the loglet state in memory (rebuilt from the group's snapshot and
//! log at start; trimming keeps it small).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use restate_raft::grpc::PeerAddresses;
use restate_raft::{GroupInit, GroupStatus, MembershipChange, RaftEngine, RaftError, StateMachine};
use restate_types::LogletId;
use tokio::sync::watch;

use super::state::{Command, LogletState, Outcome};

/// Raft group ids of loglets start here; group 0 is the metadata store.
pub const LOGLET_GROUP_BASE: u64 = 1 << 32;

pub fn group_of(loglet: LogletId) -> u64 {
    LOGLET_GROUP_BASE + loglet.0
}

/// One loglet group hosted here.
pub struct HostedLoglet {
    pub state: Arc<RwLock<LogletState>>,
    pub status: watch::Receiver<GroupStatus>,
}

struct LogletMachine {
    state: Arc<RwLock<LogletState>>,
}

impl StateMachine for LogletMachine {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Bytes {
        let outcome = match Command::decode(command) {
            Ok(command) => self.state.write().expect("not poisoned").apply(command),
            Err(e) => Outcome::Refused(e),
        };
        outcome.encode()
    }
    fn apply_membership(&mut self, _: u64, _: &MembershipChange, _: &[u64], _: &[u64]) {}
    fn snapshot(&self) -> Vec<u8> {
        self.state.read().expect("not poisoned").encode()
    }
    fn restore(&mut self, _index: u64, snapshot: &[u8]) {
        *self.state.write().expect("not poisoned") = LogletState::decode(snapshot).unwrap_or_else(|e| panic!("{e}"));
    }

    /// A snapshot carries every untrimmed record, so it is taken rarely; trimming keeps
    /// both the records and the raft log short.
    fn snapshot_interval_entries(&self) -> Option<u64> {
        Some(LOGLET_SNAPSHOT_INTERVAL)
    }
}

const LOGLET_SNAPSHOT_INTERVAL: u64 = 20_000;

pub struct ReplicatedLogletHost {
    engine: RaftEngine,
    peers: PeerAddresses,
    loglets: Mutex<HashMap<LogletId, Arc<HostedLoglet>>>,
    create: tokio::sync::Mutex<()>,
}

impl ReplicatedLogletHost {
    pub fn new(engine: RaftEngine, peers: PeerAddresses) -> ReplicatedLogletHost {
        ReplicatedLogletHost { engine, peers, loglets: Mutex::new(HashMap::new()), create: tokio::sync::Mutex::new(()) }
    }

    pub fn peers(&self) -> &PeerAddresses {
        &self.peers
    }

    pub fn get(&self, loglet: LogletId) -> Option<Arc<HostedLoglet>> {
        self.loglets.lock().expect("not poisoned").get(&loglet).cloned()
    }

    /// Runs the loglet's group here. Every initial member bootstraps it identically (same
    /// voters, empty state), so whichever member starts first, they agree; a member that
    /// ran it before recovers it from its raft storage. Empty `voters` means this node
    /// joins an existing group (added by repair): it starts empty and waits for the leader.
    pub async fn ensure(&self, loglet: LogletId, voters: Vec<u64>) -> Result<Arc<HostedLoglet>, RaftError> {
        let _one_at_a_time = self.create.lock().await;
        if let Some(hosted) = self.get(loglet) {
            return Ok(hosted);
        }
        let state = Arc::new(RwLock::new(LogletState::new()));
        let machine = || Box::new(LogletMachine { state: state.clone() });
        let group = group_of(loglet);
        let single = voters.len() == 1;
        let status = if voters.is_empty() {
            // A member added later (repair): it starts empty and the leader sends it a
            // snapshot once it is added as a learner.
            self.engine.create_group(group, machine(), GroupInit::Existing).await?
        } else {
            match self
                .engine
                .create_group(
                    group,
                    machine(),
                    GroupInit::Bootstrap { voters, initial_state: LogletState::new().encode() },
                )
                .await
            {
                Ok(status) => status,
                Err(RaftError::GroupExists(_)) => {
                    self.engine.create_group(group, machine(), GroupInit::Existing).await?
                }
                Err(other) => return Err(other),
            }
        };
        if single {
            self.engine.campaign(group);
        }
        let hosted = Arc::new(HostedLoglet { state, status });
        self.loglets.lock().expect("not poisoned").insert(loglet, hosted.clone());
        tracing::info!(loglet = loglet.0, "hosting replicated loglet");
        Ok(hosted)
    }

    pub async fn propose(&self, loglet: LogletId, command: Command) -> Result<Outcome, RaftError> {
        let answer = self.engine.propose(group_of(loglet), command.encode()).await?;
        Outcome::decode(&answer).map_err(RaftError::Raft)
    }

    /// Linearizable barrier before reading the tail.
    pub async fn read_barrier(&self, loglet: LogletId) -> Result<(), RaftError> {
        self.engine.read_index(group_of(loglet)).await.map(|_| ())
    }

    /// Proposes one membership change of the loglet's group (this node must lead it).
    pub async fn change_membership(&self, loglet: LogletId, change: MembershipChange) -> Result<(), RaftError> {
        self.engine.change_membership(group_of(loglet), change).await
    }

    pub fn leader_address(&self, loglet: LogletId, leader: Option<u64>) -> Option<String> {
        let leader = leader.or_else(|| self.get(loglet).map(|h| h.status.borrow().leader).filter(|l| *l != 0))?;
        self.peers.get(leader)
    }
}
