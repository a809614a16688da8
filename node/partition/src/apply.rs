//! How each command changes a partition's state. Called by
//! [`PartitionStateMachine::apply`](super::PartitionStateMachine::apply) inside one
//! [`Transaction`]; every handler is deterministic (no clock, no randomness, no I/O but
//! the store) and idempotent by content where the command may arrive twice.

use bytes::Bytes;
use prost::Message as _;

use super::codec::to_json;
use restate_types::ServiceType;

use super::awaiting::{self, AwaitedOutcome, Awaits, TargetRef};
use super::command::{Command, InvocationRequest, ResponseSink, StateEntry};
use super::effect::Effect;
use super::ids::InvocationId;
use super::journal::{JournalEntry, NotificationId, START_TIMER};
use super::keys;
use super::outbox::{OutboundInvocation, OutboxEntry, OutboxMessage};
use super::outcome::{Failure, InvocationResult};
use super::promise::{self, PromiseState, PromiseWaiter};
use super::record::{IdempotencyKey, InvocationRecord, InvocationStatus, JournalMeta};
use super::retention::WorkflowCutoffs;
use super::signal::{self, SignalId, SignalResult};
use super::store::{KvRead, PartitionReads, StoreError};
use super::suspension::Awaiting;
use super::transaction::Transaction;
use restate_service_protocol::protocol::{pb, Message, MessageType};

/// What became of a command: applied, or ignored with the reason (a duplicate, a record
/// for a finished invocation, a malformed record). Ignoring is deterministic too: every
/// replica ignores the same records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Ignored(String),
}

type Step = Result<Outcome, StoreError>;

fn ignored(reason: impl Into<String>) -> Step {
    Ok(Outcome::Ignored(reason.into()))
}

pub struct Applier<'a, S: KvRead + ?Sized> {
    pub tx: Transaction<'a, S>,
    pub effects: Vec<Effect>,
}

