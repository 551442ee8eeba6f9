//! `GET /api/v1/progress`: mongosync's progress document, field for field (spec §4).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State as AxumState;
use axum::Json;
use c2c_engine::progress::{Phase, Progress};
use serde::Serialize;

use crate::coordinator::{Coordinator, CoordinatorSettings, Snapshot};
use crate::state::State;

/// mongosync 1.21: no commit while lag is above this.
const MAX_COMMIT_LAG_SECONDS: i64 = 30;

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
    let document = progress_document(&coordinator.snapshot(), coordinator.settings());
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
    let lag_reported = !matches!(state, State::Paused);
    let overall_lag = counters.lag_seconds();

    let can_commit = state == State::Running
        && failure.is_none()
        && copy_done
        && phase == Some(Phase::SteadyState)
        && overall_lag.is_some_and(|lag| lag <= MAX_COMMIT_LAG_SECONDS);

    let mut warnings = counters.warnings.lock().clone();
    if let Some(failure) = failure {
        warnings.push(format!(
            "the migration stopped after a fatal error: {failure}. Fix the cause, restart c2c and send the same /start to continue from the last checkpoint"
        ));
    }

    ProgressDocument {
        state: state.as_str(),
        can_commit,
        // Writes to the destination become safe only during commit (cutover issue).
        can_write: Some(false),
        info: Some(info(phase, copy_done)),
        cea_stage: if state == State::Running {
            cea_stage(phase)
        } else {
            None
        },
        lag: lag_reported.then(|| Lag {
            overall_lag_seconds: overall_lag,
            crud_lag_seconds: counters.crud_lag_seconds(),
            ddl_lag_seconds: counters.ddl_lag_seconds(),
        }),
        lag_time_seconds: if lag_reported { overall_lag } else { None },
        total_events_applied: Some(counters.events_applied.load(Ordering::Relaxed)),
        collection_copy: Some(collection_copy(&counters)),
        direction_mapping: Some(DirectionMapping {
            source: cluster_label(&request.source, settings),
            destination: cluster_label(&request.destination, settings),
        }),
        mongosync_id: Some(settings.id.clone()),
        // One process: this instance is its own coordinator.
        coordinator_id: Some(settings.id.clone()),
        source: Some(ping(counters.source_ping_ms.load(Ordering::Relaxed))),
        destination: Some(ping(counters.destination_ping_ms.load(Ordering::Relaxed))),
        warnings,
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
    }
}

/// `info`: initialization counts as the start of the copy (`estimatedTotalBytes` is
/// still 1 then); paused or failed migrations report the phase they stopped in.
fn info(phase: Option<Phase>, copy_done: bool) -> &'static str {
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
