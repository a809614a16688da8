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
mod storage_check;

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
use crate::objects::{cluster_names, locations_config_map, owned_objects, BuildContext};
use crate::replication::{replication_change, ReplicationPlan};
use crate::runtime::backoff::Backoff;
use crate::runtime::leader::Leadership;
use crate::runtime::metrics::OperatorMetrics;
use crate::scale_in::{plan_scale, ScalePlan};
use crate::snapshot_schedule;
use crate::status::{next_status, Observation};
use crate::storage::{current_storage, plan_storage, StorageChange};
use crate::BuildError;
use restate_types::ReplicationProperty;

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
    pub const KINDS: [&'static str; 9] = [
        "missing_metadata",
        "invalid_config",
        "invalid_spec",
        "apply",
        "observe",
        "status",
        "finalizer",
        "cleanup",
        "cluster_secret",
    ];

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
    let current = count(before.as_ref().and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas));
    // A configuration the node would refuse is reported, and nothing of it rolled out.
    let objects = match owned_objects(cluster, &ctx.build) {
        Ok(objects) => crate::config::validate_config(&objects.rendered, &names).map(|()| objects),
        Err(e @ (BuildError::InvalidConfig(_) | BuildError::InvalidSpec { .. })) => Err(e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let mut objects = match objects {
        Ok(objects) => objects,
        Err(why) => return config_invalid_round(cluster, ctx, before.as_ref(), why).await,
    };
    if before.as_ref().is_some_and(|s| s.metadata.deletion_timestamp.is_some()) {
        // Re-created for a larger volume: the old one is on its way out (pods orphaned).
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    match plan_storage(before.as_ref().and_then(current_storage), &cluster.spec.storage) {
        StorageChange::None => {}
        StorageChange::Refused { field, reason } => {
            return config_invalid_round(cluster, ctx, before.as_ref(), format!("{field}: {reason}")).await;
        }
        StorageChange::Grow { from, to } => {
            return match grow_volumes(cluster, ctx, &names, current, &from, &to).await? {
                None => Ok(Action::requeue(Duration::from_secs(2))),
                Some(refused) => config_invalid_round(cluster, ctx, before.as_ref(), refused).await,
            };
        }
    }
    let node0 = provision::NodeEndpoint {
        address: names.node_address(0),
        secret: cluster_secret::ensure(&ctx.client, cluster, &ctx.build, &names).await?,
    };
    let scale = plan_scale_round(cluster, &names, &node0, current, wanted, provisioned).await;
    let roll = guarded_roll(cluster, ctx, &names, &node0, before.as_ref(), &mut objects.statefulset, provisioned).await;

    if let Some(spec) = objects.statefulset.spec.as_mut() {
        spec.replicas = Some(i32::try_from(scale.statefulset_replicas).unwrap_or(i32::MAX));
    }
    // Before the StatefulSet: a pod reads its Kubernetes node's entry when it starts.
    let nodes =
        apply::list_nodes(&ctx.client).await.map_err(|(what, source)| ReconcileError::Apply { what, source })?;
    let locations = locations_config_map(cluster, &ctx.build, &nodes)?;
    apply::apply_config_map(&ctx.client, &namespace, &locations)
        .await
        .map_err(|(what, source)| ReconcileError::Apply { what, source })?;
    match apply::apply_owned(&ctx.client, &namespace, &objects, ctx.build.server_minor).await {
        Ok(()) => {}
        // The API server's own validation of what the spec passes through (sidecars,
        // volumes, scheduling knobs): the user's to fix, reported like a bad config.
        Err((what, kube::Error::Api(refusal))) if refusal.code == 422 => {
            let why = format!("the API server refused {what}: {}", refusal.message);
            return config_invalid_round(cluster, ctx, before.as_ref(), why).await;
        }
        Err((what, source)) => return Err(ReconcileError::Apply { what, source }),
    }

    let statefulset = statefulsets.get_opt(&names.statefulset()).await.map_err(observe_error)?;
    let mut observation = Observation {
        statefulset_replicas_before: current,
        rolling: statefulset.as_ref().and_then(roll_progress).map(|progress| match &roll.waiting {
            Some(waiting) => format!("{progress}; waiting for {waiting}"),
            None => progress,
        }),
        upgrade_stalled: roll.stalled.clone(),
        upgrade_refused: roll.refused.clone(),
        storage_format_check: roll.storage_format_check.clone(),
        upgrade_step: roll.step,
        updated_pods: statefulset.as_ref().and_then(|s| s.status.as_ref()).map(|s| count(s.updated_replicas)),
        overridden: objects.rendered.overridden.clone(),
        draining: scale.draining.clone(),
        scale_in_refused: scale.refused.clone(),
        ..observe_statefulset(statefulset.as_ref())
    };
    if provisioned && scale.statefulset_replicas == wanted {
        let pods = statefulset.as_ref().and_then(|s| s.status.as_ref()).map_or(0, |s| s.replicas.max(0) as u32);
        if pods <= wanted {
            forget_departed_nodes(cluster, ctx, &names, &node0, wanted).await;
        }
    }

    if !provisioned && wanted > 0 && observation.ready_pods >= wanted {
        let address = &node0.address;
        let requested = cluster.spec.replication_property().unwrap_or(ReplicationProperty::nodes(1));
        let replication = requested.with_nodes(ReplicationPlan::new(requested.node, wanted).effective);
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

    let status = write_status(cluster, ctx, &observation, now.clone()).await?;
    let mut after = requeue_after(status.phase);
    let mut scheduled = cluster.clone();
    scheduled.status = Some(status);
    if let Some(due) = snapshot_schedule::until_due(&scheduled, &now) {
        after = after.min(due.max(Duration::from_secs(1)));
    }
    Ok(Action::requeue(after))
}

/// What [`guarded_roll`] decided.
#[derive(Debug, Default)]
struct RollRound {
    /// What the roll waits for, if it waits.
    waiting: Option<String>,
    /// Why it stopped, if a restarted pod did not come back.
    stalled: Option<String>,
    /// The roll's last step (the partition it lowered to, and when), as recorded on the
    /// StatefulSet: this round's when it lowered the partition (a pod restarts).
    step: Option<crate::crd::UpgradeStep>,
    /// Why `spec.image` may not replace the nodes' image (it does not read their data).
    refused: Option<String>,
    /// The storage-format check's answer, when it answered this round.
    storage_format_check: Option<crate::crd::StorageFormatCheck>,
}

/// Pod template hash on the StatefulSet: a different one means a new template to roll.
const TEMPLATE_HASH_ANNOTATION: &str = "restate.dev/pod-template-hash";

/// Sets the StatefulSet's `rollingUpdate.partition` for this round (see
/// [`crate::rolling`]): a new template holds at the pod count, then each step asks the next
/// pod's node to hand its leaderships away and lowers the partition by one once it has.
async fn guarded_roll(
    cluster: &RestateCluster,
    ctx: &Context,
    names: &ClusterNames,
    node0: &provision::NodeEndpoint,
    before: Option<&StatefulSet>,
    statefulset: &mut StatefulSet,
    provisioned: bool,
) -> RollRound {
    use crate::rolling::{plan_roll, RollObservation, RollPlan};
    use k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy;
    let hash = statefulset
        .spec
        .as_ref()
        .map(|s| {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(serde_json::to_vec(&s.template).unwrap_or_default()))
        })
        .unwrap_or_default();
    statefulset.metadata.annotations.get_or_insert_default().insert(TEMPLATE_HASH_ANNOTATION.to_owned(), hash.clone());
    let spec = before.and_then(|s| s.spec.as_ref());
    let status = before.and_then(|s| s.status.as_ref());
    let partition = count(
        spec.and_then(|s| s.update_strategy.as_ref()).and_then(|u| u.rolling_update.as_ref()).and_then(|r| r.partition),
    );
    // The step recorded beside the partition (the status, read from a cache, may be a round
    // behind and hold an earlier step); a cluster rolled by an older operator has it only in
    // the status.
    let recorded_step = before
        .and_then(|s| s.metadata.annotations.as_ref())
        .and_then(|a| a.get(crate::rolling::STEP_ANNOTATION))
        .and_then(|value| crate::rolling::parse_step_annotation(value))
        .or_else(|| cluster.status.as_ref().and_then(|s| s.upgrade_step.clone()));
    let mut observation = RollObservation {
        template_changed: before.is_some_and(|s| {
            s.metadata.annotations.as_ref().and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION)) != Some(&hash)
        }),
        provisioned,
        replicas: count(spec.and_then(|s| s.replicas)),
        partition,
        updated: count(status.and_then(|s| s.updated_replicas)),
        ready: count(status.and_then(|s| s.ready_replicas)),
        status_current: status.and_then(|s| s.observed_generation) >= before.and_then(|s| s.metadata.generation),
        one_revision: status.is_some_and(|s| s.current_revision.is_some() && s.current_revision == s.update_revision),
        cluster: None,
        catching_up: None,
        step_age: crate::rolling::step_age(recorded_step.as_ref(), partition, Utc::now()),
    };
    let healthy = RollObservation { cluster: Some((observation.replicas, 0)), ..observation.clone() };
    let mut storage_format = None;
    if matches!(plan_roll(&healthy, |i| names.pod(i)), RollPlan::Next { .. }) {
        // Only a step needs the cluster's view (every node alive, every partition led).
        let view = provision::cluster_view(node0).await.ok();
        observation.cluster = view.as_ref().map(|view| (view.alive_nodes, view.partitions_unled));
        storage_format = view.map(|view| view.storage_format);
        if observation.partition < observation.replicas {
            observation.catching_up =
                catching_up(names, &node0.secret, observation.replicas, observation.partition).await;
        }
    }
    let plan = plan_roll(&observation, |i| names.pod(i));
    let mut round = RollRound { step: recorded_step, ..RollRound::default() };
    let partition = match plan {
        RollPlan::Idle => 0,
        RollPlan::Hold { partition, waiting, stalled } => {
            round.waiting = Some(waiting);
            round.stalled = stalled;
            partition
        }
        RollPlan::Next { partition, ordinal } => {
            let current_image = cluster.status.as_ref().and_then(|s| s.current_image.as_deref());
            let gate = match storage_format {
                Some(format) if crate::storage_check::needed(&cluster.spec.image, current_image) => {
                    let (gate, answer) = storage_check::check_new_image(cluster, ctx, names, format).await;
                    round.storage_format_check = answer;
                    gate
                }
                _ => storage_check::Gate::Open,
            };
            match gate {
                storage_check::Gate::Open => {
                    take_step(cluster, ctx, names, node0, &hash, (partition, ordinal), &mut round).await
                }
                storage_check::Gate::Wait(what) => {
                    round.waiting = Some(what);
                    partition
                }
                storage_check::Gate::Refused(why) => {
                    round.waiting = Some(format!("a spec.image that reads the cluster's data ({why})"));
                    round.refused = Some(why);
                    partition
                }
            }
        }
    };
    if let Some(step) = &round.step {
        statefulset
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(crate::rolling::STEP_ANNOTATION.to_owned(), crate::rolling::step_annotation(step));
    }
    if let Some(spec) = statefulset.spec.as_mut() {
        let strategy = spec.update_strategy.get_or_insert_default();
        strategy.rolling_update = Some(RollingUpdateStatefulSetStrategy {
            partition: Some(i32::try_from(partition).unwrap_or(i32::MAX)),
            ..RollingUpdateStatefulSetStrategy::default()
        });
    }
    round
}

