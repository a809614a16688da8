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

/// Serves `router` on `bound` until `shutdown`, within `limits`.
pub(crate) async fn serve(
    bound: BoundListener,
    router: Router,
    shutdown: CancellationToken,
    what: &'static str,
    limits: ListenerLimits,
) -> std::io::Result<()> {
    tracing::info!(address = %bound.local_addr, "{what} listening");
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(KEEP_ALIVE)
        .keep_alive_timeout(KEEP_ALIVE);
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
        // Set by the first request the connection delivers (its head complete).
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let started = started.clone();
            let router = router.clone();
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                started.store(true, Ordering::Relaxed);
                // An axum Router is always ready: no poll_ready needed before call.
                tower_service::Service::call(&mut router.clone(), request)
            })
        };
        let connection = builder.serve_connection(TokioIo::new(tcp), service).into_owned();
        let connection = graceful.watch(connection);
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
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
        });
    }
    drop(bound);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("{what}: connections still busy {DRAIN:?} after shutdown began; closing them");
    }
    Ok(())
}
