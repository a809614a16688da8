//! Service deployments for e2e tests: the `example-services` binary (real Rust
//! restate-sdk services) and the Python example services (hypercorn) on free ports, and
//! the `restate` CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{bin, CtlOutput, TestDir};

/// The example services' run log, in the test directory.
const RUN_LOG: &str = "example-services-runs.txt";

/// Bound on `example-services` printing its listen line.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// The services `example-services` serves, by name.
pub const EXAMPLE_SERVICES: [&str; 7] = ["Approval", "Approver", "Counter", "Greeter", "Signals", "Signup", "Ticket"];

/// A running `example-services` (see [`EXAMPLE_SERVICES`]) on a free loopback port, killed
/// on drop. Its stderr goes to `<test dir>/example-services.log`, printed when a test fails.
pub struct ExampleServices {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub uri: String,
}

impl ExampleServices {
    /// Starts the binary with `--port 0` and reads the port from the line it prints once
    /// it listens (so it accepts connections when this returns).
    pub fn start(dir: &TestDir) -> ExampleServices {
        ExampleServices::start_on(dir, 0)
    }

    /// As [`ExampleServices::start`] on `port` (0: a free one), e.g. to bring a stopped
    /// deployment back at its registered address.
    pub fn start_on(dir: &TestDir, port: u16) -> ExampleServices {
        let log_path = dir.path().join("example-services.log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log file");
        let mut child = Command::new(bin("example-services"))
            .args(["--port", &port.to_string()])
            .env("RUST_LOG", "info")
            .env("EXAMPLE_RUN_LOG", dir.path().join(RUN_LOG))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn example-services");
        // Read the listen line on a thread so the wait has a deadline even if the child hangs.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(STARTUP_DEADLINE) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                panic!("example-services printed no listen line within {STARTUP_DEADLINE:?} ({other:?})");
            }
        };
        // "example-services listening on 0.0.0.0:PORT (...)"
        let port = line
            .split_whitespace()
            .find(|word| word.contains(':'))
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in the listen line {line:?}"));
        ExampleServices { child, port, uri: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for ExampleServices {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python example services (examples/python-services/app.py, PyPI `restate-sdk`)
/// served by hypercorn on a free loopback port, killed on drop. The virtualenv comes from
/// `scripts/python-services/install.sh` (run by `make e2e-local` and `.ci/run`); its
/// output goes to `<test dir>/python-services.log`.
pub struct PythonServices {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub uri: String,
}

/// The ASGI server that serves the Python example services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsgiServer {
    /// Cleartext HTTP/2 with prior knowledge and HTTP/1.1 on one port.
    Hypercorn,
    /// HTTP/1.1 only.
    Uvicorn,
}

impl PythonServices {
    pub fn start(dir: &TestDir) -> PythonServices {
        PythonServices::start_with(dir, AsgiServer::Hypercorn)
    }

    pub fn start_with(dir: &TestDir, server: AsgiServer) -> PythonServices {
        PythonServices::start_with_env(dir, server, &[])
    }

    /// With `env` set for the server (e.g. `IDENTITY_KEYS`, see app.py).
    pub fn start_with_env(dir: &TestDir, server: AsgiServer, env: &[(&str, &str)]) -> PythonServices {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf();
        let venv = std::env::var_os("RESTATE_PYTHON_VENV").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/restate-cluster/python-services-venv")
        });
        let port = crate::free_port();
        let (program, args) = match server {
            AsgiServer::Hypercorn => {
                ("hypercorn", vec!["app:app".to_owned(), "--bind".into(), format!("127.0.0.1:{port}")])
            }
            AsgiServer::Uvicorn => (
                "uvicorn",
                vec!["app:app".to_owned(), "--host".into(), "127.0.0.1".into(), "--port".into(), port.to_string()],
            ),
        };
        let program = venv.join("bin").join(program);
        assert!(
            program.exists(),
            "{} is missing: run scripts/python-services/install.sh (it installs PyPI restate-sdk, hypercorn and uvicorn)",
            program.display()
        );
        let log = std::fs::File::create(dir.path().join("python-services.log")).expect("log file");
        use std::os::unix::process::CommandExt as _;
        let child = Command::new(&program)
            .args(&args)
            // Its own process group: the server's worker processes go with it on drop.
            .process_group(0)
            .envs(env.iter().copied())
            .current_dir(root.join("examples/python-services"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let services = PythonServices { child, uri: format!("http://127.0.0.1:{port}") };
        crate::wait_until("the Python services to accept connections", STARTUP_DEADLINE, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        services
    }
}

impl Drop for PythonServices {
    /// Kills the server and its worker processes (the whole process group).
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of the example services' run log (`EXAMPLE_RUN_LOG`: one per real execution of
/// a logged `ctx.run`, never for a replay) that start with `prefix`.
pub fn run_log_lines(dir: &TestDir, prefix: &str) -> Vec<String> {
    std::fs::read_to_string(dir.path().join(RUN_LOG))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Runs `restate --admin-url <admin_url> <args>` with stdin not a terminal.
pub fn restate(admin_url: &str, args: &[&str]) -> CtlOutput {
    let output: Output = Command::new(bin("restate"))
        .arg("--admin-url")
        .arg(admin_url)
        .args(args)
        .env_remove("RESTATE_ADMIN_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run restate");
    CtlOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `http://127.0.0.1:<admin port>` of a node.
pub fn admin_url(node: &crate::ServerProcess) -> String {
    format!("http://127.0.0.1:{}", node.ports.admin)
}

/// The env of a worker cluster with replicated logs at replication 2 and 4 partitions.
pub const REPLICATED_WORKERS: [(&str, &str); 3] = [
    ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
    ("RESTATE_DEFAULT_REPLICATION", "2"),
    ("RESTATE_DEFAULT_NUM_PARTITIONS", "4"),
];

/// Three nodes (`n1`..`n3`, all roles, [`REPLICATED_WORKERS`]) started and provisioned,
/// and the example services registered once through `n1`.
pub fn three_workers_with_services(dir: &TestDir, cluster: &str) -> (Vec<crate::ServerProcess>, ExampleServices) {
    three_workers_with_services_env(dir, cluster, &REPLICATED_WORKERS)
}

/// [`three_workers_with_services`] with `env` instead of [`REPLICATED_WORKERS`].
pub fn three_workers_with_services_env(
    dir: &TestDir,
    cluster: &str,
    env: &[(&str, &str)],
) -> (Vec<crate::ServerProcess>, ExampleServices) {
    let mut nodes = crate::replicated_cluster(dir, cluster, &["n1", "n2", "n3"], env);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    crate::wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(dir);
    restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();
    (nodes, services)
}

/// The index in `nodes` of the node that leads the partition of invocation `id` (asked
/// of `nodes[0]`: the invocation listing for the partition, the processors for the leader).
pub fn leader_of_invocation(nodes: &[crate::ServerProcess], id: &str) -> usize {
    let listed = restate(&admin_url(&nodes[0]), &["invocations", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(listed.ok()).expect("invocations list --json is JSON");
    let entry = listed["invocations"].as_array().and_then(|all| all.iter().find(|i| i["id"] == id)).cloned();
    let partition = entry.unwrap_or_else(|| panic!("{id} not listed: {listed:#}"))["partition_id"].as_u64().unwrap();
    let processors = crate::partition_processors(&nodes[0]);
    let leader = processors
        .iter()
        .find(|p| p["partition_id"] == partition && p["mode"] == "leader")
        .unwrap_or_else(|| panic!("no leader of partition {partition}: {processors:#?}"))["name"]
        .as_str()
        .unwrap()
        .to_owned();
    nodes.iter().position(|n| n.name == leader).unwrap_or_else(|| panic!("leader {leader} is not among the nodes"))
}

/// Whether `Greeter/greet` with `name` through the ingress at `port` answered 200.
pub fn greets(port: u16, name: &str) -> bool {
    let body = format!("\"{name}\"");
    matches!(crate::http_call(port, "POST", "/Greeter/greet", &body, &[], Duration::from_secs(30)), Some((200, _)))
}

/// `{path}/send` through the ingress at `port`, which must answer 202; the invocation id.
pub fn send_invocation(port: u16, path: &str, body: &str, headers: &[(&str, &str)]) -> String {
    let (status, answer) =
        crate::http_call(port, "POST", &format!("{path}/send"), body, headers, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("ingress {port} did not answer {path}/send"));
    assert_eq!(status, 202, "{path}/send: {answer}");
    let answer: serde_json::Value =
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{path}/send answered no JSON ({e}): {answer}"));
    answer["invocationId"].as_str().unwrap_or_else(|| panic!("{path}/send: no invocationId in {answer}")).to_owned()
}

/// `GET /restate/invocation/{id}/attach` through the ingress at `port` (waits up to 90 s).
pub fn attach(port: u16, id: &str) -> (u16, String) {
    crate::http_call(port, "GET", &format!("/restate/invocation/{id}/attach"), "", &[], Duration::from_secs(90))
        .unwrap_or_else(|| panic!("ingress {port} did not answer attach {id}"))
}
