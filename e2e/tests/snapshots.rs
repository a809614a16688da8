//! Partition snapshots in a real S3-compatible server (moto), log trimming behind them,
//! and nodes that restore from them: a wiped node and a new, empty one.

use std::time::Duration;

use restate_e2e::s3::{snapshot_env, MotoServer};
use restate_e2e::services::{admin_url, restate, ExampleServices, REPLICATED_WORKERS};
use restate_e2e::*;
use serde_json::Value;

const BUCKET: &str = "restate-snapshots";
const PREFIX: &str = "cluster-a";
const KEYS: usize = 8;

fn as_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Trim point of every log, by log id.
/// Adds 1 through the counter handler `path` at the ingress on `port`, retried under the
/// idempotency key `key` until one attempt is answered 200 (so it counts once).
fn add_once(port: u16, path: &str, key: &str) {
    wait_until(&format!("the add {key} to succeed"), Duration::from_secs(60), || {
        let answer = http_call(port, "POST", path, "1", &[("idempotency-key", key)], Duration::from_secs(30));
        matches!(answer, Some((200, _)))
    });
}

fn trim_points(node: &ServerProcess) -> Vec<(u64, u64)> {
    let logs = node.ctl(&["logs", "list", "--json"]).json();
    logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["log_id"].as_u64().unwrap(), l["trim_point"].as_u64().unwrap_or(0)))
        .collect()
}

fn counter(port: u16, key: usize) -> Option<String> {
    http_call(port, "POST", &format!("/Counter/k{key}/get"), "", &[], Duration::from_secs(20))
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
}

