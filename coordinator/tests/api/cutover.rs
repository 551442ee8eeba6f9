//! `/commit` and `/reverse` through the API (spec §3.5, §3.6, §5.1): the states they are
//! allowed in, canCommit, the engine's refusals, and the automatic transitions.

use std::sync::atomic::Ordering;

use axum::http::StatusCode;
use c2c_coordinator::testing::{DriverCall, DriverMethod};
use c2c_engine::progress::{Phase, Progress};
use c2c_engine::EngineError;

use crate::common::{
    assert_error, assert_success, committable, committed, idle, running, steady_state, TestApi,
    MINIMAL_START, REVERSIBLE_START,
};

const CONFLICT: StatusCode = StatusCode::CONFLICT;

fn calls_of(api: &TestApi, wanted: fn(&DriverCall) -> bool) -> usize {
    api.driver
        .calls()
        .iter()
        .filter(|call| wanted(call))
        .count()
}

fn commits(api: &TestApi) -> usize {
    calls_of(api, |call| matches!(call, DriverCall::Commit))
}

fn reverses(api: &TestApi) -> usize {
    calls_of(api, |call| matches!(call, DriverCall::Reverse))
}

#[tokio::test]
async fn commit_runs_then_completes_when_the_engine_says_so() {
    let api = committable(MINIMAL_START).await;
    assert_eq!(api.progress().await["canCommit"], true);
    assert_success(&api.post("/api/v1/commit", "{ }").await);
    assert_eq!(commits(&api), 1);

    let progress = api.progress().await;
    assert_eq!(progress["state"], "COMMITTING");
    assert_eq!(progress["canCommit"], false);
    assert_eq!(progress["canWrite"], false);
    assert_eq!(progress["info"], "waiting for commit to complete");

    // The destination is unblocked before the unique conversion ends: canWrite first.
    api.driver
        .counters()
        .can_write
        .store(true, Ordering::Relaxed);
    let progress = api.progress().await;
    assert_eq!(progress["state"], "COMMITTING");
    assert_eq!(progress["canWrite"], true);

    api.driver.complete_commit();
    let progress = api.progress().await;
    assert_eq!(progress["state"], "COMMITTED");
    assert_eq!(progress["info"], "commit completed");
    assert_eq!(progress["canWrite"], true);
    assert_eq!(progress["canCommit"], false);
}

#[tokio::test]
async fn commit_in_any_other_state_is_invalid_state() {
    let api = idle().await;
    assert_error(
        &api.post("/api/v1/commit", "{}").await,
        CONFLICT,
        "InvalidState",
        &["/commit", "current state is IDLE", "send /start first"],
    );
    let api = running().await;
    assert_success(&api.post("/api/v1/pause", "{}").await);
    assert_error(
        &api.post("/api/v1/commit", "{}").await,
        CONFLICT,
        "InvalidState",
        &["current state is PAUSED", "/resume"],
    );
    let api = committed(REVERSIBLE_START).await;
    assert_error(
        &api.post("/api/v1/commit", "{}").await,
        CONFLICT,
        "InvalidState",
        &["current state is COMMITTED", "/reverse"],
    );
    assert_success(&api.post("/api/v1/reverse", "{}").await);
    assert_error(
        &api.post("/api/v1/commit", "{}").await,
        CONFLICT,
        "InvalidState",
        &["current state is REVERSING"],
    );
    assert_eq!(commits(&api), 1, "refused calls never reach the engine");
}

#[tokio::test]
async fn double_commit_and_double_reverse_are_invalid_state() {
    let api = committable(REVERSIBLE_START).await;
    assert_success(&api.post("/api/v1/commit", "{}").await);
    assert_error(
        &api.post("/api/v1/commit", "{}").await,
        CONFLICT,
        "InvalidState",
        &["current state is COMMITTING", "already in progress"],
    );
    api.driver.complete_commit();
    assert_success(&api.post("/api/v1/reverse", "{}").await);
    assert_error(
        &api.post("/api/v1/reverse", "{}").await,
        CONFLICT,
        "InvalidState",
        &["current state is REVERSING", "already in progress"],
    );
    assert_eq!((commits(&api), reverses(&api)), (1, 1));
    assert_eq!(api.progress().await["state"], "REVERSING");
}

/// Puts the fake engine's counters in one situation.
type Shape = fn(&Progress);

#[tokio::test]
async fn commit_while_can_commit_is_false_names_why() {
    let api = running().await;
    let counters = api.driver.counters();
    let cases: [(Shape, &str); 4] = [
        (|_| {}, "collection copy is not done"),
        (
            |c| {
                steady_state(c, 0);
                c.set_phase(Phase::CopyDrain);
            },
            "collection copy drain",
        ),
        (|c| steady_state(c, 31), "the lag is 31 s"),
        (
            |c| {
                steady_state(c, 0);
                *c.failure.lock() = Some("disk full".into());
            },
            "disk full",
        ),
    ];
    for (shape, reason) in cases {
        shape(counters);
        assert_eq!(api.progress().await["canCommit"], false, "{reason}");
        assert_error(
            &api.post("/api/v1/commit", "{}").await,
            CONFLICT,
            "CommitNotAllowed",
            &["canCommit is false: ", reason],
        );
        assert_eq!(api.progress().await["state"], "RUNNING");
    }
    assert_eq!(commits(&api), 0);
}

