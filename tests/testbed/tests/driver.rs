//! Conformance through the official Rust driver: the testbed must be accepted as a
//! replica-set primary and behave as mongod where sync bugs hide.

use std::time::Duration;

use bson::{doc, oid::ObjectId, Bson, Document, Timestamp};
use c2c_testbed::{RoleRef, Testbed, TestbedConfig, TestbedHandle, UserSpec};
use futures::TryStreamExt;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

async fn start(config: TestbedConfig) -> (TestbedHandle, Client) {
    let testbed = Testbed::start(config).await.expect("start testbed");
    let client = connect(&testbed.uri()).await;
    (testbed, client)
}

async fn connect(uri: &str) -> Client {
    let mut options = ClientOptions::parse(uri).await.expect("parse uri");
    options.server_selection_timeout = Some(Duration::from_secs(5));
    Client::with_options(options).expect("client")
}

fn fast_config() -> TestbedConfig {
    TestbedConfig {
        idle_noop_interval: Duration::from_millis(100),
        ..TestbedConfig::default()
    }
}

async fn command_error(result: mongodb::error::Result<Document>) -> (i32, String) {
    match result {
        Ok(reply) => panic!("expected an error, got {reply}"),
        Err(error) => match *error.kind {
            mongodb::error::ErrorKind::Command(ref command) => {
                (command.code, command.message.clone())
            }
            ref other => panic!("not a command error: {other:?}"),
        },
    }
}

fn write_error_code(error: &mongodb::error::Error) -> i32 {
    match &*error.kind {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(write)) => {
            write.code
        }
        mongodb::error::ErrorKind::InsertMany(failure) => failure
            .write_errors
            .as_ref()
            .and_then(|e| e.first())
            .map(|e| e.code)
            .unwrap_or(-1),
        mongodb::error::ErrorKind::Command(command) => command.code,
        other => panic!("unexpected error kind {other:?}"),
    }
}

/// Every document `find` returns, through the driver's cursor (getMores included).
async fn find_all(find: mongodb::action::Find<'_, Document>) -> Vec<Document> {
    find.await
        .expect("find")
        .try_collect()
        .await
        .expect("documents")
}

#[tokio::test]
async fn handshake_as_replica_set_primary_with_cluster_time() {
    let (testbed, client) = start(fast_config()).await;
    let admin = client.database("admin");
    let hello = admin.run_command(doc! {"hello": 1}).await.unwrap();
    assert!(hello.get_bool("isWritablePrimary").unwrap());
    assert_eq!(hello.get_str("setName").unwrap(), "rs0");
    assert_eq!(
        hello.get_array("hosts").unwrap()[0].as_str().unwrap(),
        testbed.host()
    );
    assert_eq!(hello.get_i32("maxWireVersion").unwrap(), 21);
    assert!(hello.get_document("$clusterTime").is_ok());
    assert!(hello.get_timestamp("operationTime").is_ok());
    let build = admin.run_command(doc! {"buildInfo": 1}).await.unwrap();
    assert!(build.get_str("version").unwrap().starts_with("7.0"));
    let (code, message) = command_error(admin.run_command(doc! {"noSuchCommand": 1}).await).await;
    assert_eq!(code, 59);
    assert_eq!(message, "no such command: 'noSuchCommand'");
    testbed.shutdown().await;
}

