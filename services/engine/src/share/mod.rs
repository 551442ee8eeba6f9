//! One worker's share of a scaled-out migration.
//!
//! The leader plans; a worker runs what it is assigned ([`ShareSpec`]):
//!
//! ```text
//!   partitions ──► copy tasks (loadLevel-bounded), checkpointed per batch in
//!                  __c2c_internal.partitions, so another worker can continue any of them
//!   stream shards ─► per shard: reader (its databases only, from its checkpoint
//!                  `cea-<shard>` or the stream start) ─► spill ─► applier, which waits
//!                  until the leader persisted phase Applying (every partition copied,
//!                  indexes built), exactly as the single process applies after its copy
//! ```
//!
//! [`Share::assign`] reconciles: units no longer assigned stop at a checkpoint, new
//! ones start, unchanged ones keep running (a new leader re-sending the same plan
//! restarts nothing). Every unit is an owned task, cancelled and awaited on stop.
//! [`Share::drain_to`] is the worker's part of commit step 3.

mod report;
mod stream;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::Timestamp;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::copy::copy_partition_in_slot;
use crate::error::{EngineError, Result};
use crate::filter::ShardSelector;
use crate::gate::WriteGate;
use crate::metadata::Metadata;
use crate::migration::{Clusters, EngineConfig};
use crate::options::SyncOptions;
use crate::progress::{Phase, Progress};

pub use report::ShareReport;

/// How long stopping a unit may take before its task is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the leader assigned to this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSpec {
    /// Data flows from the request's destination to its source.
    pub reversed: bool,
    /// Where a shard without a checkpoint starts reading (T0, or Td after a reverse).
    pub stream_start: Timestamp,
    pub shard_count: u32,
    /// Planned database → shard (others: by hash, see `ShardSelector`).
    pub databases: HashMap<String, u32>,
    pub owned_shards: BTreeSet<u32>,
    pub partitions: BTreeSet<String>,
    /// False while the leader holds work back (paused, committing).
    pub run: bool,
}

impl ShareSpec {
    /// Whether streams started for `self` are still right for `other` (same direction,
    /// start and database layout).
    fn same_streams(&self, other: &ShareSpec) -> bool {
        self.reversed == other.reversed
            && self.stream_start == other.stream_start
            && self.shard_count == other.shard_count
            && self.databases == other.databases
    }

    fn selector(&self, shard: u32) -> ShardSelector {
        ShardSelector {
            id: shard,
            count: self.shard_count,
            assigned: self.databases.clone(),
        }
    }
}

struct Unit {
    cancel: CancellationToken,
    task: JoinHandle<Result<()>>,
}

impl Unit {
    async fn stop(self, limit: Duration) {
        crate::stop::cancel_and_stop(&self.cancel, self.task, limit).await;
    }
}

/// Stops `units` together, each with `limit`: units stuck on an unreachable cluster hold
/// a pause, a plan change or a commit drain up to `limit` in all, not `limit` each (one
/// after another, a worker's five units could take 50 s, while its progress reports and
/// the next Assign waited on the same lock).
async fn stop_units(units: impl IntoIterator<Item = Unit>, limit: Duration) {
    futures::future::join_all(units.into_iter().map(|unit| unit.stop(limit))).await;
}

#[derive(Default)]
struct Units {
    spec: Option<ShareSpec>,
    copies: BTreeMap<String, Unit>,
    streams: BTreeMap<u32, (Unit, Arc<Progress>)>,
}

/// The engine side of a worker: see the module docs.
pub struct Share {
    /// As the request names them (the spec's `reversed` picks the direction).
    clusters: Clusters,
    options: SyncOptions,
    config: EngineConfig,
    metadata: Metadata,
    gate: WriteGate,
    /// Copy counters of this worker's partitions.
    copy_progress: Arc<Progress>,
    copy_slots: Arc<Semaphore>,
    units: tokio::sync::Mutex<Units>,
    /// Partitions this worker finished (or found finished).
    done: Arc<Mutex<BTreeSet<String>>>,
    /// The first fatal error of any unit, for the leader to report.
    failure: Arc<Mutex<Option<String>>>,
}

impl Share {
    pub fn new(
        clusters: Clusters,
        options: SyncOptions,
        config: EngineConfig,
        gate: WriteGate,
    ) -> Share {
        let metadata = Metadata::new(&clusters.destination);
        let copy_progress = Arc::new(Progress::default());
        *copy_progress.write_gate.lock() = gate.clone();
        let slots = options.load_level.copy_concurrency().max(1);
        Share {
            clusters,
            options,
            config,
            metadata,
            gate,
            copy_progress,
            copy_slots: Arc::new(Semaphore::new(slots)),
            units: tokio::sync::Mutex::new(Units::default()),
            done: Arc::default(),
            failure: Arc::default(),
        }
    }