impl<'a, S: KvRead + ?Sized> Applier<'a, S> {
    pub fn new(store: &'a S) -> Applier<'a, S> {
        Applier { tx: Transaction::new(store), effects: Vec::new() }
    }

    /// Applies every command but `AnnounceLeader` (the state machine handles that one).
    pub fn apply(&mut self, command: &Command) -> Step {
        match command {
            Command::AnnounceLeader { .. } => unreachable!("the state machine applies announcements itself"),
            Command::Invoke(request) => self.invoke(request),
            Command::Journal { id, first_command_index, entries } => self.journal(id, *first_command_index, entries),
            Command::Suspend { id, known_entries, awaiting } => self.suspend(id, *known_entries, awaiting.as_ref()),
            Command::Complete { id, result, completed_at_ms } => self.complete_command(id, result, *completed_at_ms),
            Command::TimerFired { id, completion_id } => self.timer_fired(id, *completion_id),
            Command::CallResult { id, completion_id, result } => self.call_result(id, *completion_id, result),
            Command::OutboxDelivered { seq } => self.outbox_delivered(*seq),
            Command::Kill { id, at_ms } => self.kill(id, *at_ms),
            Command::Cancel { id, at_ms } => self.cancel(id, *at_ms),
            Command::PurgeIdempotency { older_than_ms, workflows } => self.purge(*older_than_ms, workflows),
            Command::Purge { id } => self.purge_one(id),
            Command::SetState { service, key, entries, expected_version } => {
                self.replace_state(service, key, entries, expected_version.as_deref())
            }
            Command::Attach { id, response } => self.attach_command(id, response),
            Command::Signal { id, signal, result } => self.signal(id, signal, result),
            Command::GetOutput { id, response } => self.get_output(id, response),
            Command::AwaitedResult { id, completion_id, awaits, outcome } => {
                self.awaited_result(id, *completion_id, *awaits, outcome)
            }
            Command::Pause { id } => self.pause(id),
            Command::Resume { id } => self.resume(id),
            Command::RestartAsNew { id, new_id, at_ms } => self.restart_as_new(id, new_id, *at_ms),
        }
    }

    /// A new invocation, unless its id or idempotency key is known: then the request's
    /// sink joins the existing invocation (answered at once if it completed).
    fn invoke(&mut self, request: &InvocationRequest) -> Step {
        let id = request.id;
        if let Some(record) = self.tx.invocation(&id)? {
            self.attach(id, record, &request.response)?;
            return Ok(Outcome::Applied);
        }
        let idempotency_key =
            request.idempotency_key.as_deref().map(|key| IdempotencyKey::for_target(&request.target, key));
        if let Some(idempotency_key) = &idempotency_key {
            if let Some(owner) = self.tx.invocation_by_idempotency(idempotency_key)? {
                if let Some(record) = self.tx.invocation(&owner)? {
                    self.attach(owner, record, &request.response)?;
                    return Ok(Outcome::Applied);
                }
            }
        }
        if request.target.kind != ServiceType::Service && request.target.key.is_none() {
            let reason = format!("{} is a handler of a virtual object or workflow and needs a key", request.target);
            self.deliver(&request.response, id, Err(Failure::new(400, reason.clone())))?;
            return ignored(reason);
        }

        let mut record = InvocationRecord {
            target: request.target.clone(),
            idempotency_key: request.idempotency_key.clone(),
            submitted_at_ms: request.submitted_at_ms,
            status: InvocationStatus::Invoked,
            sinks: match request.response {
                ResponseSink::None => Vec::new(),
                ref sink => vec![sink.clone()],
            },
            journal: JournalMeta::default(),
        };
        self.append_command(&id, &mut record.journal, &JournalEntry::input(&request.input, &request.headers));
        if let Some(idempotency_key) = &idempotency_key {
            self.tx.put(keys::idempotency(idempotency_key), id.to_bytes().to_vec());
        }
        if request.invoke_at_ms > 0 {
            record.status = InvocationStatus::Scheduled { due_ms: request.invoke_at_ms };
            self.tx.put(keys::timer(&id, START_TIMER), request.invoke_at_ms.to_be_bytes().to_vec());
            self.effects.push(Effect::ScheduleTimer { due_ms: request.invoke_at_ms, id, completion_id: START_TIMER });
        } else {
            self.start(id, &mut record)?;
        }
        self.put_record(&id, &record);
        Ok(Outcome::Applied)
    }

    /// Starts a new (or scheduled, now due) invocation: `Invoked`, or `Inboxed` behind
    /// its key's lock.
    fn start(&mut self, id: InvocationId, record: &mut InvocationRecord) -> Result<(), StoreError> {
        match record.target.object().filter(|_| record.target.is_exclusive()) {
            Some((service, key)) if self.tx.lock_holder(service, key)?.is_some() => {
                let seq = self.take_seq()?;
                self.tx.put(keys::inbox(service, key, seq), id.to_bytes().to_vec());
                record.status = InvocationStatus::Inboxed { seq };
            }
            Some((service, key)) => {
                self.tx.put(keys::lock(service, key), id.to_bytes().to_vec());
                record.status = InvocationStatus::Invoked;
                self.effects.push(Effect::Invoke { id });
            }
            None => {
                record.status = InvocationStatus::Invoked;
                self.effects.push(Effect::Invoke { id });
            }
        }
        Ok(())
    }

    /// Appends a round's entries and applies what the commands mean for state, timers
    /// and the outbox.
    fn journal(&mut self, id: &InvocationId, first_command_index: u32, entries: &[JournalEntry]) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if !record.status.is_running() || record.status == InvocationStatus::Paused {
            // A paused invocation's round in flight was dropped: it replays on resume.
            return ignored(format!("invocation is {}", record.status.name()));
        }
        for (index, entry) in entries.iter().enumerate() {
            if let Err(err) = entry.validate() {
                return ignored(format!("entry {index} of the record is invalid: {err}"));
            }
        }
        let commands = record.journal.commands;
        if commands != first_command_index {
            return ignored(if commands > first_command_index {
                format!("already applied: the journal has {commands} commands, the record starts at command {first_command_index}")
            } else {
                format!("gap: the journal has {commands} commands, the record starts at command {first_command_index}")
            });
        }
        let mut notified = false;
        for entry in entries {
            if entry.is_notification() {
                notified |= self.add_notification(id, &mut record.journal, entry);
            } else {
                let command_index = record.journal.commands;
                self.append_command(id, &mut record.journal, entry);
                notified |= self.interpret_command(id, &mut record, command_index, entry)?;
            }
        }
        if notified {
            self.resume_if_suspended(id, &mut record);
        }
        self.put_record(id, &record);
        Ok(Outcome::Applied)
    }

