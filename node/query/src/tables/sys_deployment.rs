//! `sys_deployment`: the registered deployments (from the registry in the cluster's metadata).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, ListBuilder, StringArray, StringBuilder, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::RowFilter;
use super::{rfc3339_ms, ClusterData, TableRows};

pub(super) struct SysDeployment;

#[async_trait]
impl TableRows for SysDeployment {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("ty", DataType::Utf8, false),
            Field::new("endpoint", DataType::Utf8, false),
            Field::new("created_at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("min_service_protocol_version", DataType::UInt32, false),
            Field::new("max_service_protocol_version", DataType::UInt32, false),
            Field::new("services", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
        ]))
    }

    async fn rows(&self, data: &dyn ClusterData, _filter: &RowFilter) -> Result<RecordBatch, String> {
        let registry = data.registry().await?;
        let deployments: Vec<_> = registry.deployments.values().collect();
        let mut services = ListBuilder::new(StringBuilder::new());
        for deployment in &deployments {
            for service in &deployment.services {
                services.values().append_value(&service.definition.name);
            }
            services.append(true);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(deployments.iter().map(|d| d.id.as_str()))),
            // Every deployment is an HTTP endpoint (no Lambda here).
            Arc::new(StringArray::from_iter_values(deployments.iter().map(|_| "http"))),
            Arc::new(StringArray::from_iter_values(deployments.iter().map(|d| d.uri.as_str()))),
            Arc::new(TimestampMillisecondArray::from_iter(deployments.iter().map(|d| rfc3339_ms(&d.created_at)))),
            Arc::new(UInt32Array::from_iter_values(deployments.iter().map(|d| d.min_protocol_version))),
            Arc::new(UInt32Array::from_iter_values(deployments.iter().map(|d| d.max_protocol_version))),
            Arc::new(services.finish()),
        ];
        RecordBatch::try_new(self.schema(), columns).map_err(|e| e.to_string())
    }
}
