//! Fault drills on the Docker Compose quickstart files, run for real: the seed's first page
//! typed as a user types it (from `config/`, `docker compose ...`, `restate dp register`,
//! the three curls, kill and restart, a snapshot), the five-node file losing two nodes, a
//! node cut off the network and healed, and a rolling restart under steady load with no
//! acknowledged request lost. Each drill prints its fail-over gap and request counts.
//!
//! MinIO cannot be pulled here: every drill adds config/docker-compose.no-minio.yml and
//! points the nodes at moto_server on the host (RESTATE_SNAPSHOTS_ENDPOINT), as that file
//! documents. Needs the images and Compose v2: `make e2e-compose` builds and installs
//! them, runs one pass of each drill; `make drills` repeats them. Ignored by plain
//! `cargo test`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use restate_e2e::compose::ComposeProject;
use restate_e2e::curl_json;
use restate_e2e::load::{Load, LoadReport};
use restate_e2e::s3::MotoServer;
use restate_e2e::services::ExampleServices;
use restate_e2e::{bin, wait_until, TestDir};

const THREE: [&str; 2] = ["docker-compose.yml", "docker-compose.no-minio.yml"];
const FIVE: [&str; 2] = ["docker-compose-5.yml", "docker-compose.no-minio.yml"];
/// Host ports of the nodes' ingresses, as the compose files publish them.
const INGRESS: [u16; 5] = [8080, 28080, 38080, 48080, 58080];
/// The seed registers the services at this host port.
const SERVICES_PORT: u16 = 9080;
/// Bound on a cluster of debug binaries in containers on 2 cores coming up.
const STARTUP: Duration = Duration::from_secs(180);
/// Bound on a drill's fail-over gap: a silent node costs the controller's grace periods, a
/// stopped container's name can take seconds to stop resolving here; minutes mean clients
/// are stuck on a dead member (as they once were, at 5 s per call).
const MAX_GAP: Duration = Duration::from_secs(45);

/// What every drill starts from: moto on the host as the snapshot store, the project up,
/// the example services on the host's port 9080, registered as the seed does it.
struct Drill {
    // Field order is drop order: the project goes down before its S3 server and services.
    project: ComposeProject,
    moto: MotoServer,
    _services: ExampleServices,
    nodes: usize,
    _dir: TestDir,
}

impl Drill {
    fn start(test: &str, files: &[&str], nodes: usize) -> Drill {
        let dir = TestDir::new(test);
        let moto = MotoServer::start_for_containers(&dir);
        moto.create_bucket("restate");
        let endpoint = format!("http://host.docker.internal:{}", moto.port);
        let started = Instant::now();
        let project = ComposeProject::up(&dir, files, &[("RESTATE_SNAPSHOTS_ENDPOINT", &endpoint)]);
        let status = project.wait_for_alive_nodes("restate-1", nodes, STARTUP);
        println!(
            "{test}: {nodes} nodes up and provisioned in {:.1} s (cluster {})",
            started.elapsed().as_secs_f64(),
            status["cluster_name"]
        );
        let services = ExampleServices::start_on(&dir, SERVICES_PORT);
        // `restate dp register http://host.docker.internal:9080`, verbatim (default admin URL).
        let register = Command::new(bin("restate"))
            .args(["dp", "register", "http://host.docker.internal:9080"])
            .env_remove("RESTATE_ADMIN_URL")
            .stdin(Stdio::null())
            .output()
            .expect("run restate");
        assert!(
            register.status.success(),
            "restate dp register failed:\n{}{}",
            String::from_utf8_lossy(&register.stdout),
            String::from_utf8_lossy(&register.stderr)
        );
        Drill { project, moto, _services: services, nodes, _dir: dir }
    }

