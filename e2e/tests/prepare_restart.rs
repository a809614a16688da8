//! `restatectl nodes prepare-restart` (what the operator calls before it rolls a pod): the
//! node that leads the metadata store and some partitions hands both over, keeps its log
//! replicas and vote, reports itself restarting, and after a restart leads again when
//! asked; the cluster serves throughout. Bad input is named.

use std::time::Duration;

use restate_e2e::services::{three_workers_with_services, ExampleServices};
use restate_e2e::*;
use serde_json::Value;

fn leader_of_metadata(node: &ServerProcess) -> Option<String> {
    metadata_servers(node).iter().find(|s| s["is_leader"] == true).and_then(|s| s["name"].as_str().map(str::to_owned))
}

fn status(node: &ServerProcess) -> Value {
    node.ctl(&["status", "--json"]).json()
}

#[test]
fn a_node_prepared_for_a_restart_hands_over_its_leaderships_and_keeps_its_replicas() {
    let dir = TestDir::new("prepare-restart");
    let (mut nodes, _services): (Vec<ServerProcess>, ExampleServices) = three_workers_with_services(&dir, "prepare");
    wait_for_metadata_voters(&nodes[0], 3);
    let leader = leader_of_metadata(&nodes[0]).expect("a metadata leader");
    let index = nodes.iter().position(|n| n.name == leader).unwrap_or_else(|| panic!("no node named {leader}"));
    let other = (index + 1) % 3;

    let prepared = nodes[other].ctl(&["nodes", "prepare-restart", &leader, "--wait", "--timeout", "60", "--json"]);
    assert_eq!(prepared.code, 0, "{prepared:?}");
    let answer = prepared.json();
    assert_eq!((answer["ready"].as_bool(), answer["partitions_led"].as_u64()), (Some(true), Some(0)), "{answer}");
    assert_eq!(answer["metadata_leader"], false, "{answer}");
    let now = leader_of_metadata(&nodes[other]).expect("a metadata leader after the hand-over");
    assert_ne!(now, leader, "the metadata leadership moved");
    let seen = status(&nodes[other]);
    let me = seen["nodes"].as_array().unwrap().iter().find(|n| n["name"] == leader.as_str()).cloned().unwrap();
    assert_eq!(me["restarting"], true, "{me}");
    assert_eq!(me["log_server_state"], "read-write", "it keeps its log replicas: {me}");
    assert!(
        status(&nodes[other])["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| !n["version"].as_str().unwrap_or("").is_empty()),
        "every node reports its version"
    );
    // The cluster serves meanwhile.
    assert!(restate_e2e::services::greets(nodes[other].ports.ingress, "during"), "the ingress answers");

    // Restarted, it registers again and is no longer marked.
    assert!(nodes[index].stop().success());
    nodes[index].start_and_wait_healthy();
    wait_until("the restarted node to be unmarked and alive", Duration::from_secs(60), || {
        status(&nodes[other])["nodes"].as_array().is_some_and(|all| {
            all.iter().any(|n| n["name"] == leader.as_str() && n["restarting"] == false && n["alive"] == true)
        })
    });

    // Bad input: an unknown node is named.
    let unknown = nodes[other].ctl(&["nodes", "prepare-restart", "N99"]);
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("N99") && unknown.stderr.contains("known"), "{unknown:?}");
}
