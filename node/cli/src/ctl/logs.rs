//! `restatectl logs ...`: the virtual logs (one per partition) and their segments.

use restate_proto::node_ctl as pb;
use serde_json::{json, Value};

use super::{connect, CtlError, Globals};
use crate::output::{confirm, key_values, print_json, table};

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The nodeset with each member's location: `N1@eu.a,N2@eu.b` (a member without one: `N3`).
fn members(s: &pb::LogSegment) -> String {
    s.nodeset
        .iter()
        .enumerate()
        .map(|(i, node)| match s.nodeset_locations.get(i).filter(|l| !l.is_empty()) {
            Some(location) => format!("{node}@{location}"),
            None => node.clone(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn tail_segment(log: &pb::LogDescription) -> pb::LogSegment {
    log.segments.last().cloned().unwrap_or_default()
}

fn log_json(log: &pb::LogDescription) -> Value {
    let tail = tail_segment(log);
    json!({
        "log_id": log.log_id,
        "kind": tail.kind,
        "loglet_id": tail.loglet_id,
        "replication": tail.replication,
        "nodeset": tail.nodeset,
        "nodeset_locations": tail.nodeset_locations,
        // The node that orders appends: a local loglet's node, a replicated loglet's leader.
        "leader": if tail.sequencer.is_empty() { None } else { Some(tail.sequencer.clone()) },
        "from_lsn": tail.base_lsn,
        "trim_point": log.trim_point,
        "tail": log.tail,
        "segments": log.segments.iter().map(segment_json).collect::<Vec<_>>(),
        "unavailable": if tail.unavailable.is_empty() { None } else { Some(tail.unavailable.clone()) },
    })
}

fn segment_json(s: &pb::LogSegment) -> Value {
    json!({
        "base_lsn": s.base_lsn, "kind": s.kind, "loglet_id": s.loglet_id, "replication": s.replication,
        "nodeset": s.nodeset, "nodeset_locations": s.nodeset_locations, "sealed": s.sealed, "tail": s.tail, "trim_point": s.trim_point,
        "sequencer": if s.sequencer.is_empty() { None } else { Some(s.sequencer.clone()) },
        "unavailable": if s.unavailable.is_empty() { None } else { Some(s.unavailable.clone()) },
    })
}

pub async fn list(globals: &Globals) -> Result<(), CtlError> {
    let mut client = connect(&globals.address).await?;
    let logs = client
        .list_logs(pb::ListLogsRequest {})
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner()
        .logs;
    if globals.json {
        print_json(&json!({ "logs": logs.iter().map(log_json).collect::<Vec<_>>() }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = logs
        .iter()
        .map(|log| {
            let tail = tail_segment(log);
            vec![
                log.log_id.to_string(),
                tail.base_lsn.to_string(),
                tail.kind.clone(),
                tail.loglet_id.to_string(),
                tail.replication.to_string(),
                if tail.sequencer.is_empty() { "-".into() } else { tail.sequencer.clone() },
                if tail.nodeset.is_empty() { "(waiting for log-servers)".into() } else { members(&tail) },
                opt(log.trim_point),
                opt(log.tail),
                log.segments.len().to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "LOG",
                "FROM-LSN",
                "KIND",
                "LOGLET",
                "REPLICATION",
                "SEQUENCER",
                "NODESET",
                "TRIM-POINT",
                "TAIL",
                "SEGMENTS"
            ],
            &rows
        )
    );
    Ok(())
}

pub async fn describe(globals: &Globals, log_id: u32) -> Result<(), CtlError> {
    let mut client = connect(&globals.address).await?;
    let log = client
        .describe_log(pb::DescribeLogRequest { log_id })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    if globals.json {
        print_json(&log_json(&log));
        return Ok(());
    }
    print!(
        "{}",
        key_values(&[
            ("Log", log.log_id.to_string()),
            ("Trim point", opt(log.trim_point)),
            ("Tail (next LSN)", opt(log.tail)),
            ("Metadata version", log.metadata_version.to_string()),
        ])
    );
    println!();
    let rows: Vec<Vec<String>> = log
        .segments
        .iter()
        .map(|s| {
            vec![
                s.base_lsn.to_string(),
                s.kind.clone(),
                s.loglet_id.to_string(),
                s.replication.to_string(),
                members(s),
                if s.sealed { "sealed".into() } else { "open".into() },
                opt(s.tail),
                opt(s.trim_point),
                s.unavailable.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["BASE-LSN", "KIND", "LOGLET", "REPLICATION", "NODESET", "STATE", "TAIL", "TRIM-POINT", "NOTE"], &rows)
    );
    Ok(())
}

pub async fn trim(globals: &Globals, log_id: u32, trim_point: u64) -> Result<(), CtlError> {
    if !confirm(&format!("Trim log {log_id} up to LSN {trim_point}? Trimmed records are gone for good."), globals.yes) {
        return Err(CtlError("aborted; nothing was changed".into()));
    }
    let mut client = connect(&globals.address).await?;
    let reached = client
        .trim_log(pb::TrimLogRequest { log_id, trim_point })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner()
        .trim_point;
    if globals.json {
        print_json(&json!({ "log_id": log_id, "requested_trim_point": trim_point, "trim_point": reached }));
    } else if reached == trim_point {
        println!("log {log_id} trimmed up to LSN {reached}");
    } else {
        println!(
            "log {log_id} is trimmed up to LSN {reached} (requested {trim_point}; it was already trimmed further)"
        );
    }
    Ok(())
}
