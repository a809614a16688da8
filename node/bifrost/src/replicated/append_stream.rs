//! Appends on one long-lived `LogServer.AppendStream` call per log-server, instead of a
//! unary `Append` call per request: a request is one message on an open HTTP/2 stream
//! (no new stream, headers or trailers, and the fabric's credentials checked once per
//! stream), and its answer comes back on the same call with the request's id.
//!
//! Outcomes keep the unary call's meaning: an answer carries the status a unary `Append`
//! would have answered (with the leader hint of a refusal). A request still waiting when
//! its stream fails has an unknown outcome, as a unary call cut off mid-flight, unless
//! the stream never connected; a stream the server ended cleanly (its node shutting
//! down) answered everything it started, so what it left unanswered never applied. A
//! server that does not serve the call (an older node during a rolling upgrade) answers
//! UNIMPLEMENTED, and this node appends to it with unary calls from then on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restate_proto::channel::NodeChannel as Channel;
use restate_proto::log_server::{self as pb, log_server_client::LogServerClient};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Endpoint;
use tonic::{Code, Status};

use restate_proto::leader_hints::LOGLET_LEADER_HEADER;

/// How long a request waits for its answer: as long as a unary `Append` call may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an idle stream's connection is checked, and how long an answer may take: a
/// log-server that vanished without closing its connection ends the stream in about
/// their sum.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);

/// The stream answer to one request, from the answer a unary `Append` gives. Pure.
pub fn stream_answer(request_id: u64, answer: Result<pb::AppendResponse, Status>) -> pb::AppendStreamResponse {
    match answer {
        Ok(appended) => pb::AppendStreamResponse { request_id, appended: Some(appended), ..Default::default() },
        Err(status) => pb::AppendStreamResponse {
            request_id,
            appended: None,
            error_code: status.code() as i32,
            error_message: status.message().to_owned(),
            leader: status
                .metadata()
                .get(LOGLET_LEADER_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        },
    }
}

/// The unary answer a stream answer stands for. Pure.
pub fn unary_answer(response: pb::AppendStreamResponse) -> Result<pb::AppendResponse, Status> {
    if let Some(appended) = response.appended {
        return Ok(appended);
    }
    if response.error_code == Code::Ok as i32 {
        return Err(Status::internal(format!(
            "the log-server answered append request {} with neither an outcome nor an error",
            response.request_id
        )));
    }
    let mut status = Status::new(Code::from(response.error_code), response.error_message);
    if let Ok(leader) = response.leader.parse() {
        if !response.leader.is_empty() {
            status.metadata_mut().insert(LOGLET_LEADER_HEADER, leader);
        }
    }
    Err(status)
}

type Answer = oneshot::Sender<Result<pb::AppendResponse, Status>>;
/// Where a queued request's answer arrives.
type AnswerReceiver = oneshot::Receiver<Result<pb::AppendResponse, Status>>;

/// This node's append streams: one per log-server address it appends to.
#[derive(Default)]
pub struct AppendStreams {
    open: Mutex<HashMap<String, Arc<AppendStream>>>,
    /// Addresses whose server does not serve `AppendStream` (older nodes).
    unary_only: Mutex<HashSet<String>>,
}

/// One open (or opening) `AppendStream` call.
struct AppendStream {
    waiting: Mutex<Waiting>,
}

struct Waiting {
    next_id: u64,
    answers: HashMap<u64, Answer>,
    /// The call's outgoing messages; `None` once it ended (every request registered later
    /// goes on a new call, and the server, seeing no more requests, ends this one).
    requests: Option<mpsc::UnboundedSender<pb::AppendStreamRequest>>,
}

impl Waiting {
    /// Queues `request` on the call, unless it ended.
    fn send(&mut self, request: pb::AppendRequest, reply: Answer) -> Result<(), (pb::AppendRequest, Answer)> {
        let Some(requests) = &self.requests else { return Err((request, reply)) };
        let request_id = self.next_id;
        match requests.send(pb::AppendStreamRequest { request_id, append: Some(request) }) {
            Ok(()) => {
                self.next_id += 1;
                self.answers.insert(request_id, reply);
                Ok(())
            }
            Err(unsent) => Err((unsent.0.append.expect("just set"), reply)),
        }
    }
}

impl AppendStreams {
    /// Appends through the stream to `address` (opened on first use), or through `unary`
    /// (a client of the same address) if that server does not serve streams. Answers as a
    /// unary `Append` call would.
    pub async fn append(
        &self,
        address: &str,
        mut unary: LogServerClient<Channel>,
        request: pb::AppendRequest,
    ) -> Result<pb::AppendResponse, Status> {
        if self.unary_only.lock().expect("not poisoned").contains(address) {
            return unary.append(request).await.map(tonic::Response::into_inner);
        }
        // Records are `Bytes`: this copy shares them, for the unary fallback.
        let (stream, answer) = self.register(address, request.clone())?;
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Status::unknown("the append stream dropped the request; its outcome is unknown")),
            Err(_) => {
                let why = format!("no answer on the append stream to {address} within {ANSWER_TIMEOUT:?}");
                // Whatever else waits on this call shares its fate; the next request opens a new one.
                stream.end(Status::deadline_exceeded(why.clone()));
                Err(Status::deadline_exceeded(why))
            }
        };
        match answer {
            Err(status) if status.code() == Code::Unimplemented => {
                tracing::info!(
                    address,
                    "the log-server does not serve AppendStream (an older node): appending to it with unary calls"
                );
                self.unary_only.lock().expect("not poisoned").insert(address.to_owned());
                self.forget(address, &stream);
                unary.append(request).await.map(tonic::Response::into_inner)
            }
            other => other,
        }
    }

    /// Queues `request` on the open stream to `address` (opening one if none is open or
    /// the last one ended); returns that stream and where its answer will come.
    fn register(
        &self,
        address: &str,
        request: pb::AppendRequest,
    ) -> Result<(Arc<AppendStream>, AnswerReceiver), Status> {
        let mut open = self.open.lock().expect("not poisoned");
        let (reply, answer) = oneshot::channel();
        let (request, reply) = match open.get(address) {
            Some(stream) => match stream.waiting.lock().expect("not poisoned").send(request, reply) {
                Ok(()) => return Ok((stream.clone(), answer)),
                Err(unsent) => unsent,
            },
            None => (request, reply),
        };
        let stream = AppendStream::open(address, request, reply)?;
        open.insert(address.to_owned(), stream.clone());
        Ok((stream, answer))
    }

    /// Drops `stream` from the open ones if it is still the one for `address`.
    fn forget(&self, address: &str, stream: &Arc<AppendStream>) {
        let mut open = self.open.lock().expect("not poisoned");
        if open.get(address).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            open.remove(address);
        }
    }
}

