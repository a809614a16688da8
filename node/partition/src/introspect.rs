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
    /// Every partition table.
    pub const ALL: [PartitionTable; 6] = [
        PartitionTable::State,
        PartitionTable::Journal,
        PartitionTable::KeyedServiceStatus,
        PartitionTable::Inbox,
        PartitionTable::Idempotency,
        PartitionTable::Promise,
    ];

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
        PartitionTable::ALL.into_iter().find(|t| t.sql_name() == name)
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
        /// The command's name, if the handler gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// For commands the runtime completes: whether the completion is in the journal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        completed: Option<bool>,
        /// For calls: the callee's id (once known) and target.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invoked_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invoked_target: Option<String>,
        /// For sleeps: the wake-up time (ms since the UNIX epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sleep_wakeup_at_ms: Option<u64>,
        /// For promise commands: the promise's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        promise_name: Option<String>,
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

/// Equality constraints of a query on a partition table: rows must match every one set.
/// With `service_name` and `service_key` (or an invocation `id`) only one partition, and in
/// it one key prefix, is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowFilter {
    pub service_name: Option<String>,
    pub service_key: Option<String>,
    /// An invocation id (`id` or `invocation_id` columns).
    pub invocation_id: Option<String>,
}

impl RowFilter {
    pub fn is_empty(&self) -> bool {
        self.service_name.is_none() && self.service_key.is_none() && self.invocation_id.is_none()
    }

    /// The partition key every matching row has, when the filter pins one: a service and
    /// key, or an invocation id.
    pub fn partition_key(&self) -> Option<u64> {
        if let Some(id) = &self.invocation_id {
            return id.parse::<InvocationId>().ok().map(|id| id.partition_key());
        }
        Some(partition_key(self.service_name.as_deref()?, self.service_key.as_deref()?))
    }

    fn keeps(&self, row: &Row) -> bool {
        let (service, key, id) = match row {
            Row::State { service_name, service_key, .. }
            | Row::Promise { service_name, service_key, .. }
            | Row::Inbox { service_name, service_key, .. } => (Some(service_name), Some(service_key), None),
            Row::KeyedServiceStatus { service_name, service_key, invocation_id, .. } => {
                (Some(service_name), Some(service_key), Some(invocation_id))
            }
            Row::Idempotency { service_name, service_key, invocation_id, .. } => {
                (Some(service_name), service_key.as_ref(), Some(invocation_id))
            }
            Row::Journal { id, .. } => (None, None, Some(id)),
        };
        let matches = |wanted: &Option<String>, have: Option<&String>| match (wanted, have) {
            (None, _) => true,
            (Some(w), Some(h)) => w == h,
            (Some(_), None) => false,
        };
        matches(&self.service_name, service)
            && matches(&self.service_key, key)
            && (self.invocation_id.is_none() || matches(&self.invocation_id, id))
    }

    /// The key prefix to read for `table` under this filter (narrower than the table's tag
    /// when the filter pins a service and key, or an invocation's journal).
    fn prefix(&self, table: PartitionTable, tag: u8) -> Vec<u8> {
        let (Some(service), Some(key)) = (&self.service_name, &self.service_key) else {
            if table == PartitionTable::Journal {
                if let Some(id) = self.invocation_id.as_ref().and_then(|id| id.parse::<InvocationId>().ok()) {
                    return keys::journal_prefix(&id);
                }
            }
            return vec![tag];
        };
        match table {
            PartitionTable::State => keys::state_prefix(service, key),
            PartitionTable::Promise => keys::promise_prefix(service, key),
            PartitionTable::Inbox => keys::inbox_prefix(service, key),
            PartitionTable::KeyedServiceStatus => keys::lock(service, key),
            PartitionTable::Journal | PartitionTable::Idempotency => vec![tag],
        }
    }
}

