//! Replicated loglets: each a raft group over the log-servers of its nodeset
//! (`2r-1` voters for replication `r`, so a record is on `r` of them before it is
//! acknowledged).

mod append_stream;
mod group_commit;
mod host;
mod loglet;
mod records;
mod service;
mod state;

pub use host::{group_of, HostedLoglet, ReadRefused, ReplicatedLogletHost, LOGLET_GROUP_BASE};
pub use loglet::{LogletGroupStatus, LogletMembershipChange, ReplicatedLoglet};
pub use records::{LogletRecords, MAX_READ_BYTES};
pub use service::{LogServerService, LOGLET_LEADER_HEADER};
pub use state::{Command, LogletState, Outcome};
