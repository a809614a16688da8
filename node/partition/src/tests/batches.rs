//! Records applied in batches (`apply_batch`): one store write per run of records, the
//! same state and effects as applying them one by one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use restate_storage::{NodeStorage, StorageOptions};

use super::replay::{fresh_memory, scenario};
use super::*;

/// A store that counts its commits and can be told to refuse the next one.
#[derive(Clone)]
struct CountingStore {
    inner: MemoryPartitionStore,
    commits: Arc<AtomicUsize>,
    refuse_next: Arc<std::sync::atomic::AtomicBool>,
}

impl CountingStore {
    fn new() -> CountingStore {
        CountingStore {
            inner: MemoryPartitionStore::new(PartitionId(3)),
            commits: Arc::default(),
            refuse_next: Arc::default(),
        }
    }

    fn commits(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }
}

impl KvRead for CountingStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(&self, lower: &[u8], upper: Option<&[u8]>) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan(lower, upper)
    }
}

impl PartitionStore for CountingStore {
    fn partition_id(&self) -> PartitionId {
        self.inner.partition_id()
    }

    fn commit(&self, changes: WriteSet) -> Result<(), StoreError> {
        if self.refuse_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Corrupt(CorruptValue {
                what: "test",
                key: "refused".into(),
                detail: "the test refuses this commit".into(),
            }));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(changes)
    }
}

/// The log's records as a reader gets them: LSN from 1 and the encoded envelope.
fn encoded(log: &[Envelope]) -> Vec<(Lsn, Bytes)> {
    log.iter().enumerate().map(|(index, envelope)| (Lsn(index as u64 + 1), envelope.encode())).collect()
}

/// Applies `records` in runs until all are consumed, as the partition processor does
/// with one read: each run with the leader epoch after it. Every run must succeed.
fn apply_runs<S: PartitionStore>(p: &mut Partition<S>, records: &[(Lsn, Bytes)]) -> Vec<(BatchApplied, u64)> {
    let mut runs = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let applied = p.sm.apply_batch(rest.iter().map(|(lsn, record)| (*lsn, &record[..])));
        assert!(applied.error.is_none(), "{:?}", applied.error);
        rest = &rest[applied.consumed..];
        runs.push((applied, p.sm.leader_epoch()));
    }
    runs
}

/// Applies `records` in reads of at most `read` records, each read in runs. Returns the
/// effects.
fn apply_in_reads<S: PartitionStore>(p: &mut Partition<S>, records: &[(Lsn, Bytes)], read: usize) -> Vec<Effect> {
    let runs = records.chunks(read).flat_map(|chunk| apply_runs(p, chunk));
    runs.flat_map(|(applied, _)| applied.effects).collect()
}

#[test]
fn a_log_applied_in_batches_ends_in_the_same_state_with_the_same_effects() {
    let original = scenario(fresh_memory());
    let records = encoded(&original.log);
    let mut one_by_one = fresh_memory();
    let expected_effects: Vec<Effect> =
        records.iter().flat_map(|(lsn, record)| one_by_one.sm.apply_record(*lsn, record).unwrap()).collect();
    let expected = one_by_one.dump();
    assert!(expected_effects.len() > 10, "the scenario asks the leader for work");

    for read in [1, 2, 3, 7, records.len()] {
        let mut batched = fresh_memory();
        let effects = apply_in_reads(&mut batched, &records, read);
        assert_eq!(batched.dump(), expected, "reads of {read}");
        assert_eq!(effects, expected_effects, "reads of {read}");
        assert_eq!(batched.sm.applied_lsn(), Lsn(records.len() as u64));
        assert_eq!(batched.sm.leader(), one_by_one.sm.leader());
        assert_eq!(batched.sm.pending_work().unwrap(), one_by_one.sm.pending_work().unwrap());
    }

    let dir = tempfile::tempdir().unwrap();
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let mut rocks = Partition::new(RocksDbPartitionStore::new(storage, PartitionId(3)));
    let effects = apply_in_reads(&mut rocks, &records, 16);
    assert_eq!(rocks.dump(), expected);
    assert_eq!(effects, expected_effects);
    // What a restarted replica reads back from RocksDB.
    let reopened = PartitionStateMachine::open(rocks.sm.store().clone()).unwrap();
    assert_eq!(reopened.applied_lsn(), Lsn(records.len() as u64));
    assert_eq!(reopened.leader(), one_by_one.sm.leader());
}

