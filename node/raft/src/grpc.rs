//! Raft messages over the node fabric (gRPC `RaftTransport.Stream`, one stream per peer;
//! `RaftTransport.Send` for peers without it).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::Message;
use restate_proto::raft::{self as pb, raft_transport_client::RaftTransportClient, raft_transport_server};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
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

/// Batches queued for one peer's stream and not yet taken by HTTP/2; past this the peer
/// is not keeping up, and further batches are dropped (reported unreachable: raft sends
/// again on its own schedule).
const STREAM_QUEUE: usize = 1024;

/// How often an idle stream's connection is checked, and how long an answer may take: a
/// peer that vanished without closing its connection (a host gone, a network cut) ends
/// the stream within about their sum.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Sends each peer's messages in order on one long-lived `Stream` call per peer: the
/// engine's thread encodes a batch and hands it to the peer's stream at once (no task in
/// between, never behind the previous batch's answer). A peer that does not serve
/// `Stream` (an older node) gets one unary `Send` per batch, in order, from one task.
/// Failures are reported to the engine: the groups whose messages a failed call carried
/// are unreachable (raft sends again on its own schedule), and a peer whose port refuses
/// connections is gone (a name that stopped resolving is not enough: a node cut off from
/// the network sees that of everyone, and its campaign would raise the term and unseat the
/// leader when it comes back).
pub struct GrpcTransport {
    from: u64,
    addresses: PeerAddresses,
    links: Mutex<HashMap<u64, PeerLink>>,
    engine: OnceLock<RaftEngine>,
    runtime: tokio::runtime::Handle,
}

/// This node's connection to one peer's address.
struct PeerLink {
    address: String,
    /// The open stream, if any (a new one opens with the next batch once it ended).
    stream: Option<PeerStream>,
    /// The peer answered `Stream` with UNIMPLEMENTED: unary calls from now on.
    unary_only: Arc<AtomicBool>,
    /// The queue of the task making the unary calls (started on first use).
    unary: Option<mpsc::UnboundedSender<Batch>>,
}

struct PeerStream {
    batches: mpsc::Sender<pb::RaftBatch>,
    /// The groups whose messages went on this stream: unreachable if it fails.
    groups: Arc<Mutex<BTreeSet<u64>>>,
    call: tokio::task::JoinHandle<()>,
}

impl GrpcTransport {
    /// Must be called inside a tokio runtime (its handle runs the calls).
    pub fn new(from: u64, addresses: PeerAddresses) -> Arc<GrpcTransport> {
        Arc::new(GrpcTransport {
            from,
            addresses,
            links: Mutex::new(HashMap::new()),
            engine: OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
        })
    }

    /// Connects failure reports to the engine (set once, after the engine started).
    pub fn attach(&self, engine: RaftEngine) {
        let _ = self.engine.set(engine);
    }

