//! Awakeables and signals: completions that come from outside the waiting invocation.

use super::*;

fn raw(ty: restate_service_protocol::protocol::MessageType, body: impl prost::Message) -> JournalEntry {
    JournalEntry { ty: ty.id(), flags: 0, body: body.encode_to_vec().into() }
}

fn complete_awakeable(id: &str, value: &'static [u8]) -> JournalEntry {
    raw(
        restate_service_protocol::protocol::MessageType::CompleteAwakeableCommand,
        pb::CompleteAwakeableCommandMessage {
            awakeable_id: id.into(),
            result: Some(pb::complete_awakeable_command_message::Result::Value(pb::Value {
                content: Bytes::from_static(value),
            })),
            name: String::new(),
        },
    )
}

fn send_signal(target: InvocationId, name: &str) -> JournalEntry {
    raw(
        restate_service_protocol::protocol::MessageType::SendSignalCommand,
        pb::SendSignalCommandMessage {
            target_invocation_id: target.to_string(),
            signal_id: Some(pb::send_signal_command_message::SignalId::Name(name.into())),
            result: Some(pb::send_signal_command_message::Result::Void(pb::Void {})),
            entry_name: String::new(),
        },
    )
}

fn last_signal(p: &Partition<MemoryPartitionStore>, id: InvocationId) -> pb::SignalNotificationMessage {
    let journal = p.sm.store().journal(&id).unwrap();
    let Message::Other { body, .. } = journal.last().unwrap().decode().unwrap() else { panic!("not a signal") };
    <pb::SignalNotificationMessage as prost::Message>::decode(body).unwrap()
}

#[test]
fn an_awakeable_completed_from_another_invocation_resumes_the_waiter_once() {
    let mut waiting_partition = memory();
    let mut completing_partition = memory();
    let waiter = service_request(1);
    waiting_partition.invoke(waiter.clone());
    // The waiter created awakeable #17 and suspended awaiting it.
    waiting_partition.lead(Command::Suspend { id: waiter.id, known_entries: 1, awaiting: None });
    assert_eq!(waiting_partition.status(waiter.id), InvocationStatus::Suspended);

    // Another invocation completes it: the signal leaves through its outbox...
    let completer = service_request(2);
    completing_partition.invoke(completer.clone());
    let id = awakeable_id(&waiter.id, 17);
    let effects = completing_partition.journal(completer.id, vec![complete_awakeable(&id, b"\"approved\"")]);
    let [entry] = sent(&effects).try_into().expect("one outbox entry");
    assert_eq!(entry.message.destination_partition_key(), waiter.id.partition_key());
    let OutboxMessage::Signal { target, signal, result } = entry.message else { panic!("expected a signal") };
    assert_eq!((target, &signal), (waiter.id, &SignalId::Index(17)));

    // ...and arrives as a signal notification that resumes the waiter.
    let command = Command::Signal { id: target, signal, result };
    assert_eq!(waiting_partition.external(command.clone()), vec![Effect::Invoke { id: waiter.id }]);
    let notification = last_signal(&waiting_partition, waiter.id);
    assert_eq!(notification.signal_id, Some(pb::signal_notification_message::SignalId::Idx(17)));
    assert_eq!(
        notification.result,
        Some(pb::signal_notification_message::Result::Value(pb::Value {
            content: Bytes::from_static(b"\"approved\"")
        }))
    );

    // A second completion (a retried delivery, or someone else resolving) changes nothing.
    let journal_len = waiting_partition.sm.store().journal(&waiter.id).unwrap().len();
    let second = Command::Signal {
        id: waiter.id,
        signal: SignalId::Index(17),
        result: SignalResult::Failure(Failure::new(500, "too late")),
    };
    assert_eq!(waiting_partition.external(second.clone()), vec![]);
    assert_eq!(waiting_partition.sm.store().journal(&waiter.id).unwrap().len(), journal_len);

    // Completed invocations ignore signals.
    waiting_partition.complete(waiter.id, b"\"done\"");
    let third = Command::Signal { id: waiter.id, signal: SignalId::Index(18), result: SignalResult::Void };
    assert_eq!(waiting_partition.external(third), vec![]);
}

#[test]
fn named_signals_reach_their_target_and_cancel_still_works() {
    let mut p = memory();
    let sender = service_request(1);
    let receiver = service_request(2);
    p.invoke(sender.clone());
    p.invoke(receiver.clone());
    p.lead(Command::Suspend { id: receiver.id, known_entries: 1, awaiting: None });

    let effects = p.journal(sender.id, vec![send_signal(receiver.id, "ready")]);
    let [entry] = sent(&effects).try_into().expect("one outbox entry");
    let OutboxMessage::Signal { target, signal, result } = entry.message else { panic!("expected a signal") };
    assert_eq!((target, &signal, &result), (receiver.id, &SignalId::Name("ready".into()), &SignalResult::Void));
    assert_eq!(p.external(Command::Signal { id: target, signal, result }), vec![Effect::Invoke { id: receiver.id }]);
    assert_eq!(
        last_signal(&p, receiver.id).signal_id,
        Some(pb::signal_notification_message::SignalId::Name("ready".into()))
    );

    // CANCEL (index 1) is a signal too, delivered once.
    p.external(Command::Cancel { id: receiver.id, at_ms: 5 });
    assert_eq!(last_signal(&p, receiver.id).signal_id, Some(pb::signal_notification_message::SignalId::Idx(1)));
    let cancel_again = Command::Signal { id: receiver.id, signal: SignalId::Index(1), result: SignalResult::Void };
    assert_eq!(p.external(cancel_again), vec![]);
    assert!(p.record(receiver.id).journal.cancel_signalled);
}

#[test]
fn unusable_signal_commands_are_journaled_without_effects() {
    let mut p = memory();
    let sender = service_request(1);
    p.invoke(sender.clone());
    let effects = p.journal(sender.id, vec![complete_awakeable("sign_1nonsense", b"1")]);
    assert_eq!(sent(&effects), vec![], "a malformed awakeable id sends nothing");
    assert_eq!(p.record(sender.id).journal.commands, 2, "but the command is journaled (replay stays aligned)");
}
