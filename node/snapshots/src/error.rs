//! Everything that can go wrong between a node and its snapshot repository. Each variant names
//! the place (endpoint, bucket, object key, path, partition) and says what to do about it.

use std::io;
use std::path::PathBuf;

use restate_types::PartitionId;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No connection to the S3 endpoint (refused, DNS failure, connect timeout).
    #[error(
        "the snapshot repository's S3 endpoint {endpoint} is unreachable while {action} ({detail}); check that \
         it is up and that `[worker.snapshots] aws-endpoint-url` points at it"
    )]
    Unreachable { endpoint: String, action: String, detail: String },

    /// Connected, but the whole operation did not finish within its time limit.
    #[error(
        "S3 request to {endpoint} (bucket '{bucket}') did not finish within {timeout_secs} s while {action}; \
         check the network path to the endpoint and its load"
    )]
    TimedOut { endpoint: String, bucket: String, action: String, timeout_secs: u64 },

    /// S3 answered 403: unknown access key, wrong secret, expired token or missing permission.
    #[error(
        "S3 at {endpoint} refused access to bucket '{bucket}' while {action} ({code}); check `[worker.snapshots] \
         aws-access-key-id` / `aws-secret-access-key` (or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / \
         AWS_SESSION_TOKEN environment) and the bucket's permissions"
    )]
    AccessDenied { endpoint: String, bucket: String, action: String, code: String },

    /// The AWS credential chain found nothing to sign requests with.
    #[error(
        "no AWS credentials to access bucket '{bucket}' at {endpoint} ({detail}); set `[worker.snapshots] \
         aws-access-key-id` and `aws-secret-access-key`, the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY \
         environment, or `aws-profile`"
    )]
    CredentialsUnavailable { endpoint: String, bucket: String, detail: String },

    /// S3 answered NoSuchBucket.
    #[error("S3 bucket '{bucket}' does not exist at {endpoint}; create it or fix `[worker.snapshots] destination`")]
    BucketMissing { endpoint: String, bucket: String },

    /// An object a published snapshot refers to is not in the repository.
    #[error(
        "snapshot of partition {partition}: object '{key}' is missing from {repository}; it was deleted after \
         being published; publish a new snapshot of partition {partition}"
    )]
    Missing { partition: PartitionId, key: String, repository: String },

    /// An object is there but its content is not what was published (checksum, size or JSON).
    #[error("snapshot of partition {partition}: object '{key}' in {repository} is corrupt: {detail}")]
    Corrupt { partition: PartitionId, key: String, repository: String, detail: String },

    /// Written by a newer node version; this node must not interpret or overwrite it.
    #[error(
        "snapshot of partition {partition}: object '{key}' in {repository} has format version {found}, this node \
         understands only version {supported}; upgrade this node"
    )]
    UnsupportedFormat { partition: PartitionId, key: String, repository: String, found: u32, supported: u32 },

    /// Other publishers replaced `latest.json` every time this one tried.
    #[error(
        "partition {partition}: gave up publishing snapshot {snapshot_id} as latest after {attempts} attempts, \
         '{key}' in {repository} kept changing under concurrent publishers; try again"
    )]
    PublishContended { partition: PartitionId, snapshot_id: String, key: String, repository: String, attempts: u32 },

    /// A configuration value or an argument that cannot be used.
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },

    /// Local file system error.
    #[error("could not {action} '{path}': {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Any other S3 failure (unexpected status, malformed response, broken body stream).
    #[error("S3 request to {endpoint} (bucket '{bucket}') failed while {action}: {detail}")]
    S3 { endpoint: String, bucket: String, action: String, detail: String },
}

impl SnapshotError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> SnapshotError {
        SnapshotError::Io { action, path: path.into(), source }
    }
}
