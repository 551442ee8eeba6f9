//! Proto messages ↔ engine types, validated on receive (a bad message is
//! `INVALID_ARGUMENT`, never a panic).

use std::collections::{BTreeSet, HashMap};

use bson::Timestamp;
use c2c_api::v1::{
    AssignRequest, ClusterTime, Mismatch as ProtoMismatch, Verification, VerificationSide,
    WorkerReport,
};
use c2c_engine::options::{LoadLevel, StartRequest};
use c2c_engine::progress::Phase;
use c2c_engine::share::{ShareReport, ShareSpec};
use c2c_engine::verify::{Mismatch, VerificationSummary, VerifierPhase};
use c2c_engine::Namespace;

use crate::fence::Fence;

pub fn timestamp(time: Option<&ClusterTime>, what: &str) -> Result<Timestamp, String> {
    let time = time.ok_or_else(|| format!("{what} is missing"))?;
    if time.time == 0 {
        return Err(format!("{what} is not a cluster time"));
    }
    Ok(Timestamp {
        time: time.time,
        increment: time.increment,
    })
}

pub fn cluster_time(time: Timestamp) -> ClusterTime {
    ClusterTime {
        time: time.time,
        increment: time.increment,
    }
}

/// The request an `Assign` carries, checked.
pub fn start_request(assign: &AssignRequest) -> Result<StartRequest, String> {
    serde_json::from_str(&assign.request_json)
        .map_err(|error| format!("request_json is not a c2c start request: {error}"))
}

/// The leader's `--loadLevel`, if it sent one.
pub fn leader_load_level(assign: &AssignRequest) -> Result<Option<LoadLevel>, String> {
    assign
        .load_level
        .map(|level| {
            u8::try_from(level)
                .ok()
                .and_then(LoadLevel::new)
                .ok_or_else(|| format!("load_level {level} is not between 1 and 4"))
        })
        .transpose()
}

pub fn share_spec(assign: &AssignRequest) -> Result<ShareSpec, String> {
    if assign.shard_count == 0 {
        return Err("shard_count must be at least 1".into());
    }
    let mut databases = HashMap::new();
    for shard in &assign.shards {
        if shard.id >= assign.shard_count {
            return Err(format!(
                "shard {} is out of range (shard_count {})",
                shard.id, assign.shard_count
            ));
        }
        for database in &shard.databases {
            if databases.insert(database.clone(), shard.id).is_some() {
                return Err(format!("database {database:?} is in two shards"));
            }
        }
    }
    let owned_shards: BTreeSet<u32> = assign.owned_shards.iter().copied().collect();
    if let Some(bad) = owned_shards.iter().find(|id| **id >= assign.shard_count) {
        return Err(format!("owned shard {bad} is out of range"));
    }
    Ok(ShareSpec {
        reversed: assign.reversed,
        stream_start: timestamp(assign.stream_start.as_ref(), "stream_start")?,
        shard_count: assign.shard_count,
        databases,
        owned_shards,
        partitions: assign.partitions.iter().cloned().collect(),
        run: assign.run,
    })
}

/// mongosync's words for a phase, as `/progress` uses them.
pub fn phase_name(phase: Option<Phase>) -> &'static str {
    match phase {
        None => "idle",
        Some(Phase::Initializing) => "initializing",
        Some(Phase::CollectionCopy) => "collection copy",
        Some(Phase::CopyDrain) => "change event application (initial)",
        Some(Phase::SteadyState) => "change event application (steady state)",
        Some(Phase::Paused) => "paused",
        Some(Phase::Failed) => "failed",
        Some(Phase::Committing) => "committing",
        Some(Phase::Committed) => "committed",
        Some(Phase::Reversing) => "reversing",
    }
}

pub fn report(
    worker_id: &str,
    fence: Fence,
    lease_held: bool,
    share: &ShareReport,
) -> WorkerReport {
    WorkerReport {
        worker_id: worker_id.to_string(),
        fence: Some(fence.into()),
        phase: phase_name(share.phase).to_string(),
        copy_done: share.copy_done,
        steady: share.steady,
        lag_seconds: share.lag_seconds,
        crud_lag_seconds: share.crud_lag_seconds,
        ddl_lag_seconds: share.ddl_lag_seconds,
        copied_bytes: share.copied_bytes,
        copied_documents: share.copied_documents,
        events_applied: share.events_applied,
        partitions_assigned: share.partitions_assigned,
        partitions_done: share.partitions_done,
        owned_shards: share.owned_shards.clone(),
        failure: share.failure.clone(),
        source_ping_ms: 0,
        destination_ping_ms: 0,
        lease_held,
        verification: share.verification.as_ref().map(verification_to_proto),
    }
}

/// A verifier summary as the `Verification` message (mismatch `_id`s as relaxed
/// extended JSON).
pub fn verification_to_proto(summary: &VerificationSummary) -> Verification {
    let side = |estimated, hashed, lag| VerificationSide {
        estimated_document_count: estimated,
        hashed_document_count: hashed,
        lag_time_seconds: lag,
        total_collection_count: summary.total_collections,
        scanned_collection_count: summary.scanned_collections,
        phase: summary.phase.as_str().to_string(),
    };
    Verification {
        source: Some(side(
            summary.source_estimated,
            summary.source_hashed,
            summary.source_lag_seconds,
        )),
        destination: Some(side(
            summary.destination_estimated,
            summary.destination_hashed,
            summary.destination_lag_seconds,
        )),
        mismatches: summary
            .mismatches
            .iter()
            .map(|mismatch| ProtoMismatch {
                namespace: mismatch.ns.to_string(),
                id: mismatch
                    .id
                    .clone()
                    .map(|id| id.into_relaxed_extjson().to_string()),
                kind: mismatch.kind.clone(),
                detail: mismatch.detail.clone(),
            })
            .collect(),
        mismatch_count: summary.mismatch_count,
    }
}

/// The leader's side of [`verification_to_proto`]; an unreadable part is an error.
pub fn verification_from_proto(message: &Verification) -> Result<VerificationSummary, String> {
    let source = message.source.clone().unwrap_or_default();
    let destination = message.destination.clone().unwrap_or_default();
    let phase = VerifierPhase::parse(&source.phase)
        .ok_or_else(|| format!("unknown verifier phase {:?}", source.phase))?;
    let mut mismatches = Vec::with_capacity(message.mismatches.len());
    for mismatch in &message.mismatches {
        let ns = Namespace::parse(&mismatch.namespace)
            .ok_or_else(|| format!("mismatch namespace {:?}", mismatch.namespace))?;
        let id = match &mismatch.id {
            Some(text) => {
                let json: serde_json::Value = serde_json::from_str(text)
                    .map_err(|error| format!("mismatch _id {text:?}: {error}"))?;
                Some(
                    bson::Bson::try_from(json)
                        .map_err(|error| format!("mismatch _id {text:?}: {error}"))?,
                )
            }
            None => None,
        };
        mismatches.push(Mismatch {
            ns,
            id,
            kind: mismatch.kind.clone(),
            detail: mismatch.detail.clone(),
        });
    }
    Ok(VerificationSummary {
        phase,
        source_estimated: source.estimated_document_count,
        source_hashed: source.hashed_document_count,
        source_lag_seconds: source.lag_time_seconds,
        destination_estimated: destination.estimated_document_count,
        destination_hashed: destination.hashed_document_count,
        destination_lag_seconds: destination.lag_time_seconds,
        total_collections: source.total_collection_count,
        scanned_collections: source.scanned_collection_count,
        mismatches,
        mismatch_count: message.mismatch_count,
    })
}
