//! Election and fencing against a real etcd. These fail (not skip) without etcd.

mod common;

use std::sync::Arc;
use std::time::Duration;

use c2c_membership::etcd_testing::EtcdServer;
use c2c_membership::timing::LEADER_LEASE_TTL;
use c2c_membership::{
    CandidateInfo, Election, EtcdElection, FencedStore, Leadership, MembershipError, StateKey,
    StateReader, StateStore, StateStoreExt,
};
use common::{client, init_tracing, mid};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const WIN_WITHIN: Duration = Duration::from_secs(10);

fn info(id: &str) -> CandidateInfo {
    CandidateInfo::new(id, format!("127.0.0.1:{}", 27000 + id.len()))
}

struct Candidate {
    election: Arc<EtcdElection>,
    client: c2c_membership::EtcdClient,
}

async fn candidate(server: &EtcdServer, migration: &str, id: &str) -> Candidate {
    let client = client(&server.endpoints()).await;
    let election = Arc::new(EtcdElection::new(client.clone(), &mid(migration), info(id)));
    Candidate { election, client }
}

fn campaign_in_background(candidate: &Candidate) -> JoinHandle<Leadership> {
    let election = candidate.election.clone();
    tokio::spawn(async move { election.campaign().await.expect("campaign") })
}

async fn won(handle: JoinHandle<Leadership>) -> Leadership {
    tokio::time::timeout(WIN_WITHIN, handle)
        .await
        .expect("the waiting candidate should win")
        .expect("campaign task")
}

/// Two candidates, one leader; fenced writes follow leadership through a resign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_and_fencing_across_resign() {
    init_tracing();
    let server = EtcdServer::start().await;
    let migration = mid("resign");
    let a = candidate(&server, "resign", "a").await;
    let b = candidate(&server, "resign", "b").await;

    let leader_a = tokio::time::timeout(WIN_WITHIN, a.election.campaign())
        .await
        .expect("a wins an empty election")
        .unwrap();
    assert_eq!(leader_a.info(), &info("a"));
    assert!(leader_a.is_valid());
    let b_campaign = campaign_in_background(&b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b_campaign.is_finished(), "only one candidate may lead");
    assert_eq!(b.election.leader().await.unwrap(), Some(info("a")));
    let mut observed = b.election.observe();
    common::wait_for(&mut observed, Duration::from_secs(5), "b observes a", |l| {
        l.as_ref() == Some(&info("a"))
    })
    .await;

    let store_a = FencedStore::new(a.client.clone(), &migration, leader_a.leader_key().clone());
    assert_eq!(store_a.term(), leader_a.term());
    store_a
        .put(&StateKey::State, &json!({"phase": "a"}))
        .await
        .unwrap();
    let term_a = leader_a.term();
    let lost_a = leader_a.lost();

    let resigned_at = Instant::now();
    leader_a.resign().await.unwrap();
    assert!(lost_a.is_cancelled());
    let leader_b = won(b_campaign).await;
    println!("handover after resign: {:?}", resigned_at.elapsed());
    assert_eq!(leader_b.info(), &info("b"));
    assert!(
        leader_b.term() > term_a,
        "terms increase with every election"
    );

    let fenced = store_a
        .put_json(&StateKey::State, json!({"phase": "stale a"}))
        .await
        .unwrap_err();
    assert!(
        matches!(fenced, MembershipError::Fenced { term } if term == term_a),
        "{fenced}"
    );
    let store_b = FencedStore::new(b.client.clone(), &migration, leader_b.leader_key().clone());
    store_b
        .put_json(&StateKey::State, json!({"phase": "b"}))
        .await
        .unwrap();
    let reader = StateReader::new(a.client.clone(), &migration);
    assert_eq!(
        reader.get_json(&StateKey::State).await.unwrap(),
        Some(json!({"phase": "b"}))
    );
    common::wait_for(
        &mut observed,
        Duration::from_secs(5),
        "b observes itself",
        |l| l.as_ref() == Some(&info("b")),
    )
    .await;
    leader_b.resign().await.unwrap();
    common::wait_for(
        &mut observed,
        Duration::from_secs(5),
        "nobody leads",
        Option::is_none,
    )
    .await;
}

