//! Requeue delays after failed reconcile rounds: exponential per object, reset by a round
//! that succeeds, so that one broken cluster is retried ever more slowly while the others
//! keep their pace.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

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

/// Failures in a row, per object.
#[derive(Debug)]
pub struct Backoff<K> {
    failures: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash> Default for Backoff<K> {
    fn default() -> Self {
        Backoff { failures: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash> Backoff<K> {
    /// Records a failure of `key`; returns how long to wait before the next round.
    pub fn failed(&self, key: K) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        delay_after(*count)
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
        assert_eq!(backoff.failed("a"), Duration::from_secs(5));
        assert_eq!(backoff.failed("a"), Duration::from_secs(10));
        assert_eq!(backoff.failed("b"), Duration::from_secs(5), "another object starts over");
        assert_eq!(backoff.failed("a"), Duration::from_secs(20));
        backoff.reset(&"a");
        assert_eq!(backoff.failed("a"), Duration::from_secs(5));
        assert_eq!(backoff.failed("b"), Duration::from_secs(10));
    }
}
