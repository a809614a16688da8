//! One gRPC channel per peer node for the `Worker` service (the ingress forwarding
//! invocations to partition leaders, listing and signalling invocations), made on first
//! use and kept: a forwarded request does not pay a new connection, and a dead or
//! renamed peer costs a bounded connection attempt (`restate_proto::channel`), after
//! which the channel reconnects by itself when the peer is back.

use std::time::Duration;

use restate_proto::channel::NodeChannel as Channel;
use restate_proto::channel_cache::ChannelCache;
use restate_proto::worker::worker_client::WorkerClient;

/// Longest a TCP connect to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest answer accepted (invocation outputs and lists).
const MAX_MESSAGE: usize = 64 << 20;

pub(crate) struct WorkerChannels {
    channels: ChannelCache,
}

impl Default for WorkerChannels {
    fn default() -> Self {
        WorkerChannels { channels: ChannelCache::new(CONNECT_TIMEOUT) }
    }
}

impl WorkerChannels {
    /// A client of `address`'s `Worker` service; an address that does not parse is an
    /// error naming it.
    pub fn client(&self, address: &str) -> Result<WorkerClient<Channel>, String> {
        Ok(WorkerClient::new(self.channels.get(address)?).max_decoding_message_size(MAX_MESSAGE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_peer_that_refuses_fails_the_call_quickly_as_unavailable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let channels = WorkerChannels::default();
        let mut client = channels.client(&format!("http://127.0.0.1:{port}")).unwrap();
        let started = std::time::Instant::now();
        let status =
            client.list_invocations(restate_proto::worker::ListInvocationsRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(started.elapsed() < CONNECT_TIMEOUT, "{:?}", started.elapsed());
    }
}
