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
use restate_metadata::{typed, MetadataStore, MetadataStoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::{NodePhase, NodeState};
use crate::provisioning::{self, ProvisionError, ProvisionOutcome, ProvisionParams, Provisioner};

/// What membership needs to know about this node and cluster.
pub struct MembershipContext {
    pub cluster_name: String,
    pub auto_provision: bool,
    pub default_params: ProvisionParams,
    pub me: Provisioner,
    pub metadata: Arc<dyn MetadataStore>,
    pub state: NodeState,
    /// Set by a successful `Provision` request: this process registered as that node.
    pub registered_by_provisioning: Mutex<Option<NodeConfig>>,
    /// Wakes the loop early (after a provision request).
    pub wake: Notify,
}

impl MembershipContext {
    /// Provisions on behalf of a request, remembering the registration if it won.
    pub async fn provision(&self, params: &ProvisionParams) -> Result<ProvisionOutcome, ProvisionError> {
        let outcome = provisioning::provision(self.metadata.as_ref(), &self.cluster_name, params, &self.me).await?;
        if let ProvisionOutcome::Provisioned { node, .. } = &outcome {
            *self.registered_by_provisioning.lock().expect("not poisoned") = Some(node.clone());
        }
        self.wake.notify_one();
        Ok(outcome)
    }
}

/// Why the node cannot join; it shuts down with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MembershipFailure(pub String);

pub async fn run(ctx: Arc<MembershipContext>, shutdown: CancellationToken) -> Result<(), MembershipFailure> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match step(&ctx).await {
            Ok(Some(node)) => {
                ctx.state.set(NodePhase::Running { node_id: node.current() });
                return Ok(());
            }
            Ok(None) => {}
            Err(failure) => {
                ctx.state.set(NodePhase::Failed { reason: failure.0.clone() });
                return Err(failure);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ctx.wake.notified() => backoff = Duration::from_millis(100),
            _ = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(2)),
        }
    }
}

/// One look at the cluster: Some(node) once registered, None to wait and look again.
async fn step(ctx: &MembershipContext) -> Result<Option<NodeConfig>, MembershipFailure> {
    let configuration = match typed::get::<ClusterConfiguration>(ctx.metadata.as_ref()).await {
        Ok(found) => found,
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
        nodes.register(&me.name, &me.address, &me.roles, &me.storage_id, me.metadata_member);
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
