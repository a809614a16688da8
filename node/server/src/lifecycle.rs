use std::time::Instant;

use restate_types::GenerationalNodeId;
use tokio::sync::watch;

/// Where a node is on its way to serving the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodePhase {
    Starting,
    /// No metadata server answered; the reason lists the addresses tried.
    WaitingForMetadata {
        reason: String,
    },
    /// The cluster has not been provisioned and this node will not do it by itself.
    WaitingForProvisioning,
    /// Registered in the cluster as this incarnation.
    Running {
        node_id: GenerationalNodeId,
    },
    /// The node cannot serve this cluster (the reason says why); it shuts down.
    Failed {
        reason: String,
    },
}

impl NodePhase {
    pub fn name(&self) -> &'static str {
        match self {
            NodePhase::Starting => "starting",
            NodePhase::WaitingForMetadata { .. } => "waiting-for-metadata",
            NodePhase::WaitingForProvisioning => "waiting-for-provisioning",
            NodePhase::Running { .. } => "running",
            NodePhase::Failed { .. } => "failed",
        }
    }

    /// What the node waits for, in words a user can act on.
    pub fn reason(&self) -> String {
        match self {
            NodePhase::Starting => "opening storage and starting servers".into(),
            NodePhase::WaitingForMetadata { reason } => format!("waiting for a metadata server: {reason}"),
            NodePhase::WaitingForProvisioning => "the cluster is not provisioned yet and auto-provision is off on this node; run `restatectl provision --address <node> --yes`".into(),
            NodePhase::Running { .. } => String::new(),
            NodePhase::Failed { reason } => reason.clone(),
        }
    }
}

/// The node's phase, observable by every server task.
#[derive(Clone)]
pub struct NodeState {
    phase: watch::Sender<NodePhase>,
    started: Instant,
}

impl NodeState {
    pub fn new() -> NodeState {
        NodeState { phase: watch::Sender::new(NodePhase::Starting), started: Instant::now() }
    }

    pub fn phase(&self) -> NodePhase {
        self.phase.borrow().clone()
    }

    pub fn set(&self, phase: NodePhase) {
        self.phase.send_if_modified(|current| {
            if *current == phase {
                return false;
            }
            tracing::info!(from = current.name(), to = phase.name(), reason = %phase.reason(), "node phase changed");
            *current = phase;
            true
        });
    }

    pub fn subscribe(&self) -> watch::Receiver<NodePhase> {
        self.phase.subscribe()
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl Default for NodeState {
    fn default() -> Self {
        Self::new()
    }
}
