//! The cluster secret: a shared credential every RPC on the node port carries (header
//! [`SECRET_HEADER`]), read from `[networking] cluster-secret-file`. A node configured with
//! one refuses any RPC without it before a handler runs; every channel made through
//! `channel::lazy_channel` carries the secret this process was configured with
//! ([`set_process_secret`]), so the node's own clients (metadata, raft, logs, workers) and
//! `restatectl` need nothing else. The operator, which talks to several clusters, passes
//! each cluster's secret explicitly ([`AttachSecret::new`]).
//!
//! The secret is never printed: its `Debug` shows its length only.

use std::path::Path;
use std::sync::{Arc, RwLock};

use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;

/// The header carrying the secret (gRPC metadata keys are lower case).
pub const SECRET_HEADER: &str = "x-restate-cluster-secret";

/// Shortest secret accepted: 16 characters (a hex-encoded 64-bit value is too guessable).
pub const MIN_SECRET_LEN: usize = 16;

/// A cluster secret, validated: printable ASCII without spaces, at least [`MIN_SECRET_LEN`].
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Arc<str>);

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterSecret({} characters)", self.0.len())
    }
}

/// Why a cluster secret file was refused; the message names the file and the fix, never
/// the content.
#[derive(Debug)]
pub struct SecretFileError {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for SecretFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cluster secret file {}: {}; write at least {MIN_SECRET_LEN} printable characters without spaces \
             to it, the same on every node (e.g. `openssl rand -hex 32 > {}`)",
            self.path, self.reason, self.path
        )
    }
}

impl std::error::Error for SecretFileError {}

impl ClusterSecret {
    /// Reads the secret from `path` (surrounding whitespace, such as a final newline, is
    /// not part of it).
    pub fn from_file(path: &Path) -> Result<ClusterSecret, SecretFileError> {
        let error = |reason: String| SecretFileError { path: path.display().to_string(), reason };
        let bytes = std::fs::read(path).map_err(|e| error(format!("cannot be read: {e}")))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| error("is not text".to_owned()))?;
        ClusterSecret::new(text.trim()).map_err(error)
    }

    /// The secret `text`, or why it cannot be one.
    pub fn new(text: &str) -> Result<ClusterSecret, String> {
        if text.is_empty() {
            return Err("is empty".to_owned());
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("holds spaces, control or non-ASCII characters".to_owned());
        }
        if text.len() < MIN_SECRET_LEN {
            return Err(format!("holds {} characters, fewer than {MIN_SECRET_LEN}", text.len()));
        }
        Ok(ClusterSecret(text.into()))
    }

    /// Whether `presented` is this secret, compared in time independent of where they
    /// differ (the length is not secret).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == presented.len()
            && expected.iter().zip(presented).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
    }

    fn header_value(&self) -> AsciiMetadataValue {
        let mut value = MetadataValue::try_from(&*self.0).expect("validated: printable ASCII");
        value.set_sensitive(true);
        value
    }
}

static PROCESS_SECRET: RwLock<Option<ClusterSecret>> = RwLock::new(None);

/// Sets the secret this process's channels carry (the node at start, `restatectl` from
/// its flag or the environment). Channels made before keep what they had.
pub fn set_process_secret(secret: Option<ClusterSecret>) {
    *PROCESS_SECRET.write().expect("not poisoned") = secret;
}

/// The secret set by [`set_process_secret`], if any.
pub fn process_secret() -> Option<ClusterSecret> {
    PROCESS_SECRET.read().expect("not poisoned").clone()
}

/// Adds the secret (when there is one) to every request of a channel; the header value
/// is made once, not per request (a sensitive value: its `Debug` does not show it).
#[derive(Clone, Debug, Default)]
pub struct AttachSecret(Option<AsciiMetadataValue>);

impl AttachSecret {
    pub fn new(secret: Option<ClusterSecret>) -> AttachSecret {
        AttachSecret(secret.map(|secret| secret.header_value()))
    }
}

impl Interceptor for AttachSecret {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert(SECRET_HEADER, value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_checked_compared_whole_and_never_printed() {
        let secret = ClusterSecret::new("0123456789abcdef-xyz").unwrap();
        assert!(secret.matches(b"0123456789abcdef-xyz"));
        assert!(!secret.matches(b"0123456789abcdef-xyZ"));
        assert!(!secret.matches(b"0123456789abcdef-xy"));
        assert!(!secret.matches(b""));
        assert!(!format!("{secret:?}").contains("0123"), "{secret:?}");
        assert!(ClusterSecret::new("short").unwrap_err().contains("fewer than 16"));
        assert!(ClusterSecret::new("with a space in it ok").unwrap_err().contains("spaces"));
        assert!(ClusterSecret::new("").unwrap_err().contains("empty"));
    }

    #[test]
    fn a_secret_file_is_read_without_its_final_newline_and_errors_name_the_file_not_the_content() {
        let dir = std::env::temp_dir().join(format!("cluster-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "a-long-enough-secret-value\n").unwrap();
        assert!(ClusterSecret::from_file(&good).unwrap().matches(b"a-long-enough-secret-value"));
        let short = dir.join("short");
        std::fs::write(&short, "tiny-secret\n").unwrap();
        let err = ClusterSecret::from_file(&short).unwrap_err().to_string();
        assert!(err.contains(&short.display().to_string()) && err.contains("openssl rand"), "{err}");
        assert!(!err.contains("tiny-secret"), "the error echoes the secret: {err}");
        let missing = ClusterSecret::from_file(&dir.join("missing")).unwrap_err().to_string();
        assert!(missing.contains("cannot be read"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_interceptor_adds_the_header_only_with_a_secret() {
        let mut with = AttachSecret::new(Some(ClusterSecret::new("0123456789abcdef").unwrap()));
        let request = with.call(tonic::Request::new(())).unwrap();
        assert_eq!(request.metadata().get(SECRET_HEADER).unwrap(), "0123456789abcdef");
        assert!(!format!("{with:?}").contains("0123456789abcdef"), "{with:?}");
        let mut without = AttachSecret::default();
        assert!(without.call(tonic::Request::new(())).unwrap().metadata().get(SECRET_HEADER).is_none());
    }
}
