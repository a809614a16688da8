//! What every `make bench` binary shares: latency percentiles and their printing, a
//! lazily connecting gRPC channel, a process's resident memory, and the rows of the one
//! summary table `make bench` ends with (`bench-summary`).

use std::time::{Duration, Instant};

pub mod histogram;

use restate_e2e::ServerProcess;
use restate_partition::{Command, Envelope};
use restate_proto::log_server::{log_server_client::LogServerClient, AppendRequest};

use tonic::transport::{Channel, Endpoint};

/// The `p` quantile (0..=1) of ascending `sorted` latencies (nearest rank); zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

/// Milliseconds with two decimals, for the tables.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A channel to `address` that connects on first use; every call times out after 5 s.
pub fn lazy_channel(address: &str) -> Channel {
    Endpoint::from_shared(address.to_owned()).unwrap().timeout(Duration::from_secs(5)).connect_lazy()
}

/// `VmRSS:` (now) or `VmHWM:` (peak) of process `pid`, in MiB; 0 when unreadable.
pub fn memory_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .map_or(0.0, |kib: f64| kib / 1024.0)
}

/// The variable naming the file that collects summary rows (JSON lines); unset: rows are
/// not recorded.
pub const SUMMARY_ENV: &str = "RESTATE_BENCH_SUMMARY";

/// One row of the summary table: what was measured, this project's figure, the peer's or
/// the limit's figure measured in the same run, and `ratio` (ours / peer or limit, as
/// `meaning` says).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SummaryRow {
    pub area: String,
    pub ours: String,
    pub peer: String,
    pub ratio: f64,
    pub meaning: String,
}

/// User + system CPU seconds process `pid` has used so far (`/proc/<pid>/stat`, fields 14
/// and 15, in clock ticks of 1/100 s as Linux reports them).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it follow its ')'.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Appends `row` to the file named by [`SUMMARY_ENV`], if set. A file that cannot be
/// written is reported on stderr and otherwise ignored (the bench's own table stands).
pub fn record_summary(area: &str, ours: &str, peer: &str, ratio: f64, meaning: &str) {
    let Ok(path) = std::env::var(SUMMARY_ENV) else { return };
    let row = SummaryRow {
        area: area.to_owned(),
        ours: ours.to_owned(),
        peer: peer.to_owned(),
        ratio,
        meaning: meaning.to_owned(),
    };
    let line = serde_json::to_string(&row).expect("row serializes") + "\n";
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    if let Err(e) = written {
        eprintln!("cannot record a summary row in {path} ({SUMMARY_ENV}): {e}");
    }
}

/// The summary rows in `text` (JSON lines); a line that is not a row is an error naming it.
pub fn parse_summary(text: &str) -> Result<Vec<SummaryRow>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}: {l}", i + 1)))
        .collect()
}

/// The summary as one Markdown table.
pub fn summary_table(rows: &[SummaryRow]) -> String {
    let mut out = String::from("| measured | this project | peer or limit (same run) | ratio | ratio means |\n");
    out.push_str("|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!("| {} | {} | {} | {:.2} | {} |\n", r.area, r.ours, r.peer, r.ratio, r.meaning));
    }
    out
}

/// Set (to anything) when the cluster under test runs the previous release, whose nodes
/// read partition log records in the JSON format only (the before/after rows).
pub const JSON_RECORDS_ENV: &str = "RESTATE_BENCH_JSON_RECORDS";

/// A record every partition processor decodes and ignores (a leader command at epoch 0,
/// below any announced leader), so appending it measures the log without disturbing
/// the partition; JSON-encoded when [`JSON_RECORDS_ENV`] is set.
pub fn harmless_record() -> Vec<u8> {
    let envelope =
        Envelope::from_leader(0, Command::PurgeIdempotency { older_than_ms: 0, workflows: Default::default() });
    if std::env::var_os(JSON_RECORDS_ENV).is_some() {
        envelope.encode_json().to_vec()
    } else {
        envelope.encode().to_vec()
    }
}

