//! This node's part in serving cluster metadata (nodes with the metadata-server role):
//! a local RocksDB store, or a member of the replicated store.

use std::sync::Arc;
use std::time::Duration;

use restate_config::Config;
use restate_metadata::objects::{MetadataObject, NodesConfiguration};
use restate_metadata::replicated::{MetadataAdminService, MetadataState, ReplicatedMetadataServer, METADATA_GROUP};
use restate_metadata::{LocalMetadataStore, MetadataServerService};
use restate_raft::grpc::{GrpcTransport, PeerAddresses, RaftTransportService};
use restate_raft::{GroupStorage, RaftEngine, RaftOptions, RaftTransport};
use restate_storage::rocksdb::WriteBatch;
use restate_storage::{NodeStorage, CF_METADATA};
use restate_types::{MetadataServerKind, Role};

use crate::startup_error::StartupError;

pub(crate) enum MetadataRole {
    /// No metadata-server role: metadata is only reached through the client.
    None,
    Local(Arc<LocalMetadataStore>),
    Replicated(ReplicatedRole),
}

#[derive(Clone)]
pub(crate) struct ReplicatedRole {
    pub server: Arc<ReplicatedMetadataServer>,
}

pub(crate) fn raft_id_for(storage_id: &str) -> u64 {
    restate_raft::raft_id_for_storage(storage_id)
}

/// The node's raft engine: on nodes with a replicated metadata server or the log-server
/// role; one engine hosts every raft group of the node.
#[derive(Clone)]
pub(crate) struct RaftHost {
    pub raft_id: u64,
    pub engine: RaftEngine,
    pub peers: PeerAddresses,
}

impl RaftHost {
    pub fn needed(config: &Config) -> bool {
        config.roles.contains(Role::LogServer)
            || (config.roles.contains(Role::MetadataServer)
                && config.metadata_server.kind == MetadataServerKind::Replicated)
    }

    pub fn start(config: &Config, storage: &NodeStorage, storage_id: &str, advertised: &str) -> RaftHost {
        let raft_id = raft_id_for(storage_id);
        let peers = PeerAddresses::default();
        peers.set(raft_id, advertised.to_owned());
        let transport = GrpcTransport::new(raft_id, peers.clone());
        let engine = RaftEngine::start(
            storage.clone(),
            raft_id,
            Arc::new(transport.clone()) as Arc<dyn RaftTransport>,
            raft_options(config),
        );
        transport.attach(engine.clone());
        RaftHost { raft_id, engine, peers }
    }

    /// The raft transport's server; its streams end at `shutdown`.
    pub fn transport_service(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> restate_raft::grpc::RaftTransportServer {
        RaftTransportService::new(self.engine.clone(), shutdown.clone())
    }

    /// Stops the engine thread (after the servers stopped).
    pub async fn shutdown(&self) {
        let engine = self.engine.clone();
        let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
    }
}

fn raft_options(config: &Config) -> RaftOptions {
    let ms = &config.metadata_server;
    RaftOptions {
        tick_interval: Duration::from_millis(ms.raft_tick_interval_ms),
        election_tick: ms.raft_election_tick as usize,
        heartbeat_tick: ms.raft_heartbeat_tick as usize,
        ..RaftOptions::default()
    }
}

impl MetadataRole {
    /// Starts the role. A replicated member resumes from its raft state; a node whose
    /// local store holds metadata (it ran with `type = "local"` before) migrates every
    /// key and version into a new replicated store before it serves.
    pub async fn start(
        config: &Config,
        storage: &NodeStorage,
        advertised: &str,
        raft: Option<&RaftHost>,
    ) -> Result<MetadataRole, StartupError> {
        if !config.roles.contains(Role::MetadataServer) {
            return Ok(MetadataRole::None);
        }
        if config.metadata_server.kind == MetadataServerKind::Local {
            return Ok(MetadataRole::Local(Arc::new(LocalMetadataStore::new(storage.clone()))));
        }
        let raft = raft.expect("a replicated metadata server runs on the node's raft engine");
        let (raft_id, engine, peers) = (raft.raft_id, raft.engine.clone(), raft.peers.clone());
        let server = Arc::new(ReplicatedMetadataServer::new(engine.clone(), raft_id, peers.clone()));
        let initialized = GroupStorage::load(storage, METADATA_GROUP)
            .map_err(|e| StartupError::MetadataClient(format!("reading the metadata raft state: {e}")))?
            .is_initialized();
        if initialized {
            server.recover().await.map_err(|e| StartupError::MetadataClient(e.to_string()))?;
        } else {
            migrate_local_store(config, storage, &server, advertised).await?;
        }
        Ok(MetadataRole::Replicated(ReplicatedRole { server }))
    }

    /// The gRPC services this role serves on the node port; their change feeds end on
    /// `shutdown`.
    pub fn add_services(
        &self,
        mut routes: tonic::service::Routes,
        node_name: &str,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> tonic::service::Routes {
        match self {
            MetadataRole::None => {}
            MetadataRole::Local(store) => {
                routes = routes.add_service(MetadataServerService::new(store.clone(), shutdown.clone()).into_server());
            }
            MetadataRole::Replicated(role) => {
                routes = routes
                    .add_service(MetadataServerService::new(role.server.clone(), shutdown.clone()).into_server())
                    .add_service(MetadataAdminService::new(role.server.clone(), node_name.to_owned()));
            }
        }
        routes
    }

    pub fn replicated(&self) -> Option<&ReplicatedRole> {
        match self {
            MetadataRole::Replicated(role) => Some(role),
            _ => None,
        }
    }
}

async fn migrate_local_store(
    config: &Config,
    storage: &NodeStorage,
    server: &ReplicatedMetadataServer,
    advertised: &str,
) -> Result<(), StartupError> {
    let local = LocalMetadataStore::new(storage.clone());
    let entries =
        local.scan().map_err(|e| StartupError::MetadataClient(format!("reading the local metadata store: {e}")))?;
    if entries.is_empty() {
        return Ok(());
    }
    let node_id = entries
        .iter()
        .find(|(key, _)| key == NodesConfiguration::KEY)
        .and_then(|(_, v)| serde_json::from_slice::<NodesConfiguration>(&v.value).ok())
        .and_then(|nodes| nodes.find_by_name(&config.node_name).map(|n| n.id.0))
        .unwrap_or(0);
    let count = entries.len();
    let state = MetadataState::with_values(entries, Vec::new());
    let me = server.member_info(node_id, &config.node_name, advertised);
    server
        .bootstrap(state, me)
        .await
        .map_err(|e| StartupError::MetadataClient(format!("migrating to the replicated metadata store: {e}")))?;
    // The replicated store is durable now; the local copy must not be served again.
    let mut batch = WriteBatch::default();
    batch.delete_range_cf(storage.cf(CF_METADATA), [0u8].as_slice(), [0xffu8; 257].as_slice());
    storage.write_durable(batch)?;
    tracing::info!(
        keys = count,
        "migrated the local metadata store into the replicated metadata store (same keys and versions)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn raft_ids_are_positive_and_follow_the_storage_id() {
        assert_eq!(super::raft_id_for("0000000000000000"), 1);
        assert_eq!(super::raft_id_for("00000000000000ff"), 255);
        assert_eq!(super::raft_id_for("ffffffffffffffff"), u64::MAX >> 1);
        assert_eq!(super::raft_id_for("garbage"), 1);
    }
}
