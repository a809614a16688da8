//! Membership: how a started node becomes part of a provisioned cluster.
//!
//! The task loops until the node is registered: it reads the ClusterConfiguration through
//! the metadata client; if there is none it provisions (auto-provision) or waits (saying
//! why in the node's phase); if there is one of another cluster name it fails the node;
//! otherwise it registers this incarnation in NodesConfiguration (same id for a known
//! name, next generation) and the node is running. It stops when registered, failed, or
//! on shutdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use restate_metadata::objects::{ClusterConfiguration, NodeConfig, NodesConfiguration};
use restate_metadata::replicated::MetadataState;
use restate_metadata::{typed, MetadataClient, MetadataClientOptions, MetadataStore, MetadataStoreError};
use restate_types::Backoff;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{NodePhase, NodeState};
use crate::metadata_role::ReplicatedRole;
use crate::provisioning::{self, ProvisionError, ProvisionOutcome, ProvisionParams, Provisioner};

/// What membership needs to know about this node and cluster.
pub(crate) struct MembershipContext {
    pub cluster_name: String,
    pub auto_provision: bool,
    pub default_params: ProvisionParams,
    pub me: Provisioner,
    /// Writes and linearizable reads, through the node's metadata view (so the view sees
    /// this node's writes at once).
    pub metadata: Arc<dyn MetadataStore>,
    /// The same store with a short retry budget (2 s), for lookups that must not stall.
    pub quick_metadata: Arc<dyn MetadataStore>,
    pub state: NodeState,
    /// Set by a successful `Provision` request: this process registered as that node.
    pub registered_by_provisioning: Mutex<Option<NodeConfig>>,
    /// Wakes the loop early (after a provision request).
    pub wake: Notify,
    /// This node's replicated metadata member, if it has one.
    pub(crate) replicated: Option<ReplicatedRole>,
    pub client_addresses: Vec<String>,
    /// One provisioning attempt at a time on this node.
    pub provision_lock: tokio::sync::Mutex<()>,
}

impl MembershipContext {
    /// Provisions on behalf of a request, remembering the registration if it won.
    pub async fn provision(&self, params: &ProvisionParams) -> Result<ProvisionOutcome, ProvisionError> {
        let _one_at_a_time = self.provision_lock.lock().await;
        let outcome = match &self.replicated {
            Some(role) if !role.server.is_member() => self.provision_new_store(role, params).await?,
            _ => provisioning::provision(self.metadata.as_ref(), &self.cluster_name, params, &self.me).await?,
        };
        if let ProvisionOutcome::Provisioned { node, .. } = &outcome {
            *self.registered_by_provisioning.lock().expect("not poisoned") = Some(node.clone());
        }
        self.wake.notify_one();
        Ok(outcome)
    }
}

impl MembershipContext {
    /// Provisioning on a replicated metadata node that is not a member yet: if a store
    /// already answers through the metadata-client addresses, provision through it (it
    /// says "already provisioned"); otherwise start a new store here, seeded with the
    /// initial metadata, with this node as its only voter.
    async fn provision_new_store(
        &self,
        role: &ReplicatedRole,
        params: &ProvisionParams,
    ) -> Result<ProvisionOutcome, ProvisionError> {
        params.validate().map_err(ProvisionError::Invalid)?;
        let quick = MetadataClient::new(
            &self.client_addresses,
            MetadataClientOptions {
                connect_timeout: Duration::from_millis(500),
                request_timeout: Duration::from_secs(2),
                retry_budget: Duration::from_millis(1500),
            },
        )?;
        if typed::get::<ClusterConfiguration>(&quick).await.is_ok() {
            return provisioning::provision(&quick, &self.cluster_name, params, &self.me).await;
        }
        let me = Provisioner { metadata_member: true, ..self.me.clone() };
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let (configuration, node, ops) =
            provisioning::initial_metadata(&self.cluster_name, params, provisioning::new_fingerprint(), now, &me);
        let state = MetadataState::initial(ops)?;
        let member = role.server.member_info(node.id.0, &me.name, &me.address);
        role.server.bootstrap(state, member).await.map_err(|e| MetadataStoreError::Unavailable(e.to_string()))?;
        let mut status = role.server.status_watch().expect("bootstrapped");
        tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.is_leader))
            .await
            .map_err(|_| {
                MetadataStoreError::Unavailable("the new metadata store elected no leader within 10 s".into())
            })?
            .map_err(|_| MetadataStoreError::Unavailable("the raft engine stopped".into()))?;
        tracing::info!(cluster = %self.cluster_name, fingerprint = %configuration.cluster_fingerprint, node = %node.current(), "cluster provisioned with a new replicated metadata store");
        Ok(ProvisionOutcome::Provisioned { configuration, node })
    }
}

