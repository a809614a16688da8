//! Invocations across nodes: the ingress of any node finds the partition's leader in
//! the scheduling plan and asks it (locally, or through the `Worker` gRPC service) to
//! append the invocation and answer its result.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use restate_metadata::objects::{NodesConfiguration, PartitionTable, SchedulingPlan};
use restate_metadata::{typed, MetadataStore};
use restate_proto::worker::{self as pb, worker_client::WorkerClient};
use restate_types::PartitionId;
use restate_worker::partition::{partition_for, Failure, InvocationRequest, InvocationResult};
use restate_worker::processor::{Worker, WorkerError};
use tonic::{Request, Response, Status};

/// This node's worker, set once the node runs with the worker role.
#[derive(Clone, Default)]
pub(crate) struct WorkerHandle(Arc<OnceLock<Arc<Worker>>>);

impl WorkerHandle {
    pub fn set(&self, worker: Arc<Worker>) {
        let _ = self.0.set(worker);
    }

    pub fn get(&self) -> Option<&Arc<Worker>> {
        self.0.get()
    }
}

/// gRPC `Worker` on the node port.
pub(crate) struct WorkerService(pub WorkerHandle);

#[tonic::async_trait]
impl pb::worker_server::Worker for WorkerService {
    async fn invoke(&self, request: Request<pb::InvokeRequest>) -> Result<Response<pb::InvokeResponse>, Status> {
        let r = request.into_inner();
        let worker = self.0.get().ok_or_else(|| Status::unavailable("not the leader: this node runs no worker"))?;
        let invocation: InvocationRequest = serde_json::from_slice(&r.request)
            .map_err(|e| Status::invalid_argument(format!("invocation request does not decode: {e}")))?;
        let partition = PartitionId(r.partition_id as u16);
        match worker.invoke(partition, invocation, r.wait).await {
            Ok(result) => Ok(Response::new(to_wire(result))),
            Err(e @ WorkerError::NotLeader(_)) => Err(Status::unavailable(format!("not the leader: {e}"))),
            Err(e) => Err(Status::unavailable(e.to_string())),
        }
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

fn from_wire(r: pb::InvokeResponse) -> Option<InvocationResult> {
    if !r.completed {
        return None;
    }
    Some(if r.failed { Err(Failure::new(r.failure_code, r.failure_message)) } else { Ok(Bytes::from(r.value)) })
}

/// How long the ingress keeps looking for a partition leader that accepts the request.
const LEADER_WAIT: Duration = Duration::from_secs(30);

/// Submits `request` to its partition's leader, following leader changes (the same id
/// is resubmitted, which the state machine deduplicates). `Ok(None)` for `send`.
pub(crate) async fn submit(
    metadata: &dyn MetadataStore,
    local: &WorkerHandle,
    request: InvocationRequest,
    wait: bool,
) -> Result<Option<InvocationResult>, String> {
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + LEADER_WAIT;
    let mut backoff = Duration::from_millis(50);
    loop {
        let last_error = match try_submit(metadata, local, &request, &body, wait).await {
            Ok(result) => return Ok(result),
            Err(e) => e,
        };
        if tokio::time::Instant::now() + backoff > deadline {
            return Err(format!(
                "invocation {} not accepted within {}s: {last_error}",
                request.id,
                LEADER_WAIT.as_secs()
            ));
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

async fn try_submit(
    metadata: &dyn MetadataStore,
    local: &WorkerHandle,
    request: &InvocationRequest,
    body: &[u8],
    wait: bool,
) -> Result<Option<InvocationResult>, String> {
    let (table, _) = typed::get::<PartitionTable>(metadata)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the cluster has no partitions yet")?;
    let partition = PartitionId(partition_for(request.id.partition_key(), table.partitions.len() as u32) as u16);
    let (plan, _) = typed::get::<SchedulingPlan>(metadata)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no partition has a leader yet")?;
    let placement =
        plan.partitions.get(&partition).ok_or_else(|| format!("partition {partition} has no leader yet"))?;
    if let Some(worker) = local.get() {
        if worker.leads(partition) {
            return worker.invoke(partition, request.clone(), wait).await.map_err(|e| e.to_string());
        }
    }
    let (nodes, _) = typed::get::<NodesConfiguration>(metadata).await.map_err(|e| e.to_string())?.unwrap_or_default();
    let address = nodes
        .nodes
        .get(&placement.leader)
        .map(|n| n.address.clone())
        .ok_or_else(|| format!("leader {} of partition {partition} is not a known node", placement.leader))?;
    let channel = tonic::transport::Endpoint::from_shared(address.clone())
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .map_err(|e| format!("{address}: {e}"))?;
    let answer = WorkerClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .invoke(pb::InvokeRequest { partition_id: partition.0 as u32, request: body.to_vec(), wait })
        .await
        .map_err(|s| format!("{address}: {}", s.message()))?;
    Ok(from_wire(answer.into_inner()))
}
