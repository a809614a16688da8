//! Journal entries: protocol frames (commands and notifications) stored as the SDK sent
//! them, and the notifications the state machine writes itself.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use super::awaiting::{AwaitedOutcome, Awaits};
use super::codec::base64_bytes;
use super::ids::InvocationId;
use super::outcome::{Failure, InvocationResult};
use super::signal::{SignalId, SignalResult};
use restate_service_protocol::protocol::{pb, FrameHeader, Message, MessageType, ProtocolVersion, HEADER_LEN};

/// Signal id of the built-in CANCEL signal (`BuiltInSignal.CANCEL`).
pub const CANCEL_SIGNAL_ID: u32 = 1;

/// The completion id of the timer that starts a `Scheduled` invocation (SDKs number
/// their completions from 1 upwards and never reach it).
pub const START_TIMER: u32 = u32::MAX;

/// One journal entry: the frame's type id, header flags and protobuf body, unchanged.
///
/// Only commands (`0x0400..0x8000`, custom `0xFC00..`) and notifications
/// (`0x8000..0xFC00`) are journal entries; see [`JournalEntry::from_message`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub ty: u16,
    pub flags: u16,
    #[serde(with = "base64_bytes")]
    pub body: Bytes,
}

/// Why a frame cannot be (or is not) a journal entry.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JournalEntryError {
    #[error("message type {ty:#06x} is not defined by the service protocol")]
    UnknownType { ty: u16 },
    #[error("{ty} is not a journal entry (only commands and notifications are journaled)")]
    NotAnEntry { ty: MessageType },
    #[error("{ty} body of {length} bytes does not decode: {detail}")]
    InvalidBody { ty: MessageType, length: usize, detail: String },
}

/// How a notification is addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationId {
    /// Completes the command with this `result_completion_id` (or invocation-id index).
    Completion(u32),
    /// A signal by index (1 = CANCEL).
    Signal(u32),
    /// A named signal.
    NamedSignal(String),
}

impl JournalEntry {
    /// The entry for a message the SDK sent. Fails for non-journal messages (`Start`,
    /// `End`, `Suspension`, `ProposeRunCompletion`, ...).
    pub fn from_message(message: &Message) -> Result<JournalEntry, JournalEntryError> {
        let ty = message.message_type();
        if !(ty.is_command() || ty.is_notification()) {
            return Err(JournalEntryError::NotAnEntry { ty });
        }
        let mut buf = BytesMut::new();
        message.encode_frame(ProtocolVersion::MAX, &mut buf).map_err(|e| JournalEntryError::InvalidBody {
            ty,
            length: 0,
            detail: e.to_string(),
        })?;
        let header: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("a frame starts with its header");
        let header = FrameHeader::from_bytes(header).expect("we just wrote a known type");
        Ok(JournalEntry { ty: ty.id(), flags: header.flags, body: buf.freeze().slice(HEADER_LEN..) })
    }

    /// The `RunCompletionNotification` that stores a `ctx.run` result the SDK proposed
    /// (request/response mode has no ack on the same stream: the leader journals this
    /// and invokes again).
    pub fn run_completion(proposal: &pb::ProposeRunCompletionMessage) -> JournalEntry {
        use pb::propose_run_completion_message::Result as Proposed;
        use pb::run_completion_notification_message::Result as Stored;
        let result = proposal.result.as_ref().map(|r| match r {
            Proposed::Value(bytes) => Stored::Value(pb::Value { content: bytes.clone() }),
            Proposed::Failure(failure) => Stored::Failure(failure.clone()),
        });
        notification(
            MessageType::RunCompletionNotification,
            pb::RunCompletionNotificationMessage { completion_id: proposal.result_completion_id, result },
        )
    }

    /// The journal's first entry: the invocation's input and headers.
    pub fn input(input: &Bytes, headers: &[(String, String)]) -> JournalEntry {
        let message = pb::InputCommandMessage {
            headers: headers.iter().map(|(key, value)| pb::Header { key: key.clone(), value: value.clone() }).collect(),
            value: Some(pb::Value { content: input.clone() }),
            name: String::new(),
        };
        JournalEntry { ty: MessageType::InputCommand.id(), flags: 0, body: message.encode_to_vec().into() }
    }

