//! A node whose raft engine dies does not live on as a healthy-looking zombie: a forged raft
//! heartbeat (sent with the fabric's credentials, as a compromised or buggy peer could)
//! claims a commit index far past the log, raft-rs panics on it, and the node exits
//! non-zero saying why; the other two keep the metadata store and the invocations going,
//! and the node, restarted, rejoins.

use std::time::Duration;

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use restate_e2e::services::{greets, three_workers_with_services_env, REPLICATED_WORKERS};
use restate_e2e::*;
use restate_proto::raft::{raft_transport_client::RaftTransportClient, RaftBatch, RaftEnvelope};

/// The replicated metadata store's raft group.
const METADATA_GROUP: u64 = 0;

#[test]
fn a_dead_raft_engine_takes_its_node_down_and_the_cluster_fails_over() {
    let dir = TestDir::new("engine-death");
    let (mut nodes, _services) = three_workers_with_services_env(&dir, "engine-death", &REPLICATED_WORKERS);
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    wait_until("the Greeter answers on every node", Duration::from_secs(60), || {
        ports.iter().all(|port| greets(*port, "before"))
    });
    let servers = wait_for_metadata_voters(&nodes[0], 3);
    let leader = servers.iter().find(|s| s["is_leader"] == true).expect("a metadata leader");
    let victim = servers.iter().find(|s| s["is_leader"] != true).expect("a metadata follower");
    let victim_index = nodes.iter().position(|n| victim["name"] == n.name.as_str()).unwrap();

    // A heartbeat "from the leader" at a higher term, committing far past the log.
    let mut heartbeat = Message::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = leader["raft_id"].as_u64().unwrap();
    heartbeat.to = victim["raft_id"].as_u64().unwrap();
    heartbeat.term = 1 << 40;
    heartbeat.commit = 1 << 50;
    let forged = RaftBatch {
        from: heartbeat.from,
        messages: vec![RaftEnvelope { group: METADATA_GROUP, message: heartbeat.write_to_bytes().unwrap() }],
        from_address: String::new(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = RaftTransportClient::connect(nodes[victim_index].address()).await.unwrap();
        client.send(forged).await.unwrap();
    });

    let exit = nodes[victim_index].wait_exit(Duration::from_secs(60));
    assert!(!exit.success(), "the node whose raft engine died exited with {exit}");
    let log = nodes[victim_index].log();
    assert!(log.contains("the raft engine died"), "the log says why:\n{log}");

    // The other two keep serving: metadata writes (a quorum of 2) and invocations.
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim_index).collect();
    for &i in &survivors {
        wait_until(&format!("{} to serve invocations", nodes[i].name), Duration::from_secs(60), || {
            greets(ports[i], "after")
        });
    }
    let put = nodes[survivors[0]].ctl(&["metadata", "put", "--key", "after-death", "--value", "1", "--yes"]);
    assert_eq!(put.code, 0, "{put:?}");

    // Restarted, it rejoins and serves again.
    nodes[victim_index].start_and_wait_healthy();
    wait_for_alive_nodes(&nodes[survivors[0]], 3);
    wait_until("the restarted node to serve invocations", Duration::from_secs(60), || {
        greets(ports[victim_index], "back")
    });
    wait_for_metadata_voters(&nodes[0], 3);
}
