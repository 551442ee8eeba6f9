//! One stream shard on a worker: read its databases' change events from its checkpoint
//! (or the stream start) and apply them once the leader says the copy is over.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::Timestamp;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cea::apply::{Applier, ApplierOptions};
use crate::cea::reader::{Reader, StartAt};
use crate::cea::spill::{Spill, SpillConfig};
use crate::cutover::late_writes::describe;
use crate::error::{EngineError, Result};
use crate::filter::{NamespaceFilter, ShardSelector};
use crate::metadata::{Metadata, PersistedPhase};
use crate::migration::{beside_reader, Clusters, EngineConfig};
use crate::options::SyncOptions;
use crate::progress::{Phase, Progress};
use crate::verify::{AppliedClock, Verifier, VerifierSetup, VerifierStore};

/// How often the high-water mark moves while the shard's databases are idle.
const MARK_EVERY: Duration = Duration::from_secs(1);
/// How often a shard waiting for the end of the copy reads the persisted phase (one
/// small document; every poll interval is added to the time until steady state).
const PHASE_POLL: Duration = Duration::from_millis(200);

pub(super) struct StreamContext {
    pub flow: Clusters,
    pub options: SyncOptions,
    pub config: EngineConfig,
    /// On the request's destination, whichever way data flows.
    pub metadata: Metadata,
    pub selector: ShardSelector,
    pub stream_start: Timestamp,
    pub progress: Arc<Progress>,
    /// The request's destination, where the shard's verifier state lives.
    pub store_client: mongodb::Client,
    pub reversed: bool,
}

impl StreamContext {
    fn filter(&self) -> NamespaceFilter {
        self.options.filter.with_shard(self.selector.clone())
    }

    fn checkpoints(&self) -> Metadata {
        self.metadata.for_stream_shard(self.selector.id)
    }

    fn applier(&self, spill: Arc<Spill>) -> Applier {
        Applier::new(
            self.flow.source.clone(),
            self.flow.destination.clone(),
            self.filter(),
            spill,
            self.progress.clone(),
            ApplierOptions {
                load_level: self.options.load_level,
                build_indexes: self.options.build_indexes,
                ..ApplierOptions::default()
            },
        )
        .with_metadata(self.checkpoints())
    }

    /// The shard's verifier: its databases, its own state, this shard's applied clock.
    fn verifier(&self, applied: AppliedClock) -> Verifier {
        Verifier::new(VerifierSetup {
            source: self.flow.source.clone(),
            destination: self.flow.destination.clone(),
            metadata: self.metadata.clone(),
            store: VerifierStore::for_stream_shard(&self.store_client, self.selector.id),
            filter: self.filter(),
            build_indexes: self.options.build_indexes,
            reversed: self.reversed,
            applied,
            progress: self.progress.clone(),
            spill_dir: self.config.spill_dir.clone(),
            concurrency: self.options.load_level.copy_concurrency().max(2),
        })
    }

    async fn start_reader(
        &self,
        marks: Duration,
        cancel: &CancellationToken,
    ) -> Result<(Arc<Spill>, JoinHandle<Result<()>>)> {
        let start = match self.checkpoints().load_cea_checkpoint().await? {
            Some(checkpoint) => StartAt::After(checkpoint.token),
            None => StartAt::OperationTime(self.stream_start),
        };
        let dir = self.config.spill_dir.join(format!(
            "shard-{}-{}",
            self.selector.id,
            rand::random::<u32>()
        ));
        let spill = Arc::new(Spill::new(SpillConfig::new(dir))?);
        let reader = Reader::new(
            self.flow.source.clone(),
            self.filter(),
            start,
            spill.clone(),
            self.progress.clone(),
        )
        .mark_every(marks);
        let task = tokio::spawn(reader.run(cancel.clone()));
        Ok((spill, task))
    }
}

/// Reads from the start, applies once the copy is over, until cancelled.
pub(super) async fn run(context: StreamContext, cancel: CancellationToken) -> Result<()> {
    let (spill, reader_task) = context.start_reader(MARK_EVERY, &cancel).await?;
    let work = async {
        wait_for_applying(&context.metadata, &cancel).await?;
        context.progress.copy_done.store(true, Ordering::Relaxed);
        context.progress.set_phase(Phase::CopyDrain);
        let applier = context.applier(spill.clone());
        if !context.options.verification {
            return applier.run(cancel.clone()).await;
        }
        // Each shard's owner verifies the shard's databases (mongosync 1.22: from CEA on).
        let verifier = context.verifier(AppliedClock::Applier(context.progress.clone()));
        futures::future::try_join(applier.run(cancel.clone()), verifier.run(cancel.clone()))
            .await
            .map(|_| ())
    };
    beside_reader(work, reader_task, &cancel).await
}

/// The copy is over (every partition of every worker, and the indexes built after it)
/// once the leader persisted phase Applying or later.
async fn wait_for_applying(metadata: &Metadata, cancel: &CancellationToken) -> Result<()> {
    loop {
        let phase = metadata.load_state().await?.map(|state| state.phase);
        if !matches!(
            phase,
            None | Some(PersistedPhase::Planning | PersistedPhase::Copying)
        ) {
            return Ok(());
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(EngineError::Cancelled),
            _ = tokio::time::sleep(PHASE_POLL) => {}
        }
    }
}

/// Applies the shard's events up to `tc`; returns a late write (after `tc`), described.
/// With verification on, the shard's verifier then settles every range with the source
/// frozen (a difference fails the commit).
pub(super) async fn drain_to(
    context: StreamContext,
    tc: Timestamp,
    cancel: CancellationToken,
) -> Result<Option<String>> {
    let drained = match context.checkpoints().load_cea_checkpoint().await? {
        Some(checkpoint) => checkpoint.cluster_time >= tc,
        None => false,
    };
    if !drained {
        let run = cancel.child_token();
        let (spill, reader_task) = context.start_reader(Duration::ZERO, &run).await?;
        let applied = context.applier(spill).run_until(run.clone(), tc);
        let late = beside_reader(applied, reader_task, &run).await?;
        tracing::info!(
            shard = context.selector.id,
            late = late.is_some(),
            "shard applied up to the commit point"
        );
        if let Some(event) = late {
            return Ok(Some(describe(&event)));
        }
    }
    if context.options.verification {
        let span = tracing::info_span!("verify_at_commit_point");
        tracing::Instrument::instrument(
            context
                .verifier(AppliedClock::Frozen)
                .finish(cancel.clone()),
            span,
        )
        .await?;
        tracing::info!(
            shard = context.selector.id,
            "shard verified at the commit point"
        );
    }
    Ok(None)
}
