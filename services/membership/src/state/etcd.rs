//! State on etcd: fenced writes for the leader, plain reads for everyone.

use etcd_client::{Client, Compare, CompareOp, GetOptions, LeaderKey, Txn, TxnOp};
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::call;
use crate::keys::{StateKey, StatePrefix};
use crate::state::{decode, StateStore, StateWrite};
use crate::{MembershipError, MigrationId};

/// The leader's state store. Every write is one etcd transaction guarded by
/// `create_revision(leader_key) == leader_key.rev()`: the leader key exists with that
/// create revision exactly as long as this leadership does, so once anyone else has been
/// elected (which requires our key to be gone) the compare fails and the write is
/// rejected with [`MembershipError::Fenced`] — no matter how late or slow the writer is.
#[derive(Clone)]
pub struct FencedStore {
    client: Client,
    mid: MigrationId,
    leader_key: LeaderKey,
}

impl FencedStore {
    /// A store that writes only while `leader_key` (from
    /// [`crate::Leadership::leader_key`]) still leads.
    pub fn new(client: Client, mid: &MigrationId, leader_key: LeaderKey) -> Self {
        Self {
            client,
            mid: mid.clone(),
            leader_key,
        }
    }

    /// The term writes are fenced on.
    pub fn term(&self) -> u64 {
        self.leader_key.rev().max(0) as u64
    }

    async fn apply_fenced(&self, writes: Vec<StateWrite>) -> Result<(), MembershipError> {
        let operations: Vec<TxnOp> = writes
            .iter()
            .map(|write| match write {
                StateWrite::Put { key, value } => {
                    TxnOp::put(key.path(&self.mid), value.to_string(), None)
                }
                StateWrite::Delete { key } => TxnOp::delete(key.path(&self.mid), None),
            })
            .collect();
        let fence = Compare::create_revision(
            self.leader_key.key(),
            CompareOp::Equal,
            self.leader_key.rev(),
        );
        let txn = Txn::new().when([fence]).and_then(operations);
        let response = call("fenced txn", self.client.clone().txn(txn)).await?;
        if !response.succeeded() {
            tracing::warn!(
                term = self.term(),
                writes = writes.len(),
                "fenced write rejected"
            );
            return Err(MembershipError::Fenced { term: self.term() });
        }
        Ok(())
    }
}

impl StateStore for FencedStore {
    fn apply(&self, writes: Vec<StateWrite>) -> BoxFuture<'_, Result<(), MembershipError>> {
        Box::pin(self.apply_fenced(writes))
    }

    fn get_json<'a>(
        &'a self,
        key: &'a StateKey,
    ) -> BoxFuture<'a, Result<Option<Value>, MembershipError>> {
        Box::pin(get_json(&self.client, &self.mid, key))
    }

    fn list_json(
        &self,
        prefix: StatePrefix,
    ) -> BoxFuture<'_, Result<Vec<(StateKey, Value)>, MembershipError>> {
        Box::pin(list_json(&self.client, &self.mid, prefix))
    }
}

/// Unfenced, read-only access to a migration's state: for followers and for workers
/// (which read `clusters` and their own assignment).
#[derive(Clone)]
pub struct StateReader {
    client: Client,
    mid: MigrationId,
}

impl StateReader {
    /// A reader of migration `mid`.
    pub fn new(client: Client, mid: &MigrationId) -> Self {
        Self {
            client,
            mid: mid.clone(),
        }
    }

    /// Reads one key as JSON.
    pub async fn get_json(&self, key: &StateKey) -> Result<Option<Value>, MembershipError> {
        get_json(&self.client, &self.mid, key).await
    }

    /// Reads one key and deserializes it.
    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &StateKey,
    ) -> Result<Option<T>, MembershipError> {
        match self.get_json(key).await? {
            Some(json) => decode(key, json).map(Some),
            None => Ok(None),
        }
    }

    /// Reads every key of a family, sorted by key.
    pub async fn list_json(
        &self,
        prefix: StatePrefix,
    ) -> Result<Vec<(StateKey, Value)>, MembershipError> {
        list_json(&self.client, &self.mid, prefix).await
    }
}

async fn get_json(
    client: &Client,
    mid: &MigrationId,
    key: &StateKey,
) -> Result<Option<Value>, MembershipError> {
    let path = key.path(mid);
    let response = call("get", client.clone().get(path.as_str(), None)).await?;
    let Some(kv) = response.kvs().first() else {
        return Ok(None);
    };
    let json = serde_json::from_slice(kv.value())
        .map_err(|source| MembershipError::Decode { key: path, source })?;
    Ok(Some(json))
}

async fn list_json(
    client: &Client,
    mid: &MigrationId,
    prefix: StatePrefix,
) -> Result<Vec<(StateKey, Value)>, MembershipError> {
    let path = prefix.path(mid);
    let options = GetOptions::new().with_prefix();
    let response = call("list", client.clone().get(path.as_str(), Some(options))).await?;
    let mut entries = Vec::with_capacity(response.kvs().len());
    for kv in response.kvs() {
        let full_key = String::from_utf8_lossy(kv.key()).into_owned();
        let key = match prefix.parse(mid, &full_key) {
            Ok(key) => key,
            Err(error) => {
                // Someone wrote a key we would never write; skip rather than fail the list.
                tracing::warn!(key = %full_key, error = %error, "ignoring foreign key");
                continue;
            }
        };
        let json =
            serde_json::from_slice(kv.value()).map_err(|source| MembershipError::Decode {
                key: full_key,
                source,
            })?;
        entries.push((key, json));
    }
    Ok(entries)
}
