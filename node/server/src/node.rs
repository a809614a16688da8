//! A running node: what `restate-server` starts and stops.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restate_config::Config;
use restate_metadata::{MetadataClient, MetadataClientOptions, MetadataStore, MetadataView};
use restate_service_protocol::RequestSigner;
use restate_storage::{NodeStorage, StorageOptions};
use restate_types::{LogProviderKind, Role};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::NodeState;
use crate::listeners::bind;
use crate::membership::{self, MembershipContext};
use crate::metadata_role::{MetadataRole, RaftHost};
use crate::metrics::NodeMetrics;
use crate::node_ctl_context::NodeCtlContext;
use crate::provisioning::{ProvisionParams, Provisioner};
use crate::startup_error::StartupError;
use crate::{admin, fabric, ingress_http, pgsql};
use restate_bifrost::replicated::ReplicatedLogletHost;

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeExit {
    /// Shut down on request after finishing in-flight work and flushing storage.
    Clean,
    /// A part of the node failed; the node stopped. The reason says what to do.
    Failed(String),
}

pub struct Node {
    pub fabric_address: SocketAddr,
    pub admin_address: Option<SocketAddr>,
    pub ingress_address: Option<SocketAddr>,
    pub pgsql_address: Option<SocketAddr>,
    pub advertised_address: String,
    state: NodeState,
    storage: NodeStorage,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    failures: mpsc::UnboundedReceiver<String>,
    metadata_role: Arc<MetadataRole>,
    raft_host: Option<RaftHost>,
}

