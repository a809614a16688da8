//! The snapshot repository: publishing a partition's snapshot, finding the partition's latest and
//! downloading it, over either store.
//!
//! Publishing is ordered so that `latest.json` never points at an incomplete snapshot, even if the
//! process dies at any moment: data file, then `metadata.json`, each read back and verified, and only
//! then a conditional put of `latest.json`. A crash before that last step leaves unreferenced objects
//! under the snapshot's own key prefix and the previous `latest.json` untouched.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::Rng;
use restate_config::{SnapshotDestination, SnapshotOptions};
use restate_types::time::format_rfc3339_millis;
use restate_types::PartitionId;
use serde::de::DeserializeOwned;

use crate::digest::{digest_of, digest_of_file, ContentDigest};
use crate::directory_store::DirectoryStore;
use crate::error::SnapshotError;
use crate::layout::KeyLayout;
use crate::local_snapshot::LocalSnapshot;
use crate::metadata::{decode, encode, DecodeError, LatestPointer, SnapshotMetadata, FORMAT_VERSION};
use crate::object::ConditionalPutOutcome;
use crate::publish_decision::{next_publish_step, CurrentLatest, PublishStep};
use crate::s3_store::S3Store;
use crate::snapshot_id::check_snapshot_id;
use crate::store::ObjectStore;

/// Conditional puts of `latest.json` lost to concurrent publishers before giving up. Every lost
/// round has a winner, and a publisher whose LSN is no longer above the winner's stops, so this
/// only runs out under sustained contention from many publishers of ever higher LSNs.
const MAX_PUBLISH_ATTEMPTS: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// `latest.json` now names this snapshot.
    Published(SnapshotMetadata),
    /// A snapshot at the same or a higher LSN was already published; this one was not.
    Superseded { published_lsn: u64, published_snapshot_id: String },
}

/// Where partition snapshots are published and restored from. Cheap to clone.
#[derive(Clone)]
pub struct SnapshotRepository {
    inner: Arc<Repository>,
}

struct Repository {
    store: ObjectStore,
    layout: KeyLayout,
    /// "s3://bucket/prefix" or "file:///path".
    description: String,
}

impl fmt::Debug for SnapshotRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SnapshotRepository").field(&self.inner.description).finish()
    }
}

impl SnapshotRepository {
    /// `None` when `options.destination` is `None`. Builds the S3 client (region `us-east-1` when
    /// none is configured and an endpoint is given), or a directory store (creating the directory).
    /// Does not contact S3: node startup must not fail because S3 is down.
    pub async fn from_options(options: &SnapshotOptions) -> Result<Option<SnapshotRepository>, SnapshotError> {
        let Some(destination) = &options.destination else {
            return Ok(None);
        };
        let (store, layout) = match destination {
            SnapshotDestination::S3 { bucket, prefix } => {
                (ObjectStore::S3(S3Store::new(options, bucket.clone()).await?), KeyLayout::new(prefix))
            }
            SnapshotDestination::Directory(path) => {
                (ObjectStore::Directory(DirectoryStore::open(path.clone()).await?), KeyLayout::new(""))
            }
        };
        let repository = Repository { store, layout, description: destination.to_string() };
        match &repository.store {
            ObjectStore::S3(store) => {
                tracing::info!(repository = %repository.description, endpoint = store.endpoint(), "snapshot repository")
            }
            ObjectStore::Directory(store) => {
                tracing::info!(repository = %repository.description, root = %store.root().display(), "snapshot repository")
            }
        }
        Ok(Some(SnapshotRepository { inner: Arc::new(repository) }))
    }

    /// "s3://bucket/prefix" or "file:///path", for logs and messages.
    pub fn describe(&self) -> String {
        self.inner.description.clone()
    }