    /// The clusters in the spec's direction.
    fn flow(&self, reversed: bool) -> Clusters {
        if !reversed {
            return self.clusters.clone();
        }
        Clusters {
            source: self.clusters.destination.clone(),
            destination: self.clusters.source.clone(),
            source_hosts: self.clusters.destination_hosts.clone(),
            destination_hosts: self.clusters.source_hosts.clone(),
        }
    }

    /// The options this share runs with.
    pub fn options(&self) -> &SyncOptions {
        &self.options
    }

    /// Makes the running units match `spec` (see the module docs).
    pub async fn assign(&self, spec: ShareSpec) -> Result<()> {
        let mut units = self.units.lock().await;
        let streams_still_right = units
            .spec
            .as_ref()
            .is_some_and(|previous| previous.same_streams(&spec));
        let keep_copies: BTreeSet<String> = if spec.run {
            spec.partitions.clone()
        } else {
            BTreeSet::new()
        };
        let keep_streams: BTreeSet<u32> = if spec.run && streams_still_right {
            spec.owned_shards.clone()
        } else {
            BTreeSet::new()
        };
        let (stale_copies, kept_copies) = std::mem::take(&mut units.copies)
            .into_iter()
            .partition::<Vec<_>, _>(|(id, _)| !keep_copies.contains(id));
        units.copies = kept_copies.into_iter().collect();
        let (stale_streams, kept_streams) = std::mem::take(&mut units.streams)
            .into_iter()
            .partition::<Vec<_>, _>(|(id, _)| !keep_streams.contains(id));
        units.streams = kept_streams.into_iter().collect();
        stop_units(
            stale_copies
                .into_iter()
                .map(|(_, unit)| unit)
                .chain(stale_streams.into_iter().map(|(_, (unit, _))| unit)),
            STOP_TIMEOUT,
        )
        .await;
        // A finished or failed unit is started again only if it failed.
        units.copies.retain(|_, unit| !unit.task.is_finished());
        units
            .streams
            .retain(|_, (unit, _)| !unit.task.is_finished());
        let mut copies = Ok(());
        if spec.run {
            self.failure.lock().take();
            // Streams first: a copy that cannot start (its records unreadable) must not
            // keep the shards' change events from being read and applied.
            for shard in &spec.owned_shards {
                if !units.streams.contains_key(shard) {
                    let started = self.start_stream(&spec, *shard);
                    units.streams.insert(*shard, started);
                }
            }
            copies = self.start_copies(&mut units, &spec).await;
        }
        units.spec = Some(spec);
        copies
    }

