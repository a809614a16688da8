use std::collections::BTreeMap;

use restate_types::{LogId, LogProviderKind, LogletId, Lsn, PlainNodeId};
use serde::{Deserialize, Serialize};

/// Every virtual log (one per partition) as a chain of segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    pub logs: BTreeMap<LogId, Chain>,
    /// The next unused loglet id in the cluster.
    pub next_loglet_id: LogletId,
}

impl Default for Logs {
    fn default() -> Self {
        Logs { logs: BTreeMap::new(), next_loglet_id: LogletId(1) }
    }
}

/// Segments ordered by base LSN; the last one is the writable tail segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The first LSN this segment holds.
    pub base_lsn: Lsn,
    pub kind: LogProviderKind,
    pub loglet_id: LogletId,
    pub replication: u32,
    /// Nodes that hold (or will hold) the segment's records; empty while a replicated
    /// segment still waits for enough log-servers. Repair may replace a member.
    pub nodeset: Vec<PlainNodeId>,
    /// Members added by repair after the loglet's group was formed: they join it empty
    /// (the leader sends them a snapshot) instead of bootstrapping it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<PlainNodeId>,
}

impl Segment {
    /// Whether `node` forms the loglet's group at creation (bootstraps it) rather than
    /// joining it later. Only a never-repaired segment is bootstrapped.
    pub fn bootstraps_on(&self, node: PlainNodeId) -> bool {
        self.joined.is_empty() && self.nodeset.contains(&node)
    }
}

impl Logs {
    /// One single-segment chain per log, all of `kind`, placed on `nodeset`.
    pub fn initial(num_logs: u32, kind: LogProviderKind, replication: u32, nodeset: Vec<PlainNodeId>) -> Logs {
        let mut logs = Logs::default();
        for log in 0..num_logs {
            let loglet_id = logs.next_loglet_id;
            logs.next_loglet_id = LogletId(loglet_id.0 + 1);
            let segment = Segment {
                base_lsn: Lsn::OLDEST,
                kind,
                loglet_id,
                replication,
                nodeset: nodeset.clone(),
                joined: vec![],
            };
            logs.logs.insert(LogId(log), Chain { segments: vec![segment] });
        }
        logs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_logs_have_unique_loglets() {
        let logs = Logs::initial(4, LogProviderKind::Local, 1, vec![PlainNodeId(1)]);
        let mut ids: Vec<_> = logs.logs.values().map(|c| c.segments[0].loglet_id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 4);
        assert_eq!(logs.next_loglet_id, LogletId(5));
    }
}
