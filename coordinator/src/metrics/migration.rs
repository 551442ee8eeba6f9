//! The migration's families, from the same snapshot `/progress` reads: `canCommit`,
//! `canWrite` and the lag follow `/progress`' rules (`api::progress`), the rest are the
//! engine's counters as they are.

use std::sync::atomic::Ordering;

use c2c_engine::progress::{Phase, Progress};
use c2c_engine::verify::{SideStatus, VerifierPhase};

use super::text::{Exposition, Kind};
use crate::api::progress::progress_document;
use crate::coordinator::Coordinator;
use crate::state::State;

const STATES: [State; 7] = [
    State::Initializing,
    State::Idle,
    State::Running,
    State::Paused,
    State::Committing,
    State::Committed,
    State::Reversing,
];

const PHASES: [Phase; 9] = [
    Phase::Initializing,
    Phase::CollectionCopy,
    Phase::CopyDrain,
    Phase::SteadyState,
    Phase::Paused,
    Phase::Failed,
    Phase::Committing,
    Phase::Committed,
    Phase::Reversing,
];

const VERIFIER_PHASES: [VerifierPhase; 3] = [
    VerifierPhase::NotStarted,
    VerifierPhase::InitialHashing,
    VerifierPhase::StreamHashing,
];

/// The `phase` label of an engine phase.
pub fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::Initializing => "initializing",
        Phase::CollectionCopy => "collection_copy",
        Phase::CopyDrain => "copy_drain",
        Phase::SteadyState => "steady_state",
        Phase::Paused => "paused",
        Phase::Failed => "failed",
        Phase::Committing => "committing",
        Phase::Committed => "committed",
        Phase::Reversing => "reversing",
    }
}

fn verifier_phase_label(phase: VerifierPhase) -> &'static str {
    match phase {
        VerifierPhase::NotStarted => "not_started",
        VerifierPhase::InitialHashing => "initial_hashing",
        VerifierPhase::StreamHashing => "stream_hashing",
    }
}

/// `c2c_phase{phase}`: 1 for the current phase, 0 for the others (all 0 before one).
pub fn phase(text: &mut Exposition, current: Option<Phase>) {
    let mut family = text.family(
        "c2c_phase",
        Kind::Gauge,
        "The engine's phase: 1 for the current one (collection_copy, copy_drain, steady_state, ...).",
    );
    for phase in PHASES {
        family.sample(&[("phase", phase_label(phase))], Some(phase) == current);
    }
}

/// Copy and CEA counters shared by the migration (`c2c run`, leader) and a worker's share.
pub struct DataCounters {
    pub copied_documents: u64,
    pub copied_bytes: u64,
    pub copy_done: bool,
    pub events_applied: u64,
    pub lag_seconds: Option<i64>,
    pub crud_lag_seconds: Option<i64>,
    pub ddl_lag_seconds: Option<i64>,
    pub failed: bool,
}

pub fn data(text: &mut Exposition, counters: &DataCounters) {
    text.single(
        "c2c_copied_documents_total",
        Kind::Counter,
        "Documents copied to the destination by the collection copy.",
        counters.copied_documents,
    );
    text.single(
        "c2c_copied_bytes_total",
        Kind::Counter,
        "Bytes (BSON) copied to the destination by the collection copy.",
        counters.copied_bytes,
    );
    text.single(
        "c2c_copy_done",
        Kind::Gauge,
        "1 once every collection (or, on a worker, every assigned partition) is copied.",
        counters.copy_done,
    );
    text.single(
        "c2c_events_applied_total",
        Kind::Counter,
        "Change events applied to the destination (totalEventsApplied).",
        counters.events_applied,
    );
    let lags = [
        (
            "c2c_lag_seconds",
            "Seconds between the newest source write seen and the newest applied (lagTimeSeconds); absent before any is known.",
            counters.lag_seconds,
        ),
        (
            "c2c_crud_lag_seconds",
            "Lag of CRUD events, in seconds (lag.crudLagSeconds); absent before any is known.",
            counters.crud_lag_seconds,
        ),
        (
            "c2c_ddl_lag_seconds",
            "Lag of DDL events, in seconds (lag.ddlLagSeconds); absent before a DDL event is applied.",
            counters.ddl_lag_seconds,
        ),
    ];
    for (name, help, lag) in lags {
        let mut family = text.family(name, Kind::Gauge, help);
        if let Some(lag) = lag {
            family.sample(&[], lag);
        }
    }
    text.single(
        "c2c_migration_failed",
        Kind::Gauge,
        "1 when the migration (or this worker's share) stopped after a fatal error.",
        counters.failed,
    );
}

/// Ping latency per cluster: milliseconds as the engine keeps them (-1 = failed).
pub fn pings(text: &mut Exposition, source_ms: i64, destination_ms: i64) {
    let sides = [("source", source_ms), ("destination", destination_ms)];
    let mut latency = text.family(
        "c2c_ping_latency_seconds",
        Kind::Gauge,
        "Latency of the last ping of each cluster (0 under 1 ms or before the first ping).",
    );
    for (side, ms) in sides {
        if ms >= 0 {
            latency.sample(&[("side", side)], ms as f64 / 1000.0);
        }
    }
    let mut reachable = text.family(
        "c2c_ping_ok",
        Kind::Gauge,
        "0 when the last ping of the cluster failed.",
    );
    for (side, ms) in sides {
        reachable.sample(&[("side", side)], ms != -1);
    }
}

