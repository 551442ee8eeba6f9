//! The migration: plans once, then runs its phases as owned tasks.
//!
//! ```text
//! start ──► plan (discover, check destination, T0, namespaces, partitions; persisted)
//!             │
//!             ▼
//!   ┌─ reader: change stream from T0 (or the checkpoint) ──► spill ─┐
//!   │  copy: partitions in parallel (loadLevel), checkpointed        │   Copying
//!   │  then: indexes (afterDataCopy), phase := Applying              │
//!   └─ applier: drains the spill (copy drain), then steady state ◄──┘   Applying
//! ```
//!
//! Everything is persisted in `__c2c_internal`, so a restart with the same request
//! continues: finished partitions are skipped, unfinished ones resume after their last
//! `_id`, and the stream restarts after the last applied event (or at T0). Pause cancels
//! the run's tasks (each stops within a second, after its last checkpoint) and resume
//! starts them again from those checkpoints.
//!
//! Cutover (`crate::cutover`) adds the phases Committing → Committed → Reversing →
//! Applying (the other way round). The run dispatches on the persisted phase, so a
//! restart continues a commit or reverse at its saved step. After a reverse the data
//! flows from the request's destination to its source ([`Migration::flow`]); the
//! metadata stays on the request's destination.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Timestamp};
use futures::stream::{self, StreamExt};
use mongodb::Client;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cea::apply::{Applier, ApplierOptions};
use crate::cea::reader::{Reader, StartAt};
use crate::cea::spill::{Spill, SpillConfig};
use crate::copy::copy_partition_in_slot;
use crate::cutover::blocking::set_user_write_block;
use crate::cutover::{privileges, CutoverHooks};
use crate::discovery::{self, SourceNamespace};
use crate::error::{EngineError, Result, Side};
use crate::indexes;
use crate::metadata::{
    CutoverState, Metadata, MigrationState, NamespaceKind, NamespaceRecord, PersistedPhase,
};
use crate::options::{StartRequest, SyncOptions, WriteBlocking};
use crate::partition;
use crate::progress::{Phase, Progress};
use crate::retry::retry;
use crate::verify::{AppliedClock, Verifier, VerifierSetup, VerifierStore};

mod remote;
mod setup;
pub use remote::{BoxFuture, RemotePlane, StreamDirection, SyncContext};
use setup::*;
pub(crate) use setup::{beside_reader, start_reader, StartedReader};

/// Partitions aim at this many bytes each.
pub const PARTITION_TARGET_BYTES: u64 = 64 * 1024 * 1024;
/// How often both clusters are pinged for `pingLatencyMs` (mongosync: 30 s).
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// How often an idle stream checkpoints a high-water mark while syncing.
const MARK_EVERY: Duration = Duration::from_secs(1);
/// Bound on how long pause waits for the tasks to reach a checkpoint.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The two clusters, connected, with the `host:port` lists from their URIs.
#[derive(Clone)]
pub struct Clusters {
    pub source: Client,
    pub destination: Client,
    pub source_hosts: Vec<String>,
    pub destination_hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where change events buffered during the copy spill to disk.
    pub spill_dir: PathBuf,
    pub partition_target_bytes: u64,
    /// Crash simulation for cutover tests; inert by default.
    pub hooks: CutoverHooks,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            spill_dir: std::env::temp_dir().join(format!("c2c-spill-{}", std::process::id())),
            partition_target_bytes: PARTITION_TARGET_BYTES,
            hooks: CutoverHooks::default(),
        }
    }
}

