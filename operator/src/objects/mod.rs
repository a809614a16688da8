//! Pure builders of every object a `RestateCluster` owns: spec in, objects out, no API calls.
//!
//! The reconciler server-side applies their output under one field manager, so a builder
//! emits exactly the fields the operator owns and nothing a 1.20 API server does not know
//! (server-side apply rejects unknown fields): where a newer API is better (policy/v1
//! PodDisruptionBudget from 1.21), [`BuildContext::server_minor`] selects it. Fields the user
//! passes through the spec (resources, affinity, tolerations, env) are copied as given.
//!
//! Every object carries the common labels and a controlling owner reference to the
//! `RestateCluster`, so deleting the cluster deletes them (volume claims made from the
//! StatefulSet's template are not owned and survive it; the operator removes those of
//! drained nodes on scale-in).

mod cluster_secret;
mod config_map;
mod disruption_budget;
mod locations;
mod network_policy;
mod service_account;
mod services;
mod statefulset;
mod storage_check;

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::DynamicObject;
use kube::Resource;

pub use cluster_secret::{cluster_secret, new_secret_value, CLUSTER_SECRET_KEY};
pub use config_map::config_map;
pub use disruption_budget::{
    pod_disruption_budget, pod_disruption_budget_resource, pod_disruption_budget_version, POLICY_V1_SINCE_MINOR,
};
pub use locations::{location_of_labels, locations_config_map, REGION_LABEL, ZONE_LABEL};
pub use network_policy::{network_policy, parse_pod_labels};
pub use service_account::service_account;
pub use services::{client_service, headless_service};
pub use statefulset::{statefulset, CONFIG_CHECKSUM_ANNOTATION, CONTAINER_NAME, TERMINATION_GRACE_PERIOD_SECONDS};
pub use storage_check::{
    storage_check_job, CHECKED_FORMAT_ANNOTATION, CHECKED_IMAGE_ANNOTATION, STORAGE_CHECK_DEADLINE_SECONDS,
};

use crate::config::{render_config, RenderedConfig};
use crate::crd::RestateCluster;
use crate::error::BuildError;
use crate::names::ClusterNames;

/// What the builders need besides the `RestateCluster`: facts about the API server and the
/// operator's own deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// Minor version of the API server (20 for 1.20), from discovery. Fields and API versions
    /// newer than 1.20 are emitted only when it is high enough.
    pub server_minor: u32,
    /// DNS domain of the Kubernetes cluster, part of every node's advertised address.
    pub cluster_domain: String,
    /// Namespace the operator runs in; the NetworkPolicy admits it to the admin and node ports.
    pub operator_namespace: String,
    /// Labels of the operator's own pods: when set, the NetworkPolicy admits only those pods
    /// of the operator's namespace, not the whole namespace.
    pub operator_pod_labels: std::collections::BTreeMap<String, String>,
}

impl BuildContext {
    /// Defaults for everything but the server version: `cluster.local`, operator namespace
    /// `restate-operator`.
    pub fn new(server_minor: u32) -> BuildContext {
        BuildContext {
            server_minor,
            cluster_domain: "cluster.local".to_owned(),
            operator_namespace: "restate-operator".to_owned(),
            operator_pod_labels: Default::default(),
        }
    }
}

/// Every owned object of one cluster, built together so that they agree (the StatefulSet's
/// checksum is that of this ConfigMap).
#[derive(Debug, Clone)]
pub struct OwnedObjects {
    pub rendered: RenderedConfig,
    pub config_map: ConfigMap,
    pub service_account: ServiceAccount,
    pub headless_service: Service,
    pub client_service: Service,
    pub statefulset: StatefulSet,
    pub pod_disruption_budget: DynamicObject,
    pub network_policy: NetworkPolicy,
}

/// Builds every owned object. The reconciler applies them in this order (the StatefulSet
/// after the ConfigMap and Services it refers to) and surfaces `rendered.overridden`.
pub fn owned_objects(cluster: &RestateCluster, ctx: &BuildContext) -> Result<OwnedObjects, BuildError> {
    let rendered = render(cluster, ctx)?;
    Ok(OwnedObjects {
        config_map: config_map(cluster, ctx, &rendered)?,
        service_account: service_account(cluster, ctx)?,
        headless_service: headless_service(cluster, ctx)?,
        client_service: client_service(cluster, ctx)?,
        statefulset: statefulset(cluster, ctx, &rendered)?,
        pod_disruption_budget: pod_disruption_budget(cluster, ctx)?,
        network_policy: network_policy(cluster, ctx)?,
        rendered,
    })
}

/// The cluster's `restate.toml` (see [`crate::config`]).
pub fn render(cluster: &RestateCluster, ctx: &BuildContext) -> Result<RenderedConfig, BuildError> {
    render_config(&cluster.spec, &cluster_names(cluster, ctx)?)
}

/// The minor version of a Kubernetes 1.x API server from its `/version` (`minor` "20",
/// "27+", "30-gke.1"): `None` when it does not parse, so the caller discovers the API
/// versions instead of guessing an old (maybe removed) one.
pub fn parse_server_minor(major: &str, minor: &str) -> Option<u32> {
    let leading = |text: &str| text.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().ok();
    match leading(major)? {
        1 => leading(minor),
        _ => None,
    }
}

/// Names and addresses of `cluster`'s objects.
pub fn cluster_names(cluster: &RestateCluster, ctx: &BuildContext) -> Result<ClusterNames, BuildError> {
    let name = cluster.metadata.name.clone().ok_or(BuildError::MissingMetadata("metadata.name"))?;
    let namespace = cluster.metadata.namespace.clone().ok_or(BuildError::MissingMetadata("metadata.namespace"))?;
    Ok(ClusterNames::new(name, namespace, ctx.cluster_domain.clone()))
}

