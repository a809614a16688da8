//! Discovery: asking a deployment which services it serves (`GET {deployment}/discover`).

mod manifest;

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::Full;

pub use manifest::{
    EndpointManifest, HandlerManifest, HandlerType, ManifestError, ProtocolMode, ServiceManifest, ServiceType,
};

use crate::client::{
    body_excerpt, deployment_uri, error_chain, read_body, DeploymentClient, DeploymentClientError, HttpVersion,
};

/// Manifest versions this crate reads, newest first.
pub const MANIFEST_VERSIONS: [u32; 3] = [4, 3, 2];

/// Bound on the whole discovery exchange (connect, request, manifest body).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest manifest body accepted.
pub const MAX_MANIFEST_LEN: usize = 16 * 1024 * 1024;

/// Content type of manifest version `version`, e.g. `application/vnd.restate.endpointmanifest.v4+json`.
pub fn manifest_content_type(version: u32) -> String {
    format!("application/vnd.restate.endpointmanifest.v{version}+json")
}

/// The manifest version a response content type names, if it is one this crate reads.
fn manifest_version_of(content_type: &str) -> Option<u32> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    MANIFEST_VERSIONS.into_iter().find(|v| essence.eq_ignore_ascii_case(&manifest_content_type(*v)))
}

/// Why discovery failed. Each variant names the deployment URL and the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The deployment address cannot be used.
    #[error(transparent)]
    Address(#[from] DeploymentClientError),
    /// No TCP/HTTP/2 connection could be established.
    #[error("cannot connect to deployment {uri}: {cause}")]
    Connect { uri: Uri, cause: String },
    /// The connection broke or the HTTP/2 exchange failed.
    #[error("discovery request to {uri} failed: {cause}")]
    Request { uri: Uri, cause: String },
    /// No complete answer within [`DISCOVERY_TIMEOUT`].
    #[error("discovery request to {uri} got no complete answer within {after:?}")]
    Timeout { uri: Uri, after: Duration },
    /// The deployment answered with a non-200 status.
    #[error("discovery request to {uri} answered {status}{hint}: {body}")]
    Status { uri: Uri, status: StatusCode, hint: &'static str, body: String },
    /// The answer is not one of the manifest content types asked for.
    #[error("discovery answer from {uri} has content type {}, expected one of {}",
        .content_type.as_deref().map(|c| format!("'{c}'")).unwrap_or_else(|| "(none)".into()),
        MANIFEST_VERSIONS.map(manifest_content_type).join(", "))]
    ContentType { uri: Uri, content_type: Option<String> },
    /// The manifest body is larger than [`MAX_MANIFEST_LEN`].
    #[error("discovery answer from {uri} is larger than {limit} bytes")]
    TooLarge { uri: Uri, limit: usize },
    /// The body is not a valid manifest.
    #[error("invalid endpoint manifest (v{manifest_version}) from {uri}: {source}")]
    Manifest {
        uri: Uri,
        manifest_version: u32,
        #[source]
        source: ManifestError,
    },
}

/// Discovers the deployment at `uri` (e.g. `http://127.0.0.1:9080`, a path prefix is kept)
/// with a fresh [`DeploymentClient`]. See [`DeploymentClient::discover`].
pub async fn discover(uri: &Uri, additional_headers: &HeaderMap) -> Result<EndpointManifest, DiscoveryError> {
    DeploymentClient::default().discover(uri, HttpVersion::Http2, additional_headers).await
}

impl DeploymentClient {
    /// `GET {uri}/discover` over HTTP/2, accepting manifest versions v2 to v4 (the
    /// deployment picks; `EndpointManifest::manifest_version` says which), with
    /// `additional_headers` added to the request (e.g. credentials; they cannot replace
    /// `accept`). Bounded by
    /// [`DISCOVERY_TIMEOUT`]. The manifest is checked (see [`EndpointManifest::parse`]) but
    /// not against this crate's protocol versions: use
    /// [`EndpointManifest::negotiate_protocol_version`].
    pub async fn discover(
        &self,
        uri: &Uri,
        http: HttpVersion,
        additional_headers: &HeaderMap,
    ) -> Result<EndpointManifest, DiscoveryError> {
        let target = deployment_uri(uri, "discover")?;
        match tokio::time::timeout(DISCOVERY_TIMEOUT, self.discover_at(&target, http, additional_headers)).await {
            Ok(result) => result,
            Err(_) => Err(DiscoveryError::Timeout { uri: target, after: DISCOVERY_TIMEOUT }),
        }
    }

    async fn discover_at(
        &self,
        uri: &Uri,
        http: HttpVersion,
        additional_headers: &HeaderMap,
    ) -> Result<EndpointManifest, DiscoveryError> {
        let accept = MANIFEST_VERSIONS.map(manifest_content_type).join(", ");
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(uri.clone())
            .body(Full::new(Bytes::new()))
            .expect("method and URI are valid");
        // The caller's headers first, so they cannot replace `accept`.
        let headers = request.headers_mut();
        headers.extend(additional_headers.clone());
        headers.insert(ACCEPT, HeaderValue::from_str(&accept).expect("content types are visible ASCII"));

        let response = self.send(request, http).await.map_err(|err| {
            let cause = error_chain(&err);
            if err.is_connect() {
                DiscoveryError::Connect { uri: uri.clone(), cause }
            } else {
                DiscoveryError::Request { uri: uri.clone(), cause }
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = read_body(body, MAX_MANIFEST_LEN)
            .await
            .map_err(|err| DiscoveryError::Request { uri: uri.clone(), cause: error_chain(&err) })?;

        if parts.status != StatusCode::OK {
            let body = body_excerpt(&body.bytes, 512);
            let hint = match parts.status {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => " (the deployment reads none of manifest versions v2 to v4)",
                StatusCode::NOT_FOUND => " (is this a Restate deployment, and is its path prefix right?)",
                _ => "",
            };
            return Err(DiscoveryError::Status { uri: uri.clone(), status: parts.status, hint, body });
        }
        let content_type = parts.headers.get(CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let manifest_version = content_type
            .as_deref()
            .and_then(manifest_version_of)
            .ok_or_else(|| DiscoveryError::ContentType { uri: uri.clone(), content_type: content_type.clone() })?;
        if body.over_limit {
            return Err(DiscoveryError::TooLarge { uri: uri.clone(), limit: MAX_MANIFEST_LEN });
        }
        EndpointManifest::parse(manifest_version, &body.bytes).map_err(|source| DiscoveryError::Manifest {
            uri: uri.clone(),
            manifest_version,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_content_types() {
        assert_eq!(manifest_content_type(2), "application/vnd.restate.endpointmanifest.v2+json");
        assert_eq!(manifest_version_of("application/vnd.restate.endpointmanifest.v3+json"), Some(3));
        assert_eq!(manifest_version_of("application/vnd.restate.endpointmanifest.v4+json; charset=utf-8"), Some(4));
        assert_eq!(manifest_version_of("application/vnd.restate.endpointmanifest.v1+json"), None);
        assert_eq!(manifest_version_of("application/json"), None);
    }
}
