//! Discovery and invocation rounds against real restate-sdk services (`example-services`).

mod support;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use restate_service_protocol::discovery::{HandlerManifest, HandlerType, ServiceManifest, ServiceType};
use restate_service_protocol::invoke::InvokeError;
use restate_service_protocol::protocol::{pb, Message, ProtocolVersion};
use restate_service_protocol::{discover, invoke, DiscoveryError, EndpointManifest};
use support::ExampleServices;

fn start(key: &str, known_entries: u32, state: &[(&str, &str)], partial_state: bool) -> Message {
    Message::Start(pb::StartMessage {
        id: Bytes::from_static(b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10"),
        debug_id: "inv_test".into(),
        known_entries,
        state_map: state
            .iter()
            .map(|(k, v)| pb::start_message::StateEntry {
                key: Bytes::copy_from_slice(k.as_bytes()),
                value: Bytes::copy_from_slice(v.as_bytes()),
            })
            .collect(),
        partial_state,
        key: key.into(),
        ..Default::default()
    })
}

/// The input entry: the SDK's JSON serde expects the JSON encoding of the argument.
fn input(json: &str) -> Message {
    Message::InputCommand(pb::InputCommandMessage {
        value: Some(pb::Value { content: Bytes::copy_from_slice(json.as_bytes()) }),
        ..Default::default()
    })
}

fn output_value(response: &restate_service_protocol::InvocationResponse) -> String {
    match response.output().and_then(|o| o.result.as_ref()) {
        Some(pb::output_command_message::Result::Value(v)) => String::from_utf8_lossy(&v.content).into_owned(),
        other => panic!("no output value ({other:?}) in {:#?}", response.messages),
    }
}

#[tokio::test]
async fn manifest_lists_the_example_services() {
    let services = ExampleServices::start().await;
    let manifest = &services.manifest;
    assert_eq!(manifest.manifest_version, 4, "the SDK picks the newest manifest version offered");
    assert_eq!((manifest.min_protocol_version, manifest.max_protocol_version), (5, 7));
    assert_eq!(manifest.negotiate_protocol_version(), Some(ProtocolVersion::V7));

    let greeter = manifest.service("Greeter").expect("Greeter");
    assert_eq!(greeter.ty, ServiceType::Service);
    let mut handlers: Vec<&str> = greeter.handlers.iter().map(|h| h.name.as_str()).collect();
    handlers.sort();
    assert_eq!(handlers, ["greet", "greetCounted", "greetLater"]);

    let counter = manifest.service("Counter").expect("Counter");
    assert_eq!(counter.ty, ServiceType::VirtualObject);
    assert_eq!(counter.handler("add").expect("add").effective_ty(counter.ty), Some(HandlerType::Exclusive));
    assert_eq!(counter.handler("get").expect("get").effective_ty(counter.ty), Some(HandlerType::Shared));

    let ticket = manifest.service("Ticket").expect("Ticket");
    assert_eq!(ticket.ty, ServiceType::Service);
    assert!(ticket.handler("issue").is_some() && ticket.handler("issueAndHold").is_some());

    let signup = manifest.service("Signup").expect("Signup");
    assert_eq!(signup.ty, ServiceType::Workflow);
    assert_eq!(signup.handler("run").expect("run").effective_ty(signup.ty), Some(HandlerType::Workflow));
    assert_eq!(signup.handler("click").expect("click").effective_ty(signup.ty), Some(HandlerType::Shared));
}

#[tokio::test]
async fn greeter_greets_in_one_round() {
    let services = ExampleServices::start().await;
    let journal = [start("", 1, &[], false), input("\"Sarah\"")];
    let response = invoke(&services.uri, &services.manifest, "Greeter", "greet", &journal, &HeaderMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));
    assert_eq!(response.version, ProtocolVersion::V7);
    assert_eq!(output_value(&response), "\"Hello, Sarah!\"");
    assert!(matches!(response.terminal(), Message::End(_)), "{:#?}", response.messages);
}

