//! gRPC `LogServer`: the replicated loglets hosted on this node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use restate_proto::log_server::{self as pb, log_server_server::LogServer};
use restate_raft::{MembershipChange, RaftError};
use restate_types::LogletId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::append_stream::stream_answer;
use super::group_commit::{BatchError, GroupCommit, SendBatch};
use super::host::{ReadRefused, ReplicatedLogletHost, MAX_READ_RECORDS};
use super::state::{Command, Outcome};

/// Header naming the loglet leader's address on UNAVAILABLE answers.
pub const LOGLET_LEADER_HEADER: &str = restate_proto::leader_hints::LOGLET_LEADER_HEADER;

/// Batched proposals of one loglet waiting to commit at a time (pipelined).
const PROPOSALS_IN_FLIGHT: usize = 4;

/// A proposal whose answer vanished was dropped before it committed.
impl BatchError for RaftError {
    fn batch_dropped() -> Self {
        RaftError::Dropped
    }
}

/// Answers of one append stream waiting to be sent; past this, the stream reads no more
/// requests until the client takes its answers.
const STREAM_ANSWERS_QUEUED: usize = 1024;

#[derive(Clone)]
pub struct LogServerService {
    host: Arc<ReplicatedLogletHost>,
    /// Batches concurrent appends into one raft entry per loglet.
    commit: Arc<GroupCommit<RaftError>>,
    /// This node's local loglets, served read-only to other nodes.
    local: Arc<crate::LocalLogletProvider>,
    /// The node's shutdown: append streams stop taking requests, answer what they
    /// started, and end (a server's drain waits for its open calls).
    stop: CancellationToken,
}

/// What a unary `Append` answers.
type AppendAnswer = Result<pb::AppendResponse, Status>;

impl LogServerService {
    pub fn new(
        host: Arc<ReplicatedLogletHost>,
        local: Arc<crate::LocalLogletProvider>,
        stop: CancellationToken,
    ) -> pb::log_server_server::LogServerServer<LogServerService> {
        pb::log_server_server::LogServerServer::new(LogServerService::with(host, local, stop))
            .max_decoding_message_size(64 << 20)
    }

    fn with(
        host: Arc<ReplicatedLogletHost>,
        local: Arc<crate::LocalLogletProvider>,
        stop: CancellationToken,
    ) -> LogServerService {
        let proposer = host.clone();
        // The batch reaches the engine when the group commit hands it over (not when its
        // task first runs): batches keep the order they were taken in.
        let propose: SendBatch<RaftError> =
            Arc::new(move |loglet, records| Box::pin(proposer.propose(loglet, Command::Append(records))));
        LogServerService { host, commit: GroupCommit::new(propose, PROPOSALS_IN_FLIGHT), local, stop }
    }

