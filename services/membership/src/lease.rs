//! A lease kept alive by an owned task, with a local, monotonic view of its validity.
//!
//! etcd expires a lease `ttl` after the server *received* its last keep-alive. We record
//! when each confirmed keep-alive was *sent*, so `sent + ttl` is a deadline that etcd's
//! own expiry can only come after: while [`LeaseKeeper::is_valid`] is true the lease is
//! alive on the server (up to clock-rate drift). The check needs no round trip, so a
//! process that was paused (SIGSTOP, VM freeze, long GC-like stall) sees `false` the
//! moment it resumes, before any keep-alive answer could arrive.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, LeaseKeepAliveStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::call;
use crate::retry::Backoff;
use crate::task::OwnedTask;
use crate::timing::REQUEST_TIMEOUT;
use crate::MembershipError;

/// What the keep-alive task last confirmed.
#[derive(Clone, Copy, Debug)]
struct LeaseStatus {
    /// When the last confirmed keep-alive (or the grant) was sent.
    confirmed_at: Instant,
    /// `confirmed_at + ttl`: the lease is certainly alive on the server before this.
    valid_until: Instant,
}

/// A granted lease and the task that keeps it alive. Dropping it stops the keep-alives
/// (the lease then expires on the server after its TTL) but does not revoke it.
pub(crate) struct LeaseKeeper {
    lease_id: i64,
    status: watch::Receiver<LeaseStatus>,
    lost: CancellationToken,
    poke: Arc<Notify>,
    task: OwnedTask,
}

impl LeaseKeeper {
    /// Grants a lease of `ttl_secs` and starts keeping it alive every `interval`. `lost` is
    /// cancelled when the lease is known to be gone (expired, revoked, or not confirmed
    /// within its TTL).
    pub(crate) async fn grant(
        client: &Client,
        ttl_secs: i64,
        interval: Duration,
        lost: CancellationToken,
    ) -> Result<Self, MembershipError> {
        let sent_at = Instant::now();
        let response = call("lease grant", client.clone().lease_grant(ttl_secs, None)).await?;
        if !response.error().is_empty() {
            return Err(MembershipError::Etcd {
                op: "lease grant",
                source: etcd_client::Error::LeaseKeepAliveError(response.error().to_owned()),
            });
        }
        let lease_id = response.id();
        let ttl = Duration::from_secs(response.ttl().max(0) as u64);
        let (status_tx, status) = watch::channel(LeaseStatus {
            confirmed_at: sent_at,
            valid_until: sent_at + ttl,
        });
        let poke = Arc::new(Notify::new());
        let task = OwnedTask::spawn(keep_alive_loop(KeepAlive {
            client: client.clone(),
            lease_id,
            ttl,
            interval,
            status: status_tx,
            lost: lost.clone(),
            poke: poke.clone(),
        }));
        tracing::debug!(lease_id = %hex(lease_id), ttl_secs, "lease granted");
        Ok(Self {
            lease_id,
            status,
            lost,
            poke,
            task,
        })
    }

    pub(crate) fn id(&self) -> i64 {
        self.lease_id
    }

    pub(crate) fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Not lost and confirmed within its TTL, by the local monotonic clock.
    pub(crate) fn is_valid(&self) -> bool {
        !self.lost.is_cancelled() && Instant::now() < self.status.borrow().valid_until
    }

    /// Asks the task to send a keep-alive now instead of at the next tick.
    pub(crate) fn poke(&self) {
        self.poke.notify_one();
    }

    /// Waits until a keep-alive *sent* at or after `since` has been confirmed.
    pub(crate) async fn confirmed_since(&self, since: Instant) -> Result<(), MembershipError> {
        let mut status = self.status.clone();
        loop {
            if status.borrow_and_update().confirmed_at >= since {
                return Ok(());
            }
            tokio::select! {
                _ = self.lost.cancelled() => {
                    return Err(MembershipError::LeaseLost { lease_id: self.lease_id });
                }
                changed = status.changed() => {
                    if changed.is_err() {
                        return Err(MembershipError::LeaseLost { lease_id: self.lease_id });
                    }
                }
            }
        }
    }

