//! The ConfigMap `<name>-locations`: every Kubernetes node's location in Restate's form
//! (`region.zone`), from its `topology.kubernetes.io/region` and `.../zone` labels. Each pod
//! mounts it and reads its own node's entry (`location-file` =
//! `/etc/restate-locations/$(KUBERNETES_NODE_NAME)`): the downward API cannot pass a node's
//! labels to a pod, and the operator never reads Pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Node};

use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;

pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// A node labelled with a zone but no region gets this region.
pub const DEFAULT_REGION: &str = "default";

/// A node's location from its labels: `region.zone`, `region`, or "" when it has neither
/// (a value Restate's location syntax would refuse is left out, so the node starts without
/// a location instead of not starting).
pub fn location_of_labels(labels: &BTreeMap<String, String>) -> String {
    let region = labels.get(REGION_LABEL).map(String::as_str).filter(|r| !r.is_empty());
    let zone = labels.get(ZONE_LABEL).map(String::as_str).filter(|z| !z.is_empty());
    let text = match (region, zone) {
        (Some(region), Some(zone)) => format!("{region}.{zone}"),
        (None, Some(zone)) => format!("{DEFAULT_REGION}.{zone}"),
        (Some(region), None) => region.to_owned(),
        (None, None) => String::new(),
    };
    if text.parse::<restate_types::Location>().is_ok() {
        text
    } else {
        String::new()
    }
}

/// `<name>-locations` with one entry per Kubernetes node of `nodes` (its location, or ""
/// for a node without topology labels: the pod starts without a location).
pub fn locations_config_map(
    cluster: &RestateCluster,
    ctx: &BuildContext,
    nodes: &[Node],
) -> Result<ConfigMap, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    let data = nodes
        .iter()
        .filter_map(|node| {
            let name = node.metadata.name.clone()?;
            Some((name, location_of_labels(node.metadata.labels.as_ref().unwrap_or(&BTreeMap::new()))))
        })
        .collect();
    Ok(ConfigMap {
        metadata: owned_meta(cluster, &names, names.locations_config_map())?,
        data: Some(data),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn locations_come_from_the_topology_labels() {
        assert_eq!(
            location_of_labels(&labels(&[(REGION_LABEL, "eu-west-1"), (ZONE_LABEL, "eu-west-1a")])),
            "eu-west-1.eu-west-1a"
        );
        assert_eq!(location_of_labels(&labels(&[(ZONE_LABEL, "a")])), "default.a");
        assert_eq!(location_of_labels(&labels(&[(REGION_LABEL, "us")])), "us");
        assert_eq!(location_of_labels(&labels(&[("kubernetes.io/hostname", "n1")])), "");
        assert_eq!(location_of_labels(&labels(&[(ZONE_LABEL, "a.b")])), "", "not a Restate location: left out");
    }

    #[test]
    fn every_node_gets_an_entry() {
        let cluster = fixtures::full_cluster();
        let node = |name: &str, zone: Option<&str>| Node {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                labels: zone.map(|z| labels(&[(REGION_LABEL, "r"), (ZONE_LABEL, z)])),
                ..Default::default()
            },
            ..Default::default()
        };
        let map =
            locations_config_map(&cluster, &BuildContext::new(20), &[node("k1", Some("a")), node("k2", None)]).unwrap();
        assert_eq!(map.metadata.name.as_deref(), Some("demo-locations"));
        let data = map.data.unwrap();
        assert_eq!((data["k1"].as_str(), data["k2"].as_str()), ("r.a", ""));
    }
}
