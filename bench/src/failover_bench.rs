//! `make bench` (fail-over): the gap a leader kill leaves in a busy cluster. Three nodes
//! (replication 2, 4 partitions) serve `Counter/{key}/add` on 16 keys (spread over every
//! partition) from 4 client threads through the two ingresses that stay up. Ten times: the
//! node leading the most partitions is killed -9; the gap of a key is the time from the
//! kill until its next acknowledged add, and the kill's fail-over gap is the largest gap
//! over the keys (the partition that lost its leader). The killed node is restarted and
//! the cluster settles before the next kill. Against the 2 s target, beside the limit the
//! design sets: a killed node's port refuses connections, so the controller replaces its
//! leaderships (and takes over its controller lease) at its next round, every 500 ms.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use restate_bench::{ms, percentile, record_summary};
use restate_e2e::services::{admin_url, restate, ExampleServices, REPLICATED_WORKERS};
use restate_e2e::{http_call, partition_processors, replicated_cluster, wait_for_alive_nodes, wait_until, TestDir};

const KILLS: usize = 10;
const KEYS: usize = 16;
const CLIENTS: usize = 4;
const TARGET: Duration = Duration::from_secs(2);
/// How often the controller looks (`restate_cluster::ControllerOptions::round_interval`):
/// the earliest a dead leader can be noticed.
const DETECTION_FLOOR: Duration = Duration::from_millis(500);

/// The node (index) that leads the most partitions now, if every partition has a leader.
fn busiest_leader(names: &[&str], observer: &restate_e2e::ServerProcess) -> Option<usize> {
    let processors = partition_processors(observer);
    let mut led: BTreeMap<usize, usize> = BTreeMap::new();
    let mut partitions = std::collections::BTreeSet::new();
    for p in processors.iter().filter(|p| p["mode"] == "leader") {
        partitions.insert(p["partition_id"].as_u64()?);
        let node = names.iter().position(|n| p["name"] == *n)?;
        *led.entry(node).or_default() += 1;
    }
    (partitions.len() == 4).then(|| led.into_iter().max_by_key(|(_, n)| *n).map(|(node, _)| node))?
}

fn main() {
    let names = ["f1", "f2", "f3"];
    let dir = TestDir::new("failover-bench");
    let mut nodes = replicated_cluster(&dir, "failover-bench", &names, &REPLICATED_WORKERS);
    for node in nodes.iter_mut() {
        node.set_env("RUST_LOG", &std::env::var("FAILOVER_NODE_LOG").unwrap_or_else(|_| "warn".into()));
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    for key in 0..KEYS {
        wait_until("every counter to answer", Duration::from_secs(60), || {
            http_call(ports[0], "POST", &format!("/Counter/f{key}/add"), "0", &[], Duration::from_secs(30))
                .is_some_and(|(s, _)| s == 200)
        });
    }

    // Clients: last acknowledged add per key; the ingress ports to use (the victim's removed).
    let last_ok: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(vec![Instant::now(); KEYS]));
    let usable: Arc<Mutex<Vec<u16>>> = Arc::new(Mutex::new(ports.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let (acknowledged, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let next_id = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (last_ok, usable, stop) = (last_ok.clone(), usable.clone(), stop.clone());
            let (acknowledged, failed, next_id) = (acknowledged.clone(), failed.clone(), next_id.clone());
            std::thread::spawn(move || {
                let mut turn = client;
                while !stop.load(Ordering::SeqCst) {
                    turn += 1;
                    let key = turn % KEYS;
                    let port = {
                        let ports = usable.lock().unwrap();
                        ports[turn % ports.len()]
                    };
                    let id = format!("add-{}", next_id.fetch_add(1, Ordering::SeqCst));
                    let answer = http_call(
                        port,
                        "POST",
                        &format!("/Counter/f{key}/add"),
                        "1",
                        &[("idempotency-key", &id)],
                        Duration::from_secs(10),
                    );
                    if let Some((200, _)) = answer {
                        last_ok.lock().unwrap()[key] = Instant::now();
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();

    let mut gaps = Vec::new();
    let kills = std::env::var("FAILOVER_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(KILLS);
    for kill in 0..kills {
        let victim = {
            let observer = &nodes[(kill + 1) % 3];
            let mut found = None;
            wait_until("every partition to have a leader", Duration::from_secs(60), || {
                found = busiest_leader(&names, observer);
                found.is_some()
            });
            found.unwrap()
        };
        let observer = &nodes[(victim + 1) % 3];
        let status = observer.ctl(&["status", "--json"]).json();
        let controller = status["cluster_controller"].as_str().unwrap_or_default().to_owned();
        let servers = observer.ctl(&["metadata-server", "list-servers", "--json"]).json();
        let metadata_leader = servers["servers"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["is_leader"] == true))
            .and_then(|s| s["name"].as_str())
            .unwrap_or_default()
            .to_owned();
        let victim_id = status["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["name"] == names[victim]))
            .and_then(|n| n["node_id"].as_str())
            .unwrap_or_default()
            .to_owned();
        let mut roles = vec!["leader of the most partitions"];
        if controller.starts_with(&victim_id) && !victim_id.is_empty() {
            roles.push("cluster controller");
        }
        if metadata_leader == names[victim] {
            roles.push("metadata leader");
        }
        *usable.lock().unwrap() = ports.iter().copied().filter(|p| *p != ports[victim]).collect();
        std::thread::sleep(Duration::from_millis(500)); // requests already sent to the victim finish
        let killed_at = Instant::now();
        nodes[victim].kill();
        wait_until("every key to be acknowledged after the kill", Duration::from_secs(60), || {
            last_ok.lock().unwrap().iter().all(|t| *t > killed_at)
        });
        let gap = last_ok.lock().unwrap().iter().map(|t| *t - killed_at).max().unwrap();
        println!("kill {}: {} ({}) -> fail-over gap {} ms", kill + 1, names[victim], roles.join(", "), ms(gap));
        gaps.push(gap);
        nodes[victim].start_and_wait_healthy();
        wait_for_alive_nodes(&nodes[victim], 3);
        *usable.lock().unwrap() = ports.clone();
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().unwrap();
    }
    gaps.sort();
    if let Ok(keep) = std::env::var("FAILOVER_KEEP_LOGS") {
        for node in &nodes {
            let _ = std::fs::copy(&node.log_path, format!("{keep}/{}.log", node.name));
        }
    }

    println!("\n## Fail-over gap: leader of the most partitions killed -9, {kills} times (3 nodes, replication 2, 4 partitions, {CLIENTS} clients)\n");
    println!("| p50 ms | p99 ms | max ms | target ms | p99 / target | detection floor ms (one controller round) | acknowledged | failed attempts (retried) |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {:.2} | {} | {} | {} |",
        ms(percentile(&gaps, 0.5)),
        ms(percentile(&gaps, 0.99)),
        ms(*gaps.last().unwrap()),
        ms(TARGET),
        percentile(&gaps, 0.99).as_secs_f64() / TARGET.as_secs_f64(),
        ms(DETECTION_FLOOR),
        acknowledged.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
    );
    record_summary(
        &format!("fail-over gap, busiest partition leader killed, {kills} kills"),
        &format!("p50 {} ms, p99 {} ms", ms(percentile(&gaps, 0.5)), ms(percentile(&gaps, 0.99))),
        &format!("target p99 {} ms (detection floor {} ms)", ms(TARGET), ms(DETECTION_FLOOR)),
        percentile(&gaps, 0.99).as_secs_f64() / TARGET.as_secs_f64(),
        "p99 / target",
    );
}
