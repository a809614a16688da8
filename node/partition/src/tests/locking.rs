//! Exclusive handlers of one key run one at a time; shared handlers and services never wait.

use super::*;

#[test]
fn exclusive_handlers_on_one_key_run_one_at_a_time() {
    let mut p = memory();
    let first = object_request(1, "k", "add", false);
    let second = object_request(2, "k", "add", false);
    let third = object_request(3, "k", "add", false);
    let other_key = object_request(4, "other", "add", false);

    assert_eq!(p.invoke(first.clone()), vec![Effect::Invoke { id: first.id }]);
    assert_eq!(p.invoke(second.clone()), vec![], "the second waits for the key's lock");
    assert_eq!(p.invoke(third.clone()), vec![]);
    assert_eq!(p.invoke(other_key.clone()), vec![Effect::Invoke { id: other_key.id }], "another key is free");

    assert!(matches!(p.status(second.id), InvocationStatus::Inboxed { .. }));
    let store = p.sm.store().clone();
    assert_eq!(store.lock_holder("Counter", "k").unwrap(), Some(first.id));
    let inbox: Vec<_> = store.inbox("Counter", "k").unwrap().into_iter().map(|(_, id)| id).collect();
    assert_eq!(inbox, vec![second.id, third.id], "FIFO");
    assert_eq!(p.sm.start_request(&second.id).unwrap(), None, "an inboxed invocation is not run");

    // Completing the holder answers it and starts the next in line, in that order.
    let effects = p.complete(first.id, b"1");
    assert_eq!(effects, vec![Effect::Invoke { id: second.id }, respond(1, first.id, b"1")]);
    assert_eq!(p.status(second.id), InvocationStatus::Invoked);
    assert_eq!(store.lock_holder("Counter", "k").unwrap(), Some(second.id));
    assert!(matches!(p.status(third.id), InvocationStatus::Inboxed { .. }));

    assert_eq!(invoked(&p.complete(second.id, b"2")), vec![third.id]);
    assert_eq!(invoked(&p.complete(third.id, b"3")), vec![]);
    assert_eq!(store.lock_holder("Counter", "k").unwrap(), None, "the last one frees the lock");
    assert_eq!(store.inbox("Counter", "k").unwrap(), vec![]);

    // A free key is taken at once again.
    let fifth = object_request(5, "k", "add", false);
    assert_eq!(invoked(&p.invoke(fifth.clone())), vec![fifth.id]);
}

#[test]
fn shared_handlers_and_services_do_not_wait() {
    let mut p = memory();
    let holder = object_request(1, "k", "add", false);
    let reader = object_request(2, "k", "get", true);
    let service = service_request(3);
    p.invoke(holder.clone());
    assert_eq!(p.invoke(reader.clone()), vec![Effect::Invoke { id: reader.id }]);
    assert_eq!(p.invoke(service.clone()), vec![Effect::Invoke { id: service.id }]);
    assert_eq!(p.sm.store().lock_holder("Counter", "k").unwrap(), Some(holder.id), "the reader took no lock");

    // The shared reader finishing leaves the holder's lock alone.
    p.complete(reader.id, b"0");
    assert_eq!(p.sm.store().lock_holder("Counter", "k").unwrap(), Some(holder.id));
}

