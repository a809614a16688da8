//! An upgrade in place from the previous release (`scripts/previous-server.sh`: partition
//! log records in the JSON format 1, loglet records kept in the raft state machine's memory
//! and snapshots): three nodes run by the previous `restate-server` take invocations, then
//! each is restarted on this build over its own data. Every old invocation's result is
//! served, an invocation suspended before the upgrade completes after it, the logs read
//! back whole (old JSON records, then binary ones) and a node that joins afterwards applies
//! every partition's whole log to the leaders' LSN.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use restate_e2e::services::{admin_url, attach, restate, send_invocation, ExampleServices, REPLICATED_WORKERS};
use restate_e2e::*;
use restate_proto::log_server::{log_server_client::LogServerClient, ReadRequest};
use serde_json::Value;

/// The envelope format byte of the previous release's records (JSON) and of this one's.
const FORMAT_JSON: u8 = 1;
const FORMAT_BINARY: u8 = 2;

fn previous_server() -> PathBuf {
    let path = std::env::var("RESTATE_PREVIOUS_SERVER").unwrap_or_else(|_| {
        panic!(
            "RESTATE_PREVIOUS_SERVER is not set: run `scripts/previous-server.sh` (make e2e-local does) \
             and set it to the path it prints"
        )
    });
    let path = PathBuf::from(path);
    assert!(path.is_file(), "RESTATE_PREVIOUS_SERVER={} is not a file", path.display());
    path
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn output(port: u16, id: &str) -> Option<(u16, String)> {
    http_call(port, "GET", &format!("/restate/invocation/{id}/output"), "", &[], Duration::from_secs(30))
}

fn call(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    http_call(port, "POST", path, body, &[], Duration::from_secs(30))
}

/// Every record's first byte (its envelope format) of every log, read from `node` (any
/// member serves the whole loglet); panics on a gap.
fn record_formats(node: &ServerProcess) -> HashMap<u8, u64> {
    let logs = json(node.ctl(&["logs", "list", "--json"]).ok());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut formats = HashMap::new();
    runtime.block_on(async {
        let mut client = LogServerClient::connect(node.address()).await.unwrap().max_decoding_message_size(64 << 20);
        for log in logs["logs"].as_array().unwrap() {
            let loglet_id = log["loglet_id"].as_u64().unwrap();
            let mut next = 1u64;
            loop {
                let read = ReadRequest { loglet_id, from_lsn: next, max_records: 1000, local: false };
                let batch = client.read(read).await.unwrap_or_else(|e| panic!("reading loglet {loglet_id}: {e}"));
                let batch = batch.into_inner();
                let Some(last) = batch.records.last() else { break };
                for (i, record) in batch.records.iter().enumerate() {
                    assert_eq!(record.lsn, next + i as u64, "loglet {loglet_id} has a gap");
                    *formats.entry(record.payload.first().copied().unwrap_or(0)).or_insert(0u64) += 1;
                }
                next = last.lsn + 1;
            }
        }
    });
    formats
}

#[test]
fn a_cluster_of_the_previous_release_is_upgraded_in_place_and_serves_every_old_result() {
    let previous = previous_server();
    let dir = TestDir::new("upgrade");
    let mut nodes = replicated_cluster(&dir, "upgrade", &["n1", "n2", "n3", "n4"], &REPLICATED_WORKERS);
    let mut joiner = nodes.pop().expect("n4");
    for node in nodes.iter_mut() {
        node.set_binary(Some(previous.clone()));
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    wait_until("the Greeter answers on every node", Duration::from_secs(60), || {
        ports.iter().all(|port| matches!(call(*port, "/Greeter/greet", "\"warm-up\""), Some((200, _))))
    });

    // Invocations of the previous release: calls between services (greetCounted calls
    // Counter), virtual object state, and one left suspended on a signal.
    let mut results = Vec::new();
    for i in 0..24 {
        let port = ports[i % 3];
        let id = send_invocation(port, "/Greeter/greetCounted", &format!("\"guest-{}\"", i % 4), &[]);
        let (status, answer) = attach(port, &id);
        assert_eq!(status, 200, "greetCounted {id} before the upgrade: {answer}");
        results.push((id, answer));
    }
    let waiting = send_invocation(ports[0], "/Signals/waitFor", "\"go\"", &[]);
    wait_until("the signal's waiter to suspend", Duration::from_secs(30), || {
        let listed = restate(&admin_url(&nodes[0]), &["invocations", "list", "--json"]);
        serde_json::from_str::<Value>(&listed.stdout).is_ok_and(|l| {
            l["invocations"]
                .as_array()
                .is_some_and(|all| all.iter().any(|i| i["id"] == waiting.as_str() && i["status"] == "suspended"))
        })
    });

    // The upgrade: each node stopped and started on this build over the same data.
    for node in nodes.iter_mut() {
        node.stop();
        node.set_binary(None);
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);

    for (i, (id, before)) in results.iter().enumerate() {
        let port = ports[(i + 1) % 3];
        let mut last = None;
        wait_until(&format!("the output of {id} after the upgrade"), Duration::from_secs(60), || {
            last = output(port, id);
            matches!(last, Some((200, _)))
        });
        assert_eq!(last.unwrap().1, *before, "{id}'s output after the upgrade");
    }
    for key in 0..4 {
        let (status, count) = call(ports[key % 3], &format!("/Counter/guest-{key}/get"), "").unwrap();
        assert_eq!((status, count.as_str()), (200, "6"), "guest-{key}'s counter after the upgrade");
    }
    let delivery = serde_json::json!({ "invocation": waiting, "name": "go", "value": "green" }).to_string();
    assert_eq!(call(ports[1], "/Signals/send", &delivery).map(|(status, _)| status), Some(200));
    assert_eq!(attach(ports[2], &waiting), (200, "\"green\"".to_owned()));
    for i in 0..12 {
        let (status, answer) = call(ports[i % 3], "/Greeter/greetCounted", "\"guest-0\"").unwrap();
        assert_eq!(status, 200, "greetCounted after the upgrade: {answer}");
    }
    assert_eq!(call(ports[0], "/Counter/guest-0/get", "").unwrap(), (200, "18".to_owned()));

    // The logs hold both formats and read back whole on every node.
    for node in &nodes {
        let formats = record_formats(node);
        println!("{}: records by envelope format {formats:?}", node.name);
        assert!(formats.get(&FORMAT_JSON).copied().unwrap_or(0) > 0, "{}: no JSON records: {formats:?}", node.name);
        assert!(formats.get(&FORMAT_BINARY).copied().unwrap_or(0) > 0, "{}: no binary records: {formats:?}", node.name);
    }

    // A node of this build that joins now follows every partition from its log's start
    // (no snapshots): it decodes every old record or its processors stop short.
    joiner.start_and_wait_healthy();
    wait_for_alive_nodes(&nodes[0], 4);
    wait_until("n4 to apply every partition's whole log", Duration::from_secs(90), || {
        let processors = partition_processors(&nodes[0]);
        let leaders: HashMap<u64, u64> = processors
            .iter()
            .filter(|p| p["mode"] == "leader")
            .map(|p| (p["partition_id"].as_u64().unwrap(), p["applied_lsn"].as_u64().unwrap()))
            .collect();
        let joined: HashMap<u64, u64> = processors
            .iter()
            .filter(|p| p["name"] == "n4")
            .map(|p| (p["partition_id"].as_u64().unwrap(), p["applied_lsn"].as_u64().unwrap()))
            .collect();
        leaders.len() == 4 && leaders.iter().all(|(partition, lsn)| joined.get(partition) >= Some(lsn))
    });
    let log = joiner.log();
    assert!(!log.contains("cannot apply log record"), "n4 failed to apply a record:\n{log}");
}

/// The check the operator runs on a new image before a roll (`restate-server
/// --check-storage-format N`): this build reads its own format and older ones and refuses a
/// newer one naming both; the previous release has no such check and fails it, so an
/// operator never rolls a cluster's data onto it.
#[test]
fn the_storage_format_check_passes_this_build_and_fails_the_previous_release() {
    let check = |binary: &std::path::Path, format: u32| {
        let out = std::process::Command::new(binary)
            .args(["--check-storage-format", &format.to_string()])
            .env_remove("RESTATE_CONFIG")
            .output()
            .expect("run restate-server --check-storage-format");
        (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let current = bin("restate-server");
    for format in [1, 2] {
        let (code, out) = check(&current, format);
        assert_eq!(code, Some(0), "format {format}: {out}");
    }
    let (code, out) = check(&current, 3);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("storage format 3") && out.contains("up to 2"), "{out}");
    let (code, out) = check(&previous_server(), 2);
    assert_ne!(code, Some(0), "the previous release passed the check: {out}");
}
