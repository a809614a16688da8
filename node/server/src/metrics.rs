//! Prometheus metrics of the node, served as text at `GET /metrics` on the node port.

use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::lifecycle::NodePhase;

#[derive(Clone)]
pub(crate) struct NodeMetrics {
    registry: Registry,
    node_ctl_requests: IntCounterVec,
    phase: IntGaugeVec,
    uptime_seconds: IntGauge,
    partition_lsn: IntGaugeVec,
    fabric_refused: IntCounter,
}

const PHASES: [&str; 5] = ["starting", "waiting-for-metadata", "waiting-for-provisioning", "running", "failed"];

impl NodeMetrics {
    pub fn new(node_name: &str, cluster_name: &str) -> NodeMetrics {
        let registry = Registry::new();
        let node_ctl_requests = IntCounterVec::new(
            Opts::new("restate_node_ctl_requests_total", "Node-control gRPC requests served, by method"),
            &["method"],
        )
        .expect("valid metric");
        let phase = IntGaugeVec::new(
            Opts::new("restate_node_phase", "1 for the phase the node is in, 0 for the others"),
            &["phase"],
        )
        .expect("valid metric");
        let uptime_seconds =
            IntGauge::new("restate_node_uptime_seconds", "Seconds since the node started").expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new("restate_build_info", "Build and identity of this node (always 1)"),
            &["version", "node_name", "cluster_name"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION"), node_name, cluster_name]).set(1);
        let partition_lsn = IntGaugeVec::new(
            Opts::new(
                "restate_partition_lsn",
                "Per partition processor on this node: the LSN it applied (kind=applied) and the latest published snapshot's (kind=archived), the record it is blocked at (kind=blocked, 0: none), and whether it leads (kind=leader, 1/0)",
            ),
            &["partition", "kind"],
        )
        .expect("valid metric");
        let fabric_refused = crate::fabric_auth::refused_counter();
        for collector in [
            Box::new(partition_lsn.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(fabric_refused.clone()),
            Box::new(node_ctl_requests.clone()),
            Box::new(phase.clone()),
            Box::new(uptime_seconds.clone()),
            Box::new(build_info),
        ]
        .into_iter()
        .chain(restate_metadata::metadata_metrics())
        .chain(restate_raft::raft_metrics())
        {
            registry.register(collector).expect("metric names are unique");
        }
        NodeMetrics { registry, node_ctl_requests, phase, uptime_seconds, partition_lsn, fabric_refused }
    }

    /// Counts node-port requests refused for missing or wrong credentials.
    pub fn fabric_refused(&self) -> IntCounter {
        self.fabric_refused.clone()
    }

    pub fn request(&self, method: &str) {
        self.node_ctl_requests.with_label_values(&[method]).inc();
    }

    pub fn observe_phase(&self, current: &NodePhase, uptime: std::time::Duration) {
        for name in PHASES {
            self.phase.with_label_values(&[name]).set(i64::from(name == current.name()));
        }
        self.uptime_seconds.set(uptime.as_secs() as i64);
    }

    pub fn observe_partitions(&self, processors: &[restate_worker::processor::ProcessorStatus]) {
        for p in processors {
            let partition = p.partition.0.to_string();
            let gauge = |kind: &str| self.partition_lsn.with_label_values(&[partition.as_str(), kind]);
            gauge("applied").set(p.applied_lsn as i64);
            gauge("archived").set(p.archived_lsn as i64);
            gauge("blocked").set(p.blocked.as_ref().map_or(0, |(lsn, _)| *lsn as i64));
            gauge("leader").set(i64::from(p.leading));
        }
    }

    /// The registry other layers register their metrics in (Bifrost).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}
