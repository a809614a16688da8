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
            self.try_next(leader.to_owned());
        }
    }

    /// Puts `address` (a leader named by a server) at the front; `next_untried` skips it if
    /// it was tried already.
    pub fn try_next(&mut self, address: String) {
        self.queue.push_front(address);
    }
}

/// How long an address that could not be connected to goes to the back of the order.
pub const UNREACHABLE_PENALTY: std::time::Duration = std::time::Duration::from_secs(5);

/// What a long-lived client remembers between calls so that it does not start every call
/// at a dead member: the address that answered last (usually the leader) goes first, and
/// an address that could not be connected to goes last for [`UNREACHABLE_PENALTY`]
/// (connecting to a stopped container can stall on DNS for seconds; a dead member must
/// not cost that on every call).
#[derive(Debug, Default)]
pub struct AddressPreference {
    state: std::sync::Mutex<PreferenceState>,
}

#[derive(Debug, Default)]
struct PreferenceState {
    answered_last: Option<String>,
    unreachable_since: std::collections::HashMap<String, std::time::Instant>,
}

impl AddressPreference {
    /// `addresses` reordered: the last to answer first, then the others in their order,
    /// then those unreachable within the penalty (oldest failure first). Nothing is dropped.
    pub fn order(&self, addresses: &[String], now: std::time::Instant) -> Vec<String> {
        let state = self.state.lock().expect("not poisoned");
        let penalized = |a: &String| {
            state.unreachable_since.get(a).filter(|since| now.duration_since(**since) < UNREACHABLE_PENALTY).copied()
        };
        let mut first: Vec<String> = Vec::new();
        let mut last: Vec<(std::time::Instant, String)> = Vec::new();
        for address in addresses {
            match penalized(address) {
                Some(since) => last.push((since, address.clone())),
                None if state.answered_last.as_ref() == Some(address) => first.insert(0, address.clone()),
                None => first.push(address.clone()),
            }
        }
        last.sort();
        first.extend(last.into_iter().map(|(_, a)| a));
        first
    }

    /// `address` answered (any answer from the server, not a transport failure).
    pub fn answered(&self, address: &str) {
        let mut state = self.state.lock().expect("not poisoned");
        state.unreachable_since.remove(address);
        state.answered_last = Some(address.to_owned());
    }

    /// No connection to `address` could be made at `now`. A failure after the penalty
    /// ended starts a new one (a member still dead keeps going last).
    pub fn unreachable(&self, address: &str, now: std::time::Instant) {
        let mut state = self.state.lock().expect("not poisoned");
        let since = state.unreachable_since.entry(address.to_owned()).or_insert(now);
        if now.duration_since(*since) >= UNREACHABLE_PENALTY {
            *since = now;
        }
        if state.answered_last.as_deref() == Some(address) {
            state.answered_last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_last_to_answer_goes_first_and_the_unreachable_last_until_the_penalty_ends() {
        let preference = AddressPreference::default();
        let members = names(&["a", "b", "c"]);
        let now = std::time::Instant::now();
        assert_eq!(preference.order(&members, now), members);
        preference.answered("c");
        assert_eq!(preference.order(&members, now), names(&["c", "a", "b"]));
        preference.unreachable("a", now);
        assert_eq!(preference.order(&members, now), names(&["c", "b", "a"]));
        preference.unreachable("c", now + std::time::Duration::from_secs(1));
        assert_eq!(preference.order(&members, now + std::time::Duration::from_secs(1)), names(&["b", "a", "c"]));
        // After the penalty both are back in their places; an answer clears it at once.
        assert_eq!(preference.order(&members, now + UNREACHABLE_PENALTY * 2), members);
        // A member that fails again after its penalty ended goes last again.
        let later = now + UNREACHABLE_PENALTY * 2;
        preference.unreachable("c", later);
        assert_eq!(preference.order(&members, later), names(&["a", "b", "c"]));
        preference.unreachable("a", later);
        assert_eq!(preference.order(&members, later), names(&["b", "a", "c"]));
        preference.answered("a");
        assert_eq!(preference.order(&members, later), names(&["a", "b", "c"]));
    }

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