struct RunHandle {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

pub struct Migration {
    /// As the request names them; see [`Migration::flow`] for the current direction.
    pub(crate) clusters: Clusters,
    pub(crate) options: SyncOptions,
    pub(crate) config: EngineConfig,
    /// Always on the request's destination.
    pub(crate) metadata: Metadata,
    pub(crate) progress: Arc<Progress>,
    run: Mutex<Option<RunHandle>>,
    /// Scale-out: workers copy and apply (the leader plans and runs the cutover steps);
    /// `None` in a single process, which does everything itself.
    pub(crate) plane: Option<Arc<dyn RemotePlane>>,
}

/// What a fresh start prepared before the run's task: the stream opened at T0 (single
/// process only) and the discovered namespaces.
pub(crate) struct Prepared {
    reader: Option<StartedReader>,
    namespaces: Vec<SourceNamespace>,
}

impl Migration {
    /// Plans a new migration (or checks that a persisted one has the same request) and
    /// starts running it.
    pub async fn start(
        clusters: Clusters,
        request: StartRequest,
        options: SyncOptions,
        config: EngineConfig,
    ) -> Result<Arc<Migration>> {
        Migration::start_with(clusters, request, options, config, None).await
    }

    /// As [`Migration::start`], with the copy and change-event application done by
    /// workers through `plane` (the scaled-out leader).
    pub async fn start_remote(
        clusters: Clusters,
        request: StartRequest,
        options: SyncOptions,
        config: EngineConfig,
        plane: Arc<dyn RemotePlane>,
    ) -> Result<Arc<Migration>> {
        Migration::start_with(clusters, request, options, config, Some(plane)).await
    }

    async fn start_with(
        clusters: Clusters,
        request: StartRequest,
        options: SyncOptions,
        config: EngineConfig,
        plane: Option<Arc<dyn RemotePlane>>,
    ) -> Result<Arc<Migration>> {
        let metadata = Metadata::new(&clusters.destination);
        let progress = Arc::new(Progress::default());
        progress.set_phase(Phase::Initializing);
        let cancel = CancellationToken::new();
        let mut prepared = None;
        privileges::check(
            &clusters.source,
            &clusters.destination,
            options.write_blocking,
        )
        .await?;
        let persisted = metadata.load_state().await?;
        match &persisted {
            Some(state) => check_same_migration(state, &request, &clusters)?,
            None => {
                let namespaces = discovery::discover(&clusters.source, &options.filter).await?;
                discovery::check_destination(&clusters.destination, &namespaces).await?;
                let t0 = take_t0(&clusters.source).await?;
                // The stream opens at T0 before anything slow happens on the destination,
                // so a busy source cannot roll its oplog past T0 while we set up. (Scaled
                // out, each worker opens its shards' streams when assigned.)
                let reader = match plane {
                    Some(_) => None,
                    None => Some(start_reader(
                        &clusters,
                        &options,
                        &config,
                        &progress,
                        StartAt::OperationTime(t0),
                        MARK_EVERY,
                        &cancel,
                    )?),
                };
                let state = MigrationState {
                    request: request.clone(),
                    t0,
                    phase: PersistedPhase::Planning,
                    source_hosts: clusters.source_hosts.clone(),
                    destination_hosts: clusters.destination_hosts.clone(),
                    estimated_total_bytes: namespaces.iter().map(|n| n.estimated_bytes).sum(),
                    cutover: CutoverState::default(),
                };
                if let Err(error) = metadata.save_state(&state).await {
                    cancel.cancel();
                    return Err(error);
                }
                prepared = Some(Prepared { reader, namespaces });
            }
        }
        let (phase, reversed) = persisted
            .as_ref()
            .map_or((PersistedPhase::Planning, false), |state| {
                (state.phase, state.cutover.reversed)
            });
        progress.reversed.store(reversed, Ordering::Relaxed);
        progress
            .verification
            .enabled
            .store(options.verification, Ordering::Relaxed);
        let migration = Arc::new(Migration {
            clusters,
            options,
            config,
            metadata,
            progress,
            run: Mutex::new(None),
            plane,
        });
        // User writes on the destination are blocked from the start of the sync until
        // right before canWrite (cutover steps manage blocking themselves).
        let syncing = matches!(
            phase,
            PersistedPhase::Planning | PersistedPhase::Copying | PersistedPhase::Applying
        );
        if syncing && migration.options.write_blocking != WriteBlocking::None {
            let destination = migration.flow().destination;
            if let Err(error) = set_user_write_block(&destination, Side::Destination, true).await {
                cancel.cancel();
                return Err(error);
            }
        }
        migration.spawn_run(cancel, prepared);
        Ok(migration)
    }

