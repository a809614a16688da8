//! Channels to other nodes whose connection attempts are bounded end to end: the name
//! lookup too, not only the TCP connect (tonic's `connect_timeout` bounds only the latter).
//! A peer whose name stops resolving slowly (a stopped container under Docker's DNS can
//! stall a lookup for 5 s) then costs at most [`RESOLVE_TIMEOUT`] per attempt, and the
//! failure reads "dns error: ..." (see [`crate::transport_errors`]).
//!
//! With TLS ([`crate::tls`]) every connection is TLS, whatever the address's scheme (a
//! node that speaks TLS never speaks plaintext); an `https://` address without TLS
//! configured is an error, never a plaintext connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::credentials::{AttachSecret, ClusterSecret};
use crate::tls::NodeTls;

/// A channel to another node: every request carries the cluster secret the channel was
/// made with (see [`crate::credentials`]).
pub type NodeChannel = InterceptedService<Channel, AttachSecret>;

/// Longest a peer's name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// A channel to `endpoint` that connects on first use with [`BoundedConnector`]
/// (`connect_timeout` for each TCP connect; TCP_NODELAY on; this process's TLS, if any),
/// carrying this process's cluster secret ([`crate::credentials::set_process_secret`]).
/// The endpoint's request timeout and other settings apply as usual.
pub fn lazy_channel(endpoint: Endpoint, connect_timeout: Duration) -> NodeChannel {
    lazy_channel_with_secret(endpoint, connect_timeout, crate::credentials::process_secret())
}

/// [`lazy_channel`], connected now: the error says why the node cannot be reached.
pub async fn connect(endpoint: Endpoint, connect_timeout: Duration) -> Result<NodeChannel, tonic::transport::Error> {
    connect_with(endpoint, connect_timeout, crate::credentials::process_secret(), crate::tls::process_tls()).await
}

/// [`connect`] with the given credentials instead of the process's (`restatectl`, tests).
pub async fn connect_with(
    endpoint: Endpoint,
    connect_timeout: Duration,
    secret: Option<ClusterSecret>,
    tls: Option<NodeTls>,
) -> Result<NodeChannel, tonic::transport::Error> {
    let connector = BoundedConnector { resolve: RESOLVE_TIMEOUT, connect: connect_timeout, tls };
    Ok(with_secret(endpoint.connect_with_connector(connector).await?, secret))
}

/// `channel` (connected by the caller) carrying `secret` (a client of several clusters,
/// such as the operator, or a test).
pub fn with_secret(channel: Channel, secret: Option<ClusterSecret>) -> NodeChannel {
    InterceptedService::new(channel, AttachSecret::new(secret))
}

/// [`lazy_channel`] carrying `secret` instead of the process's (a client of several
/// clusters, such as the operator).
pub fn lazy_channel_with_secret(
    endpoint: Endpoint,
    connect_timeout: Duration,
    secret: Option<ClusterSecret>,
) -> NodeChannel {
    let connector =
        BoundedConnector { resolve: RESOLVE_TIMEOUT, connect: connect_timeout, tls: crate::tls::process_tls() };
    with_secret(endpoint.connect_with_connector_lazy(connector), secret)
}

/// A connection to a node: plain TCP, or TLS over it.
pub type NodeStream = Either<TcpStream, TlsStream<TcpStream>>;

/// Resolves the URI's host within `resolve`, then connects to its addresses in turn, each
/// within `connect`; with `tls`, then shakes hands (within `connect` too), verifying the
/// node's certificate for the URI's host against the CA.
#[derive(Debug, Clone)]
pub struct BoundedConnector {
    pub resolve: Duration,
    pub connect: Duration,
    pub tls: Option<NodeTls>,
}

impl tower_service::Service<Uri> for BoundedConnector {
    type Response = TokioIo<NodeStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let BoundedConnector { resolve, connect, tls } = self.clone();
        Box::pin(async move {
            let tcp = connect_tcp(&uri, resolve, connect).await?;
            match tls {
                None if uri.scheme_str() == Some("https") => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "tls error: {uri} is an https:// address but no TLS is configured (set [networking] \
                         tls-ca-file, tls-cert-file and tls-key-file; restatectl: --tls-ca-file ...)"
                    ),
                )),
                None => Ok(TokioIo::new(Either::Left(tcp))),
                Some(tls) => {
                    let host = host_of(&uri)?;
                    let name = rustls::pki_types::ServerName::try_from(host.clone())
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("tls error: {host}: {e}")))?;
                    let handshake = tokio_rustls::TlsConnector::from(tls.client_config()).connect(name, tcp);
                    let stream = tokio::time::timeout(connect, handshake)
                        .await
                        .map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("tls error: {host}: no handshake within {connect:?}"),
                            )
                        })?
                        .map_err(|e| io::Error::new(e.kind(), format!("tls error: {host}: {e}")))?;
                    Ok(TokioIo::new(Either::Right(stream)))
                }
            }
        })
    }
}

/// The host of `uri`, without IPv6 brackets.
fn host_of(uri: &Uri) -> io::Result<String> {
    Ok(uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned())
}

/// The TCP part of [`BoundedConnector`].
async fn connect_tcp(uri: &Uri, resolve: Duration, connect: Duration) -> io::Result<TcpStream> {
    let host = host_of(uri)?;
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addresses: Vec<SocketAddr> = tokio::time::timeout(resolve, tokio::net::lookup_host((host.as_str(), port)))
        .await
        .map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, format!("dns error: resolving {host} took over {resolve:?}"))
        })?
        .map_err(|e| io::Error::new(e.kind(), format!("dns error: {host}: {e}")))?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("dns error: {host} has no address"));
    for address in addresses {
        match tokio::time::timeout(connect, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = io::Error::new(e.kind(), format!("tcp connect error: {address}: {e}")),
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("tcp connect error: {address}: no answer within {connect:?}"),
                )
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[tokio::test]
    async fn connects_reports_refusals_and_unknown_names_as_never_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut connector = BoundedConnector { resolve: RESOLVE_TIMEOUT, connect: Duration::from_secs(1), tls: None };
        let uri: Uri = format!("http://localhost:{port}").parse().unwrap();
        assert!(connector.call(uri).await.is_ok());
        drop(listener);
        let refused = connector.call(format!("http://127.0.0.1:{port}").parse().unwrap()).await.unwrap_err();
        assert!(refused.to_string().starts_with("tcp connect error"), "{refused}");
        assert!(refused.to_string().contains("refused"), "{refused}");
        let unknown = connector.call("http://no-such-host.invalid:5122".parse().unwrap()).await.unwrap_err();
        assert!(unknown.to_string().starts_with("dns error"), "{unknown}");
    }
}
