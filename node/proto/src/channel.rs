//! Channels to other nodes whose connection attempts are bounded end to end: the name
//! lookup too, not only the TCP connect (tonic's `connect_timeout` bounds only the latter).
//! A peer whose name stops resolving slowly (a stopped container under Docker's DNS can
//! stall a lookup for 5 s) then costs at most [`RESOLVE_TIMEOUT`] per attempt, and the
//! failure reads "dns error: ..." (see [`crate::transport_errors`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::credentials::{AttachSecret, ClusterSecret};

/// A channel to another node: every request carries the cluster secret the channel was
/// made with (see [`crate::credentials`]).
pub type NodeChannel = InterceptedService<Channel, AttachSecret>;

/// Longest a peer's name may take to resolve.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(1);

/// A channel to `endpoint` that connects on first use with [`BoundedConnector`]
/// (`connect_timeout` for each TCP connect; TCP_NODELAY on), carrying this process's
/// cluster secret ([`crate::credentials::set_process_secret`]). The endpoint's request
/// timeout and other settings apply as usual.
pub fn lazy_channel(endpoint: Endpoint, connect_timeout: Duration) -> NodeChannel {
    lazy_channel_with_secret(endpoint, connect_timeout, crate::credentials::process_secret())
}

/// `channel` (connected by the caller) carrying this process's cluster secret.
pub fn with_process_secret(channel: Channel) -> NodeChannel {
    with_secret(channel, crate::credentials::process_secret())
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
    with_secret(
        endpoint.connect_with_connector_lazy(BoundedConnector { resolve: RESOLVE_TIMEOUT, connect: connect_timeout }),
        secret,
    )
}

/// Resolves the URI's host within `resolve`, then connects to its addresses in turn, each
/// within `connect`.
#[derive(Debug, Clone, Copy)]
pub struct BoundedConnector {
    pub resolve: Duration,
    pub connect: Duration,
}

impl tower_service::Service<Uri> for BoundedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let BoundedConnector { resolve, connect } = *self;
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}")))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
            let addresses: Vec<SocketAddr> =
                tokio::time::timeout(resolve, tokio::net::lookup_host((host.as_str(), port)))
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("dns error: resolving {host} took over {resolve:?}"),
                        )
                    })?
                    .map_err(|e| io::Error::new(e.kind(), format!("dns error: {host}: {e}")))?
                    .collect();
            let mut last = io::Error::new(io::ErrorKind::NotFound, format!("dns error: {host} has no address"));
            for address in addresses {
                match tokio::time::timeout(connect, TcpStream::connect(address)).await {
                    Ok(Ok(stream)) => {
                        stream.set_nodelay(true)?;
                        return Ok(TokioIo::new(stream));
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[tokio::test]
    async fn connects_reports_refusals_and_unknown_names_as_never_connected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut connector = BoundedConnector { resolve: RESOLVE_TIMEOUT, connect: Duration::from_secs(1) };
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
