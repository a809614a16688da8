//! Pause, resume and restart-as-new: an operator's hold on a running invocation, and a
//! completed invocation run again under a new id.

use super::*;

#[test]
fn a_paused_invocation_runs_no_round_and_keeps_its_notifications_until_resumed() {
    let mut p = memory();
    let request = service_request(1);
    let id = request.id;
    p.invoke(request);
    p.journal(id, vec![sleep(1, 5_000)]);
    p.lead(Command::Suspend { id, known_entries: 2, awaiting: None });
    assert_eq!(p.status(id), InvocationStatus::Suspended);

    assert_eq!(p.external(Command::Pause { id }), vec![Effect::Abort { id }], "the round in flight is dropped");
    assert_eq!(p.status(id), InvocationStatus::Paused);
    assert_eq!(p.sm.pending_work().unwrap().invoked, vec![], "a new leader runs no round of it");
    assert_eq!(p.sm.start_request(&id).unwrap(), None);

    // The timer's notification is kept, but resumes nothing; a late round of the old
    // attempt changes nothing either.
    assert_eq!(p.lead(Command::TimerFired { id, completion_id: 1 }), vec![]);
    assert_eq!(p.status(id), InvocationStatus::Paused);
    let commands = p.record(id).journal.commands;
    p.lead(Command::Journal { id, first_command_index: commands, entries: vec![output(b"late")] });
    p.lead(Command::Complete { id, result: Ok(Bytes::from_static(b"late")), completed_at_ms: 2_000 });
    assert_eq!(p.status(id), InvocationStatus::Paused, "records of the dropped round are ignored");
    assert_eq!(p.record(id).journal.commands, commands);

    // Pausing again is a no-op; resuming runs a round that sees the notification.
    assert_eq!(p.external(Command::Pause { id }), vec![]);
    assert_eq!(invoked(&p.external(Command::Resume { id })), vec![id]);
    assert_eq!(p.status(id), InvocationStatus::Invoked);
    let start = p.sm.start_request(&id).unwrap().expect("runs again");
    assert_eq!(start.known_entries, p.record(id).journal.known_entries);
    p.complete(id, b"done");
    assert!(matches!(p.status(id), InvocationStatus::Completed { .. }));
    assert_eq!(p.external(Command::Resume { id }), vec![], "a completed invocation is left alone");
}

#[test]
fn resume_wakes_a_suspended_invocation_and_cancel_or_kill_reach_a_paused_one() {
    let mut p = memory();
    let first = service_request(1);
    p.invoke(first.clone());
    p.lead(Command::Suspend { id: first.id, known_entries: 1, awaiting: None });
    assert_eq!(invoked(&p.external(Command::Resume { id: first.id })), vec![first.id], "suspended: replays now");

    p.external(Command::Pause { id: first.id });
    let effects = p.external(Command::Cancel { id: first.id, at_ms: 10 });
    assert_eq!(invoked(&effects), vec![first.id], "the handler must see the cancellation");
    assert!(p.record(first.id).journal.cancel_signalled);

    let second = service_request(2);
    p.invoke(second.clone());
    p.external(Command::Pause { id: second.id });
    let effects = p.external(Command::Kill { id: second.id, at_ms: 20 });
    assert!(effects.contains(&Effect::Abort { id: second.id }));
    match p.status(second.id) {
        InvocationStatus::Completed { result: Err(failure), .. } => assert_eq!(failure.code, 409),
        other => panic!("expected killed, got {other:?}"),
    }
}

#[test]
fn restart_as_new_runs_the_same_input_under_a_new_id() {
    let mut p = memory();
    let first = service_request(1);
    let id = first.id;
    p.invoke(first.clone());
    let new_id = InvocationId::new(id.partition_key(), [9; 16]);
    assert_eq!(p.external(Command::RestartAsNew { id, new_id, at_ms: 50 }), vec![], "only completed ones restart");
    p.complete(id, b"\"hi\"");
    assert!(p.sm.store().kept_input(&id).unwrap().is_some(), "the input outlives the journal");

    assert_eq!(invoked(&p.external(Command::RestartAsNew { id, new_id, at_ms: 50 })), vec![new_id]);
    let restarted = p.record(new_id);
    assert_eq!((restarted.target, restarted.submitted_at_ms), (first.target.clone(), 50));
    assert_eq!((restarted.idempotency_key, restarted.sinks), (None, vec![]));
    let start = p.sm.start_request(&new_id).unwrap().unwrap();
    match &start.messages[1] {
        Message::InputCommand(input) => {
            assert_eq!(input.value.as_ref().unwrap().content, first.input);
            assert_eq!(input.headers[0].key, "x-trace");
        }
        other => panic!("expected the input, got {other:?}"),
    }
    assert_eq!(p.external(Command::RestartAsNew { id, new_id, at_ms: 60 }), vec![], "the new id exists");
    let elsewhere = InvocationId::new(id.partition_key() ^ 1, [8; 16]);
    assert_eq!(p.external(Command::RestartAsNew { id, new_id: elsewhere, at_ms: 60 }), vec![]);

    // Purging the result forgets the input too.
    p.external(Command::Purge { id });
    assert_eq!(p.sm.store().kept_input(&id).unwrap(), None);
    let again = InvocationId::new(id.partition_key(), [7; 16]);
    assert_eq!(p.external(Command::RestartAsNew { id, new_id: again, at_ms: 70 }), vec![]);
}
