//! The reconcile loop: for one `RestateCluster`, server-side apply every owned object,
//! observe the StatefulSet, provision once through pod 0 when every pod is ready, and
//! write the status [`crate::status::next_status`] computes.
//!
//! Once provisioned, it reads the cluster's own status (alive nodes, replication, metadata
//! members) and raises the log replication as nodes join, up to `spec.replication`.
//! On `spec.snapshots.interval` it also asks pod 0 for snapshots of every partition
//! (trimming the logs when `spec.snapshots.trim`) and records them in `lastSnapshot`.
//! Scaling with drain is not reconciled yet; the `Scaling` condition reports a
//! StatefulSet whose size differs from `spec.replicas`.

mod apply;
mod provision;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::Utc;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};

pub use apply::FIELD_MANAGER;

use crate::crd::{ClusterPhase, RestateCluster};
use crate::objects::{cluster_names, owned_objects, BuildContext};
use crate::replication::{replication_change, ReplicationPlan};
use crate::snapshot_schedule;
use crate::status::{next_status, Observation};
use crate::BuildError;

/// What every reconcile round shares.
pub struct Context {
    pub client: Client,
    pub build: BuildContext,
}

/// Why a round failed; the controller retries with [`error_policy`].
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("applying {what} failed: {source}")]
    Apply { what: String, source: kube::Error },
    #[error("reading StatefulSet {what} failed: {source}")]
    Observe { what: String, source: kube::Error },
    #[error("writing the status of RestateCluster {what} failed: {source}")]
    Status { what: String, source: kube::Error },
}

/// One round for `cluster`.
pub async fn reconcile(cluster: Arc<RestateCluster>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let namespace = cluster.namespace().ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    let names = cluster_names(&cluster, &ctx.build)?;
    let objects = owned_objects(&cluster, &ctx.build)?;
    apply::apply_owned(&ctx.client, &namespace, &objects, ctx.build.server_minor)
        .await
        .map_err(|(what, source)| ReconcileError::Apply { what, source })?;

    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let statefulset = statefulsets
        .get_opt(&names.statefulset())
        .await
        .map_err(|source| ReconcileError::Observe { what: format!("{namespace}/{}", names.statefulset()), source })?;
    let wanted = u32::try_from(cluster.spec.replicas).unwrap_or(0);
    let mut observation = Observation {
        ready_pods: statefulset
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .map_or(0, |r| u32::try_from(r).unwrap_or(0)),
        statefulset_replicas: statefulset
            .as_ref()
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.replicas)
            .map_or(0, |r| u32::try_from(r).unwrap_or(0)),
        overridden: objects.rendered.overridden.clone(),
        ..Observation::default()
    };

    let provisioned = cluster.status.as_ref().and_then(|s| s.provisioned) == Some(true);
    if !provisioned && wanted > 0 && observation.ready_pods >= wanted {
        let address = names.node_address(0);
        let replication = ReplicationPlan::new(u32::try_from(cluster.spec.replication).unwrap_or(1), wanted).effective;
        let partitions = u32::try_from(cluster.spec.partitions).unwrap_or(1);
        match provision::provision(&address, partitions, replication).await {
            Ok(fingerprint) => {
                tracing::info!(cluster = %cluster.name_any(), namespace = %namespace, %fingerprint, "cluster provisioned through {address}");
                observation.provisioned_now = Some(fingerprint);
            }
            Err(reason) => {
                tracing::warn!(cluster = %cluster.name_any(), namespace = %namespace, "provisioning failed, retrying: {reason}")
            }
        }
    }

    if provisioned || observation.provisioned_now.is_some() {
        observe_and_raise_replication(&cluster, &names.node_address(0), &mut observation).await;
    }

    let now = Time(Utc::now());
    match snapshot_schedule::snapshot_due(&cluster, &now) {
        Ok(true) => {
            let trim = cluster.spec.snapshots.as_ref().is_some_and(|s| s.trim);
            match provision::create_snapshots(&names.node_address(0), trim).await {
                Ok(answers) => {
                    let summary = snapshot_schedule::summarize(&answers, trim, Time(Utc::now()));
                    tracing::info!(cluster = %cluster.name_any(), namespace = %namespace, partitions = ?summary.partitions, failed = ?summary.failed_partitions, "scheduled snapshot");
                    observation.last_snapshot = Some(summary);
                }
                Err(reason) => {
                    tracing::warn!(cluster = %cluster.name_any(), namespace = %namespace, "scheduled snapshot failed, retrying: {reason}")
                }
            }
        }
        Ok(false) => {}
        Err(invalid) => {
            tracing::warn!(cluster = %cluster.name_any(), namespace = %namespace, "no snapshot schedule: {invalid}")
        }
    }

    let status = next_status(&cluster, &observation, now.clone());
    let phase = status.phase;
    let patch = serde_json::json!({ "apiVersion": "restate.dev/v1", "kind": "RestateCluster", "status": &status });
    let clusters: Api<RestateCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    clusters
        .patch_status(&cluster.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::Status { what: format!("{namespace}/{}", cluster.name_any()), source })?;
    let mut after = requeue_after(phase);
    let mut scheduled = cluster.as_ref().clone();
    scheduled.status = Some(status);
    if let Some(due) = snapshot_schedule::until_due(&scheduled, &now) {
        after = after.min(due.max(Duration::from_secs(1)));
    }
    Ok(Action::requeue(after))
}

/// Reads what the cluster says of itself (alive nodes, replication, metadata members) into
/// `observation`, and raises the log replication when enough nodes are alive for more of
/// `spec.replication` (lowers it only when the spec asks for less). Failures are logged:
/// the next round tries again.
async fn observe_and_raise_replication(cluster: &RestateCluster, address: &str, observation: &mut Observation) {
    let view = match provision::cluster_view(address).await {
        Ok(view) => view,
        Err(reason) => {
            tracing::warn!(cluster = %cluster.name_any(), "cannot read the cluster's status: {reason}");
            return;
        }
    };
    observation.alive_nodes = Some(view.alive_nodes);
    observation.log_replication = Some(view.log_replication);
    observation.metadata_members = Some(view.metadata_members);
    let requested = u32::try_from(cluster.spec.replication).unwrap_or(1);
    let Some(target) = replication_change(requested, view.alive_nodes, view.log_replication) else { return };
    match provision::set_replication(address, target).await {
        Ok(()) => {
            tracing::info!(cluster = %cluster.name_any(), from = view.log_replication, to = target, "log replication changed");
            observation.log_replication = Some(target);
        }
        Err(reason) => tracing::warn!(cluster = %cluster.name_any(), "changing the log replication: {reason}"),
    }
}

/// How soon to look again: often while the cluster is on its way, rarely once it runs
/// (changes to owned StatefulSets trigger a round anyway).
pub fn requeue_after(phase: Option<ClusterPhase>) -> Duration {
    match phase {
        Some(ClusterPhase::Running) => Duration::from_secs(60),
        _ => Duration::from_secs(5),
    }
}

/// After a failed round: log it and retry in 10 s.
pub fn error_policy(cluster: Arc<RestateCluster>, error: &ReconcileError, _ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), "reconcile failed, retrying in 10 s: {error}");
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_on_their_way_are_looked_at_often() {
        assert_eq!(requeue_after(Some(ClusterPhase::Running)), Duration::from_secs(60));
        for phase in [None, Some(ClusterPhase::Pending), Some(ClusterPhase::Provisioning), Some(ClusterPhase::Degraded)]
        {
            assert_eq!(requeue_after(phase), Duration::from_secs(5));
        }
    }
}
