//! Invocations across nodes: the ingress of any node finds the partition's leader in
//! the scheduling plan and asks it (locally, or through the `Worker` gRPC service) to
//! append the invocation and answer its result.

use std::sync::Arc;
use std::time::Duration;

use crate::routing_metadata::RoutingMetadata;
use crate::running_roles::RunningRoles;
use bytes::Bytes;
use restate_partition::{
    partition_for, Failure, InvocationId, InvocationRequest, InvocationResult, SignalId, SignalResult,
};
use restate_proto::worker::{self as pb, worker_client::WorkerClient};
use restate_types::{Backoff, PartitionId};
use restate_worker::processor::{InvocationLookup, Restarted, Signal, Worker, WorkerError};
use tonic::{Request, Response, Status};

/// gRPC `Worker` on the node port.
pub(crate) struct WorkerService(pub RunningRoles);

#[tonic::async_trait]
impl pb::worker_server::Worker for WorkerService {
    async fn invoke(&self, request: Request<pb::InvokeRequest>) -> Result<Response<pb::InvokeResponse>, Status> {
        let r = request.into_inner();
        let worker = self.0.worker().ok_or_else(|| Status::unavailable("not the leader: this node runs no worker"))?;
        let invocation: InvocationRequest = serde_json::from_slice(&r.request)
            .map_err(|e| Status::invalid_argument(format!("invocation request does not decode: {e}")))?;
        let partition = PartitionId(r.partition_id as u16);
        match worker.invoke(partition, invocation, r.wait).await {
            Ok(result) => Ok(Response::new(to_wire(result))),
            Err(e @ WorkerError::NotLeader(_)) => Err(Status::unavailable(format!("not the leader: {e}"))),
            // Asking again elsewhere cannot help: every replica stops at the same record.
            Err(e @ WorkerError::Blocked { .. }) => Err(Status::failed_precondition(e.to_string())),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
    }

    async fn attach(&self, request: Request<pb::InvocationRef>) -> Result<Response<pb::InvokeResponse>, Status> {
        let (worker, partition, id) = self.target(request.into_inner())?;
        let result = worker.attach(partition, id).await.map_err(unavailable)?;
        Ok(Response::new(to_wire(Some(result))))
    }

    async fn lookup(&self, request: Request<pb::InvocationRef>) -> Result<Response<pb::LookupResponse>, Status> {
        let (worker, partition, id) = self.target(request.into_inner())?;
        Ok(Response::new(lookup_to_wire(worker.lookup(partition, id).await.map_err(unavailable)?)))
    }

    async fn signal(&self, request: Request<pb::SignalRequest>) -> Result<Response<pb::LookupResponse>, Status> {
        let r = request.into_inner();
        let signal = match (r.purge, r.kill, r.pause, r.resume) {
            (true, ..) => Signal::Purge,
            (_, true, ..) => Signal::Kill,
            (_, _, true, _) => Signal::Pause,
            (_, _, _, true) => Signal::Resume,
            _ => Signal::Cancel,
        };
        let reference = pb::InvocationRef { partition_id: r.partition_id, invocation_id: r.invocation_id };
        let (worker, partition, id) = self.target(reference)?;
        Ok(Response::new(lookup_to_wire(worker.signal(partition, id, signal).await.map_err(unavailable)?)))
    }

    async fn restart_as_new(
        &self,
        request: Request<pb::RestartAsNewRequest>,
    ) -> Result<Response<pb::RestartAsNewResponse>, Status> {
        let r = request.into_inner();
        let uuid: [u8; 16] = <[u8; 16]>::try_from(r.new_uuid.as_slice()).unwrap_or_else(|_| rand::random());
        let reference = pb::InvocationRef { partition_id: r.partition_id, invocation_id: r.invocation_id };
        let (worker, partition, id) = self.target(reference)?;
        let restarted = worker.restart_as_new(partition, id, uuid).await.map_err(unavailable)?;
        use pb::restart_as_new_response::Refusal;
        let (new_id, refusal, status) = match restarted {
            Restarted::New(new_id) => (new_id.to_string(), Refusal::None, ""),
            Restarted::NotFound => (String::new(), Refusal::NotFound, ""),
            Restarted::NotCompleted(status) => (String::new(), Refusal::NotCompleted, status),
            Restarted::WorkflowRun => (String::new(), Refusal::WorkflowRun, ""),
            Restarted::InputNotKept => (String::new(), Refusal::InputNotKept, ""),
        };
        Ok(Response::new(pb::RestartAsNewResponse {
            new_invocation_id: new_id,
            refusal: refusal as i32,
            status: status.to_owned(),
        }))
    }

    async fn notify(&self, request: Request<pb::NotifyRequest>) -> Result<Response<pb::LookupResponse>, Status> {
        let r = request.into_inner();
        let (signal, result) = notify_from_wire(&r)?;
        let reference = pb::InvocationRef { partition_id: r.partition_id, invocation_id: r.invocation_id };
        let (worker, partition, id) = self.target(reference)?;
        Ok(Response::new(lookup_to_wire(worker.notify(partition, id, signal, result).await.map_err(unavailable)?)))
    }

    async fn list_invocations(
        &self,
        request: Request<pb::ListInvocationsRequest>,
    ) -> Result<Response<pb::ListInvocationsResponse>, Status> {
        let Some(worker) = self.0.worker() else { return Ok(Response::new(Default::default())) };
        let invocations = match request.into_inner().invocation_id {
            Some(id) => {
                let id: InvocationId =
                    id.parse().map_err(|e| Status::invalid_argument(format!("invocation_id '{id}': {e}")))?;
                worker.invocation_summary(id).map_err(unavailable)?.into_iter().collect()
            }
            None => worker.list_invocations().map_err(unavailable)?,
        };
        let invocations = invocations
            .into_iter()
            .map(|i| pb::InvocationSummary {
                invocation_id: i.id.to_string(),
                partition_id: i.partition.0 as u32,
                target: i.target,
                status: i.status.to_owned(),
                idempotency_key: i.idempotency_key,
                submitted_at_ms: i.submitted_at_ms,
                completed_at_ms: i.completed_at_ms,
                failed: i.failure.is_some(),
                failure_code: i.failure.as_ref().map_or(0, |f| f.0),
                failure_message: i.failure.map(|f| f.1).unwrap_or_default(),
                attempt: i.attempt.map(|a| pb::InvocationAttempt {
                    retry_count: a.retry_count,
                    last_start_at_ms: a.last_start_at_ms,
                    next_retry_at_ms: a.next_retry_at_ms,
                    last_failure: a.last_failure,
                    last_failure_code: a.last_failure_code,
                    deployment_id: a.deployment_id,
                    in_flight: a.in_flight,
                }),
            })
            .collect();
        Ok(Response::new(pb::ListInvocationsResponse { invocations }))
    }

    async fn set_state(&self, request: Request<pb::SetStateRequest>) -> Result<Response<pb::SetStateResponse>, Status> {
        let r = request.into_inner();
        let worker = self.0.worker().ok_or_else(|| Status::unavailable("not the leader: this node runs no worker"))?;
        let partition = PartitionId(r.partition_id as u16);
        let entries = r
            .entries
            .into_iter()
            .map(|e| restate_partition::StateEntry { key: e.key.into(), value: e.value.into() })
            .collect();
        worker.set_state(partition, r.service, r.key, entries, r.expected_version).await.map_err(unavailable)?;
        Ok(Response::new(pb::SetStateResponse {}))
    }

    async fn scan_table(
        &self,
        request: Request<pb::ScanTableRequest>,
    ) -> Result<Response<pb::ScanTableResponse>, Status> {
        let request = request.into_inner();
        let name = request.table;
        let table = restate_partition::introspect::PartitionTable::from_sql_name(&name)
            .ok_or_else(|| Status::invalid_argument(format!("no partition table '{name}'")))?;
        let filter: restate_partition::introspect::RowFilter = if request.filter_json.is_empty() {
            Default::default()
        } else {
            serde_json::from_slice(&request.filter_json)
                .map_err(|e| Status::invalid_argument(format!("filter_json: {e}")))?
        };
        let partitions: Vec<PartitionId> = request.partitions.iter().map(|p| PartitionId(*p as u16)).collect();
        let Some(worker) = self.0.worker() else { return Ok(Response::new(Default::default())) };
        let rows = worker
            .scan_table(table, &filter, (!partitions.is_empty()).then_some(&partitions[..]))
            .map_err(unavailable)?;
        let rows = rows
            .into_iter()
            .map(|(partition, row)| pb::ScanTableRow {
                partition_id: u32::from(partition.0),
                row_json: serde_json::to_vec(&row).expect("rows serialize"),
            })
            .collect();
        Ok(Response::new(pb::ScanTableResponse { rows }))
    }

    async fn create_snapshot(
        &self,
        request: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::CreateSnapshotResponse>, Status> {
        let worker = self.0.worker().ok_or_else(|| Status::unavailable("not the leader: this node runs no worker"))?;
        let partition = PartitionId(request.into_inner().partition_id as u16);
        match worker.create_snapshot(partition).await {
            Ok(created) => Ok(Response::new(pb::CreateSnapshotResponse {
                snapshot_id: created.snapshot_id,
                lsn: created.lsn.0,
                published: created.published,
            })),
            Err(e @ WorkerError::Snapshot { .. }) => Err(Status::failed_precondition(e.to_string())),
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl WorkerService {
    fn target(&self, r: pb::InvocationRef) -> Result<(&Arc<Worker>, PartitionId, InvocationId), Status> {
        let worker = self.0.worker().ok_or_else(|| Status::unavailable("not the leader: this node runs no worker"))?;
        let id: InvocationId =
            r.invocation_id.parse().map_err(|e| Status::invalid_argument(format!("invocation id: {e}")))?;
        Ok((worker, PartitionId(r.partition_id as u16), id))
    }
}

/// The wire form of a signal for [`pb::worker_server::Worker::notify`].
pub(crate) fn notify_to_wire(
    partition: PartitionId,
    id: &InvocationId,
    signal: &SignalId,
    result: &SignalResult,
) -> pb::NotifyRequest {
    pb::NotifyRequest {
        partition_id: partition.0 as u32,
        invocation_id: id.to_string(),
        signal: Some(match signal {
            SignalId::Index(index) => pb::notify_request::Signal::SignalIndex(*index),
            SignalId::Name(name) => pb::notify_request::Signal::SignalName(name.clone()),
        }),
        result: Some(match result {
            SignalResult::Void => pb::notify_request::Result::Void(true),
            SignalResult::Value(value) => pb::notify_request::Result::Value(value.to_vec()),
            SignalResult::Failure(f) => {
                pb::notify_request::Result::Failure(pb::Failure { code: f.code, message: f.message.clone() })
            }
        }),
    }
}

fn notify_from_wire(r: &pb::NotifyRequest) -> Result<(SignalId, SignalResult), Status> {
    let signal = match &r.signal {
        Some(pb::notify_request::Signal::SignalIndex(index)) => SignalId::Index(*index),
        Some(pb::notify_request::Signal::SignalName(name)) => SignalId::Name(name.clone()),
        None => return Err(Status::invalid_argument("NotifyRequest names no signal (signal_index or signal_name)")),
    };
    let result = match &r.result {
        None | Some(pb::notify_request::Result::Void(_)) => SignalResult::Void,
        Some(pb::notify_request::Result::Value(value)) => SignalResult::Value(Bytes::copy_from_slice(value)),
        Some(pb::notify_request::Result::Failure(f)) => SignalResult::Failure(Failure::new(f.code, f.message.clone())),
    };
    Ok((signal, result))
}

/// Worker errors are all "ask again, maybe elsewhere": UNAVAILABLE.
fn unavailable(e: WorkerError) -> Status {
    match e {
        WorkerError::NotLeader(_) => Status::unavailable(format!("not the leader: {e}")),
        e => Status::unavailable(e.to_string()),
    }
}

fn lookup_to_wire(found: InvocationLookup) -> pb::LookupResponse {
    match found {
        InvocationLookup::NotFound => pb::LookupResponse::default(),
        InvocationLookup::Running { status } => {
            pb::LookupResponse { found: true, status: status.to_owned(), result: None }
        }
        InvocationLookup::Completed(result) => {
            pb::LookupResponse { found: true, status: "completed".to_owned(), result: Some(to_wire(Some(result))) }
        }
    }
}

/// [`lookup_to_wire`] read back.
pub(crate) fn lookup_from_wire(r: pb::LookupResponse) -> InvocationLookup {
    match (r.found, r.result.and_then(from_wire)) {
        (false, _) => InvocationLookup::NotFound,
        (true, Some(result)) => InvocationLookup::Completed(result),
        (true, None) => InvocationLookup::Running { status: status_name(&r.status) },
    }
}

fn status_name(status: &str) -> &'static str {
    match status {
        "scheduled" => "scheduled",
        "inboxed" => "inboxed",
        "invoked" => "invoked",
        "suspended" => "suspended",
        "paused" => "paused",
        _ => "running",
    }
}

fn to_wire(result: Option<InvocationResult>) -> pb::InvokeResponse {
    match result {
        None => pb::InvokeResponse::default(),
        Some(Ok(value)) => pb::InvokeResponse { completed: true, value: value.to_vec(), ..Default::default() },
        Some(Err(f)) => pb::InvokeResponse {
            completed: true,
            failed: true,
            failure_code: f.code,
            failure_message: f.message,
            ..Default::default()
        },
    }
}

pub(crate) fn from_wire(r: pb::InvokeResponse) -> Option<InvocationResult> {
    if !r.completed {
        return None;
    }
    Some(if r.failed { Err(Failure::new(r.failure_code, r.failure_message)) } else { Ok(Bytes::from(r.value)) })
}

/// How long the ingress keeps looking for a partition leader that accepts the request.
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// The longest pause between two attempts: after a leader change the new leader usually
/// takes over within a second, and a request should not sleep long past that.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// Submits `request` to its partition's leader, following leader changes (the same id
/// is resubmitted, which the state machine deduplicates). `Ok(None)` for `send`.
pub(crate) async fn submit(
    metadata: &RoutingMetadata,
    local: &RunningRoles,
    request: InvocationRequest,
    wait: bool,
) -> Result<Option<InvocationResult>, String> {
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let mut backoff = Backoff::new(Duration::from_millis(50), MAX_BACKOFF);
    let mut fresh = false;
    loop {
        let last_error = match try_submit(metadata, fresh, local, &request, &body, wait).await {
            Ok(result) => return Ok(result),
            Err(Attempt::Final(reason)) => return Err(reason),
            Err(Attempt::Retry(reason)) => reason,
        };
        fresh = true;
        let pause = backoff.next_delay();
        if tokio::time::Instant::now() + pause > deadline {
            return Err(format!(
                "invocation {} not accepted within {}s: {last_error}",
                request.id,
                LEADER_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(pause).await;
    }
}

/// Runs `call` against the leader of `id`'s partition, following leader changes for up
/// to [`LEADER_WAIT`] (UNAVAILABLE answers and connection failures are retried; other
/// statuses are returned).
pub(crate) async fn on_leader<T, F, Fut>(metadata: &RoutingMetadata, id: &InvocationId, call: F) -> Result<T, String>
where
    F: Fn(WorkerClient<restate_proto::channel::NodeChannel>, PartitionId) -> Fut,
    Fut: std::future::Future<Output = Result<Response<T>, Status>>,
{
    on_partition_leader(metadata, Target::Invocation(id), call).await
}

/// What [`on_partition_leader`] routes by.
pub(crate) enum Target<'a> {
    Invocation(&'a InvocationId),
    Partition(PartitionId),
}

/// Runs `call` against the leader of a partition (given, or of an invocation id),
/// following leader changes for up to [`LEADER_WAIT`] (UNAVAILABLE answers and
/// connection failures are retried; other statuses are returned).
pub(crate) async fn on_partition_leader<T, F, Fut>(
    metadata: &RoutingMetadata,
    target: Target<'_>,
    call: F,
) -> Result<T, String>
where
    F: Fn(WorkerClient<restate_proto::channel::NodeChannel>, PartitionId) -> Fut,
    Fut: std::future::Future<Output = Result<Response<T>, Status>>,
{
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let mut backoff = Backoff::new(Duration::from_millis(50), MAX_BACKOFF);
    let mut fresh = false;
    let what = match &target {
        Target::Invocation(id) => format!("invocation {id}"),
        Target::Partition(partition) => format!("partition {partition}"),
    };
    loop {
        let attempt = async {
            let partition = match &target {
                Target::Invocation(id) => metadata.partition_of(id, fresh).await?,
                Target::Partition(partition) => *partition,
            };
            let address = metadata.leader_address(partition, fresh).await?;
            let client = metadata.workers.client(&address)?;
            let answer = tokio::select! {
                answer = call(client, partition) => answer,
                _ = metadata.leader_moved_from(partition, &address) => Err(Status::unavailable(format!(
                    "partition {partition} moved to another leader while the request waited"
                ))),
            };
            match answer {
                Ok(answer) => Ok(Ok(answer.into_inner())),
                // A leader killed mid-request drops the connection: the request was
                // cancelled, not answered; asking the next leader is safe (these calls are
                // idempotent by content).
                Err(status) if matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Cancelled) => {
                    Err(format!("{address}: {}", status.message()))
                }
                Err(status) => Ok(Err(format!("{address}: {}", status.message()))),
            }
        };
        let last_error = match attempt.await {
            Ok(answer) => return answer,
            Err(e) => e,
        };
        let pause = backoff.next_delay();
        if tokio::time::Instant::now() + pause > deadline {
            return Err(format!(
                "{what}: no partition leader answered within {}s: {last_error}",
                LEADER_WAIT.as_secs()
            ));
        }
        fresh = true;
        tokio::time::sleep(pause).await;
    }
}

/// The partitions each planned leader leads: all of them, or only the one owning
/// `partition_key`.
fn leaders_by_node(
    plan: &restate_metadata::objects::SchedulingPlan,
    partition_key: Option<u64>,
) -> std::collections::BTreeMap<restate_types::PlainNodeId, Vec<PartitionId>> {
    let only = partition_key.map(|key| PartitionId(partition_for(key, plan.partitions.len() as u32) as u16));
    let mut leaders: std::collections::BTreeMap<_, Vec<PartitionId>> = Default::default();
    for (partition, placement) in &plan.partitions {
        if only.is_none_or(|only| only == *partition) {
            leaders.entry(placement.leader).or_default().push(*partition);
        }
    }
    leaders
}

/// Every invocation in the cluster, from each partition leader; partitions whose leader
/// did not answer are listed in the second value with the reason.
pub(crate) async fn list_all(metadata: &RoutingMetadata) -> Result<(Vec<pb::InvocationSummary>, Vec<String>), String> {
    list_in(metadata, None, None).await
}

/// [`list_all`], or only the invocations of the partition owning `partition_key`, or
/// only invocation `id` (a point lookup on its partition's leader).
pub(crate) async fn list_in(
    metadata: &RoutingMetadata,
    partition_key: Option<u64>,
    id: Option<&InvocationId>,
) -> Result<(Vec<pb::InvocationSummary>, Vec<String>), String> {
    let partition_key = id.map(InvocationId::partition_key).or(partition_key);
    let (plan, nodes) = metadata.plan_and_nodes().await?;
    let mut all = Vec::new();
    let mut missing = Vec::new();
    for (leader, partitions) in leaders_by_node(&plan, partition_key) {
        let Some(node) = nodes.nodes.get(&leader) else {
            missing.push(format!("partitions {partitions:?}: leader {leader} is not a known node"));
            continue;
        };
        let answer = match metadata.workers.client(&node.address) {
            Ok(mut client) => client
                .list_invocations(pb::ListInvocationsRequest { invocation_id: id.map(InvocationId::to_string) })
                .await
                .map_err(|s| format!("{}: {}", node.address, s.message())),
            Err(e) => Err(e),
        };
        match answer {
            Ok(list) => {
                // A node that just lost a partition may still list it: keep what the plan gives it.
                let list = list.into_inner().invocations;
                all.extend(list.into_iter().filter(|i| partitions.contains(&PartitionId(i.partition_id as u16))));
            }
            Err(e) => missing.push(format!("partitions {partitions:?} (leader {leader}): {e}")),
        }
    }
    all.sort_by(|a, b| a.submitted_at_ms.cmp(&b.submitted_at_ms).then_with(|| a.invocation_id.cmp(&b.invocation_id)));
    Ok((all, missing))
}

/// The rows of partition table `table` in every partition, each from its leader; an error
/// names the partitions whose leader did not answer.
pub(crate) async fn scan_all(
    metadata: &RoutingMetadata,
    table: restate_partition::introspect::PartitionTable,
    filter: &restate_partition::introspect::RowFilter,
) -> Result<Vec<restate_partition::introspect::Row>, String> {
    let (plan, nodes) = metadata.plan_and_nodes().await?;
    // A filter that pins a partition key asks that partition's leader only.
    let leaders = leaders_by_node(&plan, filter.partition_key());
    let filter_json = serde_json::to_vec(filter).expect("filters serialize");
    let mut all = Vec::new();
    let mut missing = Vec::new();
    for (leader, partitions) in leaders {
        let Some(node) = nodes.nodes.get(&leader) else {
            missing.push(format!("partitions {partitions:?}: leader {leader} is not a known node"));
            continue;
        };
        let answer = match metadata.workers.client(&node.address) {
            Ok(mut client) => client
                .scan_table(pb::ScanTableRequest {
                    table: table.sql_name().to_owned(),
                    filter_json: filter_json.clone(),
                    partitions: partitions.iter().map(|p| u32::from(p.0)).collect(),
                })
                .await
                .map_err(|s| format!("{}: {}", node.address, s.message())),
            Err(e) => Err(e),
        };
        match answer {
            Ok(answer) => {
                for row in answer.into_inner().rows {
                    // A node that just lost a partition may still answer for it.
                    if !partitions.contains(&PartitionId(row.partition_id as u16)) {
                        continue;
                    }
                    let row = serde_json::from_slice(&row.row_json)
                        .map_err(|e| format!("{}: a {} row does not decode: {e}", node.address, table.sql_name()))?;
                    all.push(row);
                }
            }
            Err(e) => missing.push(format!("partitions {partitions:?} (leader {leader}): {e}")),
        }
    }
    every_partition_answered(&missing)?;
    Ok(all)
}

/// An answer that needs every partition fails when any did not answer, naming them
/// (`missing`: one reason per unanswered group of partitions).
pub(crate) fn every_partition_answered(missing: &[String]) -> Result<(), String> {
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!("the query needs every partition, and these did not answer: {}", missing.join("; ")))
}

/// Why one submission failed: worth asking again (maybe elsewhere), or final.
enum Attempt {
    Retry(String),
    /// The partition is blocked at a record it cannot apply: every leader refuses.
    Final(String),
}

async fn try_submit(
    metadata: &RoutingMetadata,
    fresh: bool,
    local: &RunningRoles,
    request: &InvocationRequest,
    body: &[u8],
    wait: bool,
) -> Result<Option<InvocationResult>, Attempt> {
    let partition = metadata.partition_of(&request.id, fresh).await.map_err(Attempt::Retry)?;
    if let Some(worker) = local.worker() {
        if worker.leads(partition) {
            return worker.invoke(partition, request.clone(), wait).await.map_err(|e| match e {
                WorkerError::Blocked { .. } => Attempt::Final(e.to_string()),
                e => Attempt::Retry(e.to_string()),
            });
        }
    }
    let address = metadata.leader_address(partition, fresh).await.map_err(Attempt::Retry)?;
    let mut client = metadata.workers.client(&address).map_err(Attempt::Retry)?;
    let call = client.invoke(pb::InvokeRequest { partition_id: partition.0 as u32, request: body.to_vec(), wait });
    let answer = tokio::select! {
        answer = call => answer.map_err(|s| match s.code() {
            tonic::Code::FailedPrecondition => Attempt::Final(s.message().to_owned()),
            _ => Attempt::Retry(format!("{address}: {}", s.message())),
        })?,
        _ = metadata.leader_moved_from(partition, &address) => {
            return Err(Attempt::Retry(format!("{address}: partition {partition} moved to another leader while the request waited")));
        }
    };
    Ok(from_wire(answer.into_inner()))
}
