//! A log whose tail segment someone else sealed (a client of `LogServer.Seal`, an
//! interrupted reconfiguration) takes no appends until a segment follows it: the cluster
//! controller notices the sealed tail and extends the log with a segment placed as the
//! sealed one, and the partition on it serves again.

use std::time::Duration;

use restate_e2e::services::{three_workers_with_services_env, REPLICATED_WORKERS};
use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, SealRequest};

fn add(port: u16, key: &str) -> bool {
    matches!(http_call(port, "POST", &format!("/Counter/{key}/add"), "1", &[], Duration::from_secs(60)), Some((200, _)))
}

/// The loglet of log 0's tail segment, as `logs list` reports it.
fn tail_loglet(node: &ServerProcess) -> Option<u64> {
    let logs = node.ctl(&["logs", "list", "--json"]);
    if logs.code != 0 {
        return None;
    }
    let logs: serde_json::Value = serde_json::from_str(&logs.stdout).ok()?;
    logs["logs"].as_array()?.iter().find(|l| l["log_id"] == 0)?["loglet_id"].as_u64()
}

#[test]
fn a_tail_sealed_from_outside_is_extended_and_the_partition_serves_again() {
    let dir = TestDir::new("sealed-tail");
    let (nodes, _services) = three_workers_with_services_env(&dir, "sealed-tail", &REPLICATED_WORKERS);
    let port = nodes[0].ports.ingress;
    let keys: Vec<String> = (0..16).map(|i| format!("sealed-{i}")).collect();
    wait_until("every counter to answer", Duration::from_secs(60), || keys.iter().all(|key| add(port, key)));
    let sealed = tail_loglet(&nodes[0]).expect("log 0 has a tail segment");

    // Seal log 0's tail loglet through the log-server API (its leader accepts it).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let addresses: Vec<String> = nodes.iter().map(ServerProcess::address).collect();
    wait_until("a log-server to seal the tail loglet", Duration::from_secs(30), || {
        runtime.block_on(async {
            for address in &addresses {
                if let Ok(mut client) = LogServerClient::connect(address.clone()).await {
                    if client.seal(SealRequest { loglet_id: sealed }).await.is_ok() {
                        return true;
                    }
                }
            }
            false
        })
    });

    let mut next = None;
    wait_until("the controller to extend log 0 past the sealed loglet", Duration::from_secs(60), || {
        next = tail_loglet(&nodes[1]).filter(|tail| *tail != sealed);
        next.is_some()
    });
    println!("log 0: tail loglet {sealed} sealed from outside, extended with loglet {}", next.unwrap());
    wait_until("every counter to answer after the extension", Duration::from_secs(60), || {
        keys.iter().all(|key| add(nodes[2].ports.ingress, key))
    });
    let controller_logs: String = nodes.iter().map(ServerProcess::log).collect();
    assert!(controller_logs.contains("sealed with no segment after it"), "the controller said what it did");
}
