//! Where the SQL tables' rows come from on this node: the registry from the metadata view,
//! invocations from every partition's leader over the node fabric. A query that needs a
//! partition whose leader does not answer fails naming it (never a silent partial answer).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use restate_metadata::objects::Schema;
use restate_partition::introspect::{PartitionTable, Row, RowFilter};
use restate_query::{ClusterData, InvocationRow};

use crate::routing_metadata::RoutingMetadata;

/// How long the partitions' leaders together may take to answer one table scan.
const SCAN_DEADLINE: Duration = Duration::from_secs(30);

/// `scan`'s answer, or an error once [`SCAN_DEADLINE`] has passed.
async fn within_deadline<T>(scan: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(SCAN_DEADLINE, scan)
        .await
        .map_err(|_| format!("the partitions' leaders did not all answer within {}s", SCAN_DEADLINE.as_secs()))
}

pub(crate) struct NodeQueryData {
    pub routing: Arc<RoutingMetadata>,
}

#[async_trait]
impl ClusterData for NodeQueryData {
    async fn registry(&self) -> Result<Schema, String> {
        Ok(self.routing.schema(false).await?.map(|held| held.0.clone()).unwrap_or_default())
    }

    async fn partition_rows(&self, table: PartitionTable, filter: &RowFilter) -> Result<Vec<Row>, String> {
        within_deadline(crate::invocations::scan_all(&self.routing, table, filter)).await?
    }

    async fn invocations(&self, filter: &RowFilter) -> Result<Vec<InvocationRow>, String> {
        // An id pins one record: its partition's leader reads just that one.
        let id = filter.invocation_id.as_deref().and_then(|id| id.parse::<restate_partition::InvocationId>().ok());
        let listed = crate::invocations::list_in(&self.routing, filter.partition_key(), id.as_ref());
        let (all, missing) = within_deadline(listed).await??;
        crate::invocations::every_partition_answered(&missing)?;
        Ok(all
            .into_iter()
            .map(|i| InvocationRow {
                id: i.invocation_id,
                target: i.target,
                status: i.status,
                idempotency_key: i.idempotency_key,
                created_at_ms: i.submitted_at_ms,
                completed_at_ms: i.completed_at_ms,
                failure: i.failed.then(|| format!("[{}] {}", i.failure_code, i.failure_message)),
                attempt: i.attempt.map(|a| restate_query::AttemptRow {
                    retry_count: a.retry_count,
                    last_start_at_ms: a.last_start_at_ms,
                    next_retry_at_ms: a.next_retry_at_ms,
                    last_failure: a.last_failure,
                    last_failure_code: a.last_failure_code,
                    deployment_id: a.deployment_id,
                    in_flight: a.in_flight,
                }),
            })
            .collect())
    }
}
