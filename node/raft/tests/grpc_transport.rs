//! The engine over the real gRPC transport on loopback: raft messages travel on one
//! stream per peer, and a peer that serves only the unary call (an older node) still
//! gets every message.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use restate_proto::raft::{self as pb, raft_transport_server};
use restate_raft::grpc::{GrpcTransport, PeerAddresses, RaftTransportService};
use restate_raft::{GroupInit, GroupStatus, MembershipChange, RaftEngine, RaftOptions, StateMachine};
use restate_storage::rocksdb::WriteBatch;
use restate_storage::{NodeStorage, StorageOptions};
use tokio::sync::watch;

const GROUP: u64 = 3;

/// Records every applied command.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<u64>>>);

impl StateMachine for Recorder {
    fn apply(&mut self, _index: u64, command: &[u8], _writes: &mut WriteBatch) -> Bytes {
        self.0.lock().unwrap().push(u64::from_be_bytes(command.try_into().unwrap()));
        Bytes::new()
    }
    fn apply_membership(&mut self, _: u64, _: &MembershipChange, _: &[u64], _: &[u64]) {}
    fn snapshot(&self) -> Vec<u8> {
        self.0.lock().unwrap().iter().flat_map(|v| v.to_be_bytes()).collect()
    }
    fn restore(&mut self, _index: u64, snapshot: &[u8], _writes: &mut WriteBatch) {
        *self.0.lock().unwrap() = snapshot.chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect();
    }
}

/// A node's raft server that serves only some of the transport's calls: what a peer of
/// another version (or a broken one) answers.
struct Serving {
    handler: RaftTransportService,
    unary: bool,
    stream: bool,
}

#[tonic::async_trait]
impl raft_transport_server::RaftTransport for Serving {
    async fn send(
        &self,
        request: tonic::Request<pb::RaftBatch>,
    ) -> Result<tonic::Response<pb::RaftBatchAck>, tonic::Status> {
        if !self.unary {
            return Err(tonic::Status::unimplemented("not served here"));
        }
        self.handler.send(request).await
    }

    async fn stream(
        &self,
        request: tonic::Request<tonic::Streaming<pb::RaftBatch>>,
    ) -> Result<tonic::Response<pb::RaftBatchAck>, tonic::Status> {
        if !self.stream {
            return Err(tonic::Status::unimplemented("not served here"));
        }
        self.handler.stream(request).await
    }
}

struct Node {
    _dir: tempfile::TempDir,
    engine: RaftEngine,
    machine: Recorder,
    status: watch::Receiver<GroupStatus>,
}

/// Three nodes on loopback; node `i` serves unary calls if `unary[i]`, streams if `stream[i]`.
async fn cluster(unary: [bool; 3], stream: [bool; 3]) -> Vec<Node> {
    let addresses = PeerAddresses::default();
    let mut listeners = Vec::new();
    for peer in 1..=3u64 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addresses.set(peer, format!("http://{}", listener.local_addr().unwrap()));
        listeners.push(listener);
    }
    let options = RaftOptions {
        tick_interval: Duration::from_millis(10),
        election_tick: 10,
        heartbeat_tick: 2,
        snapshot_interval_entries: 1000,
        proposal_timeout: Duration::from_secs(5),
    };
    let mut nodes = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let peer = i as u64 + 1;
        let dir = tempfile::tempdir().unwrap();
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let transport = GrpcTransport::new(peer, addresses.clone());
        let engine = RaftEngine::start(storage, peer, Arc::new(transport.clone()), options.clone());
        transport.attach(engine.clone());
        let service = Serving {
            handler: RaftTransportService::handler(engine.clone(), Default::default()),
            unary: unary[i],
            stream: stream[i],
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(raft_transport_server::RaftTransportServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let machine = Recorder::default();
        let init = GroupInit::Bootstrap { voters: vec![1, 2, 3], initial_state: Vec::new() };
        let status = engine.create_group(GROUP, Box::new(machine.clone()), init).await.unwrap();
        nodes.push(Node { _dir: dir, engine, machine, status });
    }
    nodes
}

/// Elects a leader, has it apply `count` concurrent proposals, and waits until every node
/// applied all of them in the same order.
async fn replicate(nodes: &[Node], count: u64) {
    let leader = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(node) = nodes.iter().find(|n| n.status.borrow().is_leader) {
                return node;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a leader is elected over gRPC");
    let proposals: Vec<_> =
        (0..count).map(|v| leader.engine.propose(GROUP, Bytes::from(v.to_be_bytes().to_vec()))).collect();
    for proposal in proposals {
        proposal.await.expect("the proposal commits");
    }
    let expected = leader.machine.0.lock().unwrap().clone();
    assert_eq!(expected.len() as u64, count);
    for (i, node) in nodes.iter().enumerate() {
        tokio::time::timeout(Duration::from_secs(20), async {
            while node.machine.0.lock().unwrap().len() < expected.len() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("node {} applied {} of {count}", i + 1, node.machine.0.lock().unwrap().len()));
        assert_eq!(*node.machine.0.lock().unwrap(), expected, "node {} applied the same sequence", i + 1);
    }
}

fn batches(outcome: &str) -> f64 {
    restate_raft::raft_metrics()
        .iter()
        .flat_map(|c| c.collect())
        .filter(|family| family.name() == "restate_raft_batches_total")
        .flat_map(|family| family.get_metric().to_vec())
        .filter(|m| m.get_label().iter().any(|l| l.value() == outcome))
        .map(|m| m.get_counter().get_value())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_travel_on_streams_and_a_peer_without_them_gets_unary_calls() {
    // Nobody serves the unary call: everything must go on streams.
    let nodes = cluster([false; 3], [true; 3]).await;
    replicate(&nodes, 300).await;
    assert!(batches("streamed") > 0.0);
    for node in &nodes {
        node.engine.shutdown();
    }

    // Node 3 serves what the version before streams served: the others call it once per
    // batch (its own messages still go on streams).
    let sent_before = batches("sent");
    let nodes = cluster([true; 3], [true, true, false]).await;
    replicate(&nodes, 300).await;
    assert!(batches("sent") > sent_before, "node 3 got unary calls");
    for node in &nodes {
        node.engine.shutdown();
    }
}

/// A node that shuts down ends the streams it serves (its server's graceful shutdown
/// waits for open streams, and a peer never ends its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_ends_the_streams_it_serves() {
    let dir = tempfile::tempdir().unwrap();
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let engine =
        RaftEngine::start(storage, 9, restate_raft::LocalNetwork::default().transport(9), RaftOptions::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftTransportService::new(engine.clone(), stop.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut client = pb::raft_transport_client::RaftTransportClient::connect(address).await.unwrap();
    let (batches, outgoing) = tokio::sync::mpsc::channel(4);
    batches.send(pb::RaftBatch { from: 1, messages: Vec::new(), from_address: String::new() }).await.unwrap();
    let call = tokio::spawn(async move { client.stream(tokio_stream::wrappers::ReceiverStream::new(outgoing)).await });
    stop.cancel();
    let answer = tokio::time::timeout(Duration::from_secs(5), call).await.expect("the stream ends at shutdown");
    answer.unwrap().expect("it ends with an answer, not an error");
    drop(batches);
    engine.shutdown();
}
