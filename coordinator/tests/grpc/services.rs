//! What else shares the port: health, reflection, ListWorkers, and REST itself.

use c2c_api::v1::{ListWorkersRequest, ProgressRequest, StartRequest};
use c2c_coordinator::rest_client::RestClient;
use serde_json::json;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1alpha;

use crate::common::serve;

#[tokio::test]
async fn health_reports_the_server_and_migration_serving() {
    let server = serve().await;
    let mut health = HealthClient::new(server.channel().await);
    for service in ["", "c2c.v1.Migration"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|status| panic!("check {service:?}: {status:?}"))
            .into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "c2c.v1.Nope".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_what_is_served_in_v1_and_v1alpha() {
    let server = serve().await;
    let mut v1 = ServerReflectionClient::new(server.channel().await);
    let request = |message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    };
    let mut replies = v1
        .server_reflection_info(futures::stream::iter([
            request(MessageRequest::ListServices(String::new())),
            request(MessageRequest::FileContainingSymbol(
                "c2c.v1.Migration".into(),
            )),
        ]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("not a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "c2c.v1.Migration",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    // Defined in the same proto package but served only by scale-out workers.
    assert!(!names.iter().any(|n| n == "c2c.v1.Worker"), "{names:?}");
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        replies.message().await.unwrap().unwrap().message_response
    else {
        panic!("no descriptor for c2c.v1.Migration");
    };
    assert!(!files.file_descriptor_proto.is_empty());

    let mut alpha =
        v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let mut replies = alpha
        .server_reflection_info(futures::stream::iter([v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        }]))
        .await
        .expect("v1alpha reflection")
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    assert!(
        format!("{reply:?}").contains("c2c.v1.Migration"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn list_workers_reports_the_in_process_worker() {
    let server = serve().await;
    let reply = server
        .client()
        .await
        .list_workers(ListWorkersRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(reply.workers.len(), 1);
    assert_eq!(reply.workers[0].worker_id, "local");
    assert_eq!(reply.workers[0].status, "live");
}

/// HTTP/1.1 REST and HTTP/2 gRPC on one port, over one coordinator.
#[tokio::test]
async fn rest_answers_on_the_same_port() {
    let server = serve().await;
    let rest = RestClient::new(server.address);
    let (status, body) = rest.get("/api/v1/progress").await.expect("rest");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["progress"]["state"], "IDLE");

    let mut client = server.client().await;
    client
        .start(StartRequest {
            source: "cluster0".into(),
            destination: "cluster1".into(),
            ..StartRequest::default()
        })
        .await
        .expect("start");
    let (_, body) = rest.get("/api/v1/progress").await.expect("rest");
    assert_eq!(body["progress"]["state"], "RUNNING");

    let (status, body) = rest.post("/api/v1/pause", &json!({})).await.expect("rest");
    assert_eq!((status, body), (200, json!({"success": true})));
    let reply = client
        .progress(ProgressRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.state, "PAUSED");

    let (status, body) = rest.get("/api/v1/nope").await.expect("rest");
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "NotFound");
}

/// One request with the given method, path and content type on a gRPC channel, with an
/// empty gRPC message as its body: (HTTP status, grpc-status).
async fn raw_call(
    server: &crate::common::Server,
    method: &str,
    path: &str,
    content_type: &str,
) -> (u16, String) {
    use tonic::codegen::http;
    use tower::{Service, ServiceExt};
    let mut channel = server.channel().await;
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", server.address))
        .header("content-type", content_type)
        .header("te", "trailers")
        // An empty message: no compression, length 0.
        .body(tonic::body::Body::new(String::from("\0\0\0\0\0")))
        .expect("request");
    let response = channel
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("response");
    let grpc_status = response
        .headers()
        .get("grpc-status")
        .map(|value| value.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    (response.status().as_u16(), grpc_status)
}

/// tonic decodes whatever reaches a method's path; requests that are not gRPC are refused
/// before, as grpc-go refuses them, and unknown methods and services (or a REST path)
/// get UNIMPLEMENTED rather than a JSON 404/405 a gRPC client cannot read.
#[tokio::test]
async fn non_grpc_requests_and_unknown_methods_are_refused() {
    let server = serve().await;
    let progress = "/c2c.v1.Migration/Progress";
    assert_eq!(
        raw_call(&server, "POST", progress, "application/grpc").await,
        (200, String::new()),
        "a well-formed call answers OK in the trailers"
    );
    assert_eq!(
        raw_call(&server, "POST", progress, "application/grpc+proto").await,
        (200, String::new())
    );
    for content_type in ["text/plain", "application/json", "application/grpcx"] {
        assert_eq!(
            raw_call(&server, "POST", progress, content_type).await,
            (415, "3".to_string()),
            "{content_type}"
        );
    }
    assert_eq!(
        raw_call(&server, "GET", progress, "application/grpc").await,
        (405, "13".to_string())
    );
    for path in [
        "/c2c.v1.Migration/Nope",
        "/c2c.v1.Nope/Start",
        "/nope",
        "/api/v1/progress",
    ] {
        assert_eq!(
            raw_call(&server, "POST", path, "application/grpc").await,
            (200, "12".to_string()),
            "{path}"
        );
    }
    // REST keeps its answers for REST clients.
    let rest = RestClient::new(server.address);
    let (status, body) = rest
        .post("/api/v1/progress", &json!({}))
        .await
        .expect("rest");
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["error"], "MethodNotAllowed");
}
