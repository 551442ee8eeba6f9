//! c2c's gRPC API (package `c2c.v1`, `proto/c2c/v1/migration.proto`): the `Migration`
//! service, `grpc.health.v1` and server reflection (v1 and v1alpha), as an axum router
//! that `server` merges with the REST router so both share one port.
//!
//! The services are mounted with axum's `route_service` rather than tonic's `Routes`:
//! `Routes` installs its own fallback, and axum refuses to merge two routers that both
//! have one (the REST router's fallback answers mongosync-style 404s, and a gRPC status
//! UNIMPLEMENTED to a gRPC request for a service or method not served here). Each service
//! sits behind `require_grpc`, which refuses requests that are not gRPC before tonic
//! decodes them.

pub mod convert;
pub mod migration_service;
pub mod status;

use std::convert::Infallible;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use c2c_api::v1::migration_server::MigrationServer;
use tonic::codegen::http::Request;
use tonic::codegen::Service;
use tonic::server::NamedService;
use tonic::Status;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::ServiceBuilder;

pub use convert::{progress_reply, start_body};
pub use migration_service::{LocalWorker, MigrationService, WorkerDirectory, LOCAL_WORKER_ID};
pub use status::{api_status, error_name, ERROR_METADATA_KEY};

/// Fully-qualified names of the services `grpc_routes` serves (and reflection lists).
pub const MIGRATION_SERVICE: &str = c2c_api::v1::migration_server::SERVICE_NAME;
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";
pub const REFLECTION_V1_SERVICE: &str = "grpc.reflection.v1.ServerReflection";
pub const REFLECTION_V1ALPHA_SERVICE: &str = "grpc.reflection.v1alpha.ServerReflection";

/// The gRPC side of `c2c run`: `Migration` over `migration`, health (the server `""` and
/// `c2c.v1.Migration` SERVING) and reflection. The reporter lets the caller flip health
/// (e.g. NOT_SERVING while stopping, or per role in scale-out mode).
pub async fn grpc_routes(migration: MigrationService) -> (Router, HealthReporter) {
    grpc_routes_with(migration, Router::new(), &[]).await
}

/// `grpc_routes` plus the services already mounted on `extra` (with `add_service`),
/// whose names `extra_services` lists for reflection. Any `Migration` implementation
/// may answer (the scale-out coordinator's answers per role).
pub async fn grpc_routes_with<M: c2c_api::v1::migration_server::Migration>(
    migration: M,
    extra: Router,
    extra_services: &[&str],
) -> (Router, HealthReporter) {
    let mut advertised = vec![MIGRATION_SERVICE];
    advertised.extend_from_slice(extra_services);
    let services = add_service(Router::new(), MigrationServer::new(migration)).merge(extra);
    let (router, health) = with_health_and_reflection(services, &advertised).await;
    health
        .set_service_status(MIGRATION_SERVICE, ServingStatus::Serving)
        .await;
    (router, health)
}

/// Adds `grpc.health.v1` (the server `""` SERVING; each service's status is the
/// caller's to set) and reflection listing `advertised` plus those two to `services`.
pub async fn with_health_and_reflection(
    services: Router,
    advertised: &[&str],
) -> (Router, HealthReporter) {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    let mut advertised = advertised.to_vec();
    advertised.extend_from_slice(&[
        HEALTH_SERVICE,
        REFLECTION_V1_SERVICE,
        REFLECTION_V1ALPHA_SERVICE,
    ]);
    let router = add_service(services, health_service);
    let router = add_service(
        router,
        reflection(&advertised)
            .build_v1()
            .expect("c2c's own descriptor sets decode"),
    );
    let router = add_service(
        router,
        reflection(&advertised)
            .build_v1alpha()
            .expect("c2c's own descriptor sets decode"),
    );
    (router, health)
}

/// Reflection over c2c's and the health service's descriptors, listing only the
/// services this process serves: the descriptor set also holds `c2c.v1.Worker`, which
/// `c2c run` does not serve.
fn reflection<'a>(advertised: &[&str]) -> tonic_reflection::server::Builder<'a> {
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(c2c_api::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        // Both versions describe both, so a v1alpha client can resolve v1 too.
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET);
    advertised
        .iter()
        .fold(builder, |builder, name| builder.with_service_name(*name))
}

/// Mounts a tonic-generated service at `/<package.Service>/*` on `router`, as tonic's
/// own router does, behind `require_grpc`.
pub fn add_service<S>(router: Router, service: S) -> Router
where
    S: Service<Request<axum::body::Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let service = ServiceBuilder::new()
        .layer(middleware::from_fn(require_grpc))
        .service(service);
    router.route_service(&format!("/{}/{{*rest}}", S::NAME), service)
}

/// Whether a `content-type` is gRPC's: `application/grpc`, optionally followed by `+`
/// or `;` and a subtype or parameters (as grpc-go accepts it).
pub fn is_grpc_content_type(content_type: &str) -> bool {
    content_type
        .strip_prefix("application/grpc")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('+') || rest.starts_with(';'))
}

/// gRPC requests are POSTs with a gRPC content type. tonic would decode anything sent to
/// a method's path (a `text/plain` or `GET` request got a `200` with a gRPC frame, which
/// a plain HTTP client takes for success), so other requests are refused first, as
/// grpc-go refuses them: `415` (content type, INVALID_ARGUMENT) or `405` with `Allow:
/// POST` (method, INTERNAL), with the gRPC status in the headers.
async fn require_grpc(request: axum::extract::Request, next: Next) -> Response {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    if request.method() != Method::POST {
        let status = Status::internal(format!(
            "invalid gRPC request method {:?}; gRPC calls are POST",
            request.method().as_str()
        ));
        let mut response = status.into_http::<axum::body::Body>();
        *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if !content_type.as_deref().is_some_and(is_grpc_content_type) {
        let status = Status::invalid_argument(format!(
            "invalid gRPC request content-type {:?}; gRPC calls send application/grpc",
            content_type.unwrap_or_default()
        ));
        let mut response = status.into_http::<axum::body::Body>();
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return response;
    }
    next.run(request).await
}
