use async_trait::async_trait;
use bytes::Bytes;
use restate_types::Version;

/// A value together with the version it was stored under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue {
    pub version: Version,
    pub value: Bytes,
}

/// What must be true of a key for a write to it to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Unconditional.
    None,
    /// The key must have no value.
    DoesNotExist,
    /// The key's current version must be exactly this one.
    MatchesVersion(Version),
}

impl Precondition {
    /// Whether a key whose current version is `current` (None = absent) satisfies this.
    pub fn holds(self, current: Option<Version>) -> bool {
        match self {
            Precondition::None => true,
            Precondition::DoesNotExist => current.is_none(),
            Precondition::MatchesVersion(v) => current == Some(v),
        }
    }
}

impl std::fmt::Display for Precondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Precondition::None => f.write_str("no precondition"),
            Precondition::DoesNotExist => f.write_str("key must not exist"),
            Precondition::MatchesVersion(v) => write!(f, "key must be at version {}", v.0),
        }
    }
}

/// One operation of an atomic write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put { key: String, value: Bytes, precondition: Precondition },
    Delete { key: String, precondition: Precondition },
}

impl WriteOp {
    pub fn key(&self) -> &str {
        match self {
            WriteOp::Put { key, .. } | WriteOp::Delete { key, .. } => key,
        }
    }
    pub fn precondition(&self) -> Precondition {
        match self {
            WriteOp::Put { precondition, .. } | WriteOp::Delete { precondition, .. } => *precondition,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataStoreError {
    #[error("metadata key '{key}' is {}; the write required: {expected}", describe_version(*.current))]
    PreconditionFailed { key: String, expected: Precondition, current: Option<Version> },
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// The request was certainly not applied (e.g. leadership changed before it
    /// committed, or this server is not a member): safe to retry elsewhere.
    #[error("metadata request not applied: {0}")]
    NotApplied(String),
    /// Only the leader of the replicated store serves this; `leader` is its address if known.
    #[error("this metadata server is not the leader{}", .leader.as_ref().map(|l| format!("; the leader is {l}")).unwrap_or_else(|| "; no leader is known yet".into()))]
    NotLeader { leader: Option<String> },
    #[error("invalid metadata request: {0}")]
    InvalidRequest(String),
    #[error("metadata storage failed: {0}")]
    Storage(String),
}

fn describe_version(current: Option<Version>) -> String {
    match current {
        Some(v) => format!("at version {}", v.0),
        None => "absent".to_owned(),
    }
}

/// The versioned key-value contract every metadata store keeps.
///
/// `write` is atomic: every op's precondition is checked against the state before the
/// write, and either all ops apply (each put's key gets version current+1, or 1) or none
/// does and the first failing precondition is reported. A successful write is durable.
#[async_trait]
pub trait MetadataStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<VersionedValue>, MetadataStoreError>;

    /// Returns the new version of every op in order (deletes report the removed version).
    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Version>, MetadataStoreError>;

    async fn put(&self, key: &str, value: Bytes, precondition: Precondition) -> Result<Version, MetadataStoreError> {
        let versions = self.write(vec![WriteOp::Put { key: key.to_owned(), value, precondition }]).await?;
        Ok(versions[0])
    }

    async fn delete(&self, key: &str, precondition: Precondition) -> Result<(), MetadataStoreError> {
        self.write(vec![WriteOp::Delete { key: key.to_owned(), precondition }]).await.map(|_| ())
    }
}

/// Rejects requests that no store should apply, with the reason.
pub(crate) fn validate_ops(ops: &[WriteOp]) -> Result<(), MetadataStoreError> {
    if ops.is_empty() {
        return Err(MetadataStoreError::InvalidRequest("a write needs at least one operation".into()));
    }
    let mut seen = std::collections::HashSet::new();
    for op in ops {
        validate_key(op.key())?;
        if !seen.insert(op.key()) {
            return Err(MetadataStoreError::InvalidRequest(format!("key '{}' appears twice in one write", op.key())));
        }
    }
    Ok(())
}

pub(crate) fn validate_key(key: &str) -> Result<(), MetadataStoreError> {
    if key.is_empty() || key.len() > 256 || key.chars().any(|c| c.is_control()) {
        return Err(MetadataStoreError::InvalidRequest(format!(
            "metadata key {key:?} is not valid: use 1 to 256 printable characters"
        )));
    }
    Ok(())
}
