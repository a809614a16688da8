//! Harness for end-to-end tests with real `restate-server` processes on loopback.
//!
//! - Binaries are found next to the test executable's target directory (`make test`
//!   builds them first) or in `RESTATE_BIN_DIR`.
//! - Every node gets free loopback ports and its own base dir inside the test's
//!   directory; stdout/stderr go to `<dir>/<node>.log`.
//! - Waits are on conditions with bounded timeouts, never bare sleeps.
//! - When a test panics, every node's log is printed and the directory is kept.

pub mod compose;
pub mod kube_testbed;
pub mod linearizability;
pub mod load;
pub mod s3;
pub mod services;
pub mod tls;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Roles for tests that append raw records to partition logs: no `worker`, so no
/// partition processor reads (and chokes on) them.
pub const LOG_ONLY_ROLES: (&str, &str) = ("RESTATE_ROLES", r#"["admin","metadata-server","log-server"]"#);

/// Directory of the built binaries.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RESTATE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/debug/deps/<test-exe> -> target/debug
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} not found; build the binaries first (`make test` does: cargo build --bins) or set RESTATE_BIN_DIR",
        path.display()
    );
    path
}

/// A loopback port nobody listens on right now, below Linux's ephemeral range
/// (32768-60999): a port the kernel hands out to outgoing connections (nodes make many)
/// could be taken again before the node binds it. Never the same port twice per process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Different test processes start at different places (by pid and time).
    let seed =
        std::process::id() ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let _ = NEXT.compare_exchange(0, seed % 15_000 + 1, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..15_000 {
        let port = 15_000 + (NEXT.fetch_add(1, Ordering::SeqCst) % 15_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port").local_addr().unwrap().port()
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes; panics with `what`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// The metadata servers `node` lists (`restatectl metadata-server list-servers --json`);
/// empty while it cannot tell.
pub fn metadata_servers(node: &ServerProcess) -> Vec<serde_json::Value> {
    let out = node.ctl(&["metadata-server", "list-servers", "--json"]);
    if out.code != 0 {
        return Vec::new();
    }
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["servers"].as_array().cloned())
        .unwrap_or_default()
}

/// Waits (60 s) until every metadata server `node` lists is a member, exactly one leads,
/// and each counts `voters` voters; returns the listing.
pub fn wait_for_metadata_voters(node: &ServerProcess, voters: usize) -> Vec<serde_json::Value> {
    let mut last = Vec::new();
    let settled = |servers: &[serde_json::Value]| {
        let members = servers.iter().filter(|s| s["status"] == "member").count();
        let leaders = servers.iter().filter(|s| s["is_leader"] == true).count();
        let all_voters = servers.iter().all(|s| {
            s["members"].as_array().is_some_and(|m| m.iter().filter(|m| m["voter"] == true).count() == voters)
        });
        members == voters && leaders == 1 && all_voters
    };
    wait_until(&format!("the metadata servers to settle on {voters} voters"), Duration::from_secs(60), || {
        last = metadata_servers(node);
        settled(&last)
    });
    last
}

/// Set (to anything) to keep every test's directory, passed or not.
pub const KEEP_ENV: &str = "RESTATE_E2E_KEEP_DIRS";

/// A directory holding the nodes of one test; printed and kept when the test fails (or
/// kept whenever [`KEEP_ENV`] is set).
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

/// The last panic's message and place, kept by the hook [`TestDir::new`] installs so that a
/// failed test's output ends with it (after the node logs, which can be long: CI shows the
/// tail).
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn keep_panic_messages() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(info.to_string());
            }
            default(info);
        }));
    });
}

impl TestDir {
    pub fn new(test: &str) -> TestDir {
        keep_panic_messages();
        let dir = tempfile::Builder::new().prefix(&format!("restate-e2e-{test}-")).tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        TestDir { dir: Some(dir), path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_ENV).is_some() && !std::thread::panicking() {
            let dir = self.dir.take().expect("dir present").keep();
            eprintln!("==== {KEEP_ENV} set; test directory kept in {} ====", dir.display());
            return;
        }
        if std::thread::panicking() {
            let dir = self.dir.take().expect("dir present").keep();
            eprintln!("==== test failed; node logs kept in {} ====", dir.display());
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "log") {
                        eprintln!("==== {} ====", path.display());
                        eprintln!("{}", std::fs::read_to_string(&path).unwrap_or_default());
                    }
                }
            }
            if let Some(failure) = LAST_PANIC.lock().ok().and_then(|last| last.clone()) {
                eprintln!("==== the failure (as above, before the logs) ====\n{failure}");
            }
        }
    }
}

