use std::collections::BTreeMap;

use restate_types::{GenerationalNodeId, Location, PlainNodeId, RoleSet};
use serde::{Deserialize, Serialize};

/// Every node that ever joined the cluster, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NodesConfiguration {
    pub cluster_name: String,
    pub nodes: BTreeMap<PlainNodeId, NodeConfig>,
    /// The highest id ever given out, so a removed node's id is never reused.
    #[serde(default)]
    pub last_node_id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig {
    pub id: PlainNodeId,
    /// Rises at every start of the node; older generations are stale incarnations.
    pub generation: u32,
    pub name: String,
    pub address: String,
    pub roles: RoleSet,
    pub metadata_server_state: MetadataServerState,
    pub log_server_state: LogServerState,
    /// The storage id of the node's data; a new one means the data was wiped.
    pub storage_id: String,
    /// Leaving the cluster (`restatectl nodes drain`): its log replicas move to other
    /// log-servers, it leads no partition and leaves the metadata store; kept across
    /// restarts until the node is removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// About to restart (`restatectl nodes prepare-restart`, the operator before it rolls the
    /// node's pod): its partition leaderships move to other workers; it keeps its log
    /// replicas and metadata vote. Cleared when the node registers again after the restart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restarting: bool,
    /// Where the node runs (`location`, `region.zone`), as it said at its last registration;
    /// empty when it gave none. Nodesets spread over it (see the replication property).
    #[serde(default, skip_serializing_if = "Location::is_empty")]
    pub location: Location,
}

impl NodeConfig {
    pub fn current(&self) -> GenerationalNodeId {
        self.id.with_generation(self.generation)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetadataServerState {
    /// Serves metadata (votes, in a replicated store).
    Member,
    /// Has the role but is not (yet) part of the store.
    Standby,
    /// Lacks the metadata-server role.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogServerState {
    /// May be placed in new nodesets.
    ReadWrite,
    /// Keeps serving what it has; receives nothing new (draining).
    ReadOnly,
    /// Lacks the log-server role.
    Disabled,
}

impl MetadataServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            MetadataServerState::Member => "member",
            MetadataServerState::Standby => "standby",
            MetadataServerState::None => "none",
        }
    }
}

impl LogServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            LogServerState::ReadWrite => "read-write",
            LogServerState::ReadOnly => "read-only",
            LogServerState::Disabled => "disabled",
        }
    }
}

/// How a starting node appears in the NodesConfiguration after it registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// First time this name joins: a new id, generation 1.
    New(NodeConfig),
    /// Known name: same id, next generation, address/roles/storage refreshed.
    Restarted(NodeConfig),
}

impl NodesConfiguration {
    pub fn find_by_name(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.values().find(|n| n.name == name)
    }

    pub fn next_free_id(&self) -> PlainNodeId {
        let highest = self.nodes.keys().next_back().map_or(0, |id| id.0);
        PlainNodeId(highest.max(self.last_node_id) + 1)
    }

    /// Records a starting node and returns how it was recorded. Pure: the caller writes
    /// the result back with a version precondition.
    pub fn register(
        &mut self,
        name: &str,
        address: &str,
        roles: &RoleSet,
        storage_id: &str,
        metadata_member: bool,
        location: &Location,
    ) -> Registration {
        use restate_types::Role;
        let metadata_server_state = match (roles.contains(Role::MetadataServer), metadata_member) {
            (false, _) => MetadataServerState::None,
            (true, true) => MetadataServerState::Member,
            (true, false) => MetadataServerState::Standby,
        };
        let log_server_state =
            if roles.contains(Role::LogServer) { LogServerState::ReadWrite } else { LogServerState::Disabled };
        if let Some(existing) = self.nodes.values_mut().find(|n| n.name == name) {
            existing.generation += 1;
            existing.restarting = false;
            existing.address = address.to_owned();
            existing.roles = roles.clone();
            existing.storage_id = storage_id.to_owned();
            existing.location = location.clone();
            // A draining node stays out of the metadata store and read-only across restarts.
            existing.metadata_server_state =
                if existing.draining && metadata_server_state == MetadataServerState::Member {
                    MetadataServerState::Standby
                } else {
                    metadata_server_state
                };
            let read_only = existing.draining || existing.log_server_state == LogServerState::ReadOnly;
            existing.log_server_state = match log_server_state {
                LogServerState::ReadWrite if read_only => LogServerState::ReadOnly,
                other => other,
            };
            return Registration::Restarted(existing.clone());
        }
        let id = self.next_free_id();
        let node = NodeConfig {
            id,
            generation: 1,
            name: name.to_owned(),
            address: address.to_owned(),
            roles: roles.clone(),
            metadata_server_state,
            log_server_state,
            storage_id: storage_id.to_owned(),
            draining: false,
            restarting: false,
            location: location.clone(),
        };
        self.nodes.insert(id, node.clone());
        self.last_node_id = self.last_node_id.max(id.0);
        Registration::New(node)
    }

    /// Nodes that may host log replicas.
    pub fn log_servers(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.values().filter(|n| n.log_server_state == LogServerState::ReadWrite)
    }

