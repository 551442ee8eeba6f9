//! The reverse steps (mongosync reference §3.6; the reverse-sync seed): after a commit,
//! the cluster the application now writes to becomes the source and its changes since
//! Td stream into the old source, with no re-copy. Persisted and idempotent like commit.
//!
//! ```text
//! SwapDirection ──────────► PrepareNewDestination ──────► ResumeSync ──► Applying
//! (forget the checkpoint,    (block it; unique off, TTL     (steady state the
//!  flip the direction,        off, visible — as any c2c       other way round)
//!  stream from Td)            destination during sync)
//! ```
//!
//! The metadata stays where `/start` put it (the request's destination), whichever way
//! the data flows, so a restart always finds it; the direction is in the state.

use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use super::blocking::set_user_write_block;
use super::indexes_restore;
use crate::error::{EngineError, Result, Side};
use crate::metadata::{CutoverStep, PersistedPhase};
use crate::migration::Migration;
use crate::progress::Phase;

impl Migration {
    /// Runs the persisted reverse from its saved step until the migration is back in
    /// `Applying` in the other direction (the caller then streams).
    pub(crate) async fn run_reverse(&self, cancel: &CancellationToken) -> Result<()> {
        self.progress.set_phase(Phase::Reversing);
        loop {
            if cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            let state = self.load_state().await?;
            if state.phase != PersistedPhase::Reversing {
                return Ok(());
            }
            let mut cutover = state.cutover;
            self.progress
                .reversed
                .store(cutover.reversed, Ordering::Relaxed);
            let step = cutover.step.unwrap_or(CutoverStep::SwapDirection);
            self.config.hooks.before(step)?;
            tracing::info!(step = ?step, "reverse step");
            let (phase, next) = match step {
                CutoverStep::SwapDirection => {
                    let td = cutover.td.ok_or_else(|| {
                        EngineError::Metadata("Td of the last commit is missing".into())
                    })?;
                    // The old direction's resume token means nothing on the other cluster.
                    self.metadata.clear_all_cea_checkpoints().await?;
                    cutover.reversed = !cutover.reversed;
                    cutover.reversals += 1;
                    cutover.stream_start = Some(td);
                    cutover.tc = None;
                    cutover.td = None;
                    (
                        PersistedPhase::Reversing,
                        Some(CutoverStep::PrepareNewDestination),
                    )
                }
                CutoverStep::PrepareNewDestination => {
                    let flow = self.flow();
                    // Already blocked since the last commit (sourceAndDestination);
                    // repeated so a crash or a manual unblock cannot leave it open.
                    set_user_write_block(&flow.destination, Side::Destination, true).await?;
                    let records = self.metadata.load_namespaces().await?;
                    indexes_restore::relax_for_sync(&flow.destination, &records).await?;
                    (PersistedPhase::Reversing, Some(CutoverStep::ResumeSync))
                }
                CutoverStep::ResumeSync => (PersistedPhase::Applying, None),
                other => {
                    return Err(EngineError::Metadata(format!(
                        "commit step {other:?} saved while reversing"
                    )))
                }
            };
            self.config.hooks.after(step)?;
            cutover.step = next;
            self.metadata.set_cutover(phase, &cutover).await?;
            self.progress
                .reversed
                .store(cutover.reversed, Ordering::Relaxed);
            if phase == PersistedPhase::Applying {
                self.progress.can_write.store(false, Ordering::Relaxed);
                tracing::info!(
                    reversed = cutover.reversed,
                    "reverse done; streaming the other way"
                );
                return Ok(());
            }
        }
    }
}
