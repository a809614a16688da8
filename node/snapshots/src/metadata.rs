//! The two JSON documents of the repository: a snapshot's `metadata.json` and a partition's
//! `latest.json`. Both carry `format_version`; this node writes and reads version 1 and refuses to
//! interpret (or overwrite) a document of a higher version.

use restate_types::{Lsn, PartitionId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u32 = 1;

/// What a published snapshot is: stored as `metadata.json` beside its data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMetadata {
    pub format_version: u32,
    pub snapshot_id: String,
    pub partition_id: u16,
    /// The snapshot contains the effects of every log record up to and including this LSN.
    pub lsn: u64,
    /// RFC 3339, UTC, millisecond precision.
    pub created_at: String,
    pub node_name: String,
    pub cluster_name: String,
    /// Object key of the data file.
    pub data_key: String,
    pub size_bytes: u64,
    /// Of the data file; lowercase hex.
    pub sha256: String,
}

impl SnapshotMetadata {
    pub fn partition(&self) -> PartitionId {
        PartitionId(self.partition_id)
    }

    pub fn applied_lsn(&self) -> Lsn {
        Lsn(self.lsn)
    }
}

/// `latest.json`: which snapshot is a partition's latest. Only ever names a snapshot whose data
/// and metadata objects are complete and verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LatestPointer {
    pub format_version: u32,
    pub snapshot_id: String,
    pub lsn: u64,
    pub metadata_key: String,
}

/// Why a stored document could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not JSON, or fields missing or of the wrong type.
    Malformed(String),
    /// Well-formed, but written by a newer format this node does not understand.
    UnsupportedVersion(u32),
}

/// Only `format_version`, read first so that a newer document is reported as such rather than as
/// malformed when its other fields changed.
#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if probe.format_version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(probe.format_version));
    }
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

pub(crate) fn encode<T: Serialize>(document: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(document).expect("plain structs of strings and integers serialize");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> SnapshotMetadata {
        SnapshotMetadata {
            format_version: FORMAT_VERSION,
            snapshot_id: "snap_01j0000000abcdefghjkmnpqrs".into(),
            partition_id: 7,
            lsn: 1234,
            created_at: "2026-03-01T10:00:00.000Z".into(),
            node_name: "n1".into(),
            cluster_name: "prod".into(),
            data_key: "p/7/00000000000000001234_snap_01j0000000abcdefghjkmnpqrs/snapshot.sst".into(),
            size_bytes: 4096,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn metadata_round_trips_through_json() {
        let original = metadata();
        let decoded: SnapshotMetadata = decode(&encode(&original)).unwrap();
        assert_eq!(decoded, original);
        assert_eq!(decoded.partition(), PartitionId(7));
        assert_eq!(decoded.applied_lsn(), Lsn(1234));
    }

    #[test]
    fn latest_pointer_has_the_documented_field_names() {
        let pointer = LatestPointer {
            format_version: 1,
            snapshot_id: "snap_a".into(),
            lsn: 9,
            metadata_key: "9/00000000000000000009_snap_a/metadata.json".into(),
        };
        let value: serde_json::Value = serde_json::from_slice(&encode(&pointer)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "format_version": 1,
                "snapshot_id": "snap_a",
                "lsn": 9,
                "metadata_key": "9/00000000000000000009_snap_a/metadata.json"
            })
        );
        assert_eq!(decode::<LatestPointer>(&encode(&pointer)).unwrap(), pointer);
    }

    #[test]
    fn a_newer_format_is_reported_as_such_even_when_its_fields_changed() {
        let newer = br#"{"format_version": 2, "snapshot": {"id": "x"}}"#;
        assert_eq!(decode::<LatestPointer>(newer), Err(DecodeError::UnsupportedVersion(2)));
    }

    #[test]
    fn garbage_and_missing_fields_are_malformed() {
        assert!(matches!(decode::<LatestPointer>(b"not json"), Err(DecodeError::Malformed(_))));
        assert!(
            matches!(decode::<LatestPointer>(br#"{"format_version":1,"lsn":3}"#), Err(DecodeError::Malformed(m)) if m.contains("snapshot_id"))
        );
    }
}
