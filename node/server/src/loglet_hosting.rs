//! Runs, on a log-server node, the raft group of every replicated segment whose nodeset
//! names this node (bootstrapping it, or joining it empty when repair added this node).
//! It looks at the Logs and NodesConfiguration of the node's metadata view whenever
//! either changes (and again after a failed attempt); it stops on shutdown.

use std::sync::Arc;
use std::time::Duration;

use restate_bifrost::replicated::ReplicatedLogletHost;
use restate_metadata::objects::{Logs, NodesConfiguration};
use restate_metadata::MetadataView;
use restate_types::{LogProviderKind, PlainNodeId};
use tokio_util::sync::CancellationToken;

/// After a failed attempt (a group that could not start), the next one comes this soon
/// even if the metadata did not change.
const RETRY_AFTER: Duration = Duration::from_millis(500);

pub(crate) async fn run(
    host: Arc<ReplicatedLogletHost>,
    metadata: MetadataView,
    me: PlainNodeId,
    shutdown: CancellationToken,
) {
    let mut logs_changes = metadata.subscribe::<Logs>();
    let mut nodes_changes = metadata.subscribe::<NodesConfiguration>();
    loop {
        logs_changes.mark_unchanged();
        nodes_changes.mark_unchanged();
        let failed = match host_my_segments(&host, &metadata, me).await {
            Ok(()) => false,
            Err(e) => {
                tracing::debug!("loglet hosting: {e}");
                true
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = logs_changes.changed() => {}
            _ = nodes_changes.changed() => {}
            _ = tokio::time::sleep(RETRY_AFTER), if failed => {}
        }
    }
}

/// How often the hosted loglets' disk and memory use is reported to `/metrics`.
const REPORT_USAGE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps `restate_loglet_disk_bytes` and `restate_log_memory_bytes` current until
/// `shutdown`.
pub(crate) async fn report_usage(
    host: Arc<ReplicatedLogletHost>,
    metrics: restate_bifrost::LogletHostMetrics,
    shutdown: CancellationToken,
) {
    loop {
        let usage = {
            let host = host.clone();
            // RocksDB's size estimates touch its files: off the async workers.
            tokio::task::spawn_blocking(move || host.usage()).await.unwrap_or_default()
        };
        metrics.report(&usage);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(REPORT_USAGE_EVERY) => {}
        }
    }
}

async fn host_my_segments(host: &ReplicatedLogletHost, metadata: &MetadataView, me: PlainNodeId) -> Result<(), String> {
    let Some(logs) = metadata.get::<Logs>() else { return Ok(()) };
    let nodes = metadata.get::<NodesConfiguration>().map(|n| n.0.clone()).unwrap_or_default();
    for chain in logs.0.logs.values() {
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