    pub(crate) fn sleep_completion(completion_id: u32) -> JournalEntry {
        notification(
            MessageType::SleepCompletionNotification,
            pb::SleepCompletionNotificationMessage { completion_id, void: Some(pb::Void {}) },
        )
    }

    pub(crate) fn call_invocation_id(completion_id: u32, callee: InvocationId) -> JournalEntry {
        notification(
            MessageType::CallInvocationIdCompletionNotification,
            pb::CallInvocationIdCompletionNotificationMessage { completion_id, invocation_id: callee.to_string() },
        )
    }

    pub(crate) fn call_completion(completion_id: u32, result: &InvocationResult) -> JournalEntry {
        use pb::call_completion_notification_message::Result as R;
        let result = match result {
            Ok(bytes) => R::Value(pb::Value { content: bytes.clone() }),
            Err(failure) => R::Failure(failure.to_pb()),
        };
        notification(
            MessageType::CallCompletionNotification,
            pb::CallCompletionNotificationMessage { completion_id, result: Some(result) },
        )
    }

    pub(crate) fn lazy_state_completion(completion_id: u32, value: Option<Bytes>) -> JournalEntry {
        use pb::get_lazy_state_completion_notification_message::Result as R;
        let result = match value {
            Some(content) => R::Value(pb::Value { content }),
            None => R::Void(pb::Void {}),
        };
        notification(
            MessageType::GetLazyStateCompletionNotification,
            pb::GetLazyStateCompletionNotificationMessage { completion_id, result: Some(result) },
        )
    }

    pub(crate) fn lazy_state_keys_completion(completion_id: u32, keys: Vec<Bytes>) -> JournalEntry {
        notification(
            MessageType::GetLazyStateKeysCompletionNotification,
            pb::GetLazyStateKeysCompletionNotificationMessage {
                completion_id,
                state_keys: Some(pb::StateKeys { keys }),
            },
        )
    }

    pub(crate) fn cancel_signal() -> JournalEntry {
        JournalEntry::signal(&SignalId::Index(CANCEL_SIGNAL_ID), &SignalResult::Void)
    }

    /// A `SignalNotification` (a signal sent to the invocation, an awakeable's completion).
    pub(crate) fn signal(signal: &SignalId, result: &SignalResult) -> JournalEntry {
        notification(
            MessageType::SignalNotification,
            pb::SignalNotificationMessage { signal_id: Some(signal.to_pb()), result: Some(result.to_pb()) },
        )
    }

    /// `GetPromiseCompletionNotification`: the promise's value or failure.
    pub(crate) fn get_promise_completion(completion_id: u32, result: &InvocationResult) -> JournalEntry {
        use pb::get_promise_completion_notification_message::Result as R;
        let result = match result {
            Ok(content) => R::Value(pb::Value { content: content.clone() }),
            Err(failure) => R::Failure(failure.to_pb()),
        };
        notification(
            MessageType::GetPromiseCompletionNotification,
            pb::GetPromiseCompletionNotificationMessage { completion_id, result: Some(result) },
        )
    }

    /// `PeekPromiseCompletionNotification`: the promise's value or failure, void if pending.
    pub(crate) fn peek_promise_completion(completion_id: u32, result: Option<&InvocationResult>) -> JournalEntry {
        use pb::peek_promise_completion_notification_message::Result as R;
        let result = match result {
            None => R::Void(pb::Void {}),
            Some(Ok(content)) => R::Value(pb::Value { content: content.clone() }),
            Some(Err(failure)) => R::Failure(failure.to_pb()),
        };
        notification(
            MessageType::PeekPromiseCompletionNotification,
            pb::PeekPromiseCompletionNotificationMessage { completion_id, result: Some(result) },
        )
    }

    /// `CompletePromiseCompletionNotification`: void when this completion won, else the
    /// failure.
    pub(crate) fn complete_promise_completion(completion_id: u32, refused: Option<&Failure>) -> JournalEntry {
        use pb::complete_promise_completion_notification_message::Result as R;
        let result = match refused {
            None => R::Void(pb::Void {}),
            Some(failure) => R::Failure(failure.to_pb()),
        };
        notification(
            MessageType::CompletePromiseCompletionNotification,
            pb::CompletePromiseCompletionNotificationMessage { completion_id, result: Some(result) },
        )
    }

