//! The leader's durable state, behind a trait so the coordinator can be tested on
//! [`MemoryStateStore`].
//!
//! Values are JSON. Writes through [`FencedStore`] only land while the writer still holds
//! the leadership it was created with; reads are never fenced (a stale read is harmless,
//! a stale write is not).

mod etcd;
mod memory;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub use self::etcd::{FencedStore, StateReader};
pub use self::memory::MemoryStateStore;
use crate::keys::{StateKey, StatePrefix};
use crate::MembershipError;

/// One write of an atomic batch.
#[derive(Clone, Debug, PartialEq)]
pub enum StateWrite {
    /// Set `key` to `value`.
    Put {
        /// where
        key: StateKey,
        /// what
        value: Value,
    },
    /// Remove `key` (no error if absent).
    Delete {
        /// where
        key: StateKey,
    },
}

impl StateWrite {
    /// The key this write touches.
    pub fn key(&self) -> &StateKey {
        match self {
            Self::Put { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// Durable leader state. Object safe (`Arc<dyn StateStore>`); typed access is in
/// [`StateStoreExt`].
pub trait StateStore: Send + Sync {
    /// Applies all writes atomically, or none: e.g. a new plan together with the
    /// assignments derived from it. A fenced store fails with
    /// [`MembershipError::Fenced`] once leadership has moved on.
    fn apply(&self, writes: Vec<StateWrite>) -> BoxFuture<'_, Result<(), MembershipError>>;

    /// Reads one key.
    fn get_json<'a>(
        &'a self,
        key: &'a StateKey,
    ) -> BoxFuture<'a, Result<Option<Value>, MembershipError>>;

    /// Reads every key of a family, sorted by key.
    fn list_json(
        &self,
        prefix: StatePrefix,
    ) -> BoxFuture<'_, Result<Vec<(StateKey, Value)>, MembershipError>>;

    /// Sets one key.
    fn put_json<'a>(
        &'a self,
        key: &'a StateKey,
        value: Value,
    ) -> BoxFuture<'a, Result<(), MembershipError>> {
        self.apply(vec![StateWrite::Put {
            key: key.clone(),
            value,
        }])
    }

    /// Removes one key.
    fn delete<'a>(&'a self, key: &'a StateKey) -> BoxFuture<'a, Result<(), MembershipError>> {
        self.apply(vec![StateWrite::Delete { key: key.clone() }])
    }
}

/// Typed reads and writes on any [`StateStore`], including `dyn StateStore`.
pub trait StateStoreExt: StateStore {
    /// Serializes `value` to JSON and writes it.
    fn put<'a, T: Serialize + ?Sized>(
        &'a self,
        key: &'a StateKey,
        value: &T,
    ) -> BoxFuture<'a, Result<(), MembershipError>> {
        match serde_json::to_value(value) {
            Ok(json) => self.put_json(key, json),
            Err(source) => {
                let error = MembershipError::Encode {
                    key: key.to_string(),
                    source,
                };
                Box::pin(async move { Err(error) })
            }
        }
    }

    /// Reads `key` and deserializes it.
    fn get<'a, T: DeserializeOwned + 'a>(
        &'a self,
        key: &'a StateKey,
    ) -> BoxFuture<'a, Result<Option<T>, MembershipError>> {
        Box::pin(async move {
            let Some(json) = self.get_json(key).await? else {
                return Ok(None);
            };
            decode(key, json).map(Some)
        })
    }
}

impl<S: StateStore + ?Sized> StateStoreExt for S {}

pub(crate) fn decode<T: DeserializeOwned>(
    key: &StateKey,
    json: Value,
) -> Result<T, MembershipError> {
    serde_json::from_value(json).map_err(|source| MembershipError::Decode {
        key: key.to_string(),
        source,
    })
}
