use restate_proto::node_ctl::ProvisionRequest;
use serde_json::json;

use restate_types::ReplicationProperty;

use super::status::{configuration_json, replication_text};
use super::{connect, CtlError, Globals};
use crate::output::{confirm, key_values, print_json};

#[derive(Debug, Clone, Default)]
pub struct ProvisionArgs {
    pub num_partitions: Option<u32>,
    pub replication: Option<ReplicationProperty>,
    pub log_provider: Option<String>,
}

pub async fn provision(globals: &Globals, args: &ProvisionArgs) -> Result<(), CtlError> {
    if let Some(0) = args.num_partitions {
        return Err(CtlError("--num-partitions 0 is invalid: use 1 or more".into()));
    }
    if !confirm(&format!("Provision the cluster through the node at {}?", globals.address), globals.yes) {
        return Err(CtlError("aborted; nothing was changed".into()));
    }
    let mut client = connect(&globals.address).await?;
    let response = client
        .provision(ProvisionRequest {
            num_partitions: args.num_partitions,
            replication: args.replication.map(|r| r.node),
            replication_property: args.replication.map(|r| r.to_string()),
            log_provider: args.log_provider.clone(),
        })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    if globals.json {
        print_json(&json!({
            "newly_provisioned": response.newly_provisioned,
            "already_provisioned": !response.newly_provisioned,
            "cluster_name": response.cluster_name,
            "cluster_fingerprint": response.cluster_fingerprint,
            "configuration": response.configuration.as_ref().map(configuration_json),
        }));
        return Ok(());
    }
    let headline = if response.newly_provisioned {
        format!("Cluster '{}' provisioned.", response.cluster_name)
    } else {
        format!("Cluster '{}' is already provisioned; nothing was changed.", response.cluster_name)
    };
    println!("{headline}");
    let c = response.configuration.unwrap_or_default();
    print!(
        "{}",
        key_values(&[
            ("Fingerprint", response.cluster_fingerprint),
            ("Partitions", c.num_partitions.to_string()),
            ("Log provider", c.log_provider.clone()),
            ("Log replication", replication_text(&c)),
        ])
    );
    Ok(())
}
