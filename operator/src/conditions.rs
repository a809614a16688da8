//! Status conditions: their types, and how a new observation updates the list so that
//! `lastTransitionTime` only moves when the status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::config::OverriddenKey;
use crate::replication::ReplicationPlan;

/// The condition types the operator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionType {
    /// Provisioned and every expected node ready.
    Ready,
    /// The cluster's initial metadata has been written (once, by the operator via pod 0).
    Provisioned,
    /// Nodes are joining, or draining before the StatefulSet shrinks.
    Scaling,
    /// Something needs attention: nodes not ready, a failed snapshot, an invalid config.
    Degraded,
    /// Running below `spec.replication` until enough nodes have joined.
    ReplicationPending,
    /// `spec.config` or `spec.env` set keys the operator owns; the operator's values are used.
    ConfigOverridden,
    /// `spec.config` / `spec.env` is not a configuration the node accepts: nothing of this
    /// generation is rolled out until it is fixed.
    ConfigInvalid,
    /// A change of the pod template (image, configuration) is rolling through the pods.
    Upgrading,
    /// A pod restarted by the roll did not become ready in time: the roll stops there.
    UpgradeStalled,
    /// `spec.image` does not read the cluster's data (its storage format is older): no node
    /// is restarted on it.
    UpgradeRefused,
}

impl ConditionType {
    pub const ALL: [ConditionType; 10] = [
        ConditionType::Ready,
        ConditionType::Provisioned,
        ConditionType::Scaling,
        ConditionType::Degraded,
        ConditionType::ReplicationPending,
        ConditionType::ConfigOverridden,
        ConditionType::ConfigInvalid,
        ConditionType::Upgrading,
        ConditionType::UpgradeStalled,
        ConditionType::UpgradeRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Ready => "Ready",
            ConditionType::Provisioned => "Provisioned",
            ConditionType::Scaling => "Scaling",
            ConditionType::Degraded => "Degraded",
            ConditionType::ReplicationPending => "ReplicationPending",
            ConditionType::ConfigOverridden => "ConfigOverridden",
            ConditionType::ConfigInvalid => "ConfigInvalid",
            ConditionType::Upgrading => "Upgrading",
            ConditionType::UpgradeStalled => "UpgradeStalled",
            ConditionType::UpgradeRefused => "UpgradeRefused",
        }
    }
}

/// A condition observed at `now` for the spec of `generation`. An empty message is replaced
/// by the reason: the 1.20 test API server rejects `""` in a custom resource as null.
pub fn condition(
    kind: ConditionType,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    let message = message.into();
    Condition {
        type_: kind.as_str().to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: if message.is_empty() { reason.to_owned() } else { message },
        observed_generation: generation,
        last_transition_time: now,
    }
}

/// `ReplicationPending` for `plan`: True while the cluster runs below the requested
/// replication.
pub fn replication_pending(plan: &ReplicationPlan, generation: Option<i64>, now: Time) -> Condition {
    condition(ConditionType::ReplicationPending, plan.is_pending(), plan.reason(), plan.message(), generation, now)
}

/// `ConfigOverridden`: True, naming every key, when the user set keys the operator owns.
pub fn config_overridden(overridden: &[OverriddenKey], generation: Option<i64>, now: Time) -> Condition {
    if overridden.is_empty() {
        return condition(
            ConditionType::ConfigOverridden,
            false,
            "NoOverrides",
            "spec.config and spec.env set no operator-owned keys",
            generation,
            now,
        );
    }
    let message = overridden.iter().map(OverriddenKey::describe).collect::<Vec<_>>().join("; ");
    condition(ConditionType::ConfigOverridden, true, "OperatorOwnedKeys", message, generation, now)
}

/// Puts `new` into `conditions`, replacing the condition of the same type. When the status
/// did not change, the previous `lastTransitionTime` is kept (reason, message and generation
/// are still updated). Returns whether the status changed (or the type is new).
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let transitioned = existing.status != new.status;
            let since = existing.last_transition_time.clone();
            *existing = new;
            if !transitioned {
                existing.last_transition_time = since;
            }
            transitioned
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::chrono::{TimeZone, Utc};

    use super::*;

    fn at(seconds: i64) -> Time {
        Time(Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap())
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut conditions = Vec::new();
        let plan = ReplicationPlan::new(3, 3);
        assert!(set_condition(&mut conditions, replication_pending(&plan, Some(1), at(0))));
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].type_, "ReplicationPending");

        let plan = ReplicationPlan::new(3, 4);
        assert!(!set_condition(&mut conditions, replication_pending(&plan, Some(2), at(10))));
        assert_eq!(conditions[0].last_transition_time, at(0), "still pending: time kept");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert!(conditions[0].message.contains("4 nodes allow at most 2"), "{}", conditions[0].message);

        let plan = ReplicationPlan::new(3, 5);
        assert!(set_condition(&mut conditions, replication_pending(&plan, Some(2), at(20))));
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].reason, "ReplicationReached");
        assert_eq!(conditions[0].last_transition_time, at(20));
    }

    #[test]
    fn overridden_keys_are_named_in_the_message() {
        let overridden = vec![OverriddenKey {
            key: "cluster-name".into(),
            source: crate::config::OverrideSource::Config,
            user_value: "\"mine\"".into(),
            reason: "the operator sets it to \"demo\"".into(),
        }];
        let condition = config_overridden(&overridden, None, at(0));
        assert_eq!(condition.status, "True");
        assert!(condition.message.contains("cluster-name"), "{}", condition.message);
        assert_eq!(config_overridden(&[], None, at(0)).status, "False");
    }

    #[test]
    fn a_message_is_never_empty() {
        let ready = condition(ConditionType::Ready, true, "AllNodesReady", "", Some(3), at(0));
        assert_eq!(ready.message, "AllNodesReady");
        assert_eq!(ready.status, "True");
        assert_eq!(ready.type_, "Ready");
        assert_eq!(ready.observed_generation, Some(3));
    }

    #[test]
    fn condition_type_names_are_distinct() {
        let names: std::collections::BTreeSet<_> = ConditionType::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ConditionType::ALL.len());
    }
}
