//! Polling with backoff on `tokio::time`, bounded by a timeout.

use std::future::Future;
use std::time::Duration;

use crate::error::{Applied, BackendError, BackendErrorKind, Service};

/// How a waiter polls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Give up after this long.
    pub timeout: Duration,
    /// First delay between polls.
    pub initial_interval: Duration,
    /// Longest delay between polls.
    pub max_interval: Duration,
}

impl WaitPolicy {
    /// Polls every 1 s at first, backing off ×2 up to 10 s, for at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(10),
        }
    }

    /// Sets the first and longest poll interval.
    pub fn with_intervals(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_interval = initial;
        self.max_interval = max.max(initial);
        self
    }
}

/// One poll's verdict.
#[derive(Debug)]
pub enum WaitOutcome<T> {
    /// Finished with this value.
    Done(T),
    /// Not yet.
    Pending,
}

/// Calls `poll` until it reports [`WaitOutcome::Done`], an error, or the policy's timeout
/// passes (a [`BackendErrorKind::Transient`] error naming what `what` describes; it is
/// called only then, so a wait that ends in time formats nothing). Transient errors of
/// a poll are tolerated until the timeout.
///
/// # Errors
/// The poll's non-transient error, or a timeout.
pub async fn poll_until<T, W, F, Fut>(
    service: Service,
    what: W,
    policy: &WaitPolicy,
    mut poll: F,
) -> Result<T, BackendError>
where
    W: FnOnce() -> String + Send,
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<WaitOutcome<T>, BackendError>> + Send,
{
    let deadline = tokio::time::Instant::now() + policy.timeout;
    let mut interval = policy.initial_interval;
    loop {
        match poll().await {
            Ok(WaitOutcome::Done(v)) => return Ok(v),
            Ok(WaitOutcome::Pending) => {}
            Err(e) if e.is_retryable() => {}
            Err(e) => return Err(e),
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(BackendError {
                applied: Applied::Maybe,
                ..BackendError::new(
                    BackendErrorKind::Transient,
                    service,
                    format!(
                        "timed out after {}s waiting for {}",
                        policy.timeout.as_secs(),
                        what()
                    ),
                )
            });
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(policy.max_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn poll_until_times_out_with_a_named_error() {
        let policy = WaitPolicy::new(Duration::from_secs(30));
        let err = poll_until::<(), _, _, _>(
            Service::Compute,
            || "server x to become ACTIVE".to_owned(),
            &policy,
            || async { Ok(WaitOutcome::Pending) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::Transient);
        assert!(err
            .message
            .contains("timed out after 30s waiting for server x"));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_until_backs_off_and_returns_the_value() {
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let policy = WaitPolicy::new(Duration::from_secs(600));
        let v = poll_until(
            Service::Compute,
            || "x".to_owned(),
            &policy,
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Ok(if n == 4 {
                    WaitOutcome::Done(n)
                } else {
                    WaitOutcome::Pending
                })
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 4);
        // 1 + 2 + 4 + 8 seconds of backoff before the fifth poll.
        assert_eq!(start.elapsed(), Duration::from_secs(15));
    }

    #[tokio::test(start_paused = true)]
    async fn poll_until_stops_on_a_permanent_error() {
        let policy = WaitPolicy::new(Duration::from_secs(600));
        let err = poll_until::<(), _, _, _>(
            Service::BlockStorage,
            || "x".to_owned(),
            &policy,
            || async { Err(BackendError::not_found(Service::BlockStorage, "gone")) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, BackendErrorKind::NotFound);
    }
}
