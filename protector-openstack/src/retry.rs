//! The one retry policy of a session: bounded attempts, a shared token-bucket budget,
//! exponential backoff with seeded jitter, and `Retry-After`.
//!
//! # Guarantees
//! - A call is retried only when [`BackendError::may_retry`] allows it for the call's
//!   idempotency: GET/PUT/DELETE on throttling or transient failures, anything else
//!   only when the failed attempt certainly did not reach the service.
//! - A 413 without a positive `Retry-After` (a quota refusal) is never retried.
//! - Every retry takes tokens from a budget shared by all calls of the session, and a
//!   success returns one, so a failing cloud is not hammered by many callers at once.
//! - Waiting uses `tokio::time::sleep`; jitter comes from a `ChaCha8Rng` with a fixed
//!   seed, so a run is reproducible.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protector_core::{Applied, BackendError, BackendErrorKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How failed calls are retried. Defaults: 3 attempts, backoff 500 ms doubling to
/// 10 s, `Retry-After` honoured up to 60 s, a budget of 500 tokens (5 per retry, 10 per
/// retry after a timeout, 1 back per success), jitter seed 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (1 disables retries).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Longest delay between attempts.
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the call with the error.
    pub max_retry_after: Duration,
    /// Size of the retry budget.
    pub budget_capacity: u32,
    /// Tokens one retry takes.
    pub retry_cost: u32,
    /// Tokens one retry after a timeout takes.
    pub timeout_retry_cost: u32,
    /// Seed of the jitter generator.
    pub jitter_seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            budget_capacity: 500,
            retry_cost: 5,
            timeout_retry_cost: 10,
            jitter_seed: 0,
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

    /// Sets the attempts per call.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the first and longest backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the budget capacity.
    pub fn with_budget(mut self, capacity: u32) -> Self {
        self.budget_capacity = capacity;
        self
    }
}

#[derive(Debug)]
struct State {
    tokens: u32,
    rng: ChaCha8Rng,
}

/// A [`RetryPolicy`] with its live budget, shared by the calls of one session.
#[derive(Clone, Debug)]
pub(crate) struct Retrier {
    policy: RetryPolicy,
    state: Arc<Mutex<State>>,
}

impl Retrier {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        let state = State {
            tokens: policy.budget_capacity,
            rng: ChaCha8Rng::seed_from_u64(policy.jitter_seed),
        };
        Self {
            policy,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// The delay before attempt `attempt + 1`, or `None` to give up with `error`.
    pub(crate) fn next_delay(
        &self,
        error: &BackendError,
        idempotent: bool,
        attempt: u32,
    ) -> Option<Duration> {
        if attempt >= self.policy.max_attempts || !error.may_retry(idempotent) {
            return None;
        }
        let quota_refusal =
            error.status == Some(413) && error.retry_after.is_none_or(|d| d.is_zero());
        if quota_refusal {
            return None;
        }
        if let Some(after) = error.retry_after {
            if after > self.policy.max_retry_after {
                return None;
            }
        }
        let timed_out =
            error.kind == BackendErrorKind::Transient && error.applied == Applied::Maybe;
        let cost = if timed_out {
            self.policy.timeout_retry_cost
        } else {
            self.policy.retry_cost
        };
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.tokens < cost {
            return None;
        }
        state.tokens -= cost;
        let exp = self
            .policy
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.policy.max_backoff);
        // "Equal jitter": half fixed, half random, so the delay never collapses to 0.
        let half = exp / 2;
        let jitter = half.mul_f64(state.rng.random::<f64>());
        let backoff = half + jitter;
        Some(match error.retry_after {
            Some(after) => after.max(backoff.min(after + self.policy.initial_backoff)),
            None => backoff,
        })
    }

    /// Records a success: one token back, up to the capacity.
    pub(crate) fn on_success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tokens = (state.tokens + 1).min(self.policy.budget_capacity);
    }

    pub(crate) fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protector_core::Service;

    fn transient() -> BackendError {
        BackendError::unreachable(Service::Compute, "connection refused")
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let r = Retrier::new(RetryPolicy::default().with_max_attempts(3));
        assert!(r.next_delay(&transient(), true, 1).is_some());
        assert!(r.next_delay(&transient(), true, 2).is_some());
        assert!(r.next_delay(&transient(), true, 3).is_none());
    }

    #[test]
    fn never_retries_a_possibly_applied_post() {
        let r = Retrier::new(RetryPolicy::default());
        let e = transient().with_status(503).maybe_applied();
        assert!(r.next_delay(&e, false, 1).is_none());
        assert!(r.next_delay(&e, true, 1).is_some());
    }

    #[test]
    fn never_retries_a_quota_refusal() {
        let r = Retrier::new(RetryPolicy::default());
        let e = BackendError::new(BackendErrorKind::Throttled, Service::BlockStorage, "quota")
            .with_status(413)
            .with_retry_after(Duration::ZERO);
        assert!(r.next_delay(&e, true, 1).is_none());
    }

    #[test]
    fn waits_at_least_retry_after() {
        let r = Retrier::new(RetryPolicy::default());
        let e = BackendError::new(BackendErrorKind::Throttled, Service::Compute, "slow down")
            .with_status(429)
            .with_retry_after(Duration::from_secs(2));
        let d = r.next_delay(&e, false, 1).unwrap();
        assert!(d >= Duration::from_secs(2), "{d:?}");
    }

    #[test]
    fn an_exhausted_budget_stops_retries_until_successes_refill_it() {
        let policy = RetryPolicy {
            budget_capacity: 10,
            retry_cost: 5,
            ..RetryPolicy::default()
        };
        let r = Retrier::new(policy);
        assert!(r.next_delay(&transient(), true, 1).is_some());
        assert!(r.next_delay(&transient(), true, 1).is_some());
        assert!(r.next_delay(&transient(), true, 1).is_none());
        for _ in 0..5 {
            r.on_success();
        }
        assert!(r.next_delay(&transient(), true, 1).is_some());
    }

    #[test]
    fn backoff_is_reproducible_from_the_seed() {
        let a = Retrier::new(RetryPolicy::default());
        let b = Retrier::new(RetryPolicy::default());
        for attempt in 1..3 {
            assert_eq!(
                a.next_delay(&transient(), true, attempt),
                b.next_delay(&transient(), true, attempt)
            );
        }
    }
}
