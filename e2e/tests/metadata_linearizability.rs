//! Concurrent compare-and-put clients against a 3-node replicated metadata store while
//! nodes are killed and restarted; the recorded history must be linearizable
//! (checker: `restate_e2e::linearizability`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_e2e::linearizability::{Call, CheckResult, HistoryRecorder, Outcome, Precondition};
use restate_e2e::*;

const KEYS: [&str; 3] = ["x", "y", "z"];

/// A tiny deterministic PRNG (xorshift64*), so runs are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// "... is at version 3; ..." -> Some(3); "... is absent; ..." -> None.
fn current_version_in(stderr: &str) -> Option<Option<u32>> {
    if stderr.contains("is absent") {
        return Some(None);
    }
    let rest = stderr.split("is at version ").nth(1)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok().map(Some)
}

fn run_client(client: u32, addresses: Vec<String>, recorder: HistoryRecorder, stop: Arc<AtomicBool>, ops: usize) {
    let mut rng = Rng(0x9E3779B97F4A7C15 ^ u64::from(client + 1));
    let mut seen: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    for n in 0..ops {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let address = &addresses[rng.below(addresses.len() as u64) as usize];
        let key = KEYS[rng.below(KEYS.len() as u64) as usize];
        if rng.below(2) == 0 {
            let handle = recorder.invoke(client, Call::Get { key: key.into() });
            let out = restatectl(address, &["metadata", "get", "--key", key, "--json"]);
            if out.code == 0 {
                let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
                let version = v["version"].as_u64().unwrap() as u32;
                seen.insert(key, version);
                handle.complete(Outcome::Found { value: v["value"].as_str().unwrap().to_owned(), version });
            } else if out.stderr.contains("has no value") {
                handle.complete(Outcome::NotFound);
            } else {
                handle.unknown();
            }
        } else {
            let expected = match seen.get(key) {
                Some(v) => Precondition::MatchesVersion(*v),
                None => Precondition::DoesNotExist,
            };
            let version_arg = match expected {
                Precondition::MatchesVersion(v) => v.to_string(),
                _ => "0".to_owned(),
            };
            let value = format!("c{client}-{n}");
            let handle = recorder.invoke(client, Call::Put { key: key.into(), value: value.clone(), expected });
            let out = restatectl(
                address,
                &["metadata", "put", "--key", key, "--value", &value, "--version", &version_arg, "--json"],
            );
            if out.code == 0 {
                let version =
                    serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()["version"].as_u64().unwrap() as u32;
                seen.insert(key, version);
                handle.complete(Outcome::Written(version));
            } else if let Some(current) = current_version_in(&out.stderr) {
                match current {
                    Some(v) => seen.insert(key, v),
                    None => seen.remove(key),
                };
                handle.complete(Outcome::PreconditionFailed(current));
            } else {
                handle.unknown();
            }
        }
    }
}

#[test]
fn compare_and_put_history_under_node_kills_is_linearizable() {
    let dir = TestDir::new("linearizable");
    let mut nodes = replicated_cluster(&dir, "lin", &["n1", "n2", "n3"], &[]);
    let addresses: Vec<String> = nodes.iter().map(|n| n.address()).collect();
    for node in nodes.iter_mut() {
        node.start_and_wait_healthy();
    }
    wait_for_alive_nodes(&nodes[0], 3);
    // All three must be voters before the chaos starts, so a kill never loses quorum.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = nodes[0].ctl(&["metadata-server", "list-servers", "--json"]);
        let voters = serde_json::from_str::<serde_json::Value>(&out.stdout).ok().and_then(|v| {
            v["servers"].as_array().map(|s| {
                s.iter()
                    .filter(|s| s["status"] == "member")
                    .map(|s| s["members"].as_array().map_or(0, |m| m.iter().filter(|m| m["voter"] == true).count()))
                    .min()
                    .unwrap_or(0)
            })
        });
        if voters == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "members never became 3 voters: {}", out.stdout);
        std::thread::sleep(Duration::from_millis(200));
    }

    let recorder = HistoryRecorder::new();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u32)
        .map(|client| {
            let (addresses, recorder, stop) = (addresses.clone(), recorder.clone(), stop.clone());
            std::thread::spawn(move || run_client(client, addresses, recorder, stop, 60))
        })
        .collect();

    // Chaos: kill -9 one node at a time and bring it back, twice.
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(700));
        let victim = (round * 2) % 3;
        nodes[victim].kill();
        std::thread::sleep(Duration::from_millis(1200));
        nodes[victim].start_and_wait_healthy();
    }
    for client in clients {
        client.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);

    // Final reads once everything is back: every acknowledged write is visible.
    wait_for_alive_nodes(&nodes[0], 3);
    for key in KEYS {
        let handle = recorder.invoke(99, Call::Get { key: key.into() });
        let out = nodes[1].ctl(&["metadata", "get", "--key", key, "--json"]);
        if out.code == 0 {
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            handle.complete(Outcome::Found {
                value: v["value"].as_str().unwrap().to_owned(),
                version: v["version"].as_u64().unwrap() as u32,
            });
        } else {
            assert!(out.stderr.contains("has no value"), "final read failed: {}", out.stderr);
            handle.complete(Outcome::NotFound);
        }
    }

    let history = recorder.history();
    let acknowledged = history.iter().filter(|op| matches!(op.result, Some(Outcome::Written(_)))).count();
    let unknown = history.iter().filter(|op| op.result.is_none()).count();
    eprintln!(
        "history: {} operations, {acknowledged} acknowledged writes, {unknown} with unknown outcome",
        history.len()
    );
    assert!(acknowledged >= 10, "too few successful writes to mean anything: {acknowledged}");
    match recorder.check() {
        CheckResult::Linearizable => {}
        failure => panic!("history is not linearizable:\n{failure}"),
    }
}
