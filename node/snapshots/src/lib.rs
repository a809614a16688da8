//! The snapshot repository: where partition snapshots are published to and restored from, an S3
//! bucket (AWS or S3-compatible) or a local directory, as configured by `[worker.snapshots]`.
//!
//! Layout (see `layout`): per partition a `latest.json` naming the latest published snapshot, and
//! per snapshot a directory `{lsn:020}_{snapshot_id}/` with `snapshot.sst` and `metadata.json`.
//! `latest.json` is written last and conditionally, so it only ever names a complete, verified
//! snapshot and concurrent publishers cannot move it backwards.

mod digest;
mod directory_store;
mod error;
mod layout;
mod local_snapshot;
mod metadata;
mod object;
mod publish_decision;
mod repository;
mod s3_client;
mod s3_errors;
mod s3_store;
mod snapshot_id;
mod store;

pub use error::SnapshotError;
pub use local_snapshot::LocalSnapshot;
pub use metadata::{SnapshotMetadata, FORMAT_VERSION};
pub use repository::{PublishOutcome, SnapshotRepository};
pub use snapshot_id::new_snapshot_id;
