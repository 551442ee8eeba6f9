//! The leader's data plane over workers: implements the engine's `RemotePlane`.
//!
//! `sync` is the control loop: every `RECONCILE_INTERVAL` or membership change it
//! reconciles the plan with the live workers (persisting a changed plan before sending
//! it), sends each live worker its assignment when that worker does not run it yet
//! (its reported fence differs), and folds the workers' reports into the migration's
//! counters. Cancelling `sync` leaves the workers running: a new leader re-attaches
//! by sending the same plan, which restarts nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bson::Timestamp;
use c2c_api::v1::{AssignRequest, CommitCommand, Fence, StreamShard, WorkerCommand};
use c2c_engine::metadata::Metadata;
use c2c_engine::migration::{RemotePlane, StreamDirection, SyncContext};
use c2c_engine::progress::{Phase, Progress};
use c2c_engine::verify::VerificationSummary;
use c2c_engine::{EngineError, Result};
use c2c_worker::convert::verification_from_proto;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::fanout::{describe_failures, fan_out, CallError};
use super::plan::{PartitionLoad, Plan};
use super::store::PlanStore;
use super::timing::{
    ADMISSION_GRACE, DRAIN_TIMEOUT, PAUSE_TIMEOUT, REBALANCE_INTERVAL, RECONCILE_INTERVAL,
    REPORT_INTERVAL, WORKER_RPC_TIMEOUT,
};
use super::workers::{fresh, LiveWorker, WorkerPool};

pub struct PlaneSettings {
    pub migration_id: String,
    /// The leader's term (its etcd leader key's create revision; 1 without etcd).
    pub term: u64,
    /// The persisted request, as JSON, sent to every worker.
    pub request_json: String,
    pub load_level: Option<u32>,
    /// Mutual TLS towards the workers (`--clusterCAFile`…).
    pub worker_tls: Option<tonic::transport::ClientTlsConfig>,
    /// While set, assignments hold the work back (`run: false`): the migration is
    /// paused, or a new leader re-attaches to the workers of a paused migration.
    pub hold: Arc<std::sync::atomic::AtomicBool>,
}

pub struct ClusterPlane {
    settings: PlaneSettings,
    members: watch::Receiver<Vec<LiveWorker>>,
    store: Arc<dyn PlanStore>,
    metadata: Metadata,
    pub(crate) pool: Arc<WorkerPool>,
    plan: Mutex<Option<Plan>>,
    /// The assignment last acknowledged by each worker, and when.
    sent: Mutex<BTreeMap<String, Acknowledged>>,
    /// When the partition records were last read to give an idle worker work.
    rebalance_checked: Mutex<Option<Instant>>,
}

struct Acknowledged {
    request: AssignRequest,
    at: Instant,
}

fn fatal(what: &str, error: impl std::fmt::Display) -> EngineError {
    EngineError::Fatal(format!("{what}: {error}"))
}

/// Whether a worker runs exactly the stream shards it was assigned (a stopped share
/// runs none).
fn same_shards(running: &[u32], assigned: &[u32]) -> bool {
    let running: BTreeSet<u32> = running.iter().copied().collect();
    let assigned: BTreeSet<u32> = assigned.iter().copied().collect();
    running == assigned
}

impl ClusterPlane {
    pub fn new(
        settings: PlaneSettings,
        members: watch::Receiver<Vec<LiveWorker>>,
        store: Arc<dyn PlanStore>,
        metadata: Metadata,
    ) -> ClusterPlane {
        ClusterPlane {
            pool: Arc::new(WorkerPool::new(settings.worker_tls.clone())),
            settings,
            members,
            store,
            metadata,
            plan: Mutex::new(None),
            sent: Mutex::new(BTreeMap::new()),
            rebalance_checked: Mutex::new(None),
        }
    }

    pub fn plan(&self) -> Option<Plan> {
        self.plan.lock().clone()
    }

    /// Partitions of their current assignments the workers last reported finished.
    pub fn partitions_done(&self) -> u32 {
        self.pool
            .reports()
            .values()
            .map(|seen| seen.report.partitions_done)
            .sum()
    }

    /// Every worker registered in etcd.
    fn registered(&self) -> Vec<LiveWorker> {
        let mut live = self.members.borrow().clone();
        live.sort();
        live
    }

