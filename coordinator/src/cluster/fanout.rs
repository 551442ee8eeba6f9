//! Fan-out: one call per worker, concurrently, each under its own deadline and client
//! span (whose trace context the call carries to the worker), every outcome kept; the
//! caller applies its policy to the failures in a separate step.

use std::future::Future;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tracing::Instrument;

/// Why one worker's call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("not connected")]
    NotConnected,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{}", .0.message())]
    Status(tonic::Status),
}

pub type Outcome<T> = (String, Result<T, CallError>);

/// Runs `call(worker)` for every worker; returns each worker's outcome.
pub async fn fan_out<T, F, Fut>(
    what: &'static str,
    workers: impl IntoIterator<Item = String>,
    deadline: Duration,
    call: F,
) -> Vec<Outcome<T>>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let mut calls: FuturesUnordered<_> = workers
        .into_iter()
        .map(|worker| {
            // The client span: its trace context travels in the call's metadata.
            let span = tracing::info_span!(
                "worker_rpc",
                otel.kind = "client",
                otel.name = format!("c2c.v1.Worker/{what}"),
                otel.status_code = tracing::field::Empty,
                rpc = what,
                worker = %worker
            );
            let future = call(worker.clone());
            async move {
                let outcome = match tokio::time::timeout(deadline, future).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(CallError::Timeout(deadline)),
                };
                if let Err(error) = &outcome {
                    tracing::Span::current().record("otel.status_code", "ERROR");
                    tracing::warn!(error = %error, "worker call failed");
                }
                (worker, outcome)
            }
            .instrument(span)
        })
        .collect();
    let mut outcomes = Vec::new();
    while let Some(outcome) = calls.next().await {
        outcomes.push(outcome);
    }
    outcomes
}

/// The failures, named by worker, in one line (for an error a user reads).
pub fn describe_failures<T>(outcomes: &[Outcome<T>]) -> Option<String> {
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|(worker, outcome)| {
            outcome
                .as_ref()
                .err()
                .map(|e| format!("worker {worker}: {e}"))
        })
        .collect();
    (!failures.is_empty()).then(|| failures.join("; "))
}