impl AppendStream {
    /// Starts the call to `address` with `first` queued on it (before its task runs, which
    /// may end the call at once); later requests queue until it connects.
    fn open(address: &str, first: pb::AppendRequest, reply: Answer) -> Result<Arc<AppendStream>, Status> {
        let endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|e| Status::invalid_argument(format!("bad log-server address {address}: {e}")))?
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = restate_proto::channel::lazy_channel(endpoint, Duration::from_secs(2));
        let mut client = LogServerClient::new(channel).max_decoding_message_size(64 << 20);
        let (requests, outbound) = mpsc::unbounded_channel();
        let mut waiting = Waiting { next_id: 0, answers: HashMap::new(), requests: Some(requests) };
        if waiting.send(first, reply).is_err() {
            unreachable!("the receiver lives until the task below ends");
        }
        let stream = Arc::new(AppendStream { waiting: Mutex::new(waiting) });
        let this = stream.clone();
        let address = address.to_owned();
        tokio::spawn(async move {
            let outbound = tokio_stream::wrappers::UnboundedReceiverStream::new(outbound);
            let mut answers = match client.append_stream(outbound).await {
                Ok(response) => response.into_inner(),
                Err(status) => return this.end(status),
            };
            tracing::debug!(address, "append stream open");
            loop {
                match answers.message().await {
                    Ok(Some(answer)) => this.answer(answer),
                    Ok(None) => {
                        return this.end(Status::unavailable(format!(
                            "the log-server at {address} ended the append stream (shutting down) before starting \
                             this append: not applied; retry"
                        )))
                    }
                    Err(status) => return this.end(status),
                }
            }
        });
        Ok(stream)
    }

    fn answer(&self, answer: pb::AppendStreamResponse) {
        let reply = self.waiting.lock().expect("not poisoned").answers.remove(&answer.request_id);
        match reply {
            Some(reply) => {
                let _ = reply.send(unary_answer(answer));
            }
            None => tracing::debug!(request = answer.request_id, "an answer on the append stream nobody waits for"),
        }
    }

    /// Ends the call for its requests: every one still waiting gets `why`, and no new one
    /// goes on it.
    fn end(&self, why: Status) {
        let answers = {
            let mut waiting = self.waiting.lock().expect("not poisoned");
            waiting.requests = None;
            std::mem::take(&mut waiting.answers)
        };
        for (_, reply) in answers {
            let _ = reply.send(Err(why.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_cross_the_stream_as_unary_calls_give_them() {
        let appended = pb::AppendResponse { last_lsn: 42, sealed: false };
        assert_eq!(unary_answer(stream_answer(3, Ok(appended))).unwrap(), appended);

        let mut refusal = Status::unavailable("not the leader of loglet 7");
        refusal.metadata_mut().insert(LOGLET_LEADER_HEADER, "http://10.0.0.2:5122".parse().unwrap());
        let crossed = unary_answer(stream_answer(4, Err(refusal))).unwrap_err();
        assert_eq!(crossed.code(), Code::Unavailable);
        assert_eq!(crossed.message(), "not the leader of loglet 7");
        assert_eq!(crossed.metadata().get(LOGLET_LEADER_HEADER).unwrap(), "http://10.0.0.2:5122");

        let invalid = unary_answer(stream_answer(5, Err(Status::invalid_argument("an append needs a record"))));
        let invalid = invalid.unwrap_err();
        assert_eq!((invalid.code(), invalid.metadata().get(LOGLET_LEADER_HEADER)), (Code::InvalidArgument, None));

        let empty = pb::AppendStreamResponse { request_id: 6, ..Default::default() };
        assert_eq!(unary_answer(empty).unwrap_err().code(), Code::Internal);
    }
}
