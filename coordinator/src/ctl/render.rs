//! Text for `c2c ctl`: the progress summary, its JSON form, the worker table and the
//! progress bars `watch` draws. Pure functions of the replies, so they are testable.

use std::fmt::Write as _;

use c2c_api::v1::{ListWorkersReply, ProgressReply, WorkerProgress};
use serde_json::{json, Value};

/// `[#######.............]` for `fraction` in 0..=1 (clamped), `width` inner columns.
pub fn bar(fraction: f64, width: usize) -> String {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (fraction * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
}

/// Copied over estimated bytes; None in IDLE. Once `info` has moved past the copy it
/// is done whatever the estimate says (an empty source keeps mongosync's minimal
/// estimate of 1 byte with 0 copied).
pub fn copy_fraction(reply: &ProgressReply) -> Option<f64> {
    let total = reply.estimated_total_bytes?;
    if reply
        .info
        .as_deref()
        .is_some_and(|info| info != "collection copy")
    {
        return Some(1.0);
    }
    let copied = reply.estimated_copied_bytes.unwrap_or(0);
    Some(if total == 0 {
        0.0
    } else {
        copied as f64 / total as f64
    })
}

/// 1536 → "1.5 KiB".
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn seconds(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_string(), |seconds| format!("{seconds}s"))
}

fn flag(value: Option<bool>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}

/// What is happening, in mongosync's words: `info` plus `ceaStage` when present.
fn activity(reply: &ProgressReply) -> String {
    match (&reply.info, &reply.cea_stage) {
        (Some(info), Some(stage)) => format!("{info} ({stage})"),
        (Some(info), None) => info.clone(),
        (None, _) if reply.state == "IDLE" => "waiting for start".into(),
        (None, _) => "-".into(),
    }
}

/// The readable `c2c ctl progress` output.
pub fn progress_summary(reply: &ProgressReply) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<16} {value}");
    };
    line("state", reply.state.clone());
    line("activity", activity(reply));
    line(
        "canCommit",
        format!("{}    canWrite {}", reply.can_commit, flag(reply.can_write)),
    );
    if let (Some(fraction), Some(total)) = (copy_fraction(reply), reply.estimated_total_bytes) {
        line(
            "copied",
            format!(
                "{} of {} ({:.1}%)",
                bytes(reply.estimated_copied_bytes.unwrap_or(0)),
                bytes(total),
                fraction * 100.0
            ),
        );
    }
    if let Some(events) = reply.total_events_applied {
        line("events applied", events.to_string());
    }
    if let Some(lag) = &reply.lag {
        line(
            "lag",
            format!(
                "{} (crud {}, ddl {})",
                seconds(lag.overall_lag_seconds),
                seconds(lag.crud_lag_seconds),
                seconds(lag.ddl_lag_seconds)
            ),
        );
    }
    if let (Some(source), Some(destination)) =
        (&reply.direction_source, &reply.direction_destination)
    {
        line("direction", format!("{source} -> {destination}"));
    }
    if reply.source_ping_latency_ms.is_some() || reply.destination_ping_latency_ms.is_some() {
        let ping =
            |value: Option<i64>| value.map_or_else(|| "<1 ms".into(), |ms| format!("{ms} ms"));
        line(
            "ping",
            format!(
                "source {}, destination {}",
                ping(reply.source_ping_latency_ms),
                ping(reply.destination_ping_latency_ms)
            ),
        );
    }
    if !reply.mongosync_id.is_empty() {
        line("mongosyncID", reply.mongosync_id.clone());
    }
    for warning in &reply.warnings {
        line("warning", warning.clone());
    }
    for worker in &reply.workers {
        line("worker", worker_line(worker, 20));
    }
    out
}

