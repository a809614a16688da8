//! Durable invocations while a node dies: 3 nodes, replication 2, the example services
//! registered once; 1000 `Counter.add` calls with idempotency keys spread over the three
//! ingresses while one node is killed -9 and restarted. A call that fails is sent again
//! (same key) through another node. Afterwards the counter equals the number of adds:
//! nothing lost, nothing counted twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_e2e::services::three_workers_with_services;
use restate_e2e::*;

/// POST with an idempotency key; (status, body) or None on any transport failure.
fn post(port: u16, path: &str, body: &str, idempotency_key: &str) -> Option<(u16, String)> {
    http_call(port, "POST", path, body, &[("idempotency-key", idempotency_key)], Duration::from_secs(40))
}

const ADDS: usize = 1000;
const CLIENTS: usize = 4;

#[test]
fn counter_adds_survive_a_node_kill_exactly_once() {
    let dir = TestDir::new("invocations-failure");
    let (mut nodes, _services) = three_workers_with_services(&dir, "invocations");
    let ports: Vec<u16> = nodes.iter().map(|n| n.ports.ingress).collect();
    wait_until("the first add to succeed", Duration::from_secs(60), || {
        post(ports[0], "/Counter/total/add", "0", "warm-up").is_some_and(|(s, _)| s == 200)
    });

    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (next, acknowledged, ports) = (next.clone(), acknowledged.clone(), ports.clone());
            std::thread::spawn(move || {
                let mut attempt = client;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= ADDS {
                        return;
                    }
                    let deadline = Instant::now() + Duration::from_secs(120);
                    loop {
                        attempt += 1;
                        let port = ports[attempt % ports.len()];
                        if let Some((200, _)) = post(port, "/Counter/total/add", "1", &format!("add-{i}")) {
                            acknowledged.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        assert!(Instant::now() < deadline, "add {i} never succeeded");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    // Kill a node once a third of the adds are in, restart it at two thirds.
    wait_until("a third of the adds", Duration::from_secs(120), || acknowledged.load(Ordering::SeqCst) >= ADDS / 3);
    nodes[2].kill();
    wait_until("two thirds of the adds", Duration::from_secs(180), || {
        acknowledged.load(Ordering::SeqCst) >= 2 * ADDS / 3
    });
    nodes[2].start_and_wait_healthy();
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(acknowledged.load(Ordering::SeqCst), ADDS);

    // Every ingress, including the restarted node's, reads the same total.
    for port in &ports {
        let mut last = None;
        wait_until("the total to be readable", Duration::from_secs(60), || {
            last = post(*port, "/Counter/total/get", "", &format!("get-{port}-{}", rand_suffix()));
            last.as_ref().is_some_and(|(s, _)| *s == 200)
        });
        assert_eq!(last.unwrap().1, ADDS.to_string(), "through ingress port {port}");
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}
