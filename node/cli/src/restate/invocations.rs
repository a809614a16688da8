//! `restate invocations list|describe|cancel|kill`.

use serde_json::Value;

use super::{path_segment, CliError, Globals};
use crate::output::{confirm, key_values, print_json, table};

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Milliseconds since the UNIX epoch as RFC 3339 (UTC), `-` when absent.
fn timestamp(value: &Value) -> String {
    value.as_u64().map_or_else(|| "-".into(), restate_types::time::format_rfc3339_millis)
}

/// Every invocation the partitions hold, oldest first (optionally one status only).
pub async fn list(globals: &Globals, status: Option<&str>, limit: Option<usize>) -> Result<(), CliError> {
    let mut query = Vec::new();
    if let Some(status) = status {
        query.push(format!("status={}", path_segment(status)));
    }
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    let path = if query.is_empty() { "/invocations".to_owned() } else { format!("/invocations?{}", query.join("&")) };
    let answer = globals.client()?.get(&path).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let invocations = answer["invocations"].as_array().cloned().unwrap_or_default();
    if invocations.is_empty() {
        println!("No invocations{}.", status.map(|s| format!(" with status {s}")).unwrap_or_default());
    } else {
        let rows: Vec<Vec<String>> = invocations
            .iter()
            .map(|i| {
                let outcome = match &i["failure"] {
                    Value::Null if i["status"] == "completed" => "ok".to_owned(),
                    Value::Null => "-".to_owned(),
                    failure => format!("failed {}: {}", text(&failure["code"]), text(&failure["message"])),
                };
                vec![
                    text(&i["id"]),
                    text(&i["target"]),
                    text(&i["status"]),
                    timestamp(&i["submitted_at_ms"]),
                    text(&i["idempotency_key"]),
                    outcome,
                ]
            })
            .collect();
        print!("{}", table(&["ID", "TARGET", "STATUS", "SUBMITTED", "IDEMPOTENCY KEY", "OUTCOME"], &rows));
    }
    for missing in answer["unavailable"].as_array().cloned().unwrap_or_default() {
        eprintln!("warning: not listed, the partition leader did not answer: {}", text(&missing));
    }
    Ok(())
}

/// One invocation's status, and its result once completed.
pub async fn describe(globals: &Globals, id: &str) -> Result<(), CliError> {
    let answer = globals.client()?.get(&format!("/invocations/{}", path_segment(id))).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let mut rows = vec![("ID", text(&answer["id"])), ("Status", text(&answer["status"]))];
    if !answer["output"].is_null() {
        rows.push(("Output", text(&answer["output"])));
    }
    if !answer["failure"].is_null() {
        rows.push(("Failure", format!("{} {}", text(&answer["failure"]["code"]), text(&answer["failure"]["message"]))));
    }
    print!("{}", key_values(&rows));
    Ok(())
}

/// Cancels (asks the handler to stop; compensations run) or kills (stops at once) a
/// running invocation.
pub async fn cancel(globals: &Globals, id: &str, kill: bool) -> Result<(), CliError> {
    let action = if kill { "kill" } else { "cancel" };
    let question = format!("{action} invocation {id}?");
    if !confirm(&question, globals.yes) {
        return Err(CliError(format!("not confirmed; invocation {id} left alone")));
    }
    let answer = globals.client()?.patch(&format!("/invocations/{}/{action}", path_segment(id))).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let done = if kill { "killed" } else { "cancellation requested for" };
    println!("{done} invocation {id} (it was {})", text(&answer["previous_status"]));
    Ok(())
}

/// Forgets a completed invocation (its result and idempotency key) now.
pub async fn purge(globals: &Globals, id: &str) -> Result<(), CliError> {
    if !confirm(&format!("purge invocation {id} (its result is lost)?"), globals.yes) {
        return Err(CliError(format!("not confirmed; invocation {id} left alone")));
    }
    let answer = globals.client()?.patch(&format!("/invocations/{}/purge", path_segment(id))).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    println!("purged invocation {id}");
    Ok(())
}

/// Pauses a running or suspended invocation until resumed.
pub async fn pause(globals: &Globals, id: &str) -> Result<(), CliError> {
    let answer = globals.client()?.patch(&format!("/invocations/{}/pause", path_segment(id))).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    println!(
        "paused invocation {id} (it was {}); `restate invocations resume {id}` runs it again",
        text(&answer["previous_status"])
    );
    Ok(())
}

/// Runs a paused or suspended invocation now (a backing-off one retries now).
pub async fn resume(globals: &Globals, id: &str) -> Result<(), CliError> {
    let answer =
        globals.client()?.patch(&format!("/invocations/{}/resume?deployment=latest", path_segment(id))).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    println!("resumed invocation {id} (it was {})", text(&answer["previous_status"]));
    Ok(())
}

/// Starts a completed invocation's target again with its input, under a new id.
pub async fn restart_as_new(globals: &Globals, id: &str) -> Result<(), CliError> {
    let answer = globals.client()?.patch(&format!("/invocations/{}/restart-as-new", path_segment(id))).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    println!("restarted invocation {id} as {}", text(&answer["new_invocation_id"]));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_dates() {
        assert_eq!(timestamp(&Value::from(0u64)), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(&Value::Null), "-");
    }
}
