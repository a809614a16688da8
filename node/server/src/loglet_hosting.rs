//! Runs, on a log-server node, the raft group of every replicated segment whose nodeset
//! names this node (bootstrapping it, or joining it empty when repair added this node). It looks at the Logs and NodesConfiguration metadata every 500 ms;
//! it stops on shutdown.

use std::sync::Arc;
use std::time::Duration;

use restate_bifrost::replicated::ReplicatedLogletHost;
use restate_metadata::objects::{Logs, NodesConfiguration};
use restate_metadata::{typed, MetadataStore};
use restate_types::{LogProviderKind, PlainNodeId};
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(
    host: Arc<ReplicatedLogletHost>,
    metadata: Arc<dyn MetadataStore>,
    me: PlainNodeId,
    shutdown: CancellationToken,
) {
    loop {
        if let Err(e) = host_my_segments(&host, metadata.as_ref(), me).await {
            tracing::debug!("loglet hosting: {e}");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn host_my_segments(
    host: &ReplicatedLogletHost,
    metadata: &dyn MetadataStore,
    me: PlainNodeId,
) -> Result<(), String> {
    let Some((logs, _)) = typed::get::<Logs>(metadata).await.map_err(|e| e.to_string())? else { return Ok(()) };
    let (nodes, _) = typed::get::<NodesConfiguration>(metadata).await.map_err(|e| e.to_string())?.unwrap_or_default();
    for chain in logs.logs.values() {
        for segment in &chain.segments {
            if segment.kind != LogProviderKind::Replicated || !segment.nodeset.contains(&me) {
                continue;
            }
            // Addresses of every member, also for groups already running: repair
            // brings in members the group has not known before.
            let mut voters = Vec::new();
            for id in &segment.nodeset {
                let node = nodes.nodes.get(id).ok_or_else(|| format!("nodeset member {id} is unknown"))?;
                let raft_id = restate_raft::raft_id_for_storage(&node.storage_id);
                host.peers().set(raft_id, node.address.clone());
                voters.push(raft_id);
            }
            if host.get(segment.loglet_id).is_some() {
                continue;
            }
            // A member added by repair (or any member of a repaired segment that never
            // ran it) joins the existing group empty instead of bootstrapping it.
            if !segment.bootstraps_on(me) {
                voters.clear();
            }
            host.ensure(segment.loglet_id, voters).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
