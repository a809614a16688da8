//! Group commit of appends on a loglet's leader: concurrent append requests become one
//! raft entry, so a loaded loglet pays one entry (and its share of one fsync) for many
//! records.
//!
//! A request is proposed at once when fewer than [`MAX_IN_FLIGHT`] proposals of its
//! loglet are waiting to commit (a lone appender never waits for company); otherwise it
//! queues, and when a proposal completes everything queued (up to [`MAX_BATCH_RECORDS`]
//! records, [`MAX_BATCH_BYTES`] bytes) goes out as the next one. Proposals are handed to
//! raft in queue order, so LSNs follow arrival order.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use restate_raft::RaftError;
use restate_types::LogletId;
use tokio::sync::oneshot;

use super::state::{Command, Outcome};

/// Proposals of one loglet waiting to commit at a time (pipelined).
pub const MAX_IN_FLIGHT: usize = 4;
/// At most this many records in one batched entry ...
pub const MAX_BATCH_RECORDS: usize = 4096;
/// ... and at most about this many bytes (one request alone may exceed it).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// Proposes one command and answers with its outcome.
pub type Propose =
    Arc<dyn Fn(LogletId, Command) -> Pin<Box<dyn Future<Output = Result<Outcome, RaftError>> + Send>> + Send + Sync>;

struct Waiting {
    records: Vec<Bytes>,
    reply: oneshot::Sender<Result<Outcome, RaftError>>,
}

#[derive(Default)]
struct LogletQueue {
    waiting: VecDeque<Waiting>,
    in_flight: usize,
}

/// The group-commit queues of every loglet this node leads.
pub struct GroupCommit {
    propose: Propose,
    queues: Mutex<HashMap<LogletId, LogletQueue>>,
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
fn take_batch(queue: &mut VecDeque<Waiting>) -> Vec<Waiting> {
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

impl GroupCommit {
    pub fn new(propose: Propose) -> Arc<GroupCommit> {
        Arc::new(GroupCommit { propose, queues: Mutex::new(HashMap::new()) })
    }

    /// Appends `records` (at least one) to `loglet` through its raft group, batched with
    /// concurrent appends. Answers with this request's own outcome (`Appended` carries the
    /// LSN of its own last record).
    pub async fn append(self: &Arc<Self>, loglet: LogletId, records: Vec<Bytes>) -> Result<Outcome, RaftError> {
        let (reply, answer) = oneshot::channel();
        let batch = {
            let mut queues = self.queues.lock().expect("not poisoned");
            let queue = queues.entry(loglet).or_default();
            queue.waiting.push_back(Waiting { records, reply });
            if queue.in_flight < MAX_IN_FLIGHT {
                queue.in_flight += 1;
                Some(take_batch(&mut queue.waiting))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            self.clone().send(loglet, batch);
        }
        answer.await.unwrap_or(Err(RaftError::Dropped))
    }

    /// Proposes `batch` as one entry; when it completes, sends what queued meanwhile.
    fn send(self: Arc<Self>, loglet: LogletId, batch: Vec<Waiting>) {
        let sizes: Vec<usize> = batch.iter().map(|w| w.records.len()).collect();
        let records: Vec<Bytes> = batch.iter().flat_map(|w| w.records.iter().cloned()).collect();
        // Handed to raft now, in queue order; only the wait for the outcome is spawned.
        let proposal = (self.propose)(loglet, Command::Append(records));
        tokio::spawn(async move {
            let outcome = proposal.await;
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
                let queue = queues.get_mut(&loglet).expect("a queue with a proposal in flight exists");
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
        let propose: Propose = Arc::new(move |_, command| {
            let Command::Append(records) = command else { panic!("only appends") };
            log.lock().unwrap().push(records.len());
            let mut next = lsn.lock().unwrap();
            *next += records.len() as u64;
            let last = *next - 1;
            Box::pin(async move {
                tokio::task::yield_now().await;
                Ok(Outcome::Appended(last))
            })
        });
        let commit = GroupCommit::new(propose);
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
        assert!(entries[..MAX_IN_FLIGHT].iter().all(|n| *n == 1), "the first go out alone, at once: {entries:?}");
    }
}