#[tokio::test]
async fn counter_adds_to_the_eager_state() {
    let services = ExampleServices::start().await;
    let journal = [start("my-counter", 1, &[("count", "41")], false), input("1")];
    let response = invoke(&services.uri, &services.manifest, "Counter", "add", &journal, &HeaderMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));
    let messages = &response.messages;

    // The read is answered from Start's state map (full state: no lazy round trip).
    assert!(
        messages.iter().any(|m| matches!(m, Message::GetEagerStateCommand(get)
            if get.key == "count" && get.result == Some(pb::get_eager_state_command_message::Result::Value(
                pb::Value { content: Bytes::from_static(b"41") })))),
        "{messages:#?}"
    );
    let set = messages
        .iter()
        .find_map(|m| match m {
            Message::SetStateCommand(set) => Some(set),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no SetState in {messages:#?}"));
    assert_eq!(set.key, "count");
    assert_eq!(set.value.as_ref().map(|v| &v.content[..]), Some(&b"42"[..]));
    assert_eq!(output_value(&response), "42");
    assert!(matches!(response.terminal(), Message::End(_)), "{messages:#?}");
}

#[tokio::test]
async fn counter_get_reads_missing_state_as_zero() {
    let services = ExampleServices::start().await;
    let journal = [start("fresh", 1, &[], false), input("")];
    let response = invoke(&services.uri, &services.manifest, "Counter", "get", &journal, &HeaderMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));
    assert_eq!(output_value(&response), "0");
}

/// `ctx.run` in request/response mode takes two rounds: the first runs the closure and
/// suspends with the proposed result; the runtime stores it as a RunCompletionNotification
/// and the second round replays it without running the closure again.
#[tokio::test]
async fn ticket_run_result_is_replayed_not_rerun() {
    let services = ExampleServices::start().await;
    let mut journal = vec![start("", 1, &[], false), input("\"Ada\"")];
    let first = invoke(&services.uri, &services.manifest, "Ticket", "issue", &journal, &HeaderMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));
    // V7 SDKs also send an AwaitingOn hint before suspending; it is not a journal entry.
    let messages: Vec<&Message> = first.messages.iter().filter(|m| !matches!(m, Message::AwaitingOn(_))).collect();
    let [Message::RunCommand(run), Message::ProposeRunCompletion { message: proposal, requested_ack }, Message::Suspension(suspension)] =
        messages[..]
    else {
        panic!("expected Run, ProposeRunCompletion, (AwaitingOn,) Suspension; got {:#?}", first.messages);
    };
    assert_eq!(run.name, "issue-ticket");
    assert!(requested_ack, "V7 SDKs ask for an ack");
    assert_eq!(proposal.result_completion_id, run.result_completion_id);
    let awaiting = suspension.awaiting_on.as_ref().expect("awaiting_on");
    assert!(awaiting.waiting_completions.contains(&run.result_completion_id), "{suspension:?}");
    let Some(pb::propose_run_completion_message::Result::Value(ticket)) = &proposal.result else {
        panic!("the closure failed: {proposal:?}");
    };
    let ticket_id: String = serde_json::from_slice(ticket).expect("a JSON string");
    assert!(ticket_id.starts_with("Ada-"), "{ticket_id}");
    assert_eq!(services.run_log_lines(), [ticket_id.as_str()]);

    // Second round: the journal now holds the command and its stored completion.
    journal.push(Message::RunCommand(run.clone()));
    journal.push(Message::RunCompletionNotification(pb::RunCompletionNotificationMessage {
        completion_id: run.result_completion_id,
        result: Some(pb::run_completion_notification_message::Result::Value(pb::Value { content: ticket.clone() })),
    }));
    let Message::Start(start) = &mut journal[0] else { unreachable!() };
    start.known_entries = 3;
    let second = invoke(&services.uri, &services.manifest, "Ticket", "issue", &journal, &HeaderMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));
    assert_eq!(output_value(&second), String::from_utf8_lossy(ticket));
    assert!(matches!(second.terminal(), Message::End(_)), "{:#?}", second.messages);
    assert_eq!(services.run_log_lines(), [ticket_id], "the side effect ran again on replay");
}

