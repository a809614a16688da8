//! Mutual TLS on the node port (`[networking] tls-cert-file`, `tls-key-file`,
//! `tls-ca-file`), with certificates made by `openssl` as an operator would: three nodes,
//! each with its own certificate of one CA, form a cluster with replicated metadata and logs
//! and serve invocations; `restatectl --address https://...` with a client certificate works.
//! `/health` and `/metrics` answer TLS clients without a certificate; RPCs without one are
//! refused UNAUTHENTICATED; plaintext gets nothing; `restatectl` given an `https://` address
//! but no TLS fails instead of falling back to plaintext. A node whose certificate comes from
//! another CA cannot join (its handshakes fail both ways) and the cluster is unchanged.
//! Changed certificate files are picked up without a restart.

use std::time::Duration;

use restate_e2e::services::{greets, ExampleServices, REPLICATED_WORKERS};
use restate_e2e::tls::{tls_env, Pki};
use restate_e2e::*;

#[test]
fn three_nodes_and_restatectl_speak_mutual_tls_and_another_ca_cannot_join() {
    let dir = TestDir::new("mutual-tls");
    let pki = Pki::new(dir.path(), "cluster-ca");
    let certificates: Vec<_> = ["n1", "n2", "n3"].iter().map(|n| pki.issue(n)).collect();
    let operator = pki.issue("operator");

    let shared: Vec<(&str, String)> = tls_env(&pki.ca, &certificates[0]);
    let mut env: Vec<(&str, &str)> = REPLICATED_WORKERS.to_vec();
    env.extend(shared.iter().map(|(k, v)| (*k, v.as_str())));
    let mut nodes = replicated_cluster(&dir, "mtls", &["n1", "n2", "n3"], &env);
    for (node, issued) in nodes.iter_mut().zip(&certificates) {
        for (key, value) in tls_env(&pki.ca, issued) {
            node.set_env(key, &value);
        }
        assert!(node.address().starts_with("https://"), "{}", node.address());
    }
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    wait_for_metadata_voters(&nodes[0], 3);
    let services = ExampleServices::start(&dir);
    let admin = format!("http://127.0.0.1:{}", nodes[0].ports.admin);
    restate_e2e::services::restate(&admin, &["dp", "register", &services.uri, "--yes"]).ok();
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    wait_until("the Greeter answers on every node", Duration::from_secs(60), || {
        ports.iter().all(|port| greets(*port, "over-tls"))
    });

    // Orchestrators and Prometheus: TLS without a client certificate.
    assert_eq!(nodes[0].fabric_get("/health").map(|(s, _)| s), Some(200));
    let (status, metrics) = nodes[0].fabric_get("/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("restate_fabric_unauthenticated_requests_total 0"), "{metrics}");
    // Plaintext gets nothing from a TLS port.
    assert!(http_get(nodes[0].ports.fabric, "/health").is_none_or(|(s, _)| s != 200));

    // restatectl: with the operator's certificate, over https://.
    let address = nodes[1].address();
    let ca = pki.ca.to_str().unwrap();
    let with_cert = [
        "--tls-ca-file",
        ca,
        "--tls-cert-file",
        operator.cert.to_str().unwrap(),
        "--tls-key-file",
        operator.key.to_str().unwrap(),
    ];
    let status = restatectl(&address, &[&with_cert[..], &["status", "--json"]].concat());
    assert_eq!(status.code, 0, "{status:?}");
    assert!(reports_alive_nodes(&status.json(), 3), "{}", status.stdout);
    // The CA alone (no client certificate): the connection is made, the RPC refused.
    let no_cert = restatectl(&address, &["--tls-ca-file", ca, "status"]);
    assert_eq!(no_cert.code, 1, "{no_cert:?}");
    assert!(no_cert.stderr.contains("client certificate"), "{}", no_cert.stderr);
    // No TLS at all against https://: an error, never plaintext.
    let plain = restatectl(&address, &["status"]);
    assert_eq!(plain.code, 1, "{plain:?}");
    assert!(plain.stderr.contains("no TLS is configured"), "{}", plain.stderr);
    let refused = metric_value(&nodes[1], "restate_fabric_unauthenticated_requests_total").unwrap();
    assert!(refused >= 1.0, "the refusal is counted: {refused}");

    // A node with a certificate of another CA cannot join, and changes nothing.
    let other = Pki::new(dir.path(), "other-ca");
    let intruder_cert = other.issue("intruder");
    let mut intruder = ServerProcess::new(&dir, "intruder", "mtls", &env);
    for (key, value) in tls_env(&other.ca, &intruder_cert) {
        intruder.set_env(key, &value);
    }
    intruder.set_env("RESTATE_METADATA_CLIENT__ADDRESSES", &format!("[\"{}\"]", nodes[0].address()));
    intruder.set_env("RESTATE_AUTO_PROVISION", "false");
    intruder.set_env("RESTATE_METADATA_SERVER__TYPE", "replicated");
    intruder.start();
    wait_until("the intruder to fail its TLS handshakes", Duration::from_secs(60), || {
        intruder.assert_running();
        intruder.log().contains("tls error")
    });
    // Its certificate is refused by the cluster's nodes too (a client of another CA).
    let foreign = restatectl(
        &address,
        &[
            "--tls-ca-file",
            ca,
            "--tls-cert-file",
            intruder_cert.cert.to_str().unwrap(),
            "--tls-key-file",
            intruder_cert.key.to_str().unwrap(),
            "status",
        ],
    );
    assert_eq!(foreign.code, 1, "{foreign:?}");
    let status = nodes[0].ctl(&["status", "--json"]).json();
    let names: Vec<&str> = status["nodes"].as_array().unwrap().iter().filter_map(|n| n["name"].as_str()).collect();
    assert!(!names.contains(&"intruder"), "the intruder registered: {status:#}");
    wait_for_metadata_voters(&nodes[0], 3);
    intruder.stop();

    // New certificate files are used without a restart: n3's certificate is replaced by
    // one of the same CA; new connections to n3 (restatectl's) work with it.
    let renewed = pki.issue("n3-renewed");
    std::fs::copy(&renewed.cert, &certificates[2].cert).unwrap();
    std::fs::copy(&renewed.key, &certificates[2].key).unwrap();
    wait_until("n3 to load its renewed certificate", Duration::from_secs(30), || {
        nodes[2].log().contains("reloaded the node port's TLS certificate")
    });
    let after = restatectl(&nodes[2].address(), &[&with_cert[..], &["status", "--json"]].concat());
    assert_eq!(after.code, 0, "{after:?}");
    for (i, port) in ports.iter().enumerate() {
        assert!(greets(*port, &format!("after-{i}")), "node {i} serves at the end");
    }
}
