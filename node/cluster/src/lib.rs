//! The cluster controller: runs on every admin node, acts only on the one holding the
//! controller lease (a metadata key, see [`lease`]). It watches the log-servers
//! ([`liveness`]), and keeps the logs' segments placed and replicated ([`plan`]):
//! places segments that wait for log-servers, replaces log-servers unreachable for
//! longer than the grace period with spares (driving the loglet groups' membership,
//! [`membership`]), and raises replication when the cluster can now satisfy it. It also
//! decides which worker leads each partition ([`scheduling`]).

pub mod controller;
pub mod drain;
pub mod draining;
pub mod lease;
pub mod liveness;
pub mod membership;
pub mod placement;
pub mod plan;
pub mod probe;
pub mod scheduling;

pub use controller::{run, ControllerOptions};
pub use lease::{ControllerLease, LeaseTracker};
pub use placement::choose_nodeset;
