//! Provisioning: the one-time write of the cluster's initial metadata.
//!
//! All objects are written in ONE atomic metadata write, each with a `DoesNotExist`
//! precondition, so of any number of concurrent attempts exactly one takes effect and
//! the others learn "already provisioned" without changing anything.

use rand::RngCore;
use restate_metadata::objects::{ClusterConfiguration, Logs, NodeConfig, NodesConfiguration, PartitionTable};
use restate_metadata::typed;
use restate_metadata::{MetadataStore, MetadataStoreError, Precondition, WriteOp};
use restate_types::{Location, LogProviderKind, ReplicationProperty, RoleSet};

/// What the cluster is provisioned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionParams {
    pub num_partitions: u32,
    pub replication: ReplicationProperty,
    pub log_provider: LogProviderKind,
}

pub const MAX_PARTITIONS: u32 = 4096;

impl ProvisionParams {
    /// Checks the parameters, naming the offending flag.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_PARTITIONS).contains(&self.num_partitions) {
            return Err(format!("--num-partitions {} is out of range: use 1 to {MAX_PARTITIONS}", self.num_partitions));
        }
        if self.replication.node == 0 {
            return Err("--replication 0 is invalid: every record needs at least one copy; use 1 or more".into());
        }
        if self.log_provider == LogProviderKind::Local && self.replication.node > 1 {
            return Err(format!(
                "--replication {} with --log-provider local: a local loglet keeps exactly one copy; use --replication 1, or --log-provider replicated",
                self.replication
            ));
        }
        Ok(())
    }
}