    /// Workers that may lead partitions (draining and restarting ones excluded).
    pub fn active_workers(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.values().filter(|n| n.roles.contains(restate_types::Role::Worker) && !n.draining && !n.restarting)
    }

    /// Marks `id` as about to restart (its leaderships move away until it registers again).
    /// Pure; false when nothing changed (already marked, or unknown).
    pub fn start_restarting(&mut self, id: PlainNodeId) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else { return false };
        if node.restarting {
            return false;
        }
        node.restarting = true;
        true
    }

    /// Marks `id` as draining (log-server read-only, no partition leadership, out of the
    /// metadata store). Pure; false when nothing changed (already draining, or unknown).
    pub fn start_draining(&mut self, id: PlainNodeId) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else { return false };
        if node.draining {
            return false;
        }
        node.draining = true;
        if node.log_server_state == LogServerState::ReadWrite {
            node.log_server_state = LogServerState::ReadOnly;
        }
        true
    }
}

pub use Registration as NodeRegistration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registering_assigns_ids_and_bumps_generations() {
        let mut nodes = NodesConfiguration::default();
        let roles = RoleSet::all();
        let Registration::New(a) = nodes.register("a", "http://a:5122", &roles, "s1", true, &Location::default())
        else {
            panic!()
        };
        let Registration::New(b) = nodes.register("b", "http://b:5122", &roles, "s2", false, &Location::default())
        else {
            panic!()
        };
        assert_eq!((a.id, a.generation), (PlainNodeId(1), 1));
        assert_eq!((b.id, b.generation), (PlainNodeId(2), 1));
        assert_eq!(b.metadata_server_state, MetadataServerState::Standby);
        let Registration::Restarted(a2) =
            nodes.register("a", "http://a2:5122", &roles, "s1", true, &Location::default())
        else {
            panic!()
        };
        assert_eq!(a2.current().to_string(), "N1:2");
        assert_eq!(nodes.find_by_name("a").unwrap().address, "http://a2:5122");
        assert_eq!(nodes.log_servers().count(), 2);
    }

    #[test]
    fn a_draining_node_stays_read_only_and_out_of_the_metadata_store_across_restarts() {
        let mut nodes = NodesConfiguration::default();
        let Registration::New(a) =
            nodes.register("a", "http://a:5122", &RoleSet::all(), "s1", true, &Location::default())
        else {
            panic!()
        };
        assert!(nodes.start_draining(a.id));
        assert!(!nodes.start_draining(a.id), "idempotent");
        assert_eq!(nodes.log_servers().count(), 0);
        assert_eq!(nodes.active_workers().count(), 0);
        let Registration::Restarted(again) =
            nodes.register("a", "http://a:5122", &RoleSet::all(), "s1", true, &Location::default())
        else {
            panic!()
        };
        assert!(again.draining);
        assert_eq!(again.log_server_state, LogServerState::ReadOnly);
        assert_eq!(again.metadata_server_state, MetadataServerState::Standby);
        let json = serde_json::to_string(&nodes).unwrap();
        assert!(json.contains("\"draining\":true"), "{json}");
        // A removed node's id is not given out again.
        nodes.nodes.remove(&a.id);
        let Registration::New(b) =
            nodes.register("b", "http://b:5122", &RoleSet::all(), "s2", true, &Location::default())
        else {
            panic!()
        };
        assert_eq!(b.id, PlainNodeId(2));
        // Older metadata (written before draining existed) still reads.
        let old = r#"{"cluster_name":"c","nodes":{}}"#;
        assert!(serde_json::from_str::<NodesConfiguration>(old).is_ok());
    }

    #[test]
    fn a_restarting_node_leads_nothing_until_it_registers_again() {
        let mut nodes = NodesConfiguration::default();
        let roles = RoleSet::all();
        let Registration::New(n1) = nodes.register("n1", "http://a:1", &roles, "s1", true, &Location::default()) else {
            panic!()
        };
        nodes.register("n2", "http://b:1", &roles, "s2", true, &Location::default());
        assert!(nodes.start_restarting(n1.id));
        assert!(!nodes.start_restarting(n1.id), "once");
        let workers: Vec<_> = nodes.active_workers().map(|n| n.name.clone()).collect();
        assert_eq!(workers, ["n2"]);
        assert_eq!(nodes.log_servers().count(), 2, "it keeps its log replicas");
        let Registration::Restarted(again) =
            nodes.register("n1", "http://a:1", &roles, "s1", true, &Location::default())
        else {
            panic!()
        };
        assert!(!again.restarting);
        assert_eq!(nodes.active_workers().count(), 2);
    }

    #[test]
    fn serializes_with_readable_keys() {
        let mut nodes = NodesConfiguration { cluster_name: "c".into(), ..Default::default() };
        nodes.register("a", "http://a:5122", &RoleSet::all(), "s1", true, &Location::default());
        let json = serde_json::to_string(&nodes).unwrap();
        assert!(json.contains("\"metadata-server\""), "{json}");
        let back: NodesConfiguration = serde_json::from_str(&json).unwrap();
        assert_eq!(back, nodes);
    }
}
