//! `make bench` (metadata reads): how many linearizable metadata reads an idle cluster
//! makes. Three nodes of every role (replicated metadata, logs at replication 2, four
//! partitions, the example services registered) settle, then every node's
//! `restate_metadata_reads_total` is read twice, `WINDOW` apart. Each linearizable read is
//! a ReadIndex round on the metadata leader, so this is load the metadata store carries
//! while nothing happens. Printed beside the rate measured the same way before the
//! node-wide metadata view (README), which polled metadata from every component.

use std::collections::BTreeMap;
use std::time::Duration;

use restate_bench::record_summary;
use restate_e2e::services::three_workers_with_services;
use restate_e2e::{http_get, partition_processors, wait_until, ServerProcess, TestDir};

const WINDOW: Duration = Duration::from_secs(20);
/// Linearizable reads per second of the idle three-node cluster before the metadata view
/// (this bench on the code of 2026-12-06 before the view, debug build: 68.3 and 68.6 in two
/// runs; README "Benchmarks").
const BEFORE_PER_SECOND: f64 = 68.5;

/// `(object, kind) -> count` summed over `nodes`' `/metrics`.
fn reads(nodes: &[ServerProcess]) -> BTreeMap<(String, String), f64> {
    let mut total = BTreeMap::new();
    for node in nodes {
        let (_, text) = http_get(node.ports.fabric, "/metrics").expect("a node's /metrics answers");
        for (labels, value) in parse_reads(&text) {
            *total.entry(labels).or_insert(0.0) += value;
        }
    }
    total
}

/// The samples of `restate_metadata_reads_total` in a Prometheus text exposition.
fn parse_reads(text: &str) -> Vec<((String, String), f64)> {
    let label = |labels: &str, name: &str| {
        labels.split(',').find_map(|l| l.strip_prefix(&format!("{name}=\""))?.strip_suffix('"').map(str::to_owned))
    };
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("restate_metadata_reads_total{")?;
            let (labels, value) = rest.split_once("} ")?;
            Some(((label(labels, "object")?, label(labels, "kind")?), value.trim().parse().ok()?))
        })
        .collect()
}

fn main() {
    let dir = TestDir::new("metadata-reads-bench");
    let (nodes, _services) = three_workers_with_services(&dir, "metadata-reads-bench");
    wait_until("every partition to have a leader", Duration::from_secs(60), || {
        partition_processors(&nodes[0]).iter().filter(|p| p["mode"] == "leader").count() == 4
    });
    // Let start-up traffic (joins, placements, the first snapshot of the plan) pass.
    std::thread::sleep(Duration::from_secs(5));

    let before = reads(&nodes);
    std::thread::sleep(WINDOW);
    let after = reads(&nodes);

    println!("\n## Metadata reads of an idle 3-node cluster over {} s (all nodes)\n", WINDOW.as_secs());
    println!("| object | kind | reads/s |");
    println!("| --- | --- | --- |");
    let mut linearizable = 0.0;
    for ((object, kind), count) in &after {
        let rate = (count - before.get(&(object.clone(), kind.clone())).copied().unwrap_or(0.0)) / WINDOW.as_secs_f64();
        if kind == "linearizable" {
            linearizable += rate;
        }
        println!("| {object} | {kind} | {rate:.1} |");
    }
    println!("\nlinearizable reads/s: {linearizable:.1} (before the metadata view: {BEFORE_PER_SECOND:.1})");
    let ratio = linearizable / BEFORE_PER_SECOND;
    record_summary(
        "idle metadata reads (3 nodes)",
        &format!("{linearizable:.1} linearizable/s"),
        &format!("{BEFORE_PER_SECOND:.1}/s before the view"),
        ratio,
        "now / before; target <= 0.1",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_of_the_counter_only() {
        let text = "# HELP x\nrestate_metadata_reads_total{kind=\"linearizable\",object=\"schema\"} 12\nrestate_node_uptime_seconds 3\nrestate_metadata_reads_total{kind=\"view\",object=\"schema\"} 7\n";
        assert_eq!(
            parse_reads(text),
            vec![(("schema".into(), "linearizable".into()), 12.0), (("schema".into(), "view".into()), 7.0)]
        );
    }
}
