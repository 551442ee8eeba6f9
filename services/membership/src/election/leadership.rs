//! The value that *is* the leadership: leader-only work hangs off it, so dropping it ends
//! that work structurally (STYLE 22).

use etcd_client::{Client, LeaderKey, ResignOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::call;
use crate::election::memory::HubHandle;
use crate::election::CandidateInfo;
use crate::lease::LeaseKeeper;
use crate::task::OwnedTask;
use crate::MembershipError;

/// Proof of having won an election, valid until [`Self::lost`] fires.
///
/// Dropping it without [`Self::resign`] behaves like a crash: helper tasks stop, `lost`
/// fires, and (on etcd) the lease expires after its TTL, after which another candidate wins.
pub struct Leadership {
    info: CandidateInfo,
    term: u64,
    leader_key: LeaderKey,
    lost: CancellationToken,
    backend: Option<Backend>,
}

pub(crate) enum Backend {
    /// Boxed: an etcd client is a few kilobytes.
    Etcd(Box<EtcdBackend>),
    Memory(HubHandle),
}

pub(crate) struct EtcdBackend {
    pub(crate) client: Client,
    pub(crate) lease: LeaseKeeper,
    pub(crate) watchdog: OwnedTask,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("info", &self.info)
            .field("term", &self.term)
            .field("lost", &self.lost.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl Leadership {
    pub(crate) fn new(
        info: CandidateInfo,
        leader_key: LeaderKey,
        lost: CancellationToken,
        backend: Backend,
    ) -> Self {
        debug_assert!(leader_key.rev() > 0, "a leader key has a create revision");
        Self {
            info,
            term: leader_key.rev().max(0) as u64,
            leader_key,
            lost,
            backend: Some(backend),
        }
    }

    /// Strictly increases with every election won by anyone (it is the leader key's etcd
    /// create revision). Stamp it on commands so workers can reject a deposed leader.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// This (winning) candidate.
    pub fn info(&self) -> &CandidateInfo {
        &self.info
    }

    /// The etcd leader key; its create revision is what fenced writes compare against.
    pub fn leader_key(&self) -> &LeaderKey {
        &self.leader_key
    }

    /// Fires once, as soon as leadership is known to be lost: lease not confirmed within
    /// its TTL, lease revoked, leader key deleted, [`crate::MemoryElectionHub::depose`], or
    /// this value dropped. Make it the parent of every leader-only task's token.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Whether this process may still act as leader right now: not lost, and (on etcd)
    /// the lease was confirmed within its TTL by the local monotonic clock. Cheap; call
    /// it before acting on anything outside etcd's fencing (e.g. answering a client).
    pub fn is_valid(&self) -> bool {
        if self.lost.is_cancelled() {
            return false;
        }
        match &self.backend {
            Some(Backend::Etcd(etcd)) => etcd.lease.is_valid(),
            Some(Backend::Memory(_)) => true,
            None => false,
        }
    }

    /// Gives leadership up on purpose so the next candidate wins at once instead of after
    /// a TTL. `lost` fires first, so leader work stops before a successor can start.
    pub async fn resign(mut self) -> Result<(), MembershipError> {
        self.lost.cancel();
        let Some(backend) = self.backend.take() else {
            return Ok(());
        };
        match backend {
            Backend::Etcd(etcd) => {
                let EtcdBackend {
                    client,
                    lease,
                    watchdog,
                } = *etcd;
                drop(watchdog);
                lease.stop();
                let started = Instant::now();
                let options = ResignOptions::new().with_leader(self.leader_key.clone());
                let resigned = call("resign", client.clone().resign(Some(options))).await;
                // Revoking the lease also deletes the key; do it even if resign failed.
                let revoked = call("lease revoke", client.clone().lease_revoke(lease.id())).await;
                tracing::info!(
                    term = self.term,
                    elapsed = ?started.elapsed(),
                    "resigned leadership"
                );
                resigned?;
                revoked.map(drop)
            }
            Backend::Memory(hub) => {
                hub.release();
                Ok(())
            }
        }
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.lost.cancel();
        if let Some(Backend::Memory(hub)) = self.backend.take() {
            hub.release();
        }
        // Etcd: dropping the backend aborts the keep-alive and the watchdog.
    }
}
