//! Worker membership: each worker registers itself under a lease
//! ([`WorkerRegistration`]); the coordinator follows the set of live workers
//! ([`WorkerDirectory`]). A worker whose lease expires disappears from the directory,
//! and the coordinator moves its assignment to the survivors.

mod directory;
mod registration;

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use self::directory::WorkerDirectory;
pub use self::registration::WorkerRegistration;

/// What a worker publishes about itself (the value of `workers/<id>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// The worker id; equals the key's last segment.
    pub id: String,
    /// `host:port` of the worker's internal gRPC service.
    pub address: String,
    /// Wall-clock start time, for humans only (never compared across machines).
    pub started_at_ms: u64,
}

impl WorkerRecord {
    /// A record stamped with the current wall-clock time. `id` is validated as a
    /// [`crate::WorkerId`] when the record is registered.
    pub fn new(id: impl AsRef<str>, address: impl Into<String>) -> Self {
        let started_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Self {
            id: id.as_ref().to_owned(),
            address: address.into(),
            started_at_ms,
        }
    }
}

/// A registered worker as seen by the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveWorker {
    /// What the worker published.
    pub record: WorkerRecord,
    /// The registration key's mod revision. Registrations are written once, so this is
    /// also their create revision and equals the worker's own
    /// [`WorkerRegistration::generation`]: a restarted or re-registered worker always
    /// shows a larger value, which lets the coordinator tell incarnations apart.
    pub generation: i64,
    /// The etcd lease the registration is bound to.
    pub lease_id: i64,
}
