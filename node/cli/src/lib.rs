//! The command-line clients. `restatectl` administers a cluster through any node's
//! node-control service; `restate` manages deployments and services through the admin
//! REST API. Everything here is a thin client: no cluster logic.

pub mod ctl;
mod error_chain;
pub mod output;
pub mod restate;

pub use error_chain::error_chain;
