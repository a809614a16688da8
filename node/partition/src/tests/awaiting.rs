//! Handlers waiting on other invocations: attach (waits for completion) and get-output
//! (answers at once), through both partitions' outboxes.

use super::*;
use restate_service_protocol::protocol::MessageType;

fn raw(ty: MessageType, body: impl prost::Message) -> JournalEntry {
    JournalEntry { ty: ty.id(), flags: 0, body: body.encode_to_vec().into() }
}

fn attach_to(target: InvocationId, completion_id: u32) -> JournalEntry {
    raw(
        MessageType::AttachInvocationCommand,
        pb::AttachInvocationCommandMessage {
            target: Some(pb::attach_invocation_command_message::Target::InvocationId(target.to_string())),
            result_completion_id: completion_id,
            name: String::new(),
        },
    )
}

fn output_of_workflow(name: &str, key: &str, completion_id: u32) -> JournalEntry {
    raw(
        MessageType::GetInvocationOutputCommand,
        pb::GetInvocationOutputCommandMessage {
            target: Some(pb::get_invocation_output_command_message::Target::WorkflowTarget(pb::WorkflowTarget {
                workflow_name: name.into(),
                workflow_key: key.into(),
                scope: None,
            })),
            result_completion_id: completion_id,
            name: String::new(),
        },
    )
}

/// Routes every outbox entry among `effects` as the leader would: the command it
/// becomes, for the partition that should apply it.
fn routed(effects: &[Effect]) -> Vec<Command> {
    sent(effects)
        .into_iter()
        .map(|entry| entry.message.command().unwrap_or_else(|| panic!("unexpected outbox message {entry:?}")))
        .collect()
}

#[test]
fn an_attached_handler_gets_the_result_when_the_target_completes() {
    let (mut waiter_partition, mut target_partition) = (memory(), memory());
    let target = service_request(1);
    target_partition.invoke(target.clone());
    let waiter = service_request(2);
    waiter_partition.invoke(waiter.clone());

    let effects = waiter_partition.journal(waiter.id, vec![attach_to(target.id, 1)]);
    let [to_target] = routed(&effects).try_into().expect("one request");
    waiter_partition.lead(Command::Suspend { id: waiter.id, known_entries: 2, awaiting: None });
    // Applied in the target's partition: the waiter joins the target's sinks.
    assert_eq!(routed(&target_partition.external(to_target)), vec![]);
    let [answer] = routed(&target_partition.complete(target.id, b"\"done\"")).try_into().expect("one answer");
    assert_eq!(waiter_partition.external(answer.clone()), vec![Effect::Invoke { id: waiter.id }]);
    let journal = waiter_partition.sm.store().journal(&waiter.id).unwrap();
    let last = journal.last().unwrap();
    assert_eq!(last.message_type(), Some(MessageType::AttachInvocationCompletionNotification));
    assert_eq!(last.notification_id(), Some(NotificationId::Completion(1)));
    assert_eq!(waiter_partition.external(answer), vec![], "delivered once");
}

#[test]
fn get_output_answers_not_ready_then_the_result_and_404_for_unknown_targets() {
    let (mut waiter_partition, mut target_partition) = (memory(), memory());
    let run_id = InvocationId::for_workflow_run("Signup", "alice");
    let run = InvocationRequest {
        id: run_id,
        target: Target {
            service: "Signup".into(),
            handler: "run".into(),
            key: Some("alice".into()),
            kind: ServiceType::Workflow,
            handler_shared: false,
        },
        ..service_request(1)
    };
    target_partition.invoke(run);
    let waiter = service_request(2);
    waiter_partition.invoke(waiter.clone());

    let decode = |p: &Partition<MemoryPartitionStore>| {
        let entry = p.sm.store().journal(&waiter.id).unwrap().last().unwrap().clone();
        assert_eq!(entry.message_type(), Some(MessageType::GetInvocationOutputCompletionNotification));
        <pb::GetInvocationOutputCompletionNotificationMessage as prost::Message>::decode(entry.body).unwrap().result
    };
    use pb::get_invocation_output_completion_notification_message::Result as R;

    // While the run runs: "not ready" (void).
    let [ask] = routed(&waiter_partition.journal(waiter.id, vec![output_of_workflow("Signup", "alice", 1)]))
        .try_into()
        .expect("one request");
    let [answer] = routed(&target_partition.external(ask)).try_into().expect("one answer");
    waiter_partition.external(answer);
    assert_eq!(decode(&waiter_partition), Some(R::Void(pb::Void {})));

    // Once it completed: its result.
    target_partition.complete(run_id, b"\"welcome\"");
    let [ask] = routed(&waiter_partition.journal(waiter.id, vec![output_of_workflow("Signup", "alice", 2)]))
        .try_into()
        .expect("one request");
    let [answer] = routed(&target_partition.external(ask)).try_into().expect("one answer");
    waiter_partition.external(answer);
    assert_eq!(decode(&waiter_partition), Some(R::Value(pb::Value { content: Bytes::from_static(b"\"welcome\"") })));

    // An unknown workflow key: 404.
    let [ask] = routed(&waiter_partition.journal(waiter.id, vec![output_of_workflow("Signup", "nobody", 3)]))
        .try_into()
        .expect("one request");
    let [answer] = routed(&target_partition.external(ask)).try_into().expect("one answer");
    waiter_partition.external(answer);
    let Some(R::Failure(failure)) = decode(&waiter_partition) else { panic!("expected a failure") };
    assert_eq!(failure.code, 404);
}
