//! A multi-raft engine over tikv's raft-rs.
//!
//! - [`RaftEngine`]: one thread drives every group of the node; one fsync per ready round
//!   covers all groups; `persisted_messages` go out only after it.
//! - [`GroupStorage`]: a group's raft log, hard state, conf state and snapshot in the
//!   node's RocksDB (`raft` column family); only the newest entries also in memory.
//! - [`StateMachine`]: what a group replicates: in memory (rebuilt from the last snapshot
//!   plus the committed log at startup, the log compacted behind snapshots), or on disk
//!   (its state written with the raft state, the log its record store until it lets the
//!   engine cut it; read back through [`RaftLogReader`]).
//! - [`RaftTransport`]: how messages travel; [`LocalNetwork`] for in-process tests,
//!   [`grpc`] for the node fabric.

mod engine;
mod group;
pub mod grpc;
mod keys;
mod local_network;
mod logger;
mod metrics;
mod state_machine;
mod storage;
mod transport;
mod types;

pub use engine::{GroupInit, RaftEngine};
pub use local_network::LocalNetwork;
pub use metrics::raft_metrics;
pub use raft::eraftpb::Message;
pub use state_machine::{Compaction, MembershipChange, StateMachine};
pub use storage::{GroupStorage, RaftLogReader};
pub use transport::RaftTransport;
pub use types::{GroupStatus, RaftError, RaftOptions};

/// The raft id of a node's storage incarnation, derived from its random storage id:
/// wiped data means a new member, so an old incarnation can never vote again.
pub fn raft_id_for_storage(storage_id: &str) -> u64 {
    let id = u64::from_str_radix(storage_id.get(..16).unwrap_or(storage_id), 16).unwrap_or(0);
    // Raft reserves 0; keep ids positive in signed contexts (JSON tooling) too.
    (id & (u64::MAX >> 1)).max(1)
}
