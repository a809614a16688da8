//! The engine: every raft group of a node driven by one thread.
//!
//! One loop iteration: take every queued command (steps, proposals, reads, membership
//! changes), tick when due, then run ONE ready round over all groups:
//! 1. per group, stage entries, hard state and received snapshots into one WriteBatch
//!    and send the messages raft allows before persistence (leader appends); apply the
//!    entries already committed (durable here and on a quorum) into a second batch;
//! 2. write that second batch without sync and answer what it applied: a proposal's
//!    answer never waits for the fsync of newer entries;
//! 3. write the first batch with ONE fsync (skipped when no group's ready needs one, e.g.
//!    only the commit index moved);
//! 4. per group, send `persisted_messages`, apply what became committed, advance, compact
//!    behind snapshots, publish status;
//! 5. write what step 4 staged (commit index, conf states, snapshots, the writes of
//!    machines on disk) without sync: it is recoverable from the log;
//! 6. per group, let the machine publish what it applied, answer proposals and reads.
//!
//! Commands that arrive during the fsync are batched into the next round (group commit).
//! The loop stops when `shutdown` is called or every handle is dropped. A panic of the
//! thread (raft-rs panics on inputs that break its invariants) ends the engine for good:
//! [`RaftEngine::died`] resolves with the reason, so the node can exit instead of serving
//! on without its raft groups.

use std::collections::HashMap;
use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use raft::eraftpb::Message;
use restate_storage::rocksdb::{WriteBatch, WriteOptions};
use restate_storage::NodeStorage;
use tokio::sync::{oneshot, watch};

use crate::group::{RaftGroup, Reply};
use crate::state_machine::{MembershipChange, StateMachine};
use crate::storage::GroupStorage;
use crate::transport::RaftTransport;
use crate::types::{GroupStatus, RaftError, RaftOptions};

/// How a group comes to exist on this node.
pub enum GroupInit {
    /// Recover what storage holds; if nothing, start empty and wait for a leader to send
    /// a snapshot (a joining member).
    Existing,
    /// Initialize a new group whose only voters are `voters`, with the state machine's
    /// initial state. Refused if the group already has state.
    Bootstrap { voters: Vec<u64>, initial_state: Vec<u8> },
}

enum Command {
    CreateGroup {
        group: u64,
        machine: Box<dyn StateMachine>,
        init: GroupInit,
        reply: Reply<watch::Receiver<GroupStatus>>,
    },
    Step {
        group: u64,
        message: Message,
    },
    Propose {
        group: u64,
        data: Bytes,
        reply: Reply<Bytes>,
    },
    ChangeMembership {
        group: u64,
        change: MembershipChange,
        reply: Reply<Bytes>,
    },
    ReadIndex {
        group: u64,
        reply: Reply<u64>,
    },
    Unreachable {
        group: u64,
        peer: u64,
    },
    /// Hand the group's leadership to `to` (a no-op unless this node leads it).
    TransferLeader {
        group: u64,
        to: u64,
    },
    Campaign {
        group: u64,
    },
    PeerGone {
        peer: u64,
    },
    Shutdown,
}

/// Handle to the engine thread; cheap to clone.
#[derive(Clone)]
pub struct RaftEngine {
    commands: mpsc::Sender<Command>,
    peer: u64,
    thread: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
    /// Why the thread died (`None` while it runs or after a clean stop).
    death: watch::Receiver<Option<String>>,
}

