//! Snapshots on request (`restatectl snapshots create [--trim-log]`) through the
//! partition leaders, and log trimming behind published snapshots: on request, and
//! automatically by each partition's leader ([`run_auto_trim`]).
//!
//! The trim policy is `restate_worker::trim_policy`; this module finds the live
//! processors of a partition across the nodes and carries the trim out through Bifrost.

use std::sync::Arc;
use std::time::Duration;

use restate_bifrost::Bifrost;
use restate_proto::node_ctl::{self as pb, node_ctl_client::NodeCtlClient};
use restate_proto::worker as worker_pb;
use restate_types::{LogId, Lsn, PartitionId};
use restate_worker::trim_policy::{safe_trim_point, AUTO_TRIM_EVERY};
use tokio_util::sync::CancellationToken;

use crate::invocations::{on_partition_leader, Target};
use crate::routing_metadata::RoutingMetadata;
use restate_worker::processor::Worker;

/// How long a node may take to report its processors before it counts as not live.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Every processor of `partition` on every node that answers within [`PROBE_TIMEOUT`].
async fn live_processors(metadata: &RoutingMetadata, partition: PartitionId) -> Vec<pb::PartitionProcessorStatus> {
    let Ok((_, nodes)) = metadata.plan_and_nodes().await else { return Vec::new() };
    let probes = nodes.nodes.values().map(|node| {
        let address = node.address.clone();
        async move {
            let probe = async {
                let endpoint = tonic::transport::Endpoint::from_shared(address).ok()?;
                let channel = restate_proto::channel::connect(endpoint, PROBE_TIMEOUT).await.ok()?;
                let answer = NodeCtlClient::new(channel)
                    .list_partition_processors(pb::ListPartitionProcessorsRequest {})
                    .await
                    .ok()?;
                Some(answer.into_inner().processors)
            };
            tokio::time::timeout(PROBE_TIMEOUT, probe).await.ok().flatten().unwrap_or_default()
        }
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .filter(|p| p.partition_id == partition.0 as u32)
        .collect()
}

/// Trims `log` behind `archived` as far as `safe_trim_point` allows; the trim point
/// reached (unchanged when nothing may be trimmed).
pub(crate) async fn trim_behind_snapshot(
    metadata: &RoutingMetadata,
    bifrost: &Bifrost,
    partition: PartitionId,
    log: LogId,
    archived: Lsn,
) -> Result<Lsn, String> {
    let applied: Vec<Lsn> = live_processors(metadata, partition).await.iter().map(|p| Lsn(p.applied_lsn)).collect();
    let target = safe_trim_point(archived, &applied);
    let current = bifrost.trim_point(log).await.map_err(|e| e.to_string())?;
    if target <= current {
        return Ok(current);
    }
    let reached = bifrost.trim(log, target).await.map_err(|e| e.to_string())?;
    tracing::info!(partition = %partition, log = %log, trim_point = %reached, archived = %archived, "log trimmed behind its snapshot");
    Ok(reached)
}

/// Snapshots `partitions` (every partition when empty) through their leaders; with
/// `trim`, trims each one's log behind its snapshot. One answer per partition, failures
/// included (with the reason), in partition order.
pub(crate) async fn create_snapshots(
    metadata: &RoutingMetadata,
    bifrost: &Bifrost,
    mut partitions: Vec<PartitionId>,
    trim: bool,
) -> Result<Vec<pb::PartitionSnapshot>, String> {
    let table = metadata.partition_table().await?;
    if partitions.is_empty() {
        partitions = table.partitions.keys().copied().collect();
    }
    partitions.sort();
    partitions.dedup();
    let mut answers = Vec::new();
    for partition in partitions {
        let Some(definition) = table.partitions.get(&partition) else {
            let known = table.partitions.len();
            answers.push(pb::PartitionSnapshot {
                partition_id: partition.0 as u32,
                error: format!("no partition {partition}: the cluster has partitions 0..{known}"),
                ..Default::default()
            });
            continue;
        };
        let mut answer = pb::PartitionSnapshot {
            partition_id: partition.0 as u32,
            log_id: definition.log_id.0,
            ..Default::default()
        };
        let created = on_partition_leader(metadata, Target::Partition(partition), |mut client, partition| async move {
            client.create_snapshot(worker_pb::CreateSnapshotRequest { partition_id: partition.0 as u32 }).await
        })
        .await;
        match created {
            Ok(created) => {
                answer.snapshot_id = created.snapshot_id;
                answer.lsn = created.lsn;
                if trim {
                    match trim_behind_snapshot(metadata, bifrost, partition, definition.log_id, Lsn(created.lsn)).await
                    {
                        Ok(reached) => answer.trim_point = Some(reached.0),
                        Err(e) => answer.error = format!("snapshot made, trimming the log failed: {e}"),
                    }
                }
            }
            Err(e) => answer.error = e,
        }
        answers.push(answer);
    }
    Ok(answers)
}

/// On a worker node: every [`AUTO_TRIM_EVERY`], trims the log of each partition this
/// node leads behind its archived LSN, until `shutdown`.
pub(crate) async fn run_auto_trim(
    metadata: Arc<RoutingMetadata>,
    bifrost: Arc<Bifrost>,
    worker: Arc<Worker>,
    shutdown: CancellationToken,
) {
    let mut trimmed: std::collections::HashMap<PartitionId, Lsn> = Default::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(AUTO_TRIM_EVERY) => {}
        }
        let Some(table) = metadata.metadata.get::<restate_metadata::objects::PartitionTable>() else { continue };
        let table = &table.0;
        for status in worker.status().into_iter().filter(|s| s.leading && s.archived_lsn > 0) {
            let archived = Lsn(status.archived_lsn);
            if trimmed.get(&status.partition).is_some_and(|done| *done >= archived) {
                continue;
            }
            let Some(definition) = table.partitions.get(&status.partition) else { continue };
            match trim_behind_snapshot(&metadata, &bifrost, status.partition, definition.log_id, archived).await {
                Ok(reached) => {
                    if reached >= archived {
                        trimmed.insert(status.partition, reached);
                    }
                }
                Err(e) => tracing::warn!(partition = %status.partition, "automatic trim failed: {e}"),
            }
        }
    }
}
