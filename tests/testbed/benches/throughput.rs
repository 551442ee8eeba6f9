//! Testbed throughput: bulk inserts and full scans of 1 KiB documents through the
//! official driver, on one connection and on eight. Prints a table and writes
//! `target/bench/testbed-throughput.json`. Run with `cargo bench -p c2c-testbed`.

use std::time::{Duration, Instant};

use bson::{doc, Document};
use c2c_testbed::{Testbed, TestbedConfig};
use futures::TryStreamExt;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

const DOC_BYTES: usize = 1024;
const BATCH: usize = 1000;
const DOCS_PER_TASK: usize = 50_000;

fn document(id: i64) -> Document {
    let mut document = doc! {"_id": id, "n": id, "s": "x"};
    let size = bson::to_vec(&document).map(|v| v.len()).unwrap_or(0);
    document.insert("s", "x".repeat(DOC_BYTES.saturating_sub(size)));
    document
}

async fn client(uri: &str, pool: u32) -> Client {
    let mut options = ClientOptions::parse(uri).await.expect("uri");
    options.max_pool_size = Some(pool);
    Client::with_options(options).expect("client")
}

struct Row {
    name: String,
    docs: usize,
    elapsed: Duration,
}

async fn insert(uri: &str, tasks: usize, coll: &str) -> Row {
    let client = client(uri, tasks as u32).await;
    let collection: Collection<Document> = client.database("bench").collection(coll);
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let collection = collection.clone();
        handles.push(tokio::spawn(async move {
            let base = (task * DOCS_PER_TASK) as i64;
            for chunk in 0..DOCS_PER_TASK / BATCH {
                let docs: Vec<Document> = (0..BATCH)
                    .map(|i| document(base + (chunk * BATCH + i) as i64))
                    .collect();
                collection
                    .insert_many(docs)
                    .ordered(false)
                    .await
                    .expect("insert");
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    Row {
        name: format!("insert_many x{BATCH}, {tasks} connection(s)"),
        docs: tasks * DOCS_PER_TASK,
        elapsed: started.elapsed(),
    }
}

async fn scan(uri: &str, tasks: usize, coll: &str) -> Row {
    let client = client(uri, tasks as u32).await;
    let collection: Collection<Document> = client.database("bench").collection(coll);
    let total = collection.estimated_document_count().await.expect("count") as usize;
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let collection = collection.clone();
        let per = total / tasks;
        handles.push(tokio::spawn(async move {
            let low = (task * per) as i64;
            let high = low + per as i64;
            let cursor = collection
                .find(doc! {"_id": {"$gte": low, "$lt": high}})
                .batch_size(1000)
                .await
                .expect("find");
            let docs: Vec<Document> = cursor.try_collect().await.expect("scan");
            docs.len()
        }));
    }
    let mut docs = 0;
    for handle in handles {
        docs += handle.await.expect("task");
    }
    Row {
        name: format!("find (batch 1000), {tasks} connection(s)"),
        docs,
        elapsed: started.elapsed(),
    }
}

#[tokio::main]
async fn main() {
    let testbed = Testbed::start(TestbedConfig::default())
        .await
        .expect("testbed");
    let uri = testbed.uri();
    let rows = vec![
        insert(&uri, 1, "one").await,
        insert(&uri, 8, "eight").await,
        scan(&uri, 1, "one").await,
        scan(&uri, 8, "eight").await,
    ];
    println!(
        "{:<42} {:>10} {:>10} {:>12} {:>10}",
        "case", "docs", "seconds", "docs/s", "MiB/s"
    );
    let mut json = Vec::new();
    for row in &rows {
        let seconds = row.elapsed.as_secs_f64();
        let rate = row.docs as f64 / seconds;
        let mib = rate * DOC_BYTES as f64 / (1024.0 * 1024.0);
        println!(
            "{:<42} {:>10} {:>10.2} {:>12.0} {:>10.1}",
            row.name, row.docs, seconds, rate, mib
        );
        json.push(serde_json::json!({"case": row.name, "docs": row.docs, "seconds": seconds, "docs_per_second": rate, "mib_per_second": mib}));
    }
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&directory).expect("bench dir");
    let path = directory.join("testbed-throughput.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")).expect("write json");
    println!("wrote {}", path.display());
    testbed.shutdown().await;
}
