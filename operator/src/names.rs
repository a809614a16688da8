//! Names, labels and network addresses of one cluster's objects, all derived from the
//! `RestateCluster`'s name and namespace so that the builders and the reconciler agree.
//!
//! For a cluster `demo` in namespace `prod`:
//!
//! | object | name |
//! |---|---|
//! | StatefulSet, pods `demo-0`, `demo-1`, ... | `demo` |
//! | headless Service (stable pod DNS) | `demo-cluster` |
//! | client Service (ingress 8080, admin 9070) | `demo` |
//! | ConfigMap (`restate.toml`) | `demo-config` |
//! | ServiceAccount, PodDisruptionBudget, NetworkPolicy | `demo` |
//! | volume claims | `data-demo-0`, `data-demo-1`, ... |
//!
//! Pod `demo-2` is reachable at `demo-2.demo-cluster.prod.svc.cluster.local` (the headless
//! Service publishes not-ready pods too, so a node is addressable while it starts), and
//! advertises `http://demo-2.demo-cluster.prod.svc.cluster.local:5122`.

use std::collections::BTreeMap;

/// Fabric port: node-to-node gRPC, node control, `/health` and `/metrics`.
pub const NODE_PORT: u16 = 5122;
/// Admin REST API.
pub const ADMIN_PORT: u16 = 9070;
/// HTTP ingress.
pub const INGRESS_PORT: u16 = 8080;

/// How many of the first pods every node lists as `[metadata-client] addresses`; see
/// [`ClusterNames::metadata_client_addresses`].
pub const METADATA_SEED_PODS: u32 = 3;

/// Value of `app.kubernetes.io/name` on every object of a cluster.
pub const APP_NAME: &str = "restate";
/// Value of `app.kubernetes.io/managed-by` on every object the operator creates.
pub const MANAGER: &str = "restate-operator";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Name of the volume claim template; claims are `data-<pod>`.
pub const DATA_VOLUME: &str = "data";

/// Names and addresses of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    pub name: String,
    pub namespace: String,
    /// DNS domain of the Kubernetes cluster, usually `cluster.local`.
    pub cluster_domain: String,
}

impl ClusterNames {
    pub fn new(name: impl Into<String>, namespace: impl Into<String>, cluster_domain: impl Into<String>) -> Self {
        ClusterNames { name: name.into(), namespace: namespace.into(), cluster_domain: cluster_domain.into() }
    }

    /// The StatefulSet; its pods are `<name>-<ordinal>`.
    pub fn statefulset(&self) -> String {
        self.name.clone()
    }

    /// The headless Service that gives every pod a stable DNS name.
    pub fn headless_service(&self) -> String {
        format!("{}-cluster", self.name)
    }

    /// The ClusterIP Service for clients (ingress and admin ports).
    pub fn client_service(&self) -> String {
        self.name.clone()
    }

    pub fn config_map(&self) -> String {
        format!("{}-config", self.name)
    }

    /// Every Kubernetes node's location, read by the pods (see objects/locations.rs).
    pub fn locations_config_map(&self) -> String {
        format!("{}-locations", self.name)
    }

    pub fn service_account(&self) -> String {
        self.name.clone()
    }

    pub fn pod_disruption_budget(&self) -> String {
        self.name.clone()
    }

    pub fn network_policy(&self) -> String {
        self.name.clone()
    }

    /// The Secret holding the cluster secret every RPC on the node port carries.
    pub fn cluster_secret(&self) -> String {
        format!("{}-cluster-secret", self.name)
    }

    /// The Job that runs a new image once to check that it reads the cluster's data.
    pub fn storage_check_job(&self) -> String {
        format!("{}-storage-check", self.name)
    }