/// Waits until `name` runs a processor of each of `partitions` partitions that has
/// applied at least `at_least[p]`.
fn wait_caught_up(observer: &ServerProcess, name: &str, at_least: &[(u64, u64)]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let last = partition_processors(observer);
        let caught_up = at_least.iter().all(|(partition, lsn)| {
            last.iter().any(|p| {
                p["name"] == name && p["partition_id"] == *partition && p["applied_lsn"].as_u64() >= Some(*lsn)
            })
        });
        if caught_up {
            return;
        }
        if std::time::Instant::now() > deadline {
            let status = observer.ctl(&["status", "--json"]).stdout;
            panic!("{name}'s processors did not catch up to {at_least:?} within 120 s: {last:#?}\nstatus: {status}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn snapshots_go_to_s3_logs_are_trimmed_and_wiped_and_new_nodes_restore() {
    let dir = TestDir::new("snapshots-s3");
    let moto = MotoServer::start(&dir);
    moto.create_bucket(BUCKET);
    let mut env = snapshot_env(&moto, BUCKET, PREFIX);
    env.extend(REPLICATED_WORKERS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let env = as_refs(&env);
    let mut nodes = replicated_cluster(&dir, "snap", &["n1", "n2", "n3"], &env);
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&nodes[0]), &["dp", "register", &services.uri, "--yes"]).ok();

    // Five adds on each of eight counters, through all three ingresses.
    for i in 0..KEYS * 5 {
        add_once(nodes[i % 3].ports.ingress, &format!("/Counter/k{}/add", i % KEYS), &format!("add-{i}"));
    }

    // Snapshot every partition and trim the logs behind the snapshots.
    let out = nodes[0].ctl(&["snapshots", "create", "--trim-log", "--json"]);
    let created = out.json();
    let created = created.as_array().unwrap_or_else(|| panic!("{out:?}"));
    assert_eq!(created.len(), 4, "{created:#?}");
    let mut snapshot_lsns = Vec::new();
    for snapshot in created {
        assert!(snapshot["error"].is_null(), "{snapshot}");
        assert!(snapshot["snapshot_id"].as_str().unwrap().starts_with("snap_"), "{snapshot}");
        let lsn = snapshot["lsn"].as_u64().unwrap();
        let trim_point = snapshot["trim_point"].as_u64().unwrap();
        assert!(lsn > 0 && trim_point > 0 && trim_point <= lsn, "{snapshot}");
        snapshot_lsns.push((snapshot["partition_id"].as_u64().unwrap(), snapshot["log_id"].as_u64().unwrap(), lsn));
    }
    // Trimming reaches the snapshots' LSNs once every live replica applied that far.
    wait_until("every log to be trimmed up to its snapshot", Duration::from_secs(60), || {
        let trimmed = trim_points(&nodes[0]);
        snapshot_lsns.iter().all(|(_, log, lsn)| trimmed.iter().any(|(id, point)| id == log && point >= lsn))
    });
    let keys = moto.keys(BUCKET, &format!("{PREFIX}/"));
    for (partition, _, lsn) in &snapshot_lsns {
        let latest_key = format!("{PREFIX}/{partition}/latest.json");
        let latest = moto.get(BUCKET, &latest_key).unwrap_or_else(|| panic!("no {latest_key} in {keys:?}"));
        let latest: Value = serde_json::from_str(&latest).unwrap_or_else(|e| panic!("{latest_key}: {e}: {latest}"));
        assert_eq!(latest["lsn"].as_u64(), Some(*lsn), "{latest:#}");
        assert!(
            keys.iter().any(|k| k.starts_with(&format!("{PREFIX}/{partition}/")) && k.ends_with("snapshot.sst")),
            "{keys:?}"
        );
    }
    let text = nodes[0].ctl(&["partitions", "list"]).ok().to_owned();
    assert!(text.contains("ARCHIVED-LSN"), "{text}");
    let archived: Vec<u64> =
        partition_processors(&nodes[0]).iter().filter_map(|p| p["archived_lsn"].as_u64()).collect();
    assert!(!archived.is_empty(), "leaders report their archived LSN");
    // Metrics show archived LSNs (per processor) and trim points (per log).
    let mut metrics = String::new();
    for node in &nodes {
        metrics.push_str(&http_get(node.ports.fabric, "/metrics").unwrap().1);
    }
    let archived_metric = metrics
        .lines()
        .filter(|l| l.starts_with("restate_partition_lsn{") && l.contains("kind=\"archived\""))
        .any(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v > 0));
    assert!(archived_metric, "restate_partition_lsn{{kind=\"archived\"}} > 0 on some node");
    assert!(
        metrics.lines().any(|l| l.starts_with("restate_bifrost_trim_point{") && !l.ends_with(" 0")),
        "trim points in metrics"
    );

    // n3 loses its data and comes back with the same name and address.
    let wanted: Vec<(u64, u64)> = snapshot_lsns.iter().map(|(p, _, lsn)| (*p, *lsn)).collect();
    assert!(nodes[2].stop().success());
    std::fs::remove_dir_all(nodes[2].base_dir.join("n3")).expect("wipe n3");
    nodes[2].start_and_wait_healthy();
    wait_caught_up(&nodes[0], "n3", &wanted);
    assert!(nodes[2].log().contains("restored from a snapshot"), "n3 restored its partitions from the snapshots");
    for key in 0..KEYS {
        let mut value = None;
        wait_until("n3's ingress to serve the counter", Duration::from_secs(60), || {
            value = counter(nodes[2].ports.ingress, key);
            value.is_some()
        });
        assert_eq!(value.unwrap(), "5", "counter k{key} through the wiped node");
    }

    // A fourth node joins empty: the logs' beginnings are gone, it restores.
    let mut n4 = ServerProcess::new(&dir, "n4", "snap", &env);
    n4.set_env("RESTATE_METADATA_SERVER__TYPE", "replicated");
    let members = format!("[{}]", nodes.iter().map(|n| format!("\"{}\"", n.address())).collect::<Vec<_>>().join(","));
    n4.set_env("RESTATE_METADATA_CLIENT__ADDRESSES", &members);
    let advertised = n4.address();
    n4.set_env("RESTATE_ADVERTISED_ADDRESS", &advertised);
    n4.set_env("RESTATE_AUTO_PROVISION", "false");
    n4.start_and_wait_healthy();
    wait_caught_up(&nodes[0], "n4", &wanted);
    assert!(n4.log().contains("restored from a snapshot"), "n4 restored its partitions from the snapshots");
    let (status, body) = http_request(n4.ports.ingress, "POST", "/Counter/k0/add", "1").unwrap();
    assert_eq!((status, body.as_str()), (200, "6"), "state from before the snapshot, through the new node");
}

/// A misconfigured repository: its name, the nodes' env, texts the error must contain.
type BadRepositoryCase<'a> = (&'a str, Vec<(String, String)>, &'a [&'a str]);

