//! Scenario tests of the partition state machine: a log is built record by record and
//! applied as a replica would, over either store.

mod awaiting;
mod batches;
mod calls;
mod idempotency;
mod journal;
mod locking;
mod pausing;
mod promises;
mod replay;
mod scheduled;
mod signals;

use bytes::Bytes;
use restate_types::{Lsn, PartitionId, ServiceType};

use super::*;
use restate_service_protocol::protocol::{pb, Message};

/// One partition: its state machine and the log applied to it so far.
pub struct Partition<S: PartitionStore> {
    pub sm: PartitionStateMachine<S>,
    pub log: Vec<Envelope>,
}

impl<S: PartitionStore> Partition<S> {
    pub fn new(store: S) -> Partition<S> {
        Partition { sm: PartitionStateMachine::open(store).unwrap(), log: Vec::new() }
    }

    /// Appends `envelope` to the log and applies it at the next LSN.
    pub fn append(&mut self, envelope: Envelope) -> Vec<Effect> {
        self.log.push(envelope.clone());
        let lsn = Lsn(self.log.len() as u64);
        // Through the byte encoding, as records come off a real log.
        self.sm.apply_record(lsn, &envelope.encode()).unwrap()
    }

    /// Appends a command of the current leader.
    pub fn lead(&mut self, command: Command) -> Vec<Effect> {
        self.append(Envelope::from_leader(self.sm.leader_epoch(), command))
    }

    /// Appends a command from outside the partition (epoch 0).
    pub fn external(&mut self, command: Command) -> Vec<Effect> {
        self.append(Envelope::external(command))
    }

    pub fn invoke(&mut self, request: InvocationRequest) -> Vec<Effect> {
        self.external(Command::Invoke(request))
    }

    /// The leader journals `entries` after the commands already in the journal.
    pub fn journal(&mut self, id: InvocationId, entries: Vec<JournalEntry>) -> Vec<Effect> {
        let first_command_index = self.record(id).journal.commands;
        self.lead(Command::Journal { id, first_command_index, entries })
    }

    pub fn complete(&mut self, id: InvocationId, output: &'static [u8]) -> Vec<Effect> {
        self.lead(Command::Complete { id, result: Ok(Bytes::from_static(output)), completed_at_ms: 1_000 })
    }

    pub fn record(&self, id: InvocationId) -> InvocationRecord {
        self.sm.store().invocation(&id).unwrap().unwrap_or_else(|| panic!("no invocation {id}"))
    }

    pub fn status(&self, id: InvocationId) -> InvocationStatus {
        self.record(id).status
    }

    pub fn dump(&self) -> String {
        self.sm.store().canonical_dump().unwrap()
    }
}

pub fn memory() -> Partition<MemoryPartitionStore> {
    let mut partition = Partition::new(MemoryPartitionStore::new(PartitionId(0)));
    partition.append(Envelope::announce_leader(1, "N1"));
    partition
}

/// A request to the virtual object `Counter` on `key`, answered to ingress request
/// `req-{n}`.
pub fn object_request(n: u8, key: &str, handler: &str, shared: bool) -> InvocationRequest {
    InvocationRequest {
        id: InvocationId::for_target("Counter", handler, Some(key), None, [n; 16]),
        target: Target {
            service: "Counter".into(),
            handler: handler.into(),
            key: Some(key.into()),
            kind: ServiceType::VirtualObject,
            handler_shared: shared,
        },
        input: Bytes::from_static(b"1"),
        headers: Vec::new(),
        idempotency_key: None,
        response: ingress(n),
        submitted_at_ms: 100,
        invoke_at_ms: 0,
    }
}