    /// Uploads `snapshot.file` and its metadata under the snapshot's own key prefix, verifies the
    /// upload (size and sha256 of what is stored, read back), then publishes it as the partition's
    /// latest by a conditional put of `latest.json`, retrying on a lost race. A snapshot whose LSN is
    /// not above the published one is not published (`PublishOutcome::Superseded`); when that is
    /// known before uploading, nothing is uploaded.
    pub async fn publish(&self, snapshot: &LocalSnapshot) -> Result<PublishOutcome, SnapshotError> {
        self.inner.publish(snapshot).await
    }

    /// The partition's published snapshot, or `None` when nothing was ever published for it.
    pub async fn latest(&self, partition: PartitionId) -> Result<Option<SnapshotMetadata>, SnapshotError> {
        self.inner.latest(partition).await
    }

    /// Downloads the snapshot's data file into `dir` (created if needed) as `{snapshot_id}.sst`,
    /// verifies size and sha256 against the metadata, and returns the file's path. Nothing is left at
    /// that path when verification fails.
    pub async fn download(&self, snapshot: &SnapshotMetadata, dir: &Path) -> Result<PathBuf, SnapshotError> {
        self.inner.download(snapshot, dir).await
    }
}

impl Repository {
    async fn publish(&self, snapshot: &LocalSnapshot) -> Result<PublishOutcome, SnapshotError> {
        check_snapshot_id(&snapshot.snapshot_id)
            .map_err(|detail| SnapshotError::Invalid { what: "snapshot to publish", detail })?;
        let partition = snapshot.partition;
        let lsn = snapshot.lsn;
        let id = snapshot.snapshot_id.as_str();
        let latest_key = self.layout.latest_key(partition);

        // Nothing to upload when it would not be published anyway.
        if let PublishStep::Superseded { published_lsn, published_snapshot_id } =
            self.next_step(partition, &latest_key, lsn.0).await?
        {
            return Ok(self.superseded(snapshot, published_lsn, published_snapshot_id, None));
        }

        let file = snapshot.file.clone();
        let local = tokio::task::spawn_blocking(move || digest_of_file(&file))
            .await
            .expect("digesting a file does not panic")
            .map_err(|e| SnapshotError::io("read", &snapshot.file, e))?;

        let data_key = self.layout.data_key(partition, lsn, id);
        self.store.put_file(&data_key, &snapshot.file, local.size).await?;
        self.verify_stored(partition, &data_key, &local).await?;

        let metadata = SnapshotMetadata {
            format_version: FORMAT_VERSION,
            snapshot_id: id.to_owned(),
            partition_id: partition.0,
            lsn: lsn.0,
            created_at: format_rfc3339_millis(unix_now_ms()),
            node_name: snapshot.node_name.clone(),
            cluster_name: snapshot.cluster_name.clone(),
            data_key: data_key.clone(),
            size_bytes: local.size,
            sha256: local.sha256.clone(),
        };
        let metadata_key = self.layout.metadata_key(partition, lsn, id);
        let metadata_bytes = encode(&metadata);
        let metadata_digest = digest_of(&metadata_bytes);
        self.store.put_bytes(&metadata_key, metadata_bytes).await?;
        self.verify_stored(partition, &metadata_key, &metadata_digest).await?;

        let pointer = encode(&LatestPointer {
            format_version: FORMAT_VERSION,
            snapshot_id: id.to_owned(),
            lsn: lsn.0,
            metadata_key: metadata_key.clone(),
        });
        for attempt in 1..=MAX_PUBLISH_ATTEMPTS {
            match self.next_step(partition, &latest_key, lsn.0).await? {
                PublishStep::Superseded { published_lsn, published_snapshot_id } => {
                    let uploaded = Some(metadata_key.as_str());
                    return Ok(self.superseded(snapshot, published_lsn, published_snapshot_id, uploaded));
                }
                PublishStep::Write(condition) => {
                    match self.store.put_if(&latest_key, pointer.clone(), condition).await? {
                        ConditionalPutOutcome::Written => {
                            tracing::info!(
                                %partition, snapshot_id = id, %lsn, size_bytes = local.size,
                                repository = %self.description, key = %metadata_key,
                                "published partition snapshot"
                            );
                            return Ok(PublishOutcome::Published(metadata));
                        }
                        ConditionalPutOutcome::LostRace => {
                            tracing::debug!(%partition, snapshot_id = id, attempt, "latest.json changed concurrently; reading it again");
                            tokio::time::sleep(lost_race_backoff(attempt)).await;
                        }
                    }
                }
                PublishStep::RefuseNewerFormat { .. } => unreachable!("next_step turns this into an error"),
            }
        }
        Err(SnapshotError::PublishContended {
            partition,
            snapshot_id: id.to_owned(),
            key: latest_key,
            repository: self.description.clone(),
            attempts: MAX_PUBLISH_ATTEMPTS,
        })
    }

