//! `make bench` (logs): append throughput and latency of 512-byte records on a replicated
//! loglet (3 nodes, replication 2) at 1, 16 and 64 concurrent appenders, beside the
//! machine's measured limit in the same run (write + fdatasync loops, appending to a file
//! and rewriting one; the faster counts). Each
//! count runs twice: every appender with its own gRPC request per record (the log-server's
//! own capacity), and every appender through one `ReplicatedLoglet`, the client a node's
//! partition processors and ingress append through (concurrent appends share a request).

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use restate_bench::histogram::{buckets, quantile_between};
use restate_bench::{cpu_seconds, lazy_channel, ms, percentile, record_summary};
use restate_bifrost::replicated::ReplicatedLoglet;
use restate_bifrost::Loglet;
use restate_e2e::{metric_value, replicated_cluster, wait_until, TestDir, LOG_ONLY_ROLES};
use restate_proto::log_server::{log_server_client::LogServerClient, AppendRequest};
use restate_types::LogletId;

/// How long each row runs: `LOGS_BENCH_SECONDS`, default 4 (longer runs leave time to
/// profile a node).
fn run_for() -> Duration {
    Duration::from_secs(std::env::var("LOGS_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4))
}
const RECORD: usize = 512;

/// The rows to run: `LOGS_BENCH_ROWS`, e.g. `1r,64c` (appenders, then `r` for a request
/// per record or `c` for one loglet client); default every count both ways.
fn rows() -> Vec<(usize, bool)> {
    let all = "1r,16r,64r,1c,16c,64c".to_owned();
    let spec = std::env::var("LOGS_BENCH_ROWS").unwrap_or(all);
    spec.split(',')
        .map(|row| {
            let row = row.trim();
            let (count, how) = row.split_at(row.len().saturating_sub(1));
            match (count.parse::<usize>(), how) {
                (Ok(n), "r") if n > 0 => (n, false),
                (Ok(n), "c") if n > 0 => (n, true),
                _ => panic!("LOGS_BENCH_ROWS: bad row {row:?}; write appenders then r (a request per record) or c (one loglet client), e.g. 1r,64c"),
            }
        })
        .collect()
}

/// The physical limit: 4 KiB writes, each followed by fdatasync, for 2 seconds each way:
/// appending (the file grows, so every sync also commits its new size, as a fresh WAL
/// file's do) and rewriting a file already written (data only, as a recycled WAL's). The
/// ratios use the faster of the two, the disk's own limit.
fn fsync_limit(dir: &std::path::Path) -> (f64, Vec<Duration>, String) {
    let probe = |rewrite: bool| {
        let path = dir.join(if rewrite { "fsync-probe-rewrite" } else { "fsync-probe-append" });
        let file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).open(path).unwrap();
        let block = vec![7u8; 4096];
        if rewrite {
            file.write_all_at(&vec![0u8; 64 << 20], 0).unwrap();
            file.sync_all().unwrap();
        }
        let mut latencies = Vec::new();
        let start = Instant::now();
        let mut offset = 0u64;
        while start.elapsed() < Duration::from_secs(2) && offset < 64 << 20 {
            let began = Instant::now();
            file.write_all_at(&block, offset).unwrap();
            file.sync_data().unwrap();
            latencies.push(began.elapsed());
            offset += 4096;
        }
        latencies.sort();
        (latencies.len() as f64 / start.elapsed().as_secs_f64(), latencies)
    };
    let (append_rate, append) = probe(false);
    let (rewrite_rate, rewrite) = probe(true);
    let both = format!(
        "appending {append_rate:.0}/s, p50 {} ms, p99 {} ms; rewriting {rewrite_rate:.0}/s, p50 {} ms, p99 {} ms",
        ms(percentile(&append, 0.5)),
        ms(percentile(&append, 0.99)),
        ms(percentile(&rewrite, 0.5)),
        ms(percentile(&rewrite, 0.99))
    );
    if percentile(&rewrite, 0.99) <= percentile(&append, 0.99) {
        (rewrite_rate, rewrite, both)
    } else {
        (append_rate, append, both)
    }
}

/// How each appender of a row sends its records.
enum Via {
    /// Through one `ReplicatedLoglet` shared by all (its group commit batches them).
    Client(std::sync::Arc<ReplicatedLoglet>),
    /// A gRPC `Append` request per record, straight to the loglet's leader.
    Requests { leader: String, loglet: u64 },
}

/// One appender's way to the loglet: the shared client, or its own connection to the
/// leader.
enum Sender {
    Shared(std::sync::Arc<ReplicatedLoglet>),
    Direct { client: LogServerClient<tonic::transport::Channel>, loglet: u64 },
}

impl Sender {
    fn for_appender(via: &Via) -> Sender {
        match via {
            Via::Client(shared) => Sender::Shared(shared.clone()),
            Via::Requests { leader, loglet } => {
                Sender::Direct { client: LogServerClient::new(lazy_channel(leader)), loglet: *loglet }
            }
        }
    }
}

/// `count` appenders, each appending one `RECORD`-byte record at a time until `deadline`;
/// the latency of every append, unsorted.
fn run_appenders(runtime: &tokio::runtime::Runtime, count: usize, deadline: Instant, via: &Via) -> Vec<Duration> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let mut sender = Sender::for_appender(via);
            runtime.spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let began = Instant::now();
                    match &mut sender {
                        Sender::Shared(shared) => {
                            shared.append(vec![bytes::Bytes::from(vec![b'x'; RECORD])]).await.expect("append");
                        }
                        Sender::Direct { client, loglet } => {
                            let request =
                                AppendRequest { loglet_id: *loglet, records: vec![vec![b'x'; RECORD].into()] };
                            client.append(request).await.expect("append");
                        }
                    }
                    latencies.push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    tasks.into_iter().flat_map(|task| runtime.block_on(task).unwrap()).collect()
}

