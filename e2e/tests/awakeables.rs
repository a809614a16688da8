//! Awakeables and signals with the real Rust SDK: a handler waits on an awakeable that is
//! resolved through another node's ingress while the partition's leader is killed -9;
//! rejections, completions from another handler, named signals between invocations, and
//! bad awakeable ids.

use std::time::Duration;

use restate_e2e::services::{admin_url, leader_of_invocation, restate, three_workers_with_services, ExampleServices};
use restate_e2e::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `/send` through the ingress at `port` (retried while the cluster settles); the id.
fn send(port: u16, path: &str, body: &str) -> String {
    let mut id = None;
    wait_until(&format!("{path}/send to be accepted"), Duration::from_secs(60), || {
        id = http_call(port, "POST", &format!("{path}/send"), body, &[], Duration::from_secs(30))
            .filter(|(status, _)| *status == 202)
            .map(|(_, answer)| json(&answer)["invocationId"].as_str().unwrap().to_owned());
        id.is_some()
    });
    id.unwrap()
}

fn attach(port: u16, id: &str) -> (u16, String) {
    http_call(port, "GET", &format!("/restate/invocation/{id}/attach"), "", &[], Duration::from_secs(90))
        .unwrap_or_else(|| panic!("ingress {port} did not answer attach {id}"))
}

/// The awakeable id `Approval/{key}/request` waits on, once it is journaled.
fn pending_awakeable(port: u16, key: &str) -> String {
    let mut awakeable = String::new();
    wait_until(&format!("Approval/{key} to wait on an awakeable"), Duration::from_secs(60), || {
        if let Some((200, body)) = http_request(port, "POST", &format!("/Approval/{key}/pending"), "") {
            awakeable = json(&body).as_str().unwrap_or_default().to_owned();
        }
        !awakeable.is_empty()
    });
    awakeable
}

fn complete(port: u16, awakeable: &str, action: &str, body: &str) -> (u16, String) {
    let path = format!("/restate/awakeables/{awakeable}/{action}");
    http_call(port, "POST", &path, body, &[], Duration::from_secs(60))
        .unwrap_or_else(|| panic!("ingress {port} did not answer {path}"))
}

/// 3 nodes, replication 2: the partition's leader is killed -9 between the awakeable's
/// creation and its resolution through another node; the caller gets the value.
#[test]
fn an_awakeable_resolved_through_another_node_across_a_leader_kill() {
    let dir = TestDir::new("awakeable-failover");
    let (mut nodes, _services) = three_workers_with_services(&dir, "awakeable-failover");
    let id = send(nodes[0].ports.ingress, "/Approval/order-1/request", "\"order 1\"");
    let awakeable = pending_awakeable(nodes[0].ports.ingress, "order-1");
    assert!(awakeable.starts_with("sign_1"), "{awakeable}");

    let victim = leader_of_invocation(&nodes, &id);
    nodes[victim].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();

    // Sent while the partition fails over: the ingress waits for the new leader.
    let (status, body) = complete(nodes[survivors[0]].ports.ingress, &awakeable, "resolve", "\"yes\"");
    assert_eq!(status, 202, "{body}");
    let (status, answer) = attach(nodes[survivors[1]].ports.ingress, &id);
    assert_eq!((status, answer.as_str()), (200, "\"order 1: yes\""));

    // A second completion is accepted and changes nothing.
    let (status, body) = complete(nodes[survivors[1]].ports.ingress, &awakeable, "reject", "too late");
    assert_eq!(status, 202, "{body}");
    assert_eq!(attach(nodes[survivors[0]].ports.ingress, &id), (200, "\"order 1: yes\"".to_owned()));

    nodes[victim].start_and_wait_healthy();
}

#[test]
fn awakeables_are_rejected_completed_by_handlers_and_signals_wake_invocations() {
    let dir = TestDir::new("awakeables");
    let mut node = ServerProcess::new(&dir, "n1", "awakeables", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&node), &["dp", "register", &services.uri, "--yes"]).ok();
    let port = node.ports.ingress;

    // Rejected through the ingress: the handler fails with the rejection's message.
    let rejected = send(port, "/Approval/order-2/request", "\"order 2\"");
    let awakeable = pending_awakeable(port, "order-2");
    assert_eq!(complete(port, &awakeable, "reject", "no budget").0, 202);
    let (status, body) = attach(port, &rejected);
    assert!(status >= 400 && body.contains("no budget"), "{status} {body}");

    // Completed by another handler (CompleteAwakeableCommand).
    let approved = send(port, "/Approval/order-3/request", "\"order 3\"");
    let awakeable = pending_awakeable(port, "order-3");
    let decision = serde_json::json!({ "awakeable": awakeable, "approve": true, "answer": "ok" }).to_string();
    assert_eq!(http_request(port, "POST", "/Approver/decide", &decision).unwrap().0, 200);
    assert_eq!(attach(port, &approved), (200, "\"order 3: ok\"".to_owned()));

    // A named signal sent by one invocation wakes another; a third attached to it gets
    // its result (AttachInvocationCommand).
    let waiting = send(port, "/Signals/waitFor", "\"go\"");
    let attached = send(port, "/Signals/awaitResult", &format!("\"{waiting}\""));
    let delivery = serde_json::json!({ "invocation": waiting, "name": "go", "value": "green" }).to_string();
    assert_eq!(http_request(port, "POST", "/Signals/send", &delivery).unwrap().0, 200);
    assert_eq!(attach(port, &waiting), (200, "\"green\"".to_owned()));
    assert_eq!(attach(port, &attached), (200, "\"green\"".to_owned()));
    // Attaching to an unknown invocation fails the handler with 404 (the node stays up).
    let unknown_target = format!("{}0", &waiting[..waiting.len() - 1]);
    let unknown_target =
        if unknown_target == waiting { format!("{}1", &waiting[..waiting.len() - 1]) } else { unknown_target };
    let (status, body) = http_request(port, "POST", "/Signals/awaitResult", &format!("\"{unknown_target}\"")).unwrap();
    assert_eq!(status, 404, "{body}");

    // Bad input: each a 4xx naming the input; the node stays up.
    let (status, body) = complete(port, "garbage", "resolve", "1");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("'garbage' is not an awakeable id"), "{body}");
    let (status, body) = complete(port, "sign_1AAAA", "resolve", "1");
    assert_eq!(status, 400, "{body}");
    // Same partition key, another invocation: unknown.
    let mut unknown: Vec<char> = awakeable.chars().collect();
    let at = unknown.len() - 10;
    unknown[at] = if unknown[at] == 'A' { 'B' } else { 'A' };
    let unknown: String = unknown.into_iter().collect();
    let (status, body) = complete(port, &unknown, "resolve", "1");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(&unknown), "{body}");
    assert_eq!(http_request(port, "GET", &format!("/restate/awakeables/{awakeable}/resolve"), "").unwrap().0, 405);
    node.assert_running();
}
