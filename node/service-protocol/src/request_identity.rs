//! Request identity (v1): every request to a deployment carries a short-lived JWT signed
//! with the node's Ed25519 key, so SDKs configured with the matching public key
//! (`identity_keys = ["publickeyv1_..."]`) accept only requests from this cluster.
//!
//! The wire form, as the SDKs verify it: header `x-restate-signature-scheme: v1` and
//! `x-restate-jwt-v1: <JWT>`, an EdDSA JWT whose `kid` is the public key in its compact form
//! (`publickeyv1_` + base58 of the 32 key bytes) and whose claims are `aud` (the request's
//! path, e.g. `/invoke/Greeter/greet` or `/discover`), `iat`, `nbf` and `exp`. Without a key
//! requests say `x-restate-signature-scheme: unsigned`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

/// Names the signature scheme of a request: `v1` or `unsigned`.
pub const SIGNATURE_SCHEME_HEADER: HeaderName = HeaderName::from_static("x-restate-signature-scheme");
/// Carries the v1 JWT.
pub const JWT_V1_HEADER: HeaderName = HeaderName::from_static("x-restate-jwt-v1");
/// The prefix of a v1 public key in its compact form.
pub const PUBLIC_KEY_V1_PREFIX: &str = "publickeyv1_";

/// How long a token is valid after it was made: long enough for a request to reach a
/// deployment, short enough that a captured token is soon useless.
const TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// How far before `iat` a token is already valid (`nbf`): tolerates a deployment whose
/// clock runs behind the node's.
const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// Signs requests to deployments with the node's Ed25519 key.
pub struct RequestSigner {
    key: EncodingKey,
    header: Header,
    /// The public key in its compact form (`publickeyv1_...`), what SDKs are configured with.
    key_id: String,
}

impl std::fmt::Debug for RequestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSigner").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Why a request identity key cannot be used. Never shows the key's content.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read '{}': {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "'{}' does not hold an Ed25519 private key in PKCS#8 PEM form ({reason}); make one with \
         `openssl genpkey -algorithm ed25519 -outform pem -out private.pem`",
        path.display()
    )]
    NotEd25519 { path: PathBuf, reason: String },
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl RequestSigner {
    /// Reads an Ed25519 private key in PKCS#8 PEM form (what `openssl genpkey -algorithm
    /// ed25519` writes).
    pub fn from_pem_file(path: &Path) -> Result<RequestSigner, SigningKeyError> {
        let pem = std::fs::read(path).map_err(|source| SigningKeyError::Read { path: path.to_owned(), source })?;
        RequestSigner::from_pem(&pem).map_err(|reason| SigningKeyError::NotEd25519 { path: path.to_owned(), reason })
    }

    /// The signer of an Ed25519 private key in PKCS#8 PEM form; the error says what is wrong
    /// with `pem`, without its content.
    pub fn from_pem(pem: &[u8]) -> Result<RequestSigner, String> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = EncodingKey::from_ed_pem(pem).map_err(|e| e.to_string())?;
        let signing = ed25519_dalek::SigningKey::from_pkcs8_der(key.inner()).map_err(|e| e.to_string())?;
        let key_id = public_key_id(signing.verifying_key().as_bytes());
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("JWT".into());
        header.kid = Some(key_id.clone());
        let signer = RequestSigner { key, header, key_id };
        signer.token("/discover", SystemTime::now()).map_err(|e| format!("cannot sign with it: {e}"))?;
        Ok(signer)
    }

    /// The public key in its compact form: configure SDKs with it (`identity_keys`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A token for a request to `path`, made at `now`.
    pub fn token(&self, path: &str, now: SystemTime) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            aud: path,
            iat,
            nbf: iat.saturating_sub(CLOCK_SKEW.as_secs()),
            exp: iat + TOKEN_LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
    }

    /// The headers that sign a request to `path` now.
    pub(crate) fn headers(&self, path: &str) -> Vec<(HeaderName, HeaderValue)> {
        match self.token(path, SystemTime::now()) {
            Ok(token) => vec![
                (SIGNATURE_SCHEME_HEADER, HeaderValue::from_static("v1")),
                (JWT_V1_HEADER, HeaderValue::try_from(token).expect("a JWT is ASCII")),
            ],
            Err(e) => {
                // The key signed a token when it was loaded; an error here is a bug, and the
                // SDK refusing the unsigned request says so to the deployment's operator.
                tracing::error!(error = %e, "cannot sign a request to a deployment");
                unsigned()
            }
        }
    }
}

/// The header of a request sent without a request identity key.
pub(crate) fn unsigned() -> Vec<(HeaderName, HeaderValue)> {
    vec![(SIGNATURE_SCHEME_HEADER, HeaderValue::from_static("unsigned"))]
}

/// `publickeyv1_` + base58 of the 32 public key bytes.
pub fn public_key_id(public_key: &[u8; 32]) -> String {
    format!("{PUBLIC_KEY_V1_PREFIX}{}", bs58::encode(public_key).into_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    /// An Ed25519 key as `openssl genpkey -algorithm ed25519 -outform pem` writes it (a test
    /// key, used nowhere else).
    const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----\n\
                            MC4CAQAwBQYDK2VwBCIEIPxNVQGcvQ2FJ0gGYBpPxj1ZJpdHh0bO5wR5m6YbD0qX\n\
                            -----END PRIVATE KEY-----\n";

    fn segment(token: &str, i: usize) -> serde_json::Value {
        let part = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn tokens_name_the_key_and_the_path_and_verify_with_the_public_key() {
        let signer = RequestSigner::from_pem(TEST_KEY.as_bytes()).unwrap();
        // What `openssl pkey -pubout` gives for this key, in the compact form.
        assert_eq!(signer.key_id(), "publickeyv1_Eyzys69Ln7T6njYQ9BQqKnMVCyqt7U2wfbZsVWx5aPaL");
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let token = signer.token("/invoke/Greeter/greet", now).unwrap();
        let header = segment(&token, 0);
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], signer.key_id());
        let claims = segment(&token, 1);
        assert_eq!(claims["aud"], "/invoke/Greeter/greet");
        assert_eq!(claims["iat"], 1_800_000_000u64);
        assert_eq!(claims["nbf"], 1_800_000_000u64 - 30);
        assert_eq!(claims["exp"], 1_800_000_000u64 + 60);

        // The signature checks out against the public key the kid names.
        let encoded = signer.key_id().strip_prefix(PUBLIC_KEY_V1_PREFIX).unwrap();
        let public: [u8; 32] = bs58::decode(encoded).into_vec().unwrap().try_into().unwrap();
        let verifying = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature).unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
        verifying.verify_strict(signed.as_bytes(), &signature).unwrap();
        let forged = signed.replace(&token.split('.').nth(1).unwrap()[..4], "AAAA");
        assert!(verifying.verify_strict(forged.as_bytes(), &signature).is_err());
    }

    #[test]
    fn keys_that_are_not_ed25519_are_refused_without_their_content() {
        let rsa_like = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END RSA PRIVATE KEY-----\n";
        let err = RequestSigner::from_pem(rsa_like.as_bytes()).unwrap_err();
        assert!(!err.contains("MIIBOg"), "{err}");
        assert!(RequestSigner::from_pem(b"not a key").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, "garbage").unwrap();
        let err = RequestSigner::from_pem_file(&path).unwrap_err().to_string();
        assert!(err.contains("key.pem") && err.contains("openssl genpkey"), "{err}");
        let err = RequestSigner::from_pem_file(&dir.path().join("missing.pem")).unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("missing.pem"), "{err}");
    }
}