#[tokio::test]
async fn two_instances_have_independent_clocks_and_data() {
    let (a, client_a) = start(fast_config()).await;
    let (b, client_b) = start(fast_config()).await;
    client_a
        .database("d")
        .collection::<Document>("c")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    assert_eq!(
        client_b
            .database("d")
            .collection::<Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap(),
        0
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn sort_follows_canonical_bson_order_across_types() {
    let (testbed, client) = start(fast_config()).await;
    let coll: Collection<Document> = client.database("d").collection("mixed");
    let values = vec![
        Bson::MaxKey,
        Bson::Boolean(true),
        Bson::ObjectId(ObjectId::parse_str("000000000000000000000001").unwrap()),
        Bson::Document(doc! {"a": 1}),
        Bson::String("10".into()),
        Bson::String("9".into()),
        Bson::Int64(9),
        Bson::Double(9.5),
        Bson::Int32(10),
        Bson::Null,
        Bson::MinKey,
        Bson::Timestamp(Timestamp {
            time: 1,
            increment: 1,
        }),
        Bson::DateTime(bson::DateTime::from_millis(5)),
    ];
    for (i, value) in values.iter().enumerate() {
        coll.insert_one(doc! {"_id": value.clone(), "i": i as i32})
            .await
            .unwrap();
    }
    let sorted: Vec<Document> = coll
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let ids: Vec<Bson> = sorted
        .iter()
        .map(|d| d.get("_id").unwrap().clone())
        .collect();
    let expected = vec![
        Bson::MinKey,
        Bson::Null,
        Bson::Int64(9),
        Bson::Double(9.5),
        Bson::Int32(10),
        Bson::String("10".into()),
        Bson::String("9".into()),
        Bson::Document(doc! {"a": 1}),
        Bson::ObjectId(ObjectId::parse_str("000000000000000000000001").unwrap()),
        Bson::Boolean(true),
        Bson::DateTime(bson::DateTime::from_millis(5)),
        Bson::Timestamp(Timestamp {
            time: 1,
            increment: 1,
        }),
        Bson::MaxKey,
    ];
    assert_eq!(ids, expected);
    testbed.shutdown().await;
}

/// An `_id` equality is answered from the `_id` index (a point lookup, not a scan of the
/// collection), with mongod's results: numbers equal across types, the rest of the filter
/// applied to the document found, skip, limit and projection kept.
#[tokio::test]
async fn an_id_equality_finds_its_document_with_the_rest_of_the_filter() {
    let (testbed, client) = start(fast_config()).await;
    let coll: Collection<Document> = client.database("d").collection("points");
    coll.insert_many(vec![
        doc! {"_id": 5i64, "x": 1, "a": 1},
        doc! {"_id": 7.5, "x": 2},
        doc! {"_id": "s", "x": 3, "b": 2},
        doc! {"_id": {"k": 1}, "x": 4},
        doc! {"_id": Bson::Null, "x": 5},
    ])
    .await
    .unwrap();
    let ids = |found: Vec<Document>| -> Vec<Bson> {
        found
            .iter()
            .map(|d| d.get("_id").cloned().unwrap())
            .collect()
    };
    assert_eq!(
        ids(find_all(coll.find(doc! {"_id": 5})).await),
        [Bson::Int64(5)]
    );
    assert_eq!(
        ids(find_all(coll.find(doc! {"_id": 5.0, "x": 1})).await),
        [Bson::Int64(5)]
    );
    assert!(find_all(coll.find(doc! {"_id": 5, "x": 2}))
        .await
        .is_empty());
    assert!(find_all(coll.find(doc! {"_id": 99})).await.is_empty());
    assert_eq!(
        ids(find_all(coll.find(doc! {"_id": {"$in": [7.5]}})).await),
        [Bson::Double(7.5)]
    );
    assert_eq!(
        ids(find_all(coll.find(doc! {"_id": "s", "$or": [{"a": 1}, {"b": 2}]})).await),
        [Bson::String("s".into())]
    );
    assert!(
        find_all(coll.find(doc! {"_id": "s", "$or": [{"a": 1}, {"b": 3}]}))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(find_all(coll.find(doc! {"_id": Bson::Null})).await),
        [Bson::Null]
    );
    assert_eq!(
        ids(find_all(coll.find(doc! {"_id": {"k": 1}})).await),
        [Bson::Document(doc! {"k": 1})]
    );
    let projected = find_all(
        coll.find(doc! {"_id": 5})
            .projection(doc! {"x": 1, "_id": 0}),
    )
    .await;
    assert_eq!(projected, [doc! {"x": 1}]);
    assert!(find_all(coll.find(doc! {"_id": 5}).skip(1))
        .await
        .is_empty());
    assert_eq!(
        find_all(coll.find(doc! {"_id": 5}).sort(doc! {"x": -1}).limit(1))
            .await
            .len(),
        1
    );
    testbed.shutdown().await;
}

#[tokio::test]
async fn range_predicates_bracket_types_but_min_max_bounds_do_not() {
    let (testbed, client) = start(fast_config()).await;
    let coll: Collection<Document> = client.database("d").collection("ids");
    coll.insert_many(vec![
        doc! {"_id": 1},
        doc! {"_id": 5i64},
        doc! {"_id": 7.5},
        doc! {"_id": "x"},
        doc! {"_id": ObjectId::new()},
    ])
    .await
    .unwrap();
    // $gt only returns numbers: a "resume from lastId with $gt" copy skips other types.
    let numbers: Vec<Document> = coll
        .find(doc! {"_id": {"$gt": 1}})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(numbers.len(), 2);
    // MinKey crosses every bracket.
    assert_eq!(
        coll.count_documents(doc! {"_id": {"$gt": Bson::MinKey}})
            .await
            .unwrap(),
        5
    );
    // Index bounds with hint + min/max cover every type in canonical order.
    let ranged: Vec<Document> = coll
        .find(doc! {})
        .hint(mongodb::options::Hint::Keys(doc! {"_id": 1}))
        .min(doc! {"_id": 5})
        .max(doc! {"_id": Bson::MaxKey})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ranged.len(), 4);
    assert_eq!(ranged[2].get_str("_id").unwrap(), "x");
    testbed.shutdown().await;
}

#[tokio::test]
async fn unique_indexes_enforce_numeric_equality_null_and_multikey() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("d");
    let coll: Collection<Document> = db.collection("u");
    coll.insert_one(doc! {"_id": 1}).await.unwrap();
    let error = coll.insert_one(doc! {"_id": 1.0}).await.unwrap_err();
    assert_eq!(write_error_code(&error), 11000);
    db.run_command(
        doc! {"createIndexes": "u", "indexes": [{"key": {"a": 1}, "name": "a_1", "unique": true}]},
    )
    .await
    .unwrap();
    coll.insert_one(doc! {"_id": 2, "a": [1, 1, 2]})
        .await
        .unwrap();
    let error = coll
        .insert_one(doc! {"_id": 3, "a": 2i64})
        .await
        .unwrap_err();
    assert_eq!(write_error_code(&error), 11000);
    // _id 1 has no `a`: it is indexed as null, so a second missing `a` collides.
    let error = coll.insert_one(doc! {"_id": 4}).await.unwrap_err();
    assert_eq!(write_error_code(&error), 11000);
    db.run_command(doc! {"createIndexes": "u", "indexes": [{"key": {"b": 1}, "name": "b_1", "unique": true, "sparse": true}]}).await.unwrap();
    coll.insert_one(doc! {"_id": 5, "a": 5}).await.unwrap();
    coll.insert_one(doc! {"_id": 6, "a": 6}).await.unwrap();
    testbed.shutdown().await;
}

