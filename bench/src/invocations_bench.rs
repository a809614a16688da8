//! `make bench` (invocations): `Greeter.greet` through the ingresses of a 3-node cluster
//! (replicated logs, replication 2, 4 partitions; the example services on the real
//! restate-sdk) at 1, 16 and 64 concurrent clients: throughput, p50 and p99, beside the
//! floor this design implies, measured in the same run: an invocation needs at least
//! two replicated appends (the invocation, then the round's journal and completion), so
//! the floor is twice the p50 of one replicated append to a partition's log; and the CPU
//! time all nodes spent per invocation (user + system, from /proc). Also each
//! node's resident memory idle and its peak under the 64-client load, against the
//! 512 MiB budget.

use std::io::Write;
use std::time::{Duration, Instant};

use restate_bench::{append_p50, closed_loop, cpu_seconds, memory_mib, ms, percentile, record_summary, worker_cluster};
use restate_e2e::{http_call, wait_until, TestDir};

const RUN_FOR: Duration = Duration::from_secs(5);
const MEMORY_BUDGET_MIB: f64 = 512.0;

/// `clients` threads calling Greeter.greet round-robin over `ports` for `RUN_FOR`;
/// the sorted latencies and the number of failed calls.
fn greet_load(ports: &[u16], clients: usize) -> (Vec<Duration>, usize) {
    let ports = ports.to_vec();
    closed_loop(clients, RUN_FOR, move |client, turn| {
        let began = Instant::now();
        let port = ports[(client + turn) % ports.len()];
        let answer = http_call(port, "POST", "/Greeter/greet", "\"bench\"", &[], Duration::from_secs(30));
        matches!(answer, Some((200, _))).then(|| began.elapsed())
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let dir = TestDir::new("invocations-bench");
    let (nodes, _services) = worker_cluster(&dir, "invocations-bench");
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    wait_until("every ingress to answer Greeter.greet", Duration::from_secs(60), || {
        ports.iter().all(|port| {
            http_call(*port, "POST", "/Greeter/greet", "\"warm-up\"", &[], Duration::from_secs(30))
                .is_some_and(|(s, _)| s == 200)
        })
    });
    // Warm every partition's leader and connection before measuring.
    greet_load(&ports, 4);
    let idle: Vec<f64> = nodes.iter().map(|n| memory_mib(n.pid().unwrap(), "VmRSS:")).collect();

    let floor = append_p50(&runtime, &nodes, RUN_FOR) * 2;
    println!(
        "## Greeter.greet through the ingress, 3 nodes, replication 2, 4 partitions ({}s per row)\n",
        RUN_FOR.as_secs()
    );
    println!(
        "Floor measured in this run: two replicated appends = 2 x {} ms = {} ms (p50 of one append to a partition's log).\n",
        ms(floor / 2),
        ms(floor)
    );
    println!(
        "| clients | invocations/s | p50 ms | p99 ms | failed | p50 / floor | CPU ms per invocation (all nodes) |"
    );
    println!("|---|---|---|---|---|---|---|");
    let cluster_cpu = || nodes.iter().map(|n| cpu_seconds(n.pid().unwrap())).sum::<f64>();
    for clients in [1usize, 16, 64] {
        let start = Instant::now();
        let cpu_before = cluster_cpu();
        let (latencies, failures) = greet_load(&ports, clients);
        let cpu_per_invocation_ms = (cluster_cpu() - cpu_before) * 1000.0 / latencies.len().max(1) as f64;
        let rate = latencies.len() as f64 / start.elapsed().as_secs_f64();
        println!(
            "| {clients} | {rate:.0} | {} | {} | {failures} | {:.2} | {cpu_per_invocation_ms:.2} |",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
            percentile(&latencies, 0.5).as_secs_f64() / floor.as_secs_f64(),
        );
        record_summary(
            &format!("Greeter.greet invocation, {clients} clients"),
            &format!(
                "{rate:.0}/s, p50 {} ms, p99 {} ms, {failures} failed, CPU {cpu_per_invocation_ms:.2} ms/invocation",
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.99))
            ),
            &format!("two appends {} ms", ms(floor)),
            percentile(&latencies, 0.5).as_secs_f64() / floor.as_secs_f64(),
            "p50 / two-append floor",
        );
    }
    println!("\n| node | RSS idle MiB | peak RSS MiB (under load) | peak / {MEMORY_BUDGET_MIB:.0} MiB budget |");
    println!("|---|---|---|---|");
    let mut peaks = Vec::new();
    for (node, idle) in nodes.iter().zip(idle) {
        let peak = memory_mib(node.pid().unwrap(), "VmHWM:");
        println!("| {} | {idle:.0} | {peak:.0} | {:.2} |", node.name, peak / MEMORY_BUDGET_MIB);
        peaks.push(peak);
    }
    let peak = peaks.iter().copied().fold(0.0, f64::max);
    record_summary(
        "peak RSS per node, invocations at 64 clients",
        &format!("restate-server {peak:.0} MiB"),
        &format!("budget {MEMORY_BUDGET_MIB:.0} MiB"),
        peak / MEMORY_BUDGET_MIB,
        "peak RSS / memory budget",
    );
    std::io::stdout().flush().unwrap();
}
