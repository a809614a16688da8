//! Fencing, LSN idempotence and deterministic replay over both stores.

use restate_storage::{NodeStorage, StorageOptions};

use super::*;

/// A log exercising every command: locks and inboxes, idempotency, state, timers, runs,
/// calls, suspensions, a leader change with a deposed leader's records, kill, cancel,
/// purge. Returns the partition it ran on.
pub(super) fn scenario<S: PartitionStore>(mut p: Partition<S>) -> Partition<S> {
    p.append(Envelope::announce_leader(1, "N1"));
    let a = object_request(1, "k", "add", false);
    let b = object_request(2, "k", "add", false);
    let c = object_request(3, "k", "add", false);
    let reader = object_request(4, "k", "get", true);
    let mut greet = service_request(5);
    greet.idempotency_key = Some("once".into());
    greet.id = InvocationId::for_target("Greeter", "greet", None, Some("once"), [5; 16]);
    let mut greet_again = greet.clone();
    greet_again.id = InvocationId::for_target("Greeter", "greet", None, Some("once"), [6; 16]);
    greet_again.response = ingress(6);

    for request in [&a, &b, &c, &reader, &greet, &greet_again] {
        p.invoke(request.clone());
    }
    p.journal(a.id, vec![set_state(b"count", b"1"), sleep(1, 5_000), run(2), run_completion(2, b"\"r\"")]);
    p.lead(Command::Suspend { id: a.id, known_entries: 1, awaiting: None });
    p.journal(a.id, vec![call("Greeter", "greet", "", 3, 4), one_way_call("Counter", "add", 5, 0)]);
    p.lead(Command::Suspend { id: a.id, known_entries: 8, awaiting: None });
    p.lead(Command::OutboxDelivered { seq: 3 });
    p.lead(Command::TimerFired { id: a.id, completion_id: 1 });
    p.external(Command::CallResult { id: a.id, completion_id: 4, result: Ok(Bytes::from_static(b"\"hello\"")) });
    p.journal(reader.id, vec![output(b"1")]);
    p.complete(reader.id, b"1");

    // Leader change; the deposed leader's late records are fenced.
    p.append(Envelope::announce_leader(2, "N2"));
    p.append(Envelope::from_leader(
        1,
        Command::Journal { id: a.id, first_command_index: 7, entries: vec![output(b"x")] },
    ));
    p.append(Envelope::from_leader(
        1,
        Command::Complete { id: a.id, result: Ok(Bytes::from_static(b"x")), completed_at_ms: 1 },
    ));
    p.journal(a.id, vec![set_state(b"count", b"2"), output(b"2")]);
    p.lead(Command::Complete { id: a.id, result: Ok(Bytes::from_static(b"2")), completed_at_ms: 2_000 });
    p.external(Command::Cancel { id: c.id, at_ms: 2_100 });
    p.journal(b.id, vec![clear_state(b"count"), sleep(1, 9_000)]);
    p.lead(Command::Suspend { id: b.id, known_entries: 1, awaiting: None });
    p.external(Command::Kill { id: b.id, at_ms: 2_200 });
    p.lead(Command::Complete { id: greet.id, result: Ok(Bytes::from_static(b"\"hi\"")), completed_at_ms: 2_300 });
    p.lead(Command::PurgeIdempotency { older_than_ms: 2_050, workflows: Default::default() });
    let d = object_request(7, "k", "add", false);
    p.invoke(d.clone());
    p.journal(d.id, vec![set_state(b"total", b"3"), sleep(1, 10_000), call("Counter", "get", "k2", 2, 3)]);
    p
}

pub(super) fn fresh_memory() -> Partition<MemoryPartitionStore> {
    Partition::new(MemoryPartitionStore::new(PartitionId(3)))
}

/// Applies `log` from LSN 1 to `p`.
fn replay<S: PartitionStore>(p: &mut Partition<S>, log: &[Envelope]) -> Vec<Effect> {
    let mut effects = Vec::new();
    for (index, envelope) in log.iter().enumerate() {
        effects.extend(p.sm.apply(Lsn(index as u64 + 1), envelope).unwrap());
    }
    effects
}

