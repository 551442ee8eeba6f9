//! Issue 7: a password in a cluster URI appears nowhere in logs, responses, metrics or
//! traces after a full run with errors.
//!
//! Two auth-enabled testbeds whose c2c user has a distinctive password (with characters
//! the URI must percent-encode). `c2c run` as a child process, at TRACE verbosity, with
//! `--logPath` and OTLP export to the in-test collector, goes through a run with errors:
//! authentication refused at start, refused `/start` requests, transient command errors
//! and dropped connections on both clusters, then a commit. A second `c2c run` has a
//! wrong password (it keeps retrying and says so in `/progress`), a third a password
//! that is not URL-encoded (it exits). Every response body, `/metrics` scrape, log file,
//! stdout/stderr and exported trace is then searched for every password in every form.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use c2c_api::v1::migration_client::MigrationClient;
use c2c_api::v1::{ProgressRequest, StartRequest};
use c2c_coordinator::rest_client::RestClient;
use c2c_testbed::{RoleRef, Testbed, TestbedConfig, TestbedHandle, UserSpec};
use common::otlp::Collector;
use common::processes::free_port;
use mongodb::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

/// c2c's password on both clusters; `#:@/%` must be percent-encoded in a URI.
const PASSWORD: &str = "Xk#7:leakQ9vZ@pw/%";
/// What the second `c2c run` is given instead.
const WRONG_PASSWORD: &str = "Wr#ng:leakP4ssZ@x";
/// Written into the third one's URI as is: `%zz` is not a valid escape.
const MALFORMED_PASSWORD: &str = "leakM4lfZ%zz";
/// Each password's alphanumeric core: found in any escaping of it (URI, JSON, Debug).
const CORES: [&str; 3] = ["leakQ9vZ", "leakP4ssZ", "leakM4lfZ"];
const USER: &str = "c2c";
/// `c2c run`'s driver application name (the default `--id`): failpoints aim at it only.
const APP_NAME: &str = "c2c coordinator";
const CONVERGE: Duration = Duration::from_secs(60);

