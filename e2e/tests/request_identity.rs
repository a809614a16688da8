//! Request identity: a node with `request-identity-private-key-pem-file` (a key made as
//! Restate's docs say, `openssl genpkey -algorithm ed25519`) logs its public key at start
//! and signs every request to deployments. The Python SDK (PyPI `restate-sdk`) configured
//! with that key (`identity_keys`) serves the node's discovery and invocations, and refuses
//! unsigned requests and requests signed by another key (a second node with its own key
//! cannot register it). A key file that is not an Ed25519 key stops the node at start
//! (exit 2) naming the file, never its content. A deployment's additional header value is
//! masked in `GET /deployments` and `restatectl metadata get`, survives a masked
//! get/put round trip, and, like the private key, appears in no log or API answer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use restate_e2e::services::{admin_url, restate, AsgiServer, PythonServices};
use restate_e2e::*;

/// The value of a deployment's additional header: a credential for the endpoint.
const HEADER_SECRET: &str = "hdr-s3cr3t-7f2a9c";

/// A fresh Ed25519 key in `path`, made as Restate's docs say.
fn make_key(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-outform", "pem", "-out"])
        .arg(path)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl genpkey: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(path).unwrap()
}

/// The body of a PEM key: the lines between its armour.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

/// The public key the node logged at start.
fn logged_key_id(node: &ServerProcess) -> String {
    let mut key = None;
    wait_until("the node to log its request identity key", Duration::from_secs(30), || {
        let log = node.log();
        key = log.split("identity key ").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned);
        key.is_some()
    });
    let key = key.unwrap().trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_').to_owned();
    assert!(key.starts_with("publickeyv1_"), "{key}");
    key
}

#[test]
fn deployments_with_identity_keys_serve_only_the_clusters_signed_requests() {
    let dir = TestDir::new("request-identity");
    let key_file = dir.path().join("private.pem");
    let private = make_key(&key_file);
    let key_path = key_file.to_str().unwrap().to_owned();

    let mut node =
        ServerProcess::new(&dir, "n1", "identity", &[("RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE", &key_path)]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let key_id = logged_key_id(&node);

    let services = PythonServices::start_with_env(&dir, AsgiServer::Hypercorn, &[("IDENTITY_KEYS", &key_id)]);
    let service_port: u16 = services.uri.rsplit(':').next().unwrap().parse().unwrap();

    // Unsigned requests are refused by the SDK.
    let (status, _) = http_get(service_port, "/discover").expect("the deployment answers");
    assert_eq!(status, 401, "an unsigned discovery request");

    // The node's own requests are signed: discovery, then invocations. The deployment is
    // registered with an additional header whose value is a secret.
    let register =
        format!(r#"{{"uri": "{}", "additional_headers": {{"x-api-key": "{HEADER_SECRET}"}}}}"#, services.uri);
    let (status, answer) = http_request(node.ports.admin, "POST", "/deployments", &register).unwrap();
    assert!(status == 201 || status == 200, "{status}: {answer}");
    assert!(answer.contains("Greeter") && !answer.contains(HEADER_SECRET), "{answer}");
    let port = node.ports.ingress;
    wait_until("the Greeter to answer through the signed requests", Duration::from_secs(60), || {
        http_call(port, "POST", "/Greeter/greet", "\"Ada\"", &[], Duration::from_secs(30))
            == Some((200, "\"Hello, Ada!\"".to_owned()))
    });
    assert_eq!(
        http_call(port, "POST", "/Counter/signed/add", "3", &[], Duration::from_secs(30)),
        Some((200, "3".to_owned()))
    );

    // A node of another cluster (another key) is refused by the same deployment.
    let other_key = dir.path().join("other.pem");
    make_key(&other_key);
    let mut other = ServerProcess::new(
        &dir,
        "other",
        "other-cluster",
        &[("RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE", other_key.to_str().unwrap())],
    );
    other.start_and_wait_healthy();
    wait_for_alive_nodes(&other, 1);
    assert_ne!(logged_key_id(&other), key_id);
    let refused = restate(&admin_url(&other), &["dp", "register", &services.uri, "--yes"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("401"), "the refusal names the deployment's answer: {}", refused.stderr);
    other.stop();

    // A key file that is not an Ed25519 key: the node does not start, and says which file.
    let bad = dir.path().join("not-a-key.pem");
    std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1ub3QtYS1rZXk=\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let out = Command::new(bin("restate-server"))
        .current_dir(dir.path())
        .env("RESTATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE", &bad)
        .env("RESTATE_BIND_ADDRESS", format!("127.0.0.1:{}", free_port()))
        .env("RESTATE_ADMIN__BIND_ADDRESS", format!("127.0.0.1:{}", free_port()))
        .env("RESTATE_INGRESS__BIND_ADDRESS", format!("127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not-a-key.pem") && stderr.contains("openssl genpkey"), "{stderr}");
    assert!(!stderr.contains("c2VjcmV0"), "the error shows the key's content: {stderr}");

    // `metadata get` masks the header's value; writing the masked schema back (an edit
    // round trip) keeps the stored value: registering the same URI with the same header
    // is still "unchanged", not a conflict.
    let schema = node.ctl(&["metadata", "get", "--key", "schema", "--json"]);
    let schema: serde_json::Value = serde_json::from_str(schema.ok()).unwrap();
    let text = schema["value"].to_string();
    assert!(text.contains("x-api-key") && text.contains("***") && !text.contains(HEADER_SECRET), "{text}");
    let version = schema["version"].as_u64().unwrap().to_string();
    node.ctl(&["metadata", "put", "--key", "schema", "--value", &text, "--version", &version]).ok();
    let (status, again) = http_request(node.ports.admin, "POST", "/deployments", &register).unwrap();
    assert_eq!(status, 200, "the header survived the masked round trip: {again}");

    // The private key and the header secret appear in no log and no API answer.
    let body = pem_body(&private);
    let (_, deployments) = http_get(node.ports.admin, "/deployments").unwrap();
    let (_, metrics) = http_get(node.ports.fabric, "/metrics").unwrap();
    for (what, text) in [("the node's log", node.log()), ("GET /deployments", deployments), ("/metrics", metrics)] {
        assert!(!text.contains(&body), "{what} holds the private key");
        assert!(!text.contains(HEADER_SECRET), "{what} holds the deployment's header secret");
    }
}
