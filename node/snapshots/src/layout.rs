//! Where a partition's snapshots live in the repository. Pure key arithmetic, no I/O.
//!
//! With prefix `P` (empty: keys start at the partition) and partition `p`:
//!
//! ```text
//! P/p/latest.json                              which snapshot is the partition's latest
//! P/p/{lsn:020}_{snapshot_id}/snapshot.sst     the data file
//! P/p/{lsn:020}_{snapshot_id}/metadata.json    SnapshotMetadata as JSON
//! ```
//!
//! The zero-padded LSN makes a plain lexicographic listing of a partition's snapshots sort by LSN.
//! Keys use `/` as separator; the directory store maps them onto relative paths.

use restate_types::{Lsn, PartitionId};

pub(crate) const LATEST_FILE: &str = "latest.json";
pub(crate) const DATA_FILE: &str = "snapshot.sst";
pub(crate) const METADATA_FILE: &str = "metadata.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyLayout {
    /// No leading or trailing `/`; may be empty.
    prefix: String,
}

impl KeyLayout {
    /// Stray leading/trailing slashes are dropped so that keys never contain `//`.
    pub(crate) fn new(prefix: &str) -> KeyLayout {
        KeyLayout { prefix: prefix.trim_matches('/').to_owned() }
    }

    pub(crate) fn latest_key(&self, partition: PartitionId) -> String {
        format!("{}/{LATEST_FILE}", self.partition_dir(partition))
    }

    pub(crate) fn data_key(&self, partition: PartitionId, lsn: Lsn, snapshot_id: &str) -> String {
        format!("{}/{DATA_FILE}", self.snapshot_dir(partition, lsn, snapshot_id))
    }

    pub(crate) fn metadata_key(&self, partition: PartitionId, lsn: Lsn, snapshot_id: &str) -> String {
        format!("{}/{METADATA_FILE}", self.snapshot_dir(partition, lsn, snapshot_id))
    }

    fn partition_dir(&self, partition: PartitionId) -> String {
        if self.prefix.is_empty() {
            partition.to_string()
        } else {
            format!("{}/{partition}", self.prefix)
        }
    }

    fn snapshot_dir(&self, partition: PartitionId, lsn: Lsn, snapshot_id: &str) -> String {
        format!("{}/{:020}_{snapshot_id}", self.partition_dir(partition), lsn.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_a_prefix() {
        let layout = KeyLayout::new("cluster-a/snaps");
        assert_eq!(layout.latest_key(PartitionId(3)), "cluster-a/snaps/3/latest.json");
        assert_eq!(
            layout.data_key(PartitionId(3), Lsn(42), "snap_x"),
            "cluster-a/snaps/3/00000000000000000042_snap_x/snapshot.sst"
        );
        assert_eq!(
            layout.metadata_key(PartitionId(3), Lsn(42), "snap_x"),
            "cluster-a/snaps/3/00000000000000000042_snap_x/metadata.json"
        );
    }

    #[test]
    fn keys_without_a_prefix_have_no_leading_slash() {
        let layout = KeyLayout::new("");
        assert_eq!(layout.latest_key(PartitionId(0)), "0/latest.json");
        assert_eq!(layout.data_key(PartitionId(0), Lsn(1), "snap_y"), "0/00000000000000000001_snap_y/snapshot.sst");
        assert_eq!(
            layout.metadata_key(PartitionId(65535), Lsn(u64::MAX), "snap_y"),
            "65535/18446744073709551615_snap_y/metadata.json"
        );
    }

    #[test]
    fn stray_slashes_in_the_prefix_are_dropped() {
        assert_eq!(KeyLayout::new("/p/").latest_key(PartitionId(1)), "p/1/latest.json");
        assert_eq!(KeyLayout::new("/").latest_key(PartitionId(1)), "1/latest.json");
    }

    #[test]
    fn snapshot_directories_sort_by_lsn() {
        let layout = KeyLayout::new("p");
        let mut keys: Vec<String> =
            [900, 5, 10_000, 77].iter().map(|&lsn| layout.data_key(PartitionId(1), Lsn(lsn), "snap_z")).collect();
        keys.sort();
        let lsns: Vec<&str> = keys.iter().map(|k| &k[4..24]).collect();
        assert_eq!(
            lsns,
            ["00000000000000000005", "00000000000000000077", "00000000000000000900", "00000000000000010000"]
        );
    }
}
