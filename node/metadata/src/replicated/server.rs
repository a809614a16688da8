use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use restate_raft::grpc::PeerAddresses;
use restate_raft::{GroupInit, GroupStatus, MembershipChange, RaftEngine, RaftError};
use restate_types::{PlainNodeId, Version};
use tokio::sync::watch;

use super::machine::MetadataStateMachine;
use super::state::{MemberInfo, MetadataState, WriteCommand, WriteOutcome};
use crate::change_index::ChangeIndex;
use crate::feed::{FeedUpdate, FollowableStore};
use crate::objects::{MetadataObject, NodesConfiguration};
use crate::store::{validate_key, validate_ops, MetadataStore, MetadataStoreError, VersionedValue, WriteOp};

/// The raft group that holds cluster metadata.
pub const METADATA_GROUP: u64 = 0;

/// This node's part in the replicated metadata store.
///
/// A node is a member once it bootstrapped the group (provisioning, or migrating a local
/// store) or joined it (learner, then voter). Until then every request answers
/// `Unavailable("not a member")` so clients try another address.
pub struct ReplicatedMetadataServer {
    engine: RaftEngine,
    raft_id: u64,
    state: Arc<RwLock<MetadataState>>,
    peers: PeerAddresses,
    status: Mutex<Option<watch::Receiver<GroupStatus>>>,
    /// The change feed: see [`MetadataStateMachine`].
    index: Arc<Mutex<ChangeIndex>>,
    changed: Arc<watch::Sender<u64>>,
}

fn from_raft(err: RaftError, leader_address: impl Fn(u64) -> Option<String>) -> MetadataStoreError {
    match err {
        RaftError::NotLeader { leader } => MetadataStoreError::NotLeader { leader: leader.and_then(leader_address) },
        RaftError::Dropped => MetadataStoreError::Unavailable(
            "leadership changed before the write committed; it did not apply, retry".into(),
        ),
        RaftError::Timeout(d) => {
            MetadataStoreError::Unavailable(format!("the write did not commit within {d:?}; its outcome is unknown"))
        }
        RaftError::InvalidMembership(m) => MetadataStoreError::InvalidRequest(m),
        other => MetadataStoreError::Unavailable(other.to_string()),
    }
}

