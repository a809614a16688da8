//! Group commit of appends: concurrent appends to one loglet travel together. On a
//! loglet's leader they become one raft entry (one entry, and a share of one fsync, for
//! many records); in the loglet client of a node they become one append request to the
//! leader (one round trip for many appenders).
//!
//! An append goes out at once when fewer than `max_in_flight` batches of its loglet are
//! waiting for their outcome (a lone appender never waits for company); otherwise it
//! queues, and when a batch completes everything queued (up to [`MAX_BATCH_RECORDS`]
//! records, [`MAX_BATCH_BYTES`] bytes) goes out as the next one. Batches are handed to
//! the sender in queue order, and one batch's records keep their order (all or none).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use restate_types::LogletId;
use tokio::sync::oneshot;

use super::state::Outcome;

/// At most this many records in one batch ...
pub const MAX_BATCH_RECORDS: usize = 4096;
/// ... and at most about this many bytes (one request alone may exceed it).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Sends one batch (the records of several appends, in order) and answers with its outcome.
pub type SendBatch<E> =
    Arc<dyn Fn(LogletId, Vec<Bytes>) -> Pin<Box<dyn Future<Output = Result<Outcome, E>> + Send>> + Send + Sync>;

/// What an append whose batch vanished without an answer (its task was dropped) learns.
pub trait BatchError: Clone + Send + 'static {
    fn batch_dropped() -> Self;
}

struct Waiting<E> {
    records: Vec<Bytes>,
    reply: oneshot::Sender<Result<Outcome, E>>,
}

struct LogletQueue<E> {
    waiting: VecDeque<Waiting<E>>,
    in_flight: usize,
}

/// The group-commit queues of every loglet appended to through one sender.
pub struct GroupCommit<E> {
    send_batch: SendBatch<E>,
    max_in_flight: usize,
    queues: Mutex<HashMap<LogletId, LogletQueue<E>>>,
}

/// How a batch's outcome answers request `i` of it, given how many records each request
/// of the batch carried. Pure.
pub fn split_outcome(outcome: &Outcome, sizes: &[usize]) -> Vec<Outcome> {
    match outcome {
        Outcome::Appended(last) => {
            let mut remaining: u64 = sizes.iter().map(|n| *n as u64).sum();
            sizes
                .iter()
                .map(|n| {
                    remaining -= *n as u64;
                    Outcome::Appended(last - remaining)
                })
                .collect()
        }
        other => sizes.iter().map(|_| other.clone()).collect(),
    }
}

/// Takes the next batch off `queue`: at least one request, then as many as fit the bounds.
fn take_batch<E>(queue: &mut VecDeque<Waiting<E>>) -> Vec<Waiting<E>> {
    let mut batch = Vec::new();
    let (mut records, mut bytes) = (0usize, 0usize);
    while let Some(next) = queue.front() {
        let size: usize = next.records.iter().map(Bytes::len).sum();
        if !batch.is_empty() && (records + next.records.len() > MAX_BATCH_RECORDS || bytes + size > MAX_BATCH_BYTES) {
            break;
        }
        records += next.records.len();
        bytes += size;
        batch.push(queue.pop_front().expect("front exists"));
    }
    batch
}

impl<E: BatchError> GroupCommit<E> {
    /// Batches through `send_batch`, with at most `max_in_flight` (at least 1) batches of a
    /// loglet waiting for their outcome at a time.
    pub fn new(send_batch: SendBatch<E>, max_in_flight: usize) -> Arc<GroupCommit<E>> {
        Arc::new(GroupCommit { send_batch, max_in_flight: max_in_flight.max(1), queues: Mutex::new(HashMap::new()) })
    }

