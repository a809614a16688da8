//! `restatectl metadata-server ...`: the members of the replicated metadata store.

use std::time::Duration;

use restate_proto::leader_hints::{AddressQueue, METADATA_LEADER_HEADER};
use restate_proto::metadata::{self as mpb, metadata_server_admin_client::MetadataServerAdminClient};
use restate_proto::node_ctl as pb;
use serde_json::json;
use tonic::transport::Endpoint;

use super::{connect, CtlError, Globals};
use crate::output::{confirm, print_json, table};

async fn admin(address: &str) -> Result<MetadataServerAdminClient<restate_proto::channel::NodeChannel>, String> {
    let endpoint = Endpoint::from_shared(address.to_owned())
        .map_err(|e| format!("bad address {address}: {e}"))?
        .timeout(Duration::from_secs(10));
    let channel = restate_proto::channel::connect(endpoint, Duration::from_secs(2))
        .await
        .map_err(|e| format!("unreachable: {}", crate::error_chain(&e)))?;
    Ok(MetadataServerAdminClient::new(channel))
}

async fn cluster_nodes(globals: &Globals) -> Result<Vec<pb::NodeStatus>, CtlError> {
    let status = super::status::fetch_provisioned_status(globals, "the cluster is not provisioned").await?;
    Ok(status.nodes.into_iter().filter(|n| n.roles.iter().any(|r| r == "metadata-server")).collect())
}

/// What one metadata-server node says about itself.
async fn server_status(address: &str) -> Result<mpb::ServerStatus, String> {
    let mut client = admin(address).await?;
    match client.status(mpb::StatusRequest {}).await {
        Ok(r) => Ok(r.into_inner()),
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            Ok(mpb::ServerStatus { state: "local".into(), ..Default::default() })
        }
        Err(s) => Err(s.message().to_owned()),
    }
}

pub async fn list_servers(globals: &Globals) -> Result<(), CtlError> {
    let nodes = cluster_nodes(globals).await?;
    let statuses = futures_join(nodes.iter().map(|n| server_status(&n.address))).await;
    let mut rows = Vec::new();
    let mut objects = Vec::new();
    for (node, status) in nodes.iter().zip(statuses) {
        match status {
            Ok(s) => {
                let voters = s.members.iter().filter(|m| m.voter).count();
                let learners = s.members.len() - voters;
                rows.push(vec![
                    node.node_id.clone(),
                    node.name.clone(),
                    s.state.clone(),
                    if s.is_leader { "yes".into() } else { "no".into() },
                    if learners > 0 { format!("{voters}+{learners}L") } else { voters.to_string() },
                    s.applied.to_string(),
                    s.commit.to_string(),
                    s.term.to_string(),
                    s.log_length.to_string(),
                    s.snapshot_index.to_string(),
                ]);
                objects.push(json!({
                    "node_id": node.node_id, "name": node.name, "status": s.state, "is_leader": s.is_leader,
                    "raft_id": s.raft_id, "leader_address": s.leader_address, "applied": s.applied,
                    "committed": s.commit, "term": s.term, "log_length": s.log_length,
                    "snapshot_index": s.snapshot_index,
                    "members": s.members.iter().map(|m| json!({
                        "raft_id": m.raft_id, "node_id": format!("N{}", m.node_id), "name": m.name,
                        "address": m.address, "voter": m.voter,
                    })).collect::<Vec<_>>(),
                }));
            }
            Err(reason) => {
                rows.push(vec![
                    node.node_id.clone(),
                    node.name.clone(),
                    format!("unreachable ({reason})"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                objects.push(json!({ "node_id": node.node_id, "name": node.name, "status": "unreachable", "error": reason, "is_leader": false }));
            }
        }
    }
    if globals.json {
        print_json(&json!({ "servers": objects }));
    } else {
        print!(
            "{}",
            table(
                &[
                    "NODE",
                    "NAME",
                    "STATUS",
                    "LEADER",
                    "MEMBERS",
                    "APPLIED",
                    "COMMITTED",
                    "TERM",
                    "LOG-LENGTH",
                    "SNAPSHOT"
                ],
                &rows
            )
        );
    }
    Ok(())
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::with_capacity(handles.len());
    for f in handles {
        out.push(f.await);
    }
    out
}

/// Resolves `--node` (an id like N2 or a name) among the cluster's metadata-server nodes.
fn find<'a>(nodes: &'a [pb::NodeStatus], wanted: &str) -> Result<&'a pb::NodeStatus, CtlError> {
    let by_id = wanted.trim_start_matches(['N', 'n']);
    nodes
        .iter()
        .find(|n| n.name == wanted || n.node_id == wanted || n.node_id.trim_start_matches('N') == by_id)
        .ok_or_else(|| {
            let known: Vec<String> = nodes.iter().map(|n| format!("{} ({})", n.node_id, n.name)).collect();
            CtlError(format!(
                "--node {wanted}: no metadata-server node of that id or name; known: {}",
                known.join(", ")
            ))
        })
}

/// Sends `call` to the leader, starting from any member and following leader hints.
async fn on_leader<T, F, Fut>(start: Vec<String>, call: F) -> Result<T, CtlError>
where
    F: Fn(MetadataServerAdminClient<restate_proto::channel::NodeChannel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut queue = AddressQueue::new(start);
    let mut failures = Vec::new();
    while let Some(address) = queue.next_untried() {
        let client = match admin(&address).await {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{address}: {e}"));
                continue;
            }
        };
        match call(client).await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if s.code() == tonic::Code::InvalidArgument || s.code() == tonic::Code::FailedPrecondition => {
                return Err(CtlError(s.message().to_owned()));
            }
            Err(s) => {
                queue.follow_hint(&s, METADATA_LEADER_HEADER);
                failures.push(format!("{address}: {}", s.message()));
            }
        }
    }
    Err(CtlError(format!("no metadata leader accepted the request ({})", failures.join("; "))))
}

