//! How this process reads cluster metadata, for the node's `/metrics`:
//! - `restate_metadata_reads_total{object, kind}`: `kind="linearizable"` counts every read
//!   sent to a metadata server (each one a ReadIndex round on the replicated store's
//!   leader); `kind="view"` counts reads served from the node's [`crate::MetadataView`]
//!   without asking anyone;
//! - `restate_metadata_view_version{object}`: the version the view holds (0: none).
//!
//! One set per process (a node is one process); the node registers them in its registry.

use std::sync::LazyLock;

use prometheus::core::Collector;
use prometheus::{IntCounterVec, IntGaugeVec, Opts};

static READS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "restate_metadata_reads_total",
            "Cluster metadata reads by object (its metadata key) and kind: linearizable (sent to a metadata server) or view (served from the node's metadata view)",
        ),
        &["object", "kind"],
    )
    .expect("valid metric")
});

static VIEW_VERSIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    IntGaugeVec::new(
        Opts::new(
            "restate_metadata_view_version",
            "The version of each metadata object this node's metadata view holds (0: none)",
        ),
        &["object"],
    )
    .expect("valid metric")
});

/// How a read was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    Linearizable,
    View,
}

impl ReadKind {
    fn label(self) -> &'static str {
        match self {
            ReadKind::Linearizable => "linearizable",
            ReadKind::View => "view",
        }
    }
}

/// The collectors, for registering in a node's registry.
pub fn metadata_metrics() -> Vec<Box<dyn Collector>> {
    vec![Box::new(READS.clone()), Box::new(VIEW_VERSIONS.clone())]
}

/// Records the version the view now holds of `key` (0: none).
pub(crate) fn view_version(key: &str, version: u32) {
    VIEW_VERSIONS.with_label_values(&[object_label(key)]).set(i64::from(version));
}

/// Counts one read of `key`. Keys outside the well-known set count as `other`, so a
/// client reading arbitrary keys cannot grow the label set.
pub(crate) fn count_read(key: &str, kind: ReadKind) {
    READS.with_label_values(&[object_label(key), kind.label()]).inc();
}

fn object_label(key: &str) -> &'static str {
    use crate::objects::*;
    match key {
        ClusterConfiguration::KEY => ClusterConfiguration::KEY,
        NodesConfiguration::KEY => NodesConfiguration::KEY,
        Logs::KEY => Logs::KEY,
        PartitionTable::KEY => PartitionTable::KEY,
        SchedulingPlan::KEY => SchedulingPlan::KEY,
        Schema::KEY => Schema::KEY,
        CONTROLLER_LEASE_KEY => CONTROLLER_LEASE_KEY,
        _ => "other",
    }
}

/// The cluster controller's lease key (the lease type lives in `restate-cluster`).
const CONTROLLER_LEASE_KEY: &str = "cluster_controller_lease";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_share_one_label() {
        assert_eq!(object_label("schema"), "schema");
        assert_eq!(object_label("cluster_controller_lease"), "cluster_controller_lease");
        assert_eq!(object_label("my-own-key"), "other");
    }
}
