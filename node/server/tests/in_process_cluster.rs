//! Nodes started in one process on loopback port 0: provisioning, joining, phases.

use std::time::Duration;

use restate_config::{ConfigSources, Loaded};
use restate_server::{Node, NodeExit, NodePhase};

fn config(dir: &std::path::Path, name: &str, env: &[(&str, String)]) -> restate_config::Config {
    let mut vars = vec![
        ("RESTATE_NODE_NAME".to_owned(), name.to_owned()),
        ("RESTATE_CLUSTER_NAME".to_owned(), "inproc".to_owned()),
        ("RESTATE_BASE_DIR".to_owned(), dir.display().to_string()),
        ("RESTATE_BIND_ADDRESS".to_owned(), "127.0.0.1:0".to_owned()),
        ("RESTATE_ADMIN__BIND_ADDRESS".to_owned(), "127.0.0.1:0".to_owned()),
        ("RESTATE_INGRESS__BIND_ADDRESS".to_owned(), "127.0.0.1:0".to_owned()),
        ("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE".to_owned(), "32 MiB".to_owned()),
        // These tests append raw records to partition logs: no worker role, so no
        // partition processor reads them.
        ("RESTATE_ROLES".to_owned(), r#"["admin","metadata-server","log-server"]"#.to_owned()),
    ];
    for (k, v) in env {
        vars.retain(|(existing, _)| existing != k);
        vars.push(((*k).to_owned(), v.clone()));
    }
    let Loaded { config, .. } =
        restate_config::load(&ConfigSources { file: None, env: vars, cli: vec![] }).unwrap_or_else(|e| panic!("{e}"));
    config
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

async fn wait_for_phase(node: &Node, what: &str, predicate: impl Fn(&NodePhase) -> bool) -> NodePhase {
    let mut phases = node.state().subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let phase = phases.borrow_and_update().clone();
            if predicate(&phase) {
                return phase;
            }
            phases.changed().await.expect("node state alive");
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("timed out waiting for {what}; phase is {:?}", node.state().phase()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_node_joins_the_provisioned_cluster_with_the_next_id() {
    let dir = tempfile::tempdir().unwrap();
    let first = Node::start(config(dir.path(), "a", &[])).await.unwrap();
    let phase = wait_for_phase(&first, "a running", |p| matches!(p, NodePhase::Running { .. })).await;
    assert_eq!(phase, NodePhase::Running { node_id: restate_types::PlainNodeId(1).with_generation(1) });

    let addresses = format!("[\"{}\"]", first.advertised_address);
    let second =
        Node::start(config(dir.path(), "b", &[("RESTATE_METADATA_CLIENT__ADDRESSES", addresses)])).await.unwrap();
    let phase = wait_for_phase(&second, "b running", |p| matches!(p, NodePhase::Running { .. })).await;
    assert_eq!(phase, NodePhase::Running { node_id: restate_types::PlainNodeId(2).with_generation(1) });

    assert_eq!(second.shutdown(None).await, NodeExit::Clean);
    assert_eq!(first.shutdown(None).await, NodeExit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waits_for_an_unreachable_metadata_server_and_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = format!("[\"http://127.0.0.1:{closed}\"]");
    let node =
        Node::start(config(dir.path(), "lonely", &[("RESTATE_METADATA_CLIENT__ADDRESSES", nowhere)])).await.unwrap();
    let phase =
        wait_for_phase(&node, "waiting for metadata", |p| matches!(p, NodePhase::WaitingForMetadata { .. })).await;
    assert!(phase.reason().contains(&format!("127.0.0.1:{closed}")), "{}", phase.reason());
    assert_eq!(node.shutdown(None).await, NodeExit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_auto_provision_waits_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(dir.path(), "patient", &[("RESTATE_AUTO_PROVISION", "false".into())])).await.unwrap();
    let phase = wait_for_phase(&node, "waiting for provisioning", |p| *p == NodePhase::WaitingForProvisioning).await;
    assert!(phase.reason().contains("restatectl provision"));
    assert_eq!(node.shutdown(None).await, NodeExit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_append_read_trim_through_node_control() {
    use restate_proto::node_ctl::{self as pb, node_ctl_client::NodeCtlClient};
    let dir = tempfile::tempdir().unwrap();
    let node =
        Node::start(config(dir.path(), "logs", &[("RESTATE_DEFAULT_NUM_PARTITIONS", "4".into())])).await.unwrap();
    wait_for_phase(&node, "running", |p| matches!(p, NodePhase::Running { .. })).await;
    let mut client = NodeCtlClient::connect(node.advertised_address.clone()).await.unwrap();

    let records: Vec<Vec<u8>> = (1..=10).map(|i| format!("r{i}").into_bytes()).collect();
    let appended = client.append_log(pb::AppendLogRequest { log_id: 3, records }).await.unwrap().into_inner();
    assert_eq!(appended.last_lsn, 10);
    let read =
        client.read_log(pb::ReadLogRequest { log_id: 3, from_lsn: 1, max_records: 100 }).await.unwrap().into_inner();
    assert_eq!(read.records.iter().map(|r| r.lsn).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    assert_eq!(read.records[9].payload, b"r10");

    let trimmed = client.trim_log(pb::TrimLogRequest { log_id: 3, trim_point: 5 }).await.unwrap().into_inner();
    assert_eq!(trimmed.trim_point, 5);
    let read =
        client.read_log(pb::ReadLogRequest { log_id: 3, from_lsn: 1, max_records: 100 }).await.unwrap().into_inner();
    assert_eq!(read.trim_gap_to, Some(5));
    let beyond = client.trim_log(pb::TrimLogRequest { log_id: 3, trim_point: 50 }).await.unwrap_err();
    assert_eq!(beyond.code(), tonic::Code::InvalidArgument);
    assert!(beyond.message().contains("50") && beyond.message().contains("10"), "{}", beyond.message());
    let unknown = client.describe_log(pb::DescribeLogRequest { log_id: 999 }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert!(unknown.message().contains("999"), "{}", unknown.message());

    let metrics = http_get(node.fabric_address, "/metrics").await;
    assert!(metrics.contains("restate_bifrost_append_records_total{log=\"3\"} 10"), "{metrics}");
    assert!(metrics.contains("restate_bifrost_trim_point{log=\"3\"} 5"), "{metrics}");
    assert!(metrics.contains("restate_bifrost_append_latency_seconds_count 1"), "{metrics}");

    let logs = client.list_logs(pb::ListLogsRequest {}).await.unwrap().into_inner().logs;
    assert_eq!(logs.len(), 4);
    let log3 = logs.iter().find(|l| l.log_id == 3).unwrap();
    assert_eq!((log3.tail, log3.trim_point), (Some(11), Some(5)));
    drop(client);
    assert_eq!(node.shutdown(None).await, NodeExit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_moves_its_logs_from_local_to_replicated_without_losing_records() {
    use restate_proto::node_ctl::{self as pb, node_ctl_client::NodeCtlClient};
    let dir = tempfile::tempdir().unwrap();
    let env = [("RESTATE_DEFAULT_NUM_PARTITIONS", "2".to_owned())];
    let node = Node::start(config(dir.path(), "grow", &env)).await.unwrap();
    wait_for_phase(&node, "running", |p| matches!(p, NodePhase::Running { .. })).await;
    let mut client = NodeCtlClient::connect(node.advertised_address.clone()).await.unwrap();
    let append = |from: u32, to: u32| pb::AppendLogRequest {
        log_id: 0,
        records: (from..=to).map(|i| format!("r{i}").into_bytes()).collect(),
    };
    assert_eq!(client.append_log(append(1, 5)).await.unwrap().into_inner().last_lsn, 5);

    // The seed's migration command: the logs continue on replicated segments.
    let changed = client
        .set_cluster_configuration(pb::SetClusterConfigurationRequest {
            log_provider: Some("replicated".into()),
            replication: Some(1),
            replication_property: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.log_provider, "replicated");
    assert_eq!(client.append_log(append(6, 10)).await.unwrap().into_inner().last_lsn, 10);

    let read_all = |mut client: NodeCtlClient<tonic::transport::Channel>| async move {
        let read = client
            .read_log(pb::ReadLogRequest { log_id: 0, from_lsn: 1, max_records: 100 })
            .await
            .unwrap()
            .into_inner();
        read.records.iter().map(|r| (r.lsn, String::from_utf8(r.payload.clone()).unwrap())).collect::<Vec<_>>()
    };
    let expected: Vec<(u64, String)> = (1..=10).map(|i| (i, format!("r{i}"))).collect();
    // An acknowledged record is committed; the replica applies it a moment later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut read = read_all(client.clone()).await;
    while read.len() < expected.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        read = read_all(client.clone()).await;
    }
    assert_eq!(read, expected);
    let described = client.describe_log(pb::DescribeLogRequest { log_id: 0 }).await.unwrap().into_inner();
    assert_eq!(described.segments.len(), 2);
    assert_eq!((described.segments[1].kind.as_str(), described.segments[1].base_lsn), ("replicated", 6));
    assert!(described.segments[0].sealed);
    drop(client);
    assert_eq!(node.shutdown(None).await, NodeExit::Clean);

    // After a restart the replicated segment is recovered from the node's raft storage.
    let node = Node::start(config(dir.path(), "grow", &env)).await.unwrap();
    wait_for_phase(&node, "running", |p| matches!(p, NodePhase::Running { .. })).await;
    let mut client = NodeCtlClient::connect(node.advertised_address.clone()).await.unwrap();
    assert_eq!(read_all(client.clone()).await, expected);
    assert_eq!(client.append_log(append(11, 11)).await.unwrap().into_inner().last_lsn, 11);
    drop(client);
    assert_eq!(node.shutdown(None).await, NodeExit::Clean);
}