    /// The notification answering an `AttachInvocationCommand` or
    /// `GetInvocationOutputCommand` with `completion_id`; `None` for "not ready" to an
    /// attach (which only ever gets the result).
    pub(crate) fn awaited(completion_id: u32, awaits: Awaits, outcome: &AwaitedOutcome) -> Option<JournalEntry> {
        Some(match (awaits, outcome) {
            (Awaits::Attach, AwaitedOutcome::Completed(result)) => {
                use pb::attach_invocation_completion_notification_message::Result as R;
                let result = match result {
                    Ok(content) => R::Value(pb::Value { content: content.clone() }),
                    Err(failure) => R::Failure(failure.to_pb()),
                };
                notification(
                    MessageType::AttachInvocationCompletionNotification,
                    pb::AttachInvocationCompletionNotificationMessage { completion_id, result: Some(result) },
                )
            }
            (Awaits::Attach, AwaitedOutcome::NotReady) => return None,
            (Awaits::GetOutput, outcome) => {
                use pb::get_invocation_output_completion_notification_message::Result as R;
                let result = match outcome {
                    AwaitedOutcome::NotReady => R::Void(pb::Void {}),
                    AwaitedOutcome::Completed(Ok(content)) => R::Value(pb::Value { content: content.clone() }),
                    AwaitedOutcome::Completed(Err(failure)) => R::Failure(failure.to_pb()),
                };
                notification(
                    MessageType::GetInvocationOutputCompletionNotification,
                    pb::GetInvocationOutputCompletionNotificationMessage { completion_id, result: Some(result) },
                )
            }
        })
    }

    /// The message type, `None` for ids the protocol does not define.
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_id(self.ty)
    }

    /// Whether this is a command (counts towards command indexes).
    pub fn is_command(&self) -> bool {
        self.message_type().is_some_and(MessageType::is_command)
    }

    /// Whether this is a notification.
    pub fn is_notification(&self) -> bool {
        self.message_type().is_some_and(MessageType::is_notification)
    }

    /// Checks that this is a journal entry with a decodable body.
    pub fn validate(&self) -> Result<(), JournalEntryError> {
        self.decode().map(drop)
    }

    /// The entry as a protocol message (to send in a request, or to interpret).
    pub fn decode(&self) -> Result<Message, JournalEntryError> {
        let ty = self.message_type().ok_or(JournalEntryError::UnknownType { ty: self.ty })?;
        if !(ty.is_command() || ty.is_notification()) {
            return Err(JournalEntryError::NotAnEntry { ty });
        }
        let header = FrameHeader { ty, flags: self.flags, length: self.body.len() as u32 };
        let message = Message::decode(header, self.body.clone(), ProtocolVersion::MAX)
            .map_err(|e| JournalEntryError::InvalidBody { ty, length: self.body.len(), detail: e.to_string() })?;
        if ty.is_notification() {
            // Every notification shares the NotificationTemplate layout (`Message` keeps
            // many of them raw, so check the common fields here).
            pb::NotificationTemplate::decode(self.body.clone()).map_err(|e| JournalEntryError::InvalidBody {
                ty,
                length: self.body.len(),
                detail: e.to_string(),
            })?;
        }
        Ok(message)
    }

    /// How a notification is addressed; `None` for commands and undecodable bodies.
    pub fn notification_id(&self) -> Option<NotificationId> {
        if !self.is_notification() {
            return None;
        }
        use pb::notification_template::Id;
        match pb::NotificationTemplate::decode(self.body.clone()).ok()?.id? {
            Id::CompletionId(id) => Some(NotificationId::Completion(id)),
            Id::SignalId(id) => Some(NotificationId::Signal(id)),
            Id::SignalName(name) => Some(NotificationId::NamedSignal(name)),
        }
    }

    /// Storage form: `type u16 BE, flags u16 BE, body`.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.body.len());
        out.put_u16(self.ty);
        out.put_u16(self.flags);
        out.extend_from_slice(&self.body);
        out
    }

    /// Inverse of [`JournalEntry::to_stored`]; `None` when shorter than 4 bytes.
    pub fn from_stored(bytes: &[u8]) -> Option<JournalEntry> {
        if bytes.len() < 4 {
            return None;
        }
        Some(JournalEntry {
            ty: u16::from_be_bytes([bytes[0], bytes[1]]),
            flags: u16::from_be_bytes([bytes[2], bytes[3]]),
            body: Bytes::copy_from_slice(&bytes[4..]),
        })
    }
}

