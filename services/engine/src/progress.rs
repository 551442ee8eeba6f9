//! Live counters the engine updates and `/progress` reads. Lock-free where hot.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

/// What the engine is doing, in mongosync's words (`info`, `ceaStage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Validating, discovering, creating collections and indexes.
    Initializing,
    CollectionCopy,
    /// Applying the events buffered during the copy.
    CopyDrain,
    SteadyState,
    Paused,
    Failed,
    /// `/commit` accepted: blocking, draining to Tc, converting indexes.
    Committing,
    Committed,
    /// `/reverse` accepted: swapping roles before streaming the other way.
    Reversing,
}

#[derive(Debug, Default)]
pub struct Progress {
    pub estimated_total_bytes: AtomicU64,
    pub copied_bytes: AtomicU64,
    pub copied_documents: AtomicU64,
    pub events_applied: AtomicU64,
    pub events_buffered: AtomicU64,
    /// Cluster time (seconds) of the newest source write seen and of the newest applied.
    pub source_latest_secs: AtomicI64,
    pub applied_latest_secs: AtomicI64,
    pub applied_crud_secs: AtomicI64,
    pub applied_ddl_secs: AtomicI64,
    pub copy_done: AtomicBool,
    /// True once the destination is unblocked during commit (mongosync's `canWrite`).
    pub can_write: AtomicBool,
    /// True while syncing in the reverse direction (original destination → original source).
    pub reversed: AtomicBool,
    /// Problems found during cutover that need the user (e.g. duplicate keys blocking a
    /// unique index conversion), in words a user can act on.
    pub cutover_errors: Mutex<Vec<String>>,
    /// -1 = last ping failed, 0 = not pinged yet or under 1 ms.
    pub source_ping_ms: AtomicI64,
    pub destination_ping_ms: AtomicI64,
    pub phase: Mutex<Option<Phase>>,
    pub warnings: Mutex<Vec<String>>,
    pub failure: Mutex<Option<String>>,
    /// Checked right before every copy and apply batch writes (scale-out fencing; open
    /// in a single process).
    pub write_gate: Mutex<crate::gate::WriteGate>,
    /// Cluster time of the last applied event, packed by [`pack_time`]: every change
    /// event at or before it is on the destination (what the verifier waits for).
    pub applied_through: AtomicU64,
    pub verification: crate::verify::VerificationStatus,
}

/// A cluster time as one ordered integer (seconds high, increment low).
pub fn pack_time(time: bson::Timestamp) -> u64 {
    (u64::from(time.time) << 32) | u64::from(time.increment)
}

impl Progress {
    pub fn set_phase(&self, phase: Phase) {
        *self.phase.lock() = Some(phase);
    }

    pub fn phase(&self) -> Option<Phase> {
        *self.phase.lock()
    }

    pub fn add_copied(&self, documents: u64, bytes: u64) {
        self.copied_documents
            .fetch_add(documents, Ordering::Relaxed);
        self.copied_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Seconds between the newest source time seen and the newest applied event; None
    /// before change-event application has applied or seen anything.
    pub fn lag_seconds(&self) -> Option<i64> {
        let source = self.source_latest_secs.load(Ordering::Relaxed);
        let applied = self.applied_latest_secs.load(Ordering::Relaxed);
        if source == 0 || applied == 0 {
            return None;
        }
        Some((source - applied).max(0))
    }

    fn component_lag(&self, applied: &AtomicI64) -> Option<i64> {
        let source = self.source_latest_secs.load(Ordering::Relaxed);
        let applied = applied.load(Ordering::Relaxed);
        if source == 0 || applied == 0 {
            return None;
        }
        Some((source - applied).max(0))
    }

    pub fn crud_lag_seconds(&self) -> Option<i64> {
        self.component_lag(&self.applied_crud_secs)
    }

    pub fn ddl_lag_seconds(&self) -> Option<i64> {
        self.component_lag(&self.applied_ddl_secs)
    }
}
