//! The applier: pops batches of change events from the spill and applies them to the
//! destination, then checkpoints the last one — while the next batch is applied, so a
//! checkpoint costs no round trip of its own (it is awaited before the next checkpoint,
//! when the stream goes idle, and before `run_until` returns).
//!
//! - CRUD runs go through parallel lanes (order per document key, see `crud`);
//! - DDL events are barriers: the CRUD run before them is finished first, then the DDL
//!   is applied alone and checkpointed at once (so a restart never replays CRUD of a
//!   renamed or dropped collection into its old name);
//! - high-water marks only move the checkpoint and the lag clock.
//!
//! Everything is idempotent, so a restart replays from the checkpoint and converges.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::Timestamp;
use mongodb::Client;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::crud::{apply_crud, CrudTarget};
use super::ddl::DdlTarget;
use super::event::{Event, EventKind};
use super::spill::Spill;
use crate::error::{EngineError, Result};
use crate::filter::NamespaceFilter;
use crate::metadata::{CeaCheckpoint, Metadata, NamespaceRecord};
use crate::metrics::{AppliedCounts, ENGINE};
use crate::namespace::Namespace;
use crate::options::{BuildIndexes, LoadLevel};
use crate::progress::{Phase, Progress};

/// How the applier works; `Default` matches mongosync's defaults.
#[derive(Debug, Clone, Copy)]
pub struct ApplierOptions {
    pub load_level: LoadLevel,
    pub build_indexes: BuildIndexes,
    /// Most events popped and applied (then checkpointed) at once.
    pub max_batch: usize,
}

impl Default for ApplierOptions {
    fn default() -> Self {
        ApplierOptions {
            load_level: LoadLevel::DEFAULT,
            build_indexes: BuildIndexes::BeforeDataCopy,
            max_batch: 5000,
        }
    }
}

pub struct Applier {
    source: Client,
    destination: Client,
    filter: NamespaceFilter,
    spill: Arc<Spill>,
    metadata: Metadata,
    progress: Arc<Progress>,
    options: ApplierOptions,
    /// Namespace records, loaded at the first DDL event.
    records: Option<HashMap<Namespace, NamespaceRecord>>,
    /// The previous batch's checkpoint, still being written: the next batch's writes go
    /// out beside it instead of after one more round trip. Losing it (a crash, a
    /// cancel) only means that batch is applied again, which is idempotent. (In a mutex
    /// only so the applier stays `Sync`; it is reached through `&mut self`, unlocked.)
    checkpoint_in_flight: parking_lot::Mutex<Option<CheckpointWrite>>,
}

type CheckpointWrite = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

impl Applier {
    pub fn new(
        source: Client,
        destination: Client,
        filter: NamespaceFilter,
        spill: Arc<Spill>,
        progress: Arc<Progress>,
        options: ApplierOptions,
    ) -> Applier {
        let metadata = Metadata::new(&destination);
        Applier {
            source,
            destination,
            filter,
            spill,
            metadata,
            progress,
            options,
            records: None,
            checkpoint_in_flight: parking_lot::Mutex::new(None),
        }
    }

    /// Keeps checkpoints and namespace records in `metadata` instead of on the
    /// destination: after a reverse the metadata stays on the original destination,
    /// which is then the source.
    pub fn with_metadata(mut self, metadata: Metadata) -> Applier {
        self.metadata = metadata;
        self
    }