#[test]
fn kill_and_cancel_leave_the_inbox_and_pass_the_lock_on() {
    let mut p = memory();
    let holder = object_request(1, "k", "add", false);
    let waiting = object_request(2, "k", "add", false);
    let last = object_request(3, "k", "add", false);
    p.invoke(holder.clone());
    p.invoke(waiting.clone());
    p.invoke(last.clone());

    // Cancelling an inboxed invocation fails it at once and takes it out of line.
    let effects = p.external(Command::Cancel { id: waiting.id, at_ms: 7 });
    assert_eq!(
        effects,
        vec![Effect::Respond { request_id: "req-2".into(), id: waiting.id, result: Err(Failure::cancelled()) }]
    );
    assert_eq!(
        p.status(waiting.id),
        InvocationStatus::Completed { result: Err(Failure::cancelled()), completed_at_ms: 7 }
    );

    // Killing the running holder aborts its round, answers it, and starts the next.
    let effects = p.external(Command::Kill { id: holder.id, at_ms: 8 });
    assert_eq!(
        effects,
        vec![
            Effect::Abort { id: holder.id },
            Effect::Invoke { id: last.id },
            Effect::Respond { request_id: "req-1".into(), id: holder.id, result: Err(Failure::killed()) },
        ]
    );
    assert_eq!(p.sm.store().journal(&holder.id).unwrap(), vec![], "a finished invocation's journal is dropped");
    assert_eq!(p.external(Command::Kill { id: holder.id, at_ms: 9 }), vec![], "killing twice does nothing");

    // Cancelling a running invocation signals it (the SDK fails the handler).
    let journal_before = p.record(last.id).journal.known_entries;
    assert_eq!(p.external(Command::Cancel { id: last.id, at_ms: 10 }), vec![]);
    let journal = p.sm.store().journal(&last.id).unwrap();
    assert_eq!(journal.len() as u32, journal_before + 1);
    assert_eq!(journal.last().unwrap().notification_id(), Some(NotificationId::Signal(CANCEL_SIGNAL_ID)));
    p.external(Command::Cancel { id: last.id, at_ms: 11 });
    assert_eq!(p.sm.store().journal(&last.id).unwrap().len(), journal.len(), "one CANCEL signal only");
}

#[test]
fn object_requests_without_a_key_are_refused() {
    let mut p = memory();
    let mut request = object_request(1, "k", "add", false);
    request.target.key = None;
    let effects = p.invoke(request.clone());
    let [Effect::Respond { request_id, result: Err(failure), .. }] = effects.as_slice() else {
        panic!("expected a refusal, got {effects:?}")
    };
    assert_eq!(request_id, "req-1");
    assert_eq!(failure.code, 400);
    assert!(failure.message.contains("Counter/add") && failure.message.contains("needs a key"), "{failure:?}");
    assert_eq!(p.sm.store().invocation(&request.id).unwrap(), None);
}

#[test]
fn set_state_replaces_an_objects_state_only_at_the_expected_version() {
    use crate::introspect::{rows, state_version, PartitionTable, Row, RowFilter};
    use crate::StateEntry;
    let mut p = memory();
    let entry =
        |k: &'static [u8], v: &'static [u8]| StateEntry { key: Bytes::from_static(k), value: Bytes::from_static(v) };
    let set = |entries: Vec<StateEntry>, expected: Option<String>| Command::SetState {
        service: "Counter".into(),
        key: "k1".into(),
        entries,
        expected_version: expected,
    };
    let filter =
        RowFilter { service_name: Some("Counter".into()), service_key: Some("k1".into()), invocation_id: None };
    let state = |p: &Partition<MemoryPartitionStore>| -> Vec<(Vec<u8>, Vec<u8>)> {
        rows(p.sm.store(), PartitionTable::State, &filter)
            .unwrap()
            .into_iter()
            .map(|r| match r {
                Row::State { key, value, .. } => (key.to_vec(), value.to_vec()),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let version = |pairs: &[(Vec<u8>, Vec<u8>)]| state_version(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));

    p.external(set(vec![entry(b"count", b"5"), entry(b"name", b"\"a\"")], None));
    let first = state(&p);
    assert_eq!(first, vec![(b"count".to_vec(), b"5".to_vec()), (b"name".to_vec(), b"\"a\"".to_vec())]);
    // A stale version changes nothing; the current one replaces everything.
    p.external(set(vec![], Some(version(&[]))));
    assert_eq!(state(&p), first, "edited against a stale version: dropped");
    p.external(set(vec![entry(b"count", b"0")], Some(version(&first))));
    assert_eq!(state(&p), vec![(b"count".to_vec(), b"0".to_vec())]);
    p.external(set(vec![], None));
    assert!(state(&p).is_empty(), "cleared");
}
