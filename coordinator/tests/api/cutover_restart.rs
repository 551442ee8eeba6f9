//! A process restarted in the middle of cutover continues on its own (issue: "a restart
//! with the same options finishes the step"): no `/start`, the persisted request and
//! options, then the automatic transition as usual.

use c2c_coordinator::testing::{DriverCall, DriverMethod, FakeDriver};
use c2c_engine::metadata::PersistedPhase;
use c2c_engine::EngineError;

use crate::common::{
    assert_error, assert_success, idle_with, request_of, steady_state, uninitialized, TestApi,
    MINIMAL_START, REVERSIBLE_START,
};

async fn restarted_in(body: &str, step: PersistedPhase) -> TestApi {
    idle_with(FakeDriver::with_persisted_phase(request_of(body), step)).await
}

fn starts(api: &TestApi) -> Vec<DriverCall> {
    api.driver
        .calls()
        .into_iter()
        .filter(|call| matches!(call, DriverCall::Start { .. }))
        .collect()
}

#[tokio::test]
async fn a_commit_in_flight_continues_without_start_and_completes() {
    let api = restarted_in(REVERSIBLE_START, PersistedPhase::Committing).await;
    let progress = api.progress().await;
    assert_eq!(progress["state"], "COMMITTING");
    assert_eq!(progress["info"], "waiting for commit to complete");
    let starts = starts(&api);
    assert_eq!(
        starts.len(),
        1,
        "the engine was started with the persisted request"
    );
    let DriverCall::Start { request, options } = &starts[0] else {
        unreachable!("filtered")
    };
    assert_eq!(*request, request_of(REVERSIBLE_START));
    assert!(options.reversible, "options rebuilt from the request");
    assert_error(
        &api.post("/api/v1/start", REVERSIBLE_START).await,
        axum::http::StatusCode::CONFLICT,
        "InvalidState",
        &["current state is COMMITTING"],
    );
    api.driver.complete_commit();
    assert_eq!(api.progress().await["state"], "COMMITTED");
}

#[tokio::test]
async fn a_finished_commit_is_committed_again_and_can_be_reversed() {
    let api = restarted_in(REVERSIBLE_START, PersistedPhase::Committed).await;
    let progress = api.progress().await;
    assert_eq!(progress["state"], "COMMITTED");
    assert_eq!(progress["canWrite"], true);
    assert_eq!(progress["info"], "commit completed");
    assert_eq!(
        starts(&api).len(),
        1,
        "the engine holds the migration again"
    );
    assert_success(&api.post("/api/v1/reverse", "{}").await);
    assert_eq!(api.progress().await["state"], "REVERSING");
}

#[tokio::test]
async fn a_reverse_in_flight_continues_and_ends_running() {
    let api = restarted_in(REVERSIBLE_START, PersistedPhase::Reversing).await;
    assert_eq!(api.progress().await["state"], "REVERSING");
    steady_state(api.driver.counters(), 0);
    api.driver.complete_reverse();
    let progress = api.progress().await;
    assert_eq!(progress["state"], "RUNNING");
    assert_eq!(
        progress["directionMapping"]["Source"],
        "cluster1: db1.example.net:27018"
    );
}

#[tokio::test]
async fn other_persisted_steps_wait_for_the_same_start() {
    for step in [
        PersistedPhase::Planning,
        PersistedPhase::Copying,
        PersistedPhase::Applying,
    ] {
        let api = idle_with(FakeDriver::with_persisted_phase(
            request_of(MINIMAL_START),
            step,
        ))
        .await;
        assert_eq!(api.progress().await["state"], "IDLE", "{step:?}");
        assert!(starts(&api).is_empty(), "{step:?}");
        assert_success(&api.post("/api/v1/start", MINIMAL_START).await);
    }
}

#[tokio::test]
async fn a_failing_continuation_is_retried_and_shown() {
    let driver =
        FakeDriver::with_persisted_phase(request_of(MINIMAL_START), PersistedPhase::Committing);
    driver.fail_next(
        DriverMethod::Start,
        EngineError::Fatal("source unreachable".into()),
    );
    let api = uninitialized(driver);
    let initializer = tokio::spawn({
        let coordinator = api.coordinator.clone();
        async move { coordinator.initialize().await }
    });
    let mut saw_warning = false;
    for _ in 0..200 {
        let progress = api.progress().await;
        if progress["state"] != "INITIALIZING" {
            break;
        }
        saw_warning |= progress["warnings"]
            .to_string()
            .contains("source unreachable");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    initializer.await.expect("initializer");
    assert!(
        saw_warning,
        "the failure is reported in /progress while retried"
    );
    assert_eq!(api.progress().await["state"], "COMMITTING");
    assert_eq!(starts(&api).len(), 2);
}
