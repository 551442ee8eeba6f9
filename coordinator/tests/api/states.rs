//! The state machine through the API: allowed and refused calls, initialization,
//! restart with the same or a different `/start`, engine failures.

use std::time::Duration;

use axum::http::StatusCode;
use c2c_coordinator::testing::{DriverCall, DriverMethod, FakeDriver};
use c2c_engine::EngineError;

use crate::common::{
    assert_error, assert_success, idle, idle_with, request_of, running, uninitialized,
    MINIMAL_START,
};

const CONFLICT: StatusCode = StatusCode::CONFLICT;

#[tokio::test]
async fn start_pause_resume_cycle() {
    let api = idle().await;
    assert_success(&api.post("/api/v1/start", MINIMAL_START).await);
    assert_eq!(api.progress().await["state"], "RUNNING");
    assert_success(&api.post("/api/v1/pause", "{}").await);
    assert_eq!(api.progress().await["state"], "PAUSED");
    assert_success(&api.post("/api/v1/resume", "{ }").await);
    assert_eq!(api.progress().await["state"], "RUNNING");
    let calls: Vec<&str> = api
        .driver
        .calls()
        .iter()
        .map(|call| match call {
            DriverCall::PersistedRequest => "persisted",
            DriverCall::Start { .. } => "start",
            DriverCall::Pause => "pause",
            DriverCall::Resume => "resume",
            DriverCall::Commit => "commit",
            DriverCall::Reverse => "reverse",
            DriverCall::PersistedPhase => "phase",
        })
        .collect();
    assert_eq!(calls, ["persisted", "start", "pause", "resume"]);
}

#[tokio::test]
async fn pause_and_resume_accept_an_empty_body_and_no_content_type() {
    let api = running().await;
    assert_success(&api.request("POST", "/api/v1/pause", None, None).await);
    assert_success(
        &api.request(
            "POST",
            "/api/v1/resume",
            Some(""),
            Some("application/x-www-form-urlencoded"),
        )
        .await,
    );
}

