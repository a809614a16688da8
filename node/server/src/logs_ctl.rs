//! Node-control requests about virtual logs, served through this node's [`Bifrost`].
//!
//! Bifrost exists once the node is registered (it needs the node's id to know which
//! local loglets are its own); until then every request answers UNAVAILABLE.

use std::sync::Arc;

use bytes::Bytes;
use restate_bifrost::{Bifrost, BifrostError, LogDescription};
use restate_metadata::objects::NodesConfiguration;
use restate_proto::node_ctl as pb;
use restate_types::{LogId, Lsn};
use tonic::Status;

use crate::running_roles::RunningRoles;

const MAX_READ: u32 = 10_000;

/// UNAVAILABLE until the node runs (Bifrost exists once it is registered).
pub(crate) fn bifrost(roles: &RunningRoles) -> Result<&Arc<Bifrost>, Status> {
    roles
        .bifrost()
        .ok_or_else(|| Status::unavailable("this node has not joined the cluster yet; logs are served once it runs"))
}

/// Moves every log onto segments of the cluster's current log provider and replication
/// (`Bifrost::reconfigure`). Returns how many logs were extended.
pub(crate) async fn reconfigure(
    bifrost: &Bifrost,
    kind: restate_types::LogProviderKind,
    replication: u32,
    nodeset: Vec<restate_types::PlainNodeId>,
) -> Result<usize, Status> {
    bifrost.reconfigure(kind, replication, nodeset).await.map_err(status)
}

pub(crate) async fn list(bifrost: &Bifrost, nodes: &NodesConfiguration) -> Result<pb::ListLogsResponse, Status> {
    let mut logs = Vec::new();
    for log in bifrost.list().await.map_err(status)? {
        logs.push(describe_to_wire(bifrost.describe(log).await.map_err(status)?, nodes));
    }
    Ok(pb::ListLogsResponse { logs })
}

pub(crate) async fn describe(
    bifrost: &Bifrost,
    log_id: u32,
    nodes: &NodesConfiguration,
) -> Result<pb::LogDescription, Status> {
    let description = bifrost.describe(LogId(log_id)).await.map_err(status)?;
    Ok(describe_to_wire(description, nodes))
}

pub(crate) async fn trim(bifrost: &Bifrost, log_id: u32, trim_point: u64) -> Result<pb::TrimLogResponse, Status> {
    let reached = bifrost.trim(LogId(log_id), Lsn(trim_point)).await.map_err(status)?;
    tracing::info!(log = log_id, requested = trim_point, reached = reached.0, "log trimmed");
    Ok(pb::TrimLogResponse { trim_point: reached.0 })
}

pub(crate) async fn append(
    bifrost: &Bifrost,
    log_id: u32,
    records: Vec<Vec<u8>>,
) -> Result<pb::AppendLogResponse, Status> {
    if records.is_empty() {
        return Err(Status::invalid_argument("an append needs at least one record"));
    }
    let records = records.into_iter().map(Bytes::from).collect();
    let last = bifrost.append(LogId(log_id), records).await.map_err(status)?;
    Ok(pb::AppendLogResponse { last_lsn: last.0 })
}

pub(crate) async fn read(
    bifrost: &Bifrost,
    log_id: u32,
    from: u64,
    max_records: u32,
) -> Result<pb::ReadLogResponse, Status> {
    let max = if max_records == 0 { 100 } else { max_records.min(MAX_READ) };
    let batch = bifrost.read(LogId(log_id), Lsn(from), max as usize).await.map_err(status)?;
    Ok(pb::ReadLogResponse {
        records: batch
            .records
            .into_iter()
            .map(|r| pb::LogRecord { lsn: r.lsn.0, payload: r.payload.to_vec() })
            .collect(),
        trim_gap_to: batch.trim_gap.map(|g| g.to.0),
        next_lsn: batch.next_lsn.0,
    })
}

fn status(err: BifrostError) -> Status {
    match err {
        BifrostError::UnknownLog(_) => Status::not_found(err.to_string()),
        BifrostError::InvalidInput(m) => Status::invalid_argument(m),
        BifrostError::Unavailable(m) => Status::unavailable(m),
        BifrostError::Loglet(restate_bifrost::LogletError::InvalidInput(m)) => Status::invalid_argument(m),
        other => Status::unavailable(other.to_string()),
    }
}

/// `nodes` gives each nodeset member's location.
fn describe_to_wire(d: LogDescription, nodes: &NodesConfiguration) -> pb::LogDescription {
    pb::LogDescription {
        log_id: d.log_id.0,
        segments: d
            .segments
            .into_iter()
            .map(|s| pb::LogSegment {
                base_lsn: s.base_lsn.0,
                kind: s.kind.to_string(),
                loglet_id: s.loglet_id.0,
                replication: s.replication,
                nodeset_locations: s
                    .nodeset
                    .iter()
                    .map(|n| restate_cluster::placement::location_of(nodes, *n).to_string())
                    .collect(),
                nodeset: s.nodeset.iter().map(|n| n.to_string()).collect(),
                sealed: s.sealed,
                tail: s.tail.map(|l| l.0),
                trim_point: s.trim_point.map(|l| l.0),
                unavailable: s.unavailable.unwrap_or_default(),
                sequencer: s.sequencer.unwrap_or_default(),
            })
            .collect(),
        trim_point: d.trim_point.map(|l| l.0),
        tail: d.tail.map(|l| l.0),
        metadata_version: d.metadata_version.0,
    }
}
