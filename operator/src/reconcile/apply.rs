//! Server-side apply of the objects a cluster owns, under one field manager, in an
//! order where every object exists before what refers to it.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::Client;
use serde::Serialize;

use crate::objects::{pod_disruption_budget_resource, OwnedObjects};

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "restate-operator";

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply<K>(api: Api<K>, name: &str, object: &K) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &apply_params(), &Patch::Apply(object)).await.map(|_| ())
}

fn name_of<K: kube::Resource>(object: &K) -> &str {
    object.meta().name.as_deref().unwrap_or_default()
}

/// Every Kubernetes node (their topology labels give the pods' locations; see
/// objects/locations.rs).
pub async fn list_nodes(client: &Client) -> Result<Vec<Node>, (String, kube::Error)> {
    Ok(Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(|e| ("the list of Nodes (for the pods' locations)".to_owned(), e))?
        .items)
}

/// Applies one ConfigMap (the locations, which is not part of [`OwnedObjects`]: it follows
/// the Kubernetes nodes, not the spec).
pub async fn apply_config_map(client: &Client, namespace: &str, map: &ConfigMap) -> Result<(), (String, kube::Error)> {
    apply(Api::<ConfigMap>::namespaced(client.clone(), namespace), name_of(map), map)
        .await
        .map_err(|e| (format!("ConfigMap {namespace}/{}", name_of(map)), e))
}

/// Applies every owned object in `namespace`; the error names the object that failed.
pub async fn apply_owned(
    client: &Client,
    namespace: &str,
    objects: &OwnedObjects,
    server_minor: u32,
) -> Result<(), (String, kube::Error)> {
    let at = |kind: &str, name: &str| format!("{kind} {namespace}/{name}");
    let sa = &objects.service_account;
    apply(Api::<ServiceAccount>::namespaced(client.clone(), namespace), name_of(sa), sa)
        .await
        .map_err(|e| (at("ServiceAccount", name_of(sa)), e))?;
    let cm = &objects.config_map;
    apply(Api::<ConfigMap>::namespaced(client.clone(), namespace), name_of(cm), cm)
        .await
        .map_err(|e| (at("ConfigMap", name_of(cm)), e))?;
    for service in [&objects.headless_service, &objects.client_service] {
        apply(Api::<Service>::namespaced(client.clone(), namespace), name_of(service), service)
            .await
            .map_err(|e| (at("Service", name_of(service)), e))?;
    }
    let sts = &objects.statefulset;
    apply(Api::<StatefulSet>::namespaced(client.clone(), namespace), name_of(sts), sts)
        .await
        .map_err(|e| (at("StatefulSet", name_of(sts)), e))?;
    let pdb = &objects.pod_disruption_budget;
    let resource = pod_disruption_budget_resource(server_minor);
    let pdbs: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let pdb_name = pdb.metadata.name.clone().unwrap_or_default();
    pdbs.patch(&pdb_name, &apply_params(), &Patch::Apply(pdb))
        .await
        .map_err(|e| (at("PodDisruptionBudget", &pdb_name), e))?;
    let policy = &objects.network_policy;
    apply(Api::<NetworkPolicy>::namespaced(client.clone(), namespace), name_of(policy), policy)
        .await
        .map_err(|e| (at("NetworkPolicy", name_of(policy)), e))?;
    Ok(())
}
