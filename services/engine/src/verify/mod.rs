//! The embedded verifier: proof that the destination equals the source, in bounded
//! memory, resumable after a restart.
//!
//! ```text
//!  initial hashing: every collection, segment by segment (the copy's partitions), is
//!    read on the source in `_id` order and cut into ranges of ≤ 2000 documents / 4 MiB;
//!    each range's hash (count + sum of canonical document hashes) is compared with the
//!    same `_id` range on the destination once change event application has applied
//!    every event up to the source read. Ranges and hashes persist in `__c2c_internal`.
//!  stream hashing: change streams on both clusters mark the ranges their events touch
//!    dirty (persisted before the streams' positions move); dirty ranges are hashed again,
//!    and split when they grew.
//!  unequal range ─► per-document merge of the range ─► each differing `_id` re-fetched
//!    in rounds (`confirm`) ─► only a difference that holds while the source document is
//!    stable and applied is a mismatch.
//!  namespaces: existence, kind, options, view definitions and indexes (`namespaces`).
//! ```
//!
//! A confirmed mismatch fails the migration with every difference listed in `/progress`
//! and the log. The commit runs a final pass with the source frozen at Tc, so
//! `canWrite` means verified.

mod canonical;
mod clock;
mod confirm;
mod namespaces;
pub mod oneshot;
mod ranges;
mod run;
pub mod scan;
mod store;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use bson::Bson;
use parking_lot::Mutex;

pub use canonical::{canonically_equal, document_hash};
pub use clock::{destination_time, source_time, AppliedClock};
pub use namespaces::{check_namespace, extra_on_destination, selected, IndexRule};
pub use run::{Verifier, VerifierSetup};
pub use store::VerifierStore;

use crate::namespace::Namespace;

/// Mismatches kept in memory and in `/progress` at most (the count keeps going).
pub const MAX_REPORTED: usize = 100;

/// mongosync's verifier phases (`verification.*.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifierPhase {
    #[default]
    NotStarted,
    InitialHashing,
    StreamHashing,
}

impl VerifierPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifierPhase::NotStarted => "not started",
            VerifierPhase::InitialHashing => "initial hashing",
            VerifierPhase::StreamHashing => "stream hashing",
        }
    }
}

/// One confirmed difference.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub ns: Namespace,
    /// The document's `_id` (none for namespace-level differences).
    pub id: Option<Bson>,
    /// What differs: "missing on destination", "extra on destination", "document
    /// differs", "collection options differ", "index differs", …
    pub kind: String,
    pub detail: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}: {} for _id {}", self.ns, self.kind, id)?,
            None => write!(f, "{}: {}", self.ns, self.kind)?,
        }
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

/// One cluster's verifier counters (`verification.source` / `.destination`).
#[derive(Debug, Default)]
pub struct SideStatus {
    pub estimated_documents: AtomicU64,
    pub hashed_documents: AtomicU64,
    /// Seconds between the cluster's latest write and the oldest change not verified.
    pub lag_seconds: AtomicI64,
}

/// What `/progress` shows of the verifier; the verifier updates it.
#[derive(Debug, Default)]
pub struct VerificationStatus {
    pub enabled: AtomicBool,
    pub phase: Mutex<VerifierPhase>,
    pub source: SideStatus,
    pub destination: SideStatus,
    pub total_collections: AtomicU64,
    pub scanned_collections: AtomicU64,
    pub mismatches: Mutex<Vec<Mismatch>>,
    pub mismatch_count: AtomicU64,
}

impl VerificationStatus {
    pub fn phase(&self) -> VerifierPhase {
        *self.phase.lock()
    }

    pub fn set_phase(&self, phase: VerifierPhase) {
        *self.phase.lock() = phase;
    }

    /// Keeps a mismatch; false when the same one was already reported.
    pub fn record(&self, mismatch: Mismatch) -> bool {
        let mut kept = self.mismatches.lock();
        if kept.contains(&mismatch) {
            return false;
        }
        self.mismatch_count.fetch_add(1, Ordering::Relaxed);
        if kept.len() < MAX_REPORTED {
            kept.push(mismatch);
        }
        true
    }

    /// The worse of both sides' verifier lag.
    pub fn lag_seconds(&self) -> i64 {
        self.source
            .lag_seconds
            .load(Ordering::Relaxed)
            .max(self.destination.lag_seconds.load(Ordering::Relaxed))
    }

