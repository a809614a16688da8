//! What every `make bench` binary shares: latency percentiles and their printing, a
//! lazily connecting gRPC channel, and a process's resident memory.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// The `p` quantile (0..=1) of ascending `sorted` latencies (nearest rank); zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

/// Milliseconds with two decimals, for the tables.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A channel to `address` that connects on first use; every call times out after 5 s.
pub fn lazy_channel(address: &str) -> Channel {
    Endpoint::from_shared(address.to_owned()).unwrap().timeout(Duration::from_secs(5)).connect_lazy()
}

/// `VmRSS:` (now) or `VmHWM:` (peak) of process `pid`, in MiB; 0 when unreadable.
pub fn memory_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .map_or(0.0, |kib: f64| kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.5), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
        assert_eq!(ms(Duration::from_micros(1500)), "1.50");
    }
}
