//! Discovery, index relaxation, partition planning and the partitioned copy, end to end
//! against two c2c-testbed clusters.

use std::str::FromStr;
use std::time::{Duration, Instant};

use bson::{
    doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, Decimal128, Document, RawDocumentBuf,
    Timestamp,
};
use c2c_engine::copy::{copy_documents, copy_partition, CopyStats};
use c2c_engine::discovery::{check_destination, discover, SourceNamespace};
use c2c_engine::filter::{FilterSpec, NamespaceFilter};
use c2c_engine::indexes::{build_indexes, create_namespace, destination_index_specs};
use c2c_engine::metadata::{
    Metadata, NamespaceKind, NamespaceRecord, PartitionRecord, PartitionTotals,
};
use c2c_engine::options::BuildIndexes;
use c2c_engine::partition::plan;
use c2c_engine::progress::Progress;
use c2c_engine::{EngineError, Namespace};
use c2c_testbed::{Testbed, TestbedConfig, TestbedHandle};
use futures::TryStreamExt;
use mongodb::options::{ClientOptions, Hint};
use mongodb::Client;
use tokio_util::sync::CancellationToken;

async fn cluster() -> (TestbedHandle, Client) {
    let testbed = Testbed::start(TestbedConfig::default())
        .await
        .expect("start testbed");
    let mut options = ClientOptions::parse(testbed.uri())
        .await
        .expect("parse uri");
    options.server_selection_timeout = Some(Duration::from_secs(5));
    (testbed, Client::with_options(options).expect("client"))
}

fn only(db: &str, collections: &[&str]) -> NamespaceFilter {
    let spec: FilterSpec =
        serde_json::from_value(serde_json::json!({"database": db, "collections": collections}))
            .expect("filter spec");
    NamespaceFilter::compile(&[spec], &[]).expect("filter")
}

fn record(namespace: &SourceNamespace, build: BuildIndexes) -> NamespaceRecord {
    NamespaceRecord {
        ns: namespace.ns.clone(),
        kind: namespace.kind,
        options: namespace.options.clone(),
        source_indexes: namespace.indexes.clone(),
        destination_indexes: destination_index_specs(&namespace.indexes, build),
        estimated_bytes: namespace.estimated_bytes,
        estimated_documents: namespace.estimated_documents,
    }
}

/// Every `_id` type a collection can hold, mixed, plus the edge values of each order.
fn mixed_documents(count: u32) -> Vec<Document> {
    let pad = "x".repeat(200);
    let mut ids: Vec<Bson> = (0..count)
        .map(|i| match i % 12 {
            0 => Bson::Int32(i as i32),
            1 => Bson::Int64((1_i64 << 53) + i64::from(i)),
            2 => Bson::Double(f64::from(i) + 0.5),
            3 => Bson::Decimal128(Decimal128::from_str(&format!("{i}.25")).expect("decimal")),
            4 => Bson::String(format!("s{i:06}")),
            5 => {
                let mut bytes = [0u8; 12];
                bytes[8..].copy_from_slice(&i.to_be_bytes());
                Bson::ObjectId(ObjectId::from_bytes(bytes))
            }
            6 => Bson::Document(doc! {"k": i, "s": "x"}),
            7 => Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: i.to_be_bytes().to_vec(),
            }),
            8 => Bson::DateTime(bson::DateTime::from_millis(i64::from(i) * 1000 - 500_000)),
            9 => Bson::Timestamp(Timestamp {
                time: i,
                increment: 1,
            }),
            10 => Bson::Int64(-i64::from(i)),
            _ => Bson::Double(-1.5 * f64::from(i)),
        })
        .collect();
    ids.extend([
        Bson::Null,
        Bson::MinKey,
        Bson::MaxKey,
        Bson::Double(f64::NAN),
        Bson::Double(f64::INFINITY),
        Bson::Decimal128(Decimal128::from_str("-Infinity").expect("decimal")),
        Bson::Boolean(false),
        Bson::Boolean(true),
        Bson::Int64(i64::MAX),
        Bson::Double(9.3e18),
        Bson::String(String::new()),
        Bson::Document(doc! {}),
    ]);
    ids.into_iter()
        .enumerate()
        .map(|(n, id)| doc! {"_id": id, "n": n as i64, "pad": pad.as_str()})
        .collect()
}

