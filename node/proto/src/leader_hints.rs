//! How clients find a leader: servers that cannot serve a request answer UNAVAILABLE and
//! may name the leader's address in a header; clients try that address next.

use std::collections::{HashSet, VecDeque};

/// Header naming the metadata store leader's address.
pub const METADATA_LEADER_HEADER: &str = "x-restate-metadata-leader";
/// Header naming a replicated loglet leader's address.
pub const LOGLET_LEADER_HEADER: &str = "x-restate-loglet-leader";

/// Addresses to try in order, each at most once; a leader named in an answer goes to the
/// front so it is tried next.
#[derive(Debug, Clone)]
pub struct AddressQueue {
    queue: VecDeque<String>,
    tried: HashSet<String>,
}

impl AddressQueue {
    pub fn new(addresses: impl IntoIterator<Item = String>) -> AddressQueue {
        AddressQueue { queue: addresses.into_iter().collect(), tried: HashSet::new() }
    }

    /// The next address not tried yet, marked as tried.
    pub fn next_untried(&mut self) -> Option<String> {
        while let Some(address) = self.queue.pop_front() {
            if self.tried.insert(address.clone()) {
                return Some(address);
            }
        }
        None
    }

    /// Puts the leader that `status` names in `header` (if any) at the front.
    pub fn follow_hint(&mut self, status: &tonic::Status, header: &str) {
        if let Some(leader) = status.metadata().get(header).and_then(|v| v.to_str().ok()) {
            self.queue.push_front(leader.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_jump_the_queue_and_nothing_is_tried_twice() {
        let mut queue = AddressQueue::new(["a".to_owned(), "b".to_owned(), "c".to_owned()]);
        assert_eq!(queue.next_untried().as_deref(), Some("a"));
        let mut status = tonic::Status::unavailable("not the leader");
        status.metadata_mut().insert(METADATA_LEADER_HEADER, "c".parse().unwrap());
        queue.follow_hint(&status, METADATA_LEADER_HEADER);
        assert_eq!(queue.next_untried().as_deref(), Some("c"));
        // A hint back to an address already tried is skipped.
        let mut status = tonic::Status::unavailable("not the leader");
        status.metadata_mut().insert(METADATA_LEADER_HEADER, "a".parse().unwrap());
        queue.follow_hint(&status, METADATA_LEADER_HEADER);
        queue.follow_hint(&tonic::Status::unavailable("no hint"), METADATA_LEADER_HEADER);
        assert_eq!(queue.next_untried().as_deref(), Some("b"));
        assert_eq!(queue.next_untried(), None);
    }
}
