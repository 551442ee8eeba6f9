//! The `c2c.v1.Worker` service: the leader's commands applied to this worker's share.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_api::v1::worker_server::Worker;
use c2c_api::v1::{
    AssignRequest, CommitAck, CommitCommand, WatchWorkerRequest, WorkerAck, WorkerCommand,
    WorkerReport,
};
use c2c_engine::gate::WriteGate;
use c2c_engine::migration::{Clusters, EngineConfig};
use c2c_engine::options::{LoadLevel, StartRequest, SyncOptions};
use c2c_engine::share::{Share, ShareReport, ShareSpec};
use futures::{Stream, StreamExt};
use mongodb::Client;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::convert;
use crate::fence::{Fence, FenceKeeper};
use crate::milestone::{self, Milestone, Sent};

/// How often `WatchProgress` reports by default.
const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_millis(1000);
/// How often it reports at most, and how often it looks for a changed milestone, which
/// it sends at once (see `milestone`).
const MIN_REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Whether this worker may write: its etcd lease is confirmed within its TTL on the
/// local monotonic clock (always true for an in-process worker).
pub trait LeaseView: Send + Sync + 'static {
    fn is_valid(&self) -> bool;
}

/// The two clusters as `--cluster0` / `--cluster1` name them.
#[derive(Clone)]
pub struct WorkerSettings {
    pub id: String,
    pub cluster0: (Client, Vec<String>),
    pub cluster1: (Client, Vec<String>),
    pub load_level: Option<LoadLevel>,
    pub engine: EngineConfig,
}

struct Current {
    fence: FenceKeeper,
    /// The request the share was built for; a different one builds a new share.
    request: Option<StartRequest>,
    share: Option<Arc<Share>>,
    spec: Option<ShareSpec>,
}

pub struct WorkerService {
    settings: WorkerSettings,
    lease: Arc<dyn LeaseView>,
    current: Mutex<Current>,
    /// Cancelled by `end_progress_streams`: the leader's WatchProgress never ends by
    /// itself, and an open stream holds the server's graceful shutdown for its whole
    /// grace period (and the connection, with this service, past it).
    streams_ending: CancellationToken,
}

fn refused(message: String) -> Status {
    Status::failed_precondition(message)
}

fn engine_status(error: c2c_engine::EngineError) -> Status {
    match error {
        c2c_engine::EngineError::Fenced(message) | c2c_engine::EngineError::Refused(message) => {
            Status::failed_precondition(message)
        }
        other => Status::internal(other.to_string()),
    }
}

impl WorkerService {
    pub fn new(settings: WorkerSettings, lease: Arc<dyn LeaseView>) -> WorkerService {
        WorkerService {
            settings,
            lease,
            current: Mutex::new(Current {
                fence: FenceKeeper::default(),
                request: None,
                share: None,
                spec: None,
            }),
            streams_ending: CancellationToken::new(),
        }
    }

    /// Ends every open progress stream, and those opened later at once: the process is
    /// stopping. (Not on a lost lease: the leader keeps watching a worker that
    /// registers again.)
    pub fn end_progress_streams(&self) {
        self.streams_ending.cancel();
    }

    pub fn id(&self) -> &str {
        &self.settings.id
    }

    fn cluster(&self, name: &str) -> Result<(Client, Vec<String>), Status> {
        match name {
            "cluster0" => Ok(self.settings.cluster0.clone()),
            "cluster1" => Ok(self.settings.cluster1.clone()),
            other => Err(Status::invalid_argument(format!(
                "the request names an unknown cluster {other:?}"
            ))),
        }
    }

    /// `leader_load_level` is the leader's `--loadLevel`: it applies unless this worker
    /// was started with its own (a host can be held to less, or allowed more).
    fn build_share(
        &self,
        request: &StartRequest,
        leader_load_level: Option<LoadLevel>,
    ) -> Result<Arc<Share>, Status> {
        let (source, source_hosts) = self.cluster(&request.source)?;
        let (destination, destination_hosts) = self.cluster(&request.destination)?;
        let load_level = self.settings.load_level.or(leader_load_level);
        let options = SyncOptions::from_request(request, load_level)
            .map_err(|error| Status::invalid_argument(error.to_string()))?;
        let lease = self.lease.clone();
        let gate = WriteGate::new(move || lease.is_valid());
        Ok(Arc::new(Share::new(
            Clusters {
                source,
                destination,
                source_hosts,
                destination_hosts,
            },
            options,
            self.settings.engine.clone(),
            gate,
        )))
    }

