//! What `sys_journal` shows of an entry beyond its type (pure): the command's name, whether
//! it is completed, whom a call invoked, when a sleep wakes up, which promise it touches.
//! Every command of the service protocol carries its name at field 12 and, when the
//! runtime completes it, its `result_completion_id` at field 11; the rest is per type.

use prost::Message as _;
use restate_service_protocol::protocol::{pb, MessageType};

use super::journal::{JournalEntry, NotificationId};

/// The columns of one entry; `completed` and `invoked_id` need the invocation's whole
/// journal ([`fill_from_journal`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryColumns {
    /// The name the handler gave the command (`ctx.run("name", ...)`), if any.
    pub name: Option<String>,
    /// For commands the runtime completes: whether their completion is in the journal.
    pub completed: Option<bool>,
    /// For calls and one-way calls: the callee's invocation id, once known.
    pub invoked_id: Option<String>,
    /// For calls and one-way calls: `Service/handler` or `Object/key/handler`.
    pub invoked_target: Option<String>,
    /// For sleeps: the wake-up time, ms since the UNIX epoch.
    pub sleep_wakeup_at_ms: Option<u64>,
    /// For promise commands: the promise's name.
    pub promise_name: Option<String>,
    /// Completion ids the entry waits for: its result, and a call's invocation id.
    result_completion_id: Option<u32>,
    invocation_id_index: Option<u32>,
}

/// The fields every command shares.
#[derive(Clone, PartialEq, prost::Message)]
struct CommandCommon {
    #[prost(uint32, optional, tag = "11")]
    result_completion_id: Option<u32>,
    #[prost(string, tag = "12")]
    name: String,
}

/// The key (field 1) of the promise commands.
#[derive(Clone, PartialEq, prost::Message)]
struct PromiseKey {
    #[prost(string, tag = "1")]
    key: String,
}

fn target(service: &str, key: &str, handler: &str) -> String {
    if key.is_empty() {
        format!("{service}/{handler}")
    } else {
        format!("{service}/{key}/{handler}")
    }
}

/// The columns `entry` alone tells (none for notifications and undecodable bodies).
pub fn entry_columns(entry: &JournalEntry) -> EntryColumns {
    let Some(ty) = entry.message_type() else { return EntryColumns::default() };
    if !ty.is_command() {
        return EntryColumns::default();
    }
    let body = entry.body.clone();
    let common = CommandCommon::decode(body.clone()).unwrap_or_default();
    let mut columns = EntryColumns {
        name: Some(common.name).filter(|n| !n.is_empty()),
        result_completion_id: common.result_completion_id,
        ..EntryColumns::default()
    };
    match ty {
        MessageType::CallCommand => {
            if let Ok(call) = pb::CallCommandMessage::decode(body) {
                columns.invoked_target = Some(target(&call.service_name, &call.key, &call.handler_name));
                columns.invocation_id_index = Some(call.invocation_id_notification_idx);
            }
        }
        MessageType::OneWayCallCommand => {
            if let Ok(call) = pb::OneWayCallCommandMessage::decode(body) {
                columns.invoked_target = Some(target(&call.service_name, &call.key, &call.handler_name));
                columns.invocation_id_index = Some(call.invocation_id_notification_idx);
            }
        }
        MessageType::SleepCommand => {
            columns.sleep_wakeup_at_ms = pb::SleepCommandMessage::decode(body).ok().map(|s| s.wake_up_time);
        }
        MessageType::GetPromiseCommand | MessageType::PeekPromiseCommand | MessageType::CompletePromiseCommand => {
            columns.promise_name = PromiseKey::decode(body).ok().map(|p| p.key);
        }
        _ => {}
    }
    columns
}

/// Completes `columns` (one per entry of one invocation's `journal`, in order) with what
/// the journal's notifications say: which results arrived, and the callees' ids.
pub fn fill_from_journal(journal: &[JournalEntry], columns: &mut [EntryColumns]) {
    let mut completed = std::collections::BTreeSet::new();
    let mut callees = std::collections::BTreeMap::new();
    for entry in journal {
        if let Some(NotificationId::Completion(id)) = entry.notification_id() {
            completed.insert(id);
            if entry.message_type() == Some(MessageType::CallInvocationIdCompletionNotification) {
                if let Ok(n) = pb::CallInvocationIdCompletionNotificationMessage::decode(entry.body.clone()) {
                    callees.insert(n.completion_id, n.invocation_id);
                }
            }
        }
    }
    for column in columns.iter_mut() {
        if let Some(id) = column.result_completion_id {
            column.completed = Some(completed.contains(&id));
        }
        if let Some(index) = column.invocation_id_index {
            column.invoked_id = callees.get(&index).cloned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use restate_service_protocol::protocol::Message;

    fn entry(message: Message) -> JournalEntry {
        JournalEntry::from_message(&message).unwrap()
    }

    #[test]
    fn calls_sleeps_and_runs_show_their_columns_and_completion() {
        let call = entry(Message::CallCommand(pb::CallCommandMessage {
            service_name: "Counter".into(),
            handler_name: "add".into(),
            key: "c-1".into(),
            invocation_id_notification_idx: 1,
            result_completion_id: 2,
            name: "count it".into(),
            ..Default::default()
        }));
        let sleep = entry(Message::SleepCommand(pb::SleepCommandMessage {
            wake_up_time: 1_767_000_000_000,
            result_completion_id: 3,
            name: String::new(),
        }));
        let callee =
            entry(Message::CallInvocationIdCompletionNotification(pb::CallInvocationIdCompletionNotificationMessage {
                completion_id: 1,
                invocation_id: "inv_callee".into(),
            }));
        let woke = JournalEntry::sleep_completion(3);
        let input = JournalEntry::input(&Bytes::from_static(b"1"), &[]);
        let journal = [input, call, sleep, callee, woke];
        let mut columns: Vec<EntryColumns> = journal.iter().map(entry_columns).collect();
        fill_from_journal(&journal, &mut columns);

        assert_eq!(columns[0].completed, None, "the input completes nothing");
        assert_eq!(columns[1].name.as_deref(), Some("count it"));
        assert_eq!(columns[1].invoked_target.as_deref(), Some("Counter/c-1/add"));
        assert_eq!(columns[1].invoked_id.as_deref(), Some("inv_callee"));
        assert_eq!(columns[1].completed, Some(false), "the call's result has not arrived");
        assert_eq!(columns[2].sleep_wakeup_at_ms, Some(1_767_000_000_000));
        assert_eq!(columns[2].completed, Some(true), "the timer fired");
        assert_eq!(columns[2].name, None);
        assert_eq!(columns[3], EntryColumns::default(), "notifications have none of these");
    }
}
