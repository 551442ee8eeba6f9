//! End-to-end cutover and reverse through the REST API, following the two seed
//! procedures, on testbeds with auth on: c2c's user may bypass write blocking, the
//! application's user may not (without auth, as on mongod, nothing would be blocked).

mod common;

use std::time::Duration;

use bson::{doc, Document};
use c2c_engine::filter::NamespaceFilter;
use common::{assert_equal, auth_config, insert_many, Harness};
use futures::TryStreamExt;
use mongodb::Client;
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(120);

async fn start_auth(as_process: bool) -> Harness {
    Harness::start_with(auth_config(), auth_config(), as_process).await
}

fn reversible_start() -> Value {
    json!({"source": "cluster0", "destination": "cluster1", "reversible": true, "enableUserWriteBlocking": "sourceAndDestination"})
}

fn write_error_code(error: &mongodb::error::Error) -> i32 {
    match &*error.kind {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(write)) => {
            write.code
        }
        mongodb::error::ErrorKind::Command(command) => command.code,
        other => panic!("unexpected error {other:?}"),
    }
}

async fn app_insert(client: &Client, id: &str) -> Result<(), i32> {
    client
        .database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! {"_id": id, "by": "app", "email": format!("{id}@app")})
        .await
        .map(|_| ())
        .map_err(|error| write_error_code(&error))
}

async fn index_specs(client: &Client, db: &str, coll: &str) -> Vec<Document> {
    let reply = client
        .database(db)
        .run_command(doc! {"listIndexes": coll})
        .await
        .expect("listIndexes");
    let batch = reply
        .get_document("cursor")
        .expect("cursor")
        .get_array("firstBatch")
        .expect("batch");
    batch
        .iter()
        .filter_map(|b| b.as_document().cloned())
        .collect()
}