    fn check_lease(&self) -> Result<(), Status> {
        if self.lease.is_valid() {
            Ok(())
        } else {
            Err(refused(
                "this worker's lease expired; it takes no work until it registers again".into(),
            ))
        }
    }

    /// Stops all work at once and forgets the assignment (the lease is gone, or the
    /// process shuts down). Its report then shows nothing running, so the leader sends
    /// the assignment again once this worker holds a lease; until then its share may
    /// have moved to another worker.
    pub async fn stop_all(&self) {
        let share = {
            let mut current = self.current.lock().await;
            current.spec = None;
            current.request = None;
            current.share.take()
        };
        if let Some(share) = share {
            share.stop().await;
        }
    }

    /// The report `WatchProgress` streams.
    pub async fn report(&self) -> WorkerReport {
        let (share, fence) = {
            let current = self.current.lock().await;
            (current.share.clone(), current.fence.newest())
        };
        let share_report = match share {
            Some(share) => share.report().await,
            None => Default::default(),
        };
        convert::report(
            &self.settings.id,
            fence,
            self.lease.is_valid(),
            &share_report,
        )
    }

    /// The counters of the share this worker runs (empty with none), as the engine
    /// keeps them: what the worker's `/metrics` exports.
    pub async fn share_report(&self) -> ShareReport {
        let share = self.current.lock().await.share.clone();
        match share {
            Some(share) => share.report().await,
            None => ShareReport::default(),
        }
    }

    /// Whether this worker may write now (its lease is confirmed).
    pub fn lease_valid(&self) -> bool {
        self.lease.is_valid()
    }

    /// Stops the share at a checkpoint and holds it until assigned or resumed
    /// (`Pause`, `Reverse`).
    async fn hold(&self, fence: Fence) -> Result<Response<WorkerAck>, Status> {
        let mut current = self.admit(fence).await?;
        if let Some(share) = current.share.clone() {
            share.stop().await;
        }
        if let Some(spec) = current.spec.as_mut() {
            spec.run = false;
        }
        Ok(Response::new(WorkerAck {
            worker_id: self.settings.id.clone(),
        }))
    }

    async fn admit(&self, fence: Fence) -> Result<tokio::sync::MutexGuard<'_, Current>, Status> {
        let mut current = self.current.lock().await;
        current.fence.admit(fence).map_err(refused)?;
        Ok(current)
    }
}

/// The tonic service: a handle on the shared [`WorkerService`].
#[derive(Clone)]
pub struct WorkerEndpoint(pub Arc<WorkerService>);

impl std::ops::Deref for WorkerEndpoint {
    type Target = WorkerService;
    fn deref(&self) -> &WorkerService {
        &self.0
    }
}

type ReportStream = Pin<Box<dyn Stream<Item = Result<WorkerReport, Status>> + Send>>;

/// The server span of one `c2c.v1.Worker` call: in traces the child of the leader's
/// client span that the call's metadata names (W3C `traceparent`).
macro_rules! server_span {
    ($name:literal, $method:literal, $metadata:expr, $fence:expr) => {{
        let span = tracing::info_span!(
            $name,
            otel.kind = "server",
            otel.name = concat!("c2c.v1.Worker/", $method),
            term = $fence.term,
            epoch = $fence.epoch
        );
        c2c_api::trace_context::set_parent_from_metadata(&span, $metadata);
        span
    }};
}

