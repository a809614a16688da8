//! One shared handle per local loglet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use restate_metadata::objects::{NodesConfiguration, Segment};
use restate_storage::NodeStorage;
use restate_types::{LogProviderKind, LogletId, PlainNodeId, Version};

use crate::replicated::{ReplicatedLoglet, ReplicatedLogletHost};

use crate::bifrost::{describe_nodeset, BifrostError, LogletProvider};
use crate::local_loglet::LocalLoglet;
use crate::loglet::{Loglet, LogletError};

type LogletCache = Arc<Mutex<HashMap<LogletId, Arc<LocalLoglet>>>>;

/// Opens local loglets of one [`NodeStorage`] and caches them, so every caller asking for
/// the same [`LogletId`] gets the same handle and thus the same in-memory tail. Loglets
/// stay open (and keep the storage open) until the provider is dropped.
pub struct LocalLogletProvider {
    storage: NodeStorage,
    loglets: LogletCache,
}

impl LocalLogletProvider {
    pub fn new(storage: NodeStorage) -> LocalLogletProvider {
        LocalLogletProvider { storage, loglets: Arc::new(Mutex::new(HashMap::new())) }
    }

    pub fn storage(&self) -> &NodeStorage {
        &self.storage
    }

    /// The handle of loglet `id`, opened (and recovered from disk) on first use; an
    /// unknown id is created empty. The first call for an id does blocking I/O (see
    /// [`LocalLoglet::open`]); later calls only look up the cache.
    pub fn get_or_open(&self, id: LogletId) -> Result<Arc<LocalLoglet>, LogletError> {
        get_or_open_in(&self.storage, &self.loglets, id)
    }

    /// [`Self::get_or_open`] for async callers: the first open of an id runs on the
    /// blocking pool instead of stalling an async worker thread.
    pub async fn get_or_open_async(&self, id: LogletId) -> Result<Arc<LocalLoglet>, LogletError> {
        if let Some(loglet) = lock(&self.loglets).get(&id) {
            return Ok(Arc::clone(loglet));
        }
        let (storage, loglets) = (self.storage.clone(), Arc::clone(&self.loglets));
        match tokio::task::spawn_blocking(move || get_or_open_in(&storage, &loglets, id)).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(LogletError::Storage(format!(
                "opening loglet {id}: storage task did not run: {err} (is the runtime shutting down?)"
            ))),
        }
    }
}

fn lock(loglets: &LogletCache) -> std::sync::MutexGuard<'_, HashMap<LogletId, Arc<LocalLoglet>>> {
    loglets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Looks up or opens loglet `id`. The lock is held across the open, so two callers can
/// never open the same loglet twice (which would hand out the same LSNs twice).
fn get_or_open_in(storage: &NodeStorage, loglets: &LogletCache, id: LogletId) -> Result<Arc<LocalLoglet>, LogletError> {
    let mut loglets = lock(loglets);
    if let Some(loglet) = loglets.get(&id) {
        return Ok(Arc::clone(loglet));
    }
    let loglet = Arc::new(LocalLoglet::open(storage.clone(), id)?);
    loglets.insert(id, Arc::clone(&loglet));
    Ok(loglet)
}

/// Serves segments of kind [`LogProviderKind::Local`] from this node's storage. Whether
/// the segment belongs to this node at all is [`crate::Bifrost`]'s check (see
/// [`crate::Bifrost::with_node_id`]): this provider opens (or creates) whatever loglet id
/// it is asked for.
#[async_trait]
impl LogletProvider for LocalLogletProvider {
    async fn loglet(&self, segment: &Segment) -> Result<Arc<dyn Loglet>, BifrostError> {
        match segment.kind {
            LogProviderKind::Local => {
                let loglet: Arc<dyn Loglet> = self.get_or_open_async(segment.loglet_id).await?;
                Ok(loglet)
            }
            LogProviderKind::Replicated => Err(BifrostError::Unavailable(format!(
                "the segment starting at LSN {} (loglet {}, replication {}, nodeset {}) is replicated; replicated loglets are not available on this node yet",
                segment.base_lsn,
                segment.loglet_id,
                segment.replication,
                describe_nodeset(&segment.nodeset)
            ))),
        }
    }
}

