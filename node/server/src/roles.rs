//! Starting the roles of a registered node: Bifrost (every node), the cluster controller
//! (admin), the partition processors and automatic trimming (worker), the replicated
//! loglets it hosts (log-server), and joining the replicated metadata store
//! (metadata-server). Each role is handed what it uses (the metadata view, Bifrost, the
//! worker) as arguments; once all exist they are published together ([`RunningRoles`]) to
//! the servers that started before them.

use std::sync::Arc;
use std::time::Duration;

use restate_metadata::objects::{MetadataServerState, NodeConfig, NodesConfiguration};
use restate_metadata::{typed, MetadataStore, MetadataView};
use restate_types::Backoff;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{NodePhase, NodeState};
use crate::metadata_role::ReplicatedRole;
use crate::metrics::NodeMetrics;
use crate::provisioning::Provisioner;
use crate::routing_metadata::RoutingMetadata;
use crate::running_roles::{RunningRoles, StartedRoles};

/// What the roles are started with: the node's parts they use and their configuration.
pub(crate) struct RolesContext {
    /// This node (its roles).
    pub me: Provisioner,
    pub cluster_name: String,
    /// The node's metadata view, and its store for writes.
    pub view: MetadataView,
    pub metadata: Arc<dyn MetadataStore>,
    /// The routing metadata shared by the ingress, the admin API, node control and trimming.
    pub routing: Arc<RoutingMetadata>,
    pub state: NodeState,
    pub metrics: NodeMetrics,
    pub loglets: Arc<restate_bifrost::LocalLogletProvider>,
    /// Replicated loglets this node hosts (log-server role).
    pub loglet_host: Option<Arc<restate_bifrost::replicated::ReplicatedLogletHost>>,
    /// This node's replicated metadata member, if it has one.
    pub replicated: Option<ReplicatedRole>,
    pub client_addresses: Vec<String>,
    /// `[metadata-server] auto-join`.
    pub auto_join: bool,
    /// `[admin] log-server-repair-grace-period`, for the cluster controller.
    pub repair_grace_period: Duration,
    /// `[worker] idempotency-retention`, for the partition processors.
    pub idempotency_retention: Duration,
    /// The node's request identity key, signing every request to deployments.
    pub request_signer: Option<Arc<restate_service_protocol::RequestSigner>>,
    /// `[worker.invoker] inactivity-timeout` and `abort-timeout`.
    pub invoker_inactivity_timeout: Duration,
    pub invoker_abort_timeout: Duration,
    /// `[invocation.default-retry-policy]`.
    pub retry_policy: restate_worker::processor::RetryPolicy,
    /// `[worker] workflow-completion-retention`.
    pub workflow_completion_retention: Duration,
    /// `[worker.snapshots] destination`, for the partition processors.
    pub snapshots: Option<restate_snapshots::SnapshotRepository>,
    /// `[worker.snapshots] snapshot-interval-num-records`.
    pub snapshot_interval_records: Option<u64>,
    /// Where the started Bifrost and worker are published for the servers started before
    /// them (node control, the ingress).
    pub running: RunningRoles,
}

