//! A snapshot repository in a local (or network-mounted) directory: object key `a/b/c` is the
//! file `root/a/b/c`.
//!
//! Every write goes to a temporary file in the destination's directory, is fsynced, then renamed
//! into place (and the directory fsynced), so readers and a crash only ever see whole files.
//! Conditional puts hold an exclusive `flock` on `<name>.lock` beside the target while they compare
//! the current content's tag and rename, which makes them atomic against other processes on the
//! same machine. An entity tag is the sha256 of the file's content.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::digest::{digest_of, ContentDigest, DigestAccumulator};
use crate::error::SnapshotError;
use crate::object::{ConditionalPutOutcome, ETag, PutCondition, VersionedObject};

pub(crate) struct DirectoryStore {
    root: PathBuf,
}

impl DirectoryStore {
    /// Creates `root` (and its parents) when missing.
    pub(crate) async fn open(root: PathBuf) -> Result<DirectoryStore, SnapshotError> {
        if !root.is_absolute() {
            return Err(SnapshotError::Invalid {
                what: "snapshot directory",
                detail: format!("'{}' is not an absolute path; use file:///<absolute path>", root.display()),
            });
        }
        let created = root.clone();
        blocking(move || fs::create_dir_all(&created).map_err(|e| SnapshotError::io("create", &created, e))).await?;
        Ok(DirectoryStore { root })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) async fn put_file(&self, key: &str, source: &Path) -> Result<(), SnapshotError> {
        let path = self.path_of(key)?;
        let source = source.to_owned();
        blocking(move || {
            let mut input = File::open(&source).map_err(|e| SnapshotError::io("open", &source, e))?;
            write_atomically(&path, |output| io::copy(&mut input, output).map(drop))
        })
        .await
    }

    pub(crate) async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        let path = self.path_of(key)?;
        blocking(move || write_atomically(&path, |output| output.write_all(&bytes))).await
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<VersionedObject>, SnapshotError> {
        let path = self.path_of(key)?;
        blocking(move || Ok(read_if_exists(&path)?.map(|bytes| VersionedObject { etag: etag_of(&bytes), bytes }))).await
    }

    pub(crate) async fn digest(&self, key: &str) -> Result<Option<ContentDigest>, SnapshotError> {
        let path = self.path_of(key)?;
        blocking(move || {
            let Some(input) = open_if_exists(&path)? else {
                return Ok(None);
            };
            crate::digest::digest_of_reader(input).map(Some).map_err(|e| SnapshotError::io("read", &path, e))
        })
        .await
    }

    pub(crate) async fn download(&self, key: &str, destination: &Path) -> Result<Option<ContentDigest>, SnapshotError> {
        let path = self.path_of(key)?;
        let destination = destination.to_owned();
        blocking(move || {
            let Some(input) = open_if_exists(&path)? else {
                return Ok(None);
            };
            copy_with_digest(input, &path, &destination).map(Some)
        })
        .await
    }

    pub(crate) async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        condition: PutCondition,
    ) -> Result<ConditionalPutOutcome, SnapshotError> {
        let path = self.path_of(key)?;
        blocking(move || {
            let parent = path.parent().expect("object paths are below the root");
            fs::create_dir_all(parent).map_err(|e| SnapshotError::io("create", parent, e))?;
            let lock_path = sibling(&path, ".lock");
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| SnapshotError::io("open lock file", &lock_path, e))?;
            // Held until `lock` is dropped at the end of this closure.
            lock.lock().map_err(|e| SnapshotError::io("lock", &lock_path, e))?;
            let current = read_if_exists(&path)?.map(|content| etag_of(&content));
            let holds = match (&condition, &current) {
                (PutCondition::Absent, None) => true,
                (PutCondition::Matches(expected), Some(current)) => expected == current,
                _ => false,
            };
            if !holds {
                return Ok(ConditionalPutOutcome::LostRace);
            }
            write_atomically(&path, |output| output.write_all(&bytes))?;
            Ok(ConditionalPutOutcome::Written)
        })
        .await
    }

    /// Refuses keys that would leave the root (`..`, absolute) or are not plain `a/b/c` paths: keys
    /// can come from documents read back from the repository.
    fn path_of(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let invalid = |why: &str| SnapshotError::Invalid {
            what: "object key",
            detail: format!("'{key}' {why} (repository file://{})", self.root.display()),
        };
        if key.is_empty() {
            return Err(invalid("is empty"));
        }
        let mut path = self.root.clone();
        for segment in key.split('/') {
            let mut components = Path::new(segment).components();
            match (components.next(), components.next()) {
                (Some(Component::Normal(name)), None) if name == segment => path.push(name),
                _ => return Err(invalid("is not a relative path of plain names separated by '/'")),
            }
        }
        Ok(path)
    }
}

fn etag_of(content: &[u8]) -> ETag {
    ETag(digest_of(content).sha256)
}

/// `dir/name` -> `dir/name{suffix}`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().expect("object paths end in a name").to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

fn open_if_exists(path: &Path) -> Result<Option<File>, SnapshotError> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::io("open", path, e)),
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, SnapshotError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::io("read", path, e)),
    }
}

