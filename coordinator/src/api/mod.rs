//! mongosync's REST API (spec §2–§5) over axum, plus the OpenAPI document.

pub mod body;
pub mod error;
pub mod handlers;
pub mod progress;

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tracing::{info, Instrument};

use crate::coordinator::Coordinator;

/// Every route as (method, path); the OpenAPI test checks the document against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/start"),
    ("get", "/api/v1/progress"),
    ("post", "/api/v1/pause"),
    ("post", "/api/v1/resume"),
    ("post", "/api/v1/commit"),
    ("post", "/api/v1/reverse"),
    ("get", "/api/v1/openapi.json"),
];

pub fn router(coordinator: Arc<Coordinator>) -> Router {
    Router::new()
        .route("/api/v1/start", post(handlers::start))
        .route("/api/v1/progress", get(progress::get_progress))
        .route("/api/v1/pause", post(handlers::pause))
        .route("/api/v1/resume", post(handlers::resume))
        .route("/api/v1/commit", post(handlers::commit))
        .route("/api/v1/reverse", post(handlers::reverse))
        .route("/api/v1/openapi.json", get(handlers::openapi))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::not_found)
        .layer(middleware::from_fn(trace_request))
        .with_state(coordinator)
}

/// One span per API call, so engine logs caused by a call carry its method and path. In
/// traces it is the server span (a `traceparent` header makes it continue the caller's
/// trace), the parent of everything the call does, the commit steps included.
async fn trace_request(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "api",
        otel.kind = "server",
        otel.name = %format_args!("{} {}", request.method(), request.uri().path()),
        otel.status_code = tracing::field::Empty,
        method = %request.method(),
        path = %request.uri().path()
    );
    c2c_api::trace_context::set_parent_from_headers(&span, request.headers());
    async move {
        let response = next.run(request).await;
        if response.status().is_server_error() {
            tracing::Span::current().record("otel.status_code", "ERROR");
        }
        // /progress is polled every few seconds; logging each poll would drown the rest.
        if response.status().is_success() {
            tracing::debug!(status = response.status().as_u16(), "answered");
        } else {
            info!(status = response.status().as_u16(), "answered");
        }
        response
    }
    .instrument(span)
    .await
}
