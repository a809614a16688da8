use serde_json::json;

use super::status::node_status_json;
use super::{CtlError, Globals};
use crate::output::{print_json, table};

pub async fn nodes_list(globals: &Globals) -> Result<(), CtlError> {
    let status = super::status::fetch_provisioned_status(globals, "the cluster has no nodes yet").await?;
    if globals.json {
        print_json(&json!({ "nodes": status.nodes.iter().map(node_status_json).collect::<Vec<_>>() }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = status
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.node_id.clone(),
                n.generation.to_string(),
                n.name.clone(),
                n.address.clone(),
                n.roles.join(","),
                n.metadata_server_state.clone(),
                n.log_server_state.clone(),
                if n.alive { "yes".into() } else { format!("no ({})", n.detail) },
            ]
        })
        .collect();
    print!("{}", table(&["NODE", "GEN", "NAME", "ADDRESS", "ROLES", "METADATA", "LOG-SERVER", "ALIVE"], &rows));
    Ok(())
}
