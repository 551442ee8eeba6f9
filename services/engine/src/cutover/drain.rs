//! Commit step 3: apply every change event up to the commit point Tc, then stop.
//!
//! The steady-state run was stopped when `/commit` was accepted (at a checkpoint); this
//! opens the stream again from that checkpoint and runs the applier until it has applied
//! a high-water mark at or after Tc. A crash anywhere in here is harmless: the next run
//! resumes from the newest checkpoint, or skips the drain if it is already past Tc.

use std::time::Duration;

use bson::Timestamp;
use tokio_util::sync::CancellationToken;

use crate::cea::apply::{Applier, ApplierOptions};
use crate::cea::event::Event;
use crate::error::Result;
use crate::migration::{beside_reader, start_reader, Migration, StartedReader};

/// Returns the first synced event after Tc it read, if any (a late source write).
pub(crate) async fn drain_to(
    migration: &Migration,
    tc: Timestamp,
    cancel: &CancellationToken,
) -> Result<Option<Event>> {
    if let Some(checkpoint) = migration.metadata.load_cea_checkpoint().await? {
        if checkpoint.cluster_time >= tc {
            return Ok(None);
        }
    }
    let state = migration.load_state().await?;
    let start = migration.stream_start(&state).await?;
    let flow = migration.flow();
    let run = cancel.child_token();
    let StartedReader {
        spill,
        task: reader_task,
    } = start_reader(
        &flow,
        &migration.options,
        &migration.config,
        &migration.progress,
        start,
        Duration::ZERO,
        &run,
    )?;
    let applier = Applier::new(
        flow.source.clone(),
        flow.destination.clone(),
        migration.options.filter.clone(),
        spill,
        migration.progress.clone(),
        ApplierOptions {
            load_level: migration.options.load_level,
            build_indexes: migration.options.build_indexes,
            ..ApplierOptions::default()
        },
    )
    .with_metadata(migration.metadata.clone());
    let drained = applier.run_until(run.clone(), tc);
    let late = beside_reader(drained, reader_task, &run).await?;
    tracing::info!(tc = ?tc, late = late.is_some(), "change events applied up to the commit point");
    Ok(late)
}
