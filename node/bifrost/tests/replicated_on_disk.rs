//! Replicated loglets keep their records on disk: raft engines on a simulated network in
//! one process, real RocksDB.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use restate_bifrost::replicated::{
    Command, HostedLoglet, LogServerService, Outcome, ReadRefused, ReplicatedLoglet, ReplicatedLogletHost,
};
use restate_bifrost::{LocalLogletProvider, Loglet};
use restate_raft::{LocalNetwork, MembershipChange, RaftEngine, RaftOptions};
use restate_storage::{NodeStorage, StorageOptions};
use restate_types::{LogletId, Lsn};

const LOGLET: LogletId = LogletId(3);

fn options() -> RaftOptions {
    RaftOptions {
        tick_interval: Duration::from_millis(10),
        election_tick: 10,
        heartbeat_tick: 2,
        snapshot_interval_entries: 20,
        proposal_timeout: Duration::from_secs(5),
    }
}

struct Node {
    engine: RaftEngine,
    host: Arc<ReplicatedLogletHost>,
}

impl Node {
    fn start(net: &LocalNetwork, peer: u64, dir: &std::path::Path) -> Node {
        let storage = NodeStorage::open(dir, &StorageOptions::default()).unwrap();
        let engine = RaftEngine::start(storage.clone(), peer, net.transport(peer), options());
        net.register(peer, engine.clone());
        let host = Arc::new(ReplicatedLogletHost::new(engine.clone(), storage.clone(), Default::default()));
        Node { engine, host }
    }

    /// Stops the engine (joining its thread). Every handle on the storage must be gone
    /// before the same directory is opened again.
    fn stop(self) {
        self.engine.shutdown();
    }
}

fn record(lsn: u64) -> Bytes {
    let mut payload = format!("record-{lsn:08}-").into_bytes();
    payload.resize(512, b'.');
    Bytes::from(payload)
}

async fn append(host: &ReplicatedLogletHost, first: u64, count: u64) {
    let mut lsn = first;
    while lsn < first + count {
        let batch: Vec<Bytes> = (lsn..(lsn + 50).min(first + count)).map(record).collect();
        let n = batch.len() as u64;
        let outcome = host.propose(LOGLET, Command::Append(batch)).await.unwrap();
        assert_eq!(outcome, Outcome::Appended(lsn + n - 1));
        lsn += n;
    }
}

async fn wait_leader(hosted: &HostedLoglet) {
    let mut status = hosted.status.clone();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.is_leader)).await.unwrap().unwrap();
}

/// Every record `from..to` read back from `hosted`, in reads of 300.
fn read_all(hosted: &HostedLoglet, from: u64, to: u64) -> Vec<(u64, Bytes)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < to {
        let (batch, _) = hosted.read(next, 300).unwrap();
        assert!(!batch.is_empty(), "nothing read at LSN {next} (expected up to {to})");
        next = batch.last().unwrap().0 + 1;
        out.extend(batch);
    }
    out
}

