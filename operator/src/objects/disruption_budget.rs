//! The PodDisruptionBudget: voluntary disruptions (node drains) take one Restate pod at a time.
//!
//! policy/v1 exists from Kubernetes 1.21; older servers only have policy/v1beta1, which
//! k8s-openapi no longer models, so the budget is always a [`DynamicObject`] and the caller
//! gets the matching [`ApiResource`] from [`pod_disruption_budget_resource`]. The spec fields
//! used (`maxUnavailable`, `selector`) mean the same in both versions.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;

/// First minor version with policy/v1 PodDisruptionBudget.
pub const POLICY_V1_SINCE_MINOR: u32 = 21;

/// The API version of PodDisruptionBudget to use on a server of `server_minor`.
pub fn pod_disruption_budget_version(server_minor: u32) -> &'static str {
    if server_minor >= POLICY_V1_SINCE_MINOR {
        "v1"
    } else {
        "v1beta1"
    }
}

/// The resource to apply the budget through (`Api::namespaced_with(client, ns, &resource)`).
pub fn pod_disruption_budget_resource(server_minor: u32) -> ApiResource {
    let gvk = GroupVersionKind::gvk("policy", pod_disruption_budget_version(server_minor), "PodDisruptionBudget");
    ApiResource::from_gvk_with_plural(&gvk, "poddisruptionbudgets")
}

/// `<name>` with `maxUnavailable: 1` over the cluster's pods, as policy/v1 or policy/v1beta1
/// according to `ctx.server_minor`.
pub fn pod_disruption_budget(cluster: &RestateCluster, ctx: &BuildContext) -> Result<DynamicObject, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    let budget = PodDisruptionBudget {
        metadata: owned_meta(cluster, &names, names.pod_disruption_budget())?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(names.selector_labels()), match_expressions: None }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    };
    let mut value = serde_json::to_value(&budget).expect("a PodDisruptionBudget serializes");
    value["apiVersion"] = format!("policy/{}", pod_disruption_budget_version(ctx.server_minor)).into();
    Ok(serde_json::from_value(value).expect("any object with metadata is a DynamicObject"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn version_follows_the_server() {
        for (minor, api_version) in [(20, "policy/v1beta1"), (21, "policy/v1"), (30, "policy/v1")] {
            let budget = pod_disruption_budget(&fixtures::cluster(), &BuildContext::new(minor)).unwrap();
            let types = budget.types.as_ref().unwrap();
            assert_eq!(types.api_version, api_version, "server 1.{minor}");
            assert_eq!(types.kind, "PodDisruptionBudget");
            let resource = pod_disruption_budget_resource(minor);
            assert_eq!(resource.api_version, api_version);
            assert_eq!(resource.plural, "poddisruptionbudgets");
        }
    }

    #[test]
    fn one_pod_at_a_time() {
        let budget = pod_disruption_budget(&fixtures::cluster(), &BuildContext::new(20)).unwrap();
        assert_eq!(budget.metadata.name.as_deref(), Some("demo"));
        assert_eq!(budget.data["spec"]["maxUnavailable"], 1);
        assert_eq!(budget.data["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"], "demo");
        assert!(budget.data["spec"].get("minAvailable").is_none());
        assert!(budget.data.get("status").is_none());
    }
}
