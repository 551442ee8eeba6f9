//! Unknown paths and methods answer mongosync's error shape; the OpenAPI document is
//! served and true to the router, the error names and the progress document.

use axum::http::StatusCode;
use c2c_coordinator::api::error::ApiError;
use c2c_coordinator::api::ROUTES;
use c2c_engine::progress::Phase;
use serde_json::Value;

use c2c_coordinator::cli::RunArgs;
use c2c_coordinator::testing::FakeDriver;
use c2c_coordinator::{CoordinatorSettings, RunConfig};

use crate::common::{
    assert_error, assert_success, idle, running, uninitialized_with_settings, MINIMAL_START,
};

#[tokio::test]
async fn unknown_paths_are_404_in_the_error_shape() {
    let api = idle().await;
    assert_error(
        &api.get("/api/v1/status").await,
        StatusCode::NOT_FOUND,
        "NotFound",
        &["/api/v1/status"],
    );
    assert_error(
        &api.post("/api/v2/start", "{}").await,
        StatusCode::NOT_FOUND,
        "NotFound",
        &["/api/v2/start"],
    );
    assert_error(&api.get("/").await, StatusCode::NOT_FOUND, "NotFound", &[]);
}

#[tokio::test]
async fn wrong_methods_are_405_in_the_error_shape() {
    let api = idle().await;
    assert_error(
        &api.get("/api/v1/start").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &["/api/v1/start", "GET", "POST"],
    );
    assert_error(
        &api.post("/api/v1/progress", "{}").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &["POST", "use GET"],
    );
    assert_error(
        &api.request("DELETE", "/api/v1/pause", None, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        &["DELETE"],
    );
}

async fn openapi() -> Value {
    let api = idle().await;
    let (status, document) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    document
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let document = openapi().await;
    assert_eq!(document["openapi"], "3.0.3");
    let paths = document["paths"].as_object().expect("paths");
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |o| o.len()))
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists operations the router does not serve"
    );
}

#[tokio::test]
async fn every_route_in_routes_is_served() {
    let api = idle().await;
    for (method, path) in ROUTES {
        let (status, body) = api
            .request(&method.to_uppercase(), path, Some("{}"), None)
            .await;
        assert_ne!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}: {body}");
    }
}

#[tokio::test]
async fn openapi_lists_every_error_name() {
    let document = openapi().await;
    let names = &document["components"]["schemas"]["ErrorResponse"]["properties"]["error"]["enum"];
    let names: Vec<&str> = names
        .as_array()
        .expect("enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(names, ApiError::NAMES);
    for name in ApiError::NAMES {
        assert!(
            document["info"]["description"]
                .as_str()
                .is_some_and(|d| d.contains(name)),
            "{name} has no HTTP status documented"
        );
    }
}

#[tokio::test]
async fn openapi_progress_schema_matches_the_served_document() {
    let document = openapi().await;
    let schema = &document["components"]["schemas"]["Progress"]["properties"];
    let api = running().await;
    let counters = api.driver.counters();
    counters.set_phase(Phase::SteadyState);
    counters.warnings.lock().push("w".into());
    let progress = api.progress().await;
    for key in progress.as_object().expect("object").keys() {
        assert!(
            schema.get(key).is_some(),
            "/progress field {key} is not in the OpenAPI document"
        );
    }
    // `workers` is served by a scaled-out coordinator only (e2e_scaleout_etcd checks it).
    for key in schema.as_object().expect("properties").keys() {
        if key == "workers" {
            continue;
        }
        assert!(
            progress.get(key).is_some(),
            "the OpenAPI document lists {key}, which /progress does not serve"
        );
    }
    let start = &document["components"]["schemas"]["StartRequest"]["properties"];
    for field in [
        "source",
        "destination",
        "includeNamespaces",
        "excludeNamespaces",
        "buildIndexes",
        "reversible",
        "enableUserWriteBlocking",
        "verification",
        "detectRandomId",
        "preExistingDestinationData",
    ] {
        assert!(
            start.get(field).is_some(),
            "/start field {field} undocumented"
        );
    }
    assert_eq!(start.as_object().map(|o| o.len()), Some(10));
}

#[tokio::test]
async fn passwords_never_reach_responses() {
    let args = RunArgs {
        cluster0: Some("mongodb://alice:topsecret@db0:27017/?replicaSet=rs0".into()),
        cluster1: Some("mongodb://bob:hunter2@db1:27018".into()),
        ..RunArgs::default()
    };
    let settings =
        CoordinatorSettings::from_config(&RunConfig::from_yaml(&args, "").expect("config"));
    let api = uninitialized_with_settings(settings, FakeDriver::new());
    api.coordinator.initialize().await;
    assert_success(&api.post("/api/v1/start", MINIMAL_START).await);
    let (_, body) = api.get("/api/v1/progress").await;
    let text = body.to_string();
    assert!(
        !text.contains("topsecret") && !text.contains("hunter2") && !text.contains("alice"),
        "{text}"
    );
    assert_eq!(
        body["progress"]["directionMapping"]["Source"],
        "cluster0: db0:27017"
    );
    assert_eq!(
        body["progress"]["directionMapping"]["Destination"],
        "cluster1: db1:27018"
    );
}
