//! `restate kv get SERVICE KEY`: a virtual object's (or workflow's) state, read through the
//! SQL `state` table (`POST /query`): one point lookup in the key's partition.

use serde_json::json;

use super::{CliError, Globals};
use crate::output::{print_json, print_sql_rows};

/// `text` as a SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Prints every state key of `service`/`key` with its value (as text when it is UTF-8).
pub async fn get(globals: &Globals, service: &str, key: &str) -> Result<(), CliError> {
    let query = format!(
        "SELECT key, value_utf8 AS value, value_length FROM state WHERE service_name = {} AND service_key = {} ORDER BY key",
        literal(service),
        literal(key)
    );
    let (_, answer) = globals.client()?.post("/query", &json!({ "query": query })).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("{service}/{key} has no state.");
        return Ok(());
    }
    let columns: Vec<String> = ["key", "value", "value_length"].iter().map(|c| (*c).to_owned()).collect();
    print_sql_rows(&columns, &rows);
    Ok(())
}

/// Deletes every state key of `service`/`key`, at the version just read (an edit that
/// raced with it is refused by the admin API, nothing is lost silently).
pub async fn clear(globals: &Globals, service: &str, key: &str) -> Result<(), CliError> {
    let client = globals.client()?;
    let segment = super::path_segment;
    let current = client.get(&format!("/services/{}/state/{}", segment(service), segment(key))).await?;
    let keys = current["state"].as_object().map_or(0, |s| s.len());
    if keys == 0 {
        println!("{service}/{key} has no state; nothing to clear.");
        return Ok(());
    }
    if !crate::output::confirm(&format!("delete the {keys} state key(s) of {service}/{key}?"), globals.yes) {
        return Err(CliError(format!("not confirmed; the state of {service}/{key} is left alone")));
    }
    let body = json!({ "object_key": key, "new_state": {}, "version": current["version"] });
    let (_, answer) = client.post(&format!("/services/{}/state", segment(service)), &body).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    println!("cleared {keys} state key(s) of {service}/{key}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_are_doubled() {
        assert_eq!(super::literal("o'brien"), "'o''brien'");
    }
}
