//! Kubernetes Events on a RestateCluster (`kubectl describe rsc <name>`) for the transitions
//! that matter: provisioned or failing to, scaling started and finished, degraded and
//! recovered, replication changed, a snapshot taken or failed.
//!
//! [`transitions`] compares the status before and after a round, so an event is published
//! once per transition, not every round. The exceptions are outcomes that leave no trace in
//! the status: a snapshot call that failed as a whole ([`snapshot_call_failed`]) and what
//! deletion did with the volume claims; the event recorder folds repeats of those into one
//! Event with a count.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};

use crate::conditions::ConditionType;
use crate::crd::{ClusterPhase, RestateCluster, RestateClusterStatus};

/// The events.k8s.io limit of an Event's note.
const NOTE_LIMIT: usize = 1024;

/// One Event to publish on the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    pub warning: bool,
    /// `PascalCase`, what `kubectl describe` shows as Reason.
    pub reason: &'static str,
    /// What the operator was doing: Provision, Scale, Upgrade, Configure, Resize, Observe,
    /// Replicate, Snapshot, Delete.
    pub action: &'static str,
    pub note: String,
}

impl ClusterEvent {
    fn normal(reason: &'static str, action: &'static str, note: impl Into<String>) -> ClusterEvent {
        ClusterEvent { warning: false, reason, action, note: note.into() }
    }

    fn warning(reason: &'static str, action: &'static str, note: impl Into<String>) -> ClusterEvent {
        ClusterEvent { warning: true, reason, action, note: note.into() }
    }
}

fn find(status: Option<&RestateClusterStatus>, kind: ConditionType) -> Option<&Condition> {
    status?.conditions.as_ref()?.iter().find(|c| c.type_ == kind.as_str())
}

/// The events for the change from `old` (absent before the first round) to `new`.
pub fn transitions(old: Option<&RestateClusterStatus>, new: &RestateClusterStatus) -> Vec<ClusterEvent> {
    let mut events = Vec::new();
    let message = |kind| find(Some(new), kind).map(|c| c.message.clone()).unwrap_or_default();

    let provisioned = |s: Option<&RestateClusterStatus>| s.and_then(|s| s.provisioned) == Some(true);
    if !provisioned(old) && provisioned(Some(new)) {
        events.push(ClusterEvent::normal("Provisioned", "Provision", message(ConditionType::Provisioned)));
    }
    let failing = |s| find(s, ConditionType::Provisioned).is_some_and(|c| c.reason == "ProvisioningFailed");
    if !failing(old) && failing(Some(new)) {
        events.push(ClusterEvent::warning("ProvisionFailed", "Provision", message(ConditionType::Provisioned)));
    }

    let scaling = |s| find(s, ConditionType::Scaling).is_some_and(|c| c.status == "True");
    match (scaling(old), scaling(Some(new))) {
        (false, true) => events.push(ClusterEvent::normal("ScalingStarted", "Scale", message(ConditionType::Scaling))),
        (true, false) => events.push(ClusterEvent::normal("ScalingFinished", "Scale", message(ConditionType::Scaling))),
        _ => {}
    }

    // By phase, not by the Degraded condition: nodes that are not ready yet while scaling
    // out are no news (the phase is Scaling then).
    match (old.and_then(|s| s.phase), new.phase) {
        (old, Some(ClusterPhase::Degraded)) if old != Some(ClusterPhase::Degraded) => {
            events.push(ClusterEvent::warning("Degraded", "Observe", message(ConditionType::Degraded)))
        }
        (Some(ClusterPhase::Degraded), Some(ClusterPhase::Running)) => {
            events.push(ClusterEvent::normal("Recovered", "Observe", message(ConditionType::Degraded)))
        }
        _ => {}
    }

    if let (Some(from), Some(to)) = (old.and_then(|s| s.log_replication), new.log_replication) {
        let note = format!("log replication changed from {from} to {to}");
        if to > from {
            events.push(ClusterEvent::normal("ReplicationRaised", "Replicate", note));
        } else if to < from {
            events.push(ClusterEvent::normal("ReplicationLowered", "Replicate", note));
        } else if let (Some(before), Some(after)) =
            (old.and_then(|s| s.log_replication_property.as_ref()), new.log_replication_property.as_ref())
        {
            if before != after {
                let note = format!("log replication changed from {before} to {after}");
                events.push(ClusterEvent::normal("ReplicationSpreadChanged", "Replicate", note));
            }
        }
    }

    let holds = |s, kind| find(s, kind).is_some_and(|c| c.status == "True");
    match (holds(old, ConditionType::Upgrading), holds(Some(new), ConditionType::Upgrading)) {
        (false, true) => {
            events.push(ClusterEvent::normal("UpgradeStarted", "Upgrade", message(ConditionType::Upgrading)))
        }
        (true, false) => {
            events.push(ClusterEvent::normal("UpgradeFinished", "Upgrade", message(ConditionType::Upgrading)))
        }
        _ => {}
    }
    let stalled = |s| find(s, ConditionType::UpgradeStalled).is_some_and(|c| c.status == "True");
    if !stalled(old) && stalled(Some(new)) {
        events.push(ClusterEvent::warning("UpgradeStalled", "Upgrade", message(ConditionType::UpgradeStalled)));
    }
    let refused = |s| find(s, ConditionType::UpgradeRefused).is_some_and(|c| c.status == "True");
    if !refused(old) && refused(Some(new)) {
        events.push(ClusterEvent::warning("UpgradeRefused", "Upgrade", message(ConditionType::UpgradeRefused)));
    }
    // Every new invalid generation is news, not only the first.
    let invalid = |s: Option<&RestateClusterStatus>| {
        find(s, ConditionType::ConfigInvalid).filter(|c| c.status == "True").map(|c| c.observed_generation)
    };
    if let Some(generation) = invalid(Some(new)) {
        if invalid(old) != Some(generation) {
            events.push(ClusterEvent::warning("ConfigInvalid", "Configure", message(ConditionType::ConfigInvalid)));
        }
    }

    let snapshot_time = |s: Option<&RestateClusterStatus>| s?.last_snapshot.as_ref()?.time.clone();
    if let Some(snapshot) = new.last_snapshot.as_ref().filter(|_| snapshot_time(Some(new)) != snapshot_time(old)) {
        let note = snapshot.message.clone().unwrap_or_default();
        if snapshot.failed_partitions.unwrap_or(0) > 0 {
            let failed = snapshot.failed_partitions.unwrap_or(0);
            events.push(ClusterEvent::warning(
                "SnapshotFailed",
                "Snapshot",
                format!("{failed} partitions failed: {note}"),
            ));
        } else {
            events.push(ClusterEvent::normal("SnapshotTaken", "Snapshot", note));
        }
    }
    events
}