#[tonic::async_trait]
impl Worker for WorkerEndpoint {
    async fn assign(&self, request: Request<AssignRequest>) -> Result<Response<WorkerAck>, Status> {
        let (metadata, _, assign) = request.into_parts();
        let fence = Fence::from(assign.fence.as_ref());
        let span = server_span!("worker.assign", "Assign", &metadata, fence);
        async {
            self.check_lease()?;
            let start = convert::start_request(&assign).map_err(Status::invalid_argument)?;
            let spec = convert::share_spec(&assign).map_err(Status::invalid_argument)?;
            let leader_load_level =
                convert::leader_load_level(&assign).map_err(Status::invalid_argument)?;
            let mut current = self.admit(fence).await?;
            // The load level is taken when the share is built: a later leader started
            // with another one does not restart the work (the worker's next start does).
            if current.request.as_ref() != Some(&start) {
                if let Some(old) = current.share.take() {
                    old.stop().await;
                }
                current.share = Some(self.build_share(&start, leader_load_level)?);
                current.request = Some(start);
            }
            let share = current.share.clone().expect("set above");
            tracing::info!(
                partitions = spec.partitions.len(),
                shards = ?spec.owned_shards,
                run = spec.run,
                "assignment"
            );
            share.assign(spec.clone()).await.map_err(engine_status)?;
            current.spec = Some(spec);
            Ok(Response::new(WorkerAck {
                worker_id: self.settings.id.clone(),
            }))
        }
        .instrument(span)
        .await
    }

    async fn pause(&self, request: Request<WorkerCommand>) -> Result<Response<WorkerAck>, Status> {
        let fence = Fence::from(request.get_ref().fence.as_ref());
        let span = server_span!("worker.pause", "Pause", request.metadata(), fence);
        self.hold(fence).instrument(span).await
    }

    async fn resume(&self, request: Request<WorkerCommand>) -> Result<Response<WorkerAck>, Status> {
        let fence = Fence::from(request.get_ref().fence.as_ref());
        let span = server_span!("worker.resume", "Resume", request.metadata(), fence);
        async {
            self.check_lease()?;
            let mut current = self.admit(fence).await?;
            let (Some(share), Some(spec)) = (current.share.clone(), current.spec.as_mut()) else {
                return Err(refused("nothing is assigned to this worker".into()));
            };
            spec.run = true;
            share.assign(spec.clone()).await.map_err(engine_status)?;
            Ok(Response::new(WorkerAck {
                worker_id: self.settings.id.clone(),
            }))
        }
        .instrument(span)
        .await
    }

    async fn commit(&self, request: Request<CommitCommand>) -> Result<Response<CommitAck>, Status> {
        let (metadata, _, command) = request.into_parts();
        let fence = Fence::from(command.fence.as_ref());
        let span = server_span!("worker.commit", "Commit", &metadata, fence);
        async {
            self.check_lease()?;
            let tc = convert::timestamp(command.commit_point.as_ref(), "commit_point")
                .map_err(Status::invalid_argument)?;
            let share = {
                let mut current = self.admit(fence).await?;
                if let Some(spec) = current.spec.as_mut() {
                    spec.run = false;
                }
                current.share.clone()
            };
            // Answering "drained" with nothing assigned would let the commit go on
            // without this worker's shards (e.g. it restarted since it was assigned).
            let Some(share) = share else {
                return Err(refused(
                    "nothing is assigned to this worker, so it has nothing to drain; the leader assigns the shards before committing".into(),
                ));
            };
            let late_write = share.drain_to(tc).await.map_err(engine_status)?;
            Ok(Response::new(CommitAck {
                worker_id: self.settings.id.clone(),
                late_write,
            }))
        }
        .instrument(span)
        .await
    }

    async fn reverse(
        &self,
        request: Request<WorkerCommand>,
    ) -> Result<Response<WorkerAck>, Status> {
        let fence = Fence::from(request.get_ref().fence.as_ref());
        let span = server_span!("worker.reverse", "Reverse", request.metadata(), fence);
        // The roles swap: stop everything; the leader's next Assign runs the other way.
        self.hold(fence).instrument(span).await
    }

    type WatchProgressStream = ReportStream;