    /// Waits until `Greeter/greet` answers through the ingress on `port`.
    fn wait_for_greeter(&self, port: u16, name: &str) -> String {
        let url = format!("http://localhost:{port}/Greeter/greet");
        let body = format!("\"{name}\"");
        let mut last = None;
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            last = curl_json(&url, &body, &[], Duration::from_secs(30));
            if let Some((200, answer)) = &last {
                return answer.clone();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("curl {url} --json '{body}' never answered 200 within 120 s; last: {last:?}");
    }

    fn ingress_ports(&self) -> Vec<u16> {
        INGRESS[..self.nodes].to_vec()
    }
}

/// Does `hurt` and waits until every client of `load` has a request acknowledged after
/// it: the fail-over gap (largest over the clients).
fn gap_after(load: &Load, what: &str, hurt: impl FnOnce()) -> Duration {
    let at = Instant::now();
    hurt();
    load.mark(at);
    let mut gap = None;
    wait_until(&format!("every client acknowledged after {what}"), Duration::from_secs(120), || {
        gap = load.gap_since_mark();
        gap.is_some()
    });
    let gap = gap.unwrap();
    assert!(gap < MAX_GAP, "fail-over gap after {what}: {gap:?}, more than {MAX_GAP:?}");
    gap
}

/// Stops `load`, checks every counter through `check_port` and that no request was lost,
/// and prints `summary` with the request counts.
fn finish(load: Load, check_port: u16, summary: &str) -> LoadReport {
    let report = load.stop_and_check(check_port);
    assert_eq!(report.lost, 0, "{summary}: {report:?}");
    println!(
        "{summary}; requests acknowledged {}, failed attempts retried {}, lost {}",
        report.acknowledged, report.failed_attempts, report.lost
    );
    report
}

/// The seed's quickstart: status, register, the three curls, kill restate-1 under load
/// (fail-over gap), restart it, snapshot into the bucket.
#[test]
#[ignore = "needs Docker, Compose v2 and the images: run `make e2e-compose`"]
fn quickstart_three_nodes() {
    let drill = Drill::start("compose-quickstart", &THREE, 3);
    let project = &drill.project;

    // docker compose exec restate-1 restatectl status
    let (code, status, stderr) = project.exec("restate-1", &["restatectl", "status"]);
    assert_eq!(code, 0, "restatectl status: {stderr}");
    for node in ["restate-1", "restate-2", "restate-3"] {
        assert!(status.contains(node), "status names {node}:\n{status}");
    }
    println!("docker compose exec restate-1 restatectl status:\n{status}");
    // The node port takes RPCs with the compose file's cluster secret only.
    let (code, _, stderr) = project.exec(
        "restate-1",
        &[
            "env",
            "-u",
            "RESTATE_NETWORKING__CLUSTER_SECRET_FILE",
            "restatectl",
            "status",
            "--address",
            "http://restate-2:5122",
        ],
    );
    assert_ne!(code, 0, "restatectl without the cluster secret was answered");
    assert!(stderr.contains("requires the cluster secret"), "{stderr}");

    // The three curls, verbatim.
    for (port, name) in [(8080, "Sarah"), (28080, "Bob"), (38080, "Eve")] {
        let answer = drill.wait_for_greeter(port, name);
        assert!(answer.contains(name), "Greeter through {port} answered {answer}");
        println!("curl localhost:{port}/Greeter/greet --json '\"{name}\"' -> {answer}");
    }

    // docker compose kill restate-1, under a steady load through the other two nodes.
    let load = Load::start("quickstart", 8, &drill.ingress_ports());
    load.wait_for_progress(3, Duration::from_secs(120));
    load.use_ports(&INGRESS[1..3]);
    load.wait_for_progress(2, Duration::from_secs(60));
    let gap = gap_after(&load, "killing restate-1", || {
        project.ok(&["kill", "restate-1"]);
    });
    drill.wait_for_greeter(28080, "Bob");
    drill.wait_for_greeter(38080, "Eve");

    // docker compose up -d restate-1: it rejoins and serves again.
    project.ok(&["up", "-d", "restate-1"]);
    project.wait_for_alive_nodes("restate-2", 3, STARTUP);
    let answer = drill.wait_for_greeter(8080, "Sarah");
    assert!(answer.contains("Sarah"), "{answer}");
    load.use_ports(&drill.ingress_ports());
    load.wait_for_progress(3, Duration::from_secs(120));
    finish(
        load,
        8080,
        &format!("quickstart drill: fail-over gap after `docker compose kill restate-1` {} ms", gap.as_millis()),
    );

    // docker compose exec restate-1 restatectl snapshot create
    let (code, out, stderr) = project.exec("restate-1", &["restatectl", "snapshot", "create"]);
    assert_eq!(code, 0, "restatectl snapshot create:\n{out}\n{stderr}");
    assert!(!out.contains("error"), "every partition snapshotted:\n{out}");
    let objects = drill.moto.keys("restate", "snapshots/");
    assert!(objects.iter().any(|k| k.ends_with("latest.json")), "snapshots in the bucket: {objects:?}");
    println!("restatectl snapshot create:\n{out}{} objects under s3://restate/snapshots/", objects.len());
}

/// Five nodes at replication 3: two killed at once, the other three keep serving and keep
/// every counter; the two come back.
#[test]
#[ignore = "needs Docker, Compose v2 and the images: run `make e2e-compose`"]
fn five_nodes_survive_two_down() {
    let drill = Drill::start("compose-five", &FIVE, 5);
    let project = &drill.project;
    // Replication 3 as the file asks (it needs all five log-servers).
    wait_until("log replication 3", Duration::from_secs(120), || {
        project.status("restate-1").is_some_and(|s| s["configuration"]["log_replication"] == 3)
    });
    for port in drill.ingress_ports() {
        drill.wait_for_greeter(port, "five");
    }

    let load = Load::start("five", 8, &drill.ingress_ports());
    load.wait_for_progress(3, Duration::from_secs(120));
    load.use_ports(&INGRESS[..3]);
    load.wait_for_progress(2, Duration::from_secs(60));
    let gap = gap_after(&load, "killing two nodes", || {
        project.ok(&["kill", "restate-4", "restate-5"]);
    });
    load.wait_for_progress(5, Duration::from_secs(120));
    let (code, _, stderr) = project.exec("restate-1", &["restatectl", "status"]);
    assert_eq!(code, 0, "status with two nodes down: {stderr}");

    project.ok(&["up", "-d", "restate-4", "restate-5"]);
    project.wait_for_alive_nodes("restate-1", 5, STARTUP);
    drill.wait_for_greeter(48080, "four");
    drill.wait_for_greeter(58080, "five");
    finish(
        load,
        58080,
        &format!("five-node drill: fail-over gap after killing restate-4 and restate-5 {} ms", gap.as_millis()),
    );
}

/// One node cut off the network (`docker network disconnect`): the other two keep serving;
/// after the heal it is alive again, serves, and its counters agree.
#[test]
#[ignore = "needs Docker, Compose v2 and the images: run `make e2e-compose`"]
fn network_partition_of_one_node_heals() {
    let drill = Drill::start("compose-partition", &THREE, 3);
    let project = &drill.project;
    for port in drill.ingress_ports() {
        drill.wait_for_greeter(port, "before");
    }

    let load = Load::start("partition", 8, &INGRESS[..2]);
    load.wait_for_progress(3, Duration::from_secs(120));
    let gap = gap_after(&load, "cutting restate-3 off", || project.disconnect("restate-3"));
    // The majority side sees restate-3 gone.
    project.wait_for_alive_nodes("restate-1", 2, Duration::from_secs(60));
    load.wait_for_progress(5, Duration::from_secs(120));

    let healed_at = Instant::now();
    project.reconnect("restate-3");
    project.wait_for_alive_nodes("restate-1", 3, STARTUP);
    project.wait_for_alive_nodes("restate-3", 3, STARTUP);
    let heal = healed_at.elapsed();
    // Its ingress serves again and reads what was written while it was away.
    drill.wait_for_greeter(38080, "after");
    let summary = format!(
        "partition drill: fail-over gap after cutting restate-3 off {} ms; rejoined {:.1} s after the heal",
        gap.as_millis(),
        heal.as_secs_f64()
    );
    finish(load, 38080, &summary);
}

/// Every node restarted one by one (`docker compose restart`, SIGTERM then start) under a
/// steady load through all three ingresses: not one acknowledged request is lost and no
/// request stays unacknowledged.
#[test]
#[ignore = "needs Docker, Compose v2 and the images: run `make e2e-compose`"]
fn rolling_restart_under_load_loses_nothing() {
    let drill = Drill::start("compose-rolling", &THREE, 3);
    let project = &drill.project;
    for port in drill.ingress_ports() {
        drill.wait_for_greeter(port, "rolling");
    }
    let load = Load::start("rolling", 8, &drill.ingress_ports());
    load.wait_for_progress(3, Duration::from_secs(120));
    let started = Instant::now();
    for node in ["restate-1", "restate-2", "restate-3"] {
        let before = load.acknowledged();
        let restart_at = Instant::now();
        project.ok(&["restart", node]);
        project.wait_for_alive_nodes(node, 3, STARTUP);
        load.wait_for_progress(3, Duration::from_secs(120));
        println!(
            "restarted {node} in {:.1} s; {} requests acknowledged meanwhile",
            restart_at.elapsed().as_secs_f64(),
            load.acknowledged() - before
        );
    }
    let summary = format!("rolling-restart drill: {:.1} s for three restarts", started.elapsed().as_secs_f64());
    let report = finish(load, 8080, &summary);
    assert!(report.acknowledged > 0);
}
