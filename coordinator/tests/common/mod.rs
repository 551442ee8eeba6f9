//! End-to-end harness: two clusters (fresh testbeds, or real ones from
//! `C2C_TEST_SOURCE_URI` / `C2C_TEST_DESTINATION_URI`), c2c serving mongosync's REST API
//! (in-process, or as a `c2c run` child process that a test can `kill -9`), a REST
//! client that drives it as curl would, and a document-by-document comparison.
//!
//! Real clusters must be dedicated to the tests: every test starts by dropping the
//! user databases and `__c2c_internal` on both.

#![allow(dead_code)]

pub mod otlp;
pub mod pki;
pub mod processes;
pub mod scaled;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bson::doc;
use c2c_coordinator::config::{RunConfig, Verbosity};
use c2c_coordinator::rest_client::RestClient;
use c2c_coordinator::{engine_driver, serve};
use c2c_engine::compare::{compare_clusters, CompareReport};
use c2c_engine::filter::NamespaceFilter;
use c2c_testbed::{Testbed, TestbedConfig, TestbedHandle};
use mongodb::Client;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Mutex, MutexGuard};

/// Real clusters are shared: tests using them run one at a time.
static EXTERNAL: Mutex<()> = Mutex::const_new(());

/// The file the in-process leader and workers log to, when a harness turned logging on
/// (`log_to_file`): a test that times out shows its end, so a rare failure says why.
static TEST_LOG: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Logs everything this test process's c2c code does (INFO and up) to one file; the
/// first call sets it up. Tests of one binary run in parallel, so their lines mix.
pub fn log_to_file() {
    TEST_LOG.get_or_init(|| {
        // Cargo's scratch directory for integration tests (under target/, not /tmp).
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("c2c-test-{}.log", std::process::id()));
        if let Ok(file) = std::fs::File::create(&path) {
            let _ = tracing_subscriber::fmt()
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .try_init();
        }
        path
    });
}

/// The last lines of the test log, for a failure message (empty without one).
pub fn test_log_tail(lines: usize) -> String {
    let Some(path) = TEST_LOG.get() else {
        return String::new();
    };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    format!("\n--- last {lines} lines of {} ---\n{tail}", path.display())
}

/// A ping on a new client, answered or not within 3 s.
async fn probe(uri: &str) -> String {
    let started = Instant::now();
    let ping = async {
        let mut options = mongodb::options::ClientOptions::parse(uri).await?;
        options.server_selection_timeout = Some(Duration::from_secs(2));
        let client = Client::with_options(options)?;
        client.database("admin").run_command(doc! {"ping": 1}).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => format!(
            "a ping on a new connection answered in {} ms",
            started.elapsed().as_millis()
        ),
        Ok(Err(error)) => format!("a ping on a new connection failed: {error}"),
        Err(_) => "no answer to a ping on a new connection within 3 s".to_string(),
    }
}

pub struct Cluster {
    pub uri: String,
    pub client: Client,
    testbed: Option<TestbedHandle>,
}

/// Users of the auth-enabled testbeds: c2c's own (root: may bypass write blocking) and
/// an application user (readWriteAnyDatabase: may not).
pub const SYNC_USER: (&str, &str) = ("c2c", "sync-secret");
pub const APP_USER: (&str, &str) = ("app", "app-secret");

pub fn auth_config() -> TestbedConfig {
    use c2c_testbed::{RoleRef, UserSpec};
    TestbedConfig {
        idle_noop_interval: Duration::from_millis(200),
        auth_users: vec![
            UserSpec {
                user: SYNC_USER.0.into(),
                db: "admin".into(),
                password: SYNC_USER.1.into(),
                roles: vec![RoleRef::new("root", "admin")],
            },
            UserSpec {
                user: APP_USER.0.into(),
                db: "admin".into(),
                password: APP_USER.1.into(),
                roles: vec![RoleRef::new("readWriteAnyDatabase", "admin")],
            },
        ],
        ..TestbedConfig::default()
    }
}

