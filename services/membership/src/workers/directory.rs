//! The coordinator's view of live workers: list `workers/`, then watch it.

use std::collections::BTreeMap;

use etcd_client::{Client, EventType, GetOptions, KeyValue, WatchOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::{call, watch_error};
use crate::keys;
use crate::retry::{retry, Backoff};
use crate::task::OwnedTask;
use crate::timing::RETRY_WARN_AFTER;
use crate::workers::{LiveWorker, WorkerRecord};
use crate::{MembershipError, MigrationId};

/// Live workers, kept current by an owned task (stopped when this is dropped). After a
/// watch error the task re-lists, so the view converges after any etcd outage; during
/// the outage it shows the last known set.
pub struct WorkerDirectory {
    workers: watch::Receiver<Vec<LiveWorker>>,
    _task: OwnedTask,
}

type Workers = BTreeMap<String, LiveWorker>;

impl WorkerDirectory {
    /// Lists the workers once (so the first view is complete when this returns) and
    /// starts following changes.
    pub async fn start(client: Client, mid: &MigrationId) -> Result<Self, MembershipError> {
        let prefix = keys::workers_prefix(mid);
        let never = CancellationToken::new();
        let (workers, revision) = retry(
            "list workers",
            4,
            |error| !error.is_retryable(),
            &never,
            || list(&client, &prefix),
        )
        .await?;
        let (tx, rx) = watch::channel(sorted(&workers));
        let task = OwnedTask::spawn(follow(client, prefix, tx, workers, revision));
        Ok(Self {
            workers: rx,
            _task: task,
        })
    }

    /// Live workers sorted by id; changes whenever one registers, re-registers or leaves.
    pub fn watch(&self) -> watch::Receiver<Vec<LiveWorker>> {
        self.workers.clone()
    }

    /// The current set, sorted by id.
    pub fn list(&self) -> Vec<LiveWorker> {
        self.workers.borrow().clone()
    }
}

fn sorted(workers: &Workers) -> Vec<LiveWorker> {
    // BTreeMap iteration is already in id order.
    workers.values().cloned().collect()
}

async fn list(client: &Client, prefix: &str) -> Result<(Workers, i64), MembershipError> {
    let response = call(
        "list workers",
        client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await?;
    let revision = response.header().map(|h| h.revision()).unwrap_or_default();
    let workers = response
        .kvs()
        .iter()
        .filter_map(|kv| live_worker(prefix, kv))
        .map(|worker| (worker.record.id.clone(), worker))
        .collect();
    Ok((workers, revision))
}

fn live_worker(prefix: &str, kv: &KeyValue) -> Option<LiveWorker> {
    let key = String::from_utf8_lossy(kv.key());
    let id = key.strip_prefix(prefix)?;
    let record: WorkerRecord = match serde_json::from_slice(kv.value()) {
        Ok(record) => record,
        Err(error) => {
            tracing::warn!(%key, error = %error, "ignoring undecodable worker registration");
            return None;
        }
    };
    if record.id != id {
        tracing::warn!(%key, record_id = %record.id, "ignoring registration whose id does not match its key");
        return None;
    }
    Some(LiveWorker {
        record,
        generation: kv.mod_revision(),
        lease_id: kv.lease(),
    })
}

async fn follow(
    client: Client,
    prefix: String,
    tx: watch::Sender<Vec<LiveWorker>>,
    mut workers: Workers,
    mut revision: i64,
) {
    let mut backoff = Backoff::new();
    loop {
        let error = watch_from(&client, &prefix, &tx, &mut workers, revision, &mut backoff).await;
        loop {
            if backoff.failures() >= RETRY_WARN_AFTER {
                tracing::warn!(%prefix, error = %error, "worker directory reconnecting");
            } else {
                tracing::debug!(%prefix, error = %error, "worker directory reconnecting");
            }
            tokio::time::sleep(backoff.next_delay()).await;
            // Events may have been missed or compacted away: start over from a fresh list.
            match list(&client, &prefix).await {
                Ok((listed, listed_at)) => {
                    workers = listed;
                    revision = listed_at;
                    publish(&tx, &workers);
                    break;
                }
                Err(list_error) => {
                    tracing::debug!(%prefix, error = %list_error, "worker list failed");
                }
            }
        }
    }
}

/// Watches from `revision + 1`, applying events to `workers`; returns only on error.
async fn watch_from(
    client: &Client,
    prefix: &str,
    tx: &watch::Sender<Vec<LiveWorker>>,
    workers: &mut Workers,
    revision: i64,
    backoff: &mut Backoff,
) -> MembershipError {
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = match call("watch workers", client.clone().watch(prefix, Some(options))).await
    {
        Ok(stream) => stream,
        Err(error) => return error,
    };
    backoff.reset();
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return watch_error("watch stream closed"),
            Err(source) => {
                return MembershipError::Etcd {
                    op: "watch workers",
                    source,
                }
            }
        };
        if response.canceled() {
            return watch_error(response.cancel_reason());
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key());
            let Some(id) = key.strip_prefix(prefix) else {
                continue;
            };
            match event.event_type() {
                EventType::Put => match live_worker(prefix, kv) {
                    Some(worker) => {
                        workers.insert(id.to_owned(), worker);
                    }
                    None => {
                        workers.remove(id);
                    }
                },
                EventType::Delete => {
                    workers.remove(id);
                }
            }
        }
        publish(tx, workers);
    }
}

fn publish(tx: &watch::Sender<Vec<LiveWorker>>, workers: &Workers) {
    let next = sorted(workers);
    tx.send_if_modified(|current| {
        if *current == next {
            return false;
        }
        *current = next;
        true
    });
}
