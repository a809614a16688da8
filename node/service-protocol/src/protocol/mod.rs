//! The Restate service protocol as a worker speaks it to a deployment.
//!
//! An invocation is one HTTP/2 request `POST {deployment}/invoke/{service}/{handler}` with
//! content type [`ProtocolVersion::content_type`]. Both bodies are streams of frames
//! ([`FrameHeader`] + protobuf body): the request carries `Start` and the journal known so
//! far, the response the SDK's new commands and finally `End`, `Suspension` or `Error`.
//!
//! [`pb`] holds the prost types generated from `proto/dev/restate/service/protocol.proto`
//! (MIT, copied from `restate-sdk-shared-core`); [`Message`] wraps the kinds a worker uses.

mod codec;
mod header;
mod message;
mod version;

/// Message types generated from `protocol.proto` (package `dev.restate.service.protocol`).
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/dev.restate.service.protocol.rs"));
}

pub use codec::{decode_frames, encode_frames, DecodeError, FrameDecoder, FramePosition, DEFAULT_MAX_MESSAGE_LEN};
pub use header::{FrameHeader, MessageType, CUSTOM_ENTRY_MIN, HEADER_LEN, REQUESTED_ACK_FLAG};
pub use message::{EncodeError, Message};
pub use version::ProtocolVersion;
