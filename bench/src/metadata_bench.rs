//! `make bench` (metadata): compare-and-put on a 3-node replicated metadata store beside
//! etcd 3.4 (three members on loopback) doing the same operation in the same run, then
//! the fail-over gap over repeated leader kills and each process's peak memory.
//!
//! Both stores get the same client: one HTTP/2 channel to the current leader, N tasks,
//! each owning one key and doing compare-and-put on that key's version in a loop
//! (restate: `MatchesVersion(v)`; etcd: `Txn(compare VERSION == v, put)`).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_bench::{ms, record_summary};
use restate_e2e::{free_port, replicated_cluster, wait_until, ServerProcess, TestDir};
use restate_proto::metadata::{
    self as mpb, metadata_server_admin_client::MetadataServerAdminClient, metadata_server_client::MetadataServerClient,
};
use tonic::transport::{Channel, Endpoint};

mod etcdpb {
    tonic::include_proto!("etcdserverpb");
}

const RUN_FOR: Duration = Duration::from_secs(4);
const CONCURRENCY: [usize; 3] = [1, 16, 64];
const SATURATION: Duration = Duration::from_secs(15);

struct Measurement {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Measurement {
    fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        restate_bench::percentile(&sorted, p)
    }
}

fn channel(address: &str) -> Channel {
    Endpoint::from_shared(address.to_owned())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(5))
        .connect_lazy()
}

/// Runs `workers` loops of `op` for `RUN_FOR`; each op returns Ok when it succeeded.
async fn measure<F, Fut>(workers: usize, op: F) -> Measurement
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + RUN_FOR;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut version = 0u64;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    match op(worker, version).await {
                        Ok(()) => {
                            latencies.push(began.elapsed());
                            version += 1;
                        }
                        Err(e) => panic!("benchmark operation failed: {e}"),
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    Measurement { ops: latencies.len(), elapsed: start.elapsed(), latencies }
}

async fn restate_leader(nodes: &[String]) -> Option<String> {
    for address in nodes {
        let mut admin = MetadataServerAdminClient::new(channel(address));
        if let Ok(status) = admin.status(mpb::StatusRequest {}).await {
            let status = status.into_inner();
            if status.is_leader {
                return Some(address.clone());
            }
        }
    }
    None
}

