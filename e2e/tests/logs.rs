//! `restatectl logs` against a real node: listing, describing, and trimming errors.

use restate_e2e::*;

#[test]
fn logs_are_listed_described_and_bad_trims_refused() {
    let dir = TestDir::new("logs");
    // No worker: the logs stay empty (a partition leader would announce itself in them).
    let mut node = ServerProcess::new(&dir, "n1", "logs", &[LOG_ONLY_ROLES, ("RESTATE_DEFAULT_NUM_PARTITIONS", "3")]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);

    let list = node.ctl(&["logs", "list", "--json"]).json();
    let logs = list["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 3);
    for log in logs {
        assert_eq!(log["kind"], "local");
        assert_eq!(log["replication"], 1);
        assert_eq!(log["nodeset"], serde_json::json!(["N1"]));
        assert_eq!(log["leader"], "N1");
        assert_eq!(log["from_lsn"], 1);
        assert_eq!(log["tail"], 1);
    }
    let text = node.ctl(&["logs", "list"]);
    assert!(text.ok().starts_with("LOG"), "{}", text.stdout);
    let described = node.ctl(&["logs", "describe", "--log-id", "2"]);
    assert!(described.ok().contains("BASE-LSN"), "{}", described.stdout);

    let empty = node.ctl(&["logs", "trim", "--log-id", "1", "--trim-point", "5", "--yes"]);
    assert_eq!(empty.code, 1);
    assert!(empty.stderr.contains("5"), "{}", empty.stderr);
    let unknown = node.ctl(&["logs", "describe", "--log-id", "77"]);
    assert_eq!(unknown.code, 1);
    assert!(unknown.stderr.contains("log 77 does not exist"), "{}", unknown.stderr);
}
