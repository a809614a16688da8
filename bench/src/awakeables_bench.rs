//! `make bench` (awakeables): a handler waits on an awakeable that the benchmark client
//! resolves through the ingress (`POST /restate/awakeables/{id}/resolve`); the latency
//! from the resolve request to the caller's answer (`attach`), at 1 and 16 clients, on a
//! 3-node cluster (replicated logs, replication 2, 4 partitions), beside the floor of the
//! same run: the resolve appends the signal, the resumed round appends its journal and
//! completion: at least two replicated appends.

use std::io::Write;
use std::time::{Duration, Instant};

use restate_bench::{append_p50, closed_loop, ms, percentile, record_summary, worker_cluster};
use restate_e2e::{http_call, wait_until, TestDir};

const RUN_FOR: Duration = Duration::from_secs(5);

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// One approval: sent, its awakeable id read once journaled (not timed), then resolved
/// and attached to (timed). `None` when a step failed.
fn one_approval(ports: &[u16], key: &str, turn: usize) -> Option<Duration> {
    let port = |i: usize| ports[(turn + i) % ports.len()];
    let timeout = Duration::from_secs(30);
    let (status, sent) =
        http_call(port(0), "POST", &format!("/Approval/{key}/request/send"), "\"bench\"", &[], timeout)?;
    if status != 202 {
        return None;
    }
    let id = json(&sent)["invocationId"].as_str()?.to_owned();
    let deadline = Instant::now() + timeout;
    let awakeable = loop {
        let (_, body) = http_call(port(1), "POST", &format!("/Approval/{key}/pending"), "", &[], timeout)?;
        let awakeable = json(&body).as_str().unwrap_or_default().to_owned();
        if !awakeable.is_empty() {
            break awakeable;
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let began = Instant::now();
    let (status, _) =
        http_call(port(2), "POST", &format!("/restate/awakeables/{awakeable}/resolve"), "\"yes\"", &[], timeout)?;
    if status != 202 {
        return None;
    }
    let (status, _) = http_call(port(0), "GET", &format!("/restate/invocation/{id}/attach"), "", &[], timeout)?;
    (status == 200).then(|| began.elapsed())
}

/// `clients` threads, each doing approvals on keys of its own for `RUN_FOR`.
fn load(ports: &[u16], clients: usize, round: usize) -> (Vec<Duration>, usize) {
    let ports = ports.to_vec();
    closed_loop(clients, RUN_FOR, move |client, turn| {
        one_approval(&ports, &format!("r{round}-c{client}-{turn}"), client + turn)
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = TestDir::new("awakeables-bench");
    let (nodes, _services) = worker_cluster(&dir, "awakeables-bench");
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    wait_until("an approval to complete", Duration::from_secs(60), || one_approval(&ports, "warm-up", 0).is_some());
    load(&ports, 4, 0);

    let floor = append_p50(&runtime, &nodes, RUN_FOR) * 2;
    println!("## Awakeable resolved through the ingress, 3 nodes, replication 2 ({}s per row)\n", RUN_FOR.as_secs());
    println!("Floor measured in this run: two replicated appends = 2 x {} ms = {} ms.\n", ms(floor / 2), ms(floor));
    println!("| clients | resolved/s | p50 ms (resolve -> answer) | p99 ms | failed | p50 / floor |");
    println!("|---|---|---|---|---|---|");
    for (round, clients) in [1usize, 16].into_iter().enumerate() {
        let start = Instant::now();
        let (latencies, failures) = load(&ports, clients, round + 1);
        let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        let ratio = p50.as_secs_f64() / floor.as_secs_f64();
        println!("| {clients} | {rate:.0} | {} | {} | {failures} | {ratio:.2} |", ms(p50), ms(p99));
        record_summary(
            &format!("awakeable resolve -> answer, {clients} clients"),
            &format!("p50 {} ms, p99 {} ms, {failures} failed", ms(p50), ms(p99)),
            &format!("two appends {} ms", ms(floor)),
            ratio,
            "p50 / two-append floor",
        );
    }
    std::io::stdout().flush().unwrap();
}
