//! Bad input at the process boundary: exit code 2 and a message naming the key.

use std::time::Duration;

use restate_e2e::*;

fn run_expecting_exit(node: &mut ServerProcess) -> (i32, String) {
    node.start();
    let status = node.wait_exit(Duration::from_secs(30));
    (status.code().unwrap_or(-1), node.log())
}

#[test]
fn bad_configuration_exits_2_naming_every_problem() {
    let dir = TestDir::new("bad-config");
    let config = dir.path().join("restate.toml");
    std::fs::write(&config, "node-nam = \"x\"\nauto-provision = \"yes\"\n").unwrap();
    let mut node = ServerProcess::new(&dir, "n1", "c1", &[("RESTATE_ADMIN__BIND_ADDRESS", "nonsense")])
        .with_args(&["--config-file", config.to_str().unwrap()]);
    let (code, log) = run_expecting_exit(&mut node);
    assert_eq!(code, 2, "{log}");
    for expected in ["node-nam", "auto-provision", "admin.bind-address", "RESTATE_ADMIN__BIND_ADDRESS"] {
        assert!(log.contains(expected), "missing {expected} in: {log}");
    }
}

#[test]
fn unknown_restate_variables_only_warn() {
    let dir = TestDir::new("unknown-env");
    let mut node = ServerProcess::new(
        &dir,
        "n1",
        "c1",
        &[("RESTATE_SERVICE_HOST", "10.0.0.1"), ("RESTATE_PORT", "tcp://10.0.0.1:80")],
    );
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let log = node.log();
    assert!(log.contains("RESTATE_SERVICE_HOST"), "the warning names the variable: {log}");
}

#[test]
fn a_port_in_use_names_the_key_to_change() {
    let dir = TestDir::new("port-in-use");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut node =
        ServerProcess::new(&dir, "n1", "c1", &[("RESTATE_INGRESS__BIND_ADDRESS", &format!("127.0.0.1:{port}"))]);
    let (code, log) = run_expecting_exit(&mut node);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("ingress.bind-address") && log.contains(&port), "{log}");
}

#[test]
fn data_of_another_cluster_is_refused() {
    let dir = TestDir::new("identity");
    let mut node = ServerProcess::new(&dir, "n1", "alpha", &[]);
    node.start_and_wait_healthy();
    assert!(node.stop().success());
    node.set_env("RESTATE_CLUSTER_NAME", "beta");
    let (code, log) = run_expecting_exit(&mut node);
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("alpha") && log.contains("beta") && log.contains("cluster-name"), "{log}");
}

#[test]
fn an_unreachable_node_is_one_line_and_exit_1() {
    let out = restatectl(&format!("http://127.0.0.1:{}", free_port()), &["status"]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("cannot reach node at http://127.0.0.1:"), "{}", out.stderr);
    let bad = restatectl("not a url", &["status"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("--address"), "{}", bad.stderr);
}

#[test]
fn status_answers_promptly_when_no_metadata_server_is_reachable() {
    let dir = TestDir::new("no-metadata");
    let closed = free_port();
    let list = format!("[\"http://127.0.0.1:{closed}\"]");
    let mut node = ServerProcess::new(&dir, "lonely", "c1", &[("RESTATE_METADATA_CLIENT__ADDRESSES", &list)]);
    node.start_and_wait_healthy();
    let started = std::time::Instant::now();
    let status = node.ctl(&["status", "--json"]).json();
    assert!(started.elapsed() < Duration::from_secs(6), "status took {:?}", started.elapsed());
    assert_eq!(status["provisioned"], false);
    let reason = status["answered_by"]["state_reason"].as_str().unwrap();
    assert!(reason.contains(&format!("127.0.0.1:{closed}")), "the reason names the address tried: {reason}");
    assert!(node.stop().success(), "SIGTERM exits 0 even while waiting for metadata");
}
