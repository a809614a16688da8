//! The storage-format check a roll to a new image starts with (pure). A node refuses data
//! of a newer storage format than its binary reads, so a roll onto an older release would
//! stop at the first pod, with that pod down. Before the first pod restarts on a new
//! `spec.image`, the operator runs the image once as a Job (`restate-server
//! --check-storage-format N`, N the highest format the nodes report, see
//! objects/storage_check.rs) and goes on only when it exits 0; otherwise the roll is
//! refused (`UpgradeRefused`) with nothing restarted. A binary without the check (a release
//! from before it) fails it too. The answer is recorded in the status per (image, format),
//! so each image is run once.

use k8s_openapi::api::batch::v1::Job;

use crate::crd::StorageFormatCheck;
use crate::objects::{CHECKED_FORMAT_ANNOTATION, CHECKED_IMAGE_ANNOTATION, STORAGE_CHECK_DEADLINE_SECONDS};

/// Whether a step of the roll to `image` needs the check: the nodes ran another image when
/// the last roll finished (a configuration-only roll keeps the image the data runs on).
pub fn needed(image: &str, current_image: Option<&str>) -> bool {
    current_image.is_some_and(|current| current != image)
}

/// The recorded answer for `image` against data of `format`, if there is one.
pub fn recorded<'a>(
    record: Option<&'a StorageFormatCheck>,
    image: &str,
    format: u32,
) -> Option<&'a StorageFormatCheck> {
    record.filter(|r| r.image == image && u32::try_from(r.storage_format).ok() == Some(format))
}

/// What the check Job (as read this round) says of `image` against `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// No Job yet: create it.
    Missing,
    /// A Job that checks another image or format (left by an earlier roll): delete it.
    Stale,
    /// Still running (or its pod is still starting).
    Running,
    /// The binary reads the format.
    Passed,
    /// It does not, or the image could not run: why, as the Job says.
    Failed(String),
}

pub fn job_outcome(job: Option<&Job>, image: &str, format: u32) -> JobOutcome {
    let Some(job) = job else { return JobOutcome::Missing };
    let annotations = job.metadata.annotations.as_ref();
    let checks = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    if checks(CHECKED_IMAGE_ANNOTATION) != Some(image)
        || checks(CHECKED_FORMAT_ANNOTATION) != Some(format.to_string().as_str())
    {
        return JobOutcome::Stale;
    }
    let status = job.status.as_ref();
    if status.and_then(|s| s.succeeded).unwrap_or(0) > 0 {
        return JobOutcome::Passed;
    }
    let failed = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Failed" && c.status == "True"));
    if failed.is_some_and(|c| c.reason.as_deref() == Some("DeadlineExceeded")) {
        return JobOutcome::Failed(format!(
            "the image did not answer within {STORAGE_CHECK_DEADLINE_SECONDS} s (can it be pulled and run? see the \
             Job's pod)"
        ));
    }
    if failed.is_some() || status.and_then(|s| s.failed).unwrap_or(0) > 0 {
        return JobOutcome::Failed(
            "its restate-server exited with an error: it does not read that format (an older release, or one \
             without the check)"
                .to_owned(),
        );
    }
    JobOutcome::Running
}

/// The condition message of a refused roll.
pub fn refusal(check: &StorageFormatCheck, current_image: Option<&str>) -> String {
    format!(
        "spec.image {} does not read this cluster's data (storage format {}): {}; no node was restarted. Set \
         spec.image back to {} or to a release that reads storage format {}",
        check.image,
        check.storage_format,
        check.message,
        current_image.unwrap_or("the image the nodes run"),
        check.storage_format
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::chrono::Utc;

    use super::*;

    fn job(image: &str, format: u32, status: JobStatus) -> Job {
        let annotations: BTreeMap<String, String> = [
            (CHECKED_IMAGE_ANNOTATION.to_owned(), image.to_owned()),
            (CHECKED_FORMAT_ANNOTATION.to_owned(), format.to_string()),
        ]
        .into();
        Job {
            metadata: ObjectMeta { annotations: Some(annotations), ..ObjectMeta::default() },
            status: Some(status),
            ..Job::default()
        }
    }

    fn failed(reason: &str) -> JobStatus {
        JobStatus {
            failed: Some(1),
            conditions: Some(vec![JobCondition {
                type_: "Failed".into(),
                status: "True".into(),
                reason: Some(reason.into()),
                ..JobCondition::default()
            }]),
            ..JobStatus::default()
        }
    }

    #[test]
    fn only_a_new_image_is_checked() {
        assert!(needed("r:2", Some("r:1")));
        assert!(!needed("r:1", Some("r:1")), "a configuration roll keeps the image");
        assert!(!needed("r:1", None), "no roll finished yet: the nodes started on spec.image");
    }

    #[test]
    fn the_job_answers_for_its_image_and_format_only() {
        assert_eq!(job_outcome(None, "r:2", 2), JobOutcome::Missing);
        let passed = job("r:2", 2, JobStatus { succeeded: Some(1), ..JobStatus::default() });
        assert_eq!(job_outcome(Some(&passed), "r:2", 2), JobOutcome::Passed);
        assert_eq!(job_outcome(Some(&passed), "r:3", 2), JobOutcome::Stale, "another image");
        assert_eq!(job_outcome(Some(&passed), "r:2", 3), JobOutcome::Stale, "data of a newer format since");
        let running = job("r:2", 2, JobStatus { active: Some(1), ..JobStatus::default() });
        assert_eq!(job_outcome(Some(&running), "r:2", 2), JobOutcome::Running);
        match job_outcome(Some(&job("r:2", 2, failed("BackoffLimitExceeded"))), "r:2", 2) {
            JobOutcome::Failed(why) => assert!(why.contains("does not read that format"), "{why}"),
            other => panic!("{other:?}"),
        }
        match job_outcome(Some(&job("r:2", 2, failed("DeadlineExceeded"))), "r:2", 2) {
            JobOutcome::Failed(why) => assert!(why.contains("did not answer within"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refusal_names_the_image_the_format_and_the_way_back() {
        let check = StorageFormatCheck {
            image: "r:old".into(),
            storage_format: 2,
            passed: false,
            message: "its restate-server exited with an error".into(),
            time: Time(Utc::now()),
        };
        assert_eq!(recorded(Some(&check), "r:old", 2), Some(&check));
        assert_eq!(recorded(Some(&check), "r:old", 3), None);
        assert_eq!(recorded(Some(&check), "r:new", 2), None);
        let message = refusal(&check, Some("r:dev"));
        assert!(message.contains("spec.image r:old") && message.contains("storage format 2"), "{message}");
        assert!(message.contains("back to r:dev") && message.contains("no node was restarted"), "{message}");
    }
}
