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

/// Metrics of the replicated loglets this node hosts: what each takes on disk, and the
/// memory the log layer holds (the newest raft entries of every hosted loglet).
#[derive(Clone)]
pub struct LogletHostMetrics {
    disk_bytes: IntGaugeVec,
    memory_bytes: prometheus::IntGauge,
}

impl LogletHostMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<LogletHostMetrics> {
        let disk_bytes = IntGaugeVec::new(
            Opts::new(
                "restate_loglet_disk_bytes",
                "Bytes a replicated loglet hosted here takes on disk (its raft log and record index; RocksDB's estimate of flushed data)",
            ),
            &["loglet"],
        )?;
        let memory_bytes = prometheus::IntGauge::with_opts(Opts::new(
            "restate_log_memory_bytes",
            "Bytes of log records this node holds in memory (the newest raft entries of every hosted loglet; bounded per loglet)",
        ))?;
        registry.register(Box::new(disk_bytes.clone()))?;
        registry.register(Box::new(memory_bytes.clone()))?;
        Ok(LogletHostMetrics { disk_bytes, memory_bytes })
    }

    /// Sets the gauges from `(loglet, disk bytes, memory bytes)` of every hosted loglet;
    /// loglets no longer hosted disappear.
    pub fn report(&self, loglets: &[(u64, u64, u64)]) {
        self.disk_bytes.reset();
        for (loglet, disk, _) in loglets {
            self.disk_bytes.with_label_values(&[&loglet.to_string()]).set(*disk as i64);
        }
        self.memory_bytes.set(loglets.iter().map(|(_, _, memory)| *memory as i64).sum());
    }
}