    async fn watch_progress(
        &self,
        request: Request<WatchWorkerRequest>,
    ) -> Result<Response<ReportStream>, Status> {
        let interval = match request.get_ref().interval_ms {
            0 => DEFAULT_REPORT_INTERVAL,
            ms => Duration::from_millis(u64::from(ms)).max(MIN_REPORT_INTERVAL),
        };
        // The span covers opening the stream, not the reports that follow for as long
        // as the leader listens.
        let span = tracing::info_span!(
            "worker.watch_progress",
            otel.kind = "server",
            otel.name = "c2c.v1.Worker/WatchProgress",
            interval_ms = interval.as_millis() as u64
        );
        c2c_api::trace_context::set_parent_from_metadata(&span, request.metadata());
        span.in_scope(|| tracing::debug!("progress stream opened"));
        let service = self.0.clone();
        let ending = self.0.streams_ending.clone().cancelled_owned();
        // Sampled every MIN_REPORT_INTERVAL; sent when a milestone changed or when due.
        let stream = futures::stream::unfold(None, move |last: Option<Sent>| {
            let service = service.clone();
            async move {
                let mut first = last.is_none();
                loop {
                    if !first {
                        tokio::time::sleep(MIN_REPORT_INTERVAL).await;
                    }
                    first = false;
                    // Taken in a task of its own: HTTP/2 polls this stream only while
                    // the leader has window left, and a report queued on the worker's
                    // locks but left unpolled would hold them (tokio's mutex hands
                    // itself to a queued waiter), stopping Assign, Pause and the
                    // lease-loss stop behind it.
                    let taking = service.clone();
                    let task =
                        AbortOnDropHandle::new(tokio::spawn(async move { taking.report().await }));
                    let report = match task.await {
                        Ok(report) => report,
                        Err(error) => {
                            let status = Status::internal(format!(
                                "the worker's report could not be taken: {error}"
                            ));
                            return Some((Err(status), last));
                        }
                    };
                    let milestone = Milestone::of(&report);
                    let now = Instant::now();
                    if milestone::due(last.as_ref(), &milestone, now, interval) {
                        let sent = Sent { milestone, at: now };
                        return Some((Ok(report), Some(sent)));
                    }
                }
            }
        })
        .take_until(ending);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Serves the worker's gRPC service (with health) on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    endpoint: WorkerEndpoint,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(c2c_api::v1::worker_server::WorkerServer::new(endpoint))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
}

#[cfg(test)]
mod tests {
    use bson::Timestamp;
    use c2c_api::v1::Fence as WireFence;
    use tonic::Code;

    use super::*;

    struct Held;

    impl LeaseView for Held {
        fn is_valid(&self) -> bool {
            true
        }
    }

    /// A worker whose clusters are never contacted (nothing is assigned to it).
    async fn unassigned_worker() -> WorkerEndpoint {
        worker_with_load_level(None).await
    }

    /// The same, started with `--loadLevel` when given.
    async fn worker_with_load_level(load_level: Option<u8>) -> WorkerEndpoint {
        let client = Client::with_uri_str("mongodb://127.0.0.1:9")
            .await
            .expect("a lazy client");
        let settings = WorkerSettings {
            id: "w1".into(),
            cluster0: (client.clone(), Vec::new()),
            cluster1: (client, Vec::new()),
            load_level: load_level.map(|level| LoadLevel::new(level).expect("1 to 4")),
            engine: EngineConfig::default(),
        };
        WorkerEndpoint(Arc::new(WorkerService::new(settings, Arc::new(Held))))
    }

    /// An assignment that holds the work back (`run: false`), so nothing is started and
    /// no cluster is contacted, from a leader started with `--loadLevel load_level`.
    fn held_assignment(load_level: Option<u32>) -> AssignRequest {
        AssignRequest {
            fence: Some(WireFence { term: 1, epoch: 1 }),
            migration_id: "default".into(),
            request_json: r#"{"source":"cluster0","destination":"cluster1","includeNamespaces":[],"excludeNamespaces":[],"buildIndexes":"afterDataCopy","reversible":false,"enableUserWriteBlocking":"destinationOnly","verificationEnabled":false,"detectRandomId":true,"preExistingDestinationData":false}"#.into(),
            load_level,
            reversed: false,
            stream_start: Some(convert::cluster_time(Timestamp {
                time: 5,
                increment: 1,
            })),
            shard_count: 1,
            shards: Vec::new(),
            owned_shards: Vec::new(),
            partitions: Vec::new(),
            run: false,
        }
    }