    /// The clusters in the current direction: swapped after an odd number of reverses.
    pub fn flow(&self) -> Clusters {
        if !self.progress.reversed.load(Ordering::Relaxed) {
            return self.clusters.clone();
        }
        Clusters {
            source: self.clusters.destination.clone(),
            destination: self.clusters.source.clone(),
            source_hosts: self.clusters.destination_hosts.clone(),
            destination_hosts: self.clusters.source_hosts.clone(),
        }
    }

    /// Where the current direction's stream starts: after the last applied event, else
    /// at Td of the commit before the last reverse, else at T0.
    pub(crate) async fn stream_start(&self, state: &MigrationState) -> Result<StartAt> {
        Ok(match self.metadata.load_cea_checkpoint().await? {
            Some(checkpoint) => StartAt::After(checkpoint.token),
            None => StartAt::OperationTime(state.cutover.stream_start.unwrap_or(state.t0)),
        })
    }

    /// The persisted request of a migration on this destination, if any.
    pub async fn persisted_request(destination: &Client) -> Result<Option<StartRequest>> {
        Ok(Metadata::new(destination)
            .load_state()
            .await?
            .map(|state| state.request))
    }

    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Stops reading and writing (within a second for each task), keeping checkpoints.
    /// When the workers cannot all be paused, syncing goes on as before and the error
    /// says why.
    pub async fn pause(self: &Arc<Self>) -> Result<()> {
        self.stop_run().await;
        if let Some(plane) = &self.plane {
            if let Err(error) = plane.pause().await {
                // Not paused: the run drives the workers again. Left stopped, the
                // migration showed RUNNING (and its last counters) while nothing
                // reassigned a lost worker's shards.
                self.spawn_run(CancellationToken::new(), None);
                return Err(error);
            }
        }
        self.progress.set_phase(Phase::Paused);
        Ok(())
    }

    /// Cancels the run's tasks and waits (bounded) until they stopped at a checkpoint.
    pub(crate) async fn stop_run(&self) {
        let handle = self.run.lock().take();
        if let Some(handle) = handle {
            crate::stop::cancel_and_stop(&handle.cancel, handle.task, STOP_TIMEOUT).await;
        }
    }

    /// Whether the run's task is still working (not stopped, failed or finished).
    pub(crate) fn is_running(&self) -> bool {
        self.run
            .lock()
            .as_ref()
            .is_some_and(|handle| !handle.task.is_finished())
    }

    /// Continues from the checkpoints.
    pub async fn resume(self: &Arc<Self>) -> Result<()> {
        if self.run.lock().is_some() {
            return Ok(());
        }
        self.spawn_run(CancellationToken::new(), None);
        Ok(())
    }

    /// Stops everything (process shutdown), whether or not every worker answers.
    pub async fn shutdown(&self) {
        self.stop_run().await;
        if let Some(plane) = &self.plane {
            let _ = plane.pause().await;
        }
        self.progress.set_phase(Phase::Paused);
    }

    pub(crate) fn spawn_run(
        self: &Arc<Self>,
        cancel: CancellationToken,
        prepared: Option<Prepared>,
    ) {
        let migration = self.clone();
        let token = cancel.clone();
        // The call that started the run (`/commit`, say): its trace goes on with the
        // cutover steps.
        let cause = crate::trace::current();
        let task = tokio::spawn(async move {
            let outcome = migration
                .clone()
                .run_phases(token.clone(), prepared, cause)
                .await;
            match outcome {
                Ok(()) | Err(EngineError::Cancelled) => {}
                Err(error) => {
                    tracing::error!(error = %error, "migration failed");
                    *migration.progress.failure.lock() = Some(error.to_string());
                    // A failed commit stays COMMITTING (with the failure) until fixed.
                    let cutover = matches!(
                        migration.progress.phase(),
                        Some(Phase::Committing | Phase::Reversing)
                    );
                    if !cutover {
                        migration.progress.set_phase(Phase::Failed);
                    }
                    token.cancel();
                }
            }
        });
        *self.run.lock() = Some(RunHandle { cancel, task });
    }

