//! A worker's report to the leader: its share's counters, summed over its units.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::progress::{Phase, Progress};
use crate::verify::{VerificationSummary, VerifierPhase};

use super::ShareSpec;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareReport {
    /// In mongosync's words, the least advanced unit's phase.
    pub phase: Option<Phase>,
    /// Every assigned partition copied.
    pub copy_done: bool,
    /// Every owned shard applies in steady state (true with none).
    pub steady: bool,
    /// The largest lag of any owned shard.
    pub lag_seconds: Option<i64>,
    pub crud_lag_seconds: Option<i64>,
    pub ddl_lag_seconds: Option<i64>,
    /// Newest source write seen by any shard (cluster time seconds).
    pub source_latest_secs: i64,
    pub copied_bytes: u64,
    pub copied_documents: u64,
    pub events_applied: u64,
    pub partitions_assigned: u32,
    pub partitions_done: u32,
    pub owned_shards: Vec<u32>,
    pub running: bool,
    pub failure: Option<String>,
    /// The owned shards' verifiers, merged; `None` with verification off. A shard that
    /// is not running counts as not started.
    pub verification: Option<VerificationSummary>,
}

pub(super) fn build(
    spec: Option<&ShareSpec>,
    copy: &Progress,
    streams: impl Iterator<Item = (u32, Arc<Progress>)>,
    done: &BTreeSet<String>,
    failure: Option<String>,
) -> ShareReport {
    let mut report = ShareReport {
        copied_bytes: copy.copied_bytes.load(Ordering::Relaxed),
        copied_documents: copy.copied_documents.load(Ordering::Relaxed),
        failure,
        steady: true,
        ..ShareReport::default()
    };
    let Some(spec) = spec else {
        return report;
    };
    report.running = spec.run;
    report.partitions_assigned = spec.partitions.len() as u32;
    report.partitions_done = spec
        .partitions
        .iter()
        .filter(|id| done.contains(*id))
        .count() as u32;
    report.copy_done = report.partitions_done == report.partitions_assigned;
    report.owned_shards = spec.owned_shards.iter().copied().collect();
    let mut running_shards = 0;
    let mut verification: Option<VerificationSummary> = None;
    for (_, progress) in streams {
        running_shards += 1;
        if progress.verification.enabled.load(Ordering::Relaxed) {
            let shard = VerificationSummary::of(&progress.verification);
            match verification.as_mut() {
                Some(merged) => merged.merge(&shard),
                None => verification = Some(shard),
            }
        }
        let phase = progress.phase();
        report.steady &= phase == Some(Phase::SteadyState);
        report.phase = least_advanced(report.phase, phase);
        report.events_applied += progress.events_applied.load(Ordering::Relaxed);
        report.source_latest_secs = report
            .source_latest_secs
            .max(progress.source_latest_secs.load(Ordering::Relaxed));
        report.lag_seconds = max_option(report.lag_seconds, progress.lag_seconds());
        report.crud_lag_seconds = max_option(report.crud_lag_seconds, progress.crud_lag_seconds());
        report.ddl_lag_seconds = max_option(report.ddl_lag_seconds, progress.ddl_lag_seconds());
    }
    // An owned shard that is not running (yet, or any more) is not steady.
    report.steady &= running_shards == spec.owned_shards.len();
    if let Some(merged) = verification.as_mut() {
        if running_shards != spec.owned_shards.len() {
            merged.phase = VerifierPhase::NotStarted;
        }
    }
    report.verification = verification;
    if !report.copy_done {
        report.phase = Some(Phase::CollectionCopy);
    } else if report.phase.is_none() {
        report.phase = Some(if report.steady {
            Phase::SteadyState
        } else {
            Phase::CopyDrain
        });
    }
    if !spec.run {
        report.steady = false;
        report.phase = Some(Phase::Paused);
    }
    report
}

fn rank(phase: Option<Phase>) -> u8 {
    match phase {
        Some(Phase::Failed) => 0,
        Some(Phase::Initializing) => 1,
        Some(Phase::CollectionCopy) => 2,
        Some(Phase::CopyDrain) => 3,
        Some(Phase::SteadyState) => 4,
        _ => 5,
    }
}

fn least_advanced(a: Option<Phase>, b: Option<Phase>) -> Option<Phase> {
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (a, b) => {
            if rank(b) < rank(a) {
                b
            } else {
                a
            }
        }
    }
}

fn max_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}