/// Copies `input` (the file at `source`) to `destination`, fsynced, digesting what passes by.
fn copy_with_digest(mut input: File, source: &Path, destination: &Path) -> Result<ContentDigest, SnapshotError> {
    let mut output = File::create(destination).map_err(|e| SnapshotError::io("create", destination, e))?;
    let mut accumulator = DigestAccumulator::default();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(SnapshotError::io("read", source, e)),
        };
        accumulator.update(&buffer[..n]);
        output.write_all(&buffer[..n]).map_err(|e| SnapshotError::io("write", destination, e))?;
    }
    output.sync_all().map_err(|e| SnapshotError::io("fsync", destination, e))?;
    Ok(accumulator.finish())
}

/// Writes `path` so that it is either absent/old or complete/new, also across a crash: `write` fills
/// a fresh temporary file beside it, which is fsynced and renamed over `path`; then the directory
/// entries are fsynced up to the store root's parent.
fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> io::Result<()>) -> Result<(), SnapshotError> {
    let parent = path.parent().expect("object paths are below the root");
    fs::create_dir_all(parent).map_err(|e| SnapshotError::io("create", parent, e))?;
    let name = path.file_name().expect("object paths end in a name").to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let written = File::create_new(&temp).and_then(|mut file| {
        write(&mut file)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(SnapshotError::io("write", &temp, e));
    }
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(SnapshotError::io("rename a temporary file to", path, e));
    }
    sync_directory(parent)?;
    // Directories `create_dir_all` may just have created must be durable too; syncing a few
    // existing ancestors again is cheap.
    for ancestor in parent.ancestors().skip(1).take(3) {
        sync_directory(ancestor)?;
    }
    Ok(())
}

fn sync_directory(dir: &Path) -> Result<(), SnapshotError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| SnapshotError::io("fsync directory", dir, e))
}

/// Runs blocking file system work off the async runtime's worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SnapshotError> + Send + 'static,
) -> Result<T, SnapshotError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, DirectoryStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::open(dir.path().join("repo")).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn keys_map_to_paths_below_the_root_only() {
        let (_dir, store) = store().await;
        assert_eq!(store.path_of("p/1/latest.json").unwrap(), store.root().join("p").join("1").join("latest.json"));
        for bad in ["", "/abs", "a//b", "../x", "a/../b", "a/./b", "a/", "."] {
            let err = store.path_of(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("'{bad}'")), "{bad:?}: {err}");
        }
    }

    #[tokio::test]
    async fn relative_roots_are_refused() {
        let err = DirectoryStore::open(PathBuf::from("relative/dir")).await.err().unwrap().to_string();
        assert!(err.contains("'relative/dir' is not an absolute path"), "{err}");
    }

    #[tokio::test]
    async fn puts_leave_no_temporary_files() {
        let (_dir, store) = store().await;
        store.put_bytes("a/b/c.json", b"{}".to_vec()).await.unwrap();
        store.put_bytes("a/b/c.json", b"{\"x\":1}".to_vec()).await.unwrap();
        let names: Vec<String> = fs::read_dir(store.root().join("a/b"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["c.json"]);
        assert_eq!(store.get("a/b/c.json").await.unwrap().unwrap().bytes, b"{\"x\":1}");
        assert!(store.get("a/b/missing.json").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn conditional_put_compares_the_current_content() {
        let (_dir, store) = store().await;
        let key = "1/latest.json";
        assert_eq!(
            store.put_if(key, b"one".to_vec(), PutCondition::Absent).await.unwrap(),
            ConditionalPutOutcome::Written
        );
        assert_eq!(
            store.put_if(key, b"two".to_vec(), PutCondition::Absent).await.unwrap(),
            ConditionalPutOutcome::LostRace
        );
        let current = store.get(key).await.unwrap().unwrap();
        assert_eq!(current.bytes, b"one");
        let stale = ETag(digest_of(b"zero").sha256);
        assert_eq!(
            store.put_if(key, b"two".to_vec(), PutCondition::Matches(stale)).await.unwrap(),
            ConditionalPutOutcome::LostRace
        );
        assert_eq!(
            store.put_if(key, b"two".to_vec(), PutCondition::Matches(current.etag.clone())).await.unwrap(),
            ConditionalPutOutcome::Written
        );
        assert_eq!(
            store.put_if(key, b"three".to_vec(), PutCondition::Matches(current.etag)).await.unwrap(),
            ConditionalPutOutcome::LostRace
        );
        assert_eq!(store.get(key).await.unwrap().unwrap().bytes, b"two");
    }

    #[tokio::test]
    async fn concurrent_conditional_puts_from_the_same_version_let_exactly_one_win() {
        let (_dir, store) = store().await;
        let store = std::sync::Arc::new(store);
        let key = "1/latest.json";
        store.put_if(key, b"base".to_vec(), PutCondition::Absent).await.unwrap();
        let base = store.get(key).await.unwrap().unwrap().etag;
        let attempts = (0..16).map(|i| {
            let store = store.clone();
            let base = base.clone();
            tokio::spawn(async move {
                store.put_if(key, format!("writer {i}").into_bytes(), PutCondition::Matches(base)).await.unwrap()
            })
        });
        let mut written = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            if attempt.await.unwrap() == ConditionalPutOutcome::Written {
                written += 1;
            }
        }
        assert_eq!(written, 1);
    }
}