fn url_text(url: &url::Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// The request identity key of `request-identity-private-key-pem-file`, if set; its public
/// key is logged for the deployments' `identity_keys`.
fn request_signer(config: &Config) -> Result<Option<Arc<RequestSigner>>, StartupError> {
    let Some(path) = &config.request_identity_private_key_pem_file else {
        return Ok(None);
    };
    let signer = RequestSigner::from_pem_file(path)?;
    tracing::info!(
        kid = signer.key_id(),
        path = %path.display(),
        "Loaded request identity key: requests to deployments are signed; configure the SDKs with identity key {}",
        signer.key_id()
    );
    Ok(Some(Arc::new(signer)))
}

impl Node {
    /// Opens storage, binds every listener and starts serving. Returns once the node
    /// listens; joining the cluster goes on in the background (see [`NodeState`]).
    pub async fn start(config: Config) -> Result<Node, StartupError> {
        let location = crate::location_file::resolve(&config).await?;
        let credentials = crate::fabric_auth::configure(&config)?;
        let request_signer = request_signer(&config)?;
        if config.bifrost.default_provider == LogProviderKind::Replicated && config.auto_provision {
            tracing::warn!("bifrost.default-provider = \"replicated\": log segments wait for enough log-servers before they accept records");
        }

        let storage = NodeStorage::open(
            &config.node_dir().join("db"),
            &StorageOptions { total_memory_bytes: config.rocksdb_total_memory_size },
        )?;
        let identity = storage.claim_identity(&config.node_name, &config.cluster_name)?;
        if let Some(older) = storage
            .claim_storage_format(restate_storage::STORAGE_FORMAT_VERSION)?
            .filter(|found| *found < restate_storage::STORAGE_FORMAT_VERSION)
        {
            tracing::info!(from = older, to = restate_storage::STORAGE_FORMAT_VERSION, "storage format upgraded");
        }

        let fabric_listener = bind("bind-address", "node port (fabric)", config.bind_address).await?;
        let admin_listener = if config.roles.contains(Role::Admin) {
            Some(bind("admin.bind-address", "admin API", config.admin.bind_address).await?)
        } else {
            None
        };
        let ingress_listener = if config.roles.serves_ingress() {
            Some(bind("ingress.bind-address", "ingress", config.ingress.bind_address).await?)
        } else {
            None
        };
        let pgsql_listener = match config.admin.query_engine.pgsql_bind_address {
            Some(addr) => Some(bind("admin.query-engine.pgsql-bind-address", "PostgreSQL query endpoint", addr).await?),
            None => None,
        };

        let advertised = config.advertised_address_for(fabric_listener.local_addr);
        let advertised_address = url_text(&advertised);
        let client_addresses: Vec<String> =
            config.metadata_client_addresses_for(&advertised).iter().map(url_text).collect();
        let client = Arc::new(
            MetadataClient::new(&client_addresses, MetadataClientOptions::default())
                .map_err(|e| StartupError::MetadataClient(e.to_string()))?,
        );
        // The node's one view of the metadata; writes go through it so it sees them at once.
        let view = MetadataView::new(client.clone());
        let metadata: Arc<dyn MetadataStore> = view.store();
        let routing = crate::routing_metadata::RoutingMetadata::new(view.clone());
        // Status views must answer quickly even when no metadata server does.
        let status_metadata: Arc<dyn MetadataStore> = Arc::new(
            MetadataClient::new(
                &client_addresses,
                MetadataClientOptions {
                    retry_budget: std::time::Duration::from_secs(2),
                    ..MetadataClientOptions::default()
                },
            )
            .map_err(|e| StartupError::MetadataClient(e.to_string()))?,
        );
        let raft_host = RaftHost::needed(&config)
            .then(|| RaftHost::start(&config, &storage, &identity.storage_id, &advertised_address));
        let metadata_role =
            Arc::new(MetadataRole::start(&config, &storage, &advertised_address, raft_host.as_ref()).await?);
        let loglet_host = match (&raft_host, config.roles.contains(Role::LogServer)) {
            (Some(raft), true) => {
                Some(Arc::new(ReplicatedLogletHost::new(raft.engine.clone(), storage.clone(), raft.peers.clone())))
            }
            _ => None,
        };
        let metadata_member = match metadata_role.as_ref() {
            MetadataRole::None => false,
            MetadataRole::Local(_) => client_addresses.contains(&advertised_address),
            MetadataRole::Replicated(role) => role.server.is_member(),
        };

        // Built without contacting the repository: an unreachable S3 must not stop the
        // node; snapshot operations report it when they run.
        let snapshots = restate_snapshots::SnapshotRepository::from_options(&config.worker.snapshots)
            .await
            .map_err(|e| StartupError::Snapshots(e.to_string()))?;
        if let Some(repository) = &snapshots {
            tracing::info!(repository = %repository.describe(), "partition snapshots go to the configured repository");
        }

        let config = Arc::new(config);
        let state = NodeState::new();
        let metrics = NodeMetrics::new(&config.node_name, &config.cluster_name);
        let default_log_provider = config.bifrost.default_provider;
        // One provider per node: it hands out the only handle of each local loglet.
        let local_loglets = Arc::new(restate_bifrost::LocalLogletProvider::new(storage.clone()));
        let running_roles = crate::running_roles::RunningRoles::default();
        let membership = Arc::new(MembershipContext {
            cluster_name: config.cluster_name.clone(),
            auto_provision: config.auto_provision,
            default_params: ProvisionParams {
                num_partitions: config.default_num_partitions,
                replication: match default_log_provider {
                    LogProviderKind::Local => restate_types::ReplicationProperty::nodes(1),
                    LogProviderKind::Replicated => config.default_replication,
                },
                log_provider: default_log_provider,
            },
            me: Provisioner {
                name: config.node_name.clone(),
                address: advertised_address.clone(),
                roles: config.roles.clone(),
                storage_id: identity.storage_id.clone(),
                metadata_member,
                location,
            },
            metadata: metadata.clone(),
            quick_metadata: status_metadata.clone(),
            replicated: metadata_role.replicated().cloned(),
            client_addresses: client_addresses.clone(),
            state: state.clone(),
            registered_by_provisioning: Mutex::new(None),
            wake: Notify::new(),
            provision_lock: tokio::sync::Mutex::new(()),
        });
        let roles = crate::roles::RolesContext {
            me: membership.me.clone(),
            cluster_name: config.cluster_name.clone(),
            view: view.clone(),
            metadata: metadata.clone(),
            routing: routing.clone(),
            state: state.clone(),
            metrics: metrics.clone(),
            loglets: local_loglets.clone(),
            loglet_host: loglet_host.clone(),
            replicated: metadata_role.replicated().cloned(),
            client_addresses: client_addresses.clone(),
            auto_join: config.metadata_server.auto_join,
            repair_grace_period: Duration::from_millis(config.admin.log_server_repair_grace_period_ms),
            idempotency_retention: Duration::from_millis(config.worker.idempotency_retention_ms),
            request_signer: request_signer.clone(),
            invoker_inactivity_timeout: Duration::from_millis(config.worker.invoker.inactivity_timeout_ms),
            invoker_abort_timeout: Duration::from_millis(config.worker.invoker.abort_timeout_ms),
            retry_policy: retry_policy(&config.invocation.default_retry_policy),
            workflow_completion_retention: Duration::from_millis(config.worker.workflow_completion_retention_ms),
            snapshots,
            snapshot_interval_records: config.worker.snapshots.snapshot_interval_num_records,
            running: running_roles.clone(),
        };
        let admin_metadata = metadata.clone();
        // SQL over the cluster's tables, for the admin API, node control and the pgsql listener.
        let queries = restate_query::QueryEngine::new(
            Arc::new(crate::query_data::NodeQueryData { routing: routing.clone() }),
            restate_query::QueryLimits {
                max_rows: usize::try_from(config.admin.query_engine.max_rows).unwrap_or(usize::MAX),
                max_memory_bytes: usize::try_from(config.admin.query_engine.max_memory).unwrap_or(usize::MAX),
            },
        );
        let ctl = Arc::new(NodeCtlContext {
            config: config.clone(),
            advertised_address: advertised_address.clone(),
            metadata_client_addresses: client_addresses.clone(),
            storage_id: identity.storage_id.clone(),
            state: state.clone(),
            status_metadata,
            membership: membership.clone(),
            metrics: metrics.clone(),
            roles: running_roles.clone(),
            routing: routing.clone(),
            metadata,
            queries: queries.clone(),
        });

        let shutdown = CancellationToken::new();
        let (failure_tx, failures) = mpsc::unbounded_channel();
        let mut tasks = JoinSet::new();
        let fabric_address = fabric_listener.local_addr;
        let admin_address = admin_listener.as_ref().map(|l| l.local_addr);
        let ingress_address = ingress_listener.as_ref().map(|l| l.local_addr);
        let pgsql_address = pgsql_listener.as_ref().map(|l| l.local_addr);

        let admin_ctl = ctl.clone();
        let servers = [
            Some((
                fabric_listener,
                fabric::router(
                    ctl,
                    &metadata_role,
                    raft_host.as_ref(),
                    loglet_host.clone(),
                    local_loglets.clone(),
                    state.clone(),
                    metrics,
                    running_roles.clone(),
                    &credentials,
                    &shutdown,
                ),
                "node port (fabric)",
                credentials.tls.clone(),
            )),
            admin_listener.map(|l| {
                (
                    l,
                    admin::router(
                        state.clone(),
                        admin_metadata,
                        routing.clone(),
                        request_signer,
                        queries.clone(),
                        admin_ctl,
                    ),
                    "admin API",
                    None,
                )
            }),
            ingress_listener.map(|l| {
                let router = ingress_http::router(
                    routing.clone(),
                    running_roles.clone(),
                    config.ingress.request_body_size_limit,
                );
                (l, router, "ingress", None)
            }),
        ];
        let limits = crate::http_server::ListenerLimits {
            header_timeout: Duration::from_millis(config.networking.request_header_timeout_ms),
            max_connections: usize::try_from(config.networking.max_connections).unwrap_or(usize::MAX),
        };
        for (listener, router, what, tls) in servers.into_iter().flatten() {
            let shutdown = shutdown.clone();
            let failure_tx = failure_tx.clone();
            tasks.spawn(async move {
                if let Err(e) = crate::http_server::serve(listener, router, shutdown, what, limits, tls).await {
                    let _ = failure_tx.send(format!("{what} server failed: {e}"));
                }
            });
        }
        if let Some(raft) = &raft_host {
            // Without its raft engine the node's metadata and log replicas are gone: it
            // must not keep answering /health as if it were fine.
            let (engine, shutdown, failure_tx) = (raft.engine.clone(), shutdown.clone(), failure_tx.clone());
            tasks.spawn(async move {
                tokio::select! {
                    reason = engine.died() => {
                        let _ = failure_tx.send(format!("the raft engine died ({reason}): stopping the node so that it is restarted"));
                    }
                    _ = shutdown.cancelled() => {}
                }
            });
        }
        if let Some(tls) = &credentials.tls {
            tasks.spawn(crate::fabric_auth::reload_tls(tls.clone(), shutdown.clone()));
        }
        if let Some(raft) = &raft_host {
            tasks.spawn(crate::peer_addresses::follow(raft.peers.clone(), view.clone(), shutdown.clone()));
        }
        tasks.spawn(restate_metadata::view_follower::follow(view, client, shutdown.clone()));
        if let Some(listener) = pgsql_listener {
            tasks.spawn(pgsql::serve(listener, queries.clone(), shutdown.clone()));
        }
        {
            let shutdown = shutdown.clone();
            // Join the cluster, then start the roles (they run until shutdown).
            tasks.spawn(async move {
                match membership::join(&membership, &shutdown).await {
                    Ok(Some(node)) => crate::roles::run(&roles, node, &shutdown).await,
                    Ok(None) => {}
                    Err(failure) => {
                        let _ = failure_tx.send(failure.0);
                    }
                }
            });
        }
        tracing::info!(
            node = %config.node_name,
            cluster = %config.cluster_name,
            advertised = %advertised_address,
            roles = %config.roles,
            metadata_client = ?client_addresses,
            "node started"
        );
        Ok(Node {
            fabric_address,
            admin_address,
            ingress_address,
            pgsql_address,
            advertised_address,
            state,
            storage,
            shutdown,
            tasks,
            failures,
            metadata_role,
            raft_host,
        })
    }

    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Resolves when a part of the node fails by itself, with the reason.
    pub async fn failed(&mut self) -> String {
        self.failures.recv().await.unwrap_or_else(|| "all node tasks ended".into())
    }

    /// Stops accepting, lets in-flight requests finish (bounded), flushes storage.
    pub async fn shutdown(mut self, reason: Option<String>) -> NodeExit {
        tracing::info!("shutting down");
        self.shutdown.cancel();
        let drained =
            tokio::time::timeout(Duration::from_secs(20), async { while self.tasks.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            tracing::warn!("some tasks did not stop within 20s; aborting them");
            self.tasks.abort_all();
        }
        if let Some(raft) = &self.raft_host {
            raft.shutdown().await;
        }
        drop(self.metadata_role);
        if let Err(e) = self.storage.flush() {
            return NodeExit::Failed(format!("flushing storage on shutdown failed: {e}"));
        }
        tracing::info!("shut down cleanly");
        match reason {
            Some(reason) => NodeExit::Failed(reason),
            None => NodeExit::Clean,
        }
    }
}

/// The worker's retry policy from `[invocation.default-retry-policy]`.
fn retry_policy(options: &restate_config::RetryPolicyOptions) -> restate_worker::processor::RetryPolicy {
    use restate_worker::processor::{OnMaxAttempts, RetryPolicy};
    RetryPolicy {
        initial_interval: Duration::from_millis(options.initial_interval_ms),
        exponentiation_factor: options.exponentiation_factor,
        max_interval: Duration::from_millis(options.max_interval_ms.max(options.initial_interval_ms)),
        max_attempts: options.max_attempts.max(1),
        on_max_attempts: match options.on_max_attempts {
            restate_config::OnMaxAttempts::Pause => OnMaxAttempts::Pause,
            restate_config::OnMaxAttempts::Kill => OnMaxAttempts::Kill,
        },
    }
}
