//! Wire types of the node fabric (gRPC on the node port, 5122 by default).
//!
//! Only wire types live here; each layer converts them to its domain types in its own
//! `wire` module, so domain code never sees protobuf structs.

pub mod channel;
pub mod channel_cache;
pub mod credentials;
pub mod leader_hints;
pub mod tls;
pub mod transport_errors;

pub mod metadata {
    tonic::include_proto!("restate.metadata");
}

pub mod node_ctl {
    tonic::include_proto!("restate.node_ctl");
}

pub mod raft {
    tonic::include_proto!("restate.raft");
}

pub mod log_server {
    tonic::include_proto!("restate.log_server");
}

pub mod worker {
    tonic::include_proto!("restate.worker");
}
