//! Building the S3 client from `[worker.snapshots]`. Nothing here contacts S3: a node must start
//! while its snapshot bucket is down. (Without an explicit endpoint and region, the standard AWS
//! region chain may ask the EC2 instance metadata service.)
//!
//! Explicit `aws-*` settings win; unset ones fall back to the standard AWS environment variables,
//! profile files and, for credentials, the rest of the default chain (web identity, ECS, IMDS).
//! With an explicit endpoint, requests use path-style addressing (`endpoint/bucket/key`), which
//! S3-compatible servers (MinIO, moto, ...) need.

use std::time::Duration;

use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation, SharedHttpClient,
};
use aws_smithy_http_client::tls;
use restate_config::SnapshotOptions;
use url::Url;

use crate::error::SnapshotError;

/// Establishing a TCP (+TLS) connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole small-object operation, retries included.
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Attempts per operation (the first plus retries of transient failures).
const MAX_ATTEMPTS: u32 = 3;
/// Used when an endpoint is configured but no region is (S3-compatible servers mostly ignore it).
const FALLBACK_REGION: &str = "us-east-1";

/// Time limit for moving `size` bytes: `OPERATION_TIMEOUT` plus one second per MiB, i.e. transfers
/// slower than about 1 MiB/s fail rather than hang.
pub(crate) fn transfer_timeout(size: u64) -> Duration {
    OPERATION_TIMEOUT + Duration::from_secs(size.div_ceil(1024 * 1024))
}

pub(crate) fn timeout_config(operation_timeout: Duration) -> TimeoutConfig {
    TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_timeout(operation_timeout).build()
}

/// A configured client and the endpoint it talks to (for messages).
pub(crate) struct S3Connection {
    pub client: aws_sdk_s3::Client,
    /// The configured endpoint URL, or the regional AWS endpoint.
    pub endpoint: String,
}

pub(crate) async fn connect(options: &SnapshotOptions) -> Result<S3Connection, SnapshotError> {
    let endpoint =
        options.aws_endpoint_url.as_ref().map(|url| checked_endpoint(url, options.aws_allow_http)).transpose()?;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeout_config(OPERATION_TIMEOUT))
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    if let Some(region) = region_without_imds(options, endpoint.is_some()).await {
        loader = loader.region(region);
    }
    if let Some(profile) = &options.aws_profile {
        loader = loader.profile_name(profile);
    }
    if let Some(credentials) = explicit_credentials(options)? {
        loader = loader.credentials_provider(credentials);
    }
    let sdk_config = loader.load().await;
    let region = sdk_config.region().cloned().ok_or_else(|| SnapshotError::Invalid {
        what: "S3 snapshot configuration",
        detail: "no AWS region is configured; set `[worker.snapshots] aws-region` or AWS_REGION".to_owned(),
    })?;

    // An endpoint may also come from AWS_ENDPOINT_URL(_S3); it gets path-style addressing too.
    let endpoint = endpoint.or_else(|| sdk_config.endpoint_url().map(|url| url.trim_end_matches('/').to_owned()));
    let mut s3_config = aws_sdk_s3::config::Builder::from(&sdk_config)
        // The SDK's default CRC checksums (aws-chunked uploads) are not understood by every
        // S3-compatible server; uploads are verified by reading them back instead.
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(endpoint) = &endpoint {
        s3_config = s3_config.endpoint_url(endpoint).force_path_style(true);
    }
    let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    Ok(S3Connection { client: aws_sdk_s3::Client::from_conf(s3_config.build()), endpoint })
}

