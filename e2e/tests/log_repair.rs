//! Repair with real processes: 4 nodes, replication 2 (a loglet group of 3 plus one
//! spare). A nodeset member is killed -9; after the grace period the cluster controller
//! puts the spare in its place (learner, caught up, voter, dead member removed) while a
//! client keeps appending. Then the dead node comes back and another original member is
//! killed: appends continue only because the spare really votes. Every acknowledged
//! record is read back once, in order, also from the spare's own replica.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, ReadRequest};
use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, AppendLogRequest, ReadLogRequest};

/// Appends `record-{i}` one at a time through `address` until `stop`; returns the
/// acknowledged (lsn, payload) pairs.
async fn append_until(address: String, stop: tokio_util::sync::CancellationToken) -> Vec<(u64, String)> {
    let mut acked = Vec::new();
    let mut ctl = NodeCtlClient::connect(address).await.unwrap();
    let mut i = 0u32;
    while !stop.is_cancelled() {
        let payload = format!("record-{i}");
        i += 1;
        let request = AppendLogRequest { log_id: 0, records: vec![payload.clone().into_bytes()] };
        if let Ok(r) = ctl.append_log(request).await {
            acked.push((r.into_inner().last_lsn, payload));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    acked
}

const CLUSTER: &str = "repair";

#[test]
fn a_dead_log_server_is_replaced_by_a_spare_that_then_carries_the_log() {
    let dir = TestDir::new("log-repair");
    let LogServersWithSpare { mut nodes, id_of, loglet, nodeset, spare } = LogServersWithSpare::start(&dir, CLUSTER);
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let index_of = |id: &str| names.iter().position(|name| id_of[name.as_str()] == id).unwrap();
    let (entry, victim, second_victim) = (index_of(&nodeset[0]), index_of(&nodeset[2]), index_of(&nodeset[1]));

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let appender = runtime.spawn(append_until(nodes[entry].address(), stop.clone()));
    wait_until("a few appends", Duration::from_secs(30), || tail_log(&nodes[entry]).is_some_and(|tail| tail > 5));

    nodes[victim].kill();
    let dead = id_of[nodes[victim].name.as_str()].clone();
    let started = Instant::now();
    wait_until("the spare to replace the dead log-server", Duration::from_secs(60), || {
        tail_of_first_log(&nodes[entry])
            .is_some_and(|(l, ns)| l == loglet && ns.contains(&spare) && !ns.contains(&dead))
    });
    assert!(started.elapsed() >= Duration::from_secs(2), "replaced before the grace period ended");

    // The group itself follows: 3 voters (the spare among them), no learner left.
    let addresses: Vec<String> = nodes.iter().map(|n| n.address()).collect();
    wait_until("the loglet group to have the nodeset's 3 voters", Duration::from_secs(60), || {
        loglet_has_voters(&runtime, &addresses, loglet, 3)
    });

    // The dead node returns (it is no longer in the nodeset); another original member
    // dies. The group {entry, second_victim, spare} keeps a majority only with the spare.
    nodes[victim].start_and_wait_healthy();
    nodes[second_victim].kill();
    let before = tail_log(&nodes[entry]).unwrap_or(0);
    wait_until("appends to continue with the spare voting", Duration::from_secs(60), || {
        tail_log(&nodes[entry]).is_some_and(|tail| tail > before + 10)
    });
    stop.cancel();
    let acked = runtime.block_on(appender).unwrap();
    assert!(acked.len() > 20, "too few acknowledged appends: {}", acked.len());

    // Through Bifrost: every acknowledged record once, in LSN order, no gaps.
    let all = runtime.block_on(async {
        let mut ctl = NodeCtlClient::connect(nodes[entry].address()).await.unwrap();
        ctl.read_log(ReadLogRequest { log_id: 0, from_lsn: 1, max_records: 100_000 }).await.unwrap().into_inner()
    });
    let read: Vec<(u64, String)> =
        all.records.iter().map(|r| (r.lsn, String::from_utf8(r.payload.clone()).unwrap())).collect();
    let lsns: Vec<u64> = read.iter().map(|r| r.0).collect();
    assert_eq!(lsns, (1..=lsns.len() as u64).collect::<Vec<_>>(), "gap or disorder");
    let by_lsn: BTreeMap<u64, String> = read.iter().cloned().collect();
    for (lsn, payload) in &acked {
        assert_eq!(by_lsn.get(lsn), Some(payload), "acknowledged record at LSN {lsn} is missing or different");
    }
    let mut payloads: Vec<&String> = read.iter().map(|r| &r.1).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), read.len(), "a record appears twice");

    // The spare's own replica holds the whole loglet (it caught up from a snapshot).
    let spare_index = index_of(&spare);
    let replica = runtime.block_on(async {
        let mut c = LogServerClient::connect(nodes[spare_index].address()).await.unwrap();
        c.read(ReadRequest { loglet_id: loglet, from_lsn: 1, max_records: 100_000, local: false })
            .await
            .unwrap()
            .into_inner()
    });
    let replica_lsns: Vec<u64> = replica.records.iter().map(|r| r.lsn).collect();
    assert!(
        replica_lsns.len() >= acked.len(),
        "the spare holds {} records, {} acknowledged",
        replica_lsns.len(),
        acked.len()
    );
    assert_eq!(replica_lsns, (1..=replica_lsns.len() as u64).collect::<Vec<_>>());
}

