//! The Loglet contract, exercised on LocalLoglet over a real RocksDB.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use restate_bifrost::{
    LocalLoglet, LocalLogletProvider, LogEntry, LogRecord, Loglet, LogletError, LogletReadStream, TailState, TrimGap,
};
use restate_storage::{NodeStorage, StorageOptions};
use restate_types::{LogletId, Lsn};

const WAIT: Duration = Duration::from_secs(10);

fn open_storage(dir: &tempfile::TempDir) -> NodeStorage {
    NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap()
}

fn payload(n: u64) -> Bytes {
    Bytes::from(format!("record-{n}"))
}

fn payloads(range: std::ops::RangeInclusive<u64>) -> Vec<Bytes> {
    range.map(payload).collect()
}

fn lsns(records: &[LogRecord]) -> Vec<u64> {
    records.iter().map(|r| r.lsn.0).collect()
}

async fn read_all(loglet: &dyn Loglet, from: Lsn) -> Vec<LogRecord> {
    loglet.read(from, usize::MAX).await.unwrap().records
}

#[tokio::test]
async fn appends_get_contiguous_lsns_from_one_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let loglet = LocalLoglet::open(open_storage(&dir), LogletId(1)).unwrap();
    assert_eq!(loglet.find_tail().await.unwrap(), TailState { next_lsn: Lsn(1), sealed: false });
    assert!(loglet.read(Lsn(1), 10).await.unwrap().records.is_empty());

    assert_eq!(loglet.append(payloads(1..=1)).await.unwrap(), Lsn(1));
    assert_eq!(loglet.append(payloads(2..=4)).await.unwrap(), Lsn(4));
    assert_eq!(loglet.append(payloads(5..=10)).await.unwrap(), Lsn(10));
    assert_eq!(loglet.find_tail().await.unwrap().next_lsn, Lsn(11));

    let all = read_all(&loglet, Lsn(1)).await;
    assert_eq!(lsns(&all), (1..=10).collect::<Vec<_>>());
    for record in &all {
        assert_eq!(record.payload, payload(record.lsn.0));
    }

    let batch = loglet.read(Lsn(3), 4).await.unwrap();
    assert_eq!(lsns(&batch.records), vec![3, 4, 5, 6]);
    assert_eq!(batch.next_lsn, Lsn(7));
    assert_eq!(batch.trim_gap, None);

    // Lsn(0) means "from the start".
    assert_eq!(lsns(&loglet.read(Lsn(0), 2).await.unwrap().records), vec![1, 2]);
    // At and beyond the tail: empty, never an error.
    let at_tail = loglet.read(Lsn(11), 5).await.unwrap();
    assert!(at_tail.records.is_empty());
    assert_eq!(at_tail.next_lsn, Lsn(11));
    assert!(loglet.read(Lsn(100), 5).await.unwrap().records.is_empty());
}

#[tokio::test]
async fn bad_requests_are_rejected_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let loglet = LocalLoglet::open(open_storage(&dir), LogletId(3)).unwrap();
    let err = loglet.append(Vec::new()).await.unwrap_err();
    assert!(
        matches!(&err, LogletError::InvalidInput(msg) if msg.contains("empty") && msg.contains("loglet 3")),
        "{err}"
    );
    let err = loglet.read(Lsn(1), 0).await.unwrap_err();
    assert!(matches!(&err, LogletError::InvalidInput(msg) if msg.contains("max_records")), "{err}");
    assert_eq!(loglet.find_tail().await.unwrap().next_lsn, Lsn(1));
    // Empty payloads are records like any other.
    assert_eq!(loglet.append(vec![Bytes::new()]).await.unwrap(), Lsn(1));
    assert_eq!(read_all(&loglet, Lsn(1)).await[0].payload, Bytes::new());
}

#[tokio::test]
async fn tail_and_records_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let loglet = LocalLoglet::open(open_storage(&dir), LogletId(9)).unwrap();
        loglet.append(payloads(1..=3)).await.unwrap();
        loglet.append(payloads(4..=7)).await.unwrap();
    }
    let loglet = LocalLoglet::open(open_storage(&dir), LogletId(9)).unwrap();
    assert_eq!(loglet.find_tail().await.unwrap(), TailState { next_lsn: Lsn(8), sealed: false });
    let all = read_all(&loglet, Lsn(1)).await;
    assert_eq!(lsns(&all), (1..=7).collect::<Vec<_>>());
    assert!(all.iter().all(|r| r.payload == payload(r.lsn.0)));

    assert_eq!(loglet.append(payloads(8..=9)).await.unwrap(), Lsn(9));
    assert_eq!(lsns(&read_all(&loglet, Lsn(7)).await), vec![7, 8, 9]);
}