/// p50 of one replicated append to partition 0's log, appended one at a time to the
/// loglet's leader for `run_for`.
pub fn append_p50(runtime: &tokio::runtime::Runtime, nodes: &[ServerProcess], run_for: Duration) -> Duration {
    let logs = nodes[0].ctl(&["logs", "list", "--json"]).json();
    let loglet = logs["logs"][0]["loglet_id"].as_u64().expect("partition 0's log has a replicated loglet");
    let addresses: Vec<String> = nodes.iter().map(ServerProcess::address).collect();
    runtime.block_on(async {
        let mut leader = None;
        for address in &addresses {
            let mut client = LogServerClient::new(lazy_channel(address));
            let probe = AppendRequest { loglet_id: loglet, records: vec![harmless_record().into()] };
            if client.append(probe).await.is_ok() {
                leader = Some(client);
                break;
            }
        }
        let mut client = leader.expect("a log-server leads partition 0's loglet");
        let mut latencies = Vec::new();
        let deadline = Instant::now() + run_for;
        while Instant::now() < deadline {
            let began = Instant::now();
            client
                .append(AppendRequest { loglet_id: loglet, records: vec![harmless_record().into()] })
                .await
                .expect("append");
            latencies.push(began.elapsed());
        }
        latencies.sort();
        percentile(&latencies, 0.5)
    })
}

/// A closed-loop load: `clients` threads, each calling `attempt(client, turn)` (turn 1, 2,
/// ...) until `run_for` has passed. Returns the sorted latencies of the attempts that
/// answered `Some` and how many answered `None` (failed).
pub fn closed_loop<F>(clients: usize, run_for: Duration, attempt: F) -> (Vec<Duration>, usize)
where
    F: Fn(usize, usize) -> Option<Duration> + Send + Sync + 'static,
{
    let attempt = std::sync::Arc::new(attempt);
    let deadline = Instant::now() + run_for;
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let attempt = attempt.clone();
            std::thread::spawn(move || {
                let (mut latencies, mut failures) = (Vec::new(), 0);
                let mut turn = 0;
                while Instant::now() < deadline {
                    turn += 1;
                    match attempt(client, turn) {
                        Some(latency) => latencies.push(latency),
                        None => failures += 1,
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let (mut all, mut failures) = (Vec::new(), 0);
    for thread in threads {
        let (latencies, failed) = thread.join().expect("a load thread panicked");
        all.extend(latencies);
        failures += failed;
    }
    all.sort();
    (all, failures)
}

/// Three worker nodes (`w1`..`w3`, replicated logs, replication 2, 4 partitions, quiet
/// logs) started in `dir`, and the example services registered: the cluster of the
/// invocation benchmarks. Returns the nodes and the running services.
pub fn worker_cluster(
    dir: &restate_e2e::TestDir,
    cluster: &str,
) -> (Vec<ServerProcess>, restate_e2e::services::ExampleServices) {
    use restate_e2e::services::{admin_url, restate, ExampleServices, REPLICATED_WORKERS};
    let mut nodes = restate_e2e::replicated_cluster(dir, cluster, &["w1", "w2", "w3"], &REPLICATED_WORKERS);
    for node in nodes.iter_mut() {
        node.set_env("RUST_LOG", "warn");
        node.start_and_wait_healthy();
    }
    restate_e2e::wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(dir);
    restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();
    (nodes, services)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(ms(Duration::from_micros(1500)), "1.50");
    }

    #[test]
    fn summary_rows_round_trip_into_one_table() {
        let row = SummaryRow {
            area: "a".into(),
            ours: "1 ops/s".into(),
            peer: "etcd 2 ops/s".into(),
            ratio: 0.5,
            meaning: "throughput".into(),
        };
        let text = format!("{}\n\n{}\n", serde_json::to_string(&row).unwrap(), serde_json::to_string(&row).unwrap());
        let rows = parse_summary(&text).unwrap();
        assert_eq!(rows, vec![row.clone(), row]);
        let table = summary_table(&rows);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| a | 1 ops/s | etcd 2 ops/s | 0.50 | throughput |"), "{table}");
        let err = parse_summary("{\"area\": 1}").unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }
}
