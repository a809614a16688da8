//! Why a node could not start: each variant names the configuration to fix.

use std::net::SocketAddr;

use restate_storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr} for the {what} (`{key}`): {source}. Change `{key}` in restate.toml (or {}) to a free address", restate_config::env_var_for_key(key))]
    Bind { key: &'static str, what: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("`{key}`: {message}")]
    Unsupported { key: &'static str, message: String },
    #[error("metadata client: {0}")]
    MetadataClient(String),
    #[error("[worker.snapshots]: {0}")]
    Snapshots(String),
    #[error("[networking] cluster-secret-file (RESTATE_NETWORKING__CLUSTER_SECRET_FILE): {0}")]
    ClusterSecret(#[from] restate_proto::credentials::SecretFileError),
    #[error("[networking] TLS on the node port: {0}. Fix the file (RESTATE_NETWORKING__TLS_CERT_FILE, __TLS_KEY_FILE, __TLS_CA_FILE)")]
    Tls(#[from] restate_proto::tls::TlsError),
    #[error("[networking] TLS on the node port needs tls-cert-file, tls-key-file and tls-ca-file together; missing: {missing}")]
    IncompleteTls { missing: String },
    #[error("request-identity-private-key-pem-file (RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE): {0}")]
    RequestIdentity(#[from] restate_service_protocol::request_identity::SigningKeyError),
    #[error(
        "refusing to serve the node port on {addr} without credentials: anyone who reaches it could change \
             the cluster. Set [networking] cluster-secret-file (RESTATE_NETWORKING__CLUSTER_SECRET_FILE) to a file \
             holding the cluster's secret (the same on every node), bind `bind-address` to a loopback address, \
             or accept the risk with [networking] insecure = true (RESTATE_NETWORKING__INSECURE=true)"
    )]
    InsecureFabric { addr: SocketAddr },
}
