//! One raft group on this node: the raw raft node, its storage, its state machine, and
//! the proposals and reads waiting on it.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Entry, EntryType, Message, MessageType};
use raft::{RawNode, StateRole};
use restate_storage::rocksdb::WriteBatch;
use restate_storage::NodeStorage;
use tokio::sync::{oneshot, watch};

use crate::state_machine::{MembershipChange, StateMachine};
use crate::storage::{GroupStorage, CF_RAFT};
use crate::types::{GroupStatus, RaftError, RaftOptions};

pub(crate) type Reply<T> = oneshot::Sender<Result<T, RaftError>>;

struct PendingProposal {
    /// Log position the entry got when proposed; another entry applied there means ours was dropped.
    index: u64,
    /// When the proposal reached the engine (for `restate_raft_proposal_seconds`).
    proposed: Instant,
    deadline: Instant,
    reply: Reply<Bytes>,
}

struct PendingRead {
    /// Applied index that makes the read linearizable (known once raft confirms it).
    read_index: Option<u64>,
    /// When the ReadIndex request was last handed to raft; `None` while it waits for this
    /// (new) leader to commit an entry of its term.
    issued: Option<Instant>,
    deadline: Instant,
    reply: Reply<u64>,
}

/// raft-rs drops a ReadIndex request without a word when it reaches a leader that has
/// not yet committed an entry of its term (just after an election), or when the message
/// is lost on the way to the leader. A request still unanswered this long after it was
/// handed to raft is handed over again (same context: the first confirmation wins), so a
/// read after a leader change waits about this long instead of its whole deadline.
const READ_REISSUE_AFTER: std::time::Duration = std::time::Duration::from_millis(200);

pub(crate) struct RaftGroup {
    pub id: u64,
    pub node: RawNode<GroupStorage>,
    pub storage: GroupStorage,
    machine: Box<dyn StateMachine>,
    applied: u64,
    next_request: u64,
    proposals: HashMap<u64, PendingProposal>,
    reads: HashMap<u64, PendingRead>,
    /// Answers to proposals applied this round, sent once what the round staged is
    /// written ([`RaftGroup::after_written`]): a proposer that reads right after its
    /// answer finds the machine's writes.
    answers: Vec<(PendingProposal, Bytes)>,
    pub status: watch::Sender<GroupStatus>,
}

impl RaftGroup {
    /// Whether a message from raft peer `from` may be stepped: only the group's current
    /// members (voters and learners, either side of a joint configuration) speak in it. A
    /// group that knows no configuration yet (a member added to a running group, waiting
    /// for the leader's snapshot) listens to whoever leads.
    pub(crate) fn accepts_from(&self, from: u64) -> bool {
        let members = self.node.raft.prs();
        members.get(from).is_some() || members.iter().len() == 0
    }
}

/// Proposal contexts are `b'p' ++ request id`; reads use `b'r' ++ request id`.
fn request_context(kind: u8, id: u64) -> Vec<u8> {
    let mut ctx = Vec::with_capacity(9);
    ctx.push(kind);
    ctx.extend_from_slice(&id.to_be_bytes());
    ctx
}

fn request_id(kind: u8, ctx: &[u8]) -> Option<u64> {
    (ctx.len() == 9 && ctx[0] == kind).then(|| u64::from_be_bytes(ctx[1..].try_into().expect("8 bytes")))
}

/// The one voter that campaigns at once when `gone`, the leader, is reported gone: the
/// lowest id among the other voters. Only one, so that two survivors do not split the vote;
/// if it cannot win (it is down too, or its log is behind), the ordinary election timeout
/// still elects someone.
fn successor(gone: u64, voters: &[u64]) -> Option<u64> {
    voters.iter().copied().filter(|v| *v != gone).min()
}

