//! Raft messages over the node fabric (gRPC `RaftTransport.Send`, batched per peer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use restate_proto::channel::NodeChannel as Channel;
use restate_proto::raft::{self as pb, raft_transport_client::RaftTransportClient, raft_transport_server};
use tokio::sync::mpsc;
use tonic::transport::Endpoint;

use crate::engine::RaftEngine;
use crate::transport::RaftTransport;

/// Raft id -> advertised address of the node running that peer.
#[derive(Clone, Default)]
pub struct PeerAddresses(Arc<RwLock<HashMap<u64, String>>>);

impl PeerAddresses {
    pub fn set(&self, peer: u64, address: String) {
        self.0.write().expect("not poisoned").insert(peer, address);
    }
    pub fn remove(&self, peer: u64) {
        self.0.write().expect("not poisoned").remove(&peer);
    }
    pub fn get(&self, peer: u64) -> Option<String> {
        self.0.read().expect("not poisoned").get(&peer).cloned()
    }
}

type Batch = Vec<(u64, Message)>;

/// Sends each peer's messages in order through one queue and one task per peer; a failed
/// batch is reported unreachable to the engine (raft retries on its own schedule), and a
/// peer whose port refuses connections is reported gone (a name that stopped resolving is
/// not enough: a node cut off from the network sees that of everyone, and its campaign
/// would raise the term and unseat the leader when it comes back).
pub struct GrpcTransport {
    from: u64,
    addresses: PeerAddresses,
    queues: Mutex<HashMap<u64, mpsc::UnboundedSender<Batch>>>,
    engine: OnceLock<RaftEngine>,
    runtime: tokio::runtime::Handle,
}

impl GrpcTransport {
    /// Must be called inside a tokio runtime (its handle runs the sender tasks).
    pub fn new(from: u64, addresses: PeerAddresses) -> Arc<GrpcTransport> {
        Arc::new(GrpcTransport {
            from,
            addresses,
            queues: Mutex::new(HashMap::new()),
            engine: OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Connects failure reports to the engine (set once, after the engine started).
    pub fn attach(&self, engine: RaftEngine) {
        let _ = self.engine.set(engine);
    }

    fn queue(self: &Arc<Self>, peer: u64) -> mpsc::UnboundedSender<Batch> {
        let mut queues = self.queues.lock().expect("not poisoned");
        queues
            .entry(peer)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let this = Arc::clone(self);
                self.runtime.spawn(async move { this.peer_sender(peer, rx).await });
                tx
            })
            .clone()
    }

    async fn peer_sender(self: Arc<Self>, peer: u64, mut queue: mpsc::UnboundedReceiver<Batch>) {
        let mut client: Option<(String, RaftTransportClient<Channel>)> = None;
        while let Some(mut batch) = queue.recv().await {
            while let Ok(more) = queue.try_recv() {
                batch.extend(more);
            }
            let Some(address) = self.addresses.get(peer) else {
                tracing::debug!(peer, "no address known for raft peer; dropping {} messages", batch.len());
                self.report(peer, &batch);
                continue;
            };
            if client.as_ref().is_none_or(|(a, _)| *a != address) {
                client = match Endpoint::from_shared(address.clone()) {
                    Ok(endpoint) => Some((
                        address.clone(),
                        RaftTransportClient::new(restate_proto::channel::lazy_channel(
                            endpoint.timeout(Duration::from_secs(5)),
                            Duration::from_secs(1),
                        )),
                    )),
                    Err(e) => {
                        tracing::warn!(peer, %address, "invalid raft peer address: {e}");
                        None
                    }
                };
            }
            let Some((_, c)) = client.as_mut() else {
                self.report(peer, &batch);
                continue;
            };
            let request = pb::RaftBatch {
                from: self.from,
                from_address: self.addresses.get(self.from).unwrap_or_default(),
                messages: batch
                    .iter()
                    .map(|(group, m)| pb::RaftEnvelope {
                        group: *group,
                        message: m.write_to_bytes().expect("raft messages encode"),
                    })
                    .collect(),
            };
            let began = std::time::Instant::now();
            let sent = c.send(request).await;
            crate::metrics::SEND_SECONDS.observe(began.elapsed().as_secs_f64());
            if let Err(status) = sent {
                tracing::debug!(peer, %address, "raft send failed: {}", status.message());
                self.report(peer, &batch);
                if restate_proto::transport_errors::refused(&status) {
                    if let Some(engine) = self.engine.get() {
                        engine.report_gone(peer);
                    }
                }
            }
        }
    }

    fn report(&self, peer: u64, batch: &Batch) {
        if let Some(engine) = self.engine.get() {
            let mut groups: Vec<u64> = batch.iter().map(|(g, _)| *g).collect();
            groups.dedup();
            for group in groups {
                engine.report_unreachable(group, peer);
            }
        }
    }
}

impl RaftTransport for Arc<GrpcTransport> {
    fn send(&self, messages: Vec<(u64, Message)>) {
        let mut by_peer: HashMap<u64, Batch> = HashMap::new();
        for (group, message) in messages {
            by_peer.entry(message.to).or_default().push((group, message));
        }
        for (peer, batch) in by_peer {
            let _ = self.queue(peer).send(batch);
        }
    }

    /// An empty batch through the peer's queue: a refused connection reports the peer gone
    /// (see `peer_sender`).
    fn probe(&self, peer: u64) {
        let _ = self.queue(peer).send(Vec::new());
    }
}

pub type RaftTransportServer = raft_transport_server::RaftTransportServer<RaftTransportService>;

/// Receives raft messages for the local engine. Each group steps only its members'
/// messages (`RaftGroup::accepts_from`); a peer's address is never learned from what it
/// sends (the address book comes from the metadata members and NodesConfiguration).
pub struct RaftTransportService {
    engine: RaftEngine,
}

impl RaftTransportService {
    pub fn new(engine: RaftEngine) -> raft_transport_server::RaftTransportServer<RaftTransportService> {
        raft_transport_server::RaftTransportServer::new(RaftTransportService { engine })
            .max_decoding_message_size(64 << 20)
    }
}

#[tonic::async_trait]
impl raft_transport_server::RaftTransport for RaftTransportService {
    async fn send(
        &self,
        request: tonic::Request<pb::RaftBatch>,
    ) -> Result<tonic::Response<pb::RaftBatchAck>, tonic::Status> {
        let batch = request.into_inner();
        // The whole batch is checked before any message is stepped.
        let mut messages = Vec::with_capacity(batch.messages.len());
        for envelope in batch.messages {
            let message = Message::parse_from_bytes(&envelope.message)
                .map_err(|e| tonic::Status::invalid_argument(format!("undecodable raft message: {e}")))?;
            if message.from != batch.from {
                return Err(tonic::Status::invalid_argument(format!(
                    "a raft batch from peer {} carries a message from peer {}: a peer speaks only for itself",
                    batch.from, message.from
                )));
            }
            messages.push((envelope.group, message));
        }
        for (group, message) in messages {
            self.engine.step(group, message);
        }
        Ok(tonic::Response::new(pb::RaftBatchAck {}))
    }
}
