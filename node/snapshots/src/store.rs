//! The object store under a repository: S3 or a local directory. Both offer the same small set of
//! operations on keys (`/`-separated, relative to the store's root): whole-object puts, reads that
//! report absence as `None`, streaming digests and downloads, and a conditional put guarded by an
//! entity tag.

use std::path::Path;

use crate::digest::ContentDigest;
use crate::directory_store::DirectoryStore;
use crate::error::SnapshotError;
use crate::object::{ConditionalPutOutcome, PutCondition, VersionedObject};
use crate::s3_store::S3Store;

pub(crate) enum ObjectStore {
    S3(S3Store),
    Directory(DirectoryStore),
}

impl ObjectStore {
    /// Uploads the local file `source` (of `size` bytes) as `key`, replacing any object there.
    pub(crate) async fn put_file(&self, key: &str, source: &Path, size: u64) -> Result<(), SnapshotError> {
        match self {
            ObjectStore::S3(store) => store.put_file(key, source, size).await,
            ObjectStore::Directory(store) => store.put_file(key, source).await,
        }
    }

    /// Stores `bytes` as `key`, replacing any object there.
    pub(crate) async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        match self {
            ObjectStore::S3(store) => store.put_bytes(key, bytes).await,
            ObjectStore::Directory(store) => store.put_bytes(key, bytes).await,
        }
    }

    /// Reads a small object whole; `None` when it does not exist.
    pub(crate) async fn get(&self, key: &str) -> Result<Option<VersionedObject>, SnapshotError> {
        match self {
            ObjectStore::S3(store) => store.get(key).await,
            ObjectStore::Directory(store) => store.get(key).await,
        }
    }

    /// Size and sha256 of what is stored under `key` (read back in full); `None` when it does not
    /// exist. `expected_size` only scales the time limit.
    pub(crate) async fn digest(&self, key: &str, expected_size: u64) -> Result<Option<ContentDigest>, SnapshotError> {
        match self {
            ObjectStore::S3(store) => store.digest(key, expected_size).await,
            ObjectStore::Directory(store) => store.digest(key).await,
        }
    }

    /// Copies the object to the local file `destination` (created or truncated, fsynced) and returns
    /// the digest of what was written; `None` (and no file) when the object does not exist.
    /// `expected_size` only scales the time limit.
    pub(crate) async fn download(
        &self,
        key: &str,
        destination: &Path,
        expected_size: u64,
    ) -> Result<Option<ContentDigest>, SnapshotError> {
        match self {
            ObjectStore::S3(store) => store.download(key, destination, expected_size).await,
            ObjectStore::Directory(store) => store.download(key, destination).await,
        }
    }

    /// Writes `bytes` as `key` only if `condition` holds at the moment of writing (atomically with
    /// respect to other conditional writers of the same key).
    pub(crate) async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: PutCondition,
    ) -> Result<ConditionalPutOutcome, SnapshotError> {
        match self {
            ObjectStore::S3(store) => store.put_if(key, bytes, condition).await,
            ObjectStore::Directory(store) => store.put_if(key, bytes, condition).await,
        }
    }
}