impl RaftEngine {
    /// Starts the engine thread of the node whose raft id is `peer` (non-zero).
    pub fn start(
        storage: NodeStorage,
        peer: u64,
        transport: Arc<dyn RaftTransport>,
        options: RaftOptions,
    ) -> RaftEngine {
        assert_ne!(peer, raft::INVALID_ID, "raft id 0 is reserved");
        let (commands, inbox) = mpsc::channel();
        let (died, death) = watch::channel(None);
        let thread = std::thread::Builder::new()
            .name(format!("raft-engine-{peer}"))
            .spawn(move || {
                let engine = EngineLoop {
                    storage,
                    peer,
                    transport,
                    options,
                    groups: HashMap::new(),
                    inbox,
                    probed: HashMap::new(),
                };
                if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run())) {
                    let reason = panic_message(panic.as_ref());
                    tracing::error!(peer, "the raft engine thread panicked: {reason}");
                    let _ = died.send(Some(reason));
                }
            })
            .expect("spawn raft engine thread");
        RaftEngine { commands, peer, thread: Arc::new(std::sync::Mutex::new(Some(thread))), death }
    }

    /// Resolves when the engine thread has died (never after a clean stop), with why.
    pub async fn died(&self) -> String {
        let mut death = self.death.clone();
        let reason = death.wait_for(Option::is_some).await.map(|reason| reason.clone().unwrap_or_default());
        match reason {
            Ok(reason) => reason,
            // The thread ended cleanly and dropped the sender: it will never die.
            Err(_) => std::future::pending().await,
        }
    }

    pub fn peer(&self) -> u64 {
        self.peer
    }

    fn send(&self, command: Command) {
        // A stopped engine drops the command; callers waiting on a reply see `Stopped`.
        let _ = self.commands.send(command);
    }

    /// Queues the command `make` builds when called (not when the future is first polled);
    /// the future resolves with its reply.
    fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> impl Future<Output = Result<T, RaftError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        async move { rx.await.unwrap_or(Err(RaftError::Stopped)) }
    }

    /// Creates (or recovers) a group driven by `machine`.
    pub async fn create_group(
        &self,
        group: u64,
        machine: Box<dyn StateMachine>,
        init: GroupInit,
    ) -> Result<watch::Receiver<GroupStatus>, RaftError> {
        self.call(move |reply| Command::CreateGroup { group, machine, init, reply }).await
    }

    /// Delivers a message from another node.
    pub fn step(&self, group: u64, message: Message) {
        self.send(Command::Step { group, message });
    }

    /// Proposes a command; resolves with the state machine's answer once it applied here.
    /// The command reaches the engine when this is called, not when the future is first
    /// polled: proposals made one after the other from one thread keep that order, and
    /// none waits for a task to be scheduled before the engine sees it.
    pub fn propose(&self, group: u64, data: Bytes) -> impl Future<Output = Result<Bytes, RaftError>> + Send + 'static {
        self.call(move |reply| Command::Propose { group, data, reply })
    }

    pub async fn change_membership(&self, group: u64, change: MembershipChange) -> Result<(), RaftError> {
        self.call(move |reply| Command::ChangeMembership { group, change, reply }).await.map(|_| ())
    }

    /// Resolves once this node has applied everything committed when the read started
    /// (ReadIndex): reading the state machine afterwards is linearizable.
    pub async fn read_index(&self, group: u64) -> Result<u64, RaftError> {
        self.call(move |reply| Command::ReadIndex { group, reply }).await
    }

    pub fn report_unreachable(&self, group: u64, peer: u64) {
        self.send(Command::Unreachable { group, peer });
    }

    /// `peer`'s process is gone (its port refused a connection): groups it led may elect a
    /// successor at once ([`RaftTransport::probe`]).
    pub fn report_gone(&self, peer: u64) {
        self.send(Command::PeerGone { peer });
    }

    /// Asks this node, if it leads `group`, to hand the leadership to voter `to` (raft's
    /// leader transfer: `to` campaigns once caught up; the old leader stops taking writes
    /// meanwhile). Watch the group's status for the outcome.
    pub fn transfer_leadership(&self, group: u64, to: u64) {
        self.send(Command::TransferLeader { group, to });
    }

    /// Asks this node to start an election now (used when it is the only voter).
    pub fn campaign(&self, group: u64) {
        self.send(Command::Campaign { group });
    }

    /// Stops the thread after the current round; pending requests fail with `Stopped`.
    pub fn shutdown(&self) {
        self.send(Command::Shutdown);
        if let Some(thread) = self.thread.lock().expect("not poisoned").take() {
            let _ = thread.join();
        }
    }
}

/// The message of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

struct EngineLoop {
    storage: NodeStorage,
    peer: u64,
    transport: Arc<dyn RaftTransport>,
    options: RaftOptions,
    groups: HashMap<u64, RaftGroup>,
    inbox: mpsc::Receiver<Command>,
    /// When each silent leader was last probed (at most once per heartbeat interval).
    probed: HashMap<u64, Instant>,
}

const MAX_COMMANDS_PER_ROUND: usize = 4096;

