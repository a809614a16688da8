//! The repository over a local directory (`file://` destination).

mod support;

use std::path::Path;

use restate_config::{SnapshotDestination, SnapshotOptions};
use restate_snapshots::{PublishOutcome, SnapshotError, SnapshotMetadata, SnapshotRepository};
use restate_types::PartitionId;
use support::{assert_contains, content, local_snapshot};

async fn open_repository(root: &Path) -> SnapshotRepository {
    let options = SnapshotOptions {
        destination: Some(SnapshotDestination::Directory(root.to_owned())),
        ..SnapshotOptions::default()
    };
    SnapshotRepository::from_options(&options).await.unwrap().expect("a destination is configured")
}

fn published(outcome: PublishOutcome) -> SnapshotMetadata {
    match outcome {
        PublishOutcome::Published(metadata) => metadata,
        other => panic!("expected Published, got {other:?}"),
    }
}

#[tokio::test]
async fn no_destination_means_no_repository() {
    assert!(SnapshotRepository::from_options(&SnapshotOptions::default()).await.unwrap().is_none());
}

#[tokio::test]
async fn the_directory_is_created_and_described_as_a_file_url() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("nested/snapshots");
    let repository = open_repository(&root).await;
    assert!(root.is_dir());
    assert_eq!(repository.describe(), format!("file://{}", root.display()));
}

#[tokio::test]
async fn nothing_published_means_no_latest() {
    let tmp = tempfile::tempdir().unwrap();
    let repository = open_repository(&tmp.path().join("repo")).await;
    assert_eq!(repository.latest(PartitionId(0)).await.unwrap(), None);
}

#[tokio::test]
async fn latest_follows_the_highest_lsn_and_downloads_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repository = open_repository(&root).await;

    let first = local_snapshot(tmp.path(), 3, 100, &content(1, 10_000));
    let first_meta = published(repository.publish(&first).await.unwrap());
    assert_eq!(repository.latest(PartitionId(3)).await.unwrap().as_ref(), Some(&first_meta));

    let second_content = content(2, 300_000);
    let second = local_snapshot(tmp.path(), 3, 250, &second_content);
    let second_meta = published(repository.publish(&second).await.unwrap());
    assert_eq!(second_meta.lsn, 250);
    assert_eq!(second_meta.partition_id, 3);
    assert_eq!(second_meta.snapshot_id, second.snapshot_id);
    assert_eq!(second_meta.size_bytes, 300_000);
    assert_eq!(second_meta.node_name, "n1");
    assert_eq!(second_meta.cluster_name, "test-cluster");
    assert_eq!(second_meta.data_key, format!("3/00000000000000000250_{}/snapshot.sst", second.snapshot_id));
    assert_eq!(repository.latest(PartitionId(3)).await.unwrap().as_ref(), Some(&second_meta));

    let restore_dir = tmp.path().join("restore");
    let path = repository.download(&second_meta, &restore_dir).await.unwrap();
    assert_eq!(path, restore_dir.join(format!("{}.sst", second.snapshot_id)));
    assert_eq!(std::fs::read(&path).unwrap(), second_content);
    assert_eq!(std::fs::read_dir(&restore_dir).unwrap().count(), 1, "no partial files left behind");
}

#[tokio::test]
async fn the_stored_layout_is_the_documented_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repository = open_repository(&root).await;
    let snapshot = local_snapshot(tmp.path(), 7, 42, b"sst bytes");
    let metadata = published(repository.publish(&snapshot).await.unwrap());

    let dir = format!("7/00000000000000000042_{}", snapshot.snapshot_id);
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("7/latest.json")).unwrap()).unwrap();
    assert_eq!(
        latest,
        serde_json::json!({
            "format_version": 1,
            "snapshot_id": snapshot.snapshot_id,
            "lsn": 42,
            "metadata_key": format!("{dir}/metadata.json"),
        })
    );
    let stored: SnapshotMetadata =
        serde_json::from_slice(&std::fs::read(root.join(&dir).join("metadata.json")).unwrap()).unwrap();
    assert_eq!(stored, metadata);
    assert_eq!(std::fs::read(root.join(&dir).join("snapshot.sst")).unwrap(), b"sst bytes");
    use sha2::Digest;
    assert_eq!(metadata.sha256, hex::encode(sha2::Sha256::digest(b"sst bytes")));
    assert_eq!(metadata.size_bytes, 9);
    assert!(metadata.created_at.ends_with('Z') && metadata.created_at.contains('T'), "{}", metadata.created_at);
}

#[tokio::test]
async fn an_older_or_equal_snapshot_is_superseded_and_leaves_latest_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repository = open_repository(&root).await;
    let newer = local_snapshot(tmp.path(), 1, 500, b"newer");
    let newer_meta = published(repository.publish(&newer).await.unwrap());

    for lsn in [499, 500] {
        let older = local_snapshot(tmp.path(), 1, lsn, b"older");
        assert_eq!(
            repository.publish(&older).await.unwrap(),
            PublishOutcome::Superseded { published_lsn: 500, published_snapshot_id: newer.snapshot_id.clone() }
        );
        // Known to be superseded before uploading: nothing of it was stored.
        let dir = root.join(format!("1/{lsn:020}_{}", older.snapshot_id));
        assert!(!dir.exists(), "{} should not exist", dir.display());
    }
    assert_eq!(repository.latest(PartitionId(1)).await.unwrap(), Some(newer_meta));
}

