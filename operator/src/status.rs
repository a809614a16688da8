//! The status a reconcile round writes, computed from what it observed: phase, ready
//! nodes, the provisioning record (which never goes back), replication and conditions.
//! Pure: the reconciler gathers an [`Observation`] and writes what [`next_status`] returns.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{condition, config_overridden, replication_pending, set_condition, ConditionType};
use crate::config::OverriddenKey;
use crate::crd::{
    ClusterPhase, RestateCluster, RestateClusterStatus, SnapshotSummary, StorageFormatCheck, UpgradeStep,
};
use crate::replication::ReplicationPlan;
use restate_types::ReplicationProperty;

/// What one reconcile round saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Pods of the StatefulSet that pass their readiness probe.
    pub ready_pods: u32,
    /// The StatefulSet's current `spec.replicas` (differs from the cluster's
    /// `spec.replicas` while scaling in is held back by a drain).
    pub statefulset_replicas: u32,
    /// The StatefulSet's `spec.replicas` before this round applied its size (0: none yet):
    /// a round that resizes it is scaling although it reads the new size back.
    pub statefulset_replicas_before: u32,
    /// A new pod template is rolling through the pods (the StatefulSet's update revision
    /// is not every pod's yet): what the roll has done so far.
    pub rolling: Option<String>,
    /// Why `spec.config` / `spec.env` is not a configuration the node accepts (nothing was
    /// applied this round).
    pub config_invalid: Option<String>,
    /// Why a guarded roll stopped (a restarted pod that did not come back), if it did.
    pub upgrade_stalled: Option<String>,
    /// Why the roll to `spec.image` is refused (it does not read the cluster's data), if it
    /// is: no node restarts on it.
    pub upgrade_refused: Option<String>,
    /// The storage-format check's answer, when a new image answered it this round.
    pub storage_format_check: Option<StorageFormatCheck>,
    /// Pods on the newest template, as the StatefulSet counts them.
    pub updated_pods: Option<u32>,
    /// The roll's last step as the StatefulSet records it (annotation `restate.dev/roll-step`).
    pub upgrade_step: Option<UpgradeStep>,
    /// The fingerprint provisioning returned this round, if it ran.
    pub provisioned_now: Option<String>,
    /// Why provisioning failed this round, if it ran and failed.
    pub provision_failure: Option<String>,
    /// Nodes the cluster itself reports alive (node control), when it could be asked.
    pub alive_nodes: Option<u32>,
    /// The log replication the cluster's configuration says, when it could be asked.
    pub log_replication: Option<ReplicationProperty>,
    /// Why the cluster refused the replication the spec asks for (e.g. its zones cannot
    /// hold the spread), when it did this round.
    pub replication_refused: Option<String>,
    /// Members of the replicated metadata store, when they could be listed.
    pub metadata_members: Option<Vec<String>>,
    /// The node being drained before a scale-in, if any.
    pub draining: Option<String>,
    /// Why a scale-in is refused (the StatefulSet keeps its size), if it is.
    pub scale_in_refused: Option<String>,
    /// Operator-owned keys the user set in `spec.config` / `spec.env`.
    pub overridden: Vec<OverriddenKey>,
    /// The snapshots this round made (see [`crate::snapshot_schedule`]).
    pub last_snapshot: Option<SnapshotSummary>,
}