/// A step of the roll: asks the node of pod `ordinal` to hand its leaderships away and,
/// once it leads nothing, returns `ordinal` as the new partition (the StatefulSet restarts
/// that pod); until then `partition`, with what it waits for in `round`.
async fn take_step(
    cluster: &RestateCluster,
    ctx: &Context,
    names: &ClusterNames,
    node0: &provision::NodeEndpoint,
    hash: &str,
    (partition, ordinal): (u32, u32),
    round: &mut RollRound,
) -> u32 {
    let pod = names.pod(ordinal);
    match provision::prepare_restart(node0, &pod).await {
        Ok(None) => {
            let note = format!(
                "restarting {pod} on pod template {} (image {}): its partition leaderships moved to other nodes",
                &hash[..hash.len().min(12)],
                cluster.spec.image
            );
            tracing::info!(cluster = %cluster.name_any(), "{note}");
            events::publish(&ctx.recorder, cluster, &[events::upgrade_step(note)]).await;
            let partition = i32::try_from(ordinal).unwrap_or(i32::MAX);
            round.step = Some(crate::crd::UpgradeStep { partition, time: Time(Utc::now()) });
            ordinal
        }
        Ok(Some(left)) => {
            round.waiting = Some(format!("{pod} to hand over {left}"));
            partition
        }
        Err(reason) => {
            round.waiting = Some(format!("{pod} to be prepared for its restart: {reason}"));
            partition
        }
    }
}