async fn all_raw(client: &Client, ns: &Namespace) -> Vec<Vec<u8>> {
    let collection = client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll);
    let cursor = collection
        .find(doc! {})
        .hint(Hint::Keys(doc! {"_id": 1}))
        .sort(doc! {"_id": 1})
        .await
        .expect("find");
    let documents: Vec<RawDocumentBuf> = cursor.try_collect().await.expect("read all");
    documents.into_iter().map(|d| d.into_bytes()).collect()
}

/// Discovers, creates and plans one collection; returns its partitions (saved in metadata).
async fn prepare(
    source: &Client,
    destination: &Client,
    ns: &Namespace,
    target_bytes: u64,
) -> Vec<PartitionRecord> {
    let namespaces = discover(source, &only(&ns.db, &[&ns.coll]))
        .await
        .expect("discover");
    assert_eq!(namespaces.len(), 1);
    check_destination(destination, &namespaces)
        .await
        .expect("destination empty");
    create_namespace(
        destination,
        &record(&namespaces[0], BuildIndexes::AfterDataCopy),
    )
    .await
    .expect("create");
    let partitions = plan(source, &namespaces[0], target_bytes)
        .await
        .expect("plan");
    Metadata::new(destination)
        .save_partitions(&partitions)
        .await
        .expect("save partitions");
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_id_types_are_copied_exactly_once_across_many_partitions() {
    let (_s, source) = cluster().await;
    let (_d, destination) = cluster().await;
    let ns = Namespace::new("app", "mixed");
    let documents = mixed_documents(3000);
    let total = documents.len() as u64;
    source
        .database("app")
        .collection::<Document>("mixed")
        .insert_many(documents)
        .await
        .expect("seed");

    let partitions = prepare(&source, &destination, &ns, 32 * 1024).await;
    assert!(
        partitions.len() >= 10,
        "expected many partitions, got {}",
        partitions.len()
    );
    assert_eq!(partitions.first().and_then(|p| p.min.clone()), None);
    assert_eq!(partitions.last().and_then(|p| p.max.clone()), None);
    for pair in partitions.windows(2) {
        assert_eq!(pair[0].max, pair[1].min);
    }

    let metadata = Metadata::new(&destination);
    let before = metadata.partition_totals().await.expect("sum partitions");
    assert_eq!(
        before,
        PartitionTotals {
            partitions: partitions.len() as u64,
            unfinished: partitions.len() as u64,
            bytes: 0,
            documents: 0,
        }
    );
    let progress = Progress::default();
    let cancel = CancellationToken::new();
    let copies = partitions
        .iter()
        .map(|p| copy_partition(&source, &destination, &metadata, p, &progress, &cancel));
    let stats: Vec<CopyStats> = futures::future::try_join_all(copies).await.expect("copy");

    // Each document was read by exactly one partition: no overlap, no gap.
    assert_eq!(stats.iter().map(|s| s.documents).sum::<u64>(), total);
    assert_eq!(
        progress
            .copied_documents
            .load(std::sync::atomic::Ordering::Relaxed),
        total
    );
    assert_eq!(
        all_raw(&destination, &ns).await,
        all_raw(&source, &ns).await
    );
    let saved = metadata.load_partitions().await.expect("load partitions");
    assert!(saved.iter().all(|p| p.done));
    assert_eq!(saved.iter().map(|p| p.documents).sum::<u64>(), total);
    let after = metadata.partition_totals().await.expect("sum partitions");
    assert_eq!(
        after,
        PartitionTotals {
            partitions: partitions.len() as u64,
            unfinished: 0,
            bytes: saved.iter().map(|p| p.bytes).sum(),
            documents: total,
        }
    );
    assert!(after.bytes > 0);
    // A late checkpoint of a superseded copier does not make a finished partition
    // unfinished again.
    metadata
        .checkpoint_partition(&saved[0].id, &Bson::Int32(0), 1, 1)
        .await
        .expect("late checkpoint");
    assert_eq!(
        metadata.partition_totals().await.expect("sum partitions"),
        after
    );

    // A finished partition is not copied again.
    let again = copy_partition(
        &source,
        &destination,
        &metadata,
        &saved[0],
        &progress,
        &cancel,
    )
    .await
    .expect("copy done");
    assert_eq!(again, CopyStats::default());
}

/// Two fresh clusters and `app.<coll>` on the source: 2,400 mixed documents, planned as
/// one partition.
struct OnePartition {
    _source_cluster: TestbedHandle,
    source: Client,
    _destination_cluster: TestbedHandle,
    destination: Client,
    ns: Namespace,
    total: u64,
    partition: PartitionRecord,
}

async fn one_partition(coll: &str) -> OnePartition {
    let (source_cluster, source) = cluster().await;
    let (destination_cluster, destination) = cluster().await;
    let ns = Namespace::new("app", coll);
    let documents = mixed_documents(2400);
    let total = documents.len() as u64;
    source
        .database("app")
        .collection::<Document>(coll)
        .insert_many(documents)
        .await
        .expect("seed");
    let mut partitions = prepare(&source, &destination, &ns, u64::MAX).await;
    assert_eq!(partitions.len(), 1);
    OnePartition {
        _source_cluster: source_cluster,
        source,
        _destination_cluster: destination_cluster,
        destination,
        ns,
        total,
        partition: partitions.remove(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_partition_is_done_only_once_its_finish_is_recorded() {
    let OnePartition {
        _source_cluster: _s,
        source,
        _destination_cluster: _d,
        destination,
        ns,
        total,
        partition,
    } = one_partition("finish").await;
    let metadata = Metadata::new(&destination);
    let progress = Progress::default();
    let cancel = CancellationToken::new();

    // Every document is written, and the partition is still not done: a worker that
    // dies here (its copy slot already handed on) leaves it to be copied again.
    let copied = copy_documents(
        &source,
        &destination,
        &metadata,
        &partition,
        &progress,
        &cancel,
    )
    .await
    .expect("copy documents")
    .expect("the partition was not done");
    assert_eq!(
        all_raw(&destination, &ns).await,
        all_raw(&source, &ns).await
    );
    let before = metadata.load_partitions().await.expect("load").remove(0);
    assert!(!before.done, "done before its finish record was written");
    drop(copied);

    // Copied again from there: every document is a duplicate, skipped, none twice.
    let stats = copy_partition(
        &source,
        &destination,
        &metadata,
        &before,
        &progress,
        &cancel,
    )
    .await
    .expect("copy again");
    assert_eq!(stats.documents, total);
    assert_eq!(
        all_raw(&destination, &ns).await,
        all_raw(&source, &ns).await
    );
    let after = metadata.load_partitions().await.expect("load").remove(0);
    assert!(after.done);
    assert_eq!(after.documents, total);
    assert!(
        copy_documents(&source, &destination, &metadata, &after, &progress, &cancel)
            .await
            .expect("a done partition")
            .is_none(),
        "a done partition was copied again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_from_a_checkpoint_mid_partition_copies_nothing_twice() {
    let OnePartition {
        _source_cluster: _s,
        source,
        _destination_cluster: _d,
        destination,
        ns,
        total,
        partition,
    } = one_partition("resume").await;

    // A crashed run: it wrote the first 1000 documents (in `_id` order), checkpointed
    // after the 900th, and a batch beyond the checkpoint was partly written.
    let ordered = all_raw(&source, &ns).await;
    let raw: Vec<RawDocumentBuf> = ordered
        .iter()
        .map(|b| RawDocumentBuf::from_bytes(b.clone()).expect("raw"))
        .collect();
    let target = destination
        .database("app")
        .collection::<RawDocumentBuf>("resume");
    target
        .insert_many(&raw[..1000])
        .await
        .expect("partial copy");
    let last = Bson::try_from(raw[899].get("_id").expect("_id").expect("_id")).expect("bson");
    let metadata = Metadata::new(&destination);
    metadata
        .checkpoint_partition(&partition.id, &last, 900, 0)
        .await
        .expect("checkpoint");

    let resumed = metadata.load_partitions().await.expect("load").remove(0);
    assert_eq!(resumed.last, Some(last));
    let progress = Progress::default();
    let stats = copy_partition(
        &source,
        &destination,
        &metadata,
        &resumed,
        &progress,
        &CancellationToken::new(),
    )
    .await
    .expect("resume");
    assert_eq!(
        stats.documents,
        total - 900,
        "the checkpointed _id itself must not be read again"
    );
    assert_eq!(all_raw(&destination, &ns).await, ordered);
    let finished = metadata.load_partitions().await.expect("load").remove(0);
    assert!(finished.done);
    assert_eq!(finished.documents, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_within_a_second_and_the_next_run_continues() {
    let (_s, source) = cluster().await;
    let (_d, destination) = cluster().await;
    let ns = Namespace::new("app", "big");
    let total = 40_000u64;
    let documents: Vec<Document> = (0..total as i64)
        .map(|i| doc! {"_id": i, "v": "y".repeat(50)})
        .collect();
    source
        .database("app")
        .collection::<Document>("big")
        .insert_many(documents)
        .await
        .expect("seed");
    let partitions = prepare(&source, &destination, &ns, u64::MAX).await;
    // Slow the destination so the copy is still running when we cancel.
    destination
        .database("admin")
        .run_command(doc! {"testbedSetLatency": 1, "ms": 150})
        .await
        .expect("latency");

    let metadata = Metadata::new(&destination);
    let progress = Progress::default();
    let cancel = CancellationToken::new();
    let copy = copy_partition(
        &source,
        &destination,
        &metadata,
        &partitions[0],
        &progress,
        &cancel,
    );
    let watcher = async {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let saved = metadata.load_partitions().await.expect("load");
            if saved[0].last.is_some() {
                cancel.cancel();
                return Instant::now();
            }
        }
    };
    let (outcome, cancelled_at) = tokio::join!(copy, watcher);
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(1),
        "stopped {:?} after cancel",
        cancelled_at.elapsed()
    );
    assert!(
        matches!(outcome, Err(EngineError::Cancelled)),
        "{outcome:?}"
    );

    destination
        .database("admin")
        .run_command(doc! {"testbedSetLatency": 1, "ms": 0})
        .await
        .expect("latency");
    let checkpoint = metadata.load_partitions().await.expect("load").remove(0);
    assert!(!checkpoint.done && checkpoint.documents > 0 && checkpoint.documents < total);
    let stats = copy_partition(
        &source,
        &destination,
        &metadata,
        &checkpoint,
        &progress,
        &CancellationToken::new(),
    )
    .await
    .expect("resume");
    assert_eq!(stats.documents, total - checkpoint.documents);
    assert_eq!(
        all_raw(&destination, &ns).await,
        all_raw(&source, &ns).await
    );
    assert_eq!(
        metadata.load_partitions().await.expect("load")[0].documents,
        total
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_namespaces_are_all_named_and_internal_ones_never_listed() {
    let (_s, source) = cluster().await;
    let app = source.database("app");
    app.run_command(doc! {"create": "ts", "timeseries": {"timeField": "t"}})
        .await
        .expect("time-series");
    app.run_command(doc! {"create": "ttl", "clusteredIndex": {"key": {"_id": 1}, "unique": true}, "expireAfterSeconds": 60})
        .await
        .expect("clustered ttl");
    app.run_command(doc! {"create": "capped", "capped": true, "size": 4096})
        .await
        .expect("capped");
    app.collection::<Document>("ok")
        .insert_one(doc! {"a": 1})
        .await
        .expect("ok");
    source
        .database("admin")
        .collection::<Document>("x")
        .insert_one(doc! {"a": 1})
        .await
        .expect("admin");
    source
        .database("__c2c_internal")
        .collection::<Document>("x")
        .insert_one(doc! {"a": 1})
        .await
        .expect("internal");

    let Err(EngineError::Unsupported(message)) =
        discover(&source, &NamespaceFilter::default()).await
    else {
        panic!("expected Unsupported");
    };
    for name in ["app.ts", "app.ttl", "app.capped"] {
        assert!(message.contains(name), "{name} not named in: {message}");
    }
    assert!(!message.contains("app.ok"), "{message}");

    let filter = only("app", &["ok"]);
    let found = discover(&source, &filter).await.expect("filtered discover");
    assert_eq!(
        found.iter().map(|n| n.ns.to_string()).collect::<Vec<_>>(),
        vec!["app.ok"]
    );
    assert!(found[0].uuid.is_some());
    assert_eq!(found[0].estimated_documents, 1);
    assert!(found[0].estimated_bytes > 0);

    // Without the refused ones, nothing internal is ever listed.
    for coll in ["ts", "ttl", "capped"] {
        app.run_command(doc! {"drop": coll}).await.expect("drop");
    }
    let everything = discover(&source, &NamespaceFilter::default())
        .await
        .expect("discover");
    assert!(
        everything
            .iter()
            .all(|n| n.ns.db == "app" && !n.ns.coll.starts_with("system.")),
        "{everything:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_holding_included_namespaces_is_refused() {
    let (_s, source) = cluster().await;
    let (_d, destination) = cluster().await;
    for coll in ["orders", "other"] {
        source
            .database("app")
            .collection::<Document>(coll)
            .insert_one(doc! {"a": 1})
            .await
            .expect("seed");
    }
    source
        .database("app")
        .run_command(doc! {"create": "recent", "viewOn": "orders", "pipeline": []})
        .await
        .expect("view");
    let namespaces = discover(&source, &only("app", &["orders", "recent"]))
        .await
        .expect("discover");
    check_destination(&destination, &namespaces)
        .await
        .expect("empty destination accepted");

    destination
        .database("app")
        .collection::<Document>("orders")
        .insert_one(doc! {"b": 1})
        .await
        .expect("dst");
    destination
        .database("app")
        .run_command(doc! {"create": "recent", "viewOn": "x", "pipeline": []})
        .await
        .expect("dst view");
    destination
        .database("app")
        .collection::<Document>("other")
        .insert_one(doc! {"b": 1})
        .await
        .expect("dst other");
    let Err(EngineError::DestinationNotEmpty(message)) =
        check_destination(&destination, &namespaces).await
    else {
        panic!("expected DestinationNotEmpty");
    };
    assert!(
        message.contains("app.orders") && message.contains("app.recent"),
        "{message}"
    );
    assert!(!message.contains("app.other"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_relaxed_and_views_created_on_the_destination() {
    let (_s, source) = cluster().await;
    let (_d, destination) = cluster().await;
    let app = source.database("app");
    app.run_command(
        doc! {"create": "people", "validator": {"age": {"$gte": 0}}, "validationLevel": "moderate"},
    )
    .await
    .expect("create");
    let indexes = vec![
        doc! {"key": {"email": 1}, "name": "email_1", "unique": true},
        doc! {"key": {"at": 1}, "name": "at_ttl", "expireAfterSeconds": 3600},
        doc! {"key": {"nick": 1}, "name": "nick_hidden", "hidden": true, "sparse": true},
        doc! {"key": {"shard": "hashed"}, "name": "shard_hashed"},
        doc! {"key": {"k": 1, "z": -1}, "name": "k_partial", "partialFilterExpression": {"k": {"$gt": 5}}},
    ];
    app.run_command(doc! {"createIndexes": "people", "indexes": indexes})
        .await
        .expect("indexes");
    app.run_command(doc! {"create": "adults", "viewOn": "people", "pipeline": [{"$match": {"age": {"$gte": 18}}}]}).await.expect("view");

    let namespaces = discover(&source, &only("app", &["people", "adults"]))
        .await
        .expect("discover");
    let people = namespaces
        .iter()
        .find(|n| n.ns.coll == "people")
        .expect("people");
    let adults = namespaces
        .iter()
        .find(|n| n.ns.coll == "adults")
        .expect("adults");
    assert_eq!(adults.kind, NamespaceKind::View);
    assert_eq!(adults.options.get_str("viewOn"), Ok("people"));

    for build in [BuildIndexes::ExcludeHashed, BuildIndexes::ExcludeHashed] {
        // Twice: creating namespaces and indexes is idempotent.
        for namespace in [people, adults] {
            let record = record(namespace, build);
            create_namespace(&destination, &record)
                .await
                .expect("create namespace");
            build_indexes(&destination, &record)
                .await
                .expect("build indexes");
        }
    }
    let dst = destination.database("app");
    let listed: Vec<Document> = dst
        .run_cursor_command(doc! {"listIndexes": "people"})
        .await
        .expect("listIndexes")
        .try_collect()
        .await
        .expect("indexes");
    let by_name = |name: &str| {
        listed
            .iter()
            .find(|s| s.get_str("name") == Ok(name))
            .cloned()
    };
    let mut names: Vec<&str> = listed
        .iter()
        .filter_map(|s| s.get_str("name").ok())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec!["_id_", "at_ttl", "email_1", "k_partial", "nick_hidden"]
    );
    for spec in &listed {
        for relaxed in ["unique", "expireAfterSeconds", "hidden", "prepareUnique"] {
            assert!(
                spec.get(relaxed).is_none() || spec.get_str("name") == Ok("_id_"),
                "{relaxed} kept in {spec}"
            );
        }
    }
    assert_eq!(
        by_name("nick_hidden").and_then(|s| s.get("sparse").cloned()),
        Some(Bson::Boolean(true))
    );
    assert_eq!(
        by_name("k_partial").and_then(|s| s.get_document("partialFilterExpression").ok().cloned()),
        Some(doc! {"k": {"$gt": 5}})
    );

    let collections: Vec<Document> = dst
        .run_cursor_command(doc! {"listCollections": 1})
        .await
        .expect("listCollections")
        .try_collect()
        .await
        .expect("collections");
    let find = |name: &str| {
        collections
            .iter()
            .find(|c| c.get_str("name") == Ok(name))
            .cloned()
            .expect(name)
    };
    assert_eq!(find("adults").get_str("type"), Ok("view"));
    assert_eq!(
        find("adults").get_document("options").expect("options"),
        &adults.options
    );
    assert_eq!(
        find("people").get_document("options").expect("options"),
        &people.options
    );

    // A namespace that exists with different options is not silently accepted.
    let mut changed = record(people, BuildIndexes::Never);
    changed.options = doc! {"validator": {"age": {"$gte": 21}}};
    assert!(create_namespace(&destination, &changed).await.is_err());
}

/// The engine's comparator must order `_id`s exactly as the server's index does.
#[test]
fn engine_order_agrees_with_the_servers_order() {
    let mut ids: Vec<Bson> = mixed_documents(240)
        .into_iter()
        .filter_map(|mut d| d.remove("_id"))
        .collect();
    ids.extend([
        Bson::Decimal128(Decimal128::from_str("0.1").expect("decimal")),
        Bson::Double(0.1),
        Bson::Decimal128(Decimal128::from_str("NaN").expect("decimal")),
        Bson::Int64((1 << 53) + 1),
        Bson::Double((1_i64 << 53) as f64),
        Bson::Double(-0.0),
        Bson::Document(doc! {"a": 1, "b": 2}),
        Bson::Document(doc! {"b": 2, "a": 1}),
        Bson::Document(doc! {"a": "1"}),
        Bson::Symbol("s000004".into()),
    ]);
    for a in &ids {
        for b in &ids {
            assert_eq!(
                c2c_engine::bson_order::compare(a, b),
                c2c_testbed::bson_cmp::compare(a, b),
                "{a:?} vs {b:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_read_and_write_failures_lose_and_repeat_nothing() {
    let (_s, source) = cluster().await;
    let (_d, destination) = cluster().await;
    let ns = Namespace::new("app", "flaky");
    let documents = mixed_documents(24_000);
    let total = documents.len() as u64;
    source
        .database("app")
        .collection::<Document>("flaky")
        .insert_many(documents)
        .await
        .expect("seed");
    let partitions = prepare(&source, &destination, &ns, u64::MAX).await;

    // Cursors die mid-partition (the reader reopens after the last `_id` it took) and
    // inserts fail transiently (more often than the driver's own single retry covers).
    let fail = |commands: Vec<&str>, times: i32| {
        doc! {"configureFailPoint": "failCommand", "mode": {"times": times},
        "data": {"failCommands": commands, "errorCode": 91, "errorLabels": ["RetryableWriteError"]}}
    };
    source
        .database("admin")
        .run_command(fail(vec!["getMore"], 2))
        .await
        .expect("source failpoint");
    destination
        .database("admin")
        .run_command(fail(vec!["insert"], 3))
        .await
        .expect("destination failpoint");

    let metadata = Metadata::new(&destination);
    let progress = Progress::default();
    let stats = copy_partition(
        &source,
        &destination,
        &metadata,
        &partitions[0],
        &progress,
        &CancellationToken::new(),
    )
    .await
    .expect("copy survives transient failures");
    assert_eq!(stats.documents, total);
    assert_eq!(
        all_raw(&destination, &ns).await,
        all_raw(&source, &ns).await
    );
}

/// A collection renamed while it is copied is read on under its new name (the copy
/// names it by UUID; by name it would read an empty namespace and call the partition
/// done with the rest missing), and one dropped ends its copy without an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_renamed_or_dropped_during_its_copy_is_followed() {
    let OnePartition {
        _source_cluster: _s,
        source,
        _destination_cluster: _d,
        destination,
        ns,
        total,
        partition,
    } = one_partition("moving").await;
    assert!(partition.uuid.is_some(), "planned without the UUID");

    // The copy stopped after 900 documents; then the source collection was renamed.
    let ordered = all_raw(&source, &ns).await;
    let raw: Vec<RawDocumentBuf> = ordered
        .iter()
        .map(|b| RawDocumentBuf::from_bytes(b.clone()).expect("raw"))
        .collect();
    destination
        .database("app")
        .collection::<RawDocumentBuf>("moving")
        .insert_many(&raw[..900])
        .await
        .expect("partial copy");
    let last = Bson::try_from(raw[899].get("_id").expect("_id").expect("_id")).expect("bson");
    let metadata = Metadata::new(&destination);
    metadata
        .checkpoint_partition(&partition.id, &last, 900, 0)
        .await
        .expect("checkpoint");
    source
        .database("admin")
        .run_command(doc! {"renameCollection": "app.moving", "to": "app.moved"})
        .await
        .expect("rename");

    let resumed = metadata.load_partitions().await.expect("load").remove(0);
    assert_eq!(resumed.uuid, partition.uuid);
    let stats = copy_partition(
        &source,
        &destination,
        &metadata,
        &resumed,
        &Progress::default(),
        &CancellationToken::new(),
    )
    .await
    .expect("copy after the rename");
    assert_eq!(stats.documents, total - 900);
    // Written under the planned name: the stream's rename event moves it later.
    assert_eq!(all_raw(&destination, &ns).await, ordered);
    assert_eq!(
        all_raw(&source, &Namespace::new("app", "moved")).await,
        ordered
    );

    // Dropped before its copy: nothing to read, the partition is done.
    let gone = Namespace::new("app", "gone");
    source
        .database("app")
        .collection::<Document>("gone")
        .insert_many((0..50).map(|i| doc! {"_id": i}))
        .await
        .expect("seed gone");
    let partitions = prepare(&source, &destination, &gone, u64::MAX).await;
    source
        .database("app")
        .collection::<Document>("gone")
        .drop()
        .await
        .expect("drop");
    let stats = copy_partition(
        &source,
        &destination,
        &metadata,
        &partitions[0],
        &Progress::default(),
        &CancellationToken::new(),
    )
    .await
    .expect("copy of a dropped collection");
    assert_eq!(stats.documents, 0);
    let saved = metadata.load_partitions().await.expect("load");
    assert!(saved.iter().any(|p| p.id == partitions[0].id && p.done));
}

/// Partition records are saved a thousand per command: 2,500 of them (three commands)
/// come back whole, and saving them again replaces instead of duplicating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_partition_records_round_trip() {
    let (_d, destination) = cluster().await;
    let ns = Namespace::new("app", "big");
    let boundaries: Vec<Bson> = (1..2500).map(|i| Bson::Int64(i * 10)).collect();
    let mut partitions = c2c_engine::partition::ranges(&ns, None, boundaries);
    assert_eq!(partitions.len(), 2500);
    let metadata = Metadata::new(&destination);
    metadata.save_partitions(&partitions).await.expect("save");
    partitions[1234].done = true;
    partitions[1234].documents = 7;
    metadata
        .save_partitions(&partitions)
        .await
        .expect("save again");
    let loaded = metadata.load_partitions().await.expect("load");
    assert_eq!(loaded.len(), 2500);
    for (saved, want) in loaded.iter().zip(&partitions) {
        assert_eq!(saved.id, want.id);
        assert_eq!((&saved.min, &saved.max), (&want.min, &want.max));
        assert_eq!((saved.done, saved.documents), (want.done, want.documents));
    }
}

/// A worker loads only its share's records: any subset of ids, in the order asked, across
/// several `$in` queries (1,000 ids each); an id nobody recorded is an error, not a
/// partition silently left uncopied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_records_load_by_id_in_the_order_asked() {
    let (_d, destination) = cluster().await;
    let ns = Namespace::new("app", "big");
    let boundaries: Vec<Bson> = (1..2500).map(|i| Bson::Int64(i * 10)).collect();
    let partitions = c2c_engine::partition::ranges(&ns, None, boundaries);
    let metadata = Metadata::new(&destination);
    metadata.save_partitions(&partitions).await.expect("save");
    // Every other partition from the end: 1,250 ids, out of the stored order.
    let wanted: Vec<String> = partitions
        .iter()
        .rev()
        .step_by(2)
        .map(|p| p.id.clone())
        .collect();
    let loaded = metadata
        .load_partitions_by_id(&wanted)
        .await
        .expect("load by id");
    let ids: Vec<&String> = loaded.iter().map(|p| &p.id).collect();
    assert_eq!(ids, wanted.iter().collect::<Vec<_>>());
    let by_id = |id: &str| partitions.iter().find(|p| p.id == id).expect("planned");
    for record in &loaded {
        let planned = by_id(&record.id);
        assert_eq!((&record.min, &record.max), (&planned.min, &planned.max));
    }
    assert!(metadata
        .load_partitions_by_id(&[])
        .await
        .expect("nothing asked")
        .is_empty());
    let unknown = vec![partitions[0].id.clone(), "app.big#999999".to_string()];
    let error = metadata
        .load_partitions_by_id(&unknown)
        .await
        .expect_err("an unknown id");
    assert!(error.to_string().contains("app.big#999999"), "{error}");
}
