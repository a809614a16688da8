//! Replicated loglets with real processes: 3 nodes, replication 2, appends from several
//! clients while a log-server is killed -9 and restarted; afterwards every acknowledged
//! record is on every replica exactly once, in LSN order.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, ReadRequest};
use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, AppendLogRequest};

fn cluster(dir: &TestDir) -> Vec<ServerProcess> {
    replicated_cluster(
        dir,
        "logs",
        &["n1", "n2", "n3"],
        &[
            ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
            LOG_ONLY_ROLES,
            ("RESTATE_DEFAULT_REPLICATION", "2"),
            ("RESTATE_DEFAULT_NUM_PARTITIONS", "2"),
        ],
    )
}

/// (log id, loglet id) of every replicated segment, once every log is placed on 3 nodes.
fn wait_for_placement(node: &ServerProcess) -> Vec<(u32, u64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = node.ctl(&["logs", "list", "--json"]);
        if out.code == 0 {
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let logs = v["logs"].as_array().cloned().unwrap_or_default();
            if logs.len() == 2 && logs.iter().all(|l| l["nodeset"].as_array().is_some_and(|n| n.len() == 3)) {
                return logs
                    .iter()
                    .map(|l| (l["log_id"].as_u64().unwrap() as u32, l["loglet_id"].as_u64().unwrap()))
                    .collect();
            }
        }
        assert!(Instant::now() < deadline, "logs were never placed: {}", out.stdout);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn acknowledged_records_survive_a_log_server_kill_on_every_replica() {
    let dir = TestDir::new("replicated-logs");
    let mut nodes = cluster(&dir);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let loglets = wait_for_placement(&nodes[0]);
    let addresses: Vec<String> = nodes.iter().map(|n| n.address()).collect();
    // Each replicated log names its sequencer: the loglet group's leader, a nodeset member.
    wait_until("every log to name its leader", Duration::from_secs(30), || {
        let v: serde_json::Value =
            serde_json::from_str(&nodes[1].ctl(&["logs", "list", "--json"]).stdout).unwrap_or_default();
        v["logs"].as_array().is_some_and(|logs| {
            logs.iter().all(|l| {
                l["leader"].as_str().is_some_and(|leader| l["nodeset"].as_array().unwrap().iter().any(|n| n == leader))
            })
        })
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // Two clients append to both logs through n1 and n2 (n3 is the one that gets killed).
    let appenders: Vec<_> = (0..2u32)
        .map(|client| {
            let address = addresses[client as usize].clone();
            runtime.spawn(async move {
                let mut acked = Vec::new();
                let mut ctl = NodeCtlClient::connect(address).await.unwrap();
                for n in 0..40u32 {
                    let log_id = n % 2;
                    let payload = format!("c{client}-{n}");
                    let request = AppendLogRequest { log_id, records: vec![payload.clone().into_bytes()] };
                    if let Ok(r) = ctl.append_log(request).await {
                        acked.push((log_id, r.into_inner().last_lsn, payload));
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    nodes[2].kill();
    std::thread::sleep(Duration::from_millis(1500));
    nodes[2].start_and_wait_healthy();
    let mut acked = Vec::new();
    for appender in appenders {
        acked.extend(runtime.block_on(appender).unwrap());
    }
    assert!(acked.len() >= 40, "too few acknowledged appends: {}", acked.len());

    // Every replica, read directly, holds every acknowledged record once, in LSN order.
    for (log_id, loglet_id) in &loglets {
        let expected: BTreeMap<u64, String> =
            acked.iter().filter(|(l, _, _)| l == log_id).map(|(_, lsn, p)| (*lsn, p.clone())).collect();
        for address in &addresses {
            let deadline = Instant::now() + Duration::from_secs(30);
            let records = loop {
                let read = runtime.block_on(async {
                    let mut client = LogServerClient::connect(address.clone()).await.ok()?;
                    client
                        .read(ReadRequest { loglet_id: *loglet_id, from_lsn: 1, max_records: 1000, local: false })
                        .await
                        .ok()
                });
                if let Some(read) = read.map(|r| r.into_inner()) {
                    let have: Vec<(u64, String)> =
                        read.records.iter().map(|r| (r.lsn, String::from_utf8(r.payload.clone()).unwrap())).collect();
                    if have.last().map(|r| r.0) >= expected.keys().next_back().copied() {
                        break have;
                    }
                }
                assert!(Instant::now() < deadline, "replica {address} of loglet {loglet_id} never caught up");
                std::thread::sleep(Duration::from_millis(100));
            };
            let lsns: Vec<u64> = records.iter().map(|r| r.0).collect();
            assert_eq!(lsns, (1..=lsns.len() as u64).collect::<Vec<_>>(), "gap or disorder on {address}");
            let mut payloads: Vec<&String> = records.iter().map(|r| &r.1).collect();
            payloads.sort();
            payloads.dedup();
            assert_eq!(payloads.len(), records.len(), "a record appears twice on {address}");
            for (lsn, payload) in &expected {
                assert_eq!(
                    records.get(*lsn as usize - 1).map(|r| &r.1),
                    Some(payload),
                    "acknowledged record {lsn} of log {log_id} missing on {address}"
                );
            }
        }
    }
}

fn append(runtime: &tokio::runtime::Runtime, address: &str, log_id: u32, from: u32, to: u32) -> u64 {
    runtime.block_on(async {
        let mut ctl = NodeCtlClient::connect(address.to_owned()).await.unwrap();
        let records = (from..=to).map(|i| format!("r{i}").into_bytes()).collect();
        ctl.append_log(AppendLogRequest { log_id, records })
            .await
            .unwrap_or_else(|s| panic!("append {from}..={to}: {s:?}"))
            .into_inner()
            .last_lsn
    })
}

fn read_all(runtime: &tokio::runtime::Runtime, address: &str, log_id: u32) -> Vec<(u64, String)> {
    read_from(runtime, address, log_id, 1)
}

fn read_from(runtime: &tokio::runtime::Runtime, address: &str, log_id: u32, from_lsn: u64) -> Vec<(u64, String)> {
    runtime.block_on(async {
        let mut ctl = NodeCtlClient::connect(address.to_owned()).await.unwrap();
        let read = ctl
            .read_log(restate_proto::node_ctl::ReadLogRequest { log_id, from_lsn, max_records: 1000 })
            .await
            .unwrap()
            .into_inner();
        read.records.into_iter().map(|r| (r.lsn, String::from_utf8(r.payload).unwrap())).collect()
    })
}

#[test]
fn a_single_node_grows_into_a_replicated_cluster_without_losing_records() {
    let dir = TestDir::new("grow");
    let mut n1 = ServerProcess::new(
        &dir,
        "n1",
        "grow",
        &[
            LOG_ONLY_ROLES,
            ("RESTATE_METADATA_SERVER__TYPE", "replicated"),
            ("RESTATE_DEFAULT_NUM_PARTITIONS", "2"),
            ("RESTATE_LOCATION", "lab.a"),
        ],
    );
    n1.start_and_wait_healthy();
    wait_for_alive_nodes(&n1, 1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let a1 = n1.address();

    assert_eq!(append(&runtime, &a1, 0, 1, 5), 5);
    // The seed's migration step, as written.
    n1.ctl(&["config", "set", "--log-provider", "replicated", "--log-replication", "1"]).ok();
    assert_eq!(append(&runtime, &a1, 0, 6, 10), 10);
    let expected = |n: u64| (1..=n).map(|i| (i, format!("r{i}"))).collect::<Vec<_>>();
    assert_eq!(read_all(&runtime, &a1, 0), expected(10));

    // Two nodes join through the first one's address, as the seed's guide says.
    let list = format!("[\"{a1}\"]");
    let mut others: Vec<ServerProcess> = [("n2", "lab.b"), ("n3", "lab.c")]
        .iter()
        .map(|(name, location)| {
            ServerProcess::new(
                &dir,
                name,
                "grow",
                &[
                    LOG_ONLY_ROLES,
                    ("RESTATE_METADATA_SERVER__TYPE", "replicated"),
                    ("RESTATE_METADATA_CLIENT__ADDRESSES", &list),
                    ("RESTATE_AUTO_PROVISION", "false"),
                    ("RESTATE_LOCATION", location),
                ],
            )
        })
        .collect();
    for node in others.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&n1, 3);
    let status = n1.ctl(&["status", "--json"]).json();
    let locations: Vec<&str> =
        status["nodes"].as_array().unwrap().iter().map(|n| n["location"].as_str().unwrap()).collect();
    assert_eq!(locations, ["lab.a", "lab.b", "lab.c"], "{status:#}");
    // Two regions cannot be had from one: refused with the arithmetic, nothing changed.
    let refused = n1.ctl(&["config", "set", "--log-replication", "{region: 2, node: 2}", "--yes"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("at most 1 in any region") && refused.stderr.contains("lab (3)"),
        "{}",
        refused.stderr
    );
    let bad = n1.ctl(&["config", "set", "--log-replication", "{rack: 2}", "--yes"]);
    assert!(bad.code != 0 && bad.stderr.contains("unknown scope 'rack'"), "{}", bad.stderr);
    // Two copies in two zones: one member per zone.
    let raised = n1.ctl(&["config", "set", "--log-replication", "{zone: 2, node: 2}", "--json"]).json();
    assert_eq!(
        (raised["log_replication"].clone(), raised["log_replication_property"].clone()),
        (2.into(), "{zone: 2, node: 2}".into())
    );
    let logs = n1.ctl(&["logs", "describe", "--log-id", "0", "--json"]).json();
    assert_eq!(logs["nodeset"], serde_json::json!(["N1", "N2", "N3"]), "{logs:#}");
    assert_eq!(logs["nodeset_locations"], serde_json::json!(["lab.a", "lab.b", "lab.c"]), "{logs:#}");
    assert_eq!(append(&runtime, &a1, 0, 11, 15), 15);

    // One node down: replication 2 out of 3 keeps accepting records.
    others[1].kill();
    assert_eq!(append(&runtime, &a1, 0, 16, 20), 20);
    assert_eq!(read_all(&runtime, &a1, 0), expected(20));
    // The whole history reads the same through another node: the first (local)
    // segment is read through n1, the replicated ones from their log-servers.
    assert_eq!(read_all(&runtime, &others[0].address(), 0), expected(20));
    assert_eq!(read_from(&runtime, &others[0].address(), 0, 6), expected(20)[5..].to_vec());
    let described = n1.ctl(&["logs", "describe", "--log-id", "0", "--json"]).json();
    assert_eq!(
        described["segments"].as_array().unwrap().len(),
        3,
        "local, replicated r=1, replicated r=2: {described:#}"
    );
}

#[test]
fn five_nodes_with_replication_3_keep_appending_with_two_down() {
    let dir = TestDir::new("five");
    let mut nodes = replicated_cluster(
        &dir,
        "five",
        &["n1", "n2", "n3", "n4", "n5"],
        &[
            ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
            LOG_ONLY_ROLES,
            ("RESTATE_DEFAULT_REPLICATION", "3"),
            ("RESTATE_DEFAULT_NUM_PARTITIONS", "1"),
            ("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", "32 MiB"),
        ],
    );
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 5);
    let deadline = Instant::now() + Duration::from_secs(60);
    let loglet = loop {
        let v = nodes[0].ctl(&["logs", "list", "--json"]).json();
        let log = v["logs"][0].clone();
        if log["nodeset"].as_array().is_some_and(|n| n.len() == 5) {
            assert_eq!(log["replication"], 3);
            break log["loglet_id"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "log never placed on 5 nodes: {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let a1 = nodes[0].address();
    assert_eq!(append(&runtime, &a1, 0, 1, 10), 10);

    // Two of five down: a majority of the loglet's voters (3) remains.
    nodes[3].kill();
    nodes[4].kill();
    assert_eq!(append(&runtime, &a1, 0, 11, 20), 20);

    // They come back and catch up: their replicas hold all 20 records.
    nodes[3].start_and_wait_healthy();
    nodes[4].start_and_wait_healthy();
    assert_eq!(append(&runtime, &a1, 0, 21, 25), 25);
    for node in &nodes[3..] {
        let address = node.address();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let read = runtime.block_on(async {
                let mut client = LogServerClient::connect(address.clone()).await.ok()?;
                client.read(ReadRequest { loglet_id: loglet, from_lsn: 1, max_records: 100, local: false }).await.ok()
            });
            let lsns: Vec<u64> =
                read.map(|r| r.into_inner().records.iter().map(|r| r.lsn).collect()).unwrap_or_default();
            if lsns == (1..=25).collect::<Vec<_>>() {
                break;
            }
            assert!(Instant::now() < deadline, "{} never caught up: {lsns:?}", node.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
