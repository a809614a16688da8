//! Prometheus metrics of the operator, served as text at `GET /metrics` (see the `http` module).
//!
//! - `restate_operator_reconciles_total{result="ok|error"}`: finished reconcile rounds.
//! - `restate_operator_reconcile_errors_total{kind}`: failed rounds by error kind
//!   (`ReconcileError::kind` of the reconciler).
//! - `restate_operator_reconcile_duration_seconds`: how long rounds take.
//! - `restate_operator_leader`: 1 while this replica holds the Lease, else 0.
//! - `restate_operator_clusters`: RestateClusters this replica watches (0 while standing by).

use std::sync::Mutex;
use std::time::Duration;

use kube::runtime::reflector::Store;
use prometheus::{Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::crd::RestateCluster;

/// Reconcile durations: API round trips take milliseconds, provisioning and snapshots
/// through pod 0 may take minutes.
const DURATION_BUCKETS: [f64; 12] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

pub struct OperatorMetrics {
    registry: Registry,
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: Histogram,
    leader: IntGauge,
    clusters: IntGauge,
    /// The watch caches of the running controllers; counted when the metrics are rendered.
    stores: Mutex<Vec<Store<RestateCluster>>>,
}

impl OperatorMetrics {
    /// Metrics with every series of `reconciles_total` and of `errors_total` for `error_kinds`
    /// present at 0, so that rates and alerts work before the first failure.
    pub fn new(error_kinds: &[&str]) -> OperatorMetrics {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("restate_operator_reconciles_total", "Finished reconcile rounds of RestateClusters, by result"),
            &["result"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new("restate_operator_reconcile_errors_total", "Failed reconcile rounds, by error kind"),
            &["kind"],
        )
        .expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new("restate_operator_reconcile_duration_seconds", "Duration of reconcile rounds")
                .buckets(DURATION_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let leader = IntGauge::new(
            "restate_operator_leader",
            "1 while this replica holds the leader Lease and reconciles, else 0",
        )
        .expect("valid metric");
        let clusters =
            IntGauge::new("restate_operator_clusters", "RestateClusters this replica watches").expect("valid metric");
        for result in ["ok", "error"] {
            reconciles.with_label_values(&[result]);
        }
        for kind in error_kinds {
            errors.with_label_values(&[*kind]);
        }
        for collector in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
            Box::new(clusters.clone()),
        ] {
            registry.register(collector).expect("metric names are unique");
        }
        OperatorMetrics { registry, reconciles, errors, duration, leader, clusters, stores: Mutex::new(Vec::new()) }
    }

    /// One finished round: its duration, and the error kind when it failed.
    pub fn reconciled(&self, took: Duration, error_kind: Option<&str>) {
        self.duration.observe(took.as_secs_f64());
        match error_kind {
            None => self.reconciles.with_label_values(&["ok"]).inc(),
            Some(kind) => {
                self.reconciles.with_label_values(&["error"]).inc();
                self.errors.with_label_values(&[kind]).inc();
            }
        }
    }

    /// Counts the clusters in `store` (a running controller's cache) from now on.
    pub fn watch_clusters(&self, store: Store<RestateCluster>) {
        self.stores.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(store);
    }

    /// The Prometheus text exposition, with the gauges read now (`leading` is this replica's
    /// role).
    pub fn render(&self, leading: bool) -> String {
        self.leader.set(i64::from(leading));
        let clusters: usize =
            self.stores.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter().map(|s| s.state().len()).sum();
        self.clusters.set(i64::try_from(clusters).unwrap_or(i64::MAX));
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out).expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series ` in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn series_exist_from_the_start_and_count_rounds() {
        let metrics = OperatorMetrics::new(&["apply", "status"]);
        let text = metrics.render(false);
        assert_eq!(sample(&text, "restate_operator_reconciles_total{result=\"ok\"}"), Some(0.0));
        assert_eq!(sample(&text, "restate_operator_reconciles_total{result=\"error\"}"), Some(0.0));
        assert_eq!(sample(&text, "restate_operator_reconcile_errors_total{kind=\"apply\"}"), Some(0.0));
        assert_eq!(sample(&text, "restate_operator_leader"), Some(0.0));
        assert_eq!(sample(&text, "restate_operator_clusters"), Some(0.0));

        metrics.reconciled(Duration::from_millis(20), None);
        metrics.reconciled(Duration::from_secs(2), Some("apply"));
        metrics.reconciled(Duration::from_secs(3), Some("apply"));
        let text = metrics.render(true);
        assert_eq!(sample(&text, "restate_operator_reconciles_total{result=\"ok\"}"), Some(1.0));
        assert_eq!(sample(&text, "restate_operator_reconciles_total{result=\"error\"}"), Some(2.0));
        assert_eq!(sample(&text, "restate_operator_reconcile_errors_total{kind=\"apply\"}"), Some(2.0));
        assert_eq!(sample(&text, "restate_operator_reconcile_errors_total{kind=\"status\"}"), Some(0.0));
        assert_eq!(sample(&text, "restate_operator_reconcile_duration_seconds_count"), Some(3.0));
        assert_eq!(sample(&text, "restate_operator_reconcile_duration_seconds_bucket{le=\"0.05\"}"), Some(1.0));
        assert_eq!(sample(&text, "restate_operator_leader"), Some(1.0));
    }
}
