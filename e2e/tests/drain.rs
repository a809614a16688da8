//! Draining a node before it leaves for good (what the operator does before a scale-in):
//! 4 nodes, replication 2, 4 partitions, counters written first. `restatectl nodes drain
//! n1 --wait` moves the first node's log replicas and partition leaderships to the other
//! nodes and takes it out of the metadata store (n1 provisioned the cluster: it leads
//! partitions, holds replicas of every log and voted first); then n1 is stopped and
//! removed, and every counter is intact and still writable. Draining below what the
//! replication needs is refused.

use std::time::Duration;

use restate_e2e::services::{admin_url, restate, ExampleServices, REPLICATED_WORKERS};
use restate_e2e::*;

fn add(port: u16, key: &str, n: u32) -> Option<String> {
    let (status, body) =
        http_call(port, "POST", &format!("/Counter/{key}/add"), &n.to_string(), &[], Duration::from_secs(30))?;
    (status == 200).then_some(body)
}

fn node_entry(status: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    status["nodes"].as_array()?.iter().find(|n| n["name"] == name).cloned()
}

#[test]
fn a_drained_node_leaves_without_losing_anything() {
    let dir = TestDir::new("drain");
    let mut nodes = replicated_cluster(&dir, "drain", &["n1", "n2", "n3", "n4"], &REPLICATED_WORKERS);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 4);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();
    let ingress: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    let keys: Vec<String> = (0..12).map(|i| format!("drain-{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        wait_until(&format!("add to {key}"), Duration::from_secs(60), || add(ingress[i % 4], key, 5).is_some());
    }
    // n1 holds everything worth moving: a metadata vote, log replicas, led partitions.
    let ctl = &nodes[1];
    wait_until("n1 to lead a partition", Duration::from_secs(60), || {
        partition_processors(ctl).iter().any(|p| p["name"] == "n1" && p["mode"] == "leader")
    });
    let logs_before = ctl.ctl(&["logs", "list", "--json"]);
    assert!(logs_before.stdout.contains("\"N1\""), "n1 holds log replicas: {}", logs_before.stdout);

    let first = ctl.ctl(&["nodes", "drain", "n1", "--wait", "--timeout", "120", "--json"]);
    let answer = first.json();
    assert_eq!(answer["drained"], true, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(answer["log_segments_left"], 0, "{answer:#}");
    assert_eq!(answer["partitions_led"], 0, "{answer:#}");
    assert_eq!(answer["metadata_member"], false, "{answer:#}");
    // Refused: replication 2 needs 3 log-servers; draining another would leave 2.
    let refused = ctl.ctl(&["nodes", "drain", "n3"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(refused.stderr.contains("needs 3"), "{}", refused.stderr);

    let status = ctl.ctl(&["status", "--json"]).json();
    let n1 = node_entry(&status, "n1").expect("n1 still registered while draining");
    assert_eq!(n1["log_server_state"], "read-only", "{n1:#}");
    assert_ne!(n1["metadata_server_state"], "member", "{n1:#}");
    let logs = ctl.ctl(&["logs", "list", "--json"]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(!logs.stdout.contains("\"N1\""), "n1 still in a nodeset: {}", logs.stdout);
    wait_until("n1's processors to stop leading", Duration::from_secs(30), || {
        !partition_processors(ctl).iter().any(|p| p["name"] == "n1" && p["mode"] == "leader")
    });

    // Removing an undrained node is refused; the drained one goes.
    let not_drained = ctl.ctl(&["nodes", "remove", "n3"]);
    assert_ne!(not_drained.code, 0);
    assert!(not_drained.stderr.contains("not draining"), "{}", not_drained.stderr);
    nodes[0].stop();
    let removed = nodes[1].ctl(&["nodes", "remove", "n1", "--json"]).json();
    assert_eq!(removed["removed"], true, "{removed:#}");
    let again = nodes[1].ctl(&["nodes", "remove", "n1", "--json"]).json();
    assert_eq!(again["removed"], false, "{again:#}");
    wait_for_alive_nodes(&nodes[1], 3);

    // Every counter is intact and takes writes through the remaining nodes.
    for (i, key) in keys.iter().enumerate() {
        let mut body = None;
        wait_until(&format!("add to {key} after the drain"), Duration::from_secs(60), || {
            body = add(ingress[1 + i % 3], key, 1);
            body.is_some()
        });
        assert_eq!(body.unwrap().trim(), "6", "counter {key}");
    }
}
