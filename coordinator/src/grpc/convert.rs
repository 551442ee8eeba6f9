//! Conversions between the `c2c.v1` messages and the REST API's JSON and documents.
//!
//! `Start` is turned into the JSON body `/start` would receive and validated by
//! `validate_start`, so gRPC and REST share one validation path and persist identical
//! requests (a migration started over one API continues over the other).

use c2c_api::v1::{Lag, NamespaceFilter, ProgressReply, StartRequest};
use serde_json::{json, Map, Value};

use crate::api::progress::ProgressDocument;

/// The `/start` JSON body equivalent to `request`, with mongosync's field names. Only
/// fields the client set are present (proto3 has no presence for plain strings, so an
/// empty `source` / `destination` / `database` counts as unset and is left for
/// `validate_start` to report as missing).
pub fn start_body(request: &StartRequest) -> Map<String, Value> {
    let mut body = Map::new();
    put_string(&mut body, "source", &request.source);
    put_string(&mut body, "destination", &request.destination);
    put_filters(&mut body, "includeNamespaces", &request.include_namespaces);
    put_filters(&mut body, "excludeNamespaces", &request.exclude_namespaces);
    if let Some(build_indexes) = &request.build_indexes {
        body.insert("buildIndexes".into(), json!(build_indexes));
    }
    if let Some(reversible) = request.reversible {
        body.insert("reversible".into(), json!(reversible));
    }
    if let Some(blocking) = &request.enable_user_write_blocking {
        body.insert("enableUserWriteBlocking".into(), json!(blocking));
    }
    if let Some(enabled) = request.verification_enabled {
        body.insert("verification".into(), json!({ "enabled": enabled }));
    }
    if let Some(detect) = request.detect_random_id {
        body.insert("detectRandomId".into(), json!(detect));
    }
    if let Some(pre_existing) = request.pre_existing_destination_data {
        body.insert("preExistingDestinationData".into(), json!(pre_existing));
    }
    body
}

fn put_string(body: &mut Map<String, Value>, field: &str, value: &str) {
    if !value.is_empty() {
        body.insert(field.into(), json!(value));
    }
}

fn put_filters(body: &mut Map<String, Value>, field: &str, filters: &[NamespaceFilter]) {
    if !filters.is_empty() {
        body.insert(
            field.into(),
            Value::Array(filters.iter().map(filter_entry).collect()),
        );
    }
}

/// One filter document: `{database, collections, databaseRegex, collectionsRegex}`.
fn filter_entry(filter: &NamespaceFilter) -> Value {
    let mut entry = Map::new();
    put_string(&mut entry, "database", &filter.database);
    if !filter.collections.is_empty() {
        entry.insert("collections".into(), json!(filter.collections));
    }
    put_regex(
        &mut entry,
        "databaseRegex",
        &filter.database_regex_pattern,
        &filter.database_regex_options,
    );
    put_regex(
        &mut entry,
        "collectionsRegex",
        &filter.collections_regex_pattern,
        &filter.collections_regex_options,
    );
    Value::Object(entry)
}

/// `{pattern, options}` when either is set; options without a pattern are passed on
/// so validation names the missing pattern rather than silently dropping the options.
fn put_regex(
    entry: &mut Map<String, Value>,
    field: &str,
    pattern: &Option<String>,
    options: &Option<String>,
) {
    if pattern.is_none() && options.is_none() {
        return;
    }
    let mut regex = Map::new();
    if let Some(pattern) = pattern {
        regex.insert("pattern".into(), json!(pattern));
    }
    if let Some(options) = options {
        regex.insert("options".into(), json!(options));
    }
    entry.insert(field.into(), Value::Object(regex));
}

/// `/progress` as a `ProgressReply`, field for field. `workers` is left empty: the
/// caller adds the per-worker breakdown it knows (see `WorkerDirectory`).
pub fn progress_reply(document: &ProgressDocument) -> ProgressReply {
    let copy = document.collection_copy.as_ref();
    let direction = document.direction_mapping.as_ref();
    ProgressReply {
        state: document.state.to_string(),
        can_commit: document.can_commit,
        can_write: document.can_write,
        info: document.info.map(str::to_string),
        cea_stage: document.cea_stage.map(str::to_string),
        lag: document.lag.as_ref().map(|lag| Lag {
            overall_lag_seconds: lag.overall_lag_seconds,
            crud_lag_seconds: lag.crud_lag_seconds,
            ddl_lag_seconds: lag.ddl_lag_seconds,
        }),
        lag_time_seconds: document.lag_time_seconds,
        total_events_applied: document.total_events_applied,
        estimated_total_bytes: copy.map(|copy| copy.estimated_total_bytes),
        estimated_copied_bytes: copy.map(|copy| copy.estimated_copied_bytes),
        direction_source: direction.map(|direction| direction.source.clone()),
        direction_destination: direction.map(|direction| direction.destination.clone()),
        // Null in IDLE in the REST document; proto3 strings have no null, so empty.
        mongosync_id: document.mongosync_id.clone().unwrap_or_default(),
        coordinator_id: document.coordinator_id.clone().unwrap_or_default(),
        source_ping_latency_ms: document
            .source
            .as_ref()
            .and_then(|ping| ping.ping_latency_ms),
        destination_ping_latency_ms: document
            .destination
            .as_ref()
            .and_then(|ping| ping.ping_latency_ms),
        warnings: document.warnings.clone(),
        workers: Vec::new(),
        verification: document.verification.as_ref().map(verification),
    }
}

fn verification(document: &crate::api::progress::Verification) -> c2c_api::v1::Verification {
    let side = |side: &crate::api::progress::VerificationSide| c2c_api::v1::VerificationSide {
        estimated_document_count: side.estimated_document_count,
        hashed_document_count: side.hashed_document_count,
        lag_time_seconds: side.lag_time_seconds,
        total_collection_count: side.total_collection_count,
        scanned_collection_count: side.scanned_collection_count,
        phase: side.phase.to_string(),
    };
    c2c_api::v1::Verification {
        source: Some(side(&document.source)),
        destination: Some(side(&document.destination)),
        mismatches: document
            .mismatches
            .iter()
            .map(|mismatch| c2c_api::v1::Mismatch {
                namespace: mismatch.namespace.clone(),
                id: mismatch.id.as_ref().map(ToString::to_string),
                kind: mismatch.kind.clone(),
                detail: mismatch.detail.clone(),
            })
            .collect(),
        mismatch_count: document.mismatch_count,
    }
}
