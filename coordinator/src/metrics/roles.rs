//! The scaled-out processes' metrics: a coordinator's leadership (and, on the leader,
//! the migration and the workers as it sees them), a worker's share.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use axum::Router;
use c2c_engine::share::ShareReport;
use c2c_worker::WorkerService;

use super::migration::{self, DataCounters};
use super::process;
use super::text::{Exposition, Kind};
use crate::coordinator::Coordinator;

/// Worker statuses the leader reports (`/progress` `workers[].status`), as labels.
const WORKER_STATUSES: [&str; 4] = ["live", "lease lost", "unreachable", "registered"];

/// A `c2c coordinator`'s metrics. Leadership is set once: losing it restarts the
/// process (crash-only), which starts with a fresh value.
pub struct CoordinatorMetrics {
    id: String,
    leading: OnceLock<Leading>,
}

struct Leading {
    coordinator: Arc<Coordinator>,
    term: u64,
}

impl CoordinatorMetrics {
    pub fn new(id: &str) -> Arc<CoordinatorMetrics> {
        Arc::new(CoordinatorMetrics {
            id: id.to_string(),
            leading: OnceLock::new(),
        })
    }

    /// This process leads from now on, with `coordinator`, in `term`.
    pub fn set_leader(&self, coordinator: Arc<Coordinator>, term: u64) {
        let _ = self.leading.set(Leading { coordinator, term });
    }

    pub fn render(&self) -> String {
        let mut text = Exposition::new();
        process::build_info(&mut text, &self.id);
        let leading = self.leading.get();
        text.single(
            "c2c_leader",
            Kind::Gauge,
            "1 on the coordinator elected leader, 0 on the others.",
            leading.is_some(),
        );
        if let Some(leading) = leading {
            text.single(
                "c2c_leader_term",
                Kind::Gauge,
                "The leader's term (its etcd leader key's create revision).",
                leading.term,
            );
            workers(&mut text, &leading.coordinator);
            migration::render(&mut text, &leading.coordinator);
        }
        process::engine(&mut text);
        text.finish()
    }

    pub fn router(self: &Arc<Self>) -> Router {
        let metrics = self.clone();
        super::router(move || {
            let metrics = metrics.clone();
            async move { metrics.render() }
        })
    }
}

/// The workers registered in etcd, as the leader sees them.
fn workers(text: &mut Exposition, coordinator: &Coordinator) {
    let workers = coordinator
        .workers()
        .map(|directory| directory.progress())
        .unwrap_or_default();
    text.single(
        "c2c_workers",
        Kind::Gauge,
        "Workers registered in etcd with a live lease, as the leader sees them.",
        workers.len() as u64,
    );
    let mut by_status: BTreeMap<String, u64> = WORKER_STATUSES
        .iter()
        .map(|status| (status.to_string(), 0))
        .collect();
    for worker in &workers {
        *by_status.entry(worker.status.clone()).or_default() += 1;
    }
    let mut family = text.family(
        "c2c_workers_by_status",
        Kind::Gauge,
        "Registered workers by what the leader last heard: live, lease_lost, unreachable, registered (no migration yet).",
    );
    for (status, count) in &by_status {
        family.sample(&[("status", &status.replace(' ', "_"))], *count);
    }
}

/// A `c2c worker`'s metrics: its share of the migration and its engine.
pub async fn render_worker(service: &WorkerService) -> String {
    let report = service.share_report().await;
    let mut text = Exposition::new();
    process::build_info(&mut text, service.id());
    text.single(
        "c2c_worker_lease_held",
        Kind::Gauge,
        "1 while this worker's etcd lease is confirmed (it writes only then).",
        service.lease_valid(),
    );
    share(&mut text, &report);
    process::engine(&mut text);
    text.finish()
}

fn share(text: &mut Exposition, report: &ShareReport) {
    text.single(
        "c2c_worker_running",
        Kind::Gauge,
        "1 while this worker runs an assignment (not paused, not idle).",
        report.running,
    );
    migration::phase(text, report.phase);
    migration::data(
        text,
        &DataCounters {
            copied_documents: report.copied_documents,
            copied_bytes: report.copied_bytes,
            copy_done: report.copy_done,
            events_applied: report.events_applied,
            lag_seconds: report.lag_seconds,
            crud_lag_seconds: report.crud_lag_seconds,
            ddl_lag_seconds: report.ddl_lag_seconds,
            failed: report.failure.is_some(),
        },
    );
    text.family(
        "c2c_worker_partitions",
        Kind::Gauge,
        "Copy partitions assigned to this worker, and those done.",
    )
    .sample(&[("state", "assigned")], report.partitions_assigned)
    .sample(&[("state", "done")], report.partitions_done);
    text.single(
        "c2c_worker_stream_shards",
        Kind::Gauge,
        "Change-stream shards (groups of databases) this worker applies.",
        report.owned_shards.len() as u64,
    );
}

/// `/metrics` for a worker.
pub fn worker_router(service: Arc<WorkerService>) -> Router {
    super::router(move || {
        let service = service.clone();
        async move { render_worker(&service).await }
    })
}
