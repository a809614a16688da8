//! A record a partition cannot apply stops that partition visibly, and only it: a record in
//! an envelope format no node knows is appended to partition 0's log (through node control,
//! which an operator with the cluster's credentials may use); every processor of partition 0
//! stops at its LSN, `partitions list` and `/metrics` say so with the reason, new
//! invocations for partition 0 are answered 503 naming it while the other partitions serve
//! on, and `restatectl partitions skip-record 0 LSN --yes` unblocks it everywhere.

use std::time::Duration;

use restate_e2e::services::{three_workers_with_services_env, REPLICATED_WORKERS};
use restate_e2e::*;
use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, AppendLogRequest};
use serde_json::Value;

fn add(port: u16, key: &str) -> (u16, String) {
    http_call(port, "POST", &format!("/Counter/{key}/add"), "1", &[], Duration::from_secs(60))
        .unwrap_or_else(|| panic!("ingress {port} did not answer Counter/{key}/add"))
}

/// Processors of partition 0 (one per worker).
fn partition_zero(node: &ServerProcess) -> Vec<Value> {
    partition_processors(node).into_iter().filter(|p| p["partition_id"] == 0).collect()
}

#[test]
fn a_record_that_cannot_be_applied_blocks_its_partition_visibly_until_skipped() {
    let dir = TestDir::new("poisoned-partition");
    let (nodes, _services) = three_workers_with_services_env(&dir, "poisoned", &REPLICATED_WORKERS);
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    let keys: Vec<String> = (0..24).map(|i| format!("poison-{i}")).collect();
    wait_until("every counter to answer", Duration::from_secs(60), || {
        keys.iter().all(|key| add(ports[0], key).0 == 200)
    });

    // A record of envelope format 9 (unknown) into partition 0's log.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let lsn = runtime.block_on(async {
        let mut client = NodeCtlClient::connect(nodes[0].address()).await.unwrap();
        let garbage = AppendLogRequest { log_id: 0, records: vec![b"\x09not a record of any format".to_vec()] };
        client.append_log(garbage).await.expect("append to log 0").into_inner().last_lsn
    });

    wait_until("every processor of partition 0 to report it blocked", Duration::from_secs(60), || {
        let zero = partition_zero(&nodes[0]);
        zero.len() == 3 && zero.iter().all(|p| p["blocked_lsn"].as_u64() == Some(lsn))
    });
    let listed = nodes[1].ctl(&["partitions", "list"]);
    let text = listed.ok();
    assert!(text.contains(&format!("blocked at LSN {lsn}")), "{text}");
    assert!(text.contains(&format!("skip-record 0 {lsn}")), "the listing says the way out:\n{text}");
    let zero = partition_zero(&nodes[0]);
    assert!(zero[0]["blocked_reason"].as_str().unwrap().contains("format"), "{zero:#?}");
    assert_eq!(
        metric_value(&nodes[2], "restate_partition_lsn{kind=\"blocked\",partition=\"0\"}"),
        Some(lsn as f64),
        "/metrics shows the blocked LSN"
    );

    // Partition 0 refuses new invocations (503 naming it); the others serve.
    let mut refused = Vec::new();
    let mut served = 0;
    for key in &keys {
        let (status, body) = add(ports[1], key);
        match status {
            200 => served += 1,
            503 => {
                assert!(body.contains(&format!("partition 0 is blocked at LSN {lsn}")), "{body}");
                refused.push(key.clone());
            }
            other => panic!("Counter/{key}/add answered {other}: {body}"),
        }
    }
    assert!(!refused.is_empty() && served > 0, "{} refused, {served} served", refused.len());

    // skip-record refuses a record the partition is not blocked at, then skips the right one.
    let wrong = nodes[0].ctl(&["partitions", "skip-record", "0", &(lsn + 1).to_string(), "--yes"]);
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(wrong.stderr.contains(&format!("not at LSN {}", lsn + 1)), "{}", wrong.stderr);
    let skipped = nodes[0].ctl(&["partitions", "skip-record", "0", &lsn.to_string(), "--yes"]);
    assert!(skipped.ok().contains("skipped"), "{}", skipped.stdout);
    wait_until("partition 0 to be unblocked everywhere", Duration::from_secs(60), || {
        let zero = partition_zero(&nodes[0]);
        zero.len() == 3 && zero.iter().all(|p| p["blocked_lsn"].is_null() && p["applied_lsn"].as_u64() >= Some(lsn))
    });
    for key in &refused {
        let (status, body) = add(ports[2], key);
        assert_eq!(status, 200, "Counter/{key}/add after the skip: {body}");
    }
    for node in &nodes {
        assert!(node.log().contains("as an operator asked"), "{} logged the skip", node.name);
    }
}