    /// What a command the SDK journaled asks of the runtime. Returns whether it added a
    /// notification to the journal.
    fn interpret_command(
        &mut self,
        id: &InvocationId,
        record: &mut InvocationRecord,
        command_index: u32,
        entry: &JournalEntry,
    ) -> Result<bool, StoreError> {
        let object = record.target.object().map(|(s, k)| (s.to_owned(), k.to_owned()));
        let message = entry.decode().expect("validated before");
        Ok(match message {
            Message::SetStateCommand(set) => {
                if let Some((service, key)) = &object {
                    let value = set.value.map(|v| v.content.to_vec()).unwrap_or_default();
                    self.tx.put(keys::state(service, key, &set.key), value);
                }
                false
            }
            Message::ClearStateCommand(clear) => {
                if let Some((service, key)) = &object {
                    self.tx.delete(keys::state(service, key, &clear.key));
                }
                false
            }
            Message::ClearAllStateCommand(_) => {
                if let Some((service, key)) = &object {
                    for (k, _) in self.tx.scan_prefix(&keys::state_prefix(service, key))? {
                        self.tx.delete(k);
                    }
                }
                false
            }
            Message::GetLazyStateCommand(get) => {
                let value = match &object {
                    Some((service, key)) => self.tx.state_value(service, key, &get.key)?,
                    None => None,
                };
                let notification = JournalEntry::lazy_state_completion(get.result_completion_id, value);
                self.add_notification(id, &mut record.journal, &notification)
            }
            Message::Other { ty: MessageType::GetLazyStateKeysCommand, body, .. } => {
                let Ok(get) = pb::GetLazyStateKeysCommandMessage::decode(body) else { return Ok(false) };
                let keys = match &object {
                    Some((service, key)) => self.tx.read_state(service, key)?.into_iter().map(|(k, _)| k).collect(),
                    None => Vec::new(),
                };
                let notification = JournalEntry::lazy_state_keys_completion(get.result_completion_id, keys);
                self.add_notification(id, &mut record.journal, &notification)
            }
            Message::SleepCommand(sleep) => {
                let completion_id = sleep.result_completion_id;
                self.tx.put(keys::timer(id, completion_id), sleep.wake_up_time.to_be_bytes().to_vec());
                self.effects.push(Effect::ScheduleTimer { due_ms: sleep.wake_up_time, id: *id, completion_id });
                false
            }
            Message::CallCommand(call) => self.call(
                id,
                record,
                command_index,
                Call {
                    service: call.service_name,
                    handler: call.handler_name,
                    key: call.key,
                    parameter: call.parameter,
                    headers: call.headers,
                    idempotency_key: call.idempotency_key,
                    id_notification: call.invocation_id_notification_idx,
                    response: ResponseSink::Caller { invocation_id: *id, completion_id: call.result_completion_id },
                    invoke_at_ms: 0,
                },
            )?,
            Message::Other { ty: MessageType::SendSignalCommand, body, .. } => {
                let Ok(send) = pb::SendSignalCommandMessage::decode(body) else { return Ok(false) };
                if let Some((target, signal, result)) = signal::from_send_signal(&send) {
                    self.push_outbox(0, OutboxMessage::Signal { target, signal, result })?;
                }
                false
            }
            Message::Other { ty: MessageType::CompleteAwakeableCommand, body, .. } => {
                let Ok(complete) = pb::CompleteAwakeableCommandMessage::decode(body) else { return Ok(false) };
                if let Some((target, signal, result)) = signal::from_complete_awakeable(&complete) {
                    self.push_outbox(0, OutboxMessage::Signal { target, signal, result })?;
                }
                false
            }
            Message::Other { ty: MessageType::GetPromiseCommand, body, .. } => {
                let Ok(get) = pb::GetPromiseCommandMessage::decode(body) else { return Ok(false) };
                let completion_id = get.result_completion_id;
                let Some((service, key)) = &object else {
                    let failure = Err(promise::outside_workflow(&get.key));
                    let notification = JournalEntry::get_promise_completion(completion_id, &failure);
                    return Ok(self.add_notification(id, &mut record.journal, &notification));
                };
                match self.tx.promise(service, key, &get.key)? {
                    Some(PromiseState::Completed(result)) => {
                        let notification = JournalEntry::get_promise_completion(completion_id, &result);
                        self.add_notification(id, &mut record.journal, &notification)
                    }
                    pending => {
                        let mut waiters = match pending {
                            Some(PromiseState::Pending { waiters }) => waiters,
                            _ => Vec::new(),
                        };
                        waiters.push(PromiseWaiter { id: *id, completion_id });
                        self.tx.put(keys::promise(service, key, &get.key), to_json(&PromiseState::Pending { waiters }));
                        false
                    }
                }
            }
            Message::Other { ty: MessageType::PeekPromiseCommand, body, .. } => {
                let Ok(peek) = pb::PeekPromiseCommandMessage::decode(body) else { return Ok(false) };
                let result = match &object {
                    Some((service, key)) => match self.tx.promise(service, key, &peek.key)? {
                        Some(PromiseState::Completed(result)) => Some(result),
                        _ => None,
                    },
                    None => Some(Err(promise::outside_workflow(&peek.key))),
                };
                let notification = JournalEntry::peek_promise_completion(peek.result_completion_id, result.as_ref());
                self.add_notification(id, &mut record.journal, &notification)
            }
            Message::Other { ty: MessageType::CompletePromiseCommand, body, .. } => {
                let Ok(complete) = pb::CompletePromiseCommandMessage::decode(body) else { return Ok(false) };
                self.complete_promise(id, record, object.as_ref(), &complete)?
            }
            Message::Other { ty: MessageType::AttachInvocationCommand, body, .. } => {
                let Ok(attach) = pb::AttachInvocationCommandMessage::decode(body) else { return Ok(false) };
                let target = awaiting::target_id(TargetRef::of_attach(&attach));
                self.await_invocation(id, record, target, attach.result_completion_id, Awaits::Attach)?
            }
            Message::Other { ty: MessageType::GetInvocationOutputCommand, body, .. } => {
                let Ok(get) = pb::GetInvocationOutputCommandMessage::decode(body) else { return Ok(false) };
                let target = awaiting::target_id(TargetRef::of_get_output(&get));
                self.await_invocation(id, record, target, get.result_completion_id, Awaits::GetOutput)?
            }
            Message::OneWayCallCommand(send) => self.call(
                id,
                record,
                command_index,
                Call {
                    service: send.service_name,
                    handler: send.handler_name,
                    key: send.key,
                    parameter: send.parameter,
                    headers: send.headers,
                    idempotency_key: send.idempotency_key,
                    id_notification: send.invocation_id_notification_idx,
                    response: ResponseSink::None,
                    invoke_at_ms: send.invoke_time,
                },
            )?,
            _ => false,
        })
    }

