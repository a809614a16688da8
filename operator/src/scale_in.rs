//! Scaling in safely (pure): the StatefulSet shrinks only after every pod that will go has
//! been drained (its log replicas, partition leaderships and metadata vote moved to the
//! pods that stay), and never below what the log replication in effect needs.
//!
//! The reconciler asks pod 0 to drain the leaving pods (`NodeCtl.DrainNode`, idempotent),
//! feeds the answers to [`plan_scale`], applies the StatefulSet at the size it returns,
//! and once the leaving pods are gone removes them from the cluster and deletes their
//! volume claims.

/// Node name of the pod with this ordinal (pods are named `<statefulset>-<ordinal>`, and
/// each node is named after its pod).
pub fn pod_name(statefulset: &str, ordinal: u32) -> String {
    format!("{statefulset}-{ordinal}")
}

/// What a drain request answered for one leaving pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainAnswer {
    pub pod: String,
    pub drained: bool,
    /// "drained" or what is left, or why the drain was refused.
    pub summary: String,
}

/// The size to give the StatefulSet this round and what the status should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePlan {
    pub statefulset_replicas: u32,
    /// Pods to drain this round (ordinals `spec.replicas..current`), empty when not scaling in.
    pub to_drain: Vec<String>,
    /// Set while a drain holds the StatefulSet at its size: "demo-4: 1 log segment(s) ...".
    pub draining: Option<String>,
    /// Set when the scale-in is refused: why, and what to do.
    pub refused: Option<String>,
}

/// Pods `wanted..current` leave when scaling in from `current` to `wanted`.
pub fn leaving_pods(statefulset: &str, current: u32, wanted: u32) -> Vec<String> {
    (wanted..current).map(|i| pod_name(statefulset, i)).collect()
}

/// Plans the StatefulSet's size. `current` is its size now (0 before it exists),
/// `wanted` the cluster's `spec.replicas`, `log_replication` the replication the cluster
/// runs at (None before it could be read), `drains` the answers for the leaving pods this
/// round (empty before they were asked).
pub fn plan_scale(
    statefulset: &str,
    current: u32,
    wanted: u32,
    log_replication: Option<u32>,
    provisioned: bool,
    drains: &[DrainAnswer],
) -> ScalePlan {
    let steady =
        |replicas: u32| ScalePlan { statefulset_replicas: replicas, to_drain: vec![], draining: None, refused: None };
    // Growing, steady, or nothing provisioned yet (no data to move): the spec's size.
    if wanted >= current || !provisioned {
        return steady(wanted);
    }
    let replication = match log_replication {
        Some(r) => r,
        None => {
            return ScalePlan {
                draining: Some("waiting to read the cluster's log replication before draining".into()),
                ..steady(current)
            }
        }
    };
    let needed = replication.saturating_mul(2).saturating_sub(1).max(1);
    if wanted < needed {
        return ScalePlan {
            refused: Some(format!(
                "{wanted} node(s) cannot hold log replication {replication} (needs {needed} = 2 x {replication} - 1); \
                 the cluster stays at {current}: lower spec.replication first"
            )),
            ..steady(current)
        };
    }
    let leaving = leaving_pods(statefulset, current, wanted);
    let answered_drained = |pod: &String| drains.iter().any(|d| &d.pod == pod && d.drained);
    if leaving.iter().all(answered_drained) {
        return steady(wanted);
    }
    let pending: Vec<String> = leaving
        .iter()
        .filter(|p| !answered_drained(p))
        .map(|p| match drains.iter().find(|d| &d.pod == p) {
            Some(answer) => format!("{p}: {}", answer.summary),
            None => format!("{p}: drain requested"),
        })
        .collect();
    ScalePlan { to_drain: leaving, draining: Some(pending.join("; ")), ..steady(current) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(pod: &str, drained: bool, summary: &str) -> DrainAnswer {
        DrainAnswer { pod: pod.into(), drained, summary: summary.into() }
    }

    #[test]
    fn growing_or_steady_takes_the_spec_size_at_once() {
        assert_eq!(plan_scale("demo", 3, 5, Some(2), true, &[]).statefulset_replicas, 5);
        assert_eq!(plan_scale("demo", 0, 3, None, false, &[]).statefulset_replicas, 3);
        let steady = plan_scale("demo", 3, 3, Some(2), true, &[]);
        assert_eq!((steady.statefulset_replicas, steady.draining, steady.refused), (3, None, None));
        // Not provisioned: nothing to drain.
        assert_eq!(plan_scale("demo", 5, 3, None, false, &[]).statefulset_replicas, 3);
    }

    #[test]
    fn scale_in_holds_the_size_until_every_leaving_pod_is_drained() {
        let first = plan_scale("demo", 5, 3, Some(2), true, &[]);
        assert_eq!(first.statefulset_replicas, 5);
        assert_eq!(first.to_drain, vec!["demo-3".to_owned(), "demo-4".to_owned()]);
        assert!(first.draining.as_deref().unwrap().contains("demo-3: drain requested"), "{first:?}");

        let half = plan_scale(
            "demo",
            5,
            3,
            Some(2),
            true,
            &[answer("demo-3", true, "drained"), answer("demo-4", false, "leads 1 partition(s)")],
        );
        assert_eq!(half.statefulset_replicas, 5);
        assert_eq!(half.draining.as_deref(), Some("demo-4: leads 1 partition(s)"));

        let done = plan_scale(
            "demo",
            5,
            3,
            Some(2),
            true,
            &[answer("demo-3", true, "drained"), answer("demo-4", true, "drained")],
        );
        assert_eq!((done.statefulset_replicas, done.draining, done.refused), (3, None, None));
    }

    #[test]
    fn scale_in_below_what_the_replication_needs_is_refused() {
        let refused = plan_scale("demo", 3, 2, Some(2), true, &[]);
        assert_eq!(refused.statefulset_replicas, 3);
        assert!(refused.to_drain.is_empty());
        let why = refused.refused.unwrap();
        assert!(why.contains("cannot hold log replication 2 (needs 3"), "{why}");
        // Replication 1: one node is enough.
        assert_eq!(plan_scale("demo", 3, 1, Some(1), true, &[]).to_drain, vec!["demo-1", "demo-2"]);
        // Unknown replication: hold and say so.
        let unknown = plan_scale("demo", 5, 3, None, true, &[]);
        assert_eq!(unknown.statefulset_replicas, 5);
        assert!(unknown.to_drain.is_empty());
    }
}
