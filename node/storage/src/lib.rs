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
