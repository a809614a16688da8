use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Who owns a node's data: written at first start, checked at every later start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeIdentity {
    pub node_name: String,
    pub cluster_name: String,
    /// Random, fixed at creation: tells a wiped-and-recreated store from the old one.
    pub storage_id: String,
}

impl NodeIdentity {
    pub fn new(node_name: &str, cluster_name: &str) -> NodeIdentity {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let storage_id = bytes.iter().map(|b| format!("{b:02x}")).collect();
        NodeIdentity { node_name: node_name.to_owned(), cluster_name: cluster_name.to_owned(), storage_id }
    }

    pub(crate) fn check(&self, node_name: &str, cluster_name: &str, path: &Path) -> Result<(), IdentityMismatch> {
        if self.node_name != node_name {
            return Err(IdentityMismatch {
                field: "node-name",
                stored: self.node_name.clone(),
                configured: node_name.to_owned(),
                path: path.to_owned(),
            });
        }
        if self.cluster_name != cluster_name {
            return Err(IdentityMismatch {
                field: "cluster-name",
                stored: self.cluster_name.clone(),
                configured: cluster_name.to_owned(),
                path: path.to_owned(),
            });
        }
        Ok(())
    }
}

/// The data on disk belongs to another node or cluster than the configuration says.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the data in {path} belongs to {field} '{stored}', but this node is configured with {field} '{configured}'. Set `{field}` back to '{stored}', or point `base-dir` at a fresh directory to start this node from empty storage")]
pub struct IdentityMismatch {
    pub field: &'static str,
    pub stored: String,
    pub configured: String,
    pub path: PathBuf,
}
