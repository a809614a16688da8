//! The reconcile loop: for one `RestateCluster`, server-side apply every owned object,
//! observe the StatefulSet, provision once through pod 0 when every pod is ready, and
//! write the status [`crate::status::next_status`] computes.
//!
//! Once provisioned, it reads the cluster's own status (alive nodes, replication, metadata
//! members) and raises the log replication as nodes join, up to `spec.replication`.
//! On `spec.snapshots.interval` it also asks pod 0 for snapshots of every partition
//! (trimming the logs when `spec.snapshots.trim`) and records them in `lastSnapshot`.
//! Scaling out resizes the StatefulSet at once; scaling in first drains the leaving pods'
//! nodes through pod 0 and shrinks the StatefulSet only once all are drained (never below
//! what the log replication needs, see [`crate::scale_in`]), then removes those nodes from
//! the cluster and deletes their volume claims. The `Scaling` condition tells the progress.
//!
//! Around each round: the finalizer ([`finalizer`]) that handles the volume claims on
//! deletion, Events on transitions ([`events`]), the metrics, and retries with a per-object
//! exponential backoff ([`error_policy`]).

mod apply;
mod cluster_secret;
pub mod events;
pub mod finalizer;
mod provision;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::Utc;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::finalizer::{finalizer as with_finalizer, Error as FinalizerError, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};

pub use apply::FIELD_MANAGER;
pub use finalizer::FINALIZER;

use crate::crd::{ClusterPhase, RestateCluster};
use crate::names::ClusterNames;
use crate::objects::{cluster_names, owned_objects, BuildContext};
use crate::replication::{replication_change, ReplicationPlan};
use crate::runtime::backoff::Backoff;
use crate::runtime::leader::Leadership;
use crate::runtime::metrics::OperatorMetrics;
use crate::scale_in::{plan_scale, ScalePlan};
use crate::snapshot_schedule;
use crate::status::{next_status, Observation};
use crate::BuildError;

/// What every reconcile round shares.
pub struct Context {
    pub client: Client,
    pub build: BuildContext,
    /// Publishes Events on the clusters (events.k8s.io/v1).
    pub recorder: Recorder,
    pub metrics: Arc<OperatorMetrics>,
    /// Failures in a row per cluster, for [`error_policy`].
    pub backoff: Backoff<ObjectRef<RestateCluster>>,
    /// Checked before each round: no round starts once this replica may no longer lead.
    pub leadership: Leadership,
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
    #[error("{action} the finalizer {FINALIZER} of RestateCluster {what} failed: {reason}")]
    Finalizer { action: &'static str, what: String, reason: String },
    #[error("cleaning up after the deletion of a RestateCluster: {what} failed: {source}")]
    Cleanup { what: String, source: kube::Error },
    #[error("the cluster secret in Secret {what}: {reason}")]
    ClusterSecret { what: String, reason: String },
}

impl ReconcileError {
    /// Every [`ReconcileError::kind`].
    pub const KINDS: [&'static str; 8] =
        ["missing_metadata", "invalid_config", "apply", "observe", "status", "finalizer", "cleanup", "cluster_secret"];

    /// Short stable name of the variant, the `kind` label of the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Build(e) => e.kind(),
            ReconcileError::Apply { .. } => "apply",
            ReconcileError::Observe { .. } => "observe",
            ReconcileError::Status { .. } => "status",
            ReconcileError::Finalizer { .. } => "finalizer",
            ReconcileError::Cleanup { .. } => "cleanup",
            ReconcileError::ClusterSecret { .. } => "cluster_secret",
        }
    }
}