#[tokio::test]
async fn errors_name_what_failed() {
    let services = ExampleServices::start().await;

    // A handler the manifest does not list is refused before any request.
    let journal = [start("", 1, &[], false), input("\"x\"")];
    let err =
        invoke(&services.uri, &services.manifest, "Greeter", "shout", &journal, &HeaderMap::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "the deployment's manifest has no handler Greeter.shout");

    // A handler the deployment does not know (manifest edited to list it): the SDK answers
    // 200 and an Error message (code 500), not a 404.
    let mut manifest: EndpointManifest = services.manifest.clone();
    let greeter = manifest.services.iter_mut().find(|s| s.name == "Greeter").unwrap();
    greeter.handlers.push(HandlerManifest { name: "shout".into(), ty: None });
    let response = invoke(&services.uri, &manifest, "Greeter", "shout", &journal, &HeaderMap::new()).await.unwrap();
    let [Message::Error(error)] = &response.messages[..] else { panic!("{:#?}", response.messages) };
    assert_eq!(error.code, 500);
    assert!(error.message.contains("unknown service handler 'Greeter/shout'"), "{error:?}");

    // A service the deployment does not know: HTTP 404, reported with its body.
    manifest.services.push(ServiceManifest {
        name: "Nobody".into(),
        ty: ServiceType::Service,
        handlers: vec![HandlerManifest { name: "home".into(), ty: None }],
    });
    let err = invoke(&services.uri, &manifest, "Nobody", "home", &journal, &HeaderMap::new()).await.unwrap_err();
    assert!(matches!(err, InvokeError::Status { status: StatusCode::NOT_FOUND, .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("invocation request to {}/invoke/Nobody/home answered 404 Not Found (the deployment does not know this service or handler): ", services.uri.to_string().trim_end_matches('/'))), "{err}");

    // A protocol range without overlap is refused locally.
    let mut manifest = services.manifest.clone();
    (manifest.min_protocol_version, manifest.max_protocol_version) = (1, 4);
    let err = invoke(&services.uri, &manifest, "Greeter", "greet", &journal, &HeaderMap::new()).await.unwrap_err();
    assert_eq!(err.to_string(), "deployment speaks service protocol V1 to V4, this worker V5 to V7; no common version");

    // Nobody listening: the connect error names the URL.
    drop(services);
    let closed: http::Uri = "http://127.0.0.1:1".parse().unwrap();
    let err = discover(&closed, &HeaderMap::new()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Connect { .. }), "{err}");
    assert!(err.to_string().starts_with("cannot connect to deployment http://127.0.0.1:1/discover: "), "{err}");
}

/// V5 and V6 suspensions carry flat lists; the decoder turns them into one future.
#[tokio::test]
async fn older_protocol_versions_are_negotiated_and_decoded() {
    let services = ExampleServices::start().await;
    let mut manifest = services.manifest.clone();
    manifest.max_protocol_version = 6;
    let journal = [start("", 1, &[], false), input("\"Grace\"")];
    let response = invoke(&services.uri, &manifest, "Ticket", "issue", &journal, &HeaderMap::new())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", services.logs()));
    assert_eq!(response.version, ProtocolVersion::V6);
    let [Message::RunCommand(run), Message::ProposeRunCompletion { requested_ack, .. }, Message::Suspension(suspension)] =
        &response.messages[..]
    else {
        panic!("expected Run, ProposeRunCompletion, Suspension; got {:#?}", response.messages);
    };
    assert!(!requested_ack, "acks are a V7 feature");
    let awaiting = suspension.awaiting_on.as_ref().expect("awaiting_on");
    assert!(awaiting.waiting_completions.contains(&run.result_completion_id), "{suspension:?}");
}