fn testbed_config() -> TestbedConfig {
    TestbedConfig {
        idle_noop_interval: Duration::from_millis(200),
        auth_users: vec![UserSpec {
            user: USER.into(),
            db: "admin".into(),
            password: PASSWORD.into(),
            roles: vec![RoleRef::new("root", "admin")],
        }],
        ..TestbedConfig::default()
    }
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let word = chunk.iter().enumerate().fold(0u32, |word, (i, byte)| {
            word | u32::from(*byte) << (16 - 8 * i)
        });
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(word >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// Every form in which a password could leak.
fn forbidden() -> Vec<String> {
    let mut forms: Vec<String> = CORES.iter().map(|core| core.to_string()).collect();
    for password in [PASSWORD, WRONG_PASSWORD, MALFORMED_PASSWORD] {
        forms.push(password.to_string());
        forms.push(percent_encode(password));
        forms.push(base64(password.as_bytes()));
        forms.push(base64(format!("{USER}:{password}").as_bytes()));
    }
    forms
}

/// What the test saw, by where it saw it.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, place: impl Into<String>, text: impl Into<String>) {
        self.0.push((place.into(), text.into()));
    }

    async fn call(&mut self, rest: &RestClient, path: &str, body: Option<Value>) -> (u16, Value) {
        let answer = match &body {
            None => rest.get(path).await,
            Some(body) => rest.post(path, body).await,
        };
        let (status, answer) = answer.expect("REST call");
        self.add(format!("{path} {body:?} ({status})"), answer.to_string());
        (status, answer)
    }

    /// A refused call: 4xx with mongosync's error body.
    async fn refused(&mut self, rest: &RestClient, path: &str, body: Value) {
        let (status, answer) = self.call(rest, path, Some(body.clone())).await;
        assert!(
            (400..500).contains(&status),
            "{path} {body}: {status} {answer}"
        );
        assert_eq!(answer["success"], false, "{answer}");
    }

    /// Polls `/progress` until `predicate` holds.
    async fn wait_for(
        &mut self,
        rest: &RestClient,
        what: &str,
        predicate: impl Fn(&Value) -> bool,
    ) {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let (status, body) = self.call(rest, "/api/v1/progress", None).await;
            if status == 200 && predicate(&body["progress"]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {CONVERGE:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /metrics` as Prometheus sends it (the whole response, headers included),
    /// and gRPC `Progress` and a refused `Start`, as `Debug` prints them.
    async fn scrape(&mut self, address: SocketAddr) -> String {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut metrics = String::new();
        stream.read_to_string(&mut metrics).await.expect("read");
        self.add(format!("GET /metrics of {address}"), metrics.clone());
        let mut grpc = MigrationClient::connect(format!("http://{address}"))
            .await
            .expect("gRPC");
        let progress = grpc.progress(ProgressRequest {}).await.expect("Progress");
        self.add(
            format!("gRPC Progress of {address}"),
            format!("{progress:?}"),
        );
        let start = StartRequest {
            source: "cluster7".into(),
            destination: "cluster1".into(),
            ..StartRequest::default()
        };
        let refused = grpc.start(start).await.expect_err("Start of cluster7");
        self.add(format!("gRPC Start of {address}"), format!("{refused:?}"));
        metrics
    }

    /// Every file under `dir`, recursively.
    fn files(&mut self, dir: &Path) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                self.files(&path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                self.add(path.display().to_string(), String::from_utf8_lossy(&bytes));
            }
        }
    }
}

/// `c2c run` with `options` and `env` (the clusters) as a child: logs in
/// `<dir>/<name>/logs`, stdout and stderr beside them, spans to the collector at `otlp`.
fn spawn_run(
    dir: &Path,
    name: &str,
    options: &[&str],
    env: &[(&str, &str)],
    otlp: SocketAddr,
) -> (Child, SocketAddr) {
    let dir = dir.join(name);
    // The spill directory too is searched, and removed with the rest.
    std::fs::create_dir_all(dir.join("tmp")).expect("run dir");
    let output = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).expect("output"));
    let port = free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
        .arg("run")
        .args(options)
        .args(["--port", &port.to_string(), "--verbosity", "TRACE"])
        .arg("--logPath")
        .arg(dir.join("logs"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{otlp}"))
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("OTEL_SERVICE_NAME", "c2c")
        .env("OTEL_TRACES_SAMPLER", "always_on")
        .env_remove("OTEL_SDK_DISABLED")
        .env("TMPDIR", dir.join("tmp"))
        .envs(env.iter().copied())
        .stdout(output("stdout"))
        .stderr(output("stderr"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn c2c run");
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn wait_listening(rest: &RestClient) {
    let deadline = Instant::now() + CONVERGE;
    while rest.get("/api/v1/progress").await.is_err() {
        assert!(Instant::now() < deadline, "c2c run did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, which flushes the buffered spans, and the exit.
async fn stop(mut child: Child) {
    let pid = child.id().expect("running");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let exited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    assert!(exited.is_ok(), "c2c run still running 30 s after SIGTERM");
}

async fn fail_point(client: &Client, times: i32, mut data: Document) {
    data.insert("appName", APP_NAME);
    let command =
        doc! {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": data};
    client
        .database("admin")
        .run_command(command)
        .await
        .expect("configureFailPoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_passwords_appear_nowhere_after_a_run_with_errors() {
    let collector = Collector::default();
    let otlp = collector.start().await;
    let dir = std::env::temp_dir().join(format!(
        "c2c-secrets-{}-{}",
        std::process::id(),
        free_port()
    ));
    let source = Testbed::start(testbed_config()).await.expect("source");
    let destination = Testbed::start(testbed_config()).await.expect("destination");
    // A refused authentication marks the server unknown until the next heartbeat.
    let uri = |testbed: &TestbedHandle, password: &str| {
        format!(
            "{}&heartbeatFrequencyMS=500",
            testbed.uri_with_auth(USER, password)
        )
    };
    let (uri0, uri1) = (uri(&source, PASSWORD), uri(&destination, PASSWORD));
    // The search below would find the password as the URIs hold it.
    assert_eq!(base64(b"c2c:pw?"), "YzJjOnB3Pw");
    assert!(
        forbidden().iter().any(|form| uri0.contains(form.as_str())),
        "{uri0}"
    );
    let source_client = Client::with_uri_str(&uri0).await.expect("source client");
    let destination_client = Client::with_uri_str(&uri1)
        .await
        .expect("destination client");
    let orders = source_client.database("shop").collection("orders");
    let documents: Vec<Document> = (0..500).map(|i| doc! {"_id": i, "v": 0}).collect();
    orders.insert_many(documents).await.expect("load");
    let mut seen = Seen::default();

    // The destination refuses c2c's first authentication.
    let auth_refused = doc! {"failCommands": ["saslContinue"], "errorCode": 18};
    fail_point(&destination_client, 1, auth_refused).await;
    let (run, address) = spawn_run(
        &dir,
        "run",
        &["--cluster0", &uri0, "--cluster1", &uri1],
        &[],
        otlp,
    );
    let rest = RestClient::new(address);
    wait_listening(&rest).await;
    seen.wait_for(&rest, "IDLE", |p| p["state"] == "IDLE").await;

    // Refused calls: an unknown field, a bad regex, unknown or equal clusters, and a
    // commit before any start.
    let bad_regex = json!([{"databaseRegex": {"pattern": "(", "options": ""}}]);
    for body in [
        json!({"source": "cluster0", "destination": "cluster1", "verbose": true}),
        json!({"source": "cluster0", "destination": "cluster1", "excludeNamespaces": bad_regex}),
        json!({"source": "cluster7", "destination": "cluster1"}),
        json!({"source": "cluster0", "destination": "cluster0"}),
    ] {
        seen.refused(&rest, "/api/v1/start", body).await;
    }
    seen.refused(&rest, "/api/v1/commit", json!({})).await;

    // Transient errors on both sides during planning and the copy, then a good /start.
    let reads_fail = doc! {"failCommands": ["find", "aggregate"], "errorCode": 6};
    fail_point(&source_client, 4, reads_fail).await;
    let inserts_drop = doc! {"failCommands": ["insert"], "closeConnection": true};
    fail_point(&destination_client, 2, inserts_drop).await;
    let start = json!({"source": "cluster0", "destination": "cluster1"});
    let (status, answer) = seen.call(&rest, "/api/v1/start", Some(start)).await;
    assert_eq!(status, 200, "{answer}");
    seen.wait_for(&rest, "canCommit", |p| p["canCommit"] == true)
        .await;

    // Change events applied through errors, then the commit.
    let writes_fail = doc! {"failCommands": ["update", "delete"], "errorCode": 6};
    fail_point(&destination_client, 3, writes_fail).await;
    let (all, tail) = (doc! {}, doc! {"_id": {"$gte": 450}});
    let first = doc! {"_id": {"$lt": 100}};
    orders
        .update_many(first, doc! {"$set": {"v": 1}})
        .await
        .expect("update");
    orders.delete_many(tail).await.expect("delete");
    orders
        .insert_one(doc! {"_id": "last"})
        .await
        .expect("insert");
    let (status, answer) = seen.call(&rest, "/api/v1/commit", Some(json!({}))).await;
    assert_eq!(status, 200, "{answer}");
    seen.wait_for(&rest, "COMMITTED", |p| p["state"] == "COMMITTED")
        .await;
    let copied = destination_client
        .database("shop")
        .collection::<Document>("orders");
    assert_eq!(copied.count_documents(all).await.expect("count"), 451);
    assert_eq!(
        copied.count_documents(doc! {"v": 1}).await.expect("count"),
        100
    );
    seen.refused(&rest, "/api/v1/pause", json!({})).await;
    let metrics = seen.scrape(address).await;
    assert!(
        metrics.starts_with("HTTP/1.1 200") && metrics.contains("c2c_"),
        "{metrics}"
    );

    // A wrong password: c2c keeps retrying and says why in /progress. The URIs come
    // from a configuration file (outside the searched directory) and the environment.
    let wrong = [("C2C_CLUSTER1", uri(&destination, WRONG_PASSWORD))];
    let config = dir.with_extension("yaml");
    std::fs::write(&config, format!("cluster0: {uri0:?}\n")).expect("config file");
    let options = ["--config", config.to_str().expect("UTF-8 path")];
    let env = wrong.each_ref().map(|(key, value)| (*key, value.as_str()));
    let (second, address2) = spawn_run(&dir, "wrong", &options, &env, otlp);
    let rest2 = RestClient::new(address2);
    wait_listening(&rest2).await;
    seen.wait_for(&rest2, "the authentication failure", |p| {
        p["warnings"].to_string().contains("Authentication failed")
    })
    .await;
    let start = json!({"source": "cluster0", "destination": "cluster1"});
    let (status, answer) = seen.call(&rest2, "/api/v1/start", Some(start)).await;
    assert!(
        status >= 400,
        "/start while INITIALIZING: {status} {answer}"
    );
    seen.scrape(address2).await;

    // A password that is not URL-encoded: the connection string is refused at start.
    let malformed = format!("mongodb://{USER}:{MALFORMED_PASSWORD}@127.0.0.1:1/");
    let (mut third, _) = spawn_run(
        &dir,
        "malformed",
        &["--cluster0", &malformed, "--cluster1", &uri1],
        &[],
        otlp,
    );
    let exited = tokio::time::timeout(CONVERGE, third.wait()).await;
    assert!(
        !exited.expect("exits").expect("wait").success(),
        "{malformed} accepted"
    );
    stop(run).await;
    stop(second).await;
    // A clean stop removes the spill directory (it may have held change events).
    let left: Vec<_> = std::fs::read_dir(dir.join("run/tmp"))
        .expect("run/tmp")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR after SIGTERM: {left:?}");

    // There is something to search: the runs logged, with URIs redacted, the errors.
    let log = std::fs::read_to_string(dir.join("run/logs/c2c.log")).expect("c2c.log");
    let redacted = format!("{USER}:*****@");
    for expected in [&redacted, "SCRAM failure", "HostUnreachable", "end of file"] {
        assert!(log.contains(expected), "{expected:?} is not in the log");
    }
    let refused = std::fs::read_to_string(dir.join("malformed/stderr")).expect("stderr");
    assert!(refused.contains(&redacted), "stderr: {refused}");
    let spans = collector.spans.lock().clone();
    for name in [
        "POST /api/v1/start",
        "POST /api/v1/commit",
        "GET /api/v1/progress",
    ] {
        assert!(spans.iter().any(|s| s.name == name), "no {name} span");
    }
    for (i, request) in collector.requests.lock().iter().enumerate() {
        seen.add(format!("OTLP export request {i}"), request.clone());
    }
    seen.files(&dir);

    let mut leaks = Vec::new();
    for (place, text) in &seen.0 {
        if let Some((at, form)) = forbidden()
            .into_iter()
            .find_map(|form| text.find(&form).map(|at| (at, form)))
        {
            let from = text.floor_char_boundary(at.saturating_sub(300));
            let to = text.ceil_char_boundary(at + form.len() + 300);
            leaks.push(format!("{form:?} in {place}:\n…{}…", &text[from..to]));
        }
    }
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n\n"));
    source.shutdown().await;
    destination.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&config);
}