/// One round for `cluster`, timed and counted: the finalizer first, then either a normal
/// round ([`apply_round`]) or, once the cluster is being deleted, [`finalizer::cleanup`].
/// A round that succeeds resets the cluster's backoff.
pub async fn reconcile(cluster: Arc<RestateCluster>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    if !ctx.leadership.holds() {
        // The election task notices too and ends the process; until then, do nothing.
        tracing::warn!(cluster = %cluster.name_any(), "not reconciling: the leader Lease was not renewed in time");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let started = Instant::now();
    let key = ObjectRef::from_obj(cluster.as_ref());
    let result = finalized_round(cluster, &ctx).await;
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().err().map(ReconcileError::kind));
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

async fn finalized_round(cluster: Arc<RestateCluster>, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = cluster.namespace().ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    let what = format!("{namespace}/{}", cluster.name_any());
    let clusters: Api<RestateCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    with_finalizer(&clusters, FINALIZER, cluster, |event| async move {
        match event {
            FinalizerEvent::Apply(cluster) => apply_round(&cluster, ctx).await,
            FinalizerEvent::Cleanup(cluster) => finalizer::cleanup(&cluster, ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        FinalizerError::AddFinalizer(e) => ReconcileError::Finalizer { action: "adding", what, reason: e.to_string() },
        FinalizerError::RemoveFinalizer(e) => {
            ReconcileError::Finalizer { action: "removing", what, reason: e.to_string() }
        }
        FinalizerError::UnnamedObject => ReconcileError::Build(BuildError::MissingMetadata("metadata.name")),
        FinalizerError::InvalidFinalizer => {
            ReconcileError::Finalizer { action: "naming", what, reason: "not a JSON pointer segment".to_owned() }
        }
    })
}

/// A normal round for `cluster` (see the module docs); publishes the Events of the status
/// change once the status is written.
async fn apply_round(cluster: &RestateCluster, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = cluster.namespace().ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    let names = cluster_names(cluster, &ctx.build)?;
    let wanted = u32::try_from(cluster.spec.replicas).unwrap_or(0);
    let provisioned = cluster.status.as_ref().and_then(|s| s.provisioned) == Some(true);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &namespace);
    let observe_error =
        |source| ReconcileError::Observe { what: format!("{namespace}/{}", names.statefulset()), source };
    let before = statefulsets.get_opt(&names.statefulset()).await.map_err(observe_error)?;
    let current = before.as_ref().and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas).map_or(0, |r| r.max(0) as u32);
    let node0 = provision::NodeEndpoint {
        address: names.node_address(0),
        secret: cluster_secret::ensure(&ctx.client, cluster, &ctx.build, &names).await?,
    };
    let scale = plan_scale_round(cluster, &names, &node0, current, wanted, provisioned).await;

    let mut objects = owned_objects(cluster, &ctx.build)?;
    if let Some(spec) = objects.statefulset.spec.as_mut() {
        spec.replicas = Some(i32::try_from(scale.statefulset_replicas).unwrap_or(i32::MAX));
    }
    apply::apply_owned(&ctx.client, &namespace, &objects, ctx.build.server_minor)
        .await
        .map_err(|(what, source)| ReconcileError::Apply { what, source })?;

    let statefulset = statefulsets.get_opt(&names.statefulset()).await.map_err(observe_error)?;
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
        draining: scale.draining.clone(),
        scale_in_refused: scale.refused.clone(),
        ..Observation::default()
    };
    if provisioned && scale.statefulset_replicas == wanted {
        let pods = statefulset.as_ref().and_then(|s| s.status.as_ref()).map_or(0, |s| s.replicas.max(0) as u32);
        if pods <= wanted {
            forget_departed_nodes(cluster, ctx, &names, &node0, wanted).await;
        }
    }

    if !provisioned && wanted > 0 && observation.ready_pods >= wanted {
        let address = &node0.address;
        let replication = ReplicationPlan::new(u32::try_from(cluster.spec.replication).unwrap_or(1), wanted).effective;
        let partitions = u32::try_from(cluster.spec.partitions).unwrap_or(1);
        match provision::provision(&node0, partitions, replication).await {
            Ok(fingerprint) => {
                tracing::info!(cluster = %cluster.name_any(), namespace = %namespace, %fingerprint, "cluster provisioned through {address}");
                observation.provisioned_now = Some(fingerprint);
            }
            Err(reason) => {
                tracing::warn!(cluster = %cluster.name_any(), namespace = %namespace, "provisioning failed, retrying: {reason}");
                observation.provision_failure = Some(reason);
            }
        }
    }

    if provisioned || observation.provisioned_now.is_some() {
        observe_and_raise_replication(cluster, &node0, &mut observation).await;
    }

    let now = Time(Utc::now());
    match snapshot_schedule::snapshot_due(cluster, &now) {
        Ok(true) => {
            let trim = cluster.spec.snapshots.as_ref().is_some_and(|s| s.trim);
            match provision::create_snapshots(&node0, trim).await {
                Ok(answers) => {
                    let summary = snapshot_schedule::summarize(&answers, trim, Time(Utc::now()));
                    tracing::info!(cluster = %cluster.name_any(), namespace = %namespace, partitions = ?summary.partitions, failed = ?summary.failed_partitions, "scheduled snapshot");
                    observation.last_snapshot = Some(summary);
                }
                Err(reason) => {
                    tracing::warn!(cluster = %cluster.name_any(), namespace = %namespace, "scheduled snapshot failed, retrying: {reason}");
                    events::publish(&ctx.recorder, cluster, &[events::snapshot_call_failed(&reason)]).await;
                }
            }
        }
        Ok(false) => {}
        Err(invalid) => {
            tracing::warn!(cluster = %cluster.name_any(), namespace = %namespace, "no snapshot schedule: {invalid}")
        }
    }

    let status = next_status(cluster, &observation, now.clone());
    let phase = status.phase;
    let patch = serde_json::json!({ "apiVersion": "restate.dev/v1", "kind": "RestateCluster", "status": &status });
    let clusters: Api<RestateCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    clusters
        .patch_status(&cluster.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::Status { what: format!("{namespace}/{}", cluster.name_any()), source })?;
    events::publish(&ctx.recorder, cluster, &events::transitions(cluster.status.as_ref(), &status)).await;
    let mut after = requeue_after(phase);
    let mut scheduled = cluster.clone();
    scheduled.status = Some(status);
    if let Some(due) = snapshot_schedule::until_due(&scheduled, &now) {
        after = after.min(due.max(Duration::from_secs(1)));
    }
    Ok(Action::requeue(after))
}

