//! `/send?delay=...`: the invocation waits `scheduled` in its partition and runs once
//! after its delay, also when the partition's leader is killed -9 meanwhile; bad delays
//! are refused naming the input.

use std::time::{Duration, Instant};

use restate_e2e::services::{leader_of_invocation, run_log_lines, three_workers_with_services};
use restate_e2e::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_delayed_send_runs_once_after_its_delay_across_a_leader_kill() {
    let dir = TestDir::new("delayed-send");
    let (mut nodes, _services) = three_workers_with_services(&dir, "delayed-send");
    let port = nodes[0].ports.ingress;

    let mut sent = None;
    wait_until("the delayed send to be accepted", Duration::from_secs(60), || {
        let at = Instant::now();
        sent = http_call(port, "POST", "/Ticket/issue/send?delay=4s", "\"later\"", &[], Duration::from_secs(30))
            .filter(|(status, _)| *status == 202)
            .map(|(_, body)| (json(&body)["invocationId"].as_str().unwrap().to_owned(), at));
        sent.is_some()
    });
    let (id, sent_at) = sent.unwrap();
    let (status, body) = http_get(port, &format!("/restate/invocation/{id}/output")).unwrap();
    assert_eq!(status, 470, "{body}");
    assert!(body.contains("scheduled"), "{body}");

    let victim = leader_of_invocation(&nodes, &id);
    nodes[victim].kill();
    let survivor = nodes.iter().position(|n| n.name != nodes[victim].name).unwrap();
    let (status, ticket) = http_call(
        nodes[survivor].ports.ingress,
        "GET",
        &format!("/restate/invocation/{id}/attach"),
        "",
        &[],
        Duration::from_secs(90),
    )
    .unwrap();
    assert_eq!(status, 200, "{ticket}");
    assert!(ticket.starts_with("\"later-"), "{ticket}");
    assert!(sent_at.elapsed() >= Duration::from_secs(4), "ran after its delay ({:?})", sent_at.elapsed());
    assert_eq!(run_log_lines(&dir, "later-").len(), 1, "ran once");

    // Bad delays: 400 naming the input; the node stays up.
    let survivor_port = nodes[survivor].ports.ingress;
    for (path, says) in [
        ("/Ticket/issue/send?delay=-1s", "delay=-1s"),
        ("/Ticket/issue/send?delay=soon", "delay=soon"),
        ("/Ticket/issue/send?delay=10", "needs a unit"),
        ("/Ticket/issue?delay=1s", "only /send accepts a delay"),
    ] {
        let (status, body) = http_request(survivor_port, "POST", path, "\"x\"").unwrap();
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(says), "{path}: {body}");
    }
    nodes[survivor].assert_running();

    // A delayed one-way call from a handler (Rust SDK `send_after(1s)`).
    let sent_at = Instant::now();
    let answer = http_request(survivor_port, "POST", "/Greeter/greetLater", "\"Zed\"").unwrap();
    assert_eq!(answer, (200, "\"See you later, Zed!\"".to_owned()));
    wait_until("the delayed add to run", Duration::from_secs(30), || {
        http_request(survivor_port, "POST", "/Counter/Zed/get", "") == Some((200, "1".to_owned()))
    });
    assert!(sent_at.elapsed() >= Duration::from_secs(1), "ran after its delay ({:?})", sent_at.elapsed());
    nodes[victim].start_and_wait_healthy();
}
