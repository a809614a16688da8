//! Every listener keeps its limits against slow and idle clients: half-sent requests (a
//! header fragment every two seconds) on the ingress and admin ports, and a connection to
//! the node port that never sends a byte, are closed within 30 s (the default request
//! header timeout is 10 s); 2,000 idle connections to the node port do not keep `/health`
//! from answering within a second.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use restate_e2e::*;

/// Sends a request head in fragments, one every 2 s, until the server closes the
/// connection; how long that took (`None`: still open after `give_up`).
fn trickle(port: u16, give_up: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = Instant::now();
    let mut fragment = 0;
    let mut next_send = Instant::now();
    while started.elapsed() < give_up {
        if Instant::now() >= next_send {
            let bytes =
                if fragment == 0 { "GET /health HTTP/1.1\r\n".to_owned() } else { format!("x-slow-{fragment}: 1\r\n") };
            if stream.write_all(bytes.as_bytes()).is_err() {
                return Some(started.elapsed());
            }
            fragment += 1;
            next_send += Duration::from_secs(2);
        }
        let mut buf = [0u8; 256];
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {} // an error response before the close is fine
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Connects and sends nothing; how long until the server closes the connection.
fn silent(port: u16, give_up: Duration) -> Option<Duration> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(give_up)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(_) => Some(started.elapsed()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => None,
        Err(_) => Some(started.elapsed()),
    }
}

#[test]
fn slow_and_idle_clients_are_cut_off_and_health_keeps_answering() {
    let dir = TestDir::new("listener-limits");
    let mut node = ServerProcess::new(&dir, "n1", "limits", &[]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let (ingress, admin, fabric) = (node.ports.ingress, node.ports.admin, node.ports.fabric);

    let give_up = Duration::from_secs(30);
    let mut slow: Vec<_> = [ingress, ingress, ingress, admin, admin, admin]
        .into_iter()
        .map(|port| (port, std::thread::spawn(move || trickle(port, give_up))))
        .collect();
    slow.push((fabric, std::thread::spawn(move || silent(fabric, give_up))));
    for (port, client) in slow {
        let closed = client.join().unwrap();
        println!("slow client on port {port}: closed after {closed:?}");
        assert!(closed.is_some(), "a slow client on port {port} was still connected after {give_up:?}");
    }

    // 2,000 idle connections, held by a helper process (its own file-descriptor budget).
    let mut holder = Command::new("python3")
        .args([
            "-c",
            "import resource, socket, sys\n\
             soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n\
             resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\n\
             held = [socket.create_connection(('127.0.0.1', int(sys.argv[1]))) for _ in range(2000)]\n\
             print(len(held), flush=True)\n\
             sys.stdin.read()\n",
            &fabric.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(holder.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "2000", "the helper opened 2,000 connections");
    for _ in 0..5 {
        let asked = Instant::now();
        let answer = http_get(fabric, "/health");
        let took = asked.elapsed();
        assert_eq!(answer.map(|(status, _)| status), Some(200), "/health with 2,000 idle connections open");
        assert!(took < Duration::from_secs(1), "/health took {took:?} with 2,000 idle connections open");
    }
    drop(holder.stdin.take());
    let _ = holder.wait();
    node.assert_running();
    let status = node.ctl(&["status", "--json"]).json();
    assert!(reports_alive_nodes(&status, 1), "{status:#}");
}
