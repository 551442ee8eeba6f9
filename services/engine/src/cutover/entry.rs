//! `/commit` and `/reverse` as the coordinator calls them: check the preconditions
//! (refusing with a clear text and changing nothing), persist the new phase with its
//! first step, and hand the steps to the migration's own task.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use mongodb::Client;
use tokio_util::sync::CancellationToken;

use super::blocking::set_user_write_block;
use crate::error::{EngineError, Result, Side};
use crate::metadata::{CutoverStep, Metadata, PersistedPhase};
use crate::migration::Migration;
use crate::options::WriteBlocking;
use crate::progress::Phase;

impl Migration {
    /// `/commit`: refuses (`EngineError::Refused`) unless the change-event application
    /// is in steady state with the copy done; otherwise persists phase Committing and
    /// runs the commit steps in the migration's own task, returning once accepted. A
    /// commit that stopped with a failure (e.g. duplicate keys) is retried by calling it
    /// again.
    pub async fn commit(self: &Arc<Self>) -> Result<()> {
        let state = self.load_state().await?;
        match state.phase {
            PersistedPhase::Committing if self.is_running() => {
                return Err(EngineError::Refused(
                    "a commit is already in progress".into(),
                ))
            }
            PersistedPhase::Committing => {
                // The earlier attempt failed: run its remaining steps again.
                self.progress.failure.lock().take();
                self.spawn_run(CancellationToken::new(), None);
                return Ok(());
            }
            PersistedPhase::Committed => {
                return Err(EngineError::Refused(
                    "the migration is already committed".into(),
                ))
            }
            PersistedPhase::Reversing => {
                return Err(EngineError::Refused(
                    "a reverse is in progress; commit once it is back in steady state".into(),
                ))
            }
            PersistedPhase::Planning | PersistedPhase::Copying => {
                return Err(EngineError::Refused(
                    "the collection copy is not finished yet (canCommit is false)".into(),
                ))
            }
            PersistedPhase::Applying => {}
        }
        let steady = self.progress.phase() == Some(Phase::SteadyState)
            && self.progress.copy_done.load(Ordering::Relaxed);
        if !steady {
            return Err(EngineError::Refused(
                "change-event application is not in steady state yet (canCommit is false)".into(),
            ));
        }
        // Stop streaming at a checkpoint; the drain step continues from it.
        self.stop_run().await;
        let mut cutover = state.cutover;
        cutover.step = Some(CutoverStep::BlockSource);
        cutover.tc = None;
        cutover.td = None;
        if let Err(error) = self
            .metadata
            .set_cutover(PersistedPhase::Committing, &cutover)
            .await
        {
            // Not accepted: keep syncing as before.
            self.spawn_run(CancellationToken::new(), None);
            return Err(error);
        }
        self.progress.cutover_errors.lock().clear();
        self.progress.set_phase(Phase::Committing);
        // Step 1 also runs here, so the source is blocked when `/commit` answers (the
        // seed: "once you complete this step, mongosync blocks writes on the source").
        // The task repeats it (idempotent); if it fails here the task retries it.
        if self.options.write_blocking == WriteBlocking::SourceAndDestination {
            let source = self.flow().source;
            if let Err(error) = set_user_write_block(&source, Side::Source, true).await {
                tracing::warn!(error = %error, "blocking the source at /commit failed; the commit task retries");
            }
        }
        tracing::info!("commit accepted");
        self.spawn_run(CancellationToken::new(), None);
        Ok(())
    }

    /// `/reverse`: refuses unless Committed, the request had `reversible: true`,
    /// `enableUserWriteBlocking: "sourceAndDestination"` and no namespace filter;
    /// otherwise persists phase Reversing and runs the reverse steps, ending in the
    /// steady state of the other direction (`progress.reversed` flips). Repeatable.
    pub async fn reverse(self: &Arc<Self>) -> Result<()> {
        if !self.options.reversible {
            return Err(EngineError::Refused(
                "the migration was not started with reversible: true".into(),
            ));
        }
        if self.options.write_blocking != WriteBlocking::SourceAndDestination {
            return Err(EngineError::Refused(
                "reverse needs enableUserWriteBlocking: \"sourceAndDestination\" at /start".into(),
            ));
        }
        if !self.options.filter.is_empty() {
            return Err(EngineError::Refused(
                "a filtered sync (includeNamespaces/excludeNamespaces) cannot be reversed".into(),
            ));
        }
        let state = self.load_state().await?;
        if state.phase != PersistedPhase::Committed {
            return Err(EngineError::Refused(format!(
                "reverse is only possible once the commit completed (COMMITTED); the migration is {}",
                phase_name(state.phase)
            )));
        }
        self.stop_run().await;
        let mut cutover = state.cutover;
        cutover.step = Some(CutoverStep::SwapDirection);
        self.metadata
            .set_cutover(PersistedPhase::Reversing, &cutover)
            .await?;
        self.progress.cutover_errors.lock().clear();
        self.progress.set_phase(Phase::Reversing);
        tracing::info!("reverse accepted");
        self.spawn_run(CancellationToken::new(), None);
        Ok(())
    }

    /// The persisted phase of the migration whose metadata is on `destination` (the
    /// request's destination, whichever way the data flows now), if any.
    pub async fn persisted_phase(destination: &Client) -> Result<Option<PersistedPhase>> {
        Ok(Metadata::new(destination)
            .load_state()
            .await?
            .map(|state| state.phase))
    }
}

fn phase_name(phase: PersistedPhase) -> &'static str {
    match phase {
        PersistedPhase::Planning | PersistedPhase::Copying => "copying collections",
        PersistedPhase::Applying => "syncing (RUNNING)",
        PersistedPhase::Committing => "committing",
        PersistedPhase::Committed => "committed",
        PersistedPhase::Reversing => "already reversing",
    }
}