/// A scheduled snapshot that failed as a whole (pod 0 unreachable, the call refused).
pub fn snapshot_call_failed(reason: &str) -> ClusterEvent {
    ClusterEvent::warning("SnapshotFailed", "Snapshot", format!("scheduled snapshot failed, retrying: {reason}"))
}

/// A guarded roll restarts the next pod.
pub fn upgrade_step(note: String) -> ClusterEvent {
    ClusterEvent::normal("UpgradeStep", "Upgrade", note)
}

/// The claims grew for a larger `spec.storage.size`.
pub fn volumes_grown(note: String) -> ClusterEvent {
    ClusterEvent::normal("VolumesGrown", "Resize", note)
}

/// What deletion did with the volume claims.
pub fn claims_on_delete(deleted: bool, claims: &[String]) -> ClusterEvent {
    let list = if claims.is_empty() { "none found".to_owned() } else { claims.join(", ") };
    if deleted {
        ClusterEvent::normal(
            "VolumeClaimsDeleted",
            "Delete",
            format!("deleted the volume claims ({list}) as spec.storage.deleteClaimsOnDelete asks"),
        )
    } else {
        ClusterEvent::normal(
            "VolumeClaimsKept",
            "Delete",
            format!("kept the volume claims ({list}): spec.storage.deleteClaimsOnDelete is false; delete them by hand to free the volumes"),
        )
    }
}

