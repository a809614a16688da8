//! `restatectl partitions list`: every partition processor of every alive node, and
//! `partitions skip-record`: the way past a record a partition cannot apply.

use serde_json::{json, Value};

use super::{connect, CtlError, Globals};
use crate::output::{confirm, print_json, table};
use restate_proto::node_ctl::{ListPartitionProcessorsRequest, SkipRecordRequest};

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
    /// The record it cannot apply, and why (it stopped there).
    blocked: Option<(u64, String)>,
}

/// Every processor of every alive worker, and the workers that did not answer.
async fn processors(globals: &Globals) -> Result<(Vec<Row>, Vec<String>), CtlError> {
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
                blocked: (p.blocked_lsn > 0).then_some((p.blocked_lsn, p.blocked_reason)),
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
    Ok((rows, unreachable))
}

pub async fn list(globals: &Globals) -> Result<(), CtlError> {
    let (rows, unreachable) = processors(globals).await?;
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
                    "blocked_lsn": r.blocked.as_ref().map(|(lsn, _)| lsn),
                    "blocked_reason": r.blocked.as_ref().map(|(_, reason)| reason),
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
                r.blocked.as_ref().map_or("ok".to_owned(), |(lsn, _)| format!("blocked at LSN {lsn}")),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &["PARTITION", "NODE", "NAME", "MODE", "EPOCH", "APPLIED-LSN", "ARCHIVED-LSN", "LAG", "STATUS"],
            &table_rows
        )
    );
    for r in &rows {
        if let Some((lsn, reason)) = &r.blocked {
            println!(
                "partition {} on {} is blocked at LSN {lsn}: {reason}\n  `restatectl partitions skip-record {} {lsn} --yes` skips that record (its content is lost)",
                r.partition_id, r.name, r.partition_id
            );
        }
    }
    for line in unreachable {
        println!("not answering: {line}");
    }
    Ok(())
}

/// `partitions skip-record PARTITION LSN`: lists the record so that every processor of the
/// partition passes over it. Refused unless a processor is blocked at exactly that LSN
/// (the usual typo guard) or `force`; asks for confirmation (its content is lost).
pub async fn skip_record(globals: &Globals, partition: u32, lsn: u64, force: bool) -> Result<(), CtlError> {
    let (rows, _) = processors(globals).await?;
    let blocked_here: Vec<&Row> = rows
        .iter()
        .filter(|r| r.partition_id == partition && r.blocked.as_ref().is_some_and(|(at, _)| *at == lsn))
        .collect();
    if blocked_here.is_empty() && !force {
        let blocked: Vec<String> = rows
            .iter()
            .filter(|r| r.partition_id == partition)
            .filter_map(|r| r.blocked.as_ref().map(|(at, _)| format!("{} at LSN {at}", r.name)))
            .collect();
        return Err(CtlError(if blocked.is_empty() {
            format!("partition {partition} is not blocked (no processor stopped at LSN {lsn}); nothing to skip (--force skips it anyway)")
        } else {
            format!(
                "partition {partition} is blocked elsewhere ({}), not at LSN {lsn}; --force skips it anyway",
                blocked.join(", ")
            )
        }));
    }
    if let Some(r) = blocked_here.first() {
        if let Some((_, reason)) = &r.blocked {
            eprintln!("partition {partition} is blocked at LSN {lsn}: {reason}");
        }
    }
    if !confirm(
        &format!("skip the record at LSN {lsn} of partition {partition}? Its content is lost for good"),
        globals.yes,
    ) {
        return Err(CtlError("not confirmed; nothing changed".into()));
    }
    let answer = connect(&globals.address)
        .await?
        .skip_record(SkipRecordRequest { partition_id: partition, lsn })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    if globals.json {
        print_json(&json!({ "partition_id": partition, "lsn": lsn, "newly_skipped": answer.newly_skipped }));
    } else if answer.newly_skipped {
        println!(
            "record at LSN {lsn} of partition {partition} skipped: every processor of the partition passes over it"
        );
    } else {
        println!("record at LSN {lsn} of partition {partition} was skipped already");
    }
    Ok(())
}
