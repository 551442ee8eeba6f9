//! The leader's per-worker breakdown for `/progress`, `Progress`, `WatchProgress` and
//! `ListWorkers`: the live membership joined with the newest report each worker
//! streams to the plane and the share the plan gives it.

use std::sync::Arc;

use c2c_api::v1::{ListWorkersReply, WorkerInfo, WorkerProgress};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cluster::plane::ClusterPlane;
use crate::cluster::workers::{fresh, LiveWorker};
use crate::grpc::WorkerDirectory;

/// The plane exists once a migration starts; before that only membership is known.
pub type PlaneSlot = Arc<Mutex<Option<Arc<ClusterPlane>>>>;

pub struct ClusterWorkers {
    pub members: watch::Receiver<Vec<LiveWorker>>,
    pub plane: PlaneSlot,
    pub term: u64,
}

impl ClusterWorkers {
    fn plane(&self) -> Option<Arc<ClusterPlane>> {
        self.plane.lock().clone()
    }
}

impl WorkerDirectory for ClusterWorkers {
    fn progress(&self) -> Vec<WorkerProgress> {
        let members = self.members.borrow().clone();
        let plane = self.plane();
        let reports = plane
            .as_ref()
            .map(|plane| plane.pool.reports())
            .unwrap_or_default();
        let plan = plane.as_ref().and_then(|plane| plane.plan());
        members
            .into_iter()
            .map(|member| {
                let seen = reports.get(&member.id);
                let assigned = plan
                    .as_ref()
                    .map_or(0, |plan| plan.partitions_of(&member.id).len() as u32);
                let shards: Vec<String> = plan.as_ref().map_or_else(Vec::new, |plan| {
                    plan.shards_of(&member.id)
                        .iter()
                        .map(u32::to_string)
                        .collect()
                });
                let status = match seen {
                    Some(seen) if fresh(seen) && seen.report.lease_held => "live",
                    Some(seen) if fresh(seen) => "lease lost",
                    // No migration yet: the leader does not talk to workers before /start.
                    _ if plane.is_none() => "registered",
                    _ => "unreachable",
                };
                let mut progress = WorkerProgress {
                    worker_id: member.id.clone(),
                    address: member.address.clone(),
                    status: status.into(),
                    partitions_assigned: assigned,
                    stream_shards: shards,
                    ..WorkerProgress::default()
                };
                if let Some(seen) = seen {
                    let report = &seen.report;
                    progress.phase = report.phase.clone();
                    progress.copy_done = report.copy_done;
                    progress.steady = report.steady;
                    progress.lag_seconds = report.lag_seconds;
                    progress.copied_bytes = report.copied_bytes;
                    progress.copied_documents = report.copied_documents;
                    progress.events_applied = report.events_applied;
                    progress.partitions_done = report.partitions_done;
                    progress.failure = report.failure.clone();
                }
                progress
            })
            .collect()
    }

    fn list(&self) -> ListWorkersReply {
        let plan = self.plane().and_then(|plane| plane.plan());
        let workers = self
            .progress()
            .into_iter()
            .map(|worker| WorkerInfo {
                worker_id: worker.worker_id,
                address: worker.address,
                status: worker.status,
                partitions_assigned: worker.partitions_assigned,
                stream_shards: worker.stream_shards,
            })
            .collect();
        ListWorkersReply {
            workers,
            plan_epoch: plan.map_or(0, |plan| plan.epoch),
            leader_term: self.term,
        }
    }
}
