//! Two testbeds with auth on: "c2c" (root: may block and bypass blocking) for the engine
//! and "app" (readWriteAnyDatabase) for the application's writes.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use c2c_engine::cutover::CutoverHooks;
use c2c_engine::filter::{FilterSpec, NamespaceFilter};
use c2c_engine::metadata::{Metadata, MigrationState};
use c2c_engine::migration::{Clusters, EngineConfig, Migration};
use c2c_engine::options::{BuildIndexes, LoadLevel, StartRequest, SyncOptions, WriteBlocking};
use c2c_engine::progress::Phase;
use c2c_testbed::{RoleRef, Testbed, TestbedConfig, TestbedHandle, UserSpec};
use futures::TryStreamExt;
use mongodb::{Client, Collection};

pub const DB: &str = "shop";

pub struct Env {
    _beds: (TestbedHandle, TestbedHandle),
    /// c2c's connections (root).
    pub c2c_source: Client,
    pub c2c_destination: Client,
    /// The application's connections (no bypass).
    pub app_source: Client,
    pub app_destination: Client,
    pub spill: std::path::PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.spill);
    }
}

fn user(name: &str, role: &str) -> UserSpec {
    UserSpec {
        user: name.into(),
        db: "admin".into(),
        password: format!("{name}-pwd"),
        roles: vec![RoleRef::new(role, "admin")],
    }
}

async fn client(uri: String) -> Client {
    Client::with_uri_str(uri).await.expect("client")
}

