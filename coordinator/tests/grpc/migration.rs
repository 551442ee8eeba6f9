//! `c2c.v1.Migration`: the REST API's calls, validation and errors over gRPC.

use std::time::Duration;

use c2c_api::v1::{
    NamespaceFilter, PauseRequest, ProgressRequest, ResumeRequest, StartRequest,
    WatchProgressRequest,
};
use c2c_coordinator::grpc::start_body;
use c2c_coordinator::start_options::validate_start;
use c2c_coordinator::testing::{DriverCall, DriverMethod};
use c2c_engine::EngineError;
use serde_json::json;
use tonic::Code;

use crate::common::{refusal, serve};

fn minimal() -> StartRequest {
    StartRequest {
        source: "cluster0".into(),
        destination: "cluster1".into(),
        ..StartRequest::default()
    }
}

#[tokio::test]
async fn progress_on_idle_is_mongosyncs_idle_document() {
    let server = serve().await;
    let reply = server
        .client()
        .await
        .progress(ProgressRequest {})
        .await
        .expect("progress")
        .into_inner();
    assert_eq!(reply.state, "IDLE");
    assert!(!reply.can_commit);
    assert_eq!(reply.can_write, None);
    assert_eq!(reply.lag, None);
    assert_eq!(reply.estimated_total_bytes, None);
    assert!(reply.workers.is_empty());
}

#[tokio::test]
async fn bad_starts_are_invalid_argument_named_and_start_nothing() {
    let server = serve().await;
    let mut client = server.client().await;
    let same_cluster = StartRequest {
        destination: "cluster0".into(),
        ..minimal()
    };
    let (code, name, message) = refusal(client.start(same_cluster).await);
    assert_eq!(
        (code, name.as_str()),
        (Code::InvalidArgument, "InvalidRequest")
    );
    assert!(message.contains("different clusters"), "{message}");

    let missing = StartRequest::default();
    let (code, name, message) = refusal(client.start(missing).await);
    assert_eq!(
        (code, name.as_str()),
        (Code::InvalidArgument, "InvalidRequest")
    );
    assert!(message.contains("'source' is required"), "{message}");

    let bad_filter = StartRequest {
        include_namespaces: vec![NamespaceFilter {
            database: "sales".into(),
            collections_regex_pattern: Some("(".into()),
            ..NamespaceFilter::default()
        }],
        ..minimal()
    };
    let (code, name, _) = refusal(client.start(bad_filter).await);
    assert_eq!(
        (code, name.as_str()),
        (Code::InvalidArgument, "InvalidNamespaceFilter")
    );

    assert!(!server
        .driver
        .calls()
        .iter()
        .any(|call| matches!(call, DriverCall::Start { .. })));
    let reply = client.progress(ProgressRequest {}).await.unwrap();
    assert_eq!(reply.into_inner().state, "IDLE");
}

/// Every field is converted to the JSON `/start` body, so both APIs persist the same
/// request for the same options.
#[tokio::test]
async fn start_runs_with_the_request_rest_would_persist() {
    let server = serve().await;
    let request = StartRequest {
        include_namespaces: vec![
            NamespaceFilter {
                database: "sales".into(),
                collections: vec!["orders".into()],
                ..NamespaceFilter::default()
            },
            NamespaceFilter {
                database_regex_pattern: Some("^mkt".into()),
                database_regex_options: Some("i".into()),
                collections_regex_pattern: Some("^a".into()),
                ..NamespaceFilter::default()
            },
        ],
        exclude_namespaces: vec![NamespaceFilter {
            database: "sales".into(),
            collections: vec!["secret".into()],
            ..NamespaceFilter::default()
        }],
        build_indexes: Some("beforeDataCopy".into()),
        enable_user_write_blocking: Some("none".into()),
        verification_enabled: Some(false),
        detect_random_id: Some(false),
        pre_existing_destination_data: Some(true),
        ..minimal()
    };
    let rest_body = json!({
        "source": "cluster0", "destination": "cluster1",
        "includeNamespaces": [
            {"database": "sales", "collections": ["orders"]},
            {"databaseRegex": {"pattern": "^mkt", "options": "i"}, "collectionsRegex": {"pattern": "^a"}}
        ],
        "excludeNamespaces": [{"database": "sales", "collections": ["secret"]}],
        "buildIndexes": "beforeDataCopy", "enableUserWriteBlocking": "none",
        "verification": {"enabled": false}, "detectRandomId": false,
        "preExistingDestinationData": true
    });
    assert_eq!(json!(start_body(&request)), rest_body);

    let mut client = server.client().await;
    client.start(request).await.expect("start");
    let reply = client
        .progress(ProgressRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.state, "RUNNING");
    assert_eq!(reply.mongosync_id, "coordinator");
    assert_eq!(
        reply.direction_source.as_deref(),
        Some("cluster0: db0.example.net:27017")
    );
    let started = server
        .driver
        .calls()
        .into_iter()
        .find_map(|call| match call {
            DriverCall::Start { request, .. } => Some(request),
            _ => None,
        })
        .expect("driver started");
    let expected = validate_start(rest_body.as_object().unwrap(), None).expect("valid");
    assert_eq!(started, expected.request);
}

#[tokio::test]
async fn wrong_state_calls_are_failed_precondition() {
    let server = serve().await;
    let mut client = server.client().await;
    let (code, name, message) = refusal(client.pause(PauseRequest {}).await);
    assert_eq!(
        (code, name.as_str()),
        (Code::FailedPrecondition, "InvalidState")
    );
    assert!(message.contains("IDLE"), "{message}");

    client.start(minimal()).await.expect("start");
    client.pause(PauseRequest {}).await.expect("pause");
    assert_eq!(server.coordinator.state().as_str(), "PAUSED");
    client.resume(ResumeRequest {}).await.expect("resume");
    let (code, name, _) = refusal(client.start(minimal()).await);
    assert_eq!(
        (code, name.as_str()),
        (Code::FailedPrecondition, "InvalidState")
    );
}

#[tokio::test]
async fn engine_errors_map_to_unimplemented_and_internal() {
    let server = serve().await;
    let mut client = server.client().await;
    server.driver.fail_next(
        DriverMethod::Start,
        EngineError::Unsupported("sales.metrics is a time-series collection".into()),
    );
    let (code, name, message) = refusal(client.start(minimal()).await);
    assert_eq!((code, name.as_str()), (Code::Unimplemented, "Unsupported"));
    assert!(message.contains("sales.metrics"), "{message}");

    server.driver.fail_next(
        DriverMethod::Start,
        EngineError::Fatal("disk on fire".into()),
    );
    let (code, name, _) = refusal(client.start(minimal()).await);
    assert_eq!((code, name.as_str()), (Code::Internal, "EngineError"));
}

/// The stream sends at once, then every interval (raised to 100 ms), and a stopping
/// server ends it instead of waiting for the client.
#[tokio::test]
async fn watch_progress_streams_until_the_server_stops() {
    let server = serve().await;
    let mut client = server.client().await;
    let mut stream = client
        .watch_progress(WatchProgressRequest { interval_ms: 1 })
        .await
        .expect("watch")
        .into_inner();
    let started = tokio::time::Instant::now();
    for _ in 0..3 {
        let reply = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("a message in time")
            .expect("ok")
            .expect("open");
        assert_eq!(reply.state, "IDLE");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "the interval is at least 100 ms: {:?}",
        started.elapsed()
    );
    server.stop_within(Duration::from_secs(4)).await;
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .expect("the stream ends when the server stops");
    // A clean end of stream, or the connection closing under it: never a hang.
    let _ = end;
}
