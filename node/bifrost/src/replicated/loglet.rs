//! A replicated loglet as any node uses it: a client of the log-servers in its nodeset.
//! Writes go to the group's leader (following leader hints), reads to any member.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use restate_proto::channel::NodeChannel as Channel;
use restate_proto::leader_hints::{AddressPreference, AddressQueue};
use restate_proto::log_server::{self as pb, log_server_client::LogServerClient};
use restate_types::{Backoff, LogletId, Lsn};
use tonic::transport::Endpoint;

use super::append_stream::AppendStreams;
use super::group_commit::{BatchError, GroupCommit, SendBatch};
use super::host::{ReadRefused, ReplicatedLogletHost, MAX_READ_RECORDS};
use super::service::LOGLET_LEADER_HEADER;
use super::state::{LogletState, Outcome};
use crate::loglet::{LogRecord, Loglet, LogletError, ReadBatch, TailState, TrimGap};

pub struct ReplicatedLoglet {
    nodeset: Arc<Nodeset>,
    /// Concurrent appends of this node to the loglet, sent as one request per batch.
    appends: Arc<GroupCommit<LogletError>>,
    /// A local loglet of another node, read through it: writes are refused here.
    read_only: bool,
    /// Raft id -> node id of the nodeset members (to name the sequencer).
    node_of_raft_id: std::collections::HashMap<u64, String>,
    /// The loglets this node hosts: a read that this node's own member can serve reads its
    /// copy directly, without a call.
    local_host: Option<Arc<ReplicatedLogletHost>>,
}

/// Append requests of one loglet from this node waiting for their answer at a time.
const APPENDS_IN_FLIGHT: usize = 2;

/// The log-servers of a loglet's nodeset and this node's connections to them.
struct Nodeset {
    id: LogletId,
    /// Advertised addresses of the nodeset's log-servers.
    members: Vec<String>,
    clients: std::sync::Mutex<std::collections::HashMap<String, LogServerClient<Channel>>>,
    /// Appends go on one stream per member.
    streams: AppendStreams,
    /// Which member to try first (the last to answer; dead members last).
    preference: AddressPreference,
}

fn new_client(address: &str) -> Result<LogServerClient<Channel>, String> {
    let endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|e| format!("bad log-server address {address}: {e}"))?
        .timeout(Duration::from_secs(10));
    let channel = restate_proto::channel::lazy_channel(endpoint, Duration::from_secs(2));
    Ok(LogServerClient::new(channel).max_decoding_message_size(64 << 20))
}

/// An append whose batch's task vanished may or may not have been applied.
impl BatchError for LogletError {
    fn batch_dropped() -> Self {
        LogletError::Storage("the append's request was dropped before it answered; its outcome is unknown".into())
    }
}

impl ReplicatedLoglet {
    pub fn new(id: LogletId, members: Vec<String>) -> ReplicatedLoglet {
        let nodeset = Arc::new(Nodeset {
            id,
            members,
            clients: Default::default(),
            streams: AppendStreams::default(),
            preference: AddressPreference::default(),
        });
        let sender = nodeset.clone();
        let send: SendBatch<LogletError> = Arc::new(move |loglet, records| {
            let nodeset = sender.clone();
            Box::pin(async move { nodeset.append(loglet, records).await })
        });
        ReplicatedLoglet {
            nodeset,
            appends: GroupCommit::new(send, APPENDS_IN_FLIGHT),
            read_only: false,
            node_of_raft_id: Default::default(),
            local_host: None,
        }
    }

    /// Reads are served by this node's own member of the loglet, when `host` holds one
    /// that may serve them (a voter), instead of by a call to a log-server.
    pub fn with_local_host(mut self, host: Option<Arc<ReplicatedLogletHost>>) -> ReplicatedLoglet {
        self.local_host = host;
        self
    }

