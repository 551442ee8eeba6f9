//! `GET /api/v1/progress`: mongosync's progress document, field for field (spec §4).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::Json;
use c2c_engine::options::StartRequest;
use c2c_engine::progress::{Phase, Progress};
use c2c_engine::verify::SideStatus;
use serde::Serialize;

use crate::commit_readiness::commit_readiness;
use crate::coordinator::{Coordinator, CoordinatorSettings, Snapshot};
use crate::state::State;

#[derive(Debug, Serialize)]
pub struct ProgressResponse {
    pub progress: ProgressDocument,
    pub success: bool,
}

/// `null` fields are serialised as `null` (not omitted): mongosync's clients read them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressDocument {
    pub state: &'static str,
    pub can_commit: bool,
    pub can_write: Option<bool>,
    pub info: Option<&'static str>,
    pub cea_stage: Option<&'static str>,
    pub lag: Option<Lag>,
    pub lag_time_seconds: Option<i64>,
    pub total_events_applied: Option<u64>,
    pub collection_copy: Option<CollectionCopy>,
    pub direction_mapping: Option<DirectionMapping>,
    #[serde(rename = "mongosyncID")]
    pub mongosync_id: Option<String>,
    #[serde(rename = "coordinatorID")]
    pub coordinator_id: Option<String>,
    pub source: Option<Ping>,
    pub destination: Option<Ping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// `null` when verification is off (c2c's choice: mongosync does not document it).
    pub verification: Option<Verification>,
    /// Scaled out only (c2c's addition): what each worker reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<WorkerBreakdown>>,
}

/// One worker's part of the migration, as the gRPC `WorkerProgress` carries it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerBreakdown {
    pub worker_id: String,
    pub address: String,
    pub status: String,
    pub phase: String,
    pub copy_done: bool,
    pub steady: bool,
    pub lag_seconds: Option<i64>,
    pub copied_bytes: u64,
    pub estimated_bytes: u64,
    pub copied_documents: u64,
    pub events_applied: u64,
    pub partitions_assigned: u32,
    pub partitions_done: u32,
    pub stream_shards: Vec<String>,
    pub failure: Option<String>,
}

impl From<c2c_api::v1::WorkerProgress> for WorkerBreakdown {
    fn from(worker: c2c_api::v1::WorkerProgress) -> WorkerBreakdown {
        WorkerBreakdown {
            worker_id: worker.worker_id,
            address: worker.address,
            status: worker.status,
            phase: worker.phase,
            copy_done: worker.copy_done,
            steady: worker.steady,
            lag_seconds: worker.lag_seconds,
            copied_bytes: worker.copied_bytes,
            estimated_bytes: worker.estimated_bytes,
            copied_documents: worker.copied_documents,
            events_applied: worker.events_applied,
            partitions_assigned: worker.partitions_assigned,
            partitions_done: worker.partitions_done,
            stream_shards: worker.stream_shards,
            failure: worker.failure,
        }
    }
}

/// mongosync's `verification` (spec §4); `mismatches` is c2c's addition.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub source: VerificationSide,
    pub destination: VerificationSide,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<MismatchView>,
    #[serde(skip_serializing_if = "is_zero")]
    pub mismatch_count: u64,
}

