//! Time on the source, and how far change event application has got: a destination
//! read tells the truth about a source read only once every event up to that source
//! read is applied.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Timestamp};
use mongodb::Client;
use tokio_util::sync::CancellationToken;

use crate::error::{EngineError, Result};
use crate::progress::{pack_time, Progress};
use crate::retry::retry;

const POLL: Duration = Duration::from_millis(50);

/// What "applied up to" means where the verifier runs.
#[derive(Clone)]
pub enum AppliedClock {
    /// The applier's counter (one process, or one stream shard of a worker).
    Applier(Arc<Progress>),
    /// Commit drained everything up to Tc and the source takes no more writes.
    Frozen,
}

impl AppliedClock {
    pub async fn reached(&self, time: Timestamp) -> Result<bool> {
        Ok(match self {
            AppliedClock::Applier(progress) => {
                progress.applied_through.load(Ordering::Relaxed) >= pack_time(time)
            }
            AppliedClock::Frozen => true,
        })
    }

    /// Waits until every change event up to `time` is applied.
    pub async fn wait_for(&self, time: Timestamp, cancel: &CancellationToken) -> Result<()> {
        while !self.reached(time).await? {
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        Ok(())
    }
}

/// The cluster time of the source's latest write (`hello.lastWrite`, else the reply's
/// `operationTime`): every write a read right before could have missed is at or before it.
pub async fn source_time(client: &Client) -> Result<Timestamp> {
    latest_write(client).await.map_err(EngineError::source)
}

/// As [`source_time`], for the destination.
pub async fn destination_time(client: &Client) -> Result<Timestamp> {
    latest_write(client).await.map_err(EngineError::destination)
}

async fn latest_write(client: &Client) -> std::result::Result<Timestamp, mongodb::error::Error> {
    let admin = client.database("admin");
    let reply = retry("read the latest write time", || {
        admin.run_command(doc! {"hello": 1})
    })
    .await?;
    let last_write = reply
        .get_document("lastWrite")
        .ok()
        .and_then(|last| last.get_document("opTime").ok())
        .and_then(|op_time| op_time.get_timestamp("ts").ok());
    Ok(last_write
        .or_else(|| reply.get_timestamp("operationTime").ok())
        .unwrap_or(Timestamp {
            time: 0,
            increment: 0,
        }))
}