#[tokio::test]
async fn prepare_unique_then_conversion_reports_violations() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("d");
    let coll: Collection<Document> = db.collection("p");
    db.run_command(doc! {"createIndexes": "p", "indexes": [{"key": {"k": 1}, "name": "k_1"}]})
        .await
        .unwrap();
    coll.insert_many(vec![
        doc! {"_id": 1, "k": 1},
        doc! {"_id": 2, "k": 1},
        doc! {"_id": 3, "k": 2},
    ])
    .await
    .unwrap();
    let (code, _) = command_error(
        db.run_command(doc! {"collMod": "p", "index": {"name": "k_1", "unique": true}})
            .await,
    )
    .await;
    assert_eq!(code, 72);
    let reply = db
        .run_command(doc! {"collMod": "p", "index": {"name": "k_1", "prepareUnique": true}})
        .await
        .unwrap();
    assert!(reply.get_bool("prepareUnique_new").unwrap());
    // New duplicates are refused while the old ones stay.
    let error = coll.insert_one(doc! {"_id": 4, "k": 2}).await.unwrap_err();
    assert_eq!(write_error_code(&error), 11000);
    let result = db
        .run_command(
            doc! {"collMod": "p", "index": {"name": "k_1", "unique": true}, "dryRun": true},
        )
        .await;
    let error = result.unwrap_err();
    let mongodb::error::ErrorKind::Command(command) = &*error.kind else {
        panic!("{error}")
    };
    assert_eq!(command.code, 359);
    coll.delete_one(doc! {"_id": 2}).await.unwrap();
    let reply = db
        .run_command(doc! {"collMod": "p", "index": {"name": "k_1", "unique": true}})
        .await
        .unwrap();
    assert!(reply.get_bool("unique_new").unwrap());
    let indexes: Vec<Document> = db
        .run_command(doc! {"listIndexes": "p"})
        .await
        .unwrap()
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .iter()
        .map(|b| b.as_document().unwrap().clone())
        .collect();
    assert!(indexes[1].get_bool("unique").unwrap());
    testbed.shutdown().await;
}

#[tokio::test]
async fn force_non_unique_turns_a_unique_index_back_to_plain() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("d");
    let coll: Collection<Document> = db.collection("f");
    db.run_command(
        doc! {"createIndexes": "f", "indexes": [{"key": {"k": 1}, "name": "k_1", "unique": true}]},
    )
    .await
    .unwrap();
    coll.insert_one(doc! {"_id": 1, "k": 1}).await.unwrap();
    let (code, _) = command_error(
        db.run_command(
            doc! {"collMod": "f", "index": {"name": "k_1", "forceNonUnique": true, "unique": true}},
        )
        .await,
    )
    .await;
    assert_eq!(code, 72);
    let (code, _) = command_error(
        db.run_command(doc! {"collMod": "f", "index": {"name": "_id_", "forceNonUnique": true}})
            .await,
    )
    .await;
    assert_eq!(code, 2);
    for _ in 0..2 {
        // Repeating it on an already plain index is accepted.
        db.run_command(doc! {"collMod": "f", "index": {"name": "k_1", "forceNonUnique": true}})
            .await
            .unwrap();
    }
    coll.insert_one(doc! {"_id": 2, "k": 1}).await.unwrap();
    let listed = db
        .run_command(doc! {"listIndexes": "f"})
        .await
        .unwrap()
        .get_document("cursor")
        .unwrap()
        .get_array("firstBatch")
        .unwrap()
        .clone();
    let k = listed[1].as_document().unwrap();
    assert!(!k.contains_key("unique"), "{k}");
    testbed.shutdown().await;
}

#[tokio::test]
async fn updates_produce_exact_events_and_no_op_updates_produce_none() {
    let (testbed, client) = start(fast_config()).await;
    let coll: Collection<Document> = client.database("d").collection("ev");
    coll.insert_one(doc! {"_id": 1, "a": 1, "arr": [1, 2, 3]})
        .await
        .unwrap();
    let mut stream = coll.watch().await.unwrap();
    let noop = coll
        .update_one(doc! {"_id": 1}, doc! {"$set": {"a": 1}})
        .await
        .unwrap();
    assert_eq!((noop.matched_count, noop.modified_count), (1, 0));
    coll.update_one(
        doc! {"_id": 1},
        doc! {"$set": {"arr.1": 20}, "$unset": {"a": ""}},
    )
    .await
    .unwrap();
    coll.replace_one(doc! {"_id": 1}, doc! {"b": 2})
        .await
        .unwrap();
    coll.update_one(doc! {"_id": 9}, doc! {"$set": {"c": 1}})
        .upsert(true)
        .await
        .unwrap();
    coll.delete_one(doc! {"_id": 1}).await.unwrap();
    let mut events = collect_events_raw(&mut stream, 4).await.into_iter();
    let update = events.next().unwrap();
    assert_eq!(
        update.operation_type,
        mongodb::change_stream::event::OperationType::Update
    );
    let description = update.update_description.unwrap();
    assert_eq!(description.updated_fields, doc! {"arr.1": 20});
    assert_eq!(description.removed_fields, vec!["a".to_string()]);
    let replace = events.next().unwrap();
    assert_eq!(
        replace.operation_type,
        mongodb::change_stream::event::OperationType::Replace
    );
    assert_eq!(replace.full_document.unwrap(), doc! {"_id": 1, "b": 2});
    let upsert = events.next().unwrap();
    assert_eq!(
        upsert.operation_type,
        mongodb::change_stream::event::OperationType::Insert
    );
    let delete = events.next().unwrap();
    assert_eq!(
        delete.operation_type,
        mongodb::change_stream::event::OperationType::Delete
    );
    testbed.shutdown().await;
}

