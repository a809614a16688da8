//! Invocations after they were sent: `/restate/invocation/{id}/attach|output`, the
//! `restate invocations` commands (list, describe, cancel, kill), idempotency retention,
//! calls and one-way sends between services, and a `ctx.run` side effect that happens
//! once although the partition's leader is killed in the middle of the invocation.

use std::time::Duration;

use restate_e2e::services::{
    admin_url, attach, leader_of_invocation, restate, run_log_lines, send_invocation, three_workers_with_services,
    ExampleServices,
};
use restate_e2e::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn output(port: u16, id: &str) -> (u16, String) {
    http_call(port, "GET", &format!("/restate/invocation/{id}/output"), "", &[], Duration::from_secs(30))
        .unwrap_or_else(|| panic!("ingress {port} did not answer output {id}"))
}

/// The same id with its last digit changed: well-formed, same partition, never submitted.
fn unknown_id(id: &str) -> String {
    let (head, last) = id.split_at(id.len() - 1);
    format!("{head}{}", if last == "0" { "1" } else { "0" })
}

fn invocation<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .unwrap_or_else(|| panic!("invocation {id} not listed: {list:#}"))
}

#[test]
fn sent_invocations_are_attached_listed_cancelled_killed_and_purged_after_retention() {
    let dir = TestDir::new("invocation-lifecycle");
    let mut node = ServerProcess::new(&dir, "n1", "lifecycle", &[("RESTATE_WORKER__IDEMPOTENCY_RETENTION", "3s")]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let services = ExampleServices::start(&dir);
    let admin = admin_url(&node);
    restate(&admin, &["dp", "register", &services.uri, "--yes"]).ok();
    let port = node.ports.ingress;

    // Attach and output of a running, then completed invocation.
    let held = send_invocation(port, "/Ticket/issueAndHold", "\"held\"", &[]);
    let (status, body) = output(port, &held);
    assert_eq!(status, 470, "not completed yet: {body}");
    assert!(body.contains("not completed"), "{body}");
    let listed = json(restate(&admin, &["invocations", "list", "--json"]).ok());
    let entry = invocation(&listed, &held);
    assert_eq!(entry["target"], "Ticket/issueAndHold");
    assert!(["invoked", "suspended"].contains(&entry["status"].as_str().unwrap()), "{entry}");
    let (status, ticket) = attach(port, &held);
    assert_eq!(status, 200, "{ticket}");
    assert!(ticket.starts_with("\"held-"), "{ticket}");
    assert_eq!(output(port, &held), (200, ticket.clone()), "output once completed");
    let described = restate(&admin, &["invocations", "describe", &held]);
    assert!(described.ok().contains("completed") && described.ok().contains(ticket.trim_matches('"')), "{described:?}");

    // Bad and unknown ids.
    let unknown = unknown_id(&held);
    for path in [format!("/restate/invocation/{unknown}/output"), format!("/restate/invocation/{unknown}/attach")] {
        let (status, body) = http_get(port, &path).unwrap();
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains(&unknown), "{path}: {body}");
    }
    let (status, body) = http_get(port, "/restate/invocation/inv_nope/output").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("inv_nope") && body.contains("base62"), "{body}");
    assert_eq!(http_request(port, "POST", &format!("/restate/invocation/{held}/output"), "").unwrap().0, 405);
    let missing = restate(&admin, &["invocations", "describe", &unknown]);
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(missing.stderr.contains("not found"), "{missing:?}");

    // Cancel while it sleeps: the handler sees the cancellation and fails with 409.
    let cancelled = send_invocation(port, "/Ticket/issueAndHold", "\"cancel-me\"", &[]);
    wait_until("the ticket to be drawn", Duration::from_secs(30), || !run_log_lines(&dir, "cancel-me-").is_empty());
    let out = restate(&admin, &["invocations", "cancel", &cancelled, "--yes"]);
    assert!(out.ok().contains("cancellation requested"), "{out:?}");
    let (status, body) = attach(port, &cancelled);
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("cancel"), "{body}");

    // Kill: stops at once.
    let killed = send_invocation(port, "/Ticket/issueAndHold", "\"kill-me\"", &[]);
    let out = restate(&admin, &["invocations", "kill", &killed, "--yes"]);
    assert!(out.ok().contains("killed"), "{out:?}");
    let (status, body) = attach(port, &killed);
    assert_eq!((status, body.contains("killed")), (409, true), "{body}");
    let again = restate(&admin, &["invocations", "kill", &killed, "--yes"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already completed"), "{again:?}");
    let bad_mode =
        http_request(node.ports.admin, "DELETE", &format!("/invocations/{killed}?mode=explode"), "").unwrap();
    assert_eq!(bad_mode.0, 400, "{bad_mode:?}");
    assert_eq!(http_get(node.ports.admin, "/invocations?status=sleeping").unwrap().0, 400);

    let completed = json(restate(&admin, &["invocations", "list", "--status", "completed", "--json"]).ok());
    for id in [&held, &cancelled, &killed] {
        assert_eq!(invocation(&completed, id)["status"], "completed");
    }
    assert_eq!(invocation(&completed, &killed)["failure"]["code"], 409);
    let table = restate(&admin, &["invocations", "list"]);
    assert!(table.ok().contains("Ticket/issueAndHold") && table.ok().contains("failed 409"), "{table:?}");

    // A call to another service (waited for) and a one-way send.
    for visit in 1..=2 {
        let (status, body) = http_request(port, "POST", "/Greeter/greetCounted", "\"Alice\"").unwrap();
        assert_eq!((status, body), (200, format!("\"Hello, Alice! Visit {visit}.\"")));
    }
    wait_until("both one-way sends to apply", Duration::from_secs(30), || {
        http_request(port, "POST", "/Counter/greetings/get", "").is_some_and(|(s, b)| s == 200 && b == "2")
    });

    // Idempotency: the same key gets the same invocation until the retention expires.
    let key = [("idempotency-key", "once")];
    let first = send_invocation(port, "/Ticket/issue", "\"idem\"", &key);
    let (_, first_ticket) = attach(port, &first);
    assert_eq!(send_invocation(port, "/Ticket/issue", "\"idem\"", &key), first, "same key, same invocation");
    assert_eq!(attach(port, &first), (200, first_ticket.clone()));
    assert_eq!(run_log_lines(&dir, "idem-").len(), 1);
    wait_until("the result to be purged after 3 s of retention", Duration::from_secs(60), || {
        output(port, &first).0 == 404
    });
    let renewed = send_invocation(port, "/Ticket/issue", "\"idem\"", &key);
    let (status, second_ticket) = attach(port, &renewed);
    assert_eq!(status, 200, "{second_ticket}");
    assert_ne!(second_ticket, first_ticket, "after the retention the key starts a new invocation");
    assert_eq!(run_log_lines(&dir, "idem-").len(), 2);
}

/// A deployment that does not answer is retried with backoff: the invocation completes
/// once it is back, with the `ctx.run` side effect executed once.
#[test]
fn an_unreachable_deployment_is_retried_until_it_answers() {
    let dir = TestDir::new("deployment-retry");
    let mut node = ServerProcess::new(&dir, "n1", "deployment-retry", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&node), &["dp", "register", &services.uri, "--yes"]).ok();
    let port = services.port;
    drop(services);

    let id = send_invocation(node.ports.ingress, "/Ticket/issue", "\"retry\"", &[]);
    wait_until("the node to log a failed round", Duration::from_secs(30), || {
        node.log().contains("invocation attempt failed, retrying")
    });
    assert_eq!(output(node.ports.ingress, &id).0, 470, "still running while the deployment is down");
    let _back = ExampleServices::start_on(&dir, port);
    let (status, ticket) = attach(node.ports.ingress, &id);
    assert_eq!(status, 200, "{ticket}");
    assert_eq!(run_log_lines(&dir, "retry-"), vec![ticket.trim_matches('"').to_owned()]);
}

