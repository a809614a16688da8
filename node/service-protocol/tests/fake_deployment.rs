//! Discovery and invocation errors against a fake deployment that misbehaves on purpose.

use std::net::SocketAddr;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Uri};
use restate_service_protocol::discovery::{EndpointManifest, ServiceManifest, ServiceType};
use restate_service_protocol::invoke::InvokeError;
use restate_service_protocol::protocol::{encode_frames, pb, DecodeError, Message, ProtocolVersion};
use restate_service_protocol::{discover, invoke, DiscoveryError};

const MANIFEST_V3: &str = "application/vnd.restate.endpointmanifest.v3+json";

/// Serves `router` over HTTP/2 prior knowledge (axum detects the preface) on a free
/// loopback port; the server task ends with the test's runtime.
async fn serve(router: Router) -> Uri {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}").parse().unwrap()
}

fn discover_answering(status: StatusCode, content_type: &'static str, body: &'static str) -> Router {
    Router::new().route(
        "/discover",
        get(move |headers: HeaderMap| async move {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            assert!(
                accept.contains("endpointmanifest.v4+json") && accept.contains("endpointmanifest.v2+json"),
                "{accept}"
            );
            assert_eq!(headers.get("authorization"), Some(&HeaderValue::from_static("Bearer t")));
            (status, [(header::CONTENT_TYPE, content_type)], body)
        }),
    )
}

fn auth() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Bearer t"));
    headers
}

#[tokio::test]
async fn discovery_reports_status_content_type_and_field() {
    let uri = serve(discover_answering(StatusCode::UNSUPPORTED_MEDIA_TYPE, "text/plain", "no such version")).await;
    let err = discover(&uri, &auth()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Status { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "discovery request to {uri}discover answered 415 Unsupported Media Type (the deployment reads none of \
             manifest versions v2 to v4): no such version"
        )
    );

    let uri = serve(discover_answering(StatusCode::OK, "application/json", "{}")).await;
    let err = discover(&uri, &auth()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::ContentType { .. }), "{err}");
    assert!(err.to_string().contains("has content type 'application/json', expected one of"), "{err}");

    let body = r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"services":[{"name":"S","ty":"SERVICE","handlers":[{"name":7}]}]}"#;
    let uri = serve(discover_answering(StatusCode::OK, MANIFEST_V3, body)).await;
    let err = discover(&uri, &auth()).await.unwrap_err();
    let DiscoveryError::Manifest { manifest_version: 3, source, .. } = &err else { panic!("{err}") };
    assert_eq!(source.path, "services[0].handlers[0].name");
    assert!(err.to_string().contains("invalid endpoint manifest (v3) from"), "{err}");

    let body = r#"{"minProtocolVersion":5,"maxProtocolVersion":7,"protocolMode":"REQUEST_RESPONSE","services":[]}"#;
    let uri = serve(discover_answering(StatusCode::OK, MANIFEST_V3, body)).await;
    let manifest = discover(&uri, &auth()).await.unwrap();
    assert_eq!(manifest.manifest_version, 3);
}

fn manifest() -> EndpointManifest {
    EndpointManifest {
        manifest_version: 4,
        protocol_mode: None,
        min_protocol_version: 5,
        max_protocol_version: 5,
        services: vec![ServiceManifest {
            name: "S".into(),
            ty: ServiceType::Service,
            handlers: vec![restate_service_protocol::discovery::HandlerManifest { name: "h".into(), ty: None }],
        }],
    }
}

fn request() -> Vec<Message> {
    vec![
        Message::Start(pb::StartMessage { known_entries: 1, ..Default::default() }),
        Message::InputCommand(pb::InputCommandMessage::default()),
    ]
}

fn invoke_answering(content_type: &'static str, answer: Bytes) -> Router {
    Router::new().route(
        "/invoke/S/h",
        post(move |headers: HeaderMap, body: Bytes| async move {
            assert_eq!(
                headers.get(header::CONTENT_TYPE).unwrap(),
                ProtocolVersion::V5.content_type(),
                "the manifest allows V5 only"
            );
            let frames = restate_service_protocol::protocol::decode_frames(body, ProtocolVersion::V5).unwrap();
            assert_eq!(frames, request(), "the request body is Start and the journal");
            ([(header::CONTENT_TYPE, content_type)], answer).into_response()
        }),
    )
}

#[tokio::test]
async fn invocation_reports_content_type_truncation_and_missing_end() {
    let v5 = ProtocolVersion::V5.content_type();
    let output = Message::OutputCommand(pb::OutputCommandMessage::default());
    let frames = encode_frames(&[output.clone(), Message::End(pb::EndMessage {})], ProtocolVersion::V5).unwrap();

    let uri = serve(invoke_answering(v5, frames.clone())).await;
    let response = invoke(&uri, &manifest(), "S", "h", &request(), &HeaderMap::new()).await.unwrap();
    assert_eq!(response.messages, vec![output.clone(), Message::End(pb::EndMessage {})]);

    let uri = serve(invoke_answering("application/vnd.restate.invocation.v7", frames.clone())).await;
    let err = invoke(&uri, &manifest(), "S", "h", &request(), &HeaderMap::new()).await.unwrap_err();
    assert!(
        err.to_string().ends_with(
            "has content type 'application/vnd.restate.invocation.v7', expected 'application/vnd.restate.invocation.v5'"
        ),
        "{err}"
    );

    let uri = serve(invoke_answering(v5, frames.slice(..frames.len() - 3))).await;
    let err = invoke(&uri, &manifest(), "S", "h", &request(), &HeaderMap::new()).await.unwrap_err();
    let InvokeError::Decode { received, source: DecodeError::TruncatedHeader { available: 5, .. }, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(received, &vec![output.clone()]);
    assert!(err.to_string().contains("after 1 message(s): stream ends inside the header of frame #1"), "{err}");

    let only_output = encode_frames(&[output], ProtocolVersion::V5).unwrap();
    let uri = serve(invoke_answering(v5, only_output)).await;
    let err = invoke(&uri, &manifest(), "S", "h", &request(), &HeaderMap::new()).await.unwrap_err();
    assert!(matches!(err, InvokeError::Unterminated { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("ended without End, Suspension or Error after 1 message(s) (last: OutputCommand (0x0401))"),
        "{err}"
    );

    let uri = serve(invoke_answering(v5, Bytes::from_static(&[0x7F, 0x00, 0, 0, 0, 0, 0, 0]))).await;
    let err = invoke(&uri, &manifest(), "S", "h", &request(), &HeaderMap::new()).await.unwrap_err();
    assert!(
        matches!(err, InvokeError::Decode { source: DecodeError::UnknownMessageType { ty: 0x7F00, .. }, .. }),
        "{err}"
    );
}
