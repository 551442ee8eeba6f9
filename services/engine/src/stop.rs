//! Stopping a task that was asked to stop: it gets a bounded time to reach a checkpoint
//! and is aborted after that. Dropping its `JoinHandle` on the timeout, as before, only
//! detached it: a copy or an applier stuck in a long retry kept reading and writing
//! after a pause, or after its work was given to another worker.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How the task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It returned (at a checkpoint) within the time it was given.
    Returned,
    /// It did not: it was aborted at its next await point.
    Aborted,
}

/// Cancels `cancel`, waits up to `limit` for `task` to return, and aborts it if it has
/// not; in either case the task no longer runs when this returns.
pub async fn cancel_and_stop<T>(
    cancel: &CancellationToken,
    mut task: JoinHandle<T>,
    limit: Duration,
) -> Stopped {
    cancel.cancel();
    if tokio::time::timeout(limit, &mut task).await.is_ok() {
        return Stopped::Returned;
    }
    task.abort();
    // Aborted at its next await point; a task that never yields is a bug elsewhere.
    let _ = task.await;
    tracing::warn!(
        limit_ms = limit.as_millis() as u64,
        "a task did not stop in time after being cancelled; aborted"
    );
    Stopped::Aborted
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Sets its flag when dropped: the task's future was dropped (aborted or returned).
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_task_that_honours_cancellation_returns() {
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let task = tokio::spawn(async move { token.cancelled().await });
        let outcome = cancel_and_stop(&cancel, task, Duration::from_secs(5)).await;
        assert_eq!(outcome, Stopped::Returned);
    }

    #[tokio::test]
    async fn a_task_that_ignores_cancellation_is_aborted_not_left_running() {
        let cancel = CancellationToken::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let task = tokio::spawn(async move {
            let _flag = flag;
            // Stands in for a write stuck in retries: never looks at the token.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let outcome = cancel_and_stop(&cancel, task, Duration::from_millis(50)).await;
        assert_eq!(outcome, Stopped::Aborted);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the task still runs after cancel_and_stop returned"
        );
    }
}
