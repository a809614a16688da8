//! The command-line clients. `restatectl` administers a cluster through any node's
//! node-control service; everything here is a thin client: no cluster logic.

pub mod ctl;
pub mod output;
