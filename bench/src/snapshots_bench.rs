//! `make bench` (snapshots), two tables:
//!
//! 1. Export + upload of one partition of about `SNAPSHOT_BENCH_MB` MB (default 500) to a
//!    local S3 server (moto): the partition's state is built by applying invocation
//!    records (1 KiB inputs) to the real state machine over RocksDB, exported as an SST
//!    and published through the snapshot repository (upload, read-back check, conditional
//!    `latest.json`). Beside it, the limit measured in the same run: one plain PUT of the
//!    same file to the same server.
//! 2. Time for a new node to become a caught-up follower: from the snapshot (restore, then
//!    the log's rest) versus replaying the whole log, on a node whose logs grew by
//!    `SNAPSHOT_BENCH_LOG_MB` MiB (default 1024), once for each input size in
//!    `SNAPSHOT_BENCH_PAYLOADS_KIB` (default `60,4`: few large invocations, whose replay is
//!    mostly bytes, and many of the 4 KiB ones the issue's memory test sends, whose replay
//!    is mostly per-invocation work); beside it, the nodes' resident memory against their
//!    `rocksdb-total-memory-size`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use restate_bench::{memory_mib, record_summary};
use restate_config::{SnapshotDestination, SnapshotOptions};
use restate_e2e::s3::{snapshot_env, MotoServer};
use restate_e2e::services::{admin_url, restate, ExampleServices};
use restate_e2e::{http_call, partition_processors, wait_for_alive_nodes, wait_until, ServerProcess, TestDir};
use restate_partition::state_snapshot;
use restate_partition::{
    Command, Envelope, InvocationId, InvocationRequest, PartitionStateMachine, ResponseSink, RocksDbPartitionStore,
    Target,
};
use restate_snapshots::{new_snapshot_id, LocalSnapshot, PublishOutcome, SnapshotRepository};
use restate_storage::{NodeStorage, StorageOptions};
use restate_types::{Lsn, PartitionId, ServiceType};

const BUCKET: &str = "bench-snapshots";
/// The nodes' `rocksdb-total-memory-size` in the catch-up run.
const MEMORY_BUDGET: &str = "128 MiB";
const MEMORY_BUDGET_MIB: f64 = 128.0;
const INPUT: usize = 1024;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Applies invocations with `INPUT`-byte inputs until the partition holds about
/// `target_bytes`; returns the number applied.
fn build_partition(storage: &NodeStorage, target_bytes: u64) -> u64 {
    let store = RocksDbPartitionStore::new(storage.clone(), PartitionId(0));
    let mut machine = PartitionStateMachine::open(store).expect("open partition");
    let count = target_bytes / INPUT as u64;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 1..=count {
        // Incompressible input (xorshift), so the file is as large as the state.
        let input: Vec<u8> = (0..INPUT)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let mut uuid = [0u8; 16];
        uuid[..8].copy_from_slice(&i.to_be_bytes());
        let request = InvocationRequest {
            id: InvocationId::new(0, uuid),
            target: Target {
                service: "Greeter".into(),
                handler: "greet".into(),
                key: None,
                kind: ServiceType::Service,
                handler_shared: false,
            },
            input: Bytes::from(input),
            headers: Vec::new(),
            idempotency_key: None,
            response: ResponseSink::None,
            submitted_at_ms: i,
            invoke_at_ms: 0,
        };
        machine.apply(Lsn(i), &Envelope::external(Command::Invoke(request))).expect("apply");
    }
    count
}

