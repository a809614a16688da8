use std::collections::BTreeMap;

use restate_types::{PartitionId, PlainNodeId};
use serde::{Deserialize, Serialize};

/// Where each partition's processors run, as the cluster controller decided. Workers
/// read it: the `leader` runs the partition's leader at `leader_epoch`, every node in
/// `followers` follows the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SchedulingPlan {
    pub partitions: BTreeMap<PartitionId, PartitionPlacement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    pub leader: PlainNodeId,
    /// Raised at every change of leader; a leader's log records carry it, and records
    /// of a lower epoch than the last announced one are ignored (fencing).
    pub leader_epoch: u64,
    pub followers: Vec<PlainNodeId>,
}
