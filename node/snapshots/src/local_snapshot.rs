//! A snapshot as the partition processor exported it, before it is published.

use std::path::PathBuf;

use restate_types::{Lsn, PartitionId};

/// A snapshot exported locally, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSnapshot {
    pub partition: PartitionId,
    /// Becomes part of object keys: ASCII letters, digits, `_` and `-` only (see `new_snapshot_id`).
    pub snapshot_id: String,
    /// The snapshot contains the effects of every log record up to and including this LSN.
    pub lsn: Lsn,
    /// The single data file (e.g. an SST); read, never modified or removed by the repository.
    pub file: PathBuf,
    pub node_name: String,
    pub cluster_name: String,
}