    /// Reads the current `latest.json` and decides; never returns `RefuseNewerFormat`.
    async fn next_step(
        &self,
        partition: PartitionId,
        latest_key: &str,
        lsn: u64,
    ) -> Result<PublishStep, SnapshotError> {
        let current = self.store.get(latest_key).await?;
        let decoded = current.as_ref().map(|object| decode::<LatestPointer>(&object.bytes));
        let current_latest = match (&current, &decoded) {
            (Some(object), Some(pointer)) => CurrentLatest::Present { etag: &object.etag, pointer: pointer.as_ref() },
            _ => CurrentLatest::Absent,
        };
        if let Some(Err(DecodeError::Malformed(detail))) = &decoded {
            tracing::warn!(%partition, key = latest_key, repository = %self.description, detail, "replacing a malformed latest.json");
        }
        match next_publish_step(current_latest, lsn) {
            PublishStep::RefuseNewerFormat { found } => Err(SnapshotError::UnsupportedFormat {
                partition,
                key: latest_key.to_owned(),
                repository: self.description.clone(),
                found,
                supported: FORMAT_VERSION,
            }),
            step => Ok(step),
        }
    }

    /// `uploaded`: the metadata key, when the snapshot's objects were already stored; nothing refers
    /// to them, so they may be deleted.
    fn superseded(
        &self,
        snapshot: &LocalSnapshot,
        published_lsn: u64,
        published_snapshot_id: String,
        uploaded: Option<&str>,
    ) -> PublishOutcome {
        tracing::info!(
            partition = %snapshot.partition, snapshot_id = snapshot.snapshot_id, lsn = %snapshot.lsn,
            published_lsn, published_snapshot_id, repository = %self.description, unreferenced_upload = uploaded,
            "not publishing snapshot: the partition's published snapshot is at least as recent"
        );
        PublishOutcome::Superseded { published_lsn, published_snapshot_id }
    }

    /// Reads `key` back in full and compares it with what was meant to be stored.
    async fn verify_stored(
        &self,
        partition: PartitionId,
        key: &str,
        expected: &ContentDigest,
    ) -> Result<(), SnapshotError> {
        let corrupt = |detail: String| SnapshotError::Corrupt {
            partition,
            key: key.to_owned(),
            repository: self.description.clone(),
            detail,
        };
        match self.store.digest(key, expected.size).await? {
            Some(stored) if stored == *expected => Ok(()),
            Some(stored) => Err(corrupt(format!(
                "right after upload it holds {stored}, but {expected} were uploaded; the snapshot was not \
                 published, publish it again"
            ))),
            None => Err(corrupt(
                "it is absent right after a successful upload; the snapshot was not published, check that \
                 nothing else deletes objects in the repository and publish again"
                    .to_owned(),
            )),
        }
    }

