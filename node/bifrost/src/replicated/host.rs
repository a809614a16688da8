//! The replicated loglets this node is a member of: one raft group each, on the node's
//! raft engine. A loglet's records stay on disk in its raft log ([`super::records`]);
//! memory holds its small state (tail, trim point, seal) only, whatever the log's length,
//! and a restart reads nothing but that state.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use restate_raft::grpc::PeerAddresses;
use restate_raft::{
    Compaction, GroupInit, GroupStatus, MembershipChange, RaftEngine, RaftError, RaftLogReader, StateMachine,
};
use restate_storage::rocksdb::WriteBatch;
use restate_storage::NodeStorage;
use restate_types::LogletId;
use tokio::sync::watch;

use super::records::LogletRecords;
use super::state::{Command, LogletState, Outcome};

/// Raft group ids of loglets start here; group 0 is the metadata store.
pub const LOGLET_GROUP_BASE: u64 = 1 << 32;

pub fn group_of(loglet: LogletId) -> u64 {
    LOGLET_GROUP_BASE + loglet.0
}

/// One loglet group hosted here.
pub struct HostedLoglet {
    /// The state as of the last applied entry.
    pub state: Arc<RwLock<LogletState>>,
    pub status: watch::Receiver<GroupStatus>,
    pub records: LogletRecords,
}

/// At most this many records answer one read, whoever asks.
pub(crate) const MAX_READ_RECORDS: usize = 10_000;

/// Why a member does not serve a read of its copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRefused {
    /// A member still catching up (a learner added by repair) may lack records that others
    /// have: ask another member.
    CatchingUp,
    /// Reading the records from disk failed.
    Storage(String),
}

impl HostedLoglet {
    /// Up to `max` records from `from` on, and the state they were read against.
    pub fn read(&self, from: u64, max: usize) -> Result<(Vec<(u64, Bytes)>, LogletState), String> {
        let state = *self.state.read().expect("not poisoned");
        Ok((self.records.read(from, max, &state)?, state))
    }

    /// A read as a member serves it to any reader, local or remote: applied records never
    /// change, so a voter serves what it has applied; a learner refuses.
    pub fn serve_read(&self, from: u64, max: usize) -> Result<(Vec<(u64, Bytes)>, LogletState), ReadRefused> {
        {
            let status = self.status.borrow();
            if !status.voters.contains(&status.peer) {
                return Err(ReadRefused::CatchingUp);
            }
        }
        self.read(from, max).map_err(ReadRefused::Storage)
    }
}

/// The loglet's raft state machine, on disk (see [`StateMachine`]): each applied entry
/// stages the loglet's state, and an append its index key, into the entry's batch; readers
/// see the new state once that batch is written.
struct LogletMachine {
    /// What readers see: the state as of the last written round.
    published: Arc<RwLock<LogletState>>,
    /// The state as of the last applied entry.
    current: LogletState,
    records: LogletRecords,
    /// What the disk held when the machine was created.
    durable_applied: Option<u64>,
    /// Where the log may be cut, as of the last trim.
    compaction: Option<Compaction>,
}

impl LogletMachine {
    fn new(published: Arc<RwLock<LogletState>>, records: LogletRecords) -> Result<LogletMachine, RaftError> {
        let stored = records.load_state().map_err(RaftError::Raft)?;
        let current = stored.map_or_else(LogletState::new, |(_, state)| state);
        *published.write().expect("not poisoned") = current;
        Ok(LogletMachine {
            published,
            current,
            records,
            durable_applied: stored.map(|(applied, _)| applied),
            compaction: None,
        })
    }
}

impl StateMachine for LogletMachine {
    fn apply(&mut self, index: u64, command: &[u8], writes: &mut WriteBatch) -> Bytes {
        let command = match Command::decode(command) {
            Ok(command) => command,
            Err(e) => return Outcome::Refused(e).encode(),
        };
        let before = self.current;
        let outcome = self.current.apply(&command);
        match (&command, &outcome) {
            (Command::Append(records), Outcome::Appended(last)) => {
                self.records.stage_append(writes, last + 1 - records.len() as u64, index);
            }
            (Command::Trim(_), Outcome::Trimmed(point)) if *point > before.trim_point => {
                match self.records.stage_trim(writes, *point, &self.current, index) {
                    Ok(Some((cut, at_cut))) => {
                        self.compaction = Some(Compaction { index: cut, snapshot: at_cut.encode() });
                    }
                    Ok(None) => {}
                    // Nothing is lost: the log is just not cut yet.
                    Err(e) => tracing::warn!("loglet trim to {point}: cannot place the log's cut: {e}"),
                }
            }
            _ => {}
        }
        self.records.stage_state(writes, index, &self.current);
        outcome.encode()
    }

    fn on_written(&mut self) {
        *self.published.write().expect("not poisoned") = self.current;
    }

    fn apply_membership(&mut self, _: u64, _: &MembershipChange, _: &[u64], _: &[u64]) {}

    fn snapshot(&self) -> Vec<u8> {
        self.current.encode()
    }

    fn restore(&mut self, index: u64, snapshot: &[u8], writes: &mut WriteBatch) {
        let (restored, carried) = LogletState::decode(snapshot).unwrap_or_else(|e| panic!("{e}"));
        self.records.stage_replace(writes, &carried);
        self.records.stage_state(writes, index, &restored);
        self.current = restored;
        self.compaction = None;
    }

