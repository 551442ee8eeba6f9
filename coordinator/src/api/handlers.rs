//! The state-changing endpoints. Each answers mongosync's basic response
//! `{"success":true}` or an `ApiError`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::body::{json_object, no_parameters, unreadable};
use super::error::ApiError;
use crate::coordinator::Coordinator;
use crate::grpc::is_grpc_content_type;
use crate::start_options::validate_start;

type Body = Result<Bytes, BytesRejection>;

fn success() -> Json<Value> {
    Json(json!({ "success": true }))
}

pub async fn start(
    AxumState(coordinator): AxumState<Arc<Coordinator>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let body = json_object(&body.map_err(unreadable)?, false)?;
    let start = validate_start(&body, coordinator.settings().load_level)?;
    coordinator.start(start).await?;
    Ok(success())
}

pub async fn pause(
    AxumState(coordinator): AxumState<Arc<Coordinator>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    no_parameters(&body.map_err(unreadable)?, "/pause")?;
    coordinator.pause().await?;
    Ok(success())
}

pub async fn resume(
    AxumState(coordinator): AxumState<Arc<Coordinator>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    no_parameters(&body.map_err(unreadable)?, "/resume")?;
    coordinator.resume().await?;
    Ok(success())
}

/// `/commit`: accepted means COMMITTING; `/progress` shows canWrite, then COMMITTED.
pub async fn commit(
    AxumState(coordinator): AxumState<Arc<Coordinator>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    no_parameters(&body.map_err(unreadable)?, "/commit")?;
    coordinator.commit().await?;
    Ok(success())
}

/// `/reverse`: accepted means REVERSING; RUNNING in the other direction follows.
pub async fn reverse(
    AxumState(coordinator): AxumState<Arc<Coordinator>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    no_parameters(&body.map_err(unreadable)?, "/reverse")?;
    coordinator.reverse().await?;
    Ok(success())
}

/// The hand-written OpenAPI 3.0 document; a test keeps it true to the router.
pub const OPENAPI_DOCUMENT: &str = include_str!("openapi.json");

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_DOCUMENT,
    )
}

/// An unknown path: mongosync's 404, or for a gRPC request (a service or method this
/// process does not serve) gRPC's UNIMPLEMENTED, as tonic answers an unknown method.
pub async fn not_found(uri: axum::http::Uri, headers: HeaderMap) -> Response {
    if is_grpc_request(&headers) {
        return grpc_unimplemented(&uri);
    }
    ApiError::NotFound(format!("no endpoint {}; the API serves /api/v1/{{start,progress,pause,resume,commit,reverse,openapi.json}}", uri.path())).into_response()
}

fn is_grpc_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_grpc_content_type)
}

/// A gRPC client gets a gRPC status rather than a JSON body it cannot read (it would
/// report an HTTP 405 as UNKNOWN).
fn grpc_unimplemented(uri: &axum::http::Uri) -> Response {
    tonic::Status::unimplemented(format!("unknown gRPC method {}", uri.path())).into_http()
}

pub async fn method_not_allowed(
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if is_grpc_request(&headers) {
        return grpc_unimplemented(&uri);
    }
    let expected = match uri.path() {
        "/api/v1/progress" | "/api/v1/openapi.json" => "GET",
        _ => "POST",
    };
    ApiError::MethodNotAllowed(format!(
        "{} does not accept {method}; use {expected}",
        uri.path()
    ))
    .into_response()
}
