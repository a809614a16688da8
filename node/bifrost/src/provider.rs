//! One shared handle per local loglet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use restate_storage::NodeStorage;
use restate_types::LogletId;

use crate::local_loglet::LocalLoglet;
use crate::loglet::LogletError;

/// Opens local loglets of one [`NodeStorage`] and caches them, so every caller asking for
/// the same [`LogletId`] gets the same handle and thus the same in-memory tail. Loglets
/// stay open (and keep the storage open) until the provider is dropped.
pub struct LocalLogletProvider {
    storage: NodeStorage,
    loglets: Mutex<HashMap<LogletId, Arc<LocalLoglet>>>,
}

impl LocalLogletProvider {
    pub fn new(storage: NodeStorage) -> LocalLogletProvider {
        LocalLogletProvider { storage, loglets: Mutex::new(HashMap::new()) }
    }

    pub fn storage(&self) -> &NodeStorage {
        &self.storage
    }

    /// The handle of loglet `id`, opened (and recovered from disk) on first use; an
    /// unknown id is created empty. The first call for an id does blocking I/O (see
    /// [`LocalLoglet::open`]); later calls only look up the cache.
    pub fn get_or_open(&self, id: LogletId) -> Result<Arc<LocalLoglet>, LogletError> {
        let mut loglets = self.loglets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(loglet) = loglets.get(&id) {
            return Ok(Arc::clone(loglet));
        }
        let loglet = Arc::new(LocalLoglet::open(self.storage.clone(), id)?);
        loglets.insert(id, Arc::clone(&loglet));
        Ok(loglet)
    }
}