/// A single node restarted (SIGTERM, then started again) leads its partitions again at
/// once: its own announcements are the last in the logs and the plan still names it, so
/// no new epoch is needed. State from before the restart is served.
#[test]
fn a_restarted_single_node_serves_invocations_again() {
    let dir = TestDir::new("restart-single");
    let mut node = ServerProcess::new(&dir, "n1", "restart-single", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&node), &["dp", "register", &services.uri, "--yes"]).ok();
    let port = node.ports.ingress;
    assert_eq!(http_request(port, "POST", "/Counter/kept/add", "5").unwrap(), (200, "5".to_owned()));

    assert!(node.stop().success(), "{}", node.log());
    node.start_and_wait_healthy();
    let mut last = None;
    wait_until("the restarted node to answer", Duration::from_secs(30), || {
        last = http_call(
            port,
            "POST",
            "/Counter/kept/add",
            "1",
            &[("idempotency-key", "after-restart")],
            Duration::from_secs(10),
        );
        last.is_some()
    });
    assert_eq!(last.unwrap(), (200, "6".to_owned()), "state kept, served within 10 s of the restart");
}

/// 3 nodes, replication 2: a `ctx.run` finished before the partition leader is killed -9
/// is not run again by the new leader; attach through another node returns the
/// journaled ticket.
#[test]
fn ctx_run_happens_once_across_a_leader_kill() {
    let dir = TestDir::new("run-once");
    let (mut nodes, _services) = three_workers_with_services(&dir, "run-once");
    let mut id = None;
    wait_until("the first send to be accepted", Duration::from_secs(60), || {
        id = http_call(
            nodes[0].ports.ingress,
            "POST",
            "/Ticket/issueAndHold/send",
            "\"lottery\"",
            &[],
            Duration::from_secs(30),
        )
        .filter(|(status, _)| *status == 202)
        .map(|(_, body)| json(&body)["invocationId"].as_str().unwrap().to_owned());
        id.is_some()
    });
    let id = id.unwrap();
    wait_until("the ticket to be drawn", Duration::from_secs(60), || !run_log_lines(&dir, "lottery-").is_empty());

    // The leader of the invocation's partition.
    let victim = leader_of_invocation(&nodes, &id);
    nodes[victim].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();

    let (status, ticket) = attach(nodes[survivors[0]].ports.ingress, &id);
    assert_eq!(status, 200, "{ticket}");
    let drawn = run_log_lines(&dir, "lottery-");
    assert_eq!(drawn.len(), 1, "the side effect ran once: {drawn:?}");
    assert_eq!(ticket, format!("\"{}\"", drawn[0]), "the journaled ticket is the answer");
    assert_eq!(output(nodes[survivors[1]].ports.ingress, &id), (200, ticket.clone()));

    nodes[victim].start_and_wait_healthy();
    let mut last = None;
    wait_until("the restarted node's ingress to answer", Duration::from_secs(60), || {
        last = Some(output(nodes[victim].ports.ingress, &id));
        last.as_ref().is_some_and(|(s, _)| *s == 200)
    });
    assert_eq!(last.unwrap().1, ticket);
    assert_eq!(run_log_lines(&dir, "lottery-").len(), 1);
}
