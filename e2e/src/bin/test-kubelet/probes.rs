//! Readiness probes, run from the host against the pod's address on the docker network
//! (the host reaches the bridge's addresses directly). httpGet (HTTP only), tcpSocket and
//! exec (`docker exec`) are supported; livenessProbe/startupProbe are not run.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// What a probe checks.
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeAction {
    /// `GET path` to `addr`: success on a status from 200 to 399.
    Http { addr: SocketAddr, path: String, host: String, headers: Vec<(String, String)> },
    /// Success when a TCP connection opens.
    Tcp { addr: SocketAddr },
    /// `docker exec <container> command...`: success on exit code 0.
    Exec { command: Vec<String> },
}

/// A probe with Kubernetes' defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSpec {
    pub action: ProbeAction,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// The container's readiness probe aimed at `pod_ip`; `Ok(None)` without one.
pub fn readiness(container: &Container, pod_ip: IpAddr) -> Result<Option<ProbeSpec>, String> {
    let Some(probe) = &container.readiness_probe else { return Ok(None) };
    let action = if let Some(get) = &probe.http_get {
        if get.scheme.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case("HTTP")) {
            return Err(format!("readinessProbe: scheme {} is not supported", get.scheme.as_deref().unwrap_or("")));
        }
        let ip = match get.host.as_deref().filter(|h| !h.is_empty()) {
            Some(host) => host.parse().map_err(|_| format!("readinessProbe: host {host} is not an IP address"))?,
            None => pod_ip,
        };
        let addr = SocketAddr::new(ip, port(container, &get.port)?);
        let mut path = get.path.clone().unwrap_or_default();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        let headers = get.http_headers.iter().flatten().map(|h| (h.name.clone(), h.value.clone())).collect();
        ProbeAction::Http { addr, path, host: addr.to_string(), headers }
    } else if let Some(tcp) = &probe.tcp_socket {
        ProbeAction::Tcp { addr: SocketAddr::new(pod_ip, port(container, &tcp.port)?) }
    } else if let Some(exec) = &probe.exec {
        ProbeAction::Exec { command: exec.command.clone().unwrap_or_default() }
    } else {
        return Err("readinessProbe: only httpGet, tcpSocket and exec are supported".to_owned());
    };
    Ok(Some(spec(probe, action)))
}

fn spec(probe: &Probe, action: ProbeAction) -> ProbeSpec {
    let seconds = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    ProbeSpec {
        action,
        initial_delay: seconds(probe.initial_delay_seconds, 0),
        period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
    }
}

/// A port number, or the name of one of the container's ports.
fn port(container: &Container, port: &IntOrString) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("readinessProbe: the container has no port named {name}"))?,
        },
    };
    u16::try_from(number).map_err(|_| format!("readinessProbe: port {number} out of range"))
}

/// Runs one probe; `Err` says why it failed.
pub async fn check(action: &ProbeAction, container_id: &str, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, attempt(action, container_id)).await {
        Ok(result) => result,
        Err(_) => Err(format!("{} timed out after {timeout:?}", describe(action))),
    }
}