#[tokio::test]
async fn change_streams_resume_after_is_exclusive_and_start_at_time_inclusive() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("d");
    let coll: Collection<Document> = db.collection("r");
    let mut stream = client.watch().await.unwrap();
    for i in 0..3 {
        coll.insert_one(doc! {"_id": i}).await.unwrap();
    }
    let mut events = Vec::new();
    while events.len() < 3 {
        if let Some(event) = stream.next_if_any().await.unwrap() {
            events.push(event);
        }
    }
    // The first insert implicitly created the collection, but `create` is an expanded event.
    assert_eq!(events.len(), 3);
    let first_insert = events
        .iter()
        .find(|e| {
            e.document_key
                .as_ref()
                .is_some_and(|k| k.get_i32("_id") == Ok(0))
        })
        .unwrap();
    let resumed: Vec<_> = collect_events(
        client
            .watch()
            .resume_after(first_insert.id.clone())
            .await
            .unwrap(),
        2,
    )
    .await;
    let ids: Vec<i32> = resumed
        .iter()
        .map(|e| e.document_key.as_ref().unwrap().get_i32("_id").unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2]);
    let at = first_insert.cluster_time.unwrap();
    let from_time =
        collect_events(client.watch().start_at_operation_time(at).await.unwrap(), 3).await;
    assert_eq!(
        from_time[0]
            .document_key
            .as_ref()
            .unwrap()
            .get_i32("_id")
            .unwrap(),
        0
    );
    testbed.shutdown().await;
}

async fn collect_events(
    mut stream: mongodb::change_stream::ChangeStream<
        mongodb::change_stream::event::ChangeStreamEvent<Document>,
    >,
    count: usize,
) -> Vec<mongodb::change_stream::event::ChangeStreamEvent<Document>> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < count && tokio::time::Instant::now() < deadline {
        if let Some(event) = stream.next_if_any().await.unwrap() {
            events.push(event);
        }
    }
    events
}

#[tokio::test]
async fn collection_streams_are_invalidated_by_drop() {
    let (testbed, client) = start(fast_config()).await;
    let coll: Collection<Document> = client.database("d").collection("gone");
    coll.insert_one(doc! {"_id": 1}).await.unwrap();
    let mut stream = coll.watch().await.unwrap();
    coll.drop().await.unwrap();
    let drop = collect_events_raw(&mut stream, 1).await;
    assert_eq!(
        drop[0].operation_type,
        mongodb::change_stream::event::OperationType::Drop
    );
    let invalidate = collect_events_raw(&mut stream, 1).await;
    assert_eq!(
        invalidate[0].operation_type,
        mongodb::change_stream::event::OperationType::Invalidate
    );
    testbed.shutdown().await;
}

async fn collect_events_raw(
    stream: &mut mongodb::change_stream::ChangeStream<
        mongodb::change_stream::event::ChangeStreamEvent<Document>,
    >,
    count: usize,
) -> Vec<mongodb::change_stream::event::ChangeStreamEvent<Document>> {
    let mut events = Vec::new();
    while events.len() < count {
        if let Some(event) = stream.next_if_any().await.unwrap() {
            events.push(event);
        }
    }
    events
}

#[tokio::test]
async fn expanded_events_show_implicit_create_and_ddl() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("d");
    let mut stream = db.watch().show_expanded_events(true).await.unwrap();
    db.collection::<Document>("x")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    db.run_command(doc! {"createIndexes": "x", "indexes": [{"key": {"a": 1}, "name": "a_1"}]})
        .await
        .unwrap();
    db.run_command(doc! {"collMod": "x", "index": {"name": "a_1", "hidden": true}})
        .await
        .unwrap();
    let events = collect_events_raw(&mut stream, 4).await;
    let kinds: Vec<Bson> = events
        .iter()
        .map(|e| bson::to_bson(&e.operation_type).unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            Bson::from("create"),
            "insert".into(),
            "createIndexes".into(),
            "modify".into()
        ]
    );
    testbed.shutdown().await;
}

#[tokio::test]
async fn history_lost_when_the_oplog_rolled_over() {
    let config = TestbedConfig {
        oplog_retention: Some(5),
        ..fast_config()
    };
    let (testbed, client) = start(config).await;
    let coll: Collection<Document> = client.database("d").collection("h");
    coll.insert_one(doc! {"_id": 0}).await.unwrap();
    let operation_time = client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap()
        .get_timestamp("operationTime")
        .unwrap();
    for i in 1..20 {
        coll.insert_one(doc! {"_id": i}).await.unwrap();
    }
    let error = client
        .watch()
        .start_at_operation_time(operation_time)
        .await
        .unwrap_err();
    let mongodb::error::ErrorKind::Command(command) = &*error.kind else {
        panic!("{error}")
    };
    assert_eq!(command.code, 286);
    testbed.shutdown().await;
}

#[tokio::test]
async fn post_batch_resume_token_advances_while_idle() {
    let (testbed, client) = start(fast_config()).await;
    let admin = client.database("admin");
    let open = admin
        .run_command(doc! {"aggregate": 1, "pipeline": [{"$changeStream": {"allChangesForCluster": true}}], "cursor": {}})
        .await
        .unwrap();
    let cursor = open.get_document("cursor").unwrap();
    let id = cursor.get_i64("id").unwrap();
    let first = cursor
        .get_document("postBatchResumeToken")
        .unwrap()
        .get_str("_data")
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let more = admin
        .run_command(doc! {"getMore": id, "collection": "$cmd.aggregate", "maxTimeMS": 200})
        .await
        .unwrap();
    let cursor = more.get_document("cursor").unwrap();
    assert!(cursor.get_array("nextBatch").unwrap().is_empty());
    let second = cursor
        .get_document("postBatchResumeToken")
        .unwrap()
        .get_str("_data")
        .unwrap()
        .to_string();
    assert!(second > first, "{second} !> {first}");
    testbed.shutdown().await;
}