/// The controlling owner reference every owned object carries.
pub fn owner_reference(cluster: &RestateCluster) -> Result<OwnerReference, BuildError> {
    let mut owner = cluster.controller_owner_ref(&()).ok_or(BuildError::MissingMetadata("metadata.uid"))?;
    owner.block_owner_deletion = Some(true);
    Ok(owner)
}

/// Metadata of an owned object called `name`: the cluster's namespace, common labels, owner.
fn owned_meta(cluster: &RestateCluster, names: &ClusterNames, name: String) -> Result<ObjectMeta, BuildError> {
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.common_labels()),
        owner_references: Some(vec![owner_reference(cluster)?]),
        ..ObjectMeta::default()
    })
}

/// `user` entries overlaid by `operator` entries (the operator's win).
fn merged(user: Option<&BTreeMap<String, String>>, operator: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut all = user.cloned().unwrap_or_default();
    all.extend(operator);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_is_owned_and_labelled() {
        let cluster = fixtures::cluster();
        let objects = owned_objects(&cluster, &BuildContext::new(30)).unwrap();
        let metas = [
            &objects.config_map.metadata,
            &objects.service_account.metadata,
            &objects.headless_service.metadata,
            &objects.client_service.metadata,
            &objects.statefulset.metadata,
            &objects.pod_disruption_budget.metadata,
            &objects.network_policy.metadata,
        ];
        for meta in metas {
            let name = meta.name.as_deref().unwrap();
            assert_eq!(meta.namespace.as_deref(), Some("prod"), "{name}");
            let labels = meta.labels.as_ref().unwrap();
            assert_eq!(labels["app.kubernetes.io/name"], "restate", "{name}");
            assert_eq!(labels["app.kubernetes.io/instance"], "demo", "{name}");
            assert_eq!(labels["app.kubernetes.io/managed-by"], "restate-operator", "{name}");
            let owners = meta.owner_references.as_ref().unwrap();
            assert_eq!(owners.len(), 1, "{name}");
            assert_eq!(owners[0].kind, "RestateCluster");
            assert_eq!(owners[0].api_version, "restate.dev/v1");
            assert_eq!(owners[0].name, "demo");
            assert_eq!(owners[0].uid, fixtures::UID);
            assert_eq!(owners[0].controller, Some(true));
            assert_eq!(owners[0].block_owner_deletion, Some(true));
        }
    }

    #[test]
    fn missing_metadata_is_named() {
        let mut cluster = fixtures::cluster();
        cluster.metadata.uid = None;
        let error = owned_objects(&cluster, &BuildContext::new(30)).unwrap_err();
        assert_eq!(error, BuildError::MissingMetadata("metadata.uid"));
        let mut cluster = fixtures::cluster();
        cluster.metadata.namespace = None;
        assert!(service_account(&cluster, &BuildContext::new(30)).unwrap_err().to_string().contains("namespace"));
    }

    /// Field names that a 1.20 API server does not know, in any object the builders emit.
    const NEWER_THAN_1_20: &[&str] = &[
        "minDomains",
        "nodeAffinityPolicy",
        "nodeTaintsPolicy",
        "matchLabelKeys",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
        "ordinals",
        "unhealthyPodEvictionPolicy",
        "endPort",
        "internalTrafficPolicy",
        "ipFamilyPolicy",
        "ipFamilies",
        "allocateLoadBalancerNodePorts",
        "loadBalancerClass",
        "trafficDistribution",
        "resizePolicy",
        "restartPolicy",
        "hostUsers",
        "os",
        "schedulingGates",
        "resourceClaims",
        "claims",
        "appArmorProfile",
        "grpc",
        "matchLabelKeys",
        "volumeAttributesClassName",
        "setHostnameAsFQDN",
    ];

    fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    out.push(key.clone());
                    keys(inner, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
            _ => {}
        }
    }

    #[test]
    fn server_versions_parse_or_say_they_do_not() {
        assert_eq!(parse_server_minor("1", "20"), Some(20));
        assert_eq!(parse_server_minor("1", "27+"), Some(27));
        assert_eq!(parse_server_minor("1", "30-gke.1100"), Some(30));
        assert_eq!(parse_server_minor("1", ""), None);
        assert_eq!(parse_server_minor("2", "0"), None, "not a 1.x server: discover");
        assert_eq!(parse_server_minor("", "x"), None);
    }

    #[test]
    fn no_field_newer_than_1_20_at_server_minor_20() {
        let cluster = fixtures::full_cluster();
        let objects = owned_objects(&cluster, &BuildContext::new(20)).unwrap();
        let values = [
            serde_json::to_value(&objects.config_map).unwrap(),
            serde_json::to_value(&objects.service_account).unwrap(),
            serde_json::to_value(&objects.headless_service).unwrap(),
            serde_json::to_value(&objects.client_service).unwrap(),
            serde_json::to_value(&objects.statefulset).unwrap(),
            serde_json::to_value(&objects.pod_disruption_budget).unwrap(),
            serde_json::to_value(&objects.network_policy).unwrap(),
        ];
        for value in &values {
            let mut found = Vec::new();
            keys(value, &mut found);
            let kind = value["kind"].as_str().unwrap();
            for newer in NEWER_THAN_1_20 {
                assert!(!found.iter().any(|k| k == newer), "{kind} has `{newer}`, unknown to 1.20");
            }
        }
        assert_eq!(values[5]["apiVersion"], "policy/v1beta1");
    }
}