#[tokio::test]
async fn trim_reports_the_gap_persists_and_refuses_to_pass_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    {
        let loglet = LocalLoglet::open(open_storage(&dir), LogletId(7)).unwrap();
        loglet.append(payloads(1..=10)).await.unwrap();
        assert_eq!(loglet.trim_point().await.unwrap(), Lsn(0));
        assert_eq!(loglet.trim(Lsn(5)).await.unwrap(), Lsn(5));
        assert_eq!(loglet.trim_point().await.unwrap(), Lsn(5));

        let batch = loglet.read(Lsn(1), 100).await.unwrap();
        assert_eq!(batch.trim_gap, Some(TrimGap { from: Lsn(1), to: Lsn(5) }));
        assert_eq!(lsns(&batch.records), vec![6, 7, 8, 9, 10]);
        // Reading from exactly the trim point is a gap too; reading past it is not.
        assert_eq!(loglet.read(Lsn(5), 1).await.unwrap().trim_gap, Some(TrimGap { from: Lsn(5), to: Lsn(5) }));
        assert_eq!(loglet.read(Lsn(6), 1).await.unwrap().trim_gap, None);
    }

    let loglet = LocalLoglet::open(open_storage(&dir), LogletId(7)).unwrap();
    assert_eq!(loglet.trim_point().await.unwrap(), Lsn(5));
    assert_eq!(loglet.find_tail().await.unwrap().next_lsn, Lsn(11));
    let batch = loglet.read(Lsn(0), 100).await.unwrap();
    assert_eq!(batch.trim_gap, Some(TrimGap { from: Lsn(1), to: Lsn(5) }));
    assert_eq!(lsns(&batch.records), vec![6, 7, 8, 9, 10]);

    let err = loglet.trim(Lsn(50)).await.unwrap_err();
    let LogletError::InvalidInput(msg) = &err else { panic!("expected InvalidInput, got {err:?}") };
    assert!(msg.contains("loglet 7") && msg.contains("50") && msg.contains("10"), "{msg}");
    assert_eq!(loglet.trim_point().await.unwrap(), Lsn(5));
    assert_eq!(lsns(&read_all(&loglet, Lsn(6)).await), vec![6, 7, 8, 9, 10]);

    assert_eq!(loglet.trim(Lsn(3)).await.unwrap(), Lsn(5));
    assert_eq!(loglet.trim(Lsn(5)).await.unwrap(), Lsn(5));
    assert_eq!(loglet.trim_point().await.unwrap(), Lsn(5));
}

#[tokio::test]
async fn trimming_everything_keeps_the_tail_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let loglet = LocalLoglet::open(open_storage(&dir), LogletId(2)).unwrap();
        let err = loglet.trim(Lsn(1)).await.unwrap_err();
        assert!(err.to_string().contains("no records"), "{err}");
        loglet.append(payloads(1..=4)).await.unwrap();
        assert_eq!(loglet.trim(Lsn(4)).await.unwrap(), Lsn(4));
    }
    let loglet = LocalLoglet::open(open_storage(&dir), LogletId(2)).unwrap();
    assert_eq!(loglet.find_tail().await.unwrap().next_lsn, Lsn(5));
    let batch = loglet.read(Lsn(1), 10).await.unwrap();
    assert_eq!(batch.trim_gap, Some(TrimGap { from: Lsn(1), to: Lsn(4) }));
    assert!(batch.records.is_empty());
    assert_eq!(batch.next_lsn, Lsn(5));
    assert_eq!(loglet.append(payloads(5..=5)).await.unwrap(), Lsn(5));
}

#[tokio::test]
async fn seal_stops_appends_durably_and_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    {
        let loglet = LocalLoglet::open(open_storage(&dir), LogletId(4)).unwrap();
        loglet.append(payloads(1..=3)).await.unwrap();
        let sealed = TailState { next_lsn: Lsn(4), sealed: true };
        assert_eq!(loglet.seal().await.unwrap(), sealed);
        assert_eq!(loglet.seal().await.unwrap(), sealed);
        assert_eq!(loglet.find_tail().await.unwrap(), sealed);
        assert_eq!(loglet.append(payloads(4..=4)).await.unwrap_err(), LogletError::Sealed);
        // Sealed loglets stay readable and trimmable.
        assert_eq!(lsns(&read_all(&loglet, Lsn(1)).await), vec![1, 2, 3]);
        assert_eq!(loglet.trim(Lsn(1)).await.unwrap(), Lsn(1));
    }
    let loglet = LocalLoglet::open(open_storage(&dir), LogletId(4)).unwrap();
    assert_eq!(loglet.find_tail().await.unwrap(), TailState { next_lsn: Lsn(4), sealed: true });
    assert_eq!(loglet.append(payloads(4..=4)).await.unwrap_err(), LogletError::Sealed);
    assert_eq!(lsns(&read_all(&loglet, Lsn(1)).await), vec![2, 3]);
}

