//! One controller at a time, through a lease kept in metadata, without relying on
//! synchronized clocks.
//!
//! The holder rewrites the lease record (version precondition) every renew interval
//! and acts only until `start of its last successful write + duration`. Another node
//! takes over only after it has seen the *same* record version for `duration` on its
//! own clock: it first saw that version after the holder wrote it, so its takeover
//! comes after the holder stopped acting (clocks may differ, their rates barely).

use std::time::{Duration, Instant};

use restate_metadata::objects::MetadataObject;
use restate_metadata::Precondition;
use restate_types::{PlainNodeId, Version};
use serde::{Deserialize, Serialize};

/// The stored lease: who holds it, since which takeover (`term`), and a renewal count
/// (every renewal changes the record's version, which is what observers watch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerLease {
    pub holder: PlainNodeId,
    pub term: u64,
    pub renewals: u64,
}

impl MetadataObject for ControllerLease {
    const KEY: &'static str = "cluster_controller_lease";
    const NAME: &'static str = "ControllerLease";
}

/// What to do after reading the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseStep {
    /// Write `next` with `precondition` (acquire, renew or take over).
    Write { next: ControllerLease, precondition: Precondition },
    /// Another node holds it (or may still hold it); look again later.
    Wait { holder: PlainNodeId },
}

/// This node's view of the lease (pure: time is passed in).
#[derive(Debug)]
pub struct LeaseTracker {
    me: PlainNodeId,
    duration: Duration,
    /// The other holder's record version and when this node first saw it.
    observed: Option<(Version, Instant)>,
    /// Acting as controller is allowed until then.
    held_until: Option<Instant>,
}

impl LeaseTracker {
    pub fn new(me: PlainNodeId, duration: Duration) -> LeaseTracker {
        LeaseTracker { me, duration, observed: None, held_until: None }
    }

    /// Decides the next step from the record read at `now` (`None`: never written).
    /// `holder_down`: the holder's node refuses connections (no process listens there, so
    /// it cannot be acting): taken over at once instead of after the whole duration.
    pub fn next(&mut self, current: Option<(ControllerLease, Version)>, now: Instant, holder_down: bool) -> LeaseStep {
        let Some((lease, version)) = current else {
            return LeaseStep::Write {
                next: ControllerLease { holder: self.me, term: 1, renewals: 0 },
                precondition: Precondition::DoesNotExist,
            };
        };
        if lease.holder == self.me {
            self.observed = None;
            return LeaseStep::Write {
                next: ControllerLease { renewals: lease.renewals + 1, ..lease },
                precondition: Precondition::MatchesVersion(version),
            };
        }
        // Someone else's record: this node no longer holds it.
        self.held_until = None;
        if holder_down {
            return LeaseStep::Write {
                next: ControllerLease { holder: self.me, term: lease.term + 1, renewals: 0 },
                precondition: Precondition::MatchesVersion(version),
            };
        }
        match self.observed {
            Some((seen, since)) if seen == version && now.duration_since(since) >= self.duration => LeaseStep::Write {
                next: ControllerLease { holder: self.me, term: lease.term + 1, renewals: 0 },
                precondition: Precondition::MatchesVersion(version),
            },
            Some((seen, _)) if seen == version => LeaseStep::Wait { holder: lease.holder },
            _ => {
                self.observed = Some((version, now));
                LeaseStep::Wait { holder: lease.holder }
            }
        }
    }

    /// The write decided by [`Self::next`], started at `started`, succeeded.
    pub fn written(&mut self, started: Instant) {
        self.observed = None;
        self.held_until = Some(started + self.duration);
    }

    /// The write failed (e.g. someone else got there first): stop acting.
    pub fn lost(&mut self) {
        self.held_until = None;
    }

