//! `restatectl partitions list`: every partition processor of every alive node.

use serde_json::{json, Value};

use super::{connect, CtlError, Globals};
use crate::output::{print_json, table};
use restate_proto::node_ctl::ListPartitionProcessorsRequest;

struct Row {
    partition_id: u32,
    node_id: String,
    name: String,
    mode: String,
    epoch: u64,
    applied_lsn: u64,
    /// The latest published snapshot's LSN known on that node (0: none).
    archived_lsn: u64,
    /// Behind the partition's most advanced processor.
    lag: u64,
}

pub async fn list(globals: &Globals) -> Result<(), CtlError> {
    let status = super::status::fetch_provisioned_status(globals, "the cluster has no partitions yet").await?;
    let mut rows = Vec::new();
    let mut unreachable = Vec::new();
    for node in status.nodes.iter().filter(|n| n.roles.iter().any(|r| r == "worker")) {
        if !node.alive {
            unreachable.push(format!("{} ({}): {}", node.node_id, node.name, node.detail));
            continue;
        }
        let answer = match connect(&node.address).await {
            Ok(mut client) => client
                .list_partition_processors(ListPartitionProcessorsRequest {})
                .await
                .map_err(|s| s.message().to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match answer {
            Ok(r) => rows.extend(r.into_inner().processors.into_iter().map(|p| Row {
                partition_id: p.partition_id,
                node_id: node.node_id.clone(),
                name: node.name.clone(),
                mode: p.mode,
                epoch: p.epoch,
                applied_lsn: p.applied_lsn,
                archived_lsn: p.archived_lsn,
                lag: 0,
            })),
            Err(reason) => unreachable.push(format!("{} ({}): {reason}", node.node_id, node.name)),
        }
    }
    let mut most_applied = std::collections::BTreeMap::new();
    for row in &rows {
        let entry = most_applied.entry(row.partition_id).or_insert(0);
        *entry = (*entry).max(row.applied_lsn);
    }
    for row in &mut rows {
        row.lag = most_applied[&row.partition_id] - row.applied_lsn;
    }
    rows.sort_by(|a, b| (a.partition_id, &a.node_id).cmp(&(b.partition_id, &b.node_id)));
    if globals.json {
        let processors: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "partition_id": r.partition_id, "node_id": r.node_id, "name": r.name, "mode": r.mode,
                    "epoch": r.epoch, "applied_lsn": r.applied_lsn,
                    // Not tracked: applied state is flushed with the node's RocksDB when it
                    // decides; what survives a machine crash is the archived (snapshot) LSN.
                    "durable_lsn": Value::Null,
                    "archived_lsn": (r.archived_lsn > 0).then_some(r.archived_lsn),
                    "lag": r.lag,
                })
            })
            .collect();
        print_json(&json!({ "partitions": processors, "unreachable": unreachable }));
        return Ok(());
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.partition_id.to_string(),
                r.node_id.clone(),
                r.name.clone(),
                r.mode.clone(),
                r.epoch.to_string(),
                r.applied_lsn.to_string(),
                if r.archived_lsn > 0 { r.archived_lsn.to_string() } else { "-".to_owned() },
                r.lag.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["PARTITION", "NODE", "NAME", "MODE", "EPOCH", "APPLIED-LSN", "ARCHIVED-LSN", "LAG"], &table_rows)
    );
    for line in unreachable {
        println!("not answering: {line}");
    }
    Ok(())
}
