//! Running one SQL statement over the cluster's tables: a DataFusion session per query with
//! every table registered, read-only (no DDL, no DML, no `SET`), bounded in rows and memory.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use crate::tables::{register_all, ClusterData};

/// What one query may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Rows a query may return; more is an error (never a silently cut answer).
    pub max_rows: usize,
    /// Memory a query's operators (sorts, joins, aggregations) may hold.
    pub max_memory_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { max_rows: 100_000, max_memory_bytes: 256 << 20 }
    }
}

/// Why a query failed; each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement does not parse, names an unknown table or column, or is not a query.
    #[error("{0}")]
    Invalid(String),
    /// A table's rows could not be fetched (a partition or node did not answer).
    #[error("{0}")]
    Unavailable(String),
    /// The answer would exceed [`QueryLimits`].
    #[error("{0}")]
    Limit(String),
    /// Anything else the engine reported.
    #[error("{0}")]
    Internal(String),
}

impl QueryError {
    /// The SQLSTATE a PostgreSQL client gets for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            // syntax_error_or_access_rule_violation; undefined_table/column are finer, but
            // DataFusion's planner does not say which.
            QueryError::Invalid(_) => "42000",
            QueryError::Unavailable(_) => "58000",
            // program_limit_exceeded
            QueryError::Limit(_) => "54000",
            QueryError::Internal(_) => "XX000",
        }
    }
}

/// The answer to a query: its columns and rows.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Runs SQL over the tables of [`crate::tables`], fed by `data`. Cheap to clone.
#[derive(Clone)]
pub struct QueryEngine {
    data: Arc<dyn ClusterData>,
    limits: QueryLimits,
}

impl QueryEngine {
    pub fn new(data: Arc<dyn ClusterData>, limits: QueryLimits) -> QueryEngine {
        QueryEngine { data, limits }
    }

    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// A session with every table registered, limited in memory.
    fn session(&self) -> Result<SessionContext, QueryError> {
        let config =
            SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("restate", "public");
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.max_memory_bytes, 1.0)
            .build_arc()
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        register_all(&ctx, self.data.clone()).map_err(|e| QueryError::Internal(e.to_string()))?;
        Ok(ctx)
    }

    /// The columns `sql` would answer with, without running it (the PostgreSQL extended
    /// protocol's Describe).
    pub async fn describe(&self, sql: &str) -> Result<SchemaRef, QueryError> {
        let ctx = self.session()?;
        let frame = ctx.sql_with_options(sql, read_only()).await.map_err(classify)?;
        Ok(Arc::new(frame.schema().as_arrow().clone()))
    }

    /// The types of `sql`'s parameters `$1`, `$2`, ... as the planner infers them from where
    /// they are used (`None`: it cannot tell; the value is then taken as text).
    pub async fn parameter_types(&self, sql: &str) -> Result<Vec<Option<DataType>>, QueryError> {
        let ctx = self.session()?;
        let frame = ctx.sql_with_options(sql, read_only()).await.map_err(classify)?;
        parameter_types(frame.logical_plan())
    }

    /// Runs `sql`, a single read-only statement.
    pub async fn execute(&self, sql: &str) -> Result<QueryResult, QueryError> {
        self.execute_with(sql, &[]).await
    }

    /// Runs `sql` with `params` (text values, `None` for NULL) bound to `$1`, `$2`, ...:
    /// each value is read as the type its placeholder has where it is used.
    pub async fn execute_with(&self, sql: &str, params: &[Option<String>]) -> Result<QueryResult, QueryError> {
        if sql.trim().is_empty() {
            return Err(QueryError::Invalid("the query is empty; write a SELECT statement".into()));
        }
        let ctx = self.session()?;
        let mut frame = ctx.sql_with_options(sql, read_only()).await.map_err(classify)?;
        let types = parameter_types(frame.logical_plan())?;
        if types.len() != params.len() {
            return Err(QueryError::Invalid(format!(
                "the query has {} parameter(s) ($1 ...) but {} value(s) were bound",
                types.len(),
                params.len()
            )));
        }
        if !params.is_empty() {
            let values = params
                .iter()
                .zip(&types)
                .enumerate()
                .map(|(i, (value, ty))| bind(i + 1, value.as_deref(), ty.as_ref().unwrap_or(&DataType::Utf8)))
                .collect::<Result<Vec<_>, _>>()?;
            frame = frame.with_param_values(values).map_err(classify)?;
        }
        let schema = Arc::new(frame.schema().as_arrow().clone());
        // One row past the limit tells an answer that fits from one that does not.
        let max_rows = self.limits.max_rows;
        let frame = frame.limit(0, Some(max_rows + 1)).map_err(classify)?;
        let batches = frame.collect().await.map_err(classify)?;
        let result = QueryResult { schema, batches };
        if result.num_rows() > max_rows {
            return Err(QueryError::Limit(format!(
                "the query returns more than {max_rows} rows ([admin.query-engine] max-rows); add a LIMIT or a \
                 narrower WHERE clause"
            )));
        }
        Ok(result)
    }
}

/// `$1`, `$2`, ... of `plan` in order, with their inferred types.
fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, QueryError> {
    let found = plan.get_parameter_types().map_err(classify)?;
    let mut numbered = Vec::with_capacity(found.len());
    for (name, ty) in found {
        let n: usize = name
            .trim_start_matches('$')
            .parse()
            .map_err(|_| QueryError::Invalid(format!("parameter '{name}' is not numbered: write $1, $2, ...")))?;
        numbered.push((n, ty));
    }
    numbered.sort_by_key(|(n, _)| *n);
    for (expected, (n, _)) in numbered.iter().enumerate() {
        if *n != expected + 1 {
            return Err(QueryError::Invalid(format!(
                "parameters must be $1 to ${}; ${} is missing",
                numbered.len(),
                expected + 1
            )));
        }
    }
    Ok(numbered.into_iter().map(|(_, ty)| ty).collect())
}

/// Parameter `$n`'s text `value` as a value of type `ty`.
fn bind(n: usize, value: Option<&str>, ty: &DataType) -> Result<ScalarValue, QueryError> {
    match value {
        None => ScalarValue::try_from(ty).map_err(|e| QueryError::Invalid(format!("${n}: {e}"))),
        Some(text) => ScalarValue::try_from_string(text.to_owned(), ty)
            .map_err(|_| QueryError::Invalid(format!("${n}: '{text}' is not a value of type {ty}"))),
    }
}

/// Queries only: no DDL (`CREATE`, `DROP`), no DML (`INSERT`), no `SET`.
fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// DataFusion's error as a [`QueryError`], its message without DataFusion's internal prefixes.
fn classify(error: DataFusionError) -> QueryError {
    let error = error.find_root().to_string();
    let message = error.clone();
    match () {
        _ if message.contains("Resources exhausted") => QueryError::Limit(format!(
            "{message} (the query needs more memory than [admin.query-engine] max-memory allows; narrow it)"
        )),
        _ if message.starts_with("External error") => {
            QueryError::Unavailable(message.trim_start_matches("External error: ").to_owned())
        }
        _ if message.contains("SQL error")
            || message.contains("Error during planning")
            || message.contains("Schema error")
            || message.contains("not supported")
            || message.contains("Only statements") =>
        {
            QueryError::Invalid(message)
        }
        _ => QueryError::Internal(message),
    }
}
