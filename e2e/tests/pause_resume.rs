//! Pause, resume and restart-as-new, as an operator uses them: an invocation whose
//! deployment is down shows `backing-off` with its last failure in `sys_invocation`, is
//! paused after the retry policy's last attempt (`[invocation.default-retry-policy]`),
//! and completes once the deployment is back and it is resumed; a suspended invocation
//! paused by hand keeps a signal delivered meanwhile and completes with it on resume; a
//! completed invocation restarted as new runs its input again under a new id. Bad
//! requests get 400/404/409 naming the problem.

use std::time::Duration;

use restate_e2e::services::{admin_url, attach, restate, send_invocation, ExampleServices};
use restate_e2e::*;
use serde_json::Value;

/// The one `sys_invocation` row of `id` (`restate sql --json`), if listed.
fn invocation_row(admin: &str, id: &str) -> Option<Value> {
    let query = format!(
        "SELECT id, status, retry_count, last_failure, next_retry_at, idempotency_key FROM sys_invocation WHERE id = '{id}'"
    );
    let out = restate(admin, &["sql", "--json", &query]);
    if out.code != 0 {
        return None;
    }
    let answer: Value = serde_json::from_str(&out.stdout).ok()?;
    answer["rows"].as_array()?.first().cloned()
}

fn wait_for_status(admin: &str, id: &str, status: &str) -> Value {
    let mut row = None;
    wait_until(&format!("{id} to be {status}"), Duration::from_secs(60), || {
        row = invocation_row(admin, id);
        row.as_ref().is_some_and(|r| r["status"] == status)
    });
    row.unwrap()
}

fn patch(admin_port: u16, path: &str) -> (u16, String) {
    http_request(admin_port, "PATCH", path, "").expect("the admin API answers")
}

#[test]
fn paused_invocations_resume_after_a_fix_and_completed_ones_restart_as_new() {
    let dir = TestDir::new("pause-resume");
    let mut node = ServerProcess::new(
        &dir,
        "n1",
        "pause-resume",
        &[
            ("RESTATE_INVOCATION__DEFAULT_RETRY_POLICY__MAX_ATTEMPTS", "3"),
            ("RESTATE_INVOCATION__DEFAULT_RETRY_POLICY__INITIAL_INTERVAL", "2s"),
            ("RESTATE_INVOCATION__DEFAULT_RETRY_POLICY__MAX_INTERVAL", "3s"),
        ],
    );
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let services = ExampleServices::start(&dir);
    let admin = admin_url(&node);
    let admin_port = node.ports.admin;
    restate(&admin, &["dp", "register", &services.uri, "--yes"]).ok();
    let port = node.ports.ingress;

    // Restart as new: the same input runs again under a new id, without the old one's
    // idempotency key.
    let first = send_invocation(port, "/Greeter/greet", "\"Sarah\"", &[("idempotency-key", "greet-sarah")]);
    assert_eq!(attach(port, &first), (200, "\"Hello, Sarah!\"".to_owned()));
    let restarted = restate(&admin, &["invocations", "restart-as-new", &first, "--json"]);
    let new_id = serde_json::from_str::<Value>(restarted.ok())
        .ok()
        .and_then(|v| v["new_invocation_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no new id: {restarted:?}"));
    assert_ne!(new_id, first);
    assert_eq!(attach(port, &new_id), (200, "\"Hello, Sarah!\"".to_owned()));
    let row = wait_for_status(&admin, &new_id, "completed");
    assert!(row["idempotency_key"].is_null(), "{row}");
    let (status, body) = patch(admin_port, &format!("/invocations/{first}/restart-as-new?from=2"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("journal prefix"), "{body}");

    // A suspended invocation paused by hand keeps a signal delivered meanwhile, and
    // completes with it once resumed.
    let waiting = send_invocation(port, "/Signals/waitFor", "\"go\"", &[]);
    wait_for_status(&admin, &waiting, "suspended");
    let paused = restate(&admin, &["invocations", "pause", &waiting]);
    assert!(paused.ok().contains("paused invocation"), "{paused:?}");
    wait_for_status(&admin, &waiting, "paused");
    let journal = |id: &str| {
        let query = format!("SELECT count(*) AS n FROM sys_journal WHERE id = '{id}'");
        let out = restate(&admin, &["sql", "--json", &query]);
        serde_json::from_str::<Value>(&out.stdout).ok().and_then(|v| v["rows"][0]["n"].as_i64()).unwrap_or(0)
    };
    let entries_before = journal(&waiting);
    assert!(entries_before >= 1, "the input is journaled");
    let delivery = serde_json::json!({ "invocation": waiting, "name": "go", "value": "green" }).to_string();
    assert_eq!(http_request(port, "POST", "/Signals/send", &delivery).unwrap().0, 200);
    wait_until("the signal to be in the paused invocation's journal", Duration::from_secs(30), || {
        journal(&waiting) > entries_before
    });
    assert_eq!(invocation_row(&admin, &waiting).unwrap()["status"], "paused", "a signal does not resume it");
    let (status, body) = patch(admin_port, &format!("/invocations/{first}/pause"));
    assert_eq!(status, 409, "a completed invocation cannot be paused: {body}");
    assert!(body.contains("already completed"), "{body}");
    restate(&admin, &["invocations", "resume", &waiting]).ok();
    assert_eq!(attach(port, &waiting), (200, "\"green\"".to_owned()));

    // The deployment goes away: attempts fail and back off, then the invocation is paused
    // after the third; back up, a resume completes it.
    let deployment_port = services.port;
    drop(services);
    let stranded = send_invocation(port, "/Greeter/greet", "\"Bob\"", &[]);
    let backing_off = wait_for_status(&admin, &stranded, "backing-off");
    assert!(backing_off["retry_count"].as_u64().is_some_and(|n| n >= 1), "{backing_off}");
    assert!(!backing_off["last_failure"].is_null() && !backing_off["next_retry_at"].is_null(), "{backing_off}");
    let paused = wait_for_status(&admin, &stranded, "paused");
    assert!(paused["retry_count"].is_null(), "no attempt runs while paused: {paused}");
    let log = node.log();
    assert!(log.contains("pausing the invocation after 3 failed attempts"), "the node says why");
    let _services = ExampleServices::start_on(&dir, deployment_port);
    let resumed = restate(&admin, &["invocations", "resume", &stranded]);
    assert!(resumed.ok().contains("it was paused"), "{resumed:?}");
    assert_eq!(attach(port, &stranded), (200, "\"Hello, Bob!\"".to_owned()));

    // Unknown ids and ids of the wrong state.
    let (status, body) = patch(admin_port, &format!("/invocations/{stranded}/resume"));
    assert_eq!(status, 409, "{body}");
    let (status, body) = patch(admin_port, "/invocations/inv_nope/pause");
    assert_eq!(status, 400, "{body}");
    let (status, body) = patch(admin_port, &format!("/invocations/{first}/resume?deployment=dp_other"));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("latest deployment"), "{body}");
}
