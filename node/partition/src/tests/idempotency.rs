//! A repeated request (same id or same idempotency key) joins the first invocation.

use super::*;

fn idempotent(n: u8) -> InvocationRequest {
    let mut request = service_request(n);
    request.idempotency_key = Some("order-7".into());
    request.id = InvocationId::for_target("Greeter", "greet", None, Some("order-7"), [n; 16]);
    request
}

#[test]
fn a_repeat_while_running_waits_for_the_same_result() {
    let mut p = memory();
    let first = idempotent(1);
    let repeat = idempotent(2);
    assert_eq!(first.id.partition_key(), repeat.id.partition_key(), "both reach this partition");

    assert_eq!(invoked(&p.invoke(first.clone())), vec![first.id]);
    assert_eq!(p.invoke(repeat.clone()), vec![], "no second invocation");
    assert_eq!(p.sm.store().invocation(&repeat.id).unwrap(), None);
    assert_eq!(p.record(first.id).sinks, vec![ingress(1), ingress(2)]);
    // The same request appended twice (an ingress retry) waits once.
    p.invoke(repeat.clone());
    assert_eq!(p.record(first.id).sinks, vec![ingress(1), ingress(2)]);

    let key = IdempotencyKey::for_target(&first.target, "order-7");
    assert_eq!(p.sm.store().status_by_idempotency(&key).unwrap(), Some((first.id, InvocationStatus::Invoked)));

    assert_eq!(p.complete(first.id, b"\"hi\""), vec![respond(1, first.id, b"\"hi\""), respond(2, first.id, b"\"hi\"")]);
}

#[test]
fn a_repeat_after_completion_gets_the_stored_result_until_purged() {
    let mut p = memory();
    let first = idempotent(1);
    p.invoke(first.clone());
    p.lead(Command::Complete { id: first.id, result: Ok(Bytes::from_static(b"\"hi\"")), completed_at_ms: 5_000 });

    assert_eq!(p.invoke(idempotent(3)), vec![respond(3, first.id, b"\"hi\"")], "answered at once");
    // Same id again (e.g. the first request re-appended): answered too, nothing new.
    assert_eq!(p.invoke(first.clone()), vec![respond(1, first.id, b"\"hi\"")]);
    let key = IdempotencyKey::for_target(&first.target, "order-7");
    let (id, status) = p.sm.store().status_by_idempotency(&key).unwrap().unwrap();
    assert_eq!(id, first.id);
    assert_eq!(
        status,
        InvocationStatus::Completed { result: Ok(Bytes::from_static(b"\"hi\"")), completed_at_ms: 5_000 }
    );

    // Retention: younger than the cut-off stays, older goes (with its key).
    p.lead(Command::PurgeIdempotency { older_than_ms: 5_000, workflows: Default::default() });
    assert!(p.sm.store().status_by_idempotency(&key).unwrap().is_some());
    p.lead(Command::PurgeIdempotency { older_than_ms: 5_001, workflows: Default::default() });
    assert_eq!(p.sm.store().status_by_idempotency(&key).unwrap(), None);
    assert_eq!(p.sm.store().invocation(&first.id).unwrap(), None);

    // The key is free again: a new request starts a new invocation.
    let later = idempotent(4);
    assert_eq!(invoked(&p.invoke(later.clone())), vec![later.id]);
}

#[test]
fn idempotency_keys_are_scoped_to_the_handler_and_object_key() {
    let mut p = memory();
    let mut a = object_request(1, "k1", "add", false);
    a.idempotency_key = Some("same".into());
    let mut b = object_request(2, "k2", "add", false);
    b.idempotency_key = Some("same".into());
    let mut c = object_request(3, "k1", "reset", false);
    c.idempotency_key = Some("same".into());
    assert_eq!(invoked(&p.invoke(a.clone())), vec![a.id]);
    assert_eq!(invoked(&p.invoke(b.clone())), vec![b.id], "another key");
    p.invoke(c.clone());
    assert!(matches!(p.status(c.id), InvocationStatus::Inboxed { .. }), "another handler: a new invocation");
}

#[test]
fn attach_waits_for_a_running_invocation_and_answers_a_completed_or_unknown_one() {
    let mut p = memory();
    let mut sent = service_request(1);
    sent.response = ResponseSink::None;
    p.invoke(sent.clone());

    let attach = |n: u8| Command::Attach { id: sent.id, response: ingress(n) };
    assert_eq!(p.external(attach(2)), vec![], "running: the sink waits");
    assert_eq!(p.record(sent.id).sinks, vec![ingress(2)]);
    assert_eq!(p.complete(sent.id, b"\"hi\""), vec![respond(2, sent.id, b"\"hi\"")]);
    assert_eq!(p.external(attach(3)), vec![respond(3, sent.id, b"\"hi\"")], "completed: answered at once");

    let unknown = service_request(9).id;
    let effects = p.external(Command::Attach { id: unknown, response: ingress(4) });
    match effects.as_slice() {
        [Effect::Respond { request_id, id, result: Err(failure) }] => {
            assert_eq!((request_id.as_str(), *id, failure.code), ("req-4", unknown, 404));
            assert!(failure.message.contains(&unknown.to_string()), "{}", failure.message);
        }
        other => panic!("expected one 404 answer, got {other:?}"),
    }
    assert_eq!(p.sm.store().invocation(&unknown).unwrap(), None, "nothing stored for an unknown id");
}

#[test]
fn purge_forgets_a_completed_invocation_at_once_and_leaves_a_running_one() {
    let mut p = memory();
    let first = idempotent(1);
    p.invoke(first.clone());
    assert_eq!(p.external(Command::Purge { id: first.id }), vec![], "a running invocation is left alone");
    assert!(matches!(p.status(first.id), InvocationStatus::Invoked));
    p.lead(Command::Complete { id: first.id, result: Ok(Bytes::from_static(b"\"hi\"")), completed_at_ms: 5_000 });
    p.external(Command::Purge { id: first.id });
    let key = IdempotencyKey::for_target(&first.target, "order-7");
    assert_eq!(p.sm.store().invocation(&first.id).unwrap(), None, "its result is gone");
    assert_eq!(p.sm.store().status_by_idempotency(&key).unwrap(), None, "and its idempotency key");
    // Purging again, or an unknown id, changes nothing; the key starts a new invocation.
    p.external(Command::Purge { id: first.id });
    let later = idempotent(4);
    assert_eq!(invoked(&p.invoke(later.clone())), vec![later.id]);
}
