//! Helpers: an API over `FakeDriver`, requests through `oneshot`, error-shape checks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use c2c_coordinator::testing::FakeDriver;
use c2c_coordinator::{router, Coordinator, CoordinatorSettings};
use c2c_engine::options::StartRequest;
use c2c_engine::progress::{Phase, Progress};
use serde_json::Value;
use tower::ServiceExt;

pub struct TestApi {
    pub router: Router,
    pub driver: Arc<FakeDriver>,
    pub coordinator: Arc<Coordinator>,
}

pub fn settings() -> CoordinatorSettings {
    CoordinatorSettings {
        id: "coordinator".into(),
        cluster0_hosts: vec![
            "db0.example.net:27017".into(),
            "db0b.example.net:27017".into(),
        ],
        cluster1_hosts: vec!["db1.example.net:27018".into()],
        load_level: None,
        init_retry: Duration::from_millis(5),
        continue_persisted: false,
    }
}

/// An API that has not initialized yet (state INITIALIZING).
pub fn uninitialized(driver: Arc<FakeDriver>) -> TestApi {
    uninitialized_with_settings(settings(), driver)
}

pub fn uninitialized_with_settings(
    settings: CoordinatorSettings,
    driver: Arc<FakeDriver>,
) -> TestApi {
    let coordinator = Coordinator::new(settings, driver.clone());
    TestApi {
        router: router(Arc::clone(&coordinator)),
        driver,
        coordinator,
    }
}

/// An API past initialization (state IDLE).
pub async fn idle_with(driver: Arc<FakeDriver>) -> TestApi {
    let api = uninitialized(driver);
    api.coordinator.initialize().await;
    api
}

pub async fn idle() -> TestApi {
    idle_with(FakeDriver::new()).await
}

/// A started migration (state RUNNING).
pub async fn running() -> TestApi {
    let api = idle().await;
    let (status, body) = api.post("/api/v1/start", MINIMAL_START).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api
}

pub const MINIMAL_START: &str = r#"{"source":"cluster0","destination":"cluster1"}"#;
/// A migration `/reverse` accepts (reversible implies source-and-destination blocking).
pub const REVERSIBLE_START: &str =
    r#"{"source":"cluster0","destination":"cluster1","reversible":true}"#;

/// The canonical request a `/start` body persists.
pub fn request_of(body: &str) -> StartRequest {
    let body = serde_json::from_str(body).expect("json");
    c2c_coordinator::start_options::validate_start(&body, None)
        .expect("valid")
        .request
}

/// Counters of a migration in steady state with `lag` seconds of lag (canCommit true
/// up to 30 s).
pub fn steady_state(counters: &Progress, lag: i64) {
    counters.set_phase(Phase::SteadyState);
    counters.copy_done.store(true, Ordering::Relaxed);
    counters
        .estimated_total_bytes
        .store(1000, Ordering::Relaxed);
    counters.copied_bytes.store(1200, Ordering::Relaxed);
    counters.events_applied.store(42, Ordering::Relaxed);
    counters
        .source_latest_secs
        .store(1_000 + lag, Ordering::Relaxed);
    counters.applied_latest_secs.store(1_000, Ordering::Relaxed);
    counters.applied_crud_secs.store(1_000, Ordering::Relaxed);
    counters.source_ping_ms.store(12, Ordering::Relaxed);
    counters.destination_ping_ms.store(-1, Ordering::Relaxed);
}

/// A RUNNING migration started with `body`, with canCommit true.
pub async fn committable(body: &str) -> TestApi {
    let api = idle().await;
    assert_success(&api.post("/api/v1/start", body).await);
    steady_state(api.driver.counters(), 2);
    api
}

/// A COMMITTED migration started with `body`.
pub async fn committed(body: &str) -> TestApi {
    let api = committable(body).await;
    assert_success(&api.post("/api/v1/commit", "{}").await);
    api.driver.complete_commit();
    assert_eq!(api.progress().await["state"], "COMMITTED");
    api
}

impl TestApi {
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let request = builder
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
        (status, json)
    }

    pub async fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.request("POST", path, Some(body), None).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request("GET", path, None, None).await
    }

    pub async fn progress(&self) -> Value {
        let (status, body) = self.get("/api/v1/progress").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true, "{body}");
        body["progress"].clone()
    }
}

/// Checks mongosync's error shape exactly: three fields, `success` false, the name, and
/// a description containing every fragment.
#[track_caller]
pub fn assert_error(
    response: &(StatusCode, Value),
    status: StatusCode,
    name: &str,
    fragments: &[&str],
) {
    let (actual_status, body) = response;
    assert_eq!(*actual_status, status, "{body}");
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(object.len(), 3, "{body}");
    assert_eq!(object["success"], false, "{body}");
    assert_eq!(object["error"], name, "{body}");
    let description = object["errorDescription"]
        .as_str()
        .unwrap_or_else(|| panic!("no description: {body}"));
    for fragment in fragments {
        assert!(
            description.contains(fragment),
            "{fragment:?} not in {description:?}"
        );
    }
}

#[track_caller]
pub fn assert_success(response: &(StatusCode, Value)) {
    assert_eq!(response.0, StatusCode::OK, "{}", response.1);
    assert_eq!(response.1, serde_json::json!({"success": true}));
}
