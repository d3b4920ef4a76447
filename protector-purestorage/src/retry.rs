//! The one retry policy of the REST client, with a retry budget.
//!
//! A failed call is retried when all of these hold:
//! - the error is retryable (throttled or transient) and, for a call that is not
//!   idempotent (POST), the request certainly did not reach the array;
//! - it is not an HTTP 500 (the array failed the request itself; trying again would
//!   fail the same way);
//! - fewer than [`RetryPolicy::max_attempts`] attempts were made;
//! - the client-wide [`RetryBudget`] still has tokens, so a struggling array is not
//!   hammered by every caller at once.
//!
//! Delays come from the error (`retry_after`: 1 s, or 60 s when the per-minute rate
//! budget is spent) or else from an exponential backoff, and are slept with
//! `tokio::time`.

use std::sync::Mutex;
use std::time::Duration;

use protector_core::BackendError;

/// When and how often a failed call is tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (default 5, as the array's SDK).
    pub max_attempts: u32,
    /// Delay before the first retry of a transient failure (default 500 ms).
    pub initial_backoff: Duration,
    /// Longest delay between attempts of a transient failure (default 8 s).
    pub max_backoff: Duration,
    /// Tokens in a fresh budget (default 500).
    pub budget_capacity: u32,
    /// Tokens one retry takes from the budget (default 5).
    pub retry_cost: u32,
    /// Tokens a success gives back (default 1).
    pub success_refund: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            budget_capacity: 500,
            retry_cost: 5,
            success_refund: 1,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Whether `error` of the `attempt`-th try (1-based) of a call of the given
    /// idempotency may be retried, ignoring the budget.
    pub fn allows(&self, error: &BackendError, idempotent: bool, attempt: u32) -> bool {
        attempt < self.max_attempts && error.may_retry(idempotent) && error.status != Some(500)
    }

    /// The delay before retry number `attempt` (1-based) after `error`.
    pub fn delay(&self, error: &BackendError, attempt: u32) -> Duration {
        if let Some(after) = error.retry_after {
            return after;
        }
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A shared pool of retry tokens: retries take [`RetryPolicy::retry_cost`], successes
/// give back [`RetryPolicy::success_refund`] up to the capacity.
#[derive(Debug)]
pub struct RetryBudget {
    capacity: u32,
    tokens: Mutex<u32>,
}

impl RetryBudget {
    /// A full budget of `capacity` tokens.
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity,
            tokens: Mutex::new(capacity),
        }
    }

    /// Takes `cost` tokens if there are enough.
    pub fn try_take(&self, cost: u32) -> bool {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if *t >= cost {
            *t -= cost;
            true
        } else {
            false
        }
    }

    /// Gives back `refund` tokens, up to the capacity.
    pub fn refund(&self, refund: u32) {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *t = t.saturating_add(refund).min(self.capacity);
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protector_core::Service;

    #[test]
    fn a_500_is_never_retried_but_a_503_is() {
        let p = RetryPolicy::default();
        let e500 = BackendError::unreachable(Service::FlashArray, "x").with_status(500);
        let e503 = BackendError::unreachable(Service::FlashArray, "x").with_status(503);
        assert!(!p.allows(&e500, true, 1));
        assert!(p.allows(&e503, true, 1));
        assert!(!p.allows(&e503, true, 5));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let e = BackendError::unreachable(Service::FlashArray, "x");
        assert_eq!(p.delay(&e, 1), Duration::from_millis(500));
        assert_eq!(p.delay(&e, 3), Duration::from_secs(2));
        assert_eq!(p.delay(&e, 10), Duration::from_secs(8));
        let t = e.with_retry_after(Duration::from_secs(60));
        assert_eq!(p.delay(&t, 1), Duration::from_secs(60));
    }

    #[test]
    fn an_empty_budget_refuses_retries_until_refunded() {
        let b = RetryBudget::new(10);
        assert!(b.try_take(5));
        assert!(b.try_take(5));
        assert!(!b.try_take(5));
        b.refund(7);
        assert_eq!(b.available(), 7);
        b.refund(100);
        assert_eq!(b.available(), 10);
    }
}
