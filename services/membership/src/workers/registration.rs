//! A worker's own registration: `workers/<id>` bound to a lease this process keeps alive.

use std::future::Future;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{call, revoke_quietly};
use crate::keys;
use crate::lease::{hex, LeaseKeeper};
use crate::retry::{retry, Backoff};
use crate::timing::{
    WORKER_KEEPALIVE_INTERVAL, WORKER_LEASE_TTL_SECS, WORKER_REGISTER_POLL, WORKER_REGISTER_WAIT,
};
use crate::workers::WorkerRecord;
use crate::{MembershipError, MigrationId, WorkerId};

/// This worker's membership. While [`Self::lease_valid`] is true the coordinator sees the
/// worker as live; once it turns false the coordinator may already have handed the
/// worker's partitions to someone else, so the worker must stop writing to the
/// destination before anything else (STYLE 20) and then [`Self::reregister`].
///
/// Dropping it stops the keep-alives; the registration then expires after its TTL.
pub struct WorkerRegistration {
    client: Client,
    worker: WorkerId,
    record: WorkerRecord,
    key: String,
    value: String,
    current: Mutex<Incarnation>,
    /// Serialises `reregister` calls; held across awaits, hence tokio's mutex.
    reregistering: tokio::sync::Mutex<()>,
}

struct Incarnation {
    lease: LeaseKeeper,
    generation: u64,
}

impl WorkerRegistration {
    /// Registers `record` under `workers/<record.id>`.
    ///
    /// Refuses with [`MembershipError::AlreadyRegistered`] if another live registration
    /// holds the id — after waiting up to one TTL ([`WORKER_REGISTER_WAIT`]), because the
    /// holder may be this worker's own previous incarnation whose lease has not expired yet.
    pub async fn register(
        client: Client,
        mid: &MigrationId,
        record: WorkerRecord,
    ) -> Result<Self, MembershipError> {
        let worker = WorkerId::new(record.id.clone())?;
        let key = keys::worker(mid, &worker);
        let value = serde_json::to_string(&record).map_err(|source| MembershipError::Encode {
            key: key.clone(),
            source,
        })?;
        let incarnation = establish(&client, &worker, &key, &value).await?;
        tracing::info!(
            worker_id = %worker,
            generation = incarnation.generation,
            lease_id = %hex(incarnation.lease.id()),
            "worker registered"
        );
        Ok(Self {
            client,
            worker,
            record,
            key,
            value,
            current: Mutex::new(incarnation),
            reregistering: tokio::sync::Mutex::new(()),
        })
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &WorkerId {
        &self.worker
    }

    /// What was published.
    pub fn record(&self) -> &WorkerRecord {
        &self.record
    }

    /// The etcd key of the registration.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The revision at which the current registration was written; strictly increases
    /// with every (re-)registration and equals [`crate::LiveWorker::generation`] as seen
    /// by the coordinator, so commands can be stamped with it and stale ones rejected.
    pub fn generation(&self) -> u64 {
        self.current.lock().generation
    }

    /// The lease of the current registration.
    pub fn lease_id(&self) -> i64 {
        self.current.lock().lease.id()
    }

    /// Whether the lease was confirmed within its TTL by the local monotonic clock and is
    /// not known lost. Needs no round trip: a process that was frozen past its TTL sees
    /// `false` as soon as it runs again.
    pub fn lease_valid(&self) -> bool {
        self.current.lock().lease.is_valid()
    }

    /// Completes once the current registration's lease is known lost (expired on our
    /// clock, revoked, or superseded by [`Self::reregister`]). Call it again after
    /// re-registering: each registration has its own signal. Owns what it needs, so it
    /// can sit in a `select!` next to `&self` borrows.
    pub fn lease_lost(&self) -> impl Future<Output = ()> + Send + 'static {
        self.lease_lost_token().cancelled_owned()
    }

