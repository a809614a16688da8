//! Asks nodes whether they answer: a node-control `GetNodeInfo` with a short deadline.
//! A node whose port refuses the connection at once has no process listening (killed,
//! crashed): that is told apart from one that stays silent (paused, partitioned, busy).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, GetNodeInfoRequest};
use tonic::transport::{Channel, Endpoint};

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Answered,
    /// The connection failed well before the deadline (refused, reset): nothing listens.
    Refused,
    /// No answer within the deadline, or an error answer.
    Silent,
}

/// One lazily connected channel per address, reused across rounds.
#[derive(Default)]
pub struct Prober {
    channels: HashMap<String, Channel>,
}

impl Prober {
    fn channel(&mut self, address: &str, timeout: Duration) -> Option<Channel> {
        if let Some(channel) = self.channels.get(address) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(address.to_owned()).ok()?.timeout(timeout);
        let channel = restate_proto::channel::lazy_channel(endpoint, timeout);
        self.channels.insert(address.to_owned(), channel.clone());
        Some(channel)
    }

    /// Probes every address concurrently, each with `timeout`.
    pub async fn probe_all(&mut self, addresses: &[String], timeout: Duration) -> Vec<Probe> {
        let probes = addresses.iter().map(|address| {
            let channel = self.channel(address, timeout);
            async move {
                let Some(channel) = channel else { return Probe::Silent };
                let mut client = NodeCtlClient::new(channel);
                let began = Instant::now();
                match tokio::time::timeout(timeout, client.get_node_info(GetNodeInfoRequest {})).await {
                    Ok(Ok(_)) => Probe::Answered,
                    Ok(Err(status))
                        if status.code() == tonic::Code::Unavailable
                            && (began.elapsed() < timeout / 2
                                || restate_proto::transport_errors::peer_gone(&status)) =>
                    {
                        Probe::Refused
                    }
                    _ => Probe::Silent,
                }
            }
        });
        futures::future::join_all(probes).await
    }
}
