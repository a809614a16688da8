//! One request/response invocation round: `POST {deployment}/invoke/{service}/{handler}`.
//!
//! The request body is `Start` followed by the journal known so far (`Start.known_entries`
//! commands and notifications), sent whole; the deployment replays it, runs the handler
//! and answers with new commands, ending with `End` (the journal holds the output),
//! `Suspension` (it needs notifications the request did not carry, e.g. the stored result
//! of a `ctx.run`: the runtime appends them and invokes again) or `Error` (retry later).

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};

use crate::client::{
    body_excerpt, deployment_uri, error_chain, read_body, DeploymentClient, DeploymentClientError, HttpVersion,
};
use crate::discovery::EndpointManifest;
use crate::protocol::{
    encode_frames, pb, DecodeError, EncodeError, FrameDecoder, Message, MessageType, ProtocolVersion,
};

/// What the deployment answered in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationResponse {
    /// Protocol version of the round.
    pub version: ProtocolVersion,
    /// The messages in order; the last is `End`, `Suspension` or `Error`, anything the
    /// deployment might send after it is not read.
    pub messages: Vec<Message>,
}

impl InvocationResponse {
    /// The message that ended the round (`End`, `Suspension` or `Error`).
    pub fn terminal(&self) -> &Message {
        self.messages.last().expect("a response always ends with its terminal message")
    }

    /// The `OutputCommand` of the round, if the handler returned in it.
    pub fn output(&self) -> Option<&pb::OutputCommandMessage> {
        self.messages.iter().find_map(|m| match m {
            Message::OutputCommand(output) => Some(output),
            _ => None,
        })
    }
}

/// Why an invocation round failed. Variants name the URL and the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The deployment address cannot be used.
    #[error(transparent)]
    Address(#[from] DeploymentClientError),
    /// The manifest's protocol range and this crate's do not overlap.
    #[error("deployment speaks service protocol V{min} to V{max}, this worker V{} to V{}; no common version",
        ProtocolVersion::MIN.number(), ProtocolVersion::MAX.number())]
    NoCommonVersion { min: u32, max: u32 },
    /// The manifest does not list the handler.
    #[error("the deployment's manifest has no handler {service}.{handler}")]
    UnknownHandler { service: String, handler: String },
    /// The messages to send are not a valid request.
    #[error("invalid invocation request: {0}")]
    InvalidRequest(String),
    /// A message could not be encoded.
    #[error("cannot encode the invocation request: {0}")]
    Encode(#[from] EncodeError),
    /// No TCP/HTTP/2 connection could be established.
    #[error("cannot connect to deployment {uri}: {cause}")]
    Connect { uri: Uri, cause: String },
    /// The exchange failed before a response head arrived, or the response body broke off.
    #[error("invocation request to {uri} failed after {received} response message(s): {cause}")]
    Request { uri: Uri, received: usize, cause: String },
    /// The deployment answered with a non-200 status.
    #[error("invocation request to {uri} answered {status}{hint}: {body}")]
    Status { uri: Uri, status: StatusCode, hint: &'static str, body: String },
    /// The response is not in the protocol version of the request.
    #[error("invocation response from {uri} has content type {}, expected '{}'",
        .content_type.as_deref().map(|c| format!("'{c}'")).unwrap_or_else(|| "(none)".into()),
        .expected.content_type())]
    ContentType { uri: Uri, expected: ProtocolVersion, content_type: Option<String> },
    /// The response frames could not be decoded.
    #[error("invocation response from {uri} after {} message(s): {source}", .received.len())]
    Decode {
        uri: Uri,
        received: Vec<Message>,
        #[source]
        source: DecodeError,
    },
    /// The deployment sent nothing (response head or next frame) within the client's
    /// inactivity timeout.
    #[error("{uri}: the deployment sent nothing for {after:?} (inactivity timeout) after {received} message(s)")]
    Inactive { uri: Uri, after: std::time::Duration, received: usize },
    /// The response ended without `End`, `Suspension` or `Error`.
    #[error("invocation response from {uri} ended without End, Suspension or Error after {} message(s){}",
        .received.len(),
        .received.last().map(|m| format!(" (last: {})", m.message_type())).unwrap_or_default())]
    Unterminated { uri: Uri, received: Vec<Message> },
}