    async fn latest(&self, partition: PartitionId) -> Result<Option<SnapshotMetadata>, SnapshotError> {
        let latest_key = self.layout.latest_key(partition);
        let Some(latest) = self.store.get(&latest_key).await? else {
            return Ok(None);
        };
        let pointer: LatestPointer = self.decode_document(partition, &latest_key, &latest.bytes)?;
        let Some(stored) = self.store.get(&pointer.metadata_key).await? else {
            return Err(SnapshotError::Missing {
                partition,
                key: pointer.metadata_key,
                repository: self.description.clone(),
            });
        };
        let metadata: SnapshotMetadata = self.decode_document(partition, &pointer.metadata_key, &stored.bytes)?;
        if metadata.partition_id != partition.0
            || metadata.lsn != pointer.lsn
            || metadata.snapshot_id != pointer.snapshot_id
        {
            return Err(SnapshotError::Corrupt {
                partition,
                key: pointer.metadata_key,
                repository: self.description.clone(),
                detail: format!(
                    "it describes snapshot {} of partition {} at LSN {}, but '{latest_key}' names snapshot {} at \
                     LSN {}",
                    metadata.snapshot_id, metadata.partition_id, metadata.lsn, pointer.snapshot_id, pointer.lsn
                ),
            });
        }
        Ok(Some(metadata))
    }

    fn decode_document<T: DeserializeOwned>(
        &self,
        partition: PartitionId,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, SnapshotError> {
        decode(bytes).map_err(|error| match error {
            DecodeError::Malformed(detail) => SnapshotError::Corrupt {
                partition,
                key: key.to_owned(),
                repository: self.description.clone(),
                detail: format!("it is not a valid snapshot document: {detail}"),
            },
            DecodeError::UnsupportedVersion(found) => SnapshotError::UnsupportedFormat {
                partition,
                key: key.to_owned(),
                repository: self.description.clone(),
                found,
                supported: FORMAT_VERSION,
            },
        })
    }

    async fn download(&self, snapshot: &SnapshotMetadata, dir: &Path) -> Result<PathBuf, SnapshotError> {
        let partition = snapshot.partition();
        let key = &snapshot.data_key;
        check_snapshot_id(&snapshot.snapshot_id)
            .map_err(|detail| SnapshotError::Invalid { what: "snapshot to download", detail })?;
        tokio::fs::create_dir_all(dir).await.map_err(|e| SnapshotError::io("create", dir, e))?;
        let destination = dir.join(format!("{}.sst", snapshot.snapshot_id));
        let partial = dir.join(format!(".{}.sst.partial", snapshot.snapshot_id));
        let discard_partial = || async { drop(tokio::fs::remove_file(&partial).await) };

        let downloaded = match self.store.download(key, &partial, snapshot.size_bytes).await {
            Ok(Some(digest)) => digest,
            Ok(None) => {
                return Err(SnapshotError::Missing {
                    partition,
                    key: key.clone(),
                    repository: self.description.clone(),
                })
            }
            Err(error) => {
                discard_partial().await;
                return Err(error);
            }
        };
        let expected = ContentDigest { size: snapshot.size_bytes, sha256: snapshot.sha256.to_ascii_lowercase() };
        if downloaded != expected {
            discard_partial().await;
            return Err(SnapshotError::Corrupt {
                partition,
                key: key.clone(),
                repository: self.description.clone(),
                detail: format!(
                    "it holds {downloaded}, but its metadata promises {expected}; restore from another snapshot \
                     or publish a new one"
                ),
            });
        }
        tokio::fs::rename(&partial, &destination)
            .await
            .map_err(|e| SnapshotError::io("rename into", &destination, e))?;
        tracing::info!(%partition, snapshot_id = snapshot.snapshot_id, lsn = snapshot.lsn, path = %destination.display(), "downloaded partition snapshot");
        Ok(destination)
    }
}

/// A short random pause so that racing publishers do not retry in lock step.
fn lost_race_backoff(attempt: u32) -> Duration {
    let base_ms = 5 * u64::from(attempt.min(10));
    Duration::from_millis(base_ms + rand::rng().random_range(0..=base_ms))
}

fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