/// The status after this round: `cluster.status` (possibly absent) updated with
/// `observed` at `now`. `provisioned` and `clusterFingerprint` never go back once set;
/// condition transition times move only when a condition's status changes.
pub fn next_status(cluster: &RestateCluster, observed: &Observation, now: Time) -> RestateClusterStatus {
    let generation = cluster.metadata.generation;
    let previous = cluster.status.clone().unwrap_or_default();
    let wanted = u32::try_from(cluster.spec.replicas).unwrap_or(0);
    let provisioned = previous.provisioned == Some(true) || observed.provisioned_now.is_some();
    let fingerprint = previous.cluster_fingerprint.clone().or_else(|| observed.provisioned_now.clone());
    let all_ready = observed.ready_pods >= wanted && wanted > 0;
    // Nodes added by a scale-out are still joining until they are ready: the cluster stays
    // Scaling (not Degraded) after the StatefulSet has its new size.
    let joining = previous.phase == Some(ClusterPhase::Scaling) && !all_ready;
    let resized = observed.statefulset_replicas_before != 0 && observed.statefulset_replicas_before != wanted;
    let scaling =
        provisioned && (observed.statefulset_replicas != wanted || resized || observed.draining.is_some() || joining);
    // A refused image is no roll: the nodes keep running theirs.
    let upgrading = provisioned && observed.rolling.is_some() && !scaling && observed.upgrade_refused.is_none();
    let phase = match (provisioned, all_ready) {
        (false, false) => ClusterPhase::Pending,
        (false, true) => ClusterPhase::Provisioning,
        (true, _) if scaling => ClusterPhase::Scaling,
        (true, _) if upgrading => ClusterPhase::Upgrading,
        (true, true) => ClusterPhase::Running,
        (true, false) => ClusterPhase::Degraded,
    };
    // Pods restarting in a planned roll, or joining a scale-out, are no failure.
    let degraded = provisioned && !all_ready && !scaling && !upgrading;

    let nodes_for_replication = observed.alive_nodes.unwrap_or(observed.ready_pods).min(wanted);
    let plan = ReplicationPlan::new(cluster.spec.replication_nodes(), nodes_for_replication);

    let mut conditions = previous.conditions.clone().unwrap_or_default();
    let ready_message = format!("{} of {wanted} nodes ready", observed.ready_pods.min(wanted));
    let updates = [
        condition(
            ConditionType::Ready,
            provisioned && all_ready && !scaling,
            if !provisioned {
                "NotProvisioned"
            } else if all_ready {
                "AllNodesReady"
            } else {
                "NodesNotReady"
            },
            ready_message.clone(),
            generation,
            now.clone(),
        ),
        condition(
            ConditionType::Provisioned,
            provisioned,
            if provisioned {
                "Provisioned"
            } else if observed.provision_failure.is_some() {
                "ProvisioningFailed"
            } else if all_ready {
                "Provisioning"
            } else {
                "WaitingForPods"
            },
            match (&fingerprint, provisioned, &observed.provision_failure) {
                (Some(fingerprint), true, _) => format!("provisioned once through pod 0; fingerprint {fingerprint}"),
                (_, false, Some(failure)) => format!("provisioning through pod 0 failed, retrying: {failure}"),
                _ if all_ready => "every pod runs; provisioning through pod 0".to_owned(),
                _ => format!("waiting for every pod to run before provisioning ({ready_message})"),
            },
            generation,
            now.clone(),
        ),
        condition(
            ConditionType::Scaling,
            scaling,
            match (&observed.scale_in_refused, scaling) {
                (Some(_), _) => "ScaleInRefused",
                (None, true) => "ReplicasChanging",
                (None, false) => "Stable",
            },
            match (&observed.scale_in_refused, &observed.draining) {
                (Some(why), _) => format!("scaling in to {wanted} refused: {why}"),
                (None, Some(node)) => format!("draining {node} before the StatefulSet shrinks to {wanted}"),
                (None, None) if observed.statefulset_replicas != wanted => {
                    format!("from {} to {wanted} nodes", observed.statefulset_replicas)
                }
                (None, None) if scaling => {
                    format!("{} of {wanted} nodes ready; the new nodes are joining", observed.ready_pods)
                }
                (None, None) => format!("{wanted} nodes"),
            },
            generation,
            now.clone(),
        ),
        condition(
            ConditionType::Degraded,
            degraded,
            if degraded {
                "NodesNotReady"
            } else if provisioned && !all_ready {
                "PlannedChange"
            } else {
                "Healthy"
            },
            ready_message,
            generation,
            now.clone(),
        ),
        condition(
            ConditionType::Upgrading,
            upgrading,
            if upgrading { "RollingPods" } else { "UpToDate" },
            match &observed.rolling {
                Some(progress) if upgrading => progress.clone(),
                _ => "every pod runs the current pod template".to_owned(),
            },
            generation,
            now.clone(),
        ),
        condition(
            ConditionType::UpgradeStalled,
            observed.upgrade_stalled.is_some(),
            if observed.upgrade_stalled.is_some() { "PodNotReady" } else { "NotStalled" },
            observed.upgrade_stalled.clone().unwrap_or_else(|| "no roll is stuck".to_owned()),
            generation,
            now.clone(),
        ),
        condition(
            ConditionType::UpgradeRefused,
            observed.upgrade_refused.is_some(),
            if observed.upgrade_refused.is_some() { "StorageFormatUnsupported" } else { "Accepted" },
            observed
                .upgrade_refused
                .clone()
                .unwrap_or_else(|| "no roll is refused: spec.image reads the cluster's data".to_owned()),
            generation,
            now.clone(),
        ),
        condition(
            ConditionType::ConfigInvalid,
            observed.config_invalid.is_some(),
            if observed.config_invalid.is_some() { "InvalidConfig" } else { "Valid" },
            match &observed.config_invalid {
                Some(why) => format!("nothing of generation {} is rolled out: {why}", generation.unwrap_or(0)),
                None => "spec.config and spec.env make a configuration the node accepts".to_owned(),
            },
            generation,
            now.clone(),
        ),
        match &observed.replication_refused {
            Some(why) => condition(
                ConditionType::ReplicationPending,
                true,
                "ReplicationRefused",
                why.clone(),
                generation,
                now.clone(),
            ),
            None => replication_pending(&plan, generation, now.clone()),
        },
        config_overridden(&observed.overridden, generation, now.clone()),
    ];
    for update in updates {
        set_condition(&mut conditions, update);
    }

    RestateClusterStatus {
        observed_generation: generation,
        phase: Some(phase),
        ready_nodes: Some(i32::try_from(observed.ready_pods).unwrap_or(i32::MAX)),
        provisioned: Some(provisioned),
        cluster_fingerprint: fingerprint,
        metadata_members: observed.metadata_members.clone().or(previous.metadata_members),
        log_replication: observed
            .log_replication
            .map(|r| i32::try_from(r.node).unwrap_or(i32::MAX))
            .or(previous.log_replication),
        log_replication_property: observed
            .log_replication
            .map(|r| r.to_string())
            .or(previous.log_replication_property.clone()),
        last_snapshot: observed.last_snapshot.clone().or(previous.last_snapshot),
        // The image rolled through once the StatefulSet shows no roll and every pod ready.
        current_image: if provisioned && observed.rolling.is_none() && all_ready {
            Some(cluster.spec.image.clone())
        } else {
            previous.current_image.clone()
        },
        updated_nodes: observed.updated_pods.map(|n| i32::try_from(n).unwrap_or(i32::MAX)).or(previous.updated_nodes),
        upgrade_step: observed.upgrade_step.clone().or(previous.upgrade_step.clone()),
        storage_format_check: observed.storage_format_check.clone().or(previous.storage_format_check.clone()),
        conditions: Some(conditions),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::chrono::{TimeZone, Utc};

    use super::*;
    use crate::objects::fixtures;

    fn at(seconds: i64) -> Time {
        Time(Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap())
    }

    fn observed(ready: u32, statefulset: u32) -> Observation {
        Observation { ready_pods: ready, statefulset_replicas: statefulset, ..Observation::default() }
    }

    fn condition_status(status: &RestateClusterStatus, kind: ConditionType) -> (String, String) {
        let c = status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == kind.as_str()).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn a_new_cluster_goes_pending_then_provisioning_then_running() {
        let mut cluster = fixtures::cluster();
        let status = next_status(&cluster, &observed(1, 3), at(0));
        assert_eq!(status.phase, Some(ClusterPhase::Pending));
        assert_eq!(status.provisioned, Some(false));
        assert_eq!(condition_status(&status, ConditionType::Provisioned), ("False".into(), "WaitingForPods".into()));

        cluster.status = Some(status);
        let status = next_status(&cluster, &observed(3, 3), at(5));
        assert_eq!(status.phase, Some(ClusterPhase::Provisioning));

        let mut failing = observed(3, 3);
        failing.provision_failure = Some("cannot reach demo-0".into());
        let failed = next_status(&cluster, &failing, at(5));
        assert_eq!(
            condition_status(&failed, ConditionType::Provisioned),
            ("False".into(), "ProvisioningFailed".into())
        );
        assert_eq!(failed.phase, Some(ClusterPhase::Provisioning));

        cluster.status = Some(status);
        let mut round = observed(3, 3);
        round.provisioned_now = Some("fp-1".into());
        let status = next_status(&cluster, &round, at(10));
        assert_eq!(status.phase, Some(ClusterPhase::Running));
        assert_eq!((status.provisioned, status.cluster_fingerprint.as_deref()), (Some(true), Some("fp-1")));
        assert_eq!(condition_status(&status, ConditionType::Ready), ("True".into(), "AllNodesReady".into()));
        assert_eq!(status.observed_generation, Some(1));
    }

    #[test]
    fn provisioning_is_never_forgotten_and_a_lost_pod_degrades() {
        let mut cluster = fixtures::cluster();
        let mut round = observed(3, 3);
        round.provisioned_now = Some("fp-1".into());
        cluster.status = Some(next_status(&cluster, &round, at(0)));

        // A later round without provisioning (and a pod down) keeps the record.
        let status = next_status(&cluster, &observed(2, 3), at(30));
        assert_eq!((status.provisioned, status.cluster_fingerprint.as_deref()), (Some(true), Some("fp-1")));
        assert_eq!(status.phase, Some(ClusterPhase::Degraded));
        assert_eq!(condition_status(&status, ConditionType::Degraded), ("True".into(), "NodesNotReady".into()));
        assert_eq!(condition_status(&status, ConditionType::Ready).0, "False");

        // A second provisioning answer (already provisioned) does not change the fingerprint.
        cluster.status = Some(status);
        let mut again = observed(3, 3);
        again.provisioned_now = Some("fp-other".into());
        assert_eq!(next_status(&cluster, &again, at(40)).cluster_fingerprint.as_deref(), Some("fp-1"));
    }

    #[test]
    fn scaling_is_reported_until_the_statefulset_matches_and_no_drain_runs() {
        let mut cluster = fixtures::cluster();
        let mut round = observed(3, 3);
        round.provisioned_now = Some("fp".into());
        cluster.status = Some(next_status(&cluster, &round, at(0)));
        cluster.spec.replicas = 5;

        // The round resizes the StatefulSet (3 -> 5) and reads the new size back: Scaling,
        // not Degraded, although 2 of 5 pods are not ready.
        let mut resized = observed(3, 5);
        resized.statefulset_replicas_before = 3;
        let status = next_status(&cluster, &resized, at(10));
        assert_eq!(status.phase, Some(ClusterPhase::Scaling));
        assert_eq!(condition_status(&status, ConditionType::Scaling), ("True".into(), "ReplicasChanging".into()));
        assert_eq!(condition_status(&status, ConditionType::Degraded).0, "False");
        let events = crate::reconcile::events::transitions(cluster.status.as_ref(), &status);
        assert_eq!(events.iter().map(|e| (e.warning, e.reason)).collect::<Vec<_>>(), [(false, "ScalingStarted")]);

        // The next round finds it resized; the new nodes are not ready yet: still Scaling.
        cluster.status = Some(status);
        let mut joining = observed(3, 5);
        joining.statefulset_replicas_before = 5;
        let status = next_status(&cluster, &joining, at(15));
        assert_eq!(status.phase, Some(ClusterPhase::Scaling));
        assert_eq!(condition_status(&status, ConditionType::Scaling).0, "True");

        cluster.status = Some(status);
        let status = next_status(&cluster, &observed(5, 5), at(20));
        assert_eq!(status.phase, Some(ClusterPhase::Running));
        assert_eq!(next_status(&cluster, &observed(4, 5), at(25)).phase, Some(ClusterPhase::Scaling));
        cluster.status = Some(status);
        assert_eq!(
            next_status(&cluster, &observed(4, 5), at(30)).phase,
            Some(ClusterPhase::Degraded),
            "once Running, a lost node degrades"
        );

        cluster.spec.replicas = 3;
        let mut draining = observed(5, 5);
        draining.draining = Some("demo-4".into());
        let status = next_status(&cluster, &draining, at(30));
        assert_eq!(status.phase, Some(ClusterPhase::Scaling));
        let scaling = status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "Scaling").unwrap();
        assert!(scaling.message.contains("draining demo-4"), "{}", scaling.message);
    }

    #[test]
    fn a_planned_roll_is_upgrading_not_degraded_and_a_bad_config_is_reported() {
        let mut cluster = fixtures::cluster();
        let mut round = observed(3, 3);
        round.provisioned_now = Some("fp".into());
        cluster.status = Some(next_status(&cluster, &round, at(0)));

        let mut rolling = observed(2, 3);
        rolling.statefulset_replicas_before = 3;
        rolling.rolling = Some("1 of 3 pods run the new revision".into());
        let status = next_status(&cluster, &rolling, at(10));
        assert_eq!(status.phase, Some(ClusterPhase::Upgrading));
        assert_eq!(condition_status(&status, ConditionType::Upgrading), ("True".into(), "RollingPods".into()));
        assert_eq!(condition_status(&status, ConditionType::Degraded), ("False".into(), "PlannedChange".into()));
        assert!(crate::reconcile::events::transitions(cluster.status.as_ref(), &status).iter().all(|e| !e.warning));

        cluster.status = Some(status);
        let done = next_status(&cluster, &observed(3, 3), at(20));
        assert_eq!(done.phase, Some(ClusterPhase::Running));
        assert_eq!(condition_status(&done, ConditionType::Upgrading).0, "False");

        cluster.status = Some(done);
        cluster.metadata.generation = Some(2);
        let mut invalid = observed(3, 3);
        invalid.config_invalid = Some("rocksdb-total-memory-size: expected a size".into());
        let status = next_status(&cluster, &invalid, at(30));
        assert_eq!(status.observed_generation, Some(2), "the generation was looked at");
        assert_eq!(condition_status(&status, ConditionType::ConfigInvalid), ("True".into(), "InvalidConfig".into()));
        let message = &status.conditions.as_ref().unwrap().iter().find(|c| c.type_ == "ConfigInvalid").unwrap().message;
        assert!(message.contains("rocksdb-total-memory-size") && message.contains("generation 2"), "{message}");
        let events = crate::reconcile::events::transitions(cluster.status.as_ref(), &status);
        assert!(events.iter().any(|e| e.warning && e.reason == "ConfigInvalid"), "{events:?}");
    }

    #[test]
    fn a_refused_image_keeps_the_cluster_running_its_own_and_says_why() {
        let mut cluster = fixtures::cluster();
        let mut round = observed(3, 3);
        round.provisioned_now = Some("fp".into());
        cluster.status = Some(next_status(&cluster, &round, at(0)));
        let running_image = cluster.spec.image.clone();
        assert_eq!(cluster.status.as_ref().unwrap().current_image.as_deref(), Some(running_image.as_str()));

        cluster.spec.image = "restate:old".into();
        let mut refused = observed(3, 3);
        refused.rolling = Some("0 of 3 pods run the new revision; waiting for a spec.image that reads ...".into());
        refused.upgrade_refused = Some("spec.image restate:old does not read this cluster's data".into());
        refused.storage_format_check = Some(StorageFormatCheck {
            image: "restate:old".into(),
            storage_format: 2,
            passed: false,
            message: "its restate-server exited with an error".into(),
            time: at(10),
        });
        let status = next_status(&cluster, &refused, at(10));
        assert_eq!(status.phase, Some(ClusterPhase::Running), "nothing rolls: the nodes keep their image");
        assert_eq!(
            condition_status(&status, ConditionType::UpgradeRefused),
            ("True".into(), "StorageFormatUnsupported".into())
        );
        assert_eq!(condition_status(&status, ConditionType::Upgrading).0, "False");
        assert_eq!(status.current_image.as_deref(), Some(running_image.as_str()));
        assert_eq!(status.storage_format_check.as_ref().map(|c| c.passed), Some(false));
        let events = crate::reconcile::events::transitions(cluster.status.as_ref(), &status);
        assert!(events.iter().any(|e| e.warning && e.reason == "UpgradeRefused"), "{events:?}");

        // Back to the running image: the refusal clears, the answer stays on record.
        cluster.status = Some(status);
        cluster.spec.image = running_image;
        let status = next_status(&cluster, &observed(3, 3), at(20));
        assert_eq!(condition_status(&status, ConditionType::UpgradeRefused), ("False".into(), "Accepted".into()));
        assert!(status.storage_format_check.is_some());
    }

    #[test]
    fn replication_waits_for_enough_nodes_and_transition_times_move_only_on_change() {
        let mut cluster = fixtures::cluster();
        cluster.spec.replicas = 2;
        let mut round = observed(2, 2);
        round.provisioned_now = Some("fp".into());
        let status = next_status(&cluster, &round, at(0));
        assert_eq!(
            condition_status(&status, ConditionType::ReplicationPending),
            ("True".into(), "NotEnoughNodes".into())
        );
        let since = |s: &RestateClusterStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "ReplicationPending")
                .unwrap()
                .last_transition_time
                .clone()
        };
        cluster.status = Some(status);
        let unchanged = next_status(&cluster, &observed(2, 2), at(60));
        assert_eq!(since(&unchanged), at(0), "same status, same transition time");

        cluster.spec.replicas = 3;
        cluster.status = Some(unchanged);
        let mut grown = observed(3, 3);
        grown.alive_nodes = Some(3);
        let reached = next_status(&cluster, &grown, at(90));
        assert_eq!(
            condition_status(&reached, ConditionType::ReplicationPending),
            ("False".into(), "ReplicationReached".into())
        );
        assert_eq!(since(&reached), at(90));
    }
}
