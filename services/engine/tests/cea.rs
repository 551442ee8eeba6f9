//! Change-event application against two testbeds: CRUD and DDL replayed onto a copied
//! destination, per-key order under parallel lanes, spilling, resume from a checkpoint,
//! history lost, and transient errors on both clusters.

#[path = "cea/support.rs"]
mod support;

use std::time::Duration;

use bson::{doc, Bson, Document};
use c2c_engine::cea::{ApplierOptions, StartAt};
use c2c_engine::filter::{FilterSpec, NamespaceFilter};
use c2c_engine::metadata::Metadata;
use c2c_engine::options::LoadLevel;
use c2c_engine::progress::Phase;
use c2c_engine::{EngineError, Namespace};
use mongodb::Collection;
use support::*;

fn coll(clusters: &Clusters, db: &str, name: &str) -> Collection<Document> {
    clusters.source.database(db).collection(name)
}

async fn seed(users: &Collection<Document>, count: i32) {
    let documents: Vec<Document> = (0..count)
        .map(|i| doc! {"_id": i, "name": format!("user{i}"), "n": 0, "arr": (0..8).collect::<Vec<i32>>(), "nested": {"a": {"b": i, "c": [ {"x": 1}, {"x": 2} ]}}, "gone": true})
        .collect();
    users.insert_many(documents).await.expect("seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_and_ddl_converge_after_an_initial_copy() {
    let clusters = clusters().await;
    let users = coll(&clusters, "app", "users");
    seed(&users, 40).await;
    clusters.source.database("app").run_command(doc! {"createIndexes": "users", "indexes": [{"key": {"name": 1}, "name": "name_1", "unique": true}]}).await.expect("index");
    let filter = NamespaceFilter::default();
    let t0 = source_time(&clusters.source).await;
    // Writes between T0 and the copy: the copy sees them and the stream replays them.
    users
        .update_one(id(1), doc! {"$set": {"nested.a.b": "early"}})
        .await
        .expect("early update");
    users.delete_one(id(2)).await.expect("early delete");
    // The copy sees `nested.a` as a number, so replaying the first update on the
    // destination fails (PathNotViable) and must fall back to the source's document.
    users
        .update_one(id(11), doc! {"$set": {"nested.a.b": "x"}})
        .await
        .expect("path");
    users
        .update_one(id(11), doc! {"$set": {"nested.a": 5}})
        .await
        .expect("path gone");
    users
        .update_one(id(12), doc! {"$set": {"arr.7": 70}})
        .await
        .expect("element");
    users
        .update_one(id(12), doc! {"$set": {"arr": []}})
        .await
        .expect("emptied");
    initial_copy(&clusters, &filter).await;
    let running = start(
        &clusters,
        &filter,
        StartAt::OperationTime(t0),
        spill("ddl", 64 << 20, 4 << 20),
    );

    // CRUD of every shape.
    users
        .update_one(
            id(3),
            doc! {"$set": {"nested.a.b": 33, "arr.2": "two"}, "$unset": {"gone": ""}},
        )
        .await
        .expect("set");
    users
        .update_one(id(4), doc! {"$pop": {"arr": 1}})
        .await
        .expect("pop");
    users
        .update_one(id(5), doc! {"$pull": {"arr": {"$in": [0, 3]}}})
        .await
        .expect("pull");
    users
        .update_one(
            id(6),
            doc! {"$push": {"nested.a.c": {"x": 3}}, "$inc": {"n": 5}},
        )
        .await
        .expect("push");
    users
        .update_one(id(7), doc! {"$set": {"nested.a.c.1.x": 20}})
        .await
        .expect("array element");
    users
        .update_one(id(8), doc! {"$set": {"arr": [1]}})
        .await
        .expect("shrink by set");
    users
        .replace_one(id(9), doc! {"_id": 9, "replaced": true})
        .await
        .expect("replace");
    users.delete_one(id(10)).await.expect("delete");
    users
        .insert_many((100..110).map(|i| doc! {"_id": i, "name": format!("new{i}")}))
        .await
        .expect("insert");
    users
        .update_one(id(1), doc! {"$set": {"nested.a": 5}})
        .await
        .expect("path type change");

    // DDL: create with options, indexes, collMod, rename, drop, dropDatabase.
    let app = clusters.source.database("app");
    app.run_command(doc! {"create": "events", "validator": {"kind": {"$exists": true}}})
        .await
        .expect("create");
    coll(&clusters, "app", "events")
        .insert_many((0..5).map(|i| doc! {"_id": i, "kind": "k", "ts": bson::DateTime::now()}))
        .await
        .expect("events");
    app.run_command(doc! {"createIndexes": "users", "indexes": [{"key": {"n": 1}, "name": "n_1"}]})
        .await
        .expect("index n");
    app.run_command(doc! {"createIndexes": "events", "indexes": [{"key": {"ts": 1}, "name": "ts_1", "expireAfterSeconds": 3600}]}).await.expect("ttl");
    app.run_command(doc! {"collMod": "users", "index": {"name": "name_1", "hidden": true}})
        .await
        .expect("hide");
    app.run_command(doc! {"collMod": "events", "validationLevel": "moderate"})
        .await
        .expect("validation");
    app.run_command(doc! {"dropIndexes": "users", "index": "n_1"})
        .await
        .expect("drop index");
    clusters
        .source
        .database("admin")
        .run_command(doc! {"renameCollection": "app.events", "to": "app.log"})
        .await
        .expect("rename");
    coll(&clusters, "app", "log")
        .update_one(id(1), doc! {"$set": {"kind": "renamed"}})
        .await
        .expect("after rename");
    coll(&clusters, "app", "tmp")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("tmp");
    coll(&clusters, "app", "tmp").drop().await.expect("drop");
    coll(&clusters, "other", "x")
        .insert_many((0..3).map(|i| doc! {"_id": i}))
        .await
        .expect("other");
    clusters
        .source
        .database("other")
        .drop()
        .await
        .expect("dropDatabase");

    caught_up(&clusters, &running).await;
    assert_same(&clusters, &["app", "other"]).await;
    assert!(collections(&clusters.destination, "other").await.is_empty());
    assert_eq!(
        running.progress.phase(),
        Some(Phase::SteadyState),
        "drained once → steady state"
    );
    assert!(
        running
            .progress
            .events_applied
            .load(std::sync::atomic::Ordering::Relaxed)
            > 20
    );

    // The original index forms are recorded for commit, not applied.
    let records = Metadata::new(&clusters.destination)
        .load_namespaces()
        .await
        .expect("records");
    let users_record = records
        .iter()
        .find(|r| r.ns == Namespace::new("app", "users"))
        .expect("users record");
    let name_index = users_record
        .source_indexes
        .iter()
        .find(|s| s.get_str("name") == Ok("name_1"))
        .expect("name_1");
    assert_eq!(name_index.get_bool("hidden"), Ok(true));
    assert_eq!(name_index.get_bool("unique"), Ok(true));
    assert!(users_record
        .source_indexes
        .iter()
        .all(|s| s.get_str("name") != Ok("n_1")));
    let log = records
        .iter()
        .find(|r| r.ns == Namespace::new("app", "log"))
        .expect("renamed record");
    assert!(log
        .source_indexes
        .iter()
        .any(|s| s.get_str("name") == Ok("ts_1") && s.contains_key("expireAfterSeconds")));
    assert_eq!(log.options.get_str("validationLevel"), Ok("moderate"));
    assert!(!records
        .iter()
        .any(|r| r.ns.coll == "events" || r.ns.coll == "tmp" || r.ns.db == "other"));
    let dest_options = clusters
        .destination
        .database("app")
        .run_command(doc! {"listCollections": 1, "filter": {"name": "log"}})
        .await
        .expect("list");
    assert!(
        format!("{dest_options}").contains("moderate"),
        "validator changes are applied: {dest_options}"
    );
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_per_key_holds_across_lanes_and_through_the_spill_files() {
    let clusters = clusters().await;
    let filter = NamespaceFilter::default();
    let hot = coll(&clusters, "app", "hot");
    hot.insert_many((0..20).map(|i| doc! {"_id": i, "v": 0, "log": []}))
        .await
        .expect("seed");
    // Interleaved with `hot`, deletes and re-inserts of the same documents between
    // updates of others: the applier batches by collection and by kind, and must never
    // let one document's events pass each other.
    let warm = coll(&clusters, "app", "warm");
    warm.insert_many((0..12).map(|i| doc! {"_id": i, "v": 0}))
        .await
        .expect("seed warm");
    let t0 = source_time(&clusters.source).await;
    initial_copy(&clusters, &filter).await;
    // A tiny memory bound: nearly everything goes through segment files.
    let mut running = start_reader(
        &clusters,
        &filter,
        StartAt::OperationTime(t0),
        spill("order", 4096, 16 << 10),
    );
    for round in 0..300 {
        let churned = round % 5;
        warm.delete_one(id(churned)).await.expect("warm delete");
        if round % 7 != 3 {
            warm.insert_one(doc! {"_id": churned, "round": round})
                .await
                .expect("warm reinsert");
        }
        warm.update_one(id(5 + round % 7), doc! {"$inc": {"v": 1}})
            .await
            .expect("warm inc");
        hot.update_one(id(0), doc! {"$set": {"v": round}})
            .await
            .expect("hot set");
        hot.update_one(id(1), doc! {"$push": {"log": round}})
            .await
            .expect("hot push");
        if round % 50 == 49 {
            hot.update_one(id(1), doc! {"$pop": {"log": -1}})
                .await
                .expect("hot pop");
            hot.replace_one(id(2), doc! {"_id": 2, "round": round})
                .await
                .expect("replace");
        }
        hot.update_one(id(3 + round % 17), doc! {"$inc": {"v": 1}})
            .await
            .expect("other");
        if round % 30 == 0 {
            hot.delete_one(id(19)).await.expect("delete");
            hot.insert_one(doc! {"_id": 19, "round": round})
                .await
                .expect("reinsert");
        }
    }
    // Let the reader buffer a backlog before anything is applied.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while running.spill.len() < 900 {
        assert!(
            std::time::Instant::now() < deadline,
            "reader buffered only {}",
            running.spill.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let options = ApplierOptions {
        load_level: LoadLevel::new(4).expect("level"),
        max_batch: 257,
        ..Default::default()
    };
    start_applier(&clusters, &filter, &mut running, options);
    caught_up(&clusters, &running).await;
    assert!(
        running.spill.spilled_total() > 500,
        "events went through disk"
    );
    assert_same(&clusters, &["app"]).await;
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_the_checkpoint_after_a_stop_converges() {
    let clusters = clusters().await;
    let filter = NamespaceFilter::default();
    let counters = coll(&clusters, "app", "counters");
    counters
        .insert_many((0..10).map(|i| doc! {"_id": i, "n": 0, "hist": []}))
        .await
        .expect("seed");
    let t0 = source_time(&clusters.source).await;
    initial_copy(&clusters, &filter).await;
    let running = start(
        &clusters,
        &filter,
        StartAt::OperationTime(t0),
        spill("resume1", 1 << 20, 64 << 10),
    );
    for round in 0..200 {
        counters
            .update_one(
                id(round % 10),
                doc! {"$inc": {"n": 1}, "$push": {"hist": round}},
            )
            .await
            .expect("inc");
        if round == 120 {
            // Stop mid-stream: whatever was applied but not checkpointed is replayed.
            running.cancel.cancel();
        }
    }
    stop(running).await;
    let checkpoint = Metadata::new(&clusters.destination)
        .load_cea_checkpoint()
        .await
        .expect("load")
        .expect("a checkpoint exists");
    let running = start(
        &clusters,
        &filter,
        StartAt::After(checkpoint.token),
        spill("resume2", 1 << 20, 64 << 10),
    );
    for round in 200..260 {
        counters
            .update_one(
                id(round % 10),
                doc! {"$inc": {"n": 1}, "$push": {"hist": round}},
            )
            .await
            .expect("inc");
    }
    caught_up(&clusters, &running).await;
    assert_same(&clusters, &["app"]).await;
    let total: i32 = documents(&clusters.destination, &Namespace::new("app", "counters"))
        .await
        .iter()
        .map(|d| d.get_i32("n").unwrap_or(-1000))
        .sum();
    assert_eq!(total, 260, "every increment applied exactly once in effect");
    stop(running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lost_is_fatal_and_clear() {
    let clusters = clusters().await;
    let filter = NamespaceFilter::default();
    let t0 = source_time(&clusters.source).await;
    clusters
        .source
        .database("admin")
        .run_command(doc! {"testbedSetOplogRetention": 1, "entries": 5})
        .await
        .expect("retention");
    let items = coll(&clusters, "app", "items");
    for i in 0..30 {
        items.insert_one(doc! {"_id": i}).await.expect("insert");
    }
    let running = start_reader(
        &clusters,
        &filter,
        StartAt::OperationTime(t0),
        spill("lost", 1 << 20, 64 << 10),
    );
    let outcome = tokio::time::timeout(Duration::from_secs(30), running.reader)
        .await
        .expect("reader stops")
        .expect("task");
    assert!(
        matches!(outcome, Err(EngineError::HistoryLost(_))),
        "got {outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_on_both_clusters_are_retried() {
    let clusters = clusters().await;
    let filter = NamespaceFilter::default();
    let items = coll(&clusters, "app", "items");
    items
        .insert_many((0..20).map(|i| doc! {"_id": i, "v": 0}))
        .await
        .expect("seed");
    let t0 = source_time(&clusters.source).await;
    initial_copy(&clusters, &filter).await;
    let fail = |commands: Vec<&str>, times: i32| {
        doc! {"configureFailPoint": "failCommand", "mode": {"times": times}, "data": {"failCommands": commands, "errorCode": 91}}
    };
    clusters
        .destination
        .database("admin")
        .run_command(fail(vec!["update"], 3))
        .await
        .expect("destination failpoint");
    clusters
        .source
        .database("admin")
        .run_command(fail(vec!["getMore"], 2))
        .await
        .expect("source failpoint");
    let running = start(
        &clusters,
        &filter,
        StartAt::OperationTime(t0),
        spill("transient", 1 << 20, 64 << 10),
    );
    for round in 0..100 {
        items
            .update_one(
                id(round % 20),
                doc! {"$set": {"v": round, "s": Bson::String(format!("r{round}"))}},
            )
            .await
            .expect("update");
        if round == 50 {
            clusters
                .destination
                .database("admin")
                .run_command(fail(vec!["update", "delete"], 2))
                .await
                .expect("again");
            items.delete_one(id(7)).await.expect("delete");
        }
    }
    caught_up(&clusters, &running).await;
    assert_same(&clusters, &["app"]).await;
    stop(running).await;
}

/// Renames the source's `app.<from>` to `app.<to>` under a filter of `app.kept` and
/// `app.incoming`; the applier must stop with a fatal error naming both and `expected`.
async fn refused_rename(from: &str, to: &str, expected: &str) {
    let clusters = clusters().await;
    let spec: FilterSpec = serde_json::from_value(
        serde_json::json!({"database": "app", "collections": ["kept", "incoming"]}),
    )
    .expect("spec");
    let filter = NamespaceFilter::compile(&[spec], &[]).expect("filter");
    for name in ["kept", "outside"] {
        coll(&clusters, "app", name)
            .insert_one(doc! {"_id": 1})
            .await
            .expect("seed");
    }
    let t0 = source_time(&clusters.source).await;
    initial_copy(&clusters, &filter).await;
    let running = start(
        &clusters,
        &filter,
        StartAt::OperationTime(t0),
        spill(&format!("rename-{from}"), 1 << 20, 64 << 10),
    );
    clusters
        .source
        .database("admin")
        .run_command(doc! {"renameCollection": format!("app.{from}"), "to": format!("app.{to}")})
        .await
        .expect("rename");
    let applier = running.applier.expect("applier");
    let outcome = tokio::time::timeout(Duration::from_secs(30), applier)
        .await
        .expect("applier stops")
        .expect("task");
    match outcome {
        Err(EngineError::Fatal(message)) => assert!(
            message.contains(&format!("app.{from}"))
                && message.contains(&format!("app.{to}"))
                && message.contains(expected),
            "{message}"
        ),
        other => panic!("expected a fatal rename error, got {other:?}"),
    }
    running.cancel.cancel();
}

/// mongosync stops on a rename out of the filter, and on one into it from a name it
/// excludes (the destination never had those documents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_across_the_filter_stop_with_a_clear_error() {
    refused_rename("kept", "elsewhere", "does not include").await;
    refused_rename("outside", "incoming", "includes only the new name").await;
}

/// Between T0 and the copy, a collection is renamed and one of its old name created
/// again: the copy holds both by then, so replaying the rename from T0 must neither fail
/// (NamespaceExists) nor move the new collection over the renamed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_the_copy_already_reflects_is_skipped() {
    let clusters = clusters().await;
    let filter = NamespaceFilter::default();
    coll(&clusters, "app", "x")
        .insert_many((0..50).map(|i| doc! {"_id": i, "old": true}))
        .await
        .expect("seed");
    let t0 = source_time(&clusters.source).await;
    clusters
        .source
        .database("admin")
        .run_command(doc! {"renameCollection": "app.x", "to": "app.y"})
        .await
        .expect("rename");
    coll(&clusters, "app", "x")
        .insert_many((100..120).map(|i| doc! {"_id": i, "new": true}))
        .await
        .expect("recreate");
    initial_copy(&clusters, &filter).await;
    let running = start(
        &clusters,
        &filter,
        StartAt::OperationTime(t0),
        spill("rename-copied", 1 << 20, 64 << 10),
    );
    coll(&clusters, "app", "y")
        .update_one(id(3), doc! {"$set": {"after": 1}})
        .await
        .expect("update y");
    coll(&clusters, "app", "x")
        .delete_one(id(100))
        .await
        .expect("delete from x");
    caught_up(&clusters, &running).await;
    assert_same(&clusters, &["app"]).await;
    stop(running).await;
}
