//! Guarded rolling upgrades (pure). A new pod template (image, configuration) rolls one pod
//! at a time, highest ordinal first, through the StatefulSet's `rollingUpdate.partition`:
//! the operator holds the partition at the pods not yet allowed to restart and lowers it by
//! one only when every pod above runs the new revision and is ready, every node is alive,
//! every partition has a leader, the last restarted node has caught up (each of its
//! partition processors within [`MAX_CATCH_UP_LAG`] records of the leader's applied LSN,
//! [`catch_up_lag`]), and the next pod's node has handed its leaderships away
//! (`NodeCtl.PrepareRestart`). A pod that does not come back in [`STALL_AFTER`] stops the
//! roll there (`UpgradeStalled`) instead of taking the next.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};

use crate::crd::UpgradeStep;

/// How long a restarted pod may take to be ready on the new revision before the roll is
/// reported stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(120);

/// How far (in log records) a restarted node's partition processor may trail its leader's
/// applied LSN for the roll to go on.
pub const MAX_CATCH_UP_LAG: u64 = 1000;

/// What a restarted node still has to catch up, if anything: `processors` are its
/// (partition, applied LSN), `leaders` every partition's leader applied LSN. A partition it
/// does not run yet counts as behind; partitions without a known leader are left to the
/// `every partition led` check.
pub fn catch_up_lag(leaders: &BTreeMap<u32, u64>, processors: &BTreeMap<u32, u64>) -> Option<String> {
    let behind: Vec<String> = leaders
        .iter()
        .filter_map(|(partition, leader)| match processors.get(partition) {
            None => Some(format!("partition {partition} not running yet")),
            Some(applied) if leader.saturating_sub(*applied) > MAX_CATCH_UP_LAG => {
                Some(format!("partition {partition} at LSN {applied} of {leader}"))
            }
            Some(_) => None,
        })
        .collect();
    (!behind.is_empty()).then(|| behind.join(", "))
}

/// The StatefulSet annotation that records the roll's last step: written in the same apply
/// as the partition it lowered to, so a round always reads the step of the partition it
/// sees (the cluster's status, read from a cache, may be a round behind).
pub const STEP_ANNOTATION: &str = "restate.dev/roll-step";

/// The annotation value of `step`: `<partition> <RFC 3339 time>`.
pub fn step_annotation(step: &UpgradeStep) -> String {
    format!("{} {}", step.partition, step.time.0.to_rfc3339())
}

/// The step an annotation value records; `None` when it is not one [`step_annotation`] wrote.
pub fn parse_step_annotation(value: &str) -> Option<UpgradeStep> {
    let (partition, time) = value.split_once(' ')?;
    let time = DateTime::parse_from_rfc3339(time).ok()?.with_timezone(&Utc);
    Some(UpgradeStep { partition: partition.parse().ok()?, time: Time(time) })
}

/// How long the roll has been at `partition` by `step`'s record, at `now`; `None` when the
/// record is of another partition.
pub fn step_age(step: Option<&UpgradeStep>, partition: u32, now: DateTime<Utc>) -> Option<Duration> {
    step.filter(|step| u32::try_from(step.partition).ok() == Some(partition))
        .and_then(|step| (now - step.time.0).to_std().ok())
}

/// What the StatefulSet (as read before this round) shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollObservation {
    /// The operator built a different pod template than the StatefulSet has.
    pub template_changed: bool,
    pub provisioned: bool,
    /// `spec.replicas` and `spec.updateStrategy.rollingUpdate.partition` (0 if unset).
    pub replicas: u32,
    pub partition: u32,
    /// `status`: pods on the update revision, ready pods, and whether the controller has
    /// seen the current spec and found every pod on one revision.
    pub updated: u32,
    pub ready: u32,
    pub status_current: bool,
    pub one_revision: bool,
    /// What the cluster says of itself (alive nodes, partitions without an alive leader), if
    /// it answered.
    pub cluster: Option<(u32, u32)>,
    /// How long the partition has been at its value, when the status recorded it.
    pub step_age: Option<Duration>,
    /// What the last restarted pod's node still has to catch up ([`catch_up_lag`]), when it
    /// was asked and is behind.
    pub catching_up: Option<String>,
}

/// What to do this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollPlan {
    /// Nothing rolls: partition 0 (pods follow their template as Kubernetes does).
    Idle,
    /// Keep the partition at `partition`; `waiting` says for what; `stalled` when a
    /// restarted pod is overdue.
    Hold { partition: u32, waiting: String, stalled: Option<String> },
    /// Ask the node of pod `ordinal` to hand its leaderships away; once it leads nothing,
    /// lower the partition to `ordinal` (the StatefulSet restarts that pod).
    Next { partition: u32, ordinal: u32 },
}

