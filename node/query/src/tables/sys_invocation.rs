//! `sys_invocation`: every invocation of every partition, as its partition's leader has it.
//!
//! Status names as Restate's: `pending` (in a key's inbox), `scheduled` (to start later),
//! `ready` (to be run, no attempt under way), `running` (an attempt talks to the
//! deployment), `backing-off` (waiting to retry a failed attempt), `suspended`, `paused`,
//! `completed`. The attempt columns are the leader's (`retry_count` counts attempts since
//! it took the invocation up).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::sys_service::service_ty;
use super::{ClusterData, FilterField, RowFilter, TableRows};

/// One invocation as a partition's leader reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationRow {
    pub id: String,
    /// `Service/handler` or `Object/key/handler`.
    pub target: String,
    /// The partition's own name of the status: `inboxed`, `scheduled`, `invoked`,
    /// `suspended`, `completed`.
    pub status: String,
    pub idempotency_key: Option<String>,
    pub created_at_ms: u64,
    pub completed_at_ms: Option<u64>,
    /// For completed invocations that failed: the failure, as `[code] message`.
    pub failure: Option<String>,
    /// The leader's current attempt of an `invoked` invocation (none between rounds).
    pub attempt: Option<AttemptRow>,
}

/// An invocation's current attempt, as its leader reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptRow {
    pub retry_count: u32,
    pub last_start_at_ms: Option<u64>,
    /// Set while backing off after a failed attempt.
    pub next_retry_at_ms: Option<u64>,
    pub last_failure: Option<String>,
    pub last_failure_code: Option<u32>,
    pub deployment_id: Option<String>,
    /// An attempt talks to the deployment now.
    pub in_flight: bool,
}

/// Restate's name of a partition's status (`invoked` by its attempt).
fn status_name<'a>(internal: &'a str, attempt: Option<&AttemptRow>) -> &'a str {
    match (internal, attempt) {
        ("inboxed", _) => "pending",
        ("invoked", Some(a)) if a.in_flight => "running",
        ("invoked", Some(a)) if a.next_retry_at_ms.is_some() => "backing-off",
        ("invoked", _) => "ready",
        (other, _) => other,
    }
}

/// `(service, key, handler)` of a target: `Service/handler` or `Object/key/handler` (a key
/// may itself hold `/`).
fn split_target(target: &str) -> (&str, Option<&str>, &str) {
    let Some((service, rest)) = target.split_once('/') else { return (target, None, "") };
    match rest.rsplit_once('/') {
        Some((key, handler)) => (service, Some(key), handler),
        None => (service, None, rest),
    }
}

pub(super) struct SysInvocation;

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

