//! A snapshot repository in an S3 bucket (AWS or S3-compatible). Keys are used as object keys
//! verbatim; the repository's prefix is already part of them.
//!
//! Every request has a time limit (see `s3_client`): small objects `OPERATION_TIMEOUT`, data files
//! `transfer_timeout(size)`, which also bounds streaming the response body. Conditional puts use
//! S3's `If-None-Match: *` / `If-Match: <etag>` on PutObject; S3's own ETags are the entity tags.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use restate_config::SnapshotOptions;
use tokio::io::AsyncWriteExt;

use crate::digest::{ContentDigest, DigestAccumulator};
use crate::error::SnapshotError;
use crate::object::{ConditionalPutOutcome, ETag, PutCondition, VersionedObject};
use crate::s3_client::{self, timeout_config, transfer_timeout, OPERATION_TIMEOUT};
use crate::s3_errors::{error_chain, service_failure, to_snapshot_error, RequestContext, ServiceFailure};

pub(crate) struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    endpoint: String,
}

impl S3Store {
    /// Builds the client; does not contact S3.
    pub(crate) async fn new(options: &SnapshotOptions, bucket: String) -> Result<S3Store, SnapshotError> {
        let connection = s3_client::connect(options).await?;
        Ok(S3Store { client: connection.client, bucket, endpoint: connection.endpoint })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) async fn put_file(&self, key: &str, source: &Path, size: u64) -> Result<(), SnapshotError> {
        let body = ByteStream::read_from()
            .path(source)
            .build()
            .await
            .map_err(|e| SnapshotError::io("open", source, std::io::Error::other(error_chain(&e))))?;
        let timeout = transfer_timeout(size);
        let context = self.context(format!("uploading '{key}'"), timeout);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(i64::try_from(size).unwrap_or(i64::MAX))
            .body(body)
            .customize()
            .config_override(aws_sdk_s3::config::Builder::default().timeout_config(timeout_config(timeout)))
            .send()
            .await
            .map_err(|e| to_snapshot_error(e, &context))?;
        Ok(())
    }

    pub(crate) async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        let context = self.context(format!("writing '{key}'"), OPERATION_TIMEOUT);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| to_snapshot_error(e, &context))?;
        Ok(())
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<VersionedObject>, SnapshotError> {
        let context = self.context(format!("reading '{key}'"), OPERATION_TIMEOUT);
        let Some(mut output) = self.get_object(key, &context).await? else {
            return Ok(None);
        };
        let etag = output.e_tag().map(|etag| ETag(etag.to_owned())).ok_or_else(|| SnapshotError::S3 {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            action: context.action.clone(),
            detail: "the response has no ETag header, which conditional puts need; the server does not \
                     implement S3's conditional writes"
                .to_owned(),
        })?;
        let bytes = self
            .within_limit(&context, async {
                let mut bytes = Vec::new();
                while let Some(chunk) = self.next_chunk(&mut output.body, &context).await? {
                    bytes.extend_from_slice(&chunk);
                }
                Ok(bytes)
            })
            .await?;
        Ok(Some(VersionedObject { bytes, etag }))
    }

    pub(crate) async fn digest(&self, key: &str, expected_size: u64) -> Result<Option<ContentDigest>, SnapshotError> {
        let context = self.context(format!("reading back '{key}'"), transfer_timeout(expected_size));
        let Some(mut output) = self.get_object(key, &context).await? else {
            return Ok(None);
        };
        let digest = self
            .within_limit(&context, async {
                let mut accumulator = DigestAccumulator::default();
                while let Some(chunk) = self.next_chunk(&mut output.body, &context).await? {
                    accumulator.update(&chunk);
                }
                Ok(accumulator.finish())
            })
            .await?;
        Ok(Some(digest))
    }

    pub(crate) async fn download(
        &self,
        key: &str,
        destination: &Path,
        expected_size: u64,
    ) -> Result<Option<ContentDigest>, SnapshotError> {
        let context = self.context(format!("downloading '{key}'"), transfer_timeout(expected_size));
        let Some(mut output) = self.get_object(key, &context).await? else {
            return Ok(None);
        };
        let digest = self
            .within_limit(&context, async {
                let io_error = |action| move |e| SnapshotError::io(action, destination, e);
                let mut file = tokio::fs::File::create(destination).await.map_err(io_error("create"))?;
                let mut accumulator = DigestAccumulator::default();
                while let Some(chunk) = self.next_chunk(&mut output.body, &context).await? {
                    accumulator.update(&chunk);
                    file.write_all(&chunk).await.map_err(io_error("write"))?;
                }
                file.sync_all().await.map_err(io_error("fsync"))?;
                Ok(accumulator.finish())
            })
            .await?;
        Ok(Some(digest))
    }

    pub(crate) async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: PutCondition,
    ) -> Result<ConditionalPutOutcome, SnapshotError> {
        let context = self.context(format!("conditionally writing '{key}'"), OPERATION_TIMEOUT);
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(bytes));
        let request = match condition {
            PutCondition::Absent => request.if_none_match("*"),
            PutCondition::Matches(ETag(etag)) => request.if_match(etag),
        };
        match request.send().await {
            Ok(_) => Ok(ConditionalPutOutcome::Written),
            Err(error) if service_failure(&error).is_some_and(ServiceFailure::is_lost_race) => {
                Ok(ConditionalPutOutcome::LostRace)
            }
            Err(error) => Err(to_snapshot_error(error, &context)),
        }
    }

    /// GetObject with the context's time limit; `None` when the key does not exist.
    async fn get_object(
        &self,
        key: &str,
        context: &RequestContext<'_>,
    ) -> Result<Option<GetObjectOutput>, SnapshotError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::default().timeout_config(timeout_config(context.operation_timeout)),
            )
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output)),
            Err(error) if is_missing_key(&error) => Ok(None),
            Err(error) => Err(to_snapshot_error(error, context)),
        }
    }

    async fn next_chunk(
        &self,
        body: &mut ByteStream,
        context: &RequestContext<'_>,
    ) -> Result<Option<Bytes>, SnapshotError> {
        body.try_next().await.map_err(|e| SnapshotError::S3 {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            action: context.action.clone(),
            detail: format!("the response body broke off: {}", error_chain(&e)),
        })
    }

    /// Bounds reading a response body by the context's time limit (the SDK's own limit ends when
    /// the response headers arrive).
    async fn within_limit<T>(
        &self,
        context: &RequestContext<'_>,
        work: impl Future<Output = Result<T, SnapshotError>>,
    ) -> Result<T, SnapshotError> {
        tokio::time::timeout(context.operation_timeout, work).await.unwrap_or_else(|_elapsed| {
            Err(SnapshotError::TimedOut {
                endpoint: self.endpoint.clone(),
                bucket: self.bucket.clone(),
                action: context.action.clone(),
                timeout_secs: context.operation_timeout.as_secs(),
            })
        })
    }

    fn context(&self, action: String, operation_timeout: Duration) -> RequestContext<'_> {
        RequestContext { endpoint: &self.endpoint, bucket: &self.bucket, action, operation_timeout }
    }
}

/// NoSuchKey only: not NoSuchBucket (which must not read as "nothing published"), nor a bare 404
/// from something that is not S3.
fn is_missing_key(error: &SdkError<GetObjectError>) -> bool {
    service_failure(error) == Some(ServiceFailure::NotFound)
}
