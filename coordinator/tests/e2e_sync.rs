//! End-to-end: two clusters, c2c driven through its REST API as with curl, and the
//! destination compared with the source document by document.

mod common;

use std::time::Duration;

use bson::{
    doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, Decimal128, Document, Timestamp,
};
use c2c_engine::filter::{FilterSpec, NamespaceFilter};
use common::{assert_equal, insert_many, Harness};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(120);

/// Every BSON type as a field value.
fn every_type(i: i64) -> Document {
    doc! {
        "double": i as f64 + 0.25,
        "string": format!("s{i}"),
        "object": {"nested": {"deep": i}},
        "array": [1, "two", {"three": 3}, [4]],
        "binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![i as u8, 1, 2] },
        "uuid": Binary { subtype: BinarySubtype::Uuid, bytes: vec![7; 16] },
        "objectId": ObjectId::new(),
        "bool": i % 2 == 0,
        "date": bson::DateTime::from_millis(1_700_000_000_000 + i),
        "null": Bson::Null,
        "regex": bson::Regex { pattern: "^a.*".into(), options: "i".into() },
        "code": Bson::JavaScriptCode("function() {}".into()),
        "int": i as i32,
        "timestamp": Timestamp { time: 1_700_000_000, increment: i as u32 + 1 },
        "long": i,
        "decimal": format!("{i}.5").parse::<Decimal128>().unwrap(),
        "minKey": Bson::MinKey,
        "maxKey": Bson::MaxKey,
    }
}