#[tokio::test]
async fn parameterless_endpoints_refuse_fields_and_non_objects() {
    let api = running().await;
    assert_error(
        &api.post("/api/v1/pause", r#"{"now":true}"#).await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &["'now'", "/pause"],
    );
    assert_error(
        &api.post("/api/v1/pause", "[]").await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &["JSON object"],
    );
    assert_error(
        &api.post("/api/v1/pause", "{").await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &["not valid JSON"],
    );
    assert_error(
        &api.post("/api/v1/resume", "null").await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &["JSON object", "null"],
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
}

#[tokio::test]
async fn wrong_state_calls_name_the_current_state() {
    let api = idle().await;
    assert_error(
        &api.post("/api/v1/pause", "{}").await,
        CONFLICT,
        "InvalidState",
        &["/pause", "current state is IDLE"],
    );
    assert_error(
        &api.post("/api/v1/resume", "{}").await,
        CONFLICT,
        "InvalidState",
        &["/resume", "current state is IDLE"],
    );

    assert_success(&api.post("/api/v1/start", MINIMAL_START).await);
    assert_error(
        &api.post("/api/v1/start", MINIMAL_START).await,
        CONFLICT,
        "InvalidState",
        &["/start", "current state is RUNNING"],
    );
    assert_error(
        &api.post("/api/v1/resume", "{}").await,
        CONFLICT,
        "InvalidState",
        &["/resume", "current state is RUNNING"],
    );

    assert_success(&api.post("/api/v1/pause", "{}").await);
    assert_error(
        &api.post("/api/v1/pause", "{}").await,
        CONFLICT,
        "InvalidState",
        &["/pause", "current state is PAUSED"],
    );
    assert_error(
        &api.post("/api/v1/start", MINIMAL_START).await,
        CONFLICT,
        "InvalidState",
        &["/start", "current state is PAUSED"],
    );
    assert_eq!(api.progress().await["state"], "PAUSED");
}

#[tokio::test]
async fn initializing_until_the_persisted_request_is_read() {
    let driver = FakeDriver::new();
    let api = uninitialized(driver);
    let progress = api.progress().await;
    assert_eq!(progress["state"], "INITIALIZING");
    assert_eq!(progress["canCommit"], false);
    assert_error(
        &api.post("/api/v1/start", MINIMAL_START).await,
        CONFLICT,
        "InvalidState",
        &["current state is INITIALIZING", "retry"],
    );
    api.coordinator.initialize().await;
    assert_eq!(api.progress().await["state"], "IDLE");
}

#[tokio::test]
async fn initialization_failures_are_retried_and_shown() {
    let driver = FakeDriver::new();
    driver.fail_next(
        DriverMethod::PersistedRequest,
        EngineError::Fatal("destination unreachable".into()),
    );
    driver.fail_next(
        DriverMethod::PersistedRequest,
        EngineError::Fatal("destination unreachable".into()),
    );
    let api = uninitialized(driver);
    let initializer = tokio::spawn({
        let coordinator = api.coordinator.clone();
        async move { coordinator.initialize().await }
    });
    // The first attempt fails at once; the warning is visible before the retry succeeds.
    let mut saw_warning = false;
    for _ in 0..200 {
        let progress = api.progress().await;
        if progress["state"] == "IDLE" {
            break;
        }
        if let Some(warnings) = progress["warnings"].as_array() {
            saw_warning |= warnings.iter().any(|w| {
                w.as_str()
                    .is_some_and(|w| w.contains("destination unreachable"))
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    initializer.await.expect("initializer");
    assert!(
        saw_warning,
        "the initialization problem is reported in /progress"
    );
    let progress = api.progress().await;
    assert_eq!(progress["state"], "IDLE");
    assert!(progress.get("warnings").is_none(), "{progress}");
}

#[tokio::test]
async fn restart_with_the_same_start_continues() {
    let api = idle_with(FakeDriver::with_persisted(request_of(MINIMAL_START))).await;
    assert_eq!(api.progress().await["state"], "IDLE");
    // Same request, spelled differently (explicit defaults) — equal once canonical.
    assert_success(
        &api.post(
            "/api/v1/start",
            r#"{"destination":"cluster1","source":"cluster0","buildIndexes":"afterDataCopy"}"#,
        )
        .await,
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
}

#[tokio::test]
async fn restart_with_a_different_start_is_refused_naming_the_differences() {
    let api = idle_with(FakeDriver::with_persisted(request_of(MINIMAL_START))).await;
    let response = api
        .post(
            "/api/v1/start",
            r#"{"source":"cluster1","destination":"cluster0","detectRandomId":false}"#,
        )
        .await;
    assert_error(
        &response,
        CONFLICT,
        "OptionsMismatch",
        &[
            "source: started with \"cluster0\", now \"cluster1\"",
            "destination",
            "detectRandomId",
        ],
    );
    assert!(!api
        .driver
        .calls()
        .iter()
        .any(|call| matches!(call, DriverCall::Start { .. })));
    assert_eq!(api.progress().await["state"], "IDLE");
}

#[tokio::test]
async fn engine_start_failures_keep_idle_and_map_to_names() {
    let cases = [
        (
            EngineError::Unsupported("time-series collection app.metrics".into()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "Unsupported",
            "app.metrics",
        ),
        (
            EngineError::DestinationNotEmpty("app.users".into()),
            CONFLICT,
            "DestinationNotEmpty",
            "app.users",
        ),
        (
            EngineError::OptionsMismatch("buildIndexes".into()),
            CONFLICT,
            "OptionsMismatch",
            "buildIndexes",
        ),
        (
            EngineError::Metadata("bad checkpoint".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "EngineError",
            "bad checkpoint",
        ),
    ];
    for (error, status, name, fragment) in cases {
        let api = idle().await;
        api.driver.fail_next(DriverMethod::Start, error);
        assert_error(
            &api.post("/api/v1/start", MINIMAL_START).await,
            status,
            name,
            &[fragment],
        );
        assert_eq!(api.progress().await["state"], "IDLE");
        // A later, successful /start works.
        assert_success(&api.post("/api/v1/start", MINIMAL_START).await);
    }
}

#[tokio::test]
async fn engine_pause_and_resume_failures_keep_the_state() {
    let api = running().await;
    api.driver.fail_next(
        DriverMethod::Pause,
        EngineError::Fatal("cannot stop tasks".into()),
    );
    assert_error(
        &api.post("/api/v1/pause", "{}").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "EngineError",
        &["cannot stop tasks"],
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
    assert_success(&api.post("/api/v1/pause", "{}").await);
    api.driver.fail_next(
        DriverMethod::Resume,
        EngineError::Fatal("checkpoint unreadable".into()),
    );
    assert_error(
        &api.post("/api/v1/resume", "{}").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "EngineError",
        &["checkpoint unreadable"],
    );
    assert_eq!(api.progress().await["state"], "PAUSED");
}

#[tokio::test]
async fn concurrent_state_changes_are_refused_while_one_runs() {
    let api = idle().await;
    let gate = api.driver.hold_start();
    let first = tokio::spawn({
        let router = api.router.clone();
        async move {
            let request = axum::http::Request::post("/api/v1/start")
                .body(axum::body::Body::from(MINIMAL_START))
                .expect("request");
            tower::ServiceExt::oneshot(router, request)
                .await
                .expect("infallible")
                .status()
        }
    });
    // Wait until the first /start is inside the driver.
    while !api
        .driver
        .calls()
        .iter()
        .any(|call| matches!(call, DriverCall::Start { .. }))
    {
        tokio::task::yield_now().await;
    }
    assert_error(
        &api.post("/api/v1/start", MINIMAL_START).await,
        CONFLICT,
        "OperationInProgress",
        &["/start"],
    );
    assert_error(
        &api.post("/api/v1/pause", "{}").await,
        CONFLICT,
        "OperationInProgress",
        &["/pause"],
    );
    gate.notify_one();
    assert_eq!(first.await.expect("join"), StatusCode::OK);
    assert_eq!(api.progress().await["state"], "RUNNING");
}

#[tokio::test]
async fn oversized_bodies_are_refused_in_the_error_shape() {
    let api = idle().await;
    let huge = format!(
        r#"{{"source":"cluster0","destination":"cluster1","x":"{}"}}"#,
        "a".repeat(3 << 20)
    );
    assert_error(
        &api.post("/api/v1/start", &huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestTooLarge",
        &["too large"],
    );
}

/// Records what it is told, or refuses while `refuse` is set.
#[derive(Default)]
struct Journal {
    refuse: std::sync::atomic::AtomicBool,
    recorded: parking_lot::Mutex<Vec<bool>>,
}

impl c2c_coordinator::coordinator::PauseJournal for Journal {
    fn record(&self, paused: bool) -> c2c_coordinator::driver::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("etcd: no leader".into());
            }
            self.recorded.lock().push(paused);
            Ok(())
        })
    }
}

#[tokio::test]
async fn pause_and_resume_are_journaled_before_they_apply_and_refused_if_they_cannot_be() {
    let api = running().await;
    let journal = std::sync::Arc::new(Journal::default());
    api.coordinator.set_pause_journal(journal.clone());

    journal
        .refuse
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_error(
        &api.post("/api/v1/pause", "{}").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "LeaderUnavailable",
        &["could not be recorded in etcd", "etcd: no leader"],
    );
    assert_eq!(api.progress().await["state"], "RUNNING");
    assert!(
        !api.driver
            .calls()
            .iter()
            .any(|call| matches!(call, DriverCall::Pause)),
        "the engine was paused although the pause was not recorded"
    );

    journal
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    assert_success(&api.post("/api/v1/pause", "{}").await);
    // An engine that cannot resume: the journal is set back to paused.
    api.driver.fail_next(
        DriverMethod::Resume,
        EngineError::Fatal("checkpoint unreadable".into()),
    );
    let _ = api.post("/api/v1/resume", "{}").await;
    assert_eq!(api.progress().await["state"], "PAUSED");
    assert_success(&api.post("/api/v1/resume", "{}").await);
    assert_eq!(*journal.recorded.lock(), [true, false, true, false]);
}