    /// The registered workers that are part of the migration: the ones this leader has
    /// reached, and the ones the plan already holds (a new leader re-attaches to those
    /// before their streams reopen, so running work never moves on a failover).
    fn live(&self) -> Vec<LiveWorker> {
        let planned = self
            .plan
            .lock()
            .as_ref()
            .map(Plan::workers)
            .unwrap_or_default();
        self.admitted(self.registered(), &planned)
    }

    fn admitted(&self, registered: Vec<LiveWorker>, planned: &BTreeSet<String>) -> Vec<LiveWorker> {
        registered
            .into_iter()
            .filter(|w| planned.contains(&w.id) || self.pool.reached(&w.id))
            .collect()
    }

    fn fence(&self, epoch: u64) -> Fence {
        Fence {
            term: self.settings.term,
            epoch,
        }
    }

    /// The plan reconciled with the live workers, persisted if it changed.
    async fn reconcile(&self, copy: bool) -> Result<Option<Plan>> {
        let registered = self.registered();
        self.pool.track(&registered);
        let cached = self.plan.lock().clone();
        let mut plan = match cached {
            Some(plan) => plan,
            None => self
                .store
                .load()
                .await
                .map_err(|e| fatal("loading the plan", e))?
                .unwrap_or_default(),
        };
        let live = self.admitted(registered.clone(), &plan.workers());
        if plan.shard_count == 0
            && live.len() < registered.len()
            && self.pool.tracking_for() < ADMISSION_GRACE
        {
            // The first plan fixes the number of stream shards: give every registered
            // worker a moment to be reached before making it.
            return Ok(None);
        }
        let ids: Vec<String> = live.iter().map(|w| w.id.clone()).collect();
        if !copy && !plan.partitions.is_empty() {
            // The copy is over (or this is a reverse, which copies nothing): the
            // partitions leave the plan, so no worker is shown copying them.
            plan.partitions.clear();
            plan.epoch += 1;
            self.persist(&plan, &ids).await?;
        }
        // Partitions are planned once, before the first plan: with every unit on a live
        // worker nothing can change, and reading every partition record twice a second
        // is what a copy of many partitions cannot afford.
        if plan.shard_count != 0
            && !plan.has_units_outside(&ids)
            && !(copy && self.idle_worker_may_take_work(&plan, &ids))
        {
            *self.plan.lock() = Some(plan.clone());
            return Ok(Some(plan));
        }
        let records = self.metadata.load_partitions().await?;
        let namespaces = self.metadata.load_namespaces().await?;
        // A partition weighs its share of its collection's estimated size: a record's
        // own `bytes` counts what was copied so far, which made partitions in flight
        // outweigh all unstarted ones.
        let mut per_namespace: BTreeMap<String, u64> = BTreeMap::new();
        for record in &records {
            *per_namespace.entry(record.ns.to_string()).or_default() += 1;
        }
        let estimated: BTreeMap<String, u64> = namespaces
            .iter()
            .map(|n| (n.ns.to_string(), n.estimated_bytes))
            .collect();
        let partitions: Vec<PartitionLoad> = records
            .iter()
            .map(|p| {
                let ns = p.ns.to_string();
                let count = per_namespace.get(&ns).copied().unwrap_or(1).max(1);
                PartitionLoad {
                    id: p.id.clone(),
                    bytes: (estimated.get(&ns).copied().unwrap_or(0) / count).max(1),
                    // Nothing is copied in the reverse direction.
                    done: p.done || !copy,
                    started: p.last.is_some() || p.done,
                }
            })
            .collect();
        let changed = if plan.shard_count == 0 {
            if ids.is_empty() {
                return Ok(None);
            }
            let mut database_bytes: BTreeMap<String, u64> = BTreeMap::new();
            for record in &namespaces {
                *database_bytes.entry(record.ns.db.clone()).or_default() += record.estimated_bytes;
            }
            plan = Plan::first(&ids, &database_bytes, &partitions);
            true
        } else {
            plan.reconcile(&ids, &partitions)
        };
        if changed {
            self.persist(&plan, &ids).await?;
        }
        *self.plan.lock() = Some(plan.clone());
        Ok(Some(plan))
    }

