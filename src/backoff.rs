//! The one back-off of the daemon: how long to wait before trying again, growing with each failure.
//!
//! Every retry loop asks this module for its waits, so the policies are named and written once:
//! - [`Backoff::delay`]: `initial × 2^(attempt − 1)`, capped, without jitter: the availability poller's wait
//!   after failed polls (deterministic, so the call budget can be planned and tested to the second);
//! - [`Backoff::full_jitter`]: uniform in `[floor, delay]`: the push worker's retries of one operation, so
//!   that many operations failing together do not retry together;
//! - [`half_jitter`] on a wait that [`grow`]s: between 50 % and 100 % of the current wait, so waits still
//!   grow but never align: the SecuTix client's retries of a transient failure, the catalogue job's retry
//!   after a failed import, a push target found unreachable.
//!
//! It only computes durations: the waiting itself stays with each caller, on tokio's clock (paused in tests)
//! and cancellable at shutdown. See `ARCHITECTURE.md` for why this is not the `backon` crate.

use std::time::Duration;

/// An exponential back-off: `initial`, doubling at each failure, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// A back-off from `initial` up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The wait after `attempt` failures in a row (1 for the first): `initial × 2^(attempt − 1)`, at most
    /// `max`. Saturating: any number of failures gives `max`, never an overflow.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max)
    }

    /// "Full jitter": uniform in `[0, delay(attempt)]`, but at least `floor`.
    pub fn full_jitter(&self, attempt: u32, floor: Duration) -> Duration {
        let cap = self.delay(attempt);
        Duration::from_secs_f64(cap.as_secs_f64() * rand::random::<f64>()).max(floor)
    }
}

/// Between 50 % and 100 % of `d` ("full jitter" on half the delay), so waits still grow but never align.
pub fn half_jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_secs_f64(half.as_secs_f64() * rand::random::<f64>())
}

/// The next wait of a doubling back-off: `d × 2`, at most `max`.
pub fn grow(d: Duration, max: Duration) -> Duration {
    d.saturating_mul(2).min(max)
}

/// The next wait of a doubling back-off with jitter on the factor: `d × 2` to `d × 2.2`, at most `max`
/// (atuin's back-off: jobs failing together drift apart).
pub fn grow_jittered(d: Duration, max: Duration) -> Duration {
    let factor = 2.0 + rand::random::<f64>() * 0.2;
    Duration::try_from_secs_f64(d.as_secs_f64() * factor)
        .unwrap_or(Duration::MAX)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_from_initial_and_stops_at_max() {
        let b = Backoff::new(Duration::from_secs(60), Duration::from_secs(1800));
        assert_eq!(b.delay(0), Duration::from_secs(60));
        assert_eq!(b.delay(1), Duration::from_secs(60));
        assert_eq!(b.delay(3), Duration::from_secs(240));
        assert_eq!(b.delay(20), Duration::from_secs(1800));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(1800));
    }

    #[test]
    fn full_jitter_stays_between_the_floor_and_the_delay() {
        let b = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        for attempt in 1..40 {
            let d = b.full_jitter(attempt, Duration::from_millis(100));
            assert!(d >= Duration::from_millis(100) && d <= b.delay(attempt).max(Duration::from_millis(100)));
        }
    }

    #[test]
    fn half_jitter_is_between_half_and_all_of_the_wait() {
        for _ in 0..100 {
            let d = half_jitter(Duration::from_secs(10));
            assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10));
        }
    }

    #[test]
    fn grow_doubles_up_to_the_cap() {
        assert_eq!(
            grow(Duration::from_secs(5), Duration::from_secs(60)),
            Duration::from_secs(10)
        );
        assert_eq!(
            grow(Duration::from_secs(40), Duration::from_secs(60)),
            Duration::from_secs(60)
        );
        assert_eq!(grow(Duration::MAX, Duration::from_secs(60)), Duration::from_secs(60));
        let g = grow_jittered(Duration::from_secs(10), Duration::from_secs(600));
        assert!(g >= Duration::from_secs(20) && g <= Duration::from_secs(22));
        assert_eq!(
            grow_jittered(Duration::MAX, Duration::from_secs(60)),
            Duration::from_secs(60)
        );
    }
}
