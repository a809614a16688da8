//! The node port behind a cluster secret (`[networking] cluster-secret-file`): three nodes
//! with replicated metadata and logs form a cluster and serve invocations, every RPC between
//! them authenticated. A client without the secret, or with another cluster's, is refused
//! UNAUTHENTICATED before any handler runs (a raw log append, a seal, a metadata write, a
//! metadata-server join and promote, a forged raft message, node control), each refusal is
//! counted in `/metrics`, and nothing changes: the cluster keeps its three metadata voters
//! and serves on every node. `/health` and `/metrics` need no credentials; `restatectl` with
//! the secret works. With the secret, metadata membership is for registered nodes only
//! (a made-up member, or a registered node's seat at another address, is refused) and raft
//! groups step only their members' messages.

use std::time::Duration;

use restate_e2e::services::{greets, three_workers_with_services_env, REPLICATED_WORKERS};
use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, AppendRequest, SealRequest};
use restate_proto::metadata::{
    metadata_server_admin_client::MetadataServerAdminClient, metadata_server_client::MetadataServerClient, JoinRequest,
    Member, PromoteRequest, WriteOp, WriteRequest,
};
use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, AppendLogRequest};
use restate_proto::raft::{raft_transport_client::RaftTransportClient, RaftBatch, RaftEnvelope};

const SECRET: &str = "3f1c9a7e5b2d8f4a6c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e8b0d1f3a";

fn code<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> tonic::Code {
    answer.err().map_or(tonic::Code::Ok, |s| s.code())
}

/// The gRPC code of each hostile call made without credentials against `address`.
async fn hostile_calls(address: String) -> Vec<(&'static str, tonic::Code)> {
    let mut codes = Vec::new();
    let mut logs = LogServerClient::connect(address.clone()).await.unwrap();
    codes.push((
        "LogServer.Append",
        code(logs.append(AppendRequest { loglet_id: 1, records: vec![b"junk".to_vec().into()] }).await),
    ));
    codes.push(("LogServer.Seal", code(logs.seal(SealRequest { loglet_id: 1 }).await)));
    let mut metadata = MetadataServerClient::connect(address.clone()).await.unwrap();
    codes.push(("MetadataServer.Write", code(metadata.write(WriteRequest { ops: Vec::new() }).await)));
    let mut admin = MetadataServerAdminClient::connect(address.clone()).await.unwrap();
    let member = Member { raft_id: 99, address: "http://10.0.0.99:5122".into(), ..Member::default() };
    codes.push(("MetadataServerAdmin.Join", code(admin.join(JoinRequest { member: Some(member) }).await)));
    codes.push(("MetadataServerAdmin.Promote", code(admin.promote(PromoteRequest { raft_id: 99 }).await)));
    let mut raft = RaftTransportClient::connect(address.clone()).await.unwrap();
    let forged = RaftBatch {
        from: 99,
        messages: vec![RaftEnvelope { group: 0, message: vec![0xff, 0x01, 0x02] }],
        from_address: "http://10.0.0.99:5122".into(),
    };
    codes.push(("RaftTransport.Send", code(raft.send(forged).await)));
    let mut ctl = NodeCtlClient::connect(address).await.unwrap();
    let garbage = AppendLogRequest { log_id: 0, records: vec![b"garbage".to_vec()] };
    codes.push(("NodeCtl.AppendLog", code(ctl.append_log(garbage).await)));
    codes
}

/// The fabric address of the node `status` (a metadata server's status) describes.
fn leader_address(status: &serde_json::Value, nodes: &[ServerProcess]) -> String {
    let node = nodes.iter().find(|n| status["name"] == n.name.as_str()).expect("the leader is one of the nodes");
    node.address()
}