pub async fn env() -> Env {
    let config = || TestbedConfig {
        idle_noop_interval: Duration::from_millis(100),
        auth_users: vec![user("c2c", "root"), user("app", "readWriteAnyDatabase")],
        ..Default::default()
    };
    let source = Testbed::start(config()).await.expect("source testbed");
    let destination = Testbed::start(config()).await.expect("destination testbed");
    Env {
        c2c_source: client(source.uri_with_auth("c2c", "c2c-pwd")).await,
        c2c_destination: client(destination.uri_with_auth("c2c", "c2c-pwd")).await,
        app_source: client(source.uri_with_auth("app", "app-pwd")).await,
        app_destination: client(destination.uri_with_auth("app", "app-pwd")).await,
        spill: std::env::temp_dir().join(format!("c2c-cutover-test-{}", rand_suffix())),
        _beds: (source, destination),
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What a test chooses about the migration.
#[derive(Clone)]
pub struct Setup {
    pub blocking: WriteBlocking,
    pub reversible: bool,
    pub include: Vec<FilterSpec>,
    pub hooks: CutoverHooks,
    pub verification: bool,
    pub partition_target_bytes: Option<u64>,
}

impl Setup {
    pub fn new(blocking: WriteBlocking, reversible: bool) -> Setup {
        Setup {
            blocking,
            reversible,
            include: Vec::new(),
            hooks: CutoverHooks::default(),
            verification: false,
            partition_target_bytes: None,
        }
    }
}

pub async fn start_with(
    env: &Env,
    setup: &Setup,
    c2c: (&Client, &Client),
) -> c2c_engine::Result<Arc<Migration>> {
    let clusters = Clusters {
        source: c2c.0.clone(),
        destination: c2c.1.clone(),
        source_hosts: vec!["source".into()],
        destination_hosts: vec!["destination".into()],
    };
    let request = StartRequest {
        source: "cluster0".into(),
        destination: "cluster1".into(),
        include_namespaces: setup.include.clone(),
        exclude_namespaces: Vec::new(),
        build_indexes: BuildIndexes::BeforeDataCopy,
        reversible: setup.reversible,
        enable_user_write_blocking: setup.blocking,
        verification_enabled: setup.verification,
        detect_random_id: false,
        pre_existing_destination_data: false,
    };
    let options = SyncOptions {
        filter: NamespaceFilter::compile(&setup.include, &[]).expect("filter"),
        build_indexes: BuildIndexes::BeforeDataCopy,
        reversible: setup.reversible,
        write_blocking: setup.blocking,
        detect_random_id: false,
        pre_existing_destination_data: false,
        verification: setup.verification,
        load_level: LoadLevel::new(2).expect("load level"),
    };
    let config = EngineConfig {
        spill_dir: env.spill.clone(),
        hooks: setup.hooks.clone(),
        partition_target_bytes: setup
            .partition_target_bytes
            .unwrap_or(EngineConfig::default().partition_target_bytes),
    };
    Migration::start(clusters, request, options, config).await
}

pub async fn start(env: &Env, setup: &Setup) -> Arc<Migration> {
    start_with(env, setup, (&env.c2c_source, &env.c2c_destination))
        .await
        .expect("start")
}

pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn wait_phase(migration: &Migration, phase: Phase) {
    let progress = migration.progress();
    eventually(&format!("{phase:?}"), Duration::from_secs(30), || {
        let now = progress.phase();
        let failure = progress.failure.lock().clone();
        assert!(
            failure.is_none() || phase == Phase::Committing,
            "failed: {failure:?}"
        );
        async move { now == Some(phase) }
    })
    .await;
}

/// Steady state with `canCommit` possible.
pub async fn wait_steady(migration: &Migration) {
    wait_phase(migration, Phase::SteadyState).await;
}

pub async fn commit_and_wait(migration: &Arc<Migration>) {
    migration.commit().await.expect("commit accepted");
    wait_phase(migration, Phase::Committed).await;
    assert!(migration.progress().can_write.load(Ordering::Relaxed));
}

pub async fn wait_hook(setup: &Setup) {
    let stopped = setup.hooks.stopped.clone();
    eventually("the hook to stop the run", Duration::from_secs(30), || {
        let done = stopped.load(Ordering::SeqCst);
        async move { done }
    })
    .await;
    // Give the task a moment to wind down, as a killed process would have.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

pub async fn state(env: &Env) -> MigrationState {
    Metadata::new(&env.c2c_destination)
        .load_state()
        .await
        .expect("load state")
        .expect("a state")
}

pub fn coll(client: &Client, name: &str) -> Collection<Document> {
    client.database(DB).collection(name)
}

/// Source data: `users` (unique email, TTL at, hidden h) and `orders`.
pub async fn seed(env: &Env) {
    let db = env.app_source.database(DB);
    let users: Vec<Document> = (0..200)
        .map(|i| doc! {"_id": i, "email": format!("u{i}@x"), "at": bson::DateTime::now(), "h": i % 7})
        .collect();
    coll(&env.app_source, "users")
        .insert_many(users)
        .await
        .expect("users");
    db.run_command(doc! {"createIndexes": "users", "indexes": [
        {"key": {"email": 1}, "name": "email_1", "unique": true},
        {"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 86400},
        {"key": {"h": 1}, "name": "h_1", "hidden": true},
    ]})
    .await
    .expect("indexes");
    let orders: Vec<Document> = (0..100).map(|i| doc! {"_id": i, "user": i % 10}).collect();
    coll(&env.app_source, "orders")
        .insert_many(orders)
        .await
        .expect("orders");
}

pub async fn documents(client: &Client, name: &str) -> Vec<Document> {
    coll(client, name)
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("documents")
}

/// Waits until both clusters hold the same documents in `users` and `orders`.
pub async fn wait_equal(a: &Client, b: &Client) {
    for name in ["users", "orders"] {
        eventually(
            &format!("{name} equal"),
            Duration::from_secs(30),
            || async { documents(a, name).await == documents(b, name).await },
        )
        .await;
    }
}

pub async fn indexes(client: &Client, name: &str) -> Vec<Document> {
    let reply = client
        .database(DB)
        .run_command(doc! {"listIndexes": name})
        .await
        .expect("listIndexes");
    reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("batch")
        .iter()
        .filter_map(|b| b.as_document().cloned())
        .collect()
}

pub fn index<'a>(specs: &'a [Document], name: &str) -> &'a Document {
    specs
        .iter()
        .find(|s| s.get_str("name") == Ok(name))
        .unwrap_or_else(|| panic!("index {name} in {specs:?}"))
}

/// The source's form is back: unique, TTL and hidden.
pub async fn assert_restored(client: &Client) {
    let specs = indexes(client, "users").await;
    assert_eq!(
        index(&specs, "email_1").get_bool("unique"),
        Ok(true),
        "{specs:?}"
    );
    assert!(
        !index(&specs, "email_1").contains_key("prepareUnique"),
        "{specs:?}"
    );
    let ttl = index(&specs, "at_1").get("expireAfterSeconds").cloned();
    assert_eq!(
        ttl.and_then(|v| v.as_i64().or(v.as_i32().map(i64::from))),
        Some(86400),
        "{specs:?}"
    );
    assert_eq!(
        index(&specs, "h_1").get_bool("hidden"),
        Ok(true),
        "{specs:?}"
    );
}

/// The relaxed form c2c syncs into.
pub async fn assert_relaxed(client: &Client) {
    let specs = indexes(client, "users").await;
    assert!(
        !index(&specs, "email_1").get_bool("unique").unwrap_or(false),
        "{specs:?}"
    );
    assert!(
        !index(&specs, "at_1").contains_key("expireAfterSeconds"),
        "{specs:?}"
    );
    assert!(
        !index(&specs, "h_1").get_bool("hidden").unwrap_or(false),
        "{specs:?}"
    );
}

/// The error code of an application insert (0 when it succeeded).
pub async fn insert_code(client: &Client, name: &str, document: Document) -> i32 {
    match coll(client, name).insert_one(document).await {
        Ok(_) => 0,
        Err(error) => code_of(&error),
    }
}

pub fn code_of(error: &mongodb::error::Error) -> i32 {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*error.kind {
        ErrorKind::Command(command) => command.code,
        ErrorKind::Write(WriteFailure::WriteError(write)) => write.code,
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => concern.code,
        ErrorKind::InsertMany(many) => many
            .write_errors
            .as_ref()
            .and_then(|errors| errors.first().map(|e| e.code))
            .unwrap_or(-1),
        _ => -1,
    }
}

pub const USER_WRITES_BLOCKED: i32 = 371;