/// The log's tail LSN as `logs describe` reports it.
fn tail_log(node: &ServerProcess) -> Option<u64> {
    let out = node.ctl(&["logs", "describe", "--log-id", "0", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    v["tail"].as_u64()
}

/// The controller lease: one admin node holds it (status names it); when that node stops
/// answering, another takes over with a higher term, not before the lease ran out; once
/// it is dead, its partition leaderships move.
#[test]
fn another_admin_node_takes_over_the_controller_lease_when_its_holder_dies() {
    let dir = TestDir::new("controller-lease");
    // Replicated logs: a partition whose log is a local loglet can only be led by the node
    // that holds it, so only partitions on replicated logs can move off a dead node.
    let mut nodes = replicated_cluster(&dir, "lease", &["n1", "n2", "n3"], &restate_e2e::services::REPLICATED_WORKERS);
    // n1 alone first: it holds the lease and leads every partition (the only worker when
    // the first plan is made), so the holder killed below has leaderships to move.
    nodes[0].start_and_wait_healthy();
    wait_until("n1 to lead every partition", Duration::from_secs(30), || {
        let out = nodes[0].ctl(&["metadata", "get", "--key", "scheduling_plan", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["value"]["partitions"].as_object().map(|p| p.len()))
            == Some(4)
    });
    for node in nodes[1..].iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    // Every node votes before the holder goes silent: two voters of three keep a quorum.
    wait_for_metadata_voters(&nodes[0], 3);
    let controller = |node: &ServerProcess| -> Option<(String, u64)> {
        let v: serde_json::Value = serde_json::from_str(&node.ctl(&["status", "--json"]).stdout).ok()?;
        Some((v["cluster_controller"].as_str()?.to_owned(), v["cluster_controller_term"].as_u64()?))
    };
    let mut first = None;
    wait_until("a cluster controller", Duration::from_secs(30), || {
        first = controller(&nodes[0]);
        first.is_some()
    });
    let (holder, term) = first.unwrap();
    let status = nodes[0].ctl(&["status"]);
    assert!(status.stdout.contains(&format!("{holder} (term {term})")), "{}", status.stdout);

    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let ids = wait_for_alive_nodes(&nodes[0], 3);
    let holder_name = ids["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| node_id(&n["node_id"]) == holder)
        .map(|n| n["name"].as_str().unwrap().to_owned())
        .unwrap();
    let victim = names.iter().position(|n| *n == holder_name).unwrap();
    // A silent holder (stopped: its port still accepts connections, nothing answers) may
    // only be replaced once its lease stayed unrenewed for its full duration.
    let pid = nodes[victim].pid().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let observer = (victim + 1) % 3;
    let started = Instant::now();
    wait_until("another node to take the controller lease", Duration::from_secs(60), || {
        controller(&nodes[observer]).is_some_and(|(h, t)| h != holder && t > term)
    });
    assert!(started.elapsed() >= Duration::from_secs(3), "taken over too early: {:?}", started.elapsed());
    // Now dead for good (a refused port: its leaderships move at the next round).
    nodes[victim].kill();

    // The new controller moves the dead node's partition leaderships elsewhere, each
    // with a higher epoch, and keeps the dead node as a follower.
    let plan = |node: &ServerProcess| -> Option<serde_json::Value> {
        let out = node.ctl(&["metadata", "get", "--key", "scheduling_plan", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout).ok().map(|v| v["value"]["partitions"].clone())
    };
    let mut final_plan = None;
    wait_until("partition leaders to move off the dead node", Duration::from_secs(60), || {
        final_plan = plan(&nodes[observer]).filter(|partitions| {
            partitions
                .as_object()
                .is_some_and(|p| !p.is_empty() && p.values().all(|placement| node_id(&placement["leader"]) != holder))
        });
        final_plan.is_some()
    });
    let partitions = final_plan.unwrap();
    let moved = partitions.as_object().unwrap().values().filter(|p| p["leader_epoch"].as_u64() > Some(1)).count();
    assert!(moved > 0, "no partition changed leader: {partitions}");
    assert!(partitions.as_object().unwrap().values().all(|p| p["followers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| node_id(f) == holder)));
}