/// What the node of the last restarted pod (`restarted`) still has to catch up before the
/// roll goes on: its processors' applied LSNs against every leader's (asked of every pod);
/// a node that does not answer counts as not caught up.
async fn catching_up(
    names: &ClusterNames,
    secret: &restate_proto::credentials::ClusterSecret,
    replicas: u32,
    restarted: u32,
) -> Option<String> {
    let mut leaders = std::collections::BTreeMap::new();
    let mut restarted_processors = None;
    for ordinal in 0..replicas {
        let node = provision::NodeEndpoint { address: names.node_address(ordinal), secret: secret.clone() };
        match provision::partition_processors(&node).await {
            Ok((all, led)) => {
                leaders.extend(led);
                if ordinal == restarted {
                    restarted_processors = Some(all);
                }
            }
            Err(reason) if ordinal == restarted => return Some(reason),
            Err(_) => {}
        }
    }
    crate::rolling::catch_up_lag(&leaders, &restarted_processors.unwrap_or_default())
}

/// Grows the data claims of pods `0..pods` from `from` to `to`, then deletes the
/// StatefulSet with its pods orphaned, so that the next round creates it with the new claim
/// template and adopts the running pods (none restarts). `Some(why)` when the API server
/// refuses a claim's growth (its StorageClass does not allow expansion): nothing is deleted.
async fn grow_volumes(
    cluster: &RestateCluster,
    ctx: &Context,
    names: &ClusterNames,
    pods: u32,
    from: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    to: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> Result<Option<String>, ReconcileError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let patch = serde_json::json!({ "spec": { "resources": { "requests": { "storage": to } } } });
    let mut grown = Vec::new();
    for ordinal in 0..pods {
        let claim = names.volume_claim(ordinal);
        match claims.patch(&claim, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => grown.push(claim),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                return Ok(Some(format!(
                    "spec.storage.size: growing claim {claim} from {} to {} was refused: {} (the StorageClass must                      allow volume expansion; otherwise set the size back to {})",
                    from.0, to.0, e.message, from.0
                )));
            }
            Err(source) => {
                return Err(ReconcileError::Apply { what: format!("PersistentVolumeClaim {claim}"), source })
            }
        }
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let orphan =
        DeleteParams { propagation_policy: Some(kube::api::PropagationPolicy::Orphan), ..DeleteParams::default() };
    match statefulsets.delete(&names.statefulset(), &orphan).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => {
            return Err(ReconcileError::Apply {
                what: format!("StatefulSet {} (re-creating it)", names.statefulset()),
                source,
            })
        }
    }
    let note = format!(
        "grew {} from {} to {}; re-creating StatefulSet {} with the new size around its running pods",
        if grown.is_empty() { "no claim yet".to_owned() } else { grown.join(", ") },
        from.0,
        to.0,
        names.statefulset()
    );
    tracing::info!(cluster = %cluster.name_any(), "{note}");
    events::publish(&ctx.recorder, cluster, &[events::volumes_grown(note)]).await;
    Ok(None)
}

