//! Journal records: state changes, timers, `ctx.run` results, suspension and resumption.

use super::*;

#[test]
fn set_state_in_the_journal_is_visible_in_read_state_and_the_next_start() {
    let mut p = memory();
    let request = object_request(1, "k", "add", false);
    p.invoke(request.clone());
    p.journal(request.id, vec![set_state(b"count", b"1"), set_state(b"name", b"x"), set_state(b"count", b"2")]);
    let state = p.sm.store().read_state("Counter", "k").unwrap();
    assert_eq!(
        state,
        vec![
            (Bytes::from_static(b"count"), Bytes::from_static(b"2")),
            (Bytes::from_static(b"name"), Bytes::from_static(b"x"))
        ]
    );
    assert_eq!(p.sm.store().read_state("Counter", "other").unwrap(), vec![], "per key");

    // The round's request carries the state eagerly and the whole journal.
    let start = p.sm.start_request(&request.id).unwrap().unwrap();
    assert_eq!(start.known_entries, 4);
    assert_eq!(start.known_commands, 4);
    let Message::Start(message) = &start.messages[0] else { panic!("Start first") };
    assert_eq!(message.known_entries, 4);
    assert_eq!(message.key, "k");
    assert_eq!(message.debug_id, request.id.to_string());
    assert!(!message.partial_state);
    assert_eq!(message.state_map.len(), 2);
    assert_eq!(message.state_map[0].key, Bytes::from_static(b"count"));
    let Message::InputCommand(input) = &start.messages[1] else { panic!("InputCommand second") };
    assert_eq!(input.value.as_ref().unwrap().content, request.input);
    assert_eq!(start.messages.len(), 5);

    p.journal(request.id, vec![clear_state(b"count")]);
    assert_eq!(p.sm.store().read_state("Counter", "k").unwrap().len(), 1);
    p.journal(request.id, vec![clear_all_state()]);
    assert_eq!(p.sm.store().read_state("Counter", "k").unwrap(), vec![]);
}

#[test]
fn a_journal_record_appended_twice_is_applied_once() {
    let mut p = memory();
    let request = object_request(1, "k", "add", false);
    p.invoke(request.clone());
    let record = Command::Journal {
        id: request.id,
        first_command_index: 1,
        entries: vec![run(1), run_completion(1, b"\"done\"")],
    };
    p.lead(record.clone());
    let after_first = p.dump();
    p.lead(record);
    assert_eq!(p.sm.store().journal(&request.id).unwrap().len(), 3);
    assert_eq!(strip_applied_lsn(&p.dump()), strip_applied_lsn(&after_first));

    // A gap (a record expecting more commands than there are) is refused too.
    p.lead(Command::Journal { id: request.id, first_command_index: 7, entries: vec![output(b"1")] });
    assert_eq!(p.sm.store().journal(&request.id).unwrap().len(), 3);
    // So is a record with an entry that is no journal entry.
    let end = JournalEntry { ty: 0x0003, flags: 0, body: Bytes::new() };
    p.lead(Command::Journal { id: request.id, first_command_index: 2, entries: vec![output(b"1"), end] });
    assert_eq!(p.sm.store().journal(&request.id).unwrap().len(), 3);
}

fn strip_applied_lsn(dump: &str) -> String {
    dump.lines().filter(|l| !l.starts_with("a = ")).collect::<Vec<_>>().join("\n")
}

#[test]
fn a_run_result_resumes_the_suspension_that_awaits_it() {
    let mut p = memory();
    let request = service_request(1);
    p.invoke(request.clone());
    let start = p.sm.start_request(&request.id).unwrap().unwrap();
    // Request/response mode: the SDK runs the closure, proposes its result and
    // suspends; the leader journals the command and the result, then the suspension.
    p.lead(Command::Journal {
        id: request.id,
        first_command_index: start.known_commands,
        entries: vec![run(1), run_completion(1, b"42")],
    });
    let effects = p.lead(Command::Suspend { id: request.id, known_entries: start.known_entries, awaiting: None });
    assert_eq!(effects, vec![Effect::Invoke { id: request.id }], "the SDK has not seen the result yet");
    assert_eq!(p.status(request.id), InvocationStatus::Invoked);

    // Next round: the SDK replays, finds the result, returns.
    let start = p.sm.start_request(&request.id).unwrap().unwrap();
    assert_eq!(start.known_entries, 3);
    assert!(matches!(start.messages[3], Message::RunCompletionNotification(_)));
    p.lead(Command::Journal {
        id: request.id,
        first_command_index: start.known_commands,
        entries: vec![output(b"42")],
    });
    assert_eq!(p.complete(request.id, b"42"), vec![respond(1, request.id, b"42")]);
    assert_eq!(p.sm.start_request(&request.id).unwrap(), None, "nothing left to run");
}

