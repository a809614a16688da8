//! The `[admin.query-engine] pgsql-bind-address` listener: the PostgreSQL wire protocol in
//! front of the node's SQL engine (`restate_query::pg`). Any user and database name is
//! accepted, as Restate does: bind it only on an operators' network. At most
//! [`MAX_CONNECTIONS`] clients at once; more are closed at accept.

use std::sync::Arc;

use restate_query::QueryEngine;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::listeners::BoundListener;

/// PostgreSQL clients served at once.
const MAX_CONNECTIONS: usize = 256;

pub(crate) async fn serve(bound: BoundListener, engine: QueryEngine, shutdown: CancellationToken) {
    tracing::info!(address = %bound.local_addr, "pgsql listening (SQL over the cluster's tables)");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = bound.listener.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("pgsql: accepting a connection failed, retrying: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "pgsql: {MAX_CONNECTIONS} clients are connected, the most allowed; closing a new one");
            continue;
        };
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                _ = restate_query::pg::serve_connection(socket, engine) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
