//! Joining the replicated metadata store: learner first, voter once caught up.
//!
//! Runs on the joining node. It asks any member (following leader hints) to add it as a
//! learner, waits until it has applied what was committed at that moment, then asks for
//! promotion to voter. Every step is idempotent, so the whole flow is retried on failure.

use std::time::Duration;

use restate_metadata::replicated::admin_client::on_leader;
use restate_metadata::replicated::MemberInfo;
use restate_proto::metadata as pb;

use crate::metadata_role::ReplicatedRole;

/// Makes this node a voting member of the replicated metadata store.
pub(crate) async fn join(role: &ReplicatedRole, me: MemberInfo, addresses: &[String]) -> Result<(), String> {
    if !role.server.is_member() {
        role.server.start_joining().await.map_err(|e| e.to_string())?;
    }
    if role.server.is_voter() {
        return Ok(());
    }
    let member = pb::Member {
        raft_id: me.raft_id,
        node_id: me.node_id,
        name: me.name.clone(),
        address: me.address.clone(),
        voter: false,
    };
    let joined = on_leader(addresses, |mut c| {
        let member = member.clone();
        async move { c.join(pb::JoinRequest { member: Some(member) }).await }
    })
    .await?;
    let mut status = role.server.status_watch().ok_or("the metadata group was not created")?;
    tokio::time::timeout(Duration::from_secs(60), status.wait_for(|s| s.applied >= joined.commit))
        .await
        .map_err(|_| format!("did not catch up to index {} within 60 s", joined.commit))?
        .map_err(|_| "the raft engine stopped".to_owned())?;
    on_leader(addresses, |mut c| async move { c.promote(pb::PromoteRequest { raft_id: me.raft_id }).await }).await?;
    tracing::info!(raft_id = me.raft_id, "joined the replicated metadata store as a voter");
    Ok(())
}
