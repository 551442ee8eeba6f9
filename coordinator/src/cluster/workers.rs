//! The leader's view of the workers: a gRPC client per worker (every call with its own
//! deadline, the caller's trace context in its metadata, and mutual TLS when the
//! migration uses it) and the newest report each streams (`WatchProgress`), kept by one
//! owned task per worker that reconnects with backoff until the worker leaves.
//!
//! A registered worker is *reached* once its progress stream opened: the connection
//! (and with TLS the worker's certificate) was good and the worker answered. Only
//! reached workers join the plan (see `ClusterPlane`), so registering in etcd is not
//! enough to be given work.
//!
//! A report whose milestone changed (see `c2c_worker::milestone`: a share copied, shards
//! steady, a failure…) bumps `milestones`, which wakes the control loop at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_api::trace_context::TraceContext;
use c2c_api::v1::worker_client::WorkerClient;
use c2c_api::v1::{WatchWorkerRequest, WorkerReport};
use c2c_worker::milestone::Milestone;
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tracing::Instrument;

use super::timing::{
    REPORT_INTERVAL, WATCH_RETRY, WATCH_RETRY_UNREACHED_MAX, WORKER_CONNECT_TIMEOUT,
};

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
    reached: Arc<AtomicBool>,
}

pub struct WorkerPool {
    /// Mutual TLS towards workers (`--clusterCAFile`…); plain h2c without.
    tls: Option<ClientTlsConfig>,
    connections: Mutex<HashMap<String, Connection>>,
    reports: Arc<Mutex<BTreeMap<String, Seen>>>,
    /// Bumped whenever a worker's report changes a milestone.
    milestones: Arc<watch::Sender<u64>>,
    /// When this pool first saw a worker: the first plan waits a little for every
    /// registered worker to be reached.
    first_tracked: Mutex<Option<Instant>>,
}

fn channel(
    address: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let endpoint = match tls {
        None => Endpoint::from_shared(format!("http://{address}"))?,
        // The worker's certificate must name the host of its advertised address.
        Some(tls) => {
            Endpoint::from_shared(format!("https://{address}"))?.tls_config(tls.clone())?
        }
    };
    Ok(endpoint
        .connect_timeout(WORKER_CONNECT_TIMEOUT)
        .connect_lazy())
}

impl WorkerPool {
    pub fn new(tls: Option<ClientTlsConfig>) -> WorkerPool {
        WorkerPool {
            tls,
            connections: Mutex::default(),
            reports: Arc::default(),
            milestones: Arc::new(watch::Sender::new(0)),
            first_tracked: Mutex::default(),
        }
    }

    /// Changes whenever a worker's report changes a milestone (not at every report).
    pub fn milestones(&self) -> watch::Receiver<u64> {
        self.milestones.subscribe()
    }

    /// Whether the worker's progress stream has opened (see the module comment).
    pub fn reached(&self, worker: &str) -> bool {
        self.connections
            .lock()
            .get(worker)
            .is_some_and(|c| c.reached.load(Ordering::Relaxed))
    }

    /// How long ago this pool first tracked a worker.
    pub fn tracking_for(&self) -> Duration {
        self.first_tracked
            .lock()
            .map_or(Duration::ZERO, |at| at.elapsed())
    }

    /// Connects to new workers and drops the ones that left (their watch task ends).
    pub fn track(&self, live: &[LiveWorker]) {
        if !live.is_empty() {
            self.first_tracked.lock().get_or_insert_with(Instant::now);
        }
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
            let channel = match channel(&worker.address, self.tls.as_ref()) {
                Ok(channel) => channel,
                Err(error) => {
                    tracing::warn!(worker = %worker.id, address = %worker.address, %error, "unusable worker address");
                    continue;
                }
            };
            let client = WorkerClient::with_interceptor(channel, TraceContext);
            let reached = Arc::new(AtomicBool::new(false));
            let watcher = tokio::spawn(watch_reports(
                worker.id.clone(),
                client.clone(),
                self.reports.clone(),
                self.milestones.clone(),
                reached.clone(),
            ));
            connections.insert(
                worker.id.clone(),
                Connection {
                    address: worker.address.clone(),
                    client,
                    watcher,
                    reached,
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
    milestones: Arc<watch::Sender<u64>>,
    reached: Arc<AtomicBool>,
) {
    let mut warned = false;
    let mut failures: u32 = 0;
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
                reached.store(true, Ordering::Relaxed);
                failures = 0;
                let mut stream = response.into_inner();
                while let Some(Ok(report)) = stream.next().await {
                    let milestone = Milestone::of(&report);
                    let previous = reports.lock().insert(
                        worker.clone(),
                        Seen {
                            report,
                            at: Instant::now(),
                        },
                    );
                    if previous.is_none_or(|seen| Milestone::of(&seen.report) != milestone) {
                        milestones.send_modify(|count| *count = count.wrapping_add(1));
                    }
                }
            }
            // A worker never reached is not given work: say why once, loudly (a wrong
            // certificate on either side shows here as a transport error).
            Err(status) if !reached.load(Ordering::Relaxed) && !warned => {
                warned = true;
                failures += 1;
                tracing::warn!(worker = %worker, error = %crate::log_format::error_chain(&status), "cannot reach this registered worker; it is not given work until it answers");
            }
            Err(status) => {
                failures += 1;
                tracing::debug!(worker = %worker, error = %crate::log_format::error_chain(&status), "worker progress stream unavailable");
            }
        }
        tokio::time::sleep(watch_retry_delay(reached.load(Ordering::Relaxed), failures)).await;
    }
}

/// A worker that answered before is retried quickly (it is likely restarting); one that
/// never answered (wrong certificate, wrong address) is retried with a growing delay so
/// it is not hammered, nor its log filled with refused handshakes.
fn watch_retry_delay(reached: bool, failures: u32) -> Duration {
    if reached {
        return WATCH_RETRY;
    }
    (WATCH_RETRY * 2u32.saturating_pow(failures.min(8))).min(WATCH_RETRY_UNREACHED_MAX)
}

/// Whether a report is recent enough to count (a silent worker is not steady).
pub fn fresh(seen: &Seen) -> bool {
    seen.at.elapsed() < REPORT_INTERVAL * 5 + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreached_worker_is_retried_ever_more_slowly_and_a_known_one_quickly() {
        assert_eq!(watch_retry_delay(true, 50), WATCH_RETRY);
        let delays: Vec<_> = (1..12).map(|n| watch_retry_delay(false, n)).collect();
        assert!(
            delays.windows(2).all(|pair| pair[0] <= pair[1]),
            "{delays:?}"
        );
        assert_eq!(delays[0], WATCH_RETRY * 2);
        assert_eq!(*delays.last().unwrap(), WATCH_RETRY_UNREACHED_MAX);
    }
}
