//! The controller loop: hold (or wait for) the lease; while held, probe the log-servers,
//! plan, and carry out the plan.
//!
//! Every round reads the metadata from the node's [`MetadataView`] (no round trip to the
//! metadata leader). Writes (the lease, Logs, the scheduling plan) go through the view's
//! store with a version precondition, so a decision made on a stale view can only fail
//! to apply; the changes that are written read the store first (`read_modify_write`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use restate_bifrost::replicated::{LogletMembershipChange, ReplicatedLoglet};
use restate_bifrost::Bifrost;
use restate_metadata::objects::{
    ClusterConfiguration, Logs, NodesConfiguration, PartitionTable, SchedulingPlan, Segment,
};
use restate_metadata::{typed, MetadataStore, MetadataView};
use restate_types::{LocationScope, LogId, LogProviderKind, LogletId, PlainNodeId};
use tokio_util::sync::CancellationToken;

use crate::lease::{ControllerLease, LeaseStep, LeaseTracker};
use crate::liveness::Liveness;
use crate::membership::{next_step, MembershipStep};
use crate::plan::{apply, plan, Action, ClusterView};
use crate::probe::{Probe, Prober};
use crate::scheduling::{local_writers, schedule};

#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub me: PlainNodeId,
    /// A log-server unreachable this long is replaced where a spare exists.
    pub repair_grace_period: Duration,
    /// A partition leader unreachable this long is replaced by another worker.
    pub partition_failover_after: Duration,
    /// How long a silent lease holder is waited for before another node takes over.
    pub lease_duration: Duration,
    /// Time between rounds (lease renewal, probes, planning).
    pub round_interval: Duration,
}

impl ControllerOptions {
    pub fn new(me: PlainNodeId, repair_grace_period: Duration) -> ControllerOptions {
        ControllerOptions {
            me,
            repair_grace_period,
            partition_failover_after: Duration::from_secs(2),
            lease_duration: Duration::from_secs(4),
            round_interval: Duration::from_millis(500),
        }
    }
}

/// Runs until `shutdown` (returning promptly, also mid-round). Every admin node runs
/// it; only the lease holder acts.
/// How often the lease holder looks for logs whose tail segment is sealed.
const SEALED_TAIL_CHECK: Duration = Duration::from_secs(2);

pub async fn run(
    metadata: MetadataView,
    bifrost: Arc<Bifrost>,
    options: ControllerOptions,
    shutdown: CancellationToken,
) {
    let mut controller = Controller {
        store: metadata.store(),
        metadata,
        bifrost,
        lease: LeaseTracker::new(options.me, options.lease_duration),
        options,
        liveness: Liveness::default(),
        prober: Prober::default(),
        synced: BTreeMap::new(),
        was_leader: false,
        tails_checked: None,
        sealed_tails: BTreeMap::new(),
        unplaced: BTreeMap::new(),
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = controller.round() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(controller.options.round_interval) => {}
        }
    }
}

struct Controller {
    metadata: MetadataView,
    /// Writes (and the reads that guard them), through the view.
    store: Arc<dyn MetadataStore>,
    bifrost: Arc<Bifrost>,
    options: ControllerOptions,
    lease: LeaseTracker,
    liveness: Liveness,
    prober: Prober,
    /// Loglet groups whose membership matched this nodeset (not asked again).
    synced: BTreeMap<LogletId, Vec<PlainNodeId>>,
    was_leader: bool,
    /// When the logs' tails were last checked for a seal, and the sealed tails seen then.
    tails_checked: Option<Instant>,
    sealed_tails: BTreeMap<LogId, LogletId>,
    /// Why tails wait for a nodeset, as last logged (logged again only when it changes).
    unplaced: BTreeMap<LogId, String>,
}