    /// Up to `max_records` from `from` on, read from this node's own member, or `None` when
    /// the members are to be asked instead: this node has none that serves reads (not a
    /// member, not started yet, still catching up), or its member follows and has nothing
    /// at `from` yet (the leader may have committed more: a reader at the tail does not
    /// wait for the commit to reach this node).
    fn read_own_copy(
        &self,
        from: Lsn,
        max_records: usize,
    ) -> Option<Result<(Vec<LogRecord>, LogletState), LogletError>> {
        let hosted = self.local_host.as_ref()?.get(self.nodeset.id)?;
        let answer = match hosted.serve_read(from.0, max_records.min(MAX_READ_RECORDS)) {
            Ok((records, _)) if records.is_empty() && !hosted.status.borrow().is_leader => return None,
            Ok((records, state)) => {
                Ok((records.into_iter().map(|(lsn, payload)| LogRecord { lsn: Lsn(lsn), payload }).collect(), state))
            }
            Err(ReadRefused::CatchingUp) => return None,
            Err(ReadRefused::Storage(e)) => Err(LogletError::Storage(format!("loglet {}: {e}", self.nodeset.id))),
        };
        Some(answer)
    }

    /// Names nodes by raft id, so [`Loglet::sequencer`] can say which node leads.
    pub fn with_raft_ids(mut self, node_of_raft_id: std::collections::HashMap<u64, String>) -> ReplicatedLoglet {
        self.node_of_raft_id = node_of_raft_id;
        self
    }

    /// Another node's local loglet, read through that node's log-server.
    pub fn remote_local(id: LogletId, owner: Vec<String>) -> ReplicatedLoglet {
        ReplicatedLoglet { read_only: true, ..ReplicatedLoglet::new(id, owner) }
    }

    fn refuse_write(&self, what: &str) -> Result<(), LogletError> {
        if self.read_only {
            return Err(LogletError::InvalidInput(format!(
                "cannot {what} loglet {}: it is a local loglet of the node at {}, and only that node writes it",
                self.nodeset.id,
                self.nodeset.members.join(", ")
            )));
        }
        Ok(())
    }

    pub fn members(&self) -> &[String] {
        &self.nodeset.members
    }

    async fn call<T, F, Fut>(&self, what: &str, idempotent: bool, call: F) -> Result<T, LogletError>
    where
        F: Fn(LogServerClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.nodeset.call(what, idempotent, call).await
    }
}

impl Nodeset {
    /// One connection per log-server, reused across calls.
    fn client(&self, address: &str) -> Result<LogServerClient<Channel>, String> {
        let mut clients = self.clients.lock().expect("not poisoned");
        if let Some(c) = clients.get(address) {
            return Ok(c.clone());
        }
        let c = new_client(address)?;
        clients.insert(address.to_owned(), c.clone());
        Ok(c)
    }

    /// One append request of a batch's records: `Appended` with its last LSN, or `Sealed`.
    async fn append(&self, loglet: LogletId, records: Vec<Bytes>) -> Result<Outcome, LogletError> {
        let loglet_id = loglet.0;
        let answer = self
            .call_at("append", false, |address, c| {
                let request = pb::AppendRequest { loglet_id, records: records.clone() };
                async move { self.streams.append(&address, c, request).await.map(tonic::Response::new) }
            })
            .await?;
        Ok(if answer.sealed { Outcome::Sealed(0) } else { Outcome::Appended(answer.last_lsn) })
    }

    /// Tries the members (and leaders they name) for up to ~10 s until one answers.
    /// A non-idempotent request (`idempotent == false`, appends) is sent again only when
    /// it certainly did not apply; otherwise the caller learns the outcome is unknown.
    async fn call<T, F, Fut>(&self, what: &str, idempotent: bool, call: F) -> Result<T, LogletError>
    where
        F: Fn(LogServerClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_at(what, idempotent, |_, client| call(client)).await
    }

