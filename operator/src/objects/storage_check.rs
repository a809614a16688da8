//! The Job `<name>-storage-check`: runs a new `spec.image` once, before a roll restarts any
//! node on it, to ask its `restate-server` whether it reads the cluster's data
//! (`--check-storage-format N`: exit 0 if it does; see crate::storage_check). It reads no
//! configuration and no data, mounts nothing, needs no network and no API access; it runs
//! where the nodes may run (pull secrets, node selector, tolerations) and locked down as
//! they are.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::statefulset::{container_security, pod_security};
use super::{cluster_names, owned_meta, BuildContext};
use crate::crd::RestateCluster;
use crate::error::BuildError;

/// The image a check Job runs, and the storage format it asks about (annotations on the Job).
pub const CHECKED_IMAGE_ANNOTATION: &str = "restate.dev/checked-image";
pub const CHECKED_FORMAT_ANNOTATION: &str = "restate.dev/checked-storage-format";
/// How long the check may take, pulling the image included, before it counts as failed.
pub const STORAGE_CHECK_DEADLINE_SECONDS: i64 = 300;

/// The check of `image` against data of storage format `format`.
pub fn storage_check_job(
    cluster: &RestateCluster,
    ctx: &BuildContext,
    image: &str,
    format: u32,
) -> Result<Job, BuildError> {
    let names = cluster_names(cluster, ctx)?;
    let spec = &cluster.spec;
    let mut metadata = owned_meta(cluster, &names, names.storage_check_job())?;
    metadata.annotations = Some(BTreeMap::from([
        (CHECKED_IMAGE_ANNOTATION.to_owned(), image.to_owned()),
        (CHECKED_FORMAT_ANNOTATION.to_owned(), format.to_string()),
    ]));
    let quantity = |q: &str| Quantity(q.to_owned());
    let container = Container {
        name: "storage-check".to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        command: Some(vec!["restate-server".to_owned()]),
        args: Some(vec!["--check-storage-format".to_owned(), format.to_string()]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), quantity("10m")),
                ("memory".to_owned(), quantity("32Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_owned(), quantity("256Mi"))])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(container_security()),
        ..Container::default()
    };
    Ok(Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(STORAGE_CHECK_DEADLINE_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(names.storage_check_labels()), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security()),
                    image_pull_secrets: spec.image_pull_secrets.clone(),
                    node_selector: spec.node_selector.clone(),
                    tolerations: spec.tolerations.clone(),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::fixtures;

    #[test]
    fn the_check_runs_the_new_image_once_locked_down_and_outside_the_selector() {
        let cluster = fixtures::cluster();
        let job = storage_check_job(&cluster, &BuildContext::new(20), "restate:next", 2).unwrap();
        assert_eq!(job.metadata.name.as_deref(), Some("demo-storage-check"));
        let annotations = job.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[CHECKED_IMAGE_ANNOTATION], "restate:next");
        assert_eq!(annotations[CHECKED_FORMAT_ANNOTATION], "2");
        let spec = job.spec.as_ref().unwrap();
        assert_eq!((spec.backoff_limit, spec.active_deadline_seconds), (Some(0), Some(STORAGE_CHECK_DEADLINE_SECONDS)));
        let labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_ne!(labels["app.kubernetes.io/name"], "restate", "the check's pod is no node of the cluster");
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(pod.security_context.as_ref().unwrap().run_as_non_root, Some(true));
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("restate:next"));
        let command: Vec<&str> =
            container.command.iter().chain(container.args.iter()).flatten().map(String::as_str).collect();
        assert_eq!(command, ["restate-server", "--check-storage-format", "2"]);
        assert!(container.volume_mounts.is_none() && container.env.is_none(), "reads no configuration or data");
    }
}
