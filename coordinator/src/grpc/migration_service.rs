//! `c2c.v1.Migration` over the coordinator: the same calls as the REST handlers, with
//! the same validation and errors (see `status`), plus a progress stream and the
//! worker list.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use c2c_api::v1::migration_server::Migration;
use c2c_api::v1::{
    CommitRequest, ListWorkersReply, ListWorkersRequest, OperationReply, PauseRequest,
    ProgressReply, ProgressRequest, ResumeRequest, ReverseRequest, StartRequest, StartResponse,
    WatchProgressRequest, WorkerInfo, WorkerProgress,
};
use futures::{Stream, StreamExt};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};
use tracing::{debug, info_span, Instrument};

use super::convert::{progress_reply, start_body};
use super::status::api_status;
use crate::api::error::ApiError;
use crate::api::progress::progress_document;
use crate::coordinator::{Coordinator, CoordinatorError};
use crate::start_options::validate_start;

/// The id `ListWorkers` reports for the engine running inside this process.
pub const LOCAL_WORKER_ID: &str = "local";
/// `WatchProgress` interval when the request leaves it at 0, and the smallest accepted
/// (a client asking for 1 ms would make the server rebuild the document in a loop).
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_millis(1000);
pub const MIN_WATCH_INTERVAL: Duration = Duration::from_millis(100);

/// Who does the work: the per-worker part of `Progress` / `WatchProgress` and the
/// `ListWorkers` answer. `c2c run` has one in-process worker (`LocalWorker`); the
/// scale-out coordinator plugs in its membership view instead.
pub trait WorkerDirectory: Send + Sync + 'static {
    /// The per-worker breakdown appended to every `ProgressReply`.
    fn progress(&self) -> Vec<WorkerProgress>;
    fn list(&self) -> ListWorkersReply;
}

/// The single in-process worker of `c2c run`, always live. Its progress is the
/// overall document, so no breakdown is reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalWorker;

impl WorkerDirectory for LocalWorker {
    fn progress(&self) -> Vec<WorkerProgress> {
        Vec::new()
    }

    fn list(&self) -> ListWorkersReply {
        ListWorkersReply {
            workers: vec![WorkerInfo {
                worker_id: LOCAL_WORKER_ID.into(),
                // In the coordinator's process: there is no address of its own.
                address: String::new(),
                status: "live".into(),
                partitions_assigned: 0,
                stream_shards: Vec::new(),
            }],
            plan_epoch: 0,
            leader_term: 0,
        }
    }
}

type ProgressStream = Pin<Box<dyn Stream<Item = Result<ProgressReply, Status>> + Send>>;

#[derive(Clone)]
pub struct MigrationService {
    coordinator: Arc<Coordinator>,
    workers: Arc<dyn WorkerDirectory>,
    /// Cancelled when the server stops, so open `WatchProgress` streams end and do not
    /// hold the graceful shutdown open.
    shutdown: CancellationToken,
}

impl MigrationService {
    pub fn new(coordinator: Arc<Coordinator>, shutdown: CancellationToken) -> MigrationService {
        MigrationService {
            coordinator,
            workers: Arc::new(LocalWorker),
            shutdown,
        }
    }

    /// Replaces the in-process worker with another view of the workers.
    pub fn with_workers(mut self, workers: Arc<dyn WorkerDirectory>) -> MigrationService {
        self.workers = workers;
        self
    }

    /// The current progress, as `Progress` answers it.
    pub fn progress_now(&self) -> ProgressReply {
        let document = progress_document(&self.coordinator.snapshot(), self.coordinator.settings());
        let mut reply = progress_reply(&document);
        reply.workers = self.workers.progress();
        reply
    }
}