    /// One step of moving a stream shard to a live worker that owns none
    /// ([`Plan::balance_shards`]); the old owner has stopped it once it acknowledged
    /// the plan that released it. Moves start only in steady state: a shard moved
    /// during the copy is read again from T0 by its new owner, which a copy longer than
    /// the oplog window cannot afford. A move under way is always finished. Runs on
    /// every pass: `plan` (which may still list every finished partition) is changed in
    /// place, not copied, and only a changed plan is persisted.
    async fn balance_shards(&self, plan: &mut Plan, context: &SyncContext) -> Result<()> {
        let steady = context.progress.phase() == Some(Phase::SteadyState);
        if plan.shard_count == 0 || (plan.releasing.is_empty() && !steady) {
            return Ok(());
        }
        let ids: Vec<String> = self.live().into_iter().map(|w| w.id).collect();
        let fence = Some(self.fence(plan.epoch));
        let acknowledged: BTreeSet<String> = self
            .sent
            .lock()
            .iter()
            .filter(|(_, ack)| ack.request.fence == fence)
            .map(|(worker, _)| worker.clone())
            .collect();
        let stopped = |worker: &str| acknowledged.contains(worker);
        // Plan::balance_shards leaves the plan untouched when it returns false.
        if !plan.balance_shards(&ids, stopped) {
            return Ok(());
        }
        let step = if plan.releasing.is_empty() {
            "stream shard given to a worker that owned none (its old owner stopped it)"
        } else {
            "stream shard released, for a worker that owns none (its owner stops it first)"
        };
        tracing::info!(epoch = plan.epoch + 1, releasing = ?plan.releasing, owners = ?plan.shard_owners, "{step}");
        self.adopt(plan, &ids).await
    }

    /// Whether a live worker has no partition left to copy while another, by its
    /// report on the current plan, still has several: then unstarted partitions may
    /// move (`Plan::reconcile` decides from the records). At most every
    /// `REBALANCE_INTERVAL`, since it costs a read of every partition record.
    fn idle_worker_may_take_work(&self, plan: &Plan, ids: &[String]) -> bool {
        let fence = Some(self.fence(plan.epoch));
        let reports = self.pool.reports();
        let current = |id: &String| {
            reports
                .get(id)
                .filter(|seen| fresh(seen) && seen.report.fence == fence)
                .map(|seen| &seen.report)
        };
        // Runs on every pass of the control loop: the reports first, and one scan of
        // the partitions only when some worker still has several to copy.
        let busy = ids
            .iter()
            .any(|id| current(id).is_some_and(|r| r.partitions_assigned > r.partitions_done + 1));
        if !busy {
            return false;
        }
        let holding: BTreeSet<&String> = plan.partitions.values().collect();
        let idle = ids
            .iter()
            .any(|id| !holding.contains(id) || current(id).is_some_and(|r| r.copy_done));
        if !idle {
            return false;
        }
        let mut checked = self.rebalance_checked.lock();
        if checked.is_some_and(|at| at.elapsed() < REBALANCE_INTERVAL) {
            return false;
        }
        *checked = Some(Instant::now());
        true
    }

    /// A shard being moved when the commit's drain starts gets an owner at once (back to
    /// its old owner if live): the drain assigns and drains every owned shard itself.
    async fn settle_released_shards(&self, plan: &mut Plan) -> Result<()> {
        let ids: Vec<String> = self.live().into_iter().map(|w| w.id).collect();
        if !plan.settle_released_shards(&ids) {
            return Ok(());
        }
        self.adopt(plan, &ids).await
    }

    /// Makes `changed` (still carrying the current epoch) the plan: one epoch later,
    /// persisted, then current.
    async fn adopt(&self, changed: &mut Plan, workers: &[String]) -> Result<()> {
        changed.epoch += 1;
        self.persist(changed, workers).await?;
        *self.plan.lock() = Some(changed.clone());
        Ok(())
    }

    async fn persist(&self, plan: &Plan, workers: &[String]) -> Result<()> {
        self.store.save(plan).await.map_err(|e| {
            EngineError::Fenced(format!(
                "persisting the plan failed (no longer the leader?): {e}"
            ))
        })?;
        tracing::info!(
            epoch = plan.epoch,
            workers = workers.len(),
            "plan persisted"
        );
        Ok(())
    }

