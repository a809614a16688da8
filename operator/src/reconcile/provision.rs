//! Provisioning through pod 0's node-control API (`NodeCtl.Provision`), exactly as
//! `restatectl provision` does: a cluster that is already provisioned answers with its
//! fingerprint and `newly_provisioned = false`, which counts as success.

use std::time::Duration;

use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, ProvisionRequest};

/// Provisions the cluster through the node at `address` with `partitions` partitions,
/// replicated logs at `replication`; returns the cluster's fingerprint.
pub async fn provision(address: &str, partitions: u32, replication: u32) -> Result<String, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(address.to_owned())
        .map_err(|e| format!("node address {address}: {e}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(30));
    let channel = endpoint.connect().await.map_err(|e| format!("cannot reach {address}: {e}"))?;
    let answer = NodeCtlClient::new(channel)
        .provision(ProvisionRequest {
            num_partitions: Some(partitions),
            replication: Some(replication),
            log_provider: Some("replicated".to_owned()),
        })
        .await
        .map_err(|s| format!("{address} refused provisioning: {}", s.message()))?
        .into_inner();
    if answer.cluster_fingerprint.is_empty() {
        return Err(format!("{address} answered provisioning without a cluster fingerprint"));
    }
    Ok(answer.cluster_fingerprint)
}
