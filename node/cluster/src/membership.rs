//! Bringing a loglet group's raft membership to its segment's nodeset, one change at a
//! time: add each new member as a learner, promote it once it has caught up, and only
//! then remove members that left the nodeset. The decision is pure; the controller
//! executes it through the group's leader and re-reads the status before the next step.

use restate_bifrost::replicated::LogletGroupStatus;

/// A learner within this many entries of the leader's commit index is promoted.
pub const PROMOTE_WITHIN_ENTRIES: u64 = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipStep {
    AddLearner(u64),
    Promote(u64),
    Remove(u64),
    /// A learner is still catching up.
    WaitForCatchUp {
        raft_id: u64,
        matched: u64,
        commit: u64,
    },
    /// The group's members are the nodeset's.
    Done,
}

/// The next change that moves `status` toward `desired` (raft ids of the nodeset).
pub fn next_step(desired: &[u64], status: &LogletGroupStatus) -> MembershipStep {
    let member = |id: &u64| status.voters.contains(id) || status.learners.contains(id);
    if let Some(new) = desired.iter().find(|id| !member(id)) {
        return MembershipStep::AddLearner(*new);
    }
    if let Some(learner) = desired.iter().find(|id| status.learners.contains(id)) {
        let matched = status.progress.iter().find(|(id, _)| id == learner).map_or(0, |(_, m)| *m);
        if matched + PROMOTE_WITHIN_ENTRIES >= status.commit {
            return MembershipStep::Promote(*learner);
        }
        return MembershipStep::WaitForCatchUp { raft_id: *learner, matched, commit: status.commit };
    }
    // Everything desired votes; only now shrink (learners first, the leader last).
    let mut leaving: Vec<u64> =
        status.learners.iter().chain(&status.voters).copied().filter(|id| !desired.contains(id)).collect();
    leaving.sort_by_key(|id| *id == status.leader);
    match leaving.first() {
        Some(id) => MembershipStep::Remove(*id),
        None => MembershipStep::Done,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(voters: &[u64], learners: &[u64], progress: &[(u64, u64)], commit: u64) -> LogletGroupStatus {
        LogletGroupStatus {
            leader: voters[0],
            commit,
            voters: voters.to_vec(),
            learners: learners.to_vec(),
            progress: progress.to_vec(),
        }
    }

    #[test]
    fn replacement_adds_catches_up_promotes_then_removes() {
        let desired = [1, 2, 4];
        // Group {1,2,3}, 3 is dead, 4 replaces it.
        assert_eq!(next_step(&desired, &status(&[1, 2, 3], &[], &[], 500)), MembershipStep::AddLearner(4));
        assert_eq!(
            next_step(&desired, &status(&[1, 2, 3], &[4], &[(2, 500), (3, 100), (4, 10)], 500)),
            MembershipStep::WaitForCatchUp { raft_id: 4, matched: 10, commit: 500 }
        );
        assert_eq!(
            next_step(&desired, &status(&[1, 2, 3], &[4], &[(2, 500), (3, 100), (4, 480)], 500)),
            MembershipStep::Promote(4)
        );
        assert_eq!(next_step(&desired, &status(&[1, 2, 3, 4], &[], &[], 520)), MembershipStep::Remove(3));
        assert_eq!(next_step(&desired, &status(&[1, 2, 4], &[], &[], 530)), MembershipStep::Done);
    }

    #[test]
    fn the_leader_is_removed_last() {
        let s = status(&[5, 1, 2, 3], &[], &[], 10);
        assert_eq!(next_step(&[1, 2], &s), MembershipStep::Remove(3));
        let s = status(&[5, 1, 2], &[], &[], 10);
        assert_eq!(next_step(&[1, 2], &s), MembershipStep::Remove(5));
    }
}