async fn load(harness: &Harness) {
    let source = harness.source.client.clone();
    insert_many(&source, "shop", "orders", (0..3_000).map(|i| doc! {"_id": format!("o{i}"), "email": format!("u{i}@x"), "at": bson::DateTime::now()}).collect()).await;
    source
        .database("shop")
        .run_command(doc! {"createIndexes": "orders", "indexes": [
            {"key": {"email": 1}, "name": "email_1", "unique": true},
            {"key": {"at": 1}, "name": "at_ttl", "expireAfterSeconds": 86_400},
            {"key": {"by": 1}, "name": "by_hidden", "hidden": true},
        ]})
        .await
        .expect("indexes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_then_reverse_then_commit_again_as_the_seeds_describe() {
    let harness = start_auth(false).await;
    load(&harness).await;
    let app_source = harness.source.app_client().await;
    let app_destination = harness.destination.app_client().await;
    let (status, reply) = harness.post("/api/v1/start", reversible_start()).await;
    assert_eq!(status, 200, "{reply}");
    // The application keeps writing to the source during the sync; the destination is blocked.
    app_insert(&app_source, "during-sync")
        .await
        .expect("source writable during sync");
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    assert_eq!(app_insert(&app_destination, "too-early").await, Err(371));
    assert_equal(
        &harness
            .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
            .await,
    );

    // Commit: the source is blocked at once, canWrite comes, then COMMITTED.
    let (status, reply) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!((status, reply), (200, json!({"success": true})));
    let (status, reply) = harness.post("/api/v1/commit", json!({})).await;
    assert!(
        status == 409 || status == 400,
        "double commit: {status} {reply}"
    );
    assert_eq!(app_insert(&app_source, "after-commit").await, Err(371));
    harness.wait_for(|p| p["canWrite"] == true, CONVERGE).await;
    app_insert(&app_destination, "on-destination")
        .await
        .expect("destination writable once canWrite");
    let committed = harness.wait_for_state("COMMITTED", CONVERGE).await;
    assert_eq!(committed["info"], "commit completed");
    let indexes = index_specs(&harness.destination.client, "shop", "orders").await;
    let find = |name: &str| {
        indexes
            .iter()
            .find(|i| i.get_str("name") == Ok(name))
            .cloned()
            .expect("index")
    };
    assert_eq!(find("email_1").get_bool("unique"), Ok(true));
    assert!(find("at_ttl").contains_key("expireAfterSeconds"));
    assert_eq!(find("by_hidden").get_bool("hidden"), Ok(true));
    let duplicate = app_destination
        .database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! {"_id": "dup", "email": "u1@x"})
        .await;
    assert_eq!(
        duplicate.map_err(|e| write_error_code(&e)).err(),
        Some(11000)
    );

    // Reverse: the old destination becomes the source; its writes since canWrite flow back.
    let (status, reply) = harness.post("/api/v1/reverse", json!({})).await;
    assert_eq!((status, reply), (200, json!({"success": true})));
    let running = harness.wait_for_state("RUNNING", CONVERGE).await;
    assert!(
        running["directionMapping"]["Source"]
            .as_str()
            .unwrap()
            .starts_with("cluster1"),
        "{running}"
    );
    app_insert(&app_destination, "after-reverse")
        .await
        .expect("new source writable");
    assert_eq!(app_insert(&app_source, "old-source").await, Err(371));
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    let back = harness
        .source
        .client
        .database("shop")
        .collection::<Document>("orders");
    for id in ["on-destination", "after-reverse"] {
        let deadline = std::time::Instant::now() + CONVERGE;
        while back.find_one(doc! {"_id": id}).await.unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "{id} never reached the old source"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let report = c2c_engine::compare::compare_clusters(
        &harness.destination.client,
        &harness.source.client,
        &NamespaceFilter::default(),
    )
    .await
    .unwrap();
    assert_equal(&report);

    // And commit again, in the reverse direction.
    let (status, reply) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "{reply}");
    harness.wait_for_state("COMMITTED", CONVERGE).await;
    app_insert(&app_source, "back-home")
        .await
        .expect("original source writable again");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_cutover_calls_change_nothing() {
    let harness = start_auth(false).await;
    load(&harness).await;
    // Not reversible, with a filter.
    let (status, _) = harness
        .post("/api/v1/start", json!({"source": "cluster0", "destination": "cluster1", "includeNamespaces": [{"database": "shop"}]}))
        .await;
    assert_eq!(status, 200);
    let (status, reply) = harness.post("/api/v1/reverse", json!({})).await;
    assert!(
        (400..500).contains(&status),
        "reverse while RUNNING: {status} {reply}"
    );
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    let (status, reply) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "{reply}");
    harness.wait_for_state("COMMITTED", CONVERGE).await;
    let before: Vec<Document> = harness
        .destination
        .client
        .database("shop")
        .collection::<Document>("orders")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let (status, reply) = harness.post("/api/v1/reverse", json!({})).await;
    assert!(
        (400..500).contains(&status),
        "reverse without reversible: {status} {reply}"
    );
    assert!(
        reply["errorDescription"]
            .as_str()
            .unwrap_or_default()
            .contains("reversible"),
        "{reply}"
    );
    let after: Vec<Document> = harness
        .destination
        .client
        .database("shop")
        .collection::<Document>("orders")
        .find(doc! {})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(before, after);
    assert_eq!(harness.progress().await["state"], "COMMITTED");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_before_can_commit_is_refused() {
    let harness = start_auth(false).await;
    insert_many(
        &harness.source.client,
        "big",
        "docs",
        (0..30_000)
            .map(|i| doc! {"_id": i, "pad": "p".repeat(400)})
            .collect(),
    )
    .await;
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 200})
        .await;
    harness.post("/api/v1/start", reversible_start()).await;
    let (status, reply) = harness.post("/api/v1/commit", json!({})).await;
    assert!((400..500).contains(&status), "{status} {reply}");
    assert!(
        reply["errorDescription"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("cancommit"),
        "{reply}"
    );
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 0})
        .await;
    assert_eq!(harness.progress().await["state"], "RUNNING");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_block_the_unique_conversion_and_are_reported() {
    let harness = start_auth(false).await;
    load(&harness).await;
    // Verification off: the verifier would (rightly) fail the migration on the stray
    // document first; this test is about the index conversion's report.
    let (status, reply) = harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1", "verification": {"enabled": false}}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    // A stray write on the destination (c2c's user bypasses the block): the destination's
    // non-unique copy of email_1 now holds a duplicate the source never had.
    let destination = harness
        .destination
        .client
        .database("shop")
        .collection::<Document>("orders");
    destination
        .insert_one(doc! {"_id": "stray", "email": "u7@x"})
        .await
        .unwrap();
    let (status, _) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let progress = harness.progress().await;
        let warnings = progress["warnings"].to_string();
        if warnings.contains("email_1") && warnings.contains("stray") {
            assert_eq!(progress["state"], "COMMITTING", "{progress}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "duplicates not reported: {progress}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing was dropped to make the index unique.
    assert!(destination
        .find_one(doc! {"_id": "stray"})
        .await
        .unwrap()
        .is_some());
    assert!(destination
        .find_one(doc! {"_id": "o7"})
        .await
        .unwrap()
        .is_some());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_destination_write_fails_verification_naming_the_document() {
    let harness = start_auth(false).await;
    load(&harness).await;
    let (status, reply) = harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    harness
        .wait_for(
            |p| p["canCommit"] == true && p["verification"]["source"]["phase"] == "stream hashing",
            CONVERGE,
        )
        .await;
    harness
        .destination
        .client
        .database("shop")
        .collection::<Document>("orders")
        .insert_one(doc! {"_id": "stray", "email": "u7@x"})
        .await
        .unwrap();
    let progress = harness
        .wait_for(|p| p["verification"]["mismatchCount"] == 1, CONVERGE)
        .await;
    assert_eq!(
        progress["verification"]["mismatches"],
        json!([{"namespace": "shop.orders", "id": "stray", "kind": "extra on destination"}]),
        "{progress}"
    );
    assert_eq!(progress["canCommit"], false, "{progress}");
    let failed = harness
        .wait_for(
            |p| p["warnings"].to_string().contains("verification found"),
            CONVERGE,
        )
        .await;
    assert!(
        failed["warnings"]
            .to_string()
            .contains("shop.orders: extra on destination for _id \\\"stray\\\""),
        "{failed}"
    );
    let (status, reply) = harness.post("/api/v1/commit", json!({})).await;
    assert!((400..500).contains(&status), "{status} {reply}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_commit_then_restart_finishes_it() {
    let mut harness = start_auth(true).await;
    load(&harness).await;
    harness.post("/api/v1/start", reversible_start()).await;
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    // Slow the destination so the commit is still in flight when the process dies.
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 150})
        .await;
    let (status, reply) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "{reply}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.kill_and_restart_in_any_state().await;
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 0})
        .await;
    // No /start needed: a restart finishes the commit on its own.
    harness.wait_for_state("COMMITTED", CONVERGE).await;
    let indexes = index_specs(&harness.destination.client, "shop", "orders").await;
    assert!(indexes
        .iter()
        .any(|i| i.get_str("name") == Ok("email_1") && i.get_bool("unique") == Ok(true)));
    assert_equal(
        &c2c_engine::compare::compare_clusters(
            &harness.source.client,
            &harness.destination.client,
            &NamespaceFilter::default(),
        )
        .await
        .unwrap(),
    );
    harness.stop().await;
}
