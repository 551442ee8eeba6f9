//! Election on etcd's v3 election API.
//!
//! One campaign attempt:
//!
//! ```text
//! grant lease (LEADER_LEASE_TTL) ──► keep-alive task starts (runs concurrently from here on)
//!      │
//!      ▼
//! Campaign(name, value, lease) ── blocks while others lead ──┐   lease lost while waiting?
//!      │ won                                                 └─► drop lease, start over
//!      ▼
//! wait for a keep-alive sent *after* winning to be confirmed ──► Leadership
//!      │
//!      ▼
//! watchdog: watch the leader key; delete ⇒ lost. keep-alive task: not confirmed within
//! TTL (monotonic clock) or revoked ⇒ lost.
//! ```
//!
//! Confirming after winning matters: a campaign can return long after it was sent (it
//! waited for the previous leader), and only a fresh keep-alive proves our lease — and so
//! our key — is still alive at the moment we start acting as leader.

use etcd_client::{Client, EventType, LeaderKey, WatchOptions};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{call, revoke_quietly, watch_error};
use crate::election::leadership::{Backend, EtcdBackend, Leadership};
use crate::election::observe::{current_leader, spawn_observer};
use crate::election::{CandidateInfo, Election};
use crate::keys;
use crate::lease::{hex, LeaseKeeper};
use crate::retry::Backoff;
use crate::task::OwnedTask;
use crate::timing::{
    LEADER_KEEPALIVE_INTERVAL, LEADER_LEASE_TTL, LEADER_LEASE_TTL_SECS, RETRY_WARN_AFTER,
};
use crate::{MembershipError, MigrationId};

/// A candidate in the election `/c2c/<migration-id>/leader`. Construct one per process;
/// it starts a background observer of the current leader, stopped when this is dropped.
pub struct EtcdElection {
    client: Client,
    name: String,
    prefix: String,
    candidate: CandidateInfo,
    value: Vec<u8>,
    observed: watch::Receiver<Option<CandidateInfo>>,
    shutdown: CancellationToken,
    _observer: OwnedTask,
}

impl EtcdElection {
    /// Must be called inside a tokio runtime (it spawns the observer).
    pub fn new(client: Client, mid: &MigrationId, candidate: CandidateInfo) -> Self {
        let name = keys::election_name(mid);
        let prefix = keys::election_prefix(mid);
        let value = serde_json::to_vec(&candidate).expect("CandidateInfo always serializes");
        let (observed, observer) = spawn_observer(client.clone(), prefix.clone());
        Self {
            client,
            name,
            prefix,
            candidate,
            value,
            observed,
            shutdown: CancellationToken::new(),
            _observer: observer,
        }
    }

    async fn campaign_until_won(&self) -> Result<Leadership, MembershipError> {
        let mut backoff = Backoff::new();
        loop {
            if self.shutdown.is_cancelled() {
                return Err(MembershipError::Closed);
            }
            let error = match self.campaign_once().await {
                Ok(leadership) => return Ok(leadership),
                Err(error) => error,
            };
            let recoverable =
                error.is_retryable() || matches!(error, MembershipError::LeaseLost { .. });
            if !recoverable {
                return Err(error);
            }
            if backoff.failures() >= RETRY_WARN_AFTER {
                tracing::warn!(candidate = %self.candidate.id, error = %error, "campaign failed; retrying");
            } else {
                tracing::debug!(candidate = %self.candidate.id, error = %error, "campaign failed; retrying");
            }
            backoff.wait(&self.shutdown).await?;
        }
    }

    async fn campaign_once(&self) -> Result<Leadership, MembershipError> {
        let lost = CancellationToken::new();
        let lease = LeaseKeeper::grant(
            &self.client,
            LEADER_LEASE_TTL_SECS,
            LEADER_KEEPALIVE_INTERVAL,
            lost.clone(),
        )
        .await?;
        let lease_id = lease.id();
        let campaign = async {
            // Not bounded by REQUEST_TIMEOUT: it legitimately blocks while another leads.
            // HTTP/2 keep-alive ends it if the connection dies.
            self.client
                .clone()
                .campaign(self.name.as_str(), self.value.clone(), lease_id)
                .await
                .map_err(MembershipError::etcd("campaign"))
        };
        let won = tokio::select! {
            _ = lost.cancelled() => Err(MembershipError::LeaseLost { lease_id }),
            _ = self.shutdown.cancelled() => Err(MembershipError::Closed),
            won = campaign => won,
        };
        let leader_key = match won.map(|mut response| response.take_leader()) {
            Ok(Some(leader_key)) => leader_key,
            Ok(None) => {
                revoke_quietly(&self.client, lease_id).await;
                return Err(watch_error("campaign answered without a leader key"));
            }
            Err(error) => {
                revoke_quietly(&self.client, lease_id).await;
                return Err(error);
            }
        };

        let won_at = Instant::now();
        lease.poke();
        let confirmed = tokio::time::timeout(LEADER_LEASE_TTL, lease.confirmed_since(won_at)).await;
        if !matches!(confirmed, Ok(Ok(()))) {
            revoke_quietly(&self.client, lease_id).await;
            return Err(MembershipError::LeaseLost { lease_id });
        }

        let watchdog = OwnedTask::spawn(watch_leader_key(
            self.client.clone(),
            leader_key.clone(),
            lost.clone(),
        ));
        tracing::info!(
            candidate = %self.candidate.id,
            term = leader_key.rev(),
            lease_id = %hex(lease_id),
            confirm_latency = ?won_at.elapsed(),
            "won leader election"
        );
        Ok(Leadership::new(
            self.candidate.clone(),
            leader_key,
            lost,
            Backend::Etcd(Box::new(EtcdBackend {
                client: self.client.clone(),
                lease,
                watchdog,
            })),
        ))
    }
}

