//! The binary form of a log record (envelope format 2): protobuf messages, declared here
//! with prost's derive (field numbers are the format: never reuse or renumber one), and
//! the conversions to and from [`Envelope`]. Payloads (inputs, results, journal entry
//! bodies) travel as raw bytes.

use std::collections::BTreeMap;

use bytes::Bytes;
use restate_types::ServiceType;

use super::awaiting::{AwaitedOutcome, Awaits};
use super::command::{Command, Envelope, InvocationRequest, ResponseSink, StateEntry, Target};
use super::ids::{InvocationId, INVOCATION_ID_LEN};
use super::journal::JournalEntry;
use super::outcome::{Failure, InvocationResult};
use super::retention::WorkflowCutoffs;
use super::signal::{SignalId, SignalResult};
use super::suspension::Awaiting;

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EnvelopeWire {
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    #[prost(oneof = "CommandWire", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21")]
    pub command: Option<CommandWire>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum CommandWire {
    #[prost(message, tag = "2")]
    AnnounceLeader(AnnounceLeaderWire),
    #[prost(message, tag = "3")]
    Invoke(InvocationRequestWire),
    #[prost(message, tag = "4")]
    Journal(JournalWire),
    #[prost(message, tag = "5")]
    Suspend(SuspendWire),
    #[prost(message, tag = "6")]
    Complete(CompleteWire),
    #[prost(message, tag = "7")]
    TimerFired(CompletionWire),
    #[prost(message, tag = "8")]
    CallResult(CallResultWire),
    #[prost(message, tag = "9")]
    OutboxDelivered(OutboxDeliveredWire),
    #[prost(message, tag = "10")]
    Kill(AtWire),
    #[prost(message, tag = "11")]
    Cancel(AtWire),
    #[prost(message, tag = "12")]
    PurgeIdempotency(PurgeWire),
    #[prost(message, tag = "13")]
    Attach(ResponseToWire),
    #[prost(message, tag = "14")]
    GetOutput(ResponseToWire),
    #[prost(message, tag = "15")]
    AwaitedResult(AwaitedResultWire),
    #[prost(message, tag = "16")]
    Signal(SignalWire),
    #[prost(message, tag = "17")]
    Purge(IdWire),
    #[prost(message, tag = "18")]
    SetState(SetStateWire),
    #[prost(message, tag = "19")]
    Pause(IdWire),
    #[prost(message, tag = "20")]
    Resume(IdWire),
    #[prost(message, tag = "21")]
    RestartAsNew(RestartAsNewWire),
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RestartAsNewWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub new_id: Bytes,
    #[prost(uint64, tag = "3")]
    pub at_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SetStateWire {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub key: String,
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<StateEntryWire>,
    #[prost(string, optional, tag = "4")]
    pub expected_version: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StateEntryWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct IdWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AnnounceLeaderWire {
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    #[prost(string, tag = "2")]
    pub node: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HeaderWire {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TargetWire {
    #[prost(string, tag = "1")]
    pub service: String,
    #[prost(string, tag = "2")]
    pub handler: String,
    #[prost(string, optional, tag = "3")]
    pub key: Option<String>,
    /// 0 service, 1 virtual object, 2 workflow.
    #[prost(uint32, tag = "4")]
    pub kind: u32,
    #[prost(bool, tag = "5")]
    pub handler_shared: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct InvocationRequestWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(message, optional, tag = "2")]
    pub target: Option<TargetWire>,
    #[prost(bytes = "bytes", tag = "3")]
    pub input: Bytes,
    #[prost(message, repeated, tag = "4")]
    pub headers: Vec<HeaderWire>,
    #[prost(string, optional, tag = "5")]
    pub idempotency_key: Option<String>,
    #[prost(message, optional, tag = "6")]
    pub response: Option<ResponseSinkWire>,
    #[prost(uint64, tag = "7")]
    pub submitted_at_ms: u64,
    #[prost(uint64, tag = "8")]
    pub invoke_at_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseSinkWire {
    #[prost(oneof = "SinkWire", tags = "1, 2, 3")]
    pub sink: Option<SinkWire>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum SinkWire {
    #[prost(string, tag = "1")]
    Ingress(String),
    #[prost(message, tag = "2")]
    Caller(CompletionWire),
    #[prost(message, tag = "3")]
    Awaiter(AwaiterWire),
}

/// An invocation and one of its completion ids.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CompletionWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(uint32, tag = "2")]
    pub completion_id: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AwaiterWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(uint32, tag = "2")]
    pub completion_id: u32,
    /// 0 attach, 1 get-output.
    #[prost(uint32, tag = "3")]
    pub awaits: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JournalEntryWire {
    #[prost(uint32, tag = "1")]
    pub ty: u32,
    #[prost(uint32, tag = "2")]
    pub flags: u32,
    #[prost(bytes = "bytes", tag = "3")]
    pub body: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JournalWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(uint32, tag = "2")]
    pub first_command_index: u32,
    #[prost(message, repeated, tag = "3")]
    pub entries: Vec<JournalEntryWire>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SuspendWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(uint32, tag = "2")]
    pub known_entries: u32,
    #[prost(message, optional, tag = "3")]
    pub awaiting: Option<AwaitingWire>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AwaitingWire {
    #[prost(uint32, repeated, tag = "1")]
    pub completions: Vec<u32>,
    #[prost(uint32, repeated, tag = "2")]
    pub signals: Vec<u32>,
    #[prost(string, repeated, tag = "3")]
    pub named_signals: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct FailureWire {
    #[prost(uint32, tag = "1")]
    pub code: u32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResultWire {
    #[prost(oneof = "ResultKind", tags = "1, 2")]
    pub result: Option<ResultKind>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum ResultKind {
    #[prost(bytes = "bytes", tag = "1")]
    Ok(Bytes),
    #[prost(message, tag = "2")]
    Err(FailureWire),
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CompleteWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(message, optional, tag = "2")]
    pub result: Option<ResultWire>,
    #[prost(uint64, tag = "3")]
    pub completed_at_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CallResultWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(uint32, tag = "2")]
    pub completion_id: u32,
    #[prost(message, optional, tag = "3")]
    pub result: Option<ResultWire>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct OutboxDeliveredWire {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AtWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(uint64, tag = "2")]
    pub at_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PurgeWire {
    #[prost(uint64, tag = "1")]
    pub older_than_ms: u64,
    #[prost(uint64, optional, tag = "2")]
    pub workflow_default_ms: Option<u64>,
    #[prost(btree_map = "string, uint64", tag = "3")]
    pub workflow_by_service: BTreeMap<String, u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ResponseToWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(message, optional, tag = "2")]
    pub response: Option<ResponseSinkWire>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AwaitedResultWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(uint32, tag = "2")]
    pub completion_id: u32,
    #[prost(uint32, tag = "3")]
    pub awaits: u32,
    /// Absent: not ready.
    #[prost(message, optional, tag = "4")]
    pub completed: Option<ResultWire>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SignalWire {
    #[prost(bytes = "bytes", tag = "1")]
    pub id: Bytes,
    #[prost(oneof = "SignalIdWire", tags = "2, 3")]
    pub signal: Option<SignalIdWire>,
    #[prost(oneof = "SignalResultWire", tags = "4, 5, 6")]
    pub result: Option<SignalResultWire>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum SignalIdWire {
    #[prost(uint32, tag = "2")]
    Index(u32),
    #[prost(string, tag = "3")]
    Name(String),
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub(crate) enum SignalResultWire {
    #[prost(bool, tag = "4")]
    Void(bool),
    #[prost(bytes = "bytes", tag = "5")]
    Value(Bytes),
    #[prost(message, tag = "6")]
    Failure(FailureWire),
}

// ---- Envelope -> wire -------------------------------------------------------------

fn id(id: &InvocationId) -> Bytes {
    Bytes::copy_from_slice(&id.to_bytes())
}

fn kind(kind: ServiceType) -> u32 {
    match kind {
        ServiceType::Service => 0,
        ServiceType::VirtualObject => 1,
        ServiceType::Workflow => 2,
    }
}

fn awaits(awaits: Awaits) -> u32 {
    match awaits {
        Awaits::Attach => 0,
        Awaits::GetOutput => 1,
    }
}

fn failure(failure: &Failure) -> FailureWire {
    FailureWire { code: failure.code, message: failure.message.clone() }
}

fn result(result: &InvocationResult) -> ResultWire {
    ResultWire {
        result: Some(match result {
            Ok(bytes) => ResultKind::Ok(bytes.clone()),
            Err(f) => ResultKind::Err(failure(f)),
        }),
    }
}

fn sink(sink: &ResponseSink) -> ResponseSinkWire {
    ResponseSinkWire {
        sink: match sink {
            ResponseSink::None => None,
            ResponseSink::Ingress { request_id } => Some(SinkWire::Ingress(request_id.clone())),
            ResponseSink::Caller { invocation_id, completion_id } => {
                Some(SinkWire::Caller(CompletionWire { id: id(invocation_id), completion_id: *completion_id }))
            }
            ResponseSink::Awaiter { invocation_id, completion_id, awaits: a } => Some(SinkWire::Awaiter(AwaiterWire {
                id: id(invocation_id),
                completion_id: *completion_id,
                awaits: awaits(*a),
            })),
        },
    }
}

fn request(request: &InvocationRequest) -> InvocationRequestWire {
    let t = &request.target;
    InvocationRequestWire {
        id: id(&request.id),
        target: Some(TargetWire {
            service: t.service.clone(),
            handler: t.handler.clone(),
            key: t.key.clone(),
            kind: kind(t.kind),
            handler_shared: t.handler_shared,
        }),
        input: request.input.clone(),
        headers: request
            .headers
            .iter()
            .map(|(name, value)| HeaderWire { name: name.clone(), value: value.clone() })
            .collect(),
        idempotency_key: request.idempotency_key.clone(),
        response: Some(sink(&request.response)),
        submitted_at_ms: request.submitted_at_ms,
        invoke_at_ms: request.invoke_at_ms,
    }
}

impl From<&Envelope> for EnvelopeWire {
    fn from(envelope: &Envelope) -> EnvelopeWire {
        let command = match &envelope.command {
            Command::AnnounceLeader { epoch, node } => {
                CommandWire::AnnounceLeader(AnnounceLeaderWire { epoch: *epoch, node: node.clone() })
            }
            Command::Invoke(r) => CommandWire::Invoke(request(r)),
            Command::Journal { id: i, first_command_index, entries } => CommandWire::Journal(JournalWire {
                id: id(i),
                first_command_index: *first_command_index,
                entries: entries
                    .iter()
                    .map(|e| JournalEntryWire { ty: u32::from(e.ty), flags: u32::from(e.flags), body: e.body.clone() })
                    .collect(),
            }),
            Command::Suspend { id: i, known_entries, awaiting } => CommandWire::Suspend(SuspendWire {
                id: id(i),
                known_entries: *known_entries,
                awaiting: awaiting.as_ref().map(|a| AwaitingWire {
                    completions: a.completions.clone(),
                    signals: a.signals.clone(),
                    named_signals: a.named_signals.clone(),
                }),
            }),
            Command::Complete { id: i, result: r, completed_at_ms } => CommandWire::Complete(CompleteWire {
                id: id(i),
                result: Some(result(r)),
                completed_at_ms: *completed_at_ms,
            }),
            Command::TimerFired { id: i, completion_id } => {
                CommandWire::TimerFired(CompletionWire { id: id(i), completion_id: *completion_id })
            }
            Command::CallResult { id: i, completion_id, result: r } => CommandWire::CallResult(CallResultWire {
                id: id(i),
                completion_id: *completion_id,
                result: Some(result(r)),
            }),
            Command::OutboxDelivered { seq } => CommandWire::OutboxDelivered(OutboxDeliveredWire { seq: *seq }),
            Command::Kill { id: i, at_ms } => CommandWire::Kill(AtWire { id: id(i), at_ms: *at_ms }),
            Command::Purge { id: i } => CommandWire::Purge(IdWire { id: id(i) }),
            Command::Pause { id: i } => CommandWire::Pause(IdWire { id: id(i) }),
            Command::Resume { id: i } => CommandWire::Resume(IdWire { id: id(i) }),
            Command::RestartAsNew { id: i, new_id, at_ms } => {
                CommandWire::RestartAsNew(RestartAsNewWire { id: id(i), new_id: id(new_id), at_ms: *at_ms })
            }
            Command::SetState { service, key, entries, expected_version } => CommandWire::SetState(SetStateWire {
                service: service.clone(),
                key: key.clone(),
                entries: entries
                    .iter()
                    .map(|e| StateEntryWire { key: e.key.clone(), value: e.value.clone() })
                    .collect(),
                expected_version: expected_version.clone(),
            }),
            Command::Cancel { id: i, at_ms } => CommandWire::Cancel(AtWire { id: id(i), at_ms: *at_ms }),
            Command::PurgeIdempotency { older_than_ms, workflows } => CommandWire::PurgeIdempotency(PurgeWire {
                older_than_ms: *older_than_ms,
                workflow_default_ms: workflows.default_ms,
                workflow_by_service: workflows.by_service.clone(),
            }),
            Command::Attach { id: i, response } => {
                CommandWire::Attach(ResponseToWire { id: id(i), response: Some(sink(response)) })
            }
            Command::GetOutput { id: i, response } => {
                CommandWire::GetOutput(ResponseToWire { id: id(i), response: Some(sink(response)) })
            }
            Command::AwaitedResult { id: i, completion_id, awaits: a, outcome } => {
                CommandWire::AwaitedResult(AwaitedResultWire {
                    id: id(i),
                    completion_id: *completion_id,
                    awaits: awaits(*a),
                    completed: match outcome {
                        AwaitedOutcome::NotReady => None,
                        AwaitedOutcome::Completed(r) => Some(result(r)),
                    },
                })
            }
            Command::Signal { id: i, signal, result: r } => CommandWire::Signal(SignalWire {
                id: id(i),
                signal: Some(match signal {
                    SignalId::Index(index) => SignalIdWire::Index(*index),
                    SignalId::Name(name) => SignalIdWire::Name(name.clone()),
                }),
                result: Some(match r {
                    SignalResult::Void => SignalResultWire::Void(true),
                    SignalResult::Value(bytes) => SignalResultWire::Value(bytes.clone()),
                    SignalResult::Failure(f) => SignalResultWire::Failure(failure(f)),
                }),
            }),
        };
        EnvelopeWire { epoch: envelope.epoch, command: Some(command) }
    }
}

// ---- wire -> Envelope -------------------------------------------------------------

/// What is wrong with a decoded record (the caller adds which record).
type WireError = String;

fn missing(what: &str) -> WireError {
    format!("the record has no {what}")
}

fn invocation_id(bytes: &[u8]) -> Result<InvocationId, WireError> {
    let raw: [u8; INVOCATION_ID_LEN] = bytes
        .try_into()
        .map_err(|_| format!("an invocation id is {INVOCATION_ID_LEN} bytes, this one {}", bytes.len()))?;
    Ok(InvocationId::from_bytes(raw))
}

fn service_type(kind: u32) -> Result<ServiceType, WireError> {
    match kind {
        0 => Ok(ServiceType::Service),
        1 => Ok(ServiceType::VirtualObject),
        2 => Ok(ServiceType::Workflow),
        other => Err(format!("unknown service type {other}")),
    }
}

fn awaits_of(awaits: u32) -> Result<Awaits, WireError> {
    match awaits {
        0 => Ok(Awaits::Attach),
        1 => Ok(Awaits::GetOutput),
        other => Err(format!("unknown awaited kind {other}")),
    }
}

fn failure_of(failure: FailureWire) -> Failure {
    Failure { code: failure.code, message: failure.message }
}

fn result_of(result: Option<ResultWire>) -> Result<InvocationResult, WireError> {
    match result.and_then(|r| r.result).ok_or_else(|| missing("result"))? {
        ResultKind::Ok(bytes) => Ok(Ok(bytes)),
        ResultKind::Err(f) => Ok(Err(failure_of(f))),
    }
}

fn sink_of(sink: Option<ResponseSinkWire>) -> Result<ResponseSink, WireError> {
    Ok(match sink.ok_or_else(|| missing("response sink"))?.sink {
        None => ResponseSink::None,
        Some(SinkWire::Ingress(request_id)) => ResponseSink::Ingress { request_id },
        Some(SinkWire::Caller(c)) => {
            ResponseSink::Caller { invocation_id: invocation_id(&c.id)?, completion_id: c.completion_id }
        }
        Some(SinkWire::Awaiter(a)) => ResponseSink::Awaiter {
            invocation_id: invocation_id(&a.id)?,
            completion_id: a.completion_id,
            awaits: awaits_of(a.awaits)?,
        },
    })
}

fn request_of(r: InvocationRequestWire) -> Result<InvocationRequest, WireError> {
    let t = r.target.ok_or_else(|| missing("target"))?;
    Ok(InvocationRequest {
        id: invocation_id(&r.id)?,
        target: Target {
            service: t.service,
            handler: t.handler,
            key: t.key,
            kind: service_type(t.kind)?,
            handler_shared: t.handler_shared,
        },
        input: r.input,
        headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        idempotency_key: r.idempotency_key,
        response: sink_of(r.response)?,
        submitted_at_ms: r.submitted_at_ms,
        invoke_at_ms: r.invoke_at_ms,
    })
}

fn entry_of(e: JournalEntryWire) -> Result<JournalEntry, WireError> {
    let ty = u16::try_from(e.ty).map_err(|_| format!("journal entry type {} is not 16 bits", e.ty))?;
    let flags = u16::try_from(e.flags).map_err(|_| format!("journal entry flags {} are not 16 bits", e.flags))?;
    Ok(JournalEntry { ty, flags, body: e.body })
}

impl TryFrom<EnvelopeWire> for Envelope {
    type Error = WireError;

    fn try_from(wire: EnvelopeWire) -> Result<Envelope, WireError> {
        let command = match wire.command.ok_or_else(|| missing("command"))? {
            CommandWire::AnnounceLeader(a) => Command::AnnounceLeader { epoch: a.epoch, node: a.node },
            CommandWire::Invoke(r) => Command::Invoke(request_of(r)?),
            CommandWire::Journal(j) => Command::Journal {
                id: invocation_id(&j.id)?,
                first_command_index: j.first_command_index,
                entries: j.entries.into_iter().map(entry_of).collect::<Result<_, _>>()?,
            },
            CommandWire::Suspend(s) => Command::Suspend {
                id: invocation_id(&s.id)?,
                known_entries: s.known_entries,
                awaiting: s.awaiting.map(|a| Awaiting {
                    completions: a.completions,
                    signals: a.signals,
                    named_signals: a.named_signals,
                }),
            },
            CommandWire::Complete(c) => Command::Complete {
                id: invocation_id(&c.id)?,
                result: result_of(c.result)?,
                completed_at_ms: c.completed_at_ms,
            },
            CommandWire::TimerFired(t) => {
                Command::TimerFired { id: invocation_id(&t.id)?, completion_id: t.completion_id }
            }
            CommandWire::CallResult(c) => Command::CallResult {
                id: invocation_id(&c.id)?,
                completion_id: c.completion_id,
                result: result_of(c.result)?,
            },
            CommandWire::OutboxDelivered(o) => Command::OutboxDelivered { seq: o.seq },
            CommandWire::Kill(k) => Command::Kill { id: invocation_id(&k.id)?, at_ms: k.at_ms },
            CommandWire::Purge(p) => Command::Purge { id: invocation_id(&p.id)? },
            CommandWire::Pause(p) => Command::Pause { id: invocation_id(&p.id)? },
            CommandWire::Resume(p) => Command::Resume { id: invocation_id(&p.id)? },
            CommandWire::RestartAsNew(r) => {
                Command::RestartAsNew { id: invocation_id(&r.id)?, new_id: invocation_id(&r.new_id)?, at_ms: r.at_ms }
            }
            CommandWire::SetState(s) => Command::SetState {
                service: s.service,
                key: s.key,
                entries: s.entries.into_iter().map(|e| StateEntry { key: e.key, value: e.value }).collect(),
                expected_version: s.expected_version,
            },
            CommandWire::Cancel(c) => Command::Cancel { id: invocation_id(&c.id)?, at_ms: c.at_ms },
            CommandWire::PurgeIdempotency(p) => Command::PurgeIdempotency {
                older_than_ms: p.older_than_ms,
                workflows: WorkflowCutoffs { default_ms: p.workflow_default_ms, by_service: p.workflow_by_service },
            },
            CommandWire::Attach(a) => Command::Attach { id: invocation_id(&a.id)?, response: sink_of(a.response)? },
            CommandWire::GetOutput(g) => {
                Command::GetOutput { id: invocation_id(&g.id)?, response: sink_of(g.response)? }
            }
            CommandWire::AwaitedResult(a) => Command::AwaitedResult {
                id: invocation_id(&a.id)?,
                completion_id: a.completion_id,
                awaits: awaits_of(a.awaits)?,
                outcome: match a.completed {
                    None => AwaitedOutcome::NotReady,
                    Some(r) => AwaitedOutcome::Completed(result_of(Some(r))?),
                },
            },
            CommandWire::Signal(s) => Command::Signal {
                id: invocation_id(&s.id)?,
                signal: match s.signal.ok_or_else(|| missing("signal id"))? {
                    SignalIdWire::Index(index) => SignalId::Index(index),
                    SignalIdWire::Name(name) => SignalId::Name(name),
                },
                result: match s.result.ok_or_else(|| missing("signal result"))? {
                    SignalResultWire::Void(_) => SignalResult::Void,
                    SignalResultWire::Value(bytes) => SignalResult::Value(bytes),
                    SignalResultWire::Failure(f) => SignalResult::Failure(failure_of(f)),
                },
            },
        };
        Ok(Envelope { epoch: wire.epoch, command })
    }
}
