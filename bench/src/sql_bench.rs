//! `make bench` (SQL): on a 3-node cluster (replicated logs, replication 2, 4 partitions)
//! holding `RESTATE_SQL_BENCH_INVOCATIONS` (default 100,000) completed invocations (kept
//! by their idempotency keys), the latency of a point lookup by invocation id
//! (`SELECT ... FROM sys_invocation WHERE id = ...`, through `POST /query`) beside the
//! floor of the same run: one node-control round trip to another node (`GetNodeInfo`);
//! and a full scan (`SELECT count(*) FROM
//! sys_invocation`) beside the admin API's own listing of every invocation
//! (`GET /invocations`), with the answering node's peak resident memory during the scans.

use std::time::{Duration, Instant};

use restate_bench::{closed_loop, lazy_channel, memory_mib, ms, percentile, record_summary, worker_cluster};
use restate_e2e::{http_call, wait_until, TestDir};
use restate_proto::node_ctl::{node_ctl_client::NodeCtlClient, GetNodeInfoRequest};

fn invocations_wanted() -> usize {
    std::env::var("RESTATE_SQL_BENCH_INVOCATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn query(port: u16, sql: &str) -> Option<(Duration, serde_json::Value)> {
    let body = serde_json::json!({ "query": sql }).to_string();
    let began = Instant::now();
    let (status, answer) = http_call(port, "POST", "/query", &body, &[], Duration::from_secs(300))?;
    let took = began.elapsed();
    if status != 200 {
        eprintln!("sql-bench: {sql}: {status} {answer}");
        return None;
    }
    Some((took, serde_json::from_str(&answer).ok()?))
}

fn main() {
    let dir = TestDir::new("sql-bench");
    let (nodes, _services) = worker_cluster(&dir, "sql-bench");
    let ingress: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    let admin = nodes[0].ports.admin;
    wait_until("the Greeter to answer", Duration::from_secs(60), || {
        http_call(ingress[0], "POST", "/Greeter/greet", "\"warm\"", &[], Duration::from_secs(30))
            .is_some_and(|r| r.0 == 200)
    });

    // Completed invocations, each kept by its idempotency key.
    let wanted = invocations_wanted();
    let began = Instant::now();
    let mut made = 0usize;
    let mut round = 0usize;
    while made < wanted {
        round += 1;
        let ports = ingress.clone();
        let (done, _) = closed_loop(32, Duration::from_secs(10), move |client, turn| {
            let key = format!("k{round}-{client}-{turn}");
            let started = Instant::now();
            let (status, _) = http_call(
                ports[(client + turn) % ports.len()],
                "POST",
                "/Greeter/greet/send",
                "\"bench\"",
                &[("idempotency-key", &key)],
                Duration::from_secs(30),
            )?;
            (status == 202).then(|| started.elapsed())
        });
        made += done.len();
        eprintln!("sql-bench: {made} invocations sent ({:.0}/s)", made as f64 / began.elapsed().as_secs_f64());
    }
    wait_until("every invocation to complete", Duration::from_secs(600), || {
        query(admin, "SELECT count(*) AS n FROM sys_invocation WHERE status = 'completed'")
            .and_then(|(_, v)| v["rows"][0]["n"].as_u64())
            .is_some_and(|n| n as usize >= made)
    });
    let ids: Vec<String> = query(admin, "SELECT id FROM sys_invocation LIMIT 200")
        .map(|(_, v)| v["rows"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();

    // Point lookups by id, and the floor: one node-control round trip.
    let mut lookups = Vec::new();
    for id in ids.iter().cycle().take(400) {
        let (took, answer) =
            query(admin, &format!("SELECT id, status FROM sys_invocation WHERE id = '{id}'")).expect("lookup");
        assert_eq!(answer["rows"].as_array().map(Vec::len), Some(1), "{answer}");
        lookups.push(took);
    }
    lookups.sort();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut round_trips = runtime.block_on(async {
        let mut client = NodeCtlClient::new(lazy_channel(&nodes[1].address()));
        let mut round_trips = Vec::new();
        for _ in 0..400 {
            let began = Instant::now();
            client.get_node_info(GetNodeInfoRequest {}).await.expect("GetNodeInfo");
            round_trips.push(began.elapsed());
        }
        round_trips
    });
    round_trips.sort();

    // Full scans beside the admin API's own listing; the answering node's peak memory.
    let pid = nodes[0].pid().expect("w1 runs");
    let rss_before = memory_mib(pid, "VmRSS:");
    let mut scans = Vec::new();
    for _ in 0..5 {
        let (took, answer) = query(admin, "SELECT count(*) AS n FROM sys_invocation").expect("scan");
        assert!(answer["rows"][0]["n"].as_u64().unwrap() as usize >= made);
        scans.push(took);
    }
    scans.sort();
    let mut listings = Vec::new();
    for _ in 0..5 {
        let began = Instant::now();
        let (status, _) =
            http_call(admin, "GET", "/invocations?limit=1", "", &[], Duration::from_secs(300)).expect("listing");
        assert_eq!(status, 200);
        listings.push(began.elapsed());
    }
    listings.sort();
    let peak = memory_mib(pid, "VmHWM:");

    let (lookup_p50, floor_p50) = (percentile(&lookups, 0.5), percentile(&round_trips, 0.5));
    let (scan_p50, listing_p50) = (percentile(&scans, 0.5), percentile(&listings, 0.5));
    println!("## SQL over {made} invocations, 3 nodes, replication 2\n");
    println!("| query | p50 ms | p99 ms | beside | its p50 ms | ratio |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| point lookup by id (POST /query) | {} | {} | one node-control round trip (GetNodeInfo to another node) | {} | {:.2} |",
        ms(lookup_p50),
        ms(percentile(&lookups, 0.99)),
        ms(floor_p50),
        lookup_p50.as_secs_f64() / floor_p50.as_secs_f64()
    );
    println!(
        "| full scan count(*) (POST /query) | {} | {} | GET /invocations (the admin API's listing) | {} | {:.2} |",
        ms(scan_p50),
        ms(percentile(&scans, 0.99)),
        ms(listing_p50),
        scan_p50.as_secs_f64() / listing_p50.as_secs_f64()
    );
    println!(
        "\nAnswering node: {rss_before:.0} MiB resident before the scans, {peak:.0} MiB peak (VmHWM) after them \
         (the scan collects every row before aggregating; [admin.query-engine] max-memory bounds only sorts, joins \
         and aggregations)."
    );
    record_summary(
        "sql",
        &format!("point lookup p50 {} ms, scan of {made} p50 {} ms", ms(lookup_p50), ms(scan_p50)),
        &format!("GetNodeInfo round trip {} ms, GET /invocations {} ms", ms(floor_p50), ms(listing_p50)),
        scan_p50.as_secs_f64() / listing_p50.as_secs_f64(),
        "full scan time / admin listing time (lower is better)",
    );
}
