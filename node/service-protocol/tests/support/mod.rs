//! Test harness: runs the `example-services` binary (restate-sdk services) as a child process.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, Uri};
use restate_service_protocol::{discover, DiscoveryError, EndpointManifest};

/// Bound on the child printing its listen line, and on `/discover` answering afterwards.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// Path of a freshly built `example-services` binary.
///
/// `env!("CARGO_BIN_EXE_...")` only covers binaries of the package under test, so this
/// runs `cargo build -p restate-example-services` once per test process, with the cargo
/// that runs the tests (`$CARGO`), the target directory this test binary lives in and
/// the same profile. That keeps it robust: the binary is never stale, and it is found
/// wherever `CARGO_TARGET_DIR` points (the test binary is `<target>/<profile>/deps/<name>`).
/// Cargo releases its build lock before running tests, so the nested build does not
/// deadlock; it may wait for another build of the same target directory, which is fine.
pub fn example_services_binary() -> &'static Path {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BINARY.get_or_init(build_example_services) {
        Ok(path) => path,
        Err(err) => panic!("{err}"),
    }
}

fn build_example_services() -> Result<PathBuf, String> {
    let test_exe = std::env::current_exe().map_err(|e| format!("cannot locate the test binary: {e}"))?;
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("test binary {} is not in <target>/<profile>/deps/", test_exe.display()))?;
    let target_dir = profile_dir.parent().ok_or("the profile directory has no parent")?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev".to_string(),
        Some(other) => other.to_string(),
        None => return Err(format!("unexpected profile directory {}", profile_dir.display())),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(&cargo)
        .args(["build", "--quiet", "-p", "restate-example-services", "--bin", "example-services", "--profile"])
        .arg(&profile)
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(|e| format!("cannot run {cargo:?} to build example-services: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo build -p restate-example-services` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let binary = profile_dir.join("example-services");
    if !binary.is_file() {
        return Err(format!("cargo built example-services but {} does not exist", binary.display()));
    }
    Ok(binary)
}

/// A child process killed (and reaped) on drop; its stderr goes to a file that is printed
/// when the test panics.
struct ChildProcess {
    child: Child,
    dir: tempfile::TempDir,
}

impl ChildProcess {
    fn stderr_path(dir: &Path) -> PathBuf {
        dir.join("stderr.log")
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        let _ = std::fs::File::open(Self::stderr_path(self.dir.path())).and_then(|mut f| f.read_to_string(&mut text));
        format!("--- example-services stderr ---\n{text}--- end ---")
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A running `example-services` child on a free loopback port; killed on drop.
pub struct ExampleServices {
    process: ChildProcess,
    /// `http://127.0.0.1:<port>`.
    pub uri: Uri,
    /// The manifest it answered once ready.
    pub manifest: EndpointManifest,
    /// Where `Ticket.issue` logs each real execution of its `ctx.run` closure.
    pub run_log: PathBuf,
}

impl ExampleServices {
    /// Starts the binary with `--port 0` (the OS picks a free port, so parallel tests do not
    /// race for ports), reads the port from the line it prints once listening, then polls
    /// `/discover` until it answers. Each wait is bounded by [`STARTUP_DEADLINE`].
    pub async fn start() -> ExampleServices {
        let binary = example_services_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let run_log = dir.path().join("runs.log");
        let stderr = std::fs::File::create(ChildProcess::stderr_path(dir.path())).expect("stderr log");
        let child = Command::new(binary)
            .args(["--port", "0"])
            .env("EXAMPLE_RUN_LOG", &run_log)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut process = ChildProcess { child, dir };

        // Read the listen line on a thread, so the wait has a deadline even if the child hangs.
        let stdout = process.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(result);
        });
        let line = match rx.recv_timeout(STARTUP_DEADLINE) {
            Ok(Ok(line)) => line,
            other => panic!(
                "example-services printed no listen line within {STARTUP_DEADLINE:?} ({other:?})\n{}",
                process.logs()
            ),
        };
        let port = parse_port(&line).unwrap_or_else(|| panic!("cannot find the port in {line:?}"));
        let uri: Uri = format!("http://127.0.0.1:{port}").parse().expect("valid uri");
        let manifest = wait_for_discovery(&mut process, &uri).await;
        ExampleServices { process, uri, manifest, run_log }
    }

    /// Lines of the run log: one per real execution of `Ticket.issue`'s side effect.
    pub fn run_log_lines(&self) -> Vec<String> {
        match std::fs::read_to_string(&self.run_log) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(err) => panic!("cannot read {}: {err}", self.run_log.display()),
        }
    }

    /// The child's stderr so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }
}

/// Polls `GET /discover` until it answers, retrying connection failures until the deadline.
async fn wait_for_discovery(process: &mut ChildProcess, uri: &Uri) -> EndpointManifest {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        match discover(uri, &HeaderMap::new()).await {
            Ok(manifest) => return manifest,
            Err(err @ (DiscoveryError::Connect { .. } | DiscoveryError::Request { .. }))
                if Instant::now() < deadline =>
            {
                if let Ok(Some(status)) = process.child.try_wait() {
                    panic!("example-services exited ({status}) before answering: {err}\n{}", process.logs());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("example-services did not answer /discover: {err}\n{}", process.logs()),
        }
    }
}

/// The port in "example-services listening on 0.0.0.0:PORT (...)".
fn parse_port(line: &str) -> Option<u16> {
    let addr = line.split_whitespace().find(|word| word.contains(':'))?;
    addr.rsplit(':').next()?.parse().ok()
}
