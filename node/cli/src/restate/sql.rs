//! `restate sql "SELECT ..."`: one SQL statement over the cluster's tables through the admin
//! API's `POST /query`; a table (columns in the query's order), or the API's JSON with
//! `--json`.

use serde_json::{json, Value};

use super::{CliError, Globals};
use crate::output::{print_json, print_sql_rows};

/// Runs `query` and prints its rows.
pub async fn run(globals: &Globals, query: &str) -> Result<(), CliError> {
    let (_, answer) = globals.client()?.post("/query", &json!({ "query": query })).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    let columns: Vec<String> = match answer["columns"].as_array() {
        Some(columns) => columns.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect(),
        None => rows.first().and_then(Value::as_object).map(|r| r.keys().cloned().collect()).unwrap_or_default(),
    };
    print_sql_rows(&columns, &rows);
    Ok(())
}