impl Controller {
    async fn round(&mut self) {
        if let Err(e) = self.keep_lease().await {
            tracing::debug!("cluster controller lease: {e}");
        }
        let leader = self.lease.is_held(Instant::now());
        if leader != self.was_leader {
            if leader {
                tracing::info!(node = %self.options.me, "this node is now the cluster controller");
            } else {
                tracing::info!(node = %self.options.me, "this node is no longer the cluster controller");
            }
            self.was_leader = leader;
            self.liveness = Liveness::default();
            self.synced.clear();
        }
        if !leader {
            return;
        }
        if let Err(e) = self.act().await {
            tracing::debug!("cluster controller: {e}");
        }
    }

    async fn keep_lease(&mut self) -> Result<(), String> {
        let current = self.metadata.get::<ControllerLease>().map(|lease| lease.as_ref().clone());
        let holder_down = match &current {
            Some((lease, _)) if lease.holder != self.options.me => {
                let down = self.refuses_connections(lease.holder).await;
                if down {
                    tracing::info!(holder = %lease.holder, "the cluster controller's node refuses connections: taking over its lease");
                }
                down
            }
            _ => false,
        };
        let started = Instant::now();
        match self.lease.next(current, started, holder_down) {
            LeaseStep::Wait { .. } => Ok(()),
            LeaseStep::Write { next, precondition } => {
                match typed::put(self.store.as_ref(), &next, precondition).await {
                    Ok(_) => {
                        self.lease.written(started);
                        Ok(())
                    }
                    Err(e) => {
                        self.lease.lost();
                        Err(e.to_string())
                    }
                }
            }
        }
    }

    /// Whether `node`'s port refuses connections now (its process is gone).
    async fn refuses_connections(&mut self, node: PlainNodeId) -> bool {
        let Some(nodes) = self.metadata.get::<NodesConfiguration>() else { return false };
        let Some(address) = nodes.0.nodes.get(&node).map(|n| n.address.clone()) else { return false };
        self.prober.probe_all(&[address], Duration::from_secs(1)).await == [Probe::Refused]
    }

    async fn act(&mut self) -> Result<(), String> {
        let nodes = self.metadata.get::<NodesConfiguration>().map(|n| n.0.clone()).unwrap_or_default();
        let Some(logs) = self.metadata.get::<Logs>() else { return Ok(()) };
        let logs = &logs.0;
        let config = self.metadata.get::<ClusterConfiguration>();
        let config = config.as_ref().map(|c| &c.0);

        let members: Vec<(PlainNodeId, String)> = nodes.nodes.values().map(|n| (n.id, n.address.clone())).collect();
        let addresses: Vec<String> = members.iter().map(|(_, a)| a.clone()).collect();
        let answers = self.prober.probe_all(&addresses, Duration::from_secs(1)).await;
        let now = Instant::now();
        for ((node, _), probe) in members.iter().zip(answers) {
            if probe != Probe::Answered && self.liveness.is_alive(*node) {
                tracing::warn!(node = %node, ?probe, "node stopped answering");
            }
            self.liveness.observe(*node, probe, now);
        }
        self.liveness.retain(|n| nodes.nodes.contains_key(&n));
        let alive: BTreeSet<PlainNodeId> =
            members.iter().map(|(n, _)| *n).filter(|n| self.liveness.is_alive(*n)).collect();
        let dead: BTreeSet<PlainNodeId> =
            self.liveness.dead(self.options.repair_grace_period, now).into_iter().collect();
        let failed_workers: BTreeSet<PlainNodeId> =
            self.liveness.failed(self.options.partition_failover_after, now).into_iter().collect();
        if let Err(e) = self.schedule_partitions(&nodes, logs, &alive, &failed_workers).await {
            tracing::debug!("partition scheduling: {e}");
        }

        let view = ClusterView { logs, nodes: &nodes, config, alive: &alive, dead: &dead };
        let unplaced = crate::plan::unplaced(&view);
        if unplaced != self.unplaced {
            let mut by_reason: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (log, reason) in &unplaced {
                by_reason.entry(reason.as_str()).or_default().push(log.to_string());
            }
            for (reason, logs) in by_reason {
                tracing::info!(logs = %logs.join(","), "log segments wait for a nodeset: {reason}");
            }
            self.unplaced = unplaced;
        }
        for action in plan(&view) {
            if let Err(e) = self.carry_out(&action).await {
                tracing::warn!(action = ?action, "cluster controller: {e}");
            }
        }
        if self.tails_checked.is_none_or(|at| at.elapsed() >= SEALED_TAIL_CHECK) {
            self.tails_checked = Some(Instant::now());
            self.extend_sealed_tails(logs).await;
        }
        self.sync_memberships(&nodes).await
    }

