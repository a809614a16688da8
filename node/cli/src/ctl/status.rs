use restate_proto::node_ctl::{self as pb, GetClusterStatusRequest};
use serde_json::{json, Value};

use super::{connect, CtlError, Globals};
use crate::output::{key_values, print_json, table};

/// The cluster as the node at `--address` sees it.
pub(crate) async fn fetch_cluster_status(globals: &Globals) -> Result<pb::ClusterStatus, CtlError> {
    let mut client = connect(&globals.address).await?;
    Ok(client
        .get_cluster_status(GetClusterStatusRequest {})
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner())
}

/// Like [`fetch_cluster_status`], but an unprovisioned cluster is an error that says why.
pub(crate) async fn fetch_provisioned_status(globals: &Globals, what: &str) -> Result<pb::ClusterStatus, CtlError> {
    let status = fetch_cluster_status(globals).await?;
    if !status.provisioned {
        let reason = status.answered_by.map(|i| i.state_reason).unwrap_or_default();
        return Err(CtlError(format!("{what}: {reason}")));
    }
    Ok(status)
}

pub async fn status(globals: &Globals) -> Result<(), CtlError> {
    let status = fetch_cluster_status(globals).await?;
    if globals.json {
        print_json(&status_json(&status));
    } else {
        print!("{}", status_text(&status));
    }
    Ok(())
}

pub(crate) fn node_info_json(info: &pb::NodeInfo) -> Value {
    json!({
        "node_id": info.node_id,
        "name": info.name,
        "address": info.advertised_address,
        "cluster_name": info.cluster_name,
        "roles": info.roles,
        "generation": info.generation,
        "state": info.state,
        "state_reason": info.state_reason,
        "metadata_server_type": info.metadata_server_type,
        "metadata_client_addresses": info.metadata_client_addresses,
        "storage_id": info.storage_id,
        "version": info.version,
        "storage_format_version": info.storage_format_version,
        "uptime_ms": info.uptime_ms,
    })
}

pub(crate) fn configuration_json(c: &pb::ClusterConfiguration) -> Value {
    json!({
        "cluster_name": c.cluster_name,
        "cluster_fingerprint": c.cluster_fingerprint,
        "num_partitions": c.num_partitions,
        "log_provider": c.log_provider,
        "log_replication": c.replication,
        "log_replication_property": replication_text(c),
        "version": c.version,
        "provisioned_at_unix_ms": c.provisioned_at_unix_ms,
    })
}

/// The whole replication property ("2", "{zone: 2, node: 3}"); the count from a node too
/// old to send the property.
pub(crate) fn replication_text(c: &pb::ClusterConfiguration) -> String {
    if c.replication_property.is_empty() {
        c.replication.to_string()
    } else {
        c.replication_property.clone()
    }
}

pub(crate) fn node_status_json(n: &pb::NodeStatus) -> Value {
    json!({
        "node_id": n.node_id,
        "name": n.name,
        "generation": n.generation,
        "address": n.address,
        "roles": n.roles,
        "alive": n.alive,
        "detail": n.detail,
        "metadata_server_state": n.metadata_server_state,
        "log_server_state": n.log_server_state,
        "version": n.version,
        "storage_format_version": n.storage_format_version,
        "restarting": n.restarting,
        "location": n.location,
    })
}

fn status_json(s: &pb::ClusterStatus) -> Value {
    json!({
        "cluster_name": s.cluster_name,
        "cluster_fingerprint": s.cluster_fingerprint,
        "provisioned": s.provisioned,
        "configuration": s.configuration.as_ref().map(configuration_json),
        "nodes": s.nodes.iter().map(node_status_json).collect::<Vec<_>>(),
        "nodes_config_version": s.nodes_config_version,
        "cluster_controller": if s.cluster_controller.is_empty() { None } else { Some(s.cluster_controller.clone()) },
        "cluster_controller_term": s.cluster_controller_term,
        "answered_by": s.answered_by.as_ref().map(node_info_json),
    })
}

fn status_text(s: &pb::ClusterStatus) -> String {
    let me = s.answered_by.clone().unwrap_or_default();
    let mut pairs = vec![("Cluster", s.cluster_name.clone())];
    if s.provisioned {
        pairs.push(("Fingerprint", s.cluster_fingerprint.clone()));
        pairs.push(("Provisioned", "yes".into()));
    } else {
        pairs.push(("Provisioned", format!("no ({})", me.state_reason)));
    }
    if let Some(c) = &s.configuration {
        pairs.push(("Partitions", c.num_partitions.to_string()));
        pairs.push(("Log provider", format!("{} (replication {})", c.log_provider, replication_text(c))));
    }
    if s.provisioned {
        let controller = if s.cluster_controller.is_empty() {
            "none yet (an admin node takes the lease within seconds)".to_owned()
        } else {
            format!("{} (term {})", s.cluster_controller, s.cluster_controller_term)
        };
        pairs.push(("Controller", controller));
    }
    pairs.push(("Metadata", format!("{} via {}", me.metadata_server_type, me.metadata_client_addresses.join(", "))));
    let answered = if me.node_id.is_empty() { me.name.clone() } else { format!("{} ({})", me.node_id, me.name) };
    pairs.push(("Answered by", format!("{answered} at {}", me.advertised_address)));
    let mut out = key_values(&pairs);
    if !s.nodes.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = s
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.node_id.clone(),
                    n.generation.to_string(),
                    n.name.clone(),
                    n.address.clone(),
                    n.roles.join(","),
                    if n.location.is_empty() { "-".to_owned() } else { n.location.clone() },
                    if n.alive { "yes".into() } else { "no".into() },
                    if n.version.is_empty() {
                        "-".to_owned()
                    } else {
                        format!("{} (storage {})", n.version, n.storage_format_version)
                    },
                    if n.restarting { format!("{} (restarting)", n.detail) } else { n.detail.clone() },
                ]
            })
            .collect();
        out.push_str(&table(
            &["NODE", "GEN", "NAME", "ADDRESS", "ROLES", "LOCATION", "ALIVE", "VERSION", "STATE"],
            &rows,
        ));
    }
    out
}
