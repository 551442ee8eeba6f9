//! `/progress` documents in IDLE, RUNNING and PAUSED, with nulls exactly as spec §4.

use std::sync::atomic::Ordering;

use c2c_engine::progress::Phase;
use serde_json::{json, Value};

use crate::common::{idle, running, steady_state};

/// Every key mongosync's clients may read, in IDLE: all null but state and canCommit.
#[tokio::test]
async fn idle_document_is_all_null_but_state_and_can_commit() {
    let api = idle().await;
    let (_, body) = api.get("/api/v1/progress").await;
    assert_eq!(
        body,
        json!({
            "progress": {
                "state": "IDLE",
                "canCommit": false,
                "canWrite": null,
                "info": null,
                "ceaStage": null,
                "lag": null,
                "lagTimeSeconds": null,
                "totalEventsApplied": null,
                "collectionCopy": null,
                "directionMapping": null,
                "mongosyncID": null,
                "coordinatorID": null,
                "source": null,
                "destination": null,
                "verification": null
            },
            "success": true
        })
    );
}

#[tokio::test]
async fn running_before_the_copy_starts() {
    let api = running().await;
    assert_eq!(
        api.progress().await,
        json!({
            "state": "RUNNING",
            "canCommit": false,
            "canWrite": false,
            "info": "collection copy",
            "ceaStage": null,
            "lag": {"overallLagSeconds": null, "crudLagSeconds": null, "ddlLagSeconds": null},
            "lagTimeSeconds": null,
            "totalEventsApplied": 0,
            "collectionCopy": {"estimatedTotalBytes": 1, "estimatedCopiedBytes": 0},
            "directionMapping": {
                "Source": "cluster0: db0.example.net:27017,db0b.example.net:27017",
                "Destination": "cluster1: db1.example.net:27018"
            },
            "mongosyncID": "coordinator",
            "coordinatorID": "coordinator",
            "source": {},
            "destination": {},
            "verification": null
        })
    );
}

#[tokio::test]
async fn running_in_steady_state_can_commit() {
    let api = running().await;
    steady_state(api.driver.counters(), 3);
    assert_eq!(
        api.progress().await,
        json!({
            "state": "RUNNING",
            "canCommit": true,
            "canWrite": false,
            "info": "change event application",
            "ceaStage": "steady state",
            "lag": {"overallLagSeconds": 3, "crudLagSeconds": 3, "ddlLagSeconds": null},
            "lagTimeSeconds": 3,
            "totalEventsApplied": 42,
            // Raised to the copied bytes once exceeded.
            "collectionCopy": {"estimatedTotalBytes": 1200, "estimatedCopiedBytes": 1200},
            "directionMapping": {
                "Source": "cluster0: db0.example.net:27017,db0b.example.net:27017",
                "Destination": "cluster1: db1.example.net:27018"
            },
            "mongosyncID": "coordinator",
            "coordinatorID": "coordinator",
            "source": {"pingLatencyMs": 12},
            "destination": {"pingLatencyMs": -1},
            "verification": null
        })
    );
}

#[tokio::test]
async fn can_commit_needs_lag_of_at_most_30_seconds() {
    let api = running().await;
    steady_state(api.driver.counters(), 30);
    assert_eq!(api.progress().await["canCommit"], true);
    steady_state(api.driver.counters(), 31);
    assert_eq!(api.progress().await["canCommit"], false);
}

