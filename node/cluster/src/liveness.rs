//! Which nodes answer, for how long the others have not, and which refuse connections
//! outright (no process: failed at once, no need to wait out a grace period). Pure: time
//! is passed in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use restate_types::PlainNodeId;

use crate::probe::Probe;

#[derive(Debug, Clone, Copy, Default)]
struct Observed {
    reachable: bool,
    /// The last probe was refused (nothing listens on the node's port).
    refused: bool,
    /// Since when the node has not answered (first failed probe after an answer).
    unreachable_since: Option<Instant>,
}

/// Probe results per node. A node never probed is neither alive nor dead.
#[derive(Debug, Default)]
pub struct Liveness {
    nodes: BTreeMap<PlainNodeId, Observed>,
}

impl Liveness {
    pub fn observe(&mut self, node: PlainNodeId, probe: Probe, now: Instant) {
        let entry = self.nodes.entry(node).or_default();
        let reachable = probe == Probe::Answered;
        entry.reachable = reachable;
        entry.refused = probe == Probe::Refused;
        if reachable {
            entry.unreachable_since = None;
        } else if entry.unreachable_since.is_none() {
            entry.unreachable_since = Some(now);
        }
    }

    /// Forgets nodes no longer in the cluster.
    pub fn retain(&mut self, keep: impl Fn(PlainNodeId) -> bool) {
        self.nodes.retain(|node, _| keep(*node));
    }

    /// Whether the last probe of `node` answered.
    pub fn is_alive(&self, node: PlainNodeId) -> bool {
        self.nodes.get(&node).is_some_and(|o| o.reachable)
    }

    /// How long `node` has not answered; `None` if it answers or was never probed.
    pub fn unreachable_for(&self, node: PlainNodeId, now: Instant) -> Option<Duration> {
        self.nodes.get(&node)?.unreachable_since.map(|since| now.saturating_duration_since(since))
    }

    /// Nodes unreachable for at least `grace`.
    pub fn dead(&self, grace: Duration, now: Instant) -> Vec<PlainNodeId> {
        self.nodes.keys().copied().filter(|n| self.unreachable_for(*n, now).is_some_and(|d| d >= grace)).collect()
    }

    /// Nodes unreachable for at least `grace`, or whose last probe was refused.
    pub fn failed(&self, grace: Duration, now: Instant) -> Vec<PlainNodeId> {
        self.nodes
            .iter()
            .filter(|(n, o)| o.refused || self.unreachable_for(**n, now).is_some_and(|d| d >= grace))
            .map(|(n, _)| *n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_time_counts_from_the_first_failed_probe_and_resets_on_an_answer() {
        let mut l = Liveness::default();
        let n = PlainNodeId(3);
        let t0 = Instant::now();
        assert!(!l.is_alive(n));
        assert_eq!(l.unreachable_for(n, t0), None);
        l.observe(n, Probe::Answered, t0);
        assert!(l.is_alive(n));
        l.observe(n, Probe::Silent, t0 + Duration::from_secs(1));
        l.observe(n, Probe::Silent, t0 + Duration::from_secs(2));
        assert_eq!(l.unreachable_for(n, t0 + Duration::from_secs(5)), Some(Duration::from_secs(4)));
        assert_eq!(l.dead(Duration::from_secs(4), t0 + Duration::from_secs(5)), vec![n]);
        assert!(l.dead(Duration::from_secs(5), t0 + Duration::from_secs(5)).is_empty());
        l.observe(n, Probe::Answered, t0 + Duration::from_secs(6));
        assert!(l.dead(Duration::ZERO, t0 + Duration::from_secs(7)).is_empty());
    }

    #[test]
    fn a_refused_node_has_failed_at_once_a_silent_one_after_the_grace() {
        let mut l = Liveness::default();
        let (refusing, silent) = (PlainNodeId(1), PlainNodeId(2));
        let t0 = Instant::now();
        l.observe(refusing, Probe::Refused, t0);
        l.observe(silent, Probe::Silent, t0);
        let grace = Duration::from_secs(2);
        assert_eq!(l.failed(grace, t0), vec![refusing]);
        assert_eq!(l.failed(grace, t0 + grace), vec![refusing, silent]);
        assert!(l.dead(grace, t0).is_empty(), "log repair still waits out its grace period");
        l.observe(refusing, Probe::Answered, t0 + grace);
        assert_eq!(l.failed(grace, t0 + grace), vec![silent]);
    }
}
