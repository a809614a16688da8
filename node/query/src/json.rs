//! Query results as JSON rows (the admin API's `POST /query` answers `{"rows": [...]}`):
//! one object per row, every column present (`null` when null), timestamps as RFC 3339
//! text, binary values as hex text.

use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
use serde_json::Value;

use crate::engine::{QueryError, QueryResult};

/// The rows of `result` as JSON objects.
pub fn rows(result: &QueryResult) -> Result<Vec<Value>, QueryError> {
    let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(Vec::new());
    let batches: Vec<_> = result.batches.iter().collect();
    writer.write_batches(&batches).map_err(|e| QueryError::Internal(format!("encoding rows as JSON: {e}")))?;
    writer.finish().map_err(|e| QueryError::Internal(format!("encoding rows as JSON: {e}")))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Array(rows)) => Ok(rows),
        Ok(other) => Err(QueryError::Internal(format!("JSON rows were not an array: {other}"))),
        Err(e) => Err(QueryError::Internal(format!("JSON rows do not parse: {e}"))),
    }
}