    /// Labels of the storage-format check's pod: the cluster's, but not its selector (the
    /// check is no node: Services, the disruption budget and the spread leave it out).
    pub fn storage_check_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.common_labels();
        labels.insert(LABEL_NAME.to_owned(), format!("{APP_NAME}-storage-check"));
        labels
    }

    /// Pod (and Restate node) name of `ordinal`.
    pub fn pod(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// The volume claim of the pod with `ordinal`, as the StatefulSet controller names it.
    pub fn volume_claim(&self, ordinal: u32) -> String {
        format!("{DATA_VOLUME}-{}", self.pod(ordinal))
    }

    /// The DNS suffix shared by every pod: `<name>-cluster.<namespace>.svc.<domain>`.
    pub fn pod_dns_suffix(&self) -> String {
        format!("{}.{}.svc.{}", self.headless_service(), self.namespace, self.cluster_domain)
    }

    /// Stable DNS name of the pod with `ordinal`.
    pub fn pod_dns(&self, ordinal: u32) -> String {
        format!("{}.{}", self.pod(ordinal), self.pod_dns_suffix())
    }

    /// The advertised (fabric) address of the node in the pod with `ordinal`.
    pub fn node_address(&self, ordinal: u32) -> String {
        format!("http://{}:{NODE_PORT}", self.pod_dns(ordinal))
    }

    /// The advertised address as a container env value: `$(POD_NAME)` is expanded by the
    /// kubelet from the `POD_NAME` variable defined before it.
    pub fn advertised_address_template(&self) -> String {
        format!("http://$(POD_NAME).{}:{NODE_PORT}", self.pod_dns_suffix())
    }

    /// `[metadata-client] addresses` of every node: the first [`METADATA_SEED_PODS`] pods,
    /// whatever `replicas` is.
    ///
    /// The list is only where a node starts looking for the metadata store: it follows leader
    /// hints from there, and a listed pod that does not exist (a 1- or 2-node cluster) is
    /// skipped like any unreachable address. It must not depend on `replicas`: it is part of
    /// `restate.toml`, and a changed config rolls every pod, so scaling 3 -> 5 -> 3 (or 1 -> 3)
    /// would restart the whole cluster. Pods 0-2 are also the last a StatefulSet removes on
    /// scale-in, so the listed pods that exist are always the longest-lived ones, and pod 0
    /// (the one the operator provisions) is always among them.
    pub fn metadata_client_addresses(&self) -> Vec<String> {
        (0..METADATA_SEED_PODS).map(|ordinal| self.node_address(ordinal)).collect()
    }

    /// Labels that select this cluster's pods (StatefulSet selector, Services, PDB,
    /// NetworkPolicy). Never change them: a StatefulSet's selector is immutable.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL_NAME.to_owned(), APP_NAME.to_owned()), (LABEL_INSTANCE.to_owned(), self.name.clone())])
    }

    /// Labels on every object of this cluster (and its pods and volume claims).
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned());
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> ClusterNames {
        ClusterNames::new("demo", "prod", "cluster.local")
    }

    #[test]
    fn pod_addresses_use_the_headless_service() {
        let names = demo();
        assert_eq!(names.pod(2), "demo-2");
        assert_eq!(names.pod_dns(2), "demo-2.demo-cluster.prod.svc.cluster.local");
        assert_eq!(names.node_address(0), "http://demo-0.demo-cluster.prod.svc.cluster.local:5122");
        assert_eq!(names.advertised_address_template(), "http://$(POD_NAME).demo-cluster.prod.svc.cluster.local:5122");
        assert_eq!(names.volume_claim(4), "data-demo-4");
    }

    #[test]
    fn metadata_addresses_are_the_first_three_pods() {
        assert_eq!(
            demo().metadata_client_addresses(),
            vec![
                "http://demo-0.demo-cluster.prod.svc.cluster.local:5122",
                "http://demo-1.demo-cluster.prod.svc.cluster.local:5122",
                "http://demo-2.demo-cluster.prod.svc.cluster.local:5122",
            ]
        );
    }

    #[test]
    fn common_labels_extend_the_selector() {
        let names = demo();
        let common = names.common_labels();
        for (key, value) in names.selector_labels() {
            assert_eq!(common.get(&key), Some(&value));
        }
        assert_eq!(common.get(LABEL_MANAGED_BY).map(String::as_str), Some("restate-operator"));
        assert_eq!(common.get(LABEL_INSTANCE).map(String::as_str), Some("demo"));
    }
}
