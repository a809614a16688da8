//! Delivers outbox entries: calls become `Invoke` in the callee's partition, results
//! become `CallResult` in the caller's; then `OutboxDelivered` here. Delivering twice is
//! harmless (both commands are idempotent).

use std::sync::Arc;
use std::time::Duration;

use restate_metadata::objects::{HandlerType, PartitionTable, Schema};
use restate_types::{Backoff, PartitionId, Version};

use super::context::{ProcessorHandle, WorkerContext};
use restate_partition::{partition_for, Command, Envelope, Failure, InvocationId, OutboxEntry, OutboxMessage};

pub(crate) async fn deliver(ctx: &Arc<WorkerContext>, handle: &Arc<ProcessorHandle>, epoch: u64, entry: OutboxEntry) {
    let wait = entry.deliver_at_ms.saturating_sub(super::now_ms());
    if wait > 0 {
        tokio::select! {
            _ = handle.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match try_deliver(ctx, handle, epoch, &entry).await {
            Ok(()) => return,
            Err(e) => {
                let pause = backoff.next_delay();
                tracing::warn!(seq = entry.seq, "outbox delivery failed, retrying in {pause:?}: {e}");
                tokio::select! {
                    _ = handle.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

async fn try_deliver(
    ctx: &WorkerContext,
    handle: &ProcessorHandle,
    epoch: u64,
    entry: &OutboxEntry,
) -> Result<(), String> {
    let table = match ctx.metadata.get::<PartitionTable>() {
        Some(table) => table,
        None => {
            ctx.metadata.refresh::<PartitionTable>().await.map_err(|e| e.to_string())?.ok_or("no partition table")?
        }
    };
    let table = &table.0;
    let destination =
        PartitionId(partition_for(entry.message.destination_partition_key(), table.partitions.len() as u32) as u16);
    let log = table.partitions.get(&destination).ok_or_else(|| format!("no partition {destination}"))?.log_id;
    let command = match &entry.message {
        OutboxMessage::Invoke(outbound) => {
            let target_in = |schema: Option<Arc<(Schema, Version)>>| {
                let schema = schema?;
                let service = schema.0.services.get(&outbound.service)?;
                let handler = service.handlers.iter().find(|h| h.name == outbound.handler)?;
                let handler_type = handler.ty.or(service.ty.default_handler_type());
                Some((
                    service.ty,
                    handler_type == Some(HandlerType::Shared),
                    handler_type == Some(HandlerType::Workflow),
                ))
            };
            // A target unknown to the view may have been registered a moment ago: the
            // store decides before the call is rejected.
            let target = match target_in(ctx.metadata.get::<Schema>()) {
                Some(target) => Some(target),
                None => target_in(ctx.metadata.refresh::<Schema>().await.map_err(|e| e.to_string())?),
            };
            match target {
                Some((kind, shared, workflow_run)) => {
                    let mut request = outbound.clone().into_request(kind, shared, super::now_ms());
                    // A workflow's run has one id per key: a second submission joins the first.
                    if let (true, Some(key)) = (workflow_run, &request.target.key) {
                        request.id = InvocationId::for_workflow_run(&request.target.service, key);
                    }
                    Some(Command::Invoke(request))
                }
                None => outbound.rejection(Failure::new(
                    404,
                    format!("service '{}' handler '{}' is not registered", outbound.service, outbound.handler),
                )),
            }
        }
        other => other.command(),
    };
    if let Some(command) = command {
        ctx.bifrost.append(log, vec![Envelope::external(command).encode()]).await.map_err(|e| e.to_string())?;
    }
    let delivered = Envelope::from_leader(epoch, Command::OutboxDelivered { seq: entry.seq }).encode();
    ctx.bifrost.append(handle.log, vec![delivered]).await.map_err(|e| e.to_string())?;
    handle.wake.notify_one();
    Ok(())
}
