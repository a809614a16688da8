//! The operator's HTTP endpoint (`--http-port`): `/health` (the process serves: 200),
//! `/ready` (200 once the API server answered and this replica leads or stands by, 503
//! otherwise) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::leader::Role;
use super::metrics::OperatorMetrics;

#[derive(Clone)]
struct Shared {
    metrics: Arc<OperatorMetrics>,
    role: watch::Receiver<Role>,
}

/// The routes, over the replica's `role` and its `metrics`.
pub fn router(metrics: Arc<OperatorMetrics>, role: watch::Receiver<Role>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(Shared { metrics, role })
}

async fn ready(State(shared): State<Shared>) -> (StatusCode, String) {
    let role = *shared.role.borrow();
    match role {
        Role::Leading => (StatusCode::OK, "leading\n".to_owned()),
        Role::Standby => (StatusCode::OK, "standing by\n".to_owned()),
        Role::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting: the Lease has not been read yet\n".to_owned()),
        Role::Stopping => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_owned()),
    }
}

async fn metrics_text(State(shared): State<Shared>) -> impl IntoResponse {
    let leading = *shared.role.borrow() == Role::Leading;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], shared.metrics.render(leading))
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get_path(port: u16, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response.split(' ').nth(1).unwrap().parse().unwrap();
        let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
        (status, body)
    }

    #[tokio::test]
    async fn ready_follows_the_role_and_metrics_show_leadership() {
        let (role, watched) = watch::channel(Role::Starting);
        let metrics = Arc::new(OperatorMetrics::new(&["apply"]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(listener, router(metrics, watched)));

        assert_eq!(get_path(port, "/health").await.0, 200);
        assert_eq!(get_path(port, "/ready").await.0, 503);
        role.send_replace(Role::Standby);
        assert_eq!(get_path(port, "/ready").await.0, 200);
        assert!(get_path(port, "/metrics").await.1.contains("\nrestate_operator_leader 0\n"));
        role.send_replace(Role::Leading);
        assert_eq!(get_path(port, "/ready").await, (200, "leading\n".to_owned()));
        let (status, body) = get_path(port, "/metrics").await;
        assert_eq!(status, 200);
        assert!(body.contains("\nrestate_operator_leader 1\n"), "{body}");
        assert!(body.contains("restate_operator_reconciles_total{result=\"ok\"} 0"), "{body}");
        role.send_replace(Role::Stopping);
        assert_eq!(get_path(port, "/ready").await.0, 503);
        assert_eq!(get_path(port, "/nothing").await.0, 404);
    }
}
