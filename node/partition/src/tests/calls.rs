//! Calls between invocations travel through the outboxes and logs of both partitions.

use super::*;
use restate_types::ServiceType;

/// The SDK says what it suspended on: the call's invocation-id notification, already in
/// the journal, does not resume a caller that waits for the call's result (no useless
/// round); news it does not wait for stays in the journal; its result, or CANCEL, does.
#[test]
fn only_a_notification_the_sdk_awaits_resumes_it() {
    let mut p = memory();
    let caller = service_request(1);
    p.invoke(caller.clone());
    p.journal(caller.id, vec![call("Counter", "add", "k", 1, 2)]);
    let result_only = Awaiting { completions: vec![2], ..Awaiting::default() };
    let effects = p.lead(Command::Suspend { id: caller.id, known_entries: 1, awaiting: Some(result_only.clone()) });
    assert_eq!(invoked(&effects), Vec::<InvocationId>::new(), "the id notification is not what it waits for");
    assert_eq!(p.status(caller.id), InvocationStatus::Suspended);
    assert_eq!(p.record(caller.id).journal.awaiting, Some(result_only));

    let effects = p.external(Command::Signal {
        id: caller.id,
        signal: SignalId::Name("later".into()),
        result: SignalResult::Void,
    });
    assert_eq!(invoked(&effects), Vec::<InvocationId>::new(), "a named signal it does not await");
    assert_eq!(p.status(caller.id), InvocationStatus::Suspended);

    let effects =
        p.external(Command::CallResult { id: caller.id, completion_id: 2, result: Ok(Bytes::from_static(b"7")) });
    assert_eq!(invoked(&effects), vec![caller.id], "the awaited result resumes it");
    assert_eq!(p.record(caller.id).journal.awaiting, None);

    // Suspended again on something else: CANCEL always gets through.
    let known = p.record(caller.id).journal.known_entries;
    let awaiting = Some(Awaiting { signals: vec![17], ..Awaiting::default() });
    assert_eq!(
        invoked(&p.lead(Command::Suspend { id: caller.id, known_entries: known, awaiting })),
        Vec::<InvocationId>::new()
    );
    assert_eq!(invoked(&p.external(Command::Cancel { id: caller.id, at_ms: 5 })), vec![caller.id]);
}