/// Every migration family, from one snapshot of `coordinator`.
pub fn render(text: &mut Exposition, coordinator: &Coordinator) {
    let snapshot = coordinator.snapshot();
    let document = progress_document(&snapshot, coordinator.settings());
    let counters = snapshot.progress.clone().unwrap_or_default();

    let mut states = text.family(
        "c2c_state",
        Kind::Gauge,
        "The migration's state as /progress reports it: 1 for the current one.",
    );
    for state in STATES {
        states.sample(&[("state", state.as_str())], state == snapshot.state);
    }
    phase(text, counters.phase());
    text.single(
        "c2c_can_commit",
        Kind::Gauge,
        "1 when /commit would be accepted (canCommit).",
        document.can_commit,
    );
    text.single(
        "c2c_can_write",
        Kind::Gauge,
        "1 once the destination accepts application writes (canWrite).",
        document.can_write.unwrap_or(false),
    );
    let lag = document.lag.as_ref();
    data(
        text,
        &DataCounters {
            copied_documents: counters.copied_documents.load(Ordering::Relaxed),
            copied_bytes: counters.copied_bytes.load(Ordering::Relaxed),
            copy_done: counters.copy_done.load(Ordering::Relaxed),
            events_applied: counters.events_applied.load(Ordering::Relaxed),
            lag_seconds: lag.and_then(|lag| lag.overall_lag_seconds),
            crud_lag_seconds: lag.and_then(|lag| lag.crud_lag_seconds),
            ddl_lag_seconds: lag.and_then(|lag| lag.ddl_lag_seconds),
            failed: counters.failure.lock().is_some(),
        },
    );
    text.single(
        "c2c_estimated_total_bytes",
        Kind::Gauge,
        "Estimated bytes the collection copy copies in all (collectionCopy.estimatedTotalBytes).",
        document
            .collection_copy
            .as_ref()
            .map_or(0, |copy| copy.estimated_total_bytes),
    );
    text.single(
        "c2c_events_buffered",
        Kind::Gauge,
        "Change events read from the source and not applied yet (the queue's depth).",
        counters.events_buffered.load(Ordering::Relaxed),
    );
    pings(
        text,
        counters.source_ping_ms.load(Ordering::Relaxed),
        counters.destination_ping_ms.load(Ordering::Relaxed),
    );
    verifier(text, &counters);
}

/// Reads one counter of a verifier side.
type SideReader = fn(&SideStatus) -> i64;

fn verifier(text: &mut Exposition, counters: &Progress) {
    let status = &counters.verification;
    text.single(
        "c2c_verification_enabled",
        Kind::Gauge,
        "1 when the embedded verifier runs (verification.enabled).",
        status.enabled.load(Ordering::Relaxed),
    );
    let sides: [(&str, &SideStatus); 2] = [
        ("source", &status.source),
        ("destination", &status.destination),
    ];
    let current = status.phase();
    let mut phases = text.family(
        "c2c_verifier_phase",
        Kind::Gauge,
        "The verifier's phase on each cluster: 1 for the current one.",
    );
    for (side, _) in sides {
        for phase in VERIFIER_PHASES {
            phases.sample(
                &[("side", side), ("phase", verifier_phase_label(phase))],
                phase == current,
            );
        }
    }
    let per_side: [(&'static str, &str, SideReader); 3] = [
        (
            "c2c_verifier_estimated_documents",
            "Documents the verifier expects to hash on each cluster.",
            |side| side.estimated_documents.load(Ordering::Relaxed) as i64,
        ),
        (
            "c2c_verifier_hashed_documents",
            "Documents the verifier has hashed on each cluster.",
            |side| side.hashed_documents.load(Ordering::Relaxed) as i64,
        ),
        (
            "c2c_verifier_lag_seconds",
            "Seconds between the cluster's latest write and the oldest change not verified.",
            |side| side.lag_seconds.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, read) in per_side {
        let mut family = text.family(name, Kind::Gauge, help);
        for (side, status) in sides {
            family.sample(&[("side", side)], read(status));
        }
    }
    text.single(
        "c2c_verifier_collections",
        Kind::Gauge,
        "Collections the verifier checks.",
        status.total_collections.load(Ordering::Relaxed),
    );
    text.single(
        "c2c_verifier_scanned_collections",
        Kind::Gauge,
        "Collections the verifier has finished hashing initially.",
        status.scanned_collections.load(Ordering::Relaxed),
    );
    text.single(
        "c2c_verifier_mismatches_total",
        Kind::Counter,
        "Confirmed differences between source and destination (any is fatal).",
        status.mismatch_count.load(Ordering::Relaxed),
    );
}