/// Computes the status from `observation`, writes it, and publishes the Events of the
/// change.
async fn write_status(
    cluster: &RestateCluster,
    ctx: &Context,
    observation: &Observation,
    now: Time,
) -> Result<crate::crd::RestateClusterStatus, ReconcileError> {
    let namespace = cluster.namespace().ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    let status = next_status(cluster, observation, now);
    let patch = serde_json::json!({ "apiVersion": "restate.dev/v1", "kind": "RestateCluster", "status": &status });
    let clusters: Api<RestateCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    clusters
        .patch_status(&cluster.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|source| ReconcileError::Status { what: format!("{namespace}/{}", cluster.name_any()), source })?;
    events::publish(&ctx.recorder, cluster, &events::transitions(cluster.status.as_ref(), &status)).await;
    Ok(status)
}

/// A round whose `spec.config` / `spec.env` the node would refuse: nothing is applied;
/// the status says why (condition `ConfigInvalid`, a Warning Event per generation) and
/// otherwise what the StatefulSet shows. A spec change starts the next round.
async fn config_invalid_round(
    cluster: &RestateCluster,
    ctx: &Context,
    statefulset: Option<&StatefulSet>,
    why: String,
) -> Result<Action, ReconcileError> {
    tracing::warn!(cluster = %cluster.name_any(), namespace = ?cluster.namespace(), "not rolling out generation {:?}: {why}", cluster.metadata.generation);
    let observed = observe_statefulset(statefulset);
    let observation = Observation {
        statefulset_replicas_before: observed.statefulset_replicas,
        rolling: statefulset.and_then(roll_progress),
        config_invalid: Some(why),
        ..observed
    };
    write_status(cluster, ctx, &observation, Time(Utc::now())).await?;
    Ok(Action::requeue(Duration::from_secs(60)))
}