    fn durable_applied(&self) -> Option<u64> {
        self.durable_applied
    }

    fn compaction(&self) -> Option<Compaction> {
        self.compaction.clone()
    }

    fn is_durable(&self) -> bool {
        true
    }
}

pub struct ReplicatedLogletHost {
    engine: RaftEngine,
    storage: NodeStorage,
    peers: PeerAddresses,
    loglets: Mutex<HashMap<LogletId, Arc<HostedLoglet>>>,
    create: tokio::sync::Mutex<()>,
}

impl ReplicatedLogletHost {
    /// Hosts loglets on `engine`, their records in `storage` (the engine's storage).
    pub fn new(engine: RaftEngine, storage: NodeStorage, peers: PeerAddresses) -> ReplicatedLogletHost {
        ReplicatedLogletHost {
            engine,
            storage,
            peers,
            loglets: Mutex::new(HashMap::new()),
            create: tokio::sync::Mutex::new(()),
        }
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
        let group = group_of(loglet);
        let state = Arc::new(RwLock::new(LogletState::new()));
        let records = LogletRecords::new(loglet, self.storage.clone(), RaftLogReader::new(self.storage.clone(), group));
        let machine = || LogletMachine::new(state.clone(), records.clone()).map(Box::new);
        let single = voters.len() == 1;
        let status = if voters.is_empty() {
            // A member added later (repair): it starts empty and the leader sends it a
            // snapshot once it is added as a learner.
            self.engine.create_group(group, machine()?, GroupInit::Existing).await?
        } else {
            match self
                .engine
                .create_group(
                    group,
                    machine()?,
                    GroupInit::Bootstrap { voters, initial_state: LogletState::new().encode() },
                )
                .await
            {
                Ok(status) => status,
                Err(RaftError::GroupExists(_)) => {
                    self.engine.create_group(group, machine()?, GroupInit::Existing).await?
                }
                Err(other) => return Err(other),
            }
        };
        if single {
            self.engine.campaign(group);
        }
        let hosted = Arc::new(HostedLoglet { state, status, records });
        self.loglets.lock().expect("not poisoned").insert(loglet, hosted.clone());
        tracing::info!(loglet = loglet.0, "hosting replicated loglet");
        Ok(hosted)
    }

    /// `(loglet, bytes on disk, bytes in memory)` of every loglet hosted here.
    pub fn usage(&self) -> Vec<(u64, u64, u64)> {
        let hosted: Vec<(LogletId, Arc<HostedLoglet>)> =
            self.loglets.lock().expect("not poisoned").iter().map(|(id, h)| (*id, h.clone())).collect();
        hosted.into_iter().map(|(id, h)| (id.0, h.records.approximate_size(), h.status.borrow().cached_bytes)).collect()
    }

    /// Proposes `command` to the loglet's group; it reaches the engine during this call
    /// (see [`RaftEngine::propose`]), the future resolves with its outcome.
    pub fn propose(
        &self,
        loglet: LogletId,
        command: Command,
    ) -> impl std::future::Future<Output = Result<Outcome, RaftError>> + Send + 'static {
        let answer = self.engine.propose(group_of(loglet), command.encode());
        async move { Outcome::decode(&answer.await?).map_err(RaftError::Raft) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use restate_raft::{LocalNetwork, RaftOptions};
    use restate_storage::StorageOptions;

    /// A node upgraded from the format that kept records in the loglet's snapshot still
    /// reads them, then appends after them, and a trim past them cuts them away.
    #[tokio::test]
    async fn records_carried_by_a_snapshot_of_the_earlier_format_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let net = LocalNetwork::default();
        let engine = RaftEngine::start(storage.clone(), 1, net.transport(1), RaftOptions::default());
        let loglet = LogletId(9);
        let group = group_of(loglet);
        let old = LogletState { trim_point: 2, next_lsn: 5, sealed: false };
        let carried = vec![(3, Bytes::from("three")), (4, Bytes::from("four"))];
        let state = Arc::new(RwLock::new(LogletState::new()));
        let records = LogletRecords::new(loglet, storage.clone(), RaftLogReader::new(storage.clone(), group));
        let machine = LogletMachine::new(state.clone(), records.clone()).unwrap();
        let initial_state = old.encode_with_records(&carried);
        let mut status = engine
            .create_group(group, Box::new(machine), GroupInit::Bootstrap { voters: vec![1], initial_state })
            .await
            .unwrap();
        engine.campaign(group);
        tokio::time::timeout(std::time::Duration::from_secs(10), status.wait_for(|s| s.is_leader))
            .await
            .unwrap()
            .unwrap();
        let hosted = HostedLoglet { state, status, records };
        assert_eq!(hosted.read(1, 10).unwrap().0, carried);

        let appended = engine.propose(group, Command::Append(vec![Bytes::from("five")]).encode()).await.unwrap();
        assert_eq!(Outcome::decode(&appended).unwrap(), Outcome::Appended(5));
        let (read, _) = hosted.read(4, 10).unwrap();
        assert_eq!(read, vec![(4, Bytes::from("four")), (5, Bytes::from("five"))]);

        let trimmed = engine.propose(group, Command::Trim(4).encode()).await.unwrap();
        assert_eq!(Outcome::decode(&trimmed).unwrap(), Outcome::Trimmed(4));
        assert_eq!(hosted.read(1, 10).unwrap().0, vec![(5, Bytes::from("five"))]);
        engine.shutdown();
    }
}
