//! `c2c run` as a process: its counters during the copy and during CEA, and Debian's
//! `prometheus` scraping it with the shipped static config.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bson::doc;
use c2c_coordinator::rest_client::RestClient;
use serde_json::json;

use crate::common::processes::free_port;
use crate::common::{load_databases, write_round, Harness, SCALEOUT_DATABASES};
use crate::scrape::{deploy, lint, prometheus_tool, scrape, scrape_until, Scrape};
use crate::{loaded_documents, CONVERGE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_the_data_of_c2c_run() {
    let harness = Harness::start_process().await;
    let address = harness.address();
    let idle = scrape(address).await;
    assert_eq!(idle.value("c2c_state", &[("state", "IDLE")]), 1.0);
    assert_eq!(idle.value("c2c_copied_documents_total", &[]), 0.0);
    assert_eq!(
        idle.value("c2c_build_info", &[("id", "coordinator")]),
        1.0,
        "{}",
        idle.text
    );
    assert_eq!(idle.get("c2c_leader", &[]), None, "c2c run has no election");
    lint(&idle);

    let per_collection = 5_000;
    load_databases(&harness.source.client, per_collection, 300).await;
    let loaded = loaded_documents(per_collection);
    // Remote-cluster latency makes the copy last long enough to be scraped during it.
    harness
        .source
        .admin(doc! {"testbedSetLatency": 1, "ms": 2})
        .await;
    harness
        .start_sync(json!({"source": "cluster0", "destination": "cluster1"}))
        .await;

    // During the copy: the copied counters only grow, and stop at what was loaded.
    let mut last_documents = 0.0;
    let mut last_bytes = 0.0;
    let mut seen_during_copy = false;
    let deadline = Instant::now() + CONVERGE;
    let copied = loop {
        let scraped = scrape(address).await;
        let documents = scraped.value("c2c_copied_documents_total", &[]);
        let bytes = scraped.value("c2c_copied_bytes_total", &[]);
        assert!(
            documents >= last_documents && bytes >= last_bytes,
            "counters went back:\n{}",
            scraped.text
        );
        (last_documents, last_bytes) = (documents, bytes);
        if documents > 0.0 && documents < loaded {
            seen_during_copy = true;
            assert_eq!(scraped.value("c2c_state", &[("state", "RUNNING")]), 1.0);
            assert_eq!(
                scraped.value("c2c_phase", &[("phase", "collection_copy")]),
                1.0,
                "{}",
                scraped.text
            );
            assert_eq!(scraped.value("c2c_copy_done", &[]), 0.0);
            assert_eq!(scraped.value("c2c_can_commit", &[]), 0.0);
            assert!(scraped.value("c2c_estimated_total_bytes", &[]) >= bytes);
        }
        if scraped.value("c2c_copy_done", &[]) == 1.0 {
            break scraped;
        }
        assert!(
            Instant::now() < deadline,
            "the copy did not finish:\n{}",
            scraped.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(seen_during_copy, "no scrape landed during the copy");
    assert_eq!(copied.value("c2c_copied_documents_total", &[]), loaded);
    harness
        .source
        .admin(doc! {"testbedSetLatency": 1, "ms": 0})
        .await;

    // canCommit: steady state, lag and verifier gauges there, /progress agrees.
    let ready = scrape_until(address, "c2c_can_commit 1", CONVERGE, |s| {
        s.get("c2c_can_commit", &[]) == Some(1.0)
    })
    .await;
    lint(&ready);
    let progress = harness.progress().await;
    assert_eq!(
        ready.value("c2c_copied_bytes_total", &[]),
        progress["collectionCopy"]["estimatedCopiedBytes"]
            .as_f64()
            .expect("copied bytes"),
        "{progress}"
    );
    assert_eq!(ready.value("c2c_phase", &[("phase", "steady_state")]), 1.0);
    assert!(ready.value("c2c_lag_seconds", &[]) >= 0.0);
    assert!(ready.value("c2c_crud_lag_seconds", &[]) >= 0.0);
    assert_eq!(ready.value("c2c_migration_failed", &[]), 0.0);
    assert_eq!(ready.value("c2c_can_write", &[]), 0.0);
    assert_eq!(ready.value("c2c_ping_ok", &[("side", "source")]), 1.0);
    assert!(ready
        .get("c2c_ping_latency_seconds", &[("side", "destination")])
        .is_some());
    assert_eq!(ready.value("c2c_verification_enabled", &[]), 1.0);
    for side in ["source", "destination"] {
        assert_eq!(
            ready.value(
                "c2c_verifier_phase",
                &[("side", side), ("phase", "stream_hashing")]
            ),
            1.0,
            "{}",
            ready.text
        );
        assert!(ready.value("c2c_verifier_hashed_documents", &[("side", side)]) > 0.0);
        assert!(ready.value("c2c_verifier_lag_seconds", &[("side", side)]) >= 0.0);
    }
    assert_eq!(ready.value("c2c_verifier_mismatches_total", &[]), 0.0);

    // Writes to the source: the applied counters grow by what was written, by type.
    let applied = |s: &Scrape, kind: &str| s.value("c2c_applier_events_total", &[("type", kind)]);
    let rounds = 3;
    for round in 0..rounds {
        write_round(&harness.source.client, round).await;
    }
    // Each round writes one insert, one update and one delete per database.
    let written = f64::from(rounds) * SCALEOUT_DATABASES.len() as f64;
    let after = scrape_until(address, "the writes applied", CONVERGE, |s| {
        ["insert", "update", "delete"]
            .iter()
            .all(|kind| applied(s, kind) >= applied(&ready, kind) + written)
    })
    .await;
    assert!(
        after.value("c2c_events_applied_total", &[])
            >= ready.value("c2c_events_applied_total", &[]) + 3.0 * written,
        "{}",
        after.text
    );
    let batches = after.value("c2c_applier_batch_events_count", &[]);
    assert!(batches > ready.value("c2c_applier_batch_events_count", &[]));
    assert_eq!(
        after.value("c2c_applier_batch_duration_seconds_count", &[]),
        batches
    );
    assert_eq!(
        after.value("c2c_applier_batch_events_bucket", &[("le", "+Inf")]),
        batches
    );
    assert!(after.value("c2c_applier_batch_events_sum", &[]) >= 3.0 * written);
    lint(&after);

    // Debian's Prometheus scrapes it with the shipped static config.
    prometheus_scrapes(address, loaded).await;

    harness.stop().await;
}

/// Runs Debian's `prometheus` on the shipped `prometheus.static.yml` (its `c2c run`
/// target pointed at `address`, scraped every second), waits until the target is up,
/// and reads a copied-documents sample back through its query API.
async fn prometheus_scrapes(address: SocketAddr, loaded: f64) {
    let dir = std::env::temp_dir().join(format!(
        "c2c-prometheus-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let shipped =
        std::fs::read_to_string(deploy("prometheus/prometheus.static.yml")).expect("static config");
    assert!(
        shipped.contains("\"127.0.0.1:27182\""),
        "the c2c-run example target moved"
    );
    let config = shipped
        .replace("\"127.0.0.1:27182\"", &format!("\"{address}\""))
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    std::fs::write(dir.join("prometheus.yml"), config).expect("write config");
    std::fs::copy(deploy("prometheus/alerts.yml"), dir.join("alerts.yml")).expect("copy rules");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let mut server = tokio::process::Command::new(prometheus_tool("prometheus"))
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");
    let api = RestClient::new(SocketAddr::from(([127, 0, 0, 1], port)));
    let started = Instant::now();
    let outcome = async {
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Ok((200, body)) = api.get("/api/v1/targets?state=active").await {
                let ours = body["data"]["activeTargets"]
                    .as_array()
                    .and_then(|targets| {
                        targets
                            .iter()
                            .find(|t| t["labels"]["job"] == "c2c-run")
                            .cloned()
                    });
                if let Some(target) = ours.filter(|t| t["health"] == "up") {
                    assert_eq!(
                        target["scrapeUrl"],
                        json!(format!("http://{address}/metrics"))
                    );
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err("the c2c-run target did not turn up within 30 s".to_string());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (status, body) = api
            .get("/api/v1/query?query=c2c_copied_documents_total")
            .await
            .map_err(|error| error.to_string())?;
        let value = body["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_string);
        match (status, value) {
            (200, Some(value)) if value.parse::<f64>().ok() == Some(loaded) => Ok(()),
            _ => Err(format!("unexpected query answer {status}: {body}")),
        }
    }
    .await;
    eprintln!("prometheus scraped c2c within {:?}", started.elapsed());
    let _ = server.start_kill();
    let _ = server.wait().await;
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(problem) = outcome {
        panic!("{problem}; prometheus' log:\n{log}");
    }
}