impl ReplicatedMetadataServer {
    pub fn new(engine: RaftEngine, raft_id: u64, peers: PeerAddresses) -> ReplicatedMetadataServer {
        ReplicatedMetadataServer {
            engine,
            raft_id,
            state: Arc::new(RwLock::new(MetadataState::default())),
            peers,
            status: Mutex::new(None),
            index: Arc::new(Mutex::new(ChangeIndex::default())),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    pub fn raft_id(&self) -> u64 {
        self.raft_id
    }

    fn machine(&self) -> Box<MetadataStateMachine> {
        Box::new(MetadataStateMachine {
            state: self.state.clone(),
            peers: self.peers.clone(),
            index: self.index.clone(),
            changed: self.changed.clone(),
        })
    }

    async fn create(&self, init: GroupInit) -> Result<(), RaftError> {
        let status = self.engine.create_group(METADATA_GROUP, self.machine(), init).await?;
        *self.status.lock().expect("not poisoned") = Some(status);
        Ok(())
    }

    /// Resumes membership from the node's raft storage (the group was initialized before).
    pub async fn recover(&self) -> Result<(), RaftError> {
        self.create(GroupInit::Existing).await
    }

    /// Starts a new store with this node (`me`, see [`Self::member_info`]) as its only
    /// voter and `initial` as its content.
    pub async fn bootstrap(&self, mut initial: MetadataState, me: MemberInfo) -> Result<(), RaftError> {
        initial.members.insert(self.raft_id, MemberInfo { raft_id: self.raft_id, voter: true, ..me });
        self.create(GroupInit::Bootstrap { voters: vec![self.raft_id], initial_state: initial.encode() }).await?;
        self.engine.campaign(METADATA_GROUP);
        Ok(())
    }

    /// Starts an empty member that waits for the leader to send it the store.
    pub async fn start_joining(&self) -> Result<(), RaftError> {
        self.create(GroupInit::Existing).await
    }

    pub fn is_member(&self) -> bool {
        self.status.lock().expect("not poisoned").is_some()
    }

    pub fn status(&self) -> Option<GroupStatus> {
        self.status.lock().expect("not poisoned").as_ref().map(|s| s.borrow().clone())
    }

    pub fn status_watch(&self) -> Option<watch::Receiver<GroupStatus>> {
        self.status.lock().expect("not poisoned").clone()
    }

    /// This node as a member of the store (a learner until promoted).
    pub fn member_info(&self, node_id: u32, name: &str, address: &str) -> MemberInfo {
        MemberInfo { raft_id: self.raft_id, node_id, name: name.to_owned(), address: address.to_owned(), voter: false }
    }

    /// Whether this node votes in the store.
    pub fn is_voter(&self) -> bool {
        self.state.read().expect("not poisoned").members.get(&self.raft_id).is_some_and(|m| m.voter)
    }

    pub fn members(&self) -> Vec<MemberInfo> {
        self.state.read().expect("not poisoned").members.values().cloned().collect()
    }

    pub fn address_of(&self, raft_id: u64) -> Option<String> {
        self.state
            .read()
            .expect("not poisoned")
            .members
            .get(&raft_id)
            .map(|m| m.address.clone())
            .or_else(|| self.peers.get(raft_id))
    }

    pub fn leader_address(&self) -> Option<String> {
        let leader = self.status()?.leader;
        (leader != 0).then(|| self.address_of(leader)).flatten()
    }

    fn not_member() -> MetadataStoreError {
        MetadataStoreError::NotApplied("this node is not a member of the replicated metadata store (yet)".into())
    }

    fn map_err(&self, err: RaftError) -> MetadataStoreError {
        from_raft(err, |id| self.address_of(id))
    }

    /// Adds `member` as a learner (leader only). An older incarnation of the same node
    /// (same node id, another raft id) is removed first, so it can never vote again.
    /// Returns the commit index the new member must reach to be caught up.
    pub async fn join(&self, member: MemberInfo) -> Result<u64, MetadataStoreError> {
        if !self.is_member() {
            return Err(Self::not_member());
        }
        check_registered(&self.state.read().expect("not poisoned"), &member)?;
        let existing = self.members();
        if !existing.iter().any(|m| m.raft_id == member.raft_id) {
            for old in existing.iter().filter(|m| m.node_id == member.node_id && m.raft_id != member.raft_id) {
                tracing::info!(old = old.raft_id, new = member.raft_id, node = %member.name, "replacing an older incarnation in the metadata store");
                self.engine
                    .change_membership(METADATA_GROUP, MembershipChange::Remove { peer: old.raft_id })
                    .await
                    .map_err(|e| self.map_err(e))?;
            }
            let context =
                Bytes::from(serde_json::to_vec(&MemberInfo { voter: false, ..member.clone() }).expect("serializes"));
            self.engine
                .change_membership(METADATA_GROUP, MembershipChange::AddLearner { peer: member.raft_id, context })
                .await
                .map_err(|e| self.map_err(e))?;
            tracing::info!(raft_id = member.raft_id, node = %member.name, "metadata member joined as learner");
        }
        Ok(self.status().map_or(0, |s| s.commit))
    }

    /// Makes a learner a voter (leader only).
    pub async fn promote(&self, raft_id: u64) -> Result<(), MetadataStoreError> {
        let member = self
            .members()
            .into_iter()
            .find(|m| m.raft_id == raft_id)
            .ok_or_else(|| MetadataStoreError::InvalidRequest(format!("raft peer {raft_id} is not a member")))?;
        if member.voter {
            return Ok(());
        }
        check_registered(&self.state.read().expect("not poisoned"), &member)?;
        let context =
            Bytes::from(serde_json::to_vec(&MemberInfo { voter: true, ..member.clone() }).expect("serializes"));
        self.engine
            .change_membership(METADATA_GROUP, MembershipChange::AddVoter { peer: raft_id, context })
            .await
            .map_err(|e| self.map_err(e))?;
        tracing::info!(raft_id, node = %member.name, "metadata member promoted to voter");
        Ok(())
    }

    /// Removes a member (leader only); the last voter cannot be removed.
    pub async fn remove(&self, raft_id: u64) -> Result<(), MetadataStoreError> {
        self.engine
            .change_membership(METADATA_GROUP, MembershipChange::Remove { peer: raft_id })
            .await
            .map_err(|e| self.map_err(e))
    }

    /// Leader only: when this node is node `node_id`, hands the leadership to another voter
    /// (the lowest raft id) and answers true; otherwise false. The node this leader runs
    /// on is in the answer either way.
    pub fn hand_over_leadership(&self, node_id: u32) -> Result<(u32, bool), MetadataStoreError> {
        let status = self.status().ok_or_else(Self::not_member)?;
        if !status.is_leader {
            let leader = (status.leader != 0).then_some(status.leader);
            return Err(self.map_err(RaftError::NotLeader { leader }));
        }
        let members = self.members();
        let me = members.iter().find(|m| m.raft_id == self.raft_id).map_or(0, |m| m.node_id);
        if me != node_id {
            return Ok((me, false));
        }
        let Some(to) = members.iter().filter(|m| m.voter && m.raft_id != self.raft_id).map(|m| m.raft_id).min() else {
            return Err(MetadataStoreError::InvalidRequest(format!(
                "node {node_id} is the only voter of the metadata store: nobody can take over its leadership"
            )));
        };
        tracing::info!(to, "handing the metadata leadership over before this node restarts");
        self.engine.transfer_leadership(METADATA_GROUP, to);
        Ok((me, true))
    }

    /// A consistent copy of the whole state (for tests and inspection), after a read barrier.
    pub async fn linearizable_state(&self) -> Result<MetadataState, MetadataStoreError> {
        self.read_barrier().await?;
        Ok(self.state.read().expect("not poisoned").clone())
    }

    async fn read_barrier(&self) -> Result<(), MetadataStoreError> {
        if !self.is_member() {
            return Err(Self::not_member());
        }
        self.engine.read_index(METADATA_GROUP).await.map(|_| ()).map_err(|e| self.map_err(e))
    }
}

/// Membership is for registered nodes only: `member` must be the current incarnation of a
/// node in the cluster's NodesConfiguration (same node id, name and address, and its raft
/// id that of the node's storage). The error names what did not match.
pub(crate) fn check_registered(state: &MetadataState, member: &MemberInfo) -> Result<(), MetadataStoreError> {
    let refuse = |why: String| {
        MetadataStoreError::InvalidRequest(format!(
            "refusing metadata membership for raft peer {} ('{}' at {}): {why}",
            member.raft_id, member.name, member.address
        ))
    };
    let nodes: NodesConfiguration = match state.get(NodesConfiguration::KEY) {
        Some(stored) => serde_json::from_slice(&stored.value)
            .map_err(|e| refuse(format!("the cluster's {} does not decode: {e}", NodesConfiguration::NAME)))?,
        None => return Err(refuse("the cluster has no registered nodes yet".into())),
    };
    let node = nodes
        .nodes
        .get(&PlainNodeId(member.node_id))
        .ok_or_else(|| refuse(format!("node id {} is not registered in the cluster", member.node_id)))?;
    let trimmed = |a: &str| a.trim_end_matches('/').to_owned();
    if node.name != member.name || trimmed(&node.address) != trimmed(&member.address) {
        return Err(refuse(format!("node id {} is registered as '{}' at {}", member.node_id, node.name, node.address)));
    }
    if restate_raft::raft_id_for_storage(&node.storage_id) != member.raft_id {
        return Err(refuse(format!(
            "raft peer {} is not the current storage of node {} (an older or made-up incarnation)",
            member.raft_id, node.name
        )));
    }
    Ok(())
}

#[async_trait]
impl MetadataStore for ReplicatedMetadataServer {
    /// Linearizable: served after a ReadIndex barrier.
    async fn get(&self, key: &str) -> Result<Option<VersionedValue>, MetadataStoreError> {
        validate_key(key)?;
        self.read_barrier().await?;
        Ok(self.state.read().expect("not poisoned").get(key))
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Version>, MetadataStoreError> {
        validate_ops(&ops)?;
        if !self.is_member() {
            return Err(Self::not_member());
        }
        let command = Bytes::from(serde_json::to_vec(&WriteCommand::from_ops(ops)).expect("serializes"));
        let answer = self.engine.propose(METADATA_GROUP, command).await.map_err(|e| self.map_err(e))?;
        let outcome: WriteOutcome = serde_json::from_slice(&answer)
            .map_err(|e| MetadataStoreError::Storage(format!("undecodable write outcome: {e}")))?;
        outcome.into_result()
    }
}

impl FollowableStore for ReplicatedMetadataServer {
    fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Only the leader serves the feed: a follower's state may lag, and a subscriber would
    /// take it for current.
    fn update_since(&self, since: Option<u64>) -> Result<(u64, FeedUpdate), MetadataStoreError> {
        let status = self.status().ok_or_else(Self::not_member)?;
        if !status.is_leader {
            return Err(MetadataStoreError::NotLeader { leader: self.leader_address() });
        }
        let state = self.state.read().expect("not poisoned");
        let (seq, changed) = {
            let index = self.index.lock().expect("not poisoned");
            (index.seq(), since.and_then(|since| index.changed_since(since)))
        };
        crate::feed::update_since(seq, changed, |key| Ok(state.get(key)), || Ok(state.values()))
    }
}