/// Snapshot problems are clear errors naming what failed; the node keeps serving and no
/// log is trimmed without a snapshot.
#[test]
fn snapshot_repository_problems_are_clear_and_trim_nothing() {
    let dir = TestDir::new("snapshots-bad");
    let moto = MotoServer::start(&dir);
    moto.create_bucket(BUCKET);
    let services = ExampleServices::start(&dir);
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let strict = MotoServer::start_rejecting_credentials(&dir);
    let cases: [BadRepositoryCase; 3] = [
        (
            "unreachable endpoint",
            snapshot_env(&moto, BUCKET, PREFIX)
                .into_iter()
                .map(|(k, v)| if k.ends_with("AWS_ENDPOINT_URL") { (k, nowhere.clone()) } else { (k, v) })
                .collect(),
            &[nowhere.as_str()],
        ),
        ("missing bucket", snapshot_env(&moto, "no-such-bucket", PREFIX), &["no-such-bucket"]),
        ("wrong credentials", snapshot_env(&strict, BUCKET, PREFIX), &["aws-access-key-id", BUCKET]),
    ];
    for (case, env, expected) in cases {
        let node_dir = TestDir::new(&format!("snapshots-bad-{}", case.replace(' ', "-")));
        let mut node = ServerProcess::new(&node_dir, "n1", "bad", &as_refs(&env));
        node.start_and_wait_healthy();
        wait_for_alive_nodes(&node, 1);
        restate(&admin_url(&node), &["dp", "register", &services.uri, "--yes"]).ok();
        // The partitions start after each one's snapshot lookup failed (slowly, against a
        // repository that refuses): the add waits for its partition, retried under one key.
        add_once(node.ports.ingress, "/Counter/a/add", "bad-repository-add");

        let out = node.ctl(&["snapshots", "create", "--trim-log"]);
        assert_eq!(out.code, 1, "{case}: {out:?}");
        for text in expected {
            assert!(out.stderr.contains(text) || out.stdout.contains(text), "{case}: expected {text:?} in {out:?}");
        }
        assert!(trim_points(&node).iter().all(|(_, point)| *point == 0), "{case}: nothing trimmed");
        node.assert_running();
        assert_eq!(
            http_request(node.ports.ingress, "POST", "/Counter/a/add", "1").unwrap(),
            (200, "2".into()),
            "{case}"
        );
    }

    // An unknown scheme is a configuration error at startup, naming the key.
    let node_dir = TestDir::new("snapshots-bad-scheme");
    let mut node =
        ServerProcess::new(&node_dir, "n1", "bad", &[("RESTATE_WORKER__SNAPSHOTS__DESTINATION", "ftp://host/x")]);
    node.start();
    let status = node.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{}", node.log());
    assert!(node.log().contains("worker.snapshots.destination") && node.log().contains("s3://"), "{}", node.log());
}

/// The seed's migration guide end to end: a single node with local metadata and local
/// loglets, holding data, is restarted with replicated metadata and a snapshot
/// destination; its logs move to replicated loglets, a snapshot is taken, two nodes
/// join through its address and replication is raised to 2. Every invocation result
/// and object state from before is still served, by every node.
#[test]
fn a_single_node_with_data_grows_into_a_cluster_through_a_snapshot() {
    let dir = TestDir::new("grow-snapshot");
    let moto = MotoServer::start(&dir);
    moto.create_bucket(BUCKET);
    let mut n1 = ServerProcess::new(&dir, "n1", "grow", &[("RESTATE_DEFAULT_NUM_PARTITIONS", "4")]);
    n1.start_and_wait_healthy();
    wait_for_alive_nodes(&n1, 1);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&n1), &["dp", "register", &services.uri, "--yes"]).ok();
    for i in 0..12 {
        let (status, _) = http_request(n1.ports.ingress, "POST", &format!("/Counter/k{}/add", i % 4), "1").unwrap();
        assert_eq!(status, 200);
    }
    let (status, sent) = http_request(n1.ports.ingress, "POST", "/Ticket/issue/send", "\"before\"").unwrap();
    assert_eq!(status, 202, "{sent}");
    let id = serde_json::from_str::<Value>(&sent).unwrap()["invocationId"].as_str().unwrap().to_owned();
    let attach = format!("/restate/invocation/{id}/attach");
    let (status, ticket) = http_call(n1.ports.ingress, "GET", &attach, "", &[], Duration::from_secs(30)).unwrap();
    assert_eq!(status, 200, "{ticket}");

    // Restart with replicated metadata and snapshots, move the logs, snapshot.
    assert!(n1.stop().success());
    n1.set_env("RESTATE_METADATA_SERVER__TYPE", "replicated");
    for (key, value) in snapshot_env(&moto, BUCKET, "grow") {
        n1.set_env(&key, &value);
    }
    n1.start_and_wait_healthy();
    wait_for_alive_nodes(&n1, 1);
    n1.ctl(&["config", "set", "--log-provider", "replicated", "--log-replication", "1"]).ok();
    let snapshots = n1.ctl(&["snapshots", "create", "--json"]);
    assert_eq!(snapshots.json().as_array().map(Vec::len), Some(4), "{snapshots:?}");

    // Two nodes join through n1's address; replication goes to 2.
    let list = format!("[\"{}\"]", n1.address());
    let mut joiners: Vec<ServerProcess> = ["n2", "n3"]
        .iter()
        .map(|name| {
            let mut node = ServerProcess::new(
                &dir,
                name,
                "grow",
                &[
                    ("RESTATE_METADATA_SERVER__TYPE", "replicated"),
                    ("RESTATE_METADATA_CLIENT__ADDRESSES", &list),
                    ("RESTATE_AUTO_PROVISION", "false"),
                ],
            );
            for (key, value) in snapshot_env(&moto, BUCKET, "grow") {
                node.set_env(&key, &value);
            }
            node
        })
        .collect();
    for node in joiners.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&n1, 3);
    let raised = n1.ctl(&["config", "set", "--log-replication", "2", "--json"]).json();
    assert_eq!(raised["log_replication"], 2, "{raised:#}");

    for node in std::iter::once(&n1).chain(joiners.iter()) {
        for key in 0..4 {
            let mut value = None;
            wait_until("the counter to be served", Duration::from_secs(60), || {
                value = counter(node.ports.ingress, key);
                value.is_some()
            });
            assert_eq!(value.unwrap(), "3", "counter k{key} through {}", node.name);
        }
        let output = format!("/restate/invocation/{id}/output");
        assert_eq!(
            http_call(node.ports.ingress, "GET", &output, "", &[], Duration::from_secs(30)),
            Some((200, ticket.clone())),
            "the ticket issued before the migration, through {}",
            node.name
        );
    }
    let (status, body) = http_request(joiners[1].ports.ingress, "POST", "/Counter/k0/add", "1").unwrap();
    assert_eq!((status, body.as_str()), (200, "4"));
}