#[test]
fn a_lower_epoch_after_a_higher_announcement_is_ignored() {
    let mut p = memory();
    let request = object_request(1, "k", "add", false);
    p.invoke(request.clone());
    p.append(Envelope::announce_leader(2, "N2"));

    p.append(Envelope::from_leader(
        1,
        Command::Journal { id: request.id, first_command_index: 1, entries: vec![set_state(b"count", b"1")] },
    ));
    p.append(Envelope::from_leader(
        1,
        Command::Complete { id: request.id, result: Ok(Bytes::new()), completed_at_ms: 1 },
    ));
    assert_eq!(p.sm.store().read_state("Counter", "k").unwrap(), vec![]);
    assert_eq!(p.status(request.id), InvocationStatus::Invoked);

    // An old leader announcing again changes nothing either.
    p.append(Envelope::announce_leader(1, "N1"));
    assert_eq!(p.sm.leader(), Some(&LeaderEpoch { epoch: 2, node: "N2".into() }));
    assert_eq!(p.sm.store().leader().unwrap(), Some(LeaderEpoch { epoch: 2, node: "N2".into() }));

    // Records from outside the partition are not fenced; the new leader's apply.
    let other = service_request(2);
    assert_eq!(invoked(&p.invoke(other.clone())), vec![other.id]);
    p.append(Envelope::from_leader(
        2,
        Command::Journal { id: request.id, first_command_index: 1, entries: vec![set_state(b"count", b"1")] },
    ));
    assert_eq!(p.sm.store().read_state("Counter", "k").unwrap().len(), 1);
}

#[test]
fn reapplying_an_lsn_is_a_no_op() {
    let mut p = scenario(fresh_memory());
    let dump = p.dump();
    let applied = p.sm.applied_lsn();
    let stray = Envelope::external(Command::Invoke(service_request(9)));
    assert_eq!(p.sm.apply(applied, &stray).unwrap(), vec![]);
    assert_eq!(p.sm.apply(Lsn(1), &stray).unwrap(), vec![]);
    assert_eq!(p.sm.apply_record(Lsn(2), b"not even an envelope").unwrap(), vec![]);
    assert_eq!(p.dump(), dump);
    assert_eq!(p.sm.applied_lsn(), applied);
}

#[test]
fn an_unreadable_record_stops_the_partition_without_advancing() {
    let mut p = memory();
    let err = p.sm.apply_record(Lsn(2), b"\x09{}").unwrap_err();
    assert!(err.to_string().contains("partition 0: LSN 2 is not a readable envelope"), "{err}");
    assert!(err.to_string().contains("format version 9"), "{err}");
    assert_eq!(p.sm.applied_lsn(), Lsn(1));
}

#[test]
fn replaying_the_log_reproduces_the_state_in_both_stores() {
    let original = scenario(fresh_memory());
    let expected = original.dump();
    assert!(expected.contains("total"), "the scenario leaves state behind:\n{expected}");

    let mut memory_replica = fresh_memory();
    replay(&mut memory_replica, &original.log);
    assert_eq!(memory_replica.dump(), expected);

    let dir = tempfile::tempdir().unwrap();
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let mut rocks_replica = Partition::new(RocksDbPartitionStore::new(storage.clone(), PartitionId(3)));
    replay(&mut rocks_replica, &original.log);
    assert_eq!(rocks_replica.dump(), expected);
    assert_eq!(rocks_replica.sm.pending_work().unwrap(), original.sm.pending_work().unwrap());
    // Another partition in the same column family neither sees nor disturbs it.
    let mut neighbour = Partition::new(RocksDbPartitionStore::new(storage, PartitionId(4)));
    replay(&mut neighbour, &original.log[..5]);
    assert_eq!(rocks_replica.dump(), expected);

    // A replica that restarts midway and re-reads the log from the start ends the same.
    let store = MemoryPartitionStore::new(PartitionId(3));
    let mut first_half = Partition::new(store.clone());
    replay(&mut first_half, &original.log[..original.log.len() / 2]);
    let mut restarted = Partition::new(store);
    assert_eq!(restarted.sm.applied_lsn(), Lsn(original.log.len() as u64 / 2));
    replay(&mut restarted, &original.log);
    assert_eq!(restarted.dump(), expected);
}

