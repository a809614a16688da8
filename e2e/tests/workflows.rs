//! Workflows with the real Rust SDK: the run handler waits on a durable promise that a
//! shared handler completes through another node; attach and output by workflow key from
//! any node; a second run of the same key joins the first; after the retention the key
//! runs anew.

use std::time::Duration;

use restate_e2e::services::{admin_url, restate, run_log_lines};
use restate_e2e::*;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn call(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    http_call(port, method, path, body, &[], Duration::from_secs(90))
        .unwrap_or_else(|| panic!("ingress {port} did not answer {method} {path}"))
}

#[test]
fn a_workflow_runs_once_per_key_and_waits_on_its_promise() {
    let dir = TestDir::new("workflows");
    let (nodes, _services) = {
        let mut nodes = replicated_cluster(
            &dir,
            "workflows",
            &["n1", "n2", "n3"],
            &[
                ("RESTATE_BIFROST__DEFAULT_PROVIDER", "replicated"),
                ("RESTATE_DEFAULT_REPLICATION", "2"),
                ("RESTATE_DEFAULT_NUM_PARTITIONS", "4"),
            ],
        );
        for node in nodes.iter_mut() {
            node.start_and_wait_healthy();
        }
        wait_for_alive_nodes(&nodes[0], 3);
        let services = restate_e2e::services::ExampleServices::start(&dir);
        restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();
        (nodes, services)
    };
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();

    // Signup keeps finished runs 4 s (its own workflow_completion_retention; the default
    // is a day), to see the key run anew after it.
    let admin = nodes[0].ports.admin;
    let (status, body) =
        http_request(admin, "PATCH", "/services/Signup", "{\"workflow_completion_retention\": \"4s\"}").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["workflow_completion_retention"], "4s", "{body}");
    let (status, body) =
        http_request(admin, "PATCH", "/services/Signup", "{\"workflow_completion_retention\": \"soon\"}").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("workflow_completion_retention"), "{body}");
    let (status, body) =
        http_request(admin, "PATCH", "/services/Counter", "{\"workflow_completion_retention\": \"1h\"}").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("workflows only"), "{body}");
    assert_eq!(
        http_request(admin, "PATCH", "/services/Nope", "{\"workflow_completion_retention\": \"1h\"}").unwrap().0,
        404
    );

    let mut first = None;
    wait_until("the workflow to be submitted", Duration::from_secs(60), || {
        first = http_call(
            ports[0],
            "POST",
            "/Signup/alice/run/send",
            "\"alice@example.com\"",
            &[],
            Duration::from_secs(30),
        )
        .filter(|(s, _)| *s == 202)
        .map(|(_, b)| json(&b));
        first.is_some()
    });
    let first = first.unwrap();
    assert_eq!(first["status"], "Accepted", "{first}");
    let id = first["invocationId"].as_str().unwrap().to_owned();

    // Submitted again: the same run, not a new one.
    let (status, again) = call(ports[1], "POST", "/Signup/alice/run/send", "\"other@example.com\"");
    assert_eq!(status, 202, "{again}");
    let again = json(&again);
    assert_eq!(
        (again["status"].as_str(), again["invocationId"].as_str()),
        (Some("PreviouslyAccepted"), Some(id.as_str()))
    );

    wait_until("the run to wait for its link", Duration::from_secs(60), || {
        call(ports[2], "POST", "/Signup/alice/status", "") == (200, "\"waiting for the link\"".to_owned())
    });
    // The journal says what the run waits on: the promise, not completed; its ctx.run is.
    let query = format!(
        "{{\"query\": \"SELECT entry_type, completed, promise_name FROM sys_journal WHERE id = '{id}' ORDER BY index\"}}"
    );
    let (status, body) = http_request(admin, "POST", "/query", &query).unwrap();
    assert_eq!(status, 200, "{body}");
    let rows = json(&body)["rows"].as_array().cloned().unwrap_or_default();
    let promise = rows.iter().find(|r| r["entry_type"] == "GetPromiseCommand").unwrap_or_else(|| panic!("{body}"));
    assert_eq!((&promise["promise_name"], &promise["completed"]), (&"email-link".into(), &false.into()), "{body}");
    let run = rows.iter().find(|r| r["entry_type"] == "RunCommand").unwrap_or_else(|| panic!("{body}"));
    assert_eq!(run["completed"], true, "{body}");
    let (status, body) = call(ports[1], "GET", "/restate/workflow/Signup/alice/output", "");
    assert_eq!(status, 470, "still running: {body}");
    assert_eq!(call(ports[0], "POST", "/Signup/alice/link", ""), (200, "\"\"".to_owned()), "pending promise");

    // A shared handler on another node completes the promise; the run finishes.
    assert_eq!(call(ports[2], "POST", "/Signup/alice/click", "\"link-42\"").0, 200);
    let expected = "\"alice@example.com confirmed by link-42\"".to_owned();
    assert_eq!(call(ports[1], "GET", "/restate/workflow/Signup/alice/attach", ""), (200, expected.clone()));
    assert_eq!(call(ports[2], "GET", "/restate/workflow/Signup/alice/output", ""), (200, expected.clone()));
    assert_eq!(call(ports[0], "GET", &format!("/restate/invocation/{id}/output"), ""), (200, expected.clone()));
    assert_eq!(call(ports[0], "POST", "/Signup/alice/link", ""), (200, "\"link-42\"".to_owned()));
    // A call of run for the finished key returns the first run's result; nothing reruns.
    assert_eq!(call(ports[2], "POST", "/Signup/alice/run", "\"x@example.com\""), (200, expected));
    assert_eq!(run_log_lines(&dir, "signup-alice").len(), 1, "the run handler's first step ran once");

    // Bad input: unknown workflow names and keys.
    let (status, body) = call(ports[0], "GET", "/restate/workflow/Nope/alice/output", "");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("Nope"), "{body}");
    let (status, body) = call(ports[0], "GET", "/restate/workflow/Signup/nobody/output", "");
    assert_eq!(status, 404, "{body}");
    let (status, _) = call(ports[0], "GET", "/restate/workflow/Counter/alice/output", "");
    assert_eq!(status, 404);

    // After the retention the result, state and promise are gone: the key runs anew.
    wait_until("the run's result to be purged", Duration::from_secs(60), || {
        call(ports[0], "GET", "/restate/workflow/Signup/alice/output", "").0 == 404
    });
    assert_eq!(call(ports[1], "POST", "/Signup/alice/status", ""), (200, "\"\"".to_owned()), "state purged");
    let (status, renewed) = call(ports[1], "POST", "/Signup/alice/run/send", "\"alice@example.com\"");
    assert_eq!((status, json(&renewed)["status"].as_str()), (202, Some("Accepted")), "{renewed}");
    wait_until("the new run to start", Duration::from_secs(60), || run_log_lines(&dir, "signup-alice").len() == 2);
    assert_eq!(call(ports[0], "POST", "/Signup/alice/link", ""), (200, "\"\"".to_owned()), "a fresh promise");
}