    async fn run_phases(
        self: Arc<Self>,
        cancel: CancellationToken,
        prepared: Option<Prepared>,
        cause: opentelemetry::Context,
    ) -> Result<()> {
        let pinger = tokio::spawn(ping_loop(
            self.clusters.clone(),
            self.progress.clone(),
            cancel.clone(),
        ));
        let outcome = self.run_current(cancel.clone(), prepared, cause).await;
        cancel.cancel();
        let _ = pinger.await;
        outcome
    }

    /// Continues from the persisted phase: a commit or reverse at its saved step, or
    /// the sync (a reverse ends in the sync the other way round). The cutover steps
    /// continue the trace of `cause`, the call that started them.
    async fn run_current(
        &self,
        cancel: CancellationToken,
        prepared: Option<Prepared>,
        cause: opentelemetry::Context,
    ) -> Result<()> {
        if prepared.is_none() {
            let state = self.load_state().await?;
            self.progress
                .reversed
                .store(state.cutover.reversed, Ordering::Relaxed);
            match state.phase {
                PersistedPhase::Committing => {
                    let span = tracing::info_span!("commit");
                    crate::trace::continue_trace(&span, cause);
                    return self.run_commit(&cancel).instrument(span).await;
                }
                PersistedPhase::Committed => {
                    self.progress.copy_done.store(true, Ordering::Relaxed);
                    self.progress.can_write.store(true, Ordering::Relaxed);
                    self.progress.set_phase(Phase::Committed);
                    return Ok(());
                }
                PersistedPhase::Reversing => {
                    let span = tracing::info_span!("reverse");
                    crate::trace::continue_trace(&span, cause);
                    self.run_reverse(&cancel).instrument(span).await?
                }
                PersistedPhase::Planning | PersistedPhase::Copying | PersistedPhase::Applying => {}
            }
        }
        self.run_with_stream(cancel, prepared).await
    }

    async fn run_with_stream(
        &self,
        cancel: CancellationToken,
        prepared: Option<Prepared>,
    ) -> Result<()> {
        if let Some(plane) = self.plane.clone() {
            return self
                .run_remote(plane, cancel, prepared.map(|p| p.namespaces))
                .await;
        }
        let (reader, discovered) = match prepared {
            Some(Prepared {
                reader: Some(reader),
                namespaces,
            }) => (reader, Some(namespaces)),
            _ => {
                let state = self.load_state().await?;
                let start = self.stream_start(&state).await?;
                (
                    start_reader(
                        &self.flow(),
                        &self.options,
                        &self.config,
                        &self.progress,
                        start,
                        MARK_EVERY,
                        &cancel,
                    )?,
                    None,
                )
            }
        };
        let StartedReader {
            spill,
            task: reader_task,
        } = reader;
        let flow = self.flow();
        let work = async {
            let state = self.load_state().await?;
            self.progress
                .estimated_total_bytes
                .store(state.estimated_total_bytes.max(1), Ordering::Relaxed);
            if state.phase == PersistedPhase::Planning {
                self.plan_destination(discovered).await?;
            }
            if state.phase != PersistedPhase::Applying {
                self.progress.set_phase(Phase::CollectionCopy);
                async {
                    self.copy_all(&cancel).await?;
                    if self.options.build_indexes.after_copy() {
                        self.build_all_indexes().await?;
                    }
                    Ok::<(), EngineError>(())
                }
                .instrument(tracing::info_span!("collection_copy"))
                .await?;
                self.metadata.set_phase(PersistedPhase::Applying).await?;
            }
            self.progress.copy_done.store(true, Ordering::Relaxed);
            self.progress.set_phase(Phase::CopyDrain);
            let applier = Applier::new(
                flow.source.clone(),
                flow.destination.clone(),
                self.options.filter.clone(),
                spill.clone(),
                self.progress.clone(),
                ApplierOptions {
                    load_level: self.options.load_level,
                    build_indexes: self.options.build_indexes,
                    ..ApplierOptions::default()
                },
            )
            .with_metadata(self.metadata.clone());
            let applying = async {
                if !self.options.verification {
                    return applier.run(cancel.clone()).await;
                }
                // The verifier starts with change event application (mongosync 1.22).
                let verifier = self.verifier(AppliedClock::Applier(self.progress.clone()));
                futures::future::try_join(applier.run(cancel.clone()), verifier.run(cancel.clone()))
                    .await
                    .map(|_| ())
            };
            applying
                .instrument(tracing::info_span!("change_event_application"))
                .await
        };
        beside_reader(work, reader_task, &cancel).await
    }

