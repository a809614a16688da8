//! Asks nodes whether they answer: a node-control `GetNodeInfo` with a short deadline.
//! A node whose port refuses the connection at once has no process listening (killed,
//! crashed): that is told apart from one that stays silent (paused, partitioned, busy).

use std::time::{Duration, Instant};

use restate_proto::channel_cache::ChannelCache;
use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, GetNodeInfoRequest};

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Answered,
    /// The connection failed well before the deadline (refused, reset): nothing listens.
    Refused,
    /// No answer within the deadline, or an error answer.
    Silent,
}

/// Longest a probe's TCP connect may take (the probe's own deadline may be shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One lazily connected channel per address, reused across rounds.
pub struct Prober {
    channels: ChannelCache,
}

impl Default for Prober {
    fn default() -> Self {
        Prober { channels: ChannelCache::new(CONNECT_TIMEOUT) }
    }
}

impl Prober {
    /// Probes every address concurrently, each with `timeout`.
    pub async fn probe_all(&self, addresses: &[String], timeout: Duration) -> Vec<Probe> {
        let probes = addresses.iter().map(|address| {
            let channel = self.channels.get(address);
            async move {
                let Ok(channel) = channel else { return Probe::Silent };
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
