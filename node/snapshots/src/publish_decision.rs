//! Whether, and under which condition, a snapshot replaces a partition's `latest.json`. Pure: the
//! repository reads the current document, asks here, and performs the answer.

use crate::metadata::{DecodeError, LatestPointer};
use crate::object::{ETag, PutCondition};

/// The partition's `latest.json` as read just before publishing.
#[derive(Debug)]
pub(crate) enum CurrentLatest<'a> {
    Absent,
    Present { etag: &'a ETag, pointer: Result<&'a LatestPointer, &'a DecodeError> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublishStep {
    /// Write the new `latest.json` under this condition; if it fails, read again and ask again.
    Write(PutCondition),
    /// The published snapshot is at least as recent as the candidate; leave it.
    Superseded { published_lsn: u64, published_snapshot_id: String },
    /// `latest.json` was written by a newer format this node must not overwrite.
    RefuseNewerFormat { found: u32 },
}

/// Only a strictly higher LSN replaces the published snapshot. An unreadable (malformed)
/// `latest.json` is replaced, since nothing can restore from it anyway; one of a newer format is not.
pub(crate) fn next_publish_step(current: CurrentLatest<'_>, candidate_lsn: u64) -> PublishStep {
    match current {
        CurrentLatest::Absent => PublishStep::Write(PutCondition::Absent),
        CurrentLatest::Present { etag, pointer: Ok(pointer) } if pointer.lsn < candidate_lsn => {
            PublishStep::Write(PutCondition::Matches(etag.clone()))
        }
        CurrentLatest::Present { pointer: Ok(pointer), .. } => {
            PublishStep::Superseded { published_lsn: pointer.lsn, published_snapshot_id: pointer.snapshot_id.clone() }
        }
        CurrentLatest::Present { etag, pointer: Err(DecodeError::Malformed(_)) } => {
            PublishStep::Write(PutCondition::Matches(etag.clone()))
        }
        CurrentLatest::Present { pointer: Err(DecodeError::UnsupportedVersion(found)), .. } => {
            PublishStep::RefuseNewerFormat { found: *found }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointer(lsn: u64) -> LatestPointer {
        LatestPointer {
            format_version: 1,
            snapshot_id: format!("snap_{lsn}"),
            lsn,
            metadata_key: format!("1/{lsn:020}_snap_{lsn}/metadata.json"),
        }
    }

    #[test]
    fn the_first_snapshot_is_written_only_if_still_absent() {
        assert_eq!(next_publish_step(CurrentLatest::Absent, 0), PublishStep::Write(PutCondition::Absent));
    }

    #[test]
    fn a_higher_lsn_replaces_exactly_the_version_that_was_read() {
        let etag = ETag("\"v1\"".into());
        let current = pointer(10);
        assert_eq!(
            next_publish_step(CurrentLatest::Present { etag: &etag, pointer: Ok(&current) }, 11),
            PublishStep::Write(PutCondition::Matches(etag.clone()))
        );
    }

    #[test]
    fn an_equal_or_lower_lsn_is_superseded() {
        let etag = ETag("\"v1\"".into());
        let current = pointer(10);
        for candidate in [10, 9, 0] {
            assert_eq!(
                next_publish_step(CurrentLatest::Present { etag: &etag, pointer: Ok(&current) }, candidate),
                PublishStep::Superseded { published_lsn: 10, published_snapshot_id: "snap_10".into() }
            );
        }
    }

    #[test]
    fn malformed_documents_are_replaced_but_newer_formats_are_not() {
        let etag = ETag("\"v1\"".into());
        let malformed = DecodeError::Malformed("expected value".into());
        assert_eq!(
            next_publish_step(CurrentLatest::Present { etag: &etag, pointer: Err(&malformed) }, 1),
            PublishStep::Write(PutCondition::Matches(etag.clone()))
        );
        let newer = DecodeError::UnsupportedVersion(2);
        assert_eq!(
            next_publish_step(CurrentLatest::Present { etag: &etag, pointer: Err(&newer) }, 1),
            PublishStep::RefuseNewerFormat { found: 2 }
        );
    }
}
