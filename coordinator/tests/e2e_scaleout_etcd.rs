//! The scaled-out migration as it is deployed: real etcd, two `c2c coordinator` and
//! three `c2c worker` processes, two clusters, driven through the REST API (on the
//! follower as well as the leader). Processes are killed with `kill -9`, a worker is
//! stopped past its lease, etcd restarts, a paused migration outlives its leader; every
//! run ends with equal data (and COMMITTED where it commits),
//! and the second is then reversed through the follower.

mod common;

use std::time::{Duration, Instant};

use bson::doc;
use c2c_api::v1::worker_client::WorkerClient;
use c2c_api::v1::WatchWorkerRequest;
use c2c_membership::{MigrationId, StateKey, StateReader};
use common::processes::{Deployment, MIGRATION};
use common::{load_databases, runs_reversed, write_round};
use futures::StreamExt;
use serde_json::{json, Value};

const CONVERGE: Duration = Duration::from_secs(180);
const FAILOVER: Duration = Duration::from_secs(20);

fn copied(progress: &Value) -> u64 {
    progress["collectionCopy"]["estimatedCopiedBytes"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_api_and_kill_9_of_the_leader_and_a_worker_during_copy() {
    // ~96 KiB partitions: each collection's copy is spread over the workers.
    let mut d = Deployment::start(2, 3, 96 * 1024).await;
    load_databases(&d.source.client, 5_000, 300).await;
    // Remote-cluster latency makes the copy last long enough to kill processes in it.
    d.source.admin(doc! {"testbedSetLatency": 1, "ms": 2}).await;
    let leader = d.serving_leader(None, FAILOVER).await;
    let follower = d.follower().await;

    let (status, body) = d
        .post(
            &follower,
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    assert_eq!(status, 200, "/start through the follower: {body}");
    let progress = d
        .wait_for(
            &follower,
            |p| p["state"] == "RUNNING" && copied(p) > 0,
            CONVERGE,
        )
        .await;
    // mongosync's convention: the answering process's id, and the leader's.
    assert_eq!(progress["mongosyncID"], json!(follower), "{progress}");
    assert_eq!(progress["coordinatorID"], json!(leader), "{progress}");
    let total = progress["collectionCopy"]["estimatedTotalBytes"]
        .as_u64()
        .unwrap_or(0);
    assert!(copied(&progress) < total, "still copying: {progress}");
    let workers = progress["workers"].as_array().expect("workers breakdown");
    assert_eq!(workers.len(), 3, "{progress}");

    // kill -9 of the leader and of a worker in the middle of the copy.
    let killed = Instant::now();
    d.coordinator(&leader).kill().await;
    d.worker("w2").kill().await;
    write_round(&d.source.client, 1).await;
    let new_leader = d.wait_for_new_leader(&leader, FAILOVER).await;
    let failover = killed.elapsed();
    eprintln!("leader failover (kill -9 to the new leader answering): {failover:?}");
    assert_eq!(new_leader, follower);
    let progress = d
        .wait_for(&new_leader, |p| p["state"] == "RUNNING", FAILOVER)
        .await;
    assert_eq!(progress["coordinatorID"], json!(new_leader), "{progress}");

    // Both come back: the old leader as a follower, the worker under its old id.
    d.coordinator(&leader).restart().await;
    d.worker("w2").restart().await;
    write_round(&d.source.client, 2).await;
    d.source.admin(doc! {"testbedSetLatency": 1, "ms": 0}).await;
    d.wait_for(&leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    write_round(&d.source.client, 3).await;
    d.assert_clusters_equal().await;
    let progress = d
        .wait_for(
            &leader,
            |p| {
                p["canCommit"] == json!(true)
                    && p["workers"]
                        .as_array()
                        .is_some_and(|w| w.len() == 3 && w.iter().all(|w| w["status"] == "live"))
            },
            CONVERGE,
        )
        .await;
    assert_eq!(progress["mongosyncID"], json!(leader), "{progress}");

    let (status, body) = d.post(&leader, "/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "/commit through the follower: {body}");
    let committed = d
        .wait_for(&leader, |p| p["state"] == "COMMITTED", CONVERGE)
        .await;
    assert_eq!(committed["canWrite"], json!(true), "{committed}");
    d.assert_clusters_equal().await;

    // The leader mirrors the migration into etcd: state, request, the engine's phase, T0.
    let reader = StateReader::new(
        c2c_membership::connect(&d.etcd.endpoints())
            .await
            .expect("etcd"),
        &MigrationId::new(MIGRATION).expect("id"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let record: Value = reader
            .get(&StateKey::State)
            .await
            .expect("read the record")
            .unwrap_or(Value::Null);
        if record["state"] == "COMMITTED" || Instant::now() > deadline {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(record["state"], "COMMITTED", "{record}");
    assert_eq!(record["request"]["source"], "cluster0", "{record}");
    assert_eq!(record["engine"]["phase"], "committed", "{record}");
    assert!(record["engine"]["t0"].is_object(), "{record}");
    assert!(record["engine"]["cutover"]["tc"].is_object(), "{record}");
    let plan: Value = reader
        .get(&StateKey::Plan)
        .await
        .expect("read the plan")
        .expect("the plan is persisted");
    assert!(plan["epoch"].as_u64().unwrap_or(0) > 1, "{plan}");
    d.passed();
}

/// Reports of a worker after SIGCONT: while it does not hold its lease, its write
/// counters never grow.
async fn assert_no_writes_without_lease(address: std::net::SocketAddr) {
    let mut client = WorkerClient::connect(format!("http://{address}"))
        .await
        .expect("connect to the worker");
    let mut reports = client
        .watch_progress(WatchWorkerRequest { interval_ms: 100 })
        .await
        .expect("watch")
        .into_inner();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut without_lease = 0;
    let mut last: Option<(u64, u64)> = None;
    while let Some(Ok(report)) = reports.next().await {
        if report.lease_held {
            assert!(
                without_lease > 0 || last.is_none(),
                "the worker held no lease after waking"
            );
            break;
        }
        without_lease += 1;
        let counters = (report.copied_documents, report.events_applied);
        if let Some(previous) = last {
            assert!(
                counters.0 <= previous.0 && counters.1 <= previous.1,
                "a worker without its lease wrote: {previous:?} -> {counters:?}"
            );
        }
        last = Some(counters);
        assert!(
            Instant::now() < deadline,
            "the worker never registered again"
        );
    }
    assert!(without_lease > 0, "the worker's lease outlived SIGSTOP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_worker_and_etcd_faults_during_cea_and_commit() {
    let mut d = Deployment::start(2, 3, 256 * 1024).await;
    load_databases(&d.source.client, 2_000, 300).await;
    let leader = d.serving_leader(None, FAILOVER).await;
    let (status, body) = d
        .post(
            &leader,
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1", "reversible": true,
                   "enableUserWriteBlocking": "sourceAndDestination"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    d.wait_for(&leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;

    // CEA: kill -9 of the leader and of a worker.
    write_round(&d.source.client, 1).await;
    d.coordinator(&leader).kill().await;
    d.worker("w1").kill().await;
    write_round(&d.source.client, 2).await;
    let leader = {
        let old = leader;
        let new = d.wait_for_new_leader(&old, FAILOVER).await;
        d.coordinator(&old).restart().await;
        new
    };
    d.worker("w1").restart().await;
    write_round(&d.source.client, 3).await;
    d.wait_for(&leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;

    // A worker stopped past its 3 s lease must not write when it wakes up.
    d.worker("w3").signal("STOP");
    write_round(&d.source.client, 4).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let w3 = d.worker("w3").address();
    d.worker("w3").signal("CONT");
    assert_no_writes_without_lease(w3).await;
    write_round(&d.source.client, 5).await;

    // etcd is down longer than every lease: the leader steps down (restarting itself
    // as a follower), the workers stop writing and register again; all carry on.
    d.etcd.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    d.etcd.restart().await;
    write_round(&d.source.client, 6).await;
    let leader = d.serving_leader(None, FAILOVER).await;
    d.wait_for(&leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    d.assert_clusters_equal().await;
    d.wait_for(&leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;

    // kill -9 of the leader while it commits: the next leader finishes the commit.
    let leader = d.serving_leader(None, FAILOVER).await;
    let (status, body) = d.post(&leader, "/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "{body}");
    d.coordinator(&leader).kill().await;
    let new_leader = d.wait_for_new_leader(&leader, FAILOVER).await;
    eprintln!("killed leader {leader} during the commit; {new_leader} finishes it");
    d.coordinator(&leader).restart().await;
    let committed = d
        .wait_for(&new_leader, |p| p["state"] == "COMMITTED", CONVERGE)
        .await;
    assert_eq!(committed["canWrite"], json!(true), "{committed}");
    d.assert_clusters_equal().await;

    // Reverse through the follower: the workers stream cluster1's writes back to cluster1.
    let follower = d.follower().await;
    let (status, body) = d.post(&follower, "/api/v1/reverse", json!({})).await;
    assert_eq!(status, 200, "/reverse through the follower: {body}");
    let running = d.wait_for(&follower, runs_reversed, CONVERGE).await;
    assert_eq!(running["coordinatorID"], json!(new_leader), "{running}");
    let orders = d
        .destination
        .client
        .database("shop")
        .collection::<bson::Document>("a");
    orders
        .insert_one(doc! {"_id": "after-reverse"})
        .await
        .expect("the new source takes writes");
    let back = d
        .source
        .client
        .database("shop")
        .collection::<bson::Document>("a");
    let deadline = Instant::now() + CONVERGE;
    while back
        .find_one(doc! {"_id": "after-reverse"})
        .await
        .expect("find")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the reversed write never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reversed = d
        .wait_for(&follower, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    // A reverse copies nothing: no worker is shown holding the forward copy's partitions.
    let workers = reversed["workers"].as_array().expect("workers breakdown");
    assert!(
        workers.iter().all(|w| w["partitionsAssigned"] == json!(0)),
        "{reversed}"
    );
    d.passed();
}

/// Worker log lines, after the first `skip` bytes, that start work running.
fn running_assignments(log: &str, skip: usize) -> Vec<String> {
    log.get(skip..)
        .unwrap_or("")
        .lines()
        .filter(|line| line.contains(r#""message":"assignment""#) && line.contains(r#""run":true"#))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_migration_stays_paused_through_a_leader_failover() {
    let mut d = Deployment::start(2, 2, 256 * 1024).await;
    load_databases(&d.source.client, 1_000, 300).await;
    let leader = d.serving_leader(None, FAILOVER).await;
    let (status, body) = d
        .post(
            &leader,
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    d.wait_for(&leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    let (status, body) = d.post(&leader, "/api/v1/pause", json!({})).await;
    assert_eq!(status, 200, "/pause: {body}");
    d.wait_for(&leader, |p| p["state"] == "PAUSED", CONVERGE)
        .await;
    let seen: Vec<usize> = ["w1", "w2"]
        .iter()
        .map(|id| d.worker(id).log_text().len())
        .collect();

    // Written while paused: must not reach the destination until /resume.
    write_round(&d.source.client, 1).await;
    d.coordinator(&leader).kill().await;
    let new_leader = d.wait_for_new_leader(&leader, FAILOVER).await;
    let paused = d
        .wait_for(&new_leader, |p| p["state"] == "PAUSED", CONVERGE)
        .await;
    assert_eq!(paused["coordinatorID"], json!(new_leader), "{paused}");
    // Long enough for the new leader to re-attach to the workers.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (id, skip) in ["w1", "w2"].iter().zip(&seen) {
        let started = running_assignments(&d.worker(id).log_text(), *skip);
        assert!(
            started.is_empty(),
            "{id} was set running while the migration was paused: {started:?}"
        );
    }
    let arrived = d
        .destination
        .client
        .database(common::SCALEOUT_DATABASES[0])
        .collection::<bson::Document>("a")
        .find_one(doc! {"_id": "new-1"})
        .await
        .expect("find");
    assert!(arrived.is_none(), "a write made while paused was applied");

    let (status, body) = d.post(&new_leader, "/api/v1/resume", json!({})).await;
    assert_eq!(status, 200, "/resume: {body}");
    d.wait_for(&new_leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    d.assert_clusters_equal().await;
    d.passed();
}