fn is_zero(count: &u64) -> bool {
    *count == 0
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationSide {
    pub estimated_document_count: u64,
    pub hashed_document_count: u64,
    pub lag_time_seconds: i64,
    pub total_collection_count: u64,
    pub scanned_collection_count: u64,
    pub phase: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MismatchView {
    pub namespace: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    pub overall_lag_seconds: Option<i64>,
    pub crud_lag_seconds: Option<i64>,
    pub ddl_lag_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionCopy {
    pub estimated_total_bytes: u64,
    pub estimated_copied_bytes: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DirectionMapping {
    pub source: String,
    pub destination: String,
}

/// `pingLatencyMs` is absent under 1 ms or before the first ping, -1 after a failed one.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ping {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_latency_ms: Option<i64>,
}

pub async fn get_progress(
    AxumState(coordinator): AxumState<Arc<Coordinator>>,
) -> Json<ProgressResponse> {
    let mut document = progress_document(&coordinator.snapshot(), coordinator.settings());
    document.workers = coordinator.workers().map(|workers| {
        workers
            .progress()
            .into_iter()
            .map(WorkerBreakdown::from)
            .collect()
    });
    Json(ProgressResponse {
        progress: document,
        success: true,
    })
}

/// Builds the document from one consistent snapshot.
pub fn progress_document(snapshot: &Snapshot, settings: &CoordinatorSettings) -> ProgressDocument {
    let state = snapshot.state;
    let (
        Some(request),
        State::Running | State::Paused | State::Committing | State::Committed | State::Reversing,
    ) = (&snapshot.request, state)
    else {
        // INITIALIZING and IDLE: everything but `state` and `canCommit` is null.
        return ProgressDocument {
            warnings: snapshot.init_problem.iter().cloned().collect(),
            ..empty_document(state)
        };
    };
    let counters = snapshot.progress.clone().unwrap_or_default();
    let phase = counters.phase();
    let failure = counters.failure.lock().clone();
    let copy_done = counters.copy_done.load(Ordering::Relaxed);
    let lag = lag(state, &counters);

    let mut warnings = counters.warnings.lock().clone();
    // Cutover problems (e.g. duplicate keys blocking a unique index) need the user.
    warnings.extend(counters.cutover_errors.lock().iter().cloned());
    if let Some(failure) = failure {
        warnings.push(failure_warning(state, &failure));
    }

    ProgressDocument {
        state: state.as_str(),
        can_commit: state == State::Running && commit_readiness(&counters).is_ok(),
        // COMMITTED implies the destination is writable (spec §5.2), even before the
        // engine of a restarted process has set its counter.
        can_write: Some(counters.can_write.load(Ordering::Relaxed) || state == State::Committed),
        info: Some(info(state, phase, copy_done)),
        cea_stage: if state == State::Running {
            cea_stage(phase)
        } else {
            None
        },
        lag_time_seconds: lag.as_ref().and_then(|lag| lag.overall_lag_seconds),
        lag,
        total_events_applied: Some(counters.events_applied.load(Ordering::Relaxed)),
        collection_copy: Some(collection_copy(&counters)),
        direction_mapping: Some(direction_mapping(request, &counters, settings)),
        mongosync_id: Some(settings.id.clone()),
        // One process: this instance is its own coordinator.
        coordinator_id: Some(settings.id.clone()),
        source: Some(ping(counters.source_ping_ms.load(Ordering::Relaxed))),
        destination: Some(ping(counters.destination_ping_ms.load(Ordering::Relaxed))),
        warnings,
        verification: verification(&counters),
        workers: None,
    }
}

/// The verifier's status; null when verification is off.
fn verification(counters: &Progress) -> Option<Verification> {
    let status = &counters.verification;
    if !status.enabled.load(Ordering::Relaxed) {
        return None;
    }
    let phase = status.phase().as_str();
    let side = |side: &SideStatus| VerificationSide {
        estimated_document_count: side.estimated_documents.load(Ordering::Relaxed),
        hashed_document_count: side.hashed_documents.load(Ordering::Relaxed),
        lag_time_seconds: side.lag_seconds.load(Ordering::Relaxed),
        total_collection_count: status.total_collections.load(Ordering::Relaxed),
        scanned_collection_count: status.scanned_collections.load(Ordering::Relaxed),
        phase,
    };
    Some(Verification {
        source: side(&status.source),
        destination: side(&status.destination),
        mismatches: status
            .mismatches
            .lock()
            .iter()
            .map(|mismatch| MismatchView {
                namespace: mismatch.ns.to_string(),
                id: mismatch.id.clone().map(|id| id.into_relaxed_extjson()),
                kind: mismatch.kind.clone(),
                detail: mismatch.detail.clone(),
            })
            .collect(),
        mismatch_count: status.mismatch_count.load(Ordering::Relaxed),
    })
}

/// `lag`: null while PAUSED; 0 once COMMITTED (spec §4: every event up to the commit
/// point is applied and no more are read); otherwise the engine's measurement.
fn lag(state: State, counters: &Progress) -> Option<Lag> {
    match state {
        State::Paused => None,
        State::Committed => Some(Lag {
            overall_lag_seconds: Some(0),
            crud_lag_seconds: Some(0),
            // Still null when no DDL was ever applied (the field's documented meaning).
            ddl_lag_seconds: counters.ddl_lag_seconds().map(|_| 0),
        }),
        _ => Some(Lag {
            overall_lag_seconds: counters.lag_seconds(),
            crud_lag_seconds: counters.crud_lag_seconds(),
            ddl_lag_seconds: counters.ddl_lag_seconds(),
        }),
    }
}

/// A fatal engine error, with what continues the migration: during cutover a restart
/// alone finishes the step; otherwise the same `/start` after the restart.
fn failure_warning(state: State, failure: &str) -> String {
    let next = match state {
        State::Committing | State::Reversing => {
            "Fix the cause and restart c2c: it finishes the step from the persisted state without a new /start"
        }
        _ => "Fix the cause, restart c2c and send the same /start to continue from the last checkpoint",
    };
    format!("the migration stopped after a fatal error: {failure}. {next}")
}

/// `directionMapping` as data flows now: after a `/reverse` the request's destination is
/// the source.
fn direction_mapping(
    request: &StartRequest,
    counters: &Progress,
    settings: &CoordinatorSettings,
) -> DirectionMapping {
    let (source, destination) = if counters.reversed.load(Ordering::Relaxed) {
        (&request.destination, &request.source)
    } else {
        (&request.source, &request.destination)
    };
    DirectionMapping {
        source: cluster_label(source, settings),
        destination: cluster_label(destination, settings),
    }
}

fn empty_document(state: State) -> ProgressDocument {
    ProgressDocument {
        state: state.as_str(),
        can_commit: false,
        can_write: None,
        info: None,
        cea_stage: None,
        lag: None,
        lag_time_seconds: None,
        total_events_applied: None,
        collection_copy: None,
        direction_mapping: None,
        mongosync_id: None,
        coordinator_id: None,
        source: None,
        destination: None,
        warnings: Vec::new(),
        verification: None,
        workers: None,
    }
}

/// `info`: COMMITTING and COMMITTED say so whatever the engine is doing (spec §4); else
/// initialization counts as the start of the copy (`estimatedTotalBytes` is still 1
/// then), and paused or failed migrations report the phase they stopped in.
fn info(state: State, phase: Option<Phase>, copy_done: bool) -> &'static str {
    match state {
        State::Committing => return "waiting for commit to complete",
        State::Committed => return "commit completed",
        _ => {}
    }
    match phase {
        Some(Phase::Initializing | Phase::CollectionCopy) => "collection copy",
        Some(Phase::CopyDrain | Phase::SteadyState | Phase::Reversing) => {
            "change event application"
        }
        Some(Phase::Committing) => "waiting for commit to complete",
        Some(Phase::Committed) => "commit completed",
        Some(Phase::Paused | Phase::Failed) | None if copy_done => "change event application",
        Some(Phase::Paused | Phase::Failed) | None => "collection copy",
    }
}

fn cea_stage(phase: Option<Phase>) -> Option<&'static str> {
    match phase {
        Some(Phase::CopyDrain) => Some("collection copy drain"),
        Some(Phase::SteadyState) => Some("steady state"),
        _ => None,
    }
}

fn collection_copy(counters: &Progress) -> CollectionCopy {
    let total = counters.estimated_total_bytes.load(Ordering::Relaxed);
    let copied = counters.copied_bytes.load(Ordering::Relaxed);
    // 1 before the estimate exists (mongosync's documented value), then raised to the
    // copied bytes whenever they exceed it (1.21+), so percentages never pass 100.
    let total = if total == 0 { 1 } else { total };
    CollectionCopy {
        estimated_total_bytes: total.max(copied),
        estimated_copied_bytes: copied,
    }
}

/// `"cluster0: host:port[,host:port…]"` — hosts only, never credentials.
fn cluster_label(cluster: &str, settings: &CoordinatorSettings) -> String {
    let hosts = if cluster == "cluster0" {
        &settings.cluster0_hosts
    } else {
        &settings.cluster1_hosts
    };
    format!("{cluster}: {}", hosts.join(","))
}

fn ping(milliseconds: i64) -> Ping {
    Ping {
        ping_latency_ms: (milliseconds != 0).then_some(milliseconds),
    }
}