/// Runs one RPC in its span, logging the outcome as the REST layer does. In traces the
/// span is the call's server span; a `traceparent` in `metadata` makes it continue the
/// caller's trace.
async fn traced<T>(
    rpc: &'static str,
    metadata: &MetadataMap,
    call: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<Response<T>, Status> {
    let span = server_span(rpc, metadata);
    async move {
        match call.await {
            Ok(reply) => {
                debug!("answered");
                Ok(Response::new(reply))
            }
            Err(error) => {
                let status = api_status(error);
                if matches!(
                    status.code(),
                    Code::Internal | Code::Unknown | Code::Unavailable | Code::DataLoss
                ) {
                    tracing::Span::current().record("otel.status_code", "ERROR");
                }
                Err(status)
            }
        }
    }
    .instrument(span)
    .await
}

/// The span of one `c2c.v1.Migration` call, parented by the caller's trace context.
fn server_span(rpc: &'static str, metadata: &MetadataMap) -> tracing::Span {
    let span = info_span!(
        "grpc",
        otel.kind = "server",
        otel.name = %format_args!("c2c.v1.Migration/{rpc}"),
        otel.status_code = tracing::field::Empty,
        rpc
    );
    c2c_api::trace_context::set_parent_from_metadata(&span, metadata);
    span
}

fn operation(result: Result<(), CoordinatorError>) -> Result<OperationReply, ApiError> {
    result.map(|()| OperationReply {}).map_err(ApiError::from)
}

/// The stream period: 0 means the default; anything below the minimum is raised to it.
pub fn watch_interval(interval_ms: u32) -> Duration {
    if interval_ms == 0 {
        DEFAULT_WATCH_INTERVAL
    } else {
        Duration::from_millis(u64::from(interval_ms)).max(MIN_WATCH_INTERVAL)
    }
}

#[tonic::async_trait]
impl Migration for MigrationService {
    async fn start(
        &self,
        request: Request<StartRequest>,
    ) -> Result<Response<StartResponse>, Status> {
        let body = start_body(request.get_ref());
        traced("Start", request.metadata(), async {
            let start = validate_start(&body, self.coordinator.settings().load_level)?;
            self.coordinator.start(start).await?;
            Ok(StartResponse {})
        })
        .await
    }

    async fn progress(
        &self,
        request: Request<ProgressRequest>,
    ) -> Result<Response<ProgressReply>, Status> {
        traced("Progress", request.metadata(), async {
            Ok(self.progress_now())
        })
        .await
    }

    type WatchProgressStream = ProgressStream;

    async fn watch_progress(
        &self,
        request: Request<WatchProgressRequest>,
    ) -> Result<Response<ProgressStream>, Status> {
        let interval = watch_interval(request.get_ref().interval_ms);
        let span = info_span!(
            "grpc",
            otel.kind = "server",
            otel.name = "c2c.v1.Migration/WatchProgress",
            rpc = "WatchProgress",
            interval_ms = interval.as_millis() as u64
        );
        c2c_api::trace_context::set_parent_from_metadata(&span, request.metadata());
        span.in_scope(|| debug!("progress stream opened"));
        let mut ticker = tokio::time::interval(interval);
        // A slow client gets the latest document late rather than a burst of old ones.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let service = self.clone();
        // The first tick fires at once, so the client sees the state immediately. The
        // stream is dropped (ending the loop) when the client cancels or disconnects.
        let state = (ticker, StreamClosed(span));
        let stream = futures::stream::unfold(state, move |(mut ticker, closed)| {
            let service = service.clone();
            async move {
                ticker.tick().await;
                Some((Ok(service.progress_now()), (ticker, closed)))
            }
        })
        .take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn pause(
        &self,
        request: Request<PauseRequest>,
    ) -> Result<Response<OperationReply>, Status> {
        traced("Pause", request.metadata(), async {
            operation(self.coordinator.pause().await)
        })
        .await
    }

    async fn resume(
        &self,
        request: Request<ResumeRequest>,
    ) -> Result<Response<OperationReply>, Status> {
        traced("Resume", request.metadata(), async {
            operation(self.coordinator.resume().await)
        })
        .await
    }

    async fn commit(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<OperationReply>, Status> {
        traced("Commit", request.metadata(), async {
            operation(self.coordinator.commit().await)
        })
        .await
    }

    async fn reverse(
        &self,
        request: Request<ReverseRequest>,
    ) -> Result<Response<OperationReply>, Status> {
        traced("Reverse", request.metadata(), async {
            operation(self.coordinator.reverse().await)
        })
        .await
    }

    async fn list_workers(
        &self,
        request: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersReply>, Status> {
        traced("ListWorkers", request.metadata(), async {
            Ok(self.workers.list())
        })
        .await
    }
}

/// Logs, in the stream's span, when a `WatchProgress` stream is dropped (client gone,
/// or server stopping), so its lifetime shows in the logs like a unary call's.
struct StreamClosed(tracing::Span);

impl Drop for StreamClosed {
    fn drop(&mut self) {
        self.0.in_scope(|| debug!("progress stream closed"));
    }
}
