//! An in-process network of engines for deterministic tests: messages can be dropped per
//! link or per node (partitions, crashed nodes).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use raft::eraftpb::{Message, MessageType};

use crate::engine::RaftEngine;
use crate::transport::RaftTransport;

/// In-process network of engines for deterministic tests: messages can be dropped per
/// link or per node (partitions, crashed nodes).
#[derive(Default, Clone)]
pub struct LocalNetwork {
    inner: Arc<LocalNetworkInner>,
}

#[derive(Default)]
struct LocalNetworkInner {
    engines: RwLock<HashMap<u64, RaftEngine>>,
    /// Nodes cut off from everyone (silent, not gone: probes of them say nothing).
    isolated: Mutex<HashSet<u64>>,
    /// Messages dropped by isolation: (from, message type).
    dropped: Mutex<Vec<(u64, MessageType)>>,
}

impl LocalNetwork {
    pub fn register(&self, peer: u64, engine: RaftEngine) {
        self.inner.engines.write().unwrap().insert(peer, engine);
    }

    pub fn unregister(&self, peer: u64) {
        self.inner.engines.write().unwrap().remove(&peer);
    }

    pub fn isolate(&self, peer: u64) {
        self.inner.isolated.lock().unwrap().insert(peer);
    }

    pub fn heal(&self, peer: u64) {
        self.inner.isolated.lock().unwrap().remove(&peer);
    }

    /// How many messages of `kind` sent by `from` isolation has dropped so far.
    pub fn dropped(&self, from: u64, kind: MessageType) -> usize {
        self.inner.dropped.lock().unwrap().iter().filter(|(f, k)| *f == from && *k == kind).count()
    }

    /// The transport of the engine with raft id `from`.
    pub fn transport(&self, from: u64) -> Arc<dyn RaftTransport> {
        Arc::new(LocalTransport { network: self.clone(), from })
    }
}

struct LocalTransport {
    network: LocalNetwork,
    from: u64,
}

impl RaftTransport for LocalTransport {
    fn send(&self, messages: Vec<(u64, Message)>) {
        let isolated = self.network.inner.isolated.lock().unwrap().clone();
        let engines = self.network.inner.engines.read().unwrap();
        for (group, message) in messages {
            let to = message.to;
            if isolated.contains(&self.from) || isolated.contains(&to) {
                self.network.inner.dropped.lock().unwrap().push((self.from, message.get_msg_type()));
                continue;
            }
            match engines.get(&to) {
                Some(engine) => engine.step(group, message),
                None => {
                    if let Some(me) = engines.get(&self.from) {
                        me.report_unreachable(group, to);
                    }
                }
            }
        }
    }

    /// An unregistered engine is a crashed node: gone. An isolated one is only silent.
    fn probe(&self, peer: u64) {
        let engines = self.network.inner.engines.read().unwrap();
        if !engines.contains_key(&peer) && !self.network.inner.isolated.lock().unwrap().contains(&self.from) {
            if let Some(me) = engines.get(&self.from) {
                me.report_gone(peer);
            }
        }
    }
}
