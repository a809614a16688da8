//! What both object stores (S3 and a local directory) speak of: entity tags, objects read
//! with their tag, and the conditions and outcomes of a conditional put.

/// Identifies one version of an object's content. Opaque: only compared, or handed back to the
/// store in a `PutCondition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ETag(pub String);

/// A small object read whole, with the tag of the version that was read.
#[derive(Debug, Clone)]
pub(crate) struct VersionedObject {
    pub bytes: Vec<u8>,
    pub etag: ETag,
}

/// When a conditional put may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PutCondition {
    /// Only if the object does not exist (`If-None-Match: *`).
    Absent,
    /// Only if the object's current version has this tag (`If-Match`).
    Matches(ETag),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConditionalPutOutcome {
    Written,
    /// The condition did not hold: another writer changed the object since it was read.
    LostRace,
}
