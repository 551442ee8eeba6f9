//! The in-memory election and state store, as the coordinator's tests will use them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use c2c_membership::{
    CandidateInfo, Election, MembershipError, MemoryElectionHub, MemoryStateStore, StateKey,
    StatePrefix, StateStore, StateStoreExt, StateWrite,
};
use common::wid;
use serde::{Deserialize, Serialize};
use serde_json::json;

fn info(id: &str) -> CandidateInfo {
    CandidateInfo::new(id, format!("{id}.local:27182"))
}

#[tokio::test]
async fn one_leader_at_a_time_and_depose_hands_over() {
    let hub = MemoryElectionHub::new();
    let a: Arc<dyn Election> = Arc::new(hub.candidate(info("a")));
    let b: Arc<dyn Election> = Arc::new(hub.candidate(info("b")));
    let mut observed = b.observe();

    let leader_a = a.campaign().await.unwrap();
    assert_eq!(leader_a.info(), &info("a"));
    assert_eq!(leader_a.term(), 1);
    assert!(leader_a.is_valid());
    assert_eq!(b.leader().await.unwrap(), Some(info("a")));
    common::wait_for(&mut observed, Duration::from_secs(1), "a observed", |l| {
        l.as_ref() == Some(&info("a"))
    })
    .await;

    let b_campaign = tokio::spawn({
        let b = b.clone();
        async move { b.campaign().await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!b_campaign.is_finished(), "b must wait while a leads");

    let lost = leader_a.lost();
    assert_eq!(hub.depose(), Some(info("a")));
    assert!(lost.is_cancelled());
    assert!(!leader_a.is_valid());

    let leader_b = tokio::time::timeout(Duration::from_secs(1), b_campaign)
        .await
        .expect("b wins after a is deposed")
        .unwrap()
        .unwrap();
    assert_eq!(leader_b.info(), &info("b"));
    assert!(leader_b.term() > leader_a.term());
    assert_eq!(hub.current_leader(), Some(info("b")));
    // The deposed leadership's drop must not release b's reign.
    drop(leader_a);
    assert_eq!(hub.current_leader(), Some(info("b")));

    // Resigning hands over to the next queued candidate.
    let a_again = tokio::spawn({
        let a = a.clone();
        async move { a.campaign().await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader_b.resign().await.unwrap();
    let leader_a2 = tokio::time::timeout(Duration::from_secs(1), a_again)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(leader_a2.term(), 3);

    // Dropping leadership is a crash: the election opens up again.
    drop(leader_a2);
    assert_eq!(hub.current_leader(), None);
    assert_eq!(a.leader().await.unwrap(), None);
}

#[tokio::test]
async fn abandoned_campaign_leaves_the_queue() {
    let hub = MemoryElectionHub::new();
    let a = hub.candidate(info("a"));
    let b = hub.candidate(info("b"));
    let c = hub.candidate(info("c"));
    let leader_a = a.campaign().await.unwrap();
    let abandoned = tokio::time::timeout(Duration::from_millis(20), b.campaign()).await;
    assert!(abandoned.is_err(), "b cannot win while a leads");
    let c_campaign = tokio::spawn(async move { c.campaign().await.map(|l| l.info().clone()) });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(leader_a);
    let winner = tokio::time::timeout(Duration::from_secs(1), c_campaign)
        .await
        .expect("c wins: b's abandoned ticket must not block the queue")
        .unwrap()
        .unwrap();
    assert_eq!(winner, info("c"));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Phase {
    name: String,
    epoch: u64,
}

#[tokio::test]
async fn memory_store_reads_writes_lists_and_injects_failures() {
    let store = MemoryStateStore::new();
    let dyn_store: Arc<dyn StateStore> = Arc::new(store.clone());

    let phase = Phase {
        name: "copying".into(),
        epoch: 2,
    };
    dyn_store.put(&StateKey::State, &phase).await.unwrap();
    assert_eq!(
        dyn_store.get::<Phase>(&StateKey::State).await.unwrap(),
        Some(phase)
    );
    assert_eq!(dyn_store.get_json(&StateKey::Plan).await.unwrap(), None);

    let w2 = StateKey::Assignment(wid("w2"));
    let w1 = StateKey::Assignment(wid("w1"));
    dyn_store
        .apply(vec![
            StateWrite::Put {
                key: w2.clone(),
                value: json!({"partitions": [2]}),
            },
            StateWrite::Put {
                key: w1.clone(),
                value: json!({"partitions": [1]}),
            },
            StateWrite::Put {
                key: StateKey::Plan,
                value: json!({"epoch": 2}),
            },
        ])
        .await
        .unwrap();
    let listed = dyn_store.list_json(StatePrefix::Assignments).await.unwrap();
    let keys: Vec<_> = listed.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, vec![w1.clone(), w2.clone()]);

    dyn_store.delete(&w2).await.unwrap();
    assert_eq!(
        dyn_store
            .list_json(StatePrefix::Assignments)
            .await
            .unwrap()
            .len(),
        1
    );

    let wrong = dyn_store.get::<Phase>(&StateKey::Plan).await.unwrap_err();
    assert!(
        matches!(wrong, MembershipError::Decode { ref key, .. } if key == "plan"),
        "{wrong}"
    );

    store.fail_next_writes(1);
    let transient = dyn_store
        .put_json(&StateKey::Plan, json!(1))
        .await
        .unwrap_err();
    assert!(transient.is_retryable());
    dyn_store.put_json(&StateKey::Plan, json!(1)).await.unwrap();

    store.fence(7);
    let fenced = dyn_store
        .put_json(&StateKey::Plan, json!(2))
        .await
        .unwrap_err();
    assert!(matches!(fenced, MembershipError::Fenced { term: 7 }));
    assert!(!fenced.is_retryable());
    assert_eq!(store.snapshot().get(&StateKey::Plan), Some(&json!(1)));
    assert_eq!(store.writes().len(), 6);
}