    async fn start_copies(&self, units: &mut Units, spec: &ShareSpec) -> Result<()> {
        let wanted: Vec<String> = {
            let done = self.done.lock();
            spec.partitions
                .iter()
                .filter(|id| !units.copies.contains_key(*id) && !done.contains(*id))
                .cloned()
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let records = self.metadata.load_partitions_by_id(&wanted).await?;
        for record in records {
            if record.done {
                self.done.lock().insert(record.id.clone());
                continue;
            }
            let cancel = CancellationToken::new();
            let flow = self.flow(false);
            let (metadata, progress, slots, done, failure) = (
                self.metadata.clone(),
                self.copy_progress.clone(),
                self.copy_slots.clone(),
                self.done.clone(),
                self.failure.clone(),
            );
            let token = cancel.clone();
            let id = record.id.clone();
            let task = tokio::spawn(async move {
                let span = tracing::info_span!("copy_partition", partition = %record.id);
                let outcome = tracing::Instrument::instrument(
                    copy_partition_in_slot(
                        &slots,
                        &flow.source,
                        &flow.destination,
                        &metadata,
                        &record,
                        &progress,
                        &token,
                    ),
                    span,
                )
                .await;
                match outcome {
                    Ok(_) => {
                        done.lock().insert(record.id.clone());
                        Ok(())
                    }
                    Err(EngineError::Cancelled) => Err(EngineError::Cancelled),
                    Err(error) => {
                        tracing::error!(partition = %record.id, error = %error, "partition copy failed");
                        failure.lock().get_or_insert_with(|| error.to_string());
                        Err(error)
                    }
                }
            });
            units.copies.insert(id, Unit { cancel, task });
        }
        Ok(())
    }

    fn start_stream(&self, spec: &ShareSpec, shard: u32) -> (Unit, Arc<Progress>) {
        let progress = Arc::new(Progress::default());
        *progress.write_gate.lock() = self.gate.clone();
        progress.reversed.store(spec.reversed, Ordering::Relaxed);
        progress
            .verification
            .enabled
            .store(self.options.verification, Ordering::Relaxed);
        progress.set_phase(Phase::CollectionCopy);
        let cancel = CancellationToken::new();
        let context = stream::StreamContext {
            flow: self.flow(spec.reversed),
            options: self.options.clone(),
            config: self.config.clone(),
            metadata: self.metadata.clone(),
            selector: spec.selector(shard),
            stream_start: spec.stream_start,
            progress: progress.clone(),
            store_client: self.clusters.destination.clone(),
            reversed: spec.reversed,
        };
        let failure = self.failure.clone();
        let token = cancel.clone();
        let task = tokio::spawn(async move {
            let span = tracing::info_span!("stream_shard", shard);
            let outcome = tracing::Instrument::instrument(stream::run(context, token), span).await;
            if let Err(error) = &outcome {
                if !matches!(error, EngineError::Cancelled) {
                    tracing::error!(shard, error = %error, "stream shard failed");
                    failure.lock().get_or_insert_with(|| error.to_string());
                }
            }
            outcome
        });
        (Unit { cancel, task }, progress)
    }

    /// Commit step 3 for this worker: stops its streams and applies each owned shard's
    /// events up to `tc`. Returns the first late write found (described), if any.
    pub async fn drain_to(&self, tc: Timestamp) -> Result<Option<String>> {
        let mut units = self.units.lock().await;
        let Some(spec) = units.spec.clone() else {
            return Err(EngineError::Refused(
                "nothing is assigned to this worker, so it has nothing to drain".into(),
            ));
        };
        let streams = std::mem::take(&mut units.streams);
        stop_units(streams.into_values().map(|(unit, _)| unit), STOP_TIMEOUT).await;
        let cancel = CancellationToken::new();
        let drains = spec.owned_shards.iter().map(|shard| {
            let progress = Arc::new(Progress::default());
            *progress.write_gate.lock() = self.gate.clone();
            let context = stream::StreamContext {
                flow: self.flow(spec.reversed),
                options: self.options.clone(),
                config: self.config.clone(),
                metadata: self.metadata.clone(),
                selector: spec.selector(*shard),
                stream_start: spec.stream_start,
                progress,
                store_client: self.clusters.destination.clone(),
                reversed: spec.reversed,
            };
            let span = tracing::info_span!("drain_shard", shard = *shard);
            tracing::Instrument::instrument(stream::drain_to(context, tc, cancel.clone()), span)
        });
        let outcomes = futures::future::join_all(drains).await;
        let mut late = None;
        for outcome in outcomes {
            if let Some(found) = outcome? {
                late.get_or_insert(found);
            }
        }
        // Held back until the leader assigns again (a reverse, or a retried commit).
        if let Some(spec) = units.spec.as_mut() {
            spec.run = false;
        }
        Ok(late)
    }

    /// Stops every unit at a checkpoint (pause, lease loss, shutdown).
    pub async fn stop(&self) {
        let mut units = self.units.lock().await;
        let copies = std::mem::take(&mut units.copies).into_values();
        let streams = std::mem::take(&mut units.streams).into_values();
        stop_units(copies.chain(streams.map(|(unit, _)| unit)), STOP_TIMEOUT).await;
        if let Some(spec) = units.spec.as_mut() {
            spec.run = false;
        }
    }

    /// What this worker is doing now.
    pub async fn report(&self) -> ShareReport {
        let units = self.units.lock().await;
        report::build(
            units.spec.as_ref(),
            &self.copy_progress,
            units.streams.iter().map(|(id, (_, p))| (*id, p.clone())),
            &self.done.lock(),
            self.failure.lock().clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit that ignores its token until `release` fires: a copy or applier stuck in a
    /// write it cannot leave.
    fn stuck_unit(release: Arc<tokio::sync::Notify>) -> Unit {
        Unit {
            cancel: CancellationToken::new(),
            task: tokio::spawn(async move {
                release.notified().await;
                Ok(())
            }),
        }
    }

    #[tokio::test]
    async fn units_are_stopped_together_not_one_after_another() {
        let release = Arc::new(tokio::sync::Notify::new());
        let cancel = CancellationToken::new();
        let (seen, cancelled) = tokio::sync::oneshot::channel();
        let token = cancel.clone();
        let prompt = Unit {
            cancel,
            task: tokio::spawn(async move {
                token.cancelled().await;
                let _ = seen.send(());
                Ok(())
            }),
        };
        // The stuck unit comes first: stopped one after another, the prompt one would not
        // even be cancelled before the stuck one's hour is up.
        let stopping = tokio::spawn(stop_units(
            [stuck_unit(release.clone()), prompt],
            Duration::from_secs(3600),
        ));
        tokio::time::timeout(Duration::from_secs(10), cancelled)
            .await
            .expect("the second unit was not asked to stop while the first one was stuck")
            .expect("the second unit ended without seeing its cancellation");
        release.notify_one();
        tokio::time::timeout(Duration::from_secs(10), stopping)
            .await
            .expect("stopping did not end once the stuck unit returned")
            .expect("stop_units panicked");
    }
}
