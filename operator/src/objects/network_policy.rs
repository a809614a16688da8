//! The NetworkPolicy limiting who reaches the nodes (ingress only; egress is left open, as
//! nodes call service deployments and S3 wherever they are).
//!
//! Allowed:
//! 1. the cluster's own pods, on all three ports (raft, metadata, logs, forwarding);
//! 2. the operator's pods (those of its namespace with its pod labels, or its whole
//!    namespace when they are not known), on the node port (provisioning, draining,
//!    snapshots) and the admin port;
//! 3. the ingress port from the namespaces `spec.network.ingressNamespaceSelector` selects,
//!    or from the cluster's own namespace when it is unset.
//!
//! The operator's namespace is selected by its `kubernetes.io/metadata.name` label, which
//! Kubernetes sets on every namespace from 1.21 on; on 1.20 the namespace needs that label
//! added by hand (e.g. by the Helm chart's installer) for rule 2 to match.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;
use crate::names::{ADMIN_PORT, INGRESS_PORT, NODE_PORT};

/// The label carrying a namespace's own name (automatic from Kubernetes 1.21).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn ports(numbers: &[u16]) -> Option<Vec<NetworkPolicyPort>> {
    Some(
        numbers
            .iter()
            .map(|number| NetworkPolicyPort {
                port: Some(IntOrString::Int(i32::from(*number))),
                protocol: Some("TCP".to_owned()),
                end_port: None,
            })
            .collect(),
    )
}

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels), match_expressions: None }
}

/// Parses `--operator-pod-labels` (`key=value,key=value`); the error names the bad item.
pub fn parse_pod_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| format!("'{item}' is not key=value (e.g. app.kubernetes.io/name=restate-operator)"))?;
        labels.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    Ok(labels)
}

/// `<name>` over the cluster's pods, with the three ingress rules above.
pub fn network_policy(cluster: &RestateCluster, ctx: &BuildContext) -> Result<NetworkPolicy, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    let peers = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(selector(names.selector_labels())),
            ..Default::default()
        }]),
        ports: ports(&[NODE_PORT, ADMIN_PORT, INGRESS_PORT]),
    };
    let operator = NetworkPolicyIngressRule {
        from: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(selector(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_owned(),
                ctx.operator_namespace.clone(),
            )]))),
            // Both selectors in one peer: pods with these labels in that namespace.
            pod_selector: (!ctx.operator_pod_labels.is_empty()).then(|| selector(ctx.operator_pod_labels.clone())),
            ..Default::default()
        }]),
        ports: ports(&[NODE_PORT, ADMIN_PORT]),
    };
    let ingress_from = match cluster.spec.network.as_ref().and_then(|n| n.ingress_namespace_selector.clone()) {
        Some(namespaces) => NetworkPolicyPeer { namespace_selector: Some(namespaces), ..Default::default() },
        // An empty pod selector without a namespace selector: every pod of this namespace.
        None => NetworkPolicyPeer { pod_selector: Some(LabelSelector::default()), ..Default::default() },
    };
    let clients = NetworkPolicyIngressRule { from: Some(vec![ingress_from]), ports: ports(&[INGRESS_PORT]) };
    Ok(NetworkPolicy {
        metadata: owned_meta(cluster, &names, names.network_policy())?,
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(names.selector_labels())),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![peers, operator, clients]),
            egress: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    fn rules(policy: &NetworkPolicy) -> &[NetworkPolicyIngressRule] {
        policy.spec.as_ref().unwrap().ingress.as_deref().unwrap()
    }

    fn port_numbers(rule: &NetworkPolicyIngressRule) -> Vec<IntOrString> {
        rule.ports.as_ref().unwrap().iter().map(|p| p.port.clone().unwrap()).collect()
    }

    #[test]
    fn peers_operator_and_clients_are_admitted() {
        let mut ctx = BuildContext::new(20);
        ctx.operator_namespace = "ops".into();
        let policy = network_policy(&fixtures::cluster(), &ctx).unwrap();
        let spec = policy.spec.as_ref().unwrap();
        assert_eq!(
            spec.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["app.kubernetes.io/instance"],
            "demo"
        );
        assert_eq!(spec.policy_types.as_deref(), Some(&["Ingress".to_owned()][..]));
        let rules = rules(&policy);
        assert_eq!(rules.len(), 3);

        let peer = &rules[0].from.as_ref().unwrap()[0];
        assert_eq!(
            peer.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["app.kubernetes.io/name"],
            "restate"
        );
        assert!(peer.namespace_selector.is_none(), "own namespace only");
        assert_eq!(port_numbers(&rules[0]), [IntOrString::Int(5122), IntOrString::Int(9070), IntOrString::Int(8080)]);

        let operator = &rules[1].from.as_ref().unwrap()[0];
        let namespace = operator.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(namespace["kubernetes.io/metadata.name"], "ops");
        assert!(operator.pod_selector.is_none(), "without its pod labels: the operator's whole namespace");
        assert_eq!(port_numbers(&rules[1]), [IntOrString::Int(5122), IntOrString::Int(9070)]);

        let clients = &rules[2].from.as_ref().unwrap()[0];
        assert_eq!(clients.pod_selector, Some(LabelSelector::default()), "unset: the cluster's namespace");
        assert!(clients.namespace_selector.is_none());
        assert_eq!(port_numbers(&rules[2]), [IntOrString::Int(8080)]);
    }

    #[test]
    fn with_its_pod_labels_only_the_operators_pods_are_admitted() {
        let mut ctx = BuildContext::new(20);
        ctx.operator_namespace = "ops".into();
        ctx.operator_pod_labels =
            parse_pod_labels("app.kubernetes.io/name=restate-operator, app.kubernetes.io/instance=ops").unwrap();
        let policy = network_policy(&fixtures::cluster(), &ctx).unwrap();
        let operator = &rules(&policy)[1].from.as_ref().unwrap()[0];
        let pods = operator.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(pods["app.kubernetes.io/name"], "restate-operator");
        assert_eq!(pods["app.kubernetes.io/instance"], "ops");
        let namespace = operator.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(namespace["kubernetes.io/metadata.name"], "ops", "in the operator's namespace only");
        let err = parse_pod_labels("app=op,oops").unwrap_err();
        assert!(err.contains("'oops' is not key=value"), "{err}");
        assert!(parse_pod_labels("").unwrap().is_empty());
    }

    #[test]
    fn ingress_namespaces_come_from_the_spec() {
        let policy = network_policy(&fixtures::full_cluster(), &BuildContext::new(20)).unwrap();
        let clients = &rules(&policy)[2].from.as_ref().unwrap()[0];
        let namespaces = clients.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
        assert_eq!(namespaces["restate-client"], "true");
        assert!(clients.pod_selector.is_none());
    }
}