/// kill -9 of a node while it exports and uploads snapshots, at several moments: every
/// `latest.json` in the bucket afterwards points at a complete snapshot (metadata and
/// data present, data of the recorded size), and no acknowledged add is lost.
#[test]
fn a_node_killed_during_uploads_never_publishes_an_incomplete_snapshot() {
    let dir = TestDir::new("snapshots-kill");
    let moto = MotoServer::start(&dir);
    moto.create_bucket(BUCKET);
    let env = snapshot_env(&moto, BUCKET, "killed");
    let mut node = ServerProcess::new(&dir, "n1", "killed", &as_refs(&env));
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let services = ExampleServices::start(&dir);
    restate(&admin_url(&node), &["dp", "register", &services.uri, "--yes"]).ok();

    let mut adds = 0;
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        for _ in 0..20 {
            let mut answer = None;
            wait_until("an add to succeed", Duration::from_secs(60), || {
                answer = http_call(node.ports.ingress, "POST", "/Counter/total/add", "1", &[], Duration::from_secs(30));
                matches!(answer, Some((200, _)))
            });
            adds += 1;
        }
        let mut snapshot = std::process::Command::new(bin("restatectl"))
            .args(["--address", &node.address(), "snapshots", "create"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The fault: a kill at a chosen moment of the export/upload.
        std::thread::sleep(Duration::from_millis(delay_ms));
        node.kill();
        let _ = snapshot.wait();

        for key in moto.keys(BUCKET, "killed/").iter().filter(|k| k.ends_with("/latest.json")) {
            let latest: Value = serde_json::from_str(&moto.get(BUCKET, key).unwrap()).unwrap();
            let metadata_key = latest["metadata_key"].as_str().unwrap();
            let metadata =
                moto.get(BUCKET, metadata_key).unwrap_or_else(|| panic!("{key} points at missing {metadata_key}"));
            let metadata: Value = serde_json::from_str(&metadata).unwrap();
            let data_key = metadata["data_key"].as_str().unwrap();
            assert_eq!(
                moto.size(BUCKET, data_key),
                metadata["size_bytes"].as_u64(),
                "{key} points at {data_key}, which must be complete (delay {delay_ms} ms)"
            );
        }
        node.start_and_wait_healthy();
    }
    // Nothing acknowledged was lost across the kills.
    let published = moto.keys(BUCKET, "killed/").iter().filter(|k| k.ends_with("/latest.json")).count();
    assert!(published > 0, "at least one snapshot was published across the kills");
    let mut total = None;
    wait_until("the total to be served", Duration::from_secs(60), || {
        total = http_call(node.ports.ingress, "POST", "/Counter/total/get", "", &[], Duration::from_secs(20))
            .filter(|(s, _)| *s == 200)
            .map(|(_, b)| b);
        total.is_some()
    });
    assert_eq!(total.unwrap(), adds.to_string());
}