    /// Whether the verifier lets a commit start: both sides in stream hashing with a
    /// small lag, and nothing found.
    pub fn ready_for_commit(&self, max_lag_seconds: i64) -> Result<(), String> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Ok(());
        }
        if self.mismatch_count.load(Ordering::Relaxed) > 0 {
            return Err("the verifier found differences".into());
        }
        match self.phase() {
            VerifierPhase::StreamHashing => {}
            other => return Err(format!("the verifier is in \"{}\"", other.as_str())),
        }
        let lag = self.lag_seconds();
        if lag > max_lag_seconds {
            return Err(format!("the verifier lags {lag} s behind"));
        }
        Ok(())
    }

    /// Every mismatch as one line per difference, for errors and the log.
    pub fn describe_mismatches(&self) -> String {
        let kept = self.mismatches.lock();
        let total = self.mismatch_count.load(Ordering::Relaxed);
        let mut text = kept
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if total as usize > kept.len() {
            text.push_str(&format!("; and {} more", total as usize - kept.len()));
        }
        text
    }
}

/// One verifier's status as plain values: what a worker reports for its stream shards
/// and what the leader folds into the migration's [`VerificationStatus`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VerificationSummary {
    pub phase: VerifierPhase,
    pub source_estimated: u64,
    pub source_hashed: u64,
    pub source_lag_seconds: i64,
    pub destination_estimated: u64,
    pub destination_hashed: u64,
    pub destination_lag_seconds: i64,
    pub total_collections: u64,
    pub scanned_collections: u64,
    pub mismatches: Vec<Mismatch>,
    pub mismatch_count: u64,
}

fn phase_rank(phase: VerifierPhase) -> u8 {
    match phase {
        VerifierPhase::NotStarted => 0,
        VerifierPhase::InitialHashing => 1,
        VerifierPhase::StreamHashing => 2,
    }
}

impl VerificationSummary {
    pub fn of(status: &VerificationStatus) -> VerificationSummary {
        VerificationSummary {
            phase: status.phase(),
            source_estimated: status.source.estimated_documents.load(Ordering::Relaxed),
            source_hashed: status.source.hashed_documents.load(Ordering::Relaxed),
            source_lag_seconds: status.source.lag_seconds.load(Ordering::Relaxed),
            destination_estimated: status
                .destination
                .estimated_documents
                .load(Ordering::Relaxed),
            destination_hashed: status.destination.hashed_documents.load(Ordering::Relaxed),
            destination_lag_seconds: status.destination.lag_seconds.load(Ordering::Relaxed),
            total_collections: status.total_collections.load(Ordering::Relaxed),
            scanned_collections: status.scanned_collections.load(Ordering::Relaxed),
            mismatches: status.mismatches.lock().clone(),
            mismatch_count: status.mismatch_count.load(Ordering::Relaxed),
        }
    }

    /// Adds another verifier's share: the least advanced phase, counts summed, the
    /// larger lag, the mismatches of both.
    pub fn merge(&mut self, other: &VerificationSummary) {
        if phase_rank(other.phase) < phase_rank(self.phase) {
            self.phase = other.phase;
        }
        self.source_estimated += other.source_estimated;
        self.source_hashed += other.source_hashed;
        self.source_lag_seconds = self.source_lag_seconds.max(other.source_lag_seconds);
        self.destination_estimated += other.destination_estimated;
        self.destination_hashed += other.destination_hashed;
        self.destination_lag_seconds = self
            .destination_lag_seconds
            .max(other.destination_lag_seconds);
        self.total_collections += other.total_collections;
        self.scanned_collections += other.scanned_collections;
        self.mismatch_count += other.mismatch_count;
        for mismatch in &other.mismatches {
            if self.mismatches.len() < MAX_REPORTED && !self.mismatches.contains(mismatch) {
                self.mismatches.push(mismatch.clone());
            }
        }
    }

    /// Shows this summary as `status` (the scaled-out leader's counters).
    pub fn publish(&self, status: &VerificationStatus) {
        status.set_phase(self.phase);
        status
            .source
            .estimated_documents
            .store(self.source_estimated, Ordering::Relaxed);
        status
            .source
            .hashed_documents
            .store(self.source_hashed, Ordering::Relaxed);
        status
            .source
            .lag_seconds
            .store(self.source_lag_seconds, Ordering::Relaxed);
        status
            .destination
            .estimated_documents
            .store(self.destination_estimated, Ordering::Relaxed);
        status
            .destination
            .hashed_documents
            .store(self.destination_hashed, Ordering::Relaxed);
        status
            .destination
            .lag_seconds
            .store(self.destination_lag_seconds, Ordering::Relaxed);
        status
            .total_collections
            .store(self.total_collections, Ordering::Relaxed);
        status
            .scanned_collections
            .store(self.scanned_collections, Ordering::Relaxed);
        for mismatch in &self.mismatches {
            let _ = status.record(mismatch.clone());
        }
    }
}

impl VerifierPhase {
    pub fn parse(text: &str) -> Option<VerifierPhase> {
        match text {
            "not started" => Some(VerifierPhase::NotStarted),
            "initial hashing" => Some(VerifierPhase::InitialHashing),
            "stream hashing" => Some(VerifierPhase::StreamHashing),
            _ => None,
        }
    }
}