    /// Checks an append and queues its records now (appends started one after the other
    /// keep that order); the future resolves with its answer.
    fn start_append(
        &self,
        r: pb::AppendRequest,
    ) -> Result<impl Future<Output = AppendAnswer> + Send + 'static, Status> {
        if r.records.is_empty() {
            return Err(Status::invalid_argument("an append needs at least one record"));
        }
        self.hosted(r.loglet_id)?;
        let loglet = r.loglet_id;
        let outcome = self.commit.append(LogletId(loglet), r.records);
        let host = self.host.clone();
        Ok(async move {
            match outcome.await.map_err(|e| raft_status(&host, loglet, e))? {
                Outcome::Appended(last) => Ok(pb::AppendResponse { last_lsn: last, sealed: false }),
                Outcome::Sealed(_) => Ok(pb::AppendResponse { last_lsn: 0, sealed: true }),
                Outcome::Refused(reason) => Err(Status::invalid_argument(reason)),
                other => Err(Status::internal(format!("unexpected outcome {other:?}"))),
            }
        })
    }

    /// Serves one append stream: starts each request as it arrives, sends each answer as
    /// it completes. At the node's shutdown, or when the client stops sending, it takes
    /// no more requests, answers the ones it started and ends the call.
    async fn serve_append_stream(
        self,
        mut requests: Streaming<pb::AppendStreamRequest>,
        answers: mpsc::Sender<Result<pb::AppendStreamResponse, Status>>,
    ) {
        type Started = Pin<Box<dyn Future<Output = pb::AppendStreamResponse> + Send>>;
        let mut started: FuturesUnordered<Started> = FuturesUnordered::new();
        let mut reading = true;
        loop {
            tokio::select! {
                biased;
                Some(answer) = started.next(), if !started.is_empty() => {
                    if answers.send(Ok(answer)).await.is_err() {
                        // The client is gone; what it started completes without it.
                        return;
                    }
                }
                _ = self.stop.cancelled(), if reading => reading = false,
                request = requests.message(), if reading => match request {
                    Ok(Some(pb::AppendStreamRequest { request_id, append })) => {
                        let append = append
                            .ok_or_else(|| Status::invalid_argument("an AppendStream request needs its append"))
                            .and_then(|append| self.start_append(append));
                        started.push(match append {
                            Ok(answer) => Box::pin(async move { stream_answer(request_id, answer.await) }),
                            Err(refused) => Box::pin(std::future::ready(stream_answer(request_id, Err(refused)))),
                        });
                    }
                    Ok(None) => reading = false,
                    Err(status) => {
                        tracing::debug!("an append stream's client failed: {status}");
                        reading = false;
                    }
                },
                else => return,
            }
        }
    }

    /// Reads a local loglet of this node (not hosted as replicated).
    async fn read_local(&self, r: &pb::ReadRequest) -> Result<pb::ReadResponse, Status> {
        use crate::Loglet;
        let loglet = self
            .local
            .get_or_open_async(LogletId(r.loglet_id))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let batch = loglet
            .read(restate_types::Lsn(r.from_lsn), (r.max_records.max(1) as usize).min(MAX_READ_RECORDS))
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let trim_point = loglet.trim_point().await.map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(pb::ReadResponse {
            records: batch
                .records
                .into_iter()
                .map(|rec| pb::Record { lsn: rec.lsn.0, payload: rec.payload.to_vec() })
                .collect(),
            trim_point: trim_point.0,
            next_lsn: batch.tail.next_lsn.0,
            sealed: batch.tail.sealed,
        })
    }

    fn hosted(&self, loglet: u64) -> Result<Arc<super::host::HostedLoglet>, Status> {
        self.host.get(LogletId(loglet)).ok_or_else(|| {
            Status::unavailable(format!(
                "loglet {loglet} is not hosted on this node (not in its nodeset, or not started yet)"
            ))
        })
    }

    fn raft_status(&self, loglet: u64, err: RaftError) -> Status {
        raft_status(&self.host, loglet, err)
    }

    async fn propose(&self, loglet: u64, command: Command) -> Result<Outcome, Status> {
        self.hosted(loglet)?;
        self.host.propose(LogletId(loglet), command).await.map_err(|e| self.raft_status(loglet, e))
    }
}

/// The status a failed proposal answers with (a refusal by a follower names the leader).
fn raft_status(host: &ReplicatedLogletHost, loglet: u64, err: RaftError) -> Status {
    match err {
        RaftError::NotLeader { leader } => {
            let mut status = Status::unavailable(format!("not the leader of loglet {loglet}"));
            if let Some(address) = host.leader_address(LogletId(loglet), leader).and_then(|a| a.parse().ok()) {
                status.metadata_mut().insert(LOGLET_LEADER_HEADER, address);
            }
            status
        }
        // Certainly not applied: safe for the client to send again.
        RaftError::Dropped => Status::unavailable(format!("loglet {loglet}: not applied (leadership changed); retry")),
        RaftError::Timeout(_) => Status::deadline_exceeded(format!(
            "loglet {loglet}: {err_text}",
            err_text = RaftError::Timeout(std::time::Duration::from_secs(5))
        )),
        other => Status::unavailable(format!("loglet {loglet}: {other}")),
    }
}

