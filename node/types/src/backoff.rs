//! Pauses between attempts of a retried operation: the first is `min`, each next one
//! twice the last, never more than `max` (no jitter: the callers are few and their
//! schedules are part of what tests and fail-over figures expect). Built on `backon`.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`, doubling up to `max` (`max >= min`).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max.max(min))
            .with_factor(2.0)
            .without_max_times();
        Backoff { delays: builder.build(), builder, max: max.max(min) }
    }

    /// The pause before the next attempt, in whole milliseconds (backon multiplies in
    /// `f32`, which leaves 39.999999 ms where 40 ms are meant).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.delays.next().unwrap_or(self.max);
        Duration::from_millis((delay.as_secs_f64() * 1000.0).round() as u64)
    }

    /// Starts over at `min` (after a success, or when woken for a reason to try at once).
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_min_up_to_max_and_starts_over_on_reset() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(20), ms(200));
        let first: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        assert_eq!(first, [ms(20), ms(40), ms(80), ms(160), ms(200), ms(200)]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(20));
    }
}
