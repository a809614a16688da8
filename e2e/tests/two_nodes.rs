//! Two nodes on one machine: independent clusters side by side, and a second node that
//! joins an existing cluster through its metadata-client addresses.

use restate_e2e::*;

#[test]
fn two_single_node_clusters_run_side_by_side() {
    let dir_a = TestDir::new("side-a");
    let dir_b = TestDir::new("side-b");
    let mut a = ServerProcess::new(&dir_a, "node-a", "cluster-a", &[]);
    let mut b = ServerProcess::new(&dir_b, "node-b", "cluster-b", &[]);
    a.start_and_wait_healthy();
    b.start_and_wait_healthy();
    let sa = wait_for_alive_nodes(&a, 1);
    let sb = wait_for_alive_nodes(&b, 1);
    assert_eq!(sa["cluster_name"], "cluster-a");
    assert_eq!(sb["cluster_name"], "cluster-b");
    assert_ne!(sa["cluster_fingerprint"], sb["cluster_fingerprint"]);
}

#[test]
fn a_node_with_auto_provision_joins_the_cluster_it_can_reach() {
    let dir = TestDir::new("join");
    let mut first = ServerProcess::new(&dir, "n1", "shared", &[]);
    first.start_and_wait_healthy();
    let before = wait_for_alive_nodes(&first, 1);

    let addresses = format!("[\"{}\"]", first.address());
    // auto-provision stays at its default (true): the reachable, provisioned cluster wins.
    let mut second = ServerProcess::new(
        &dir,
        "n2",
        "shared",
        &[("RESTATE_METADATA_CLIENT__ADDRESSES", &addresses), ("RESTATE_ROLES", "[\"worker\",\"log-server\"]")],
    );
    second.start_and_wait_healthy();
    let from_first = wait_for_alive_nodes(&first, 2);
    let from_second = wait_for_alive_nodes(&second, 2);
    assert_eq!(from_first["cluster_fingerprint"], before["cluster_fingerprint"], "no second provisioning");
    assert_eq!(from_second["cluster_fingerprint"], before["cluster_fingerprint"]);
    let ids: Vec<_> =
        from_second["nodes"].as_array().unwrap().iter().map(|n| (n["node_id"].clone(), n["name"].clone())).collect();
    assert_eq!(
        ids,
        [(serde_json::json!("N1"), serde_json::json!("n1")), (serde_json::json!("N2"), serde_json::json!("n2"))]
    );

    // A node of another cluster name pointed at it refuses to join and exits.
    let mut stranger = ServerProcess::new(&dir, "n3", "other", &[("RESTATE_METADATA_CLIENT__ADDRESSES", &addresses)]);
    stranger.start();
    let status = stranger.wait_exit(std::time::Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", stranger.log());
    assert!(stranger.log().contains("never joins a cluster of another name"), "{}", stranger.log());
    wait_for_alive_nodes(&first, 2);

    // Killing the second node shows it dead in the first's view.
    second.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let s = first.ctl(&["status", "--json"]).json();
        let n2 = s["nodes"].as_array().unwrap().iter().find(|n| n["name"] == "n2").cloned().unwrap();
        if n2["alive"] == false {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "n2 still alive after kill: {s:#}");
    }
}
