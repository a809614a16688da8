//! Cluster metadata: a versioned key-value store and the typed objects kept in it.
//!
//! - [`MetadataStore`] is the contract: `get`, and atomic `write` of puts/deletes, each
//!   with a [`Precondition`]. Versions start at 1 and rise by one per write of a key.
//! - [`LocalMetadataStore`] keeps it in the node's RocksDB (`[metadata-server] type = "local"`).
//! - [`MetadataServerService`] serves any store over gRPC; [`MetadataClient`] is the store
//!   as every node sees it, through `[metadata-client] addresses`.
//! - [`objects`] are the typed values (NodesConfiguration, ClusterConfiguration, Logs,
//!   PartitionTable) and [`typed`] reads/writes them by their well-known keys.
//! - [`MetadataView`] is the node's one in-memory copy of them, kept fresh by the metadata
//!   server's change feed ([`feed`], followed by [`view_follower`]) and by the node's own
//!   writes; components read from it instead of asking the store.

pub mod change_index;
mod client;
pub mod feed;
mod local_store;
mod metrics;
pub mod objects;
pub mod replicated;
mod service;
mod store;
pub mod typed;
mod view;
pub mod view_follower;
mod wire;

pub use client::{MetadataClient, MetadataClientOptions};
pub use local_store::LocalMetadataStore;
pub use metrics::{metadata_metrics, ReadKind};
pub use service::MetadataServerService;
pub use store::{MetadataStore, MetadataStoreError, Precondition, VersionedValue, WriteOp};
pub use view::MetadataView;
