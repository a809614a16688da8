//! Asks nodes whether they answer: a node-control `GetNodeInfo` with a short deadline.

use std::collections::HashMap;
use std::time::Duration;

use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, GetNodeInfoRequest};
use tonic::transport::{Channel, Endpoint};

/// One lazily connected channel per address, reused across rounds.
#[derive(Default)]
pub(crate) struct Prober {
    channels: HashMap<String, Channel>,
}

impl Prober {
    fn channel(&mut self, address: &str, timeout: Duration) -> Option<Channel> {
        if let Some(channel) = self.channels.get(address) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(address.to_owned()).ok()?.connect_timeout(timeout).timeout(timeout);
        let channel = endpoint.connect_lazy();
        self.channels.insert(address.to_owned(), channel.clone());
        Some(channel)
    }

    /// Probes every address concurrently; true for each that answered within `timeout`.
    pub(crate) async fn probe_all(&mut self, addresses: &[String], timeout: Duration) -> Vec<bool> {
        let probes = addresses.iter().map(|address| {
            let channel = self.channel(address, timeout);
            async move {
                let Some(channel) = channel else { return false };
                let mut client = NodeCtlClient::new(channel);
                matches!(tokio::time::timeout(timeout, client.get_node_info(GetNodeInfoRequest {})).await, Ok(Ok(_)))
            }
        });
        futures::future::join_all(probes).await
    }
}
