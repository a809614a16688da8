//! Logs live on disk: a 3-node cluster (replication 2, no snapshots, so nothing is ever
//! trimmed) takes a sustained invocation load with 4 KiB payloads; every node's memory
//! stays flat while the log grows, a node killed -9 serves again quickly (its restart
//! reads no log into memory), and the whole log is readable from every member.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_e2e::services::{greets, three_workers_with_services_env, REPLICATED_WORKERS};

use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, FindTailRequest, ReadRequest};

/// How long the load runs.
const LOAD_FOR: Duration = Duration::from_secs(60);
/// Resident memory a node may gain under the load (the bound).
const MAX_RSS_GROWTH_MIB: f64 = 160.0;

fn rss_mib(node: &ServerProcess) -> f64 {
    let pid = node.pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib / 1024.0
}

/// Payload bytes appended to the logs, summed over the nodes (each counts its own appends).
fn appended_mib(nodes: &[ServerProcess]) -> f64 {
    let mut total = 0.0;
    for node in nodes {
        let (_, text) = http_get(node.ports.fabric, "/metrics").unwrap_or_default();
        total += text
            .lines()
            .filter(|l| l.starts_with("restate_bifrost_append_bytes_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total / (1024.0 * 1024.0)
}

#[test]
fn memory_stays_flat_while_the_log_grows_and_every_member_reads_the_whole_log() {
    let dir = TestDir::new("log-memory");
    let mut env = REPLICATED_WORKERS.to_vec();
    env.push(("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", "128 MiB"));
    let (mut nodes, _services) = three_workers_with_services_env(&dir, "log-memory", &env);
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    let payload = "x".repeat(4096);
    // Warm up (connections, caches, every partition led) before the baseline.
    wait_until("the Greeter answers on every node", Duration::from_secs(60), || {
        ports.iter().all(|port| greets(*port, "warm-up"))
    });
    for i in 0..50 {
        assert!(greets(ports[i % 3], &payload), "warm-up invocation {i}");
    }
    let baseline: Vec<f64> = nodes.iter().map(rss_mib).collect();
    let appended_before = appended_mib(&nodes);

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|client| {
            let (stop, done, ports, payload) = (stop.clone(), done.clone(), ports.clone(), payload.clone());
            std::thread::spawn(move || {
                let mut n = client;
                while !stop.load(Ordering::Relaxed) {
                    if greets(ports[n % ports.len()], &payload) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut peak = baseline.clone();
    while started.elapsed() < LOAD_FOR {
        std::thread::sleep(Duration::from_secs(2));
        for (i, node) in nodes.iter().enumerate() {
            peak[i] = peak[i].max(rss_mib(node));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let grown = appended_mib(&nodes) - appended_before;
    let invocations = done.load(Ordering::Relaxed);
    for (i, node) in nodes.iter().enumerate() {
        println!(
            "{}: resident {:.0} MiB before the load, peak {:.0} MiB (+{:.0} MiB)",
            node.name,
            baseline[i],
            peak[i],
            peak[i] - baseline[i]
        );
    }
    println!("{invocations} invocations in {LOAD_FOR:?}; the logs grew by {grown:.0} MiB of records");
    assert!(invocations > 500, "the load ran ({invocations} invocations)");
    assert!(grown > 32.0, "the logs grew by {grown:.0} MiB only");
    for (i, node) in nodes.iter().enumerate() {
        let growth = peak[i] - baseline[i];
        assert!(
            growth < MAX_RSS_GROWTH_MIB,
            "{} grew by {growth:.0} MiB of resident memory while the logs grew by {grown:.0} MiB",
            node.name
        );
    }

    // A node killed -9 after that serves again within 15 s.
    nodes[1].kill();
    let restarted = Instant::now();
    nodes[1].start();
    wait_until("the restarted node to serve an invocation", Duration::from_secs(15), || {
        greets(nodes[1].ports.ingress, "back")
    });
    println!("n2 served again {:?} after its restart", restarted.elapsed());
    let rss_after_restart = rss_mib(&nodes[1]);
    println!("n2 resident after its restart: {rss_after_restart:.0} MiB");

    // The whole log is readable from every member of every loglet.
    let logs: serde_json::Value = serde_json::from_str(nodes[0].ctl(&["logs", "list", "--json"]).ok()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Nodesets name nodes by id (`N1`); the status maps ids to names.
    let status = wait_for_alive_nodes(&nodes[0], 3);
    let addresses: std::collections::HashMap<String, String> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let id = match &n["node_id"] {
                serde_json::Value::Number(id) => format!("N{id}"),
                other => other.as_str().unwrap().to_owned(),
            };
            let name = n["name"].as_str().unwrap();
            (id, nodes.iter().find(|node| node.name == name).unwrap().address())
        })
        .collect();
    for log in logs["logs"].as_array().unwrap() {
        let loglet_id = log["loglet_id"].as_u64().unwrap();
        let members: Vec<String> =
            log["nodeset"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect();
        let mut counts = Vec::new();
        for member in &members {
            let address = addresses.get(member).unwrap_or_else(|| panic!("nodeset member {member} is not a node"));
            let (records, tail) = runtime.block_on(async {
                let mut client = LogServerClient::connect(address.clone()).await.unwrap();
                client = client.max_decoding_message_size(64 << 20);
                let tail = client
                    .find_tail(FindTailRequest { loglet_id, local: false })
                    .await
                    .map(|t| t.into_inner().next_lsn)
                    .unwrap_or(0);
                let mut next = 1u64;
                let mut records = 0u64;
                loop {
                    let read = ReadRequest { loglet_id, from_lsn: next, max_records: 1000, local: false };
                    let batch =
                        client.read(read).await.unwrap_or_else(|e| panic!("{member} reads loglet {loglet_id}: {e}"));
                    let batch = batch.into_inner();
                    let Some(last) = batch.records.last() else { break (records, batch.next_lsn.max(tail)) };
                    for (i, record) in batch.records.iter().enumerate() {
                        assert_eq!(record.lsn, next + i as u64, "{member}: loglet {loglet_id} has a gap");
                    }
                    records += batch.records.len() as u64;
                    next = last.lsn + 1;
                }
            });
            assert_eq!(records + 1, tail, "{member} reads every record of loglet {loglet_id} (tail {tail})");
            counts.push(records);
        }
        assert!(counts.iter().all(|c| *c == counts[0]), "loglet {loglet_id}: members read {counts:?}");
    }
}