/// Ports of one node.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub fabric: u16,
    pub admin: u16,
    pub ingress: u16,
}

impl Ports {
    pub fn free() -> Ports {
        Ports { fabric: free_port(), admin: free_port(), ingress: free_port() }
    }
}

/// One `restate-server` process.
pub struct ServerProcess {
    pub name: String,
    pub ports: Ports,
    pub base_dir: PathBuf,
    pub log_path: PathBuf,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// The `restate-server` to run; this build's ([`bin`]) when `None`.
    binary: Option<PathBuf>,
    child: Option<Child>,
}

impl ServerProcess {
    /// A node configured through environment variables only: its name, a cluster name,
    /// its own base dir under `dir`, and free loopback ports. `extra_env` adds or
    /// overrides variables.
    pub fn new(dir: &TestDir, name: &str, cluster: &str, extra_env: &[(&str, &str)]) -> ServerProcess {
        let ports = Ports::free();
        let base_dir = dir.path().join("data");
        let mut env = vec![
            ("RESTATE_NODE_NAME".to_owned(), name.to_owned()),
            ("RESTATE_CLUSTER_NAME".to_owned(), cluster.to_owned()),
            ("RESTATE_BASE_DIR".to_owned(), base_dir.display().to_string()),
            ("RESTATE_BIND_ADDRESS".to_owned(), format!("127.0.0.1:{}", ports.fabric)),
            ("RESTATE_ADMIN__BIND_ADDRESS".to_owned(), format!("127.0.0.1:{}", ports.admin)),
            ("RESTATE_INGRESS__BIND_ADDRESS".to_owned(), format!("127.0.0.1:{}", ports.ingress)),
            ("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE".to_owned(), "64 MiB".to_owned()),
        ];
        for (k, v) in extra_env {
            env.retain(|(existing, _)| existing != k);
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        ServerProcess {
            name: name.to_owned(),
            ports,
            base_dir,
            log_path: dir.path().join(format!("{name}.log")),
            env,
            args: Vec::new(),
            binary: None,
            child: None,
        }
    }

    pub fn with_args(mut self, args: &[&str]) -> ServerProcess {
        self.args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(existing, _)| existing != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Runs `binary` instead of this build's `restate-server` from the next start on
    /// (`None`: this build's again), e.g. a previous release before an upgrade in place.
    pub fn set_binary(&mut self, binary: Option<PathBuf>) {
        self.binary = binary;
    }

    /// The node port's address (`https://` when the node has mutual TLS).
    pub fn address(&self) -> String {
        let scheme = if self.env_value("RESTATE_NETWORKING__TLS_CERT_FILE").is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.ports.fabric)
    }

    /// The value of `key` in the node's environment, if set.
    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `GET path` on the node port: plain HTTP, or HTTPS verified against the node's CA
    /// (without a client certificate) when the node has mutual TLS.
    pub fn fabric_get(&self, path: &str) -> Option<(u16, String)> {
        match self.env_value("RESTATE_NETWORKING__TLS_CA_FILE") {
            None => http_get(self.ports.fabric, path),
            Some(ca) => https_get(&format!("https://127.0.0.1:{}{path}", self.ports.fabric), ca),
        }
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).expect("log file");
        let mut cmd = Command::new(self.binary.clone().unwrap_or_else(|| bin("restate-server")));
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn restate-server"));
    }

    /// Starts and waits until `/health` answers on the node port.
    pub fn start_and_wait_healthy(&mut self) {
        self.start();
        let name = self.name.clone();
        wait_until(&format!("{name} to answer /health"), Duration::from_secs(30), || {
            self.assert_running();
            self.fabric_get("/health").is_some_and(|(status, _)| status == 200)
        });
    }

