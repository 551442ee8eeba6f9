//! An in-process election for tests: candidates queue in campaign order, one leads at a
//! time, and [`MemoryElectionHub::depose`] simulates losing the lease.

use std::collections::VecDeque;
use std::sync::Arc;

use etcd_client::LeaderKey;
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::election::leadership::{Backend, Leadership};
use crate::election::{CandidateInfo, Election};
use crate::MembershipError;

/// Shared state of one in-memory election. Clone it to hand the same election to several
/// candidates.
#[derive(Clone)]
pub struct MemoryElectionHub {
    inner: Arc<Hub>,
}

struct Hub {
    state: Mutex<HubState>,
    /// Bumped on every change so waiting campaigns re-check.
    changed: watch::Sender<u64>,
    leader: watch::Sender<Option<CandidateInfo>>,
}

#[derive(Default)]
struct HubState {
    next_ticket: u64,
    term: u64,
    queue: VecDeque<(u64, CandidateInfo)>,
    current: Option<Reign>,
}

struct Reign {
    ticket: u64,
    info: CandidateInfo,
    lost: CancellationToken,
}

impl Default for MemoryElectionHub {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryElectionHub {
    /// An election nobody leads yet.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Hub {
                state: Mutex::new(HubState::default()),
                changed: watch::channel(0).0,
                leader: watch::channel(None).0,
            }),
        }
    }

    /// A candidate in this election.
    pub fn candidate(&self, info: CandidateInfo) -> MemoryElection {
        MemoryElection {
            hub: self.clone(),
            info,
        }
    }

    /// Takes leadership away from the current leader as if its lease expired: its `lost`
    /// token fires and the next queued candidate wins. Returns who was deposed.
    pub fn depose(&self) -> Option<CandidateInfo> {
        let deposed = self.inner.state.lock().current.take();
        let reign = deposed?;
        reign.lost.cancel();
        self.inner.publish();
        Some(reign.info)
    }

    /// The current leader.
    pub fn current_leader(&self) -> Option<CandidateInfo> {
        self.inner
            .state
            .lock()
            .current
            .as_ref()
            .map(|r| r.info.clone())
    }

    /// The term of the latest election (0 before the first).
    pub fn term(&self) -> u64 {
        self.inner.state.lock().term
    }
}

impl Hub {
    fn publish(&self) {
        let leader = self.state.lock().current.as_ref().map(|r| r.info.clone());
        self.leader.send_replace(leader);
        self.changed.send_modify(|version| *version += 1);
    }

    /// Makes `ticket` the leader if nobody leads and it is first in line.
    fn try_win(&self, ticket: u64) -> Option<(u64, CancellationToken)> {
        let mut state = self.state.lock();
        let first = state.queue.front().map(|(t, _)| *t);
        if state.current.is_some() || first != Some(ticket) {
            return None;
        }
        let (_, info) = state.queue.pop_front().expect("checked above");
        state.term += 1;
        let lost = CancellationToken::new();
        state.current = Some(Reign {
            ticket,
            info,
            lost: lost.clone(),
        });
        Some((state.term, lost))
    }
}

/// A handle that ends a memory reign (resign or drop of its [`Leadership`]).
pub(crate) struct HubHandle {
    hub: Arc<Hub>,
    ticket: u64,
}

impl HubHandle {
    pub(crate) fn release(self) {
        let released = {
            let mut state = self.hub.state.lock();
            let ours = state
                .current
                .as_ref()
                .is_some_and(|r| r.ticket == self.ticket);
            if ours {
                state.current = None;
            }
            ours
        };
        if released {
            self.hub.publish();
        }
    }
}

/// Leaves the queue if a campaign is abandoned before winning.
struct QueueGuard<'a> {
    hub: &'a Hub,
    ticket: u64,
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.hub.state.lock();
        state.queue.retain(|(t, _)| *t != self.ticket);
        drop(state);
        self.hub.changed.send_modify(|version| *version += 1);
    }
}

/// One candidate of a [`MemoryElectionHub`].
pub struct MemoryElection {
    hub: MemoryElectionHub,
    info: CandidateInfo,
}

impl MemoryElection {
    async fn campaign_until_won(&self) -> Result<Leadership, MembershipError> {
        let hub = &self.hub.inner;
        let mut changed = hub.changed.subscribe();
        let ticket = {
            let mut state = hub.state.lock();
            state.next_ticket += 1;
            let ticket = state.next_ticket;
            state.queue.push_back((ticket, self.info.clone()));
            ticket
        };
        let _guard = QueueGuard { hub, ticket };
        loop {
            changed.borrow_and_update();
            if let Some((term, lost)) = hub.try_win(ticket) {
                hub.publish();
                let leader_key = LeaderKey::new()
                    .with_name("memory")
                    .with_key(format!("memory/{ticket}"))
                    .with_rev(term as i64);
                let handle = HubHandle {
                    hub: hub.clone(),
                    ticket,
                };
                return Ok(Leadership::new(
                    self.info.clone(),
                    leader_key,
                    lost,
                    Backend::Memory(handle),
                ));
            }
            if changed.changed().await.is_err() {
                return Err(MembershipError::Closed);
            }
        }
    }
}

impl Election for MemoryElection {
    fn candidate(&self) -> &CandidateInfo {
        &self.info
    }

    fn campaign(&self) -> BoxFuture<'_, Result<Leadership, MembershipError>> {
        Box::pin(self.campaign_until_won())
    }

    fn leader(&self) -> BoxFuture<'_, Result<Option<CandidateInfo>, MembershipError>> {
        let leader = self.hub.current_leader();
        Box::pin(async move { Ok(leader) })
    }

    fn observe(&self) -> watch::Receiver<Option<CandidateInfo>> {
        self.hub.inner.leader.subscribe()
    }
}
