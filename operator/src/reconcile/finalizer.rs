//! Deletion of a RestateCluster. The finalizer [`FINALIZER`] holds the object until the
//! operator has dealt with the nodes' volume claims, the one thing the garbage collector does
//! not: claims made from the StatefulSet's template carry no owner reference. Everything else
//! the cluster owns goes by its owner reference once the finalizer is removed.
//!
//! The claims are kept unless `spec.storage.deleteClaimsOnDelete` asks otherwise; either way
//! the log and an Event name them. A claim deleted while its pod still runs stays until the
//! pod is gone (the API server's claim protection), so the order does not matter.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;

use super::events::{claims_on_delete, publish};
use super::{Context, ReconcileError};
use crate::crd::RestateCluster;
use crate::names::{ClusterNames, DATA_VOLUME};
use crate::objects::cluster_names;

/// The finalizer the operator puts on every RestateCluster.
pub const FINALIZER: &str = "restate.dev/cleanup";

/// Whether `claim` is a data claim of the cluster: `data-<name>-<ordinal>`.
pub fn is_data_claim(claim: &str, names: &ClusterNames) -> bool {
    // `names.volume_claim(i)` is `data-<pod>`, and pods are `<statefulset>-<i>`.
    let prefix = format!("{DATA_VOLUME}-{}-", names.statefulset());
    claim
        .strip_prefix(&prefix)
        .is_some_and(|ordinal| !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit()))
}

/// The label selector of the cluster's claims (the StatefulSet controller copies the
/// template's labels, which include the selector labels).
fn claim_selector(names: &ClusterNames) -> String {
    names.selector_labels().iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(",")
}

/// Cleanup before `cluster` goes: lists its data claims, deletes them if the spec asks, and
/// reports what it did. An error keeps the finalizer, so the next round tries again.
pub async fn cleanup(cluster: &RestateCluster, ctx: &Context) -> Result<Action, ReconcileError> {
    let names = cluster_names(cluster, &ctx.build)?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let selector = claim_selector(&names);
    let cleanup_error = |what: String| move |source| ReconcileError::Cleanup { what, source };
    let listed = claims
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(cleanup_error(format!("listing the volume claims in {} ({selector})", names.namespace)))?;
    let mut found: Vec<String> =
        listed.items.iter().map(ResourceExt::name_any).filter(|claim| is_data_claim(claim, &names)).collect();
    found.sort();

    let delete = cluster.spec.storage.delete_claims_on_delete;
    if delete {
        for claim in &found {
            match claims.delete(claim, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(cleanup_error(format!("deleting volume claim {}/{claim}", names.namespace))(source))
                }
            }
        }
        tracing::info!(cluster = %names.name, namespace = %names.namespace, claims = ?found, "RestateCluster deleted; deleted its volume claims (spec.storage.deleteClaimsOnDelete)");
    } else {
        tracing::info!(cluster = %names.name, namespace = %names.namespace, claims = ?found, "RestateCluster deleted; kept its volume claims (spec.storage.deleteClaimsOnDelete is false)");
    }
    publish(&ctx.recorder, cluster, &[claims_on_delete(delete, &found)]).await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clusters_own_data_claims_match() {
        let names = ClusterNames::new("demo", "prod", "cluster.local");
        for claim in ["data-demo-0", "data-demo-2", "data-demo-17"] {
            assert!(is_data_claim(claim, &names), "{claim}");
        }
        // `demo-1`'s claims, other volumes, and not a claim of a pod.
        for claim in ["data-demo-1-0", "logs-demo-0", "data-demo-", "data-demo", "data-demox-0", "demo-0"] {
            assert!(!is_data_claim(claim, &names), "{claim}");
        }
        let zero = ClusterNames::new("x-0", "prod", "cluster.local");
        assert!(is_data_claim(&zero.volume_claim(3), &zero));
        assert!(!is_data_claim("data-x-0", &zero));
        assert_eq!(claim_selector(&names), "app.kubernetes.io/instance=demo,app.kubernetes.io/name=restate");
    }
}