async fn attempt(action: &ProbeAction, container_id: &str) -> Result<(), String> {
    match action {
        ProbeAction::Http { addr, path, host, headers } => {
            let mut stream = TcpStream::connect(addr).await.map_err(|e| format!("{}: {e}", describe(action)))?;
            let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.20\r\n");
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("Accept: */*\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.map_err(|e| format!("{}: {e}", describe(action)))?;
            // The status line is all we need.
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.contains(&b'\n') && head.len() < 4096 {
                let n = stream.read(&mut buf).await.map_err(|e| format!("{}: {e}", describe(action)))?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            match status_code(&head) {
                Some(code) if (200..400).contains(&code) => Ok(()),
                Some(code) => Err(format!("{} answered {code}", describe(action))),
                None => Err(format!("{} sent no HTTP status line", describe(action))),
            }
        }
        ProbeAction::Tcp { addr } => {
            TcpStream::connect(addr).await.map(drop).map_err(|e| format!("{}: {e}", describe(action)))
        }
        ProbeAction::Exec { command } => {
            let status = Command::new("docker")
                .arg("exec")
                .arg(container_id)
                .args(command)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map_err(|e| format!("cannot run docker exec: {e}"))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!("{} exited with {status}", describe(action)))
            }
        }
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn status_code(head: &[u8]) -> Option<u16> {
    let line = String::from_utf8_lossy(head);
    let mut parts = line.lines().next()?.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

pub fn describe(action: &ProbeAction) -> String {
    match action {
        ProbeAction::Http { addr, path, .. } => format!("GET http://{addr}{path}"),
        ProbeAction::Tcp { addr } => format!("TCP connect {addr}"),
        ProbeAction::Exec { command } => format!("exec {command:?}"),
    }
}

/// Consecutive results against the thresholds. Starts not ready.
#[derive(Clone, Debug, Default)]
pub struct ProbeState {
    pub ready: bool,
    successes: u32,
    failures: u32,
}

impl ProbeState {
    /// Records a result; returns true when `ready` flipped.
    pub fn record(&mut self, ok: bool, spec: &ProbeSpec) -> bool {
        let before = self.ready;
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= spec.success_threshold {
                self.ready = true;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= spec.failure_threshold {
                self.ready = false;
            }
        }
        before != self.ready
    }

    /// State of an already ready container (kubelet restart adopting a Ready pod).
    pub fn ready() -> Self {
        ProbeState { ready: true, successes: 1, failures: 0 }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn container(probe: serde_json::Value) -> Container {
        serde_json::from_value(json!({"name": "c", "ports": [{"name": "node", "containerPort": 5122}],
                                       "readinessProbe": probe}))
        .unwrap()
    }

    #[test]
    fn http_probe_targets_the_pod_ip() {
        let ip: IpAddr = "172.30.128.1".parse().unwrap();
        let c = container(json!({"httpGet": {"path": "/health", "port": 5122, "scheme": "HTTP"},
                                 "initialDelaySeconds": 2, "periodSeconds": 5, "timeoutSeconds": 2}));
        let spec = readiness(&c, ip).unwrap().unwrap();
        assert_eq!(
            spec.action,
            ProbeAction::Http {
                addr: "172.30.128.1:5122".parse().unwrap(),
                path: "/health".to_owned(),
                host: "172.30.128.1:5122".to_owned(),
                headers: vec![]
            }
        );
        assert_eq!((spec.initial_delay, spec.period, spec.timeout), (2 * SEC, 5 * SEC, 2 * SEC));
        assert_eq!((spec.success_threshold, spec.failure_threshold), (1, 3));
        let named = container(json!({"httpGet": {"port": "node"}}));
        let spec = readiness(&named, ip).unwrap().unwrap();
        assert!(matches!(spec.action, ProbeAction::Http { addr, ref path, .. } if addr.port() == 5122 && path == "/"));
        assert!(readiness(&container(json!({"httpGet": {"port": "nope"}})), ip).is_err());
        assert!(readiness(&container(json!({"httpGet": {"port": 1, "scheme": "HTTPS"}})), ip).is_err());
        let tcp = readiness(&container(json!({"tcpSocket": {"port": 9070}})), ip).unwrap().unwrap();
        assert_eq!(tcp.action, ProbeAction::Tcp { addr: "172.30.128.1:9070".parse().unwrap() });
        let none: Container = serde_json::from_value(json!({"name": "c"})).unwrap();
        assert_eq!(readiness(&none, ip), Ok(None));
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn thresholds() {
        let c = container(json!({"tcpSocket": {"port": 1}, "successThreshold": 2, "failureThreshold": 2}));
        let spec = readiness(&c, "10.0.0.1".parse().unwrap()).unwrap().unwrap();
        let mut state = ProbeState::default();
        assert!(!state.record(true, &spec));
        assert!(state.record(true, &spec) && state.ready);
        assert!(!state.record(false, &spec) && state.ready);
        assert!(state.record(false, &spec) && !state.ready);
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Service Unavailable\r\nx"), Some(503));
        assert_eq!(status_code(b"garbage"), None);
    }

    #[tokio::test]
    async fn http_check_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for answer in ["HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 500 Oops\r\n\r\n"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await.unwrap();
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let action = ProbeAction::Http { addr, path: "/health".into(), host: addr.to_string(), headers: vec![] };
        assert_eq!(check(&action, "", SEC).await, Ok(()));
        assert!(check(&action, "", SEC).await.unwrap_err().contains("answered 500"));
    }
}
