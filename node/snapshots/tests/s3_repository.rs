//! The repository over S3, against a real S3-compatible server (`moto_server`) started per test.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use restate_config::{SnapshotDestination, SnapshotOptions};
use restate_snapshots::{PublishOutcome, SnapshotError, SnapshotMetadata, SnapshotRepository};
use restate_types::PartitionId;
use support::moto::{free_port, MotoServer, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use support::{assert_contains, content, local_snapshot};
use url::Url;

fn options(endpoint: &str, bucket: &str, prefix: &str) -> SnapshotOptions {
    SnapshotOptions {
        destination: Some(SnapshotDestination::S3 { bucket: bucket.into(), prefix: prefix.into() }),
        aws_endpoint_url: Some(Url::parse(endpoint).unwrap()),
        aws_access_key_id: Some(ACCESS_KEY_ID.into()),
        aws_secret_access_key: Some(SECRET_ACCESS_KEY.into()),
        aws_allow_http: Some(true),
        ..SnapshotOptions::default()
    }
}

async fn open_repository(options: &SnapshotOptions) -> SnapshotRepository {
    SnapshotRepository::from_options(options).await.unwrap().expect("a destination is configured")
}

fn published(outcome: PublishOutcome) -> SnapshotMetadata {
    match outcome {
        PublishOutcome::Published(metadata) => metadata,
        other => panic!("expected Published, got {other:?}"),
    }
}

async fn object_keys(moto: &MotoServer, bucket: &str) -> Vec<String> {
    let listing = moto.client().list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut keys: Vec<String> = listing.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn publish_latest_download_round_trip_under_a_prefix() {
    let moto = MotoServer::start();
    moto.create_bucket("snapshots").await;
    let repository = open_repository(&options(&moto.endpoint, "snapshots", "cluster-a/snaps")).await;
    assert_eq!(repository.describe(), "s3://snapshots/cluster-a/snaps");
    assert_eq!(repository.latest(PartitionId(3)).await.unwrap(), None);

    let tmp = tempfile::tempdir().unwrap();
    let data = content(5, 1_500_000);
    let snapshot = local_snapshot(tmp.path(), 3, 1234, &data);
    let metadata = published(repository.publish(&snapshot).await.unwrap());
    let dir = format!("cluster-a/snaps/3/00000000000000001234_{}", snapshot.snapshot_id);
    assert_eq!(metadata.data_key, format!("{dir}/snapshot.sst"));
    assert_eq!(metadata.size_bytes, 1_500_000);
    assert_eq!(
        object_keys(&moto, "snapshots").await,
        [format!("{dir}/metadata.json"), format!("{dir}/snapshot.sst"), "cluster-a/snaps/3/latest.json".to_owned()]
    );

    // A fresh repository (as on another node) finds it.
    let other_node = open_repository(&options(&moto.endpoint, "snapshots", "cluster-a/snaps")).await;
    let latest = other_node.latest(PartitionId(3)).await.unwrap().expect("published");
    assert_eq!(latest, metadata);
    let path = other_node.download(&latest, &tmp.path().join("restore")).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), data);
}

#[tokio::test]
async fn latest_moves_forward_only() {
    let moto = MotoServer::start();
    moto.create_bucket("ordering").await;
    let repository = open_repository(&options(&moto.endpoint, "ordering", "")).await;
    let tmp = tempfile::tempdir().unwrap();

    published(repository.publish(&local_snapshot(tmp.path(), 1, 10, b"ten")).await.unwrap());
    let twenty = local_snapshot(tmp.path(), 1, 20, b"twenty");
    let twenty_meta = published(repository.publish(&twenty).await.unwrap());
    assert_eq!(twenty_meta.data_key, format!("1/00000000000000000020_{}/snapshot.sst", twenty.snapshot_id));
    assert_eq!(repository.latest(PartitionId(1)).await.unwrap().as_ref(), Some(&twenty_meta));

    let fifteen = local_snapshot(tmp.path(), 1, 15, b"fifteen");
    assert_eq!(
        repository.publish(&fifteen).await.unwrap(),
        PublishOutcome::Superseded { published_lsn: 20, published_snapshot_id: twenty.snapshot_id.clone() }
    );
    assert_eq!(repository.latest(PartitionId(1)).await.unwrap(), Some(twenty_meta));
    let keys = object_keys(&moto, "ordering").await;
    assert!(!keys.iter().any(|key| key.contains(&fifteen.snapshot_id)), "nothing of a superseded snapshot: {keys:?}");
}

#[tokio::test]
async fn concurrent_publishers_end_with_the_highest_lsn() {
    let moto = MotoServer::start();
    moto.create_bucket("racing").await;
    let options = options(&moto.endpoint, "racing", "race");
    let tmp = tempfile::tempdir().unwrap();
    let mut publishers = Vec::new();
    for lsn in 1..=8u64 {
        let snapshot = local_snapshot(tmp.path(), 2, lsn * 100, &content(lsn as u8, 64 * 1024));
        let repository = open_repository(&options).await;
        publishers.push(tokio::spawn(async move { repository.publish(&snapshot).await.unwrap() }));
    }
    let outcomes: Vec<PublishOutcome> = futures_join(publishers).await;
    assert!(outcomes.iter().any(|o| matches!(o, PublishOutcome::Published(m) if m.lsn == 800)), "{outcomes:?}");
    let latest = open_repository(&options).await.latest(PartitionId(2)).await.unwrap().unwrap();
    assert_eq!(latest.lsn, 800);
}

