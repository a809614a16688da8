//! The node daemon: assembles storage, metadata, logs and the network servers into a
//! running node ([`Node::start`]), and answers node-control requests.
//!
//! Startup order (each step's failure is a [`StartupError`] naming the config key to fix):
//! 1. open the node's RocksDB and check its identity marker;
//! 2. bind every listener (fabric, admin, ingress, optional pgsql);
//! 3. serve; `/health` answers 200 from here on, provisioned or not;
//! 4. the [`membership`] task finds (or provisions) the cluster and registers the node.

mod admin;
mod cluster_view;
mod drain_ctl;
mod fabric;
mod fabric_auth;
mod http_server;
mod ingress_http;
mod ingress_route;
mod invocations;
mod lifecycle;
mod listeners;
mod location_file;
mod loglet_hosting;
mod logs_ctl;
mod membership;
mod metadata_join;
mod metadata_role;
mod metrics;
mod node;
mod node_ctl;
mod node_ctl_context;
mod peer_addresses;
mod pgsql;
pub mod provisioning;
mod query_data;
mod roles;
mod routing_metadata;
mod running_roles;
mod snapshots_ctl;
mod startup_error;
mod worker_channels;

pub use lifecycle::{NodePhase, NodeState};
pub use node::{Node, NodeExit};
pub use startup_error::StartupError;
