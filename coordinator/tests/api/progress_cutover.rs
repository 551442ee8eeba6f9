//! `/progress` documents in COMMITTING, COMMITTED, REVERSING and after a reverse (spec
//! §4): canWrite, info, lag 0 once committed, the swapped directionMapping, and cutover
//! problems in warnings.

use std::sync::atomic::Ordering;

use serde_json::json;

use crate::common::{committable, committed, REVERSIBLE_START};

const SOURCE0: &str = "cluster0: db0.example.net:27017,db0b.example.net:27017";
const DESTINATION1: &str = "cluster1: db1.example.net:27018";

#[tokio::test]
async fn committing_document() {
    let api = committable(REVERSIBLE_START).await;
    api.post("/api/v1/commit", "{}").await;
    assert_eq!(
        api.progress().await,
        json!({
            "state": "COMMITTING",
            "canCommit": false,
            "canWrite": false,
            "info": "waiting for commit to complete",
            "ceaStage": null,
            // Still measured: the time in COMMITTING is roughly this lag.
            "lag": {"overallLagSeconds": 2, "crudLagSeconds": 2, "ddlLagSeconds": null},
            "lagTimeSeconds": 2,
            "totalEventsApplied": 42,
            "collectionCopy": {"estimatedTotalBytes": 1200, "estimatedCopiedBytes": 1200},
            "directionMapping": {"Source": SOURCE0, "Destination": DESTINATION1},
            "mongosyncID": "coordinator",
            "coordinatorID": "coordinator",
            "source": {"pingLatencyMs": 12},
            "destination": {"pingLatencyMs": -1},
            "verification": null
        })
    );
}

#[tokio::test]
async fn committed_document_has_zero_lag_and_can_write() {
    let api = committed(REVERSIBLE_START).await;
    assert_eq!(
        api.progress().await,
        json!({
            "state": "COMMITTED",
            "canCommit": false,
            "canWrite": true,
            "info": "commit completed",
            "ceaStage": null,
            "lag": {"overallLagSeconds": 0, "crudLagSeconds": 0, "ddlLagSeconds": null},
            "lagTimeSeconds": 0,
            "totalEventsApplied": 42,
            "collectionCopy": {"estimatedTotalBytes": 1200, "estimatedCopiedBytes": 1200},
            "directionMapping": {"Source": SOURCE0, "Destination": DESTINATION1},
            "mongosyncID": "coordinator",
            "coordinatorID": "coordinator",
            "source": {"pingLatencyMs": 12},
            "destination": {"pingLatencyMs": -1},
            "verification": null
        })
    );
}

#[tokio::test]
async fn committed_ddl_lag_is_zero_once_ddl_was_applied() {
    let api = committed(REVERSIBLE_START).await;
    api.driver
        .counters()
        .applied_ddl_secs
        .store(990, Ordering::Relaxed);
    assert_eq!(
        api.progress().await["lag"],
        json!({"overallLagSeconds": 0, "crudLagSeconds": 0, "ddlLagSeconds": 0})
    );
}

#[tokio::test]
async fn reversing_then_running_reversed_documents() {
    let api = committed(REVERSIBLE_START).await;
    api.post("/api/v1/reverse", "{}").await;
    let reversing = api.progress().await;
    assert_eq!(reversing["state"], "REVERSING");
    assert_eq!(reversing["canCommit"], false);
    assert_eq!(reversing["ceaStage"], serde_json::Value::Null);
    assert_eq!(reversing["info"], "change event application");
    assert!(reversing["lag"].is_object(), "{reversing}");

    api.driver.complete_reverse();
    let running = api.progress().await;
    assert_eq!(running["state"], "RUNNING");
    assert_eq!(running["canCommit"], true);
    assert_eq!(running["canWrite"], false);
    assert_eq!(running["info"], "change event application");
    assert_eq!(running["ceaStage"], "steady state");
    assert_eq!(
        running["directionMapping"],
        json!({"Source": DESTINATION1, "Destination": SOURCE0})
    );
}

#[tokio::test]
async fn cutover_errors_are_warnings_while_committing() {
    let api = committable(REVERSIBLE_START).await;
    api.post("/api/v1/commit", "{}").await;
    let counters = api.driver.counters();
    counters
        .warnings
        .lock()
        .push("oplog window is small".into());
    counters.cutover_errors.lock().push(
        "unique index shop.orders email_1 cannot be built: duplicate key {email: \"u7@x\"} on _id \"stray\" and \"o7\"".into(),
    );
    let progress = api.progress().await;
    assert_eq!(progress["state"], "COMMITTING");
    assert_eq!(
        progress["warnings"],
        json!([
            "oplog window is small",
            "unique index shop.orders email_1 cannot be built: duplicate key {email: \"u7@x\"} on _id \"stray\" and \"o7\""
        ])
    );
}

#[tokio::test]
async fn a_failed_commit_stays_committing_and_says_a_restart_finishes_it() {
    let api = committable(REVERSIBLE_START).await;
    api.post("/api/v1/commit", "{}").await;
    let counters = api.driver.counters();
    *counters.failure.lock() =
        Some("writes reached the blocked source after the commit point".into());
    counters.set_phase(c2c_engine::progress::Phase::Failed);
    let progress = api.progress().await;
    assert_eq!(progress["state"], "COMMITTING");
    assert_eq!(progress["info"], "waiting for commit to complete");
    let warnings = progress["warnings"].to_string();
    assert!(
        warnings.contains("writes reached the blocked source"),
        "{warnings}"
    );
    assert!(warnings.contains("without a new /start"), "{warnings}");
}
