//! Requeue delays after failed reconcile rounds: exponential per object, reset by a round
//! that succeeds, so that one broken cluster is retried ever more slowly while the others
//! keep their pace. A failure counts only once the previous delay has passed: rounds that
//! watch events start in between (a pod changing, the status written) fail for the same
//! reason and must not push the delay up.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Delay after the first failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
/// Longest delay; reached after 7 failures in a row (5 s doubled 6 times is 320 s).
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Delay before retrying after the `failures`-th failure in a row (1 for the first):
/// `FIRST_DELAY * 2^(failures-1)`, at most [`MAX_DELAY`].
pub fn delay_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// Failures in a row, per object, and when the next counted retry is due.
#[derive(Debug)]
pub struct Backoff<K> {
    failures: Mutex<HashMap<K, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    retry_at: Instant,
}

impl<K: Eq + Hash> Default for Backoff<K> {
    fn default() -> Self {
        Backoff { failures: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash> Backoff<K> {
    /// Records a failure of `key`; returns how long to wait before the next round.
    pub fn failed(&self, key: K) -> Duration {
        self.failed_at(key, Instant::now())
    }

    /// [`Backoff::failed`] at `now`: a failure before the previous delay ran out (a round
    /// some event started early) does not count; it waits for what is left of that delay.
    pub fn failed_at(&self, key: K, now: Instant) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = failures.entry(key).or_insert(Failures { count: 0, retry_at: now });
        if entry.count > 0 && now < entry.retry_at {
            return entry.retry_at - now;
        }
        entry.count = entry.count.saturating_add(1);
        let delay = delay_after(entry.count);
        entry.retry_at = now + delay;
        delay
    }

    /// Forgets the failures of `key` (a round succeeded, or the object is gone).
    pub fn reset(&self, key: &K) {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_5_s_up_to_5_min() {
        let delays: Vec<u64> = (1..=9).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(delay_after(0), FIRST_DELAY, "no failure yet: the first delay");
        assert_eq!(delay_after(u32::MAX), MAX_DELAY, "no overflow");
    }

    #[test]
    fn each_object_backs_off_alone_and_success_resets_it() {
        let backoff = Backoff::default();
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(backoff.failed_at("a", at(0)), Duration::from_secs(5));
        assert_eq!(backoff.failed_at("a", at(5)), Duration::from_secs(10));
        assert_eq!(backoff.failed_at("b", at(5)), Duration::from_secs(5), "another object starts over");
        assert_eq!(backoff.failed_at("a", at(15)), Duration::from_secs(20));
        backoff.reset(&"a");
        assert_eq!(backoff.failed_at("a", at(16)), Duration::from_secs(5));
        assert_eq!(backoff.failed_at("b", at(10)), Duration::from_secs(10));
    }

    #[test]
    fn failures_of_rounds_started_by_events_within_the_delay_do_not_count() {
        let backoff = Backoff::default();
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(backoff.failed_at("a", at(0)), Duration::from_secs(5));
        // Ten watch events in the next second, each a failing round: the delay holds.
        for ms in (100..=1_000).step_by(100) {
            assert_eq!(backoff.failed_at("a", at(ms)), Duration::from_millis(5_000 - ms));
        }
        assert_eq!(backoff.failed_at("a", at(5_000)), Duration::from_secs(10), "the retry's failure counts");
    }
}