    /// [`Nodeset::call`], for calls that need the member's address too.
    async fn call_at<T, F, Fut>(&self, what: &str, idempotent: bool, call: F) -> Result<T, LogletError>
    where
        F: Fn(String, LogServerClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        // Short: during a loglet leader election every pass fails, and the pause delays the
        // first call after it.
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(200));
        loop {
            let order = self.preference.order(&self.members, std::time::Instant::now());
            let mut queue = AddressQueue::new(order);
            let mut failures = Vec::new();
            while let Some(address) = queue.next_untried() {
                let c = self.client(&address).map_err(LogletError::InvalidInput)?;
                let answer = call(address.clone(), c).await;
                match &answer {
                    Ok(_) => self.preference.answered(&address),
                    // A refusal that names the leader: the hint decides the next try.
                    Err(s) if s.metadata().get(LOGLET_LEADER_HEADER).is_some() => {}
                    Err(s)
                        if restate_proto::transport_errors::never_connected(s)
                            || matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) =>
                    {
                        self.preference.unreachable(&address, std::time::Instant::now())
                    }
                    Err(_) => {}
                }
                match answer {
                    Ok(r) => return Ok(r.into_inner()),
                    Err(s) if matches!(s.code(), tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition) => {
                        return Err(LogletError::InvalidInput(s.message().to_owned()))
                    }
                    Err(s) if !idempotent && !certainly_not_applied(&s) => {
                        return Err(LogletError::Storage(format!(
                            "{what} on replicated loglet {} has an unknown outcome (it may or may not have been applied): {address}: {}",
                            self.id,
                            s.message()
                        )))
                    }
                    Err(s) => {
                        queue.follow_hint(&s, LOGLET_LEADER_HEADER);
                        failures.push(format!("{address}: {}", s.message()));
                    }
                }
            }
            let pause = backoff.next_delay();
            if tokio::time::Instant::now() + pause > deadline {
                return Err(LogletError::Storage(format!(
                    "{what} on replicated loglet {} failed: no log-server of its nodeset answered ({})",
                    self.id,
                    failures.join("; ")
                )));
            }
            tokio::time::sleep(pause).await;
        }
    }
}

/// The loglet group as its leader sees it (see [`ReplicatedLoglet::group_status`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogletGroupStatus {
    pub leader: u64,
    pub commit: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// (raft id, highest replicated index) of every member but the leader.
    pub progress: Vec<(u64, u64)>,
}

/// One step of changing a loglet group's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogletMembershipChange {
    AddLearner { raft_id: u64, address: String },
    AddVoter { raft_id: u64, address: String },
    Remove { raft_id: u64 },
}

impl ReplicatedLoglet {
    /// Members and replication progress, from the group's leader (following hints).
    pub async fn group_status(&self) -> Result<LogletGroupStatus, LogletError> {
        let loglet_id = self.nodeset.id.0;
        let answer =
            self.call("group-status", true, |mut c| async move {
                c.group_status(pb::GroupStatusRequest { loglet_id }).await
            })
            .await?;
        Ok(LogletGroupStatus {
            leader: answer.leader_raft_id,
            commit: answer.commit,
            voters: answer.voters,
            learners: answer.learners,
            progress: answer.progress.into_iter().map(|p| (p.raft_id, p.matched)).collect(),
        })
    }

    /// Proposes one membership change through the group's leader and waits until it
    /// applied there. Changes are idempotent in effect: the caller re-reads the status
    /// before each step.
    pub async fn change_membership(&self, change: LogletMembershipChange) -> Result<(), LogletError> {
        self.refuse_write("change the members of")?;
        let loglet_id = self.nodeset.id.0;
        let (kind, raft_id, address) = match change {
            LogletMembershipChange::AddLearner { raft_id, address } => {
                (pb::MembershipChangeKind::AddLearner, raft_id, address)
            }
            LogletMembershipChange::AddVoter { raft_id, address } => {
                (pb::MembershipChangeKind::AddVoter, raft_id, address)
            }
            LogletMembershipChange::Remove { raft_id } => (pb::MembershipChangeKind::Remove, raft_id, String::new()),
        };
        self.call("change-membership", true, |mut c| {
            let address = address.clone();
            async move {
                c.change_membership(pb::ChangeMembershipRequest { loglet_id, kind: kind as i32, raft_id, address })
                    .await
            }
        })
        .await?;
        Ok(())
    }
}

/// Whether a failed request never took effect: refused by a non-leader or non-member,
/// dropped before commit, or never delivered (no connection).
fn certainly_not_applied(status: &tonic::Status) -> bool {
    if status.metadata().get(LOGLET_LEADER_HEADER).is_some() {
        return true;
    }
    let text = restate_proto::transport_errors::describe(status);
    ["not the leader", "not hosted", "not applied"].iter().any(|m| text.contains(m))
        || restate_proto::transport_errors::never_connected(status)
}

