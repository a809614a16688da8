//! Which nodes answer, and for how long the others have not (pure: time is passed in).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use restate_types::PlainNodeId;

#[derive(Debug, Clone, Copy, Default)]
struct Observed {
    reachable: bool,
    /// Since when the node has not answered (first failed probe after an answer).
    unreachable_since: Option<Instant>,
}

/// Probe results per node. A node never probed is neither alive nor dead.
#[derive(Debug, Default)]
pub struct Liveness {
    nodes: BTreeMap<PlainNodeId, Observed>,
}

impl Liveness {
    pub fn observe(&mut self, node: PlainNodeId, reachable: bool, now: Instant) {
        let entry = self.nodes.entry(node).or_default();
        entry.reachable = reachable;
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
        l.observe(n, true, t0);
        assert!(l.is_alive(n));
        l.observe(n, false, t0 + Duration::from_secs(1));
        l.observe(n, false, t0 + Duration::from_secs(2));
        assert_eq!(l.unreachable_for(n, t0 + Duration::from_secs(5)), Some(Duration::from_secs(4)));
        assert_eq!(l.dead(Duration::from_secs(4), t0 + Duration::from_secs(5)), vec![n]);
        assert!(l.dead(Duration::from_secs(5), t0 + Duration::from_secs(5)).is_empty());
        l.observe(n, true, t0 + Duration::from_secs(6));
        assert!(l.dead(Duration::ZERO, t0 + Duration::from_secs(7)).is_empty());
    }
}