fn assert_records(read: &[(u64, Bytes)], from: u64, to: u64) {
    assert_eq!(read.len() as u64, to - from, "records {from}..{to}");
    for (i, (lsn, payload)) in read.iter().enumerate() {
        assert_eq!(*lsn, from + i as u64);
        assert_eq!(payload, &record(*lsn), "payload of LSN {lsn}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_read_from_disk_survive_a_restart_and_a_trim_cuts_the_raft_log() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::default();
    let node = Node::start(&net, 1, dir.path());
    let hosted = node.host.ensure(LOGLET, vec![1]).await.unwrap();
    wait_leader(&hosted).await;
    // Far more entries than the raft log keeps in memory (1,024).
    append(&node.host, 1, 3000).await;
    assert_records(&read_all(&hosted, 1, 3001), 1, 3001);
    assert_eq!(hosted.state.read().unwrap().next_lsn, 3001);
    let log_before_trim = hosted.status.borrow().log_length;
    assert!(log_before_trim >= 60, "the raft log holds the records: {log_before_trim} entries");
    drop(hosted);
    node.stop();

    let node = Node::start(&net, 1, dir.path());
    let hosted = node.host.ensure(LOGLET, vec![1]).await.unwrap();
    assert_eq!(hosted.state.read().unwrap().next_lsn, 3001, "the state is read from disk, not replayed");
    assert_records(&read_all(&hosted, 1, 3001), 1, 3001);
    wait_leader(&hosted).await;

    assert_eq!(node.host.propose(LOGLET, Command::Trim(2020)).await.unwrap(), Outcome::Trimmed(2020));
    let (first, state) = hosted.read(1, 5).unwrap();
    assert_eq!(state.trim_point, 2020);
    assert_eq!(first[0].0, 2021, "reads start after the trim point");
    assert_records(&read_all(&hosted, 2021, 3001), 2021, 3001);
    let status = hosted.status.borrow().clone();
    assert!(status.snapshot_index > 1, "the raft log was cut behind the trim: {status:?}");
    assert!(status.log_length < log_before_trim, "{status:?}");
    append(&node.host, 3001, 100).await;
    assert_records(&read_all(&hosted, 2021, 3101), 2021, 3101);
    node.stop();
}

/// Two nodes on one simulated network; the first leads the loglet alone, the second
/// hosts nothing yet.
async fn first_leads_second_waits(dirs: &[tempfile::TempDir; 2]) -> (LocalNetwork, Node, Node, Arc<HostedLoglet>) {
    let net = LocalNetwork::default();
    let first = Node::start(&net, 1, dirs[0].path());
    let second = Node::start(&net, 2, dirs[1].path());
    let leader = first.host.ensure(LOGLET, vec![1]).await.unwrap();
    wait_leader(&leader).await;
    (net, first, second, leader)
}

/// `second` joins the loglet `first` leads as a learner; returns its copy once it has
/// applied what the leader had when it was added, within `within`.
async fn join_as_learner(first: &Node, second: &Node, leader: &HostedLoglet, within: Duration) -> Arc<HostedLoglet> {
    let joined = second.host.ensure(LOGLET, vec![]).await.unwrap();
    first
        .host
        .change_membership(LOGLET, MembershipChange::AddLearner { peer: 2, context: Default::default() })
        .await
        .unwrap();
    let target = leader.status.borrow().applied;
    let mut status = joined.status.clone();
    tokio::time::timeout(within, status.wait_for(|s| s.applied >= target))
        .await
        .unwrap_or_else(|_| panic!("the new member caught up within {within:?}"))
        .unwrap();
    joined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_after_a_trim_catches_up_through_the_log_and_reads_the_same_records() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (_net, first, second, leader) = first_leads_second_waits(&dirs).await;
    append(&first.host, 1, 1500).await;
    assert_eq!(first.host.propose(LOGLET, Command::Trim(700)).await.unwrap(), Outcome::Trimmed(700));
    append(&first.host, 1501, 1500).await;

    let joined = join_as_learner(&first, &second, &leader, Duration::from_secs(30)).await;
    let mut status = joined.status.clone();
    assert_eq!(joined.state.read().unwrap().next_lsn, 3001);
    assert_records(&read_all(&joined, 701, 3001), 701, 3001);

    // It stays in step with appends after it joined.
    append(&first.host, 3001, 50).await;
    let target = leader.status.borrow().applied;
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.applied >= target)).await.unwrap().unwrap();
    assert_records(&read_all(&joined, 701, 3051), 701, 3051);
    first.stop();
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_its_own_copy_without_a_call_once_its_member_is_a_voter() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let (_net, first, second, leader) = first_leads_second_waits(&dirs).await;
    append(&first.host, 1, 100).await;
    let joined = join_as_learner(&first, &second, &leader, Duration::from_secs(10)).await;
    let mut status = joined.status.clone();
    assert_eq!(joined.serve_read(1, 10).unwrap_err(), ReadRefused::CatchingUp, "a learner serves no reads");

    // Nothing listens at the address the clients know: only the node's own copy can answer
    // (a call would fail after its 10 s of retries).
    let nowhere = || vec!["http://127.0.0.1:1".to_owned()];
    let read_through =
        |host: &Arc<ReplicatedLogletHost>| ReplicatedLoglet::new(LOGLET, nowhere()).with_local_host(Some(host.clone()));
    let expect_all = |batch: restate_bifrost::ReadBatch| {
        let read: Vec<(u64, Bytes)> = batch.records.into_iter().map(|r| (r.lsn.0, r.payload)).collect();
        assert_records(&read, 1, 101);
        assert_eq!(batch.tail.next_lsn, Lsn(101));
    };
    expect_all(read_through(&first.host).read(Lsn(1), 1000).await.unwrap());

    first
        .host
        .change_membership(LOGLET, MembershipChange::AddVoter { peer: 2, context: Default::default() })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| s.voters.contains(&2)))
        .await
        .expect("the second member became a voter within 10 s")
        .unwrap();
    expect_all(read_through(&second.host).read(Lsn(1), 1000).await.unwrap());
    first.stop();
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_large_records_returns_a_bounded_batch_and_always_one_record() {
    use restate_bifrost::replicated::MAX_READ_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::default();
    let node = Node::start(&net, 1, dir.path());
    let hosted = node.host.ensure(LOGLET, vec![1]).await.unwrap();
    wait_leader(&hosted).await;
    // 40 records of 1 MiB, then one larger than a whole batch.
    let large = |lsn: u64, size: usize| Bytes::from(vec![lsn as u8; size]);
    for lsn in 1..=40 {
        let outcome = node.host.propose(LOGLET, Command::Append(vec![large(lsn, 1 << 20)])).await.unwrap();
        assert_eq!(outcome, Outcome::Appended(lsn));
    }
    let huge = MAX_READ_BYTES + (1 << 20);
    assert_eq!(node.host.propose(LOGLET, Command::Append(vec![large(41, huge)])).await.unwrap(), Outcome::Appended(41));
    let mut next = 1;
    while next <= 41 {
        let (batch, _) = hosted.read(next, 1000).unwrap();
        assert!(!batch.is_empty(), "a read at {next} returned nothing");
        let bytes: usize = batch.iter().map(|(_, p)| p.len()).sum();
        assert!(
            batch.len() == 1 || bytes <= MAX_READ_BYTES + (1 << 20),
            "{} records, {bytes} bytes in one read",
            batch.len()
        );
        for (i, (lsn, payload)) in batch.iter().enumerate() {
            assert_eq!(*lsn, next + i as u64);
            assert_eq!(payload[0], *lsn as u8);
        }
        next = batch.last().unwrap().0 + 1;
    }
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_through_one_client_each_get_their_own_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::default();
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let engine = RaftEngine::start(storage.clone(), 1, net.transport(1), options());
    net.register(1, engine.clone());
    let host = Arc::new(ReplicatedLogletHost::new(engine.clone(), storage.clone(), Default::default()));
    let hosted = host.ensure(LOGLET, vec![1]).await.unwrap();
    wait_leader(&hosted).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let service = LogServerService::new(
        host.clone(),
        Arc::new(LocalLogletProvider::new(storage.clone())),
        tokio_util::sync::CancellationToken::new(),
    );
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    // 64 appenders share one client (as a node's processors do); each appends one or
    // two records at a time, so batches mix requests of different sizes.
    let client = Arc::new(ReplicatedLoglet::new(LOGLET, vec![address]));
    let appenders: Vec<_> = (0..64u64)
        .map(|appender| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut answered = Vec::new();
                for i in 0..20u64 {
                    let records: Vec<Bytes> =
                        (0..1 + (appender + i) % 2).map(|j| Bytes::from(format!("{appender}-{i}-{j}"))).collect();
                    let last = client.append(records.clone()).await.unwrap().0;
                    let first = last + 1 - records.len() as u64;
                    answered.extend((first..=last).zip(records));
                }
                answered
            })
        })
        .collect();
    let mut answered = Vec::new();
    for appender in appenders {
        answered.extend(appender.await.unwrap());
    }
    answered.sort();
    let total = answered.len() as u64;
    assert_eq!(answered.iter().map(|(lsn, _)| *lsn).collect::<Vec<_>>(), (1..=total).collect::<Vec<_>>());
    assert_eq!(read_all(&hosted, 1, total + 1), answered, "each append's records are at the LSNs it was told");
    let entries = hosted.status.borrow().log_length;
    assert!(entries < total / 2, "concurrent appends shared raft entries: {entries} for {total} records");
    server.abort();
    drop(hosted);
    engine.shutdown();
}