/// Why the node cannot join; it shuts down with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MembershipFailure(pub String);

/// Looks at the cluster until this node is registered in it (returns its registration),
/// the node cannot join (fails it), or shutdown (`None`).
pub async fn join(
    ctx: &MembershipContext,
    shutdown: &CancellationToken,
) -> Result<Option<NodeConfig>, MembershipFailure> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        // A step may wait on metadata for seconds; shutdown must not wait for it.
        let stepped = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            stepped = step(ctx) => stepped,
        };
        match stepped {
            Ok(Some(node)) => return Ok(Some(node)),
            Ok(None) => {}
            Err(failure) => {
                ctx.state.set(NodePhase::Failed { reason: failure.0.clone() });
                return Err(failure);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = ctx.wake.notified() => backoff.reset(),
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One look at the cluster: Some(node) once registered, None to wait and look again.
async fn step(ctx: &MembershipContext) -> Result<Option<NodeConfig>, MembershipFailure> {
    // The first node of a new replicated cluster finds nobody serving metadata: ask with a
    // short budget so it starts the store (and provisions) in about 2 s, not 10.
    let may_start_store = ctx.auto_provision && ctx.replicated.as_ref().is_some_and(|r| !r.server.is_member());
    let lookup = if may_start_store { ctx.quick_metadata.as_ref() } else { ctx.metadata.as_ref() };
    let configuration = match typed::get::<ClusterConfiguration>(lookup).await {
        Ok(found) => found,
        // Nobody serves metadata yet: a replicated metadata node that may provision
        // starts the store itself (the first node of a new cluster).
        Err(MetadataStoreError::Unavailable(_))
            if ctx.auto_provision && ctx.replicated.as_ref().is_some_and(|r| !r.server.is_member()) =>
        {
            None
        }
        Err(MetadataStoreError::Unavailable(reason)) => {
            ctx.state.set(NodePhase::WaitingForMetadata { reason });
            return Ok(None);
        }
        Err(other) => {
            ctx.state.set(NodePhase::WaitingForMetadata { reason: other.to_string() });
            return Ok(None);
        }
    };
    match configuration {
        Some((configuration, _)) if configuration.cluster_name != ctx.cluster_name => Err(MembershipFailure(format!(
            "the metadata servers at {} belong to cluster '{}', but this node is configured with cluster-name '{}'; a node never joins a cluster of another name. Fix `cluster-name` or `[metadata-client] addresses`",
            ctx.me.address, configuration.cluster_name, ctx.cluster_name
        ))),
        Some(_) => register(ctx).await,
        None if ctx.auto_provision => match ctx.provision(&ctx.default_params).await {
            Ok(ProvisionOutcome::Provisioned { node, .. }) => Ok(Some(node)),
            Ok(ProvisionOutcome::AlreadyProvisioned { .. }) => register(ctx).await,
            Err(ProvisionError::Metadata(e)) => {
                ctx.state.set(NodePhase::WaitingForMetadata { reason: e.to_string() });
                Ok(None)
            }
            Err(other) => Err(MembershipFailure(format!("auto-provisioning failed: {other}"))),
        },
        None => {
            ctx.state.set(NodePhase::WaitingForProvisioning);
            Ok(None)
        }
    }
}

async fn register(ctx: &MembershipContext) -> Result<Option<NodeConfig>, MembershipFailure> {
    if let Some(node) = ctx.registered_by_provisioning.lock().expect("not poisoned").clone() {
        return Ok(Some(node));
    }
    let me = &ctx.me;
    let written = typed::read_modify_write::<NodesConfiguration, String, _>(ctx.metadata.as_ref(), |current| {
        let mut nodes = current.unwrap_or_default();
        if !nodes.cluster_name.is_empty() && nodes.cluster_name != ctx.cluster_name {
            return Err(format!(
                "NodesConfiguration belongs to cluster '{}', this node is configured for '{}'",
                nodes.cluster_name, ctx.cluster_name
            ));
        }
        nodes.cluster_name = ctx.cluster_name.clone();
        nodes.register(&me.name, &me.address, &me.roles, &me.storage_id, me.metadata_member, &me.location);
        Ok::<_, String>(Some(nodes))
    })
    .await;
    match written {
        Ok(Ok((nodes, version))) => {
            let node = nodes.find_by_name(&me.name).expect("just registered").clone();
            tracing::info!(node = %node.current(), nodes_config_version = version.0, "registered in the cluster");
            Ok(Some(node))
        }
        Ok(Err(refusal)) => Err(MembershipFailure(refusal)),
        Err(e) => {
            ctx.state.set(NodePhase::WaitingForMetadata { reason: e.to_string() });
            Ok(None)
        }
    }
}