#[async_trait]
impl Loglet for ReplicatedLoglet {
    async fn append(&self, records: Vec<Bytes>) -> Result<Lsn, LogletError> {
        self.refuse_write("append to")?;
        if records.is_empty() {
            return Err(LogletError::InvalidInput("an append needs at least one record".into()));
        }
        match self.appends.append(self.nodeset.id, records).await? {
            Outcome::Appended(last) => Ok(Lsn(last)),
            Outcome::Sealed(_) => Err(LogletError::Sealed),
            other => Err(LogletError::Storage(format!("append answered {other:?}"))),
        }
    }

    async fn read(&self, from: Lsn, max_records: usize) -> Result<ReadBatch, LogletError> {
        if max_records == 0 {
            return Err(LogletError::InvalidInput("max_records must be at least 1".into()));
        }
        let from = from.max(Lsn::OLDEST);
        let loglet_id = self.nodeset.id.0;
        let local = self.read_only;
        // A local loglet of another node is read through that node, whatever ids this one hosts.
        let own = if self.read_only { None } else { self.read_own_copy(from, max_records) };
        let (records, state) = match own {
            Some(answer) => answer?,
            None => {
                let answer = self
                    .call("read", true, |mut c| async move {
                        c.read(pb::ReadRequest { loglet_id, from_lsn: from.0, max_records: max_records as u32, local })
                            .await
                    })
                    .await?;
                let records = answer
                    .records
                    .into_iter()
                    .map(|r| LogRecord { lsn: Lsn(r.lsn), payload: Bytes::from(r.payload) })
                    .collect();
                (
                    records,
                    LogletState { trim_point: answer.trim_point, next_lsn: answer.next_lsn, sealed: answer.sealed },
                )
            }
        };
        let trim_gap = (from.0 <= state.trim_point).then_some(TrimGap { from, to: Lsn(state.trim_point) });
        let next_lsn = records.last().map_or(from.max(Lsn(state.trim_point + 1)), |r| r.lsn.next());
        Ok(ReadBatch {
            trim_gap,
            records,
            next_lsn,
            tail: TailState { next_lsn: Lsn(state.next_lsn), sealed: state.sealed },
        })
    }

    async fn wait_for_tail(&self, beyond: Lsn) -> Result<TailState, LogletError> {
        let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        loop {
            let tail = self.find_tail().await?;
            if tail.next_lsn > beyond.next() || tail.sealed {
                return Ok(tail);
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn find_tail(&self) -> Result<TailState, LogletError> {
        let loglet_id = self.nodeset.id.0;
        let local = self.read_only;
        let answer = self
            .call("find-tail", true, |mut c| async move { c.find_tail(pb::FindTailRequest { loglet_id, local }).await })
            .await?;
        Ok(TailState { next_lsn: Lsn(answer.next_lsn), sealed: answer.sealed })
    }

    async fn trim(&self, trim_point: Lsn) -> Result<Lsn, LogletError> {
        self.refuse_write("trim")?;
        let loglet_id = self.nodeset.id.0;
        let answer =
            self.call("trim", true, |mut c| async move {
                c.trim(pb::TrimRequest { loglet_id, trim_point: trim_point.0 }).await
            })
            .await?;
        if !answer.refused.is_empty() {
            return Err(LogletError::InvalidInput(format!("loglet {}: {}", self.nodeset.id, answer.refused)));
        }
        Ok(Lsn(answer.trim_point))
    }

    async fn trim_point(&self) -> Result<Lsn, LogletError> {
        let batch = self.read(Lsn::OLDEST, 1).await?;
        Ok(batch.trim_gap.map_or(Lsn::INVALID, |g| g.to))
    }

    async fn sequencer(&self) -> Option<String> {
        let loglet_id = self.nodeset.id.0;
        let local = self.read_only;
        let answer = self
            .call("find-tail", true, |mut c| async move { c.find_tail(pb::FindTailRequest { loglet_id, local }).await })
            .await
            .ok()?;
        self.node_of_raft_id.get(&answer.leader_raft_id).cloned()
    }

    async fn seal(&self) -> Result<TailState, LogletError> {
        self.refuse_write("seal")?;
        let loglet_id = self.nodeset.id.0;
        let answer =
            self.call("seal", true, |mut c| async move { c.seal(pb::SealRequest { loglet_id }).await }).await?;
        Ok(TailState { next_lsn: Lsn(answer.next_lsn), sealed: answer.sealed })
    }
}