impl Failure {
    /// The protocol's `Failure`.
    pub fn to_pb(&self) -> pb::Failure {
        pb::Failure { code: self.code, message: self.message.clone(), metadata: Vec::new() }
    }

    /// From the protocol's `Failure` (metadata is dropped).
    pub fn from_pb(failure: &pb::Failure) -> Failure {
        Failure { code: failure.code, message: failure.message.clone() }
    }
}

fn notification(ty: MessageType, message: impl prost::Message) -> JournalEntry {
    JournalEntry { ty: ty.id(), flags: 0, body: message.encode_to_vec().into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_messages_round_trip_through_entries() {
        let set = Message::SetStateCommand(pb::SetStateCommandMessage {
            key: Bytes::from_static(b"count"),
            value: Some(pb::Value { content: Bytes::from_static(b"1") }),
            name: String::new(),
        });
        let entry = JournalEntry::from_message(&set).unwrap();
        assert_eq!(entry.ty, 0x0403);
        assert!(entry.is_command() && !entry.is_notification());
        assert_eq!(entry.decode().unwrap(), set);
        assert_eq!(JournalEntry::from_stored(&entry.to_stored()).unwrap(), entry);

        let err = JournalEntry::from_message(&Message::End(pb::EndMessage {})).unwrap_err();
        assert!(err.to_string().contains("End (0x0003) is not a journal entry"), "{err}");
    }

    #[test]
    fn generated_notifications_are_addressed() {
        let proposal = pb::ProposeRunCompletionMessage {
            result_completion_id: 3,
            result: Some(pb::propose_run_completion_message::Result::Value(Bytes::from_static(b"\"x\""))),
        };
        let run = JournalEntry::run_completion(&proposal);
        assert_eq!(run.notification_id(), Some(NotificationId::Completion(3)));
        let Message::RunCompletionNotification(decoded) = run.decode().unwrap() else { panic!("not a run completion") };
        assert_eq!(
            decoded.result,
            Some(pb::run_completion_notification_message::Result::Value(pb::Value {
                content: Bytes::from_static(b"\"x\"")
            }))
        );
        assert_eq!(JournalEntry::sleep_completion(4).notification_id(), Some(NotificationId::Completion(4)));
        assert_eq!(JournalEntry::cancel_signal().notification_id(), Some(NotificationId::Signal(CANCEL_SIGNAL_ID)));
        let keys = JournalEntry::lazy_state_keys_completion(5, vec![Bytes::from_static(b"a")]);
        assert_eq!(keys.message_type(), Some(MessageType::GetLazyStateKeysCompletionNotification));
        keys.validate().unwrap();
        for entry in [
            JournalEntry::call_invocation_id(6, InvocationId::new(1, [2; 16])),
            JournalEntry::call_completion(7, &Err(Failure::killed())),
            JournalEntry::lazy_state_completion(8, None),
            JournalEntry::input(&Bytes::from_static(b"\"Sarah\""), &[("a".into(), "b".into())]),
        ] {
            entry.validate().unwrap();
        }
    }

    #[test]
    fn invalid_entries_are_rejected() {
        let err = JournalEntry { ty: 0x0008, flags: 0, body: Bytes::new() }.validate().unwrap_err();
        assert_eq!(err, JournalEntryError::UnknownType { ty: 0x0008 });
        let err = JournalEntry { ty: 0x0000, flags: 0, body: Bytes::new() }.validate().unwrap_err();
        assert!(matches!(err, JournalEntryError::NotAnEntry { .. }), "{err:?}");
        let err = JournalEntry { ty: 0x0403, flags: 0, body: Bytes::from_static(b"\x0a\x09") }.validate().unwrap_err();
        assert!(err.to_string().contains("SetStateCommand (0x0403) body of 2 bytes does not decode"), "{err}");
    }
}