impl RollPlan {
    /// The partition to apply this round (before a [`RollPlan::Next`] is carried out).
    pub fn partition(&self) -> u32 {
        match self {
            RollPlan::Idle => 0,
            RollPlan::Hold { partition, .. } | RollPlan::Next { partition, .. } => *partition,
        }
    }
}

/// The plan for this round; `pod(i)` names pod `i` in messages.
pub fn plan_roll(o: &RollObservation, pod: impl Fn(u32) -> String) -> RollPlan {
    if !o.provisioned || o.replicas == 0 {
        return RollPlan::Idle;
    }
    if o.template_changed {
        // A roll under way (or stalled) keeps its partition: the pods it restarted already
        // take the newer template at once (a stalled pod gets the fix), the rest roll on.
        let partition = if o.partition > 0 { o.partition.min(o.replicas) } else { o.replicas };
        return RollPlan::Hold {
            partition,
            waiting: format!("a new pod template: it rolls one pod at a time from {}", pod(partition - 1)),
            stalled: None,
        };
    }
    let partition = o.partition.min(o.replicas);
    if partition == 0 {
        return RollPlan::Idle;
    }
    if !o.status_current {
        let waiting = "the StatefulSet controller to pick up the template".to_owned();
        return RollPlan::Hold { partition, waiting, stalled: None };
    }
    if o.one_revision && o.updated >= o.replicas {
        // Every pod runs the template already (e.g. the same template again): no restart.
        return RollPlan::Idle;
    }
    let rolled = o.replicas - partition;
    if o.updated < rolled || o.ready < o.replicas {
        let waiting = if o.updated < rolled {
            format!("{} to restart on the new revision", pod(partition))
        } else {
            format!("every pod to be ready ({} of {})", o.ready, o.replicas)
        };
        let stalled = (rolled > 0 && o.step_age.is_some_and(|age| age >= STALL_AFTER)).then(|| {
            format!(
                "{} has not become ready on the new revision for {} s; the roll stops there (fix the image or \
                 configuration; the other pods keep running the previous one)",
                pod(partition),
                o.step_age.unwrap_or_default().as_secs()
            )
        });
        return RollPlan::Hold { partition, waiting, stalled };
    }
    match o.cluster {
        None => {
            RollPlan::Hold { partition, waiting: "the cluster to answer about its nodes".to_owned(), stalled: None }
        }
        Some((alive, _)) if alive < o.replicas => RollPlan::Hold {
            partition,
            waiting: format!("every node to be alive ({alive} of {})", o.replicas),
            stalled: None,
        },
        Some((_, unled)) if unled > 0 => RollPlan::Hold {
            partition,
            waiting: format!("every partition to have a leader ({unled} without one)"),
            stalled: None,
        },
        Some(_) if o.catching_up.is_some() => RollPlan::Hold {
            partition,
            waiting: format!("{} to catch up: {}", pod(partition), o.catching_up.as_deref().unwrap_or_default()),
            stalled: None,
        },
        Some(_) => RollPlan::Next { partition, ordinal: partition - 1 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(i: u32) -> String {
        format!("demo-{i}")
    }

    fn steady(partition: u32, updated: u32) -> RollObservation {
        RollObservation {
            template_changed: false,
            provisioned: true,
            replicas: 3,
            partition,
            updated,
            ready: 3,
            status_current: true,
            one_revision: false,
            cluster: Some((3, 0)),
            step_age: Some(Duration::from_secs(5)),
            catching_up: None,
        }
    }

    #[test]
    fn a_new_template_rolls_from_the_highest_pod_one_at_a_time() {
        let mut o = steady(0, 3);
        o.template_changed = true;
        assert!(matches!(plan_roll(&o, pod), RollPlan::Hold { partition: 3, .. }));
        // The controller saw it; nothing rolled yet: pod 2 is next.
        assert_eq!(plan_roll(&steady(3, 0), pod), RollPlan::Next { partition: 3, ordinal: 2 });
        // Pod 2 restarted and is ready: pod 1 is next; then pod 0.
        assert_eq!(plan_roll(&steady(2, 1), pod), RollPlan::Next { partition: 2, ordinal: 1 });
        assert_eq!(plan_roll(&steady(1, 2), pod), RollPlan::Next { partition: 1, ordinal: 0 });
        let mut done = steady(0, 3);
        done.one_revision = true;
        assert_eq!(plan_roll(&done, pod), RollPlan::Idle);
    }

    #[test]
    fn the_next_pod_waits_for_the_last_one_every_node_and_every_leader() {
        let mut restarting = steady(2, 0);
        restarting.ready = 2;
        match plan_roll(&restarting, pod) {
            RollPlan::Hold { partition: 2, waiting, stalled: None } => assert!(waiting.contains("demo-2"), "{waiting}"),
            other => panic!("{other:?}"),
        }
        let mut down = steady(2, 1);
        down.cluster = Some((2, 0));
        assert!(matches!(plan_roll(&down, pod), RollPlan::Hold { waiting, .. } if waiting.contains("alive (2 of 3)")));
        let mut unled = steady(2, 1);
        unled.cluster = Some((3, 4));
        assert!(matches!(plan_roll(&unled, pod), RollPlan::Hold { waiting, .. } if waiting.contains("4 without one")));
        let mut silent = steady(2, 1);
        silent.cluster = None;
        assert!(matches!(plan_roll(&silent, pod), RollPlan::Hold { .. }));
        let mut behind = steady(2, 1);
        behind.catching_up = Some("partition 0 at LSN 10 of 5000".into());
        assert!(matches!(plan_roll(&behind, pod), RollPlan::Hold { waiting, .. }
            if waiting == "demo-2 to catch up: partition 0 at LSN 10 of 5000"));
    }

    #[test]
    fn a_restarted_node_has_caught_up_within_the_bound() {
        let leaders: BTreeMap<u32, u64> = [(0, 5000), (1, 200)].into();
        assert_eq!(catch_up_lag(&leaders, &[(0, 4500), (1, 200)].into()), None);
        assert_eq!(
            catch_up_lag(&leaders, &[(0, 10)].into()).as_deref(),
            Some("partition 0 at LSN 10 of 5000, partition 1 not running yet")
        );
        assert_eq!(catch_up_lag(&leaders, &[(0, 5000 - MAX_CATCH_UP_LAG), (1, 300)].into()), None, "at the bound");
        assert_eq!(catch_up_lag(&BTreeMap::new(), &BTreeMap::new()), None, "no leader known: nothing to compare");
    }

    #[test]
    fn a_pod_that_does_not_come_back_stalls_the_roll_there() {
        let mut broken = steady(2, 1);
        broken.ready = 2;
        broken.step_age = Some(STALL_AFTER + Duration::from_secs(1));
        broken.updated = 0;
        match plan_roll(&broken, pod) {
            RollPlan::Hold { partition: 2, stalled: Some(why), .. } => assert!(why.contains("demo-2"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_new_template_during_a_roll_keeps_its_partition_so_a_stalled_pod_gets_the_fix() {
        let mut fixed = steady(2, 0);
        fixed.template_changed = true;
        fixed.ready = 2;
        assert!(matches!(plan_roll(&fixed, pod), RollPlan::Hold { partition: 2, .. }));
    }

    #[test]
    fn a_step_record_reads_back_and_ages_only_at_its_partition() {
        use k8s_openapi::chrono::TimeZone;
        let at = Utc.with_ymd_and_hms(2026, 12, 7, 1, 45, 20).unwrap();
        let step = UpgradeStep { partition: 2, time: Time(at) };
        let value = step_annotation(&step);
        assert_eq!(parse_step_annotation(&value), Some(step.clone()));
        for bad in ["", "2", "two 2026-12-07T01:45:20Z", "2 yesterday"] {
            assert_eq!(parse_step_annotation(bad), None, "{bad:?}");
        }
        let later = at + k8s_openapi::chrono::Duration::seconds(130);
        assert_eq!(step_age(Some(&step), 2, later), Some(Duration::from_secs(130)));
        assert_eq!(step_age(Some(&step), 1, later), None, "a record of another partition has no age");
        assert_eq!(step_age(None, 2, later), None);
    }

    #[test]
    fn without_a_change_or_before_provisioning_nothing_rolls() {
        let mut fresh = steady(0, 0);
        fresh.provisioned = false;
        fresh.template_changed = true;
        assert_eq!(plan_roll(&fresh, pod), RollPlan::Idle, "a new cluster starts every pod at once");
        let mut same = steady(3, 3);
        same.one_revision = true;
        assert_eq!(plan_roll(&same, pod), RollPlan::Idle, "the template was the same: no pod restarts");
        let mut unseen = steady(3, 0);
        unseen.status_current = false;
        assert!(matches!(plan_roll(&unseen, pod), RollPlan::Hold { partition: 3, .. }));
    }
}
