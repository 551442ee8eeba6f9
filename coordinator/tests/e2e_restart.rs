//! `kill -9` of `c2c run` during the copy and during change-event application, then a
//! restart with the same options: the migration continues from its checkpoints and the
//! clusters end equal. A different `/start` after the restart is refused.

mod common;

use std::time::Duration;

use bson::{doc, Document};
use c2c_engine::filter::NamespaceFilter;
use common::{assert_equal, insert_many, Harness};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(120);

fn start_body() -> serde_json::Value {
    json!({"source": "cluster0", "destination": "cluster1"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_copy_then_restart_continues() {
    let mut harness = Harness::start_process().await;
    let source = harness.source.client.clone();
    for c in 0..4 {
        insert_many(
            &source,
            "app",
            &format!("c{c}"),
            (0..20_000)
                .map(|i| doc! {"_id": i, "pad": "x".repeat(300)})
                .collect(),
        )
        .await;
    }
    // A slow destination keeps the copy running long enough to be interrupted.
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 100})
        .await;
    let (status, reply) = harness.post("/api/v1/start", start_body()).await;
    assert_eq!(status, 200, "{reply}");
    harness
        .wait_for(
            |p| {
                p["collectionCopy"]["estimatedCopiedBytes"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0
            },
            CONVERGE,
        )
        .await;
    source
        .database("app")
        .collection::<Document>("c0")
        .update_many(
            doc! {"_id": {"$lt": 100}},
            doc! {"$set": {"during": "copy"}},
        )
        .await
        .unwrap();
    harness.kill_and_restart().await;
    harness
        .destination
        .admin(doc! {"testbedSetLatency": 1, "ms": 0})
        .await;

    // The restarted process is IDLE; a different /start is refused, the same one continues.
    let (status, reply) = harness.post("/api/v1/start", json!({"source": "cluster0", "destination": "cluster1", "buildIndexes": "beforeDataCopy"})).await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"], "OptionsMismatch");
    let (status, reply) = harness.post("/api/v1/start", start_body()).await;
    assert_eq!(status, 200, "{reply}");
    assert_equal(
        &harness
            .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
            .await,
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_change_event_application_then_restart_continues() {
    let mut harness = Harness::start_process().await;
    let source = harness.source.client.clone();
    insert_many(
        &source,
        "app",
        "counters",
        (0..500).map(|i| doc! {"_id": i, "n": 0}).collect(),
    )
    .await;
    harness.post("/api/v1/start", start_body()).await;
    harness.wait_for(|p| p["canCommit"] == true, CONVERGE).await;
    let writer = {
        let source = source.clone();
        tokio::spawn(async move {
            let counters = source.database("app").collection::<Document>("counters");
            for round in 0..3_000 {
                counters
                    .update_one(
                        doc! {"_id": round % 500},
                        doc! {"$inc": {"n": 1}, "$push": {"log": round}},
                    )
                    .await
                    .unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    harness.kill_and_restart().await;
    writer.await.unwrap();
    let (status, reply) = harness.post("/api/v1/start", start_body()).await;
    assert_eq!(status, 200, "{reply}");
    assert_equal(
        &harness
            .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
            .await,
    );
    // Increments applied twice would show here even if every document "looked" right.
    let total: i64 = {
        use futures::TryStreamExt;
        let documents: Vec<Document> = harness
            .destination
            .client
            .database("app")
            .collection::<Document>("counters")
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        documents
            .iter()
            .map(|d| {
                d.get_i32("n")
                    .map(i64::from)
                    .or_else(|_| d.get_i64("n"))
                    .unwrap()
            })
            .sum()
    };
    assert_eq!(total, 3_000);
    harness.stop().await;
}
