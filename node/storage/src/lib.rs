//! One RocksDB per node under `base-dir/<node-name>/db`.
//!
//! Column families, one per concern, are all created at open; callers name them with
//! the `CF_*` constants. The node-identity marker (see [`identity`]) guards the data
//! against being opened by another node or cluster.

mod identity;
mod node_storage;

pub use identity::{IdentityMismatch, NodeIdentity};
pub use node_storage::{NodeStorage, StorageError, StorageOptions, CF_LOGLET, CF_METADATA, CF_NODE, CF_RAFT};
pub use rocksdb;

/// The layout of everything a node stores (partition state, log records and their
/// encodings). Bumped when a binary of the previous version could no longer read what this
/// one writes; nodes report it (`GetNodeInfo`) so that a roll to an older binary is refused.
/// 2: partition log records in the binary envelope encoding.
pub const STORAGE_FORMAT_VERSION: u32 = 2;

/// Whether this binary reads data of storage format `format` (`restate-server
/// --check-storage-format`, run by the operator on a new image before it restarts a node):
/// every format up to [`STORAGE_FORMAT_VERSION`] is read (older data is upgraded in place);
/// a newer one is refused, with both formats in the error.
pub fn check_storage_format(format: u32) -> Result<(), String> {
    if format <= STORAGE_FORMAT_VERSION {
        Ok(())
    } else {
        Err(format!(
            "data of storage format {format} is newer than this restate-server reads (formats up to \
             {STORAGE_FORMAT_VERSION}): run a release that reads format {format}"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_binary_reads_its_own_format_and_older_ones_only() {
        for format in 0..=super::STORAGE_FORMAT_VERSION {
            assert_eq!(super::check_storage_format(format), Ok(()), "format {format}");
        }
        let newer = super::STORAGE_FORMAT_VERSION + 1;
        let refusal = super::check_storage_format(newer).unwrap_err();
        assert!(refusal.contains(&format!("format {newer}")), "{refusal}");
        assert!(refusal.contains(&format!("up to {}", super::STORAGE_FORMAT_VERSION)), "{refusal}");
    }
}
