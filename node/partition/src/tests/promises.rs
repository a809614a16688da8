//! Durable promises of workflows: awaited by the run handler, completed by a shared
//! handler, peeked, completed twice, and purged with the workflow's result.

use super::*;
use restate_service_protocol::protocol::MessageType;

fn workflow_request(n: u8, handler: &str, shared: bool) -> InvocationRequest {
    InvocationRequest {
        id: InvocationId::for_target("Signup", handler, Some("alice"), None, [n; 16]),
        target: Target {
            service: "Signup".into(),
            handler: handler.into(),
            key: Some("alice".into()),
            kind: ServiceType::Workflow,
            handler_shared: shared,
        },
        input: Bytes::from_static(b"\"alice@example.com\""),
        headers: Vec::new(),
        idempotency_key: None,
        response: ingress(n),
        submitted_at_ms: 100,
        invoke_at_ms: 0,
    }
}

fn raw(ty: MessageType, body: impl prost::Message) -> JournalEntry {
    JournalEntry { ty: ty.id(), flags: 0, body: body.encode_to_vec().into() }
}

fn get_promise(name: &str, completion_id: u32) -> JournalEntry {
    raw(
        MessageType::GetPromiseCommand,
        pb::GetPromiseCommandMessage { key: name.into(), result_completion_id: completion_id, name: String::new() },
    )
}

fn peek_promise(name: &str, completion_id: u32) -> JournalEntry {
    raw(
        MessageType::PeekPromiseCommand,
        pb::PeekPromiseCommandMessage { key: name.into(), result_completion_id: completion_id, name: String::new() },
    )
}

fn complete_promise(name: &str, value: &'static [u8], completion_id: u32) -> JournalEntry {
    raw(
        MessageType::CompletePromiseCommand,
        pb::CompletePromiseCommandMessage {
            key: name.into(),
            completion: Some(pb::complete_promise_command_message::Completion::CompletionValue(pb::Value {
                content: Bytes::from_static(value),
            })),
            result_completion_id: completion_id,
            name: String::new(),
        },
    )
}

fn last_entry(p: &Partition<MemoryPartitionStore>, id: InvocationId) -> Message {
    p.sm.store().journal(&id).unwrap().last().unwrap().decode().unwrap()
}

fn decode<M: prost::Message + Default>(message: Message) -> M {
    let Message::Other { body, .. } = message else { panic!("not a raw notification: {message:?}") };
    M::decode(body).unwrap()
}

#[test]
fn a_shared_handler_completes_the_promise_the_run_handler_waits_for() {
    let mut p = memory();
    let run = workflow_request(1, "run", false);
    p.invoke(run.clone());
    // The run handler awaits promise "email-link" and suspends.
    assert_eq!(p.journal(run.id, vec![get_promise("email-link", 1)]), vec![]);
    p.lead(Command::Suspend { id: run.id, known_entries: 2, awaiting: None });
    assert_eq!(p.status(run.id), InvocationStatus::Suspended);

    // A shared handler peeks (pending: void), then completes it.
    let click = workflow_request(2, "click", true);
    assert_eq!(invoked(&p.invoke(click.clone())), vec![click.id], "shared: runs beside run");
    p.journal(click.id, vec![peek_promise("email-link", 1)]);
    let peeked: pb::PeekPromiseCompletionNotificationMessage = decode(last_entry(&p, click.id));
    assert_eq!(peeked.result, Some(pb::peek_promise_completion_notification_message::Result::Void(pb::Void {})));
    let effects = p.journal(click.id, vec![complete_promise("email-link", b"\"clicked\"", 2)]);
    assert_eq!(invoked(&effects), vec![run.id], "the waiting run handler resumes");
    let won: pb::CompletePromiseCompletionNotificationMessage = decode(last_entry(&p, click.id));
    assert_eq!(won.result, Some(pb::complete_promise_completion_notification_message::Result::Void(pb::Void {})));
    let got: pb::GetPromiseCompletionNotificationMessage = decode(last_entry(&p, run.id));
    assert_eq!(got.completion_id, 1);
    assert_eq!(
        got.result,
        Some(pb::get_promise_completion_notification_message::Result::Value(pb::Value {
            content: Bytes::from_static(b"\"clicked\"")
        }))
    );

    // A second completion is refused (the first wins); a later get answers at once.
    p.journal(click.id, vec![complete_promise("email-link", b"\"again\"", 3)]);
    let refused: pb::CompletePromiseCompletionNotificationMessage = decode(last_entry(&p, click.id));
    let Some(pb::complete_promise_completion_notification_message::Result::Failure(failure)) = refused.result else {
        panic!("expected a failure")
    };
    assert_eq!(failure.code, 409);
    p.journal(click.id, vec![get_promise("email-link", 4)]);
    let again: pb::GetPromiseCompletionNotificationMessage = decode(last_entry(&p, click.id));
    assert_eq!(again.completion_id, 4);
    assert_eq!(again.result, got.result);

    // Purging the run's result forgets the workflow's state and promises (the shared
    // handler's result goes too, but takes nothing with it).
    p.journal(run.id, vec![set_state(b"status", b"\"done\"")]);
    p.complete(click.id, b"null");
    p.complete(run.id, b"\"welcome\"");
    assert!(p.sm.store().promise("Signup", "alice", "email-link").unwrap().is_some());
    // Signup keeps its runs longer than plain invocations: the shared handler's result
    // goes, the run stays.
    let longer = WorkflowCutoffs { default_ms: Some(10), by_service: [("Signup".to_owned(), 500)].into() };
    p.lead(Command::PurgeIdempotency { older_than_ms: 2_000, workflows: longer });
    assert!(p.sm.store().invocation(&click.id).unwrap().is_none());
    assert!(p.sm.store().invocation(&run.id).unwrap().is_some());
    assert!(p.sm.store().promise("Signup", "alice", "email-link").unwrap().is_some());
    let due = WorkflowCutoffs { default_ms: Some(10), by_service: [("Signup".to_owned(), 2_000)].into() };
    p.lead(Command::PurgeIdempotency { older_than_ms: 2_000, workflows: due });
    assert!(p.sm.store().invocation(&run.id).unwrap().is_none());
    assert_eq!(p.sm.store().promise("Signup", "alice", "email-link").unwrap(), None);
    assert_eq!(p.sm.store().read_state("Signup", "alice").unwrap(), vec![]);
}

#[test]
fn promises_outside_workflows_fail_the_command() {
    let mut p = memory();
    let plain = service_request(1);
    p.invoke(plain.clone());
    let effects = p.journal(plain.id, vec![get_promise("x", 1)]);
    assert_eq!(effects, vec![]);
    let got: pb::GetPromiseCompletionNotificationMessage = decode(last_entry(&p, plain.id));
    let Some(pb::get_promise_completion_notification_message::Result::Failure(failure)) = got.result else {
        panic!("expected a failure")
    };
    assert!(failure.message.contains("only in workflows"), "{}", failure.message);
}
