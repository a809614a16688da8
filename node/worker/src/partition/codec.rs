//! Serde helpers shared by log records and stored values: byte fields as base64 strings
//! (JSON would otherwise spell every byte as a number), and the JSON round trip of stored
//! values with errors that name what was being decoded.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::command::{Failure, InvocationResult};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648, `+/`, padded).
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { ALPHABET[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Decodes standard padded base64; the error names the first offending position.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let input = text.as_bytes();
    if !input.len().is_multiple_of(4) {
        return Err(format!("base64 length {} is not a multiple of 4", input.len()));
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for (index, chunk) in input.chunks(4).enumerate() {
        let last = index == input.len() / 4 - 1;
        let padding = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return Err(format!("misplaced '=' padding in base64 group {index}"));
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            let value = if i >= 4 - padding {
                0
            } else {
                match ALPHABET.iter().position(|a| a == c) {
                    Some(v) => v as u32,
                    None => return Err(format!("invalid base64 character {:?} at byte {}", *c as char, index * 4 + i)),
                }
            };
            n = n << 6 | value;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - padding]);
    }
    Ok(out)
}

/// `#[serde(with = "base64_bytes")]` for `Bytes` fields.
pub mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(bytes: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64_encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64_decode(&text).map(Bytes::from).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "invocation_result")]` for [`InvocationResult`] fields:
/// `{"ok": "<base64>"}` or `{"err": {"code": .., "message": ..}}`.
pub mod invocation_result {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Ref<'a> {
        Ok(#[serde(serialize_with = "serialize_ref")] &'a Bytes),
        Err(&'a Failure),
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Owned {
        Ok(#[serde(with = "base64_bytes")] Bytes),
        Err(Failure),
    }

    fn serialize_ref<S: Serializer>(bytes: &&Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        base64_bytes::serialize(bytes, serializer)
    }

    pub fn serialize<S: Serializer>(result: &InvocationResult, serializer: S) -> Result<S::Ok, S::Error> {
        match result {
            Ok(bytes) => Ref::Ok(bytes),
            Err(failure) => Ref::Err(failure),
        }
        .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<InvocationResult, D::Error> {
        Ok(match Owned::deserialize(deserializer)? {
            Owned::Ok(bytes) => Ok(bytes),
            Owned::Err(failure) => Err(failure),
        })
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
    fn base64_round_trips_and_matches_rfc4648_vectors() {
        for (plain, encoded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn base64_errors_name_the_problem() {
        assert!(base64_decode("abc").unwrap_err().contains("multiple of 4"));
        assert!(base64_decode("ab!d").unwrap_err().contains("'!' at byte 2"));
        assert!(base64_decode("Zg==Zg==").unwrap_err().contains("padding"));
    }

    #[test]
    fn results_serialize_tagged() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder(#[serde(with = "invocation_result")] InvocationResult);
        let ok = Holder(Ok(Bytes::from_static(b"hi")));
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":"aGk="}"#);
        let err = Holder(Err(Failure { code: 409, message: "killed".into() }));
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(text, r#"{"err":{"code":409,"message":"killed"}}"#);
        assert_eq!(serde_json::from_str::<Holder>(&text).unwrap(), err);
    }
}
