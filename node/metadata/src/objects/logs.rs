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

impl Logs {
    /// Whether every chain is well-formed: at least one segment, base LSNs from at least 1
    /// and never descending (an empty sealed segment shares its base with the next), loglet ids below `next_loglet_id` and never reused. The
    /// error names the log and the rule that failed.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for (log, chain) in &self.logs {
            let Some(first) = chain.segments.first() else {
                return Err(format!("log {log} has no segment"));
            };
            if first.base_lsn.0 == 0 {
                return Err(format!("log {log}'s first segment starts at LSN 0 (LSNs start at 1)"));
            }
            for pair in chain.segments.windows(2) {
                if pair[1].base_lsn < pair[0].base_lsn {
                    return Err(format!(
                        "log {log}: a segment starting at LSN {} follows one starting at LSN {}",
                        pair[1].base_lsn, pair[0].base_lsn
                    ));
                }
            }
            for segment in &chain.segments {
                if segment.loglet_id >= self.next_loglet_id {
                    return Err(format!(
                        "log {log} uses loglet {} but next-loglet-id is {}",
                        segment.loglet_id, self.next_loglet_id
                    ));
                }
                if !seen.insert(segment.loglet_id) {
                    return Err(format!("loglet {} appears in more than one segment", segment.loglet_id));
                }
            }
        }
        Ok(())
    }
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
        assert_eq!(logs.check(), Ok(()));
        let mut reused = logs.clone();
        reused.logs.get_mut(&LogId(1)).unwrap().segments[0].loglet_id = LogletId(1);
        assert!(reused.check().unwrap_err().contains("more than one segment"));
        let mut unallocated = logs.clone();
        unallocated.logs.get_mut(&LogId(0)).unwrap().segments[0].loglet_id = LogletId(9);
        assert!(unallocated.check().unwrap_err().contains("next-loglet-id"));
        let mut empty = logs;
        empty.logs.get_mut(&LogId(2)).unwrap().segments.clear();
        assert!(empty.check().unwrap_err().contains("log 2 has no segment"));
    }
}
