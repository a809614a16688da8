use restate_types::{LogProviderKind, ReplicationProperty};
use serde::{Deserialize, Serialize};

/// What provisioning decided for the whole cluster. Its presence means "provisioned".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfiguration {
    pub cluster_name: String,
    /// Random id made at provisioning; tells two clusters of the same name apart.
    pub cluster_fingerprint: String,
    pub num_partitions: u32,
    /// Log replication: every record on `node` log-servers before acknowledgement, spread
    /// over at least `zone` zones and `region` regions (stored as a plain number when it
    /// has no spread, as before locations existed).
    pub replication: ReplicationProperty,
    /// Provider for new log segments.
    pub log_provider: LogProviderKind,
    pub provisioned_at_unix_ms: u64,
}

impl ClusterConfiguration {
    /// A replicated loglet for replication `r` is a raft group of `2r-1` log-servers.
    pub fn log_servers_needed(replication: u32) -> u32 {
        replication.saturating_mul(2).saturating_sub(1)
    }
}
