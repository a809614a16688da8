//! The replicated metadata store: one raft group over the metadata-server nodes.

pub mod admin_client;
mod admin_service;
mod machine;
mod server;
mod state;

pub use admin_service::{status_from_store_error, MetadataAdminService, LEADER_HEADER, NOT_APPLIED_HEADER};
pub use server::{ReplicatedMetadataServer, METADATA_GROUP};
pub use state::{MemberInfo, MetadataState};
