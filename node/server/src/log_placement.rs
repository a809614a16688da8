//! Places replicated log segments that wait for log-servers (a cluster provisioned with
//! replication r before 2r-1 log-servers had joined). Runs on admin nodes, every second,
//! until shutdown. Every admin node may run it: the nodeset is written with a version
//! precondition, so concurrent placements cannot both take effect.

use std::sync::Arc;
use std::time::Duration;

use restate_metadata::objects::{ClusterConfiguration, Logs, NodesConfiguration};
use restate_metadata::{typed, MetadataStore};
use restate_types::{LogProviderKind, PlainNodeId};
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(metadata: Arc<dyn MetadataStore>, shutdown: CancellationToken) {
    loop {
        match place_waiting_segments(metadata.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(segments = n, "placed replicated log segments on log-servers"),
            Err(e) => tracing::debug!("log placement: {e}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The first `2r-1` read-write log-servers by id: a deterministic choice, so concurrent
/// placers propose the same nodeset.
pub(crate) fn choose_nodeset(nodes: &NodesConfiguration, replication: u32) -> Option<Vec<PlainNodeId>> {
    let needed = ClusterConfiguration::log_servers_needed(replication) as usize;
    let chosen: Vec<PlainNodeId> = nodes.log_servers().map(|n| n.id).take(needed).collect();
    (chosen.len() == needed).then_some(chosen)
}

async fn place_waiting_segments(metadata: &dyn MetadataStore) -> Result<usize, String> {
    let (nodes, _) = typed::get::<NodesConfiguration>(metadata).await.map_err(|e| e.to_string())?.unwrap_or_default();
    let mut placed_now = 0;
    let written = typed::read_modify_write::<Logs, String, _>(metadata, |current| {
        placed_now = 0;
        let Some(mut logs) = current else { return Ok(None) };
        let mut placed = 0;
        for chain in logs.logs.values_mut() {
            let Some(tail) = chain.segments.last_mut() else { continue };
            if tail.kind == LogProviderKind::Replicated && tail.nodeset.is_empty() {
                if let Some(nodeset) = choose_nodeset(&nodes, tail.replication) {
                    tail.nodeset = nodeset;
                    placed += 1;
                }
            }
        }
        placed_now = placed;
        Ok((placed > 0).then_some(logs))
    })
    .await
    .map_err(|e| e.to_string())?;
    written?;
    Ok(placed_now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_types::RoleSet;

    #[test]
    fn nodesets_need_2r_minus_1_log_servers() {
        let mut nodes = NodesConfiguration::default();
        for name in ["a", "b"] {
            nodes.register(name, "http://x:1", &RoleSet::all(), "s", false);
        }
        assert_eq!(choose_nodeset(&nodes, 1), Some(vec![PlainNodeId(1)]));
        assert_eq!(choose_nodeset(&nodes, 2), None);
        nodes.register("c", "http://x:1", &RoleSet::all(), "s", false);
        assert_eq!(choose_nodeset(&nodes, 2), Some(vec![PlainNodeId(1), PlainNodeId(2), PlainNodeId(3)]));
    }
}