    /// `worker`'s share of `plan`; partitions only while the sync `copy`s.
    fn assignment(
        &self,
        plan: &Plan,
        worker: &str,
        direction: StreamDirection,
        copy: bool,
    ) -> AssignRequest {
        let mut shards: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (database, shard) in &plan.databases {
            shards.entry(*shard).or_default().push(database.clone());
        }
        AssignRequest {
            fence: Some(self.fence(plan.epoch)),
            migration_id: self.settings.migration_id.clone(),
            request_json: self.settings.request_json.clone(),
            load_level: self.settings.load_level,
            reversed: direction.reversed,
            stream_start: Some(c2c_worker::convert::cluster_time(direction.stream_start)),
            shard_count: plan.shard_count,
            shards: shards
                .into_iter()
                .map(|(id, databases)| StreamShard { id, databases })
                .collect(),
            owned_shards: plan.shards_of(worker).into_iter().collect(),
            partitions: if copy {
                plan.partitions_of(worker).into_iter().collect()
            } else {
                Vec::new()
            },
            run: !self.settings.hold.load(Ordering::SeqCst),
        }
    }

    /// Sends each live worker its assignment unless it acknowledged exactly this one
    /// and still reports the fence it carried (a restarted worker reports another).
    async fn send_assignments(&self, plan: &Plan, context: &SyncContext) {
        let reports = self.pool.reports();
        let wanted: Vec<(String, AssignRequest)> = self
            .live()
            .into_iter()
            .map(|w| {
                let request = self.assignment(plan, &w.id, context.direction, context.copy);
                (w.id, request)
            })
            .filter(|(id, request)| {
                let sent = self.sent.lock();
                let Some(ack) = sent.get(id).filter(|ack| &ack.request == request) else {
                    return true;
                };
                let report = reports.get(id);
                // A worker that lost its lease stopped its share: it needs the
                // assignment again once it holds a lease.
                let running = report.is_some_and(|seen| {
                    seen.report.lease_held
                        && same_shards(&seen.report.owned_shards, &request.owned_shards)
                        && seen.report.fence == request.fence
                        && seen.report.partitions_assigned as usize == request.partitions.len()
                });
                // Until the worker's first report after the ack arrives (a moment), the
                // ack stands: a pass woken by another worker's milestone re-sent it.
                let awaiting_report = report.is_none_or(|seen| seen.at < ack.at)
                    && ack.at.elapsed() < REPORT_INTERVAL * 2;
                !(running || awaiting_report)
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let requests: BTreeMap<String, AssignRequest> = wanted.into_iter().collect();
        let outcomes = fan_out(
            "Assign",
            requests.keys().cloned(),
            WORKER_RPC_TIMEOUT,
            |worker| {
                let client = self.pool.client(&worker);
                let request = requests[&worker].clone();
                async move {
                    let mut client = client.ok_or(CallError::NotConnected)?;
                    client.assign(request).await.map_err(CallError::Status)
                }
            },
        )
        .await;
        for (worker, outcome) in outcomes {
            if outcome.is_ok() {
                let ack = Acknowledged {
                    request: requests[&worker].clone(),
                    at: Instant::now(),
                };
                self.sent.lock().insert(worker.clone(), ack);
            } else {
                self.sent.lock().remove(&worker);
            }
        }
    }

    /// Folds the workers' reports into the migration's counters.
    fn aggregate(&self, plan: &Plan, context: &SyncContext) -> Result<()> {
        let reports = self.pool.reports();
        let progress = &context.progress;
        let mut events = 0;
        let mut lag: Option<i64> = None;
        let mut crud: Option<i64> = None;
        let mut ddl: Option<i64> = None;
        let mut steady_owners = BTreeSet::new();
        let mut verifying: BTreeMap<String, VerificationSummary> = BTreeMap::new();
        for (worker, seen) in &reports {
            let report = &seen.report;
            if let Some(message) = &report.verification {
                match verification_from_proto(message) {
                    Ok(summary) => {
                        verifying.insert(worker.clone(), summary);
                    }
                    Err(problem) => {
                        tracing::warn!(worker = %worker, problem = %problem, "unreadable verification report")
                    }
                }
            }
            events += report.events_applied;
            lag = lag.max(report.lag_seconds);
            crud = crud.max(report.crud_lag_seconds);
            ddl = ddl.max(report.ddl_lag_seconds);
            if let Some(failure) = &report.failure {
                return Err(EngineError::Fatal(format!("worker {worker}: {failure}")));
            }
            let current = report.fence == Some(self.fence(plan.epoch));
            if current && report.steady && fresh(seen) {
                steady_owners.insert(worker.clone());
            }
        }
        progress.events_applied.store(events, Ordering::Relaxed);
        // The engine's counters measure lag as source time minus applied time.
        let now = chrono_seconds();
        progress.source_latest_secs.store(now, Ordering::Relaxed);
        if let Some(lag) = lag {
            progress
                .applied_latest_secs
                .store(now - lag, Ordering::Relaxed);
        }
        if let Some(crud) = crud {
            progress
                .applied_crud_secs
                .store(now - crud, Ordering::Relaxed);
        }
        if let Some(ddl) = ddl {
            progress
                .applied_ddl_secs
                .store(now - ddl, Ordering::Relaxed);
        }
        self.aggregate_verification(plan, &verifying, progress);
        if progress.copy_done.load(Ordering::Relaxed) {
            // A shard being moved is applied by nobody for the moment.
            let all_steady = plan.releasing.is_empty()
                && plan
                    .shard_owners
                    .values()
                    .all(|owner| steady_owners.contains(owner));
            progress.set_phase(if all_steady {
                Phase::SteadyState
            } else {
                Phase::CopyDrain
            });
        }
        Ok(())
    }

    /// Every shard owner's verifier, merged: stream hashing only when every owner is
    /// (an owner that reports none has not started).
    fn aggregate_verification(
        &self,
        plan: &Plan,
        verifying: &BTreeMap<String, VerificationSummary>,
        progress: &Progress,
    ) {
        if !progress.verification.enabled.load(Ordering::Relaxed) {
            return;
        }
        let owners: BTreeSet<&String> = plan.shard_owners.values().collect();
        let mut merged: Option<VerificationSummary> = None;
        // A shard being moved counts as a verifier not started (its new owner resumes it).
        let moving = (!plan.releasing.is_empty()).then(VerificationSummary::default);
        let summaries = owners
            .into_iter()
            .map(|owner| verifying.get(owner).cloned().unwrap_or_default())
            .chain(moving);
        for summary in summaries {
            match merged.as_mut() {
                Some(merged) => merged.merge(&summary),
                None => merged = Some(summary),
            }
        }
        if let Some(merged) = merged {
            merged.publish(&progress.verification);
        }
    }

    async fn run(&self, context: SyncContext, cancel: CancellationToken) -> Result<()> {
        let mut members = self.members.clone();
        let mut milestones = self.pool.milestones();
        loop {
            if let Some(mut plan) = self.reconcile(context.copy).await? {
                self.balance_shards(&mut plan, &context).await?;
                self.send_assignments(&plan, &context).await;
                self.aggregate(&plan, &context)?;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                _ = members.changed() => {}
                // E.g. a worker's share is copied: the leader looks at the checkpoints now.
                Ok(()) = milestones.changed() => context.workers_progressed.notify_one(),
                _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
            }
        }
    }

    async fn drain(&self, tc: Timestamp, direction: StreamDirection) -> Result<Option<String>> {
        let started = Instant::now();
        // Assignments change below (held back, with this plan's shards): what was
        // acknowledged before is no longer what the workers hold.
        self.sent.lock().clear();
        let retry_or_fail = |what: &str, failures: String| {
            if started.elapsed() > DRAIN_TIMEOUT {
                return Err(EngineError::Fatal(format!("{what} failed: {failures}")));
            }
            tracing::warn!(failures = %failures, "{what} incomplete; retrying");
            Ok(())
        };
        loop {
            // Shards of lost workers move to survivors first: none is skipped.
            let Some(mut plan) = self.reconcile(false).await? else {
                if started.elapsed() > DRAIN_TIMEOUT {
                    return Err(EngineError::Fatal(
                        "no worker is alive to apply the change events up to the commit point"
                            .into(),
                    ));
                }
                tokio::time::sleep(RECONCILE_INTERVAL).await;
                continue;
            };
            self.settle_released_shards(&mut plan).await?;
            let owners: BTreeSet<String> = plan.shard_owners.values().cloned().collect();
            // A worker drains the shards of its latest assignment, so every owner gets
            // this plan's first (held back: the drain runs them). Otherwise a shard moved
            // from a worker lost during the commit, or an owner restarted since it was
            // assigned, is drained by nobody, and its events before Tc never reach the
            // destination.
            let assigned = fan_out("Assign", owners.clone(), WORKER_RPC_TIMEOUT, |worker| {
                let client = self.pool.client(&worker);
                let mut request = self.assignment(&plan, &worker, direction, false);
                request.run = false;
                async move {
                    let mut client = client.ok_or(CallError::NotConnected)?;
                    client.assign(request).await.map_err(CallError::Status)
                }
            })
            .await;
            if let Some(failures) = describe_failures(&assigned) {
                retry_or_fail(
                    "assigning the shards to drain to the commit point",
                    failures,
                )?;
                tokio::time::sleep(RECONCILE_INTERVAL).await;
                continue;
            }
            let fence = self.fence(plan.epoch);
            let outcomes = fan_out("Commit", owners, DRAIN_TIMEOUT, |worker| {
                let client = self.pool.client(&worker);
                let command = CommitCommand {
                    fence: Some(fence),
                    commit_point: Some(c2c_worker::convert::cluster_time(tc)),
                };
                async move {
                    let mut client = client.ok_or(CallError::NotConnected)?;
                    client
                        .commit(command)
                        .await
                        .map(|r| r.into_inner())
                        .map_err(CallError::Status)
                }
            })
            .await;
            if let Some(failures) = describe_failures(&outcomes) {
                retry_or_fail("applying up to the commit point", failures)?;
                tokio::time::sleep(RECONCILE_INTERVAL).await;
                continue;
            }
            return Ok(outcomes.into_iter().find_map(|(worker, outcome)| {
                outcome.ok().and_then(|ack| {
                    ack.late_write
                        .map(|w| format!("{w} (seen by worker {worker})"))
                })
            }));
        }
    }

    /// Pauses every live worker. One that cannot be reached is tried again until it
    /// answers or its registration expires — with its lease it stops writing, and it
    /// gets its assignment held back when it registers again — for at most
    /// `PAUSE_TIMEOUT`: a worker killed just before `/pause` delays the answer by its
    /// lease, instead of failing it.
    async fn pause_all(&self) -> Result<()> {
        let Some(plan) = self.plan() else {
            return Ok(());
        };
        let fence = self.fence(plan.epoch);
        let started = Instant::now();
        let mut pending: BTreeSet<String> = self.live().into_iter().map(|w| w.id).collect();
        self.sent.lock().clear();
        loop {
            let outcomes = fan_out("Pause", pending.clone(), WORKER_RPC_TIMEOUT, |worker| {
                let client = self.pool.client(&worker);
                async move {
                    let mut client = client.ok_or(CallError::NotConnected)?;
                    client
                        .pause(WorkerCommand { fence: Some(fence) })
                        .await
                        .map_err(CallError::Status)
                }
            })
            .await;
            let Some(failures) = describe_failures(&outcomes) else {
                return Ok(());
            };
            let registered: BTreeSet<String> =
                self.registered().into_iter().map(|w| w.id).collect();
            pending = outcomes
                .into_iter()
                .filter(|(worker, outcome)| outcome.is_err() && registered.contains(worker))
                .map(|(worker, _)| worker)
                .collect();
            if pending.is_empty() {
                tracing::info!("paused; the workers that did not answer are no longer registered");
                return Ok(());
            }
            if started.elapsed() > PAUSE_TIMEOUT {
                return Err(EngineError::Fatal(format!(
                    "pausing the workers failed: {failures}"
                )));
            }
            tracing::warn!(failures = %failures, "pausing: waiting for workers to answer or their registration to expire");
            tokio::time::sleep(RECONCILE_INTERVAL).await;
        }
    }
}

fn chrono_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The engine holds the plane as `Arc<dyn RemotePlane>`; the coordinator keeps its own
/// `Arc<ClusterPlane>` for the worker list.
#[derive(Clone)]
pub struct SharedPlane(pub Arc<ClusterPlane>);

impl RemotePlane for SharedPlane {
    fn sync(
        &self,
        context: SyncContext,
        cancel: CancellationToken,
    ) -> c2c_engine::migration::BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.0.run(context, cancel).await })
    }

    fn drain_to(
        &self,
        tc: Timestamp,
        direction: StreamDirection,
    ) -> c2c_engine::migration::BoxFuture<'_, Result<Option<String>>> {
        Box::pin(async move { self.0.drain(tc, direction).await })
    }

    fn pause(&self) -> c2c_engine::migration::BoxFuture<'_, Result<()>> {
        Box::pin(async move { self.0.pause_all().await })
    }
}