/// A request to the plain service `Greeter/greet`, answered to `req-{n}`.
pub fn service_request(n: u8) -> InvocationRequest {
    InvocationRequest {
        id: InvocationId::for_target("Greeter", "greet", None, None, [n; 16]),
        target: Target {
            service: "Greeter".into(),
            handler: "greet".into(),
            key: None,
            kind: ServiceType::Service,
            handler_shared: false,
        },
        input: Bytes::from_static(b"\"Sarah\""),
        headers: vec![("x-trace".into(), "t1".into())],
        idempotency_key: None,
        response: ingress(n),
        submitted_at_ms: 100,
        invoke_at_ms: 0,
    }
}

pub fn ingress(n: u8) -> ResponseSink {
    ResponseSink::Ingress { request_id: format!("req-{n}") }
}

pub fn respond(n: u8, id: InvocationId, output: &'static [u8]) -> Effect {
    Effect::Respond { request_id: format!("req-{n}"), id, result: Ok(Bytes::from_static(output)) }
}

fn entry(message: Message) -> JournalEntry {
    JournalEntry::from_message(&message).unwrap()
}

pub fn set_state(key: &'static [u8], value: &'static [u8]) -> JournalEntry {
    entry(Message::SetStateCommand(pb::SetStateCommandMessage {
        key: Bytes::from_static(key),
        value: Some(pb::Value { content: Bytes::from_static(value) }),
        name: String::new(),
    }))
}

pub fn clear_state(key: &'static [u8]) -> JournalEntry {
    entry(Message::ClearStateCommand(pb::ClearStateCommandMessage {
        key: Bytes::from_static(key),
        name: String::new(),
    }))
}

pub fn clear_all_state() -> JournalEntry {
    entry(Message::ClearAllStateCommand(pb::ClearAllStateCommandMessage { name: String::new() }))
}

pub fn output(value: &'static [u8]) -> JournalEntry {
    entry(Message::OutputCommand(pb::OutputCommandMessage {
        result: Some(pb::output_command_message::Result::Value(pb::Value { content: Bytes::from_static(value) })),
        name: String::new(),
    }))
}

pub fn sleep(completion_id: u32, wake_up_time: u64) -> JournalEntry {
    entry(Message::SleepCommand(pb::SleepCommandMessage {
        wake_up_time,
        result_completion_id: completion_id,
        name: String::new(),
    }))
}

pub fn run(completion_id: u32) -> JournalEntry {
    entry(Message::RunCommand(pb::RunCommandMessage {
        result_completion_id: completion_id,
        name: "side effect".into(),
    }))
}

pub fn run_completion(completion_id: u32, value: &'static [u8]) -> JournalEntry {
    JournalEntry::run_completion(&pb::ProposeRunCompletionMessage {
        result_completion_id: completion_id,
        result: Some(pb::propose_run_completion_message::Result::Value(Bytes::from_static(value))),
    })
}

pub fn call(service: &str, handler: &str, key: &str, id_completion: u32, result_completion: u32) -> JournalEntry {
    entry(Message::CallCommand(pb::CallCommandMessage {
        service_name: service.into(),
        handler_name: handler.into(),
        parameter: Bytes::from_static(b"\"callee input\""),
        key: key.into(),
        invocation_id_notification_idx: id_completion,
        result_completion_id: result_completion,
        ..Default::default()
    }))
}

pub fn one_way_call(service: &str, handler: &str, id_completion: u32, invoke_time: u64) -> JournalEntry {
    entry(Message::OneWayCallCommand(pb::OneWayCallCommandMessage {
        service_name: service.into(),
        handler_name: handler.into(),
        parameter: Bytes::from_static(b"\"fire\""),
        invoke_time,
        invocation_id_notification_idx: id_completion,
        ..Default::default()
    }))
}

/// The `Invoke` effects among `effects`.
pub fn invoked(effects: &[Effect]) -> Vec<InvocationId> {
    effects.iter().filter_map(|e| if let Effect::Invoke { id } = e { Some(*id) } else { None }).collect()
}

/// The outbox entries sent among `effects`.
pub fn sent(effects: &[Effect]) -> Vec<OutboxEntry> {
    effects.iter().filter_map(|e| if let Effect::Send { entry } = e { Some(entry.clone()) } else { None }).collect()
}
