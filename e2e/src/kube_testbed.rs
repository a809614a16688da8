//! Harness for the Kubernetes end-to-end test: the testbed control plane that
//! `scripts/testbed/kube.sh start` runs (found through `RESTATE_TESTBED_DIR`), the test
//! kubelet (`test-kubelet`, pods as Docker containers), kubectl, and Helm through the
//! PyPI `helm-python-sdk` (`e2e/kube/helm.py`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{bin, TestDir};

/// The running testbed: what `DIR/env` exports.
pub struct Testbed {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    pub network: String,
    pub api_host: String,
    pub api_port: String,
}

impl Testbed {
    /// The testbed in `RESTATE_TESTBED_DIR` (default /tmp/restate-testbed); panics with
    /// what to run when it is not there.
    pub fn from_env() -> Testbed {
        let dir = PathBuf::from(std::env::var("RESTATE_TESTBED_DIR").unwrap_or_else(|_| "/tmp/restate-testbed".into()));
        let env = std::fs::read_to_string(dir.join("env")).unwrap_or_else(|e| {
            panic!("{}/env: {e}: start the testbed first (scripts/testbed/kube.sh start; make e2e does)", dir.display())
        });
        let var = |name: &str| -> String {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .map(|v| v.trim_matches(['\'', '"']).to_owned())
                .unwrap_or_else(|| {
                    panic!("{}/env has no {name}: restart the testbed with this checkout's kube.sh", dir.display())
                })
        };
        let path_line = env.lines().find_map(|l| l.strip_prefix("export PATH=")).unwrap_or_default();
        let bin_dir = path_line.split(':').next().unwrap_or_default().trim_matches(['\'', '"']);
        let kubectl = Path::new(bin_dir).join("kubectl");
        Testbed {
            kubeconfig: PathBuf::from(var("KUBECONFIG")),
            kubectl: if kubectl.exists() { kubectl } else { PathBuf::from("kubectl") },
            network: var("RESTATE_TESTBED_NETWORK"),
            api_host: var("RESTATE_TESTBED_API_HOST"),
            api_port: var("RESTATE_TESTBED_API_PORT"),
            dir,
        }
    }

    /// Runs kubectl with the testbed's kubeconfig; `input` goes to stdin.
    pub fn kubectl(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = Command::new(&self.kubectl)
            .env("KUBECONFIG", &self.kubeconfig)
            .arg("--request-timeout=20s")
            .args(args)
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(input) = input {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().expect("kubectl output")
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args, None);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get ... -o json` parsed, or None when it fails (not found, API hiccup).
    pub fn get_json(&self, args: &[&str]) -> Option<serde_json::Value> {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&all, None);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
    }

    /// `python3 e2e/kube/helm.py ARGS` with the testbed's kubeconfig.
    pub fn helm(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("kube/helm.py");
        Command::new("python3")
            .arg(script)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run python3 e2e/kube/helm.py")
    }
}

/// The test kubelet, started for one test; on drop it stops, removes its containers, and
/// (when the test failed) leaves every pod's log in the test directory.
pub struct Kubelet {
    child: Child,
    node: String,
    state_dir: PathBuf,
    log_dir: PathBuf,
}

impl Kubelet {
    pub fn start(testbed: &Testbed, dir: &TestDir) -> Kubelet {
        Kubelet::start_node(testbed, dir, "testbed-node", &[])
    }

    /// A kubelet for the Node `node`, created with `labels` (e.g. a zone) when it is new.
    pub fn start_node(testbed: &Testbed, dir: &TestDir, node: &str, labels: &[(&str, &str)]) -> Kubelet {
        let suffix = if node == "testbed-node" { String::new() } else { format!("-{node}") };
        let state_dir = dir.path().join(format!("kubelet{suffix}"));
        std::fs::create_dir_all(&state_dir).unwrap();
        let log = std::fs::File::create(dir.path().join(format!("test-kubelet{suffix}.log"))).unwrap();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let child = Command::new(bin("test-kubelet"))
            .arg("--node-name")
            .arg(node)
            .arg("--node-labels")
            .arg(labels.join(","))
            .env("KUBECONFIG", &testbed.kubeconfig)
            .arg("--network")
            .arg(&testbed.network)
            .arg("--api-host")
            .arg(&testbed.api_host)
            .arg("--api-port")
            .arg(&testbed.api_port)
            .arg("--state-dir")
            .arg(&state_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start test-kubelet");
        Kubelet { child, node: node.to_owned(), state_dir: state_dir.clone(), log_dir: dir.path().to_path_buf() }
    }

    /// The node goes dark: the kubelet stops (no heartbeat, no pod status) and its
    /// containers are killed, as when a zone is lost. Dropping the kubelet later still
    /// removes them.
    pub fn fail(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = Command::new("docker")
            .args(["ps", "-q", "--filter", &format!("label=restate-testbed.node={}", self.node)])
            .output()
            .expect("docker ps");
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new("docker").args(["kill", id]).output();
        }
    }

    /// Every log line of the pod's containers so far (earlier runs kept by the kubelet,
    /// then the running container's).
    pub fn pod_logs(&self, namespace: &str, pod: &str) -> String {
        let mut all = String::new();
        if let Ok(entries) = std::fs::read_dir(self.state_dir.join("logs")) {
            let mut files: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{namespace}_{pod}_")))
                })
                .collect();
            files.sort();
            for file in files {
                all.push_str(&std::fs::read_to_string(file).unwrap_or_default());
            }
        }
        if let Some(id) = container_of(namespace, pod) {
            let out = Command::new("docker").args(["logs", &id]).output().expect("docker logs");
            all.push_str(&String::from_utf8_lossy(&out.stdout));
            all.push_str(&String::from_utf8_lossy(&out.stderr));
        }
        all
    }
}

/// The running container of `namespace/pod`, by the name the kubelet gives it.
pub fn container_of(namespace: &str, pod: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["ps", "-q", "--filter", &format!("name=^k8s_{namespace}_{pod}_")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_owned)
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Every container's output next to the test's other logs (TestDir prints them).
            let out = Command::new("docker")
                .args(["ps", "-a", "--format", "{{.Names}}", "--filter", "name=^k8s_"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for name in out.lines() {
                if let Ok(logs) = Command::new("docker").args(["logs", name]).output() {
                    let mut text = String::from_utf8_lossy(&logs.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&logs.stderr));
                    let _ = std::fs::write(self.log_dir.join(format!("{name}.log")), text);
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(bin("test-kubelet"))
            .arg("--cleanup")
            .arg("--node-name")
            .arg(&self.node)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `condition` every 250 ms until it yields a value or `timeout` passes; panics with
/// `what` and the last observation `describe` gives.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen:\n{}", describe());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
