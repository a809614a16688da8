//! Host directories behind a pod's volumes, bind-mounted into its container.
//!
//! Layout under the state dir: `pods/<uid>/volumes/<name>/` for configMap, secret and
//! emptyDir volumes (they live as long as the pod object, across container restarts);
//! `claims/<ns>/<claim>/` for claims (see `provisioner`), which outlive pods. ConfigMap and
//! Secret files are written when the container is created and not refreshed afterwards.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use kube::Api;

use crate::pod_translation::{namespace, uid, volume_owner, Mount};
use crate::Kubelet;

/// Kubernetes' default mode of configMap and secret volume files.
const DEFAULT_FILE_MODE: u32 = 0o644;

/// Materialises every volume `container` mounts and returns the bind mounts. Fails (the
/// caller retries later) while a claim is unbound or a non-optional object is missing.
pub async fn prepare(k: &Kubelet, pod: &Pod, container: &Container) -> Result<Vec<Mount>> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    let owner = volume_owner(pod, container);
    let mut prepared: HashMap<&str, (PathBuf, bool)> = HashMap::new();
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        if !prepared.contains_key(mount.name.as_str()) {
            let volume = volumes
                .iter()
                .find(|v| v.name == mount.name)
                .ok_or_else(|| anyhow!("volumeMount {} names no volume of the pod", mount.name))?;
            let dir = prepare_volume(k, pod, volume, owner).await.with_context(|| format!("volume {}", volume.name))?;
            prepared.insert(&mount.name, dir);
        }
        let (dir, always_read_only) = &prepared[mount.name.as_str()];
        let host_path = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => {
                let path = dir.join(relative(sub).map_err(|e| anyhow!("subPath of volumeMount {}: {e}", mount.name))?);
                if !path.exists() {
                    std::fs::create_dir_all(&path)?;
                    set_mode(&path, 0o777)?;
                }
                path
            }
            None => dir.clone(),
        };
        mounts.push(Mount {
            host_path,
            container_path: mount.mount_path.clone(),
            read_only: *always_read_only || mount.read_only == Some(true),
        });
    }
    Ok(mounts)
}

