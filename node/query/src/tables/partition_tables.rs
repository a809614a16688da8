//! The tables every partition answers for its own keys: `state`, `sys_journal`,
//! `sys_keyed_service_status`, `sys_inbox`, `sys_idempotency`, `sys_promise`, with
//! Restate's columns (those this cluster keeps; see docs/querying.md).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, StringArray, TimestampMillisecondArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::{ClusterData, FilterField, PartitionTable, Row, RowFilter, TableRows};

/// One partition table, fetched from every partition's leader when scanned.
pub(super) struct FromPartitions(pub PartitionTable);

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn optional_strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

#[async_trait]
impl TableRows for FromPartitions {
    fn schema(&self) -> SchemaRef {
        let key = Field::new("partition_key", DataType::UInt64, false);
        Arc::new(Schema::new(match self.0 {
            PartitionTable::State => vec![
                key,
                utf8("service_name", false),
                utf8("service_key", false),
                utf8("key", false),
                Field::new("key_length", DataType::UInt64, false),
                utf8("value_utf8", true),
                Field::new("value", DataType::Binary, false),
                Field::new("value_length", DataType::UInt64, false),
            ],
            PartitionTable::Journal => vec![
                key,
                utf8("id", false),
                Field::new("index", DataType::UInt32, false),
                utf8("entry_type", false),
                utf8("name", true),
                Field::new("completed", DataType::Boolean, true),
                utf8("invoked_id", true),
                utf8("invoked_target", true),
                Field::new("sleep_wakeup_at", DataType::Timestamp(TimeUnit::Millisecond, None), true),
                utf8("promise_name", true),
                Field::new("raw", DataType::Binary, false),
            ],
            PartitionTable::KeyedServiceStatus => {
                vec![key, utf8("service_name", false), utf8("service_key", false), utf8("invocation_id", false)]
            }
            PartitionTable::Inbox => vec![
                key,
                utf8("service_name", false),
                utf8("service_key", false),
                utf8("id", false),
                Field::new("sequence_number", DataType::UInt64, false),
            ],
            PartitionTable::Idempotency => vec![
                key,
                utf8("service_name", false),
                utf8("service_key", true),
                utf8("service_handler", false),
                utf8("idempotency_key", false),
                utf8("invocation_id", false),
            ],
            PartitionTable::Promise => vec![
                key,
                utf8("service_name", false),
                utf8("service_key", false),
                utf8("key", false),
                Field::new("completed", DataType::Boolean, false),
                Field::new("completion_success_value", DataType::Binary, true),
                utf8("completion_success_value_utf8", true),
                utf8("completion_failure", true),
            ],
        }))
    }

    fn filter_columns(&self) -> &'static [(&'static str, FilterField)] {
        const KEYED: &[(&str, FilterField)] =
            &[("service_name", FilterField::ServiceName), ("service_key", FilterField::ServiceKey)];
        const KEYED_WITH_ID: &[(&str, FilterField)] = &[
            ("service_name", FilterField::ServiceName),
            ("service_key", FilterField::ServiceKey),
            ("invocation_id", FilterField::InvocationId),
        ];
        match self.0 {
            PartitionTable::State | PartitionTable::Inbox | PartitionTable::Promise => KEYED,
            PartitionTable::KeyedServiceStatus | PartitionTable::Idempotency => KEYED_WITH_ID,
            PartitionTable::Journal => &[("id", FilterField::InvocationId)],
        }
    }

    async fn rows(&self, data: &dyn ClusterData, filter: &RowFilter) -> Result<RecordBatch, String> {
        let rows = data.partition_rows(self.0, filter).await?;
        let columns = columns(self.0, &rows);
        RecordBatch::try_new(self.schema(), columns).map_err(|e| e.to_string())
    }
}