#[async_trait]
impl TableRows for SysInvocation {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("target", DataType::Utf8, false),
            Field::new("target_service_name", DataType::Utf8, false),
            Field::new("target_service_key", DataType::Utf8, true),
            Field::new("target_handler_name", DataType::Utf8, false),
            Field::new("target_service_ty", DataType::Utf8, true),
            Field::new("idempotency_key", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, false),
            Field::new("created_at", timestamp(), false),
            Field::new("completed_at", timestamp(), true),
            Field::new("completion_result", DataType::Utf8, true),
            Field::new("completion_failure", DataType::Utf8, true),
            Field::new("retry_count", DataType::UInt64, true),
            Field::new("last_start_at", timestamp(), true),
            Field::new("next_retry_at", timestamp(), true),
            Field::new("last_attempt_deployment_id", DataType::Utf8, true),
            Field::new("last_failure", DataType::Utf8, true),
            Field::new("last_failure_error_code", DataType::Utf8, true),
        ]))
    }

    fn filter_columns(&self) -> &'static [(&'static str, FilterField)] {
        &[
            ("id", FilterField::InvocationId),
            ("target_service_name", FilterField::ServiceName),
            ("target_service_key", FilterField::ServiceKey),
        ]
    }

    async fn rows(&self, data: &dyn ClusterData, filter: &RowFilter) -> Result<RecordBatch, String> {
        let (registry, invocations) = futures::try_join!(data.registry(), data.invocations(filter))?;
        let types: BTreeMap<&str, String> =
            registry.services.values().map(|s| (s.name.as_str(), service_ty(s.ty))).collect();
        let targets: Vec<_> = invocations.iter().map(|i| split_target(&i.target)).collect();
        let completed = |i: &InvocationRow| i.status == "completed";
        let attempts: Vec<Option<&AttemptRow>> = invocations.iter().map(|i| i.attempt.as_ref()).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(invocations.iter().map(|i| i.id.as_str()))),
            Arc::new(StringArray::from_iter_values(invocations.iter().map(|i| i.target.as_str()))),
            Arc::new(StringArray::from_iter_values(targets.iter().map(|t| t.0))),
            Arc::new(StringArray::from_iter(targets.iter().map(|t| t.1))),
            Arc::new(StringArray::from_iter_values(targets.iter().map(|t| t.2))),
            Arc::new(StringArray::from_iter(targets.iter().map(|t| types.get(t.0).map(String::as_str)))),
            Arc::new(StringArray::from_iter(invocations.iter().map(|i| i.idempotency_key.as_deref()))),
            Arc::new(StringArray::from_iter_values(
                invocations.iter().map(|i| status_name(&i.status, i.attempt.as_ref())),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(invocations.iter().map(|i| i.created_at_ms as i64))),
            Arc::new(TimestampMillisecondArray::from_iter(
                invocations.iter().map(|i| i.completed_at_ms.map(|t| t as i64)),
            )),
            Arc::new(StringArray::from_iter(
                invocations
                    .iter()
                    .map(|i| completed(i).then_some(if i.failure.is_some() { "failure" } else { "success" })),
            )),
            Arc::new(StringArray::from_iter(invocations.iter().map(|i| i.failure.as_deref()))),
            Arc::new(UInt64Array::from_iter(attempts.iter().map(|a| a.map(|a| a.retry_count as u64)))),
            Arc::new(TimestampMillisecondArray::from_iter(
                attempts.iter().map(|a| a.and_then(|a| a.last_start_at_ms).map(|t| t as i64)),
            )),
            Arc::new(TimestampMillisecondArray::from_iter(
                attempts.iter().map(|a| a.and_then(|a| a.next_retry_at_ms).map(|t| t as i64)),
            )),
            Arc::new(StringArray::from_iter(attempts.iter().map(|a| a.and_then(|a| a.deployment_id.as_deref())))),
            Arc::new(StringArray::from_iter(attempts.iter().map(|a| a.and_then(|a| a.last_failure.as_deref())))),
            Arc::new(StringArray::from_iter(
                attempts.iter().map(|a| a.and_then(|a| a.last_failure_code).map(|c| c.to_string())),
            )),
        ];
        RecordBatch::try_new(self.schema(), columns).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_service_key_and_handler() {
        assert_eq!(split_target("Greeter/greet"), ("Greeter", None, "greet"));
        assert_eq!(split_target("Counter/c-1/add"), ("Counter", Some("c-1"), "add"));
        assert_eq!(split_target("Counter/a/b/add"), ("Counter", Some("a/b"), "add"));
        assert_eq!(status_name("inboxed", None), "pending");
        assert_eq!(status_name("suspended", None), "suspended");
        assert_eq!(status_name("paused", None), "paused");
    }

    #[test]
    fn an_invoked_invocation_is_named_by_its_attempt() {
        let running = AttemptRow { in_flight: true, ..Default::default() };
        let waiting = AttemptRow { next_retry_at_ms: Some(5), last_failure: Some("boom".into()), ..Default::default() };
        assert_eq!(status_name("invoked", Some(&running)), "running");
        assert_eq!(status_name("invoked", Some(&waiting)), "backing-off");
        assert_eq!(status_name("invoked", Some(&AttemptRow::default())), "ready");
        assert_eq!(status_name("invoked", None), "ready");
    }
}