    pub fn is_held(&self, now: Instant) -> bool {
        self.held_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(4);

    fn lease(holder: u32, term: u64, renewals: u64) -> ControllerLease {
        ControllerLease { holder: PlainNodeId(holder), term, renewals }
    }

    #[test]
    fn first_node_acquires_an_unwritten_lease() {
        let mut t = LeaseTracker::new(PlainNodeId(1), D);
        let now = Instant::now();
        assert_eq!(
            t.next(None, now, false),
            LeaseStep::Write { next: lease(1, 1, 0), precondition: Precondition::DoesNotExist }
        );
        assert!(!t.is_held(now));
        t.written(now);
        assert!(t.is_held(now + D / 2));
        assert!(!t.is_held(now + D));
    }

    #[test]
    fn holder_renews_with_the_version_it_read() {
        let mut t = LeaseTracker::new(PlainNodeId(1), D);
        let step = t.next(Some((lease(1, 3, 7), Version(12))), Instant::now(), false);
        assert_eq!(
            step,
            LeaseStep::Write { next: lease(1, 3, 8), precondition: Precondition::MatchesVersion(Version(12)) }
        );
    }

    #[test]
    fn takeover_only_after_the_same_version_was_seen_for_the_whole_duration() {
        let mut t = LeaseTracker::new(PlainNodeId(2), D);
        let t0 = Instant::now();
        assert_eq!(t.next(Some((lease(1, 1, 5), Version(9))), t0, false), LeaseStep::Wait { holder: PlainNodeId(1) });
        assert_eq!(
            t.next(Some((lease(1, 1, 5), Version(9))), t0 + D / 2, false),
            LeaseStep::Wait { holder: PlainNodeId(1) }
        );
        // The holder renewed: the clock starts again.
        assert_eq!(
            t.next(Some((lease(1, 1, 6), Version(10))), t0 + D, false),
            LeaseStep::Wait { holder: PlainNodeId(1) }
        );
        assert_eq!(
            t.next(Some((lease(1, 1, 6), Version(10))), t0 + D + D / 2, false),
            LeaseStep::Wait { holder: PlainNodeId(1) }
        );
        assert_eq!(
            t.next(Some((lease(1, 1, 6), Version(10))), t0 + 2 * D, false),
            LeaseStep::Write { next: lease(2, 2, 0), precondition: Precondition::MatchesVersion(Version(10)) }
        );
    }

    #[test]
    fn a_holder_whose_node_refuses_connections_is_taken_over_at_once() {
        let mut t = LeaseTracker::new(PlainNodeId(2), D);
        let t0 = Instant::now();
        assert_eq!(
            t.next(Some((lease(1, 4, 9), Version(30))), t0, true),
            LeaseStep::Write { next: lease(2, 5, 0), precondition: Precondition::MatchesVersion(Version(30)) }
        );
    }

    #[test]
    fn a_holder_that_sees_another_holder_stops_acting() {
        let mut t = LeaseTracker::new(PlainNodeId(1), D);
        let t0 = Instant::now();
        t.written(t0);
        assert!(t.is_held(t0));
        t.next(Some((lease(2, 2, 0), Version(20))), t0 + Duration::from_millis(10), false);
        assert!(!t.is_held(t0 + Duration::from_millis(10)));
    }

    #[test]
    fn holder_validity_ends_before_a_challenger_can_take_over() {
        // The holder writes at h; a challenger can first see that version at c >= h and
        // takes over no earlier than c + D; the holder stops at h + D <= c + D.
        let h = Instant::now();
        let mut holder = LeaseTracker::new(PlainNodeId(1), D);
        holder.written(h);
        let mut challenger = LeaseTracker::new(PlainNodeId(2), D);
        let c = h + Duration::from_millis(1);
        challenger.next(Some((lease(1, 1, 0), Version(1))), c, false);
        let takeover_at = c + D;
        assert!(matches!(
            challenger.next(Some((lease(1, 1, 0), Version(1))), takeover_at, false),
            LeaseStep::Write { .. }
        ));
        assert!(!holder.is_held(takeover_at));
    }
}