    /// `CompletePromiseCommand`: the first completion of a promise wins; it is delivered
    /// to every waiting `GetPromiseCommand` (resuming their invocations) and the completer
    /// gets void. A later completion gets a 409 failure. Returns whether `id`'s own
    /// journal got a notification.
    fn complete_promise(
        &mut self,
        id: &InvocationId,
        record: &mut InvocationRecord,
        object: Option<&(String, String)>,
        complete: &pb::CompletePromiseCommandMessage,
    ) -> Result<bool, StoreError> {
        let completion_id = complete.result_completion_id;
        let (Some((service, key)), Some(result)) = (object, promise::completion_of(complete)) else {
            let failure = match object {
                None => promise::outside_workflow(&complete.key),
                Some(_) => Failure::new(400, format!("promise '{}': the completion carries no value", complete.key)),
            };
            let notification = JournalEntry::complete_promise_completion(completion_id, Some(&failure));
            return Ok(self.add_notification(id, &mut record.journal, &notification));
        };
        let waiters = match self.tx.promise(service, key, &complete.key)? {
            Some(PromiseState::Completed(_)) => {
                let refused = promise::already_completed(&complete.key);
                let notification = JournalEntry::complete_promise_completion(completion_id, Some(&refused));
                return Ok(self.add_notification(id, &mut record.journal, &notification));
            }
            Some(PromiseState::Pending { waiters }) => waiters,
            None => Vec::new(),
        };
        self.tx.put(keys::promise(service, key, &complete.key), to_json(&PromiseState::Completed(result.clone())));
        let mut notified = false;
        for waiter in waiters {
            let notification = JournalEntry::get_promise_completion(waiter.completion_id, &result);
            if waiter.id == *id {
                notified |= self.add_notification(id, &mut record.journal, &notification);
                continue;
            }
            let Some(mut other) = self.tx.invocation(&waiter.id)? else { continue };
            if other.status.is_running() && self.add_notification(&waiter.id, &mut other.journal, &notification) {
                self.resume_if_awaited(&waiter.id, &mut other, &notification);
                self.put_record(&waiter.id, &other);
            }
        }
        let notification = JournalEntry::complete_promise_completion(completion_id, None);
        Ok(self.add_notification(id, &mut record.journal, &notification) || notified)
    }

    /// A call or one-way call: the callee's id (derived from the caller and the command's
    /// index, so a replay mints the same one) goes into the caller's journal, the call
    /// into the outbox.
    fn call(
        &mut self,
        caller: &InvocationId,
        record: &mut InvocationRecord,
        command_index: u32,
        call: Call,
    ) -> Result<bool, StoreError> {
        let key = Some(call.key).filter(|k| !k.is_empty());
        let idempotency_key = call.idempotency_key.filter(|k| !k.is_empty());
        let uuid = InvocationId::derive_uuid(&[b"call", &caller.to_bytes(), &command_index.to_be_bytes()]);
        let callee =
            InvocationId::for_target(&call.service, &call.handler, key.as_deref(), idempotency_key.as_deref(), uuid);
        let notified = call.id_notification != 0
            && self.add_notification(
                caller,
                &mut record.journal,
                &JournalEntry::call_invocation_id(call.id_notification, callee),
            );
        let outbound = OutboundInvocation {
            id: callee,
            service: call.service,
            handler: call.handler,
            key,
            input: call.parameter,
            headers: call.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            idempotency_key,
            response: call.response,
            invoke_at_ms: call.invoke_at_ms,
        };
        // Sent at once: a delayed call waits `Scheduled` in the callee's partition.
        self.push_outbox(0, OutboxMessage::Invoke(outbound))?;
        Ok(notified)
    }

