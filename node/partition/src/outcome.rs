//! How an invocation ends: the handler's output bytes, or a terminal [`Failure`]; and the
//! serde form both take in log records and stored values.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::codec::base64_bytes;
use super::ids::InvocationId;

/// The result of an invocation: the handler's output bytes, or a terminal failure.
pub type InvocationResult = Result<Bytes, Failure>;

/// A terminal failure, as the protocol's `Failure` (an HTTP-like code and a message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: u32,
    pub message: String,
}

impl Failure {
    pub fn new(code: u32, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    /// 409 "killed": the result of `Command::Kill`.
    pub fn killed() -> Failure {
        Failure::new(409, "killed")
    }

    /// 409 "cancelled": the result of `Command::Cancel` on an invocation that never ran.
    pub fn cancelled() -> Failure {
        Failure::new(409, "cancelled")
    }

    /// 404: `Command::Attach` to an id the partition does not know.
    pub fn not_found(id: &InvocationId) -> Failure {
        Failure::new(
            404,
            format!("invocation {id} not found (never submitted, or its result was purged after the retention period)"),
        )
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

#[cfg(test)]
mod tests {
    use super::*;

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
