//! `c2c demo`: the main job on an embedded default. Two test clusters, sample data with
//! every `_id` type, a sync driven through the REST API exactly as with curl, writes to
//! the source while it runs, live progress (embedded verifier included), `/commit` once
//! `canCommit`, and an independent document-by-document comparison at the end.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bson::{doc, oid::ObjectId, Bson, Document};
use c2c_coordinator::cli::DemoArgs;
use c2c_coordinator::config::{RunConfig, Verbosity};
use c2c_coordinator::rest_client::RestClient;
use c2c_coordinator::{engine_driver, serve};
use c2c_engine::compare::compare_clusters;
use c2c_engine::filter::NamespaceFilter;
use c2c_testbed::{Testbed, TestbedConfig};
use mongodb::Client;
use serde_json::{json, Value};
use tokio::net::TcpListener;

const CUSTOMERS: u64 = 5_000;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    println!("c2c demo: starting two embedded test clusters");
    let source = Testbed::start(TestbedConfig::default())
        .await
        .context("starting the source testbed")?;
    let destination = Testbed::start(TestbedConfig::default())
        .await
        .context("starting the destination testbed")?;
    println!("  cluster0 (source)      {}", source.uri());
    println!("  cluster1 (destination) {}", destination.uri());
    let source_client = Client::with_uri_str(source.uri()).await?;
    let destination_client = Client::with_uri_str(destination.uri()).await?;
    load_sample_data(&source_client, args.documents).await?;

    let listener = bind_api(args.port).await?;
    let address = listener.local_addr()?;
    let config = RunConfig {
        cluster0: source.uri(),
        cluster1: destination.uri(),
        port: address.port(),
        bind: address.ip(),
        workers: 1,
        log_path: None,
        verbosity: Verbosity::Info,
        load_level: None,
        id: "coordinator".to_string(),
        security: Default::default(),
    };
    let driver = engine_driver::connect(&config)
        .await
        .context("connecting the engine")?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(async move {
        serve(&config, driver, listener, async {
            let _ = api_stopped.await;
        })
        .await
    });
    println!("c2c REST API on http://{address} (try: curl {address}/api/v1/progress)");
    let rest = RestClient::new(address);
    wait_for_state(&rest, "IDLE", Duration::from_secs(30)).await?;

    let start = json!({"source": "cluster0", "destination": "cluster1"});
    println!("POST /api/v1/start {start}");
    let (status, reply) = rest.post("/api/v1/start", &start).await?;
    println!("  -> {status} {reply}");
    if status != 200 {
        bail!("/start was refused: {reply}");
    }

    let writing = Arc::new(AtomicBool::new(true));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = tokio::spawn(write_while_syncing(
        source_client.clone(),
        writing.clone(),
        writes.clone(),
    ));
    let started = Instant::now();
    let write_for = Duration::from_secs(args.write_seconds);
    loop {
        let (_, progress) = rest.get("/api/v1/progress").await?;
        print_progress(&progress, writes.load(Ordering::Relaxed), started.elapsed());
        if writing.load(Ordering::Relaxed) && started.elapsed() >= write_for {
            writing.store(false, Ordering::Relaxed);
        }
        let can_commit = progress["progress"]["canCommit"].as_bool().unwrap_or(false);
        if let Some(warnings) = progress["progress"]["warnings"].as_array() {
            if warnings
                .iter()
                .any(|w| w.as_str().is_some_and(|w| w.contains("failed")))
            {
                bail!("the migration failed: {warnings:?}");
            }
        }
        if can_commit && !writing.load(Ordering::Relaxed) && writer.is_finished() {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the sync did not converge within 5 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    writer.await.context("writer task")??;

    // Writes have stopped: commit, as the cutover procedure says (canCommit is true,
    // so the embedded verifier is in stream hashing on both sides).
    println!("POST /api/v1/commit {{}}");
    let (status, reply) = rest.post("/api/v1/commit", &json!({})).await?;
    println!("  -> {status} {reply}");
    if status != 200 {
        bail!("/commit was refused: {reply}");
    }
    let committed = loop {
        let (_, progress) = rest.get("/api/v1/progress").await?;
        print_progress(&progress, writes.load(Ordering::Relaxed), started.elapsed());
        let p = &progress["progress"];
        if p["state"] == "COMMITTED" {
            break p.clone();
        }
        if let Some(warnings) = p["warnings"].as_array() {
            if !warnings.is_empty() && p["state"] != "COMMITTING" {
                bail!("the commit failed: {warnings:?}");
            }
        }
        if started.elapsed() > Duration::from_secs(360) {
            bail!("the commit did not finish within a minute: {p}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let verifier = &committed["verification"]["destination"];
    println!(
        "committed: canWrite {}; embedded verifier: {} documents hashed on the source, {} on the destination, {} differences",
        committed["canWrite"],
        committed["verification"]["source"]["hashedDocumentCount"],
        verifier["hashedDocumentCount"],
        committed["verification"]["mismatchCount"].as_u64().unwrap_or(0),
    );

    println!("checking independently: comparing every document of both clusters");
    let report =
        verify_until_equal(&source_client, &destination_client, Duration::from_secs(60)).await?;
    println!(
        "verified: {} namespaces, {} documents, {} differences",
        report.namespaces, report.documents, report.difference_count
    );
    for difference in &report.differences {
        println!("  {difference}");
    }
    let _ = stop_api.send(());
    let _ = api.await;
    source.shutdown().await;
    destination.shutdown().await;
    if !report.is_equal() {
        bail!("source and destination differ");
    }
    Ok(())
}

async fn bind_api(port: Option<u16>) -> anyhow::Result<TcpListener> {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    match port {
        Some(port) => Ok(TcpListener::bind(SocketAddr::new(localhost, port)).await?),
        None => match TcpListener::bind(SocketAddr::new(localhost, 27182)).await {
            Ok(listener) => Ok(listener),
            Err(_) => Ok(TcpListener::bind(SocketAddr::new(localhost, 0)).await?),
        },
    }
}

async fn wait_for_state(rest: &RestClient, wanted: &str, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok((_, progress)) = rest.get("/api/v1/progress").await {
            if progress["progress"]["state"] == wanted {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("c2c did not reach {wanted} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn id_for(i: u64) -> Bson {
    // Every `_id` type in one collection: the copy must be correct across types.
    match i % 6 {
        0 => Bson::Int64(i as i64),
        1 => Bson::Double(i as f64 + 0.5),
        2 => Bson::String(format!("order-{i:08}")),
        3 => Bson::ObjectId(ObjectId::new()),
        4 => Bson::Document(doc! {"region": (i % 7) as i32, "seq": i as i64}),
        _ => Bson::Int32(i as i32),
    }
}

async fn load_sample_data(client: &Client, documents: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let shop = client.database("shop");
    shop.run_command(doc! {"createIndexes": "customers", "indexes": [
        {"key": {"email": 1}, "name": "email_1", "unique": true},
        {"key": {"lastSeen": 1}, "name": "lastSeen_ttl", "expireAfterSeconds": 86_400},
    ]})
    .await?;
    let customers: Vec<Document> = (0..CUSTOMERS)
        .map(|i| doc! {"_id": ObjectId::new(), "email": format!("c{i}@example.com"), "lastSeen": bson::DateTime::now(), "tags": ["a", "b"]})
        .collect();
    shop.collection::<Document>("customers")
        .insert_many(customers)
        .await?;
    let orders = shop.collection::<Document>("orders");
    let mut batch = Vec::with_capacity(1000);
    for i in 0..documents {
        batch.push(doc! {
            "_id": id_for(i),
            "customer": (i % CUSTOMERS) as i64,
            "total": format!("{}.{:02}", i % 1000, i % 100).parse::<bson::Decimal128>()?,
            "lines": [{"sku": format!("sku-{}", i % 97), "qty": (i % 5) as i32 + 1}],
            "note": "x".repeat(200),
        });
        if batch.len() == 1000 {
            orders.insert_many(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        orders.insert_many(batch).await?;
    }
    shop.run_command(doc! {"create": "big_orders", "viewOn": "orders", "pipeline": [{"$match": {"lines.qty": {"$gte": 4}}}]}).await?;
    println!(
        "loaded {} documents into shop.orders and {CUSTOMERS} into shop.customers in {:.1?}",
        documents,
        started.elapsed()
    );
    Ok(())
}

/// Inserts, updates and deletes on the source while the sync runs.
async fn write_while_syncing(
    client: Client,
    writing: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let orders = client.database("shop").collection::<Document>("orders");
    let events = client.database("shop").collection::<Document>("events");
    let mut i: u64 = 0;
    while writing.load(Ordering::Relaxed) {
        events
            .insert_one(doc! {"_id": i as i64, "kind": "click", "at": bson::DateTime::now()})
            .await?;
        orders
            .update_one(
                doc! {"_id": id_for(i * 6 % 600)},
                doc! {"$inc": {"edits": 1}, "$set": {"lines.0.qty": 9}},
            )
            .await?;
        if i.is_multiple_of(10) {
            orders.delete_one(doc! {"_id": id_for(i * 6 + 5)}).await?;
        }
        writes.fetch_add(3, Ordering::Relaxed);
        i += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn print_progress(progress: &Value, writes: u64, elapsed: Duration) {
    let p = &progress["progress"];
    let total = p["collectionCopy"]["estimatedTotalBytes"]
        .as_f64()
        .unwrap_or(0.0)
        .max(1.0);
    let copied = p["collectionCopy"]["estimatedCopiedBytes"]
        .as_f64()
        .unwrap_or(0.0);
    let verifier = &p["verification"]["destination"];
    println!(
        "[{:>5.1}s] {:<10} {:<30} copied {:>5.1}%  events applied {:>7}  lag {:>4}  verifier {:<15} hashed {:>6}  canCommit {:<5}  source writes {writes}",
        elapsed.as_secs_f64(),
        p["state"].as_str().unwrap_or("?"),
        p["info"].as_str().unwrap_or("-"),
        100.0 * copied / total,
        p["totalEventsApplied"].as_u64().unwrap_or(0),
        p["lagTimeSeconds"].as_i64().map(|l| format!("{l}s")).unwrap_or_else(|| "-".into()),
        verifier["phase"].as_str().unwrap_or("off"),
        verifier["hashedDocumentCount"].as_u64().unwrap_or(0),
        p["canCommit"].as_bool().unwrap_or(false),
    );
}

/// The last events may still be in flight when canCommit turns true: compare until
/// equal or the timeout passes, then return the last report.
async fn verify_until_equal(
    source: &Client,
    destination: &Client,
    timeout: Duration,
) -> anyhow::Result<c2c_engine::compare::CompareReport> {
    let deadline = Instant::now() + timeout;
    loop {
        let report = compare_clusters(source, destination, &NamespaceFilter::default()).await?;
        if report.is_equal() || Instant::now() > deadline {
            return Ok(report);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
