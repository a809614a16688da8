//! From aws-sdk-s3 errors to `SnapshotError`s that say what went wrong and what to do.

use std::error::Error as StdError;
use std::time::Duration;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use crate::error::SnapshotError;

/// What an S3 error status means to the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServiceFailure {
    /// The object does not exist.
    NotFound,
    BucketMissing,
    /// Unknown access key, wrong secret, expired token or a missing permission.
    AccessDenied,
    /// A conditional put's condition did not hold (412).
    PreconditionFailed,
    /// A concurrent conditional write to the same key was in flight (409); retrying may succeed.
    ConditionalConflict,
    Other,
}

impl ServiceFailure {
    /// A conditional put lost against another writer.
    pub(crate) fn is_lost_race(self) -> bool {
        matches!(self, ServiceFailure::PreconditionFailed | ServiceFailure::ConditionalConflict)
    }
}

/// Classifies by error code first (S3 and compatible servers put one in XML error bodies), by HTTP
/// status when there is none. A bodiless 404 (which the SDK reports with the code `NotFound`) is not
/// taken for a missing object: S3 answers GET and PUT errors with an XML body, and a server that does
/// not (a web server or proxy at a wrong `aws-endpoint-url`) must not make a published snapshot look
/// absent. (The repository sends no HEAD requests, the only ones whose errors have no body.)
pub(crate) fn classify(status: u16, code: Option<&str>) -> ServiceFailure {
    match code {
        Some("NoSuchBucket") => ServiceFailure::BucketMissing,
        Some("NoSuchKey") => ServiceFailure::NotFound,
        Some(
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired"
            | "InvalidSecurity"
            | "AllAccessDisabled",
        ) => ServiceFailure::AccessDenied,
        Some("PreconditionFailed") => ServiceFailure::PreconditionFailed,
        Some("ConditionalRequestConflict") => ServiceFailure::ConditionalConflict,
        Some(_) => ServiceFailure::Other,
        None => match status {
            403 => ServiceFailure::AccessDenied,
            412 => ServiceFailure::PreconditionFailed,
            409 => ServiceFailure::ConditionalConflict,
            _ => ServiceFailure::Other,
        },
    }
}

/// The classified failure when S3 answered with an error status; `None` for transport failures.
pub(crate) fn service_failure<E: ProvideErrorMetadata>(error: &SdkError<E>) -> Option<ServiceFailure> {
    match error {
        SdkError::ServiceError(context) => Some(classify(context.raw().status().as_u16(), context.err().code())),
        _ => None,
    }
}

/// Where a request went and what it was for, to name in errors.
pub(crate) struct RequestContext<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    /// e.g. "reading 'p/1/latest.json'"
    pub action: String,
    pub operation_timeout: Duration,
}

pub(crate) fn to_snapshot_error<E>(error: SdkError<E>, context: &RequestContext<'_>) -> SnapshotError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let endpoint = context.endpoint.to_owned();
    let bucket = context.bucket.to_owned();
    let action = context.action.clone();
    if let Some(credentials_error) = find_in_chain::<CredentialsError>(&error) {
        return SnapshotError::CredentialsUnavailable { endpoint, bucket, detail: error_chain(credentials_error) };
    }
    match &error {
        SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
            SnapshotError::Unreachable { endpoint, action, detail: error_chain(&error) }
        }
        SdkError::TimeoutError(_) => {
            SnapshotError::TimedOut { endpoint, bucket, action, timeout_secs: context.operation_timeout.as_secs() }
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code();
            match classify(status, code) {
                ServiceFailure::BucketMissing => SnapshotError::BucketMissing { endpoint, bucket },
                ServiceFailure::AccessDenied => SnapshotError::AccessDenied {
                    endpoint,
                    bucket,
                    action,
                    code: code.map_or_else(|| format!("HTTP {status}"), str::to_owned),
                },
                _ => {
                    let detail = match (code, service.err().message()) {
                        (Some(code), Some(message)) => format!("HTTP {status} {code}: {message}"),
                        _ => format!(
                            "HTTP {status} without an S3 error document; the server does not answer like S3, \
                             check `[worker.snapshots] aws-endpoint-url`"
                        ),
                    };
                    SnapshotError::S3 { endpoint, bucket, action, detail }
                }
            }
        }
        _ => SnapshotError::S3 { endpoint, bucket, action, detail: error_chain(&error) },
    }
}

/// The messages of `error` and its sources, joined by ": " (the SDK's own `Display` says only
/// "dispatch failure"); a message that repeats the one before is left out.
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let message = error.to_string();
        if messages.last().is_none_or(|previous| !previous.contains(&message)) {
            messages.push(message);
        }
        current = error.source();
    }
    messages.join(": ")
}

/// The first error of type `T` in `error`'s source chain (including `error` itself).
fn find_in_chain<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Chained {
        message: &'static str,
        #[source]
        source: Option<Box<Chained>>,
    }

    #[test]
    fn error_chains_read_as_one_line_without_repeats() {
        let inner = Chained { message: "Connection refused (os error 111)", source: None };
        let repeated = Chained { message: "Connection refused (os error 111)", source: Some(Box::new(inner)) };
        let outer = Chained { message: "dispatch failure", source: Some(Box::new(repeated)) };
        assert_eq!(error_chain(&outer), "dispatch failure: Connection refused (os error 111)");
    }

    #[test]
    fn codes_decide_before_statuses() {
        assert_eq!(classify(404, Some("NoSuchBucket")), ServiceFailure::BucketMissing);
        assert_eq!(classify(404, Some("NoSuchKey")), ServiceFailure::NotFound);
        assert_eq!(classify(403, Some("InvalidAccessKeyId")), ServiceFailure::AccessDenied);
        assert_eq!(classify(403, Some("SignatureDoesNotMatch")), ServiceFailure::AccessDenied);
        assert_eq!(classify(403, Some("AccessDenied")), ServiceFailure::AccessDenied);
        assert_eq!(classify(412, Some("PreconditionFailed")), ServiceFailure::PreconditionFailed);
        assert_eq!(classify(409, Some("ConditionalRequestConflict")), ServiceFailure::ConditionalConflict);
        assert_eq!(classify(409, Some("OperationAborted")), ServiceFailure::Other);
        assert_eq!(classify(500, Some("InternalError")), ServiceFailure::Other);
    }

    #[test]
    fn statuses_decide_without_a_code() {
        assert_eq!(classify(404, None), ServiceFailure::Other, "a bare 404 is not S3 saying NoSuchKey");
        assert_eq!(classify(404, Some("NotFound")), ServiceFailure::Other, "the SDK's code for a bodiless 404");
        assert_eq!(classify(403, None), ServiceFailure::AccessDenied);
        assert_eq!(classify(412, None), ServiceFailure::PreconditionFailed);
        assert_eq!(classify(409, None), ServiceFailure::ConditionalConflict);
        assert_eq!(classify(503, None), ServiceFailure::Other);
    }

    #[test]
    fn only_precondition_failures_and_conditional_conflicts_are_lost_races() {
        assert!(classify(412, None).is_lost_race());
        assert!(classify(409, Some("ConditionalRequestConflict")).is_lost_race());
        assert!(!classify(404, None).is_lost_race());
        assert!(!classify(403, None).is_lost_race());
    }
}
