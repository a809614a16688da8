//! SQL over the cluster: three nodes (replication 2, 4 partitions), each with the PostgreSQL
//! listener (`[admin.query-engine] pgsql-bind-address`). The real `psql` client, connected
//! to ONE node, sees the registered services and deployments, the suspended invocations of
//! every partition whichever node leads them, the state of a virtual object led by another
//! node, which invocation holds each waiting object, and journals joined with invocations; the same answers come through `POST
//! /query` on another node and `restate sql` on the third. Bad input (syntax errors,
//! unknown tables and columns, DDL, too many rows, garbage on the PostgreSQL port, a client
//! that disconnects mid-query) gets a clear error and the nodes keep serving.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use restate_e2e::services::{admin_url, leader_of_invocation, restate, ExampleServices, REPLICATED_WORKERS};
use restate_e2e::*;
use serde_json::Value;

/// `psql` against `port` (any user and database): (exit code, stdout, stderr). Rows are
/// printed unaligned, `|`-separated, without headers.
fn psql(port: u16, sql: &str) -> (i32, String, String) {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "operator", "-d", "restate", "-X", "-A", "-t"])
        .args(["-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .expect("run psql (Debian package postgresql-client)");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn psql_rows(port: u16, sql: &str) -> Vec<Vec<String>> {
    let (code, stdout, stderr) = psql(port, sql);
    assert_eq!(code, 0, "psql {sql}: {stderr}");
    stdout.lines().filter(|l| !l.is_empty()).map(|l| l.split('|').map(str::to_owned).collect()).collect()
}

fn query(admin_port: u16, sql: &str) -> (u16, Value) {
    let body = serde_json::json!({ "query": sql }).to_string();
    let (status, answer) = http_request(admin_port, "POST", "/query", &body).expect("the admin API answers");
    (status, serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}")))
}

fn send(port: u16, path: &str, body: &str) -> String {
    let mut id = None;
    wait_until(&format!("{path}/send to be accepted"), Duration::from_secs(60), || {
        id = http_call(port, "POST", &format!("{path}/send"), body, &[], Duration::from_secs(30))
            .filter(|(status, _)| *status == 202)
            .and_then(|(_, answer)| serde_json::from_str::<Value>(&answer).ok())
            .and_then(|v| v["invocationId"].as_str().map(str::to_owned));
        id.is_some()
    });
    id.unwrap()
}

#[test]
fn psql_query_and_restate_sql_see_every_partition_from_any_node() {
    let dir = TestDir::new("sql");
    let mut nodes = replicated_cluster(&dir, "sql", &["n1", "n2", "n3"], &REPLICATED_WORKERS);
    let pg_ports: Vec<u16> = nodes.iter().map(|_| free_port()).collect();
    for (node, port) in nodes.iter_mut().zip(&pg_ports) {
        node.set_env("RESTATE_ADMIN__QUERY_ENGINE__PGSQL_BIND_ADDRESS", &format!("127.0.0.1:{port}"));
        node.set_env("RESTATE_ADMIN__QUERY_ENGINE__MAX_ROWS", "1000");
    }
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();

    // Invocations that suspend (each waits on an awakeable), spread over the partitions
    // until some are led by a node other than n1 (the one psql talks to).
    let ingress = nodes[0].ports.ingress;
    let mut suspended = BTreeSet::new();
    let mut elsewhere = 0;
    for i in 0..12 {
        let id = send(ingress, &format!("/Approval/order-{i}/request"), "\"order\"");
        if leader_of_invocation(&nodes, &id) != 0 {
            elsewhere += 1;
        }
        suspended.insert(id);
        if elsewhere >= 2 && suspended.len() >= 4 {
            break;
        }
    }
    assert!(elsewhere >= 1, "no invocation is led by another node than n1");
    wait_until("every waiting invocation to be suspended", Duration::from_secs(60), || {
        let rows = psql_rows(pg_ports[0], "SELECT id FROM sys_invocation WHERE status = 'suspended'");
        rows.iter().map(|r| r[0].clone()).collect::<BTreeSet<_>>() == suspended
    });

    // Through n1's PostgreSQL port: services, deployments, a join.
    let services_rows = psql_rows(pg_ports[0], "SELECT name, ty FROM sys_service ORDER BY name");
    assert!(services_rows.contains(&vec!["Approval".to_owned(), "virtual_object".to_owned()]), "{services_rows:?}");
    assert!(services_rows.contains(&vec!["Greeter".to_owned(), "service".to_owned()]), "{services_rows:?}");
    let deployments = psql_rows(pg_ports[0], "SELECT id, endpoint FROM sys_deployment");
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0][1], services.uri);
    let joined = psql_rows(
        pg_ports[0],
        "SELECT i.target_service_key, s.deployment_id FROM sys_invocation i \
         JOIN sys_service s ON s.name = i.target_service_name WHERE i.status = 'suspended' ORDER BY 1",
    );
    assert_eq!(joined.len(), suspended.len(), "{joined:?}");
    assert!(joined.iter().all(|r| r[1] == deployments[0][0] && r[0].starts_with("order-")), "{joined:?}");

    // A virtual object's state, its partition led by another node than n1.
    let mut remote_key = None;
    for i in 0..12 {
        let key = format!("sql-{i}");
        let id = send(ingress, &format!("/Counter/{key}/add"), "5");
        if leader_of_invocation(&nodes, &id) != 0 {
            remote_key = Some(key);
            break;
        }
    }
    let remote_key = remote_key.expect("a Counter key led by another node than n1");
    let state_query = format!(
        "SELECT key, value_utf8, value_length FROM state WHERE service_name = 'Counter' AND service_key = '{remote_key}'"
    );
    wait_until("the counter's state to be stored", Duration::from_secs(60), || {
        psql_rows(pg_ports[0], &state_query) == [vec!["count".to_owned(), "5".to_owned(), "1".to_owned()]]
    });
    // The same state through `restate kv get` (a point lookup) on n2.
    let kv = restate(&admin_url(&nodes[1]), &["kv", "get", "Counter", &remote_key]);
    assert!(kv.ok().contains("count") && kv.stdout.contains('5'), "{}", kv.stdout);
    // Editing state through the admin API: a stale version is refused, the current one
    // replaces it, `restate kv clear` empties it (and the counter starts again from 0).
    let state_path = format!("/services/Counter/state/{remote_key}");
    let (_, current) = http_get(nodes[2].ports.admin, &state_path).unwrap();
    let current: Value = serde_json::from_str(&current).unwrap();
    assert_eq!(current["state_utf8"]["count"], "5", "{current}");
    let stale =
        serde_json::json!({ "object_key": remote_key, "new_state": {"count": [57]}, "version": "v0000000000000000" });
    let (status, answer) =
        http_request(nodes[2].ports.admin, "POST", "/services/Counter/state", &stale.to_string()).unwrap();
    assert_eq!(status, 409, "{answer}");
    let edit =
        serde_json::json!({ "object_key": remote_key, "new_state": {"count": [57]}, "version": current["version"] });
    let (status, answer) =
        http_request(nodes[2].ports.admin, "POST", "/services/Counter/state", &edit.to_string()).unwrap();
    assert_eq!(status, 202, "{answer}");
    wait_until("the edited state to be applied", Duration::from_secs(30), || {
        psql_rows(pg_ports[0], &state_query) == [vec!["count".to_owned(), "9".to_owned(), "1".to_owned()]]
    });
    let cleared = restate(&admin_url(&nodes[1]), &["kv", "clear", "Counter", &remote_key, "--yes"]);
    assert!(cleared.ok().contains("cleared 1"), "{}", cleared.stdout);
    wait_until("the state to be cleared", Duration::from_secs(30), || psql_rows(pg_ports[0], &state_query).is_empty());
    let (status, answer) =
        http_call(ingress, "POST", &format!("/Counter/{remote_key}/add"), "2", &[], Duration::from_secs(30)).unwrap();
    assert_eq!((status, answer.as_str()), (200, "2"), "the counter starts again from 0");
    let (status, answer) =
        http_request(nodes[2].ports.admin, "POST", "/services/Greeter/state", &edit.to_string()).unwrap();
    assert_eq!(status, 400, "a plain service has no state: {answer}");

    // Who holds each waiting Approval object, and each suspended invocation's journal.
    let holders = psql_rows(
        pg_ports[0],
        "SELECT k.service_key, i.status FROM sys_keyed_service_status k \
         JOIN sys_invocation i ON i.id = k.invocation_id WHERE k.service_name = 'Approval' ORDER BY 1",
    );
    assert_eq!(holders.len(), suspended.len(), "{holders:?}");
    assert!(holders.iter().all(|r| r[1] == "suspended"), "{holders:?}");
    let journal = psql_rows(
        pg_ports[0],
        "SELECT j.id, count(*) FROM sys_journal j JOIN sys_invocation i ON i.id = j.id \
         WHERE i.status = 'suspended' GROUP BY j.id",
    );
    assert_eq!(journal.len(), suspended.len(), "every suspended invocation has a journal: {journal:?}");
    let entry_types = psql_rows(pg_ports[0], "SELECT DISTINCT entry_type FROM sys_journal ORDER BY 1");
    assert!(entry_types.iter().any(|r| r[0].contains("Command")), "{entry_types:?}");

    // The same through POST /query on n2 and restate sql on n3.
    let (status, answer) = query(nodes[1].ports.admin, "SELECT id FROM sys_invocation WHERE status = 'suspended'");
    assert_eq!(status, 200, "{answer}");
    let ids: BTreeSet<String> =
        answer["rows"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, suspended);
    assert_eq!(answer["columns"], serde_json::json!(["id"]));
    let cli = restate(
        &admin_url(&nodes[2]),
        &["sql", "SELECT target_service_name, count(*) AS n FROM sys_invocation GROUP BY target_service_name"],
    );
    assert!(cli.ok().contains("TARGET_SERVICE_NAME") && cli.stdout.contains("Approval"), "{}", cli.stdout);
    let ctl = nodes[2].ctl(&["sql", "SELECT name FROM sys_service WHERE name = 'Greeter'"]);
    assert!(ctl.ok().contains("NAME") && ctl.stdout.contains("Greeter"), "restatectl sql: {}", ctl.stdout);
    let ctl_bad = nodes[2].ctl(&["sql", "SELECT * FROM nowhere"]);
    assert_eq!(ctl_bad.code, 1, "{ctl_bad:?}");
    assert!(ctl_bad.stderr.contains("nowhere"), "{}", ctl_bad.stderr);
    let cli_json = restate(&admin_url(&nodes[2]), &["sql", "--json", "SELECT count(*) AS n FROM sys_service"]);
    let cli_json: Value = serde_json::from_str(cli_json.ok()).unwrap();
    assert!(cli_json["rows"][0]["n"].as_i64().unwrap() >= 4, "{cli_json}");

    // Purge: a completed (idempotent) invocation is forgotten at once; a running one is not.
    let headers = [("idempotency-key", "sql-purge")];
    let (status, _) =
        http_call(ingress, "POST", "/Greeter/greet", "\"Purge\"", &headers, Duration::from_secs(30)).unwrap();
    assert_eq!(status, 200);
    let completed = psql_rows(pg_ports[0], "SELECT id FROM sys_invocation WHERE idempotency_key = 'sql-purge'");
    assert_eq!(completed.len(), 1, "{completed:?}");
    let purged = restate(&admin_url(&nodes[1]), &["invocations", "purge", &completed[0][0], "--yes"]);
    assert!(purged.ok().contains("purged"), "{}", purged.stdout);
    wait_until("the purged invocation to be gone", Duration::from_secs(30), || {
        psql_rows(pg_ports[0], "SELECT id FROM sys_invocation WHERE idempotency_key = 'sql-purge'").is_empty()
    });
    let running = suspended.iter().next().unwrap();
    let refused = restate(&admin_url(&nodes[1]), &["invocations", "purge", running, "--yes"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("not completed"), "{}", refused.stderr);

    // Bad input: clear errors with a SQLSTATE; nothing breaks.
    let (code, _, stderr) = psql(pg_ports[0], "SELEC * FROM sys_service");
    assert_ne!(code, 0);
    assert!(stderr.contains("ERROR") && stderr.contains("42000"), "{stderr}");
    let (code, _, stderr) = psql(pg_ports[0], "SELECT * FROM no_such_table");
    assert_ne!(code, 0);
    assert!(stderr.contains("no_such_table"), "{stderr}");
    let (code, _, stderr) = psql(pg_ports[0], "SELECT no_such_column FROM sys_service");
    assert_ne!(code, 0);
    assert!(stderr.contains("no_such_column"), "{stderr}");
    let (code, _, stderr) = psql(pg_ports[0], "CREATE TABLE t AS SELECT 1");
    assert_ne!(code, 0, "DDL is refused");
    assert!(stderr.contains("ERROR"), "{stderr}");
    let (status, answer) = query(nodes[1].ports.admin, "SELECT * FROM generate_series(1, 5000)");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("more than 1000 rows"), "{answer}");
    let (status, answer) = query(nodes[1].ports.admin, "SELECT FROM WHERE");
    assert_eq!(status, 400, "{answer}");
    let (status, _) = http_request(nodes[1].ports.admin, "POST", "/query", "not json").unwrap();
    assert_eq!(status, 400);
    // Garbage on the PostgreSQL port, and a client that goes away mid-query.
    for garbage in [&b"\x00\x00\x00\x08garbage!"[..], b"GET / HTTP/1.1\r\n\r\n", &[0xffu8; 64][..]] {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", pg_ports[0])) {
            let _ = stream.write_all(garbage);
        }
    }
    let mut child = Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &pg_ports[0].to_string(), "-U", "x", "-d", "y", "-c"])
        .arg("SELECT * FROM sys_invocation CROSS JOIN sys_service")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(psql_rows(pg_ports[0], "SELECT count(*) FROM sys_deployment"), [vec!["1".to_owned()]]);
    for node in nodes.iter_mut() {
        node.assert_running();
    }
}