async fn restate_cas(
    client: MetadataServerClient<Channel>,
    prefix: String,
    worker: usize,
    version: u64,
) -> Result<(), String> {
    let precondition = if version == 0 {
        mpb::Precondition { kind: mpb::precondition::Kind::DoesNotExist as i32, version: 0 }
    } else {
        mpb::Precondition { kind: mpb::precondition::Kind::MatchesVersion as i32, version: version as u32 }
    };
    let request = mpb::WriteRequest {
        ops: vec![mpb::WriteOp {
            key: format!("{prefix}-{worker}"),
            precondition: Some(precondition),
            delete: false,
            value: vec![b'x'; 64],
        }],
    };
    match client.clone().write(request).await.map_err(|s| s.message().to_owned())?.into_inner().outcome {
        Some(mpb::write_response::Outcome::Written(_)) => Ok(()),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

async fn etcd_cas(
    client: etcdpb::kv_client::KvClient<Channel>,
    prefix: String,
    worker: usize,
    version: u64,
) -> Result<(), String> {
    let key = format!("{prefix}-{worker}").into_bytes();
    let request = etcdpb::TxnRequest {
        compare: vec![etcdpb::Compare {
            result: etcdpb::compare::CompareResult::Equal as i32,
            target: etcdpb::compare::CompareTarget::Version as i32,
            key: key.clone(),
            target_union: Some(etcdpb::compare::TargetUnion::Version(version as i64)),
        }],
        success: vec![etcdpb::RequestOp {
            request: Some(etcdpb::request_op::Request::RequestPut(etcdpb::PutRequest { key, value: vec![b'x'; 64] })),
        }],
        failure: vec![],
    };
    let response = client.clone().txn(request).await.map_err(|s| s.message().to_owned())?.into_inner();
    if response.succeeded {
        Ok(())
    } else {
        Err("etcd compare failed".into())
    }
}

struct Etcd {
    children: Vec<Child>,
    clients: Vec<String>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_etcd(dir: &std::path::Path) -> Etcd {
    let members: Vec<(String, u16, u16)> = (1..=3).map(|i| (format!("e{i}"), free_port(), free_port())).collect();
    let cluster = members.iter().map(|(n, _, p)| format!("{n}=http://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let mut children = Vec::new();
    for (name, client, peer) in &members {
        let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
        children.push(
            Command::new("etcd")
                .args(["--name", name, "--data-dir", &dir.join(name).display().to_string()])
                .args(["--listen-client-urls", &format!("http://127.0.0.1:{client}")])
                .args(["--advertise-client-urls", &format!("http://127.0.0.1:{client}")])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args(["--initial-advertise-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args([
                    "--initial-cluster",
                    &cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    "bench",
                ])
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("etcd (apt-get install etcd-server)"),
        );
    }
    Etcd { children, clients: members.iter().map(|(_, c, _)| format!("http://127.0.0.1:{c}")).collect() }
}

async fn etcd_leader(endpoints: &[String]) -> Option<String> {
    for address in endpoints {
        let mut m = etcdpb::maintenance_client::MaintenanceClient::new(channel(address));
        if let Ok(status) = m.status(etcdpb::StatusRequest {}).await {
            let status = status.into_inner();
            if status.header.as_ref().is_some_and(|h| h.member_id == status.leader) {
                return Some(address.clone());
            }
        }
    }
    None
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn three_restate_nodes(dir: &TestDir) -> Vec<ServerProcess> {
    let mut nodes = replicated_cluster(dir, "bench", &["b1", "b2", "b3"], &[("RESTATE_LOG_FILTER", "warn")]);
    for node in nodes.iter_mut() {
        node.set_env("RUST_LOG", "warn");
    }
    nodes
}

async fn voters_settled(addresses: &[String], voters: usize) -> bool {
    let mut applied = Vec::new();
    for address in addresses {
        let mut admin = MetadataServerAdminClient::new(channel(address));
        match admin.status(mpb::StatusRequest {}).await {
            Ok(s) => {
                let s = s.into_inner();
                if s.members.iter().filter(|m| m.voter).count() != voters || s.state != "member" {
                    return false;
                }
                applied.push(s.applied);
            }
            Err(_) => return false,
        }
    }
    applied.windows(2).all(|w| w[0] == w[1])
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _context = runtime.enter();
    let dir = TestDir::new("bench");
    let mut nodes = three_restate_nodes(&dir);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    let addresses: Vec<String> = nodes.iter().map(|n| n.address()).collect();
    wait_until("3 restate metadata voters", Duration::from_secs(60), || {
        runtime.block_on(voters_settled(&addresses, 3))
    });
    let etcd = start_etcd(dir.path());
    wait_until("an etcd leader", Duration::from_secs(60), || runtime.block_on(etcd_leader(&etcd.clients)).is_some());

    println!("## Metadata compare-and-put, 3 nodes on loopback ({}s per row)\n", RUN_FOR.as_secs());
    println!("| clients | restate ops/s | restate p50 ms | restate p99 ms | etcd ops/s | etcd p50 ms | etcd p99 ms | throughput ratio | p99 ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (round, &clients) in CONCURRENCY.iter().enumerate() {
        let leader = runtime.block_on(restate_leader(&addresses)).expect("restate leader");
        let client = MetadataServerClient::new(channel(&leader));
        let prefix = format!("r{round}");
        let ours = runtime.block_on(measure(clients, move |w, v| restate_cas(client.clone(), prefix.clone(), w, v)));
        let etcd_leader_address = runtime.block_on(etcd_leader(&etcd.clients)).expect("etcd leader");
        let client = etcdpb::kv_client::KvClient::new(channel(&etcd_leader_address));
        let prefix = format!("e{round}");
        let theirs = runtime.block_on(measure(clients, move |w, v| etcd_cas(client.clone(), prefix.clone(), w, v)));
        println!(
            "| {clients} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} |",
            ours.throughput(),
            ms(ours.percentile(0.5)),
            ms(ours.percentile(0.99)),
            theirs.throughput(),
            ms(theirs.percentile(0.5)),
            ms(theirs.percentile(0.99)),
            ours.throughput() / theirs.throughput(),
            ours.percentile(0.99).as_secs_f64() / theirs.percentile(0.99).as_secs_f64(),
        );
        record_summary(
            &format!("metadata compare-and-put, {clients} clients"),
            &format!("{:.0} ops/s, p99 {} ms", ours.throughput(), ms(ours.percentile(0.99))),
            &format!("etcd {:.0} ops/s, p99 {} ms", theirs.throughput(), ms(theirs.percentile(0.99))),
            ours.throughput() / theirs.throughput(),
            "throughput / etcd's",
        );
    }

    let mut memory: Vec<(String, u64)> =
        nodes.iter().map(|n| (format!("restate-server {}", n.name), peak_rss_kib(n.pid().unwrap()))).collect();
    memory.extend(etcd.children.iter().enumerate().map(|(i, c)| (format!("etcd e{}", i + 1), peak_rss_kib(c.id()))));
    drop(etcd);

    let kills: usize = std::env::var("BENCH_LEADER_KILLS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut gaps = Vec::new();
    for _ in 0..kills {
        let leader = runtime.block_on(restate_leader(&addresses)).expect("leader before kill");
        let victim = addresses.iter().position(|a| *a == leader).unwrap();
        nodes[victim].kill();
        let killed = Instant::now();
        let survivors: Vec<String> = addresses.iter().filter(|a| **a != leader).cloned().collect();
        let gap = runtime.block_on(async {
            loop {
                for address in &survivors {
                    let request = mpb::WriteRequest {
                        ops: vec![mpb::WriteOp {
                            key: "failover".into(),
                            precondition: None,
                            delete: false,
                            value: b"x".to_vec(),
                        }],
                    };
                    let mut client = MetadataServerClient::new(channel(address));
                    if let Ok(r) = tokio::time::timeout(Duration::from_millis(500), client.write(request)).await {
                        if r.is_ok() {
                            return killed.elapsed();
                        }
                    }
                }
                assert!(killed.elapsed() < Duration::from_secs(20), "no leader within 20 s of the kill");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        gaps.push(gap);
        nodes[victim].start_and_wait_healthy();
        wait_until("the killed node to rejoin", Duration::from_secs(60), || {
            runtime.block_on(voters_settled(&addresses, 3))
        });
    }
    gaps.sort();
    let pct = |p: f64| gaps[((gaps.len() as f64 * p).ceil() as usize).saturating_sub(1).min(gaps.len() - 1)];
    println!("\n## Fail-over gap over {kills} leader kills (kill -9 to the first successful write)\n");
    println!("| p50 ms | p99 ms | max ms | target p99 |");
    println!("|---|---|---|---|");
    println!("| {} | {} | {} | < 2000 |", ms(pct(0.5)), ms(pct(0.99)), ms(*gaps.last().unwrap()));
    record_summary(
        &format!("metadata leader fail-over gap, {kills} kills"),
        &format!("p50 {} ms, p99 {} ms", ms(pct(0.5)), ms(pct(0.99))),
        "target p99 2000 ms",
        pct(0.99).as_secs_f64() / 2.0,
        "p99 / target",
    );

    // Spurious elections: saturate both cores for a while and count term changes.
    let terms = |rt: &tokio::runtime::Runtime| -> Vec<u64> {
        rt.block_on(async {
            let mut terms = Vec::new();
            for address in &addresses {
                let mut admin = MetadataServerAdminClient::new(channel(address));
                terms.push(admin.status(mpb::StatusRequest {}).await.map(|s| s.into_inner().term).unwrap_or(0));
            }
            terms
        })
    };
    let before = terms(&runtime);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let burners: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                x
            })
        })
        .collect();
    std::thread::sleep(SATURATION);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for burner in burners {
        let _ = burner.join();
    }
    let after = terms(&runtime);
    println!("\n## Elections while 4 busy threads saturate both cores for {} s\n", SATURATION.as_secs());
    println!("| term before | term after | elections |");
    println!("|---|---|---|");
    println!(
        "| {} | {} | {} |",
        before.iter().max().unwrap(),
        after.iter().max().unwrap(),
        after.iter().max().unwrap() - before.iter().max().unwrap()
    );

    println!("\n## Peak resident memory during the compare-and-put runs\n");
    println!("| process | peak RSS MiB |");
    println!("|---|---|");
    for (name, kib) in &memory {
        println!("| {name} | {:.1} |", *kib as f64 / 1024.0);
    }
    let peak_of = |prefix: &str| {
        memory.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(_, kib)| *kib as f64 / 1024.0).fold(0.0, f64::max)
    };
    record_summary(
        "peak RSS per process, metadata cluster under compare-and-put",
        &format!("restate-server {:.0} MiB", peak_of("restate-server")),
        &format!("etcd {:.0} MiB", peak_of("etcd")),
        peak_of("restate-server") / peak_of("etcd"),
        "peak RSS / etcd's",
    );
}