    /// Panics with the node's log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{} exited unexpectedly with {status}", self.name);
            }
        }
    }

    /// SIGTERM, then waits for the exit (bounded).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        wait_for_exit(&mut child, Duration::from_secs(30))
    }

    /// SIGKILL (kill -9).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for a process that is expected to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_for_exit(&mut child, timeout)
    }

    /// OS process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs `restatectl --address <this node> <args>`.
    /// `restatectl` against this node, with the node's cluster secret file when it has one
    /// (as `docker compose exec <node> restatectl` inherits the node's variables).
    pub fn ctl(&self, args: &[&str]) -> CtlOutput {
        let mut with_credentials = Vec::new();
        for (key, flag) in [
            ("RESTATE_NETWORKING__CLUSTER_SECRET_FILE", "--cluster-secret-file"),
            ("RESTATE_NETWORKING__TLS_CA_FILE", "--tls-ca-file"),
            ("RESTATE_NETWORKING__TLS_CERT_FILE", "--tls-cert-file"),
            ("RESTATE_NETWORKING__TLS_KEY_FILE", "--tls-key-file"),
        ] {
            if let Some(value) = self.env_value(key) {
                with_credentials.extend([flag, value]);
            }
        }
        with_credentials.extend_from_slice(args);
        restatectl(&self.address(), &with_credentials)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The result of one restatectl run.
#[derive(Debug)]
pub struct CtlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CtlOutput {
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "restatectl failed: stdout={} stderr={}", self.stdout, self.stderr);
        &self.stdout
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

pub fn restatectl(address: &str, args: &[&str]) -> CtlOutput {
    let output: Output = Command::new(bin("restatectl"))
        .arg("--address")
        .arg(address)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run restatectl");
    CtlOutput {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The value of one sample on a node's `/metrics` (node port), e.g.
/// `restate_metadata_view_version{object="schema"}` (labels in the order Prometheus prints
/// them: by name); None when the node does not answer or has no such sample.
pub fn metric_value(node: &ServerProcess, sample: &str) -> Option<f64> {
    let (_, text) = node.fabric_get("/metrics")?;
    text.lines().find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A plain HTTP/1.1 GET on loopback: (status, body), or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, "")
}

pub fn http_request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    http_call(port, method, path, body, &[], Duration::from_secs(5))
}

/// `curl <url> --json <body>` as the seed types it (and as a pod's address is reached from
/// the host): (HTTP status, body), None when nothing answered within `timeout`.
pub fn curl_json(url: &str, body: &str, headers: &[(&str, &str)], timeout: Duration) -> Option<(u16, String)> {
    let mut command = Command::new("curl");
    command.args(["-sS", "--max-time", &format!("{}", timeout.as_secs_f64()), "-o", "-", "-w", "\n%{http_code}"]);
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    let out = command.arg(url).arg("--json").arg(body).stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    let code: u16 = code.trim().parse().ok()?;
    (code != 0).then_some((code, body.to_owned()))
}

/// `curl --cacert ca url`: (status, body), None when no TLS connection was made.
pub fn https_get(url: &str, ca: &str) -> Option<(u16, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert", ca, "-o", "-", "-w", "\n%{http_code}", url])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n')?;
    let code: u16 = code.trim().parse().ok()?;
    (code != 0).then_some((code, body.to_owned()))
}

/// An HTTP/1.1 request on loopback with extra headers, waiting up to `timeout` for the
/// answer: (status, body), or None on any transport failure.
pub fn http_call(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((status, body))
}

/// Every partition processor `restatectl partitions list --json` reports through `node`
/// (empty when the command fails, e.g. while the node starts).
pub fn partition_processors(node: &ServerProcess) -> Vec<serde_json::Value> {
    let out = node.ctl(&["partitions", "list", "--json"]);
    if out.code != 0 {
        return Vec::new();
    }
    out.json()["partitions"].as_array().cloned().unwrap_or_default()
}

/// Whether a `restatectl status --json` answer reports the cluster provisioned with exactly
/// `count` alive nodes.
pub fn reports_alive_nodes(status: &serde_json::Value, count: usize) -> bool {
    let alive = status["nodes"].as_array().map_or(0, |n| n.iter().filter(|n| n["alive"] == true).count());
    status["provisioned"] == true && alive == count
}

/// Waits until the node at `node` reports the cluster provisioned with `count` alive nodes.
pub fn wait_for_alive_nodes(node: &ServerProcess, count: usize) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = node.ctl(&["status", "--json"]);
        if out.code == 0 {
            last = serde_json::from_str(&out.stdout).unwrap_or(serde_json::Value::Null);
            if reports_alive_nodes(&last, count) {
                return last;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} never reported {count} alive nodes; last status: {last:#}", node.name);
}

/// Nodes of one cluster configured only through the environment, as the seed's compose
/// file does: every node is a replicated metadata server and lists all nodes as
/// metadata-client addresses; the first one auto-provisions, the others wait for it.
/// `env` applies to every node. Nothing is started.
pub fn replicated_cluster(dir: &TestDir, cluster: &str, names: &[&str], env: &[(&str, &str)]) -> Vec<ServerProcess> {
    let mut base = vec![("RESTATE_METADATA_SERVER__TYPE", "replicated")];
    base.extend_from_slice(env);
    let mut nodes: Vec<ServerProcess> =
        names.iter().map(|name| ServerProcess::new(dir, name, cluster, &base)).collect();
    let list = format!("[{}]", nodes.iter().map(|n| format!("\"{}\"", n.address())).collect::<Vec<_>>().join(","));
    for (i, node) in nodes.iter_mut().enumerate() {
        node.set_env("RESTATE_METADATA_CLIENT__ADDRESSES", &list);
        let advertised = node.address();
        node.set_env("RESTATE_ADVERTISED_ADDRESS", &advertised);
        node.set_env("RESTATE_AUTO_PROVISION", if i == 0 { "true" } else { "false" });
    }
    nodes
}

/// A node id as `status --json` and `logs list --json` spell it (`N1`), from either form
/// (a number or the string).
pub fn node_id(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) => format!("N{n}"),
        other => other.as_str().unwrap_or_default().to_owned(),
    }
}

