use std::collections::BTreeMap;

use restate_types::{PartitionId, PlainNodeId};
use serde::{Deserialize, Serialize};

use super::{NodesConfiguration, PartitionTable};

/// Where each partition's processors run, as the cluster controller decided. Workers
/// read it: the `leader` runs the partition's leader at `leader_epoch`, every node in
/// `followers` follows the log.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SchedulingPlan {
    pub partitions: BTreeMap<PartitionId, PartitionPlacement>,
}

impl SchedulingPlan {
    /// Whether the plan fits the cluster: every partition it places is in `table` and every
    /// node it names is in `nodes` (each checked when known). The error names the first
    /// partition or node that is not.
    pub fn check_against(
        &self,
        table: Option<&PartitionTable>,
        nodes: Option<&NodesConfiguration>,
    ) -> Result<(), String> {
        for (partition, placement) in &self.partitions {
            if let Some(table) = table {
                if !table.partitions.contains_key(partition) {
                    return Err(format!(
                        "it places partition {partition}, which the partition table does not have (partitions {})",
                        table.partitions.keys().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if let Some(nodes) = nodes {
                for node in std::iter::once(&placement.leader).chain(&placement.followers) {
                    if !nodes.nodes.contains_key(node) {
                        return Err(format!("partition {partition} names node {node}, which is not a registered node"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    pub leader: PlainNodeId,
    /// Raised at every change of leader; a leader's log records carry it, and records
    /// of a lower epoch than the last announced one are ignored (fencing).
    pub leader_epoch: u64,
    pub followers: Vec<PlainNodeId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_places_only_known_partitions_on_registered_nodes() {
        let table: PartitionTable = serde_json::from_str(
            r#"{"partitions": {"0": {"start_key": 0, "end_key": 18446744073709551615, "log_id": 0}}}"#,
        )
        .unwrap();
        let mut nodes = NodesConfiguration::default();
        nodes.register("n1", "http://n1:5122", &restate_types::RoleSet::all(), "s1", true, &Default::default());
        let plan = |partition: u16, leader: u32| SchedulingPlan {
            partitions: BTreeMap::from([(
                PartitionId(partition),
                PartitionPlacement { leader: PlainNodeId(leader), leader_epoch: 1, followers: vec![] },
            )]),
        };
        assert!(plan(0, 1).check_against(Some(&table), Some(&nodes)).is_ok());
        let err = plan(7, 1).check_against(Some(&table), Some(&nodes)).unwrap_err();
        assert!(err.contains("partition 7") && err.contains("does not have"), "{err}");
        let err = plan(0, 9).check_against(Some(&table), Some(&nodes)).unwrap_err();
        assert!(err.contains("node N9") || err.contains("node 9"), "{err}");
        assert!(plan(7, 9).check_against(None, None).is_ok(), "unknown objects are not checked");
    }
}
