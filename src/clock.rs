//! Wall-clock time as a dependency.
//!
//! Everything that stores or compares calendar time (the 10-minute catalogue rule, the monthly call budget,
//! "is this performance in the past", retry deadlines written to the store) asks a [`Clock`] instead of
//! calling `Utc::now()`. Production uses [`SystemClock`]; tests use [`TokioClock`], whose calendar time moves
//! with tokio's (pausable) clock, so a simulated month runs in milliseconds under `tokio::time::pause()`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of calendar time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Calendar time that follows `tokio::time`: `base` plus the tokio time elapsed since creation.
///
/// Under `tokio::time::pause()` it only moves when tokio's clock is advanced, which makes long simulations
/// (a month of availability polls, a day of retries) deterministic.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock that reads `base` now and advances with tokio's clock.
    pub fn starting_at(base: DateTime<Utc>) -> Self {
        Self {
            base,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().duration_since(self.start);
        self.base + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}

/// The system clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
