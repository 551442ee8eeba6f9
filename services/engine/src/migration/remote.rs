//! The scaled-out leader's run: it plans exactly as a single process does (discovery,
//! T0, the destination's namespaces and partitions, all persisted in `__c2c_internal`),
//! then hands the copy and change-event application to workers through a
//! [`RemotePlane`], while it watches the partitions to end the copy phase itself:
//!
//! ```text
//!  Planning ─► Copying ──(every partition done; indexes built after the copy)──► Applying
//!              workers copy their partitions      workers' stream shards start applying
//! ```
//!
//! The commit and reverse steps stay the leader's; only commit step 3 (apply up to Tc)
//! goes to the workers ([`RemotePlane::drain_to`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Migration;
use crate::discovery::SourceNamespace;
use crate::error::{EngineError, Result};
use crate::metadata::PersistedPhase;
use crate::progress::{Phase, Progress};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How often the leader reads the partitions' progress during the copy.
const COPY_POLL: Duration = Duration::from_millis(500);

/// What the workers need to run the sync in the current direction.
#[derive(Debug, Clone)]
pub struct SyncContext {
    pub direction: StreamDirection,
    /// False after a reverse: nothing is copied again.
    pub copy: bool,
    /// The leader's counters: the plane keeps `events_applied`, the lag and (once
    /// `copy_done`) the phase CopyDrain/SteadyState current from the workers' reports.
    pub progress: Arc<Progress>,
    /// Notified by the plane when a worker reports a milestone (e.g. its share copied),
    /// so the leader reads the partitions' checkpoints then rather than at its next poll.
    pub workers_progressed: Arc<Notify>,
}

/// Which way the workers' streams run, as their assignments carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDirection {
    pub reversed: bool,
    /// Where a stream shard without a checkpoint starts: T0, or Td after a reverse.
    pub stream_start: Timestamp,
}

/// The workers, as the leader drives them.
pub trait RemotePlane: Send + Sync + 'static {
    /// Assigns the work and keeps it assigned (membership changes, reports) until
    /// `cancel`; returns early only with a fatal error. Cancelling must not stop the
    /// workers: a deposed leader's workers keep syncing for the next one.
    fn sync(&self, context: SyncContext, cancel: CancellationToken) -> BoxFuture<'_, Result<()>>;
    /// Commit step 3: every stream shard applies up to `tc` and stops, on the workers
    /// the current plan gives them to (`direction` rebuilds their assignments). The
    /// first late write any worker found, described.
    fn drain_to(
        &self,
        tc: Timestamp,
        direction: StreamDirection,
    ) -> BoxFuture<'_, Result<Option<String>>>;
    /// Stops every worker at a checkpoint (`/pause`).
    fn pause(&self) -> BoxFuture<'_, Result<()>>;
}

impl Migration {
    pub(super) async fn run_remote(
        &self,
        plane: Arc<dyn RemotePlane>,
        cancel: CancellationToken,
        discovered: Option<Vec<SourceNamespace>>,
    ) -> Result<()> {
        let state = self.load_state().await?;
        self.progress
            .estimated_total_bytes
            .store(state.estimated_total_bytes.max(1), Ordering::Relaxed);
        if state.phase == PersistedPhase::Planning {
            self.plan_destination(discovered).await?;
        }
        let copying = matches!(
            state.phase,
            PersistedPhase::Planning | PersistedPhase::Copying
        );
        let workers_progressed = Arc::new(Notify::new());
        let context = SyncContext {
            direction: StreamDirection {
                reversed: state.cutover.reversed,
                stream_start: state.stream_start(),
            },
            copy: copying,
            progress: self.progress.clone(),
            workers_progressed: workers_progressed.clone(),
        };
        self.progress.set_phase(if copying {
            Phase::CollectionCopy
        } else {
            Phase::CopyDrain
        });
        let watch_copy = async {
            if copying {
                self.watch_copy(&workers_progressed, &cancel)
                    .instrument(tracing::info_span!("collection_copy"))
                    .await?;
            } else {
                self.update_copied().await?;
            }
            self.progress.copy_done.store(true, Ordering::Relaxed);
            if self.progress.phase() == Some(Phase::CollectionCopy) {
                self.progress.set_phase(Phase::CopyDrain);
            }
            std::future::pending::<Result<()>>().await
        };
        tokio::select! {
            outcome = plane.sync(context, cancel.clone()) => outcome,
            outcome = watch_copy => outcome,
            _ = cancel.cancelled() => Err(EngineError::Cancelled),
        }
    }

    /// Waits until every partition is copied (by whichever workers), then builds the
    /// indexes deferred to after the copy and persists phase Applying, which starts the
    /// workers' appliers.
    async fn watch_copy(
        &self,
        workers_progressed: &Notify,
        cancel: &CancellationToken,
    ) -> Result<()> {
        loop {
            if self.update_copied().await? {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                _ = workers_progressed.notified() => {}
                _ = tokio::time::sleep(COPY_POLL) => {}
            }
        }
        tracing::info!("every partition copied");
        if self.options.build_indexes.after_copy() {
            self.build_all_indexes().await?;
        }
        self.metadata.set_phase(PersistedPhase::Applying).await
    }

    /// Copied bytes and documents from the partitions' checkpoints (they survive any
    /// worker or leader); whether all are done.
    async fn update_copied(&self) -> Result<bool> {
        let totals = self.metadata.partition_totals().await?;
        self.progress
            .copied_bytes
            .store(totals.bytes, Ordering::Relaxed);
        self.progress
            .copied_documents
            .store(totals.documents, Ordering::Relaxed);
        Ok(totals.unfinished == 0)
    }

    /// The persisted partitions and namespaces, for planning the workers' shares.
    pub async fn planned_work(
        &self,
    ) -> Result<(
        Vec<crate::metadata::PartitionRecord>,
        Vec<crate::metadata::NamespaceRecord>,
    )> {
        Ok((
            self.metadata.load_partitions().await?,
            self.metadata.load_namespaces().await?,
        ))
    }
}
