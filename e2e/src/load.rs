//! A steady invocation load for drills: client threads that each add 1 to their own
//! `Counter/{prefix}-{client}` through the ingresses on loopback ports, one request at a
//! time, every request with its own idempotency key. A request that fails (no answer, an
//! error status) is retried with the same key on the next port until it is acknowledged
//! or `REQUEST_DEADLINE` passes; only then does it count as lost. Because retries reuse
//! the key, a counter must end equal to its client's acknowledged requests when nothing
//! was lost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::http_call;

/// How long one request is retried before it counts as lost.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between two attempts of the same request.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Shared {
    /// Per client: acknowledged requests.
    acknowledged: Vec<AtomicUsize>,
    /// Attempts that failed and were retried.
    failed_attempts: AtomicUsize,
    /// Requests never acknowledged within `REQUEST_DEADLINE`.
    lost: AtomicUsize,
    /// Per client: the first acknowledgement after the mark, if any yet.
    first_after_mark: Mutex<Vec<Option<Instant>>>,
    mark: Mutex<Option<Instant>>,
    stop: AtomicBool,
}

/// The counts a load ends with.
#[derive(Debug, Clone, Copy)]
pub struct LoadReport {
    pub acknowledged: usize,
    pub failed_attempts: usize,
    pub lost: usize,
}

pub struct Load {
    prefix: String,
    ports: Arc<Mutex<Vec<u16>>>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` threads sending through `ports` (round robin, per client offset).
    pub fn start(prefix: &str, clients: usize, ports: &[u16]) -> Load {
        let shared = Arc::new(Shared {
            acknowledged: (0..clients).map(|_| AtomicUsize::new(0)).collect(),
            first_after_mark: Mutex::new(vec![None; clients]),
            ..Shared::default()
        });
        let ports = Arc::new(Mutex::new(ports.to_vec()));
        let threads = (0..clients)
            .map(|client| {
                let (shared, ports, prefix) = (shared.clone(), ports.clone(), prefix.to_owned());
                std::thread::spawn(move || run_client(client, &prefix, &ports, &shared))
            })
            .collect();
        Load { prefix: prefix.to_owned(), ports, shared, threads }
    }

    /// The ports requests go to from now on (e.g. without a node about to be killed).
    pub fn use_ports(&self, ports: &[u16]) {
        *self.ports.lock().unwrap() = ports.to_vec();
    }

    /// Requests acknowledged so far, over every client.
    pub fn acknowledged(&self) -> usize {
        self.shared.acknowledged.iter().map(|a| a.load(Ordering::SeqCst)).sum()
    }

    /// Starts measuring a gap from `at`: [`Load::gap_since_mark`] answers once every
    /// client has had a request acknowledged after it.
    pub fn mark(&self, at: Instant) {
        *self.shared.mark.lock().unwrap() = Some(at);
        self.shared.first_after_mark.lock().unwrap().iter_mut().for_each(|t| *t = None);
    }

    /// The longest time from the mark to a client's first acknowledgement after it, once
    /// every client has one.
    pub fn gap_since_mark(&self) -> Option<Duration> {
        let mark = (*self.shared.mark.lock().unwrap())?;
        let firsts = self.shared.first_after_mark.lock().unwrap();
        firsts
            .iter()
            .map(|t| t.map(|t| t.saturating_duration_since(mark)))
            .collect::<Option<Vec<_>>>()?
            .into_iter()
            .max()
    }

    /// Waits until every client has `n` more acknowledged requests than now (bounded).
    pub fn wait_for_progress(&self, n: usize, timeout: Duration) {
        let start: Vec<usize> = self.shared.acknowledged.iter().map(|a| a.load(Ordering::SeqCst)).collect();
        crate::wait_until(
            &format!("every client of load {} to get {n} more acknowledgements", self.prefix),
            timeout,
            || self.shared.acknowledged.iter().zip(&start).all(|(a, s)| a.load(Ordering::SeqCst) >= s + n),
        );
    }

    /// Stops the clients (each finishes its request in flight, retries included) and
    /// checks every counter through `port`: it must equal its client's acknowledged
    /// requests. Returns the counts.
    pub fn stop_and_check(mut self, port: u16) -> LoadReport {
        self.shared.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().expect("load client panicked");
        }
        let report = LoadReport {
            acknowledged: self.acknowledged(),
            failed_attempts: self.shared.failed_attempts.load(Ordering::SeqCst),
            lost: self.shared.lost.load(Ordering::SeqCst),
        };
        for (client, acknowledged) in self.shared.acknowledged.iter().enumerate() {
            let acknowledged = acknowledged.load(Ordering::SeqCst);
            let path = format!("/Counter/{}-{client}/get", self.prefix);
            let answer = http_call(port, "POST", &path, "", &[], Duration::from_secs(30));
            let value: Option<usize> =
                answer.as_ref().filter(|(s, _)| *s == 200).and_then(|(_, b)| b.trim().parse().ok());
            if report.lost == 0 {
                assert_eq!(
                    value,
                    Some(acknowledged),
                    "{path}: counter {answer:?} but {acknowledged} adds acknowledged"
                );
            } else {
                // A lost request may or may not have been applied.
                assert!(value.is_some_and(|v| v >= acknowledged), "{path}: {answer:?} < {acknowledged} acknowledged");
            }
        }
        report
    }
}

fn run_client(client: usize, prefix: &str, ports: &Mutex<Vec<u16>>, shared: &Shared) {
    let path = format!("/Counter/{prefix}-{client}/add");
    let mut attempt = client;
    let mut seq = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        seq += 1;
        let key = format!("{prefix}-{client}-{seq}");
        let started = Instant::now();
        loop {
            attempt += 1;
            let port = {
                let ports = ports.lock().unwrap();
                ports[attempt % ports.len()]
            };
            let answer = http_call(port, "POST", &path, "1", &[("idempotency-key", &key)], Duration::from_secs(15));
            if let Some((200, _)) = answer {
                shared.acknowledged[client].fetch_add(1, Ordering::SeqCst);
                let now = Instant::now();
                if shared.mark.lock().unwrap().is_some_and(|mark| now > mark) {
                    let mut firsts = shared.first_after_mark.lock().unwrap();
                    firsts[client].get_or_insert(now);
                }
                break;
            }
            shared.failed_attempts.fetch_add(1, Ordering::SeqCst);
            if started.elapsed() > REQUEST_DEADLINE {
                eprintln!("load {prefix}: {path} with idempotency key {key} never acknowledged (last: {answer:?})");
                shared.lost.fetch_add(1, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(RETRY_PAUSE);
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}
