//! The two server commands cutover is built on: `setUserWriteBlockMode` (user write
//! blocking; c2c's own user bypasses it with `bypassWriteBlockingMode`) and
//! `appendOplogNote` (a no-op write whose `operationTime` is a point in the cluster's
//! history: Tc on the source, Td on the destination).

use bson::{doc, Timestamp};
use mongodb::Client;

use crate::error::{EngineError, Result, Side};
use crate::retry::retry;

fn on(side: Side) -> fn(mongodb::error::Error) -> EngineError {
    match side {
        Side::Source => EngineError::source,
        Side::Destination => EngineError::destination,
    }
}

/// Blocks (or unblocks) user writes on a whole cluster. Setting the mode it already has
/// is accepted by the server, so every caller may repeat it after a restart.
pub(crate) async fn set_user_write_block(client: &Client, side: Side, block: bool) -> Result<()> {
    let admin = client.database("admin");
    let command = doc! {"setUserWriteBlockMode": 1, "global": block};
    retry("setUserWriteBlockMode", || {
        admin.run_command(command.clone())
    })
    .await
    .map_err(on(side))?;
    tracing::info!(cluster = %side, block, "user write blocking set");
    Ok(())
}

/// Writes a no-op and returns its cluster time: every later write on this cluster has a
/// larger cluster time, every earlier one a smaller one.
pub(crate) async fn noop_time(client: &Client, side: Side, why: &str) -> Result<Timestamp> {
    let admin = client.database("admin");
    let command = doc! {"appendOplogNote": 1, "data": {"c2c": why}};
    let reply = retry("appendOplogNote", || admin.run_command(command.clone()))
        .await
        .map_err(on(side))?;
    reply.get_timestamp("operationTime").map_err(|_| {
        EngineError::Fatal(format!(
            "the {side} cluster did not report an operationTime for a no-op write (is it a replica set?)"
        ))
    })
}
