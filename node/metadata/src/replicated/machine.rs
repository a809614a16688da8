use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use restate_raft::grpc::PeerAddresses;
use restate_raft::{MembershipChange, StateMachine};
use restate_storage::rocksdb::WriteBatch;

use super::state::{MemberInfo, MetadataState, WriteCommand, WriteOutcome};
use crate::change_index::{ChangeIndex, KeyChange};

/// Drives the shared [`MetadataState`] from the raft log and keeps the transport's
/// address book in step with the member list.
pub(crate) struct MetadataStateMachine {
    pub state: Arc<RwLock<MetadataState>>,
    pub peers: PeerAddresses,
    /// The keys of recent writes (the server's change feed). Locked only while `state` is
    /// (state first), so the two always agree.
    pub index: Arc<Mutex<ChangeIndex>>,
    /// The sequence number of the latest applied write or restored snapshot.
    pub changed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl MetadataStateMachine {
    fn sync_peers(&self, state: &MetadataState) {
        for member in state.members.values() {
            self.peers.set(member.raft_id, member.address.clone());
        }
    }
}

impl StateMachine for MetadataStateMachine {
    fn apply(&mut self, _index: u64, command: &[u8], _writes: &mut WriteBatch) -> Bytes {
        let outcome = match serde_json::from_slice::<WriteCommand>(command) {
            Ok(command) => {
                let changes: Vec<(String, KeyChange)> = command
                    .ops
                    .iter()
                    .map(|op| (op.key.clone(), if op.value.is_some() { KeyChange::Put } else { KeyChange::Deleted }))
                    .collect();
                let mut state = self.state.write().expect("not poisoned");
                let outcome = state.apply_write(command);
                if matches!(outcome, WriteOutcome::Written(_)) {
                    let seq = self.index.lock().expect("not poisoned").record(changes);
                    drop(state);
                    self.changed.send_replace(seq);
                }
                outcome
            }
            Err(e) => WriteOutcome::Invalid(format!("undecodable metadata command: {e}")),
        };
        Bytes::from(serde_json::to_vec(&outcome).expect("outcomes serialize"))
    }

    fn apply_membership(&mut self, _index: u64, change: &MembershipChange, voters: &[u64], _learners: &[u64]) {
        let mut state = self.state.write().expect("not poisoned");
        match change {
            MembershipChange::AddLearner { peer, context } | MembershipChange::AddVoter { peer, context } => {
                match serde_json::from_slice::<MemberInfo>(context) {
                    Ok(mut member) => {
                        member.raft_id = *peer;
                        state.members.insert(*peer, member);
                    }
                    Err(e) => tracing::error!(peer, "membership change without member info: {e}"),
                }
            }
            MembershipChange::Remove { peer } => {
                state.members.remove(peer);
                self.peers.remove(*peer);
            }
        }
        for member in state.members.values_mut() {
            member.voter = voters.contains(&member.raft_id);
        }
        self.sync_peers(&state);
    }

    fn snapshot(&self) -> Vec<u8> {
        self.state.read().expect("not poisoned").encode()
    }

    fn restore(&mut self, _index: u64, snapshot: &[u8], _writes: &mut WriteBatch) {
        let restored = MetadataState::decode(snapshot).unwrap_or_else(|e| panic!("{e}"));
        self.sync_peers(&restored);
        let mut state = self.state.write().expect("not poisoned");
        *state = restored;
        let seq = self.index.lock().expect("not poisoned").record_replaced();
        drop(state);
        self.changed.send_replace(seq);
    }
}