    /// Sends one peer's batch (an empty one is a probe: it opens a stream if none is open,
    /// and a refused connection then reports the peer gone).
    fn send_to(self: &Arc<Self>, peer: u64, batch: Batch) {
        let Some(address) = self.addresses.get(peer) else {
            tracing::debug!(peer, "no address known for raft peer; dropping {} messages", batch.len());
            self.report(peer, batch.iter().map(|(g, _)| *g));
            return;
        };
        let mut links = self.links.lock().expect("not poisoned");
        let link = links.entry(peer).or_insert_with(|| PeerLink::new(&address));
        if link.address != address {
            // A new address: the old stream and unary task end as their senders drop.
            *link = PeerLink::new(&address);
        }
        if link.unary_only.load(Ordering::Relaxed) {
            let unary = link.unary.get_or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                let this = Arc::clone(self);
                self.runtime.spawn(this.unary_sender(peer, address.clone(), rx));
                tx
            });
            let _ = unary.send(batch);
        } else {
            self.send_streamed(peer, link, batch);
        }
    }

    fn encode(&self, batch: &Batch) -> pb::RaftBatch {
        pb::RaftBatch {
            from: self.from,
            from_address: self.addresses.get(self.from).unwrap_or_default(),
            messages: batch
                .iter()
                .map(|(group, m)| pb::RaftEnvelope {
                    group: *group,
                    message: m.write_to_bytes().expect("raft messages encode"),
                })
                .collect(),
        }
    }

    /// Hands `batch` to the peer's stream, opening one if none is open.
    fn send_streamed(self: &Arc<Self>, peer: u64, link: &mut PeerLink, batch: Batch) {
        if link.stream.as_ref().is_none_or(|s| s.call.is_finished() || s.batches.is_closed()) {
            link.stream = self.open_stream(peer, &link.address, link.unary_only.clone());
        }
        let Some(stream) = link.stream.as_ref() else {
            self.report(peer, batch.iter().map(|(g, _)| *g));
            return;
        };
        stream.groups.lock().expect("not poisoned").extend(batch.iter().map(|(g, _)| *g));
        match stream.batches.try_send(self.encode(&batch)) {
            Ok(()) => crate::metrics::BATCHES.with_label_values(&["streamed"]).inc(),
            Err(e) => {
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the peer is not keeping up",
                    mpsc::error::TrySendError::Closed(_) => "its stream just ended",
                };
                tracing::debug!(peer, address = %link.address, "raft batch of {} messages dropped: {why}", batch.len());
                crate::metrics::BATCHES.with_label_values(&["dropped"]).inc();
                self.report(peer, batch.iter().map(|(g, _)| *g));
            }
        }
    }

    /// Opens a `Stream` call to `address`; the call's task reports its failure. `None` for
    /// an address that is not a valid endpoint.
    fn open_stream(self: &Arc<Self>, peer: u64, address: &str, unary_only: Arc<AtomicBool>) -> Option<PeerStream> {
        let endpoint = match Endpoint::from_shared(address.to_owned()) {
            // No request timeout: the stream lives as long as both nodes do.
            Ok(endpoint) => endpoint
                .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
                .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
                .keep_alive_while_idle(true),
            Err(e) => {
                tracing::warn!(peer, %address, "invalid raft peer address: {e}");
                return None;
            }
        };
        // Called on the engine's thread: the channel's tasks go to the node's runtime.
        let _runtime = self.runtime.enter();
        let mut client =
            RaftTransportClient::new(restate_proto::channel::lazy_channel(endpoint, Duration::from_secs(1)));
        let (batches, outgoing) = mpsc::channel(STREAM_QUEUE);
        let groups: Arc<Mutex<BTreeSet<u64>>> = Default::default();
        let (this, carried, address) = (Arc::clone(self), groups.clone(), address.to_owned());
        let call = self.runtime.spawn(async move {
            let Err(status) = client.stream(tokio_stream::wrappers::ReceiverStream::new(outgoing)).await else {
                return;
            };
            if status.code() == tonic::Code::Unimplemented {
                tracing::info!(peer, %address, "raft peer does not serve streams (an older version): one call per batch");
                unary_only.store(true, Ordering::Relaxed);
            } else {
                tracing::debug!(peer, %address, "raft stream ended: {}", status.message());
            }
            crate::metrics::BATCHES.with_label_values(&["stream_failed"]).inc();
            let carried: Vec<u64> = carried.lock().expect("not poisoned").iter().copied().collect();
            this.call_failed(peer, carried, &status);
        });
        Some(PeerStream { batches, groups, call })
    }

    /// Sends a peer's batches in order, one unary `Send` each, answered once the peer took it.
    async fn unary_sender(self: Arc<Self>, peer: u64, address: String, mut queue: mpsc::UnboundedReceiver<Batch>) {
        let mut client = match Endpoint::from_shared(address.clone()) {
            Ok(endpoint) => RaftTransportClient::new(restate_proto::channel::lazy_channel(
                endpoint.timeout(Duration::from_secs(5)),
                Duration::from_secs(1),
            )),
            Err(e) => {
                tracing::warn!(peer, %address, "invalid raft peer address: {e}");
                return;
            }
        };
        while let Some(mut batch) = queue.recv().await {
            while let Ok(more) = queue.try_recv() {
                batch.extend(more);
            }
            match client.send(self.encode(&batch)).await {
                Ok(_) => crate::metrics::BATCHES.with_label_values(&["sent"]).inc(),
                Err(status) => {
                    tracing::debug!(peer, %address, "raft send failed: {}", status.message());
                    crate::metrics::BATCHES.with_label_values(&["failed"]).inc();
                    self.call_failed(peer, batch.iter().map(|(g, _)| *g), &status);
                }
            }
        }
    }

    /// A call carrying messages of `groups` to `peer` failed with `status`: they are
    /// unreachable, and the peer is gone if its port refused the connection.
    fn call_failed(&self, peer: u64, groups: impl IntoIterator<Item = u64>, status: &tonic::Status) {
        self.report(peer, groups);
        if restate_proto::transport_errors::refused(status) {
            if let Some(engine) = self.engine.get() {
                engine.report_gone(peer);
            }
        }
    }

    /// Tells the engine that `peer` did not get messages of `groups`.
    fn report(&self, peer: u64, groups: impl IntoIterator<Item = u64>) {
        if let Some(engine) = self.engine.get() {
            let groups: BTreeSet<u64> = groups.into_iter().collect();
            for group in groups {
                engine.report_unreachable(group, peer);
            }
        }
    }
}

