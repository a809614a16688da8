//! Calls on the replicated metadata store's membership (`MetadataServerAdmin`) from any
//! node: the join flow, draining (a member's vote removed), status views.

use std::time::Duration;

use restate_proto::channel::NodeChannel as Channel;
use restate_proto::leader_hints::AddressQueue;
use restate_proto::metadata::{self as pb, metadata_server_admin_client::MetadataServerAdminClient};
use tonic::transport::Endpoint;

use super::LEADER_HEADER;

fn admin_client(address: &str) -> Option<MetadataServerAdminClient<Channel>> {
    let endpoint = Endpoint::from_shared(address.to_owned()).ok()?.timeout(Duration::from_secs(10));
    Some(MetadataServerAdminClient::new(restate_proto::channel::lazy_channel(endpoint, Duration::from_secs(2))))
}

/// Calls `call` on the addresses (and the leaders they name) until one succeeds; the
/// error lists every address tried and what it answered.
pub async fn on_leader<T, F, Fut>(addresses: &[String], call: F) -> Result<T, String>
where
    F: Fn(MetadataServerAdminClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut queue = AddressQueue::new(addresses.iter().cloned());
    let mut failures = Vec::new();
    while let Some(address) = queue.next_untried() {
        let Some(client) = admin_client(&address) else {
            failures.push(format!("{address} (invalid address)"));
            continue;
        };
        match call(client).await {
            Ok(response) => return Ok(response.into_inner()),
            Err(status) => {
                queue.follow_hint(&status, LEADER_HEADER);
                failures.push(format!("{address} ({})", status.message()));
            }
        }
    }
    Err(format!("no metadata member accepted the request; tried {}", failures.join(", ")))
}

/// The voting members of the replicated store, as the first of `addresses` that is a
/// member reports them; empty when none answers as a member (the cluster keeps its
/// metadata elsewhere, or no member is reachable).
pub async fn voting_members(addresses: &[String]) -> Vec<pb::Member> {
    for address in addresses {
        let Ok(endpoint) = Endpoint::from_shared(address.clone()) else { continue };
        let endpoint = endpoint.timeout(Duration::from_secs(5));
        let mut client =
            MetadataServerAdminClient::new(restate_proto::channel::lazy_channel(endpoint, Duration::from_secs(2)));
        if let Ok(status) = client.status(pb::StatusRequest {}).await {
            let status = status.into_inner();
            if status.state == "member" {
                return status.members.into_iter().filter(|m| m.voter).collect();
            }
        }
    }
    Vec::new()
}