/// A leader that dies without resigning (its lease is no longer kept alive) is replaced
/// once the lease expires; the measured failover is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_when_the_leader_process_dies() {
    init_tracing();
    let server = EtcdServer::start().await;
    let migration = mid("crash");
    let a = candidate(&server, "crash", "a").await;
    let b = candidate(&server, "crash", "b").await;

    let leader_a = a.election.campaign().await.unwrap();
    let store_a = FencedStore::new(a.client.clone(), &migration, leader_a.leader_key().clone());
    store_a.put_json(&StateKey::Plan, json!(1)).await.unwrap();
    let term_a = leader_a.term();
    let b_campaign = campaign_in_background(&b);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Dropping the leadership stops the keep-alives: the lease dies on the server.
    let dropped_at = Instant::now();
    drop(leader_a);
    let leader_b = won(b_campaign).await;
    let failover = dropped_at.elapsed();
    println!("failover after leader crash (lease ttl {LEADER_LEASE_TTL:?}): {failover:?}");
    assert!(failover < WIN_WITHIN);
    assert!(leader_b.term() > term_a);

    let fenced = store_a
        .put_json(&StateKey::Plan, json!(2))
        .await
        .unwrap_err();
    assert!(matches!(fenced, MembershipError::Fenced { .. }), "{fenced}");
    let store_b = FencedStore::new(b.client.clone(), &migration, leader_b.leader_key().clone());
    assert_eq!(
        store_b.get_json(&StateKey::Plan).await.unwrap(),
        Some(json!(1))
    );
}

/// Revoking the leader's lease (what etcd does when it expires) fires `lost` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_lease_fires_lost_and_hands_over() {
    init_tracing();
    let server = EtcdServer::start().await;
    let migration = mid("revoke");
    let a = candidate(&server, "revoke", "a").await;
    let b = candidate(&server, "revoke", "b").await;

    let leader_a = a.election.campaign().await.unwrap();
    let store_a = FencedStore::new(a.client.clone(), &migration, leader_a.leader_key().clone());
    let b_campaign = campaign_in_background(&b);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let revoked_at = Instant::now();
    let mut admin = client(&server.endpoints()).await;
    admin
        .lease_revoke(leader_a.leader_key().lease())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(2), leader_a.lost().cancelled())
        .await
        .expect("lost fires when the leader key disappears");
    println!("lost noticed after revoke: {:?}", revoked_at.elapsed());
    assert!(!leader_a.is_valid());
    let leader_b = won(b_campaign).await;
    println!("failover after lease revoke: {:?}", revoked_at.elapsed());
    assert!(leader_b.term() > leader_a.term());
    let fenced = store_a
        .put_json(&StateKey::Plan, json!("late"))
        .await
        .unwrap_err();
    assert!(matches!(fenced, MembershipError::Fenced { .. }));
}

/// A leader cut off from etcd stops being valid within the lease TTL, by its own clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_expires_locally_when_etcd_is_unreachable() {
    init_tracing();
    let mut server = EtcdServer::start().await;
    let a = candidate(&server, "partition", "a").await;
    let leader_a = a.election.campaign().await.unwrap();
    assert!(leader_a.is_valid());

    let stopped_at = Instant::now();
    server.stop();
    tokio::time::timeout(LEADER_LEASE_TTL * 2, leader_a.lost().cancelled())
        .await
        .expect("lost fires once the lease cannot be confirmed within its ttl");
    let noticed = stopped_at.elapsed();
    println!("leader noticed etcd loss after {noticed:?}");
    assert!(!leader_a.is_valid());
    assert!(
        noticed <= LEADER_LEASE_TTL + Duration::from_millis(300),
        "{noticed:?}"
    );

    // After etcd returns, the same candidate can lead again, with a new term.
    server.restart().await;
    let again = tokio::time::timeout(WIN_WITHIN, a.election.campaign())
        .await
        .expect("campaign succeeds after etcd restarts")
        .unwrap();
    assert!(again.term() > leader_a.term());
}

/// `connect` gives up after a bounded number of attempts when nobody answers.
#[tokio::test]
async fn connect_fails_in_bounded_time_without_etcd() {
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let error = c2c_membership::connect(&[format!("http://127.0.0.1:{unused_port}")])
        .await
        .err()
        .expect("nothing listens there");
    println!("connect gave up after {:?}: {error}", started.elapsed());
    assert!(
        error.is_retryable(),
        "an unreachable etcd is worth retrying later: {error}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(c2c_membership::connect(&[]).await.is_err());
}
