//! The node port behind a cluster secret (`[networking] cluster-secret-file`): three nodes
//! with replicated metadata and logs form a cluster and serve invocations, every RPC between
//! them authenticated. A client without the secret, or with another cluster's, is refused
//! UNAUTHENTICATED before any handler runs (a raw log append, a metadata write, a
//! metadata-server join and promote, a forged raft message, node control), each refusal is
//! counted in `/metrics`, and nothing changes: the cluster keeps its three metadata voters
//! and serves on every node. `/health` and `/metrics` need no credentials; `restatectl` with
//! the secret works.

use std::time::Duration;

use restate_e2e::services::{greets, three_workers_with_services_env, REPLICATED_WORKERS};
use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, AppendRequest};
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
        code(logs.append(AppendRequest { loglet_id: 1, records: vec![b"junk".to_vec()] }).await),
    ));
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
        let channel = restate_proto::channel::with_secret(channel, Some(secret));
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
