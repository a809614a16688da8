//! The node's roles once started, for the servers that began serving before them (node
//! control, the ingress, the `Worker` gRPC service): the node binds and serves first, then
//! joins the cluster, and only then do Bifrost and the worker exist. `roles::run`
//! publishes them here once, together; until then readers get `None` and answer
//! UNAVAILABLE. The roles themselves are handed what they use as arguments.

use std::sync::{Arc, OnceLock};

use restate_bifrost::Bifrost;
use restate_worker::processor::Worker;

/// What the roles started: Bifrost on every node, the worker on worker nodes.
pub(crate) struct StartedRoles {
    pub bifrost: Arc<Bifrost>,
    pub worker: Option<Arc<Worker>>,
}

/// Set once by `roles::run`; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct RunningRoles(Arc<OnceLock<StartedRoles>>);

impl RunningRoles {
    /// Publishes the started roles; a second call (never made) would be ignored.
    pub fn publish(&self, started: StartedRoles) {
        let _ = self.0.set(started);
    }

    /// This node's Bifrost, once the node runs.
    pub fn bifrost(&self) -> Option<&Arc<Bifrost>> {
        self.0.get().map(|s| &s.bifrost)
    }

    /// This node's partition processors, once it runs with the worker role.
    pub fn worker(&self) -> Option<&Arc<Worker>> {
        self.0.get().and_then(|s| s.worker.as_ref())
    }
}
