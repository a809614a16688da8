//! Identifiers and small value types shared by every layer of the node.
//!
//! Nothing here does I/O. Every type has a `Display` form that is the one users see
//! (`N1`, `N1:3`, `metadata-server`) and a `FromStr` that accepts exactly that form.

pub mod backoff;
mod ids;
mod kinds;
mod location;
mod role;
mod service;
pub mod time;

pub use backoff::Backoff;
pub use ids::{GenerationalNodeId, LogId, LogletId, Lsn, PartitionId, PlainNodeId, Version};
pub use kinds::{LogProviderKind, MetadataServerKind};
pub use location::{Location, LocationScope, ReplicationProperty, MAX_REPLICATION};
pub use role::{Role, RoleSet};
pub use service::{HandlerType, ServiceType};

/// A value could not be parsed from its user-facing text form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} '{input}': {expected}")]
pub struct ParseError {
    pub what: &'static str,
    pub input: String,
    pub expected: String,
}