#[tokio::test]
async fn fail_command_injects_errors_with_labels_and_closes_connections() {
    let (testbed, client) = start(fast_config()).await;
    let admin = client.database("admin");
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["insert"], "errorCode": 91}})
        .await
        .unwrap();
    let mut options = ClientOptions::parse(testbed.uri()).await.unwrap();
    options.retry_writes = Some(false);
    let no_retry = Client::with_options(options).unwrap();
    let coll: Collection<Document> = no_retry.database("d").collection("f");
    // A retryable write (it carries txnNumber) gets the server-side label.
    let error = coll.insert_one(doc! {"_id": 1}).await.unwrap_err();
    assert_eq!(write_error_code(&error), 91);
    let reply = admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["find"], "errorCode": 2, "errorLabels": []}})
        .await
        .unwrap();
    assert_eq!(reply.get_i64("count").unwrap(), 1);
    let error = coll.find_one(doc! {}).await.unwrap_err();
    let mongodb::error::ErrorKind::Command(command) = &*error.kind else {
        panic!("{error}")
    };
    assert_eq!(command.code, 2);
    assert!(!error.contains_label("RetryableWriteError"));
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["ping"], "closeConnection": true}})
        .await
        .unwrap();
    let error = no_retry
        .database("d")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &*error.kind,
            mongodb::error::ErrorKind::Io(_)
                | mongodb::error::ErrorKind::ConnectionPoolCleared { .. }
        ),
        "{error}"
    );
    coll.insert_one(doc! {"_id": 2}).await.unwrap();
    // With retryable writes on, the labelled error is retried once, transparently, and
    // the write is applied exactly once.
    admin
        .run_command(doc! {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": {"failCommands": ["insert"], "errorCode": 91}})
        .await
        .unwrap();
    let retrying: Collection<Document> = client.database("d").collection("f");
    retrying.insert_one(doc! {"_id": 3}).await.unwrap();
    assert_eq!(retrying.count_documents(doc! {}).await.unwrap(), 2);
    testbed.shutdown().await;
}

#[tokio::test]
async fn write_blocking_refuses_users_without_bypass_only_with_auth() {
    let users = vec![
        UserSpec {
            user: "c2c".into(),
            db: "admin".into(),
            password: "sync-secret".into(),
            roles: vec![RoleRef::new("root", "admin")],
        },
        UserSpec {
            user: "app".into(),
            db: "admin".into(),
            password: "app-secret".into(),
            roles: vec![RoleRef::new("readWriteAnyDatabase", "admin")],
        },
    ];
    let config = TestbedConfig {
        auth_users: users,
        ..fast_config()
    };
    let testbed = Testbed::start(config).await.unwrap();
    let sync = connect(&testbed.uri_with_auth("c2c", "sync-secret")).await;
    let app = connect(&testbed.uri_with_auth("app", "app-secret")).await;
    sync.database("admin")
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": true})
        .await
        .unwrap();
    let error = app
        .database("d")
        .collection::<Document>("w")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap_err();
    assert_eq!(write_error_code(&error), 371);
    sync.database("d")
        .collection::<Document>("w")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let (code, _) = command_error(
        app.database("admin")
            .run_command(doc! {"setUserWriteBlockMode": 1, "global": false})
            .await,
    )
    .await;
    assert_eq!(code, 13);
    sync.database("admin")
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": false})
        .await
        .unwrap();
    app.database("d")
        .collection::<Document>("w")
        .insert_one(doc! {"_id": 2})
        .await
        .unwrap();
    let wrong = connect(&testbed.uri_with_auth("app", "wrong")).await;
    let error = wrong
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap_err();
    assert!(
        matches!(
            &*error.kind,
            mongodb::error::ErrorKind::Authentication { .. }
        ),
        "{error}"
    );
    testbed.shutdown().await;
}

#[tokio::test]
async fn write_blocking_without_auth_blocks_nothing_as_on_mongod() {
    let (testbed, client) = start(fast_config()).await;
    client
        .database("admin")
        .run_command(doc! {"setUserWriteBlockMode": 1, "global": true})
        .await
        .unwrap();
    client
        .database("d")
        .collection::<Document>("w")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    testbed.shutdown().await;
}

#[tokio::test]
async fn find_cursors_die_when_their_collection_is_dropped() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("d");
    let coll: Collection<Document> = db.collection("k");
    coll.insert_many((0..10).map(|i| doc! {"_id": i}).collect::<Vec<_>>())
        .await
        .unwrap();
    let reply = db
        .run_command(doc! {"find": "k", "batchSize": 2})
        .await
        .unwrap();
    let id = reply.get_document("cursor").unwrap().get_i64("id").unwrap();
    coll.drop().await.unwrap();
    let (code, message) = command_error(
        db.run_command(doc! {"getMore": id, "collection": "k"})
            .await,
    )
    .await;
    assert_eq!(code, 175);
    assert!(message.contains("collection dropped"));
    testbed.shutdown().await;
}

#[tokio::test]
async fn idempotent_ddl_depends_on_the_wire_version() {
    let (v6, client6) = start(TestbedConfig {
        wire_version: c2c_testbed::WireVersion::V17,
        ..fast_config()
    })
    .await;
    let db = client6.database("d");
    db.run_command(doc! {"create": "c"}).await.unwrap();
    let (code, _) = command_error(db.run_command(doc! {"create": "c"}).await).await;
    assert_eq!(code, 48);
    let (v7, client7) = start(fast_config()).await;
    let db = client7.database("d");
    db.run_command(doc! {"create": "c"}).await.unwrap();
    db.run_command(doc! {"create": "c"}).await.unwrap();
    let (code, _) = command_error(
        db.run_command(doc! {"create": "c", "capped": true, "size": 1000})
            .await,
    )
    .await;
    assert_eq!(code, 48);
    v6.shutdown().await;
    v7.shutdown().await;
}

