//! Authentication of the node port's RPCs: with a cluster secret configured, a gRPC request
//! that does not carry it ([`restate_proto::credentials::SECRET_HEADER`]) is answered
//! UNAUTHENTICATED before any handler runs, and counted
//! (`restate_fabric_unauthenticated_requests_total`). `/health` and `/metrics` are mounted
//! outside this layer: orchestrators and Prometheus read them without credentials.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use prometheus::IntCounter;
use restate_config::Config;
use restate_proto::credentials::{ClusterSecret, SECRET_HEADER};

use crate::startup_error::StartupError;

/// The node's credentials from `config`: the cluster secret read and set for this
/// process's channels. Without credentials the node port may only be bound to a loopback
/// address, unless `[networking] insecure = true` (said loudly).
pub(crate) fn configure(config: &Config) -> Result<Option<ClusterSecret>, StartupError> {
    let secret = match &config.networking.cluster_secret_file {
        Some(path) => Some(ClusterSecret::from_file(path)?),
        None => None,
    };
    restate_proto::credentials::set_process_secret(secret.clone());
    if secret.is_none() && !config.bind_address.ip().is_loopback() {
        if !config.networking.insecure {
            return Err(StartupError::InsecureFabric { addr: config.bind_address });
        }
        tracing::warn!(
            address = %config.bind_address,
            "INSECURE: the node port accepts RPCs without credentials ([networking] insecure = true): anyone who \
             reaches {} can change this cluster; set [networking] cluster-secret-file",
            config.bind_address
        );
    }
    Ok(secret)
}

/// Wraps every route of `grpc` (call before mounting the open routes).
pub(crate) fn require_secret(grpc: Router, secret: ClusterSecret, refused: IntCounter) -> Router {
    grpc.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let verdict = check(&secret, request.headers().get(SECRET_HEADER).map(|v| v.as_bytes()));
        let refused = refused.clone();
        async move {
            match verdict {
                Ok(()) => next.run(request).await,
                Err(message) => {
                    refused.inc();
                    tracing::debug!(path = %request.uri().path(), "refused an unauthenticated request: {message}");
                    tonic::Status::unauthenticated(message).into_http::<axum::body::Body>().into_response()
                }
            }
        }
    }))
}

/// Whether `presented` (the header's value, if any) is the secret; the refusal says why
/// and what to configure, never the secret.
pub(crate) fn check(secret: &ClusterSecret, presented: Option<&[u8]>) -> Result<(), &'static str> {
    match presented {
        None => Err("this node requires the cluster secret: configure [networking] cluster-secret-file \
                     (RESTATE_NETWORKING__CLUSTER_SECRET_FILE; restatectl: --cluster-secret-file) with the \
                     cluster's secret"),
        Some(value) if secret.matches(value) => Ok(()),
        Some(_) => Err("the cluster secret presented is not this cluster's: check \
                        [networking] cluster-secret-file (RESTATE_NETWORKING__CLUSTER_SECRET_FILE)"),
    }
}

/// The counter of refused requests, registered by the node's metrics.
pub(crate) fn refused_counter() -> IntCounter {
    IntCounter::new(
        "restate_fabric_unauthenticated_requests_total",
        "Requests on the node port refused for missing or wrong cluster credentials",
    )
    .expect("valid metric")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_setting_and_never_the_secret() {
        let secret = ClusterSecret::new("the-cluster-secret-value").unwrap();
        assert!(check(&secret, Some(b"the-cluster-secret-value")).is_ok());
        let missing = check(&secret, None).unwrap_err();
        assert!(missing.contains("cluster-secret-file"), "{missing}");
        let wrong = check(&secret, Some(b"another-secret-value-xx")).unwrap_err();
        assert!(wrong.contains("not this cluster's"), "{wrong}");
        assert!(!wrong.contains("the-cluster-secret-value") && !missing.contains("the-cluster-secret-value"));
    }
}
