//! The one retry helper. Every etcd retry loop in the crate goes through [`retry`] or, for
//! long-lived loops that never give up (watches, campaigns), through [`Backoff`].

use std::future::Future;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::timing::{RETRY_BASE, RETRY_MAX, RETRY_WARN_AFTER};
use crate::MembershipError;

/// Jittered exponential backoff from [`RETRY_BASE`] to [`RETRY_MAX`]. Jitter keeps the
/// candidates and workers that lost etcd together from reconnecting in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// A backoff with no failures yet.
    pub fn new() -> Self {
        Self { failures: 0 }
    }

    /// Failures recorded since the last [`Self::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forget past failures after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Records a failure and returns how long to wait: a random delay in `[d/2, d]` where
    /// `d = min(RETRY_BASE * 2^failures, RETRY_MAX)`.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let ceiling = RETRY_BASE.saturating_mul(1 << exponent).min(RETRY_MAX);
        let half = ceiling / 2;
        let jitter_nanos = rand::thread_rng().gen_range(0..=half.as_nanos() as u64);
        half + Duration::from_nanos(jitter_nanos)
    }

    /// Sleeps for [`Self::next_delay`], or returns `Err(Closed)` as soon as `cancel` fires.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> Result<(), MembershipError> {
        let delay = self.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => Err(MembershipError::Closed),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }
}

/// Calls `f` until it succeeds, fails permanently, has failed `max_attempts` times, or
/// `cancel` fires (then `Err(Closed)`).
///
/// `is_permanent` decides which errors end the loop at once; most callers pass
/// `|e| !e.is_retryable()`. The first [`RETRY_WARN_AFTER`] failures log at debug, later
/// ones at warn, so a single blip stays quiet but an outage is visible.
pub async fn retry<T, F, Fut>(
    name: &str,
    max_attempts: u32,
    is_permanent: impl Fn(&MembershipError) -> bool,
    cancel: &CancellationToken,
    mut f: F,
) -> Result<T, MembershipError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, MembershipError>>,
{
    debug_assert!(max_attempts > 0, "retry needs at least one attempt");
    let mut backoff = Backoff::new();
    let mut attempt = 0u32;
    loop {
        if cancel.is_cancelled() {
            return Err(MembershipError::Closed);
        }
        attempt += 1;
        let result = tokio::select! {
            _ = cancel.cancelled() => return Err(MembershipError::Closed),
            result = f() => result,
        };
        let error = match result {
            Ok(value) => {
                if attempt > RETRY_WARN_AFTER {
                    tracing::info!(op = name, attempt, "succeeded after retries");
                }
                return Ok(value);
            }
            Err(error) => error,
        };
        if is_permanent(&error) || attempt >= max_attempts {
            return Err(error);
        }
        if attempt >= RETRY_WARN_AFTER {
            tracing::warn!(op = name, attempt, max_attempts, error = %error, "retrying");
        } else {
            tracing::debug!(op = name, attempt, max_attempts, error = %error, "retrying");
        }
        backoff.wait(cancel).await?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn transient() -> MembershipError {
        MembershipError::Timeout {
            op: "test",
            after: Duration::ZERO,
        }
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(first >= RETRY_BASE / 2 && first <= RETRY_BASE, "{first:?}");
        for _ in 0..20 {
            let delay = backoff.next_delay();
            assert!(delay <= RETRY_MAX, "{delay:?}");
        }
        assert!(backoff.next_delay() >= RETRY_MAX / 2);
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
    }

    #[tokio::test]
    async fn retries_until_success() {
        let calls = AtomicU32::new(0);
        let cancel = CancellationToken::new();
        let value = retry(
            "t",
            5,
            |e| !e.is_retryable(),
            &cancel,
            || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(transient())
                } else {
                    Ok(7)
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn stops_on_permanent_errors_and_at_the_limit() {
        let cancel = CancellationToken::new();
        let calls = AtomicU32::new(0);
        let error = retry(
            "t",
            5,
            |e| !e.is_retryable(),
            &cancel,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(MembershipError::Fenced { term: 1 })
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, MembershipError::Fenced { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        calls.store(0, Ordering::SeqCst);
        let error = retry(
            "t",
            3,
            |_| false,
            &cancel,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(transient())
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, MembershipError::Timeout { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn cancellation_ends_the_loop() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let error = retry(
            "t",
            100,
            |_| false,
            &cancel,
            || async { Err::<(), _>(transient()) },
        )
        .await
        .unwrap_err();
        assert!(matches!(error, MembershipError::Closed));
    }
}