#[tonic::async_trait]
impl LogServer for LogServerService {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        self.start_append(request.into_inner())?.await.map(Response::new)
    }

    type AppendStreamStream = tokio_stream::wrappers::ReceiverStream<Result<pb::AppendStreamResponse, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendStreamRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let (answers, outbound) = mpsc::channel(STREAM_ANSWERS_QUEUED);
        tokio::spawn(self.clone().serve_append_stream(request.into_inner(), answers));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(outbound)))
    }

    async fn read(&self, request: Request<pb::ReadRequest>) -> Result<Response<pb::ReadResponse>, Status> {
        let r = request.into_inner();
        if r.local {
            return Ok(Response::new(self.read_local(&r).await?));
        }
        // Not hosted (yet: a node that just started): UNAVAILABLE, never an empty answer.
        let hosted = self.hosted(r.loglet_id)?;
        let max = (r.max_records.max(1) as usize).min(MAX_READ_RECORDS);
        let (records, state) = hosted.serve_read(r.from_lsn, max).map_err(|refused| match refused {
            // The client asks another member.
            ReadRefused::CatchingUp => Status::unavailable(format!(
                "loglet {} on this node is still catching up (not yet a voter); ask another member",
                r.loglet_id
            )),
            ReadRefused::Storage(e) => Status::internal(format!("loglet {}: {e}", r.loglet_id)),
        })?;
        Ok(Response::new(pb::ReadResponse {
            records: records.into_iter().map(|(lsn, payload)| pb::Record { lsn, payload: payload.to_vec() }).collect(),
            trim_point: state.trim_point,
            next_lsn: state.next_lsn,
            sealed: state.sealed,
        }))
    }

    async fn find_tail(&self, request: Request<pb::FindTailRequest>) -> Result<Response<pb::TailResponse>, Status> {
        let request = request.into_inner();
        let loglet = request.loglet_id;
        if request.local {
            use crate::Loglet;
            let local =
                self.local.get_or_open_async(LogletId(loglet)).await.map_err(|e| Status::unavailable(e.to_string()))?;
            let tail = local.find_tail().await.map_err(|e| Status::unavailable(e.to_string()))?;
            return Ok(Response::new(pb::TailResponse {
                next_lsn: tail.next_lsn.0,
                sealed: tail.sealed,
                leader_raft_id: 0,
            }));
        }
        let hosted = self.hosted(loglet)?;
        self.host.read_barrier(LogletId(loglet)).await.map_err(|e| self.raft_status(loglet, e))?;
        let leader_raft_id = hosted.status.borrow().leader;
        let state = hosted.state.read().expect("not poisoned");
        Ok(Response::new(pb::TailResponse { next_lsn: state.next_lsn, sealed: state.sealed, leader_raft_id }))
    }

    async fn seal(&self, request: Request<pb::SealRequest>) -> Result<Response<pb::TailResponse>, Status> {
        let loglet = request.into_inner().loglet_id;
        match self.propose(loglet, Command::Seal).await? {
            Outcome::SealedAt(next) => {
                Ok(Response::new(pb::TailResponse { next_lsn: next, sealed: true, leader_raft_id: 0 }))
            }
            other => Err(Status::internal(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn group_status(
        &self,
        request: Request<pb::GroupStatusRequest>,
    ) -> Result<Response<pb::GroupStatusResponse>, Status> {
        let loglet = request.into_inner().loglet_id;
        let status = self.hosted(loglet)?.status.borrow().clone();
        if !status.is_leader {
            let leader = (status.leader != 0).then_some(status.leader);
            return Err(self.raft_status(loglet, RaftError::NotLeader { leader }));
        }
        Ok(Response::new(pb::GroupStatusResponse {
            leader_raft_id: status.peer,
            term: status.term,
            commit: status.commit,
            voters: status.voters,
            learners: status.learners,
            progress: status
                .progress
                .into_iter()
                .map(|(raft_id, matched)| pb::MemberProgress { raft_id, matched })
                .collect(),
        }))
    }

    async fn change_membership(
        &self,
        request: Request<pb::ChangeMembershipRequest>,
    ) -> Result<Response<pb::ChangeMembershipResponse>, Status> {
        let r = request.into_inner();
        self.hosted(r.loglet_id)?;
        let change = match pb::MembershipChangeKind::try_from(r.kind) {
            Ok(pb::MembershipChangeKind::AddLearner) => {
                MembershipChange::AddLearner { peer: r.raft_id, context: Default::default() }
            }
            Ok(pb::MembershipChangeKind::AddVoter) => {
                MembershipChange::AddVoter { peer: r.raft_id, context: Default::default() }
            }
            Ok(pb::MembershipChangeKind::Remove) => MembershipChange::Remove { peer: r.raft_id },
            _ => return Err(Status::invalid_argument(format!("unknown membership change kind {}", r.kind))),
        };
        if !r.address.is_empty() {
            self.host.peers().set(r.raft_id, r.address.clone());
        }
        match self.host.change_membership(LogletId(r.loglet_id), change.clone()).await {
            Ok(()) => {
                tracing::info!(loglet = r.loglet_id, change = ?change, "loglet group membership changed");
                Ok(Response::new(pb::ChangeMembershipResponse {}))
            }
            Err(RaftError::InvalidMembership(reason)) => Err(Status::failed_precondition(reason)),
            Err(e) => Err(self.raft_status(r.loglet_id, e)),
        }
    }

    async fn trim(&self, request: Request<pb::TrimRequest>) -> Result<Response<pb::TrimResponse>, Status> {
        let r = request.into_inner();
        match self.propose(r.loglet_id, Command::Trim(r.trim_point)).await? {
            Outcome::Trimmed(point) => {
                Ok(Response::new(pb::TrimResponse { trim_point: point, refused: String::new() }))
            }
            Outcome::Refused(reason) => Ok(Response::new(pb::TrimResponse { trim_point: 0, refused: reason })),
            other => Err(Status::internal(format!("unexpected outcome {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_raft::{LocalNetwork, RaftEngine, RaftOptions};
    use restate_storage::{NodeStorage, StorageOptions};

    /// The service and its raft engine (stop the engine before the test ends: its thread
    /// holds the storage, which must not outlive the process's teardown).
    fn service(dir: &tempfile::TempDir) -> (LogServerService, RaftEngine) {
        let storage = NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap();
        let net = LocalNetwork::default();
        let engine = RaftEngine::start(storage.clone(), 1, net.transport(1), RaftOptions::default());
        let host = Arc::new(ReplicatedLogletHost::new(engine.clone(), storage.clone(), Default::default()));
        let local = Arc::new(crate::LocalLogletProvider::new(storage));
        (LogServerService::with(host, local, CancellationToken::new()), engine)
    }

    /// A node that does not host a replicated loglet yet (just started) must not answer
    /// a read or a tail as if the loglet were empty: readers would stop at the wrong tail.
    #[tokio::test]
    async fn a_replicated_loglet_not_hosted_here_is_unavailable_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (service, engine) = service(&dir);
        let read = pb::ReadRequest { loglet_id: 7, from_lsn: 1, max_records: 10, local: false };
        let refused = service.read(Request::new(read)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert!(refused.message().contains("not hosted"), "{}", refused.message());
        let refused =
            service.find_tail(Request::new(pb::FindTailRequest { loglet_id: 7, local: false })).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);

        // A local loglet of this node (read from another node) is served from storage.
        let local = service.read(Request::new(pb::ReadRequest { local: true, ..read })).await.unwrap().into_inner();
        assert_eq!((local.records.len(), local.next_lsn, local.sealed), (0, 1, false));
        let tail = service
            .find_tail(Request::new(pb::FindTailRequest { loglet_id: 7, local: true }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((tail.next_lsn, tail.sealed), (1, false));
        engine.shutdown();
    }
}
