//! What a leader knows of each invocation's current attempt (not in the log: a new leader
//! starts counting again, as Restate's `retry_count` does), and the retry policy that
//! paces attempts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use restate_partition::InvocationId;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// `[invocation.default-retry-policy]`: exponential backoff between failed attempts, and
/// what becomes of the invocation after the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub initial_interval: Duration,
    pub exponentiation_factor: f64,
    pub max_interval: Duration,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    pub on_max_attempts: OnMaxAttempts,
}

/// What the leader does when the last attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMaxAttempts {
    /// Append `Pause`: the invocation waits for an operator's resume.
    Pause,
    /// Complete it with the last attempt's failure.
    Kill,
}

impl RetryPolicy {
    /// The pause after the `failures`-th failed attempt (1-based): `initial_interval *
    /// factor^(failures - 1)`, at most `max_interval`.
    pub fn delay_after(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(64) as i32;
        let millis = self.initial_interval.as_millis() as f64 * self.exponentiation_factor.powi(exponent);
        Duration::from_millis(millis.min(self.max_interval.as_millis() as f64).round() as u64)
    }

    /// Whether no attempt follows the `failures`-th failure.
    pub fn exhausted(&self, failures: u32) -> bool {
        failures >= self.max_attempts
    }
}

impl Default for RetryPolicy {
    /// Restate's defaults (as the node's configuration has them).
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_millis(50),
            exponentiation_factor: 2.0,
            max_interval: Duration::from_secs(10),
            max_attempts: 70,
            on_max_attempts: OnMaxAttempts::Pause,
        }
    }
}

/// The current attempt of one invocation, as `sys_invocation` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptState {
    /// Attempts started since this leader took the invocation up.
    pub retry_count: u32,
    pub last_start_at_ms: Option<u64>,
    /// When the next attempt starts: set while backing off after a failure.
    pub next_retry_at_ms: Option<u64>,
    /// The last failed attempt's error, and its code when the deployment gave one.
    pub last_failure: Option<String>,
    pub last_failure_code: Option<u32>,
    /// The deployment the last attempt went to.
    pub deployment_id: Option<String>,
    /// An attempt is talking to the deployment now.
    pub in_flight: bool,
}

/// One round's attempts: its state, and how the partition's processor stops or hurries it.
#[derive(Default)]
pub(crate) struct Attempt {
    /// Cancelled when the invocation is paused or killed: the round ends at once.
    pub abort: CancellationToken,
    /// Woken by a resume: a backing-off round retries now.
    pub retry_now: Notify,
    state: Mutex<AttemptState>,
}

impl Attempt {
    pub fn update(&self, change: impl FnOnce(&mut AttemptState)) {
        change(&mut self.state.lock().expect("not poisoned"));
    }
}

/// Every round under way on this leader, by invocation.
#[derive(Default)]
pub(crate) struct Attempts(Mutex<HashMap<InvocationId, Arc<Attempt>>>);

impl Attempts {
    /// Registers a round of `id` (replacing a finished one's entry).
    pub fn begin(&self, id: InvocationId) -> Arc<Attempt> {
        let attempt = Arc::new(Attempt::default());
        self.0.lock().expect("not poisoned").insert(id, attempt.clone());
        attempt
    }

    /// Forgets `attempt` of `id` (not a newer round's).
    pub fn end(&self, id: &InvocationId, attempt: &Arc<Attempt>) {
        let mut by_id = self.0.lock().expect("not poisoned");
        if by_id.get(id).is_some_and(|current| Arc::ptr_eq(current, attempt)) {
            by_id.remove(id);
        }
    }

    /// Stops `id`'s round, if one is under way.
    pub fn abort(&self, id: &InvocationId) {
        if let Some(attempt) = self.0.lock().expect("not poisoned").get(id) {
            attempt.abort.cancel();
        }
    }

    /// Cuts `id`'s backoff short, if it is backing off (no effect on a running attempt).
    pub fn retry_now(&self, id: &InvocationId) {
        if let Some(attempt) = self.0.lock().expect("not poisoned").get(id) {
            attempt.retry_now.notify_waiters();
        }
    }

    /// `id`'s current attempt, if a round is under way.
    pub fn state(&self, id: &InvocationId) -> Option<AttemptState> {
        let by_id = self.0.lock().expect("not poisoned");
        by_id.get(id).map(|attempt| attempt.state.lock().expect("not poisoned").clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_up_to_the_max_interval() {
        let policy = RetryPolicy {
            initial_interval: Duration::from_millis(100),
            exponentiation_factor: 3.0,
            max_interval: Duration::from_secs(2),
            max_attempts: 4,
            on_max_attempts: OnMaxAttempts::Kill,
        };
        let delays: Vec<u64> = (1..=5).map(|n| policy.delay_after(n).as_millis() as u64).collect();
        assert_eq!(delays, [100, 300, 900, 2_000, 2_000]);
        assert_eq!(policy.delay_after(u32::MAX), Duration::from_secs(2), "no overflow");
        assert!(!policy.exhausted(3) && policy.exhausted(4));
    }

    #[test]
    fn ending_an_old_round_keeps_the_new_one() {
        let attempts = Attempts::default();
        let id = InvocationId::new(1, [1; 16]);
        let old = attempts.begin(id);
        let new = attempts.begin(id);
        attempts.end(&id, &old);
        assert!(attempts.state(&id).is_some());
        attempts.abort(&id);
        assert!(new.abort.is_cancelled() && !old.abort.is_cancelled());
        attempts.end(&id, &new);
        assert_eq!(attempts.state(&id), None);
    }
}