/// The host directory of one volume and whether it is always mounted read-only.
async fn prepare_volume(k: &Kubelet, pod: &Pod, volume: &Volume, owner: Option<(u32, u32)>) -> Result<(PathBuf, bool)> {
    let ns = namespace(pod);
    let dir = k.pod_dir(uid(pod)).join("volumes").join(&volume.name);
    if let Some(source) = &volume.config_map {
        let optional = source.optional == Some(true);
        let data = match Api::<ConfigMap>::namespaced(k.client.clone(), ns).get_opt(&source.name).await? {
            Some(map) => {
                let mut data: BTreeMap<String, Vec<u8>> =
                    map.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
                data.extend(map.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
                data
            }
            None if optional => BTreeMap::new(),
            None => bail!("configmap {} not found", source.name),
        };
        let files = project(&data, source.items.as_deref(), source.default_mode, optional).map_err(|e| anyhow!(e))?;
        write_files(&dir, &files, owner)?;
        return Ok((dir, true));
    }
    if let Some(source) = &volume.secret {
        let name = source.secret_name.as_deref().unwrap_or_default();
        let optional = source.optional == Some(true);
        let data = match Api::<Secret>::namespaced(k.client.clone(), ns).get_opt(name).await? {
            Some(secret) => secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect(),
            None if optional => BTreeMap::new(),
            None => bail!("secret {name} not found"),
        };
        let files = project(&data, source.items.as_deref(), source.default_mode, optional).map_err(|e| anyhow!(e))?;
        write_files(&dir, &files, owner)?;
        return Ok((dir, true));
    }
    if volume.empty_dir.is_some() {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        set_mode(&dir, 0o777)?;
        chown(&dir, owner)?;
        return Ok((dir, false));
    }
    if let Some(source) = &volume.persistent_volume_claim {
        let path = claim_path(k, ns, &source.claim_name).await?;
        chown(&path, owner)?;
        return Ok((path, source.read_only == Some(true)));
    }
    if let Some(source) = &volume.host_path {
        return Ok((PathBuf::from(&source.path), false));
    }
    bail!(
        "unsupported volume type (the test kubelet knows configMap, secret, emptyDir, persistentVolumeClaim, hostPath)"
    )
}

/// The hostPath of the PersistentVolume bound to claim `ns/claim`.
async fn claim_path(k: &Kubelet, ns: &str, claim: &str) -> Result<PathBuf> {
    let pvc = Api::<PersistentVolumeClaim>::namespaced(k.client.clone(), ns)
        .get_opt(claim)
        .await?
        .ok_or_else(|| anyhow!("persistentvolumeclaim {claim} not found"))?;
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = pvc.spec.and_then(|s| s.volume_name).filter(|v| !v.is_empty() && bound);
    let volume = volume.ok_or_else(|| anyhow!("persistentvolumeclaim {claim} is not bound yet"))?;
    let pv = Api::<PersistentVolume>::all(k.client.clone()).get(&volume).await?;
    let path = pv
        .spec
        .and_then(|s| s.host_path)
        .map(|h| PathBuf::from(h.path))
        .ok_or_else(|| anyhow!("persistentvolume {volume} (claim {claim}) is not a hostPath volume"))?;
    std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(path)
}

/// Files of a configMap/secret volume as (relative path, content, mode): with `items` only
/// the listed keys at their paths (a missing key is an error unless `optional`), otherwise
/// every key under its own name. Modes default to `default_mode`, else 0644.
pub fn project(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<(PathBuf, Vec<u8>, u32)>, String> {
    let default_mode = default_mode.map_or(DEFAULT_FILE_MODE, |m| m as u32 & 0o777);
    let Some(items) = items.filter(|i| !i.is_empty()) else {
        return data.iter().map(|(key, value)| Ok((relative(key)?, value.clone(), default_mode))).collect();
    };
    let mut files = Vec::new();
    for item in items {
        match data.get(&item.key) {
            Some(value) => {
                let mode = item.mode.map_or(default_mode, |m| m as u32 & 0o777);
                files.push((relative(&item.path)?, value.clone(), mode));
            }
            None if optional => {}
            None => return Err(format!("key {} not found", item.key)),
        }
    }
    Ok(files)
}

/// `path` if it is relative and stays below its base directory.
fn relative(path: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if path.components().all(|c| matches!(c, Component::Normal(_))) && !path.as_os_str().is_empty() {
        Ok(path)
    } else {
        Err(format!("path {} must be relative without '..'", path.display()))
    }
}

/// Replaces `dir` by a directory holding exactly `files`, owned by `owner` when given.
fn write_files(dir: &Path, files: &[(PathBuf, Vec<u8>, u32)], owner: Option<(u32, u32)>) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot clear {}", dir.display()))
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    set_mode(dir, 0o755)?;
    for (path, content, mode) in files {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&file, content).with_context(|| format!("cannot write {}", file.display()))?;
        set_mode(&file, *mode)?;
        chown(&file, owner)?;
    }
    Ok(())
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {mode:o} {}", path.display()))
}

fn chown(path: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    match owner {
        Some((uid, gid)) => std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {uid}:{gid} {}", path.display())),
        None => Ok(()),
    }
}

/// Removes `pods/<uid>/` (configMap, secret and emptyDir volumes) once the pod is gone.
pub fn remove_pod_dir(k: &Kubelet, uid: &str) -> Result<()> {
    let dir = k.pod_dir(uid);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath { key: key.to_owned(), path: path.to_owned(), mode }
    }

    #[test]
    fn projects_keys_and_items() {
        let data = BTreeMap::from([("token".to_owned(), b"t".to_vec()), ("ca.crt".to_owned(), b"c".to_vec())]);
        let all = project(&data, None, None, false).unwrap();
        assert_eq!(all, vec![("ca.crt".into(), b"c".to_vec(), 0o644), ("token".into(), b"t".to_vec(), 0o644)]);
        let some = project(&data, Some(&[item("token", "sub/tok", Some(0o400))]), Some(0o440), false).unwrap();
        assert_eq!(some, vec![("sub/tok".into(), b"t".to_vec(), 0o400)]);
        assert!(project(&data, Some(&[item("nope", "x", None)]), None, false).is_err());
        assert!(project(&data, Some(&[item("nope", "x", None)]), None, true).unwrap().is_empty());
        assert!(project(&data, Some(&[item("token", "../escape", None)]), None, false).is_err());
        assert!(project(&data, Some(&[item("token", "/abs", None)]), None, false).is_err());
    }

    #[test]
    fn writes_files_replacing_old_content() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("vol");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("stale"), "x").unwrap();
        write_files(&dir, &[("a/b".into(), b"hello".to_vec(), 0o600)], None).unwrap();
        assert!(!dir.join("stale").exists());
        assert_eq!(std::fs::read(dir.join("a/b")).unwrap(), b"hello");
        let mode = std::fs::metadata(dir.join("a/b")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