    /// Stops keeping the lease alive and marks it lost; the lease itself is left to
    /// expire unless the caller revokes it.
    pub(crate) fn stop(&self) {
        self.task.abort();
        self.lost.cancel();
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn hex(lease_id: i64) -> String {
    format!("{lease_id:x}")
}

struct KeepAlive {
    client: Client,
    lease_id: i64,
    ttl: Duration,
    interval: Duration,
    status: watch::Sender<LeaseStatus>,
    lost: CancellationToken,
    poke: Arc<Notify>,
}

enum Renewal {
    Renewed(Duration),
    Gone,
}

type KeepAliveStream = (etcd_client::LeaseKeeper, LeaseKeepAliveStream);

async fn keep_alive_loop(task: KeepAlive) {
    let lease_id = hex(task.lease_id);
    let mut stream: Option<KeepAliveStream> = None;
    let mut backoff = Backoff::new();
    loop {
        let sent_at = Instant::now();
        let valid_until = task.status.borrow().valid_until;
        // One attempt may not outlive the lease: past `valid_until` the answer is moot.
        let attempt_deadline = (sent_at + REQUEST_TIMEOUT).min(valid_until);
        let attempt = tokio::time::timeout_at(
            attempt_deadline,
            keep_alive_once(&task.client, task.lease_id, task.ttl, &mut stream),
        )
        .await;
        let next_at = match attempt {
            Ok(Ok(Renewal::Renewed(ttl))) => {
                task.status.send_replace(LeaseStatus {
                    confirmed_at: sent_at,
                    valid_until: sent_at + ttl,
                });
                backoff.reset();
                sent_at + task.interval
            }
            Ok(Ok(Renewal::Gone)) => {
                tracing::warn!(%lease_id, "lease expired or was revoked on the server");
                task.lost.cancel();
                return;
            }
            Ok(Err(error)) => {
                stream = None;
                tracing::debug!(%lease_id, error = %error, "keep-alive failed");
                Instant::now() + backoff.next_delay().min(task.interval)
            }
            Err(_) => {
                stream = None;
                tracing::debug!(%lease_id, "keep-alive timed out");
                Instant::now() + backoff.next_delay().min(task.interval)
            }
        };
        let valid_until = task.status.borrow().valid_until;
        if Instant::now() >= valid_until {
            tracing::warn!(
                %lease_id,
                ttl = ?task.ttl,
                "lease not confirmed within its ttl; treating it as lost"
            );
            task.lost.cancel();
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(next_at.min(valid_until)) => {}
            _ = task.poke.notified() => {}
        }
    }
}

async fn keep_alive_once(
    client: &Client,
    lease_id: i64,
    granted_ttl: Duration,
    stream: &mut Option<KeepAliveStream>,
) -> Result<Renewal, etcd_client::Error> {
    if let Some((keeper, responses)) = stream.as_mut() {
        keeper.keep_alive().await?;
        return match responses.message().await? {
            Some(response) if response.ttl() > 0 => {
                Ok(Renewal::Renewed(Duration::from_secs(response.ttl() as u64)))
            }
            Some(_) => Ok(Renewal::Gone),
            None => Err(etcd_client::Error::LeaseKeepAliveError(
                "keep-alive stream closed".to_owned(),
            )),
        };
    }
    // Opening the stream sends the first keep-alive and waits for its answer.
    match client.clone().lease_keep_alive(lease_id).await {
        Ok(opened) => {
            *stream = Some(opened);
            Ok(Renewal::Renewed(granted_ttl))
        }
        Err(etcd_client::Error::LeaseKeepAliveError(message)) if message.contains("not found") => {
            Ok(Renewal::Gone)
        }
        Err(error) => Err(error),
    }
}