/// pymongo ≤ 4.17 sends its first hello as a legacy OP_QUERY; mongod answers it with an
/// OP_REPLY and refuses any other OP_QUERY command.
#[tokio::test]
async fn legacy_op_query_hello_gets_an_op_reply() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let testbed = Testbed::start(fast_config()).await.unwrap();
    let mut socket = tokio::net::TcpStream::connect(testbed.host())
        .await
        .unwrap();
    async fn round_trip(socket: &mut tokio::net::TcpStream, query: Document) -> (i32, Document) {
        let mut body = Vec::new();
        body.extend_from_slice(&0i32.to_le_bytes());
        body.extend_from_slice(b"admin.$cmd\0");
        body.extend_from_slice(&0i32.to_le_bytes());
        body.extend_from_slice(&(-1i32).to_le_bytes());
        query.to_writer(&mut body).unwrap();
        let mut message = Vec::new();
        message.extend_from_slice(&((16 + body.len()) as i32).to_le_bytes());
        message.extend_from_slice(&42i32.to_le_bytes());
        message.extend_from_slice(&0i32.to_le_bytes());
        message.extend_from_slice(&2004i32.to_le_bytes());
        message.extend_from_slice(&body);
        socket.write_all(&message).await.unwrap();
        let mut header = [0u8; 16];
        socket.read_exact(&mut header).await.unwrap();
        let length = i32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        assert_eq!(i32::from_le_bytes(header[8..12].try_into().unwrap()), 42);
        let op_code = i32::from_le_bytes(header[12..16].try_into().unwrap());
        let mut rest = vec![0u8; length - 16];
        socket.read_exact(&mut rest).await.unwrap();
        (op_code, Document::from_reader(&rest[20..]).unwrap())
    }
    let (op_code, reply) = round_trip(&mut socket, doc! {"isMaster": 1, "helloOk": true}).await;
    assert_eq!(op_code, 1);
    assert!(reply.get_bool("ismaster").unwrap());
    assert!(reply.get_bool("helloOk").unwrap());
    let (_, refused) = round_trip(&mut socket, doc! {"find": "c"}).await;
    assert_eq!(refused.get_i32("code").unwrap(), 352);
    testbed.shutdown().await;
}

