//! `sys_service`: the registered services (from the registry in the cluster's metadata).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use super::RowFilter;
use super::{ClusterData, TableRows};

pub(super) struct SysService;

/// Restate's spelling of a service type in tables: `service`, `virtual_object`, `workflow`.
pub(crate) fn service_ty(ty: restate_metadata::objects::ServiceType) -> String {
    ty.as_str().to_ascii_lowercase()
}

#[async_trait]
impl TableRows for SysService {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new("revision", DataType::UInt64, false),
            Field::new("public", DataType::Boolean, false),
            Field::new("ty", DataType::Utf8, false),
            Field::new("deployment_id", DataType::Utf8, false),
        ]))
    }

    async fn rows(&self, data: &dyn ClusterData, _filter: &RowFilter) -> Result<RecordBatch, String> {
        let registry = data.registry().await?;
        let services: Vec<_> = registry.services.values().collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(services.iter().map(|s| s.name.as_str()))),
            Arc::new(UInt64Array::from_iter_values(services.iter().map(|s| u64::from(s.revision)))),
            // Every service is reachable through the ingress (no private services yet).
            Arc::new(BooleanArray::from(vec![true; services.len()])),
            Arc::new(StringArray::from_iter_values(services.iter().map(|s| service_ty(s.ty)))),
            Arc::new(StringArray::from_iter_values(services.iter().map(|s| s.deployment_id.as_str()))),
        ];
        RecordBatch::try_new(self.schema(), columns).map_err(|e| e.to_string())
    }
}