impl RaftGroup {
    pub fn open(
        id: u64,
        peer: u64,
        storage: GroupStorage,
        mut machine: Box<dyn StateMachine>,
        options: &RaftOptions,
        batch: &mut WriteBatch,
    ) -> Result<RaftGroup, RaftError> {
        let (snapshot_index, data) = storage.snapshot_data();
        // A machine on disk that holds the snapshot's effects already starts where it
        // stopped; any other is restored from the snapshot and replays the log after it.
        let applied = match machine.durable_applied() {
            Some(applied) if applied >= snapshot_index => applied.min(storage.hard_state().commit.max(snapshot_index)),
            _ => {
                if snapshot_index > 0 {
                    machine.restore(snapshot_index, &data, batch);
                }
                snapshot_index
            }
        };
        let config = raft::Config {
            id: peer,
            election_tick: options.election_tick,
            heartbeat_tick: options.heartbeat_tick,
            applied,
            max_size_per_msg: 1 << 20,
            // Bounds what one ready round applies (and holds in memory) when a member
            // catches up on a long log.
            max_committed_size_per_ready: 16 << 20,
            // With `max_size_per_msg`, bounds what a leader holds in flight for one member
            // catching up (32 MiB), whatever the log's length.
            max_inflight_msgs: 32,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        config.validate().map_err(|e| RaftError::Raft(format!("invalid raft options: {e}")))?;
        let node = RawNode::new(&config, storage.clone(), &crate::logger::logger(id, peer))
            .map_err(|e| RaftError::Raft(e.to_string()))?;
        let (status, _) = watch::channel(GroupStatus { group: id, peer, ..Default::default() });
        let group = RaftGroup {
            id,
            node,
            storage,
            machine,
            applied,
            next_request: 1,
            proposals: HashMap::new(),
            reads: HashMap::new(),
            answers: Vec::new(),
            status,
        };
        group.publish_status();
        Ok(group)
    }

    fn leader_hint(&self) -> Option<u64> {
        let leader = self.node.raft.leader_id;
        (leader != raft::INVALID_ID).then_some(leader)
    }

    /// The leader this follower has not heard from for longer than a heartbeat round, if
    /// any: worth asking the transport whether its process is still there.
    pub fn silent_leader(&self, options: &RaftOptions) -> Option<u64> {
        let raft = &self.node.raft;
        if raft.state != StateRole::Follower || raft.election_elapsed <= options.heartbeat_tick {
            return None;
        }
        self.leader_hint()
    }

    /// `peer`'s process is gone (its port refuses connections). If it led this group, is
    /// still silent, and this node is its successor ([`successor`]), this node campaigns
    /// now, as a leadership transfer would (no pre-vote; the other voters set aside their
    /// leader lease), instead of waiting out the election timeout. Returns whether it did.
    /// Safe whatever the report's truth: any voter may start an election at any time; a
    /// wrong report costs one election.
    pub fn leader_gone(&mut self, peer: u64, options: &RaftOptions) -> bool {
        let raft = &self.node.raft;
        if self.silent_leader(options) != Some(peer) || !raft.promotable() {
            return false;
        }
        let voters: Vec<u64> = raft.prs().conf().voters().ids().iter().collect();
        if successor(peer, &voters) != Some(raft.id) {
            return false;
        }
        let mut timeout_now = Message::default();
        timeout_now.set_msg_type(MessageType::MsgTimeoutNow);
        timeout_now.from = peer;
        timeout_now.to = raft.id;
        timeout_now.term = raft.term;
        self.node.step(timeout_now).is_ok()
    }

    fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    pub fn propose(&mut self, data: Bytes, reply: Reply<Bytes>, options: &RaftOptions) {
        if !self.is_leader() {
            let _ = reply.send(Err(RaftError::NotLeader { leader: self.leader_hint() }));
            return;
        }
        let request = self.next_request;
        self.next_request += 1;
        if let Err(e) = self.node.propose(request_context(b'p', request), data.to_vec()) {
            let _ = reply.send(Err(match e {
                raft::Error::ProposalDropped => RaftError::NotLeader { leader: self.leader_hint() },
                other => RaftError::Raft(other.to_string()),
            }));
            return;
        }
        let index = self.node.raft.raft_log.last_index();
        let proposed = Instant::now();
        self.proposals
            .insert(request, PendingProposal { index, proposed, deadline: proposed + options.proposal_timeout, reply });
    }

    pub fn change_membership(&mut self, change: MembershipChange, reply: Reply<Bytes>, options: &RaftOptions) {
        if !self.is_leader() {
            let _ = reply.send(Err(RaftError::NotLeader { leader: self.leader_hint() }));
            return;
        }
        let conf = self.storage.conf_state();
        let mut cc = ConfChange::default();
        match &change {
            MembershipChange::AddLearner { peer, context } => {
                if conf.voters.contains(peer) {
                    let _ = reply.send(Err(RaftError::InvalidMembership(format!("peer {peer} is already a voter"))));
                    return;
                }
                cc.set_change_type(ConfChangeType::AddLearnerNode);
                cc.node_id = *peer;
                cc.context = context.clone();
            }
            MembershipChange::AddVoter { peer, context } => {
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = *peer;
                cc.context = context.clone();
            }
            MembershipChange::Remove { peer } => {
                if !conf.voters.contains(peer) && !conf.learners.contains(peer) {
                    let _ = reply.send(Err(RaftError::InvalidMembership(format!("peer {peer} is not a member"))));
                    return;
                }
                if conf.voters == [*peer] {
                    let _ = reply.send(Err(RaftError::InvalidMembership(format!(
                        "peer {peer} is the last voter; removing it would leave the group without members"
                    ))));
                    return;
                }
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *peer;
            }
        }
        let request = self.next_request;
        self.next_request += 1;
        if let Err(e) = self.node.propose_conf_change(request_context(b'p', request), cc) {
            let _ = reply.send(Err(match e {
                raft::Error::ProposalDropped => RaftError::InvalidMembership(
                    "another membership change is still in progress; retry when it has applied".into(),
                ),
                other => RaftError::Raft(other.to_string()),
            }));
            return;
        }
        let index = self.node.raft.raft_log.last_index();
        let proposed = Instant::now();
        self.proposals
            .insert(request, PendingProposal { index, proposed, deadline: proposed + options.proposal_timeout, reply });
    }

    pub fn read_index(&mut self, reply: Reply<u64>, options: &RaftOptions) {
        if self.leader_hint().is_none() {
            let _ = reply.send(Err(RaftError::NotLeader { leader: None }));
            return;
        }
        let request = self.next_request;
        self.next_request += 1;
        let now = Instant::now();
        let issued = self.can_confirm_reads().then(|| {
            self.node.read_index(request_context(b'r', request));
            now
        });
        self.reads
            .insert(request, PendingRead { read_index: None, issued, deadline: now + options.proposal_timeout, reply });
    }

    /// False on a leader that has not committed an entry of its term yet: raft-rs would
    /// drop a ReadIndex request there (it cannot know the commit index is current).
    fn can_confirm_reads(&self) -> bool {
        !self.is_leader() || self.node.raft.commit_to_current_term()
    }

    /// Hands unconfirmed reads to raft again: those held back until this leader committed
    /// in its term, and those raft may have dropped (unanswered for [`READ_REISSUE_AFTER`]).
    fn reissue_reads(&mut self, now: Instant) {
        if self.leader_hint().is_none() || !self.can_confirm_reads() {
            return;
        }
        let due: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.read_index.is_none())
            .filter(|(_, r)| r.issued.is_none_or(|at| now.duration_since(at) >= READ_REISSUE_AFTER))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.node.read_index(request_context(b'r', id));
            self.reads.get_mut(&id).expect("present").issued = Some(now);
        }
    }

    fn fail_unresolved_reads(&mut self) {
        let lost: Vec<u64> = self.reads.iter().filter(|(_, r)| r.read_index.is_none()).map(|(id, _)| *id).collect();
        let leader = self.leader_hint();
        for id in lost {
            let pending = self.reads.remove(&id).expect("present");
            let _ = pending.reply.send(Err(RaftError::NotLeader { leader }));
        }
    }

    /// Fails requests past their deadline and hands dropped reads to raft again; called on
    /// every tick.
    pub fn expire(&mut self, now: Instant, options: &RaftOptions) {
        self.reissue_reads(now);
        let expired: Vec<u64> = self.proposals.iter().filter(|(_, p)| p.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let pending = self.proposals.remove(&id).expect("present");
            let _ = pending.reply.send(Err(RaftError::Timeout(options.proposal_timeout)));
        }
        let expired: Vec<u64> = self.reads.iter().filter(|(_, r)| r.deadline <= now).map(|(id, _)| *id).collect();
        for id in expired {
            let pending = self.reads.remove(&id).expect("present");
            let _ = pending.reply.send(Err(RaftError::NotLeader { leader: self.leader_hint() }));
        }
    }

    /// First half of a ready round: stage everything that must be durable into `batch`
    /// and hand out messages that may go before persistence. Returns the ready to finish;
    /// `Ready::must_sync` says whether the batch needs an fsync (a commit-index-only change
    /// does not: it is recovered from the log).
    ///
    /// Entries the ready says are committed are applied now, into `early` (with a commit
    /// index that covers them), which the engine writes before `batch` and without an
    /// fsync: raft hands out only entries already durable here and on a quorum, so their
    /// proposers are answered without waiting for this round's fsync of newer entries.
    /// Returns whether anything was applied so. A ready carrying a snapshot applies its
    /// entries after the snapshot, in `finish_ready`.
    pub fn stage_ready(
        &mut self,
        batch: &mut WriteBatch,
        early: &mut WriteBatch,
        storage: &NodeStorage,
        outbox: &mut Vec<(u64, Message)>,
    ) -> Option<(raft::Ready, bool)> {
        if !self.node.has_ready() {
            return None;
        }
        let cf = storage.cf(CF_RAFT);
        let mut ready = self.node.ready();
        outbox.extend(ready.take_messages().into_iter().map(|m| (self.id, m)));
        let mut applied_early = false;
        if ready.snapshot().is_empty() && !ready.committed_entries().is_empty() {
            let before = self.applied;
            self.apply(ready.take_committed_entries(), early, storage);
            if self.applied > before {
                // The machine's writes never get ahead of the stored commit index (a
                // restart resumes applying after it). Only the commit moves here: a new
                // term or vote is written with this round's entries, below.
                let commit = self.storage.hard_state().commit.max(self.applied);
                self.storage.set_commit(commit, early, cf);
                applied_early = true;
            }
        }
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            let index = snapshot.get_metadata().index;
            self.machine.restore(index, snapshot.get_data(), batch);
            self.storage.apply_snapshot(snapshot, batch, cf);
            self.applied = index;
        }
        if !ready.entries().is_empty() {
            self.storage.append(ready.entries(), batch, cf);
        }
        if let Some(hs) = ready.hs() {
            self.storage.set_hard_state(hs.clone(), batch, cf);
        }
        if ready.ss().is_some() {
            // Leadership changed: a ReadIndex request still waiting for its index was sent to
            // (or held by) the old leader and will never be answered. Fail it now so the
            // caller retries at the new leader, instead of at its deadline.
            self.fail_unresolved_reads();
        }
        for state in ready.take_read_states() {
            if let Some(pending) = request_id(b'r', &state.request_ctx).and_then(|id| self.reads.get_mut(&id)) {
                // A re-issued request may be confirmed twice: the first index suffices.
                pending.read_index.get_or_insert(state.index);
            }
        }
        Some((ready, applied_early))
    }

    /// Second half, after the batch is durable: persisted messages, apply, advance.
    pub fn finish_ready(
        &mut self,
        mut ready: raft::Ready,
        batch: &mut WriteBatch,
        storage: &NodeStorage,
        outbox: &mut Vec<(u64, Message)>,
        options: &RaftOptions,
    ) {
        let cf = storage.cf(CF_RAFT);
        outbox.extend(ready.take_persisted_messages().into_iter().map(|m| (self.id, m)));
        let committed = ready.take_committed_entries();
        self.apply(committed, batch, storage);
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.storage.set_commit(commit, batch, cf);
        }
        outbox.extend(light.take_messages().into_iter().map(|m| (self.id, m)));
        let committed = light.take_committed_entries();
        self.apply(committed, batch, storage);
        self.node.advance_apply();
        if self.reads.values().any(|r| r.issued.is_none()) {
            // This leader may just have committed its first entry: reads held back go now.
            self.reissue_reads(Instant::now());
        }
        self.maybe_compact(batch, storage, options);
    }

    /// Third part of a ready round, once what `finish_ready` staged is written: the
    /// machine may publish what it applied, the status follows (its `applied` is then
    /// what readers see), and proposals and reads are answered.
    pub fn after_written(&mut self) {
        self.machine.on_written();
        self.publish_status();
        for (pending, output) in self.answers.drain(..) {
            crate::metrics::PROPOSAL_SECONDS.observe(pending.proposed.elapsed().as_secs_f64());
            let _ = pending.reply.send(Ok(output));
        }
        self.answer_reads();
    }

    fn apply(&mut self, entries: Vec<Entry>, batch: &mut WriteBatch, storage: &NodeStorage) {
        for entry in entries {
            if entry.index <= self.applied {
                continue;
            }
            let output = match entry.get_entry_type() {
                EntryType::EntryNormal if entry.data.is_empty() => Bytes::new(), // leader's no-op
                EntryType::EntryNormal => self.machine.apply(entry.index, &entry.data, batch),
                EntryType::EntryConfChange => self.apply_conf_change(&entry, batch, storage),
                EntryType::EntryConfChangeV2 => panic!("group {}: ConfChangeV2 is never proposed here", self.id),
            };
            self.applied = entry.index;
            self.settle(entry.index, &entry.context, output);
        }
    }

    fn apply_conf_change(&mut self, entry: &Entry, batch: &mut WriteBatch, storage: &NodeStorage) -> Bytes {
        let cc = ConfChange::parse_from_bytes(&entry.data)
            .unwrap_or_else(|e| panic!("group {}: undecodable conf change at {}: {e}", self.id, entry.index));
        let change = match cc.get_change_type() {
            ConfChangeType::AddNode => MembershipChange::AddVoter { peer: cc.node_id, context: cc.context.clone() },
            ConfChangeType::AddLearnerNode => {
                MembershipChange::AddLearner { peer: cc.node_id, context: cc.context.clone() }
            }
            ConfChangeType::RemoveNode => MembershipChange::Remove { peer: cc.node_id },
        };
        match self.node.apply_conf_change(&cc) {
            Ok(conf) => {
                self.machine.apply_membership(entry.index, &change, &conf.voters, &conf.learners);
                self.storage.set_conf_state(conf, batch, storage.cf(CF_RAFT));
                Bytes::new()
            }
            // Raft refused it (e.g. it would leave no voter): an applied no-op everywhere.
            Err(e) => {
                tracing::warn!(group = self.id, "membership change {change:?} not applied: {e}");
                Bytes::new()
            }
        }
    }

    /// Answers the proposal applied at `index`, and fails one that lost its slot there.
    fn settle(&mut self, index: u64, context: &[u8], output: Bytes) {
        if let Some(pending) = request_id(b'p', context).and_then(|id| self.proposals.remove(&id)) {
            self.answers.push((pending, output));
        }
        let lost: Vec<u64> = self.proposals.iter().filter(|(_, p)| p.index <= index).map(|(id, _)| *id).collect();
        for id in lost {
            let pending = self.proposals.remove(&id).expect("present");
            let _ = pending.reply.send(Err(RaftError::Dropped));
        }
    }

    fn answer_reads(&mut self) {
        let applied = self.applied;
        let ready: Vec<u64> =
            self.reads.iter().filter(|(_, r)| r.read_index.is_some_and(|i| i <= applied)).map(|(id, _)| *id).collect();
        for id in ready {
            let pending = self.reads.remove(&id).expect("present");
            let _ = pending.reply.send(Ok(applied));
        }
    }

    /// An in-memory machine is snapshotted every `snapshot_interval_entries`, and after
    /// every membership change (its snapshot then names the new member, which needs that
    /// to restore it). A machine on disk says itself where the log may be cut.
    fn maybe_compact(&mut self, batch: &mut WriteBatch, storage: &NodeStorage, options: &RaftOptions) {
        if self.machine.is_durable() {
            if let Some(point) = self.machine.compaction() {
                if point.index > self.storage.snapshot_index() && point.index <= self.applied {
                    self.storage.compact_to_snapshot(point.index, point.snapshot, batch, storage.cf(CF_RAFT));
                }
            }
            return;
        }
        let interval = self.machine.snapshot_interval_entries().unwrap_or(options.snapshot_interval_entries);
        let due = self.applied >= self.storage.snapshot_index() + interval;
        if due || (self.storage.snapshot_conf_is_stale() && self.applied > self.storage.snapshot_index()) {
            let data = self.machine.snapshot();
            self.storage.compact_to_snapshot(self.applied, data, batch, storage.cf(CF_RAFT));
        }
    }

    pub fn publish_status(&self) {
        let raft = &self.node.raft;
        let conf = self.storage.conf_state();
        let progress = if self.is_leader() {
            raft.prs().iter().filter(|(id, _)| **id != raft.id).map(|(id, p)| (*id, p.matched)).collect()
        } else {
            Vec::new()
        };
        let status = GroupStatus {
            group: self.id,
            peer: raft.id,
            is_leader: self.is_leader(),
            leader: raft.leader_id,
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: self.applied,
            last_index: raft.raft_log.last_index(),
            snapshot_index: self.storage.snapshot_index(),
            log_length: self.storage.log_length(),
            cached_bytes: self.storage.cached().1 as u64,
            voters: conf.voters.clone(),
            learners: conf.learners.clone(),
            progress,
        };
        self.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status;
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::successor;

    #[test]
    fn the_successor_of_a_gone_leader_is_the_lowest_other_voter() {
        assert_eq!(successor(1, &[1, 2, 3]), Some(2));
        assert_eq!(successor(2, &[3, 1, 2]), Some(1));
        assert_eq!(successor(7, &[7]), None, "a lone voter has no successor");
        assert_eq!(successor(9, &[4, 5]), Some(4), "a leader that is no longer a voter");
    }
}