    /// Commit's drain: applies every event up to the commit point `tc`, then returns.
    /// It is done once a high-water mark at or after `tc` is applied (the stream has
    /// nothing more at or before `tc`: `tc` is a no-op, which streams never show). A
    /// synced event after `tc` is a write that reached the source after the commit
    /// point: it is not applied, and returned so the caller can fail the commit.
    pub async fn run_until(
        mut self,
        cancel: CancellationToken,
        tc: Timestamp,
    ) -> Result<Option<Event>> {
        loop {
            let batch = tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                batch = self.spill.pop_batch(self.options.max_batch.max(1)) => batch?,
            };
            if batch.is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                    _ = self.spill.wait_for_events() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
            let stop = batch.iter().position(|event| match event.kind {
                EventKind::HighWaterMark => event.cluster_time >= tc,
                _ => event.cluster_time > tc,
            });
            let Some(stop) = stop else {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                    outcome = self.apply_batch(&batch).instrument(batch_span(&batch)) => outcome?,
                }
                continue;
            };
            let reached = matches!(batch[stop].kind, EventKind::HighWaterMark);
            // The mark itself is applied (it only moves the checkpoint past Tc); a late
            // write is not.
            let end = if reached { stop + 1 } else { stop };
            if end > 0 {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                    outcome = self.apply_batch(&batch[..end]).instrument(batch_span(&batch[..end])) => outcome?,
                }
            }
            // The caller goes on from the checkpoint (commit, reverse): it must be written.
            self.finish_checkpoint().await?;
            return Ok((!reached).then(|| batch[stop].clone()));
        }
    }

    /// Applies until cancelled (then `EngineError::Cancelled`) or a fatal error. When it
    /// runs in `Phase::CopyDrain`, it switches the phase to `SteadyState` once the spill
    /// is empty and the applied position has caught up with the source.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<()> {
        loop {
            let batch = tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                batch = self.spill.pop_batch(self.options.max_batch.max(1)) => batch?,
            };
            self.progress
                .events_buffered
                .store(self.spill.len() as u64, Ordering::Relaxed);
            if batch.is_empty() {
                // Idle: make the last checkpoint durable before waiting.
                tokio::select! {
                    _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                    outcome = self.finish_checkpoint() => outcome?,
                }
                self.note_drained();
                tokio::select! {
                    _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                    _ = self.spill.wait_for_events() => {}
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                }
                continue;
            }
            // A stream applies for days: each batch is a trace of its own.
            let span = batch_span(&batch);
            crate::trace::detach(&span);
            // Abandoning a batch half-applied is safe: it is not checkpointed, so it is
            // applied again (idempotently) after a restart or resume.
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                outcome = self.apply_batch(&batch).instrument(span) => outcome?,
            }
        }
    }

    fn note_drained(&self) {
        if self.progress.phase() != Some(Phase::CopyDrain) || !self.spill.is_empty() {
            return;
        }
        let applied = self.progress.applied_latest_secs.load(Ordering::Relaxed);
        let source = self.progress.source_latest_secs.load(Ordering::Relaxed);
        if applied != 0 && source - applied <= 1 {
            tracing::info!("change events buffered during the copy are applied; steady state");
            self.progress.set_phase(Phase::SteadyState);
        }
    }

    async fn apply_batch(&mut self, batch: &[Event]) -> Result<()> {
        self.progress.write_gate.lock().check()?;
        let started = Instant::now();
        let mut run: Vec<&Event> = Vec::new();
        let mut applied = 0u64;
        let mut by_type = AppliedCounts::default();
        let mut previous = self.checkpoint_in_flight.get_mut().take();
        for event in batch {
            by_type.add(&event.kind);
            match &event.kind {
                EventKind::HighWaterMark => {}
                kind if kind.is_ddl() => {
                    self.apply_run_beside(&mut run, previous.take()).await?;
                    self.apply_ddl(event).await?;
                    self.checkpoint(event).await?;
                    self.progress
                        .applied_ddl_secs
                        .store(i64::from(event.cluster_time.time), Ordering::Relaxed);
                    applied += 1;
                }
                _ => {
                    run.push(event);
                    applied += 1;
                }
            }
        }
        self.apply_run_beside(&mut run, previous.take()).await?;
        if let Some(last) = batch.last() {
            let metadata = self.metadata.clone();
            let checkpoint = CeaCheckpoint {
                token: last.token.clone(),
                cluster_time: last.cluster_time,
            };
            *self.checkpoint_in_flight.get_mut() = Some(Box::pin(async move {
                metadata.save_cea_checkpoint(&checkpoint).await
            }));
            let secs = i64::from(last.cluster_time.time);
            self.progress.applied_through.fetch_max(
                crate::progress::pack_time(last.cluster_time),
                Ordering::Relaxed,
            );
            self.progress
                .applied_latest_secs
                .store(secs, Ordering::Relaxed);
            // Events apply in stream order, so everything up to `last` is applied: CRUD
            // and, once any DDL was seen, DDL too.
            self.progress
                .applied_crud_secs
                .store(secs, Ordering::Relaxed);
            if self.progress.applied_ddl_secs.load(Ordering::Relaxed) != 0 {
                self.progress
                    .applied_ddl_secs
                    .store(secs, Ordering::Relaxed);
            }
        }
        self.progress
            .events_applied
            .fetch_add(applied, Ordering::Relaxed);
        ENGINE.batch_applied(&by_type, started.elapsed());
        Ok(())
    }

    /// Applies `run` while the previous batch's checkpoint (if any) is written; both
    /// must succeed. Checkpoints stay in order: the next is only started after this.
    async fn apply_run_beside(
        &self,
        run: &mut Vec<&Event>,
        previous: Option<CheckpointWrite>,
    ) -> Result<()> {
        match previous {
            Some(previous) => futures::future::try_join(self.apply_run(run), previous)
                .await
                .map(|_| ()),
            None => self.apply_run(run).await,
        }
    }

    /// Waits for the checkpoint still being written, if any.
    async fn finish_checkpoint(&mut self) -> Result<()> {
        match self.checkpoint_in_flight.get_mut().take() {
            Some(write) => write.await,
            None => Ok(()),
        }
    }

    async fn apply_run(&self, run: &mut Vec<&Event>) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let target = CrudTarget {
            source: &self.source,
            destination: &self.destination,
            lanes: self.options.load_level.apply_lanes(),
        };
        apply_crud(&target, run).await?;
        run.clear();
        Ok(())
    }

    async fn apply_ddl(&mut self, event: &Event) -> Result<()> {
        if self.records.is_none() {
            let loaded = self.metadata.load_namespaces().await?;
            self.records = Some(
                loaded
                    .into_iter()
                    .map(|record| (record.ns.clone(), record))
                    .collect(),
            );
        }
        let Some(records) = self.records.as_mut() else {
            return Ok(());
        };
        tracing::info!(event = ?event.kind, "applying DDL change event");
        let mut target = DdlTarget {
            destination: &self.destination,
            filter: &self.filter,
            metadata: &self.metadata,
            build_indexes: self.options.build_indexes,
            records,
        };
        target.apply(&event.kind).await
    }

    async fn checkpoint(&self, event: &Event) -> Result<()> {
        self.metadata
            .save_cea_checkpoint(&CeaCheckpoint {
                token: event.token.clone(),
                cluster_time: event.cluster_time,
            })
            .await
    }
}

/// The span of one applied batch; none for a batch of high-water marks only (an idle
/// stream applies one every second: no trace for those).
fn batch_span(batch: &[Event]) -> tracing::Span {
    if batch
        .iter()
        .all(|event| matches!(event.kind, EventKind::HighWaterMark))
    {
        return tracing::Span::none();
    }
    tracing::info_span!("apply_batch", events = batch.len())
}