/// A leading `$sample` picks documents of the collection without replacement (mongod's
/// random cursor); the later stages run on what it picked, and a view samples its output.
#[tokio::test]
async fn sample_picks_distinct_documents_and_feeds_the_rest_of_the_pipeline() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("s");
    let collection: Collection<Document> = db.collection("c");
    collection
        .insert_many((0..500).map(|i| doc! {"_id": i, "even": i % 2 == 0, "pad": "x"}))
        .await
        .unwrap();
    db.run_command(
        doc! {"create": "evens", "viewOn": "c", "pipeline": [{"$match": {"even": true}}]},
    )
    .await
    .unwrap();
    let picked: Vec<Document> = collection
        .aggregate(vec![
            doc! {"$sample": {"size": 40}},
            doc! {"$project": {"_id": 1}},
        ])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut ids: Vec<i32> = picked.iter().map(|d| d.get_i32("_id").unwrap()).collect();
    assert!(picked.iter().all(|d| d.len() == 1), "{picked:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    assert!(ids.iter().all(|id| (0..500).contains(id)));
    let all: Vec<Document> = collection
        .aggregate(vec![doc! {"$sample": {"size": 10_000}}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 500);
    let from_view: Vec<Document> = db
        .collection::<Document>("evens")
        .aggregate(vec![doc! {"$sample": {"size": 30}}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(from_view.len(), 30);
    assert!(from_view.iter().all(|d| d.get_bool("even").unwrap()));
    let missing: Vec<Document> = db
        .collection::<Document>("none")
        .aggregate(vec![doc! {"$sample": {"size": 3}}])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(missing.is_empty());
    testbed.shutdown().await;
}

/// `find` with `collectionUUID` runs only on that collection; after a rename the old
/// name answers CollectionUUIDMismatch (361) naming where it went, as mongod 6.0+.
#[tokio::test]
async fn find_with_collection_uuid_refuses_a_renamed_collection() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("u");
    db.collection::<Document>("a")
        .insert_one(doc! {"_id": 1})
        .await
        .unwrap();
    let listed: Vec<Document> = db
        .run_cursor_command(doc! {"listCollections": 1})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let uuid = listed[0]
        .get_document("info")
        .unwrap()
        .get("uuid")
        .unwrap()
        .clone();
    let found: Vec<Document> = db
        .run_cursor_command(doc! {"find": "a", "filter": {}, "collectionUUID": uuid.clone()})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    client
        .database("admin")
        .run_command(doc! {"renameCollection": "u.a", "to": "u.b"})
        .await
        .unwrap();
    let (code, message) = command_error(
        db.run_command(doc! {"find": "a", "collectionUUID": uuid.clone()})
            .await,
    )
    .await;
    assert_eq!(code, 361, "{message}");
    let raw = db
        .run_command(doc! {"find": "b", "collectionUUID": "not a uuid"})
        .await;
    assert_eq!(command_error(raw).await.0, 14);
    let found: Vec<Document> = db
        .run_cursor_command(doc! {"find": "b", "filter": {}, "collectionUUID": uuid})
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    testbed.shutdown().await;
}

/// A `$match` on `ns`/`operationType` after `$changeStream` (checked before events are
/// built, as mongod's rewrite) keeps exactly the events the whole-event match keeps, and
/// the post-batch resume token still moves past the dropped ones.
#[tokio::test]
async fn namespace_matches_filter_change_streams_like_whole_event_matches() {
    let (testbed, client) = start(fast_config()).await;
    let start_at = client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap()
        .get_timestamp("operationTime")
        .unwrap();
    for db in ["a", "b", "c"] {
        let coll: Collection<Document> = client.database(db).collection("x");
        coll.insert_one(doc! {"_id": 1}).await.unwrap();
        coll.update_one(doc! {"_id": 1}, doc! {"$set": {"v": 1}})
            .await
            .unwrap();
        coll.delete_one(doc! {"_id": 1}).await.unwrap();
    }
    let last_write = client
        .database("admin")
        .run_command(doc! {"ping": 1})
        .await
        .unwrap()
        .get_timestamp("operationTime")
        .unwrap();
    // Every event, then the remaining getMore (maxAwaitTime 300 ms) must bring nothing.
    let watch = |filter: Option<Document>| {
        let client = client.clone();
        async move {
            let mut stream = client
                .watch()
                .pipeline(filter.map(|f| doc! {"$match": f}))
                .start_at_operation_time(start_at)
                .show_expanded_events(true)
                .max_await_time(Duration::from_millis(300))
                .await
                .unwrap();
            let mut events = Vec::new();
            let mut empty = 0;
            while empty < 2 {
                match stream.next_if_any().await.unwrap() {
                    Some(event) => events.push(event),
                    None => empty += 1,
                }
            }
            let token = bson::to_document(&stream.resume_token().unwrap()).unwrap();
            let events: Vec<String> = events
                .iter()
                .map(|e| {
                    format!(
                        "{:?} {}",
                        e.operation_type,
                        e.ns.as_ref().map(|n| n.db.as_str()).unwrap_or("")
                    )
                })
                .collect();
            (events, token.get_str("_data").unwrap().to_string())
        }
    };
    let (everything, _) = watch(None).await;
    // 3 databases × (create, insert, update, delete).
    assert_eq!(everything.len(), 12, "{everything:?}");
    // Namespace-only matches use the prefilter; with another field (`fullDocument`) the
    // answer must come from the whole event, and agree.
    let cases = [
        (doc! {"ns.db": {"$nin": ["a", "c"]}}, 4),
        (
            doc! {"$or": [{"ns.db": "a"}, {"operationType": "delete"}]},
            6,
        ),
        (
            doc! {"$and": [{"ns": {"db": "c", "coll": "x"}}, {"operationType": {"$in": ["update", "delete"]}}]},
            2,
        ),
        (doc! {"ns.db": "b", "fullDocument": {"$exists": false}}, 3),
        (doc! {"ns.db": "none"}, 0),
    ];
    let past_writes = format!("82{:08X}{:08X}", last_write.time, last_write.increment);
    for (filter, expected) in cases {
        let (events, token) = watch(Some(filter.clone())).await;
        assert_eq!(events.len(), expected, "{filter}: {events:?}");
        assert!(
            token.as_str() >= past_writes.as_str(),
            "{filter}: the resume token {token} did not pass the writes ({past_writes})"
        );
    }
    testbed.shutdown().await;
}

/// Runs the same writes and reads against `client` and returns every answer, for
/// comparing the two ways a testbed keeps documents.
async fn storage_workload(client: &Client) -> Vec<Bson> {
    let db = client.database("store");
    let items = db.collection::<Document>("items");
    let mut answers = Vec::new();
    items
        .insert_many(vec![
            doc! {"_id": 1, "n": 1, "tags": ["a", "b"], "sub": {"x": 1.5, "y": "s"}},
            doc! {"_id": "two", "n": 2i64, "when": bson::DateTime::from_millis(1_000), "bin": Bson::Binary(bson::Binary {subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 3]})},
            doc! {"_id": ObjectId::parse_str("64b7f0c2a1b2c3d4e5f60718").unwrap(), "n": 3.0, "d": Bson::Decimal128("1.10".parse().unwrap())},
            doc! {"_id": {"k": 1}, "n": Bson::Null, "ts": Timestamp { time: 7, increment: 1 }},
            doc! {"_id": 5, "n": 5, "big": "x".repeat(5000)},
        ])
        .await
        .expect("insert");
    db.run_command(doc! {"createIndexes": "items", "indexes": [{"key": {"n": 1}, "name": "n_1"}, {"key": {"tags": 1}, "name": "tags_1", "unique": true, "sparse": true}]})
        .await
        .expect("indexes");
    // A unique clash leaves the document as it was.
    let clash = items
        .update_one(doc! {"_id": 5}, doc! {"$set": {"tags": ["a"]}})
        .await
        .map(|_| 0)
        .unwrap_or_else(|e| write_error_code(&e));
    answers.push(Bson::Int32(clash));
    let updated = items
        .update_one(
            doc! {"_id": 1},
            doc! {"$set": {"sub.x": 2}, "$push": {"tags": "c"}},
        )
        .await
        .expect("update");
    answers.push(Bson::Int64(updated.modified_count as i64));
    let noop = items
        .update_one(doc! {"_id": 1}, doc! {"$set": {"n": 1}})
        .await
        .expect("no-op update");
    answers.push(Bson::Int64(noop.modified_count as i64));
    items
        .replace_one(doc! {"_id": "two"}, doc! {"n": 20, "r": true})
        .await
        .expect("replace");
    items.delete_one(doc! {"n": 3.0}).await.expect("delete");
    let returned = items
        .find_one_and_update(doc! {"_id": {"k": 1}}, doc! {"$inc": {"c": 1}})
        .return_document(mongodb::options::ReturnDocument::After)
        .await
        .expect("findAndModify");
    answers.push(returned.map(Bson::Document).unwrap_or(Bson::Null));
    for filter in [doc! {}, doc! {"n": {"$gte": 2}}, doc! {"tags": "c"}] {
        let found: Vec<Document> = items
            .find(filter)
            .sort(doc! {"_id": 1})
            .await
            .expect("find")
            .try_collect()
            .await
            .expect("documents");
        answers.push(Bson::Array(found.into_iter().map(Bson::Document).collect()));
    }
    let by_index: Vec<Document> = items
        .find(doc! {"n": {"$gt": 0}})
        .hint(mongodb::options::Hint::Name("n_1".into()))
        .await
        .expect("hinted find")
        .try_collect()
        .await
        .expect("documents");
    answers.push(Bson::Array(
        by_index.into_iter().map(Bson::Document).collect(),
    ));
    answers.push(Bson::Int64(
        items
            .count_documents(doc! {"n": {"$exists": true}})
            .await
            .expect("count") as i64,
    ));
    answers.push(Bson::Array(
        items.distinct("tags", doc! {}).await.expect("distinct"),
    ));
    let stats = db
        .run_command(doc! {"collStats": "items"})
        .await
        .expect("collStats");
    answers.push(stats.get("size").cloned().unwrap_or(Bson::Null));
    answers.push(stats.get("count").cloned().unwrap_or(Bson::Null));
    answers
}

#[tokio::test]
async fn compact_documents_answer_exactly_as_decoded_ones() {
    let (plain, plain_client) = start(fast_config()).await;
    let (compact, compact_client) = start(TestbedConfig {
        compact_documents: true,
        ..fast_config()
    })
    .await;
    let expected = storage_workload(&plain_client).await;
    let answers = storage_workload(&compact_client).await;
    assert_eq!(answers, expected);
    // The workload's checks are real: a clash, one change, one no-op, four documents.
    assert_eq!(expected[0], Bson::Int32(11000));
    assert_eq!(&expected[1..3], &[Bson::Int64(1), Bson::Int64(0)]);
    assert_eq!(expected[4].as_array().map(Vec::len), Some(4));
    plain.shutdown().await;
    compact.shutdown().await;
}

#[tokio::test]
async fn inserts_put_id_first_and_fill_empty_timestamps_unless_bypassed() {
    let (testbed, client) = start(fast_config()).await;
    let db = client.database("fix");
    let empty = Timestamp {
        time: 0,
        increment: 0,
    };
    db.run_command(doc! {"insert": "c", "documents": [
        {"a": 1, "_id": 1, "ts": empty},
        {"b": 2},
        {"_id": 3, "ts": empty, "inner": {"ts": empty}},
    ]})
    .await
    .expect("insert");
    db.run_command(doc! {"insert": "c", "documents": [{"_id": 4, "ts": empty}], "bypassEmptyTsReplacement": true})
        .await
        .expect("insert bypassing");
    let stored = find_all(
        db.collection::<Document>("c")
            .find(doc! {})
            .sort(doc! {"_id": 1}),
    )
    .await;
    assert_eq!(stored.len(), 4);
    for document in &stored {
        assert_eq!(document.keys().next().map(String::as_str), Some("_id"));
    }
    assert_eq!(stored[0].keys().collect::<Vec<_>>(), ["_id", "a", "ts"]);
    let filled = stored[0].get_timestamp("ts").unwrap();
    assert!(
        filled.time > 0,
        "an empty top-level timestamp gets the optime"
    );
    // Numbers sort before ObjectIds.
    assert!(matches!(stored[3].get("_id"), Some(Bson::ObjectId(_))));
    assert_eq!(stored[3].get_i32("b").unwrap(), 2);
    let third = stored
        .iter()
        .find(|d| d.get("_id") == Some(&Bson::Int32(3)))
        .unwrap();
    assert!(third.get_timestamp("ts").unwrap().time > 0);
    assert_eq!(
        third
            .get_document("inner")
            .unwrap()
            .get_timestamp("ts")
            .unwrap(),
        empty,
        "only top-level timestamps are filled"
    );
    let bypassed = stored
        .iter()
        .find(|d| d.get("_id") == Some(&Bson::Int32(4)))
        .unwrap();
    assert_eq!(bypassed.get_timestamp("ts").unwrap(), empty);
    // A bad document fails alone in an unordered insert; in an ordered one it stops there.
    let reply = db
        .run_command(
            doc! {"insert": "c", "documents": [{"_id": [1]}, {"_id": 5}], "ordered": false},
        )
        .await
        .expect("unordered insert");
    assert_eq!(reply.get_i32("n").unwrap(), 1);
    let reply = db
        .run_command(
            doc! {"insert": "c", "documents": [{"_id": 6}, {"_id": Bson::Undefined}, {"_id": 7}]},
        )
        .await
        .expect("ordered insert");
    assert_eq!(reply.get_i32("n").unwrap(), 1);
    let errors = reply.get_array("writeErrors").unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].as_document().unwrap().get_i32("index").unwrap(),
        1
    );
    testbed.shutdown().await;
}

