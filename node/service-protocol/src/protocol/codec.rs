//! Encoding and decoding of frame streams (the body of an invocation request or response).

use bytes::{Buf, Bytes, BytesMut};

use super::header::{FrameHeader, MessageType, HEADER_LEN};
use super::message::{EncodeError, Message};
use super::version::ProtocolVersion;

/// Default bound on one message body: larger frames are rejected by [`FrameDecoder`].
pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 32 * 1024 * 1024;

/// Encodes `messages` as consecutive frames, in order.
pub fn encode_frames<'a>(
    messages: impl IntoIterator<Item = &'a Message>,
    version: ProtocolVersion,
) -> Result<Bytes, EncodeError> {
    let mut buf = BytesMut::new();
    for message in messages {
        message.encode_frame(version, &mut buf)?;
    }
    Ok(buf.freeze())
}

/// Decodes a complete frame stream. A stream that ends inside a frame is an error
/// ([`DecodeError::TruncatedHeader`] or [`DecodeError::TruncatedBody`]).
pub fn decode_frames(stream: Bytes, version: ProtocolVersion) -> Result<Vec<Message>, DecodeError> {
    let mut decoder = FrameDecoder::new(version);
    decoder.push(stream);
    let mut messages = Vec::new();
    while let Some(message) = decoder.next_message()? {
        messages.push(message);
    }
    decoder.finish()?;
    Ok(messages)
}

/// Where a frame sits in its stream, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePosition {
    /// 0-based index of the frame in the stream.
    pub index: u64,
    /// Byte offset of the frame's header from the start of the stream.
    pub offset: u64,
}

impl std::fmt::Display for FramePosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "frame #{} (byte {})", self.index, self.offset)
    }
}

/// Why a frame stream could not be decoded. Every variant names the frame it concerns.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// The stream ended inside a frame header.
    #[error("stream ends inside the header of {at}: {available} of {HEADER_LEN} header bytes")]
    TruncatedHeader { at: FramePosition, available: usize },
    /// The stream ended inside a frame body.
    #[error("stream ends inside the body of {at}, a {ty}: {available} of {length} body bytes")]
    TruncatedBody { at: FramePosition, ty: MessageType, length: u32, available: usize },
    /// The header names a type `protocol.proto` does not define.
    #[error("{at} has unknown message type {ty:#06x} (not defined by the service protocol; corrupt or newer stream?)")]
    UnknownMessageType { at: FramePosition, ty: u16 },
    /// The header announces a body larger than the decoder accepts.
    #[error("{at}, a {ty}, announces a {length}-byte body, more than the {limit}-byte limit")]
    TooLarge { at: FramePosition, ty: MessageType, length: u32, limit: u32 },
    /// The body is not a valid protobuf encoding of the message type.
    #[error("{at}, a {ty} of {length} bytes, has an invalid body: {source}")]
    InvalidBody {
        at: FramePosition,
        ty: MessageType,
        length: u32,
        #[source]
        source: prost::DecodeError,
    },
}

/// Incremental decoder of a frame stream: feed it chunks as they arrive with
/// [`FrameDecoder::push`], take whole messages with [`FrameDecoder::next_message`], and call
/// [`FrameDecoder::finish`] at the end of the stream to detect a truncated last frame.
///
/// After an error the stream cannot be resynchronised; the decoder should be dropped.
#[derive(Debug)]
pub struct FrameDecoder {
    version: ProtocolVersion,
    max_message_len: u32,
    buf: BytesMut,
    /// Position of the frame at the start of `buf`.
    next: FramePosition,
}

impl FrameDecoder {
    /// A decoder for a stream of the given protocol version (it decides the shape of
    /// `SuspensionMessage`), with [`DEFAULT_MAX_MESSAGE_LEN`].
    pub fn new(version: ProtocolVersion) -> FrameDecoder {
        FrameDecoder {
            version,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            buf: BytesMut::new(),
            next: FramePosition { index: 0, offset: 0 },
        }
    }

    /// Rejects frames whose body is longer than `limit` bytes (checked as soon as the
    /// header is complete, before the body arrives).
    pub fn with_max_message_len(mut self, limit: u32) -> FrameDecoder {
        self.max_message_len = limit;
        self
    }

    /// Appends the next chunk of the stream.
    pub fn push(&mut self, chunk: impl AsRef<[u8]>) {
        self.buf.extend_from_slice(chunk.as_ref());
    }