#[tokio::test]
async fn engine_refusals_and_failures_of_commit_keep_running() {
    let api = committable(MINIMAL_START).await;
    api.driver.fail_next(
        DriverMethod::Commit,
        EngineError::Refused("c2c's user lacks bypassWriteBlockingMode on the source".into()),
    );
    assert_error(
        &api.post("/api/v1/commit", "{}").await,
        CONFLICT,
        "CommitNotAllowed",
        &["bypassWriteBlockingMode"],
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
    api.driver.fail_next(
        DriverMethod::Commit,
        EngineError::Fatal("cannot block the source".into()),
    );
    assert_error(
        &api.post("/api/v1/commit", "{}").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "EngineError",
        &["cannot block the source"],
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
    assert_success(&api.post("/api/v1/commit", "{}").await);
    assert_eq!(api.progress().await["state"], "COMMITTING");
}

#[tokio::test]
async fn reverse_outside_committed_is_invalid_state() {
    let api = idle().await;
    assert_error(
        &api.post("/api/v1/reverse", "{}").await,
        CONFLICT,
        "InvalidState",
        &["/reverse", "current state is IDLE"],
    );
    let api = committable(REVERSIBLE_START).await;
    assert_error(
        &api.post("/api/v1/reverse", "{}").await,
        CONFLICT,
        "InvalidState",
        &["current state is RUNNING", "send /commit"],
    );
    assert_success(&api.post("/api/v1/commit", "{}").await);
    assert_error(
        &api.post("/api/v1/reverse", "{}").await,
        CONFLICT,
        "InvalidState",
        &[
            "current state is COMMITTING",
            "wait until the commit completes",
        ],
    );
    assert_eq!(reverses(&api), 0);
}

#[tokio::test]
async fn reverse_of_a_migration_started_without_reversible_is_refused() {
    let api = committed(MINIMAL_START).await;
    assert_error(
        &api.post("/api/v1/reverse", "{}").await,
        CONFLICT,
        "ReverseNotAllowed",
        &["'reversible': true", "started without it"],
    );
    assert_eq!(reverses(&api), 0, "the engine is not asked");
    assert_eq!(api.progress().await["state"], "COMMITTED");
}

#[tokio::test]
async fn engine_refusals_of_reverse_keep_committed() {
    let api = committed(REVERSIBLE_START).await;
    api.driver.fail_next(
        DriverMethod::Reverse,
        EngineError::Refused(
            "the destination's oplog no longer holds the point where canWrite became true".into(),
        ),
    );
    assert_error(
        &api.post("/api/v1/reverse", "{}").await,
        CONFLICT,
        "ReverseNotAllowed",
        &["oplog no longer holds"],
    );
    assert_eq!(api.progress().await["state"], "COMMITTED");
    assert_success(&api.post("/api/v1/reverse", "{}").await);
    assert_eq!(api.progress().await["state"], "REVERSING");
}

#[tokio::test]
async fn reverse_runs_the_other_way_and_cutover_repeats() {
    let api = committed(REVERSIBLE_START).await;
    assert_success(&api.request("POST", "/api/v1/reverse", None, None).await);
    let progress = api.progress().await;
    assert_eq!(progress["state"], "REVERSING");
    assert_eq!(progress["canCommit"], false);
    assert_eq!(progress["info"], "change event application");

    api.driver.complete_reverse();
    let progress = api.progress().await;
    assert_eq!(progress["state"], "RUNNING");
    assert_eq!(
        progress["canWrite"], false,
        "the new destination is blocked"
    );
    assert_eq!(
        progress["directionMapping"]["Source"],
        "cluster1: db1.example.net:27018"
    );
    assert_eq!(
        progress["directionMapping"]["Destination"],
        "cluster0: db0.example.net:27017,db0b.example.net:27017"
    );
    assert_eq!(progress["canCommit"], true);

    // Commit and reverse again: back to the original direction.
    assert_success(&api.post("/api/v1/commit", "{}").await);
    api.driver.complete_commit();
    assert_eq!(api.progress().await["state"], "COMMITTED");
    assert_success(&api.post("/api/v1/reverse", "{}").await);
    api.driver.complete_reverse();
    let progress = api.progress().await;
    assert_eq!(progress["state"], "RUNNING");
    assert_eq!(
        progress["directionMapping"]["Source"],
        "cluster0: db0.example.net:27017,db0b.example.net:27017"
    );
    assert_eq!((commits(&api), reverses(&api)), (2, 2));
}

#[tokio::test]
async fn the_committed_state_is_reached_without_polling_progress() {
    // /reverse is checked against the engine's phase, not the last /progress answer.
    let api = committable(REVERSIBLE_START).await;
    assert_success(&api.post("/api/v1/commit", "{}").await);
    api.driver.complete_commit();
    assert_success(&api.post("/api/v1/reverse", "{}").await);
}

#[tokio::test]
async fn engine_refusals_elsewhere_are_refused() {
    let api = idle().await;
    api.driver.fail_next(
        DriverMethod::Start,
        EngineError::Refused(
            "c2c's user on cluster1 lacks the bypassWriteBlockingMode privilege".into(),
        ),
    );
    assert_error(
        &api.post("/api/v1/start", MINIMAL_START).await,
        CONFLICT,
        "Refused",
        &["bypassWriteBlockingMode"],
    );
    assert_eq!(api.progress().await["state"], "IDLE");
    assert_success(&api.post("/api/v1/start", MINIMAL_START).await);
    api.driver
        .fail_next(DriverMethod::Pause, EngineError::Refused("not now".into()));
    assert_error(
        &api.post("/api/v1/pause", "{}").await,
        CONFLICT,
        "Refused",
        &["not now"],
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
}

#[tokio::test]
async fn commit_and_reverse_take_no_parameters() {
    let api = committable(REVERSIBLE_START).await;
    assert_error(
        &api.post("/api/v1/commit", r#"{"force":true}"#).await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &["'force'", "/commit"],
    );
    assert_error(
        &api.post("/api/v1/reverse", "[]").await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &["JSON object"],
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
}
