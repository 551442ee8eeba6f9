//! Cutover: write blocking, `/commit` and `/reverse` (issue 4; mongosync reference §3.5,
//! §3.6, §5).
//!
//! - `privileges`: `/start` checks c2c may block and bypass blocking where it will;
//! - `blocking`: `setUserWriteBlockMode` and the no-op writes that give Tc and Td;
//! - `entry`: `Migration::commit` / `reverse` / `persisted_phase` (preconditions);
//! - `commit`, `reverse`: the persisted, idempotent steps, run by the migration's task;
//! - `drain`: commit's "apply everything up to Tc";
//! - `late_writes`: source writes after Tc fail the commit loudly;
//! - `indexes_restore`: prepareUnique → unique, TTL and hidden back; relax on reverse.
//!
//! Write blocking (`enableUserWriteBlocking`): `destinationOnly` (default) and
//! `sourceAndDestination` block the destination from `/start` until right before
//! `canWrite`; `sourceAndDestination` also blocks the source at `/commit` (and it stays
//! blocked: after a reverse it is the destination); `none` blocks nothing.

pub(crate) mod blocking;
mod commit;
mod drain;
mod entry;
mod indexes_restore;
pub(crate) mod late_writes;
pub mod privileges;
mod reverse;

pub use crate::metadata::{CutoverState, CutoverStep};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{EngineError, Result};

/// Test hooks that simulate a crash at a cutover step: the run stops (as if killed) right
/// before the step runs (it is already persisted) or right after it ran (before the next
/// one is persisted). Default: none. Not `cfg(test)` so integration tests can use it.
#[derive(Debug, Clone, Default)]
pub struct CutoverHooks {
    pub stop_before: Option<CutoverStep>,
    pub stop_after: Option<CutoverStep>,
    /// Set when a hook stopped the run (tests wait for it).
    pub stopped: Arc<AtomicBool>,
}

impl CutoverHooks {
    pub(crate) fn before(&self, step: CutoverStep) -> Result<()> {
        self.stop_if(self.stop_before == Some(step), step, "before")
    }

    pub(crate) fn after(&self, step: CutoverStep) -> Result<()> {
        self.stop_if(self.stop_after == Some(step), step, "after")
    }

    fn stop_if(&self, stop: bool, step: CutoverStep, when: &str) -> Result<()> {
        if !stop {
            return Ok(());
        }
        tracing::warn!(step = ?step, when, "test hook: stopping the run as if killed");
        self.stopped.store(true, Ordering::SeqCst);
        Err(EngineError::Cancelled)
    }
}