#[test]
fn a_run_is_one_write_and_a_leader_announcement_is_a_run_of_its_own() {
    let original = scenario(fresh_memory());
    let records = encoded(&original.log);
    let announcements: Vec<usize> = original
        .log
        .iter()
        .enumerate()
        .filter(|(_, envelope)| matches!(envelope.command, Command::AnnounceLeader { .. }))
        .map(|(index, _)| index)
        .collect();
    assert_eq!(announcements.len(), 2, "the scenario changes leader once after the first");

    let store = CountingStore::new();
    let mut p = Partition::new(store.clone());
    let runs: Vec<(usize, u64, usize)> = apply_runs(&mut p, &records)
        .into_iter()
        .map(|(applied, epoch)| (applied.consumed, epoch, applied.effects.len()))
        .collect();
    let before_second = announcements[1] - 1;
    let after_second = records.len() - announcements[1] - 1;
    assert_eq!(
        runs.iter().map(|(consumed, ..)| *consumed).collect::<Vec<_>>(),
        vec![1, before_second, 1, after_second]
    );
    assert_eq!(runs.iter().map(|(_, epoch, _)| *epoch).collect::<Vec<_>>(), vec![1, 1, 2, 2]);
    assert_eq!((runs[0].2, runs[2].2), (0, 0), "an announcement asks for nothing itself");
    assert_eq!(store.commits(), 4, "one write per run");

    // Records applied before are consumed without a write.
    let again = p.sm.apply_batch(records.iter().map(|(lsn, record)| (*lsn, &record[..])));
    assert_eq!((again.consumed, again.effects.len()), (records.len(), 0));
    assert_eq!(store.commits(), 4);
}

/// The effects of the records before an announcement and after it come in different
/// runs, so a leader taking over acts only on what follows its announcement (and picks
/// up what came before from the state).
#[test]
fn effects_before_and_after_an_announcement_come_in_different_runs() {
    let mut p = memory();
    let before = service_request(1);
    let after = service_request(2);
    let records = [
        (Lsn(2), Envelope::external(Command::Invoke(before.clone())).encode()),
        (Lsn(3), Envelope::announce_leader(2, "N2").encode()),
        (Lsn(4), Envelope::external(Command::Invoke(after.clone())).encode()),
    ];
    let runs: Vec<(u64, Vec<InvocationId>)> =
        apply_runs(&mut p, &records).into_iter().map(|(applied, epoch)| (epoch, invoked(&applied.effects))).collect();
    assert_eq!(runs, vec![(1, vec![before.id]), (2, vec![]), (2, vec![after.id])]);
}

#[test]
fn a_run_stops_before_an_unreadable_record_and_commits_the_ones_before_it() {
    let mut p = memory();
    let first = service_request(1);
    let second = service_request(2);
    let records = [
        (Lsn(2), Envelope::external(Command::Invoke(first.clone())).encode()),
        (Lsn(3), Envelope::external(Command::Invoke(second.clone())).encode()),
        (Lsn(4), Bytes::from_static(b"\x09{}")),
        (Lsn(5), Envelope::external(Command::Invoke(service_request(3))).encode()),
    ];
    let applied = p.sm.apply_batch(records.iter().map(|(lsn, record)| (*lsn, &record[..])));
    assert_eq!(applied.consumed, 2);
    assert_eq!(invoked(&applied.effects), vec![first.id, second.id]);
    let err = applied.error.expect("the third record does not decode").to_string();
    assert!(err.contains("LSN 4 is not a readable envelope"), "{err}");
    assert_eq!(p.sm.applied_lsn(), Lsn(3));
    assert_eq!(p.status(second.id), InvocationStatus::Invoked);
    assert_eq!(PartitionStateMachine::open(p.sm.store().clone()).unwrap().applied_lsn(), Lsn(3));
}

#[test]
fn a_refused_write_commits_nothing_of_the_run_and_names_its_first_record() {
    let store = CountingStore::new();
    let mut p = Partition::new(store.clone());
    p.append(Envelope::announce_leader(1, "N1"));
    let dump = p.dump();
    let records: Vec<(Lsn, Bytes)> =
        (2..5).map(|n| (Lsn(n as u64), Envelope::external(Command::Invoke(service_request(n))).encode())).collect();
    store.refuse_next.store(true, std::sync::atomic::Ordering::SeqCst);
    let applied = p.sm.apply_batch(records.iter().map(|(lsn, record)| (*lsn, &record[..])));
    assert_eq!((applied.consumed, applied.effects.len()), (0, 0));
    let err = applied.error.expect("the write was refused").to_string();
    assert!(err.contains("cannot apply LSN 2 (the first of a batch of records)"), "{err}");
    assert_eq!(p.sm.applied_lsn(), Lsn(1));
    assert_eq!(p.dump(), dump);

    // The same records apply once the store takes writes again.
    let applied = p.sm.apply_batch(records.iter().map(|(lsn, record)| (*lsn, &record[..])));
    assert_eq!((applied.consumed, applied.effects.len()), (3, 3));
    assert_eq!(p.sm.applied_lsn(), Lsn(4));
}