impl PeerLink {
    fn new(address: &str) -> PeerLink {
        PeerLink {
            address: address.to_owned(),
            stream: None,
            unary_only: Arc::new(AtomicBool::new(false)),
            unary: None,
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
            self.send_to(peer, batch);
        }
    }

    /// An empty batch to the peer: a refused connection reports the peer gone.
    fn probe(&self, peer: u64) {
        self.send_to(peer, Vec::new());
    }
}

pub type RaftTransportServer = raft_transport_server::RaftTransportServer<RaftTransportService>;

/// Receives raft messages for the local engine. Each group steps only its members'
/// messages (`RaftGroup::accepts_from`); a peer's address is never learned from what it
/// sends (the address book comes from the metadata members and NodesConfiguration).
/// Streams end when `stop` is cancelled (the node shuts down): the server's graceful
/// shutdown waits for open streams, and the peers' streams would otherwise never end; a
/// peer's next batch then finds the port closed and reports this node gone.
pub struct RaftTransportService {
    engine: RaftEngine,
    stop: CancellationToken,
}

impl RaftTransportService {
    pub fn new(
        engine: RaftEngine,
        stop: CancellationToken,
    ) -> raft_transport_server::RaftTransportServer<RaftTransportService> {
        raft_transport_server::RaftTransportServer::new(RaftTransportService::handler(engine, stop))
            .max_decoding_message_size(64 << 20)
    }

    /// The handler alone, for a caller that wraps it (tests of peers serving part of it).
    pub fn handler(engine: RaftEngine, stop: CancellationToken) -> RaftTransportService {
        RaftTransportService { engine, stop }
    }
}

/// The messages of a batch, each checked before any is stepped: decodable, and from the
/// sender the batch names (a peer speaks only for itself).
fn checked(batch: pb::RaftBatch) -> Result<Vec<(u64, Message)>, tonic::Status> {
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
    Ok(messages)
}

#[tonic::async_trait]
impl raft_transport_server::RaftTransport for RaftTransportService {
    async fn send(
        &self,
        request: tonic::Request<pb::RaftBatch>,
    ) -> Result<tonic::Response<pb::RaftBatchAck>, tonic::Status> {
        for (group, message) in checked(request.into_inner())? {
            self.engine.step(group, message);
        }
        Ok(tonic::Response::new(pb::RaftBatchAck {}))
    }

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<pb::RaftBatch>>,
    ) -> Result<tonic::Response<pb::RaftBatchAck>, tonic::Status> {
        let mut batches = request.into_inner();
        loop {
            let batch = tokio::select! {
                batch = batches.message() => batch?,
                _ = self.stop.cancelled() => None,
            };
            let Some(batch) = batch else { break };
            for (group, message) in checked(batch)? {
                self.engine.step(group, message);
            }
        }
        Ok(tonic::Response::new(pb::RaftBatchAck {}))
    }
}
