//! Typed cluster metadata. Each object lives under one well-known key, encoded as JSON
//! (readable with `restatectl metadata get --key <key>`).

mod cluster_config;
mod logs;
mod nodes_config;
mod partition_skips;
mod partition_table;
mod scheduling_plan;
mod schema;

pub use cluster_config::ClusterConfiguration;
pub use logs::{Chain, Logs, Segment};
pub use nodes_config::{LogServerState, MetadataServerState, NodeConfig, NodeRegistration, NodesConfiguration};
pub use partition_skips::PartitionSkips;
pub use partition_table::{Partition, PartitionTable};
pub use scheduling_plan::{PartitionPlacement, SchedulingPlan};
pub use schema::{
    format_rfc3339_millis, new_deployment_id, normalize_uri, now_rfc3339, DeployedService, Deployment,
    HandlerDefinition, HandlerType, NewDeployment, Registration, RegistrationOutcome, Removal, Schema, SchemaError,
    SchemaErrorKind, ServiceDefinition, ServiceSchema, ServiceType,
};

/// A value kept under a fixed metadata key.
pub trait MetadataObject: serde::Serialize + serde::de::DeserializeOwned + Send + Sync {
    const KEY: &'static str;
    /// What users call it in messages.
    const NAME: &'static str;
}

impl MetadataObject for ClusterConfiguration {
    const KEY: &'static str = "cluster_config";
    const NAME: &'static str = "ClusterConfiguration";
}

impl MetadataObject for NodesConfiguration {
    const KEY: &'static str = "nodes_config";
    const NAME: &'static str = "NodesConfiguration";
}

impl MetadataObject for Logs {
    const KEY: &'static str = "bifrost_config";
    const NAME: &'static str = "Logs";
}

impl MetadataObject for PartitionTable {
    const KEY: &'static str = "partition_table";
    const NAME: &'static str = "PartitionTable";
}

impl MetadataObject for PartitionSkips {
    const KEY: &'static str = "partition_skips";
    const NAME: &'static str = "PartitionSkips";
}

impl MetadataObject for SchedulingPlan {
    const KEY: &'static str = "scheduling_plan";
    const NAME: &'static str = "SchedulingPlan";
}

impl MetadataObject for Schema {
    const KEY: &'static str = "schema";
    const NAME: &'static str = "Schema";
}

/// Checks that `bytes` decode as the typed object stored under `key`, if `key` is one of
/// the well-known keys, and that the object makes sense (a partition table covering the
/// key space, well-formed log chains). Every write path of the store calls this (node
/// control, `restatectl metadata put`, the raw `MetadataServer.Write`) so that a typo
/// cannot corrupt the cluster's own metadata; the error names the rule that failed.
pub fn check_well_known(key: &str, bytes: &[u8]) -> Result<(), String> {
    fn decode<T: MetadataObject>(bytes: &[u8]) -> Result<T, String> {
        serde_json::from_slice::<T>(bytes)
            .map_err(|e| format!("the value is not a valid {} (key '{}'): {e}", T::NAME, T::KEY))
    }
    fn meaning<T: MetadataObject>(check: Result<(), String>) -> Result<(), String> {
        check.map_err(|rule| format!("refusing this {} (key '{}'): {rule}", T::NAME, T::KEY))
    }
    match key {
        ClusterConfiguration::KEY => decode::<ClusterConfiguration>(bytes).map(|_| ()),
        NodesConfiguration::KEY => decode::<NodesConfiguration>(bytes).map(|_| ()),
        Logs::KEY => meaning::<Logs>(decode::<Logs>(bytes)?.check()),
        PartitionTable::KEY => meaning::<PartitionTable>(decode::<PartitionTable>(bytes)?.check()),
        SchedulingPlan::KEY => decode::<SchedulingPlan>(bytes).map(|_| ()),
        Schema::KEY => decode::<Schema>(bytes).map(|_| ()),
        PartitionSkips::KEY => decode::<PartitionSkips>(bytes).map(|_| ()),
        _ => Ok(()),
    }
}