impl EngineLoop {
    fn run(mut self) {
        let mut next_tick = Instant::now() + self.options.tick_interval;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inbox.recv_timeout(wait) {
                Ok(command) => {
                    if !self.handle(command) {
                        return;
                    }
                    for _ in 0..MAX_COMMANDS_PER_ROUND {
                        match self.inbox.try_recv() {
                            Ok(command) => {
                                if !self.handle(command) {
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= next_tick {
                for group in self.groups.values_mut() {
                    group.node.tick();
                    group.expire(now, &self.options);
                }
                self.probe_silent_leaders(now);
                next_tick = now + self.options.tick_interval;
            }
            self.ready_round();
        }
    }

    /// Returns false on shutdown.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::CreateGroup { group, machine, init, reply } => {
                let _ = reply.send(self.create_group(group, machine, init));
            }
            // Messages for another raft id (an older incarnation of this node, whose data
            // was wiped, still addressed by the others) must never reach this one.
            Command::Step { group, message } if message.to != self.peer => {
                tracing::debug!(
                    group,
                    to = message.to,
                    me = self.peer,
                    "dropping a raft message addressed to another incarnation"
                );
            }
            Command::Step { group, message } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    if !g.accepts_from(message.from) {
                        tracing::debug!(group, from = message.from, "dropping a raft message from a non-member");
                    } else if let Err(e) = g.node.step(message) {
                        tracing::debug!(group, "raft step: {e}");
                    }
                }
            }
            Command::Propose { group, data, reply } => match self.groups.get_mut(&group) {
                Some(g) => g.propose(data, reply, &self.options),
                None => {
                    let _ = reply.send(Err(RaftError::NoSuchGroup(group)));
                }
            },
            Command::ChangeMembership { group, change, reply } => match self.groups.get_mut(&group) {
                Some(g) => g.change_membership(change, reply, &self.options),
                None => {
                    let _ = reply.send(Err(RaftError::NoSuchGroup(group)));
                }
            },
            Command::ReadIndex { group, reply } => match self.groups.get_mut(&group) {
                Some(g) => g.read_index(reply, &self.options),
                None => {
                    let _ = reply.send(Err(RaftError::NoSuchGroup(group)));
                }
            },
            Command::Unreachable { group, peer } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.node.report_unreachable(peer);
                }
            }
            Command::TransferLeader { group, to } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.node.transfer_leader(to);
                }
            }
            Command::Campaign { group } => {
                if let Some(g) = self.groups.get_mut(&group) {
                    let _ = g.node.campaign();
                }
            }
            Command::PeerGone { peer } => {
                for group in self.groups.values_mut() {
                    if group.leader_gone(peer, &self.options) {
                        tracing::info!(
                            group = group.id,
                            leader = peer,
                            "the group's leader is gone (its node refuses connections): this node campaigns at once"
                        );
                    }
                }
            }
            Command::Shutdown => return false,
        }
        true
    }

    /// Asks the transport whether the leaders this node has stopped hearing from are still
    /// there; a gone one comes back as `PeerGone`.
    fn probe_silent_leaders(&mut self, now: Instant) {
        let every = self.options.tick_interval * self.options.heartbeat_tick as u32;
        let silent: std::collections::BTreeSet<u64> =
            self.groups.values().filter_map(|g| g.silent_leader(&self.options)).collect();
        self.probed.retain(|peer, _| silent.contains(peer));
        for peer in silent {
            if self.probed.get(&peer).is_none_or(|last| now.duration_since(*last) >= every) {
                self.probed.insert(peer, now);
                self.transport.probe(peer);
            }
        }
    }

    fn create_group(
        &mut self,
        group: u64,
        machine: Box<dyn StateMachine>,
        init: GroupInit,
    ) -> Result<watch::Receiver<GroupStatus>, RaftError> {
        if self.groups.contains_key(&group) {
            return Err(RaftError::GroupExists(group));
        }
        let storage = GroupStorage::load(&self.storage, group).map_err(|e| RaftError::Raft(e.to_string()))?;
        if let GroupInit::Bootstrap { voters, initial_state } = init {
            if storage.is_initialized() {
                return Err(RaftError::GroupExists(group));
            }
            let mut batch = WriteBatch::default();
            storage.bootstrap(voters, initial_state, &mut batch, self.storage.cf(crate::storage::CF_RAFT));
            self.write(batch, true);
        }
        let mut batch = WriteBatch::default();
        let mut raft_group = RaftGroup::open(group, self.peer, storage, machine, &self.options, &mut batch)?;
        self.write(batch, true);
        raft_group.after_written();
        let status = raft_group.status.subscribe();
        self.groups.insert(group, raft_group);
        Ok(status)
    }

    fn write(&self, batch: WriteBatch, sync: bool) {
        if batch.is_empty() {
            return;
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        // Raft cannot continue without durable state: a failed write is fatal by design.
        if let Err(e) = self.storage.db().write_opt(batch, &opts) {
            panic!("raft engine {}: writing raft state failed: {e}", self.peer);
        }
    }

    fn ready_round(&mut self) {
        let mut durable = WriteBatch::default();
        let mut early = WriteBatch::default();
        let mut outbox = Vec::new();
        let mut staged = Vec::new();
        let mut answer_early = Vec::new();
        for (id, group) in self.groups.iter_mut() {
            if let Some((ready, applied_early)) =
                group.stage_ready(&mut durable, &mut early, &self.storage, &mut outbox)
            {
                staged.push((*id, ready));
                if applied_early {
                    answer_early.push(*id);
                }
            }
        }
        if !outbox.is_empty() {
            self.transport.send(std::mem::take(&mut outbox));
        }
        if staged.is_empty() {
            return;
        }
        // Entries committed before this round: applied, written and answered now, before
        // the fsync of this round's entries.
        self.write(early, false);
        for id in answer_early {
            self.groups.get_mut(&id).expect("group staged above").after_written();
        }
        let sync = staged.iter().any(|(_, ready)| ready.must_sync());
        let entries: usize = staged.iter().map(|(_, ready)| ready.entries().len()).sum();
        let began = Instant::now();
        self.write(durable, sync);
        if sync {
            crate::metrics::FSYNCS.inc();
            crate::metrics::FSYNC_SECONDS.observe(began.elapsed().as_secs_f64());
        }
        crate::metrics::ENTRIES.inc_by(entries as u64);
        let mut after = WriteBatch::default();
        let ids: Vec<u64> = staged.iter().map(|(id, _)| *id).collect();
        for (id, ready) in staged {
            let group = self.groups.get_mut(&id).expect("group staged above");
            group.finish_ready(ready, &mut after, &self.storage, &mut outbox, &self.options);
        }
        self.write(after, false);
        for id in ids {
            self.groups.get_mut(&id).expect("group staged above").after_written();
        }
        if !outbox.is_empty() {
            self.transport.send(outbox);
        }
    }
}
