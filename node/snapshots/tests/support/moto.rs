//! A real S3-compatible server for tests: `moto_server` (PyPI `moto[server]`) on a free local port,
//! killed when the handle is dropped.

use std::io::ErrorKind;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls;

pub const ACCESS_KEY_ID: &str = "test-access-key";
pub const SECRET_ACCESS_KEY: &str = "test-secret-key";

pub struct MotoServer {
    child: Child,
    /// e.g. `http://127.0.0.1:40123`
    pub endpoint: String,
}

impl MotoServer {
    pub fn start() -> MotoServer {
        MotoServer::start_with_env(&[])
    }

    /// With extra environment variables for the server (e.g. moto's auth settings).
    pub fn start_with_env(env: &[(&str, &str)]) -> MotoServer {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that a wrapper script and the server both go on drop.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                if e.kind() == ErrorKind::NotFound {
                    panic!("`moto_server` is not on PATH; install it with `pip install 'moto[server]'` ({e})")
                }
                panic!("could not start `moto_server`: {e}")
            });
        let mut server = MotoServer { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("`moto_server` exited before accepting connections on port {port}: {status}");
            }
            assert!(Instant::now() < deadline, "`moto_server` did not accept connections on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An SDK client for setting up and inspecting buckets directly.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http_client)
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "test"))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub async fn create_bucket(&self, bucket: &str) {
        self.client().create_bucket().bucket(bucket).send().await.unwrap();
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
