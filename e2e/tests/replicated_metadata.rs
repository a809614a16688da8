//! The replicated metadata store with real processes: three members, leader loss,
//! catch-up after restart, and migration of a local store.

use std::time::{Duration, Instant};

use restate_e2e::*;

/// Three nodes configured only through the environment, as in the seed's compose file:
/// `n1` auto-provisions, every node is a replicated metadata server.
fn three_nodes(dir: &TestDir) -> Vec<ServerProcess> {
    replicated_cluster(dir, "replicated", &["n1", "n2", "n3"], &[])
}

#[test]
fn three_members_survive_the_loss_of_the_leader() {
    let dir = TestDir::new("replicated");
    let mut nodes = three_nodes(&dir);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    let view = wait_for_alive_nodes(&nodes[0], 3);
    for node in &nodes[1..] {
        let other = wait_for_alive_nodes(node, 3);
        assert_eq!(other["cluster_fingerprint"], view["cluster_fingerprint"], "every node shows the same cluster");
    }
    let servers = wait_for_metadata_voters(&nodes[0], 3);

    nodes[1].ctl(&["metadata", "put", "--key", "k", "--value", "before"]).ok();
    let leader_name = servers.iter().find(|s| s["is_leader"] == true).unwrap()["name"].as_str().unwrap().to_owned();
    let leader = nodes.iter().position(|n| n.name == leader_name).unwrap();
    let survivor = (leader + 1) % 3;
    nodes[leader].kill();
    let killed_at = Instant::now();

    // Writes through a surviving node succeed again within a bounded time.
    let version = loop {
        let out = nodes[survivor].ctl(&["metadata", "put", "--key", "k", "--value", "after", "--json"]);
        if out.code == 0 {
            break out.json()["version"].as_u64().unwrap();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no write succeeded within 10 s of the leader kill: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("metadata writes resumed {:?} after the leader was killed", killed_at.elapsed());
    assert!(version >= 2);

    // The killed node comes back and catches up to the same applied index.
    nodes[leader].start_and_wait_healthy();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = wait_for_metadata_voters(&nodes[survivor], 3);
        let applied: Vec<u64> = s.iter().map(|s| s["applied"].as_u64().unwrap()).collect();
        if applied.iter().all(|a| *a == applied[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "applied indexes never converged: {applied:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = nodes[leader].ctl(&["metadata", "get", "--key", "k", "--json"]).json();
    assert_eq!((got["value"].as_str(), got["version"].as_u64()), (Some("after"), Some(version)));

    // Clean shutdown of a member (raft engine included) exits 0, and promptly: the raft
    // streams its peers keep open end with it (its server's drain would wait 15 s for them).
    let began = Instant::now();
    let exit = nodes[survivor].stop();
    assert!(exit.success(), "SIGTERM must exit 0, got {exit}");
    assert!(began.elapsed() < Duration::from_secs(5), "SIGTERM took {:?}", began.elapsed());
}

#[test]
fn a_local_store_migrates_to_replicated_on_restart_with_every_key_and_version() {
    let dir = TestDir::new("migrate");
    let mut node = ServerProcess::new(&dir, "solo", "migrating", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    for (key, writes) in [("a", 1), ("b", 3), ("c", 2)] {
        for i in 0..writes {
            node.ctl(&["metadata", "put", "--key", key, "--value", &format!("{key}{i}")]).ok();
        }
    }
    let before: Vec<serde_json::Value> =
        ["a", "b", "c", "cluster_config", "nodes_config", "partition_table", "bifrost_config"]
            .iter()
            .map(|k| node.ctl(&["metadata", "get", "--key", k, "--json"]).json())
            .collect();
    assert!(node.stop().success());

    node.set_env("RESTATE_METADATA_SERVER__TYPE", "replicated");
    node.start_and_wait_healthy();
    let status = wait_for_alive_nodes(&node, 1);
    assert_eq!(status["provisioned"], true);
    for expected in &before {
        let key = expected["key"].as_str().unwrap();
        let got = node.ctl(&["metadata", "get", "--key", key, "--json"]).json();
        if key == "nodes_config" {
            // The restart registered a new generation: one write more than before.
            assert_eq!(got["version"].as_u64().unwrap(), expected["version"].as_u64().unwrap() + 1);
        } else {
            assert_eq!(&got, expected, "key {key} changed in the migration");
        }
    }
    let servers = wait_for_metadata_voters(&node, 1);
    assert_eq!(servers[0]["status"], "member");
}

fn raft_id_of(servers: &[serde_json::Value], name: &str) -> u64 {
    servers.iter().find(|s| s["name"] == name).and_then(|s| s["raft_id"].as_u64()).unwrap()
}

#[test]
fn a_wiped_member_rejoins_as_a_new_incarnation_and_the_last_member_stays() {
    let dir = TestDir::new("wiped");
    let mut nodes = three_nodes(&dir);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    let status_before = wait_for_alive_nodes(&nodes[0], 3);
    let n3_before = status_before["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "n3").unwrap().clone();
    let before = wait_for_metadata_voters(&nodes[0], 3);
    let old_raft_id = raft_id_of(&before, "n3");

    // Wipe n3's data and bring it back under the same name.
    nodes[2].kill();
    std::fs::remove_dir_all(nodes[2].base_dir.join("n3")).unwrap();
    nodes[2].start_and_wait_healthy();
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let servers = wait_for_metadata_voters(&nodes[0], 3);
        if raft_id_of(&servers, "n3") != old_raft_id {
            break servers;
        }
        assert!(Instant::now() < deadline, "n3 never rejoined as a new member: {servers:#?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let members = after[0]["members"].as_array().unwrap();
    assert!(!members.iter().any(|m| m["raft_id"] == old_raft_id), "the old incarnation must be gone: {members:#?}");
    let status = wait_for_alive_nodes(&nodes[0], 3);
    let n3 = status["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "n3").unwrap().clone();
    assert_eq!(n3["node_id"], n3_before["node_id"], "same node id after the wipe");
    assert_eq!(n3["generation"].as_u64(), n3_before["generation"].as_u64().map(|g| g + 1), "next generation");

    // Provisioning again changes nothing.
    let again = nodes[1].ctl(&["provision", "--yes"]);
    assert!(again.ok().contains("already provisioned"), "{}", again.stdout);

    // Members can be removed down to one; the last one is refused, and stays.
    nodes[0].ctl(&["metadata-server", "remove-node", "--node", "n3", "--yes"]).ok();
    // By node id this time (ids depend on the order the nodes registered in).
    let n2_id = status["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "n2").unwrap()["node_id"]
        .as_str()
        .unwrap()
        .to_owned();
    nodes[0].ctl(&["metadata-server", "remove-node", "--node", &n2_id, "--yes"]).ok();
    let last = nodes[0].ctl(&["metadata-server", "remove-node", "--node", "n1", "--yes"]);
    assert_eq!(last.code, 1, "{last:?}");
    assert!(last.stderr.contains("last voter"), "{}", last.stderr);
    let unknown = nodes[0].ctl(&["metadata-server", "remove-node", "--node", "nobody", "--yes"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("--node nobody"), "{}", unknown.stderr);
    // Still serving with one voter.
    nodes[0].ctl(&["metadata", "put", "--key", "still", "--value", "here"]).ok();
}

#[test]
fn a_node_of_another_cluster_never_joins_the_replicated_store() {
    let dir = TestDir::new("stranger");
    let mut nodes = three_nodes(&dir);
    nodes[0].start_and_wait_healthy();
    wait_for_alive_nodes(&nodes[0], 1);
    let list = format!("[\"{}\"]", nodes[0].address());
    let mut stranger = ServerProcess::new(
        &dir,
        "intruder",
        "other-cluster",
        &[
            ("RESTATE_METADATA_SERVER__TYPE", "replicated"),
            ("RESTATE_METADATA_CLIENT__ADDRESSES", &list),
            ("RESTATE_AUTO_PROVISION", "false"),
        ],
    );
    stranger.start();
    let status = stranger.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{}", stranger.log());
    assert!(stranger.log().contains("never joins a cluster of another name"), "{}", stranger.log());
    let servers = wait_for_metadata_voters(&nodes[0], 1);
    assert_eq!(servers.len(), 1);
}

#[test]
fn a_node_without_auto_join_becomes_a_member_by_add_node() {
    let dir = TestDir::new("add-node");
    let mut nodes = three_nodes(&dir);
    nodes[2].set_env("RESTATE_METADATA_SERVER__AUTO_JOIN", "false");
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = metadata_servers(&nodes[0]);
        let n3 = s.iter().find(|s| s["name"] == "n3").cloned().unwrap_or_default();
        let voters = s.iter().find(|s| s["is_leader"] == true).and_then(|l| l["members"].as_array().map(|m| m.len()));
        if n3["status"] == "not-member" && voters == Some(2) {
            break;
        }
        assert!(Instant::now() < deadline, "expected n3 outside the store and 2 members: {s:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    nodes[0].ctl(&["metadata-server", "add-node", "--node", "n3", "--yes"]).ok();
    wait_for_metadata_voters(&nodes[0], 3);
    let text = nodes[0].ctl(&["metadata-server", "list-servers"]);
    assert!(text.ok().contains("LOG-LENGTH"), "{}", text.stdout);
}