    /// Appends `records` (at least one) to `loglet`, batched with concurrent appends.
    /// Answers with this request's own outcome (`Appended` carries the LSN of its own last
    /// record). The records are queued when this is called, not when the future is first
    /// polled: appends made one after the other keep that order in the loglet.
    pub fn append(
        self: &Arc<Self>,
        loglet: LogletId,
        records: Vec<Bytes>,
    ) -> impl Future<Output = Result<Outcome, E>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let batch = {
            let mut queues = self.queues.lock().expect("not poisoned");
            let queue = queues.entry(loglet).or_insert_with(|| LogletQueue { waiting: VecDeque::new(), in_flight: 0 });
            queue.waiting.push_back(Waiting { records, reply });
            if queue.in_flight < self.max_in_flight {
                queue.in_flight += 1;
                Some(take_batch(&mut queue.waiting))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            self.clone().send(loglet, batch);
        }
        async move { answer.await.unwrap_or_else(|_| Err(E::batch_dropped())) }
    }

    /// Sends `batch` as one; when it completes, sends what queued meanwhile.
    fn send(self: Arc<Self>, loglet: LogletId, batch: Vec<Waiting<E>>) {
        let sizes: Vec<usize> = batch.iter().map(|w| w.records.len()).collect();
        let records: Vec<Bytes> = batch.iter().flat_map(|w| w.records.iter().cloned()).collect();
        // Handed to the sender now, in queue order; only the wait for the outcome is spawned.
        let sent = (self.send_batch)(loglet, records);
        tokio::spawn(async move {
            let outcome = sent.await;
            match &outcome {
                Ok(outcome) => {
                    for (waiting, own) in batch.into_iter().zip(split_outcome(outcome, &sizes)) {
                        let _ = waiting.reply.send(Ok(own));
                    }
                }
                Err(e) => {
                    for waiting in batch {
                        let _ = waiting.reply.send(Err(e.clone()));
                    }
                }
            }
            let next = {
                let mut queues = self.queues.lock().expect("not poisoned");
                let queue = queues.get_mut(&loglet).expect("a queue with a batch in flight exists");
                if queue.waiting.is_empty() {
                    queue.in_flight -= 1;
                    if queue.in_flight == 0 {
                        queues.remove(&loglet);
                    }
                    None
                } else {
                    Some(take_batch(&mut queue.waiting))
                }
            };
            if let Some(next) = next {
                self.send(loglet, next);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct TestError;

    impl BatchError for TestError {
        fn batch_dropped() -> Self {
            TestError
        }
    }

    #[test]
    fn a_batch_outcome_answers_each_request_with_its_own_last_lsn() {
        assert_eq!(
            split_outcome(&Outcome::Appended(10), &[2, 3, 1]),
            vec![Outcome::Appended(6), Outcome::Appended(9), Outcome::Appended(10)]
        );
        assert_eq!(split_outcome(&Outcome::Sealed(4), &[1, 1]), vec![Outcome::Sealed(4), Outcome::Sealed(4)]);
    }

    #[tokio::test]
    async fn concurrent_appends_share_entries_and_keep_arrival_order() {
        let proposed: Arc<Mutex<Vec<usize>>> = Default::default();
        let next_lsn = Arc::new(Mutex::new(1u64));
        let (log, lsn) = (proposed.clone(), next_lsn.clone());
        let send: SendBatch<TestError> = Arc::new(move |_, records| {
            log.lock().unwrap().push(records.len());
            let mut next = lsn.lock().unwrap();
            *next += records.len() as u64;
            let last = *next - 1;
            Box::pin(async move {
                tokio::task::yield_now().await;
                Ok(Outcome::Appended(last))
            })
        });
        let commit = GroupCommit::new(send, 4);
        let appends: Vec<_> = (0..40u8)
            .map(|i| {
                let commit = commit.clone();
                tokio::spawn(async move { commit.append(LogletId(1), vec![Bytes::from(vec![i])]).await.unwrap() })
            })
            .collect();
        let mut lsns = Vec::new();
        for append in appends {
            match append.await.unwrap() {
                Outcome::Appended(lsn) => lsns.push(lsn),
                other => panic!("{other:?}"),
            }
        }
        lsns.sort_unstable();
        assert_eq!(lsns, (1..=40).collect::<Vec<_>>(), "every request got its own LSN");
        let entries = proposed.lock().unwrap().clone();
        assert!(entries.len() < 40, "concurrent appends were batched: {entries:?}");
        assert!(entries[..4].iter().all(|n| *n == 1), "the first go out alone, at once: {entries:?}");
    }
}
