//! Scale-out end to end through the REST API, with the workers as real gRPC servers in
//! this process (the multi-process form with etcd is in `e2e_scaleout_etcd`): the leader
//! spreads partitions and stream shards over three workers, writes continue during the
//! copy and the change-event application, a worker is lost mid-copy and its share
//! finishes elsewhere, and the commit drains every worker's shards to Tc.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bson::doc;
use c2c_coordinator::cluster::timing::REBALANCE_INTERVAL;
use c2c_engine::filter::NamespaceFilter;
use common::{eventually, load_databases, runs_reversed, write_round, Harness, SCALEOUT_DATABASES};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(120);

/// `workers` in-process workers syncing 4 small databases (64 KiB partitions), started
/// through the REST API and in steady state (canCommit true).
async fn in_steady_state(workers: usize) -> (Harness, common::scaled::ScaleOut) {
    let (harness, scale) = Harness::start_scaled(workers, 64 * 1024).await;
    load_databases(&harness.source.client, 200, 200).await;
    harness
        .start_until_can_commit(
            json!({"source": "cluster0", "destination": "cluster1"}),
            CONVERGE,
        )
        .await;
    (harness, scale)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_copy_apply_lose_one_and_commit() {
    // ~64 KiB partitions: every collection is split, so one collection's copy spans workers.
    let (harness, mut scale) = Harness::start_scaled(3, 64 * 1024).await;
    load_databases(&harness.source.client, 3_000, 200).await;
    let (status, body) = harness
        .post(
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1", "reversible": true,
                   "enableUserWriteBlocking": "sourceAndDestination"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    write_round(&harness.source.client, 1).await;

    // The plan spreads the work: several workers copy, shards have different owners.
    let plan = eventually("a plan", Duration::from_secs(30), || async {
        scale.plane().plan()
    })
    .await;
    let planned = std::time::Instant::now();
    assert_eq!(plan.shard_count, 3);
    let copiers: BTreeSet<&String> = plan.partitions.values().collect();
    assert!(
        copiers.len() >= 2,
        "partitions spread over workers: {plan:?}"
    );
    let owners: BTreeSet<&String> = plan.shard_owners.values().collect();
    assert_eq!(owners.len(), 3, "one stream shard per worker: {plan:?}");

    // A finished partition is no new plan (each one used to rewrite it). The only
    // change before a worker is lost is a worker that ran out of partitions taking
    // unstarted ones (at most every REBALANCE_INTERVAL), which a slow test may see: it keeps the
    // shard owners and moves no partition that was not in the first plan.
    let finished = eventually("a partition finishes", CONVERGE, || async {
        Some(scale.plane().partitions_done()).filter(|done| *done > 0)
    })
    .await;
    let unchanged = scale.plane().plan().expect("plan");
    if unchanged.epoch != plan.epoch {
        assert_eq!(unchanged.shard_owners, plan.shard_owners, "{unchanged:?}");
        assert!(
            unchanged.partitions.len() < plan.partitions.len()
                && unchanged
                    .partitions
                    .keys()
                    .all(|id| plan.partitions.contains_key(id)),
            "after {finished} finished partitions: {unchanged:?} from {plan:?}"
        );
        let rebalances = 1 + planned.elapsed().as_secs() / REBALANCE_INTERVAL.as_secs();
        assert!(
            unchanged.epoch - plan.epoch <= rebalances,
            "more plans than rebalances after {finished} finished partitions: {unchanged:?}"
        );
    } else {
        assert_eq!(unchanged, plan, "after {finished} finished partitions");
    }

    // Lose a worker during the copy: its partitions and its stream shard move.
    scale.lose_worker("w2").await;
    write_round(&harness.source.client, 2).await;
    // The plan moves w2's share once the pool notices the loss.
    let moved = scale
        .plan_where(
            "the plan moves the lost worker's share",
            Duration::from_secs(30),
            |plan| plan.workers().iter().all(|w| w != "w2"),
        )
        .await;
    assert!(moved.epoch > 1, "{moved:?}");
    assert_eq!(
        moved.shard_owners.len(),
        3,
        "every shard still has an owner: {moved:?}"
    );

    harness
        .wait_for(|p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    write_round(&harness.source.client, 3).await;
    harness
        .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
        .await;
    let ready = harness
        .wait_for(|p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    // Every shard's owner verified its databases; the leader shows them merged.
    let verification = &ready["verification"];
    for side in ["source", "destination"] {
        assert_eq!(verification[side]["phase"], "stream hashing", "{ready}");
        assert!(
            verification[side]["hashedDocumentCount"].as_u64() > Some(0),
            "{ready}"
        );
    }
    assert!(verification.get("mismatchCount").is_none(), "{ready}");
    let (status, body) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let committed = harness.wait_for_state("COMMITTED", CONVERGE).await;
    assert_eq!(committed["canWrite"], json!(true));
    let internal: Vec<String> = harness
        .destination
        .client
        .database("__c2c_internal")
        .list_collection_names()
        .await
        .expect("metadata collections");
    assert!(
        internal
            .iter()
            .any(|name| name.starts_with("verifier_ranges_shard")),
        "per-shard verifier state: {internal:?}"
    );
    harness.assert_clusters_equal().await;
    for worker in &scale.workers {
        let report = worker.service.report().await;
        assert!(report.lease_held, "{report:?}");
    }

    // A reverse copies nothing: the partitions finished since w2 was lost leave the plan,
    // so no worker is shown holding them.
    let (status, body) = harness.post("/api/v1/reverse", json!({})).await;
    assert_eq!(status, 200, "{body}");
    harness.wait_for(runs_reversed, CONVERGE).await;
    scale
        .plan_where(
            "the partitions leave the plan",
            Duration::from_secs(10),
            |plan| plan.partitions.is_empty(),
        )
        .await;
    harness.stop().await;
}

/// `kill -9` of a worker just before `/commit`: the commit accepts (its last report is
/// still fresh), the drain cannot reach it, its registration expires, and its stream
/// shard moves to the survivor, which must apply that shard's events up to Tc — writes
/// only the killed worker could have applied are on the destination after COMMITTED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_commit_has_its_shards_drained_by_a_survivor() {
    let (harness, mut scale) = in_steady_state(2).await;
    let plan = scale.plane().plan().expect("plan");
    let killed_shards = plan.shards_of("w2");
    let killed_databases: Vec<String> = plan
        .databases
        .iter()
        .filter(|(_, shard)| killed_shards.contains(shard))
        .map(|(db, _)| db.clone())
        .collect();
    assert!(!killed_databases.is_empty(), "w2 owns databases: {plan:?}");

    scale.crash_worker("w2").await;
    // Written after w2 died: only the drain of its shard can bring them over.
    for db in &killed_databases {
        let docs = (0..50)
            .map(|i| doc! {"_id": format!("after-kill-{i}"), "db": db.as_str()})
            .collect();
        common::insert_many(&harness.source.client, db, "a", docs).await;
    }
    let (status, body) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "{body}");
    // etcd expires w2's lease while the drain waits for it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    scale.expire_registration("w2");
    harness.wait_for_state("COMMITTED", CONVERGE).await;
    for db in &killed_databases {
        let count = harness
            .destination
            .client
            .database(db)
            .collection::<bson::Document>("a")
            .count_documents(doc! {"_id": {"$regex": "^after-kill-"}})
            .await
            .expect("count");
        assert_eq!(
            count, 50,
            "{db}: writes of the killed worker's shard before Tc"
        );
    }
    harness.assert_clusters_equal().await;
    harness.stop().await;
}

/// After a worker loss left one worker with both stream shards, a worker added in steady
/// state takes one: the plan first releases it (its owner stops it at a checkpoint and
/// acknowledges), then gives it to the new worker, which continues from the checkpoint
/// while the application keeps writing; the commit then drains both owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_added_in_steady_state_takes_a_stream_shard() {
    let (harness, mut scale) = in_steady_state(2).await;
    scale.lose_worker("w2").await;
    let doubled = scale
        .plan_where("w1 owns both shards", Duration::from_secs(30), |plan| {
            plan.shards_of("w1").len() == 2
        })
        .await;
    harness
        .wait_for(|p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    write_round(&harness.source.client, 1).await;

    scale.add_worker("w3", &harness).await;
    write_round(&harness.source.client, 2).await;
    let balanced = scale
        .plan_where(
            "the new worker owns a shard",
            Duration::from_secs(30),
            |plan| plan.shards_of("w3").len() == 1 && plan.releasing.is_empty(),
        )
        .await;
    assert_eq!(balanced.shards_of("w1").len(), 1, "{balanced:?}");
    // Released first, given once w1 confirmed: two plans.
    assert!(
        balanced.epoch >= doubled.epoch + 2,
        "{doubled:?} → {balanced:?}"
    );
    write_round(&harness.source.client, 3).await;
    let w3 = scale
        .workers
        .iter()
        .find(|w| w.id == "w3")
        .expect("w3")
        .service
        .clone();
    eventually("w3 applies its shard", CONVERGE, || async {
        let report = w3.report().await;
        Some(()).filter(|_| report.steady && report.owned_shards.len() == 1)
    })
    .await;
    harness
        .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
        .await;
    harness
        .wait_for(|p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    let (status, body) = harness.post("/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "{body}");
    harness.wait_for_state("COMMITTED", CONVERGE).await;
    harness.assert_clusters_equal().await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_joins_during_the_copy_takes_unstarted_partitions() {
    // Small partitions and a slow source: one worker has most partitions still queued
    // when the second one arrives.
    let (harness, mut scale) = Harness::start_scaled(1, 16 * 1024).await;
    load_databases(&harness.source.client, 4_000, 200).await;
    harness
        .source
        .admin(doc! {"testbedSetLatency": 1, "ms": 5})
        .await;
    harness
        .start_sync(json!({"source": "cluster0", "destination": "cluster1"}))
        .await;
    let copying = eventually("the copy runs", CONVERGE, || async {
        let plane = scale.plane();
        plane.plan().filter(|_| plane.partitions_done() > 0)
    })
    .await;
    let total = copying.partitions.len();

    scale.add_worker("w2", &harness).await;
    let shared = scale
        .plan_where(
            "the new worker gets partitions",
            Duration::from_secs(15),
            |plan| !plan.partitions_of("w2").is_empty(),
        )
        .await;
    assert!(shared.epoch > copying.epoch, "{shared:?}");
    // About half the unfinished partitions each (the estimates are per collection).
    let (w1, w2) = (
        shared.partitions_of("w1").len(),
        shared.partitions_of("w2").len(),
    );
    assert!(w1 * 3 >= w2 && w2 * 3 >= w1, "{w1} and {w2}: {shared:?}");
    assert!(shared.partitions.len() <= total);
    eventually("the new worker copies", CONVERGE, || async {
        let report = scale.workers[1].service.report().await;
        Some(()).filter(|_| report.partitions_done > 0)
    })
    .await;
    harness
        .source
        .admin(doc! {"testbedSetLatency": 1, "ms": 0})
        .await;
    harness
        .wait_for(|p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    harness
        .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
        .await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_its_lease_writes_nothing() {
    let (harness, scale) = Harness::start_scaled(1, 16 * 1024).await;
    load_databases(&harness.source.client, 500, 200).await;
    // The only worker's lease is gone before it gets work: it refuses the assignment
    // and nothing reaches the destination.
    scale.workers[0]
        .lease
        .lost
        .store(true, std::sync::atomic::Ordering::Relaxed);
    harness
        .start_sync(json!({"source": "cluster0", "destination": "cluster1"}))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for db in SCALEOUT_DATABASES {
        let count = harness
            .destination
            .client
            .database(db)
            .collection::<bson::Document>("a")
            .count_documents(doc! {})
            .await
            .unwrap_or(0);
        assert_eq!(
            count, 0,
            "{db}.a got documents from a worker without a lease"
        );
    }
    harness.stop().await;
}

/// `/pause` right after a worker was killed (still registered): a worker that never
/// answers fails the pause after its bound and syncing goes on (the leader's loop
/// moves the dead worker's shard once its registration expires); a worker whose
/// registration expires while the pause waits lets it succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_with_a_killed_worker_waits_for_its_lease_or_fails_and_keeps_syncing() {
    let (harness, mut scale) = in_steady_state(3).await;

    // w2 dies and stays registered past the pause's bound: the pause fails...
    scale.crash_worker("w2").await;
    let (status, body) = harness.post("/api/v1/pause", json!({})).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["errorDescription"]
            .as_str()
            .unwrap_or("")
            .contains("w2"),
        "{body}"
    );
    assert_eq!(harness.progress().await["state"], "RUNNING");
    // ... and the migration is still driven: once w2's lease expires its shard moves.
    scale.expire_registration("w2");
    write_round(&harness.source.client, 1).await;
    scale
        .plan_where("w2's shard moves", Duration::from_secs(30), |plan| {
            !plan.workers().contains("w2")
        })
        .await;
    harness
        .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
        .await;

    // w3 dies; its registration expires while the pause waits: the pause succeeds.
    scale.crash_worker("w3").await;
    let (paused, ()) = tokio::join!(harness.post("/api/v1/pause", json!({})), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        scale.expire_registration("w3");
    });
    assert_eq!(paused.0, 200, "{}", paused.1);
    harness
        .wait_for_state("PAUSED", Duration::from_secs(10))
        .await;
    write_round(&harness.source.client, 2).await;
    let (status, body) = harness.post("/api/v1/resume", json!({})).await;
    assert_eq!(status, 200, "{body}");
    harness
        .wait_until_equal(&NamespaceFilter::default(), CONVERGE)
        .await;
    let plan = scale.plane().plan().expect("plan");
    assert_eq!(
        plan.workers(),
        BTreeSet::from(["w1".to_string()]),
        "{plan:?}"
    );
    harness.stop().await;
}