/// Loglets of every kind: local ones from this node's storage, replicated ones as
/// clients of their nodeset's log-servers (addresses from NodesConfiguration).
pub struct ClusterLogletProvider {
    local: Arc<LocalLogletProvider>,
    metadata: restate_metadata::MetadataView,
    replicated: std::sync::Mutex<std::collections::HashMap<LogletId, ReplicatedClient>>,
    /// The replicated loglets this node hosts (a log-server): reads its members can serve
    /// are served here, without a call.
    local_host: Option<Arc<ReplicatedLogletHost>>,
}

/// A replicated loglet's client and the nodeset it was made for.
type ReplicatedClient = (Vec<PlainNodeId>, Arc<ReplicatedLoglet>);

impl ClusterLogletProvider {
    pub fn new(local: Arc<LocalLogletProvider>, metadata: restate_metadata::MetadataView) -> ClusterLogletProvider {
        ClusterLogletProvider { local, metadata, replicated: Default::default(), local_host: None }
    }

    /// Loglets this node hosts are read from its own copy ([`ReplicatedLoglet::with_local_host`]).
    pub fn with_local_host(mut self, host: Option<Arc<ReplicatedLogletHost>>) -> ClusterLogletProvider {
        self.local_host = host;
        self
    }
}

impl ClusterLogletProvider {
    /// NodesConfiguration from the view, or read from the store when the view does not
    /// know every member of `segment`'s nodeset (a node that just joined).
    async fn nodes(&self, segment: &Segment) -> Result<Arc<(NodesConfiguration, Version)>, BifrostError> {
        let knows_all = |nodes: &NodesConfiguration| segment.nodeset.iter().all(|id| nodes.nodes.contains_key(id));
        if let Some(nodes) = self.metadata.get::<NodesConfiguration>().filter(|n| knows_all(&n.0)) {
            return Ok(nodes);
        }
        Ok(self
            .metadata
            .refresh::<NodesConfiguration>()
            .await?
            .unwrap_or_else(|| Arc::new((NodesConfiguration::default(), Version(0)))))
    }

    async fn addresses(&self, segment: &Segment) -> Result<Vec<String>, BifrostError> {
        let nodes = &self.nodes(segment).await?.0;
        segment
            .nodeset
            .iter()
            .map(|id| {
                nodes.nodes.get(id).map(|n| n.address.clone()).ok_or_else(|| {
                    BifrostError::Unavailable(format!(
                        "loglet {}: nodeset member {id} is not in NodesConfiguration",
                        segment.loglet_id
                    ))
                })
            })
            .collect()
    }
}

#[async_trait]
impl LogletProvider for ClusterLogletProvider {
    async fn remote_local(&self, segment: &Segment) -> Result<Arc<dyn Loglet>, BifrostError> {
        let owner = self.addresses(segment).await?;
        Ok(Arc::new(ReplicatedLoglet::remote_local(segment.loglet_id, owner)))
    }

    async fn loglet(&self, segment: &Segment) -> Result<Arc<dyn Loglet>, BifrostError> {
        if segment.kind == LogProviderKind::Local {
            return self.local.loglet(segment).await;
        }
        if segment.nodeset.is_empty() {
            return Err(BifrostError::Unavailable(format!(
                "the replicated segment starting at LSN {} (loglet {}) waits for log-servers: replication {} needs {} of them",
                segment.base_lsn,
                segment.loglet_id,
                segment.replication,
                segment.replication * 2 - 1
            )));
        }
        // Cached per loglet and nodeset: repair changes a segment's nodeset in place.
        if let Some((nodeset, loglet)) = self.replicated.lock().expect("not poisoned").get(&segment.loglet_id) {
            if *nodeset == segment.nodeset {
                return Ok(loglet.clone());
            }
        }
        let members = self.addresses(segment).await?;
        let nodes = &self.nodes(segment).await?.0;
        // Raft ids follow from the nodes' storage ids; they name the loglet's leader.
        let raft_ids = segment
            .nodeset
            .iter()
            .filter_map(|id| nodes.nodes.get(id))
            .map(|n| (restate_raft::raft_id_for_storage(&n.storage_id), n.id.to_string()))
            .collect();
        let loglet = Arc::new(
            ReplicatedLoglet::new(segment.loglet_id, members)
                .with_raft_ids(raft_ids)
                .with_local_host(self.local_host.clone()),
        );
        self.replicated
            .lock()
            .expect("not poisoned")
            .insert(segment.loglet_id, (segment.nodeset.clone(), loglet.clone()));
        Ok(loglet)
    }
}
