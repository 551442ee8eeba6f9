//! Shared set-up for the change-event application tests: two testbeds, a simple initial
//! copy (find → insertMany, as the copy phase would), running reader + applier, waiting
//! for catch-up, and comparing both clusters document by document and index by index.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document, Timestamp};
use c2c_engine::cea::{Applier, ApplierOptions, Reader, Spill, SpillConfig, StartAt};
use c2c_engine::filter::NamespaceFilter;
use c2c_engine::indexes::destination_index_specs;
use c2c_engine::metadata::{Metadata, NamespaceKind, NamespaceRecord};
use c2c_engine::options::BuildIndexes;
use c2c_engine::progress::{Phase, Progress};
use c2c_engine::{EngineError, Namespace};
use c2c_testbed::{Testbed, TestbedConfig, TestbedHandle};
use futures::TryStreamExt;
use mongodb::Client;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Clusters {
    /// Kept alive for the test's duration.
    _beds: (TestbedHandle, TestbedHandle),
    pub source: Client,
    pub destination: Client,
}

pub async fn clusters() -> Clusters {
    let config = || TestbedConfig {
        idle_noop_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let source_bed = Testbed::start(config()).await.expect("source testbed");
    let destination_bed = Testbed::start(config()).await.expect("destination testbed");
    let source = Client::with_uri_str(source_bed.uri())
        .await
        .expect("source client");
    let destination = Client::with_uri_str(destination_bed.uri())
        .await
        .expect("destination client");
    Clusters {
        _beds: (source_bed, destination_bed),
        source,
        destination,
    }
}

/// The source's current operation time (T0 for a test).
pub async fn source_time(source: &Client) -> Timestamp {
    let reply = source
        .database("admin")
        .run_command(doc! {"appendOplogNote": 1, "data": {"test": "t0"}})
        .await
        .expect("note");
    reply
        .get_timestamp("operationTime")
        .expect("operationTime in reply")
}

/// What the copy phase does, simply: create each filtered collection with its options and
/// relaxed indexes, copy all documents, record the namespace.
pub async fn initial_copy(clusters: &Clusters, filter: &NamespaceFilter) {
    let metadata = Metadata::new(&clusters.destination);
    for db in clusters
        .source
        .list_database_names()
        .await
        .expect("databases")
    {
        let database = clusters.source.database(&db);
        let specs: Vec<Document> = database
            .list_collections()
            .await
            .expect("collections")
            .try_collect::<Vec<_>>()
            .await
            .expect("list")
            .into_iter()
            .map(|s| bson::to_document(&s).expect("spec"))
            .collect();
        for spec in specs {
            let ns = Namespace::new(db.clone(), spec.get_str("name").expect("name"));
            if !filter.matches(&ns) {
                continue;
            }
            let options = spec.get_document("options").cloned().unwrap_or_default();
            let indexes: Vec<Document> = database
                .collection::<Document>(&ns.coll)
                .list_indexes()
                .await
                .expect("indexes")
                .try_collect::<Vec<_>>()
                .await
                .expect("list")
                .into_iter()
                .map(|m| bson::to_document(&m).expect("index"))
                .collect();
            let record = NamespaceRecord {
                ns: ns.clone(),
                kind: NamespaceKind::Collection,
                options: options.clone(),
                destination_indexes: destination_index_specs(
                    &indexes,
                    BuildIndexes::BeforeDataCopy,
                ),
                source_indexes: indexes,
                estimated_bytes: 0,
                estimated_documents: 0,
            };
            c2c_engine::indexes::create_namespace(&clusters.destination, &record)
                .await
                .expect("create");
            c2c_engine::indexes::build_indexes(&clusters.destination, &record)
                .await
                .expect("indexes");
            let documents: Vec<Document> = database
                .collection::<Document>(&ns.coll)
                .find(doc! {})
                .await
                .expect("find")
                .try_collect()
                .await
                .expect("docs");
            if !documents.is_empty() {
                clusters
                    .destination
                    .database(&ns.db)
                    .collection::<Document>(&ns.coll)
                    .insert_many(documents)
                    .await
                    .expect("insert");
            }
            metadata.save_namespace(&record).await.expect("record");
        }
    }
}

pub struct Running {
    pub cancel: CancellationToken,
    pub reader: JoinHandle<Result<(), EngineError>>,
    pub applier: Option<JoinHandle<Result<(), EngineError>>>,
    pub progress: Arc<Progress>,
    pub spill: Arc<Spill>,
}

pub fn spill(name: &str, memory_bytes: usize, segment_bytes: usize) -> Arc<Spill> {
    let dir = std::env::temp_dir().join(format!("c2c-cea-{name}-{}", std::process::id()));
    Arc::new(
        Spill::new(SpillConfig {
            dir,
            memory_bytes,
            segment_bytes,
        })
        .expect("spill"),
    )
}

pub fn start_reader(
    clusters: &Clusters,
    filter: &NamespaceFilter,
    start: StartAt,
    spill: Arc<Spill>,
) -> Running {
    let progress = Arc::new(Progress::default());
    progress.set_phase(Phase::CopyDrain);
    let cancel = CancellationToken::new();
    let reader = Reader::new(
        clusters.source.clone(),
        filter.clone(),
        start,
        spill.clone(),
        progress.clone(),
    )
    .keepalive_every(Duration::from_millis(300));
    let reader = tokio::spawn(reader.run(cancel.clone()));
    Running {
        cancel,
        reader,
        applier: None,
        progress,
        spill,
    }
}

pub fn start_applier(
    clusters: &Clusters,
    filter: &NamespaceFilter,
    running: &mut Running,
    options: ApplierOptions,
) {
    let applier = Applier::new(
        clusters.source.clone(),
        clusters.destination.clone(),
        filter.clone(),
        running.spill.clone(),
        running.progress.clone(),
        options,
    );
    running.applier = Some(tokio::spawn(applier.run(running.cancel.clone())));
}

pub fn start(
    clusters: &Clusters,
    filter: &NamespaceFilter,
    start: StartAt,
    spill: Arc<Spill>,
) -> Running {
    let mut running = start_reader(clusters, filter, start, spill);
    start_applier(clusters, filter, &mut running, ApplierOptions::default());
    running
}

/// Waits until the destination checkpoint passes the source's current time, i.e. every
/// event written before this call is applied.
pub async fn caught_up(clusters: &Clusters, running: &Running) {
    let target = source_time(&clusters.source).await;
    let metadata = Metadata::new(&clusters.destination);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(checkpoint) = metadata.load_cea_checkpoint().await.expect("checkpoint") {
            if checkpoint.cluster_time >= target {
                return;
            }
        }
        for task in [Some(&running.reader), running.applier.as_ref()]
            .into_iter()
            .flatten()
        {
            assert!(!task.is_finished(), "a CEA task stopped early");
        }
        assert!(
            Instant::now() < deadline,
            "change events were not applied within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn stop(running: Running) {
    running.cancel.cancel();
    let reader = running.reader.await.expect("reader task");
    assert!(
        matches!(reader, Err(EngineError::Cancelled)),
        "reader ended with {reader:?}"
    );
    if let Some(applier) = running.applier {
        let applier = applier.await.expect("applier task");
        assert!(
            matches!(applier, Err(EngineError::Cancelled)),
            "applier ended with {applier:?}"
        );
    }
}

pub async fn documents(client: &Client, ns: &Namespace) -> Vec<Document> {
    let collection = client.database(&ns.db).collection::<Document>(&ns.coll);
    collection
        .find(doc! {})
        .sort(doc! {"_id": 1})
        .await
        .expect("find")
        .try_collect()
        .await
        .expect("documents")
}

pub async fn collections(client: &Client, db: &str) -> Vec<String> {
    let mut names = client
        .database(db)
        .list_collection_names()
        .await
        .expect("collections");
    names.retain(|name| !name.starts_with("system."));
    names.sort();
    names
}

/// Index specs by name, with the fields c2c relaxes during sync removed from the source's.
pub async fn indexes(client: &Client, ns: &Namespace, relax: bool) -> Vec<Document> {
    let collection = client.database(&ns.db).collection::<Document>(&ns.coll);
    let mut specs: Vec<Document> = collection
        .list_indexes()
        .await
        .expect("indexes")
        .try_collect::<Vec<_>>()
        .await
        .expect("list")
        .into_iter()
        .map(|m| bson::to_document(&m).expect("index"))
        .collect();
    for spec in &mut specs {
        spec.remove("ns");
        if relax {
            for field in ["unique", "hidden", "expireAfterSeconds", "prepareUnique"] {
                spec.remove(field);
            }
        }
    }
    specs.sort_by(|a, b| {
        a.get_str("name")
            .unwrap_or("")
            .cmp(b.get_str("name").unwrap_or(""))
    });
    specs
}

/// Source and destination hold the same databases' synced collections with equal
/// documents and (relaxed) indexes.
pub async fn assert_same(clusters: &Clusters, dbs: &[&str]) {
    for db in dbs {
        let names = collections(&clusters.source, db).await;
        assert_eq!(
            names,
            collections(&clusters.destination, db).await,
            "collections of {db}"
        );
        for coll in names {
            let ns = Namespace::new(*db, coll);
            let source = documents(&clusters.source, &ns).await;
            let destination = documents(&clusters.destination, &ns).await;
            assert_eq!(source.len(), destination.len(), "document count of {ns}");
            for (s, d) in source.iter().zip(&destination) {
                assert_eq!(s, d, "document of {ns}");
            }
            assert_eq!(
                indexes(&clusters.source, &ns, true).await,
                indexes(&clusters.destination, &ns, false).await,
                "indexes of {ns}"
            );
        }
    }
}

pub fn id(value: impl Into<Bson>) -> Document {
    doc! {"_id": value.into()}
}
