//! One retry helper for every network call: bounded attempts, jittered exponential
//! backoff, and a predicate that tells transient MongoDB errors from permanent ones.

use std::future::IntoFuture;
use std::time::Duration;

use mongodb::error::{Error, ErrorKind};

use crate::metrics::{RetryKind, ENGINE};

/// Attempts per call; with the backoff below this spans roughly 30 s.
pub const MAX_ATTEMPTS: u32 = 8;
const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Every single network call gives up after this long (the driver's own timeouts are
/// longer by default).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Codes mongod marks retriable, plus the ones a sync may safely redo.
fn is_transient_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7
            | 89
            | 91
            | 134
            | 189
            | 262
            | 9001
            | 10107
            | 11600
            | 11602
            | 13435
            | 13436
            | 43
            | 112
            | 133
            | 175
            | 237
    )
}

/// True when repeating the same call may succeed.
pub fn is_transient(error: &Error) -> bool {
    if error.contains_label("RetryableWriteError")
        || error.contains_label("ResumableChangeStreamError")
        || error.contains_label("TransientTransactionError")
    {
        return true;
    }
    match &*error.kind {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. } => true,
        ErrorKind::Command(command) => is_transient_code(command.code),
        ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(concern)) => {
            is_transient_code(concern.code)
        }
        _ => false,
    }
}

fn backoff(attempt: u32) -> Duration {
    let exponential = BASE_DELAY
        .saturating_mul(1 << attempt.min(10))
        .min(MAX_DELAY);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    exponential.mul_f64(jitter)
}

/// Runs `call` until it succeeds, fails permanently, or `MAX_ATTEMPTS` pass. Each
/// attempt is bounded by `CALL_TIMEOUT`.
pub async fn retry<T, F, Fut>(what: &str, mut call: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: IntoFuture<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        let outcome = match tokio::time::timeout(CALL_TIMEOUT, call().into_future()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Error::custom(CallTimedOut {
                operation: what.to_string(),
            })),
        };
        match outcome {
            Ok(value) => return Ok(value),
            Err(error)
                if attempt + 1 < MAX_ATTEMPTS && (is_transient(&error) || is_timeout(&error)) =>
            {
                ENGINE.retried(retry_kind(&error));
                attempt += 1;
                let delay = backoff(attempt);
                tracing::warn!(operation = what, attempt, ?delay, error = %error, "transient error, retrying");
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                if is_transient(&error) || is_timeout(&error) {
                    ENGINE.gave_up(retry_kind(&error));
                }
                return Err(error);
            }
        }
    }
}

/// The `/metrics` label of a transient error.
fn retry_kind(error: &Error) -> RetryKind {
    if is_timeout(error) {
        return RetryKind::Timeout;
    }
    match &*error.kind {
        ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::ServerSelection { .. } => RetryKind::Network,
        _ => RetryKind::Server,
    }
}

/// Marks a call that exceeded `CALL_TIMEOUT` (carried inside the driver's error type).
#[derive(Debug)]
pub struct CallTimedOut {
    pub operation: String,
}

fn is_timeout(error: &Error) -> bool {
    matches!(&*error.kind, ErrorKind::Custom(custom) if custom.is::<CallTimedOut>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let mut calls = 0;
        let value = retry("test", || {
            calls += 1;
            let fail = calls < 3;
            async move {
                if fail {
                    Err(Error::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "reset",
                    )))
                } else {
                    Ok(7)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 7);
        assert_eq!(calls, 3);
    }

    #[test]
    fn backoff_is_bounded() {
        for attempt in 0..20 {
            assert!(backoff(attempt) <= MAX_DELAY.mul_f64(1.25));
        }
    }
}
