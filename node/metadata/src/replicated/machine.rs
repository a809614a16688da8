use std::sync::{Arc, RwLock};

use bytes::Bytes;
use restate_raft::grpc::PeerAddresses;
use restate_raft::{MembershipChange, StateMachine};

use super::state::{MemberInfo, MetadataState, WriteCommand, WriteOutcome};

/// Drives the shared [`MetadataState`] from the raft log and keeps the transport's
/// address book in step with the member list.
pub(crate) struct MetadataStateMachine {
    pub state: Arc<RwLock<MetadataState>>,
    pub peers: PeerAddresses,
    /// Rises after every applied write or restored snapshot (the server's change feed).
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
    fn apply(&mut self, _index: u64, command: &[u8]) -> Bytes {
        let outcome = match serde_json::from_slice::<WriteCommand>(command) {
            Ok(command) => self.state.write().expect("not poisoned").apply_write(command),
            Err(e) => WriteOutcome::Invalid(format!("undecodable metadata command: {e}")),
        };
        self.changed.send_modify(|n| *n += 1);
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

    fn restore(&mut self, _index: u64, snapshot: &[u8]) {
        let restored = MetadataState::decode(snapshot).unwrap_or_else(|e| panic!("{e}"));
        self.sync_peers(&restored);
        *self.state.write().expect("not poisoned") = restored;
        self.changed.send_modify(|n| *n += 1);
    }
}
