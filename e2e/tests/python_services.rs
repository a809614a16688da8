//! The Python SDK (PyPI `restate-sdk`, served by hypercorn over HTTP/2): plain handlers
//! and state, an awakeable resolved through another node's ingress while the partition's
//! leader is killed -9, a completion from another handler, a named signal, and a workflow
//! that waits on its durable promise and runs once per key. 3 nodes, replication 2.

use std::time::Duration;

use restate_e2e::services::{admin_url, leader_of_invocation, restate, AsgiServer, PythonServices, REPLICATED_WORKERS};
use restate_e2e::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn call(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    http_call(port, method, path, body, &[], Duration::from_secs(90))
        .unwrap_or_else(|| panic!("ingress {port} did not answer {method} {path}"))
}

fn send(port: u16, path: &str, body: &str) -> Value {
    let mut sent = None;
    wait_until(&format!("{path}/send to be accepted"), Duration::from_secs(60), || {
        sent = http_call(port, "POST", &format!("{path}/send"), body, &[], Duration::from_secs(30))
            .filter(|(status, _)| *status == 202)
            .map(|(_, answer)| json(&answer));
        sent.is_some()
    });
    sent.unwrap()
}

#[test]
fn python_services_use_awakeables_signals_and_workflows() {
    let dir = TestDir::new("python-services");
    let mut nodes = replicated_cluster(&dir, "python", &["n1", "n2", "n3"], &REPLICATED_WORKERS);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let services = PythonServices::start(&dir);
    let registered = restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]);
    assert!(registered.ok().contains("Signup"), "{}", registered.stdout);
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();

    // Plain handlers and state.
    wait_until("Greeter to answer", Duration::from_secs(60), || {
        http_call(ports[0], "POST", "/Greeter/greet", "\"Ada\"", &[], Duration::from_secs(30))
            == Some((200, "\"Hello, Ada!\"".to_owned()))
    });
    assert_eq!(call(ports[1], "POST", "/Counter/c/add", "2"), (200, "2".to_owned()));
    assert_eq!(call(ports[2], "POST", "/Counter/c/get", ""), (200, "2".to_owned()));

    // An awakeable resolved through another node while the partition's leader dies.
    let id = send(ports[0], "/Approval/order-1/request", "\"order 1\"")["invocationId"].as_str().unwrap().to_owned();
    let mut awakeable = String::new();
    wait_until("the awakeable id", Duration::from_secs(60), || {
        awakeable = json(&call(ports[0], "POST", "/Approval/order-1/pending", "").1).as_str().unwrap_or("").to_owned();
        !awakeable.is_empty()
    });
    let victim = leader_of_invocation(&nodes, &id);
    nodes[victim].kill();
    let alive: Vec<u16> = (0..3).filter(|i| *i != victim).map(|i| ports[i]).collect();
    let (status, body) = call(alive[0], "POST", &format!("/restate/awakeables/{awakeable}/resolve"), "\"yes\"");
    assert_eq!(status, 202, "{body}");
    let (status, answer) = call(alive[1], "GET", &format!("/restate/invocation/{id}/attach"), "");
    assert_eq!((status, answer.as_str()), (200, "\"order 1: yes\""));
    nodes[victim].start_and_wait_healthy();

    // Completed by another handler; a rejection fails the waiting handler.
    let id = send(ports[1], "/Approval/order-2/request", "\"order 2\"")["invocationId"].as_str().unwrap().to_owned();
    wait_until("the second awakeable id", Duration::from_secs(60), || {
        awakeable = json(&call(ports[1], "POST", "/Approval/order-2/pending", "").1).as_str().unwrap_or("").to_owned();
        !awakeable.is_empty()
    });
    let decision = serde_json::json!({ "awakeable": awakeable, "approve": false, "answer": "no budget" }).to_string();
    assert_eq!(call(ports[2], "POST", "/Approver/decide", &decision).0, 200);
    let (status, body) = call(ports[0], "GET", &format!("/restate/invocation/{id}/attach"), "");
    assert!(status >= 400 && body.contains("no budget"), "{status} {body}");

    // A named signal from one invocation to another.
    let waiting = send(ports[0], "/Signals/waitFor", "\"go\"")["invocationId"].as_str().unwrap().to_owned();
    let delivery = serde_json::json!({ "invocation": waiting, "name": "go", "value": "green" }).to_string();
    assert_eq!(call(ports[1], "POST", "/Signals/send", &delivery).0, 200);
    assert_eq!(
        call(ports[2], "GET", &format!("/restate/invocation/{waiting}/attach"), ""),
        (200, "\"green\"".to_owned())
    );

    // A workflow: run once per key, a promise completed by a shared handler.
    let first = send(ports[0], "/Signup/bob/run", "\"bob@example.com\"");
    assert_eq!(first["status"], "Accepted", "{first}");
    let again = send(ports[1], "/Signup/bob/run", "\"other@example.com\"");
    assert_eq!(
        (again["status"].as_str(), &again["invocationId"]),
        (Some("PreviouslyAccepted"), &first["invocationId"])
    );
    wait_until("the run to wait for its link", Duration::from_secs(60), || {
        call(ports[2], "POST", "/Signup/bob/status", "") == (200, "\"waiting for the link\"".to_owned())
    });
    assert_eq!(call(ports[0], "POST", "/Signup/bob/click", "\"link-7\"").0, 200);
    let expected = (200, "\"bob@example.com confirmed by link-7\"".to_owned());
    assert_eq!(call(ports[1], "GET", "/restate/workflow/Signup/bob/attach", ""), expected);
    assert_eq!(call(ports[2], "GET", "/restate/workflow/Signup/bob/output", ""), expected);
    assert_eq!(call(ports[0], "POST", "/Signup/bob/link", ""), (200, "\"link-7\"".to_owned()));
}