    /// [`Self::lease_lost`] as a token, e.g. to be the parent of the worker's task tokens.
    pub fn lease_lost_token(&self) -> CancellationToken {
        self.current.lock().lease.lost().clone()
    }

    /// Replaces the registration with a new lease and a new key (larger generation). The
    /// old lease stops at once (its `lease_lost` fires) and is revoked if etcd is reachable.
    pub async fn reregister(&self) -> Result<(), MembershipError> {
        let _serial = self.reregistering.lock().await;
        let old_lease = {
            let current = self.current.lock();
            current.lease.stop();
            current.lease.id()
        };
        revoke_quietly(&self.client, old_lease).await;
        let incarnation = establish(&self.client, &self.worker, &self.key, &self.value).await?;
        tracing::info!(
            worker_id = %self.worker,
            generation = incarnation.generation,
            lease_id = %hex(incarnation.lease.id()),
            "worker re-registered"
        );
        let previous = std::mem::replace(&mut *self.current.lock(), incarnation);
        drop(previous);
        Ok(())
    }

    /// Leaves the cluster on purpose: revokes the lease so the coordinator reassigns at
    /// once instead of after a TTL.
    pub async fn deregister(self) -> Result<(), MembershipError> {
        let lease_id = {
            let current = self.current.lock();
            current.lease.stop();
            current.lease.id()
        };
        call("lease revoke", self.client.clone().lease_revoke(lease_id)).await?;
        tracing::info!(worker_id = %self.worker, "worker deregistered");
        Ok(())
    }
}

/// Grants a lease and writes the key if (and only if) nobody holds it.
async fn establish(
    client: &Client,
    worker: &WorkerId,
    key: &str,
    value: &str,
) -> Result<Incarnation, MembershipError> {
    let never = CancellationToken::new();
    let lease = retry(
        "worker lease grant",
        4,
        |error| !error.is_retryable(),
        &never,
        || {
            LeaseKeeper::grant(
                client,
                WORKER_LEASE_TTL_SECS,
                WORKER_KEEPALIVE_INTERVAL,
                CancellationToken::new(),
            )
        },
    )
    .await?;
    let deadline = Instant::now() + WORKER_REGISTER_WAIT;
    let mut backoff = Backoff::new();
    let mut announced_wait = false;
    loop {
        if lease.lost().is_cancelled() {
            return Err(MembershipError::LeaseLost {
                lease_id: lease.id(),
            });
        }
        let put = PutOptions::new().with_lease(lease.id());
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, Some(put))])
            .or_else([TxnOp::get(key, None)]);
        let error = match call("register worker", client.clone().txn(txn)).await {
            Ok(response) if response.succeeded() => {
                let generation = response.header().map(|h| h.revision()).unwrap_or_default();
                return Ok(Incarnation {
                    lease,
                    generation: generation.max(0) as u64,
                });
            }
            Ok(response) => {
                let holder = holder_lease(&response.op_responses());
                if Instant::now() >= deadline {
                    revoke_quietly(client, lease.id()).await;
                    return Err(MembershipError::AlreadyRegistered {
                        id: worker.to_string(),
                        lease_id: holder,
                    });
                }
                if !announced_wait {
                    announced_wait = true;
                    tracing::info!(
                        worker_id = %worker,
                        holder_lease = %hex(holder),
                        wait = ?WORKER_REGISTER_WAIT,
                        "worker id is registered; waiting in case it is our previous incarnation"
                    );
                }
                tokio::time::sleep(WORKER_REGISTER_POLL).await;
                continue;
            }
            Err(error) => error,
        };
        if !error.is_retryable() || Instant::now() >= deadline {
            revoke_quietly(client, lease.id()).await;
            return Err(error);
        }
        tracing::debug!(worker_id = %worker, error = %error, "registration attempt failed");
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

fn holder_lease(responses: &[TxnOpResponse]) -> i64 {
    responses
        .iter()
        .find_map(|response| match response {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.lease()),
            _ => None,
        })
        .unwrap_or_default()
}