/// The StatefulSet's size this round (see [`crate::scale_in`]): the spec's, except while
/// scaling in, when the leaving pods are asked to drain (through pod 0) and the size holds
/// until all of them are drained, and never below what the log replication needs.
async fn plan_scale_round(
    cluster: &RestateCluster,
    names: &ClusterNames,
    node0: &provision::NodeEndpoint,
    current: u32,
    wanted: u32,
    provisioned: bool,
) -> ScalePlan {
    let statefulset = names.statefulset();
    if !provisioned || wanted >= current {
        return plan_scale(&statefulset, current, wanted, None, provisioned, &[]);
    }
    // The spec may ask for less replication than runs now: this round lowers it first
    // (observe_and_raise_replication), so the check uses the lower one.
    let requested = u32::try_from(cluster.spec.replication).unwrap_or(1);
    let replication = match provision::cluster_view(node0).await {
        Ok(view) => Some(view.log_replication.min(requested)),
        Err(reason) => {
            tracing::warn!(cluster = %cluster.name_any(), "scale-in waits: cannot read the cluster's status: {reason}");
            None
        }
    };
    let first = plan_scale(&statefulset, current, wanted, replication, provisioned, &[]);
    if first.to_drain.is_empty() {
        return first;
    }
    let mut answers = Vec::new();
    for pod in &first.to_drain {
        let answer = provision::drain_node(node0, pod).await;
        tracing::info!(cluster = %cluster.name_any(), pod = %pod, drained = answer.drained, "drain before scale-in: {}", answer.summary);
        answers.push(answer);
    }
    plan_scale(&statefulset, current, wanted, replication, provisioned, &answers)
}

