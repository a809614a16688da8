//! When a partition's log may be trimmed, and how far (pure).
//!
//! A log is trimmed to [`safe_trim_point`]: never past the partition's archived LSN (its
//! latest published snapshot, from which any replica can restore), and never past what a
//! live processor of the partition has applied (it would have to restore a snapshot to
//! continue). Processors on nodes that do not answer are not live and do not hold
//! trimming back. Each partition's leader looks every [`AUTO_TRIM_EVERY`].

use std::time::Duration;

use restate_types::Lsn;

/// How often a leader looks whether its partition's log can be trimmed further.
pub const AUTO_TRIM_EVERY: Duration = Duration::from_secs(5);

/// The highest LSN a partition's log may be trimmed to: the archived LSN, lowered to
/// the applied LSN of every live processor of the partition.
pub fn safe_trim_point(archived: Lsn, live_applied: &[Lsn]) -> Lsn {
    live_applied.iter().copied().fold(archived, Lsn::min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_stops_at_the_snapshot_and_at_the_slowest_live_replica() {
        assert_eq!(safe_trim_point(Lsn(100), &[]), Lsn(100));
        assert_eq!(safe_trim_point(Lsn(100), &[Lsn(150), Lsn(120)]), Lsn(100));
        assert_eq!(safe_trim_point(Lsn(100), &[Lsn(150), Lsn(80)]), Lsn(80));
        assert_eq!(safe_trim_point(Lsn(0), &[Lsn(50)]), Lsn(0), "no snapshot, no trim");
    }
}
