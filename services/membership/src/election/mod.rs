//! Leader election behind a small trait, so the coordinator can run on etcd in production
//! and on [`MemoryElectionHub`] in tests.
//!
//! Losing leadership is crash-only: [`Leadership::lost`] fires once and never un-fires; the
//! holder must stop all leader work (the token is meant to be the parent of every leader
//! task's token) and campaign again from scratch. Every durable leader write is fenced on
//! [`Leadership::leader_key`] (see [`crate::FencedStore`]), so a leader that has not noticed
//! its loss yet still cannot overwrite its successor's state.

mod etcd;
mod leadership;
mod memory;
mod observe;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use self::etcd::EtcdElection;
pub use self::leadership::Leadership;
pub use self::memory::{MemoryElection, MemoryElectionHub};
use crate::MembershipError;

/// Who a candidate is and where to reach it; stored as the election value, so followers
/// learn the leader's address from etcd alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CandidateInfo {
    /// The coordinator's id (unique per process; for logs and for recognising ourselves).
    pub id: String,
    /// `host:port` that clients and forwarding followers connect to.
    pub address: String,
}

impl CandidateInfo {
    /// A candidate named `id`, reachable at `address` (`host:port`).
    pub fn new(id: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            address: address.into(),
        }
    }
}

/// One candidate's view of an election. Object safe (`Arc<dyn Election>`): the async
/// methods return boxed futures.
pub trait Election: Send + Sync {
    /// This candidate.
    fn candidate(&self) -> &CandidateInfo;

    /// Blocks until this candidate leads, retrying through etcd outages. Dropping the
    /// future withdraws the candidacy. Only fails on terminal errors (e.g. shutdown).
    fn campaign(&self) -> BoxFuture<'_, Result<Leadership, MembershipError>>;

    /// The current leader, asked of the store (one round trip).
    fn leader(&self) -> BoxFuture<'_, Result<Option<CandidateInfo>, MembershipError>>;

    /// The current leader as last observed, kept fresh by a background watch; followers
    /// use it to know where to forward requests. `None` while nobody leads or the value is
    /// unknown (e.g. the store is unreachable and no leader was ever seen).
    fn observe(&self) -> watch::Receiver<Option<CandidateInfo>>;
}
