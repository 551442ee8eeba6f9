//! Traces across processes: an OTLP collector in this test (`common::otlp`: the
//! `opentelemetry-proto` TraceService over tonic) receives the spans of a scaled-out
//! deployment (real etcd, a `c2c coordinator` and two `c2c worker` processes exporting
//! to it through the standard `OTEL_*` variables). A `/commit` sent with a W3C
//! `traceparent` is one trace: the coordinator's API span continues the caller's, and
//! the workers' `Commit` server spans hang below the leader's client spans of that call.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::load_databases;
use common::otlp::{Collector, Received};
use common::processes::Deployment;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONVERGE: Duration = Duration::from_secs(180);
/// The children export every 200 ms; the collector gets a commit's spans well within.
const EXPORTED: Duration = Duration::from_secs(30);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// `POST /api/v1/commit` with a `traceparent` header (the REST client sends none).
async fn post_commit(address: SocketAddr, traceparent: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!(
        "POST /api/v1/commit HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 2\r\ntraceparent: {traceparent}\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response)
}

/// The names of `span` and its ancestors in `trace`, nearest first, up to the first
/// span whose parent is not in the trace; that parent's id is returned too.
fn ancestry(trace: &[Received], span: &Received) -> (Vec<String>, Vec<u8>) {
    let by_id: BTreeMap<&[u8], &Received> = trace
        .iter()
        .map(|span| (span.span_id.as_slice(), span))
        .collect();
    let mut names = vec![format!("{} [{}]", span.name, span.instance)];
    let mut current = span;
    while let Some(parent) = by_id.get(current.parent_span_id.as_slice()) {
        names.push(format!("{} [{}]", parent.name, parent.instance));
        current = parent;
        assert!(names.len() < 100, "a parent cycle: {names:?}");
    }
    (names, current.parent_span_id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_commit_is_one_trace_across_the_coordinator_and_its_workers() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
            format!("http://{endpoint}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "200".to_string()),
        // The test names the processes by their resource; the caller's own settings
        // must not change what is exported.
        ("OTEL_SERVICE_NAME".to_string(), "c2c".to_string()),
        (
            "OTEL_TRACES_SAMPLER".to_string(),
            "parentbased_always_on".to_string(),
        ),
    ];
    let mut d = Deployment::start_with_env(1, 2, 64 * 1024, env).await;
    load_databases(&d.source.client, 400, 200).await;
    let leader = d.serving_leader(None, Duration::from_secs(30)).await;
    let (status, body) = d
        .post(
            &leader,
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    assert_eq!(status, 200, "/start: {body}");
    d.wait_for(
        &leader,
        |p| {
            p["canCommit"] == json!(true)
                && p["workers"]
                    .as_array()
                    .is_some_and(|w| w.len() == 2 && w.iter().all(|w| w["status"] == "live"))
        },
        CONVERGE,
    )
    .await;

    // The caller's trace: the coordinator's API span must continue it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let trace_hex = format!("{:032x}", nanos | (1 << 127));
    let caller_span_hex = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_hex}-{caller_span_hex}-01");
    let address = d.coordinator(&leader).address();
    let (status, response) = post_commit(address, &traceparent).await;
    assert_eq!(status, 200, "/commit: {response}");
    d.wait_for(&leader, |p| p["state"] == "COMMITTED", CONVERGE)
        .await;

    let trace_id = unhex(&trace_hex);
    let workers: BTreeSet<String> = d.workers.iter().map(|w| w.id.clone()).collect();
    let deadline = Instant::now() + EXPORTED;
    let (trace, api, worker_commits) = loop {
        let trace = collector.trace(&trace_id);
        let api = trace.iter().find(|span| {
            span.instance == leader
                && span.name == "POST /api/v1/commit"
                && span.kind == SpanKind::Server as i32
        });
        let worker_commits: Vec<Received> = trace
            .iter()
            .filter(|span| {
                workers.contains(&span.instance)
                    && span.name == "c2c.v1.Worker/Commit"
                    && span.kind == SpanKind::Server as i32
            })
            .cloned()
            .collect();
        // The leader sends Commit to every shard owner: wait for each one's span.
        let leader_calls = trace
            .iter()
            .filter(|span| {
                span.instance == leader
                    && span.name == "c2c.v1.Worker/Commit"
                    && span.kind == SpanKind::Client as i32
            })
            .count();
        // Each process exports in its own batches: a worker's span can arrive before the
        // leader's spans it descends from, so wait until every chain is whole.
        let chains_whole = worker_commits
            .iter()
            .all(|commit| hex(&ancestry(&trace, commit).1) == caller_span_hex);
        if let Some(api) = api {
            if !worker_commits.is_empty() && worker_commits.len() >= leader_calls && chains_whole {
                break (trace.clone(), api.clone(), worker_commits);
            }
        }
        if Instant::now() > deadline {
            let mut names: Vec<String> = collector
                .spans
                .lock()
                .iter()
                .map(|span| {
                    format!(
                        "{} [{} {}] {}",
                        span.name,
                        span.instance,
                        span.role,
                        hex(&span.trace_id)
                    )
                })
                .collect();
            names.sort();
            names.dedup();
            panic!(
                "no trace {trace_hex} with the commit's API span on {leader} and a worker's Commit server span within {EXPORTED:?}; in this trace: {:#?}; received: {names:#?}",
                trace.iter().map(|s| format!("{} [{}]", s.name, s.instance)).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The coordinator's span continues the caller's trace and names its process.
    assert_eq!(hex(&api.parent_span_id), caller_span_hex, "{api:?}");
    assert_eq!(api.service, "c2c", "{api:?}");
    assert_eq!(api.role, "coordinator", "{api:?}");
    // Every worker's Commit span leads up to that API span, through the leader's
    // commit steps and its client span of the call.
    for commit in &worker_commits {
        assert_eq!(commit.role, "worker", "{commit:?}");
        let (chain, root_parent) = ancestry(&trace, commit);
        assert_eq!(
            hex(&root_parent),
            caller_span_hex,
            "the chain does not reach the caller's span: {chain:?}"
        );
        let expected = [
            format!("c2c.v1.Worker/Commit [{leader}]"),
            format!("commit_step [{leader}]"),
            format!("commit [{leader}]"),
            format!("POST /api/v1/commit [{leader}]"),
        ];
        for link in &expected {
            assert!(chain.contains(link), "{link} missing from {chain:?}");
        }
        assert_eq!(chain.last(), expected.last(), "{chain:?}");
    }
    // Below the workers' server spans: each drains its shards in the same trace.
    let drains: BTreeSet<&str> = trace
        .iter()
        .filter(|span| span.name == "drain_shard")
        .map(|span| span.instance.as_str())
        .collect();
    for commit in &worker_commits {
        assert!(
            drains.contains(commit.instance.as_str()),
            "no drain_shard span of {} in the trace",
            commit.instance
        );
    }

    // The gRPC API continues a caller's trace too.
    let grpc_trace_hex = format!("{:032x}", nanos.wrapping_add(1) | (1 << 127));
    let mut client =
        c2c_api::v1::migration_client::MigrationClient::connect(format!("http://{address}"))
            .await
            .expect("gRPC connect");
    let mut request = tonic::Request::new(c2c_api::v1::ProgressRequest {});
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{grpc_trace_hex}-{caller_span_hex}-01")
            .parse()
            .expect("metadata value"),
    );
    client.progress(request).await.expect("Progress");
    let deadline = Instant::now() + EXPORTED;
    let progress = loop {
        let found = collector
            .trace(&unhex(&grpc_trace_hex))
            .into_iter()
            .find(|span| {
                span.instance == leader
                    && span.name == "c2c.v1.Migration/Progress"
                    && span.kind == SpanKind::Server as i32
            });
        if let Some(span) = found {
            break span;
        }
        assert!(
            Instant::now() < deadline,
            "no c2c.v1.Migration/Progress span in trace {grpc_trace_hex} within {EXPORTED:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        hex(&progress.parent_span_id),
        caller_span_hex,
        "{progress:?}"
    );
    d.passed();
}

/// Spans still buffered when a process stops are exported before it exits: with a
/// batch delay of ten minutes, only the flush at SIGTERM can deliver them. The
/// coordinator runs without etcd (it answers 503) and without `--id` (its resource
/// names it by its default id, `<host>-<port>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_spans_are_flushed_when_the_process_stops() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let port = common::processes::free_port();
    let log = std::env::temp_dir().join(format!("c2c-traces-flush-{}.log", std::process::id()));
    let output = std::fs::File::create(&log).expect("log file");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
        .args(["coordinator", "--cluster0", "mongodb://127.0.0.1:1"])
        .args([
            "--cluster1",
            "mongodb://127.0.0.1:2",
            "--etcd",
            "127.0.0.1:1",
        ])
        .args(["--migration-id", "flush", "--port", &port.to_string()])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{endpoint}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("OTEL_SERVICE_NAME", "c2c")
        .env_remove("OTEL_SDK_DISABLED")
        .stdout(std::process::Stdio::from(output.try_clone().expect("log")))
        .stderr(std::process::Stdio::from(output))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn c2c coordinator");
    let rest =
        c2c_coordinator::rest_client::RestClient::new(SocketAddr::from(([127, 0, 0, 1], port)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while rest.get("/api/v1/progress").await.is_err() {
        assert!(Instant::now() < deadline, "the coordinator did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        collector.spans.lock().is_empty(),
        "exported before the batch delay: {:?}",
        collector.spans.lock()
    );
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    assert!(exited.is_ok(), "still running 30 s after SIGTERM: {text}");
    let spans = collector.spans.lock().clone();
    let progress = spans
        .iter()
        .find(|span| span.name == "GET /api/v1/progress")
        .unwrap_or_else(|| panic!("no API span flushed at exit: {spans:?}\n{text}"));
    assert_eq!(progress.role, "coordinator", "{progress:?}");
    assert!(
        progress.instance.ends_with(&format!("-{port}")),
        "the default id names the process: {progress:?}"
    );
}
