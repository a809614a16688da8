//! What a partition holds, as rows for the SQL tables (`state`, `sys_journal`,
//! `sys_keyed_service_status`, `sys_inbox`, `sys_idempotency`, `sys_promise`): pure reads
//! over the key layout of [`super::keys`]. Rows serialize to JSON (bytes as base64) to
//! cross the node fabric from a partition's leader to the node running the query.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::codec::{base64_bytes, from_json, CorruptValue};
use super::ids::{partition_key, InvocationId, INVOCATION_ID_LEN};
use super::journal::JournalEntry;
use super::keys;
use super::promise::PromiseState;
use super::store::{KvRead, StoreError};

/// A table a partition answers rows for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTable {
    State,
    Journal,
    KeyedServiceStatus,
    Inbox,
    Idempotency,
    Promise,
}

impl PartitionTable {
    /// The table's SQL name.
    pub fn sql_name(self) -> &'static str {
        match self {
            PartitionTable::State => "state",
            PartitionTable::Journal => "sys_journal",
            PartitionTable::KeyedServiceStatus => "sys_keyed_service_status",
            PartitionTable::Inbox => "sys_inbox",
            PartitionTable::Idempotency => "sys_idempotency",
            PartitionTable::Promise => "sys_promise",
        }
    }

    pub fn from_sql_name(name: &str) -> Option<PartitionTable> {
        [
            PartitionTable::State,
            PartitionTable::Journal,
            PartitionTable::KeyedServiceStatus,
            PartitionTable::Inbox,
            PartitionTable::Idempotency,
            PartitionTable::Promise,
        ]
        .into_iter()
        .find(|t| t.sql_name() == name)
    }
}

/// One row of one of the tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum Row {
    State {
        partition_key: u64,
        service_name: String,
        service_key: String,
        #[serde(with = "base64_bytes")]
        key: Bytes,
        #[serde(with = "base64_bytes")]
        value: Bytes,
    },
    Journal {
        partition_key: u64,
        id: String,
        index: u32,
        /// The protocol message's name, e.g. `CallCommand`, `SleepCompletionNotification`.
        entry_type: String,
        /// The whole frame (header and body) as the SDK sent it.
        #[serde(with = "base64_bytes")]
        raw: Bytes,
    },
    KeyedServiceStatus {
        partition_key: u64,
        service_name: String,
        service_key: String,
        invocation_id: String,
    },
    Inbox {
        partition_key: u64,
        service_name: String,
        service_key: String,
        id: String,
        sequence_number: u64,
    },
    Idempotency {
        partition_key: u64,
        service_name: String,
        service_key: Option<String>,
        service_handler: String,
        idempotency_key: String,
        invocation_id: String,
    },
    Promise {
        partition_key: u64,
        service_name: String,
        service_key: String,
        key: String,
        completed: bool,
        completion_success_value: Option<Vec<u8>>,
        completion_failure: Option<String>,
    },
}

/// A length-prefixed string at `*at` of `key`, advancing `*at`.
fn take_str(key: &[u8], at: &mut usize) -> Option<String> {
    let len = keys::u32_at(key, *at)? as usize;
    let text = key.get(*at + 4..*at + 4 + len)?;
    *at += 4 + len;
    String::from_utf8(text.to_vec()).ok()
}

fn id_value(value: &[u8]) -> Option<String> {
    let bytes: [u8; INVOCATION_ID_LEN] = value.try_into().ok()?;
    Some(InvocationId::from_bytes(bytes).to_string())
}

/// Every row of `table` in `store`. Keys that do not parse (which the state machine never
/// writes) are skipped; values that do not decode are errors.
pub fn rows(store: &dyn KvRead, table: PartitionTable) -> Result<Vec<Row>, StoreError> {
    let tag = match table {
        PartitionTable::State => keys::STATE,
        PartitionTable::Journal => keys::JOURNAL,
        PartitionTable::KeyedServiceStatus => keys::LOCK,
        PartitionTable::Inbox => keys::INBOX,
        PartitionTable::Idempotency => keys::IDEMPOTENCY,
        PartitionTable::Promise => keys::PROMISE,
    };
    let mut rows = Vec::new();
    for (key, value) in store.scan_prefix(&[tag])? {
        let mut at = 1;
        let row = match table {
            PartitionTable::Journal => {
                let Some(id) = keys::id_at(&key, 1) else { continue };
                let Some(index) = keys::u32_at(&key, 1 + INVOCATION_ID_LEN) else { continue };
                let Some(entry) = JournalEntry::from_stored(&value) else { continue };
                Some(Ok(Row::Journal {
                    partition_key: id.partition_key(),
                    id: id.to_string(),
                    index,
                    entry_type: entry.message_type().map_or("Unknown", |t| t.name()).to_owned(),
                    raw: Bytes::from(value),
                }))
            }
            PartitionTable::Idempotency => (|| -> Option<Result<Row, CorruptValue>> {
                let service_name = take_str(&key, &mut at)?;
                let service_handler = take_str(&key, &mut at)?;
                let has_key = *key.get(at)?;
                at += 1;
                let service_key = if has_key == 1 { Some(take_str(&key, &mut at)?) } else { None };
                let idempotency_key = String::from_utf8(key.get(at..)?.to_vec()).ok()?;
                let id = id_value(&value)?;
                Some(Ok(Row::Idempotency {
                    partition_key: partition_key(&service_name, service_key.as_deref().unwrap_or(&idempotency_key)),
                    service_name,
                    service_key,
                    service_handler,
                    idempotency_key,
                    invocation_id: id,
                }))
            })(),
            _ => (|| -> Option<Result<Row, CorruptValue>> {
                let service_name = take_str(&key, &mut at)?;
                let service_key = take_str(&key, &mut at)?;
                let partition_key = partition_key(&service_name, &service_key);
                match table {
                    PartitionTable::State => Some(Ok(Row::State {
                        partition_key,
                        service_name,
                        service_key,
                        key: Bytes::copy_from_slice(key.get(at..)?),
                        value: Bytes::from(value.clone()),
                    })),
                    PartitionTable::KeyedServiceStatus => Some(Ok(Row::KeyedServiceStatus {
                        partition_key,
                        service_name,
                        service_key,
                        invocation_id: id_value(&value)?,
                    })),
                    PartitionTable::Inbox => Some(Ok(Row::Inbox {
                        partition_key,
                        service_name,
                        service_key,
                        sequence_number: keys::u64_at(&key, at)?,
                        id: id_value(&value)?,
                    })),
                    PartitionTable::Promise => {
                        let name = take_str(&key, &mut at)?;
                        let promise: PromiseState = match from_json("promise", &key, &value) {
                            Ok(promise) => promise,
                            Err(e) => return Some(Err(e)),
                        };
                        let (completed, value, failure) = match promise {
                            PromiseState::Pending { .. } => (false, None, None),
                            PromiseState::Completed(Ok(value)) => (true, Some(value.to_vec()), None),
                            PromiseState::Completed(Err(f)) => {
                                (true, None, Some(format!("[{}] {}", f.code, f.message)))
                            }
                        };
                        Some(Ok(Row::Promise {
                            partition_key,
                            service_name,
                            service_key,
                            key: name,
                            completed,
                            completion_success_value: value,
                            completion_failure: failure,
                        }))
                    }
                    _ => None,
                }
            })(),
        };
        if let Some(row) = row {
            rows.push(row?);
        }
    }
    Ok(rows)
}
