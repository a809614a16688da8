//! Metrics of one node's Bifrost: append rate, bytes and latency per log, trim points.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct BifrostMetrics {
    records: IntCounterVec,
    bytes: IntCounterVec,
    appends: IntCounterVec,
    latency: Histogram,
    trim_point: IntGaugeVec,
}

impl BifrostMetrics {
    /// Registers the metrics in `registry` (each Bifrost once).
    pub fn register(registry: &Registry) -> prometheus::Result<BifrostMetrics> {
        let records = IntCounterVec::new(
            Opts::new("restate_bifrost_append_records_total", "Records appended, by log"),
            &["log"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new("restate_bifrost_append_bytes_total", "Payload bytes appended, by log"),
            &["log"],
        )?;
        let appends = IntCounterVec::new(
            Opts::new("restate_bifrost_appends_total", "Append calls, by outcome (ok or error)"),
            &["outcome"],
        )?;
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "restate_bifrost_append_latency_seconds",
                "Time from append call to durable acknowledgement",
            )
            .buckets(vec![0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 5.0]),
        )?;
        let trim_point =
            IntGaugeVec::new(Opts::new("restate_bifrost_trim_point", "Trim point reached, by log"), &["log"])?;
        registry.register(Box::new(records.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(appends.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(trim_point.clone()))?;
        Ok(BifrostMetrics { records, bytes, appends, latency, trim_point })
    }

    pub(crate) fn appended(&self, log: u32, records: usize, bytes: usize, seconds: f64) {
        let label = log.to_string();
        self.records.with_label_values(&[&label]).inc_by(records as u64);
        self.bytes.with_label_values(&[&label]).inc_by(bytes as u64);
        self.appends.with_label_values(&["ok"]).inc();
        self.latency.observe(seconds);
    }

    pub(crate) fn append_failed(&self) {
        self.appends.with_label_values(&["error"]).inc();
    }

    pub(crate) fn trimmed(&self, log: u32, trim_point: u64) {
        self.trim_point.with_label_values(&[&log.to_string()]).set(trim_point as i64);
    }
}