#[tokio::test]
async fn loglets_sharing_a_database_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_storage(&dir);
    // Neighbouring ids, and the largest one, share key prefixes as closely as possible.
    let a = LocalLoglet::open(storage.clone(), LogletId(1)).unwrap();
    let b = LocalLoglet::open(storage.clone(), LogletId(2)).unwrap();
    let c = LocalLoglet::open(storage.clone(), LogletId(u64::MAX)).unwrap();

    a.append(payloads(1..=5)).await.unwrap();
    b.append(vec![Bytes::from_static(b"b1"), Bytes::from_static(b"b2")]).await.unwrap();
    assert_eq!(a.find_tail().await.unwrap().next_lsn, Lsn(6));
    assert_eq!(b.find_tail().await.unwrap().next_lsn, Lsn(3));
    assert_eq!(c.find_tail().await.unwrap().next_lsn, Lsn(1));

    b.trim(Lsn(1)).await.unwrap();
    b.seal().await.unwrap();
    assert_eq!(a.trim_point().await.unwrap(), Lsn(0));
    assert!(!a.find_tail().await.unwrap().sealed);
    assert_eq!(lsns(&read_all(&a, Lsn(1)).await), vec![1, 2, 3, 4, 5]);
    assert_eq!(read_all(&b, Lsn(2)).await[0].payload, Bytes::from_static(b"b2"));
    assert!(read_all(&c, Lsn(1)).await.is_empty());
    drop((a, b, c, storage));

    let storage = open_storage(&dir);
    let a = LocalLoglet::open(storage.clone(), LogletId(1)).unwrap();
    let b = LocalLoglet::open(storage.clone(), LogletId(2)).unwrap();
    let c = LocalLoglet::open(storage.clone(), LogletId(u64::MAX)).unwrap();
    assert_eq!(a.find_tail().await.unwrap(), TailState { next_lsn: Lsn(6), sealed: false });
    assert_eq!(b.find_tail().await.unwrap(), TailState { next_lsn: Lsn(3), sealed: true });
    assert_eq!(c.find_tail().await.unwrap(), TailState { next_lsn: Lsn(1), sealed: false });
    assert_eq!(b.trim_point().await.unwrap(), Lsn(1));
    assert_eq!(a.trim_point().await.unwrap(), Lsn(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_get_unique_gap_free_lsns() {
    const TASKS: u64 = 8;
    const APPENDS: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let loglet = Arc::new(LocalLoglet::open(open_storage(&dir), LogletId(5)).unwrap());

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let loglet = Arc::clone(&loglet);
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..APPENDS {
                let lsn = loglet.append(vec![Bytes::from(format!("{task}:{i}"))]).await.unwrap();
                got.push((lsn, task, i));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    assert_eq!(all.iter().map(|(lsn, _, _)| lsn.0).collect::<Vec<_>>(), (1..=TASKS * APPENDS).collect::<Vec<_>>());

    let records = read_all(loglet.as_ref(), Lsn(1)).await;
    assert_eq!(records.len() as u64, TASKS * APPENDS);
    for (record, (lsn, task, i)) in records.iter().zip(&all) {
        assert_eq!(record.lsn, *lsn);
        assert_eq!(record.payload, Bytes::from(format!("{task}:{i}")));
    }
    // Each task's own appends are in its order.
    for task in 0..TASKS {
        let mine: Vec<u64> = all.iter().filter(|(_, t, _)| *t == task).map(|(_, _, i)| *i).collect();
        assert_eq!(mine, (0..APPENDS).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_waiting_reader_is_woken_by_a_later_append() {
    // A bounded wait for "still pending", not a sleep: nothing can make these futures
    // ready before the append that follows.
    const PENDING: Duration = Duration::from_millis(100);
    let dir = tempfile::tempdir().unwrap();
    let loglet = Arc::new(LocalLoglet::open(open_storage(&dir), LogletId(6)).unwrap());
    loglet.append(payloads(1..=2)).await.unwrap();

    // Already satisfied: resolves at once.
    let tail = tokio::time::timeout(WAIT, loglet.wait_for_tail(Lsn(1))).await.unwrap().unwrap();
    assert_eq!(tail.next_lsn, Lsn(3));

    let mut stream = LogletReadStream::new(loglet.clone(), Lsn(1)).with_batch_size(1);
    for lsn in 1..=2 {
        let entry = tokio::time::timeout(WAIT, stream.next()).await.unwrap().unwrap();
        assert_eq!(entry, Some(LogEntry::Record(LogRecord { lsn: Lsn(lsn), payload: payload(lsn) })));
    }
    {
        let mut waiter = loglet.wait_for_tail(Lsn(2));
        let next = stream.next();
        tokio::pin!(next);
        assert!(tokio::time::timeout(PENDING, &mut waiter).await.is_err(), "no record beyond LSN 2 yet");
        assert!(tokio::time::timeout(PENDING, &mut next).await.is_err(), "the stream is at the tail");

        loglet.append(payloads(3..=3)).await.unwrap();
        let tail = tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap();
        assert_eq!(tail.next_lsn, Lsn(4));
        let entry = tokio::time::timeout(WAIT, next).await.unwrap().unwrap();
        assert_eq!(entry, Some(LogEntry::Record(LogRecord { lsn: Lsn(3), payload: payload(3) })));
    }

    // Sealing wakes waiters too, and ends the stream once it is fully read.
    let mut waiter = loglet.wait_for_tail(Lsn(3));
    let next = stream.next();
    tokio::pin!(next);
    assert!(tokio::time::timeout(PENDING, &mut waiter).await.is_err());
    assert!(tokio::time::timeout(PENDING, &mut next).await.is_err());
    loglet.seal().await.unwrap();
    assert_eq!(
        tokio::time::timeout(WAIT, waiter).await.unwrap().unwrap(),
        TailState { next_lsn: Lsn(4), sealed: true }
    );
    assert_eq!(tokio::time::timeout(WAIT, next).await.unwrap().unwrap(), None);
}

#[tokio::test]
async fn read_stream_reports_trimmed_records_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let loglet = Arc::new(LocalLoglet::open(open_storage(&dir), LogletId(8)).unwrap());
    loglet.append(payloads(1..=6)).await.unwrap();
    let mut stream = LogletReadStream::new(loglet.clone(), Lsn(0)).with_batch_size(2);
    assert_eq!(stream.next().await.unwrap(), Some(LogEntry::Record(LogRecord { lsn: Lsn(1), payload: payload(1) })));
    assert_eq!(stream.next().await.unwrap(), Some(LogEntry::Record(LogRecord { lsn: Lsn(2), payload: payload(2) })));
    loglet.trim(Lsn(4)).await.unwrap();
    assert_eq!(stream.next().await.unwrap(), Some(LogEntry::TrimGap(TrimGap { from: Lsn(3), to: Lsn(4) })));
    assert_eq!(stream.next().await.unwrap(), Some(LogEntry::Record(LogRecord { lsn: Lsn(5), payload: payload(5) })));
    assert_eq!(stream.next_lsn(), Lsn(7));
}

#[tokio::test]
async fn the_provider_hands_out_one_handle_per_loglet() {
    let dir = tempfile::tempdir().unwrap();
    let provider = LocalLogletProvider::new(open_storage(&dir));
    let first = provider.get_or_open(LogletId(1)).unwrap();
    let again = provider.get_or_open(LogletId(1)).unwrap();
    let other = provider.get_or_open(LogletId(2)).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    assert!(!Arc::ptr_eq(&first, &other));

    first.append(payloads(1..=2)).await.unwrap();
    assert_eq!(again.find_tail().await.unwrap().next_lsn, Lsn(3));
    assert_eq!(again.append(payloads(3..=3)).await.unwrap(), Lsn(3));
    assert_eq!(other.find_tail().await.unwrap().next_lsn, Lsn(1));

    let as_dyn: Arc<dyn Loglet> = first;
    assert_eq!(as_dyn.find_tail().await.unwrap().next_lsn, Lsn(4));
    drop((as_dyn, again, other, provider));

    let provider = LocalLogletProvider::new(open_storage(&dir));
    assert_eq!(provider.get_or_open(LogletId(1)).unwrap().find_tail().await.unwrap().next_lsn, Lsn(4));
}