    /// Number of frames decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.next.index
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let header = self.peek_header()?;
        let frame_len = HEADER_LEN + header.length as usize;
        if self.buf.len() < frame_len {
            return Ok(None);
        }
        let at = self.next;
        self.buf.advance(HEADER_LEN);
        let body = self.buf.split_to(header.length as usize).freeze();
        self.next = FramePosition { index: at.index + 1, offset: at.offset + frame_len as u64 };
        Message::decode(header, body, self.version).map(Some).map_err(|source| DecodeError::InvalidBody {
            at,
            ty: header.ty,
            length: header.length,
            source,
        })
    }

    /// Checks that the stream ended on a frame boundary: any bytes left over are a
    /// truncated frame. Call after [`FrameDecoder::next_message`] returned `Ok(None)`.
    pub fn finish(&self) -> Result<(), DecodeError> {
        let at = self.next;
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.buf.len() < HEADER_LEN {
            return Err(DecodeError::TruncatedHeader { at, available: self.buf.len() });
        }
        let header = self.peek_header()?;
        Err(DecodeError::TruncatedBody {
            at,
            ty: header.ty,
            length: header.length,
            available: self.buf.len() - HEADER_LEN,
        })
    }

    /// Parses and checks the header at the start of `buf` (which holds at least 8 bytes).
    fn peek_header(&self) -> Result<FrameHeader, DecodeError> {
        let at = self.next;
        let bytes: [u8; HEADER_LEN] = self.buf[..HEADER_LEN].try_into().expect("caller checked the length");
        let header = FrameHeader::from_bytes(bytes).map_err(|ty| DecodeError::UnknownMessageType { at, ty })?;
        if header.length > self.max_message_len {
            return Err(DecodeError::TooLarge {
                at,
                ty: header.ty,
                length: header.length,
                limit: self.max_message_len,
            });
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::pb;

    fn journal() -> Vec<Message> {
        vec![
            Message::Start(pb::StartMessage { known_entries: 1, ..Default::default() }),
            Message::InputCommand(pb::InputCommandMessage {
                value: Some(pb::Value { content: Bytes::from_static(b"\"Sarah\"") }),
                ..Default::default()
            }),
            Message::End(pb::EndMessage {}),
        ]
    }

    #[test]
    fn stream_round_trip() {
        let messages = journal();
        let bytes = encode_frames(&messages, ProtocolVersion::V5).unwrap();
        assert_eq!(decode_frames(bytes, ProtocolVersion::V5).unwrap(), messages);
        assert_eq!(decode_frames(Bytes::new(), ProtocolVersion::V5).unwrap(), vec![]);
    }

    #[test]
    fn decodes_byte_by_byte() {
        let messages = journal();
        let bytes = encode_frames(&messages, ProtocolVersion::V7).unwrap();
        let mut decoder = FrameDecoder::new(ProtocolVersion::V7);
        let mut out = Vec::new();
        for byte in bytes.iter() {
            decoder.push([*byte]);
            while let Some(message) = decoder.next_message().unwrap() {
                out.push(message);
            }
        }
        decoder.finish().unwrap();
        assert_eq!(out, messages);
        assert_eq!(decoder.frames_decoded(), 3);
    }

    #[test]
    fn truncated_header_names_the_frame() {
        let bytes = encode_frames(&journal()[..1], ProtocolVersion::V7).unwrap();
        let mut stream = BytesMut::from(&bytes[..]);
        stream.extend_from_slice(&[0x04, 0x00, 0x00]);
        let err = decode_frames(stream.freeze(), ProtocolVersion::V7).unwrap_err();
        let offset = bytes.len() as u64;
        assert_eq!(err, DecodeError::TruncatedHeader { at: FramePosition { index: 1, offset }, available: 3 });
        assert_eq!(
            err.to_string(),
            format!("stream ends inside the header of frame #1 (byte {offset}): 3 of 8 header bytes")
        );
    }

    #[test]
    fn truncated_body_names_type_and_lengths() {
        let bytes = encode_frames(&journal()[1..2], ProtocolVersion::V7).unwrap();
        let cut = bytes.slice(..bytes.len() - 2);
        let err = decode_frames(cut, ProtocolVersion::V7).unwrap_err();
        let length = (bytes.len() - HEADER_LEN) as u32;
        assert_eq!(
            err,
            DecodeError::TruncatedBody {
                at: FramePosition { index: 0, offset: 0 },
                ty: MessageType::InputCommand,
                length,
                available: length as usize - 2,
            }
        );
        assert!(err.to_string().contains("InputCommand (0x0400)"), "{err}");
    }

    #[test]
    fn unknown_type_is_rejected_with_its_id() {
        let err = decode_frames(Bytes::from_static(&[0x00, 0x09, 0, 0, 0, 0, 0, 0]), ProtocolVersion::V7).unwrap_err();
        assert_eq!(err, DecodeError::UnknownMessageType { at: FramePosition { index: 0, offset: 0 }, ty: 0x0009 });
        assert!(err.to_string().contains("0x0009"), "{err}");
    }

    #[test]
    fn oversized_frame_is_rejected_before_its_body_arrives() {
        let mut decoder = FrameDecoder::new(ProtocolVersion::V7).with_max_message_len(16);
        decoder.push([0x04, 0x01, 0, 0, 0, 0, 0, 17]);
        assert_eq!(
            decoder.next_message().unwrap_err(),
            DecodeError::TooLarge {
                at: FramePosition { index: 0, offset: 0 },
                ty: MessageType::OutputCommand,
                length: 17,
                limit: 16
            }
        );
    }

    #[test]
    fn invalid_body_names_the_frame() {
        // Field 1 of StartMessage is `bytes id`: a length prefix larger than the body.
        let err =
            decode_frames(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 2, 0x0A, 0x05]), ProtocolVersion::V7).unwrap_err();
        assert!(matches!(err, DecodeError::InvalidBody { ty: MessageType::Start, length: 2, .. }), "{err:?}");
        assert!(err.to_string().starts_with("frame #0 (byte 0), a Start (0x0000) of 2 bytes, has an invalid body"));
    }
}
