//! How a log record is written: one format-version byte, then protobuf (format 2, the
//! messages of the `envelope_wire` module); records of format 1 (JSON, written before)
//! are still read.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;

use super::command::Envelope;
use super::envelope_wire::EnvelopeWire;

/// First byte of every envelope written now (protobuf). Readers refuse versions they do not
/// know (see [`EnvelopeError::UnsupportedVersion`]) rather than guess, so a record written
/// by a newer node stops an older processor instead of being skipped.
pub const ENVELOPE_FORMAT_VERSION: u8 = 2;
/// The format written before: JSON. Still read, never written.
pub const ENVELOPE_FORMAT_JSON: u8 = 1;

impl Envelope {
    /// `[ENVELOPE_FORMAT_VERSION] ++ protobuf`.
    pub fn encode(&self) -> Bytes {
        let wire = EnvelopeWire::from(self);
        let mut buf = BytesMut::with_capacity(1 + wire.encoded_len());
        buf.put_u8(ENVELOPE_FORMAT_VERSION);
        wire.encode(&mut buf).expect("a BytesMut grows as needed");
        buf.freeze()
    }

    /// The format written before (`[ENVELOPE_FORMAT_JSON] ++ JSON`): for tests that replay
    /// logs of that format.
    pub fn encode_json(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_u8(ENVELOPE_FORMAT_JSON);
        serde_json::to_writer((&mut buf).writer(), self).expect("envelopes serialize to JSON");
        buf.freeze()
    }

    /// Inverse of [`Envelope::encode`], and of [`Envelope::encode_json`].
    pub fn decode(record: &[u8]) -> Result<Envelope, EnvelopeError> {
        let (&version, body) = record.split_first().ok_or(EnvelopeError::Empty)?;
        let excerpt = || String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        match version {
            ENVELOPE_FORMAT_VERSION => EnvelopeWire::decode(body)
                .map_err(|e| e.to_string())
                .and_then(Envelope::try_from)
                .map_err(|detail| EnvelopeError::Invalid { detail, excerpt: excerpt() }),
            ENVELOPE_FORMAT_JSON => serde_json::from_slice(body)
                .map_err(|e| EnvelopeError::Invalid { detail: e.to_string(), excerpt: excerpt() }),
            version => Err(EnvelopeError::UnsupportedVersion { version }),
        }
    }
}

/// Why a log record is not an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("empty log record (an envelope starts with its format version byte)")]
    Empty,
    #[error("log record has envelope format version {version}, this node reads versions {ENVELOPE_FORMAT_JSON} and {ENVELOPE_FORMAT_VERSION} only; was it written by a newer restate-server? Upgrade this node")]
    UnsupportedVersion { version: u8 },
    #[error("log record is not a valid envelope: {detail} (record starts with: {excerpt})")]
    Invalid { detail: String, excerpt: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::request;
    use crate::{Command, Failure, InvocationId, JournalEntry};

    #[test]
    fn envelopes_round_trip_with_a_version_byte() {
        for envelope in [
            Envelope::announce_leader(3, "N1"),
            Envelope::external(Command::Invoke(request())),
            Envelope::external(Command::Pause { id: InvocationId::new(1, [1; 16]) }),
            Envelope::external(Command::Resume { id: InvocationId::new(1, [1; 16]) }),
            Envelope::external(Command::RestartAsNew {
                id: InvocationId::new(1, [1; 16]),
                new_id: InvocationId::new(1, [2; 16]),
                at_ms: 7,
            }),
            Envelope::from_leader(
                3,
                Command::Complete {
                    id: InvocationId::new(1, [1; 16]),
                    result: Err(Failure::killed()),
                    completed_at_ms: 5,
                },
            ),
            Envelope::from_leader(
                3,
                Command::Journal {
                    id: InvocationId::new(1, [1; 16]),
                    first_command_index: 1,
                    entries: vec![JournalEntry { ty: 0x0411, flags: 0, body: Bytes::from_static(b"\x58\x01") }],
                },
            ),
        ] {
            let bytes = envelope.encode();
            assert_eq!(bytes[0], ENVELOPE_FORMAT_VERSION);
            assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
            let json = envelope.encode_json();
            assert_eq!(Envelope::decode(&json).unwrap(), envelope, "records of the earlier format still decode");
            assert!(bytes.len() < json.len(), "binary {} bytes, JSON {}", bytes.len(), json.len());
        }
    }

    #[test]
    fn undecodable_records_say_why() {
        assert_eq!(Envelope::decode(b""), Err(EnvelopeError::Empty));
        let err = Envelope::decode(b"\x07{}").unwrap_err();
        assert_eq!(err, EnvelopeError::UnsupportedVersion { version: 7 });
        assert!(err.to_string().contains("newer restate-server"), "{err}");
        let err = Envelope::decode(b"\x01{\"epoch\":1}").unwrap_err();
        assert!(err.to_string().contains("missing field `command`"), "{err}");
        assert!(err.to_string().contains("{\"epoch\":1}"), "{err}");
        let err = Envelope::decode(b"\x02\x08\x01").unwrap_err();
        assert!(err.to_string().contains("no command"), "{err}");
        let err = Envelope::decode(b"\x02\xff\xff").unwrap_err();
        assert!(matches!(err, EnvelopeError::Invalid { .. }), "{err}");
    }
}
