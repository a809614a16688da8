//! Keeps the raft transport's address book in step with NodesConfiguration: every
//! registered node's raft peer (the raft id of its storage) at its registered address.
//! With the metadata members' own list, this is where raft peers' addresses come from (a
//! member added to a running group learns its leader's address here before the leader's
//! first message); a raft message never teaches one.

use restate_metadata::objects::NodesConfiguration;
use restate_metadata::MetadataView;
use restate_raft::grpc::PeerAddresses;
use tokio_util::sync::CancellationToken;

/// Runs until shutdown, updating `peers` whenever NodesConfiguration changes.
pub(crate) async fn follow(peers: PeerAddresses, metadata: MetadataView, shutdown: CancellationToken) {
    let mut changes = metadata.subscribe::<NodesConfiguration>();
    loop {
        changes.mark_unchanged();
        if let Some(nodes) = metadata.get::<NodesConfiguration>() {
            for node in nodes.0.nodes.values() {
                peers.set(restate_raft::raft_id_for_storage(&node.storage_id), node.address.clone());
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}
