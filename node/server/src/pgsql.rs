//! The `[admin.query-engine] pgsql-bind-address` listener.
//!
//! The SQL query engine is not part of this node yet: a PostgreSQL client that connects
//! gets a protocol-level ErrorResponse saying so (SQLSTATE 0A000, feature not supported)
//! instead of a hang or a reset connection.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::listeners::BoundListener;

const MESSAGE: &str = "the SQL query engine is not available on this node; use restatectl for cluster state";

pub(crate) async fn serve(bound: BoundListener, shutdown: CancellationToken) {
    tracing::info!(address = %bound.local_addr, "pgsql listening (query engine unavailable; clients get an error)");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = bound.listener.accept() => accepted,
        };
        let Ok((mut socket, _)) = accepted else { continue };
        tokio::spawn(async move {
            // Startup packets: an SSLRequest (answered 'N') may come before the startup message.
            let mut header = [0u8; 8];
            for _ in 0..2 {
                if socket.read_exact(&mut header).await.is_err() {
                    return;
                }
                let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
                let code = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
                let mut rest = vec![0u8; len.saturating_sub(8).min(1 << 16)];
                if socket.read_exact(&mut rest).await.is_err() {
                    return;
                }
                const SSL_REQUEST: u32 = 80877103;
                if code == SSL_REQUEST {
                    let _ = socket.write_all(b"N").await;
                    continue;
                }
                break;
            }
            let _ = socket.write_all(&error_response(MESSAGE)).await;
        });
    }
}

/// A PostgreSQL ErrorResponse message ('E') with severity, SQLSTATE and message fields.
fn error_response(message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [(b'S', "FATAL"), (b'V', "FATAL"), (b'C', "0A000"), (b'M', message)] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&fields);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_response_is_length_prefixed() {
        let msg = super::error_response("x");
        assert_eq!(msg[0], b'E');
        let len = u32::from_be_bytes(msg[1..5].try_into().unwrap()) as usize;
        assert_eq!(len + 1, msg.len());
    }
}
