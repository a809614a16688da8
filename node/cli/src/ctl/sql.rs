//! `restatectl sql "SELECT ..."`: one SQL statement over the cluster's tables through the
//! node at `--address` (node control's `Query`); a table, or JSON rows with `--json`.

use serde_json::{json, Value};

use super::{connect, CtlError, Globals};
use crate::output::{print_json, print_sql_rows};
use restate_proto::node_ctl::QueryRequest;

pub async fn sql(globals: &Globals, query: &str) -> Result<(), CtlError> {
    let mut client = connect(&globals.address).await?;
    let answer = client
        .query(QueryRequest { query: query.to_owned() })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    let rows: Vec<Value> = answer
        .rows_json
        .iter()
        .map(|r| serde_json::from_slice(r).map_err(|e| CtlError(format!("a row is not JSON: {e}"))))
        .collect::<Result<_, _>>()?;
    if globals.json {
        print_json(&json!({ "rows": rows, "columns": answer.columns }));
        return Ok(());
    }
    print_sql_rows(&answer.columns, &rows);
    Ok(())
}
