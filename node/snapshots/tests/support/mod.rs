//! Shared by the integration tests: local snapshot files and a real S3-compatible server.

#![allow(dead_code)] // each test binary uses a different part

pub mod moto;

use std::path::{Path, PathBuf};

use restate_snapshots::LocalSnapshot;
use restate_types::{Lsn, PartitionId};

/// Writes `content` to `dir/name` and describes it as a snapshot of `partition` at `lsn`.
pub fn local_snapshot(dir: &Path, partition: u16, lsn: u64, content: &[u8]) -> LocalSnapshot {
    let snapshot_id = restate_snapshots::new_snapshot_id();
    let file: PathBuf = dir.join(format!("{snapshot_id}.export.sst"));
    std::fs::write(&file, content).unwrap();
    LocalSnapshot {
        partition: PartitionId(partition),
        snapshot_id,
        lsn: Lsn(lsn),
        file,
        node_name: "n1".into(),
        cluster_name: "test-cluster".into(),
    }
}

/// Deterministic, not-all-equal content of `len` bytes, distinct per `seed`.
pub fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[track_caller]
pub fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "expected {part:?} in:\n{text}");
    }
}
