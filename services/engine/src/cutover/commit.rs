//! The commit steps (mongosync reference §3.5, §5.2, §5.3; the cutover seed), run by the
//! migration's own task. Each step is persisted before it runs and is idempotent, so a
//! crash at any point followed by a restart with the same `/start` finishes the commit.
//!
//! ```text
//! BlockSource ─► TakeCommitPoint ─► DrainToCommitPoint ─► PrepareUnique ─► EnableWrites
//!   (source      (Tc = no-op on      (apply ≤ Tc; late     (prepareUnique)  (Td, unblock,
//!    blocked)     the source)          writes fail)                          canWrite)
//!                                   ─► RestoreIndexes ─► FinishCommit ─► Committed
//!                                      (unique, TTL,      (late-write
//!                                       hidden)            check)
//! ```
//!
//! "Source" and "destination" are the current direction's (swapped after a reverse).

use std::sync::atomic::Ordering;

use bson::Timestamp;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::blocking::{noop_time, set_user_write_block};
use super::late_writes::{describe, first_after};
use super::{drain, indexes_restore};
use crate::error::{EngineError, Result, Side};
use crate::metadata::{CutoverState, CutoverStep, PersistedPhase};
use crate::migration::{Migration, StreamDirection};
use crate::options::WriteBlocking;
use crate::progress::Phase;
use crate::verify::{check_namespace, AppliedClock, IndexRule};

impl Migration {
    /// Runs the persisted commit from its saved step to `Committed`.
    pub(crate) async fn run_commit(&self, cancel: &CancellationToken) -> Result<()> {
        self.progress.set_phase(Phase::Committing);
        loop {
            let state = self.load_state().await?;
            if state.phase != PersistedPhase::Committing {
                return Ok(());
            }
            let mut cutover = state.cutover;
            let step = cutover.step.unwrap_or(CutoverStep::BlockSource);
            if matches!(
                step,
                CutoverStep::RestoreIndexes | CutoverStep::FinishCommit
            ) {
                self.progress.can_write.store(true, Ordering::Relaxed);
            }
            self.config.hooks.before(step)?;
            tracing::info!(step = ?step, "commit step");
            let next = self
                .commit_step(step, &mut cutover, cancel)
                .instrument(tracing::info_span!("commit_step", step = ?step))
                .await?;
            self.config.hooks.after(step)?;
            cutover.step = next;
            let phase = match next {
                Some(_) => PersistedPhase::Committing,
                None => PersistedPhase::Committed,
            };
            self.metadata.set_cutover(phase, &cutover).await?;
            if next.is_none() {
                tracing::info!("commit completed");
                self.progress.set_phase(Phase::Committed);
                return Ok(());
            }
        }
    }

