//! A token-bucket rate limiter on tokio's clock.
//!
//! Used for SecuTix (calls per minute per service) and for each push target (requests per second).
//! Hand-written rather than `governor` because governor's async waits do not follow tokio's clock, and the
//! tests of back-off and budgets run under `tokio::time::pause()`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Allows `rate` acquisitions per `per`, with bursts of up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    /// A std mutex: it is held for a few arithmetic operations and never across an `.await`.
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl RateLimiter {
    /// `rate` acquisitions per `per` (e.g. 60 per minute), bursts of `burst` (at least 1).
    pub fn new(rate: u32, per: Duration, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        let per_sec = f64::from(rate.max(1)) / per.as_secs_f64().max(1e-9);
        Self {
            bucket: Mutex::new(Bucket {
                capacity,
                tokens: capacity,
                per_sec,
                last: Instant::now(),
            }),
        }
    }

    /// `n` per minute, one at a time (no burst): calls are spaced by `60 s / n`.
    pub fn per_minute(n: u32) -> Self {
        Self::new(n, Duration::from_secs(60), 1)
    }

    /// Waits until one acquisition is allowed, then takes it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let elapsed = now.duration_since(b.last).as_secs_f64();
                b.tokens = (b.tokens + elapsed * b.per_sec).min(b.capacity);
                b.last = now;
                if b.tokens >= 1.0 {
                    b.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - b.tokens) / b.per_sec)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_calls_to_the_rate() {
        let rl = RateLimiter::per_minute(60);
        let t0 = Instant::now();
        for _ in 0..11 {
            rl.acquire().await;
        }
        // The first is immediate, the next ten are one second apart.
        assert_eq!(t0.elapsed().as_secs(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_then_steady_rate() {
        let rl = RateLimiter::new(10, Duration::from_secs(1), 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            rl.acquire().await;
        }
        assert_eq!(t0.elapsed(), Duration::ZERO);
        for _ in 0..10 {
            rl.acquire().await;
        }
        assert!((t0.elapsed().as_secs_f64() - 1.0).abs() < 0.01, "{:?}", t0.elapsed());
    }
}
