//! The replicated metadata state: versioned key-values plus the member list, and the
//! deterministic rules that change it. Pure: the raft state machine wraps it.

use std::collections::BTreeMap;

use bytes::Bytes;
use restate_types::Version;
use serde::{Deserialize, Serialize};

use crate::store::{MetadataStoreError, Precondition, VersionedValue, WriteOp};

/// A metadata-server member: a raft peer and the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Raft peer id: one per incarnation of the node's storage, so a wiped node that comes
    /// back is a new member and its old incarnation can never vote again.
    pub raft_id: u64,
    pub node_id: u32,
    pub name: String,
    pub address: String,
    pub voter: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    entries: BTreeMap<String, StoredValue>,
    pub members: BTreeMap<u64, MemberInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredValue {
    version: u32,
    #[serde(with = "bytes_as_text")]
    value: Vec<u8>,
}

/// Values are usually JSON text: stored as a string when UTF-8, else as hex with a prefix.
mod bytes_as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(value) {
            Ok(text) if !text.starts_with("\u{0}hex:") => s.serialize_str(text),
            _ => s.serialize_str(&format!("\u{0}hex:{}", value.iter().map(|b| format!("{b:02x}")).collect::<String>())),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        match text.strip_prefix("\u{0}hex:") {
            Some(hex) => (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(serde::de::Error::custom))
                .collect(),
            None => Ok(text.into_bytes()),
        }
    }
}

/// A write as it travels through the raft log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WriteCommand {
    pub ops: Vec<CommandOp>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommandOp {
    pub key: String,
    /// None for a delete.
    #[serde(default, with = "optional_bytes")]
    pub value: Option<Vec<u8>>,
    pub precondition: WirePrecondition,
}

mod optional_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "super::bytes_as_text")] Vec<u8>);

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().map(|v| Wrapped(v.clone())).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum WirePrecondition {
    None,
    DoesNotExist,
    MatchesVersion(u32),
}

/// The outcome of a write, as returned to the proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WriteOutcome {
    Written(Vec<u32>),
    PreconditionFailed {
        key: String,
        expected: WirePrecondition,
        current: Option<u32>,
    },
    /// The command did not decode (a bug or a version mismatch): nothing was applied.
    Invalid(String),
}

impl PartialEq for WirePrecondition {
    fn eq(&self, other: &Self) -> bool {
        Precondition::from(*self) == Precondition::from(*other)
    }
}
impl Eq for WirePrecondition {}

impl From<Precondition> for WirePrecondition {
    fn from(p: Precondition) -> Self {
        match p {
            Precondition::None => WirePrecondition::None,
            Precondition::DoesNotExist => WirePrecondition::DoesNotExist,
            Precondition::MatchesVersion(v) => WirePrecondition::MatchesVersion(v.0),
        }
    }
}

impl From<WirePrecondition> for Precondition {
    fn from(p: WirePrecondition) -> Self {
        match p {
            WirePrecondition::None => Precondition::None,
            WirePrecondition::DoesNotExist => Precondition::DoesNotExist,
            WirePrecondition::MatchesVersion(v) => Precondition::MatchesVersion(Version(v)),
        }
    }
}

impl WriteCommand {
    pub fn from_ops(ops: Vec<WriteOp>) -> WriteCommand {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Put { key, value, precondition } => {
                    CommandOp { key, value: Some(value.to_vec()), precondition: precondition.into() }
                }
                WriteOp::Delete { key, precondition } => {
                    CommandOp { key, value: None, precondition: precondition.into() }
                }
            })
            .collect();
        WriteCommand { ops }
    }
}

impl WriteOutcome {
    pub fn into_result(self) -> Result<Vec<Version>, MetadataStoreError> {
        match self {
            WriteOutcome::Written(versions) => Ok(versions.into_iter().map(Version).collect()),
            WriteOutcome::PreconditionFailed { key, expected, current } => {
                Err(MetadataStoreError::PreconditionFailed {
                    key,
                    expected: expected.into(),
                    current: current.map(Version),
                })
            }
            WriteOutcome::Invalid(reason) => Err(MetadataStoreError::InvalidRequest(reason)),
        }
    }
}