    async fn commit_step(
        &self,
        step: CutoverStep,
        cutover: &mut CutoverState,
        cancel: &CancellationToken,
    ) -> Result<Option<CutoverStep>> {
        let flow = self.flow();
        let blocking = self.options.write_blocking;
        Ok(Some(match step {
            CutoverStep::BlockSource => {
                if blocking == WriteBlocking::SourceAndDestination {
                    set_user_write_block(&flow.source, Side::Source, true).await?;
                }
                CutoverStep::TakeCommitPoint
            }
            CutoverStep::TakeCommitPoint => {
                // After blocking: every user write the source accepted is before Tc.
                cutover.tc = Some(noop_time(&flow.source, Side::Source, "commit point").await?);
                CutoverStep::DrainToCommitPoint
            }
            CutoverStep::DrainToCommitPoint => {
                let tc = commit_point(cutover)?;
                let late = match &self.plane {
                    Some(plane) => {
                        let state = self.load_state().await?;
                        let direction = StreamDirection {
                            reversed: cutover.reversed,
                            stream_start: state.stream_start(),
                        };
                        plane.drain_to(tc, direction).await?
                    }
                    None => drain::drain_to(self, tc, cancel)
                        .await?
                        .map(|event| describe(&event)),
                };
                if let Some(write) = late {
                    return Err(self.late_write(tc, &write));
                }
                self.check_late_writes(tc).await?;
                // Scaled out, each worker verified its shards at the end of its drain.
                if self.options.verification && self.plane.is_none() {
                    // Everything up to Tc is applied and the source takes no more
                    // writes: the verifier settles every range before canWrite.
                    tracing::info!("verifying the destination at the commit point");
                    self.verifier(AppliedClock::Frozen)
                        .finish(cancel.clone())
                        .await?;
                }
                CutoverStep::PrepareUnique
            }
            CutoverStep::PrepareUnique => {
                let records = self.metadata.load_namespaces().await?;
                indexes_restore::prepare_unique(&flow.destination, &records).await?;
                CutoverStep::EnableWrites
            }
            CutoverStep::EnableWrites => {
                if cutover.td.is_none() {
                    // Taken before unblocking and saved at once: every application write
                    // on the destination comes after Td, which a reverse streams from.
                    let td =
                        noop_time(&flow.destination, Side::Destination, "writes enabled").await?;
                    cutover.td = Some(td);
                    self.metadata
                        .set_cutover(PersistedPhase::Committing, cutover)
                        .await?;
                }
                if blocking != WriteBlocking::None {
                    set_user_write_block(&flow.destination, Side::Destination, false).await?;
                }
                self.progress.can_write.store(true, Ordering::Relaxed);
                tracing::info!("destination writable (canWrite)");
                CutoverStep::RestoreIndexes
            }
            CutoverStep::RestoreIndexes => {
                let records = self.metadata.load_namespaces().await?;
                let problems = indexes_restore::restore(&flow.destination, &records).await?;
                *self.progress.cutover_errors.lock() = problems.clone();
                if !problems.is_empty() {
                    for problem in &problems {
                        tracing::error!(problem = %problem, "index restore failed");
                    }
                    return Err(EngineError::Fatal(format!(
                        "commit cannot complete: {}",
                        problems.join(" | ")
                    )));
                }
                CutoverStep::FinishCommit
            }
            CutoverStep::FinishCommit => {
                self.check_late_writes(commit_point(cutover)?).await?;
                if self.options.verification {
                    self.verify_restored_indexes().await?;
                }
                return Ok(None);
            }
            CutoverStep::SwapDirection
            | CutoverStep::PrepareNewDestination
            | CutoverStep::ResumeSync => {
                return Err(EngineError::Metadata(format!(
                    "reverse step {step:?} saved while committing"
                )))
            }
        }))
    }

    /// After the restore, indexes must equal the source's exactly (unique, TTL, hidden).
    async fn verify_restored_indexes(&self) -> Result<()> {
        let flow = self.flow();
        let status = &self.progress.verification;
        for record in self.metadata.load_namespaces().await? {
            let found = check_namespace(
                &flow.source,
                &flow.destination,
                &record.ns,
                IndexRule::Restored,
            )
            .await?;
            for mismatch in found {
                tracing::error!(mismatch = %mismatch, "verification mismatch after the index restore");
                let _ = status.record(mismatch);
            }
        }
        if status.mismatch_count.load(Ordering::Relaxed) > 0 {
            return Err(EngineError::Fatal(format!(
                "verification found differences after the commit restored the indexes: {}",
                status.describe_mismatches()
            )));
        }
        Ok(())
    }

    async fn check_late_writes(&self, tc: Timestamp) -> Result<()> {
        let flow = self.flow();
        match first_after(&flow.source, &self.options.filter, tc).await? {
            Some(write) => Err(self.late_write(tc, &write)),
            None => Ok(()),
        }
    }

    /// The loud failure for a source write after Tc: in `/progress`, the log and the error.
    fn late_write(&self, tc: Timestamp, write: &str) -> EngineError {
        let why = match self.options.write_blocking {
            WriteBlocking::SourceAndDestination => "although c2c blocked user writes there (a user with bypassWriteBlockingMode wrote)",
            WriteBlocking::DestinationOnly | WriteBlocking::None => "although writes to the synced collections must stop before /commit without source write blocking",
        };
        let text = format!(
            "a write reached the source after the commit point {}.{} {why}: {write}; it is not on the destination, so the commit cannot complete. Apply it to the destination yourself and restart the migration from scratch, or start with enableUserWriteBlocking: \"sourceAndDestination\"",
            tc.time, tc.increment
        );
        tracing::error!(problem = %text, "write to the source during commit");
        self.progress.cutover_errors.lock().push(text.clone());
        EngineError::Fatal(text)
    }
}

fn commit_point(cutover: &CutoverState) -> Result<Timestamp> {
    cutover
        .tc
        .ok_or_else(|| EngineError::Metadata("the commit point Tc is missing".into()))
}