impl Drop for EtcdElection {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Election for EtcdElection {
    fn candidate(&self) -> &CandidateInfo {
        &self.candidate
    }

    fn campaign(&self) -> BoxFuture<'_, Result<Leadership, MembershipError>> {
        Box::pin(self.campaign_until_won())
    }

    fn leader(&self) -> BoxFuture<'_, Result<Option<CandidateInfo>, MembershipError>> {
        Box::pin(current_leader(&self.client, &self.prefix))
    }

    fn observe(&self) -> watch::Receiver<Option<CandidateInfo>> {
        self.observed.clone()
    }
}

/// Cancels `lost` as soon as our leader key is deleted (resign elsewhere, lease revoked,
/// operator intervention) or re-created by someone else. Lease expiry is the keep-alive
/// task's job; this task only reconnects through outages.
async fn watch_leader_key(client: Client, leader_key: LeaderKey, lost: CancellationToken) {
    let mut backoff = Backoff::new();
    let key = String::from_utf8_lossy(leader_key.key()).into_owned();
    loop {
        let outcome = tokio::select! {
            _ = lost.cancelled() => return,
            outcome = watch_key_once(&client, &leader_key, &mut backoff) => outcome,
        };
        match outcome {
            KeyWatch::Gone(reason) => {
                tracing::warn!(%key, term = leader_key.rev(), reason, "leadership lost");
                lost.cancel();
                return;
            }
            KeyWatch::Interrupted(error) => {
                tracing::debug!(%key, error = %error, "leader key watch interrupted");
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = lost.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

enum KeyWatch {
    Gone(&'static str),
    Interrupted(MembershipError),
}

async fn watch_key_once(
    client: &Client,
    leader_key: &LeaderKey,
    backoff: &mut Backoff,
) -> KeyWatch {
    // Check first: the key may have vanished while we were not watching, and the events
    // since `rev` may have been compacted away.
    let current = match call("get leader key", client.clone().get(leader_key.key(), None)).await {
        Ok(current) => current,
        Err(error) => return KeyWatch::Interrupted(error),
    };
    match current.kvs().first() {
        Some(kv) if kv.create_revision() == leader_key.rev() => {}
        Some(_) => return KeyWatch::Gone("leader key re-created by another session"),
        None => return KeyWatch::Gone("leader key deleted"),
    }
    let revision = current.header().map(|h| h.revision()).unwrap_or_default();
    let options = WatchOptions::new().with_start_revision(revision + 1);
    let mut stream = match call(
        "watch leader key",
        client.clone().watch(leader_key.key(), Some(options)),
    )
    .await
    {
        Ok(stream) => stream,
        Err(error) => return KeyWatch::Interrupted(error),
    };
    backoff.reset();
    loop {
        let response = match stream.message().await {
            Ok(Some(response)) => response,
            Ok(None) => return KeyWatch::Interrupted(watch_error("watch stream closed")),
            Err(source) => {
                return KeyWatch::Interrupted(MembershipError::Etcd {
                    op: "watch leader key",
                    source,
                })
            }
        };
        if response.canceled() {
            return KeyWatch::Interrupted(watch_error(response.cancel_reason()));
        }
        for event in response.events() {
            match event.event_type() {
                EventType::Delete => return KeyWatch::Gone("leader key deleted"),
                EventType::Put => {
                    let recreated = event
                        .kv()
                        .is_some_and(|kv| kv.create_revision() != leader_key.rev());
                    if recreated {
                        return KeyWatch::Gone("leader key re-created by another session");
                    }
                }
            }
        }
    }
}