impl MetadataState {
    pub fn get(&self, key: &str) -> Option<VersionedValue> {
        self.entries
            .get(key)
            .map(|v| VersionedValue { version: Version(v.version), value: Bytes::copy_from_slice(&v.value) })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key with its value.
    pub fn values(&self) -> BTreeMap<String, VersionedValue> {
        self.entries
            .iter()
            .map(|(k, v)| {
                (k.clone(), VersionedValue { version: Version(v.version), value: Bytes::copy_from_slice(&v.value) })
            })
            .collect()
    }

    /// Every key with its version (for migration checks and inspection).
    pub fn versions(&self) -> BTreeMap<String, Version> {
        self.entries.iter().map(|(k, v)| (k.clone(), Version(v.version))).collect()
    }

    /// Seeds a state with existing values at their versions (migration from a local store).
    pub fn with_values(
        values: impl IntoIterator<Item = (String, VersionedValue)>,
        members: Vec<MemberInfo>,
    ) -> MetadataState {
        MetadataState {
            entries: values
                .into_iter()
                .map(|(k, v)| (k, StoredValue { version: v.version.0, value: v.value.to_vec() }))
                .collect(),
            members: members.into_iter().map(|m| (m.raft_id, m)).collect(),
        }
    }

    /// The state a fresh store starts with: `ops` applied to an empty state.
    pub fn initial(ops: Vec<WriteOp>) -> Result<MetadataState, MetadataStoreError> {
        let mut state = MetadataState::default();
        state.apply_write(WriteCommand::from_ops(ops)).into_result()?;
        Ok(state)
    }

    /// Applies every op or none: all preconditions are checked against the state before
    /// the write; the first one that fails is reported.
    pub(crate) fn apply_write(&mut self, command: WriteCommand) -> WriteOutcome {
        for op in &command.ops {
            let current = self.entries.get(&op.key).map(|v| Version(v.version));
            if !Precondition::from(op.precondition).holds(current) {
                return WriteOutcome::PreconditionFailed {
                    key: op.key.clone(),
                    expected: op.precondition,
                    current: current.map(|v| v.0),
                };
            }
        }
        let mut versions = Vec::with_capacity(command.ops.len());
        for op in command.ops {
            match op.value {
                Some(value) => {
                    let version = self.entries.get(&op.key).map_or(1, |v| v.version + 1);
                    self.entries.insert(op.key, StoredValue { version, value });
                    versions.push(version);
                }
                None => {
                    versions.push(self.entries.remove(&op.key).map_or(0, |v| v.version));
                }
            }
        }
        WriteOutcome::Written(versions)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata state serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataState, String> {
        if bytes.is_empty() {
            return Ok(MetadataState::default());
        }
        serde_json::from_slice(bytes).map_err(|e| format!("corrupt metadata snapshot: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, precondition: Precondition) -> WriteOp {
        WriteOp::Put { key: key.into(), value: Bytes::from(value.to_owned()), precondition }
    }

    #[test]
    fn writes_are_atomic_and_versioned() {
        let mut state = MetadataState::default();
        let out = state.apply_write(WriteCommand::from_ops(vec![put("a", "1", Precondition::DoesNotExist)]));
        assert_eq!(out, WriteOutcome::Written(vec![1]));
        let out = state.apply_write(WriteCommand::from_ops(vec![
            put("b", "2", Precondition::None),
            put("a", "x", Precondition::MatchesVersion(Version(7))),
        ]));
        assert!(matches!(out, WriteOutcome::PreconditionFailed { ref key, current: Some(1), .. } if key == "a"));
        assert!(state.get("b").is_none(), "nothing of a failed write applies");
        let out =
            state.apply_write(WriteCommand::from_ops(vec![put("a", "2", Precondition::MatchesVersion(Version(1)))]));
        assert_eq!(out, WriteOutcome::Written(vec![2]));
        let out = state.apply_write(WriteCommand::from_ops(vec![WriteOp::Delete {
            key: "a".into(),
            precondition: Precondition::None,
        }]));
        assert_eq!(out, WriteOutcome::Written(vec![2]));
        assert!(state.get("a").is_none());
    }

    #[test]
    fn snapshots_round_trip_text_and_binary_values() {
        let mut state = MetadataState::default();
        state.apply_write(WriteCommand::from_ops(vec![
            put("json", "{\"a\":1}", Precondition::None),
            WriteOp::Put {
                key: "bin".into(),
                value: Bytes::from(vec![0u8, 159, 146, 150]),
                precondition: Precondition::None,
            },
        ]));
        state.members.insert(
            5,
            MemberInfo { raft_id: 5, node_id: 1, name: "n1".into(), address: "http://n1:5122".into(), voter: true },
        );
        let back = MetadataState::decode(&state.encode()).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.get("bin").unwrap().value, Bytes::from(vec![0u8, 159, 146, 150]));
        let command = WriteCommand::from_ops(vec![put("k", "v", Precondition::MatchesVersion(Version(3)))]);
        let text = serde_json::to_vec(&command).unwrap();
        let again: WriteCommand = serde_json::from_slice(&text).unwrap();
        assert_eq!(again.ops[0].value.as_deref(), Some(&b"v"[..]));
    }
}