/// The first log's tail segment as `logs list --json` reports it through `node`:
/// (loglet id, nodeset as node ids).
pub fn tail_of_first_log(node: &ServerProcess) -> Option<(u64, Vec<String>)> {
    let out = node.ctl(&["logs", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    let log = v["logs"].as_array()?.first()?.clone();
    let nodeset: Vec<String> = log["nodeset"].as_array()?.iter().map(node_id).collect();
    Some((log["loglet_id"].as_u64()?, nodeset))
}

/// Four log-servers, replication 2, one log: a loglet group of 3 plus a spare, repair
/// after 2 s. Started, and the log placed.
pub struct LogServersWithSpare {
    pub nodes: Vec<ServerProcess>,
    /// Node name -> node id (`N1`).
    pub id_of: std::collections::BTreeMap<String, String>,
    pub loglet: u64,
    /// The loglet's members, by node id.
    pub nodeset: Vec<String>,
    /// The node id outside the nodeset.
    pub spare: String,
}

impl LogServersWithSpare {
    pub fn start(dir: &TestDir, cluster: &str) -> LogServersWithSpare {
        let mut nodes = replicated_cluster(
            dir,
            cluster,
            &["n1", "n2", "n3", "n4"],
            &[
                ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
                LOG_ONLY_ROLES,
                ("RESTATE_DEFAULT_REPLICATION", "2"),
                ("RESTATE_DEFAULT_NUM_PARTITIONS", "1"),
                ("RESTATE_ADMIN__LOG_SERVER_REPAIR_GRACE_PERIOD", "2s"),
            ],
        );
        for node in nodes.iter_mut() {
            node.start_and_wait_healthy();
        }
        let status = wait_for_alive_nodes(&nodes[0], 4);
        let id_of: std::collections::BTreeMap<String, String> = status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["name"].as_str().unwrap().to_owned(), node_id(&n["node_id"])))
            .collect();
        let mut placed = None;
        wait_until("the log to be placed on 3 log-servers", Duration::from_secs(60), || {
            placed = tail_of_first_log(&nodes[0]).filter(|(_, nodeset)| nodeset.len() == 3);
            placed.is_some()
        });
        let (loglet, nodeset) = placed.unwrap();
        let spare = id_of.values().find(|id| !nodeset.contains(id)).unwrap().clone();
        LogServersWithSpare { nodes, id_of, loglet, nodeset, spare }
    }
}

/// Whether loglet `loglet`'s group, as its leader reports it (asked through the first of
/// `addresses` that answers), has `voters` voters and no learner.
pub fn loglet_has_voters(runtime: &tokio::runtime::Runtime, addresses: &[String], loglet: u64, voters: usize) -> bool {
    use restate_proto::log_server::{log_server_client::LogServerClient, GroupStatusRequest};
    runtime.block_on(async {
        for address in addresses {
            let Ok(mut c) = LogServerClient::connect(address.clone()).await else { continue };
            if let Ok(s) = c.group_status(GroupStatusRequest { loglet_id: loglet }).await {
                let s = s.into_inner();
                return s.voters.len() == voters && s.learners.is_empty();
            }
        }
        false
    })
}
