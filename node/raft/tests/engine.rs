//! Deterministic multi-node tests of the engine in one process: engines on a simulated
//! network (isolation = dropped messages), real RocksDB, short ticks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use restate_raft::{
    GroupInit, GroupStatus, LocalNetwork, MembershipChange, RaftEngine, RaftError, RaftOptions, StateMachine,
};
use restate_storage::rocksdb::WriteBatch;
use restate_storage::{NodeStorage, StorageOptions};
use tokio::sync::watch;

const GROUP: u64 = 7;

/// Records every applied command; the snapshot is the whole record.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<u64>>>);

impl StateMachine for Recorder {
    fn apply(&mut self, _index: u64, command: &[u8], _writes: &mut WriteBatch) -> Bytes {
        let value = u64::from_be_bytes(command.try_into().unwrap());
        let mut log = self.0.lock().unwrap();
        log.push(value);
        Bytes::from((log.len() as u64).to_be_bytes().to_vec())
    }
    fn apply_membership(&mut self, _: u64, _: &MembershipChange, _: &[u64], _: &[u64]) {}
    fn snapshot(&self) -> Vec<u8> {
        self.0.lock().unwrap().iter().flat_map(|v| v.to_be_bytes()).collect()
    }
    fn restore(&mut self, _index: u64, snapshot: &[u8], _writes: &mut WriteBatch) {
        *self.0.lock().unwrap() = snapshot.chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect();
    }
}

struct TestNode {
    _dir: tempfile::TempDir,
    storage: NodeStorage,
    engine: RaftEngine,
    machine: Recorder,
    status: watch::Receiver<GroupStatus>,
}

fn options() -> RaftOptions {
    RaftOptions {
        tick_interval: Duration::from_millis(10),
        election_tick: 10,
        heartbeat_tick: 2,
        snapshot_interval_entries: 20,
        proposal_timeout: Duration::from_secs(3),
    }
}

async fn start(net: &LocalNetwork, peer: u64, dir: tempfile::TempDir, init: GroupInit) -> TestNode {
    start_with(net, peer, dir, init, options()).await
}

async fn start_with(
    net: &LocalNetwork,
    peer: u64,
    dir: tempfile::TempDir,
    init: GroupInit,
    options: RaftOptions,
) -> TestNode {
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let engine = RaftEngine::start(storage.clone(), peer, net.transport(peer), options);
    net.register(peer, engine.clone());
    let machine = Recorder::default();
    let status = engine.create_group(GROUP, Box::new(machine.clone()), init).await.unwrap();
    TestNode { _dir: dir, storage, engine, machine, status }
}

async fn cluster(net: &LocalNetwork, peers: &[u64]) -> Vec<TestNode> {
    cluster_with(net, peers, options()).await
}

async fn cluster_with(net: &LocalNetwork, peers: &[u64], options: RaftOptions) -> Vec<TestNode> {
    let mut nodes = Vec::new();
    for &peer in peers {
        let init = GroupInit::Bootstrap { voters: peers.to_vec(), initial_state: Vec::new() };
        nodes.push(start_with(net, peer, tempfile::tempdir().unwrap(), init, options.clone()).await);
    }
    nodes
}

async fn wait_for(
    status: &mut watch::Receiver<GroupStatus>,
    what: &str,
    predicate: impl Fn(&GroupStatus) -> bool,
) -> GroupStatus {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let current = status.borrow_and_update().clone();
            if predicate(&current) {
                return current;
            }
            status.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}; status {:?}", status.borrow()))
}