/// The columns of `table` from `rows` (rows of other tables are ignored).
fn columns(table: PartitionTable, rows: &[Row]) -> Vec<ArrayRef> {
    match table {
        PartitionTable::State => {
            let rows: Vec<_> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::State { partition_key, service_name, service_key, key, value } => {
                        Some((*partition_key, service_name, service_key, key, value))
                    }
                    _ => None,
                })
                .collect();
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
                strings(rows.iter().map(|r| r.1.as_str())),
                strings(rows.iter().map(|r| r.2.as_str())),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| String::from_utf8_lossy(r.3).into_owned()))),
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.3.len() as u64))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| std::str::from_utf8(r.4).ok()))),
                Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| r.4.as_ref()))),
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.4.len() as u64))),
            ]
        }
        PartitionTable::Journal => {
            let rows: Vec<&Row> = rows.iter().filter(|r| matches!(r, Row::Journal { .. })).collect();
            let field = |get: fn(&Row) -> Option<&str>| {
                Arc::new(StringArray::from_iter(rows.iter().map(|r| get(r)))) as ArrayRef
            };
            macro_rules! journal {
                ($row:expr, $field:ident) => {
                    match $row {
                        Row::Journal { $field, .. } => $field,
                        _ => unreachable!("filtered to journal rows"),
                    }
                };
            }
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| *journal!(r, partition_key)))),
                strings(rows.iter().map(|r| journal!(r, id).as_str())),
                Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| *journal!(r, index)))),
                strings(rows.iter().map(|r| journal!(r, entry_type).as_str())),
                field(|r| journal!(r, name).as_deref()),
                Arc::new(BooleanArray::from(rows.iter().map(|r| *journal!(r, completed)).collect::<Vec<_>>())),
                field(|r| journal!(r, invoked_id).as_deref()),
                field(|r| journal!(r, invoked_target).as_deref()),
                Arc::new(TimestampMillisecondArray::from_iter(
                    rows.iter().map(|r| journal!(r, sleep_wakeup_at_ms).map(|t| t as i64)),
                )),
                field(|r| journal!(r, promise_name).as_deref()),
                Arc::new(BinaryArray::from_iter_values(rows.iter().map(|r| journal!(r, raw).as_ref()))),
            ]
        }
        PartitionTable::KeyedServiceStatus => {
            let rows: Vec<_> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::KeyedServiceStatus { partition_key, service_name, service_key, invocation_id } => {
                        Some((*partition_key, service_name, service_key, invocation_id))
                    }
                    _ => None,
                })
                .collect();
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
                strings(rows.iter().map(|r| r.1.as_str())),
                strings(rows.iter().map(|r| r.2.as_str())),
                strings(rows.iter().map(|r| r.3.as_str())),
            ]
        }
        PartitionTable::Inbox => {
            let rows: Vec<_> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::Inbox { partition_key, service_name, service_key, id, sequence_number } => {
                        Some((*partition_key, service_name, service_key, id, *sequence_number))
                    }
                    _ => None,
                })
                .collect();
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
                strings(rows.iter().map(|r| r.1.as_str())),
                strings(rows.iter().map(|r| r.2.as_str())),
                strings(rows.iter().map(|r| r.3.as_str())),
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.4))),
            ]
        }
        PartitionTable::Idempotency => {
            let rows: Vec<_> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::Idempotency {
                        partition_key,
                        service_name,
                        service_key,
                        service_handler,
                        idempotency_key,
                        invocation_id,
                    } => Some((
                        *partition_key,
                        service_name,
                        service_key,
                        service_handler,
                        idempotency_key,
                        invocation_id,
                    )),
                    _ => None,
                })
                .collect();
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
                strings(rows.iter().map(|r| r.1.as_str())),
                optional_strings(rows.iter().map(|r| r.2.as_deref())),
                strings(rows.iter().map(|r| r.3.as_str())),
                strings(rows.iter().map(|r| r.4.as_str())),
                strings(rows.iter().map(|r| r.5.as_str())),
            ]
        }
        PartitionTable::Promise => {
            let rows: Vec<_> = rows
                .iter()
                .filter_map(|r| match r {
                    Row::Promise {
                        partition_key,
                        service_name,
                        service_key,
                        key,
                        completed,
                        completion_success_value,
                        completion_failure,
                    } => Some((
                        *partition_key,
                        service_name,
                        service_key,
                        key,
                        *completed,
                        completion_success_value,
                        completion_failure,
                    )),
                    _ => None,
                })
                .collect();
            vec![
                Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.0))),
                strings(rows.iter().map(|r| r.1.as_str())),
                strings(rows.iter().map(|r| r.2.as_str())),
                strings(rows.iter().map(|r| r.3.as_str())),
                Arc::new(BooleanArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>())),
                Arc::new(BinaryArray::from_iter(rows.iter().map(|r| r.5.as_deref()))),
                optional_strings(rows.iter().map(|r| r.5.as_deref().and_then(|v| std::str::from_utf8(v).ok()))),
                optional_strings(rows.iter().map(|r| r.6.as_deref())),
            ]
        }
    }
}
