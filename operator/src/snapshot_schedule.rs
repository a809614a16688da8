//! The snapshot schedule of `spec.snapshots.interval`: when a round should ask the cluster
//! for snapshots (node control `CreateSnapshots`, with `trim_log` from `spec.snapshots.trim`),
//! and how the answer is summarized in `status.lastSnapshot`. Pure.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use restate_proto::node_ctl::PartitionSnapshot;

use crate::crd::{RestateCluster, SnapshotSummary};

/// Whether a snapshot is due at `now`: the cluster is provisioned, an interval is set (and
/// valid), and the last snapshot is older than the interval (or there is none). `Err`
/// names an invalid interval.
pub fn snapshot_due(cluster: &RestateCluster, now: &Time) -> Result<bool, String> {
    let Some(snapshots) = &cluster.spec.snapshots else { return Ok(false) };
    let Some(interval) = snapshots.interval_duration() else { return Ok(false) };
    let interval = interval?;
    let status = cluster.status.as_ref();
    if status.and_then(|s| s.provisioned) != Some(true) {
        return Ok(false);
    }
    let last = status.and_then(|s| s.last_snapshot.as_ref()).and_then(|s| s.time.as_ref());
    Ok(match last {
        None => true,
        Some(last) => elapsed(last, now) >= interval,
    })
}

/// How long until the next snapshot is due (for the requeue), when a schedule is set.
pub fn until_due(cluster: &RestateCluster, now: &Time) -> Option<Duration> {
    let interval = cluster.spec.snapshots.as_ref()?.interval_duration()?.ok()?;
    let last = cluster.status.as_ref()?.last_snapshot.as_ref()?.time.as_ref()?;
    Some(interval.saturating_sub(elapsed(last, now)))
}

fn elapsed(from: &Time, to: &Time) -> Duration {
    (to.0 - from.0).to_std().unwrap_or(Duration::ZERO)
}

/// `status.lastSnapshot` for the answers of one `CreateSnapshots` call at `now`.
pub fn summarize(answers: &[PartitionSnapshot], trimmed: bool, now: Time) -> SnapshotSummary {
    let succeeded: Vec<&PartitionSnapshot> = answers.iter().filter(|a| !a.snapshot_id.is_empty()).collect();
    let failed: Vec<String> = answers
        .iter()
        .filter(|a| !a.error.is_empty())
        .map(|a| format!("partition {}: {}", a.partition_id, a.error))
        .collect();
    let lsns = succeeded.iter().map(|a| i64::try_from(a.lsn).unwrap_or(i64::MAX));
    let message =
        if failed.is_empty() { format!("{} partitions snapshotted", succeeded.len()) } else { failed.join("; ") };
    SnapshotSummary {
        time: Some(now),
        partitions: Some(i32::try_from(succeeded.len()).unwrap_or(i32::MAX)),
        failed_partitions: Some(i32::try_from(answers.len() - succeeded.len()).unwrap_or(i32::MAX)),
        min_lsn: lsns.clone().min(),
        max_lsn: lsns.max(),
        logs_trimmed: Some(trimmed && succeeded.iter().all(|a| a.trim_point.is_some())),
        message: Some(message),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::chrono::{TimeZone, Utc};

    use super::*;
    use crate::crd::{RestateClusterStatus, SnapshotsSpec};
    use crate::objects::fixtures;

    fn at(seconds: i64) -> Time {
        Time(Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap())
    }

    fn scheduled(interval: &str) -> RestateCluster {
        let mut cluster = fixtures::cluster();
        cluster.spec.snapshots = Some(SnapshotsSpec {
            destination: "s3://bucket/prefix".into(),
            interval: Some(interval.into()),
            interval_num_records: None,
            trim: true,
            credentials_secret: None,
            endpoint: None,
            region: None,
        });
        cluster.status = Some(RestateClusterStatus { provisioned: Some(true), ..RestateClusterStatus::default() });
        cluster
    }

    #[test]
    fn due_once_provisioned_then_every_interval() {
        let mut cluster = scheduled("10m");
        assert_eq!(snapshot_due(&cluster, &at(0)), Ok(true), "never snapshotted");
        cluster.status.as_mut().unwrap().last_snapshot = Some(summarize(&[], true, at(0)));
        assert_eq!(snapshot_due(&cluster, &at(599)), Ok(false));
        assert_eq!(until_due(&cluster, &at(599)), Some(Duration::from_secs(1)));
        assert_eq!(snapshot_due(&cluster, &at(600)), Ok(true));

        cluster.status.as_mut().unwrap().provisioned = Some(false);
        assert_eq!(snapshot_due(&cluster, &at(900)), Ok(false), "not before provisioning");
        assert_eq!(snapshot_due(&fixtures::cluster(), &at(0)), Ok(false), "no schedule");
        assert!(snapshot_due(&scheduled("ten minutes"), &at(0)).is_err());
    }

    #[test]
    fn a_summary_counts_failures_and_the_lsn_range() {
        let ok = |p: u32, lsn: u64, trim: Option<u64>| PartitionSnapshot {
            partition_id: p,
            snapshot_id: format!("snap_{p}"),
            lsn,
            trim_point: trim,
            ..PartitionSnapshot::default()
        };
        let failed = PartitionSnapshot { partition_id: 2, error: "no leader".into(), ..PartitionSnapshot::default() };
        let summary = summarize(&[ok(0, 40, Some(40)), ok(1, 12, Some(12)), failed], true, at(5));
        assert_eq!((summary.partitions, summary.failed_partitions), (Some(2), Some(1)));
        assert_eq!((summary.min_lsn, summary.max_lsn), (Some(12), Some(40)));
        assert_eq!(summary.logs_trimmed, Some(true));
        assert_eq!(summary.message.as_deref(), Some("partition 2: no leader"));
        let untrimmed = summarize(&[ok(0, 40, None)], true, at(5));
        assert_eq!(untrimmed.logs_trimmed, Some(false));
    }
}
