//! Mutual TLS on the node port (`[networking] tls-cert-file`, `tls-key-file`,
//! `tls-ca-file`): the node serves its port over TLS with its certificate, and asks every
//! client for one signed by the cluster's CA (a client without one still reaches `/health`
//! and `/metrics`; its RPCs are refused, see the server's `fabric_auth`). Every channel this
//! process makes through `channel` speaks TLS with the same certificate and trusts
//! only that CA, so a node with another CA can neither serve the cluster nor join it.
//!
//! The files are re-read by [`NodeTls::reload`] (the node calls it every few seconds): new
//! connections use the new certificate or CA once they load; files that do not load leave
//! the previous ones in use and the error is reported. Private keys are never printed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Where a node's (or a client's) TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificates peers' certificates must chain to (PEM).
    pub ca: PathBuf,
    /// This side's certificate chain and private key (PEM); a client may go without (it
    /// then reaches only what needs no credentials).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Why TLS material cannot be used; names the file and what to do, never a key's content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} file '{}': {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} file '{}' holds no usable PEM {expected}: {reason}", path.display())]
    Pem { what: &'static str, path: PathBuf, expected: &'static str, reason: String },
    #[error("the TLS material does not fit together: {0}")]
    Config(String),
}

/// A node's TLS setup, reloadable; cheap to clone (clones share it).
#[derive(Clone)]
pub struct NodeTls {
    files: TlsFiles,
    loaded: Arc<RwLock<Loaded>>,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls").field("files", &self.files).finish_non_exhaustive()
    }
}

struct Loaded {
    /// The files' bytes when loaded: a reload rebuilds only when they changed.
    contents: Vec<Vec<u8>>,
    /// `None` without an identity (a client only).
    server: Option<Arc<ServerConfig>>,
    client: Arc<ClientConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })
}

fn certificates(what: &'static str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::Pem { what, path: path.to_owned(), expected: "certificate", reason };
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

impl NodeTls {
    /// Loads `files`; the error names the file that is missing or wrong.
    pub fn load(files: TlsFiles) -> Result<NodeTls, TlsError> {
        let loaded = build(&files)?;
        Ok(NodeTls { files, loaded: Arc::new(RwLock::new(loaded)) })
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The current server configuration (`None` without an identity).
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.loaded.read().expect("not poisoned").server.clone()
    }

    /// The current client configuration: trusts the CA, presents the identity if any.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.loaded.read().expect("not poisoned").client.clone()
    }

    /// Re-reads the files; when their content changed and loads, later connections use
    /// it (`Ok(true)`). When it does not load, the previous material stays in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let contents = contents(&self.files)?;
        if self.loaded.read().expect("not poisoned").contents == contents {
            return Ok(false);
        }
        let loaded = build(&self.files)?;
        *self.loaded.write().expect("not poisoned") = loaded;
        Ok(true)
    }
}

fn contents(files: &TlsFiles) -> Result<Vec<Vec<u8>>, TlsError> {
    let mut contents = vec![read("tls-ca-file", &files.ca)?];
    if let Some((cert, key)) = &files.identity {
        contents.push(read("tls-cert-file", cert)?);
        contents.push(read("tls-key-file", key)?);
    }
    Ok(contents)
}

fn build(files: &TlsFiles) -> Result<Loaded, TlsError> {
    let contents = contents(files)?;
    let mut roots = RootCertStore::empty();
    for ca in certificates("tls-ca-file", &files.ca, &contents[0])? {
        roots.add(ca).map_err(|e| TlsError::Pem {
            what: "tls-ca-file",
            path: files.ca.clone(),
            expected: "CA certificate",
            reason: e.to_string(),
        })?;
    }
    let roots = Arc::new(roots);
    let identity = match &files.identity {
        Some((cert_path, key_path)) => {
            let chain = certificates("tls-cert-file", cert_path, &contents[1])?;
            let key = PrivateKeyDer::from_pem_slice(&contents[2]).map_err(|e| TlsError::Pem {
                what: "tls-key-file",
                path: key_path.clone(),
                expected: "private key",
                reason: e.to_string(),
            })?;
            Some((chain, key))
        }
        None => None,
    };
    let config_error = |e: rustls::Error| TlsError::Config(e.to_string());
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots.clone());
    let mut client = match &identity {
        Some((chain, key)) => client.with_client_auth_cert(chain.clone(), key.clone_key()).map_err(config_error)?,
        None => client.with_no_client_auth(),
    };
    client.alpn_protocols = vec![b"h2".to_vec()];
    let server = match identity {
        Some((chain, key)) => {
            // Clients without a certificate are let through the handshake (for /health and
            // /metrics); one that presents a certificate must present a valid one.
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            let mut server = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(config_error)?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .map_err(|e| TlsError::Config(format!("tls-cert-file and tls-key-file: {e}")))?;
            server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(Arc::new(server))
        }
        None => None,
    };
    Ok(Loaded { contents, server, client: Arc::new(client) })
}

static PROCESS_TLS: RwLock<Option<NodeTls>> = RwLock::new(None);

/// Sets the TLS setup every channel of this process uses (a node at start, `restatectl`).
pub fn set_process_tls(tls: Option<NodeTls>) {
    *PROCESS_TLS.write().expect("not poisoned") = tls;
}

/// The TLS setup of this process's channels, if any.
pub fn process_tls() -> Option<NodeTls> {
    PROCESS_TLS.read().expect("not poisoned").clone()
}