#[test]
fn every_rpc_needs_the_cluster_secret_and_refusals_change_nothing() {
    let dir = TestDir::new("fabric-auth");
    let secret_file = dir.path().join("cluster-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let secret_path = secret_file.to_str().unwrap().to_owned();
    let mut env = REPLICATED_WORKERS.to_vec();
    env.push(("RESTATE_NETWORKING__CLUSTER_SECRET_FILE", &secret_path));
    let (nodes, _services) = three_workers_with_services_env(&dir, "fabric-auth", &env);
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    wait_until("the Greeter answers on every node", Duration::from_secs(60), || {
        ports.iter().all(|port| greets(*port, "before"))
    });
    wait_for_metadata_voters(&nodes[0], 3);

    // Orchestrators and Prometheus need no credentials.
    assert_eq!(http_get(nodes[0].ports.fabric, "/health").map(|(s, _)| s), Some(200));
    let (status, metrics) = http_get(nodes[0].ports.fabric, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("restate_fabric_unauthenticated_requests_total 0"), "{metrics}");

    // restatectl without the secret, and with another cluster's.
    let without = restatectl(&nodes[0].address(), &["status"]);
    assert_eq!(without.code, 1, "{without:?}");
    assert!(without.stderr.contains("requires the cluster secret"), "{}", without.stderr);
    let other = dir.path().join("other-secret");
    std::fs::write(&other, "another-clusters-secret-value").unwrap();
    let wrong = restatectl(&nodes[0].address(), &["--cluster-secret-file", other.to_str().unwrap(), "status"]);
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stderr.contains("not this cluster's"), "{}", wrong.stderr);
    assert!(!wrong.stderr.contains(SECRET) && !without.stderr.contains(SECRET));

    // Raw gRPC as a hostile client with network access only.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let codes = runtime.block_on(hostile_calls(nodes[0].address()));
    for (call, code) in &codes {
        assert_eq!(*code, tonic::Code::Unauthenticated, "{call} without credentials");
    }
    let refused = metric_value(&nodes[0], "restate_fabric_unauthenticated_requests_total").unwrap();
    assert!(refused >= codes.len() as f64 + 2.0, "{refused} refusals counted");

    // With the secret, the raw metadata write still checks what it writes: garbage for the
    // scheduling plan and a partition table with a gap are refused with the rule.
    let secret = restate_proto::credentials::ClusterSecret::new(SECRET).unwrap();
    let refusals = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(nodes[0].address()).unwrap().connect().await.unwrap();
        let channel = restate_proto::channel::with_secret(channel, Some(secret.clone()));
        let mut metadata = MetadataServerClient::new(channel);
        let mut refusals = Vec::new();
        for (key, value) in [
            ("scheduling_plan", &b"garbage"[..]),
            (
                "partition_table",
                br#"{"partitions": {"0": {"start_key": 5, "end_key": 18446744073709551615, "log_id": 0}}}"#,
            ),
        ] {
            let op = WriteOp { key: key.into(), precondition: None, delete: false, value: value.to_vec() };
            let status = metadata.write(WriteRequest { ops: vec![op] }).await.expect_err("refused");
            refusals.push((key, status.code(), status.message().to_owned()));
        }
        refusals
    });
    for (key, code, message) in &refusals {
        assert_eq!(*code, tonic::Code::InvalidArgument, "{key}: {message}");
    }
    assert!(refusals[1].2.contains("no partition owns the keys 0..4"), "{}", refusals[1].2);

    // With the secret, membership is still for registered nodes only, and raft groups step
    // only their members' messages.
    let voters = wait_for_metadata_voters(&nodes[0], 3);
    let leader = voters.iter().find(|s| s["is_leader"] == true).expect("a metadata leader").clone();
    let real = leader["members"].as_array().unwrap()[0].clone();
    let membership = runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(leader_address(&leader, &nodes)).unwrap();
        let channel = restate_proto::channel::with_secret(channel.connect().await.unwrap(), Some(secret.clone()));
        let mut admin = MetadataServerAdminClient::new(channel.clone());
        let made_up = Member {
            raft_id: 99,
            node_id: 99,
            name: "intruder".into(),
            address: "http://10.0.0.99:5122".into(),
            voter: false,
        };
        // A registered node's id and name at another address (a hijack of its seat).
        let hijack = Member {
            raft_id: 98,
            node_id: real["node_id"].as_str().unwrap().trim_start_matches('N').parse().unwrap(),
            name: real["name"].as_str().unwrap().into(),
            address: "http://10.0.0.98:5122".into(),
            voter: false,
        };
        let mut answers = Vec::new();
        for member in [made_up, hijack] {
            let status = admin.join(JoinRequest { member: Some(member) }).await.expect_err("refused");
            answers.push((status.code(), status.message().to_owned()));
        }
        let status = admin.promote(PromoteRequest { raft_id: 99 }).await.expect_err("refused");
        answers.push((status.code(), status.message().to_owned()));
        // A batch that speaks for another peer is refused whole; a non-member's own
        // messages are dropped by the group (the call succeeds, nothing changes).
        let mut raft = RaftTransportClient::new(channel);
        let vote = |from: u64| {
            let mut m = raft::eraftpb::Message::default();
            m.set_msg_type(raft::eraftpb::MessageType::MsgRequestVote);
            m.from = from;
            m.to = leader["raft_id"].as_u64().unwrap();
            m.term = 1 << 40;
            m.log_term = 1 << 40;
            m.index = 1 << 40;
            RaftEnvelope { group: 0, message: protobuf::Message::write_to_bytes(&m).unwrap() }
        };
        let impersonating = RaftBatch {
            from: 99,
            messages: vec![vote(real["raft_id"].as_u64().unwrap())],
            from_address: String::new(),
        };
        let status = raft.send(impersonating).await.expect_err("refused");
        answers.push((status.code(), status.message().to_owned()));
        raft.send(RaftBatch { from: 99, messages: vec![vote(99)], from_address: "http://10.0.0.99:5122".into() })
            .await
            .expect("a non-member's message is accepted and dropped");
        answers
    });
    for (code, message) in &membership {
        assert_eq!(*code, tonic::Code::InvalidArgument, "{message}");
    }
    assert!(membership[0].1.contains("node id 99 is not registered"), "{}", membership[0].1);
    assert!(membership[1].1.contains("is registered as"), "{}", membership[1].1);
    assert!(membership[2].1.contains("not a member"), "{}", membership[2].1);
    assert!(membership[3].1.contains("speaks only for itself"), "{}", membership[3].1);
    let after = wait_for_metadata_voters(&nodes[0], 3);
    let terms: Vec<u64> = after.iter().filter_map(|s| s["term"].as_u64()).collect();
    assert!(terms.iter().all(|t| *t < 1 << 40), "a non-member's vote request raised the term: {after:#?}");

    // Nothing changed: three voters, every node alive and serving; restatectl with the secret.
    let voters = wait_for_metadata_voters(&nodes[0], 3);
    let members = voters.iter().flat_map(|s| s["members"].as_array().cloned().unwrap_or_default());
    assert!(members.into_iter().all(|m| m["raft_id"] != 99), "a forged member joined: {voters:#?}");
    let status = nodes[1].ctl(&["status", "--json"]).json();
    assert!(reports_alive_nodes(&status, 3), "{status:#}");
    for (i, port) in ports.iter().enumerate() {
        assert!(greets(*port, &format!("after-{i}")), "node {i} serves after the hostile calls");
    }
    for node in &nodes {
        assert!(!node.log().contains(SECRET), "{}'s log holds the secret", node.name);
    }
}
