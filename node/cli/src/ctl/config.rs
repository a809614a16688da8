use restate_proto::node_ctl::{GetClusterConfigurationRequest, SetClusterConfigurationRequest};

use restate_types::ReplicationProperty;

use super::status::{configuration_json, replication_text};
use super::{connect, CtlError, Globals};
use crate::output::{confirm, key_values, print_json};

fn show(globals: &Globals, c: &restate_proto::node_ctl::ClusterConfiguration) {
    if globals.json {
        print_json(&configuration_json(c));
        return;
    }
    print!(
        "{}",
        key_values(&[
            ("Cluster", c.cluster_name.clone()),
            ("Fingerprint", c.cluster_fingerprint.clone()),
            ("Partitions", c.num_partitions.to_string()),
            ("Log provider", c.log_provider.clone()),
            ("Log replication", replication_text(c)),
            ("Version", c.version.to_string()),
        ])
    );
}

pub async fn config_get(globals: &Globals) -> Result<(), CtlError> {
    let mut client = connect(&globals.address).await?;
    let c = client
        .get_cluster_configuration(GetClusterConfigurationRequest {})
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    show(globals, &c);
    Ok(())
}

pub async fn config_set(
    globals: &Globals,
    log_provider: Option<String>,
    log_replication: Option<ReplicationProperty>,
) -> Result<(), CtlError> {
    if log_provider.is_none() && log_replication.is_none() {
        return Err(CtlError("nothing to change: pass --log-provider and/or --log-replication".into()));
    }
    if let Some(p) = &log_provider {
        if p != "local" && p != "replicated" {
            return Err(CtlError(format!("--log-provider '{p}' is not known: use local or replicated")));
        }
    }
    let mut change = Vec::new();
    if let Some(p) = &log_provider {
        change.push(format!("log provider -> {p}"));
    }
    if let Some(r) = log_replication {
        change.push(format!("log replication -> {r}"));
    }
    if !confirm(&format!("Change the cluster configuration ({})?", change.join(", ")), globals.yes) {
        return Err(CtlError("aborted; nothing was changed".into()));
    }
    let mut client = connect(&globals.address).await?;
    let c = client
        .set_cluster_configuration(SetClusterConfigurationRequest {
            log_provider,
            replication: log_replication.map(|r| r.node),
            replication_property: log_replication.map(|r| r.to_string()),
        })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    show(globals, &c);
    Ok(())
}