/// After a scale-in: nodes named after pods at or past `wanted` (drained, their pods gone)
/// are removed from the cluster and their volume claims deleted. Failures are logged; the
/// next round tries again.
async fn forget_departed_nodes(
    cluster: &RestateCluster,
    ctx: &Context,
    names: &ClusterNames,
    node0: &provision::NodeEndpoint,
    wanted: u32,
) {
    let Ok(view) = provision::cluster_view(node0).await else { return };
    let prefix = format!("{}-", names.statefulset());
    let departed = view.registered.iter().filter_map(|name| {
        let ordinal: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
        (ordinal >= wanted).then_some((name.clone(), ordinal))
    });
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
    for (node, ordinal) in departed {
        match provision::remove_node(node0, &node).await {
            Ok(_) => {
                tracing::info!(cluster = %cluster.name_any(), node = %node, "scale-in: drained node removed from the cluster")
            }
            Err(reason) => {
                tracing::warn!(cluster = %cluster.name_any(), node = %node, "scale-in: removing the node: {reason}");
                continue;
            }
        }
        let claim = names.volume_claim(ordinal);
        match claims.delete(&claim, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(cluster = %cluster.name_any(), claim = %claim, "scale-in: volume claim of the drained node deleted")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(cluster = %cluster.name_any(), claim = %claim, "scale-in: deleting the volume claim: {e}")
            }
        }
    }
}

/// Reads what the cluster says of itself (alive nodes, replication, metadata members) into
/// `observation`, and raises the log replication when enough nodes are alive for more of
/// `spec.replication` (lowers it only when the spec asks for less). Failures are logged:
/// the next round tries again.
async fn observe_and_raise_replication(
    cluster: &RestateCluster,
    node0: &provision::NodeEndpoint,
    observation: &mut Observation,
) {
    let view = match provision::cluster_view(node0).await {
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
    match provision::set_replication(node0, target).await {
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

/// After a failed round: log it and retry after the cluster's backoff (5 s, doubling with
/// every failure in a row, at most 5 min; see [`crate::runtime::backoff`]).
pub fn error_policy(cluster: Arc<RestateCluster>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.failed(ObjectRef::from_obj(cluster.as_ref()));
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), kind = error.kind(), "reconcile failed, retrying in {delay:?}: {error}");
    Action::requeue(delay)
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

    #[test]
    fn every_error_kind_is_listed_for_the_metrics() {
        let api_error = || {
            kube::Error::Api(kube::core::ErrorResponse {
                status: "Failure".into(),
                message: "forbidden".into(),
                reason: "Forbidden".into(),
                code: 403,
            })
        };
        let errors = [
            ReconcileError::Build(BuildError::MissingMetadata("metadata.uid")),
            ReconcileError::Build(BuildError::InvalidConfig("x".into())),
            ReconcileError::Apply { what: "ConfigMap a/b".into(), source: api_error() },
            ReconcileError::Observe { what: "a/b".into(), source: api_error() },
            ReconcileError::Status { what: "a/b".into(), source: api_error() },
            ReconcileError::Finalizer { action: "adding", what: "a/b".into(), reason: "conflict".into() },
            ReconcileError::Cleanup { what: "listing".into(), source: api_error() },
            ReconcileError::ClusterSecret { what: "a/b-cluster-secret".into(), reason: "it has no key".into() },
        ];
        let kinds: Vec<&str> = errors.iter().map(ReconcileError::kind).collect();
        assert_eq!(kinds, ReconcileError::KINDS);
        assert_eq!(
            errors[5].to_string(),
            "adding the finalizer restate.dev/cleanup of RestateCluster a/b failed: conflict"
        );
    }
}
