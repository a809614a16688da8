//! The HTTP/2 client that reaches service deployments.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::request_identity::{self, RequestSigner};

/// Default bound on establishing a TCP connection to a deployment.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a deployment is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// Cleartext HTTP/2 with prior knowledge (the SDKs' own servers; no upgrade).
    #[default]
    Http2,
    /// HTTP/1.1 (a deployment behind an HTTP/1.1-only server; the SDK then runs in
    /// request/response mode).
    Http11,
}

impl std::fmt::Display for HttpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HttpVersion::Http2 => "HTTP/2",
            HttpVersion::Http11 => "HTTP/1.1",
        })
    }
}

/// A client for service deployments: cleartext HTTP/2 with prior knowledge (one pooled
/// connection per deployment, multiplexing concurrent requests) or HTTP/1.1 (pooled
/// keep-alive connections), as each deployment was registered. Every request is signed
/// with the request identity key, if one is set, else marked unsigned. Cheap to clone;
/// clones share the pools.
///
/// Must be used inside a Tokio runtime.
#[derive(Debug, Clone)]
pub struct DeploymentClient {
    http2: Client<HttpConnector, Full<Bytes>>,
    http11: Client<HttpConnector, Full<Bytes>>,
    /// How long a deployment may send nothing (response head, or the next frame) before
    /// a round is cut (`InvokeError::Inactive`); `None`: unbounded.
    pub(crate) inactivity: Option<Duration>,
    signer: Option<Arc<RequestSigner>>,
}

/// Why a deployment address cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeploymentClientError {
    /// Only `http://` deployments are supported for now.
    #[error("deployment address '{uri}' has scheme '{scheme}'; only http:// (HTTP/2 prior knowledge) is supported")]
    UnsupportedScheme { uri: String, scheme: String },
    /// The address has no scheme or host, or a path built from it is not a valid URI.
    #[error("deployment address '{uri}' is not usable: {reason}")]
    InvalidUri { uri: String, reason: String },
}

impl Default for DeploymentClient {
    fn default() -> Self {
        DeploymentClient::new(DEFAULT_CONNECT_TIMEOUT)
    }
}

impl DeploymentClient {
    /// A client whose TCP connects give up after `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> DeploymentClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let http2 = Client::builder(TokioExecutor::new()).http2_only(true).build(connector.clone());
        let http11 = Client::builder(TokioExecutor::new()).build(connector);
        DeploymentClient { http2, http11, inactivity: None, signer: None }
    }

    /// This client with rounds cut once the deployment sends nothing for `inactivity`.
    pub fn with_inactivity_timeout(mut self, inactivity: Duration) -> DeploymentClient {
        self.inactivity = Some(inactivity);
        self
    }

    /// This client with every request signed by `signer` (request identity v1).
    pub fn with_request_identity(mut self, signer: Option<Arc<RequestSigner>>) -> DeploymentClient {
        self.signer = signer;
        self
    }

    /// Sends one request, signed; the response body is left to the caller.
    pub(crate) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
        http: HttpVersion,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        let identity = match &self.signer {
            Some(signer) => signer.headers(request.uri().path()),
            None => request_identity::unsigned(),
        };
        for (name, value) in identity {
            // Replaces any same-named additional header: the signature is the node's.
            request.headers_mut().insert(name, value);
        }
        match http {
            HttpVersion::Http2 => self.http2.request(request).await,
            HttpVersion::Http11 => self.http11.request(request).await,
        }
    }
}

/// `{base}/{suffix}`: the deployment address with `suffix` appended to its path (a trailing
/// `/` on the base is ignored, its query is dropped). `suffix` has no leading `/`.
pub(crate) fn deployment_uri(base: &Uri, suffix: &str) -> Result<Uri, DeploymentClientError> {
    let scheme = base.scheme_str().ok_or_else(|| DeploymentClientError::InvalidUri {
        uri: base.to_string(),
        reason: "no scheme (expected http://host:port)".into(),
    })?;
    if scheme != "http" {
        return Err(DeploymentClientError::UnsupportedScheme { uri: base.to_string(), scheme: scheme.into() });
    }
    let authority = base.authority().ok_or_else(|| DeploymentClientError::InvalidUri {
        uri: base.to_string(),
        reason: "no host (expected http://host:port)".into(),
    })?;
    let prefix = base.path().trim_end_matches('/');
    format!("http://{authority}{prefix}/{suffix}").parse().map_err(|err: http::uri::InvalidUri| {
        DeploymentClientError::InvalidUri { uri: base.to_string(), reason: format!("cannot append '/{suffix}': {err}") }
    })
}

/// A response body read up to a size limit.
pub(crate) struct LimitedBody {
    /// The bytes read: the whole body, or the first chunks past the limit.
    pub bytes: Bytes,
    /// Whether reading stopped because the body exceeded the limit.
    pub over_limit: bool,
}

/// Reads a body until its end, or until more than `limit` bytes arrived.
pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<LimitedBody, hyper::Error> {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
            if out.len() > limit {
                return Ok(LimitedBody { bytes: out.freeze(), over_limit: true });
            }
        }
    }
    Ok(LimitedBody { bytes: out.freeze(), over_limit: false })
}

/// The start of an error response body as text, for messages: at most `max` characters,
/// lossy UTF-8, `(empty body)` when empty.
pub(crate) fn body_excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// `err` and its sources joined with `: ` (hyper puts the useful part, such as "Connection
/// refused", in the sources).
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_paths_to_the_deployment_address() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(
            deployment_uri(&uri("http://127.0.0.1:9080"), "discover").unwrap(),
            "http://127.0.0.1:9080/discover"
        );
        assert_eq!(
            deployment_uri(&uri("http://svc:9080/prefix/"), "invoke/Greeter/greet").unwrap(),
            "http://svc:9080/prefix/invoke/Greeter/greet"
        );
        assert_eq!(deployment_uri(&uri("http://svc/p?x=1"), "discover").unwrap(), "http://svc/p/discover");
    }

    #[test]
    fn rejects_unusable_addresses() {
        let err = deployment_uri(&"https://svc:9080".parse().unwrap(), "discover").unwrap_err();
        assert!(matches!(err, DeploymentClientError::UnsupportedScheme { ref scheme, .. } if scheme == "https"));
        let err = deployment_uri(&"/just/a/path".parse().unwrap(), "discover").unwrap_err();
        assert!(err.to_string().contains("no scheme"), "{err}");
        let err = deployment_uri(&"http://svc:9080".parse().unwrap(), "invoke/a b/c").unwrap_err();
        assert!(err.to_string().contains("cannot append '/invoke/a b/c'"), "{err}");
    }

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(body_excerpt(b"  ", 10), "(empty body)");
        assert_eq!(body_excerpt(b"short", 10), "short");
        assert_eq!(body_excerpt("ééééé".as_bytes(), 3), "ééé...");
    }
}
