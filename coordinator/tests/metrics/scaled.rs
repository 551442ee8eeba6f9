//! The scaled-out processes: a leader, a follower and a worker (with real etcd), each
//! scraped on its own port.

use std::time::Duration;

use serde_json::json;

use crate::common::processes::Deployment;
use crate::common::{load_databases, write_round, SCALEOUT_DATABASES};
use crate::scrape::{lint, scrape, scrape_until, Scrape};
use crate::{loaded_documents, CONVERGE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_and_workers_export_leadership_and_shares() {
    let mut d = Deployment::start(2, 1, 64 * 1024).await;
    let per_collection = 300;
    load_databases(&d.source.client, per_collection, 100).await;
    let loaded = loaded_documents(per_collection);
    let leader = d.serving_leader(None, Duration::from_secs(30)).await;
    let follower = d.follower().await;
    let leader_address = d.coordinator(&leader).address();
    let follower_address = d.coordinator(&follower).address();
    let worker_address = d.worker("w1").address();

    let followed = scrape(follower_address).await;
    assert_eq!(followed.value("c2c_leader", &[]), 0.0);
    assert_eq!(
        followed.get("c2c_state", &[("state", "IDLE")]),
        None,
        "a follower does not forward /metrics"
    );
    assert_eq!(
        followed.value("c2c_build_info", &[("id", follower.as_str())]),
        1.0
    );
    lint(&followed);

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

    let leading = scrape_until(
        leader_address,
        "the leader's copy counters",
        CONVERGE,
        |s| {
            s.get("c2c_copied_documents_total", &[]) == Some(loaded)
                && s.get("c2c_workers_by_status", &[("status", "live")]) == Some(1.0)
        },
    )
    .await;
    assert_eq!(leading.value("c2c_leader", &[]), 1.0);
    assert!(leading.value("c2c_leader_term", &[]) > 0.0);
    assert_eq!(leading.value("c2c_workers", &[]), 1.0);
    assert_eq!(leading.value("c2c_state", &[("state", "RUNNING")]), 1.0);
    assert_eq!(leading.value("c2c_copy_done", &[]), 1.0);
    lint(&leading);

    let worker = scrape_until(worker_address, "the worker's share", CONVERGE, |s| {
        s.get("c2c_copied_documents_total", &[]) == Some(loaded)
    })
    .await;
    assert_eq!(worker.value("c2c_worker_lease_held", &[]), 1.0);
    assert_eq!(worker.value("c2c_worker_running", &[]), 1.0);
    assert_eq!(worker.value("c2c_build_info", &[("id", "w1")]), 1.0);
    // Done partitions leave the plan once the copy is over: what is assigned is done.
    let assigned = worker.value("c2c_worker_partitions", &[("state", "assigned")]);
    assert_eq!(
        worker.value("c2c_worker_partitions", &[("state", "done")]),
        assigned
    );
    assert!(worker.value("c2c_worker_stream_shards", &[]) >= 1.0);
    assert_eq!(worker.get("c2c_leader", &[]), None);
    lint(&worker);

    // A write round reaches the worker's applier and the leader's total.
    // One insert and one update per database (its delete misses: only 300 are loaded).
    write_round(&d.source.client, 1).await;
    let written = SCALEOUT_DATABASES.len() as f64;
    let applied = |s: &Scrape, kind: &str| s.value("c2c_applier_events_total", &[("type", kind)]);
    scrape_until(
        worker_address,
        "the worker applying the writes",
        CONVERGE,
        |s| {
            ["insert", "update"]
                .iter()
                .all(|kind| applied(s, kind) >= applied(&worker, kind) + written)
        },
    )
    .await;
    scrape_until(
        leader_address,
        "the leader counting the writes",
        CONVERGE,
        |s| {
            s.value("c2c_events_applied_total", &[])
                >= leading.value("c2c_events_applied_total", &[]) + 2.0 * written
        },
    )
    .await;
    d.passed();
}