/// A count the API server reports as an optional `int32` (absent or negative: zero).
fn count(n: Option<i32>) -> u32 {
    n.map_or(0, |n| u32::try_from(n).unwrap_or(0))
}

/// Ready pods and size of the StatefulSet as read (none yet: zero).
fn observe_statefulset(statefulset: Option<&StatefulSet>) -> Observation {
    Observation {
        ready_pods: count(statefulset.and_then(|s| s.status.as_ref()).and_then(|s| s.ready_replicas)),
        statefulset_replicas: count(statefulset.and_then(|s| s.spec.as_ref()).and_then(|s| s.replicas)),
        ..Observation::default()
    }
}

/// How far a new pod template has rolled, while it rolls: the StatefulSet controller has
/// not seen the new template yet, or some pods still run the previous revision.
pub fn roll_progress(statefulset: &StatefulSet) -> Option<String> {
    let status = statefulset.status.as_ref()?;
    if status.observed_generation.unwrap_or(0) < statefulset.metadata.generation.unwrap_or(0) {
        return Some("the StatefulSet controller is picking up the new pod template".to_owned());
    }
    let update = status.update_revision.as_deref()?;
    if status.current_revision.as_deref() == Some(update) {
        return None;
    }
    Some(format!("{} of {} pods run the new revision {update}", status.updated_replicas.unwrap_or(0), status.replicas))
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
    let requested = cluster.spec.replication_nodes();
    let replication = match provision::cluster_view(node0).await {
        Ok(view) => Some(view.log_replication.node.min(requested)),
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
    let Ok(requested) = cluster.spec.replication_property() else { return };
    let Some(target) = replication_change(requested, view.alive_nodes, view.log_replication) else { return };
    match provision::set_replication(node0, target).await {
        Ok(()) => {
            tracing::info!(cluster = %cluster.name_any(), from = %view.log_replication, to = %target, "log replication changed");
            observation.log_replication = Some(target);
        }
        Err(reason) => {
            tracing::warn!(cluster = %cluster.name_any(), "changing the log replication: {reason}");
            observation.replication_refused = Some(format!(
                "spec.replication {requested}: the cluster stays at {} because {target} was refused: {reason}",
                view.log_replication
            ));
        }
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
    fn a_roll_is_seen_until_every_pod_runs_the_update_revision() {
        use k8s_openapi::api::apps::v1::StatefulSetStatus;
        let statefulset = |generation, observed, current: &str, update: &str, updated| StatefulSet {
            metadata: kube::api::ObjectMeta { generation: Some(generation), ..Default::default() },
            status: Some(StatefulSetStatus {
                observed_generation: Some(observed),
                current_revision: Some(current.to_owned()),
                update_revision: Some(update.to_owned()),
                updated_replicas: Some(updated),
                replicas: 3,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(roll_progress(&statefulset(2, 1, "r1", "r1", 3)).unwrap().contains("picking up"));
        assert_eq!(roll_progress(&statefulset(2, 2, "r1", "r2", 1)).unwrap(), "1 of 3 pods run the new revision r2");
        assert_eq!(roll_progress(&statefulset(2, 2, "r2", "r2", 3)), None);
        assert_eq!(roll_progress(&StatefulSet::default()), None, "no status yet: nothing rolls");
    }

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
            ReconcileError::Build(BuildError::InvalidSpec { field: "spec.volumes[0].name".into(), reason: "x".into() }),
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
            errors[6].to_string(),
            "adding the finalizer restate.dev/cleanup of RestateCluster a/b failed: conflict"
        );
    }
}
