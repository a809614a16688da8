//! A deployment that answers 200 and then never sends a frame does not hold its invocation
//! forever: the attempt is cut at `[worker.invoker] inactivity-timeout` and retried, and the
//! invocation completes once the deployment answers. The deployment is the Python example
//! services (PyPI restate-sdk on uvicorn, HTTP/1.1) behind a proxy in this test that, when
//! told to, answers the next connection's request with a 200 head and then stays silent
//! (the invocation is the first, so the invoker opens that connection).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use restate_e2e::services::{admin_url, restate, AsgiServer, PythonServices};
use restate_e2e::*;

/// Copies `from` to `to` until either side closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Answers the request head on `client` with 200 and the request's content type, then
/// sends nothing more; returns when the client closes the connection.
fn answer_and_go_silent(mut client: TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).is_ok_and(|n| n == 1) {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type:"))
        .map(str::trim)
        .unwrap_or("application/vnd.restate.invocation.v5")
        .to_owned();
    let _ = client.write_all(
        format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n").as_bytes(),
    );
    let mut sink = [0u8; 4096];
    while client.read(&mut sink).is_ok_and(|n| n > 0) {}
}

/// The proxy: forwards every connection to `upstream`, except that the first connection
/// after `hang_next` is set gets a silent 200; `cut` records when its client gave up.
fn proxy(upstream: u16, hang_next: Arc<AtomicBool>, cut: Arc<Mutex<Option<Instant>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            if hang_next.swap(false, Ordering::SeqCst) {
                let cut = cut.clone();
                std::thread::spawn(move || {
                    answer_and_go_silent(client);
                    *cut.lock().unwrap() = Some(Instant::now());
                });
                continue;
            }
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
            let (client2, server2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pipe(client, server));
            std::thread::spawn(move || pipe(server2, client2));
        }
    });
    port
}

#[test]
fn a_silent_deployment_is_cut_at_the_inactivity_timeout_and_the_invocation_completes() {
    let dir = TestDir::new("invoker-timeouts");
    let services = PythonServices::start_with(&dir, AsgiServer::Uvicorn);
    let upstream: u16 = services.uri.rsplit(':').next().unwrap().parse().unwrap();
    let (hang_next, cut) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(None)));
    let proxy_port = proxy(upstream, hang_next.clone(), cut.clone());

    let inactivity = Duration::from_secs(2);
    let mut node =
        ServerProcess::new(&dir, "n1", "invoker-timeouts", &[("RESTATE_WORKER__INVOKER__INACTIVITY_TIMEOUT", "2s")]);
    node.start_and_wait_healthy();
    wait_for_alive_nodes(&node, 1);
    let uri = format!("http://127.0.0.1:{proxy_port}");
    restate(&admin_url(&node), &["dp", "register", &uri, "--use-http1.1", "--yes"]).ok();
    let port = node.ports.ingress;
    let call =
        |name: &str| http_call(port, "POST", "/Greeter/greet", &format!("\"{name}\""), &[], Duration::from_secs(60));
    // No invocation before the silent one: the invoker keeps its HTTP/1.1 connections, and
    // the first invocation must open the connection the proxy leaves silent.
    wait_until("every partition to have a leader", Duration::from_secs(60), || {
        let processors = partition_processors(&node);
        !processors.is_empty() && processors.iter().all(|p| p["mode"] == "leader")
    });

    hang_next.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let (status, answer) = call("Sarah").expect("the ingress answered");
    let took = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("Sarah"), "{answer}");
    assert!(!hang_next.load(Ordering::SeqCst), "the invocation went through the silent connection");
    let cut_after = cut.lock().unwrap().map(|at| at - started).expect("the silent attempt was cut");
    println!("silent attempt cut after {cut_after:?}; the invocation answered after {took:?}");
    assert!(cut_after >= inactivity && cut_after < inactivity * 5, "cut after {cut_after:?}");
    assert!(took >= inactivity && took < Duration::from_secs(30), "answered after {took:?}");
    let log = node.log();
    assert!(log.contains("inactivity timeout"), "the node's log says why the attempt was cut:\n{log}");
}
