//! Serde helpers shared by log records and stored values: byte fields as base64 strings
//! (JSON would otherwise spell every byte as a number), and the JSON round trip of stored
//! values with errors that name what was being decoded.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `#[serde(with = "base64_bytes")]` for `Bytes` fields.
pub mod base64_bytes {
    use super::*;

    use base64::Engine as _;

    /// Standard base64 (RFC 4648, `+/`, padded).
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&ENGINE.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(deserializer)?;
        ENGINE.decode(&text).map(Bytes::from).map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
    }
}

/// JSON encoding of a stored value (deterministic: struct fields in declaration order,
/// no maps with unordered keys in any stored type).
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("partition state types serialize to JSON")
}

/// Decodes a stored JSON value; the error names the value kind and its key.
pub fn from_json<T: DeserializeOwned>(what: &'static str, key: &[u8], bytes: &[u8]) -> Result<T, CorruptValue> {
    serde_json::from_slice(bytes).map_err(|e| CorruptValue {
        what,
        key: key.escape_ascii().to_string(),
        detail: e.to_string(),
    })
}

/// A stored value that does not decode: the kind of value, its key (escaped) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored {what} under key '{key}' is corrupt: {detail}")]
pub struct CorruptValue {
    pub what: &'static str,
    pub key: String,
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_fields_are_standard_base64_and_bad_text_is_named() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder(#[serde(with = "base64_bytes")] Bytes);
        for (plain, encoded) in [("", "\"\""), ("f", "\"Zg==\""), ("foobar", "\"Zm9vYmFy\"")] {
            assert_eq!(serde_json::to_string(&Holder(Bytes::from(plain))).unwrap(), encoded);
            assert_eq!(serde_json::from_str::<Holder>(encoded).unwrap().0, plain.as_bytes());
        }
        let err = serde_json::from_str::<Holder>("\"ab!d\"").unwrap_err();
        assert!(err.to_string().contains("invalid base64"), "{err}");
    }
}