impl Cluster {
    pub async fn start(env: &str, config: TestbedConfig) -> Cluster {
        match std::env::var(env) {
            Ok(uri) => {
                let client = Client::with_uri_str(&uri)
                    .await
                    .expect("connect to the external cluster");
                wipe(&client).await;
                Cluster {
                    uri,
                    client,
                    testbed: None,
                }
            }
            Err(_) => {
                let with_auth = !config.auth_users.is_empty();
                let testbed = Testbed::start(config).await.expect("start a testbed");
                let uri = if with_auth {
                    testbed.uri_with_auth(SYNC_USER.0, SYNC_USER.1)
                } else {
                    testbed.uri()
                };
                let client = Client::with_uri_str(&uri)
                    .await
                    .expect("connect to the testbed");
                Cluster {
                    uri,
                    client,
                    testbed: Some(testbed),
                }
            }
        }
    }

    /// A client authenticated as the application user (auth-enabled testbeds only).
    pub async fn app_client(&self) -> Client {
        let testbed = self
            .testbed
            .as_ref()
            .expect("application users exist on auth testbeds only");
        Client::with_uri_str(testbed.uri_with_auth(APP_USER.0, APP_USER.1))
            .await
            .expect("app client")
    }

    /// Runs an admin command (failpoints, testbed fault commands).
    pub async fn admin(&self, command: bson::Document) -> bson::Document {
        self.client
            .database("admin")
            .run_command(command)
            .await
            .expect("admin command")
    }
}

async fn wipe(client: &Client) {
    for db in client.list_database_names().await.expect("list databases") {
        if !matches!(db.as_str(), "admin" | "local" | "config") {
            client.database(&db).drop().await.expect("drop database");
        }
    }
}

enum Api {
    InProcess {
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    },
    Child(tokio::process::Child),
    Stopped,
}

pub struct Harness {
    pub source: Cluster,
    pub destination: Cluster,
    pub rest: RestClient,
    address: SocketAddr,
    api: Api,
    _external: Option<MutexGuard<'static, ()>>,
}

pub fn fast() -> TestbedConfig {
    TestbedConfig {
        idle_noop_interval: Duration::from_millis(200),
        ..TestbedConfig::default()
    }
}

impl Harness {
    /// Two clusters and c2c in-process.
    pub async fn start() -> Harness {
        Harness::start_with(fast(), fast(), false).await
    }

    /// Two clusters and `c2c run` as a child process (for kill -9 tests).
    pub async fn start_process() -> Harness {
        Harness::start_with(fast(), fast(), true).await
    }

    pub async fn start_with(
        source: TestbedConfig,
        destination: TestbedConfig,
        as_process: bool,
    ) -> Harness {
        let external = if std::env::var("C2C_TEST_SOURCE_URI").is_ok() {
            Some(EXTERNAL.lock().await)
        } else {
            None
        };
        let source = Cluster::start("C2C_TEST_SOURCE_URI", source).await;
        let destination = Cluster::start("C2C_TEST_DESTINATION_URI", destination).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let mut harness = Harness {
            source,
            destination,
            rest: RestClient::new(address),
            address,
            api: Api::Stopped,
            _external: external,
        };
        if as_process {
            drop(listener);
            harness.spawn_process().await;
        } else {
            harness.spawn_in_process(listener).await;
        }
        harness
            .wait_for_state("IDLE", Duration::from_secs(30))
            .await;
        harness
    }

    fn config(&self) -> RunConfig {
        RunConfig {
            cluster0: self.source.uri.clone(),
            cluster1: self.destination.uri.clone(),
            port: self.address.port(),
            bind: self.address.ip(),
            workers: 1,
            log_path: None,
            verbosity: Verbosity::Info,
            load_level: None,
            id: "coordinator".to_string(),
            security: Default::default(),
        }
    }

