//! One node: embedded defaults, auto-provisioning, metadata across restarts, manual
//! provisioning, health and metrics, clean shutdown.

use std::time::Duration;

use restate_e2e::*;

#[test]
fn node_without_any_configuration_provisions_itself() {
    // Exactly the README's "make run" path: no config file, default ports, the node port
    // on loopback (make run's one variable).
    for port in [5122, 9070, 8080] {
        assert!(
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok(),
            "default port {port} is taken on this machine; this test needs the defaults free"
        );
    }
    let dir = TestDir::new("defaults");
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let mut child = std::process::Command::new(bin("restate-server"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RESTATE_BIND_ADDRESS", "127.0.0.1:5122")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let status = (|| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let out = restatectl("http://127.0.0.1:5122", &["status", "--json"]);
            if out.code == 0 {
                let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                if v["provisioned"] == true && v["nodes"][0]["alive"] == true {
                    return v;
                }
            }
            assert!(std::time::Instant::now() < deadline, "never provisioned: {out:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    let nodes = status["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["node_id"], "N1");
    assert_eq!(status["cluster_name"], "localcluster");
    assert_eq!(status["cluster_fingerprint"].as_str().unwrap().len(), 32);
    let roles: Vec<&str> = nodes[0]["roles"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(roles, ["worker", "admin", "metadata-server", "log-server", "http-ingress"]);

    let text = restatectl("http://127.0.0.1:5122", &["status"]);
    assert!(text.ok().contains("Provisioned") && text.stdout.contains("yes"), "{}", text.stdout);
    // Data went to ./restate-data/<hostname>/ under the working directory.
    assert!(dir.path().join("restate-data").is_dir());

    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "SIGTERM must exit 0, got {exit}");
}

#[test]
fn a_node_port_open_to_the_network_needs_credentials_or_insecure() {
    let dir = TestDir::new("insecure");
    let port = free_port();
    let run = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(bin("restate-server"));
        command
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RESTATE_BIND_ADDRESS", format!("0.0.0.0:{port}"))
            .env("RESTATE_ADMIN__BIND_ADDRESS", format!("127.0.0.1:{}", free_port()))
            .env("RESTATE_INGRESS__BIND_ADDRESS", format!("127.0.0.1:{}", free_port()));
        for (k, v) in env {
            command.env(k, v);
        }
        command
    };
    // Neither a cluster secret nor insecure: refused at start, exit 2, saying what to do.
    let out = run(&[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cluster-secret-file") && stderr.contains("insecure = true"), "{stderr}");
    // A secret file that is too short: refused naming the file, never its content.
    let short = dir.path().join("short-secret");
    std::fs::write(&short, "tiny-secret\n").unwrap();
    let out = run(&[("RESTATE_NETWORKING__CLUSTER_SECRET_FILE", short.to_str().unwrap())]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("short-secret") && !stderr.contains("tiny-secret"), "{stderr}");
    // insecure = true: it starts, and says so loudly.
    let log = std::fs::File::create(dir.path().join("insecure.log")).unwrap();
    let mut child = run(&[("RESTATE_NETWORKING__INSECURE", "true"), ("RESTATE_NODE_NAME", "insecure")])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until("the insecure node to answer /health", Duration::from_secs(30), || {
        http_get(port, "/health").is_some_and(|(status, _)| status == 200)
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("insecure.log")).unwrap();
    assert!(log.contains("INSECURE"), "{log}");
}

#[test]
fn metadata_survives_restart_with_its_version_and_refuses_stale_writes() {
    let dir = TestDir::new("restart");
    let mut node = ServerProcess::new(&dir, "n1", "c1", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);

    node.ctl(&["metadata", "put", "--key", "greeting", "--value", "hello", "--yes"]).ok();
    let second =
        node.ctl(&["metadata", "put", "--key", "greeting", "--value", "hello again", "--version", "1", "--json"]);
    assert_eq!(second.json()["version"], 2);

    let exit = node.stop();
    assert!(exit.success(), "clean shutdown exits 0, got {exit}");
    node.start_and_wait_healthy();
    let status = wait_for_alive_nodes(&node, 1);
    assert_eq!(status["nodes"][0]["generation"], 2, "a restart is a new generation of N1");

    let got = node.ctl(&["metadata", "get", "--key", "greeting", "--json"]).json();
    assert_eq!(got["version"], 2);
    assert_eq!(got["value"], "hello again");

    let stale = node.ctl(&["metadata", "put", "--key", "greeting", "--value", "lost", "--version", "1"]);
    assert_eq!(stale.code, 1);
    assert!(stale.stderr.contains("at version 2"), "the refusal names the current version: {}", stale.stderr);
    let got = node.ctl(&["metadata", "get", "--key", "greeting", "--json"]).json();
    assert_eq!((got["version"].as_u64(), got["value"].as_str()), (Some(2), Some("hello again")), "nothing changed");

    // Typed cluster metadata cannot be overwritten with garbage.
    let bad = node.ctl(&["metadata", "put", "--key", "nodes_config", "--value", "{}x"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("NodesConfiguration"), "{}", bad.stderr);
    // A partition table that decodes but leaves keys without a partition: refused by its
    // meaning, and the node keeps serving with the table it had.
    let gap = r#"{"partitions": {"0": {"start_key": 0, "end_key": 100, "log_id": 0}}}"#;
    let bad = node.ctl(&["metadata", "put", "--key", "partition_table", "--value", gap]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("no partition owns the keys 101.."), "{}", bad.stderr);
    let table = node.ctl(&["metadata", "get", "--key", "partition_table", "--json"]).json();
    assert_eq!(table["version"], 1, "the partition table is unchanged: {table:#}");
}

#[test]
fn manual_provisioning_happens_once() {
    let dir = TestDir::new("provision");
    let mut node = ServerProcess::new(&dir, "n1", "c1", &[("RESTATE_AUTO_PROVISION", "false")]);
    node.start_and_wait_healthy();

    // Healthy but not provisioned, and status says what to do.
    let status = node.ctl(&["status", "--json"]).json();
    assert_eq!(status["provisioned"], false);
    wait_until("the node to wait for provisioning", Duration::from_secs(10), || {
        let s = node.ctl(&["status", "--json"]).json();
        s["answered_by"]["state"] == "waiting-for-provisioning"
    });
    let text = node.ctl(&["status"]);
    assert!(text.ok().contains("restatectl provision"), "{}", text.stdout);
    let config = node.ctl(&["config", "get"]);
    assert_eq!(config.code, 1);
    assert!(config.stderr.contains("not provisioned"), "{}", config.stderr);

    let first =
        node.ctl(&["provision", "--address", &node.address(), "--yes", "--num-partitions", "4", "--json"]).json();
    assert_eq!(first["newly_provisioned"], true);
    assert_eq!(first["configuration"]["num_partitions"], 4);
    let fingerprint = first["cluster_fingerprint"].as_str().unwrap().to_owned();

    let second = node.ctl(&["provision", "--yes", "--num-partitions", "9"]);
    assert!(second.ok().contains("already provisioned"), "{}", second.stdout);
    let status = wait_for_alive_nodes(&node, 1);
    assert_eq!(status["cluster_fingerprint"], fingerprint.as_str());
    assert_eq!(status["configuration"]["num_partitions"], 4, "the second provision changed nothing");
}

#[test]
fn config_set_checks_the_arithmetic_and_persists() {
    let dir = TestDir::new("config-set");
    let mut node = ServerProcess::new(&dir, "n1", "c1", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);

    let refused = node.ctl(&["config", "set", "--log-provider", "replicated", "--log-replication", "2", "--yes"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("needs 3 log-servers (2 x 2 - 1)") && refused.stderr.contains("1 is available"),
        "{}",
        refused.stderr
    );

    // The seed's single-node migration command.
    node.ctl(&["config", "set", "--log-provider", "replicated", "--log-replication", "1"]).ok();
    let got = node.ctl(&["config", "get", "--json"]).json();
    assert_eq!((got["log_provider"].as_str(), got["log_replication"].as_u64()), (Some("replicated"), Some(1)));
}

#[test]
fn health_and_metrics_are_served_before_and_after_provisioning() {
    let dir = TestDir::new("health");
    let mut node = ServerProcess::new(&dir, "n1", "c1", &[("RESTATE_AUTO_PROVISION", "false")]);
    node.start_and_wait_healthy();
    assert_eq!(http_get(node.ports.admin, "/health").map(|r| r.0), Some(200));
    let (code, body) = http_get(node.ports.fabric, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("restate_build_info"), "{body}");
    assert!(
        body.contains("restate_node_phase{phase=\"waiting-for-provisioning\"} 1")
            || body.contains("restate_node_phase{phase=\"starting\"} 1"),
        "{body}"
    );
    let (code, body) = http_get(node.ports.ingress, "/Greeter/greet").unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("Greeter"), "{body}");
}