async fn leader_of(nodes: &mut [TestNode], except: &[u64]) -> usize {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            for (i, node) in nodes.iter().enumerate() {
                let s = node.status.borrow().clone();
                if s.is_leader && !except.contains(&s.peer) {
                    return i;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a leader is elected")
}

/// Waits until `machine` has applied `n` commands. (A proposal's answer is sent before the
/// round's status is published, so status-based waits right after proposing can be stale.)
async fn wait_applied_commands(machine: &Recorder, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while machine.0.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("machine stuck at {} of {n} commands", machine.0.lock().unwrap().len()));
}

fn command(v: u64) -> Bytes {
    Bytes::from(v.to_be_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_a_leader_and_apply_the_same_sequence() {
    let net = LocalNetwork::default();
    let mut nodes = cluster(&net, &[1, 2, 3]).await;
    let leader = leader_of(&mut nodes, &[]).await;
    for v in 0..50 {
        let answer = nodes[leader].engine.propose(GROUP, command(v)).await.unwrap();
        assert_eq!(u64::from_be_bytes(answer[..].try_into().unwrap()), v + 1);
    }
    let follower = (leader + 1) % 3;
    assert!(matches!(
        nodes[follower].engine.propose(GROUP, command(99)).await,
        Err(RaftError::NotLeader { leader: Some(_) })
    ));
    for node in nodes.iter_mut() {
        wait_applied_commands(&node.machine, 50).await;
        assert_eq!(*node.machine.0.lock().unwrap(), (0..50).collect::<Vec<_>>());
        // The log was compacted behind snapshots (interval 20).
        assert!(node.status.borrow().snapshot_index >= 20, "{:?}", node.status.borrow());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_is_replaced_and_catches_up_after_healing() {
    let net = LocalNetwork::default();
    let mut nodes = cluster(&net, &[1, 2, 3]).await;
    let old = leader_of(&mut nodes, &[]).await;
    nodes[old].engine.propose(GROUP, command(1)).await.unwrap();
    let old_peer = nodes[old].engine.peer();
    net.isolate(old_peer);

    // A proposal on the isolated leader cannot commit: dropped or timed out, never applied.
    let stuck = {
        let engine = nodes[old].engine.clone();
        tokio::spawn(async move { engine.propose(GROUP, command(666)).await })
    };
    let new = leader_of(&mut nodes, &[old_peer]).await;
    for v in 2..10 {
        nodes[new].engine.propose(GROUP, command(v)).await.unwrap();
    }
    net.heal(old_peer);
    let outcome = stuck.await.unwrap();
    assert!(
        matches!(outcome, Err(RaftError::Dropped) | Err(RaftError::Timeout(_)) | Err(RaftError::NotLeader { .. })),
        "{outcome:?}"
    );
    wait_applied_commands(&nodes[old].machine, 9).await;
    wait_for(&mut nodes[old].status, "old leader steps down", |s| !s.is_leader).await;
    assert_eq!(*nodes[old].machine.0.lock().unwrap(), (1..10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_replays_to_the_same_state() {
    let net = LocalNetwork::default();
    let mut nodes = cluster(&net, &[1, 2, 3]).await;
    let leader = leader_of(&mut nodes, &[]).await;
    for v in 0..45 {
        nodes[leader].engine.propose(GROUP, command(v)).await.unwrap();
    }
    let victim = (leader + 1) % 3;
    wait_applied_commands(&nodes[victim].machine, 45).await;
    let peer = nodes[victim].engine.peer();
    nodes[victim].engine.shutdown();
    net.unregister(peer);
    let node = nodes.remove(victim);
    let dir = node._dir;
    drop(node.storage);
    drop(node.engine);

    let restarted = start(&net, peer, dir, GroupInit::Existing).await;
    wait_applied_commands(&restarted.machine, 45).await;
    assert_eq!(*restarted.machine.0.lock().unwrap(), (0..45).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_from_a_snapshot_then_votes() {
    let net = LocalNetwork::default();
    let mut nodes = cluster(&net, &[1, 2, 3]).await;
    let leader = leader_of(&mut nodes, &[]).await;
    for v in 0..60 {
        nodes[leader].engine.propose(GROUP, command(v)).await.unwrap();
    }
    let mut learner = start(&net, 4, tempfile::tempdir().unwrap(), GroupInit::Existing).await;
    let engine = nodes[leader].engine.clone();
    engine.change_membership(GROUP, MembershipChange::AddLearner { peer: 4, context: Bytes::new() }).await.unwrap();
    wait_applied_commands(&learner.machine, 60).await;
    let status = wait_for(&mut learner.status, "learner listed", |s| s.learners.contains(&4)).await;
    assert!(status.learners.contains(&4));
    assert_eq!(*learner.machine.0.lock().unwrap(), (0..60).collect::<Vec<_>>());

    engine.change_membership(GROUP, MembershipChange::AddVoter { peer: 4, context: Bytes::new() }).await.unwrap();
    wait_for(&mut learner.status, "learner promoted", |s| s.voters.contains(&4)).await;
    // Removing the last voter is refused; removing a member works.
    engine.change_membership(GROUP, MembershipChange::Remove { peer: 4 }).await.unwrap();
    wait_for(&mut nodes[leader].status, "4 removed", |s| !s.voters.contains(&4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_index_on_a_follower_waits_for_the_committed_state() {
    let net = LocalNetwork::default();
    let mut nodes = cluster(&net, &[1, 2, 3]).await;
    let leader = leader_of(&mut nodes, &[]).await;
    for v in 0..5 {
        nodes[leader].engine.propose(GROUP, command(v)).await.unwrap();
    }
    let follower = (leader + 1) % 3;
    let applied = nodes[follower].engine.read_index(GROUP).await.unwrap();
    assert!(applied >= nodes[leader].status.borrow().commit - 1);
    assert_eq!(nodes[follower].machine.0.lock().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_request_was_lost_is_asked_again_not_left_to_its_deadline() {
    // Elections slow enough (1-2 s) that the short isolation below never starts one.
    let slow_elections = RaftOptions { election_tick: 100, proposal_timeout: Duration::from_secs(10), ..options() };
    let net = LocalNetwork::default();
    let mut nodes = cluster_with(&net, &[1, 2, 3], slow_elections).await;
    let leader = leader_of(&mut nodes, &[]).await;
    nodes[leader].engine.propose(GROUP, command(1)).await.unwrap();
    let follower = (leader + 1) % 3;
    let follower_peer = nodes[follower].engine.peer();
    wait_for(&mut nodes[follower].status, "the follower to know the leader", |s| s.leader != 0).await;

    // The follower's ReadIndex request to the leader is lost on the way.
    net.isolate(follower_peer);
    let started = std::time::Instant::now();
    let read = {
        let engine = nodes[follower].engine.clone();
        tokio::spawn(async move { engine.read_index(GROUP).await })
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while net.dropped(follower_peer, raft::eraftpb::MessageType::MsgReadIndex) == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the read request is sent (and dropped)");
    net.heal(follower_peer);

    let applied = read.await.unwrap().expect("the read is confirmed once the follower is reachable again");
    assert!(applied >= 1);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "the lost read waited {waited:?}, toward its 10 s deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_succeeded_at_once_not_after_the_election_timeout() {
    // Elections only by timeout would take 10-20 s here.
    let slow_elections = RaftOptions { election_tick: 1000, ..options() };
    let net = LocalNetwork::default();
    let mut nodes = cluster_with(&net, &[1, 2, 3], slow_elections).await;
    nodes[2].engine.campaign(GROUP);
    let old = leader_of(&mut nodes, &[]).await;
    nodes[old].engine.propose(GROUP, command(1)).await.unwrap();
    for node in nodes.iter_mut() {
        wait_for(&mut node.status, "every member to know the leader", |s| s.leader != 0).await;
    }

    // The leader's process dies: its engine stops and its address answers nobody.
    let old_peer = nodes[old].engine.peer();
    nodes[old].engine.shutdown();
    net.unregister(old_peer);
    let started = std::time::Instant::now();
    let new = leader_of(&mut nodes, &[old_peer]).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "a successor took {waited:?}, as long as an election timeout");
    assert_eq!(nodes[new].engine.peer(), if old_peer == 1 { 2 } else { 1 }, "the lowest surviving voter");
    nodes[new].engine.propose(GROUP, command(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_hands_its_leadership_to_the_voter_it_names() {
    let net = LocalNetwork::default();
    let mut nodes = cluster(&net, &[1, 2, 3]).await;
    let old = leader_of(&mut nodes, &[]).await;
    nodes[old].engine.propose(GROUP, command(1)).await.unwrap();
    let old_peer = nodes[old].engine.peer();
    let to = nodes.iter().map(|n| n.engine.peer()).find(|p| *p != old_peer).unwrap();
    let started = std::time::Instant::now();
    nodes[old].engine.transfer_leadership(GROUP, to);
    let new = leader_of(&mut nodes, &[old_peer]).await;
    assert_eq!(nodes[new].engine.peer(), to, "the named voter leads");
    assert!(started.elapsed() < Duration::from_secs(5), "no election timeout was waited for");
    nodes[new].engine.propose(GROUP, command(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_bootstraps_and_the_last_voter_cannot_leave() {
    let net = LocalNetwork::default();
    let mut nodes = cluster(&net, &[1]).await;
    nodes[0].engine.campaign(GROUP);
    leader_of(&mut nodes, &[]).await;
    nodes[0].engine.propose(GROUP, command(5)).await.unwrap();
    let err = nodes[0].engine.change_membership(GROUP, MembershipChange::Remove { peer: 1 }).await.unwrap_err();
    assert!(err.to_string().contains("last voter"), "{err}");
    let err =
        nodes[0].engine.create_group(GROUP, Box::new(Recorder::default()), GroupInit::Existing).await.unwrap_err();
    assert_eq!(err, RaftError::GroupExists(GROUP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_for_another_incarnation_are_dropped() {
    let net = LocalNetwork::default();
    let fresh = start(&net, 5, tempfile::tempdir().unwrap(), GroupInit::Existing).await;
    // A heartbeat with a commit index far beyond this empty log, addressed to the raft id
    // this node's wiped predecessor had: raft-rs would abort on it.
    let mut heartbeat = restate_raft::Message::default();
    heartbeat.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
    heartbeat.to = 4;
    heartbeat.from = 1;
    heartbeat.term = 3;
    heartbeat.commit = 11;
    fresh.engine.step(GROUP, heartbeat);
    // The engine is still alive (a dead one answers `Stopped`) and learned nothing.
    assert_eq!(fresh.engine.read_index(GROUP).await, Err(RaftError::NotLeader { leader: None }));
    assert_eq!(fresh.status.borrow().commit, 0);
}
