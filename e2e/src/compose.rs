//! The Docker Compose quickstart files (`config/docker-compose*.yml`) run for real: a
//! project started with `docker compose` v2 from `config/`, the seed's commands run as a
//! user types them (`docker compose exec restate-1 restatectl status`, `curl
//! localhost:8080/...`), and the means to hurt it (kill, restart, network disconnect).
//!
//! Needs the images (`make images` or `scripts/images/build.sh`) and the Compose v2 plugin
//! (`scripts/compose/install.sh`); `make e2e-compose` does both. The files publish fixed
//! host ports (8080, 9070, 28080, ...), so only one project runs at a time: drills are
//! serialized by `--test-threads=1` and every project is taken down (`down -v`) before it
//! starts and when it is dropped. When a test fails, every service's log is written into
//! the test's directory (which [`TestDir`] then prints and keeps).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::TestDir;

/// `<repo>/config`, where the compose files live and commands run (as a user who did
/// `cd config`).
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config")
}

/// One Compose project started from `files` (relative to `config/`, joined into
/// `COMPOSE_FILE` so that plain `docker compose <cmd>` sees all of them).
pub struct ComposeProject {
    compose_file: String,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
    /// `name:` of the first file, i.e. the project name Compose uses.
    pub name: String,
}

impl ComposeProject {
    /// Takes down whatever is left of the project (a previous failed run), then
    /// `docker compose up -d`. `env` is passed to every compose command (variables the
    /// files interpolate).
    pub fn up(dir: &TestDir, files: &[&str], env: &[(&str, &str)]) -> ComposeProject {
        let first = std::fs::read_to_string(config_dir().join(files[0])).expect("compose file");
        let name = first
            .lines()
            .find_map(|l| l.strip_prefix("name:"))
            .map(|n| n.trim().to_owned())
            .expect("compose file has a top-level name:");
        let project = ComposeProject {
            compose_file: files.join(":"),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            log_dir: dir.path().to_path_buf(),
            name,
        };
        project.down();
        project.ok(&["up", "-d"]);
        project
    }

    /// `docker compose <args>` in `config/`, stdin not a terminal.
    pub fn compose(&self, args: &[&str]) -> Output {
        let mut command = Command::new("docker");
        command
            .arg("compose")
            .args(args)
            .current_dir(config_dir())
            .env("COMPOSE_FILE", &self.compose_file)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.output().expect("run docker compose (is Docker installed? scripts/compose/install.sh)")
    }

    /// As [`ComposeProject::compose`], panicking with the output unless it succeeds;
    /// returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker compose {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `docker compose exec -T <service> <command...>`: (exit code, stdout, stderr).
    pub fn exec(&self, service: &str, command: &[&str]) -> (i32, String, String) {
        let mut args = vec!["exec", "-T", service];
        args.extend_from_slice(command);
        let out = self.compose(&args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `restatectl status --json` inside `service`, if it answers.
    pub fn status(&self, service: &str) -> Option<serde_json::Value> {
        let (code, stdout, _) = self.exec(service, &["restatectl", "status", "--json"]);
        (code == 0).then(|| serde_json::from_str(&stdout).ok()).flatten()
    }

    /// Waits until `service` reports the cluster provisioned with `count` alive nodes.
    pub fn wait_for_alive_nodes(&self, service: &str, count: usize, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut last = serde_json::Value::Null;
        while Instant::now() < deadline {
            if let Some(status) = self.status(service) {
                if crate::reports_alive_nodes(&status, count) {
                    return status;
                }
                last = status;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("{service} never reported {count} alive nodes within {timeout:?}; last status: {last:#}");
    }

    /// The container of `service` (its id), if it exists.
    pub fn container(&self, service: &str) -> Option<String> {
        let out = self.compose(&["ps", "-a", "-q", service]);
        String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_owned)
    }

    /// The project's default network (`<name>_default`).
    pub fn network(&self) -> String {
        format!("{}_default", self.name)
    }

    /// Cuts `service` off the project's network (`docker network disconnect`).
    pub fn disconnect(&self, service: &str) {
        let container = self.container(service).expect("container of the service");
        docker_ok(&["network", "disconnect", &self.network(), &container]);
    }

    /// Puts `service` back on the project's network under its service name (the alias
    /// the other nodes resolve it by).
    pub fn reconnect(&self, service: &str) {
        let container = self.container(service).expect("container of the service");
        docker_ok(&["network", "connect", "--alias", service, &self.network(), &container]);
    }

    /// Writes every service's log into the test directory as `<service>.log`.
    pub fn save_logs(&self) {
        let services = self.compose(&["ps", "-a", "--services"]);
        for service in String::from_utf8_lossy(&services.stdout).lines() {
            let out = self.compose(&["logs", "--no-color", "--timestamps", service]);
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let _ = std::fs::write(self.log_dir.join(format!("compose-{service}.log")), text);
        }
    }

    /// `docker compose down -v` (containers, network and volumes).
    pub fn down(&self) {
        let out = self.compose(&["down", "-v", "--remove-orphans", "--timeout", "10"]);
        if !out.status.success() {
            eprintln!("docker compose down: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

impl Drop for ComposeProject {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os(crate::KEEP_ENV).is_some() {
            self.save_logs();
        }
        self.down();
    }
}

/// `docker <args>`, panicking with the output unless it succeeds.
pub fn docker_ok(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).stdin(Stdio::null()).output().expect("run docker");
    assert!(out.status.success(), "docker {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