/// An upgraded node reads a log whose older records are JSON (format 1) and newer ones
/// binary (format 2): it ends in the same state, with the same effects, as a node that
/// read the log in one format.
#[test]
fn a_log_written_in_the_earlier_json_format_replays_to_the_same_state() {
    let original = scenario(fresh_memory());
    let expected = original.dump();
    let mut binary = fresh_memory();
    let mut upgraded = fresh_memory();
    let upgrade_at = original.log.len() / 2;
    for (index, envelope) in original.log.iter().enumerate() {
        let lsn = Lsn(index as u64 + 1);
        let record = if index < upgrade_at { envelope.encode_json() } else { envelope.encode() };
        assert_eq!(record[0], if index < upgrade_at { ENVELOPE_FORMAT_JSON } else { ENVELOPE_FORMAT_VERSION });
        let effects = upgraded.sm.apply_record(lsn, &record).unwrap();
        assert_eq!(effects, binary.sm.apply_record(lsn, &envelope.encode()).unwrap(), "effects of LSN {}", lsn.0);
    }
    assert_eq!(upgraded.dump(), expected);
    assert_eq!(binary.dump(), expected);
}

#[test]
fn replay_effects_match_the_original_run() {
    let original = scenario(fresh_memory());
    let mut first = fresh_memory();
    let mut second = fresh_memory();
    assert_eq!(replay(&mut first, &original.log), replay(&mut second, &original.log));
}

#[test]
fn pending_work_rebuilds_what_the_effects_asked_for() {
    let p = scenario(fresh_memory());
    let work = p.sm.pending_work().unwrap();
    let d = object_request(7, "k", "add", false).id;
    assert_eq!(work.invoked, vec![d], "only the last invocation is running");
    assert_eq!(work.timers, vec![Timer { due_ms: 10_000, id: d, completion_id: 1 }]);
    // The call of `a`'s round and `a`'s one-way send were acknowledged or are pending;
    // `d`'s call is pending.
    assert!(work
        .outbox
        .iter()
        .any(|e| matches!(&e.message, OutboxMessage::Invoke(o) if o.key.as_deref() == Some("k2"))));
    assert_eq!(work.outbox.iter().filter(|e| e.seq == 3).count(), 0, "delivered entries are gone");
    let effects = work.effects();
    assert_eq!(effects[0], Effect::Invoke { id: d });
    assert_eq!(effects[1], Effect::ScheduleTimer { due_ms: 10_000, id: d, completion_id: 1 });
    assert_eq!(effects.len(), 2 + work.outbox.len());
}

#[test]
fn the_rocksdb_store_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (dump, applied, work, log) = {
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let p = scenario(Partition::new(RocksDbPartitionStore::new(storage, PartitionId(3))));
        (p.dump(), p.sm.applied_lsn(), p.sm.pending_work().unwrap(), p.log)
    };
    let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
    let mut p = Partition::new(RocksDbPartitionStore::new(storage, PartitionId(3)));
    assert_eq!(p.sm.applied_lsn(), applied);
    assert_eq!(p.sm.applied_lsn(), Lsn(log.len() as u64));
    assert_eq!(p.sm.leader(), Some(&LeaderEpoch { epoch: 2, node: "N2".into() }));
    assert_eq!(p.dump(), dump);
    assert_eq!(p.sm.pending_work().unwrap(), work);

    // Re-reading the log changes nothing; the next record applies.
    assert_eq!(replay(&mut p, &log), vec![]);
    p.log = log;
    let next = service_request(8);
    assert_eq!(invoked(&p.invoke(next.clone())), vec![next.id]);
    assert_eq!(p.sm.applied_lsn(), applied.next());
}