#[tokio::test]
async fn verification_document_and_can_commit_waits_for_stream_hashing() {
    use c2c_engine::verify::{Mismatch, VerifierPhase};
    let api = running().await;
    let counters = api.driver.counters();
    steady_state(counters, 0);
    let status = &counters.verification;
    status.enabled.store(true, Ordering::Relaxed);
    status.set_phase(VerifierPhase::InitialHashing);
    status
        .source
        .estimated_documents
        .store(500, Ordering::Relaxed);
    status.source.hashed_documents.store(200, Ordering::Relaxed);
    status
        .destination
        .estimated_documents
        .store(500, Ordering::Relaxed);
    status
        .destination
        .hashed_documents
        .store(100, Ordering::Relaxed);
    status.total_collections.store(3, Ordering::Relaxed);
    status.scanned_collections.store(1, Ordering::Relaxed);
    status.destination.lag_seconds.store(4, Ordering::Relaxed);
    let progress = api.progress().await;
    assert_eq!(progress["canCommit"], false);
    assert_eq!(
        progress["verification"],
        json!({
            "source": {"estimatedDocumentCount": 500, "hashedDocumentCount": 200, "lagTimeSeconds": 0,
                       "totalCollectionCount": 3, "scannedCollectionCount": 1, "phase": "initial hashing"},
            "destination": {"estimatedDocumentCount": 500, "hashedDocumentCount": 100, "lagTimeSeconds": 4,
                            "totalCollectionCount": 3, "scannedCollectionCount": 1, "phase": "initial hashing"}
        })
    );
    let (status_code, body) = api.post("/api/v1/commit", "{}").await;
    assert!(status_code.is_client_error(), "{body}");
    assert!(
        body["errorDescription"]
            .as_str()
            .is_some_and(|text| text.contains("initial hashing")),
        "{body}"
    );

    status.set_phase(VerifierPhase::StreamHashing);
    assert_eq!(api.progress().await["canCommit"], true);
    status.destination.lag_seconds.store(31, Ordering::Relaxed);
    assert_eq!(api.progress().await["canCommit"], false);
    status.destination.lag_seconds.store(0, Ordering::Relaxed);

    let _ = status.record(Mismatch {
        ns: c2c_engine::Namespace::new("sales", "orders"),
        id: Some(bson::Bson::Int32(7)),
        kind: "document differs".into(),
        detail: String::new(),
    });
    let progress = api.progress().await;
    assert_eq!(progress["canCommit"], false);
    assert_eq!(
        progress["verification"]["mismatches"],
        json!([{"namespace": "sales.orders", "id": 7, "kind": "document differs"}])
    );
    assert_eq!(progress["verification"]["mismatchCount"], 1);
}

#[tokio::test]
async fn can_commit_needs_the_copy_done_and_steady_state() {
    let api = running().await;
    let counters = api.driver.counters();
    steady_state(counters, 0);
    counters.set_phase(Phase::CopyDrain);
    let progress = api.progress().await;
    assert_eq!(progress["canCommit"], false);
    assert_eq!(progress["info"], "change event application");
    assert_eq!(progress["ceaStage"], "collection copy drain");

    counters.set_phase(Phase::CollectionCopy);
    counters.copy_done.store(false, Ordering::Relaxed);
    let progress = api.progress().await;
    assert_eq!(progress["canCommit"], false);
    assert_eq!(progress["info"], "collection copy");
    assert_eq!(progress["ceaStage"], Value::Null);
}

#[tokio::test]
async fn paused_document_has_null_lag() {
    let api = running().await;
    steady_state(api.driver.counters(), 2);
    api.post("/api/v1/pause", "{}").await;
    api.driver.counters().set_phase(Phase::Paused);
    let progress = api.progress().await;
    assert_eq!(progress["state"], "PAUSED");
    assert_eq!(progress["canCommit"], false);
    assert_eq!(progress["canWrite"], false);
    assert_eq!(progress["lag"], Value::Null);
    assert_eq!(progress["lagTimeSeconds"], Value::Null);
    assert_eq!(progress["ceaStage"], Value::Null);
    assert_eq!(
        progress["info"], "change event application",
        "the phase it paused in"
    );
    assert_eq!(progress["totalEventsApplied"], 42);
    assert_eq!(progress["collectionCopy"]["estimatedCopiedBytes"], 1200);
    assert_eq!(progress["mongosyncID"], "coordinator");
}

#[tokio::test]
async fn engine_warnings_and_fatal_failures_are_surfaced() {
    let api = running().await;
    let counters = api.driver.counters();
    steady_state(counters, 0);
    counters
        .warnings
        .lock()
        .push("oplog window is small".into());
    assert_eq!(
        api.progress().await["warnings"],
        json!(["oplog window is small"])
    );

    *counters.failure.lock() = Some("destination: connection refused".into());
    counters.set_phase(Phase::Failed);
    let progress = api.progress().await;
    assert_eq!(
        progress["state"], "RUNNING",
        "mongosync has no error state; c2c keeps the state"
    );
    assert_eq!(progress["canCommit"], false);
    let warnings = progress["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2);
    let failure = warnings[1].as_str().expect("text");
    assert!(
        failure.contains("fatal error: destination: connection refused"),
        "{failure}"
    );
    assert!(failure.contains("same /start"), "{failure}");
}

#[tokio::test]
async fn reversed_direction_is_mapped_from_the_request() {
    let api = idle().await;
    api.post(
        "/api/v1/start",
        r#"{"source":"cluster1","destination":"cluster0"}"#,
    )
    .await;
    let mapping = &api.progress().await["directionMapping"];
    assert_eq!(mapping["Source"], "cluster1: db1.example.net:27018");
    assert_eq!(
        mapping["Destination"],
        "cluster0: db0.example.net:27017,db0b.example.net:27017"
    );
}
