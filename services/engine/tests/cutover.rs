//! Cutover against two testbeds with auth on: write blocking at the documented moments,
//! commit (prepareUnique → canWrite → unique, TTL and hidden restored), duplicate keys,
//! writes to the source after Tc, reverse (repeatedly), the refusals, and a crash at
//! every commit and reverse step followed by a restart.

#[path = "cutover/support.rs"]
mod support;

use std::sync::atomic::Ordering;

use bson::doc;
use c2c_engine::filter::FilterSpec;
use c2c_engine::metadata::{CutoverStep, PersistedPhase};
use c2c_engine::migration::Migration;
use c2c_engine::options::WriteBlocking;
use c2c_engine::progress::Phase;
use c2c_engine::EngineError;
use support::*;

fn refused(outcome: c2c_engine::Result<()>, words: &str) {
    match outcome {
        Err(EngineError::Refused(text)) => assert!(text.contains(words), "{text}"),
        other => panic!("expected a refusal mentioning {words:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn commit_with_source_and_destination_blocking() {
    let env = env().await;
    seed(&env).await;
    let setup = Setup::new(WriteBlocking::SourceAndDestination, false);
    let migration = start(&env, &setup).await;
    // The destination is blocked for the application from the start.
    assert_eq!(
        insert_code(&env.app_destination, "orders", doc! {"_id": "early"}).await,
        USER_WRITES_BLOCKED
    );
    wait_steady(&migration).await;
    // The application keeps writing to the source during the sync.
    assert_eq!(
        insert_code(&env.app_source, "orders", doc! {"_id": 1000}).await,
        0
    );
    coll(&env.app_source, "users")
        .update_one(doc! {"_id": 3}, doc! {"$set": {"email": "changed@x"}})
        .await
        .expect("update");
    wait_equal(&env.app_source, &env.app_destination).await;
    assert_relaxed(&env.app_destination).await;
    assert_eq!(
        insert_code(
            &env.app_destination,
            "orders",
            doc! {"_id": "still blocked"}
        )
        .await,
        USER_WRITES_BLOCKED
    );
    migration.commit().await.expect("commit accepted");
    // From the moment /commit answers, the source refuses the application.
    assert_eq!(
        insert_code(&env.app_source, "orders", doc! {"_id": "late"}).await,
        USER_WRITES_BLOCKED
    );
    let progress = migration.progress();
    eventually("canWrite", std::time::Duration::from_secs(30), || {
        let can = progress.can_write.load(Ordering::Relaxed);
        async move { can }
    })
    .await;
    wait_phase(&migration, Phase::Committed).await;
    wait_equal(&env.app_source, &env.app_destination).await;
    assert_restored(&env.app_destination).await;
    assert_eq!(
        insert_code(&env.app_destination, "orders", doc! {"_id": "after"}).await,
        0
    );
    // Unique for real now.
    assert_eq!(
        insert_code(
            &env.app_destination,
            "users",
            doc! {"_id": "dup", "email": "u5@x"}
        )
        .await,
        11000
    );
    let state = state(&env).await;
    assert_eq!(state.phase, PersistedPhase::Committed);
    assert!(state.cutover.tc.is_some() && state.cutover.td.is_some());
    assert_eq!(
        Migration::persisted_phase(&env.c2c_destination)
            .await
            .expect("phase"),
        Some(PersistedPhase::Committed)
    );
    refused(migration.commit().await, "already committed");
}

#[tokio::test]
async fn duplicate_keys_stop_the_commit_with_ids_and_nothing_is_dropped() {
    let env = env().await;
    seed(&env).await;
    let migration = start(&env, &Setup::new(WriteBlocking::DestinationOnly, false)).await;
    wait_steady(&migration).await;
    wait_equal(&env.app_source, &env.app_destination).await;
    // A duplicate only the relaxed destination can hold (c2c's user bypasses blocking).
    coll(&env.c2c_destination, "users")
        .insert_one(doc! {"_id": 900, "email": "u7@x"})
        .await
        .expect("duplicate on the destination");
    migration.commit().await.expect("commit accepted");
    let progress = migration.progress();
    eventually(
        "the conversion failure",
        std::time::Duration::from_secs(30),
        || {
            let failed = progress.failure.lock().is_some();
            async move { failed }
        },
    )
    .await;
    assert_eq!(progress.phase(), Some(Phase::Committing));
    assert!(progress.can_write.load(Ordering::Relaxed));
    let errors = progress.cutover_errors.lock().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("email_1") && errors[0].contains("u7@x"),
        "{errors:?}"
    );
    assert!(errors[0].contains("_id [7, 900]"), "{errors:?}");
    assert_eq!(state(&env).await.phase, PersistedPhase::Committing);
    // Nothing dropped: both documents are still there; TTL and hidden were restored.
    let users = documents(&env.app_destination, "users").await;
    assert!(users.iter().any(|d| d.get_i32("_id") == Ok(7)));
    assert!(users.iter().any(|d| d.get_i32("_id") == Ok(900)));
    let specs = indexes(&env.app_destination, "users").await;
    assert_eq!(index(&specs, "email_1").get_bool("prepareUnique"), Ok(true));
    assert_eq!(index(&specs, "h_1").get_bool("hidden"), Ok(true));
    // The user resolves it; a new /commit finishes.
    coll(&env.app_destination, "users")
        .delete_one(doc! {"_id": 900})
        .await
        .expect("fix");
    migration.commit().await.expect("retry accepted");
    wait_phase(&migration, Phase::Committed).await;
    assert_restored(&env.app_destination).await;
    assert!(progress.cutover_errors.lock().is_empty());
}

/// Stops the commit before its drain, lets `write` reach the source after Tc, restarts.
async fn late_write_fails_the_commit(blocking: WriteBlocking, expected: &str) {
    let env = env().await;
    seed(&env).await;
    let mut setup = Setup::new(blocking, false);
    setup.hooks.stop_before = Some(CutoverStep::DrainToCommitPoint);
    let migration = start(&env, &setup).await;
    wait_steady(&migration).await;
    migration.commit().await.expect("commit accepted");
    wait_hook(&setup).await;
    migration.shutdown().await;
    let writer = match blocking {
        // Only a user that bypasses blocking can still write to a blocked source.
        WriteBlocking::SourceAndDestination => &env.c2c_source,
        _ => &env.app_source,
    };
    assert_eq!(
        insert_code(writer, "orders", doc! {"_id": "after Tc"}).await,
        0
    );
    let restarted = start(&env, &Setup::new(blocking, false)).await;
    let progress = restarted.progress();
    eventually(
        "the late-write failure",
        std::time::Duration::from_secs(30),
        || {
            let failed = progress.failure.lock().is_some();
            async move { failed }
        },
    )
    .await;
    let failure = progress.failure.lock().clone().unwrap_or_default();
    assert!(failure.contains("after the commit point"), "{failure}");
    assert!(
        failure.contains("shop.orders") && failure.contains(expected),
        "{failure}"
    );
    assert_eq!(progress.cutover_errors.lock().len(), 1);
    assert_eq!(progress.phase(), Some(Phase::Committing));
    assert!(!progress.can_write.load(Ordering::Relaxed));
    let orders = documents(&env.app_destination, "orders").await;
    assert!(!orders.iter().any(|d| d.get_str("_id") == Ok("after Tc")));
}

#[tokio::test]
async fn late_source_write_with_source_blocking_fails_loudly() {
    late_write_fails_the_commit(
        WriteBlocking::SourceAndDestination,
        "bypassWriteBlockingMode",
    )
    .await;
}

#[tokio::test]
async fn late_source_write_without_blocking_fails_too() {
    late_write_fails_the_commit(WriteBlocking::None, "must stop before /commit").await;
}

#[tokio::test]
async fn reverse_commit_and_reverse_again() {
    let env = env().await;
    seed(&env).await;
    let setup = Setup::new(WriteBlocking::SourceAndDestination, true);
    let migration = start(&env, &setup).await;
    wait_steady(&migration).await;
    commit_and_wait(&migration).await;
    // The application moved: its writes after canWrite must flow back on /reverse.
    assert_eq!(
        insert_code(&env.app_destination, "orders", doc! {"_id": "moved"}).await,
        0
    );
    migration.reverse().await.expect("reverse accepted");
    refused(migration.reverse().await, "COMMITTED");
    wait_steady(&migration).await;
    let progress = migration.progress();
    assert!(progress.reversed.load(Ordering::Relaxed));
    assert!(!progress.can_write.load(Ordering::Relaxed));
    assert_eq!(
        insert_code(&env.app_destination, "orders", doc! {"_id": "reversed"}).await,
        0
    );
    wait_equal(&env.app_destination, &env.app_source).await;
    assert_relaxed(&env.app_source).await;
    // The old source is now the destination: blocked for the application.
    assert_eq!(
        insert_code(&env.app_source, "orders", doc! {"_id": "no"}).await,
        USER_WRITES_BLOCKED
    );
    commit_and_wait(&migration).await;
    assert_restored(&env.app_source).await;
    assert_eq!(
        insert_code(&env.app_source, "orders", doc! {"_id": "back"}).await,
        0
    );
    assert_eq!(
        insert_code(&env.app_destination, "orders", doc! {"_id": "no"}).await,
        USER_WRITES_BLOCKED
    );
    migration.reverse().await.expect("second reverse accepted");
    wait_steady(&migration).await;
    assert!(!progress.reversed.load(Ordering::Relaxed));
    assert_eq!(
        insert_code(&env.app_source, "orders", doc! {"_id": "forward again"}).await,
        0
    );
    wait_equal(&env.app_source, &env.app_destination).await;
    assert_relaxed(&env.app_destination).await;
    let state = state(&env).await;
    assert_eq!(state.cutover.reversals, 2);
    assert!(!state.cutover.reversed);
    commit_and_wait(&migration).await;
    assert_restored(&env.app_destination).await;
}

#[tokio::test]
async fn commit_refused_before_steady_state_and_twice() {
    let env = env().await;
    seed(&env).await;
    let migration = start(&env, &Setup::new(WriteBlocking::DestinationOnly, false)).await;
    refused(migration.commit().await, "canCommit is false");
    wait_steady(&migration).await;
    refused(migration.reverse().await, "reversible");
    migration.commit().await.expect("commit accepted");
    let second = migration.commit().await;
    assert!(matches!(second, Err(EngineError::Refused(_))), "{second:?}");
    wait_phase(&migration, Phase::Committed).await;
    refused(migration.reverse().await, "reversible: true");
}

#[tokio::test]
async fn reverse_refused_without_its_preconditions() {
    let env = env().await;
    seed(&env).await;
    // Reversible but filtered (the coordinator refuses this at /start; the engine too).
    let mut setup = Setup::new(WriteBlocking::SourceAndDestination, true);
    setup.include = vec![FilterSpec {
        database: Some(DB.into()),
        database_regex: None,
        collections: None,
        collections_regex: None,
    }];
    let migration = start(&env, &setup).await;
    wait_steady(&migration).await;
    refused(migration.reverse().await, "filtered");
    commit_and_wait(&migration).await;
    refused(migration.reverse().await, "filtered");
    let before = documents(&env.app_source, "orders").await;
    assert_eq!(documents(&env.app_destination, "orders").await, before);
}

#[tokio::test]
async fn reverse_refused_without_source_blocking() {
    let env = env().await;
    seed(&env).await;
    let migration = start(&env, &Setup::new(WriteBlocking::DestinationOnly, true)).await;
    wait_steady(&migration).await;
    commit_and_wait(&migration).await;
    refused(migration.reverse().await, "sourceAndDestination");
    assert_eq!(state(&env).await.phase, PersistedPhase::Committed);
}

#[tokio::test]
async fn start_names_missing_write_blocking_privileges() {
    let env = env().await;
    seed(&env).await;
    // The application's user cannot block nor bypass blocking.
    let setup = Setup::new(WriteBlocking::SourceAndDestination, false);
    let outcome = start_with(&env, &setup, (&env.app_source, &env.app_destination)).await;
    match outcome {
        Err(EngineError::Refused(text)) => {
            assert!(
                text.contains("source cluster") && text.contains("destination cluster"),
                "{text}"
            );
            assert!(
                text.contains("bypassWriteBlockingMode, setUserWriteBlockMode"),
                "{text}"
            );
        }
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, got a migration"),
    }
    // Without blocking these privileges are not checked (the app user then fails later,
    // at the first no-op write, which it may not do either).
    let none = Setup::new(WriteBlocking::None, false);
    let outcome = start_with(&env, &none, (&env.app_source, &env.app_destination)).await;
    assert!(
        !matches!(outcome, Err(EngineError::Refused(_))),
        "no write-blocking privilege check without blocking"
    );
}

const COMMIT_STEPS: [CutoverStep; 7] = [
    CutoverStep::BlockSource,
    CutoverStep::TakeCommitPoint,
    CutoverStep::DrainToCommitPoint,
    CutoverStep::PrepareUnique,
    CutoverStep::EnableWrites,
    CutoverStep::RestoreIndexes,
    CutoverStep::FinishCommit,
];

const REVERSE_STEPS: [CutoverStep; 3] = [
    CutoverStep::SwapDirection,
    CutoverStep::PrepareNewDestination,
    CutoverStep::ResumeSync,
];

/// Crashes before `step`, restarts and crashes after it, restarts and lets it finish.
async fn crash_around(
    env: &Env,
    step: CutoverStep,
    first: std::sync::Arc<Migration>,
    act: impl Fn(std::sync::Arc<Migration>) -> futures::future::BoxFuture<'static, ()>,
    blocking: WriteBlocking,
) -> std::sync::Arc<Migration> {
    let mut before = Setup::new(blocking, true);
    before.hooks.stop_before = Some(step);
    let mut after = Setup::new(blocking, true);
    after.hooks.stop_after = Some(step);
    first.shutdown().await;
    let migration = start(env, &before).await;
    act(migration.clone()).await;
    wait_hook(&before).await;
    migration.shutdown().await;
    let migration = start(env, &after).await;
    wait_hook(&after).await;
    migration.shutdown().await;
    start(env, &Setup::new(blocking, true)).await
}

#[tokio::test]
async fn crash_at_every_commit_and_reverse_step_then_restart_finishes() {
    let blocking = WriteBlocking::SourceAndDestination;
    for step in COMMIT_STEPS {
        let env = env().await;
        seed(&env).await;
        let migration = start(&env, &Setup::new(blocking, true)).await;
        wait_steady(&migration).await;
        assert_eq!(
            insert_code(&env.app_source, "orders", doc! {"_id": "during"}).await,
            0
        );
        let migration = crash_around(
            &env,
            step,
            migration,
            |m| {
                Box::pin(async move {
                    wait_steady(&m).await;
                    m.commit().await.expect("commit accepted");
                })
            },
            blocking,
        )
        .await;
        wait_phase(&migration, Phase::Committed).await;
        assert!(
            migration.progress().can_write.load(Ordering::Relaxed),
            "{step:?}"
        );
        wait_equal(&env.app_source, &env.app_destination).await;
        assert_restored(&env.app_destination).await;
        assert_eq!(
            insert_code(&env.app_destination, "orders", doc! {"_id": "ok"}).await,
            0
        );
    }
    for step in REVERSE_STEPS {
        let env = env().await;
        seed(&env).await;
        let migration = start(&env, &Setup::new(blocking, true)).await;
        wait_steady(&migration).await;
        commit_and_wait(&migration).await;
        assert_eq!(
            insert_code(&env.app_destination, "orders", doc! {"_id": "moved"}).await,
            0
        );
        let migration = crash_around(
            &env,
            step,
            migration,
            |m| {
                Box::pin(async move {
                    wait_phase(&m, Phase::Committed).await;
                    m.reverse().await.expect("reverse accepted");
                })
            },
            blocking,
        )
        .await;
        wait_steady(&migration).await;
        assert!(
            migration.progress().reversed.load(Ordering::Relaxed),
            "{step:?}"
        );
        assert_eq!(
            insert_code(&env.app_destination, "orders", doc! {"_id": "new"}).await,
            0
        );
        wait_equal(&env.app_destination, &env.app_source).await;
        assert_relaxed(&env.app_source).await;
    }
}
