//! A throwaway certificate authority for the mutual-TLS tests, made with `openssl` as an
//! operator would: a CA, and certificates it signs for nodes and clients (valid for
//! 127.0.0.1 and localhost, for server and client use).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA in its own directory.
pub struct Pki {
    dir: PathBuf,
    /// The CA certificate (PEM): what `tls-ca-file` names.
    pub ca: PathBuf,
    ca_key: PathBuf,
}

/// A certificate and its key, issued by a [`Pki`].
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out =
        Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Pki {
    /// A new CA named `name` under `dir/name`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let subject = format!("/CN={name}");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "30",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &dir,
        );
        Pki { ca: dir.join("ca.crt"), ca_key: dir.join("ca.key"), dir }
    }

    /// A certificate for `name` signed by this CA.
    pub fn issue(&self, name: &str) -> Issued {
        let subject = format!("/CN={name}");
        let (key, csr, cert, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
            &self.dir,
        );
        let (ca, ca_key) = (self.ca.to_str().unwrap(), self.ca_key.to_str().unwrap());
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                ca,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "30",
                "-extfile",
                &ext,
            ],
            &self.dir,
        );
        Issued { cert: self.dir.join(cert), key: self.dir.join(key) }
    }
}

/// The environment that gives a node (or `restatectl`) `issued` and the CA `ca`.
pub fn tls_env(ca: &Path, issued: &Issued) -> Vec<(&'static str, String)> {
    vec![
        ("RESTATE_NETWORKING__TLS_CA_FILE", ca.display().to_string()),
        ("RESTATE_NETWORKING__TLS_CERT_FILE", issued.cert.display().to_string()),
        ("RESTATE_NETWORKING__TLS_KEY_FILE", issued.key.display().to_string()),
    ]
}