/// Before the rows: 64 appenders through `shared` for `LOGS_BENCH_WARMUP_SECONDS` (default
/// 12), enough for every node's RocksDB to flush its memtables and switch its write-ahead
/// log at least once. The rows then measure a node in its steady state: a fresh node's
/// first WAL file grows with every synced write (each sync also commits the file's new
/// size), later ones are recycled files rewritten in place (data only).
fn warm_up(runtime: &tokio::runtime::Runtime, shared: &std::sync::Arc<ReplicatedLoglet>) {
    let seconds = std::env::var("LOGS_BENCH_WARMUP_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let records = run_appenders(runtime, 64, deadline, &Via::Client(shared.clone())).len() as u64;
    println!(
        "Warm-up, not in the rows: {records} records ({:.0} MiB) from 64 appenders in {seconds} s, so that every node's write-ahead log has been switched and is recycled from then on.\n",
        (records * RECORD as u64) as f64 / (1024.0 * 1024.0)
    );
}

async fn leader_of(addresses: &[String], loglet: u64) -> Option<String> {
    for address in addresses {
        let mut client = LogServerClient::new(lazy_channel(address));
        let request = AppendRequest { loglet_id: loglet, records: vec![b"probe".to_vec().into()] };
        if client.append(request).await.is_ok() {
            return Some(address.clone());
        }
    }
    None
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _context = runtime.enter();
    let dir = TestDir::new("logs-bench");
    let (syncs_per_second, fsync, probes) = fsync_limit(dir.path());

    let mut nodes = replicated_cluster(
        &dir,
        "logs-bench",
        &["l1", "l2", "l3"],
        &[
            ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
            LOG_ONLY_ROLES,
            ("RESTATE_DEFAULT_REPLICATION", "2"),
            ("RESTATE_DEFAULT_NUM_PARTITIONS", "1"),
        ],
    );
    for node in nodes.iter_mut() {
        node.set_env("RUST_LOG", "warn");
    }
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    let addresses: Vec<String> = nodes.iter().map(|n| n.address()).collect();
    let mut loglet = 0;
    wait_until("the log to be placed on 3 log-servers", Duration::from_secs(60), || {
        let out = nodes[0].ctl(&["logs", "list", "--json"]);
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&out.stdout) else { return false };
        let log = &v["logs"][0];
        loglet = log["loglet_id"].as_u64().unwrap_or(0);
        log["nodeset"].as_array().is_some_and(|n| n.len() == 3)
    });
    let mut leader = None;
    wait_until("the loglet to elect a leader", Duration::from_secs(30), || {
        leader = runtime.block_on(leader_of(&addresses, loglet));
        leader.is_some()
    });
    let leader = leader.unwrap();

    println!(
        "## Replicated loglet appends, 3 nodes, replication 2, {RECORD}-byte records ({}s per row)\n",
        run_for().as_secs()
    );
    println!(
        "Machine limit measured in this run (4 KiB write + fdatasync loops): {probes}; the ratios use {:.0}/s, p99 {} ms.\n",
        syncs_per_second,
        ms(percentile(&fsync, 0.99))
    );
    let nodes_cpu = || nodes.iter().filter_map(|n| n.pid()).map(cpu_seconds).sum::<f64>();
    let idle_before = nodes_cpu();
    std::thread::sleep(Duration::from_secs(2));
    println!("Idle, before the rows: the nodes used {:.0}% of one core.\n", (nodes_cpu() - idle_before) / 2.0 * 100.0);
    let shared = std::sync::Arc::new(ReplicatedLoglet::new(LogletId(loglet), addresses.clone()));
    warm_up(&runtime, &shared);
    println!(
        "| appenders | records/s | MB/s | p50 ms | p99 ms | p99 / fsync p99 | records/s / syncs/s | records per leader fsync | leader: proposal p50 / p99 ms | leader: fsync p50 / p99 ms | nodes' CPU, % of one core | bench's CPU, % of one core |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let leader_node = nodes.iter().find(|n| n.address() == leader).expect("the leader is a node");
    let leader_fsyncs = || metric_value(leader_node, "restate_raft_fsyncs_total").unwrap_or(0.0);
    let own_cpu = || cpu_seconds(std::process::id());
    let leader_metrics = || leader_node.fabric_get("/metrics").map(|(_, text)| text).unwrap_or_default();
    // Where the time goes on the leader over one row: its engine's proposals (reach the
    // engine -> committed, applied, answered) and its synced writes.
    let breakdown = |before: &str, after: &str, name: &str, q: f64| {
        quantile_between(&buckets(before, name), &buckets(after, name), q)
            .map_or_else(|| "-".to_owned(), |s| ms(Duration::from_secs_f64(s)))
    };
    for (appenders, through_client) in rows() {
        let fsyncs_before = leader_fsyncs();
        let metrics_before = leader_metrics();
        let (nodes_cpu_before, own_cpu_before) = (nodes_cpu(), own_cpu());
        let deadline = Instant::now() + run_for();
        let start = Instant::now();
        let via =
            if through_client { Via::Client(shared.clone()) } else { Via::Requests { leader: leader.clone(), loglet } };
        let mut latencies = run_appenders(&runtime, appenders, deadline, &via);
        let elapsed = start.elapsed().as_secs_f64();
        latencies.sort();
        let rate = latencies.len() as f64 / elapsed;
        let per_fsync = latencies.len() as f64 / (leader_fsyncs() - fsyncs_before).max(1.0);
        let metrics_after = leader_metrics();
        let nodes_busy = (nodes_cpu() - nodes_cpu_before) / elapsed * 100.0;
        let own_busy = (own_cpu() - own_cpu_before) / elapsed * 100.0;
        let on_leader = |name: &str, q: f64| breakdown(&metrics_before, &metrics_after, name, q);
        let how = if through_client { "one loglet client" } else { "a request per record" };
        println!(
            "| {appenders}, {how} | {:.0} | {:.2} | {} | {} | {:.2} | {:.2} | {per_fsync:.1} | {} / {} | {} / {} | {nodes_busy:.0} | {own_busy:.0} |",
            rate,
            rate * RECORD as f64 / 1e6,
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            percentile(&latencies, 0.99).as_secs_f64() / percentile(&fsync, 0.99).as_secs_f64(),
            rate / syncs_per_second,
            on_leader("restate_raft_proposal_seconds", 0.5),
            on_leader("restate_raft_proposal_seconds", 0.99),
            on_leader("restate_raft_fsync_seconds", 0.5),
            on_leader("restate_raft_fsync_seconds", 0.99),
        );
        record_summary(
            &format!("replicated log append, {appenders} appenders, {how}, {RECORD} B"),
            &format!(
                "{rate:.0} records/s, p99 {} ms, {per_fsync:.1} records per fsync",
                ms(percentile(&latencies, 0.99))
            ),
            &format!("fdatasync {syncs_per_second:.0}/s, p99 {} ms", ms(percentile(&fsync, 0.99))),
            percentile(&latencies, 0.99).as_secs_f64() / percentile(&fsync, 0.99).as_secs_f64(),
            "append p99 / fsync p99",
        );
    }
    std::io::stdout().flush().unwrap();
}
