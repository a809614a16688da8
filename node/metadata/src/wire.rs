//! Conversions between the metadata domain types and their protobuf wire form.

use bytes::Bytes;
use restate_proto::metadata as pb;
use restate_types::Version;

use crate::store::{MetadataStoreError, Precondition, VersionedValue, WriteOp};

pub(crate) fn precondition_to_wire(p: Precondition) -> pb::Precondition {
    match p {
        Precondition::None => pb::Precondition { kind: pb::precondition::Kind::None as i32, version: 0 },
        Precondition::DoesNotExist => {
            pb::Precondition { kind: pb::precondition::Kind::DoesNotExist as i32, version: 0 }
        }
        Precondition::MatchesVersion(v) => {
            pb::Precondition { kind: pb::precondition::Kind::MatchesVersion as i32, version: v.0 }
        }
    }
}

pub(crate) fn precondition_from_wire(p: Option<pb::Precondition>) -> Result<Precondition, MetadataStoreError> {
    let Some(p) = p else { return Ok(Precondition::None) };
    match pb::precondition::Kind::try_from(p.kind) {
        Ok(pb::precondition::Kind::None) => Ok(Precondition::None),
        Ok(pb::precondition::Kind::DoesNotExist) => Ok(Precondition::DoesNotExist),
        Ok(pb::precondition::Kind::MatchesVersion) if p.version > 0 => {
            Ok(Precondition::MatchesVersion(Version(p.version)))
        }
        Ok(pb::precondition::Kind::MatchesVersion) => {
            Err(MetadataStoreError::InvalidRequest("MATCHES_VERSION needs a version >= 1".into()))
        }
        Err(_) => Err(MetadataStoreError::InvalidRequest(format!("unknown precondition kind {}", p.kind))),
    }
}

pub(crate) fn op_to_wire(op: WriteOp) -> pb::WriteOp {
    match op {
        WriteOp::Put { key, value, precondition } => pb::WriteOp {
            key,
            precondition: Some(precondition_to_wire(precondition)),
            delete: false,
            value: value.to_vec(),
        },
        WriteOp::Delete { key, precondition } => {
            pb::WriteOp { key, precondition: Some(precondition_to_wire(precondition)), delete: true, value: Vec::new() }
        }
    }
}

pub(crate) fn op_from_wire(op: pb::WriteOp) -> Result<WriteOp, MetadataStoreError> {
    let precondition = precondition_from_wire(op.precondition)?;
    Ok(if op.delete {
        WriteOp::Delete { key: op.key, precondition }
    } else {
        WriteOp::Put { key: op.key, value: Bytes::from(op.value), precondition }
    })
}

pub(crate) fn value_to_wire(v: VersionedValue) -> pb::VersionedValue {
    pb::VersionedValue { version: v.version.0, value: v.value.to_vec() }
}

pub(crate) fn value_from_wire(v: pb::VersionedValue) -> VersionedValue {
    VersionedValue { version: Version(v.version), value: Bytes::from(v.value) }
}

pub(crate) fn version_from_wire(v: u32) -> Option<Version> {
    (v > 0).then_some(Version(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip() {
        let ops = [
            WriteOp::Put { key: "a".into(), value: Bytes::from("x"), precondition: Precondition::DoesNotExist },
            WriteOp::Delete { key: "b".into(), precondition: Precondition::MatchesVersion(Version(4)) },
            WriteOp::Put { key: "c".into(), value: Bytes::new(), precondition: Precondition::None },
        ];
        for op in ops {
            assert_eq!(op_from_wire(op_to_wire(op.clone())).unwrap(), op);
        }
    }
}