    /// Extends every log whose tail segment was sealed at the previous check too (whoever
    /// sealed it: an interrupted reconfiguration, an operator, a client of the log-server
    /// API): a sealed tail takes no appends until a segment follows it. Waiting one check
    /// leaves a reconfiguration in progress the time to add its own segment.
    async fn extend_sealed_tails(&mut self, logs: &Logs) {
        let mut sealed_now = BTreeMap::new();
        for log in logs.logs.keys() {
            match self.bifrost.sealed_tail(*log).await {
                Ok(Some(loglet)) => {
                    sealed_now.insert(*log, loglet);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(%log, "checking the tail segment for a seal: {e}"),
            }
        }
        for (log, loglet) in &sealed_now {
            if self.sealed_tails.get(log) != Some(loglet) {
                continue;
            }
            match self.bifrost.extend_sealed_tail(*log, *loglet).await {
                Ok(Some(segment)) => {
                    tracing::warn!(%log, sealed_loglet = %loglet, new_loglet = %segment.loglet_id, base_lsn = %segment.base_lsn, "the log's tail segment was sealed with no segment after it: extended the log")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(%log, sealed_loglet = %loglet, "extending a log whose tail is sealed: {e}"),
            }
        }
        self.sealed_tails = sealed_now;
    }

    /// Writes a new scheduling plan when partition leaders or followers change. The plan
    /// is computed from the view first; only a change is written (re-computed on the
    /// store's current plan).
    async fn schedule_partitions(
        &self,
        nodes: &NodesConfiguration,
        logs: &Logs,
        alive: &BTreeSet<PlainNodeId>,
        failed: &BTreeSet<PlainNodeId>,
    ) -> Result<(), String> {
        let Some(table) = self.metadata.get::<PartitionTable>() else { return Ok(()) };
        let table = &table.0;
        let workers: BTreeSet<PlainNodeId> = nodes.active_workers().map(|n| n.id).collect();
        let writers = local_writers(table, logs);
        let viewed = self.metadata.get::<SchedulingPlan>().map(|p| p.0.clone()).unwrap_or_default();
        let zones: BTreeMap<PlainNodeId, String> =
            nodes.nodes.values().map(|n| (n.id, n.location.domain(LocationScope::Zone))).collect();
        if schedule(table, &viewed, &workers, alive, failed, &writers, &zones).is_none() {
            return Ok(());
        }
        let mut changed = None;
        let written = typed::read_modify_write::<SchedulingPlan, String, _>(self.store.as_ref(), |current| {
            changed = schedule(table, &current.unwrap_or_default(), &workers, alive, failed, &writers, &zones);
            Ok(changed.clone())
        })
        .await
        .map_err(|e| e.to_string())?;
        written?;
        if let Some(plan) = changed {
            for (partition, placement) in &plan.partitions {
                tracing::debug!(partition = %partition, leader = %placement.leader, epoch = placement.leader_epoch, "partition placement");
            }
            tracing::info!(partitions = plan.partitions.len(), "scheduling plan updated");
        }
        Ok(())
    }

    async fn carry_out(&self, action: &Action) -> Result<(), String> {
        match action {
            Action::Improve { log, replication, nodeset } => {
                let segment = self
                    .bifrost
                    .seal_and_extend(*log, LogProviderKind::Replicated, *replication, nodeset.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(log = %log, replication, nodeset = ?nodeset, loglet = %segment.loglet_id, "replication raised: the log continues on a new segment");
                Ok(())
            }
            _ => {
                let written = typed::read_modify_write::<Logs, String, _>(self.store.as_ref(), |current| {
                    let Some(mut logs) = current else { return Ok(None) };
                    Ok(apply(&mut logs, action).then_some(logs))
                })
                .await
                .map_err(|e| e.to_string())?;
                written?;
                match action {
                    Action::Place { log, loglet, nodeset } => {
                        tracing::info!(log = %log, loglet = %loglet, nodeset = ?nodeset, "placed a replicated segment on log-servers")
                    }
                    Action::Replace { log, loglet, dead, spare } => {
                        tracing::warn!(log = %log, loglet = %loglet, dead = %dead, spare = %spare, "replacing an unreachable log-server in a loglet's nodeset")
                    }
                    Action::Shrink { log, loglet, leaving } => {
                        tracing::info!(log = %log, loglet = %loglet, leaving = %leaving, "a draining log-server leaves a loglet's nodeset (no spare needed)")
                    }
                    Action::Improve { .. } => {}
                }
                Ok(())
            }
        }
    }

    /// Drives every repaired loglet group toward its nodeset (one change per group per
    /// round). Groups found in step are remembered and not asked again.
    async fn sync_memberships(&mut self, nodes: &NodesConfiguration) -> Result<(), String> {
        let Some(logs) = self.metadata.get::<Logs>() else { return Ok(()) };
        let repaired: Vec<Segment> = logs
            .0
            .logs
            .values()
            .flat_map(|c| c.segments.iter())
            .filter(|s| s.kind == LogProviderKind::Replicated && !s.joined.is_empty())
            .filter(|s| self.synced.get(&s.loglet_id) != Some(&s.nodeset))
            .cloned()
            .collect();
        for segment in repaired {
            match self.sync_one(&segment, nodes).await {
                Ok(true) => {
                    self.synced.insert(segment.loglet_id, segment.nodeset.clone());
                }
                Ok(false) => {}
                Err(e) => tracing::info!(loglet = %segment.loglet_id, "loglet membership: {e}"),
            }
        }
        Ok(())
    }

    /// One step for one group; true when its members are the nodeset's.
    async fn sync_one(&self, segment: &Segment, nodes: &NodesConfiguration) -> Result<bool, String> {
        let mut members = Vec::new();
        let mut address_of = BTreeMap::new();
        for id in &segment.nodeset {
            let node =
                nodes.nodes.get(id).ok_or_else(|| format!("nodeset member {id} is not in NodesConfiguration"))?;
            let raft_id = restate_raft::raft_id_for_storage(&node.storage_id);
            members.push(node.address.clone());
            address_of.insert(raft_id, node.address.clone());
        }
        let desired: Vec<u64> = address_of.keys().copied().collect();
        let loglet = ReplicatedLoglet::new(segment.loglet_id, members);
        let status = loglet.group_status().await.map_err(|e| e.to_string())?;
        let change = match next_step(&desired, &status) {
            MembershipStep::Done => return Ok(true),
            MembershipStep::WaitForCatchUp { raft_id, matched, commit } => {
                tracing::info!(loglet = %segment.loglet_id, raft_id, matched, commit, "new loglet member is catching up");
                return Ok(false);
            }
            MembershipStep::AddLearner(raft_id) => {
                LogletMembershipChange::AddLearner { raft_id, address: address_of[&raft_id].clone() }
            }
            MembershipStep::Promote(raft_id) => {
                LogletMembershipChange::AddVoter { raft_id, address: address_of[&raft_id].clone() }
            }
            MembershipStep::Remove(raft_id) => LogletMembershipChange::Remove { raft_id },
        };
        tracing::info!(loglet = %segment.loglet_id, change = ?change, "changing loglet group membership");
        loglet.change_membership(change).await.map_err(|e| e.to_string())?;
        Ok(false)
    }
}
