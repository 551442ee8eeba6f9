//! Worker registration and the worker directory against a real etcd. These fail (not
//! skip) without etcd.

mod common;

use std::time::Duration;

use c2c_membership::etcd_testing::EtcdServer;
use c2c_membership::timing::{WORKER_LEASE_TTL, WORKER_REGISTER_WAIT};
use c2c_membership::{
    LiveWorker, MembershipError, WorkerDirectory, WorkerRecord, WorkerRegistration,
};
use common::{client, init_tracing, mid, wid};
use tokio::time::Instant;

const SEEN_WITHIN: Duration = Duration::from_secs(5);

fn ids(workers: &[LiveWorker]) -> Vec<&str> {
    workers.iter().map(|w| w.record.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_appear_duplicates_are_refused_and_revocation_removes() {
    init_tracing();
    let server = EtcdServer::start().await;
    let migration = mid("workers");
    let coordinator = client(&server.endpoints()).await;
    let directory = WorkerDirectory::start(coordinator.clone(), &migration)
        .await
        .unwrap();
    assert!(directory.list().is_empty());
    let mut workers = directory.watch();

    let w2 = WorkerRegistration::register(
        client(&server.endpoints()).await,
        &migration,
        WorkerRecord::new(wid("w2"), "127.0.0.1:7002"),
    )
    .await
    .unwrap();
    let w1 = WorkerRegistration::register(
        client(&server.endpoints()).await,
        &migration,
        WorkerRecord::new(wid("w1"), "127.0.0.1:7001"),
    )
    .await
    .unwrap();
    assert!(w1.lease_valid() && w2.lease_valid());
    let seen = common::wait_for(&mut workers, SEEN_WITHIN, "w1 and w2", |w| w.len() == 2).await;
    assert_eq!(ids(&seen), ["w1", "w2"], "sorted by id");
    assert_eq!(seen[0].record, *w1.record());
    assert_eq!(seen[0].generation as u64, w1.generation());
    assert_eq!(seen[0].lease_id, w1.lease_id());

    // A second live process with the same id is refused, after waiting out one TTL in
    // case the holder was its own previous incarnation.
    let started = Instant::now();
    let duplicate = WorkerRegistration::register(
        client(&server.endpoints()).await,
        &migration,
        WorkerRecord::new("w1", "127.0.0.1:9999"),
    )
    .await;
    let refused_after = started.elapsed();
    let error = duplicate.err().expect("duplicate id refused");
    assert!(
        matches!(error, MembershipError::AlreadyRegistered { ref id, lease_id } if id == "w1" && lease_id == w1.lease_id()),
        "{error}"
    );
    println!("duplicate refused after {refused_after:?}");
    assert!(refused_after >= WORKER_REGISTER_WAIT);
    assert!(
        w1.lease_valid(),
        "the refused duplicate must not disturb the holder"
    );
    assert_eq!(directory.list()[0].record.address, "127.0.0.1:7001");

    // Re-registration: same id, new lease, larger generation; the old lease's signal fires.
    let old_generation = w1.generation();
    let old_lost = w1.lease_lost_token();
    w1.reregister().await.unwrap();
    assert!(old_lost.is_cancelled());
    assert!(w1.generation() > old_generation);
    assert!(w1.lease_valid() && !w1.lease_lost_token().is_cancelled());
    let generation = w1.generation() as i64;
    common::wait_for(&mut workers, SEEN_WITHIN, "w1's new generation", |w| {
        w.iter()
            .any(|x| x.record.id == "w1" && x.generation == generation)
    })
    .await;

    let revoked_at = Instant::now();
    w1.deregister().await.unwrap();
    let seen = common::wait_for(&mut workers, SEEN_WITHIN, "w1 gone", |w| w.len() == 1).await;
    println!(
        "deregistered worker gone from the directory after {:?}",
        revoked_at.elapsed()
    );
    assert_eq!(ids(&seen), ["w2"]);

    // A worker that dies without deregistering disappears after its TTL.
    let died_at = Instant::now();
    drop(w2);
    common::wait_for(
        &mut workers,
        WORKER_LEASE_TTL * 3,
        "w2 expired",
        Vec::is_empty,
    )
    .await;
    println!(
        "crashed worker gone from the directory after {:?}",
        died_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_turns_invalid_without_etcd_and_everything_recovers_after_restart() {
    init_tracing();
    let mut server = EtcdServer::start().await;
    let migration = mid("outage");
    let directory = WorkerDirectory::start(client(&server.endpoints()).await, &migration)
        .await
        .unwrap();
    let mut workers = directory.watch();
    let registration = WorkerRegistration::register(
        client(&server.endpoints()).await,
        &migration,
        WorkerRecord::new(wid("w1"), "127.0.0.1:7001"),
    )
    .await
    .unwrap();
    common::wait_for(&mut workers, SEEN_WITHIN, "w1", |w| w.len() == 1).await;
    let lost = registration.lease_lost();

    let stopped_at = Instant::now();
    server.stop();
    assert!(
        registration.lease_valid(),
        "still valid right after the outage begins"
    );
    tokio::time::timeout(WORKER_LEASE_TTL * 2, lost)
        .await
        .expect("lease_lost fires when keep-alives cannot reach etcd");
    let noticed = stopped_at.elapsed();
    println!("worker noticed its lease lost after {noticed:?}");
    assert!(!registration.lease_valid());
    assert!(
        noticed <= WORKER_LEASE_TTL + Duration::from_millis(300),
        "{noticed:?}"
    );
    assert_eq!(
        directory.list().len(),
        1,
        "the directory keeps the last known view"
    );

    server.restart().await;
    let old_generation = registration.generation();
    tokio::time::timeout(Duration::from_secs(10), registration.reregister())
        .await
        .expect("re-registration finishes")
        .expect("re-registration after etcd restart");
    assert!(registration.lease_valid());
    assert!(registration.generation() > old_generation);
    let generation = registration.generation() as i64;

    // The directory reconnects, re-lists and follows new changes.
    let w2 = WorkerRegistration::register(
        client(&server.endpoints()).await,
        &migration,
        WorkerRecord::new(wid("w2"), "127.0.0.1:7002"),
    )
    .await
    .unwrap();
    let seen = common::wait_for(
        &mut workers,
        Duration::from_secs(10),
        "directory recovered",
        |w| w.len() == 2 && w[0].generation == generation,
    )
    .await;
    assert_eq!(ids(&seen), ["w1", "w2"]);
    assert_eq!(seen[1].generation as u64, w2.generation());
}

/// A process frozen past its TTL (SIGSTOP, VM pause) must see its lease invalid the
/// moment it resumes, before any keep-alive could answer. A single-threaded runtime
/// blocked by `std::thread::sleep` freezes the keep-alive task the same way.
#[tokio::test(flavor = "current_thread")]
async fn frozen_process_sees_lease_invalid_on_wake() {
    init_tracing();
    let server = EtcdServer::start().await;
    let registration = WorkerRegistration::register(
        client(&server.endpoints()).await,
        &mid("freeze"),
        WorkerRecord::new(wid("w1"), "127.0.0.1:7001"),
    )
    .await
    .unwrap();
    assert!(registration.lease_valid());
    std::thread::sleep(WORKER_LEASE_TTL + Duration::from_millis(200));
    assert!(
        !registration.lease_valid(),
        "validity is judged on the local monotonic clock, without a round trip"
    );
}
