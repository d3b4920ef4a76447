//! The injected wall clock.
//!
//! Engine code stamps records with [`Clock::now`] and waits with `tokio::time`, never
//! with `std::time`. [`SystemClock`] is the one real clock; [`TokioClock`] derives wall
//! time from tokio's (possibly paused) clock, so a simulated run has reproducible
//! timestamps.

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

/// A source of UTC timestamps.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time derived from `tokio::time::Instant`: `base` plus the time tokio has
/// advanced since the clock was created. Under `start_paused = true` it moves only when
/// virtual time does.
#[derive(Clone, Debug)]
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

    /// A clock starting at 2025-03-15T09:00:00Z, the date of the product's examples.
    pub fn default_epoch() -> Self {
        Self::starting_at(
            Utc.with_ymd_and_hms(2025, 3, 15, 9, 0, 0)
                .single()
                .unwrap_or_default(),
        )
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().duration_since(self.start);
        self.base + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_advances_with_paused_time() {
        let clock = TokioClock::default_epoch();
        let t0 = clock.now();
        tokio::time::sleep(Duration::from_secs(1800)).await;
        assert_eq!((clock.now() - t0).num_seconds(), 1800);
        assert_eq!(t0.to_rfc3339(), "2025-03-15T09:00:00+00:00");
    }
}
