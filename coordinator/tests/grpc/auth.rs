//! The API token (`--apiToken`): REST and gRPC refuse a missing or wrong token, accept
//! the right one; gRPC health (and `/metrics` unless `--metricsAuth`) need none.

use std::net::SocketAddr;
use std::time::Duration;

use c2c_api::v1::migration_client::MigrationClient;
use c2c_api::v1::ProgressRequest;
use c2c_coordinator::auth::{ApiAuth, Secret};
use c2c_coordinator::ctl::{connect_with_token, CtlError};
use c2c_coordinator::rest_client::RestClient;
use c2c_coordinator::ApiSecurity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::metadata::MetadataValue;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::common::{serve_with, Server};

const TOKEN: &str = "correct-horse-battery-staple";

async fn secured(metrics_auth: bool) -> Server {
    serve_with(ApiSecurity {
        auth: ApiAuth::new(Some(Secret::new(TOKEN)), metrics_auth),
        ..ApiSecurity::default()
    })
    .await
}

/// The raw response head and body of `GET path` with `headers`.
async fn raw_get(address: SocketAddr, path: &str, headers: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn rest_needs_the_right_token() {
    let server = secured(false).await;
    let client = RestClient::new(server.address);
    let (status, body) = client.get("/api/v1/progress").await.expect("answer");
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "Unauthorized");
    assert!(body["errorDescription"]
        .as_str()
        .is_some_and(|text| text.contains("Authorization: Bearer")));
    assert!(!body.to_string().contains(TOKEN));

    let (status, body) = client
        .clone()
        .with_token("wrong")
        .get("/api/v1/progress")
        .await
        .expect("answer");
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("Unauthorized"))
    );
    let (status, _) = client
        .clone()
        .with_authorization(Some(format!("Basic {TOKEN}")))
        .get("/api/v1/progress")
        .await
        .expect("answer");
    assert_eq!(status, 401);
    // A refused call changes nothing.
    let (status, _) = client
        .post(
            "/api/v1/start",
            &serde_json::json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await
        .expect("answer");
    assert_eq!(status, 401);

    let authorized = client.with_token(TOKEN);
    let (status, body) = authorized.get("/api/v1/progress").await.expect("answer");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["progress"]["state"], "IDLE");
    // Unknown paths are refused before routing (nothing about the API leaks).
    let (status, _) = RestClient::new(server.address)
        .get("/api/v1/nothing")
        .await
        .expect("answer");
    assert_eq!(status, 401);

    let head = raw_get(server.address, "/api/v1/progress", "").await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    server.stop_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn metrics_are_exempt_unless_metrics_auth() {
    let server = secured(false).await;
    let open = raw_get(server.address, "/metrics", "").await;
    assert!(open.starts_with("HTTP/1.1 200"), "{open}");
    server.stop_within(Duration::from_secs(10)).await;

    let server = secured(true).await;
    let refused = raw_get(server.address, "/metrics", "").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let with_token = raw_get(
        server.address,
        "/metrics",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
    )
    .await;
    assert!(with_token.starts_with("HTTP/1.1 200"), "{with_token}");
    server.stop_within(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn grpc_needs_the_right_token_but_health_does_not() {
    let server = secured(true).await;
    let mut bare = MigrationClient::new(server.channel().await);
    let status = bare
        .progress(ProgressRequest {})
        .await
        .expect_err("no token: refused");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    let mut request = tonic::Request::new(ProgressRequest {});
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::from_static("Bearer not-the-token"),
    );
    let status = bare.progress(request).await.expect_err("wrong token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    let mut request = tonic::Request::new(ProgressRequest {});
    let header = format!("Bearer {TOKEN}").parse().expect("ascii");
    request.metadata_mut().insert("authorization", header);
    let reply = bare.progress(request).await.expect("right token");
    assert_eq!(reply.into_inner().state, "IDLE");

    // Probes carry no secret.
    let mut health = HealthClient::new(server.channel().await);
    let reply = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health is exempt");
    assert_eq!(reply.into_inner().status, 1, "SERVING");

    // `c2c ctl`'s client sends the token it is given.
    let mut ctl = connect_with_token(&server.address.to_string(), Some(TOKEN))
        .await
        .expect("connect");
    let reply = ctl
        .progress(ProgressRequest {})
        .await
        .expect("with --token");
    assert_eq!(reply.into_inner().state, "IDLE");
    let mut ctl = connect_with_token(&server.address.to_string(), Some("nope"))
        .await
        .expect("connect");
    let status = ctl.progress(ProgressRequest {}).await.expect_err("wrong");
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(matches!(
        connect_with_token(&server.address.to_string(), Some("bad\ntoken")).await,
        Err(CtlError::Usage(_))
    ));
    server.stop_within(Duration::from_secs(10)).await;
}
