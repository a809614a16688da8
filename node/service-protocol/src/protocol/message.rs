//! Typed protocol messages and the encoding of one message body.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;

use super::header::{FrameHeader, MessageType, HEADER_LEN, REQUESTED_ACK_FLAG};
use super::pb;
use super::version::ProtocolVersion;

macro_rules! typed_messages {
    ($($(#[$doc:meta])* $variant:ident($pb:ident),)*) => {
        /// One protocol message.
        ///
        /// The kinds a worker acts on are typed; every other type `protocol.proto` defines
        /// (promises, signals, attach, custom entries, ...) is kept as [`Message::Other`] with
        /// its raw body, so a journal can store and replay it unchanged.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Message {
            $($(#[$doc])* $variant(pb::$pb),)*
            /// The SDK proposes the result of a `ctx.run` closure. With `requested_ack` (the
            /// header flag, always set by V7 SDKs) the runtime answers with
            /// `ProposeRunCompletionAck`, otherwise with the `RunCompletionNotification`.
            /// In request/response mode there is no answer on the same stream: the runtime
            /// stores the `RunCompletionNotification` and invokes again.
            ProposeRunCompletion { message: pb::ProposeRunCompletionMessage, requested_ack: bool },
            /// The SDK suspends, awaiting the notifications in `awaiting_on`. V5 and V6 send
            /// flat `waiting_*` lists instead of a tree; they are decoded into one
            /// `FIRST_COMPLETED` future (and encoded back flat).
            Suspension(pb::SuspensionMessage),
            /// Any other defined message type, body not decoded.
            Other { ty: MessageType, flags: u16, body: Bytes },
        }

        impl Message {
            /// The type written in this message's frame header.
            pub fn message_type(&self) -> MessageType {
                match self {
                    $(Message::$variant(_) => MessageType::$variant,)*
                    Message::ProposeRunCompletion { .. } => MessageType::ProposeRunCompletion,
                    Message::Suspension(_) => MessageType::Suspension,
                    Message::Other { ty, .. } => *ty,
                }
            }

            fn encoded_body(&self, version: ProtocolVersion) -> EncodedBody<'_> {
                match self {
                    $(Message::$variant(m) => EncodedBody::Proto(m, 0),)*
                    Message::ProposeRunCompletion { message, requested_ack } => {
                        EncodedBody::Proto(message, if *requested_ack { REQUESTED_ACK_FLAG } else { 0 })
                    }
                    Message::Suspension(m) if version >= ProtocolVersion::V7 => EncodedBody::Proto(m, 0),
                    Message::Suspension(m) => EncodedBody::LegacySuspension(LegacySuspension::flatten(m)),
                    Message::Other { flags, body, .. } => EncodedBody::Raw(body, *flags),
                }
            }

            /// Decodes the body of a frame whose header is `header`.
            ///
            /// Reserved header flags are ignored on typed messages; `Other` keeps them.
            pub fn decode(header: FrameHeader, body: Bytes, version: ProtocolVersion) -> Result<Message, prost::DecodeError> {
                Ok(match header.ty {
                    $(MessageType::$variant => Message::$variant(pb::$pb::decode(body)?),)*
                    MessageType::ProposeRunCompletion => Message::ProposeRunCompletion {
                        message: pb::ProposeRunCompletionMessage::decode(body)?,
                        requested_ack: header.flags & REQUESTED_ACK_FLAG != 0,
                    },
                    MessageType::Suspension if version >= ProtocolVersion::V7 => {
                        Message::Suspension(pb::SuspensionMessage::decode(body)?)
                    }
                    MessageType::Suspension => Message::Suspension(LegacySuspension::decode(body)?.into_tree()),
                    ty => Message::Other { ty, flags: header.flags, body },
                })
            }
        }
    };
}

typed_messages! {
    /// First message of every request: invocation id, key, eager state, journal length.
    Start(StartMessage),
    /// The attempt failed (retryable unless `behavior` says otherwise); ends the stream.
    Error(ErrorMessage),
    /// The invocation finished (its `OutputCommand` is in the journal); ends the stream.
    End(EndMessage),
    /// Runtime to SDK: the proposed run completion is stored (V7).
    ProposeRunCompletionAck(ProposeRunCompletionAckMessage),
    /// SDK hint about what it currently awaits (V7); not journaled.
    AwaitingOn(AwaitingOnMessage),
    /// First journal entry: the invocation's input.
    InputCommand(InputCommandMessage),
    /// The invocation's result or terminal failure.
    OutputCommand(OutputCommandMessage),
    /// Read of a state key missing from a partial eager state; completed by a notification.
    GetLazyStateCommand(GetLazyStateCommandMessage),
    /// Answer to [`Message::GetLazyStateCommand`].
    GetLazyStateCompletionNotification(GetLazyStateCompletionNotificationMessage),
    /// Write of one state key.
    SetStateCommand(SetStateCommandMessage),
    /// Removal of one state key.
    ClearStateCommand(ClearStateCommandMessage),
    /// Removal of every state key of the object.
    ClearAllStateCommand(ClearAllStateCommandMessage),
    /// Read of a state key answered from the eager state in `Start` (result inlined).
    GetEagerStateCommand(GetEagerStateCommandMessage),
    /// Durable timer; completed by a notification at `wake_up_time`.
    SleepCommand(SleepCommandMessage),
    /// Answer to [`Message::SleepCommand`].
    SleepCompletionNotification(SleepCompletionNotificationMessage),
    /// Request-response call to another handler (two completion ids: invocation id, result).
    CallCommand(CallCommandMessage),
    /// The callee's invocation id, for calls and one-way calls.
    CallInvocationIdCompletionNotification(CallInvocationIdCompletionNotificationMessage),
    /// The result of a [`Message::CallCommand`].
    CallCompletionNotification(CallCompletionNotificationMessage),
    /// Fire-and-forget call (optionally delayed).
    OneWayCallCommand(OneWayCallCommandMessage),
    /// A `ctx.run` side effect; its result arrives as a notification.
    RunCommand(RunCommandMessage),
    /// The stored result of a [`Message::RunCommand`].
    RunCompletionNotification(RunCompletionNotificationMessage),
}

impl Message {
    /// Whether this message ends the SDK's side of the stream (End, Suspension or Error).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Message::End(_) | Message::Suspension(_) | Message::Error(_))
    }

    /// Appends this message as one frame (header and body) to `buf`.
    pub fn encode_frame(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let body = self.encoded_body(version);
        let length = body.len();
        let length = u32::try_from(length).map_err(|_| EncodeError::TooLarge { ty: self.message_type(), length })?;
        let header = FrameHeader { ty: self.message_type(), flags: body.flags(), length };
        buf.reserve(HEADER_LEN + length as usize);
        buf.put_slice(&header.to_bytes());
        body.write(buf);
        Ok(())
    }
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    /// The body does not fit the 32-bit length field.
    #[error("{ty} body is {length} bytes, more than a frame can carry (u32::MAX)")]
    TooLarge { ty: MessageType, length: usize },
}

/// A message body ready to be written, with the header flags it needs.
enum EncodedBody<'a> {
    Proto(&'a dyn ProtoBody, u16),
    LegacySuspension(LegacySuspension),
    Raw(&'a Bytes, u16),
}

impl EncodedBody<'_> {
    fn len(&self) -> usize {
        match self {
            EncodedBody::Proto(m, _) => m.body_len(),
            EncodedBody::LegacySuspension(m) => m.encoded_len(),
            EncodedBody::Raw(b, _) => b.len(),
        }
    }

    fn flags(&self) -> u16 {
        match self {
            EncodedBody::Proto(_, flags) | EncodedBody::Raw(_, flags) => *flags,
            EncodedBody::LegacySuspension(_) => 0,
        }
    }

    fn write(&self, buf: &mut BytesMut) {
        match self {
            EncodedBody::Proto(m, _) => m.write_body(buf),
            EncodedBody::LegacySuspension(m) => m.write_body(buf),
            EncodedBody::Raw(b, _) => buf.put_slice(b),
        }
    }
}

/// Object-safe view of a prost message, so one code path encodes every typed variant.
trait ProtoBody {
    fn body_len(&self) -> usize;
    fn write_body(&self, buf: &mut BytesMut);
}

impl<M: prost::Message> ProtoBody for M {
    fn body_len(&self) -> usize {
        self.encoded_len()
    }

    fn write_body(&self, buf: &mut BytesMut) {
        // prost fails only when the buffer cannot take the whole body; a BytesMut grows.
        self.encode(buf).expect("a BytesMut has room for any message body")
    }
}

/// `SuspensionMessage` as V5 and V6 define it (fields 1 to 3, reserved since V7).
#[derive(Clone, PartialEq, prost::Message)]
struct LegacySuspension {
    #[prost(uint32, repeated, tag = "1")]
    waiting_completions: Vec<u32>,
    #[prost(uint32, repeated, tag = "2")]
    waiting_signals: Vec<u32>,
    #[prost(string, repeated, tag = "3")]
    waiting_named_signals: Vec<String>,
}

impl LegacySuspension {
    /// Every leaf id of the tree, depth first; the legacy form resumes on any of them.
    fn flatten(message: &pb::SuspensionMessage) -> LegacySuspension {
        fn walk(future: &pb::Future, out: &mut LegacySuspension) {
            out.waiting_completions.extend_from_slice(&future.waiting_completions);
            out.waiting_signals.extend_from_slice(&future.waiting_signals);
            out.waiting_named_signals.extend(future.waiting_named_signals.iter().cloned());
            for nested in &future.nested_futures {
                walk(nested, out);
            }
        }
        let mut out = LegacySuspension::default();
        if let Some(future) = &message.awaiting_on {
            walk(future, &mut out);
        }
        out
    }

    fn into_tree(self) -> pb::SuspensionMessage {
        pb::SuspensionMessage {
            awaiting_on: Some(pb::Future {
                waiting_completions: self.waiting_completions,
                waiting_signals: self.waiting_signals,
                waiting_named_signals: self.waiting_named_signals,
                nested_futures: Vec::new(),
                combinator_type: pb::CombinatorType::FirstCompleted as i32,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &Message, version: ProtocolVersion) -> (FrameHeader, Bytes) {
        let mut buf = BytesMut::new();
        message.encode_frame(version, &mut buf).unwrap();
        let header = FrameHeader::from_bytes(buf[..HEADER_LEN].try_into().unwrap()).unwrap();
        let body = buf.freeze().slice(HEADER_LEN..);
        assert_eq!(header.length as usize, body.len());
        (header, body)
    }

    fn round_trip(message: &Message, version: ProtocolVersion) -> Message {
        let (header, body) = frame(message, version);
        Message::decode(header, body, version).unwrap()
    }

    #[test]
    fn typed_messages_round_trip() {
        let messages = [
            Message::Start(pb::StartMessage {
                id: Bytes::from_static(b"inv-1"),
                debug_id: "inv_1".into(),
                known_entries: 1,
                key: "my-key".into(),
                state_map: vec![pb::start_message::StateEntry {
                    key: Bytes::from_static(b"count"),
                    value: Bytes::from_static(b"41"),
                }],
                ..Default::default()
            }),
            Message::InputCommand(pb::InputCommandMessage {
                value: Some(pb::Value { content: Bytes::from_static(b"\"Sarah\"") }),
                ..Default::default()
            }),
            Message::SetStateCommand(pb::SetStateCommandMessage {
                key: Bytes::from_static(b"count"),
                value: Some(pb::Value { content: Bytes::from_static(b"42") }),
                name: String::new(),
            }),
            Message::RunCommand(pb::RunCommandMessage { result_completion_id: 1, name: "issue".into() }),
            Message::End(pb::EndMessage {}),
        ];
        for message in &messages {
            assert_eq!(&round_trip(message, ProtocolVersion::V7), message);
        }
        assert_eq!(messages[3].message_type(), MessageType::RunCommand);
        assert!(messages[4].is_terminal());
        assert!(!messages[3].is_terminal());
    }

    #[test]
    fn requested_ack_travels_in_the_header_flags() {
        let message = Message::ProposeRunCompletion {
            message: pb::ProposeRunCompletionMessage {
                result_completion_id: 1,
                result: Some(pb::propose_run_completion_message::Result::Value(Bytes::from_static(b"\"x\""))),
            },
            requested_ack: true,
        };
        let (header, _) = frame(&message, ProtocolVersion::V7);
        assert_eq!(header.flags, REQUESTED_ACK_FLAG);
        assert_eq!(round_trip(&message, ProtocolVersion::V7), message);
    }

    #[test]
    fn suspension_uses_flat_lists_before_v7() {
        let tree = Message::Suspension(pb::SuspensionMessage {
            awaiting_on: Some(pb::Future {
                waiting_completions: vec![1],
                nested_futures: vec![pb::Future {
                    waiting_completions: vec![3],
                    waiting_named_signals: vec!["go".into()],
                    ..Default::default()
                }],
                combinator_type: pb::CombinatorType::AllCompleted as i32,
                ..Default::default()
            }),
        });
        assert_eq!(round_trip(&tree, ProtocolVersion::V7), tree);

        let (header, body) = frame(&tree, ProtocolVersion::V6);
        let legacy = LegacySuspension::decode(body.clone()).unwrap();
        assert_eq!(legacy.waiting_completions, vec![1, 3]);
        assert_eq!(legacy.waiting_named_signals, vec!["go".to_string()]);
        let Message::Suspension(decoded) = Message::decode(header, body, ProtocolVersion::V6).unwrap() else {
            panic!("not a suspension");
        };
        let future = decoded.awaiting_on.unwrap();
        assert_eq!(future.waiting_completions, vec![1, 3]);
        assert_eq!(future.combinator_type, pb::CombinatorType::FirstCompleted as i32);
    }

    #[test]
    fn untyped_messages_are_kept_raw() {
        let message = Message::Other {
            ty: MessageType::GetPromiseCommand,
            flags: 0,
            body: pb::GetPromiseCommandMessage { key: "p".into(), result_completion_id: 2, name: String::new() }
                .encode_to_vec()
                .into(),
        };
        assert_eq!(round_trip(&message, ProtocolVersion::V5), message);
        let custom =
            Message::Other { ty: MessageType::Custom(0xFC01), flags: 0x0001, body: Bytes::from_static(b"xyz") };
        assert_eq!(round_trip(&custom, ProtocolVersion::V5), custom);
    }
}
