//! A small JSON client for the admin REST API (HTTP/1.1, `http://` only).

use crate::error_chain as chain;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::CliError;

/// Bound on connecting to the admin API.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one request; registration discovers the deployment (up to 10 s) and writes
/// metadata (retried for up to 10 s), so this leaves room for both.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The admin API at one base URL, e.g. `http://127.0.0.1:9070`.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl AdminClient {
    /// Checks the URL (`http://host:port`, optionally with a path prefix).
    pub fn new(admin_url: &str) -> Result<AdminClient, CliError> {
        let invalid = |why: String| {
            CliError(format!(
                "invalid --admin-url '{admin_url}': {why}; expected a URL like http://127.0.0.1:9070 (or set RESTATE_ADMIN_URL)"
            ))
        };
        let uri: Uri = admin_url.parse().map_err(|e| invalid(format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(invalid(format!("scheme '{other}' is not supported, only http://"))),
            None => return Err(invalid("no scheme".into())),
        }
        if uri.authority().is_none() {
            return Err(invalid("no host".into()));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(AdminClient { base: admin_url.trim_end_matches('/').to_owned(), client })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::GET, path, None).await.map(|(_, body)| body)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(StatusCode, Value), CliError> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::PATCH, path, None).await.map(|(_, body)| body)
    }

    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.send(Method::DELETE, path, None).await.map(|(_, body)| body)
    }

    /// Sends one request. A non-2xx answer is an error carrying the API's `message`.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(StatusCode, Value), CliError> {
        let url = format!("{}{path}", self.base);
        let mut request =
            Request::builder().method(method.clone()).uri(&url).header(header::ACCEPT, "application/json");
        let payload = match body {
            Some(value) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(value).expect("JSON values serialize"))
            }
            None => Bytes::new(),
        };
        let request =
            request.body(Full::new(payload)).map_err(|e| CliError(format!("cannot build a request for {url}: {e}")))?;

        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    CliError(format!(
                        "cannot reach the admin API at {}: {} (is restate-server running with the admin role? point --admin-url or RESTATE_ADMIN_URL at it)",
                        self.base,
                        chain(&e)
                    ))
                } else {
                    CliError(format!("request {method} {url} failed: {}", chain(&e)))
                }
            })?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CliError(format!("reading the answer of {method} {url} failed: {}", chain(&e))))?
                .to_bytes();
            Ok::<_, CliError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| {
            CliError(format!(
                "the admin API at {} did not answer {method} {path} within {REQUEST_TIMEOUT:?}",
                self.base
            ))
        })??;

        let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
        if !status.is_success() {
            let message = parsed
                .as_ref()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
            return Err(CliError(format!("{message} ({status} from {method} {url})")));
        }
        let value = parsed.ok_or_else(|| {
            CliError(format!(
                "the admin API at {} answered {method} {path} with something that is not JSON: {}",
                self.base,
                String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()
            ))
        })?;
        Ok((status, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls_are_checked() {
        assert_eq!(AdminClient::new("http://127.0.0.1:9070/").unwrap().base(), "http://127.0.0.1:9070");
        let err = AdminClient::new("https://admin:9070").unwrap_err();
        assert!(err.0.contains("--admin-url 'https://admin:9070'") && err.0.contains("https"), "{err}");
        assert!(AdminClient::new("not a url").unwrap_err().0.contains("--admin-url"));
        assert!(AdminClient::new("127.0.0.1:9070").unwrap_err().0.contains("scheme"));
    }
}