    async fn share_load_level(endpoint: &WorkerEndpoint) -> u8 {
        let current = endpoint.0.current.lock().await;
        let share = current.share.as_ref().expect("a share after Assign");
        share.options().load_level.get()
    }

    /// mongosync's `--loadLevel` is the process's; a scaled-out migration is started on
    /// the coordinator, so its `--loadLevel` has to reach workers started without one.
    #[tokio::test]
    async fn a_worker_without_its_own_load_level_takes_the_leaders() {
        let endpoint = worker_with_load_level(None).await;
        endpoint
            .assign(Request::new(held_assignment(Some(1))))
            .await
            .expect("assigned");
        assert_eq!(share_load_level(&endpoint).await, 1);

        let endpoint = worker_with_load_level(None).await;
        endpoint
            .assign(Request::new(held_assignment(None)))
            .await
            .expect("assigned");
        assert_eq!(share_load_level(&endpoint).await, 3, "mongosync's default");

        let endpoint = worker_with_load_level(Some(2)).await;
        endpoint
            .assign(Request::new(held_assignment(Some(4))))
            .await
            .expect("assigned");
        assert_eq!(
            share_load_level(&endpoint).await,
            2,
            "the worker's own wins"
        );

        let endpoint = worker_with_load_level(None).await;
        let refused = endpoint
            .assign(Request::new(held_assignment(Some(9))))
            .await
            .expect_err("no such load level");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("load_level 9"), "{refused:?}");
    }

    /// A worker restarted since its last assignment (or never assigned) must not answer
    /// a commit "drained": the commit would go on without its shards' events.
    #[tokio::test]
    async fn a_commit_with_nothing_assigned_is_refused() {
        // Never contacted: the refusal comes before any cluster is used.
        let endpoint = unassigned_worker().await;
        let command = CommitCommand {
            fence: Some(WireFence { term: 1, epoch: 3 }),
            commit_point: Some(convert::cluster_time(Timestamp {
                time: 5,
                increment: 1,
            })),
        };
        let status = endpoint
            .commit(Request::new(command))
            .await
            .expect_err("nothing to drain");
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains("nothing is assigned"),
            "{status:?}"
        );
    }

    /// HTTP/2 polls a response stream only while the reader has window left: a leader
    /// that stopped reading (stalled, partitioned) leaves the stream's report waiting
    /// on the worker's lock unpolled. tokio's mutex hands itself to the first queued
    /// waiter, so that report used to hold the lock for good, and the lease-loss stop,
    /// Assign and Pause behind it never ran.
    #[tokio::test]
    async fn a_progress_stream_nobody_reads_holds_no_lock() {
        let endpoint = unassigned_worker().await;
        let busy = endpoint.current.lock().await;
        let mut stream = endpoint
            .watch_progress(Request::new(WatchWorkerRequest { interval_ms: 0 }))
            .await
            .expect("a stream")
            .into_inner();
        // Its first report queues behind the lock; then nobody polls the stream again.
        assert!(futures::poll!(stream.next()).is_pending());
        drop(busy);
        tokio::time::timeout(Duration::from_secs(5), endpoint.stop_all())
            .await
            .expect("stopping is not held up by an unread progress stream");
        drop(stream);
    }

    /// A stopping worker ends the leader's progress stream (and any opened after), so
    /// the server's graceful shutdown does not wait out its grace period on it.
    #[tokio::test]
    async fn stopping_ends_the_progress_streams() {
        let endpoint = unassigned_worker().await;
        let mut stream = endpoint
            .watch_progress(Request::new(WatchWorkerRequest { interval_ms: 0 }))
            .await
            .expect("a stream")
            .into_inner();
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(
            matches!(first, Ok(Some(Ok(_)))),
            "the first report comes at once"
        );
        endpoint.0.end_progress_streams();
        let ended = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the stream ends promptly");
        assert!(ended.is_none(), "the stream ended without another report");
        let mut later = endpoint
            .watch_progress(Request::new(WatchWorkerRequest { interval_ms: 0 }))
            .await
            .expect("a stream")
            .into_inner();
        let ended = tokio::time::timeout(Duration::from_secs(5), later.next())
            .await
            .expect("a stream opened while stopping ends at once");
        assert!(ended.is_none());
    }
}
