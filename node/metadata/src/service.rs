use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use restate_proto::metadata::{self as pb, metadata_server_server::MetadataServer, write_response::Outcome};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::feed::{FeedUpdate, FollowableStore};
use crate::store::{MetadataStore, MetadataStoreError};
use crate::wire;

/// While nothing changes, `Watch` sends an empty update this often (the subscriber's
/// sign that the stream is alive).
pub const WATCH_HEARTBEAT: Duration = Duration::from_secs(1);

/// Serves a metadata store over gRPC on the node port (nodes with the metadata-server role).
///
/// Precondition failures are answers (`WriteResponse.precondition_failed`), not gRPC
/// errors; `UNAVAILABLE` means the caller may try another address.
pub struct MetadataServerService {
    store: Arc<dyn MetadataStore>,
    feed: Arc<dyn FollowableStore>,
    /// Ends every `Watch` stream: a server shutting down gracefully waits for its open
    /// requests, and a change feed never ends by itself.
    shutdown: CancellationToken,
}

impl MetadataServerService {
    /// Serves `store`; its `Watch` streams end when `shutdown` is cancelled.
    pub fn new<S: MetadataStore + FollowableStore + 'static>(store: Arc<S>, shutdown: CancellationToken) -> Self {
        MetadataServerService { store: store.clone(), feed: store, shutdown }
    }

    /// A scheduling plan put by `ops` must place only partitions of the partition table
    /// and name only registered nodes (as `ops` leave them, else as stored).
    async fn check_plan_fits(&self, ops: &[crate::store::WriteOp]) -> Result<(), Status> {
        use crate::objects::{MetadataObject, NodesConfiguration, PartitionTable, SchedulingPlan};
        let put = |wanted: &str| {
            ops.iter().find_map(|op| match op {
                crate::store::WriteOp::Put { key, value, .. } if key == wanted => Some(value.clone()),
                _ => None,
            })
        };
        let Some(plan) = put(SchedulingPlan::KEY) else { return Ok(()) };
        let plan: SchedulingPlan =
            serde_json::from_slice(&plan).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let current = |key: &'static str| {
            let from_ops = put(key);
            let store = self.store.clone();
            async move {
                match from_ops {
                    Some(value) => Ok(Some(value)),
                    None => store.get(key).await.map(|v| v.map(|v| v.value)).map_err(status_from_error),
                }
            }
        };
        let table = current(PartitionTable::KEY).await?.and_then(|v| serde_json::from_slice::<PartitionTable>(&v).ok());
        let nodes =
            current(NodesConfiguration::KEY).await?.and_then(|v| serde_json::from_slice::<NodesConfiguration>(&v).ok());
        plan.check_against(table.as_ref(), nodes.as_ref()).map_err(|rule| {
            Status::invalid_argument(format!(
                "refusing this {} (key '{}'): {rule}",
                SchedulingPlan::NAME,
                SchedulingPlan::KEY
            ))
        })
    }

    pub fn into_server(self) -> restate_proto::metadata::metadata_server_server::MetadataServerServer<Self> {
        restate_proto::metadata::metadata_server_server::MetadataServerServer::new(self)
    }
}

pub(crate) fn status_from_error(err: MetadataStoreError) -> Status {
    crate::replicated::status_from_store_error(err)
}

fn update_to_wire(update: FeedUpdate) -> pb::WatchUpdate {
    pb::WatchUpdate {
        full: update.full,
        values: update
            .values
            .into_iter()
            .map(|(key, value)| pb::KeyedValue { key, value: Some(wire::value_to_wire(value)) })
            .collect(),
        deleted: update.deleted,
    }
}

type WatchStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl MetadataServer for MetadataServerService {
    type WatchStream = WatchStream;

    /// See `WATCH_HEARTBEAT` and [`crate::feed`]. A server that may not serve the feed
    /// (a follower) refuses before the stream starts; one that stops being allowed to
    /// (lost leadership) ends the stream with that error.
    async fn watch(&self, _request: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let feed = self.feed.clone();
        let shutdown = self.shutdown.clone();
        // Subscribed before the first read, so no write between the two goes unnoticed.
        let mut changes = feed.changes();
        let (mut seq, mut update) = feed.update_since(None).map_err(status_from_error)?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                if tx.send(Ok(update_to_wire(update))).await.is_err() {
                    return;
                }
                tokio::select! {
                    changed = changes.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(WATCH_HEARTBEAT) => {}
                    _ = tx.closed() => return,
                    _ = shutdown.cancelled() => return,
                }
                match feed.update_since(Some(seq)) {
                    Ok((next_seq, next)) => (seq, update) = (next_seq, next),
                    Err(e) => {
                        let _ = tx.send(Err(status_from_error(e))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let key = request.into_inner().key;
        let value = self.store.get(&key).await.map_err(status_from_error)?;
        Ok(Response::new(pb::GetResponse { value: value.map(wire::value_to_wire) }))
    }

    async fn write(&self, request: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let ops = request
            .into_inner()
            .ops
            .into_iter()
            .map(wire::op_from_wire)
            .collect::<Result<Vec<_>, _>>()
            .map_err(status_from_error)?;
        for op in &ops {
            if let crate::store::WriteOp::Put { key, value, .. } = op {
                crate::objects::check_well_known(key, value).map_err(Status::invalid_argument)?;
            }
        }
        self.check_plan_fits(&ops).await?;
        let outcome = match self.store.write(ops).await {
            Ok(versions) => Outcome::Written(pb::Written { versions: versions.into_iter().map(|v| v.0).collect() }),
            Err(MetadataStoreError::PreconditionFailed { key, expected, current }) => {
                Outcome::PreconditionFailed(pb::PreconditionFailed {
                    key,
                    expected: Some(wire::precondition_to_wire(expected)),
                    current_version: current.map_or(0, |v| v.0),
                })
            }
            Err(other) => return Err(status_from_error(other)),
        };
        Ok(Response::new(pb::WriteResponse { outcome: Some(outcome) }))
    }
}
