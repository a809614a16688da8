//! `NodeCtl.DrainNode`, `RemoveNode` and `PrepareRestart` (`restatectl nodes
//! drain|remove|prepare-restart`, the operator before it shrinks a StatefulSet or rolls a
//! pod): the wire side of
//! [`restate_cluster::draining`], which holds the procedures.

use restate_cluster::draining::{self, DrainError};
use restate_proto::node_ctl as pb;
use tonic::Status;

use crate::node_ctl_context::NodeCtlContext;

fn status(err: DrainError) -> Status {
    match err {
        DrainError::InvalidInput(m) => Status::invalid_argument(m),
        DrainError::NotFound(m) => Status::not_found(m),
        DrainError::Refused(m) => Status::failed_precondition(m),
        DrainError::Unavailable(m) => Status::unavailable(m),
    }
}

pub(crate) async fn drain(ctx: &NodeCtlContext, wanted: &str) -> Result<pb::DrainNodeResponse, Status> {
    let report = draining::drain(ctx.metadata.as_ref(), wanted).await.map_err(status)?;
    let progress = &report.progress;
    Ok(pb::DrainNodeResponse {
        node_id: report.node.to_string(),
        name: report.name,
        drained: progress.is_drained(),
        log_segments_left: progress.log_segments.len() as u32,
        partitions_led: progress.led_partitions.len() as u32,
        metadata_member: progress.metadata_member,
        summary: progress.summary(),
    })
}

pub(crate) async fn prepare_restart(ctx: &NodeCtlContext, wanted: &str) -> Result<pb::PrepareRestartResponse, Status> {
    let report = draining::prepare_restart(ctx.metadata.as_ref(), wanted).await.map_err(status)?;
    Ok(pb::PrepareRestartResponse {
        node_id: report.node.to_string(),
        name: report.name.clone(),
        ready: report.is_ready(),
        partitions_led: report.led_partitions.len() as u32,
        metadata_leader: report.metadata_leader,
    })
}

pub(crate) async fn remove(ctx: &NodeCtlContext, wanted: &str, force: bool) -> Result<pb::RemoveNodeResponse, Status> {
    Ok(match draining::remove(ctx.metadata.as_ref(), wanted, force).await.map_err(status)? {
        Some((id, name)) => pb::RemoveNodeResponse { node_id: id.to_string(), name, removed: true },
        None => pb::RemoveNodeResponse { node_id: String::new(), name: wanted.to_owned(), removed: false },
    })
}
