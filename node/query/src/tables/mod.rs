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
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use restate_metadata::objects::Schema;
pub use restate_partition::introspect::{PartitionTable, Row};

pub use sys_invocation::InvocationRow;

/// Where the tables' rows come from; the node implements it over its metadata view and the
/// node fabric.
#[async_trait]
pub trait ClusterData: Send + Sync + 'static {
    /// The service registry (deployments and services).
    async fn registry(&self) -> Result<Schema, String>;
    /// Every invocation of every partition, each from its partition's leader; an error
    /// names the partition (or node) that did not answer.
    async fn invocations(&self) -> Result<Vec<InvocationRow>, String>;
    /// The rows of a partition table in every partition, each from its leader; an error
    /// names the partitions that did not answer.
    async fn partition_rows(&self, table: PartitionTable) -> Result<Vec<Row>, String>;
}

/// A table's rows, built when a query scans it.
#[async_trait]
trait TableRows: Send + Sync + 'static {
    fn schema(&self) -> SchemaRef;
    async fn rows(&self, data: &dyn ClusterData) -> std::result::Result<RecordBatch, String>;
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

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.rows.rows(self.data.as_ref()).await.map_err(|e| DataFusionError::External(e.into()))?;
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
    for table in partition_tables::ALL {
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