#[test]
fn a_call_goes_out_through_the_outbox_and_its_result_resumes_the_caller() {
    let mut caller_partition = memory();
    let mut callee_partition = memory();
    let caller = service_request(1);
    caller_partition.invoke(caller.clone());

    // The caller's round: a call to Counter/k/add, then a suspension awaiting it.
    let effects = caller_partition.journal(caller.id, vec![call("Counter", "add", "k", 1, 2)]);
    let [entry] = sent(&effects).try_into().expect("one outbox entry");
    let OutboxMessage::Invoke(outbound) = entry.message.clone() else { panic!("expected an outbound invocation") };
    assert_eq!(outbound.service, "Counter");
    assert_eq!(outbound.key.as_deref(), Some("k"));
    assert_eq!(outbound.id.partition_key(), partition_key("Counter", "k"), "routed to the object's partition");
    assert_eq!(entry.message.destination_partition_key(), outbound.id.partition_key());
    assert_eq!(outbound.response, ResponseSink::Caller { invocation_id: caller.id, completion_id: 2 });
    let journal = caller_partition.sm.store().journal(&caller.id).unwrap();
    let Message::CallInvocationIdCompletionNotification(id_notification) = journal[2].decode().unwrap() else {
        panic!("the callee's id is journaled")
    };
    assert_eq!(id_notification.invocation_id, outbound.id.to_string());

    // The SDK had not seen the id notification: resumed once, then it suspends for real.
    assert_eq!(
        invoked(&caller_partition.lead(Command::Suspend { id: caller.id, known_entries: 1, awaiting: None })),
        vec![caller.id]
    );
    assert_eq!(caller_partition.lead(Command::Suspend { id: caller.id, known_entries: 3, awaiting: None }), vec![]);
    assert_eq!(caller_partition.status(caller.id), InvocationStatus::Suspended);

    // The leader routes the call, then acknowledges the outbox entry.
    let request = outbound.clone().into_request(ServiceType::VirtualObject, false, 200);
    assert_eq!(invoked(&callee_partition.invoke(request.clone())), vec![outbound.id]);
    assert_eq!(callee_partition.invoke(request), vec![], "routing twice (after a crash) is harmless");
    assert_eq!(caller_partition.sm.pending_work().unwrap().outbox, vec![entry.clone()]);
    caller_partition.lead(Command::OutboxDelivered { seq: entry.seq });
    assert_eq!(caller_partition.sm.pending_work().unwrap().outbox, vec![]);

    // The callee finishes: its result goes to the caller's partition the same way.
    let effects = callee_partition.complete(outbound.id, b"7");
    let [result_entry] = sent(&effects).try_into().expect("one outbox entry");
    assert_eq!(result_entry.message.destination_partition_key(), caller.id.partition_key());
    let OutboxMessage::CallResult { caller: to, completion_id, result } = result_entry.message else {
        panic!("expected a call result")
    };
    assert_eq!((to, completion_id), (caller.id, 2));
    let call_result = Command::CallResult { id: to, completion_id, result };

    assert_eq!(caller_partition.external(call_result.clone()), vec![Effect::Invoke { id: caller.id }]);
    assert_eq!(caller_partition.status(caller.id), InvocationStatus::Invoked);
    let journal = caller_partition.sm.store().journal(&caller.id).unwrap();
    let Message::CallCompletionNotification(completion) = journal.last().unwrap().decode().unwrap() else {
        panic!("the result is journaled")
    };
    assert_eq!(completion.completion_id, 2);
    assert_eq!(caller_partition.external(call_result), vec![], "a second delivery is dropped");
    assert_eq!(caller_partition.sm.store().journal(&caller.id).unwrap().len(), journal.len());
}

#[test]
fn one_way_calls_keep_their_delay_and_expect_no_answer() {
    let mut p = memory();
    let caller = service_request(1);
    p.invoke(caller.clone());
    let effects = p.journal(caller.id, vec![one_way_call("Greeter", "greet", 1, 90_000)]);
    let [entry] = sent(&effects).try_into().expect("one outbox entry");
    assert_eq!(entry.deliver_at_ms, 0, "routed at once; the callee's partition holds it scheduled");
    let OutboxMessage::Invoke(outbound) = entry.message else { panic!("expected an outbound invocation") };
    assert_eq!(outbound.invoke_at_ms, 90_000);
    assert_eq!(outbound.key, None);
    assert_eq!(outbound.response, ResponseSink::None);
    assert_eq!(outbound.rejection(Failure::new(404, "no service Greeter")), None, "nobody to tell");
}

#[test]
fn an_unroutable_call_fails_the_caller() {
    let mut p = memory();
    let caller = service_request(1);
    p.invoke(caller.clone());
    let effects = p.journal(caller.id, vec![call("Missing", "run", "", 1, 2)]);
    let OutboxMessage::Invoke(outbound) = sent(&effects)[0].message.clone() else { panic!("expected a call") };
    let rejection = outbound.rejection(Failure::new(404, "no service Missing")).unwrap();
    assert_eq!(
        rejection,
        Command::CallResult { id: caller.id, completion_id: 2, result: Err(Failure::new(404, "no service Missing")) }
    );
    p.external(rejection);
    let Message::CallCompletionNotification(completion) =
        p.sm.store().journal(&caller.id).unwrap().last().unwrap().decode().unwrap()
    else {
        panic!("the failure is journaled")
    };
    assert_eq!(
        completion.result,
        Some(pb::call_completion_notification_message::Result::Failure(pb::Failure {
            code: 404,
            message: "no service Missing".into(),
            metadata: vec![]
        }))
    );
}