    /// The round ended suspended: resume at once if a notification the SDK has not seen
    /// arrived meanwhile and is one it waits on (`awaiting`; any, when it did not say),
    /// else wait for one.
    fn suspend(&mut self, id: &InvocationId, known_entries: u32, awaiting: Option<&Awaiting>) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if record.status != InvocationStatus::Invoked {
            return ignored(format!("invocation is {}", record.status.name()));
        }
        let news = record.journal.last_notification_index.is_some_and(|index| index >= known_entries);
        let awaited_news = match awaiting {
            _ if !news => false,
            None => true,
            Some(awaiting) => {
                let mut any = false;
                for index in known_entries..record.journal.known_entries {
                    let stored = self.tx.get(&keys::journal_entry(id, index))?;
                    let notification =
                        stored.as_deref().and_then(JournalEntry::from_stored).and_then(|e| e.notification_id());
                    any |= notification.is_some_and(|n| awaiting.wakes_for(&n));
                }
                any
            }
        };
        if awaited_news {
            self.effects.push(Effect::Invoke { id: *id });
        } else {
            record.status = InvocationStatus::Suspended;
            record.journal.awaiting = awaiting.cloned();
            self.put_record(id, &record);
        }
        Ok(Outcome::Applied)
    }

    fn complete_command(&mut self, id: &InvocationId, result: &InvocationResult, at_ms: u64) -> Step {
        let Some(record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if !record.status.is_running() || record.status == InvocationStatus::Paused {
            return ignored(format!("invocation is {}", record.status.name()));
        }
        self.complete(id, record, result.clone(), at_ms)?;
        Ok(Outcome::Applied)
    }

    fn timer_fired(&mut self, id: &InvocationId, completion_id: u32) -> Step {
        let timer = keys::timer(id, completion_id);
        if self.tx.get(&timer)?.is_none() {
            return ignored("no such timer (fired already, or the invocation finished)");
        }
        self.tx.delete(timer);
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if completion_id == START_TIMER {
            if !matches!(record.status, InvocationStatus::Scheduled { .. }) {
                return ignored(format!("invocation is {}, not scheduled", record.status.name()));
            }
            self.start(*id, &mut record)?;
            self.put_record(id, &record);
            return Ok(Outcome::Applied);
        }
        let fired = JournalEntry::sleep_completion(completion_id);
        if record.status.is_running() && self.add_notification(id, &mut record.journal, &fired) {
            self.resume_if_awaited(id, &mut record, &fired);
            self.put_record(id, &record);
        }
        Ok(Outcome::Applied)
    }

    fn call_result(&mut self, id: &InvocationId, completion_id: u32, result: &InvocationResult) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if !record.status.is_running() {
            return ignored(format!("invocation is {}", record.status.name()));
        }
        let completion = JournalEntry::call_completion(completion_id, result);
        if !self.add_notification(id, &mut record.journal, &completion) {
            return ignored(format!("completion {completion_id} already has its result"));
        }
        self.resume_if_awaited(id, &mut record, &completion);
        self.put_record(id, &record);
        Ok(Outcome::Applied)
    }

    fn outbox_delivered(&mut self, seq: u64) -> Step {
        let key = keys::outbox(seq);
        if self.tx.get(&key)?.is_none() {
            return ignored(format!("outbox entry {seq} is not pending"));
        }
        self.tx.delete(key);
        Ok(Outcome::Applied)
    }

    fn kill(&mut self, id: &InvocationId, at_ms: u64) -> Step {
        let Some(record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if let InvocationStatus::Completed { .. } = record.status {
            return ignored("invocation is completed");
        }
        if record.status.is_running() {
            self.effects.push(Effect::Abort { id: *id });
        }
        self.complete(id, record, Err(Failure::killed()), at_ms)?;
        Ok(Outcome::Applied)
    }

    fn cancel(&mut self, id: &InvocationId, at_ms: u64) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        match record.status {
            InvocationStatus::Completed { .. } => ignored("invocation is completed"),
            InvocationStatus::Scheduled { .. } | InvocationStatus::Inboxed { .. } => {
                self.complete(id, record, Err(Failure::cancelled()), at_ms)?;
                Ok(Outcome::Applied)
            }
            InvocationStatus::Invoked | InvocationStatus::Suspended | InvocationStatus::Paused => {
                if !self.add_notification(id, &mut record.journal, &JournalEntry::cancel_signal()) {
                    return ignored("already cancelled");
                }
                // The handler must see the cancellation to run its compensations: a
                // paused invocation runs again.
                if record.status == InvocationStatus::Paused {
                    record.status = InvocationStatus::Suspended;
                }
                self.resume_if_suspended(id, &mut record);
                self.put_record(id, &record);
                Ok(Outcome::Applied)
            }
        }
    }

    fn signal(&mut self, id: &InvocationId, signal: &SignalId, result: &SignalResult) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if !record.status.is_running() {
            return ignored(format!("invocation is {}", record.status.name()));
        }
        let delivered = JournalEntry::signal(signal, result);
        if !self.add_notification(id, &mut record.journal, &delivered) {
            return ignored(format!("{signal} was delivered before (the first wins)"));
        }
        self.resume_if_awaited(id, &mut record, &delivered);
        self.put_record(id, &record);
        Ok(Outcome::Applied)
    }

    /// A handler's attach/get-output: the request goes to the target's partition through
    /// the outbox; a target that does not parse is answered at once with its failure.
    fn await_invocation(
        &mut self,
        id: &InvocationId,
        record: &mut InvocationRecord,
        target: Result<InvocationId, Failure>,
        completion_id: u32,
        awaits: Awaits,
    ) -> Result<bool, StoreError> {
        match target {
            Ok(target) => {
                let response = ResponseSink::Awaiter { invocation_id: *id, completion_id, awaits };
                self.push_outbox(0, OutboxMessage::Await { target, response })?;
                Ok(false)
            }
            Err(failure) => {
                let outcome = AwaitedOutcome::Completed(Err(failure));
                let notification = JournalEntry::awaited(completion_id, awaits, &outcome).expect("a completed outcome");
                Ok(self.add_notification(id, &mut record.journal, &notification))
            }
        }
    }

    /// Answers `response` with `id`'s result now ("not ready" while it runs).
    fn get_output(&mut self, id: &InvocationId, response: &ResponseSink) -> Step {
        match self.tx.invocation(id)? {
            Some(InvocationRecord { status: InvocationStatus::Completed { result, .. }, .. }) => {
                self.deliver(response, *id, result)?;
                Ok(Outcome::Applied)
            }
            Some(_) => {
                if let ResponseSink::Awaiter { invocation_id, completion_id, awaits } = response {
                    let outcome = AwaitedOutcome::NotReady;
                    let message = OutboxMessage::AwaitedResult {
                        waiter: *invocation_id,
                        completion_id: *completion_id,
                        awaits: *awaits,
                        outcome,
                    };
                    self.push_outbox(0, message)?;
                }
                Ok(Outcome::Applied)
            }
            None => {
                self.deliver(response, *id, Err(Failure::not_found(id)))?;
                ignored("unknown invocation")
            }
        }
    }

    fn awaited_result(
        &mut self,
        id: &InvocationId,
        completion_id: u32,
        awaits: Awaits,
        outcome: &AwaitedOutcome,
    ) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if !record.status.is_running() {
            return ignored(format!("invocation is {}", record.status.name()));
        }
        let Some(notification) = JournalEntry::awaited(completion_id, awaits, outcome) else {
            return ignored("an attach is answered with a result, not 'not ready'");
        };
        if !self.add_notification(id, &mut record.journal, &notification) {
            return ignored(format!("completion {completion_id} already has its result"));
        }
        self.resume_if_awaited(id, &mut record, &notification);
        self.put_record(id, &record);
        Ok(Outcome::Applied)
    }

    fn attach_command(&mut self, id: &InvocationId, response: &ResponseSink) -> Step {
        match self.tx.invocation(id)? {
            Some(record) => {
                self.attach(*id, record, response)?;
                Ok(Outcome::Applied)
            }
            None => {
                self.deliver(response, *id, Err(Failure::not_found(id)))?;
                ignored("unknown invocation")
            }
        }
    }

    fn purge(&mut self, older_than_ms: u64, workflows: &WorkflowCutoffs) -> Step {
        for (completed_at_ms, id) in self.tx.completed_before(workflows.latest(older_than_ms))? {
            let Some(record) = self.tx.invocation(&id)? else {
                self.tx.delete(keys::retention(completed_at_ms, &id));
                continue;
            };
            if completed_at_ms
                >= workflows.cutoff_for(&record.target.service, record.target.is_workflow_run(), older_than_ms)
            {
                continue; // kept by its own (longer) retention
            }
            self.tx.delete(keys::retention(completed_at_ms, &id));
            if !matches!(record.status, InvocationStatus::Completed { completed_at_ms: at, .. } if at == completed_at_ms)
            {
                continue;
            }
            self.forget(&id, &record)?;
        }
        Ok(Outcome::Applied)
    }

    /// `Command::SetState`: the object's state becomes `entries`, unless its version is no
    /// longer `expected` (then nothing changes).
    fn replace_state(&mut self, service: &str, key: &str, entries: &[StateEntry], expected: Option<&str>) -> Step {
        let current = self.tx.scan_prefix(&keys::state_prefix(service, key))?;
        if let Some(expected) = expected {
            let prefix_len = keys::state_prefix(service, key).len();
            let pairs = current.iter().map(|(k, v)| (&k[prefix_len..], v.as_slice()));
            if super::introspect::state_version(pairs) != expected {
                return Ok(Outcome::Applied);
            }
        }
        for (k, _) in current {
            self.tx.delete(k);
        }
        for entry in entries {
            self.tx.put(keys::state(service, key, &entry.key), entry.value.to_vec());
        }
        Ok(Outcome::Applied)
    }

    /// `Command::Pause`: a running invocation stops (its round in flight is dropped).
    fn pause(&mut self, id: &InvocationId) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if !matches!(record.status, InvocationStatus::Invoked | InvocationStatus::Suspended) {
            return ignored(format!("invocation is {}", record.status.name()));
        }
        record.status = InvocationStatus::Paused;
        record.journal.awaiting = None;
        self.effects.push(Effect::Abort { id: *id });
        self.put_record(id, &record);
        Ok(Outcome::Applied)
    }

    /// `Command::Resume`: a paused or suspended invocation gets a round now.
    fn resume(&mut self, id: &InvocationId) -> Step {
        let Some(mut record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        match record.status {
            InvocationStatus::Paused | InvocationStatus::Suspended => {
                record.status = InvocationStatus::Invoked;
                record.journal.awaiting = None;
                self.effects.push(Effect::Invoke { id: *id });
                self.put_record(id, &record);
                Ok(Outcome::Applied)
            }
            InvocationStatus::Invoked => {
                // Running or backing off: the leader retries at once.
                self.effects.push(Effect::Invoke { id: *id });
                Ok(Outcome::Applied)
            }
            _ => ignored(format!("invocation is {}", record.status.name())),
        }
    }

    /// `Command::RestartAsNew`: `new_id` runs `id`'s target with `id`'s kept input.
    fn restart_as_new(&mut self, id: &InvocationId, new_id: &InvocationId, at_ms: u64) -> Step {
        let Some(record) = self.tx.invocation(id)? else { return ignored("unknown invocation") };
        if !matches!(record.status, InvocationStatus::Completed { .. }) {
            return ignored(format!("invocation is {}, not completed", record.status.name()));
        }
        if record.target.is_workflow_run() {
            return ignored("a workflow run has one id per key: it cannot be restarted as new");
        }
        if new_id.partition_key() != id.partition_key() {
            return ignored("the new id must have the partition key of the old one");
        }
        if self.tx.invocation(new_id)?.is_some() {
            return ignored(format!("{new_id} exists already"));
        }
        let Some(input) = self.tx.kept_input(id)? else { return ignored("its input was not kept") };
        let Ok(Message::InputCommand(input)) = input.decode() else {
            return ignored("its kept input is not an InputCommand");
        };
        let request = InvocationRequest {
            id: *new_id,
            target: record.target.clone(),
            input: input.value.map(|v| v.content).unwrap_or_default(),
            headers: input.headers.into_iter().map(|h| (h.key, h.value)).collect(),
            idempotency_key: None,
            response: ResponseSink::None,
            submitted_at_ms: at_ms,
            invoke_at_ms: 0,
        };
        self.invoke(&request)
    }

    /// `Command::Purge`: forgets `id` if it completed.
    fn purge_one(&mut self, id: &InvocationId) -> Step {
        if let Some(record) = self.tx.invocation(id)? {
            if let InvocationStatus::Completed { completed_at_ms, .. } = record.status {
                self.tx.delete(keys::retention(completed_at_ms, id));
                self.forget(id, &record)?;
            }
        }
        Ok(Outcome::Applied)
    }

    /// Deletes completed invocation `id`: its record, its idempotency key, and a workflow
    /// run's state and promises (they live as long as the run's result).
    fn forget(&mut self, id: &InvocationId, record: &InvocationRecord) -> Result<(), StoreError> {
        self.tx.delete(keys::invocation(id));
        self.tx.delete(keys::kept_input(id));
        if let Some((service, key)) = record.target.object().filter(|_| record.target.is_workflow_run()) {
            for prefix in [keys::state_prefix(service, key), keys::promise_prefix(service, key)] {
                for (k, _) in self.tx.scan_prefix(&prefix)? {
                    self.tx.delete(k);
                }
            }
        }
        if let Some(idempotency_key) = &record.idempotency_key {
            let key = IdempotencyKey::for_target(&record.target, idempotency_key);
            if self.tx.invocation_by_idempotency(&key)? == Some(*id) {
                self.tx.delete(keys::idempotency(&key));
            }
        }
        Ok(())
    }

    /// Finishes an invocation in any state: drops its journal and timers, leaves its
    /// inbox, hands its key's lock to the next in line, stores the result and answers
    /// every waiting sink.
    fn complete(
        &mut self,
        id: &InvocationId,
        mut record: InvocationRecord,
        result: InvocationResult,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        for (key, value) in self.tx.scan_prefix(&keys::journal_prefix(id))? {
            if key == keys::journal_entry(id, 0) {
                // The input stays for restart-as-new, until the result is purged.
                self.tx.put(keys::kept_input(id), value);
            }
            self.tx.delete(key);
        }
        for (key, _) in self.tx.scan_prefix(&keys::timer_prefix(id))? {
            self.tx.delete(key);
        }
        if let Some((service, key)) = record.target.object().filter(|_| record.target.is_exclusive()) {
            let (service, key) = (service.to_owned(), key.to_owned());
            if let InvocationStatus::Inboxed { seq } = record.status {
                self.tx.delete(keys::inbox(&service, &key, seq));
            } else if self.tx.lock_holder(&service, &key)? == Some(*id) {
                self.release_lock(&service, &key)?;
            }
        }
        let sinks = std::mem::take(&mut record.sinks);
        record.status = InvocationStatus::Completed { result: result.clone(), completed_at_ms: at_ms };
        record.journal = JournalMeta::default();
        self.put_record(id, &record);
        self.tx.put(keys::retention(at_ms, id), Vec::new());
        for sink in &sinks {
            self.deliver(sink, *id, result.clone())?;
        }
        Ok(())
    }

    /// Gives the key's lock to the first inboxed invocation (and starts it), or frees it.
    fn release_lock(&mut self, service: &str, key: &str) -> Result<(), StoreError> {
        for (seq, next) in self.tx.inbox(service, key)? {
            self.tx.delete(keys::inbox(service, key, seq));
            let Some(mut record) = self.tx.invocation(&next)? else { continue };
            if !matches!(record.status, InvocationStatus::Inboxed { .. }) {
                continue;
            }
            record.status = InvocationStatus::Invoked;
            self.put_record(&next, &record);
            self.tx.put(keys::lock(service, key), next.to_bytes().to_vec());
            self.effects.push(Effect::Invoke { id: next });
            return Ok(());
        }
        self.tx.delete(keys::lock(service, key));
        Ok(())
    }

    /// Adds `sink` to a known invocation's waiters, or answers it if the result is known.
    fn attach(
        &mut self,
        id: InvocationId,
        mut record: InvocationRecord,
        sink: &ResponseSink,
    ) -> Result<(), StoreError> {
        match &record.status {
            _ if *sink == ResponseSink::None => {}
            InvocationStatus::Completed { result, .. } => self.deliver(sink, id, result.clone())?,
            _ if record.sinks.contains(sink) => {}
            _ => {
                record.sinks.push(sink.clone());
                self.put_record(&id, &record);
            }
        }
        Ok(())
    }

    /// Sends a result to a sink: an effect for the ingress, the outbox for a caller.
    fn deliver(&mut self, sink: &ResponseSink, id: InvocationId, result: InvocationResult) -> Result<(), StoreError> {
        match sink {
            ResponseSink::None => {}
            ResponseSink::Ingress { request_id } => {
                self.effects.push(Effect::Respond { request_id: request_id.clone(), id, result })
            }
            ResponseSink::Awaiter { invocation_id, completion_id, awaits } => self.push_outbox(
                0,
                OutboxMessage::AwaitedResult {
                    waiter: *invocation_id,
                    completion_id: *completion_id,
                    awaits: *awaits,
                    outcome: AwaitedOutcome::Completed(result),
                },
            )?,
            ResponseSink::Caller { invocation_id, completion_id } => self.push_outbox(
                0,
                OutboxMessage::CallResult { caller: *invocation_id, completion_id: *completion_id, result },
            )?,
        }
        Ok(())
    }

    fn resume_if_suspended(&mut self, id: &InvocationId, record: &mut InvocationRecord) {
        if record.status == InvocationStatus::Suspended {
            record.status = InvocationStatus::Invoked;
            record.journal.awaiting = None;
            self.effects.push(Effect::Invoke { id: *id });
        }
    }

    /// Resumes a suspended invocation if `notification` (just added to its journal) is
    /// one it waits on: a notification it cannot use yet (e.g. a call's invocation id
    /// while it waits for the call's result) stays in the journal for the next round
    /// instead of starting one.
    fn resume_if_awaited(&mut self, id: &InvocationId, record: &mut InvocationRecord, notification: &JournalEntry) {
        let awaited = match (&record.journal.awaiting, notification.notification_id()) {
            (Some(awaiting), Some(notification)) => awaiting.wakes_for(&notification),
            _ => true,
        };
        if awaited {
            self.resume_if_suspended(id, record);
        }
    }

    fn append_command(&mut self, id: &InvocationId, journal: &mut JournalMeta, entry: &JournalEntry) {
        self.tx.put(keys::journal_entry(id, journal.known_entries), entry.to_stored());
        journal.known_entries += 1;
        journal.commands += 1;
    }

    /// Appends a notification unless its completion (or signal) already has one. Returns
    /// whether it was appended.
    fn add_notification(&mut self, id: &InvocationId, journal: &mut JournalMeta, entry: &JournalEntry) -> bool {
        let notification = entry.notification_id();
        match &notification {
            Some(NotificationId::Completion(completion_id)) if journal.has_completion(*completion_id) => return false,
            Some(NotificationId::Signal(index)) if journal.has_signal(&SignalId::Index(*index)) => return false,
            Some(NotificationId::NamedSignal(name)) if journal.has_signal(&SignalId::Name(name.clone())) => {
                return false
            }
            _ => {}
        }
        let index = journal.known_entries;
        self.tx.put(keys::journal_entry(id, index), entry.to_stored());
        journal.known_entries += 1;
        journal.last_notification_index = Some(index);
        match notification {
            Some(NotificationId::Completion(completion_id)) => {
                let at = journal.completed_ids.binary_search(&completion_id).unwrap_or_else(|at| at);
                journal.completed_ids.insert(at, completion_id);
            }
            Some(NotificationId::Signal(index)) => journal.add_signal(SignalId::Index(index)),
            Some(NotificationId::NamedSignal(name)) => journal.add_signal(SignalId::Name(name)),
            None => {}
        }
        true
    }

    fn push_outbox(&mut self, deliver_at_ms: u64, message: OutboxMessage) -> Result<(), StoreError> {
        let seq = self.take_seq()?;
        let entry = OutboxEntry { seq, deliver_at_ms, message };
        self.tx.put(keys::outbox(seq), to_json(&entry));
        self.effects.push(Effect::Send { entry });
        Ok(())
    }

    fn take_seq(&mut self) -> Result<u64, StoreError> {
        let seq = self.tx.next_seq()?;
        self.tx.put(keys::NEXT_SEQ.to_vec(), (seq + 1).to_be_bytes().to_vec());
        Ok(seq)
    }

    /// Stores a record, keeping the index of running invocations in step.
    fn put_record(&mut self, id: &InvocationId, record: &InvocationRecord) {
        self.tx.put(keys::invocation(id), to_json(record));
        if record.status.is_running() {
            self.tx.put(keys::running(id), Vec::new());
        } else {
            self.tx.delete(keys::running(id));
        }
    }
}

/// The fields of `CallCommand` and `OneWayCallCommand` the runtime uses.
struct Call {
    service: String,
    handler: String,
    key: String,
    parameter: Bytes,
    headers: Vec<pb::Header>,
    idempotency_key: Option<String>,
    id_notification: u32,
    response: ResponseSink,
    invoke_at_ms: u64,
}