/// The endpoint URL without a trailing `/`; plain http only when `aws-allow-http` says so.
fn checked_endpoint(url: &Url, allow_http: Option<bool>) -> Result<String, SnapshotError> {
    let invalid = |detail: String| SnapshotError::Invalid { what: "`[worker.snapshots] aws-endpoint-url`", detail };
    match url.scheme() {
        "https" => {}
        "http" if allow_http == Some(true) => {}
        "http" => {
            return Err(invalid(format!(
                "'{url}' is plain http; set `[worker.snapshots] aws-allow-http = true` to permit it, or use https"
            )))
        }
        other => return Err(invalid(format!("'{url}' has scheme '{other}'; expected https:// (or http://)"))),
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The region when it can be settled without the instance metadata service: `aws-region`; with an
/// explicit endpoint, else AWS_REGION / the profile's region, else `us-east-1`. `None` leaves it to
/// the AWS default chain (environment, profile, instance metadata) when the config is loaded.
async fn region_without_imds(options: &SnapshotOptions, has_endpoint: bool) -> Option<Region> {
    let explicit = options.aws_region.clone().map(Region::new);
    if !has_endpoint {
        return explicit;
    }
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(name) = &options.aws_profile {
        profile = profile.profile_name(name);
    }
    RegionProviderChain::first_try(explicit)
        .or_else(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build())
        .or_else(Region::new(FALLBACK_REGION))
        .region()
        .await
}

/// Static credentials when `aws-access-key-id` and `aws-secret-access-key` are set; `None` leaves
/// credentials to the AWS default chain.
fn explicit_credentials(options: &SnapshotOptions) -> Result<Option<Credentials>, SnapshotError> {
    let invalid = |detail: &str| SnapshotError::Invalid { what: "S3 snapshot credentials", detail: detail.to_owned() };
    match (&options.aws_access_key_id, &options.aws_secret_access_key) {
        (Some(key_id), Some(secret)) => {
            Ok(Some(Credentials::new(key_id, secret, options.aws_session_token.clone(), None, "restate-config")))
        }
        (None, None) if options.aws_session_token.is_some() => Err(invalid(
            "`aws-session-token` is set without `aws-access-key-id` and `aws-secret-access-key`; set all three",
        )),
        (None, None) => Ok(None),
        (Some(_), None) => {
            Err(invalid("`aws-access-key-id` is set but `aws-secret-access-key` is not; set both or neither"))
        }
        (None, Some(_)) => {
            Err(invalid("`aws-secret-access-key` is set but `aws-access-key-id` is not; set both or neither"))
        }
    }
}

/// HTTPS (and plain HTTP) over rustls with the ring crypto provider and the system's root
/// certificates.
fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_endpoints_need_allow_http() {
        let url = Url::parse("http://127.0.0.1:9000/").unwrap();
        assert_eq!(checked_endpoint(&url, Some(true)).unwrap(), "http://127.0.0.1:9000");
        for refused in [None, Some(false)] {
            let err = checked_endpoint(&url, refused).unwrap_err().to_string();
            assert!(err.contains("aws-allow-http = true"), "{err}");
        }
        let https = Url::parse("https://minio.internal:9000").unwrap();
        assert_eq!(checked_endpoint(&https, None).unwrap(), "https://minio.internal:9000");
        let ftp = Url::parse("ftp://host").unwrap();
        assert!(checked_endpoint(&ftp, Some(true)).unwrap_err().to_string().contains("scheme 'ftp'"));
    }

    #[test]
    fn credentials_are_all_or_nothing() {
        let mut options = SnapshotOptions::default();
        assert!(explicit_credentials(&options).unwrap().is_none());
        options.aws_access_key_id = Some("AKIA".into());
        assert!(explicit_credentials(&options).unwrap_err().to_string().contains("`aws-secret-access-key` is not"));
        options.aws_secret_access_key = Some("secret".into());
        let credentials = explicit_credentials(&options).unwrap().unwrap();
        assert_eq!(credentials.access_key_id(), "AKIA");
        assert_eq!(credentials.secret_access_key(), "secret");
        options.aws_access_key_id = None;
        assert!(explicit_credentials(&options).unwrap_err().to_string().contains("`aws-access-key-id` is not"));
        options.aws_secret_access_key = None;
        options.aws_session_token = Some("token".into());
        assert!(explicit_credentials(&options).unwrap_err().to_string().contains("set all three"));
    }

    #[test]
    fn transfers_get_one_second_per_mib_on_top() {
        assert_eq!(transfer_timeout(0), OPERATION_TIMEOUT);
        assert_eq!(transfer_timeout(1), OPERATION_TIMEOUT + Duration::from_secs(1));
        assert_eq!(transfer_timeout(100 * 1024 * 1024), OPERATION_TIMEOUT + Duration::from_secs(100));
    }

    #[tokio::test]
    async fn an_explicit_region_wins_and_an_endpoint_defaults_it() {
        let options = SnapshotOptions { aws_region: Some("eu-west-3".into()), ..SnapshotOptions::default() };
        assert_eq!(region_without_imds(&options, true).await.unwrap().as_ref(), "eu-west-3");
        assert_eq!(region_without_imds(&options, false).await.unwrap().as_ref(), "eu-west-3");
        assert_eq!(region_without_imds(&SnapshotOptions::default(), false).await, None);
        // With an endpoint the fallback applies unless the environment or a profile names a region.
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            let options = SnapshotOptions { aws_profile: Some("no-such-profile".into()), ..SnapshotOptions::default() };
            assert_eq!(region_without_imds(&options, true).await.unwrap().as_ref(), FALLBACK_REGION);
        }
    }
}
