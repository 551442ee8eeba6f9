//! An in-memory [`StateStore`] for coordinator tests, with failure injection and a log
//! of every write that landed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;

use crate::keys::{StateKey, StatePrefix};
use crate::state::{StateStore, StateWrite};
use crate::MembershipError;

/// Shared (clone = same store) in-memory state.
#[derive(Clone, Default)]
pub struct MemoryStateStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    values: BTreeMap<StateKey, Value>,
    fenced_at: Option<u64>,
    fail_next: u32,
    log: Vec<StateWrite>,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on every write fails with `Fenced { term }`, as if another leader had
    /// been elected.
    pub fn fence(&self, term: u64) {
        self.inner.lock().fenced_at = Some(term);
    }

    /// The next `n` writes fail with a retryable timeout and change nothing.
    pub fn fail_next_writes(&self, n: u32) {
        self.inner.lock().fail_next = n;
    }

    /// Every write that landed, in order.
    pub fn writes(&self) -> Vec<StateWrite> {
        self.inner.lock().log.clone()
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> BTreeMap<StateKey, Value> {
        self.inner.lock().values.clone()
    }
}

impl StateStore for MemoryStateStore {
    fn apply(&self, writes: Vec<StateWrite>) -> BoxFuture<'_, Result<(), MembershipError>> {
        let mut inner = self.inner.lock();
        let result = if let Some(term) = inner.fenced_at {
            Err(MembershipError::Fenced { term })
        } else if inner.fail_next > 0 {
            inner.fail_next -= 1;
            Err(MembershipError::Timeout {
                op: "memory txn",
                after: Duration::ZERO,
            })
        } else {
            for write in &writes {
                match write {
                    StateWrite::Put { key, value } => {
                        inner.values.insert(key.clone(), value.clone());
                    }
                    StateWrite::Delete { key } => {
                        inner.values.remove(key);
                    }
                }
            }
            inner.log.extend(writes);
            Ok(())
        };
        Box::pin(async move { result })
    }

    fn get_json<'a>(
        &'a self,
        key: &'a StateKey,
    ) -> BoxFuture<'a, Result<Option<Value>, MembershipError>> {
        let value = self.inner.lock().values.get(key).cloned();
        Box::pin(async move { Ok(value) })
    }

    fn list_json(
        &self,
        prefix: StatePrefix,
    ) -> BoxFuture<'_, Result<Vec<(StateKey, Value)>, MembershipError>> {
        let entries = self
            .inner
            .lock()
            .values
            .iter()
            .filter(|(key, _)| match prefix {
                StatePrefix::Assignments => matches!(key, StateKey::Assignment(_)),
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        Box::pin(async move { Ok(entries) })
    }
}