    async fn spawn_in_process(&mut self, listener: TcpListener) {
        let driver = engine_driver::connect(&self.config())
            .await
            .expect("engine driver");
        self.serve_in_process(listener, driver);
    }

    fn serve_in_process(
        &mut self,
        listener: TcpListener,
        driver: std::sync::Arc<dyn c2c_coordinator::driver::EngineDriver>,
    ) {
        let config = self.config();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            serve(&config, driver, listener, async {
                let _ = stopped.await;
            })
            .await
        });
        self.api = Api::InProcess {
            stop: Some(stop),
            task,
        };
    }

    async fn spawn_process(&mut self) {
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
            .arg("run")
            .arg("--cluster0")
            .arg(&self.source.uri)
            .arg("--cluster1")
            .arg(&self.destination.uri)
            .arg("--port")
            .arg(self.address.port().to_string())
            .arg("--verbosity")
            .arg("WARN")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn c2c run");
        self.api = Api::Child(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(self.address).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "c2c run did not listen within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9` of the child process, then a new `c2c run` with the same options.
    pub async fn kill_and_restart(&mut self) {
        match &mut self.api {
            Api::Child(child) => {
                child.start_kill().expect("kill -9");
                child.wait().await.expect("reap");
            }
            _ => panic!("kill_and_restart needs Harness::start_process"),
        }
        self.spawn_process().await;
        self.wait_for_state("IDLE", Duration::from_secs(30)).await;
    }

    /// `kill -9` and restart, without expecting IDLE (a commit or reverse in flight
    /// continues on its own after a restart).
    pub async fn kill_and_restart_in_any_state(&mut self) {
        match &mut self.api {
            Api::Child(child) => {
                child.start_kill().expect("kill -9");
                child.wait().await.expect("reap");
            }
            _ => panic!("kill_and_restart needs Harness::start_process"),
        }
        self.spawn_process().await;
    }

    /// Where c2c's API (REST, gRPC, `/metrics`) listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.rest.post(path, &body).await.expect("REST call")
    }

    pub async fn progress(&self) -> Value {
        let (status, body) = self
            .rest
            .get("/api/v1/progress")
            .await
            .expect("GET /progress");
        assert_eq!(status, 200, "{body}");
        body["progress"].clone()
    }

    pub async fn wait_for_state(&self, state: &str, timeout: Duration) -> Value {
        self.wait_for(|p| p["state"] == state, timeout).await
    }

    /// Polls /progress until `predicate` holds; panics with the last document on timeout
    /// or when the migration reports a failure.
    pub async fn wait_for(&self, predicate: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, body)) = self.rest.get("/api/v1/progress").await {
                let progress = body["progress"].clone();
                if predicate(&progress) {
                    return progress;
                }
                if let Some(warnings) = progress["warnings"].as_array() {
                    let failed = warnings
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|w| w.contains("failed"));
                    assert!(failed.is_none(), "migration failed: {progress}");
                }
                if Instant::now() >= deadline {
                    panic!(
                        "timed out; last progress: {progress}\n{}{}",
                        self.probe_clusters().await,
                        test_log_tail(60)
                    );
                }
            } else {
                assert!(Instant::now() < deadline, "timed out waiting for /progress");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether each cluster answers a ping on a new connection, for a timed-out wait's
    /// message: it tells a cluster that stopped answering from a sync that stopped asking.
    pub async fn probe_clusters(&self) -> String {
        let mut lines = Vec::new();
        for (name, cluster) in [("source", &self.source), ("destination", &self.destination)] {
            lines.push(format!("{name}: {}", probe(&cluster.uri).await));
        }
        lines.join("\n")
    }

    /// `POST /start` with `body`, which must be accepted.
    pub async fn start_sync(&self, body: Value) {
        let (status, answer) = self.post("/api/v1/start", body).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// `POST /start` with `body`, which must be accepted, then waits until canCommit.
    pub async fn start_until_can_commit(&self, body: Value, timeout: Duration) -> Value {
        self.start_sync(body).await;
        self.wait_for(|p| p["canCommit"] == true, timeout).await
    }

    /// Compares both clusters whole, document by document, once: they must be equal
    /// (e.g. after COMMITTED, when nothing moves any more).
    pub async fn assert_clusters_equal(&self) {
        let report = compare_clusters(
            &self.source.client,
            &self.destination.client,
            &NamespaceFilter::default(),
        )
        .await
        .expect("compare");
        assert_equal(&report);
    }

    /// Waits for canCommit, then until both sides compare equal through `filter`.
    pub async fn wait_until_equal(
        &self,
        filter: &NamespaceFilter,
        timeout: Duration,
    ) -> CompareReport {
        self.wait_for(|p| p["canCommit"] == true, timeout).await;
        let deadline = Instant::now() + timeout;
        loop {
            let report = compare_clusters(&self.source.client, &self.destination.client, filter)
                .await
                .expect("compare");
            if report.is_equal() || Instant::now() > deadline {
                return report;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn stop(mut self) {
        match std::mem::replace(&mut self.api, Api::Stopped) {
            Api::InProcess { mut stop, task } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            }
            Api::Child(mut child) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            Api::Stopped => {}
        }
        for cluster in [self.source.testbed.take(), self.destination.testbed.take()]
            .into_iter()
            .flatten()
        {
            cluster.shutdown().await;
        }
    }
}

/// The scale-out tests' databases: four, so per-database stream shards spread over workers.
pub const SCALEOUT_DATABASES: [&str; 4] = ["shop", "crm", "logs", "geo"];

/// `per_collection` documents `{_id: i, db, pad}` (pad of `pad_bytes`) in collections
/// `a` and `b` of every scale-out database.
/// Polls `check` every 50 ms until it gives a value; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}{}",
            test_log_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `/progress` document of a running migration reversed onto cluster1.
pub fn runs_reversed(progress: &Value) -> bool {
    progress["state"] == "RUNNING"
        && progress["directionMapping"]["Source"]
            .as_str()
            .is_some_and(|source| source.starts_with("cluster1"))
}

pub async fn load_databases(client: &Client, per_collection: i32, pad_bytes: usize) {
    for db in SCALEOUT_DATABASES {
        for coll in ["a", "b"] {
            let docs = (0..per_collection)
                .map(|i| doc! {"_id": i, "db": db, "pad": "x".repeat(pad_bytes)})
                .collect();
            insert_many(client, db, coll, docs).await;
        }
    }
}

/// One insert, one update and one delete in `a` of every scale-out database.
pub async fn write_round(client: &Client, round: i32) {
    for db in SCALEOUT_DATABASES {
        let coll = client.database(db).collection::<bson::Document>("a");
        coll.insert_one(doc! {"_id": format!("new-{round}"), "round": round})
            .await
            .expect("insert");
        coll.update_one(doc! {"_id": round}, doc! {"$set": {"updated": round}})
            .await
            .expect("update");
        coll.delete_one(doc! {"_id": round + 1000})
            .await
            .expect("delete");
    }
}

/// Inserts `count` documents `{_id: i, ...}` into `db.coll` in batches.
pub async fn insert_many(client: &Client, db: &str, coll: &str, documents: Vec<bson::Document>) {
    let collection = client.database(db).collection::<bson::Document>(coll);
    for chunk in documents.chunks(1000) {
        collection
            .insert_many(chunk.to_vec())
            .await
            .expect("insert");
    }
}

pub fn assert_equal(report: &CompareReport) {
    assert!(
        report.is_equal(),
        "clusters differ ({} differences): {:#?}",
        report.difference_count,
        report.differences
    );
}

pub fn ping() -> bson::Document {
    doc! {"ping": 1}
}