    /// Planning: the destination's namespaces and indexes, the partitions; then Copying.
    pub(super) async fn plan_destination(
        &self,
        discovered: Option<Vec<SourceNamespace>>,
    ) -> Result<()> {
        let namespaces = match discovered {
            Some(namespaces) => namespaces,
            None => discovery::discover(&self.clusters.source, &self.options.filter).await?,
        };
        set_up_destination(
            &self.clusters,
            &self.metadata,
            &self.options,
            &self.config,
            &namespaces,
        )
        .await?;
        self.metadata.set_phase(PersistedPhase::Copying).await
    }

    /// The verifier of the current direction; `applied` says how far the destination is.
    pub(crate) fn verifier(&self, applied: AppliedClock) -> Verifier {
        let flow = self.flow();
        Verifier::new(VerifierSetup {
            source: flow.source,
            destination: flow.destination,
            metadata: self.metadata.clone(),
            store: VerifierStore::new(&self.clusters.destination),
            filter: self.options.filter.clone(),
            build_indexes: self.options.build_indexes,
            reversed: self.progress.reversed.load(Ordering::Relaxed),
            applied,
            progress: self.progress.clone(),
            spill_dir: self.config.spill_dir.clone(),
            concurrency: self.options.load_level.copy_concurrency().max(2),
        })
    }

    pub(crate) async fn load_state(&self) -> Result<MigrationState> {
        self.metadata
            .load_state()
            .await?
            .ok_or_else(|| EngineError::Metadata("the migration state disappeared".into()))
    }

    async fn copy_all(&self, cancel: &CancellationToken) -> Result<()> {
        let partitions = self.metadata.load_partitions().await?;
        let done_bytes: u64 = partitions.iter().map(|p| p.bytes).sum();
        let done_documents: u64 = partitions.iter().map(|p| p.documents).sum();
        self.progress
            .copied_bytes
            .store(done_bytes, Ordering::Relaxed);
        self.progress
            .copied_documents
            .store(done_documents, Ordering::Relaxed);
        let pending: Vec<_> = partitions.into_iter().filter(|p| !p.done).collect();
        let started = Instant::now();
        let concurrency = self.options.load_level.copy_concurrency().max(1);
        // `concurrency` partitions copy documents at once; each gives its slot up before
        // its finish record, so up to as many more may be writing that record meanwhile.
        let slots = Arc::new(Semaphore::new(concurrency));
        let count = pending.len();
        let results: Vec<Result<_>> = stream::iter(pending)
            .map(|partition| {
                let (source, destination) = (
                    self.clusters.source.clone(),
                    self.clusters.destination.clone(),
                );
                let (metadata, progress, cancel, slots) = (
                    self.metadata.clone(),
                    self.progress.clone(),
                    cancel.clone(),
                    slots.clone(),
                );
                // Each partition is a trace of its own, linked to the copy phase.
                let span = tracing::info_span!("copy_partition", partition = %partition.id);
                crate::trace::detach(&span);
                async move {
                    copy_partition_in_slot(
                        &slots,
                        &source,
                        &destination,
                        &metadata,
                        &partition,
                        &progress,
                        &cancel,
                    )
                    .await
                }
                .instrument(span)
            })
            .buffer_unordered(2 * concurrency)
            .collect()
            .await;
        for result in results {
            result?;
        }
        tracing::info!(partitions = count, elapsed = ?started.elapsed(), "collection copy finished");
        Ok(())
    }

    pub(crate) async fn build_all_indexes(&self) -> Result<()> {
        for record in self.metadata.load_namespaces().await? {
            if record.kind == NamespaceKind::Collection {
                indexes::build_indexes(&self.clusters.destination, &record).await?;
            }
        }
        Ok(())
    }
}