#[tokio::test]
async fn find_batches_stop_at_16_mib_and_resume_where_they_stopped() {
    for compact in [false, true] {
        let (testbed, client) = start(TestbedConfig {
            compact_documents: compact,
            ..fast_config()
        })
        .await;
        let items = client.database("big").collection::<Document>("items");
        let filler = "x".repeat(1024 * 1024);
        let documents: Vec<Document> = (0..40)
            .map(|i| doc! {"_id": i, "pad": &filler, "even": i % 2 == 0})
            .collect();
        items.insert_many(documents).await.expect("insert");
        let reply = client
            .database("big")
            .run_command(doc! {"find": "items", "batchSize": 100})
            .await
            .expect("find");
        let cursor = reply.get_document("cursor").unwrap();
        let first = cursor.get_array("firstBatch").unwrap().len();
        assert!(
            (14..=16).contains(&first),
            "a 16 MiB batch holds 15 documents of 1 MiB, got {first}"
        );
        let ids: Vec<i32> = find_all(items.find(doc! {}).batch_size(100))
            .await
            .iter()
            .map(|d| d.get_i32("_id").unwrap())
            .collect();
        assert_eq!(ids, (0..40).collect::<Vec<_>>(), "compact: {compact}");
        let projected = find_all(items.find(doc! {"even": true}).projection(doc! {"pad": 0})).await;
        assert_eq!(projected.len(), 20);
        assert_eq!(projected[1], doc! {"_id": 2, "even": true});
        testbed.shutdown().await;
    }
}