/// The version of an object's state: a hash over its (state key, value) pairs in key
/// order. An edit made against a version applies only while the state still has it.
pub fn state_version<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> String {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for (key, value) in pairs {
        parts.push((key.len() as u64).to_be_bytes().to_vec());
        parts.push(key.to_vec());
        parts.push((value.len() as u64).to_be_bytes().to_vec());
        parts.push(value.to_vec());
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    format!("v{:016x}", super::ids::stable_hash(&parts))
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

/// Every row of `table` in `store` that `filter` keeps. Keys that do not parse (which the
/// state machine never writes) are skipped; values that do not decode are errors.
pub fn rows(store: &dyn KvRead, table: PartitionTable, filter: &RowFilter) -> Result<Vec<Row>, StoreError> {
    let tag = match table {
        PartitionTable::State => keys::STATE,
        PartitionTable::Journal => keys::JOURNAL,
        PartitionTable::KeyedServiceStatus => keys::LOCK,
        PartitionTable::Inbox => keys::INBOX,
        PartitionTable::Idempotency => keys::IDEMPOTENCY,
        PartitionTable::Promise => keys::PROMISE,
    };
    let mut rows = Vec::new();
    // Journal entries as read, for the columns that need the whole journal.
    let mut journal_entries: Vec<(InvocationId, u32, JournalEntry)> = Vec::new();
    for (key, value) in store.scan_prefix(&filter.prefix(table, tag))? {
        let mut at = 1;
        let row = match table {
            PartitionTable::Journal => {
                let Some(id) = keys::id_at(&key, 1) else { continue };
                let Some(index) = keys::u32_at(&key, 1 + INVOCATION_ID_LEN) else { continue };
                let Some(entry) = JournalEntry::from_stored(&value) else { continue };
                let entry_type = entry.message_type().map_or("Unknown", |t| t.name()).to_owned();
                journal_entries.push((id, index, entry));
                Some(Ok(Row::Journal {
                    partition_key: id.partition_key(),
                    id: id.to_string(),
                    index,
                    entry_type,
                    // Filled from the whole journal once it is read (complete_journal_rows).
                    name: None,
                    completed: None,
                    invoked_id: None,
                    invoked_target: None,
                    sleep_wakeup_at_ms: None,
                    promise_name: None,
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
            let row = row?;
            if filter.keeps(&row) {
                rows.push(row);
            }
        }
    }
    if table == PartitionTable::Journal {
        complete_journal_rows(&journal_entries, &mut rows);
    }
    Ok(rows)
}

/// Fills the journal columns of `rows` (see [`super::journal_columns`], some need the
/// invocation's whole journal: whether a command is completed, a call's callee) from
/// `entries` (every entry read, by invocation in key order).
fn complete_journal_rows(entries: &[(InvocationId, u32, JournalEntry)], rows: &mut [Row]) {
    use super::journal_columns::{entry_columns, fill_from_journal};
    let mut filled = std::collections::HashMap::new();
    for journal in entries.chunk_by(|a, b| a.0 == b.0) {
        let just_entries: Vec<JournalEntry> = journal.iter().map(|(_, _, e)| e.clone()).collect();
        let mut columns: Vec<_> = just_entries.iter().map(entry_columns).collect();
        fill_from_journal(&just_entries, &mut columns);
        for ((id, index, _), column) in journal.iter().zip(columns) {
            filled.insert((id.to_string(), *index), column);
        }
    }
    for row in rows.iter_mut() {
        if let Row::Journal {
            id,
            index,
            name,
            completed,
            invoked_id,
            invoked_target,
            sleep_wakeup_at_ms,
            promise_name,
            ..
        } = row
        {
            if let Some(column) = filled.remove(&(id.clone(), *index)) {
                *name = column.name;
                *completed = column.completed;
                *invoked_id = column.invoked_id;
                *invoked_target = column.invoked_target;
                *sleep_wakeup_at_ms = column.sleep_wakeup_at_ms;
                *promise_name = column.promise_name;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_store::MemoryPartitionStore;
    use crate::store::{PartitionStore, WriteSet};
    use restate_types::PartitionId;

    fn store() -> (MemoryPartitionStore, InvocationId) {
        let store = MemoryPartitionStore::new(PartitionId(0));
        let holder = InvocationId::for_workflow_run("Counter", "c-1");
        let waiting = InvocationId::for_workflow_run("Counter", "c-2");
        let mut set = WriteSet::default();
        set.put(keys::state("Counter", "c-1", b"count"), b"5".to_vec());
        set.put(keys::state("Counter", "c-2", b"count"), b"7".to_vec());
        set.put(keys::lock("Counter", "c-1"), holder.to_bytes().to_vec());
        set.put(keys::inbox("Counter", "c-1", 3), waiting.to_bytes().to_vec());
        set.put(keys::journal_entry(&holder, 0), vec![0x04, 0x00, 0x00, 0x00]);
        set.put(keys::journal_entry(&waiting, 0), vec![0x04, 0x00, 0x00, 0x00]);
        store.commit(set).unwrap();
        (store, holder)
    }

    #[test]
    fn rows_decode_the_key_layout_and_filters_narrow_the_scan() {
        let (store, holder) = store();
        let all = rows(&store, PartitionTable::State, &RowFilter::default()).unwrap();
        assert_eq!(all.len(), 2);
        let one =
            RowFilter { service_name: Some("Counter".into()), service_key: Some("c-1".into()), invocation_id: None };
        let state = rows(&store, PartitionTable::State, &one).unwrap();
        assert_eq!(
            state,
            [Row::State {
                partition_key: partition_key("Counter", "c-1"),
                service_name: "Counter".into(),
                service_key: "c-1".into(),
                key: Bytes::from_static(b"count"),
                value: Bytes::from_static(b"5"),
            }]
        );
        assert_eq!(one.partition_key(), Some(partition_key("Counter", "c-1")));
        let locks = rows(&store, PartitionTable::KeyedServiceStatus, &one).unwrap();
        assert!(
            matches!(&locks[..], [Row::KeyedServiceStatus { invocation_id, .. }] if *invocation_id == holder.to_string())
        );
        let inbox = rows(&store, PartitionTable::Inbox, &RowFilter::default()).unwrap();
        assert!(matches!(&inbox[..], [Row::Inbox { sequence_number: 3, service_key, .. }] if service_key == "c-1"));
        let journal_filter = RowFilter { invocation_id: Some(holder.to_string()), ..Default::default() };
        let journal = rows(&store, PartitionTable::Journal, &journal_filter).unwrap();
        assert!(
            matches!(&journal[..], [Row::Journal { index: 0, entry_type, .. }] if entry_type == "StartMessage" || !entry_type.is_empty())
        );
        assert_eq!(rows(&store, PartitionTable::Journal, &RowFilter::default()).unwrap().len(), 2);
        assert_eq!(journal_filter.partition_key(), Some(holder.partition_key()));
        let none = RowFilter { service_name: Some("Other".into()), ..Default::default() };
        assert!(rows(&store, PartitionTable::State, &none).unwrap().is_empty());
        assert_eq!(none.partition_key(), None, "a service alone pins no partition");
    }
}
