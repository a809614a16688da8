//! Partition snapshots on a worker: the leader exports its state (an SST of the
//! partition's keys at an applied LSN, [`restate_partition::state_snapshot`]) and
//! publishes it to the snapshot repository (`[worker.snapshots] destination`), which makes
//! that LSN the partition's archived LSN; a processor with no state, or one whose log was
//! trimmed past what it applied, restores the latest snapshot instead of replaying.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use restate_snapshots::{new_snapshot_id, LocalSnapshot, PublishOutcome};
use restate_types::{Lsn, PartitionId};

use super::context::{ProcessorHandle, WorkerContext};
use restate_partition::state_snapshot;
use restate_partition::RocksDbPartitionStore;

/// A snapshot made on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCreated {
    pub partition: PartitionId,
    pub snapshot_id: String,
    pub lsn: Lsn,
    /// False when a snapshot at this LSN or later was already published (this one is
    /// not the partition's latest; `snapshot_id`/`lsn` then name the published one).
    pub published: bool,
}

/// Where snapshot files are staged on this node before upload and after download.
fn staging_dir(ctx: &WorkerContext) -> PathBuf {
    ctx.storage.path().join("snapshot-staging")
}

/// Exports the partition's state now and publishes it; updates the handle's archived LSN.
pub(crate) async fn create(ctx: &Arc<WorkerContext>, handle: &ProcessorHandle) -> Result<SnapshotCreated, String> {
    let partition = handle.partition;
    let repository = ctx.snapshots.as_ref().ok_or_else(|| {
        "no snapshot repository is configured: set [worker.snapshots] destination (s3://bucket/prefix or file:///path)"
            .to_owned()
    })?;
    let dir = staging_dir(ctx);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let snapshot_id = new_snapshot_id();
    let file = dir.join(format!("{}-{snapshot_id}.sst", partition.0));
    let store = RocksDbPartitionStore::new(ctx.storage.clone(), partition);
    let export_file = file.clone();
    let lsn = tokio::task::spawn_blocking(move || state_snapshot::export(&store, &export_file))
        .await
        .map_err(|e| format!("the export task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let local = LocalSnapshot {
        partition,
        snapshot_id: snapshot_id.clone(),
        lsn,
        file: file.clone(),
        node_name: ctx.node_name.clone(),
        cluster_name: ctx.cluster_name.clone(),
    };
    let outcome = repository.publish(&local).await;
    let _ = std::fs::remove_file(&file);
    let created = match outcome.map_err(|e| e.to_string())? {
        PublishOutcome::Published(metadata) => {
            tracing::info!(partition = %partition, snapshot = %metadata.snapshot_id, lsn = metadata.lsn, repository = %repository.describe(), "snapshot published");
            SnapshotCreated { partition, snapshot_id, lsn, published: true }
        }
        PublishOutcome::Superseded { published_lsn, published_snapshot_id } => {
            SnapshotCreated { partition, snapshot_id: published_snapshot_id, lsn: Lsn(published_lsn), published: false }
        }
    };
    handle.archived_lsn.fetch_max(created.lsn.0, Ordering::SeqCst);
    Ok(created)
}

/// Restores the latest published snapshot of `partition` into the node's store when its
/// LSN is at least `at_least`. `Ok(None)`: no snapshot is published (or none configured)
/// and `at_least` is 0, so starting from the log's beginning is right.
pub(crate) async fn restore(
    ctx: &WorkerContext,
    handle: &ProcessorHandle,
    at_least: Lsn,
) -> Result<Option<Lsn>, String> {
    let partition = handle.partition;
    // Without a snapshot, the log's beginning is the place to start, unless it is trimmed.
    let nothing_to_restore = |why: String| {
        if at_least == Lsn::INVALID {
            Ok(None)
        } else {
            Err(format!("the log of partition {partition} is trimmed up to LSN {at_least}, but {why}"))
        }
    };
    let Some(repository) = ctx.snapshots.as_ref() else {
        return nothing_to_restore(
            "no snapshot repository is configured ([worker.snapshots] destination) to restore from".to_owned(),
        );
    };
    let latest = repository.latest(partition).await.map_err(|e| e.to_string())?;
    let Some(metadata) = latest else {
        return nothing_to_restore(format!("{} holds no snapshot of it", repository.describe()));
    };
    if metadata.partition_id != partition.0 {
        return Err(format!(
            "the latest snapshot for partition {partition} in {} ({}) says it is of partition {}",
            repository.describe(),
            metadata.snapshot_id,
            metadata.partition_id
        ));
    }
    if metadata.lsn < at_least.0 {
        return Err(format!(
            "the latest snapshot of partition {partition} ({}, LSN {}) is older than the log's trim point {at_least}",
            metadata.snapshot_id, metadata.lsn
        ));
    }
    let dir = staging_dir(ctx);
    let file = repository.download(&metadata, &dir).await.map_err(|e| e.to_string())?;
    let store = RocksDbPartitionStore::new(ctx.storage.clone(), partition);
    let import_file = file.clone();
    let imported = tokio::task::spawn_blocking(move || state_snapshot::import(&store, &import_file))
        .await
        .map_err(|e| format!("the import task failed: {e}"))?
        .map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&file);
    let lsn = imported?;
    handle.archived_lsn.fetch_max(metadata.lsn, Ordering::SeqCst);
    tracing::info!(partition = %partition, snapshot = %metadata.snapshot_id, lsn = %lsn, repository = %repository.describe(), "partition state restored from a snapshot");
    Ok(Some(lsn))
}

/// Reads the archived LSN (the latest published snapshot's) into the handle, for status.
pub(crate) async fn refresh_archived_lsn(ctx: &WorkerContext, handle: &ProcessorHandle) {
    let Some(repository) = ctx.snapshots.as_ref() else { return };
    match repository.latest(handle.partition).await {
        Ok(Some(metadata)) => {
            handle.archived_lsn.fetch_max(metadata.lsn, Ordering::SeqCst);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(partition = %handle.partition, "reading the latest snapshot: {e}"),
    }
}
