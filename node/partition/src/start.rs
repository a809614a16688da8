//! The request that starts or resumes an invocation: `Start` plus the whole journal, as
//! [`DeploymentClient::invoke`](crate::DeploymentClient::invoke) takes it.

use bytes::Bytes;

use super::codec::CorruptValue;
use super::command::Target;
use super::ids::InvocationId;
use super::record::InvocationStatus;
use super::store::{PartitionReads, StoreError};
use restate_service_protocol::protocol::{pb, Message};

/// What the invoker sends for one round.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub id: InvocationId,
    /// Service and handler to call (`POST {deployment}/invoke/{service}/{handler}`).
    pub target: Target,
    /// `StartMessage.known_entries`: pass it back in `Command::Suspend` if the round
    /// suspends.
    pub known_entries: u32,
    /// The number of commands in the journal sent: the `first_command_index` of the
    /// round's first `Command::Journal` record.
    pub known_commands: u32,
    /// `Start`, then every journal entry in order.
    pub messages: Vec<Message>,
}

/// The round's request for `id`, read from `reads` (a store or a clone of it); `None`
/// unless the invocation is `Invoked` or `Suspended` (a paused one runs no round).
///
/// `Start` carries the id (binary and `inv_...` form), the object's key, the whole user
/// state of the key as eager state (`partial_state = false`, so SDKs answer reads
/// without `GetLazyState` round trips; also for shared handlers), a random seed derived
/// from the id, and the idempotency key.
pub fn start_request<R: PartitionReads + ?Sized>(
    reads: &R,
    id: &InvocationId,
) -> Result<Option<StartRequest>, StoreError> {
    let Some(record) = reads.invocation(id)? else { return Ok(None) };
    if !record.status.is_running() || record.status == InvocationStatus::Paused {
        return Ok(None);
    }
    let journal = reads.journal(id)?;
    let state_map = match record.target.object() {
        Some((service, key)) => reads
            .read_state(service, key)?
            .into_iter()
            .map(|(key, value)| pb::start_message::StateEntry { key, value })
            .collect(),
        None => Vec::new(),
    };
    let start = pb::StartMessage {
        id: Bytes::copy_from_slice(&id.to_bytes()),
        debug_id: id.to_string(),
        known_entries: journal.len() as u32,
        state_map,
        partial_state: false,
        key: record.target.key.clone().unwrap_or_default(),
        random_seed: id.random_seed(),
        idempotency_key: record.idempotency_key.clone(),
        ..Default::default()
    };
    let mut messages = Vec::with_capacity(journal.len() + 1);
    messages.push(Message::Start(start));
    let mut known_commands = 0;
    for (index, entry) in journal.iter().enumerate() {
        known_commands += entry.is_command() as u32;
        messages.push(entry.decode().map_err(|err| {
            StoreError::Corrupt(CorruptValue {
                what: "journal entry",
                key: format!("{id} #{index}"),
                detail: err.to_string(),
            })
        })?);
    }
    Ok(Some(StartRequest {
        id: *id,
        target: record.target,
        known_entries: journal.len() as u32,
        known_commands,
        messages,
    }))
}
