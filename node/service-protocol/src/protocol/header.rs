//! The 8-byte frame header and the message type ids.
//!
//! Every message on an invocation stream is one frame: a big-endian header
//! `type: u16, flags: u16, length: u32` followed by `length` bytes of protobuf body.

use std::fmt;

/// Length of a frame header in bytes.
pub const HEADER_LEN: usize = 8;

/// Header flag (most significant bit of `flags`) asking the runtime to answer a
/// `ProposeRunCompletionMessage` with a `ProposeRunCompletionAckMessage` instead of the
/// full `RunCompletionNotificationMessage`. Only meaningful on that message type.
pub const REQUESTED_ACK_FLAG: u16 = 0x8000;

/// First id of the custom command namespace (`0xFC00..=0xFFFF`): opaque journal entries the
/// runtime stores and replays without interpreting them.
pub const CUSTOM_ENTRY_MIN: u16 = 0xFC00;

macro_rules! message_types {
    ($($(#[$doc:meta])* $variant:ident = $id:literal,)*) => {
        /// The type of a protocol message, as carried in the frame header.
        ///
        /// Ids follow the `Type:` comments of `protocol.proto`: control frames from
        /// `0x0000`, ephemeral commands `0x02xx` and their notifications `0x03xx` (V8),
        /// commands `0x0400..0x8000`, notifications `0x8000..0xFC00`, and custom entries
        /// from [`CUSTOM_ENTRY_MIN`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum MessageType {
            $($(#[$doc])* $variant,)*
            /// A custom journal entry (`0xFC00..=0xFFFF`), the id is kept.
            Custom(u16),
        }

        impl MessageType {
            /// The 16-bit id written in the frame header.
            pub const fn id(self) -> u16 {
                match self {
                    $(MessageType::$variant => $id,)*
                    MessageType::Custom(id) => id,
                }
            }

            /// The type with this id; `None` for ids that `protocol.proto` does not define.
            pub const fn from_id(id: u16) -> Option<MessageType> {
                match id {
                    $($id => Some(MessageType::$variant),)*
                    id if id >= CUSTOM_ENTRY_MIN => Some(MessageType::Custom(id)),
                    _ => None,
                }
            }

            /// The message name without the `Message` suffix, e.g. `RunCommand`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(MessageType::$variant => stringify!($variant),)*
                    MessageType::Custom(_) => "Custom",
                }
            }
        }
    };
}

message_types! {
    Start = 0x0000,
    Suspension = 0x0001,
    Error = 0x0002,
    End = 0x0003,
    CommandAck = 0x0004,
    ProposeRunCompletion = 0x0005,
    AwaitingOn = 0x0006,
    ProposeRunCompletionAck = 0x0007,
    GetStateEphemeralCommand = 0x0200,
    GetStateEphemeralNotification = 0x0300,
    InputCommand = 0x0400,
    OutputCommand = 0x0401,
    GetLazyStateCommand = 0x0402,
    SetStateCommand = 0x0403,
    ClearStateCommand = 0x0404,
    ClearAllStateCommand = 0x0405,
    GetLazyStateKeysCommand = 0x0406,
    GetEagerStateCommand = 0x0407,
    GetEagerStateKeysCommand = 0x0408,
    GetPromiseCommand = 0x0409,
    PeekPromiseCommand = 0x040A,
    CompletePromiseCommand = 0x040B,
    SleepCommand = 0x040C,
    CallCommand = 0x040D,
    OneWayCallCommand = 0x040E,
    SendSignalCommand = 0x0410,
    RunCommand = 0x0411,
    AttachInvocationCommand = 0x0412,
    GetInvocationOutputCommand = 0x0413,
    CompleteAwakeableCommand = 0x0414,
    GetLazyStateCompletionNotification = 0x8002,
    GetLazyStateKeysCompletionNotification = 0x8006,
    GetPromiseCompletionNotification = 0x8009,
    PeekPromiseCompletionNotification = 0x800A,
    CompletePromiseCompletionNotification = 0x800B,
    SleepCompletionNotification = 0x800C,
    CallCompletionNotification = 0x800D,
    CallInvocationIdCompletionNotification = 0x800E,
    RunCompletionNotification = 0x8011,
    AttachInvocationCompletionNotification = 0x8012,
    GetInvocationOutputCompletionNotification = 0x8013,
    SignalNotification = 0xFBFF,
}

impl MessageType {
    /// A journal command (`0x0400..0x8000`), or a custom entry (journaled like a command).
    pub const fn is_command(self) -> bool {
        let id = self.id();
        (id >= 0x0400 && id < 0x8000) || id >= CUSTOM_ENTRY_MIN
    }

    /// A journal notification (`0x8000..0xFC00`): a completion or a signal.
    pub const fn is_notification(self) -> bool {
        let id = self.id();
        id >= 0x8000 && id < CUSTOM_ENTRY_MIN
    }

    /// Whether this type may carry [`REQUESTED_ACK_FLAG`].
    pub const fn allows_requested_ack(self) -> bool {
        matches!(self, MessageType::ProposeRunCompletion)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::Custom(id) => write!(f, "Custom({id:#06x})"),
            other => write!(f, "{} ({:#06x})", other.name(), other.id()),
        }
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The message type.
    pub ty: MessageType,
    /// The flag bits; only [`REQUESTED_ACK_FLAG`] is defined, the rest are reserved.
    pub flags: u16,
    /// Length of the protobuf body that follows, in bytes.
    pub length: u32,
}

impl FrameHeader {
    /// The 8 header bytes, big-endian.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..2].copy_from_slice(&self.ty.id().to_be_bytes());
        out[2..4].copy_from_slice(&self.flags.to_be_bytes());
        out[4..8].copy_from_slice(&self.length.to_be_bytes());
        out
    }

    /// Parses 8 header bytes. Fails with the raw type id when `protocol.proto` defines no
    /// message with that id.
    pub fn from_bytes(bytes: [u8; HEADER_LEN]) -> Result<FrameHeader, u16> {
        let id = u16::from_be_bytes([bytes[0], bytes[1]]);
        let ty = MessageType::from_id(id).ok_or(id)?;
        Ok(FrameHeader {
            ty,
            flags: u16::from_be_bytes([bytes[2], bytes[3]]),
            length: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_big_endian_type_flags_length() {
        let header =
            FrameHeader { ty: MessageType::ProposeRunCompletion, flags: REQUESTED_ACK_FLAG, length: 0x0102_0304 };
        assert_eq!(header.to_bytes(), [0x00, 0x05, 0x80, 0x00, 0x01, 0x02, 0x03, 0x04]);
        assert_eq!(FrameHeader::from_bytes(header.to_bytes()), Ok(header));
    }

    #[test]
    fn ids_round_trip_and_unknown_ids_are_rejected() {
        for id in 0..=u16::MAX {
            if let Some(ty) = MessageType::from_id(id) {
                assert_eq!(ty.id(), id);
            }
        }
        assert_eq!(MessageType::from_id(0x0411), Some(MessageType::RunCommand));
        assert_eq!(MessageType::from_id(0x8011), Some(MessageType::RunCompletionNotification));
        assert_eq!(MessageType::from_id(0xFC07), Some(MessageType::Custom(0xFC07)));
        assert_eq!(MessageType::from_id(0x0008), None);
        assert_eq!(MessageType::from_id(0x040F), None);
        assert_eq!(FrameHeader::from_bytes([0x04, 0x0F, 0, 0, 0, 0, 0, 0]), Err(0x040F));
    }

    #[test]
    fn namespaces() {
        assert!(MessageType::InputCommand.is_command());
        assert!(MessageType::Custom(0xFC00).is_command());
        assert!(!MessageType::Start.is_command());
        assert!(MessageType::SignalNotification.is_notification());
        assert!(MessageType::RunCompletionNotification.is_notification());
        assert!(!MessageType::RunCommand.is_notification());
        assert_eq!(MessageType::RunCommand.to_string(), "RunCommand (0x0411)");
    }
}