pub async fn add_node(globals: &Globals, wanted: &str) -> Result<(), CtlError> {
    let nodes = cluster_nodes(globals).await?;
    let node = find(&nodes, wanted)?;
    if !confirm(&format!("Add {} ({}) to the metadata store?", node.node_id, node.name), globals.yes) {
        return Err(CtlError("aborted; nothing was changed".into()));
    }
    let mut client = connect(&node.address).await?;
    client
        .join_metadata_cluster(pb::JoinMetadataClusterRequest {})
        .await
        .map_err(|s| CtlError::from_status(&node.address, s))?;
    println!("{} ({}) is a voting member of the metadata store.", node.node_id, node.name);
    Ok(())
}

pub async fn remove_node(globals: &Globals, wanted: &str) -> Result<(), CtlError> {
    let nodes = cluster_nodes(globals).await?;
    let node = find(&nodes, wanted)?;
    let mut members = Vec::new();
    for n in &nodes {
        if let Ok(s) = server_status(&n.address).await {
            if s.state == "member" {
                members = s.members;
                break;
            }
        }
    }
    let node_number: u32 = node.node_id.trim_start_matches('N').parse().unwrap_or(0);
    let member = members
        .iter()
        .find(|m| m.node_id == node_number || m.name == node.name)
        .ok_or_else(|| CtlError(format!("{} ({}) is not a member of the metadata store", node.node_id, node.name)))?
        .clone();
    if !confirm(&format!("Remove {} ({}) from the metadata store?", node.node_id, node.name), globals.yes) {
        return Err(CtlError("aborted; nothing was changed".into()));
    }
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    on_leader(addresses, |mut c| async move { c.remove(mpb::RemoveRequest { raft_id: member.raft_id }).await }).await?;
    println!("{} ({}) was removed from the metadata store.", node.node_id, node.name);
    Ok(())
}
