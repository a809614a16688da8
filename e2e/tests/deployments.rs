//! Deployments and services through the admin API and the `restate` CLI, against the real
//! restate-sdk services of `example-services`.

use std::time::{Duration, Instant};

use restate_e2e::services::{admin_url, restate, ExampleServices, EXAMPLE_SERVICES};
use restate_e2e::*;
use serde_json::Value;

fn single_node(dir: &TestDir) -> ServerProcess {
    let mut node = ServerProcess::new(dir, "n1", "deployments", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    node
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `(status, body as JSON)` of an admin request.
fn admin_request(node: &ServerProcess, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http_request(node.ports.admin, method, path, body)
        .unwrap_or_else(|| panic!("admin API of {} did not answer {method} {path}", node.name));
    (status, json(&text))
}

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn register_list_and_register_again_on_one_node() {
    let dir = TestDir::new("deployments");
    let node = single_node(&dir);
    let services = ExampleServices::start(&dir);
    let admin = admin_url(&node);

    let out = restate(&admin, &["dp", "register", &services.uri, "--yes"]);
    let text = out.ok();
    for expected in ["Greeter", "Counter", "Ticket", "greet", "add", "get", "issue", "registered"] {
        assert!(text.contains(expected), "missing {expected} in: {text}");
    }

    let deployments = restate(&admin, &["deployments", "list", "--json"]).json();
    let list = deployments["deployments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{deployments:#}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("dp_"), "{id}");
    assert_eq!(list[0]["uri"], services.uri.as_str());
    assert_eq!(names(&list[0]["services"]), EXAMPLE_SERVICES);

    let listed = restate(&admin, &["services", "list", "--json"]).json();
    let by_name = |name: &str| -> Value {
        listed["services"].as_array().unwrap().iter().find(|s| s["name"] == name).cloned().unwrap_or_else(|| {
            panic!("{name} not listed: {listed:#}");
        })
    };
    assert_eq!(by_name("Greeter")["ty"], "SERVICE");
    assert_eq!(by_name("Ticket")["ty"], "SERVICE");
    let counter = by_name("Counter");
    assert_eq!(counter["ty"], "VIRTUAL_OBJECT");
    assert_eq!(counter["deployment_id"], id.as_str());
    assert_eq!(counter["revision"], 1);
    let handlers: Vec<(String, String)> = counter["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap().to_owned(), h["ty"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(handlers, [("add".into(), "EXCLUSIVE".into()), ("get".into(), "SHARED".into())]);

    // Registering the same URI again is a no-op that answers the same id.
    let again = restate(&admin, &["deployments", "register", &services.uri, "--yes", "--json"]).json();
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["outcome"], "unchanged");
    let text = restate(&admin, &["deployment", "register", &services.uri, "--yes"]);
    assert!(text.ok().contains("nothing changed"), "{}", text.stdout);
    let deployments = restate(&admin, &["dp", "list", "--json"]).json();
    assert_eq!(deployments["deployments"].as_array().unwrap().len(), 1);

    // The admin API directly: the same registration through POST answers 200 and the id.
    let (status, body) = admin_request(&node, "POST", "/deployments", &format!("{{\"uri\": \"{}\"}}", services.uri));
    assert_eq!((status, body["id"].as_str()), (200, Some(id.as_str())), "{body:#}");
    let (status, body) = admin_request(&node, "GET", &format!("/deployments/{id}"), "");
    assert_eq!(status, 200);
    let counter = body["services"].as_array().unwrap().iter().find(|s| s["name"] == "Counter").cloned();
    assert_eq!(counter.unwrap_or_else(|| panic!("no Counter: {body:#}"))["handlers"][0]["name"], "add");
    let (status, body) = admin_request(&node, "GET", "/services/Greeter", "");
    assert_eq!((status, body["ty"].as_str()), (200, Some("SERVICE")));

    // A deployment that still serves services is removed only with force.
    let refused = restate(&admin, &["dp", "remove", &id, "--yes"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("still serves") && refused.stderr.contains("409"), "{}", refused.stderr);
    restate(&admin, &["dp", "remove", &id, "--force", "--yes"]).ok();
    let listed = restate(&admin, &["services", "list", "--json"]).json();
    assert_eq!(listed["services"].as_array().unwrap().len(), 0, "{listed:#}");
    assert_eq!(admin_request(&node, "GET", "/services/Greeter", "").0, 404);
}

#[test]
fn unreachable_and_invalid_input_are_clear_errors() {
    let dir = TestDir::new("deployments-errors");
    let node = single_node(&dir);
    let admin_address = admin_url(&node);

    // Nothing listens at this URI.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let out = restate(&admin_address, &["dp", "register", &nowhere, "--yes"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(&nowhere), "the error names the URI: {}", out.stderr);
    assert!(out.stderr.contains("connect"), "the error says what failed: {}", out.stderr);
    let listed = restate(&admin_address, &["services", "list", "--json"]).json();
    assert_eq!(listed["services"].as_array().unwrap().len(), 0, "nothing was registered: {listed:#}");

    // Bad request bodies: 400 naming the problem.
    let (status, body) = admin_request(&node, "POST", "/deployments", "{\"uri\": ");
    assert_eq!(status, 400, "{body:#}");
    assert!(body["message"].as_str().unwrap().contains("not valid JSON"), "{body:#}");
    let (status, body) = admin_request(&node, "POST", "/deployments", "{\"url\": \"http://127.0.0.1:9080\"}");
    assert_eq!(status, 400, "{body:#}");
    assert!(body["message"].as_str().unwrap().contains("url"), "{body:#}");
    let (status, body) = admin_request(&node, "POST", "/deployments", "{\"uri\": \"ftp://127.0.0.1:9080\"}");
    assert_eq!(status, 400, "{body:#}");
    assert!(body["message"].as_str().unwrap().contains("ftp"), "{body:#}");
    let (status, body) = admin_request(&node, "POST", "/deployments", &format!("{{\"uri\": \"{nowhere}\"}}"));
    assert_eq!(status, 502, "{body:#}");

    // Unknown ids and names: 404.
    let (status, body) = admin_request(&node, "DELETE", "/deployments/dp_unknown", "");
    assert_eq!(status, 404, "{body:#}");
    assert!(body["message"].as_str().unwrap().contains("dp_unknown"), "{body:#}");
    assert_eq!(admin_request(&node, "GET", "/deployments/dp_unknown", "").0, 404);
    assert_eq!(admin_request(&node, "GET", "/services/Nope", "").0, 404);
    assert_eq!(admin_request(&node, "DELETE", "/deployments/dp_unknown?force=maybe", "").0, 400);

    // An admin API that does not answer: one line naming it.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = restate(&closed, &["services", "list"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains(&format!("cannot reach the admin API at {closed}")), "{}", out.stderr);
}

#[test]
fn a_registration_through_one_node_is_visible_through_every_node() {
    let dir = TestDir::new("deployments-cluster");
    let mut nodes = replicated_cluster(&dir, "deployments", &["n1", "n2", "n3"], &[]);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(&dir);

    let registered = restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes", "--json"]).json();
    let registered_at = Instant::now();
    let id = registered["id"].as_str().unwrap().to_owned();
    assert_eq!(registered["outcome"], "created", "{registered:#}");

    // Every node's metadata view holds the registration within 1 s (pushed by the metadata
    // leader), and its ingress routes the seed's curl from the view: no read of the schema
    // from the metadata store.
    const VIEW_SCHEMA: &str = r#"restate_metadata_view_version{object="schema"}"#;
    const SCHEMA_READS: &str = r#"restate_metadata_reads_total{kind="linearizable",object="schema"}"#;
    let written = metric_value(&nodes[0], VIEW_SCHEMA).expect("the registering node's view holds the schema");
    assert!(written >= 1.0, "schema version {written}");
    for node in &nodes[1..] {
        let left = Duration::from_secs(1).saturating_sub(registered_at.elapsed());
        wait_until(&format!("{}'s view to hold schema version {written}", node.name), left, || {
            metric_value(node, VIEW_SCHEMA).is_some_and(|v| v >= written)
        });
    }
    for node in &nodes[1..] {
        let reads_before = metric_value(node, SCHEMA_READS).unwrap_or(0.0);
        let (status, body) = http_request(node.ports.ingress, "POST", "/Greeter/greet", "\"View\"").unwrap();
        assert_eq!((status, body.as_str()), (200, "\"Hello, View!\""), "through {}", node.name);
        assert_eq!(
            metric_value(node, SCHEMA_READS).unwrap_or(0.0),
            reads_before,
            "{} read the schema from the store",
            node.name
        );
    }

    for node in &nodes[1..] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let answer = http_get(node.ports.admin, "/services");
            let listed = answer.as_ref().filter(|(status, _)| *status == 200).map(|(_, body)| json(body));
            if let Some(listed) = &listed {
                let services = listed["services"].as_array().unwrap();
                if services.len() == EXAMPLE_SERVICES.len()
                    && services.iter().all(|s| s["deployment_id"] == id.as_str())
                {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "{} never listed the services of {id}: {answer:?}", node.name);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Registering again through another node is the same no-op.
    let again = restate(&admin_url(&nodes[2]), &["dp", "register", &services.uri, "--yes", "--json"]).json();
    assert_eq!((again["id"].as_str(), again["outcome"].as_str()), (Some(id.as_str()), Some("unchanged")));

    // The seed's three curls: Greeter through every node's ingress (partitions are led by
    // all three nodes, so most calls cross to another node's leader).
    for (node, name) in nodes.iter().zip(["Sarah", "Bob", "Eve"]) {
        let (status, body) =
            http_request(node.ports.ingress, "POST", "/Greeter/greet", &format!("\"{name}\"")).unwrap();
        assert_eq!((status, body), (200, format!("\"Hello, {name}!\"")), "through {}", node.name);
    }
    // Every partition runs on all three workers, one of them leading.
    let mut last = Value::Null;
    wait_until("one leader and two followers per partition", Duration::from_secs(30), || {
        last = nodes[1].ctl(&["partitions", "list", "--json"]).json();
        let rows = last["partitions"].as_array().cloned().unwrap_or_default();
        let mut per_partition: std::collections::BTreeMap<u64, (usize, usize)> = Default::default();
        for row in &rows {
            let entry = per_partition.entry(row["partition_id"].as_u64().unwrap()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(row["mode"] == "leader");
        }
        !per_partition.is_empty() && per_partition.values().all(|(n, leaders)| *n == 3 && *leaders == 1)
    });
    assert!(last["partitions"][0]["epoch"].as_u64() >= Some(1), "{last:#}");
    let text = nodes[0].ctl(&["partitions", "list"]).ok().to_owned();
    assert!(text.contains("PARTITION") && text.contains("leader") && text.contains("follower"), "{text}");

    // One counter, added to through every node: each add sees the previous ones.
    for (i, node) in nodes.iter().cycle().take(6).enumerate() {
        let (status, body) = http_request(node.ports.ingress, "POST", "/Counter/shared/add", "1").unwrap();
        assert_eq!((status, body), (200, (i + 1).to_string()), "through {}", node.name);
    }
}

/// Ingress routing against the registered services: every bad request gets its 4xx with
/// a message naming what is wrong; a valid invocation runs.
#[test]
fn ingress_refuses_bad_requests_with_the_right_status() {
    let dir = TestDir::new("ingress-bad-input");
    let mut node = ServerProcess::new(&dir, "n1", "ingress", &[("RESTATE_INGRESS__REQUEST_BODY_SIZE_LIMIT", "2 KiB")]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&node), &["dp", "register", &services.uri, "--yes"]).ok();

    let port = node.ports.ingress;
    let big = format!("\"{}\"", "x".repeat(4096));
    let cases: [(&str, &str, &str, u16, &str); 9] = [
        ("POST", "/Nope/greet", "\"a\"", 404, "service 'Nope' not found"),
        ("POST", "/Greeter/wave", "\"a\"", 404, "no handler 'wave'"),
        ("POST", "/Counter/add", "1", 404, "/Counter/{key}/{handler}"),
        ("GET", "/Greeter/greet", "", 405, "use POST"),
        ("POST", "/Greeter/greet/extra/more", "", 404, "unknown ingress path"),
        ("POST", "/restate/health", "", 405, "accepts GET"),
        ("GET", "/restate/invocation/inv_unknown/output", "", 400, "is not an invocation id"),
        ("POST", "/Greeter/greet", &big, 413, "request-body-size-limit"),
        ("POST", "/Greeter/greet", "\"Sarah\"", 200, "Hello, Sarah!"),
    ];
    for (method, path, body, status, text) in cases {
        let (got, answer) = http_request(port, method, path, body).unwrap();
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(answer.contains(text), "{method} {path}: {answer}");
    }
    assert_eq!(http_get(port, "/restate/health").unwrap().0, 200);
}

/// The seed's quickstart on one node: Greeter through the ingress, Counter state kept per
/// key, `/send` answers an id at once, an idempotency key returns the original result,
/// and `ctx.run` runs its side effect once.
#[test]
fn invocations_run_through_the_ingress() {
    let dir = TestDir::new("invocations");
    let node = single_node(&dir);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&node), &["dp", "register", &services.uri, "--yes"]).ok();
    let port = node.ports.ingress;

    let (status, body) = http_request(port, "POST", "/Greeter/greet", "\"Sarah\"").unwrap();
    assert_eq!((status, body.as_str()), (200, "\"Hello, Sarah!\""));

    for expected in 1..=3 {
        let (status, body) = http_request(port, "POST", "/Counter/alice/add", "1").unwrap();
        assert_eq!((status, body), (200, expected.to_string()));
    }
    let (status, body) = http_request(port, "POST", "/Counter/bob/add", "5").unwrap();
    assert_eq!((status, body.as_str()), (200, "5"), "keys have their own state");
    let (status, body) = http_request(port, "POST", "/Counter/alice/get", "").unwrap();
    assert_eq!((status, body.as_str()), (200, "3"));

    let (status, body) = http_request(port, "POST", "/Counter/carol/add/send", "7").unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(json(&body)["invocationId"].as_str().unwrap().starts_with("inv_"), "{body}");
    wait_until("the sent add to apply", Duration::from_secs(30), || {
        http_request(port, "POST", "/Counter/carol/get", "").is_some_and(|(s, b)| s == 200 && b == "7")
    });

    let (status, first) = http_request(port, "POST", "/Ticket/issue", "\"t\"").unwrap();
    assert_eq!(status, 200, "{first}");
    assert!(first.starts_with("\"t-"), "{first}");
}

/// `PATCH /deployments/{id}` moves a deployment to a new address keeping its id: an
/// invocation that started on the old endpoint finishes on the new one; a different set
/// of services, another deployment's URI and unknown ids are refused.
#[test]
fn a_deployment_moves_to_a_new_address_without_losing_running_invocations() {
    let dir = TestDir::new("deployment-update");
    let mut node = single_node(&dir);
    let admin = admin_url(&node);
    let old = ExampleServices::start(&dir);
    restate(&admin, &["dp", "register", &old.uri, "--yes"]).ok();
    let id = restate(&admin, &["dp", "list", "--json"]).json()["deployments"][0]["id"].as_str().unwrap().to_owned();
    let port = node.ports.ingress;

    // Started on the old endpoint (it sleeps 3 s between its two rounds).
    let (status, sent) = http_request(port, "POST", "/Ticket/issueAndHold/send", "\"moving\"").unwrap();
    assert_eq!(status, 202, "{sent}");
    let invocation = json(&sent)["invocationId"].as_str().unwrap().to_owned();

    let new = ExampleServices::start(&dir);
    let (status, body) =
        admin_request(&node, "PATCH", &format!("/deployments/{id}"), &format!("{{\"uri\": \"{}\"}}", new.uri));
    assert_eq!(status, 200, "{body:#}");
    assert_eq!((body["id"].as_str(), body["uri"].as_str()), (Some(id.as_str()), Some(new.uri.as_str())));
    drop(old);
    let (status, ticket) =
        http_call(port, "GET", &format!("/restate/invocation/{invocation}/attach"), "", &[], Duration::from_secs(60))
            .unwrap();
    assert_eq!(status, 200, "{ticket}");
    assert!(ticket.starts_with("\"moving-"), "{ticket}");
    assert_eq!(http_request(port, "POST", "/Greeter/greet", "\"Ann\"").unwrap(), (200, "\"Hello, Ann!\"".to_owned()));

    // Refusals: an unknown id, a bad body, an address that is another deployment.
    let (status, body) =
        admin_request(&node, "PATCH", "/deployments/dp_nope", &format!("{{\"uri\": \"{}\"}}", new.uri));
    assert_eq!(status, 404, "{body:#}");
    let (status, body) = admin_request(&node, "PATCH", &format!("/deployments/{id}"), "{\"url\": \"x\"}");
    assert_eq!(status, 400, "{body:#}");
    assert!(body["message"].as_str().unwrap().contains("unknown field `url`"), "{body:#}");
    let other = ExampleServices::start(&dir);
    let (status, _) =
        admin_request(&node, "PUT", &format!("/deployments/{id}"), &format!("{{\"uri\": \"{}\"}}", other.uri));
    assert_eq!(status, 200, "PUT updates too");
    node.assert_running();
}