/// Runs one round against `deployment` with a fresh [`DeploymentClient`].
/// See [`DeploymentClient::invoke`].
pub async fn invoke(
    deployment: &Uri,
    manifest: &EndpointManifest,
    service: &str,
    handler: &str,
    messages: &[Message],
    additional_headers: &HeaderMap,
) -> Result<InvocationResponse, InvokeError> {
    DeploymentClient::default()
        .invoke(deployment, HttpVersion::Http2, manifest, service, handler, messages, additional_headers)
        .await
}

impl DeploymentClient {
    /// Runs one request/response round of `service`.`handler` on the deployment at
    /// `deployment`, whose manifest is `manifest`.
    ///
    /// The protocol version is the newest both the manifest and this crate support.
    /// `messages` must start with `Start` followed by its `known_entries` journal entries;
    /// they are sent as the whole request body (with `additional_headers`, which cannot
    /// replace `content-type`), then response
    /// frames are read up to and including the first `End`, `Suspension` or `Error`.
    ///
    /// Not bounded in time (handlers may run long): wrap it in a timeout as the caller's
    /// policy requires. Dropping the future resets the HTTP/2 stream (or drops the
    /// HTTP/1.1 connection). `http` is how the deployment was registered.
    #[allow(clippy::too_many_arguments)]
    pub async fn invoke(
        &self,
        deployment: &Uri,
        http: HttpVersion,
        manifest: &EndpointManifest,
        service: &str,
        handler: &str,
        messages: &[Message],
        additional_headers: &HeaderMap,
    ) -> Result<InvocationResponse, InvokeError> {
        let version = manifest.negotiate_protocol_version().ok_or(InvokeError::NoCommonVersion {
            min: manifest.min_protocol_version,
            max: manifest.max_protocol_version,
        })?;
        if manifest.service(service).and_then(|s| s.handler(handler)).is_none() {
            return Err(InvokeError::UnknownHandler { service: service.into(), handler: handler.into() });
        }
        check_request(messages).map_err(InvokeError::InvalidRequest)?;
        let uri = deployment_uri(deployment, &format!("invoke/{service}/{handler}"))?;
        let body = encode_frames(messages, version)?;
        self.invoke_at(uri, http, version, body, additional_headers).await
    }

    async fn invoke_at(
        &self,
        uri: Uri,
        http: HttpVersion,
        version: ProtocolVersion,
        body: Bytes,
        additional_headers: &HeaderMap,
    ) -> Result<InvocationResponse, InvokeError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .body(Full::new(body))
            .expect("method and URI are valid");
        // The caller's headers first, so they cannot replace the protocol's.
        let headers = request.headers_mut();
        headers.extend(additional_headers.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(version.content_type()));
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("restate-worker/", env!("CARGO_PKG_VERSION"))));

        let inactive = |received: usize| InvokeError::Inactive {
            uri: uri.clone(),
            after: self.inactivity.unwrap_or_default(),
            received,
        };
        let response = within(self.inactivity, self.send(request, http)).await.ok_or_else(|| inactive(0))?;
        let response = response.map_err(|err| {
            let cause = error_chain(&err);
            if err.is_connect() {
                InvokeError::Connect { uri: uri.clone(), cause }
            } else {
                InvokeError::Request { uri: uri.clone(), received: 0, cause }
            }
        })?;
        let (parts, mut body) = response.into_parts();

        if parts.status != StatusCode::OK {
            let excerpt = match read_body(body, 64 * 1024).await {
                Ok(read) => body_excerpt(&read.bytes, 512),
                Err(err) => format!("(body unreadable: {})", error_chain(&err)),
            };
            let hint = match parts.status {
                StatusCode::UNSUPPORTED_MEDIA_TYPE => " (the deployment does not speak this protocol version)",
                StatusCode::NOT_FOUND => " (the deployment does not know this service or handler)",
                _ => "",
            };
            return Err(InvokeError::Status { uri, status: parts.status, hint, body: excerpt });
        }
        let answered = parts.headers.get(CONTENT_TYPE);
        if answered.and_then(|v| v.to_str().ok()).and_then(ProtocolVersion::from_content_type) != Some(version) {
            return Err(InvokeError::ContentType {
                uri,
                expected: version,
                content_type: answered.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            });
        }

        let mut decoder = FrameDecoder::new(version);
        let mut received = Vec::new();
        loop {
            while let Some(message) = decoder.next_message().map_err(|source| InvokeError::Decode {
                uri: uri.clone(),
                received: received.clone(),
                source,
            })? {
                let terminal = message.is_terminal();
                received.push(message);
                if terminal {
                    return Ok(InvocationResponse { version, messages: received });
                }
            }
            let frame = within(self.inactivity, body.frame()).await.ok_or_else(|| inactive(received.len()))?;
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        decoder.push(data);
                    }
                }
                Some(Err(err)) => {
                    return Err(InvokeError::Request { uri, received: received.len(), cause: error_chain(&err) })
                }
                None => break,
            }
        }
        match decoder.finish() {
            Ok(()) => Err(InvokeError::Unterminated { uri, received }),
            Err(source) => Err(InvokeError::Decode { uri, received, source }),
        }
    }
}