/// `_id`s of many types in one collection: the copy must be correct across types.
fn mixed_id(i: i64) -> Bson {
    match i % 9 {
        0 => Bson::Int32(i as i32),
        1 => Bson::Int64(i),
        2 => Bson::Double(i as f64 + 0.5),
        3 => Bson::Decimal128(format!("{i}.25").parse().unwrap()),
        4 => Bson::String(format!("id-{i}")),
        5 => Bson::ObjectId(ObjectId::new()),
        6 => Bson::Document(doc! {"k": i}),
        7 => Bson::DateTime(bson::DateTime::from_millis(i)),
        _ => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: i.to_be_bytes().to_vec(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_every_bson_type_and_many_collections_while_the_source_changes() {
    let harness = Harness::start().await;
    let source = harness.source.client.clone();
    for c in 0..12 {
        let documents: Vec<Document> = (0..20_000)
            .map(|i| {
                let mut document = doc! {"_id": mixed_id(i)};
                document.extend(every_type(i));
                document
            })
            .collect();
        insert_many(
            &source,
            &format!("db{}", c % 3),
            &format!("coll{c}"),
            documents,
        )
        .await;
    }
    source
        .database("db0")
        .run_command(doc! {"createIndexes": "coll0", "indexes": [
            {"key": {"string": 1}, "name": "string_1", "unique": true},
            {"key": {"date": 1}, "name": "ttl", "expireAfterSeconds": 3600},
        ]})
        .await
        .unwrap();
    source
        .database("db1")
        .run_command(
            doc! {"create": "view1", "viewOn": "coll1", "pipeline": [{"$match": {"bool": true}}]},
        )
        .await
        .unwrap();

    let (status, reply) = harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    assert_eq!((status, reply), (200, json!({"success": true})));

    // Writes during the copy and during change-event application, including DDL.
    let writer = {
        let source = source.clone();
        tokio::spawn(async move {
            for round in 0..300i64 {
                let coll = source.database("db0").collection::<Document>("coll3");
                coll.insert_one(doc! {"_id": format!("new-{round}"), "v": round})
                    .await
                    .unwrap();
                coll.update_one(doc! {"_id": mixed_id(round * 9 + 1)}, doc! {"$set": {"object.nested.deep": -round, "array.1": "changed"}, "$unset": {"null": ""}}).await.unwrap();
                coll.delete_one(doc! {"_id": mixed_id(round * 9 + 2)})
                    .await
                    .unwrap();
                coll.replace_one(doc! {"_id": mixed_id(round * 9)}, doc! {"replaced": round})
                    .await
                    .unwrap();
                if round == 100 {
                    source
                        .database("db2")
                        .run_command(doc! {"create": "created_later"})
                        .await
                        .unwrap();
                    source.database("db2").run_command(doc! {"createIndexes": "coll2", "indexes": [{"key": {"long": -1}, "name": "long_-1"}]}).await.unwrap();
                }
                if round == 200 {
                    source
                        .database("db1")
                        .collection::<Document>("coll4")
                        .drop()
                        .await
                        .unwrap();
                    source
                        .database("admin")
                        .run_command(doc! {"renameCollection": "db2.coll5", "to": "db2.renamed5"})
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    writer.await.unwrap();
    let report = harness
        .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
        .await;
    assert_equal(&report);
    assert!(
        report.documents >= 110_000,
        "compared only {} documents",
        report.documents
    );

    // The destination's indexes are the sync-time versions: unique and TTL come back at commit.
    let indexes: Vec<Document> = harness
        .destination
        .client
        .database("db0")
        .collection::<Document>("coll0")
        .list_indexes()
        .await
        .unwrap()
        .try_collect_specs()
        .await;
    let string_index = indexes
        .iter()
        .find(|i| i.get_str("name") == Ok("string_1"))
        .expect("index built");
    assert!(!string_index.contains_key("unique"));
    let progress = harness.progress().await;
    assert_eq!(progress["state"], "RUNNING");
    assert_eq!(progress["info"], "change event application");
    assert!(progress["totalEventsApplied"].as_u64().unwrap() > 0);
    harness.stop().await;
}

/// Collects index specs as documents (the typed IndexModel drops unknown options).
trait CollectSpecs {
    async fn try_collect_specs(self) -> Vec<Document>;
}

impl CollectSpecs for mongodb::Cursor<mongodb::IndexModel> {
    async fn try_collect_specs(self) -> Vec<Document> {
        use futures::TryStreamExt;
        let models: Vec<mongodb::IndexModel> = self.try_collect().await.unwrap();
        models
            .into_iter()
            .map(|model| {
                let mut spec = bson::to_document(&model.options.unwrap_or_default()).unwrap();
                spec.insert("key", model.keys);
                spec
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_and_exclude_filters_with_regexes() {
    let harness = Harness::start().await;
    let source = harness.source.client.clone();
    for (db, coll) in [
        ("sales", "accounts_eu"),
        ("sales", "accounts_us"),
        ("sales", "orders"),
        ("marketing", "leads"),
        ("marketing", "secret"),
        ("hr", "people"),
    ] {
        insert_many(
            &source,
            db,
            coll,
            (0..500).map(|i| doc! {"_id": i, "v": i}).collect(),
        )
        .await;
    }
    let include = json!([
        {"database": "sales", "collectionsRegex": {"pattern": "^accounts_", "options": "i"}},
        {"databaseRegex": {"pattern": "^mark", "options": ""}}
    ]);
    let exclude = json!([{"database": "marketing", "collections": ["secret"]}]);
    let (status, reply) = harness
        .post("/api/v1/start", json!({"source": "cluster0", "destination": "cluster1", "includeNamespaces": include, "excludeNamespaces": exclude}))
        .await;
    assert_eq!(status, 200, "{reply}");
    // A write to an excluded collection must not appear; one to an included one must.
    source
        .database("hr")
        .collection::<Document>("people")
        .insert_one(doc! {"_id": "late"})
        .await
        .unwrap();
    source
        .database("sales")
        .collection::<Document>("accounts_eu")
        .insert_one(doc! {"_id": "late"})
        .await
        .unwrap();
    let filter = NamespaceFilter::compile(
        &serde_json::from_value::<Vec<FilterSpec>>(include).unwrap(),
        &serde_json::from_value::<Vec<FilterSpec>>(exclude).unwrap(),
    )
    .unwrap();
    assert_equal(&harness.wait_until_equal(&filter, CONVERGE).await);
    let destination = harness.destination.client.clone();
    let databases = destination.list_database_names().await.unwrap();
    assert!(!databases.contains(&"hr".to_string()), "{databases:?}");
    let sales: Vec<String> = destination
        .database("sales")
        .list_collection_names()
        .await
        .unwrap();
    assert!(!sales.contains(&"orders".to_string()));
    let marketing: Vec<String> = destination
        .database("marketing")
        .list_collection_names()
        .await
        .unwrap();
    assert_eq!(marketing, vec!["leads".to_string()]);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_writing_and_resume_continues() {
    let harness = Harness::start().await;
    let source = harness.source.client.clone();
    insert_many(
        &source,
        "app",
        "items",
        (0..2000).map(|i| doc! {"_id": i}).collect(),
    )
    .await;
    harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    let (status, reply) = harness.post("/api/v1/pause", json!({})).await;
    assert_eq!((status, reply), (200, json!({"success": true})));
    let paused = harness.progress().await;
    assert_eq!(paused["state"], "PAUSED");
    assert!(
        paused["lagTimeSeconds"].is_null() && paused["lag"].is_null(),
        "{paused}"
    );
    source
        .database("app")
        .collection::<Document>("items")
        .insert_one(doc! {"_id": "while-paused"})
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let destination = harness
        .destination
        .client
        .database("app")
        .collection::<Document>("items");
    assert!(
        destination
            .find_one(doc! {"_id": "while-paused"})
            .await
            .unwrap()
            .is_none(),
        "paused but still writing"
    );
    let (status, _) = harness.post("/api/v1/resume", json!({})).await;
    assert_eq!(status, 200);
    assert_equal(
        &harness
            .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
            .await,
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_longer_than_the_oplog_window_still_converges() {
    use c2c_testbed::TestbedConfig;
    let small_oplog = TestbedConfig {
        oplog_retention: Some(500),
        idle_noop_interval: Duration::from_millis(200),
        ..TestbedConfig::default()
    };
    let harness = Harness::start_with(small_oplog, TestbedConfig::default(), false).await;
    let source = harness.source.client.clone();
    insert_many(
        &source,
        "big",
        "docs",
        (0..30_000)
            .map(|i| doc! {"_id": i, "pad": "p".repeat(500)})
            .collect(),
    )
    .await;
    // Slow the destination down so the copy outlasts 500 oplog entries of writes.
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 300})
        .await;
    harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    for i in 0..2_000 {
        source
            .database("big")
            .collection::<Document>("docs")
            .update_one(doc! {"_id": i}, doc! {"$set": {"touched": true}})
            .await
            .unwrap();
    }
    // Four times the retained oplog was written while the copy was still running.
    let progress = harness.progress().await;
    assert_eq!(progress["info"], "collection copy", "{progress}");
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 0})
        .await;
    assert_equal(
        &harness
            .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
            .await,
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_on_both_clusters_are_retried() {
    let harness = Harness::start().await;
    let source = harness.source.client.clone();
    insert_many(
        &source,
        "f",
        "c",
        (0..5_000).map(|i| doc! {"_id": i, "v": i}).collect(),
    )
    .await;
    harness.source.admin(doc! {"configureFailPoint": "failCommand", "mode": {"times": 3}, "data": {"failCommands": ["getMore", "find"], "errorCode": 91}}).await;
    harness.destination.admin(doc! {"configureFailPoint": "failCommand", "mode": {"times": 2}, "data": {"failCommands": ["insert"], "closeConnection": true}}).await;
    harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    harness.destination.admin(doc! {"configureFailPoint": "failCommand", "mode": {"times": 3}, "data": {"failCommands": ["update"], "errorCode": 6}}).await;
    for i in 0..200 {
        source
            .database("f")
            .collection::<Document>("c")
            .update_one(doc! {"_id": i}, doc! {"$inc": {"v": 1}})
            .await
            .unwrap();
    }
    assert_equal(
        &harness
            .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
            .await,
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renames_inside_the_filter_are_followed() {
    let harness = Harness::start().await;
    let source = harness.source.client.clone();
    insert_many(
        &source,
        "kept",
        "a",
        (0..300).map(|i| doc! {"_id": i}).collect(),
    )
    .await;
    let include = json!([{"database": "kept"}]);
    let (status, _) = harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1", "includeNamespaces": include}),
        )
        .await;
    assert_eq!(status, 200);
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    harness
        .source
        .admin(doc! {"renameCollection": "kept.a", "to": "kept.a2"})
        .await;
    source
        .database("kept")
        .collection::<Document>("a2")
        .insert_one(doc! {"_id": "after-rename"})
        .await
        .unwrap();
    let filter = NamespaceFilter::compile(
        &serde_json::from_value::<Vec<FilterSpec>>(include).unwrap(),
        &[],
    )
    .unwrap();
    assert_equal(&harness.wait_until_equal(&filter, CONVERGE).await);
    let names = harness
        .destination
        .client
        .database("kept")
        .list_collection_names()
        .await
        .unwrap();
    assert!(
        names.contains(&"a2".to_string()) && !names.contains(&"a".to_string()),
        "{names:?}"
    );
    harness.stop().await;
}

/// mongosync: "Renaming a filtered collection to a non-filtered name ⇒ mongosync reports
/// an error and stops." The failure must be visible in /progress, never half-applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_out_of_the_filter_stops_the_migration_with_a_clear_error() {
    let harness = Harness::start().await;
    let source = harness.source.client.clone();
    insert_many(
        &source,
        "app",
        "tracked",
        (0..300).map(|i| doc! {"_id": i}).collect(),
    )
    .await;
    let include = json!([{"database": "app", "collections": ["tracked"]}]);
    let (status, _) = harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1", "includeNamespaces": include}),
        )
        .await;
    assert_eq!(status, 200);
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    harness
        .source
        .admin(doc! {"renameCollection": "app.tracked", "to": "app.untracked"})
        .await;
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let progress = harness.progress().await;
        let warnings = progress["warnings"].to_string();
        if warnings.contains("app.tracked") && warnings.contains("app.untracked") {
            assert_eq!(progress["canCommit"], false, "{progress}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error reported: {progress}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The destination still has the collection as it was: nothing was dropped or renamed.
    let count = harness
        .destination
        .client
        .database("app")
        .collection::<Document>("tracked")
        .count_documents(doc! {})
        .await
        .unwrap();
    assert_eq!(count, 300);
    harness.stop().await;
}
