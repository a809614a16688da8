//! Authentication of the node port's RPCs. Two credentials, alone or together: the cluster
//! secret ([`restate_proto::credentials::SECRET_HEADER`]) and a client certificate signed
//! by the cluster's CA (mutual TLS, [`restate_proto::tls`]). A gRPC request that lacks any
//! configured credential is answered UNAUTHENTICATED before any handler runs, and counted
//! (`restate_fabric_unauthenticated_requests_total`). `/health` and `/metrics` are mounted
//! outside this layer: orchestrators and Prometheus read them without credentials.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::Router;
use prometheus::IntCounter;
use restate_config::Config;
use restate_proto::credentials::{ClusterSecret, SECRET_HEADER};
use restate_proto::tls::{NodeTls, TlsFiles};
use tokio_util::sync::CancellationToken;

use crate::http_server::CertifiedClient;
use crate::startup_error::StartupError;

/// How often the TLS files are checked for changes.
const TLS_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// What a caller of the node port must present.
#[derive(Debug, Clone, Default)]
pub(crate) struct FabricCredentials {
    pub secret: Option<ClusterSecret>,
    pub tls: Option<NodeTls>,
}

/// The node's credentials from `config`, loaded and set for this process's channels.
/// Without any, the node port may only be bound to a loopback address, unless
/// `[networking] insecure = true` (said loudly).
pub(crate) fn configure(config: &Config) -> Result<FabricCredentials, StartupError> {
    let secret = match &config.networking.cluster_secret_file {
        Some(path) => Some(ClusterSecret::from_file(path)?),
        None => None,
    };
    let tls = match tls_files(config)? {
        Some(files) => Some(NodeTls::load(files)?),
        None => None,
    };
    restate_proto::credentials::set_process_secret(secret.clone());
    restate_proto::tls::set_process_tls(tls.clone());
    if secret.is_none() && tls.is_none() && !config.bind_address.ip().is_loopback() {
        if !config.networking.insecure {
            return Err(StartupError::InsecureFabric { addr: config.bind_address });
        }
        tracing::warn!(
            address = %config.bind_address,
            "INSECURE: the node port accepts RPCs without credentials ([networking] insecure = true): anyone who \
             reaches {} can change this cluster; set [networking] cluster-secret-file or tls-cert-file, \
             tls-key-file and tls-ca-file",
            config.bind_address
        );
    }
    Ok(FabricCredentials { secret, tls })
}

/// `[networking] tls-cert-file`, `tls-key-file` and `tls-ca-file`: all three, or none.
fn tls_files(config: &Config) -> Result<Option<TlsFiles>, StartupError> {
    let n = &config.networking;
    match (&n.tls_cert_file, &n.tls_key_file, &n.tls_ca_file) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => {
            Ok(Some(TlsFiles { ca: ca.clone(), identity: Some((cert.clone(), key.clone())) }))
        }
        (cert, key, ca) => {
            let missing: Vec<&str> = [("tls-cert-file", cert), ("tls-key-file", key), ("tls-ca-file", ca)]
                .into_iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k)
                .collect();
            Err(StartupError::IncompleteTls { missing: missing.join(", ") })
        }
    }
}

/// Re-reads the TLS files every few seconds until `shutdown`; a change that loads is used
/// by new connections, one that does not is reported and the previous files stay in use.
pub(crate) async fn reload_tls(tls: NodeTls, shutdown: CancellationToken) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(TLS_RELOAD_EVERY) => {}
        }
        let attempt = tls.clone();
        match tokio::task::spawn_blocking(move || attempt.reload()).await {
            Ok(Ok(true)) => {
                failing = false;
                tracing::info!("reloaded the node port's TLS certificate, key and CA: new connections use them");
            }
            Ok(Ok(false)) => failing = false,
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::error!("the changed TLS files do not load, keeping the previous ones: {e}");
            }
            _ => {}
        }
    }
}

/// Wraps every route of `grpc` (call before mounting the open routes) with the check of
/// every credential `required` names; without any, `grpc` is returned as is.
pub(crate) fn require(grpc: Router, required: &FabricCredentials, refused: IntCounter) -> Router {
    if required.secret.is_none() && required.tls.is_none() {
        return grpc;
    }
    let secret = required.secret.clone();
    let certificate = required.tls.is_some();
    grpc.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let verdict =
            check_certificate(certificate, request.extensions().get::<CertifiedClient>().is_some()).and_then(|()| {
                match &secret {
                    Some(secret) => check(secret, request.headers().get(SECRET_HEADER).map(|v| v.as_bytes())),
                    None => Ok(()),
                }
            });
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

/// With mutual TLS required, whether the request came with a certificate of the CA.
fn check_certificate(required: bool, certified: bool) -> Result<(), &'static str> {
    if required && !certified {
        return Err("this node requires a client certificate signed by the cluster's CA: configure \
                    [networking] tls-cert-file, tls-key-file and tls-ca-file (restatectl: --tls-cert-file, \
                    --tls-key-file, --tls-ca-file)");
    }
    Ok(())
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

    #[test]
    fn with_mutual_tls_a_request_needs_a_certificate_of_the_ca() {
        assert!(check_certificate(false, false).is_ok());
        assert!(check_certificate(true, true).is_ok());
        let refused = check_certificate(true, false).unwrap_err();
        assert!(refused.contains("tls-cert-file") && refused.contains("--tls-ca-file"), "{refused}");
    }
}
