//! The embedded verifier against two testbeds: equal data under concurrent writes passes
//! and commits; each kind of difference written straight into the destination is found
//! and reported precisely (and fails the migration); a restart during initial hashing
//! continues from the persisted ranges.

#[path = "cutover/support.rs"]
mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::{doc, Bson, Document};
use c2c_engine::options::WriteBlocking;
use c2c_engine::progress::{Phase, Progress};
use c2c_engine::verify::VerifierPhase;
use futures::TryStreamExt;
use support::*;

fn verified_setup() -> Setup {
    let mut setup = Setup::new(WriteBlocking::DestinationOnly, false);
    setup.verification = true;
    setup
}

async fn wait_stream_hashing(progress: &Arc<Progress>) {
    eventually("stream hashing", Duration::from_secs(60), || {
        let phase = progress.verification.phase();
        let failure = progress.failure.lock().clone();
        assert!(failure.is_none(), "failed: {failure:?}");
        async move { phase == VerifierPhase::StreamHashing }
    })
    .await;
}

/// Inserts, updates and deletes on the source until told to stop.
fn writer(env: &Env, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    let users = coll(&env.app_source, "users");
    let orders = coll(&env.app_source, "orders");
    tokio::spawn(async move {
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            round += 1;
            let id = 1000 + round as i64;
            orders
                .insert_one(doc! {"_id": id, "user": 1, "note": format!("n{round}")})
                .await
                .expect("insert");
            orders
                .update_one(
                    doc! {"_id": (round % 100) as i32},
                    doc! {"$inc": {"seen": 1}, "$set": {"by": "writer"}},
                )
                .await
                .expect("update");
            users
                .update_one(
                    doc! {"_id": (round % 200) as i32},
                    doc! {"$set": {"h": (round % 5) as i32, "extra": {"b": 2, "a": 1}}},
                )
                .await
                .expect("update user");
            if round.is_multiple_of(3) {
                orders
                    .delete_one(doc! {"_id": id - 2})
                    .await
                    .expect("delete");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        round
    })
}

#[tokio::test]
async fn equal_data_under_concurrent_writes_is_verified_and_commits() {
    let env = env().await;
    seed(&env).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writes = writer(&env, stop.clone());
    let migration = start(&env, &verified_setup()).await;
    let progress = migration.progress();
    wait_steady(&migration).await;
    wait_stream_hashing(&progress).await;
    // Writes keep coming during stream hashing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let rounds = writes.await.expect("writer");
    assert!(rounds > 20, "the writer ran {rounds} rounds");
    let status = &progress.verification;
    eventually("verifier lag under 30 s", Duration::from_secs(30), || {
        let ready = status.ready_for_commit(30);
        async move { ready.is_ok() }
    })
    .await;
    commit_and_wait(&migration).await;
    assert_eq!(status.mismatch_count.load(Ordering::Relaxed), 0);
    assert!(status.source.hashed_documents.load(Ordering::Relaxed) >= 300);
    assert!(status.destination.hashed_documents.load(Ordering::Relaxed) >= 300);
    assert_eq!(status.total_collections.load(Ordering::Relaxed), 2);
    assert_eq!(status.scanned_collections.load(Ordering::Relaxed), 2);
    wait_equal(&env.c2c_source, &env.c2c_destination).await;
    migration.shutdown().await;
}

fn mismatch_kinds(progress: &Progress) -> HashSet<(String, Option<String>, String)> {
    progress
        .verification
        .mismatches
        .lock()
        .iter()
        .map(|m| {
            (
                m.ns.coll.clone(),
                m.id.as_ref().map(Bson::to_string),
                m.kind.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_kind_of_difference_on_the_destination_is_reported() {
    let env = env().await;
    seed(&env).await;
    coll(&env.app_source, "orders")
        .update_one(doc! {"_id": 7}, doc! {"$set": {"qty": 1}})
        .await
        .expect("qty");
    env.app_source
        .database(DB)
        .run_command(doc! {"create": "audit", "validator": {"level": {"$type": "string"}}})
        .await
        .expect("audit");
    env.app_source
        .database(DB)
        .run_command(
            doc! {"createIndexes": "orders", "indexes": [{"key": {"user": 1}, "name": "user_1"}]},
        )
        .await
        .expect("orders index");
    let migration = start(&env, &verified_setup()).await;
    let progress = migration.progress();
    wait_steady(&migration).await;
    wait_stream_hashing(&progress).await;
    assert_eq!(
        progress.verification.mismatch_count.load(Ordering::Relaxed),
        0
    );

    // Straight into the destination, as root (bypasses the write block).
    let orders = coll(&env.c2c_destination, "orders");
    orders.delete_one(doc! {"_id": 3}).await.expect("delete");
    orders
        .insert_one(doc! {"_id": 5000, "user": 0})
        .await
        .expect("insert");
    orders
        .update_one(doc! {"_id": 4}, doc! {"$set": {"user": 99}})
        .await
        .expect("change");
    // 1 (int32) on the source becomes 1.0 (double): equal for queries, not for us.
    orders
        .update_one(doc! {"_id": 7}, doc! {"$set": {"qty": 1.0}})
        .await
        .expect("type");
    env.c2c_destination
        .database(DB)
        .run_command(doc! {"dropIndexes": "orders", "index": "user_1"})
        .await
        .expect("drop index");
    env.c2c_destination
        .database(DB)
        .run_command(doc! {"collMod": "audit", "validator": {"level": {"$type": "int"}}})
        .await
        .expect("collMod");

    eventually("the migration to fail", Duration::from_secs(60), || {
        let phase = progress.phase();
        async move { phase == Some(Phase::Failed) }
    })
    .await;
    let failure = progress.failure.lock().clone().expect("a failure");
    assert!(failure.contains("verification found"), "{failure}");
    let found = mismatch_kinds(&progress);
    let expect = |coll: &str, id: Option<Bson>, kind: &str| {
        let key = (
            coll.to_string(),
            id.map(|id| id.to_string()),
            kind.to_string(),
        );
        assert!(found.contains(&key), "{key:?} not in {found:?}");
    };
    expect("orders", Some(Bson::Int32(3)), "missing on destination");
    expect("orders", Some(Bson::Int32(5000)), "extra on destination");
    expect("orders", Some(Bson::Int32(4)), "document differs");
    expect("orders", Some(Bson::Int32(7)), "document differs");
    expect("orders", None, "index missing on destination");
    expect("audit", None, "collection options differ");
    assert_eq!(found.len(), 6, "nothing else reported: {found:?}");
    assert!(
        failure.contains("shop.orders: missing on destination for _id 3"),
        "{failure}"
    );
    // Still reported after a restart: the mismatches are persisted.
    migration.shutdown().await;
    let again = start_with(
        &env,
        &verified_setup(),
        (&env.c2c_source, &env.c2c_destination),
    )
    .await
    .expect("restart");
    let progress = again.progress();
    eventually(
        "the restarted migration to fail",
        Duration::from_secs(30),
        || {
            let phase = progress.phase();
            async move { phase == Some(Phase::Failed) }
        },
    )
    .await;
    assert_eq!(mismatch_kinds(&progress).len(), 6);
    again.shutdown().await;
}

async fn done_segments_and_ranges(env: &Env) -> (usize, usize, HashSet<String>) {
    let db = env.c2c_destination.database("__c2c_internal");
    let segments: Vec<Document> = db
        .collection::<Document>("verifier_segments")
        .find(doc! {})
        .await
        .expect("segments")
        .try_collect()
        .await
        .expect("segments");
    let done = segments
        .iter()
        .filter(|s| s.get_bool("done") == Ok(true))
        .count();
    let ranges: Vec<Document> = db
        .collection::<Document>("verifier_ranges")
        .find(doc! {})
        .await
        .expect("ranges")
        .try_collect()
        .await
        .expect("ranges");
    let ids = ranges
        .iter()
        .filter_map(|r| r.get_object_id("_id").ok().map(|id| id.to_hex()))
        .collect();
    (segments.len(), done, ids)
}

#[tokio::test]
async fn a_restart_during_initial_hashing_continues() {
    let env = env().await;
    let many: Vec<Document> = (0..20_000)
        .map(|i| doc! {"_id": i, "payload": format!("document number {i} with some text")})
        .collect();
    coll(&env.app_source, "big")
        .insert_many(many)
        .await
        .expect("big");
    let mut setup = verified_setup();
    // Many segments (the copy's partitions), so initial hashing takes several steps.
    setup.partition_target_bytes = Some(64 * 1024);
    let migration = start(&env, &setup).await;
    wait_steady(&migration).await;
    // Slow the source down so initial hashing can be caught half-way.
    env.c2c_source
        .database("admin")
        .run_command(doc! {"testbedSetLatency": 1, "ms": 25})
        .await
        .expect("latency");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while done_segments_and_ranges(&env).await.1 == 0 {
        assert!(std::time::Instant::now() < deadline, "no segment hashed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    migration.shutdown().await;
    let (segments, done, ranges) = done_segments_and_ranges(&env).await;
    assert!(segments > 3, "{segments} segments");
    assert!(done < segments, "caught before the end: {done}/{segments}");
    env.c2c_source
        .database("admin")
        .run_command(doc! {"testbedSetLatency": 1, "ms": 0})
        .await
        .expect("latency");

    let again = start(&env, &setup).await;
    let progress = again.progress();
    wait_stream_hashing(&progress).await;
    let (segments_after, done_after, ranges_after) = done_segments_and_ranges(&env).await;
    assert_eq!(segments_after, segments, "the same segments");
    assert_eq!(done_after, segments_after);
    // The ranges hashed before the restart were kept, not hashed from scratch.
    assert!(
        ranges.is_subset(&ranges_after),
        "{} ranges before the restart, {} kept",
        ranges.len(),
        ranges.intersection(&ranges_after).count()
    );
    assert_eq!(
        progress
            .verification
            .source
            .hashed_documents
            .load(Ordering::Relaxed),
        20_000
    );
    assert_eq!(
        progress.verification.mismatch_count.load(Ordering::Relaxed),
        0
    );
    again.shutdown().await;
}