#[test]
fn a_sleep_suspends_until_its_timer_fires() {
    let mut p = memory();
    let request = service_request(1);
    p.invoke(request.clone());
    let effects = p.journal(request.id, vec![sleep(1, 60_000)]);
    assert_eq!(effects, vec![Effect::ScheduleTimer { due_ms: 60_000, id: request.id, completion_id: 1 }]);
    assert_eq!(p.lead(Command::Suspend { id: request.id, known_entries: 1, awaiting: None }), vec![]);
    assert_eq!(p.status(request.id), InvocationStatus::Suspended);
    assert_eq!(p.sm.pending_work().unwrap().suspended, vec![request.id]);
    assert_eq!(p.sm.pending_work().unwrap().timers, vec![Timer { due_ms: 60_000, id: request.id, completion_id: 1 }]);

    assert_eq!(
        p.lead(Command::TimerFired { id: request.id, completion_id: 1 }),
        vec![Effect::Invoke { id: request.id }]
    );
    assert_eq!(p.status(request.id), InvocationStatus::Invoked);
    let journal = p.sm.store().journal(&request.id).unwrap();
    assert_eq!(journal.last().unwrap().notification_id(), Some(NotificationId::Completion(1)));
    assert_eq!(p.sm.store().timers().unwrap(), vec![]);
    assert_eq!(p.lead(Command::TimerFired { id: request.id, completion_id: 1 }), vec![], "fires once");
    assert_eq!(p.sm.store().journal(&request.id).unwrap().len(), journal.len());
}

#[test]
fn a_timer_that_fires_before_the_suspension_is_applied_resumes_at_once() {
    let mut p = memory();
    let request = service_request(1);
    p.invoke(request.clone());
    p.journal(request.id, vec![sleep(1, 10)]);
    p.lead(Command::TimerFired { id: request.id, completion_id: 1 });
    assert_eq!(
        p.lead(Command::Suspend { id: request.id, known_entries: 1, awaiting: None }),
        vec![Effect::Invoke { id: request.id }]
    );
}

#[test]
fn lazy_state_reads_are_answered_from_state() {
    let mut p = memory();
    let request = object_request(1, "k", "add", false);
    p.invoke(request.clone());
    p.journal(request.id, vec![set_state(b"count", b"5")]);
    let get = JournalEntry::from_message(&Message::GetLazyStateCommand(pb::GetLazyStateCommandMessage {
        key: Bytes::from_static(b"count"),
        result_completion_id: 1,
        name: String::new(),
    }))
    .unwrap();
    p.journal(request.id, vec![get]);
    let journal = p.sm.store().journal(&request.id).unwrap();
    let Message::GetLazyStateCompletionNotification(answer) = journal.last().unwrap().decode().unwrap() else {
        panic!("expected the lazy state answer")
    };
    assert_eq!(answer.completion_id, 1);
    assert_eq!(
        answer.result,
        Some(pb::get_lazy_state_completion_notification_message::Result::Value(pb::Value {
            content: Bytes::from_static(b"5")
        }))
    );
}

#[test]
fn records_for_finished_or_unknown_invocations_are_ignored() {
    let mut p = memory();
    let request = service_request(1);
    p.invoke(request.clone());
    p.complete(request.id, b"1");
    let before = strip_applied_lsn(&p.dump());
    p.journal_unchecked(request.id, vec![output(b"2")]);
    p.lead(Command::Suspend { id: request.id, known_entries: 1, awaiting: None });
    p.lead(Command::Complete { id: request.id, result: Ok(Bytes::from_static(b"2")), completed_at_ms: 1 });
    p.external(Command::CallResult { id: request.id, completion_id: 1, result: Ok(Bytes::new()) });
    let unknown = InvocationId::new(1, [0xAB; 16]);
    p.lead(Command::Complete { id: unknown, result: Ok(Bytes::new()), completed_at_ms: 1 });
    p.external(Command::Kill { id: unknown, at_ms: 1 });
    assert_eq!(strip_applied_lsn(&p.dump()), before);
    assert_eq!(p.sm.applied_lsn(), Lsn(p.log.len() as u64), "ignored records still advance the applied LSN");
}

impl<S: PartitionStore> Partition<S> {
    fn journal_unchecked(&mut self, id: InvocationId, entries: Vec<JournalEntry>) -> Vec<Effect> {
        self.lead(Command::Journal { id, first_command_index: 1, entries })
    }
}