/// The same services behind an HTTP/1.1-only server (uvicorn): registration falls back
/// to HTTP/1.1 by itself, and `--use-http1.1` asks for it on a server that speaks both;
/// invocations, awakeables and workflows work over it.
#[test]
fn python_services_over_http_1_1() {
    let dir = TestDir::new("python-http11");
    let mut node = ServerProcess::new(&dir, "n1", "python-http11", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let admin = admin_url(&node);
    let port = node.ports.ingress;

    let uvicorn = PythonServices::start_with(&dir, AsgiServer::Uvicorn);
    restate(&admin, &["dp", "register", &uvicorn.uri, "--yes"]).ok();
    let listed = restate(&admin, &["dp", "list", "--json"]).json();
    assert_eq!(listed["deployments"][0]["http_version"], "HTTP/1.1", "fell back: {listed:#}");

    wait_until("Greeter to answer over HTTP/1.1", Duration::from_secs(60), || {
        http_call(port, "POST", "/Greeter/greet", "\"Ada\"", &[], Duration::from_secs(30))
            == Some((200, "\"Hello, Ada!\"".to_owned()))
    });
    assert_eq!(call(port, "POST", "/Counter/c/add", "5"), (200, "5".to_owned()));
    let id = send(port, "/Approval/a/request", "\"order\"")["invocationId"].as_str().unwrap().to_owned();
    let mut awakeable = String::new();
    wait_until("the awakeable id", Duration::from_secs(60), || {
        awakeable = json(&call(port, "POST", "/Approval/a/pending", "").1).as_str().unwrap_or("").to_owned();
        !awakeable.is_empty()
    });
    assert_eq!(call(port, "POST", &format!("/restate/awakeables/{awakeable}/resolve"), "\"ok\"").0, 202);
    assert_eq!(call(port, "GET", &format!("/restate/invocation/{id}/attach"), ""), (200, "\"order: ok\"".to_owned()));
    send(port, "/Signup/eve/run", "\"eve@example.com\"");
    wait_until("the run to wait for its link", Duration::from_secs(60), || {
        call(port, "POST", "/Signup/eve/status", "") == (200, "\"waiting for the link\"".to_owned())
    });
    assert_eq!(call(port, "POST", "/Signup/eve/click", "\"l\"").0, 200);
    assert_eq!(
        call(port, "GET", "/restate/workflow/Signup/eve/attach", ""),
        (200, "\"eve@example.com confirmed by l\"".to_owned())
    );
    drop(uvicorn);

    // --use-http1.1 on a server that speaks both: registered (and invoked) over HTTP/1.1.
    let hypercorn = PythonServices::start(&dir);
    let out = restate(&admin, &["dp", "register", &hypercorn.uri, "--use-http1.1", "--force", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let listed = restate(&admin, &["dp", "list", "--json"]).json();
    let by_uri = listed["deployments"].as_array().unwrap().iter().find(|d| d["uri"] == hypercorn.uri.as_str()).cloned();
    assert_eq!(by_uri.unwrap_or_else(|| panic!("not listed: {listed:#}"))["http_version"], "HTTP/1.1");
    assert_eq!(call(port, "POST", "/Counter/c/add", "1"), (200, "6".to_owned()));
    node.assert_running();
}
