//! Invocations submitted with a delay: `Scheduled` until the leader's start timer fires,
//! rebuilt by a new leader, cancellable; delayed one-way calls arrive scheduled.

use super::*;

#[test]
fn a_delayed_invocation_starts_when_its_timer_fires() {
    let mut p = memory();
    let request = InvocationRequest { invoke_at_ms: 5_000, ..object_request(1, "k", "add", false) };
    let effects = p.invoke(request.clone());
    assert_eq!(effects, vec![Effect::ScheduleTimer { due_ms: 5_000, id: request.id, completion_id: START_TIMER }]);
    assert_eq!(p.status(request.id), InvocationStatus::Scheduled { due_ms: 5_000 });
    assert_eq!(p.status(request.id).name(), "scheduled");
    // Not holding the key's lock while it waits: another invocation of the key runs now.
    let other = object_request(2, "k", "add", false);
    assert_eq!(invoked(&p.invoke(other.clone())), vec![other.id]);

    // A new leader finds the start timer again.
    let timers = p.sm.pending_work().unwrap().timers;
    assert_eq!(timers, vec![Timer { due_ms: 5_000, id: request.id, completion_id: START_TIMER }]);

    // Due while the key is locked: inboxed behind the running one, then started.
    assert_eq!(p.lead(Command::TimerFired { id: request.id, completion_id: START_TIMER }), vec![]);
    assert!(matches!(p.status(request.id), InvocationStatus::Inboxed { .. }));
    assert_eq!(invoked(&p.complete(other.id, b"1")), vec![request.id]);
    assert_eq!(p.status(request.id), InvocationStatus::Invoked);
    assert_eq!(p.lead(Command::TimerFired { id: request.id, completion_id: START_TIMER }), vec![], "fires once");
}

#[test]
fn a_scheduled_invocation_can_be_cancelled_before_it_starts() {
    let mut p = memory();
    let request = InvocationRequest { invoke_at_ms: 9_000, ..service_request(1) };
    p.invoke(request.clone());
    let effects = p.external(Command::Cancel { id: request.id, at_ms: 10 });
    assert_eq!(
        effects,
        vec![Effect::Respond { request_id: "req-1".into(), id: request.id, result: Err(Failure::cancelled()) }]
    );
    assert_eq!(p.sm.pending_work().unwrap().timers, vec![], "its start timer is gone");
    assert_eq!(p.lead(Command::TimerFired { id: request.id, completion_id: START_TIMER }), vec![]);
}

#[test]
fn a_delayed_one_way_call_goes_out_at_once_and_waits_in_the_callee() {
    let mut p = memory();
    let caller = service_request(1);
    p.invoke(caller.clone());
    let effects = p.journal(caller.id, vec![one_way_call("Greeter", "greet", 1, 7_000)]);
    let [entry] = sent(&effects).try_into().expect("one outbox entry");
    assert_eq!(entry.deliver_at_ms, 0, "routed at once");
    let OutboxMessage::Invoke(outbound) = entry.message else { panic!("expected an invocation") };
    let request = outbound.into_request(ServiceType::Service, false, 100);
    assert_eq!(request.invoke_at_ms, 7_000);
    let mut callee = memory();
    callee.invoke(request.clone());
    assert_eq!(callee.status(request.id), InvocationStatus::Scheduled { due_ms: 7_000 });
}
