//! Runs the storage-format check of a new `spec.image` (crate::storage_check) through its
//! Job: creates it, reads its answer on later rounds, records the answer and deletes it.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::Utc;
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::ResourceExt;

use super::Context;
use crate::crd::{RestateCluster, StorageFormatCheck};
use crate::names::ClusterNames;
use crate::objects::storage_check_job;
use crate::storage_check::{job_outcome, recorded, refusal, JobOutcome};

/// Whether the roll may restart a node on `spec.image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// The check has not answered yet: what it waits for.
    Wait(String),
    /// The image does not read the data: the condition message.
    Refused(String),
}

/// This round's gate, and the answer to record in the status when the check answered now.
pub async fn check_new_image(
    cluster: &RestateCluster,
    ctx: &Context,
    names: &ClusterNames,
    format: u32,
) -> (Gate, Option<StorageFormatCheck>) {
    let image = cluster.spec.image.as_str();
    let status = cluster.status.as_ref();
    let current_image = status.and_then(|s| s.current_image.as_deref());
    let gate = |answer: &StorageFormatCheck| {
        if answer.passed {
            Gate::Open
        } else {
            Gate::Refused(refusal(answer, current_image))
        }
    };
    if let Some(answer) = recorded(status.and_then(|s| s.storage_format_check.as_ref()), image, format) {
        return (gate(answer), None);
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let name = names.storage_check_job();
    let waiting =
        |what: String| (Gate::Wait(format!("the storage-format check of {image} (Job {name}): {what}")), None);
    let job = match jobs.get_opt(&name).await {
        Ok(job) => job,
        Err(e) => return waiting(format!("cannot read the Job: {e}")),
    };
    let background =
        DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..DeleteParams::default() };
    let answer = |passed: bool, message: String| StorageFormatCheck {
        image: image.to_owned(),
        storage_format: i32::try_from(format).unwrap_or(i32::MAX),
        passed,
        message,
        time: Time(Utc::now()),
    };
    let outcome = job_outcome(job.as_ref(), image, format);
    let answered = match outcome {
        JobOutcome::Missing => {
            let job = match storage_check_job(cluster, &ctx.build, image, format) {
                Ok(job) => job,
                Err(e) => return waiting(format!("cannot build the Job: {e}")),
            };
            return match jobs.create(&PostParams::default(), &job).await {
                Ok(_) => {
                    tracing::info!(cluster = %cluster.name_any(), %image, format, "checking that the new image reads the data's storage format (Job {name})");
                    waiting(format!("started, asking whether it reads storage format {format}"))
                }
                Err(e) => waiting(format!("cannot create the Job: {e}")),
            };
        }
        JobOutcome::Stale => {
            return match jobs.delete(&name, &background).await {
                Ok(_) => waiting("removing the check of an earlier image".to_owned()),
                Err(e) => waiting(format!("cannot delete the check of an earlier image: {e}")),
            };
        }
        JobOutcome::Running => return waiting(format!("running, asking whether it reads storage format {format}")),
        JobOutcome::Passed => answer(true, format!("its restate-server reads storage format {format}")),
        JobOutcome::Failed(why) => answer(false, why),
    };
    // Answered: recorded in the status by this round, so the Job is no longer needed.
    if let Err(e) = jobs.delete(&name, &background).await {
        tracing::warn!(cluster = %cluster.name_any(), "could not delete the answered Job {name}: {e}");
    }
    tracing::info!(cluster = %cluster.name_any(), %image, format, passed = answered.passed, "storage-format check: {}", answered.message);
    (gate(&answered), Some(answered))
}