/// One plain PUT of `file` to `bucket/key` on moto (unchecked signature): the server's
/// own ingestion limit for these bytes. Seconds taken.
fn raw_put_seconds(moto: &MotoServer, key: &str, file: &std::path::Path) -> f64 {
    let body = std::fs::read(file).unwrap();
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    let head = format!(
        "PUT /{BUCKET}/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\nauthorization: AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "raw PUT: {}", response.lines().next().unwrap_or(""));
    started.elapsed().as_secs_f64()
}

fn export_and_upload(dir: &TestDir, moto: &MotoServer, runtime: &tokio::runtime::Runtime) {
    let target = env_number("SNAPSHOT_BENCH_MB", 500) * 1_000_000;
    let storage = NodeStorage::open(&dir.path().join("partition-db"), &StorageOptions::default()).unwrap();
    let built = Instant::now();
    let invocations = build_partition(&storage, target);
    let build_secs = built.elapsed().as_secs_f64();

    let file = dir.path().join("p0.sst");
    let store = RocksDbPartitionStore::new(storage.clone(), PartitionId(0));
    let exported = Instant::now();
    let lsn = state_snapshot::export(&store, &file).expect("export");
    let export_secs = exported.elapsed().as_secs_f64();
    let size = std::fs::metadata(&file).unwrap().len();

    let options = SnapshotOptions {
        destination: Some(SnapshotDestination::S3 { bucket: BUCKET.into(), prefix: "bench".into() }),
        aws_endpoint_url: Some(url::Url::parse(&moto.endpoint()).unwrap()),
        aws_allow_http: Some(true),
        aws_region: Some("us-east-1".into()),
        aws_access_key_id: Some("bench".into()),
        aws_secret_access_key: Some("bench".into()),
        ..SnapshotOptions::default()
    };
    let repository = runtime.block_on(SnapshotRepository::from_options(&options)).unwrap().expect("configured");
    let local = LocalSnapshot {
        partition: PartitionId(0),
        snapshot_id: new_snapshot_id(),
        lsn,
        file: file.clone(),
        node_name: "bench".into(),
        cluster_name: "bench".into(),
    };
    let published = Instant::now();
    let outcome = runtime.block_on(repository.publish(&local)).expect("publish");
    assert!(matches!(outcome, PublishOutcome::Published(_)), "{outcome:?}");
    let publish_secs = published.elapsed().as_secs_f64();
    let raw_secs = raw_put_seconds(moto, "bench/raw-put.sst", &file);

    println!("## Snapshot export and upload, one partition, local S3 (moto)\n");
    println!(
        "Partition built from {invocations} applied invocations ({INPUT}-byte inputs) in {build_secs:.1} s; SST of {:.0} MB at LSN {lsn}.\n",
        mb(size)
    );
    println!("| step | seconds | MB/s | limit MB/s (one plain PUT of the same file) | ratio |");
    println!("|---|---|---|---|---|");
    let raw = mb(size) / raw_secs;
    println!("| export (SST from a RocksDB snapshot) | {export_secs:.2} | {:.0} | - | - |", mb(size) / export_secs);
    println!(
        "| publish (upload + read-back check + latest.json) | {publish_secs:.2} | {:.0} | {raw:.0} | {:.2} |",
        mb(size) / publish_secs,
        mb(size) / publish_secs / raw
    );
    let total = export_secs + publish_secs;
    println!(
        "| export + publish | {total:.2} | {:.0} | {raw:.0} | {:.2} |\n",
        mb(size) / total,
        mb(size) / total / raw
    );
    record_summary(
        &format!("snapshot publish, {:.0} MB partition, local S3", mb(size)),
        &format!("{:.0} MB/s", mb(size) / publish_secs),
        &format!("one plain PUT {raw:.0} MB/s"),
        mb(size) / publish_secs / raw,
        "throughput / plain PUT's",
    );
}

/// Seconds from the start of `node` until it runs caught-up processors of every partition
/// (applied LSN at least the leader's as of the start), and of those the seconds after it
/// first reported a processor of every partition (the catch-up itself, without the
/// process start and the join that both ways share).
fn catch_up_seconds(observer: &ServerProcess, node: &mut ServerProcess) -> (f64, f64) {
    let leaders: Vec<(u64, u64)> = partition_processors(observer)
        .iter()
        .filter(|p| p["mode"] == "leader")
        .map(|p| (p["partition_id"].as_u64().unwrap(), p["applied_lsn"].as_u64().unwrap()))
        .collect();
    let started = Instant::now();
    node.start_and_wait_healthy();
    let name = node.name.clone();
    let mut running: Option<Instant> = None;
    wait_until(&format!("{name} to catch up"), Duration::from_secs(600), || {
        let now = partition_processors(observer);
        let mine = |partition: u64| now.iter().find(|p| p["name"] == name.as_str() && p["partition_id"] == partition);
        if running.is_none() && leaders.iter().all(|(partition, _)| mine(*partition).is_some()) {
            running = Some(Instant::now());
        }
        leaders.iter().all(|(partition, lsn)| mine(*partition).is_some_and(|p| p["applied_lsn"].as_u64() >= Some(*lsn)))
    });
    let total = started.elapsed().as_secs_f64();
    (total, running.map_or(total, |at| at.elapsed().as_secs_f64()))
}

/// Bytes appended to the logs through `node` so far (`restate_bifrost_append_bytes_total`).
fn appended_bytes(node: &ServerProcess) -> f64 {
    let (_, text) = restate_e2e::http_get(node.ports.fabric, "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("restate_bifrost_append_bytes_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Greeter invocations with `payload`-byte names from 16 clients (and a Counter add
/// every 16th, so the partitions hold state too) until `node`'s logs grew by `target`
/// bytes; the node's peak resident memory sampled meanwhile, in MiB, and the invocations.
fn fill_log(node: &ServerProcess, target: f64, payload: usize) -> (f64, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let start = appended_bytes(node);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let port = node.ports.ingress;
    let clients: Vec<_> = (0..16u64)
        .map(|client| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let name = format!("\"{}\"", "x".repeat(payload));
                let mut n = client;
                while !stop.load(Ordering::Relaxed) {
                    let answer = if n % 16 == 0 {
                        http_call(port, "POST", &format!("/Counter/k{}/add", n % 64), "1", &[], Duration::from_secs(30))
                    } else {
                        http_call(port, "POST", "/Greeter/greet", &name, &[], Duration::from_secs(30))
                    };
                    assert!(matches!(answer, Some((200, _))), "{answer:?}");
                    done.fetch_add(1, Ordering::Relaxed);
                    n += 16;
                }
            })
        })
        .collect();
    let pid = node.pid().expect("running");
    let mut peak = memory_mib(pid, "VmRSS:");
    while appended_bytes(node) - start < target {
        std::thread::sleep(Duration::from_millis(500));
        peak = peak.max(memory_mib(pid, "VmRSS:"));
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    (peak, done.load(Ordering::Relaxed))
}

/// Catch-up through a snapshot against replay, on a log filled by invocations with
/// `payload_kib` KiB inputs (one fresh cluster per call).
fn catch_up(moto: &MotoServer, payload_kib: u64) {
    let dir = TestDir::new(&format!("snapshots-bench-{payload_kib}k"));
    let dir = &dir;
    let log_bytes = env_number("SNAPSHOT_BENCH_LOG_MB", 1024) as f64 * 1024.0 * 1024.0;
    let s3 = snapshot_env(moto, BUCKET, &format!("catch-up-{payload_kib}k"));
    let with_snapshots: Vec<(&str, &str)> = s3.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut base = vec![
        ("RESTATE_METADATA_SERVER__TYPE", "replicated"),
        ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
        ("RESTATE_DEFAULT_REPLICATION", "1"),
        ("RESTATE_DEFAULT_NUM_PARTITIONS", "4"),
        ("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", MEMORY_BUDGET),
        ("RUST_LOG", "warn"),
    ];
    base.extend(with_snapshots.iter().copied());
    let mut n1 = ServerProcess::new(dir, "n1", "catch-up", &base);
    n1.start_and_wait_healthy();
    wait_for_alive_nodes(&n1, 1);
    let services = ExampleServices::start(dir);
    restate(&admin_url(&n1), &["dp", "register", &services.uri, "--yes"]).ok();
    let filled = Instant::now();
    let (peak_during_load, invocations) = fill_log(&n1, log_bytes, payload_kib as usize * 1024);
    let fill_secs = filled.elapsed().as_secs_f64();
    let logged = appended_bytes(&n1);
    let rss_after = memory_mib(n1.pid().unwrap(), "VmRSS:");
    let list = format!("[\"{}\"]", n1.address());
    let joiner = |name: &str, snapshots: bool| {
        let mut env = vec![
            ("RESTATE_METADATA_SERVER__TYPE", "replicated"),
            ("RESTATE_METADATA_CLIENT__ADDRESSES", list.as_str()),
            ("RESTATE_AUTO_PROVISION", "false"),
            ("RESTATE_ROLES", r#"["worker"]"#),
            ("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", MEMORY_BUDGET),
        ];
        if snapshots {
            env.extend(with_snapshots.iter().copied());
        }
        ServerProcess::new(dir, name, "catch-up", &env)
    };
    // Full replay first: once a snapshot exists, the leader trims the log behind it.
    let mut from_log = joiner("n2", false);
    let (replay_secs, replay_catch_up) = catch_up_seconds(&n1, &mut from_log);
    let replay_peak = memory_mib(from_log.pid().unwrap(), "VmHWM:");
    let snapshot = n1.ctl(&["snapshots", "create", "--json"]);
    assert_eq!(snapshot.code, 0, "{snapshot:?}");
    let mut from_snapshot = joiner("n3", true);
    let (snapshot_secs, snapshot_catch_up) = catch_up_seconds(&n1, &mut from_snapshot);
    let n1_peak = memory_mib(n1.pid().unwrap(), "VmHWM:");

    let log_mib = logged / (1024.0 * 1024.0);
    println!(
        "## A new node becoming a caught-up follower ({log_mib:.0} MiB of log from {invocations} invocations with {payload_kib} KiB inputs in {fill_secs:.0} s, 4 partitions)\n"
    );
    println!("| how | start to caught up, s | ratio | processors running to caught up, s | ratio |");
    println!("|---|---|---|---|---|");
    println!(
        "| restore the latest snapshot, then the log's rest | {snapshot_secs:.2} | {:.3} | {snapshot_catch_up:.2} | {:.3} |",
        snapshot_secs / replay_secs,
        snapshot_catch_up / replay_catch_up
    );
    println!("| replay the whole log | {replay_secs:.2} | 1.00 | {replay_catch_up:.2} | 1.00 |\n");
    println!("## Resident memory per node, `rocksdb-total-memory-size` = {MEMORY_BUDGET}\n");
    println!("| node | MiB |");
    println!("|---|---|");
    println!("| n1 while its log grew to {log_mib:.0} MiB (peak of samples) | {peak_during_load:.0} |");
    println!("| n1 after {log_mib:.0} MiB of log | {rss_after:.0} |");
    println!("| n1 peak over the whole run (VmHWM) | {n1_peak:.0} |");
    println!("| n2, peak while replaying the whole log | {replay_peak:.0} |\n");
    record_summary(
        &format!("new node caught up, {log_mib:.0} MiB log of {invocations} invocations ({payload_kib} KiB inputs): snapshot vs replay"),
        &format!("snapshot {snapshot_secs:.2} s from start ({snapshot_catch_up:.2} s once running)"),
        &format!("replay {replay_secs:.2} s ({replay_catch_up:.2} s)"),
        snapshot_secs / replay_secs,
        "snapshot time / replay time from start; target <= 0.1",
    );
    record_summary(
        &format!("peak RSS per node, {log_mib:.0} MiB of log ({payload_kib} KiB inputs)"),
        &format!("n1 {n1_peak:.0} MiB, replaying n2 {replay_peak:.0} MiB"),
        &format!("rocksdb-total-memory-size {MEMORY_BUDGET}"),
        n1_peak.max(replay_peak) / MEMORY_BUDGET_MIB,
        "peak RSS / RocksDB budget",
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = TestDir::new("snapshots-bench");
    let moto = MotoServer::start(&dir);
    moto.create_bucket(BUCKET);
    export_and_upload(&dir, &moto, &runtime);
    let payloads = std::env::var("SNAPSHOT_BENCH_PAYLOADS_KIB").unwrap_or_else(|_| "60,4".to_owned());
    for payload in payloads.split(',') {
        let kib: u64 = payload.trim().parse().unwrap_or_else(|_| {
            panic!("SNAPSHOT_BENCH_PAYLOADS_KIB: {payload:?} is not a number of KiB; write e.g. \"60,4\"")
        });
        catch_up(&moto, kib);
    }
    std::io::stdout().flush().unwrap();
}