/// The progress reply as JSON, with the proto's JSON names (camelCase, as mongosync's
/// document); unset fields are null.
pub fn progress_json(reply: &ProgressReply) -> Value {
    json!({
        "state": reply.state,
        "canCommit": reply.can_commit,
        "canWrite": reply.can_write,
        "info": reply.info,
        "ceaStage": reply.cea_stage,
        "lag": reply.lag.as_ref().map(|lag| json!({
            "overallLagSeconds": lag.overall_lag_seconds,
            "crudLagSeconds": lag.crud_lag_seconds,
            "ddlLagSeconds": lag.ddl_lag_seconds,
        })),
        "lagTimeSeconds": reply.lag_time_seconds,
        "totalEventsApplied": reply.total_events_applied,
        "estimatedTotalBytes": reply.estimated_total_bytes,
        "estimatedCopiedBytes": reply.estimated_copied_bytes,
        "directionSource": reply.direction_source,
        "directionDestination": reply.direction_destination,
        "mongosyncId": reply.mongosync_id,
        "coordinatorId": reply.coordinator_id,
        "sourcePingLatencyMs": reply.source_ping_latency_ms,
        "destinationPingLatencyMs": reply.destination_ping_latency_ms,
        "warnings": reply.warnings,
        "workers": reply.workers.iter().map(worker_json).collect::<Vec<_>>(),
    })
}

fn worker_json(worker: &WorkerProgress) -> Value {
    json!({
        "workerId": worker.worker_id,
        "address": worker.address,
        "status": worker.status,
        "phase": worker.phase,
        "copyDone": worker.copy_done,
        "steady": worker.steady,
        "lagSeconds": worker.lag_seconds,
        "copiedBytes": worker.copied_bytes,
        "estimatedBytes": worker.estimated_bytes,
        "copiedDocuments": worker.copied_documents,
        "eventsApplied": worker.events_applied,
        "partitionsAssigned": worker.partitions_assigned,
        "partitionsDone": worker.partitions_done,
        "streamShards": worker.stream_shards,
        "failure": worker.failure,
    })
}

/// One worker: id, status, phase, a copy bar, counters; its failure if any.
pub fn worker_line(worker: &WorkerProgress, width: usize) -> String {
    let fraction = if worker.copy_done {
        1.0
    } else if worker.estimated_bytes == 0 {
        0.0
    } else {
        worker.copied_bytes as f64 / worker.estimated_bytes as f64
    };
    let mut line = format!(
        "{:<12} {:<11} {:<26} {} {:>5.1}%  parts {}/{}  docs {}  events {}  lag {}",
        worker.worker_id,
        worker.status,
        worker.phase,
        bar(fraction, width),
        fraction * 100.0,
        worker.partitions_done,
        worker.partitions_assigned,
        worker.copied_documents,
        worker.events_applied,
        seconds(worker.lag_seconds),
    );
    if let Some(failure) = &worker.failure {
        let _ = write!(line, "  FAILED: {failure}");
    }
    line
}

/// The overall line `watch` draws: state, activity, copy bar, events, lag, canCommit.
pub fn overall_line(reply: &ProgressReply, width: usize) -> String {
    let copy = match copy_fraction(reply) {
        Some(fraction) => format!("{} {:>5.1}%", bar(fraction, width), fraction * 100.0),
        None => format!("{} {:>6}", bar(0.0, width), "-"),
    };
    format!(
        "{:<11} {:<48} {}  events {}  lag {}  canCommit {}",
        reply.state,
        activity(reply),
        copy,
        reply
            .total_events_applied
            .map_or_else(|| "-".to_string(), |events| events.to_string()),
        seconds(reply.lag_time_seconds),
        reply.can_commit,
    )
}

/// The `c2c ctl workers` table.
pub fn workers_table(reply: &ListWorkersReply) -> String {
    let mut out = format!(
        "{:<16} {:<12} {:<22} {:>10}  STREAM SHARDS\n",
        "WORKER", "STATUS", "ADDRESS", "PARTITIONS"
    );
    for worker in &reply.workers {
        let address = if worker.address.is_empty() {
            "(in process)"
        } else {
            &worker.address
        };
        let shards = if worker.stream_shards.is_empty() {
            "-".to_string()
        } else {
            worker.stream_shards.join(",")
        };
        let _ = writeln!(
            out,
            "{:<16} {:<12} {:<22} {:>10}  {}",
            worker.worker_id, worker.status, address, worker.partitions_assigned, shards
        );
    }
    let _ = writeln!(
        out,
        "plan epoch {}, leader term {}",
        reply.plan_epoch, reply.leader_term
    );
    out
}