/// Starts every role of this node, then waits until they stop (on shutdown): the node's
/// shutdown waits for this, and the roles hold the node's storage.
pub(crate) async fn run(ctx: &RolesContext, node: NodeConfig, shutdown: &CancellationToken) {
    let provider = restate_bifrost::ClusterLogletProvider::new(ctx.loglets.clone(), ctx.view.clone())
        .with_local_host(ctx.loglet_host.clone());
    let mut bifrost = restate_bifrost::Bifrost::new(ctx.view.clone(), Arc::new(provider)).with_node_id(node.id);
    match restate_bifrost::BifrostMetrics::register(ctx.metrics.registry()) {
        Ok(metrics) => bifrost = bifrost.with_metrics(metrics),
        Err(e) => tracing::warn!("bifrost metrics unavailable: {e}"),
    }
    let bifrost = Arc::new(bifrost);
    let controller = ctx.me.roles.contains(restate_types::Role::Admin).then(|| {
        let options = restate_cluster::ControllerOptions::new(node.id, ctx.repair_grace_period);
        tokio::spawn(restate_cluster::run(ctx.view.clone(), bifrost.clone(), options, shutdown.clone()))
    });
    let worker = ctx.me.roles.contains(restate_types::Role::Worker).then(|| {
        let worker = restate_worker::processor::Worker::new(restate_worker::processor::WorkerContext {
            me: node.id,
            node_name: node.name.clone(),
            metadata: ctx.view.clone(),
            bifrost: bifrost.clone(),
            storage: ctx.loglets.storage().clone(),
            // The invoker's own connection pool (not shared with the admin API's discovery).
            deployments: restate_service_protocol::DeploymentClient::default()
                .with_request_identity(ctx.request_signer.clone())
                .with_inactivity_timeout(ctx.invoker_inactivity_timeout),
            invoke_abort_timeout: ctx.invoker_abort_timeout,
            retry_policy: ctx.retry_policy.clone(),
            idempotency_retention: ctx.idempotency_retention,
            workflow_completion_retention: ctx.workflow_completion_retention,
            snapshots: ctx.snapshots.clone(),
            snapshot_interval_records: ctx.snapshot_interval_records,
            cluster_name: ctx.cluster_name.clone(),
            tasks: Default::default(),
        });
        tokio::spawn(crate::snapshots_ctl::run_auto_trim(
            ctx.routing.clone(),
            bifrost.clone(),
            worker.clone(),
            shutdown.clone(),
        ));
        (worker.clone(), tokio::spawn(worker.run(shutdown.clone())))
    });
    let (worker, worker_task) = worker.unzip();
    ctx.running.publish(StartedRoles { bifrost: bifrost.clone(), worker });
    if let Some(host) = &ctx.loglet_host {
        tokio::spawn(crate::loglet_hosting::run(host.clone(), ctx.view.clone(), node.id, shutdown.clone()));
        match restate_bifrost::LogletHostMetrics::register(ctx.metrics.registry()) {
            Ok(metrics) => {
                tokio::spawn(crate::loglet_hosting::report_usage(host.clone(), metrics, shutdown.clone()));
            }
            Err(e) => tracing::warn!("loglet metrics unavailable: {e}"),
        }
    }
    ctx.state.set(NodePhase::Running { node_id: node.current() });
    join_metadata_store(ctx, &node, shutdown).await;
    // The controller holds this node's storage (through Bifrost): the node's
    // shutdown, which waits for this task, must also wait for it to stop.
    for task in controller.into_iter().chain(worker_task) {
        let _ = task.await;
    }
}

/// Joins the replicated store (if this node should and is not a voter yet), retrying
/// until it succeeds or the node shuts down, then records it in NodesConfiguration.
async fn join_metadata_store(ctx: &RolesContext, node: &NodeConfig, shutdown: &CancellationToken) {
    let Some(role) = &ctx.replicated else { return };
    if !ctx.auto_join || role.server.is_voter() {
        return;
    }
    if node.draining {
        tracing::info!("draining: not joining the metadata store");
        return;
    }
    let me = role.server.member_info(node.id.0, &node.name, &node.address);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let pause = backoff.next_delay();
        match crate::metadata_join::join(role, me.clone(), &ctx.client_addresses).await {
            Ok(()) => break,
            Err(reason) => tracing::info!("joining the metadata store: {reason}; retrying in {pause:?}"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    let name = node.name.clone();
    let recorded = typed::read_modify_write::<NodesConfiguration, String, _>(ctx.metadata.as_ref(), |current| {
        let mut nodes = current.unwrap_or_default();
        let Some(entry) = nodes.nodes.values_mut().find(|n| n.name == name) else { return Ok(None) };
        if entry.metadata_server_state == MetadataServerState::Member {
            return Ok(None);
        }
        entry.metadata_server_state = MetadataServerState::Member;
        Ok(Some(nodes))
    })
    .await;
    if let Err(e) = recorded {
        tracing::warn!("recording metadata membership in NodesConfiguration failed: {e}");
    }
}
