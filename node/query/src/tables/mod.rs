//! The tables, with Restate's names and columns (docs.restate.dev, "SQL Introspection
//! API"). Each is fetched when a query scans it: the registry tables from the node's view of
//! the cluster's metadata, the invocation tables from every partition's leader.

mod partition_tables;
mod sys_deployment;
mod sys_invocation;
mod sys_service;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use restate_metadata::objects::Schema;
pub use restate_partition::introspect::{PartitionTable, Row, RowFilter};

pub use sys_invocation::{AttemptRow, InvocationRow};

/// Where the tables' rows come from; the node implements it over its metadata view and the
/// node fabric.
#[async_trait]
pub trait ClusterData: Send + Sync + 'static {
    /// The service registry (deployments and services).
    async fn registry(&self) -> Result<Schema, String>;
    /// Every invocation of every partition, each from its partition's leader; an error
    /// names the partition (or node) that did not answer.
    /// `filter` may narrow what is read (the partition of an id, or of a service and key);
    /// rows it does not match may still come back (the engine filters them again).
    async fn invocations(&self, filter: &RowFilter) -> Result<Vec<InvocationRow>, String>;
    /// The rows of a partition table that `filter` keeps, in every partition (or only the
    /// one the filter pins), each from its leader; an error names the partitions that did
    /// not answer.
    async fn partition_rows(&self, table: PartitionTable, filter: &RowFilter) -> Result<Vec<Row>, String>;
}

/// A table's rows, built when a query scans it.
#[async_trait]
trait TableRows: Send + Sync + 'static {
    fn schema(&self) -> SchemaRef;
    /// Which of this table's columns narrow a scan by equality, and into which field of
    /// [`RowFilter`].
    fn filter_columns(&self) -> &'static [(&'static str, FilterField)] {
        &[]
    }
    async fn rows(&self, data: &dyn ClusterData, filter: &RowFilter) -> std::result::Result<RecordBatch, String>;
}

/// A field of [`RowFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterField {
    ServiceName,
    ServiceKey,
    InvocationId,
}

/// `column = 'text'` (either way round) as (column, text).
fn equality(expr: &Expr) -> Option<(&str, &str)> {
    let Expr::BinaryExpr(binary) = expr else { return None };
    if binary.op != datafusion::logical_expr::Operator::Eq {
        return None;
    }
    fn text(e: &Expr) -> Option<&str> {
        match e {
            Expr::Literal(
                ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)) | ScalarValue::LargeUtf8(Some(text)),
                _,
            ) => Some(text.as_str()),
            _ => None,
        }
    }
    match (binary.left.as_ref(), binary.right.as_ref()) {
        (Expr::Column(column), other) | (other, Expr::Column(column)) => Some((column.name.as_str(), text(other)?)),
        _ => None,
    }
}

impl FetchedTable {
    fn filter_field(&self, expr: &Expr) -> Option<(FilterField, String)> {
        let (column, text) = equality(expr)?;
        let (_, field) = self.rows.filter_columns().iter().find(|(name, _)| *name == column)?;
        Some((*field, text.to_owned()))
    }
}

/// A [`TableRows`] as DataFusion sees it.
struct FetchedTable {
    rows: Box<dyn TableRows>,
    data: Arc<dyn ClusterData>,
}

impl std::fmt::Debug for FetchedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedTable").field("schema", &self.rows.schema()).finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for FetchedTable {
    fn schema(&self) -> SchemaRef {
        self.rows.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    /// Equalities on the columns of [`TableRows::filter_columns`] narrow the scan; the
    /// engine applies every filter again to what comes back.
    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.filter_field(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut filter = RowFilter::default();
        for (field, text) in filters.iter().filter_map(|f| self.filter_field(f)) {
            match field {
                FilterField::ServiceName => filter.service_name = Some(text),
                FilterField::ServiceKey => filter.service_key = Some(text),
                FilterField::InvocationId => filter.invocation_id = Some(text),
            }
        }
        let batch =
            self.rows.rows(self.data.as_ref(), &filter).await.map_err(|e| DataFusionError::External(e.into()))?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.rows.schema(), projection.cloned())?)
    }
}

/// Registers every table in `ctx`, fed by `data`.
pub(crate) fn register_all(ctx: &SessionContext, data: Arc<dyn ClusterData>) -> Result<()> {
    let tables: Vec<(&str, Box<dyn TableRows>)> = vec![
        ("sys_deployment", Box::new(sys_deployment::SysDeployment)),
        ("sys_service", Box::new(sys_service::SysService)),
        ("sys_invocation", Box::new(sys_invocation::SysInvocation)),
    ];
    let mut tables = tables;
    for table in PartitionTable::ALL {
        tables.push((table.sql_name(), Box::new(partition_tables::FromPartitions(table))));
    }
    for (name, rows) in tables {
        ctx.register_table(name, Arc::new(FetchedTable { rows, data: data.clone() }))?;
    }
    Ok(())
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (`None` when it does not parse).
pub(crate) fn rfc3339_ms(text: &str) -> Option<i64> {
    datafusion::arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(text).ok().map(|ns| ns / 1_000_000)
}
