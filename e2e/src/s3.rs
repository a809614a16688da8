//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`, installed by
//! `.ci/run`) on a free loopback port, killed on drop, and the few plain-HTTP calls tests
//! need to look into it (moto accepts unsigned path-style requests).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, http_call, wait_until, TestDir};

/// Objects are private: moto answers reads that carry an (unchecked) AWS signature.
const FAKE_SIGNATURE: (&str, &str) = (
    "authorization",
    "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
);

/// A running `moto_server`.
pub struct MotoServer {
    child: Child,
    pub port: u16,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it accepts
    /// connections. Its output goes to `<test dir>/moto.log`.
    pub fn start(dir: &TestDir) -> MotoServer {
        MotoServer::spawn(dir, "moto.log", false, "127.0.0.1")
    }

    /// As [`MotoServer::start`], listening on every interface (0.0.0.0) so that containers
    /// reach it through the Docker bridge (`host.docker.internal:<port>`).
    pub fn start_for_containers(dir: &TestDir) -> MotoServer {
        MotoServer::spawn(dir, "moto.log", false, "0.0.0.0")
    }

    /// A server that checks credentials (`INITIAL_NO_AUTH_ACTION_COUNT=0`): it knows no
    /// access key, so every signed request is refused with `InvalidAccessKeyId`.
    pub fn start_rejecting_credentials(dir: &TestDir) -> MotoServer {
        MotoServer::spawn(dir, "moto-auth.log", true, "127.0.0.1")
    }

    fn spawn(dir: &TestDir, log_name: &str, check_credentials: bool, host: &str) -> MotoServer {
        let port = free_port();
        let log = std::fs::File::create(dir.path().join(log_name)).expect("moto log file");
        let mut command = Command::new("moto_server");
        if check_credentials {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = command
            .args(["-H", host, "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): install it with `pip install 'moto[server]'`"));
        let server = MotoServer { child, port };
        wait_until("moto_server to accept connections", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        server
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let answer = http_call(self.port, "PUT", &format!("/{bucket}"), "", &[], Duration::from_secs(10));
        assert!(matches!(answer, Some((200, _))), "creating bucket {bucket}: {answer:?}");
    }

    /// Keys of the objects in `bucket` under `prefix`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let path = format!("/{bucket}?list-type=2&max-keys=1000&prefix={prefix}");
        let (status, body) = http_call(self.port, "GET", &path, "", &[FAKE_SIGNATURE], Duration::from_secs(10))
            .unwrap_or_else(|| panic!("moto did not answer {path}"));
        assert_eq!(status, 200, "{path}: {body}");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect();
        keys.sort();
        keys
    }

    /// An object's size (its `Content-Length` on HEAD), `None` when it does not exist.
    pub fn size(&self, bucket: &str, key: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let request = format!(
            "HEAD /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1\r\n{}: {}\r\nConnection: close\r\n\r\n",
            FAKE_SIGNATURE.0, FAKE_SIGNATURE.1
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        if response.split_whitespace().nth(1)? != "200" {
            return None;
        }
        response.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// An object's body as text.
    pub fn get(&self, bucket: &str, key: &str) -> Option<String> {
        match http_call(self.port, "GET", &format!("/{bucket}/{key}"), "", &[FAKE_SIGNATURE], Duration::from_secs(10)) {
            Some((200, body)) => Some(body),
            _ => None,
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Env for nodes whose snapshots go to `s3://<bucket>/<prefix>` on `moto`.
pub fn snapshot_env(moto: &MotoServer, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    vec![
        ("RESTATE_WORKER__SNAPSHOTS__DESTINATION".into(), format!("s3://{bucket}/{prefix}")),
        ("RESTATE_WORKER__SNAPSHOTS__AWS_ENDPOINT_URL".into(), moto.endpoint()),
        ("RESTATE_WORKER__SNAPSHOTS__AWS_ALLOW_HTTP".into(), "true".into()),
        ("RESTATE_WORKER__SNAPSHOTS__AWS_REGION".into(), "us-east-1".into()),
        ("RESTATE_WORKER__SNAPSHOTS__AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("RESTATE_WORKER__SNAPSHOTS__AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
    ]
}
