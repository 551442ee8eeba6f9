//! Shared test helpers.
#![allow(dead_code)]

use std::time::Duration;

use c2c_membership::{connect, EtcdClient, MigrationId, WorkerId};
use tokio::sync::watch;

/// Logs go to the test output when `RUST_LOG` is set (e.g. `RUST_LOG=c2c_membership=debug`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub fn mid(raw: &str) -> MigrationId {
    MigrationId::new(raw).unwrap()
}

pub fn wid(raw: &str) -> WorkerId {
    WorkerId::new(raw).unwrap()
}

/// One client per simulated process, so a process's connection problems stay its own.
pub async fn client(endpoints: &[String]) -> EtcdClient {
    connect(endpoints).await.expect("connect to the test etcd")
}

/// Waits until `rx`'s value satisfies `predicate`, failing the test after `within`.
pub async fn wait_for<T: Clone>(
    rx: &mut watch::Receiver<T>,
    within: Duration,
    what: &str,
    predicate: impl Fn(&T) -> bool,
) -> T {
    let waited = tokio::time::timeout(within, async {
        loop {
            {
                let current = rx.borrow_and_update();
                if predicate(&current) {
                    return current.clone();
                }
            }
            rx.changed().await.expect("sender alive");
        }
    })
    .await;
    match waited {
        Ok(value) => value,
        Err(_) => panic!("timed out after {within:?} waiting for {what}"),
    }
}