/// The node that provisions; it becomes N1 of the new cluster.
#[derive(Debug, Clone)]
pub struct Provisioner {
    pub name: String,
    pub address: String,
    pub roles: RoleSet,
    pub storage_id: String,
    pub metadata_member: bool,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProvisionOutcome {
    /// This call provisioned the cluster; the provisioner was registered as `node`.
    Provisioned { configuration: ClusterConfiguration, node: NodeConfig },
    /// Someone provisioned it before; nothing was changed.
    AlreadyProvisioned { configuration: ClusterConfiguration },
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("invalid provisioning request: {0}")]
    Invalid(String),
    #[error("the metadata store already holds cluster '{existing}', but this node is configured for cluster '{configured}'; refusing to touch it. Check `cluster-name` and `[metadata-client] addresses`")]
    OtherCluster { existing: String, configured: String },
    #[error(transparent)]
    Metadata(#[from] MetadataStoreError),
}

pub fn new_fingerprint() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The initial metadata of a cluster: pure, so it is tested without a store.
pub fn initial_metadata(
    cluster_name: &str,
    params: &ProvisionParams,
    fingerprint: String,
    now_unix_ms: u64,
    provisioner: &Provisioner,
) -> (ClusterConfiguration, NodeConfig, Vec<WriteOp>) {
    let configuration = ClusterConfiguration {
        cluster_name: cluster_name.to_owned(),
        cluster_fingerprint: fingerprint,
        num_partitions: params.num_partitions,
        replication: params.replication,
        log_provider: params.log_provider,
        provisioned_at_unix_ms: now_unix_ms,
    };
    let mut nodes = NodesConfiguration { cluster_name: cluster_name.to_owned(), ..Default::default() };
    let node = match nodes.register(
        &provisioner.name,
        &provisioner.address,
        &provisioner.roles,
        &provisioner.storage_id,
        provisioner.metadata_member,
        &provisioner.location,
    ) {
        restate_metadata::objects::NodeRegistration::New(node) => node,
        restate_metadata::objects::NodeRegistration::Restarted(_) => unreachable!("empty configuration"),
    };
    // Local loglets live on the provisioner; replicated segments get their nodeset when
    // enough log-servers have joined.
    let nodeset = match params.log_provider {
        LogProviderKind::Local => vec![node.id],
        LogProviderKind::Replicated => Vec::new(),
    };
    let logs = Logs::initial(params.num_partitions, params.log_provider, params.replication.node, nodeset);
    let partitions = PartitionTable::evenly_split(params.num_partitions);
    let ops = vec![
        typed::put_op(&configuration, Precondition::DoesNotExist),
        typed::put_op(&nodes, Precondition::DoesNotExist),
        typed::put_op(&logs, Precondition::DoesNotExist),
        typed::put_op(&partitions, Precondition::DoesNotExist),
    ];
    (configuration, node, ops)
}

/// Provisions the cluster through `store` unless it already is.
pub async fn provision(
    store: &dyn MetadataStore,
    cluster_name: &str,
    params: &ProvisionParams,
    provisioner: &Provisioner,
) -> Result<ProvisionOutcome, ProvisionError> {
    params.validate().map_err(ProvisionError::Invalid)?;
    if let Some(existing) = already_provisioned(store, cluster_name).await? {
        return Ok(existing);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let (configuration, node, ops) = initial_metadata(cluster_name, params, new_fingerprint(), now, provisioner);
    match store.write(ops).await {
        Ok(_) => {
            tracing::info!(cluster = cluster_name, fingerprint = %configuration.cluster_fingerprint, node = %node.current(), "cluster provisioned");
            Ok(ProvisionOutcome::Provisioned { configuration, node })
        }
        Err(MetadataStoreError::PreconditionFailed { .. }) => {
            already_provisioned(store, cluster_name).await?.ok_or_else(|| {
                ProvisionError::Metadata(MetadataStoreError::Storage(
                    "metadata is partially provisioned (some initial objects exist, the cluster configuration does not); inspect with `restatectl metadata get`".into(),
                ))
            })
        }
        Err(other) => Err(other.into()),
    }
}

async fn already_provisioned(
    store: &dyn MetadataStore,
    cluster_name: &str,
) -> Result<Option<ProvisionOutcome>, ProvisionError> {
    match typed::get::<ClusterConfiguration>(store).await? {
        Some((existing, _)) if existing.cluster_name != cluster_name => {
            Err(ProvisionError::OtherCluster { existing: existing.cluster_name, configured: cluster_name.to_owned() })
        }
        Some((configuration, _)) => Ok(Some(ProvisionOutcome::AlreadyProvisioned { configuration })),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use restate_metadata::LocalMetadataStore;
    use restate_storage::{NodeStorage, StorageOptions};

    fn params() -> ProvisionParams {
        ProvisionParams {
            num_partitions: 4,
            replication: ReplicationProperty::nodes(1),
            log_provider: LogProviderKind::Local,
        }
    }

    fn provisioner(name: &str) -> Provisioner {
        Provisioner {
            name: name.into(),
            address: format!("http://{name}:5122"),
            roles: RoleSet::all(),
            storage_id: "s".into(),
            metadata_member: true,
            location: Location::default(),
        }
    }

    #[test]
    fn initial_metadata_is_consistent() {
        let (config, node, ops) = initial_metadata("c", &params(), "fp".into(), 7, &provisioner("a"));
        assert_eq!(config.num_partitions, 4);
        assert_eq!(node.current().to_string(), "N1:1");
        assert_eq!(ops.len(), 4);
        assert!(ops.iter().all(|op| op.precondition() == Precondition::DoesNotExist));
    }

    #[test]
    fn bad_params_name_the_flag() {
        let mut p = params();
        p.num_partitions = 0;
        assert!(p.validate().unwrap_err().contains("--num-partitions"));
        let mut p = params();
        p.replication = ReplicationProperty::nodes(0);
        assert!(p.validate().unwrap_err().contains("--replication"));
        let mut p = params();
        p.replication = ReplicationProperty::nodes(2);
        assert!(p.validate().unwrap_err().contains("--log-provider replicated"));
    }

    #[tokio::test]
    async fn provisioning_twice_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalMetadataStore::new(NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap());
        let first = provision(&store, "c", &params(), &provisioner("a")).await.unwrap();
        let ProvisionOutcome::Provisioned { configuration, .. } = first else { panic!("{first:?}") };
        let before = store.scan().unwrap();

        let mut other = params();
        other.num_partitions = 9;
        let second = provision(&store, "c", &other, &provisioner("b")).await.unwrap();
        assert_eq!(second, ProvisionOutcome::AlreadyProvisioned { configuration: configuration.clone() });
        assert_eq!(store.scan().unwrap(), before, "a second provision must not write");

        let err = provision(&store, "other", &params(), &provisioner("b")).await.unwrap_err();
        assert!(matches!(err, ProvisionError::OtherCluster { .. }), "{err}");
        assert_eq!(store.scan().unwrap(), before);
    }

    #[tokio::test]
    async fn concurrent_provisioners_produce_one_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(LocalMetadataStore::new(
            NodeStorage::open(dir.path(), &StorageOptions::default()).unwrap(),
        ));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                provision(store.as_ref(), "c", &params(), &provisioner(&format!("n{i}"))).await.unwrap()
            }));
        }
        let mut fingerprints = std::collections::BTreeSet::new();
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                ProvisionOutcome::Provisioned { configuration, .. } => {
                    winners += 1;
                    fingerprints.insert(configuration.cluster_fingerprint);
                }
                ProvisionOutcome::AlreadyProvisioned { configuration } => {
                    fingerprints.insert(configuration.cluster_fingerprint);
                }
            }
        }
        assert_eq!(winners, 1);
        assert_eq!(fingerprints.len(), 1, "everyone sees the same cluster");
    }
}