/// `future`'s output, or `None` when `bound` passed first (no bound: always the output).
async fn within<F: std::future::Future>(bound: Option<std::time::Duration>, future: F) -> Option<F::Output> {
    match bound {
        Some(bound) => tokio::time::timeout(bound, future).await.ok(),
        None => Some(future.await),
    }
}

/// Checks the request shape the SDKs insist on: `Start` first, then exactly
/// `known_entries` journal entries (commands and notifications), nothing else. The error
/// says what is wrong.
fn check_request(messages: &[Message]) -> Result<(), String> {
    let Some((Message::Start(start), journal)) = messages.split_first() else {
        return Err(match messages.first() {
            None => "no messages; the first must be Start".into(),
            Some(m) => format!("the first message is {}, it must be Start", m.message_type()),
        });
    };
    if let Some(m) = journal.iter().find(|m| !is_journal_entry(m.message_type())) {
        return Err(format!(
            "{} is not a journal entry (only commands and notifications follow Start)",
            m.message_type()
        ));
    }
    if journal.len() != start.known_entries as usize {
        return Err(format!(
            "Start.known_entries is {} but {} journal entries follow it",
            start.known_entries,
            journal.len()
        ));
    }
    Ok(())
}

fn is_journal_entry(ty: MessageType) -> bool {
    ty.is_command() || ty.is_notification()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(known_entries: u32) -> Message {
        Message::Start(pb::StartMessage { known_entries, ..Default::default() })
    }

    fn input() -> Message {
        Message::InputCommand(pb::InputCommandMessage::default())
    }

    #[test]
    fn request_shape_is_checked() {
        assert!(check_request(&[start(1), input()]).is_ok());
        assert!(check_request(&[start(0)]).is_ok());
        let err = check_request(&[]).unwrap_err();
        assert_eq!(err, "no messages; the first must be Start");
        let err = check_request(&[input()]).unwrap_err();
        assert!(err.to_string().contains("the first message is InputCommand (0x0400), it must be Start"), "{err}");
        let err = check_request(&[start(2), input()]).unwrap_err();
        assert!(err.to_string().contains("Start.known_entries is 2 but 1 journal entries follow it"), "{err}");
        let err = check_request(&[start(1), Message::End(pb::EndMessage {})]).unwrap_err();
        assert!(err.to_string().contains("End (0x0003) is not a journal entry"), "{err}");
    }

    #[test]
    fn terminal_and_output_accessors() {
        let output = pb::OutputCommandMessage {
            result: Some(pb::output_command_message::Result::Value(pb::Value { content: Bytes::from_static(b"1") })),
            name: String::new(),
        };
        let response = InvocationResponse {
            version: ProtocolVersion::V7,
            messages: vec![Message::OutputCommand(output.clone()), Message::End(pb::EndMessage {})],
        };
        assert_eq!(response.output(), Some(&output));
        assert_eq!(response.terminal(), &Message::End(pb::EndMessage {}));
    }
}
