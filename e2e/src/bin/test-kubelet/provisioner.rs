//! A hostPath volume provisioner: the testbed has no StorageClass and no provisioner, so a
//! claim would stay Pending and the scheduler would never bind its pod.
//!
//! Contract: every Pending claim without a volume (any namespace, any storage class) gets a
//! PersistentVolume `pv-<claim uid>` pre-bound to it (`claimRef` with the claim's UID) whose
//! hostPath is `<state-dir>/claims/<ns>/<claim>`; kube-controller-manager's binder completes
//! the binding. The directory lives as long as the claim: pods come and go, the data stays.
//! When the claim is gone its volume and directory are deleted.
//!
//! With several kubelets (one per Node) a claim of a WaitForFirstConsumer class waits for
//! the scheduler to pick its pod's Node (annotation `volume.kubernetes.io/selected-node`)
//! and is provisioned by that Node's kubelet only; any other claim by whichever is first.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::Api;
use serde_json::json;
use tracing::{info, warn};

use crate::volumes::set_mode;
use crate::Kubelet;

/// Label on the volumes this provisioner creates; its value is the node name.
const LABEL_PROVISIONER: &str = "restate-testbed.provisioned-by";
const ANNOTATION_CLAIM_PATH: &str = "restate-testbed/claim-dir";
/// Set by the scheduler on a claim of a WaitForFirstConsumer class: the Node of its pod.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

pub async fn run(k: Arc<Kubelet>) {
    let mut last_error = None;
    loop {
        match reconcile(&k).await {
            Ok(()) => last_error = None,
            Err(err) => {
                let text = format!("{err:#}");
                if last_error.as_ref() != Some(&text) {
                    warn!("volume provisioner: {text}");
                }
                last_error = Some(text);
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn reconcile(k: &Kubelet) -> Result<()> {
    let claims = Api::<PersistentVolumeClaim>::all(k.client.clone()).list(&ListParams::default()).await?.items;
    let classes = Api::<StorageClass>::all(k.client.clone()).list(&ListParams::default()).await?.items;
    let waits_for_consumer: HashSet<&str> = classes
        .iter()
        .filter(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    let volumes_api = Api::<PersistentVolume>::all(k.client.clone());
    let selector = format!("{LABEL_PROVISIONER}={}", k.node_name);
    let volumes = volumes_api.list(&ListParams::default().labels(&selector)).await?.items;

    // Volumes of deleted claims first: a claim deleted and recreated under the same name
    // reuses the directory path, which must be emptied before the new volume points at it.
    let claim_uids: HashSet<&str> = claims.iter().filter_map(|c| c.metadata.uid.as_deref()).collect();
    for volume in &volumes {
        let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        if claim_ref.and_then(|r| r.uid.as_deref()).is_some_and(|uid| claim_uids.contains(uid)) {
            continue;
        }
        let name = volume.metadata.name.clone().unwrap_or_default();
        match volumes_api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete persistentvolume {name}")),
        }
        if let Some(dir) = volume.metadata.annotations.as_ref().and_then(|a| a.get(ANNOTATION_CLAIM_PATH)) {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => warn!("cannot remove {dir}: {e}"),
                _ => {}
            }
        }
        let claim =
            claim_ref.map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(""), r.name.as_deref().unwrap_or("")));
        info!("claim {} deleted: removed persistentvolume {name} and its directory", claim.unwrap_or_default());
    }

    let existing: HashSet<&str> = volumes.iter().filter_map(|v| v.metadata.name.as_deref()).collect();
    for claim in &claims {
        let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()).is_none_or(|p| p == "Pending");
        let unbound = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()).is_none_or(str::is_empty);
        if !pending || !unbound || claim.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let selected = claim.metadata.annotations.as_ref().and_then(|a| a.get(SELECTED_NODE));
        let class = claim.spec.as_ref().and_then(|s| s.storage_class_name.as_deref()).unwrap_or_default();
        match selected {
            Some(node) if *node != k.node_name => continue,
            None if waits_for_consumer.contains(class) => continue,
            _ => {}
        }
        let ns = claim.metadata.namespace.as_deref().unwrap_or("default");
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        let dir = k.state_dir.join("claims").join(ns).join(name);
        let volume = persistent_volume_for(claim, &dir.to_string_lossy(), &k.node_name)
            .map_err(|e| anyhow!("claim {ns}/{name}: {e}"))?;
        let volume_name = volume.metadata.name.clone().unwrap_or_default();
        if existing.contains(volume_name.as_str()) {
            continue;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        set_mode(&dir, 0o777)?;
        match volumes_api.create(&PostParams::default(), &volume).await {
            Ok(_) => info!("claim {ns}/{name}: created persistentvolume {volume_name} at {}", dir.display()),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e).with_context(|| format!("claim {ns}/{name}: cannot create {volume_name}")),
        }
    }
    Ok(())
}

/// The volume for `claim`: its requested size and access modes, its storage class (or ""),
/// reclaim policy Retain (this provisioner deletes it), pre-bound by `claimRef`.
pub fn persistent_volume_for(claim: &PersistentVolumeClaim, dir: &str, node: &str) -> Result<PersistentVolume, String> {
    let spec = claim.spec.as_ref().ok_or("the claim has no spec")?;
    let uid = claim.metadata.uid.as_deref().ok_or("the claim has no uid")?;
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .ok_or("the claim requests no storage size")?;
    let access_modes = spec.access_modes.clone().filter(|m| !m.is_empty()).unwrap_or(vec!["ReadWriteOnce".to_owned()]);
    let volume = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": format!("pv-{uid}"),
            "labels": {LABEL_PROVISIONER: node},
            "annotations": BTreeMap::from([(ANNOTATION_CLAIM_PATH, dir)]),
        },
        "spec": {
            "capacity": {"storage": size},
            "accessModes": access_modes,
            "storageClassName": spec.storage_class_name.clone().unwrap_or_default(),
            "persistentVolumeReclaimPolicy": "Retain",
            "volumeMode": spec.volume_mode.clone().unwrap_or("Filesystem".to_owned()),
            "hostPath": {"path": dir, "type": "DirectoryOrCreate"},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": claim.metadata.namespace.as_deref().unwrap_or("default"),
                "name": claim.metadata.name,
                "uid": uid,
            },
        },
    });
    serde_json::from_value(volume).map_err(|e| format!("cannot build the volume: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_is_pre_bound_to_the_claim() {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data-demo-0", "namespace": "prod", "uid": "u-1"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }))
        .unwrap();
        let pv = persistent_volume_for(&claim, "/s/claims/prod/data-demo-0", "n").unwrap();
        let pv = serde_json::to_value(pv).unwrap();
        assert_eq!(pv["metadata"]["name"], "pv-u-1");
        assert_eq!(pv["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(pv["spec"]["storageClassName"], "");
        assert_eq!(pv["spec"]["hostPath"]["path"], "/s/claims/prod/data-demo-0");
        assert_eq!(pv["spec"]["claimRef"]["uid"], "u-1");
        assert_eq!(pv["spec"]["claimRef"]["namespace"], "prod");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    }
}
