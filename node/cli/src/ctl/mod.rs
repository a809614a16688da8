//! `restatectl` subcommands. Each talks to one node (`--address`) over node control.

mod config;
mod connection;
pub mod logs;
mod metadata;
pub mod metadata_server;
mod nodes;
pub mod partitions;
mod provision;
pub mod snapshots;
mod sql;
mod status;

pub use config::{config_get, config_set};
pub use connection::{connect, CtlError};
pub use metadata::{metadata_get, metadata_put};
pub use nodes::{nodes_drain, nodes_list, nodes_prepare_restart, nodes_remove};
pub use provision::{provision, ProvisionArgs};
pub use sql::sql;
pub use status::status;

/// Options every subcommand shares.
#[derive(Debug, Clone)]
pub struct Globals {
    pub address: String,
    pub json: bool,
    pub yes: bool,
}
