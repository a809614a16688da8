//! `restatectl snapshots create [--trim-log] [PARTITION...]`: snapshots through the
//! partition leaders (via the node at --address), optionally trimming each log behind
//! its snapshot.

use serde_json::{json, Value};

use super::{connect, CtlError, Globals};
use crate::output::{print_json, table};
use restate_proto::node_ctl::CreateSnapshotsRequest;

pub async fn create(globals: &Globals, partitions: &[u32], trim_log: bool) -> Result<(), CtlError> {
    let mut client = connect(&globals.address).await?;
    if !globals.json {
        let which =
            if partitions.is_empty() { "every partition".to_owned() } else { format!("partitions {partitions:?}") };
        eprintln!("creating snapshots of {which}{} ...", if trim_log { " and trimming their logs" } else { "" });
    }
    let answer = client
        .create_snapshots(CreateSnapshotsRequest { partition_ids: partitions.to_vec(), trim_log })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    let failed: Vec<String> = answer
        .snapshots
        .iter()
        .filter(|s| !s.error.is_empty())
        .map(|s| format!("partition {}: {}", s.partition_id, s.error))
        .collect();
    if globals.json {
        let rows: Vec<Value> = answer
            .snapshots
            .iter()
            .map(|s| {
                json!({
                    "partition_id": s.partition_id,
                    "snapshot_id": (!s.snapshot_id.is_empty()).then_some(&s.snapshot_id),
                    "lsn": (!s.snapshot_id.is_empty()).then_some(s.lsn),
                    "log_id": s.log_id,
                    "trim_point": s.trim_point,
                    "error": (!s.error.is_empty()).then_some(&s.error),
                })
            })
            .collect();
        print_json(&Value::Array(rows));
    } else {
        let rows: Vec<Vec<String>> = answer
            .snapshots
            .iter()
            .map(|s| {
                let ok = s.error.is_empty() || !s.snapshot_id.is_empty();
                vec![
                    s.partition_id.to_string(),
                    if ok { s.snapshot_id.clone() } else { "-".into() },
                    if ok { s.lsn.to_string() } else { "-".into() },
                    s.trim_point.map_or("-".into(), |t| t.to_string()),
                    if s.error.is_empty() { "ok".into() } else { s.error.clone() },
                ]
            })
            .collect();
        print!("{}", table(&["PARTITION", "SNAPSHOT", "LSN", "TRIM-POINT", "RESULT"], &rows));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CtlError(format!(
            "{} of {} partitions failed:\n  {}",
            failed.len(),
            answer.snapshots.len(),
            failed.join("\n  ")
        )))
    }
}
