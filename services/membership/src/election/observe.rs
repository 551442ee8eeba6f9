//! Follows who leads an election by listing and watching the candidates' keys.
//!
//! etcd's `Observe` RPC only reports new leaders, never "nobody leads", so we reproduce
//! the election's rule instead: among the keys under `<name>/`, the one with the lowest
//! create revision leads.

use std::collections::BTreeMap;

use etcd_client::{Client, EventType, GetOptions, SortOrder, SortTarget, WatchOptions};
use tokio::sync::watch;

use crate::client::{call, watch_error};
use crate::election::CandidateInfo;
use crate::retry::Backoff;
use crate::task::OwnedTask;
use crate::timing::RETRY_WARN_AFTER;
use crate::MembershipError;

/// Starts the observer task; it lives as long as the returned [`OwnedTask`].
pub(crate) fn spawn_observer(
    client: Client,
    prefix: String,
) -> (watch::Receiver<Option<CandidateInfo>>, OwnedTask) {
    let (tx, rx) = watch::channel(None);
    let task = OwnedTask::spawn(observe_loop(client, prefix, tx));
    (rx, task)
}

/// The current leader by one read: the candidate key with the lowest create revision.
pub(crate) async fn current_leader(
    client: &Client,
    prefix: &str,
) -> Result<Option<CandidateInfo>, MembershipError> {
    let options = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1);
    let response = call("get leader", client.clone().get(prefix, Some(options))).await?;
    let Some(kv) = response.kvs().first() else {
        return Ok(None);
    };
    let info = serde_json::from_slice(kv.value()).map_err(|source| MembershipError::Decode {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        source,
    })?;
    Ok(Some(info))
}

struct Candidate {
    create_revision: i64,
    /// `None` if the value is not a [`CandidateInfo`]; such a candidate still leads if it
    /// is first, and we then report "unknown" rather than the runner-up.
    info: Option<CandidateInfo>,
}

async fn observe_loop(client: Client, prefix: String, tx: watch::Sender<Option<CandidateInfo>>) {
    let mut backoff = Backoff::new();
    loop {
        let error = observe_once(&client, &prefix, &tx, &mut backoff).await;
        if backoff.failures() >= RETRY_WARN_AFTER {
            tracing::warn!(%prefix, error = %error, "leader observer reconnecting");
        } else {
            tracing::debug!(%prefix, error = %error, "leader observer reconnecting");
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Lists, then watches from the listed revision; returns only on error.
async fn observe_once(
    client: &Client,
    prefix: &str,
    tx: &watch::Sender<Option<CandidateInfo>>,
    backoff: &mut Backoff,
) -> MembershipError {
    let listed = match call(
        "list candidates",
        client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    {
        Ok(listed) => listed,
        Err(error) => return error,
    };
    let revision = listed.header().map(|h| h.revision()).unwrap_or_default();
    let mut candidates: BTreeMap<Vec<u8>, Candidate> = listed
        .kvs()
        .iter()
        .map(|kv| {
            (
                kv.key().to_vec(),
                candidate(kv.create_revision(), kv.value()),
            )
        })
        .collect();
    publish(tx, &candidates);

    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1);
    let mut stream = match call(
        "watch candidates",
        client.clone().watch(prefix, Some(options)),
    )
    .await
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
                    op: "watch candidates",
                    source,
                }
            }
        };
        if response.canceled() {
            // Compaction or a member without leader: re-list from scratch.
            return watch_error(response.cancel_reason());
        }
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => {
                    candidates.insert(
                        kv.key().to_vec(),
                        candidate(kv.create_revision(), kv.value()),
                    );
                }
                EventType::Delete => {
                    candidates.remove(kv.key());
                }
            }
        }
        publish(tx, &candidates);
    }
}

fn candidate(create_revision: i64, value: &[u8]) -> Candidate {
    let info = serde_json::from_slice(value)
        .inspect_err(|error| tracing::warn!(error = %error, "undecodable election value"))
        .ok();
    Candidate {
        create_revision,
        info,
    }
}

fn publish(tx: &watch::Sender<Option<CandidateInfo>>, candidates: &BTreeMap<Vec<u8>, Candidate>) {
    let leader = candidates
        .values()
        .min_by_key(|c| c.create_revision)
        .and_then(|c| c.info.clone());
    tx.send_if_modified(|current| {
        if *current == leader {
            return false;
        }
        tracing::debug!(from = ?current, to = ?leader, "observed leader change");
        *current = leader;
        true
    });
}
