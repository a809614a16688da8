use std::time::{Duration, Instant};

use restate_proto::node_ctl::{DrainNodeRequest, PrepareRestartRequest, RemoveNodeRequest};
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
                if n.location.is_empty() { "-".to_owned() } else { n.location.clone() },
                n.metadata_server_state.clone(),
                n.log_server_state.clone(),
                if n.alive { "yes".into() } else { format!("no ({})", n.detail) },
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["NODE", "GEN", "NAME", "ADDRESS", "ROLES", "LOCATION", "METADATA", "LOG-SERVER", "ALIVE"], &rows)
    );
    Ok(())
}

/// `restatectl nodes drain NODE [--wait]`: starts draining (idempotent) and prints what is
/// left; with `wait`, polls until the node holds nothing or `timeout` passes.
pub async fn nodes_drain(globals: &Globals, node: &str, wait: bool, timeout: Duration) -> Result<(), CtlError> {
    let mut client = super::connect(&globals.address).await?;
    let deadline = Instant::now() + timeout;
    let mut last_summary = String::new();
    loop {
        let answer = client
            .drain_node(DrainNodeRequest { node: node.to_owned() })
            .await
            .map_err(|s| CtlError::from_status(&globals.address, s))?
            .into_inner();
        let done = answer.drained || !wait;
        if done || Instant::now() >= deadline {
            if globals.json {
                print_json(&json!({
                    "node_id": answer.node_id,
                    "name": answer.name,
                    "drained": answer.drained,
                    "log_segments_left": answer.log_segments_left,
                    "partitions_led": answer.partitions_led,
                    "metadata_member": answer.metadata_member,
                    "summary": answer.summary,
                }));
            } else if answer.drained {
                println!(
                    "{} ({}) is drained: stop it, then `restatectl nodes remove {}`.",
                    answer.node_id, answer.name, answer.name
                );
            } else {
                println!("{} ({}) is draining: {}.", answer.node_id, answer.name, answer.summary);
            }
            if wait && !answer.drained {
                return Err(CtlError(format!(
                    "{} ({}) was not drained within {}s: {}",
                    answer.node_id,
                    answer.name,
                    timeout.as_secs(),
                    answer.summary
                )));
            }
            return Ok(());
        }
        if !globals.json && answer.summary != last_summary {
            eprintln!("{} ({}): {}", answer.node_id, answer.name, answer.summary);
            last_summary = answer.summary;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `restatectl nodes prepare-restart NODE [--wait]`: moves the node's partition leaderships
/// away before it is restarted (an upgrade); with `wait`, polls until it leads none.
pub async fn nodes_prepare_restart(
    globals: &Globals,
    node: &str,
    wait: bool,
    timeout: Duration,
) -> Result<(), CtlError> {
    let mut client = super::connect(&globals.address).await?;
    let deadline = Instant::now() + timeout;
    let mut last_led = u32::MAX;
    loop {
        let answer = client
            .prepare_restart(PrepareRestartRequest { node: node.to_owned() })
            .await
            .map_err(|s| CtlError::from_status(&globals.address, s))?
            .into_inner();
        if answer.ready || !wait || Instant::now() >= deadline {
            if globals.json {
                print_json(&json!({
                    "node_id": answer.node_id,
                    "name": answer.name,
                    "ready": answer.ready,
                    "partitions_led": answer.partitions_led,
                    "metadata_leader": answer.metadata_leader,
                }));
            } else if answer.ready {
                println!(
                    "{} ({}) leads no partition and not the metadata store: restart it now.",
                    answer.node_id, answer.name
                );
            } else {
                println!(
                    "{} ({}) still leads {} partition(s){}; they are moving.",
                    answer.node_id,
                    answer.name,
                    answer.partitions_led,
                    if answer.metadata_leader { " and the metadata store" } else { "" }
                );
            }
            if wait && !answer.ready {
                return Err(CtlError(format!(
                    "{} ({}) still leads {} partition(s) after {}s",
                    answer.node_id,
                    answer.name,
                    answer.partitions_led,
                    timeout.as_secs()
                )));
            }
            return Ok(());
        }
        if !globals.json && answer.partitions_led != last_led {
            eprintln!("{} ({}): leads {} partition(s)", answer.node_id, answer.name, answer.partitions_led);
            last_led = answer.partitions_led;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `restatectl nodes remove NODE [--force]`: forgets a drained node.
pub async fn nodes_remove(globals: &Globals, node: &str, force: bool) -> Result<(), CtlError> {
    if force && !crate::output::confirm(&format!("Remove {node} without checking it is drained?"), globals.yes) {
        return Err(CtlError("aborted; nothing was changed".into()));
    }
    let mut client = super::connect(&globals.address).await?;
    let answer = client
        .remove_node(RemoveNodeRequest { node: node.to_owned(), force })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    if globals.json {
        print_json(&json!({ "node_id": answer.node_id, "name": answer.name, "removed": answer.removed }));
    } else if answer.removed {
        println!("{} ({}) was removed from the cluster.", answer.node_id, answer.name);
    } else {
        println!("{node} is not registered (already removed); nothing changed.");
    }
    Ok(())
}
