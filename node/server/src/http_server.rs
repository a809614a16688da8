//! Serving one of the node's routers on its listener, with the limits every listener keeps
//! (node port, admin API, ingress):
//! - a connection must deliver its first request's whole head within the header timeout,
//!   whatever the protocol (a client trickling bytes does not reset it); over HTTP/1.1 the
//!   same holds for every later request, and a keep-alive connection idle that long is
//!   closed;
//! - at most `max_connections` at once: more are closed at accept and counted;
//! - HTTP/2: at most [`MAX_CONCURRENT_STREAMS`] streams per connection, keep-alive pings
//!   every 20 s, a peer that does not answer one within 20 s is dropped;
//! - accept errors (e.g. out of file descriptors) are logged and retried after a pause,
//!   never end the listener.
//!
//! With TLS (the node port with `[networking] tls-*`), connections are TLS and requests
//! from clients with a certificate of the cluster's CA carry [`CertifiedClient`].
//!
//! On shutdown the listener stops accepting and every connection finishes its in-flight
//! requests (graceful shutdown), bounded by the caller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use restate_proto::tls::NodeTls;

use crate::listeners::BoundListener;

/// Streams one HTTP/2 connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;
/// Interval of HTTP/2 keep-alive pings, and how long an answer may take.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Pause after a failed accept (a full file-descriptor table frees up slowly).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long in-flight requests may take to finish once the node stops.
const DRAIN: Duration = Duration::from_secs(15);

/// What every listener of the node enforces (`[networking]`).
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Marks a request that came over TLS with a client certificate the cluster's CA signed
/// (request extension; see `fabric_auth`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CertifiedClient;

/// Serves `router` on `bound` until `shutdown`, within `limits`; with `tls`, over TLS
/// (the handshake, too, must finish within the header timeout).
pub(crate) async fn serve(
    bound: BoundListener,
    router: Router,
    shutdown: CancellationToken,
    what: &'static str,
    limits: ListenerLimits,
    tls: Option<NodeTls>,
) -> std::io::Result<()> {
    tracing::info!(address = %bound.local_addr, tls = tls.is_some(), "{what} listening");
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = bound.listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(address = %bound.local_addr, "{what}: accepting a connection failed, retrying: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "{what}: {} connections are open, the most allowed ([networking] max-connections); closing a new one", limits.max_connections);
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY on an accepted connection: {e}");
        }
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            watcher: graceful.watcher(),
            header_timeout: limits.header_timeout,
            what,
            peer,
        };
        let acceptor = tls.as_ref().and_then(|tls| tls.server_config()).map(tokio_rustls::TlsAcceptor::from);
        tokio::spawn(async move {
            let _slot = slot;
            let Some(acceptor) = acceptor else {
                return connection.run(TokioIo::new(tcp), false).await;
            };
            // The handshake counts against the header timeout: a client that opens a
            // connection and sends nothing is closed as on a plaintext listener.
            match tokio::time::timeout(connection.header_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let certified = stream.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty());
                    connection.run(TokioIo::new(stream), certified).await
                }
                Ok(Err(e)) => tracing::debug!(%peer, "{what}: TLS handshake failed: {e}"),
                Err(_) => {
                    tracing::debug!(%peer, "{what}: no TLS handshake within {:?}; closing", connection.header_timeout)
                }
            }
        });
    }
    drop(bound);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("{what}: connections still busy {DRAIN:?} after shutdown began; closing them");
    }
    Ok(())
}

/// One accepted connection, served once its transport is ready.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    watcher: hyper_util::server::graceful::Watcher,
    header_timeout: Duration,
    what: &'static str,
    peer: std::net::SocketAddr,
}

impl Connection {
    /// Serves requests on `io` until the connection ends; each request is marked
    /// [`CertifiedClient`] when `certified`.
    async fn run<I>(self, io: TokioIo<I>, certified: bool)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { builder, router, watcher, header_timeout, what, peer } = self;
        // Set by the first request the connection delivers (its head complete).
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let started = started.clone();
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                started.store(true, Ordering::Relaxed);
                if certified {
                    request.extensions_mut().insert(CertifiedClient);
                }
                // An axum Router is always ready: no poll_ready needed before call.
                tower_service::Service::call(&mut router.clone(), request)
            })
        };
        let connection = builder.serve_connection(io, service).into_owned();
        let connection = watcher.watch(connection);
        tokio::pin!(connection);
        tokio::select! {
            result = &mut connection => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "{what}: connection ended: {e}");
                }
            }
            _ = tokio::time::sleep(header_timeout) => {
                if started.load(Ordering::Relaxed) {
                    if let Err(e) = connection.await {
                        tracing::debug!(%peer, "{what}: connection ended: {e}");
                    }
                } else {
                    tracing::debug!(%peer, "{what}: no complete request head within {header_timeout:?}; closing");
                }
            }
        }
    }
}