/// `text` cut to at most `limit` bytes at a character boundary.
fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Publishes `events` on `cluster`. Failures are logged, never fatal to the round: events
/// are a report, the status is the record.
pub async fn publish(recorder: &Recorder, cluster: &RestateCluster, events: &[ClusterEvent]) {
    let reference = cluster.object_ref(&());
    for event in events {
        let kube_event = Event {
            type_: if event.warning { EventType::Warning } else { EventType::Normal },
            reason: event.reason.to_owned(),
            note: Some(truncated(&event.note, NOTE_LIMIT)),
            action: event.action.to_owned(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&kube_event, &reference).await {
            tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), reason = event.reason, "could not publish an event: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::chrono::{TimeZone, Utc};

    use super::*;
    use crate::crd::SnapshotSummary;
    use crate::objects::fixtures;
    use crate::status::{next_status, Observation};

    fn at(seconds: i64) -> Time {
        Time(Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap())
    }

    fn reasons(events: &[ClusterEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.reason).collect()
    }

    /// Runs rounds of `observations` through `next_status`, returning each round's events.
    fn rounds(cluster: &mut RestateCluster, observations: Vec<Observation>) -> Vec<Vec<&'static str>> {
        let mut all = Vec::new();
        for (i, observed) in observations.into_iter().enumerate() {
            let status = next_status(cluster, &observed, at(i as i64 * 10));
            all.push(reasons(&transitions(cluster.status.as_ref(), &status)));
            cluster.status = Some(status);
        }
        all
    }

    fn observed(ready: u32, statefulset: u32) -> Observation {
        Observation { ready_pods: ready, statefulset_replicas: statefulset, ..Observation::default() }
    }

    #[test]
    fn provisioning_is_reported_once() {
        let mut cluster = fixtures::cluster();
        let failing = Observation { provision_failure: Some("cannot reach demo-0".into()), ..observed(3, 3) };
        let provisioned = Observation { provisioned_now: Some("fp".into()), ..observed(3, 3) };
        let events = rounds(
            &mut cluster,
            vec![observed(1, 3), failing.clone(), failing, provisioned, observed(3, 3), observed(3, 3)],
        );
        assert_eq!(events, vec![vec![], vec!["ProvisionFailed"], vec![], vec!["Provisioned"], vec![], vec![]]);
        let status = cluster.status.as_ref().unwrap();
        let note = &transitions(None, status)[0].note;
        assert!(note.contains("fingerprint fp"), "{note}");
    }

    #[test]
    fn degraded_recovered_and_scaling_are_reported_on_change() {
        let mut cluster = fixtures::cluster();
        let provisioned = Observation { provisioned_now: Some("fp".into()), ..observed(3, 3) };
        rounds(&mut cluster, vec![provisioned]);
        let events = rounds(&mut cluster, vec![observed(2, 3), observed(2, 3), observed(3, 3)]);
        assert_eq!(events, vec![vec!["Degraded"], vec![], vec!["Recovered"]]);

        cluster.spec.replicas = 5;
        let events = rounds(&mut cluster, vec![observed(3, 3), observed(3, 5), observed(5, 5)]);
        assert_eq!(events, vec![vec!["ScalingStarted"], vec![], vec!["ScalingFinished"]]);
    }

    #[test]
    fn replication_changes_are_reported_but_not_its_first_reading() {
        let mut cluster = fixtures::cluster();
        let first = Observation {
            provisioned_now: Some("fp".into()),
            log_replication: Some(restate_types::ReplicationProperty::nodes(1)),
            ..observed(3, 3)
        };
        let raised =
            Observation { log_replication: Some(restate_types::ReplicationProperty::nodes(2)), ..observed(3, 3) };
        let events = rounds(&mut cluster, vec![first, raised.clone(), raised]);
        assert_eq!(events, vec![vec!["Provisioned"], vec!["ReplicationRaised"], vec![]]);
        let lowered =
            Observation { log_replication: Some(restate_types::ReplicationProperty::nodes(1)), ..observed(3, 3) };
        let events = rounds(&mut cluster, vec![lowered]);
        assert_eq!(events, vec![vec!["ReplicationLowered"]]);
    }

    #[test]
    fn each_new_snapshot_is_reported_once() {
        let mut cluster = fixtures::cluster();
        rounds(&mut cluster, vec![Observation { provisioned_now: Some("fp".into()), ..observed(3, 3) }]);
        let snapshot = |time: i64, failed: i32| SnapshotSummary {
            time: Some(at(time)),
            partitions: Some(24 - failed),
            failed_partitions: Some(failed),
            message: Some(if failed > 0 {
                "partition 3: no leader".into()
            } else {
                "24 partitions snapshotted".into()
            }),
            ..SnapshotSummary::default()
        };
        let with = |s| Observation { last_snapshot: Some(s), ..observed(3, 3) };
        let events = rounds(&mut cluster, vec![with(snapshot(100, 0)), observed(3, 3), with(snapshot(200, 1))]);
        assert_eq!(events, vec![vec!["SnapshotTaken"], vec![], vec!["SnapshotFailed"]]);
        let status = cluster.status.as_ref().unwrap();
        let mut before = status.clone();
        before.last_snapshot = None;
        let failed = &transitions(Some(&before), status)[0];
        assert!(failed.warning);
        assert_eq!(failed.note, "1 partitions failed: partition 3: no leader");
    }

    #[test]
    fn notes_fit_the_events_api() {
        assert_eq!(truncated("short", NOTE_LIMIT), "short");
        let long = "é".repeat(1000);
        let cut = truncated(&long, NOTE_LIMIT);
        assert!(cut.len() <= NOTE_LIMIT && cut.ends_with("..."), "{}", cut.len());
        assert!(claims_on_delete(false, &["data-demo-0".into()]).note.contains("deleteClaimsOnDelete is false"));
    }
}