#[tokio::test]
async fn partitions_are_independent() {
    let tmp = tempfile::tempdir().unwrap();
    let repository = open_repository(&tmp.path().join("repo")).await;
    let p1 = published(repository.publish(&local_snapshot(tmp.path(), 1, 900, b"p1")).await.unwrap());
    let p2 = published(repository.publish(&local_snapshot(tmp.path(), 2, 10, b"p2")).await.unwrap());
    assert_eq!(repository.latest(PartitionId(1)).await.unwrap(), Some(p1));
    assert_eq!(repository.latest(PartitionId(2)).await.unwrap(), Some(p2));
    assert_eq!(repository.latest(PartitionId(3)).await.unwrap(), None);
}

#[tokio::test]
async fn a_corrupted_data_file_fails_the_download_naming_partition_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repository = open_repository(&root).await;
    let metadata = published(repository.publish(&local_snapshot(tmp.path(), 4, 77, &content(9, 4096))).await.unwrap());

    // Same size, one flipped byte.
    let stored = root.join(&metadata.data_key);
    let mut bytes = std::fs::read(&stored).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();

    let restore_dir = tmp.path().join("restore");
    let err = repository.download(&metadata, &restore_dir).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt { partition: PartitionId(4), .. }), "{err:?}");
    assert_contains(&err.to_string(), &["partition 4", &metadata.data_key, &metadata.sha256, "is corrupt"]);
    assert_eq!(std::fs::read_dir(&restore_dir).unwrap().count(), 0, "nothing is left of a failed download");

    // A truncated copy is caught by its size as well.
    std::fs::write(&stored, &bytes[..100]).unwrap();
    let err = repository.download(&metadata, &restore_dir).await.unwrap_err();
    assert_contains(&err.to_string(), &["holds 100 bytes", "promises 4096 bytes"]);
}

#[tokio::test]
async fn a_missing_data_file_fails_the_download_as_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repository = open_repository(&root).await;
    let metadata = published(repository.publish(&local_snapshot(tmp.path(), 5, 8, b"data")).await.unwrap());
    std::fs::remove_file(root.join(&metadata.data_key)).unwrap();

    let err = repository.download(&metadata, &tmp.path().join("restore")).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Missing { partition: PartitionId(5), .. }), "{err:?}");
    assert_contains(&err.to_string(), &["partition 5", &metadata.data_key, "is missing"]);
}

#[tokio::test]
async fn latest_reports_missing_or_corrupt_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repository = open_repository(&root).await;
    let snapshot = local_snapshot(tmp.path(), 6, 30, b"data");
    published(repository.publish(&snapshot).await.unwrap());
    let metadata_key = format!("6/00000000000000000030_{}/metadata.json", snapshot.snapshot_id);

    std::fs::write(root.join(&metadata_key), b"{ not json").unwrap();
    let err = repository.latest(PartitionId(6)).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["partition 6", &metadata_key]);

    std::fs::remove_file(root.join(&metadata_key)).unwrap();
    let err = repository.latest(PartitionId(6)).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Missing { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["partition 6", &metadata_key]);
}

#[tokio::test]
async fn a_latest_json_of_a_newer_format_is_neither_read_nor_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let repository = open_repository(&root).await;
    std::fs::create_dir_all(root.join("2")).unwrap();
    let newer = br#"{"format_version": 2, "whatever": true}"#;
    std::fs::write(root.join("2/latest.json"), newer).unwrap();

    let err = repository.latest(PartitionId(2)).await.unwrap_err();
    assert!(matches!(err, SnapshotError::UnsupportedFormat { found: 2, .. }), "{err:?}");
    let err = repository.publish(&local_snapshot(tmp.path(), 2, 1, b"x")).await.unwrap_err();
    assert_contains(&err.to_string(), &["2/latest.json", "format version 2", "upgrade this node"]);
    assert_eq!(std::fs::read(root.join("2/latest.json")).unwrap(), newer);
}

#[tokio::test]
async fn a_failed_publish_changes_nothing_and_names_the_local_path() {
    let tmp = tempfile::tempdir().unwrap();
    let repository = open_repository(&tmp.path().join("repo")).await;
    let published_meta = published(repository.publish(&local_snapshot(tmp.path(), 1, 10, b"ok")).await.unwrap());

    let mut broken = local_snapshot(tmp.path(), 1, 20, b"");
    broken.file = tmp.path().join("does-not-exist.sst");
    let err = repository.publish(&broken).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Io { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["does-not-exist.sst"]);
    assert_eq!(repository.latest(PartitionId(1)).await.unwrap(), Some(published_meta));
}

#[tokio::test]
async fn snapshot_ids_that_cannot_be_keys_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repository = open_repository(&tmp.path().join("repo")).await;
    let mut snapshot = local_snapshot(tmp.path(), 1, 10, b"x");
    snapshot.snapshot_id = "../escape".into();
    let err = repository.publish(&snapshot).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Invalid { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["'../escape'"]);
}

#[tokio::test]
async fn concurrent_publishers_end_with_the_highest_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    let snapshots: Vec<_> =
        (1..=8u64).map(|lsn| local_snapshot(tmp.path(), 9, lsn * 10, &content(lsn as u8, 2048))).collect();
    // Separate repositories, as separate nodes would have.
    let mut publishers = Vec::new();
    for snapshot in snapshots {
        let repository = open_repository(&root).await;
        publishers.push(tokio::spawn(async move { repository.publish(&snapshot).await.unwrap() }));
    }
    let mut published_count = 0;
    for publisher in publishers {
        if let PublishOutcome::Published(_) = publisher.await.unwrap() {
            published_count += 1;
        }
    }
    assert!(published_count >= 1);
    let latest = open_repository(&root).await.latest(PartitionId(9)).await.unwrap().unwrap();
    assert_eq!(latest.lsn, 80);
}
