//! Signals: notifications delivered to an invocation from outside it (another
//! invocation's `SendSignalCommand` or `CompleteAwakeableCommand`, the ingress's
//! `/restate/awakeables/{id}/resolve|reject`, a cancellation), and awakeable ids.
//!
//! An awakeable is a signal by index: the SDK picks the index and hands out the id
//! `sign_1` (or, from older SDKs, `prom_1`) + base64url(no padding) of the invocation id's
//! 24-byte binary form followed by the index as a big-endian u32 (the service protocol's
//! "Awakeable identifier").

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::codec::base64_bytes;
use super::ids::{InvocationId, INVOCATION_ID_LEN};
use super::outcome::Failure;
use restate_service_protocol::protocol::pb;

/// The prefix of the awakeable ids this runtime hands out (as current SDKs build them).
pub const AWAKEABLE_ID_PREFIX: &str = "sign_1";
/// The prefix older SDKs used for the same encoding; accepted when completing.
pub const LEGACY_AWAKEABLE_ID_PREFIX: &str = "prom_1";

const URL_SAFE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// How a signal is addressed in the receiving invocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalId {
    /// By index: built-in signals (1 = CANCEL) and awakeables (indexes the SDK chose).
    Index(u32),
    /// By a name the application chose.
    Name(String),
}

impl std::fmt::Display for SignalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignalId::Index(index) => write!(f, "signal #{index}"),
            SignalId::Name(name) => write!(f, "signal '{name}'"),
        }
    }
}

/// What a signal carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalResult {
    Void,
    Value(#[serde(with = "base64_bytes")] Bytes),
    Failure(Failure),
}

impl SignalId {
    pub(crate) fn to_pb(&self) -> pb::signal_notification_message::SignalId {
        use pb::signal_notification_message::SignalId as Id;
        match self {
            SignalId::Index(index) => Id::Idx(*index),
            SignalId::Name(name) => Id::Name(name.clone()),
        }
    }
}

impl SignalResult {
    pub(crate) fn to_pb(&self) -> pb::signal_notification_message::Result {
        use pb::signal_notification_message::Result as R;
        match self {
            SignalResult::Void => R::Void(pb::Void {}),
            SignalResult::Value(content) => R::Value(pb::Value { content: content.clone() }),
            SignalResult::Failure(failure) => R::Failure(failure.to_pb()),
        }
    }
}

/// The target and signal a `SendSignalCommand` names; `None` when the target id does not
/// parse or the command names no signal (the SDK sent something unusable).
pub(crate) fn from_send_signal(
    command: &pb::SendSignalCommandMessage,
) -> Option<(InvocationId, SignalId, SignalResult)> {
    use pb::send_signal_command_message::{Result as R, SignalId as Id};
    let target: InvocationId = command.target_invocation_id.parse().ok()?;
    let signal = match command.signal_id.as_ref()? {
        Id::Idx(index) => SignalId::Index(*index),
        Id::Name(name) => SignalId::Name(name.clone()),
    };
    let result = match &command.result {
        None | Some(R::Void(_)) => SignalResult::Void,
        Some(R::Value(value)) => SignalResult::Value(value.content.clone()),
        Some(R::Failure(failure)) => SignalResult::Failure(Failure::from_pb(failure)),
    };
    Some((target, signal, result))
}

/// The target and signal a `CompleteAwakeableCommand` names; `None` for a malformed id.
pub(crate) fn from_complete_awakeable(
    command: &pb::CompleteAwakeableCommandMessage,
) -> Option<(InvocationId, SignalId, SignalResult)> {
    use pb::complete_awakeable_command_message::Result as R;
    let (target, index) = parse_awakeable_id(&command.awakeable_id).ok()?;
    let result = match &command.result {
        Some(R::Value(value)) => SignalResult::Value(value.content.clone()),
        Some(R::Failure(failure)) => SignalResult::Failure(Failure::from_pb(failure)),
        None => SignalResult::Void,
    };
    Some((target, SignalId::Index(index), result))
}

/// Why a string is not an awakeable id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{id}' is not an awakeable id: {reason} (expected '{AWAKEABLE_ID_PREFIX}' followed by base64url of the invocation id and the awakeable's index, as the SDK's ctx.awakeable() returns it)")]
pub struct InvalidAwakeableId {
    pub id: String,
    pub reason: String,
}

/// The invocation that waits on awakeable `id`, and the awakeable's signal index.
pub fn parse_awakeable_id(id: &str) -> Result<(InvocationId, u32), InvalidAwakeableId> {
    let invalid = |reason: String| InvalidAwakeableId { id: id.chars().take(200).collect(), reason };
    let encoded = id
        .strip_prefix(AWAKEABLE_ID_PREFIX)
        .or_else(|| id.strip_prefix(LEGACY_AWAKEABLE_ID_PREFIX))
        .ok_or_else(|| invalid(format!("it does not start with '{AWAKEABLE_ID_PREFIX}'")))?;
    let bytes = URL_SAFE.decode(encoded).map_err(|e| invalid(format!("invalid base64url ({e})")))?;
    if bytes.len() != INVOCATION_ID_LEN + 4 {
        return Err(invalid(format!(
            "it holds {} bytes, an awakeable id holds {}",
            bytes.len(),
            INVOCATION_ID_LEN + 4
        )));
    }
    let invocation: [u8; INVOCATION_ID_LEN] = bytes[..INVOCATION_ID_LEN].try_into().expect("length checked");
    let index = u32::from_be_bytes(bytes[INVOCATION_ID_LEN..].try_into().expect("length checked"));
    Ok((InvocationId::from_bytes(invocation), index))
}

/// The id of awakeable `index` of `invocation` (what the SDK hands to user code).
pub fn awakeable_id(invocation: &InvocationId, index: u32) -> String {
    let mut bytes = BytesMut::with_capacity(INVOCATION_ID_LEN + 4);
    bytes.put_slice(&invocation.to_bytes());
    bytes.put_u32(index);
    format!("{AWAKEABLE_ID_PREFIX}{}", URL_SAFE.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awakeable_ids_round_trip_and_accept_the_legacy_prefix() {
        let invocation = InvocationId::new(0x0102_0304_0506_0708, [7; 16]);
        let id = awakeable_id(&invocation, 17);
        assert!(id.starts_with("sign_1") && !id.contains('='), "{id}");
        assert_eq!(parse_awakeable_id(&id).unwrap(), (invocation, 17));
        let legacy = id.replacen("sign_1", "prom_1", 1);
        assert_eq!(parse_awakeable_id(&legacy).unwrap(), (invocation, 17));
    }

    #[test]
    fn the_sdk_encoding_is_understood() {
        // What the SDK builds from StartMessage.id: base64url (no padding) of id ++ index.
        let invocation = InvocationId::new(42, [1; 16]);
        let mut raw = invocation.to_bytes().to_vec();
        raw.extend_from_slice(&3u32.to_be_bytes());
        let id = format!("sign_1{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(parse_awakeable_id(&id).unwrap(), (invocation, 3));
    }

    #[test]
    fn malformed_ids_say_what_is_wrong() {
        for (input, says) in [
            ("inv_123", "does not start with 'sign_1'"),
            ("sign_1!!!", "invalid base64url"),
            ("sign_1AAAA", "holds 3 bytes"),
        ] {
            let err = parse_awakeable_id(input).unwrap_err();
            assert!(err.to_string().contains(says), "{input}: {err}");
            assert!(err.to_string().contains(input), "{err}");
        }
    }
}
