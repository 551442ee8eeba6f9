//! The leader's view of the workers: a gRPC client per worker (every call with its own
//! deadline, and the caller's trace context in its metadata) and the newest report each
//! streams (`WatchProgress`), kept by one owned task per worker that reconnects with
//! backoff until the worker leaves.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_api::trace_context::TraceContext;
use c2c_api::v1::worker_client::WorkerClient;
use c2c_api::v1::{WatchWorkerRequest, WorkerReport};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use super::timing::{REPORT_INTERVAL, WATCH_RETRY, WORKER_CONNECT_TIMEOUT};

/// A client of one worker's `c2c.v1.Worker`: each call carries the W3C trace context of
/// the span it is made in, so the worker's server span continues the leader's trace.
pub type WorkerRpcClient = WorkerClient<InterceptedService<Channel, TraceContext>>;

/// A registered worker (its lease is alive).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveWorker {
    pub id: String,
    /// `host:port` of its gRPC server.
    pub address: String,
}

/// The newest report of a worker and when it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub report: WorkerReport,
    pub at: Instant,
}

struct Connection {
    address: String,
    client: WorkerRpcClient,
    watcher: JoinHandle<()>,
}

#[derive(Default)]
pub struct WorkerPool {
    connections: Mutex<HashMap<String, Connection>>,
    reports: Arc<Mutex<BTreeMap<String, Seen>>>,
}

fn channel(address: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{address}"))?
        .connect_timeout(WORKER_CONNECT_TIMEOUT)
        .connect_lazy())
}

impl WorkerPool {
    /// Connects to new workers and drops the ones that left (their watch task ends).
    pub fn track(&self, live: &[LiveWorker]) {
        let mut connections = self.connections.lock();
        connections.retain(|id, connection| {
            let keep = live
                .iter()
                .any(|w| &w.id == id && w.address == connection.address);
            if !keep {
                connection.watcher.abort();
            }
            keep
        });
        self.reports
            .lock()
            .retain(|id, _| live.iter().any(|w| &w.id == id));
        for worker in live {
            if connections.contains_key(&worker.id) {
                continue;
            }
            let Ok(channel) = channel(&worker.address) else {
                tracing::warn!(worker = %worker.id, address = %worker.address, "unusable worker address");
                continue;
            };
            let client = WorkerClient::with_interceptor(channel, TraceContext);
            let watcher = tokio::spawn(watch_reports(
                worker.id.clone(),
                client.clone(),
                self.reports.clone(),
            ));
            connections.insert(
                worker.id.clone(),
                Connection {
                    address: worker.address.clone(),
                    client,
                    watcher,
                },
            );
        }
    }

    pub fn client(&self, worker: &str) -> Option<WorkerRpcClient> {
        self.connections
            .lock()
            .get(worker)
            .map(|c| c.client.clone())
    }

    pub fn address(&self, worker: &str) -> Option<String> {
        self.connections
            .lock()
            .get(worker)
            .map(|c| c.address.clone())
    }

    pub fn reports(&self) -> BTreeMap<String, Seen> {
        self.reports.lock().clone()
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        for connection in self.connections.lock().values() {
            connection.watcher.abort();
        }
    }
}

async fn watch_reports(
    worker: String,
    mut client: WorkerRpcClient,
    reports: Arc<Mutex<BTreeMap<String, Seen>>>,
) {
    loop {
        let request = WatchWorkerRequest {
            interval_ms: REPORT_INTERVAL.as_millis() as u32,
        };
        // The span covers opening the stream, not the reports that follow.
        let span = tracing::info_span!(
            "worker_rpc",
            otel.kind = "client",
            otel.name = "c2c.v1.Worker/WatchProgress",
            rpc = "WatchProgress",
            worker = %worker
        );
        match client.watch_progress(request).instrument(span).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                while let Some(Ok(report)) = stream.next().await {
                    reports.lock().insert(
                        worker.clone(),
                        Seen {
                            report,
                            at: Instant::now(),
                        },
                    );
                }
            }
            Err(status) => {
                tracing::debug!(worker = %worker, error = %status.message(), "worker progress stream unavailable");
            }
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

/// Whether a report is recent enough to count (a silent worker is not steady).
pub fn fresh(seen: &Seen) -> bool {
    seen.at.elapsed() < REPORT_INTERVAL * 5 + Duration::from_secs(1)
}