async fn futures_join<T: Send + 'static>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    results
}

#[tokio::test]
async fn corrupt_and_missing_objects_fail_the_download_naming_the_key() {
    let moto = MotoServer::start();
    moto.create_bucket("damaged").await;
    let repository = open_repository(&options(&moto.endpoint, "damaged", "p")).await;
    let tmp = tempfile::tempdir().unwrap();
    let metadata = published(repository.publish(&local_snapshot(tmp.path(), 4, 40, &content(1, 5000))).await.unwrap());

    let mut altered = content(1, 5000);
    altered[4999] ^= 1;
    let client = moto.client();
    client.put_object().bucket("damaged").key(&metadata.data_key).body(ByteStream::from(altered)).send().await.unwrap();
    let restore = tmp.path().join("restore");
    let err = repository.download(&metadata, &restore).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Corrupt { partition: PartitionId(4), .. }), "{err:?}");
    assert_contains(&err.to_string(), &["partition 4", &metadata.data_key, "s3://damaged/p"]);
    assert_eq!(std::fs::read_dir(&restore).unwrap().count(), 0, "nothing is left of a failed download");

    client.delete_object().bucket("damaged").key(&metadata.data_key).send().await.unwrap();
    let err = repository.download(&metadata, &restore).await.unwrap_err();
    assert!(matches!(err, SnapshotError::Missing { partition: PartitionId(4), .. }), "{err:?}");
    assert_contains(&err.to_string(), &["partition 4", &metadata.data_key, "is missing"]);
}

#[tokio::test]
async fn a_missing_bucket_is_named_and_not_mistaken_for_an_empty_repository() {
    let moto = MotoServer::start();
    let repository = open_repository(&options(&moto.endpoint, "no-such-bucket", "x")).await;
    let err = repository.latest(PartitionId(0)).await.unwrap_err();
    assert!(matches!(err, SnapshotError::BucketMissing { .. }), "{err:?}");
    assert_contains(&err.to_string(), &["'no-such-bucket'", &moto.endpoint, "create it", "destination"]);

    let tmp = tempfile::tempdir().unwrap();
    let err = repository.publish(&local_snapshot(tmp.path(), 0, 1, b"x")).await.unwrap_err();
    assert!(matches!(err, SnapshotError::BucketMissing { .. }), "{err:?}");
}

#[tokio::test]
async fn rejected_credentials_are_named_as_such() {
    // moto checks credentials after this many requests: the bucket is created without.
    let moto = MotoServer::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", "1")]);
    moto.create_bucket("guarded").await;
    let mut options = options(&moto.endpoint, "guarded", "");
    options.aws_access_key_id = Some("AKIAWRONGWRONGWRONG0".into());
    let repository = open_repository(&options).await;
    let err = repository.latest(PartitionId(0)).await.unwrap_err();
    assert!(matches!(err, SnapshotError::AccessDenied { .. }), "{err:?}");
    assert_contains(
        &err.to_string(),
        &["'guarded'", "InvalidAccessKeyId", "aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID"],
    );
}

#[tokio::test]
async fn an_endpoint_with_nothing_listening_is_reported_unreachable_quickly() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    // Building the repository does not contact S3.
    let repository = open_repository(&options(&endpoint, "snapshots", "")).await;
    let started = Instant::now();
    let err = repository.latest(PartitionId(0)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(matches!(err, SnapshotError::Unreachable { .. }), "{err:?}");
    assert_contains(&err.to_string(), &[&endpoint, "unreachable", "aws-endpoint-url"]);
}

#[tokio::test]
async fn a_plain_http_endpoint_needs_allow_http() {
    let mut options = options("http://127.0.0.1:9", "snapshots", "");
    options.aws_allow_http = None;
    let err = SnapshotRepository::from_options(&options).await.unwrap_err();
    assert_contains(&err.to_string(), &["http://127.0.0.1:9", "aws-allow-http = true"]);
}

#[tokio::test]
async fn a_server_that_does_not_answer_like_s3_is_not_mistaken_for_an_empty_repository() {
    // Answers every request with a bodiless 404, as a plain web server or proxy would.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if line == "\r\n" {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
                    }
                    line.clear();
                }
            });
        }
    });
    let repository = open_repository(&options(&endpoint, "snapshots", "")).await;
    let err = repository.latest(PartitionId(0)).await.unwrap_err();
    assert!(matches!(err, SnapshotError::S3 { .. }), "{err:?}");
    assert_contains(&err.to_string(), &[&endpoint, "does not answer like S3", "aws-endpoint-url"]);
}
